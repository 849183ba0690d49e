"""The ISO 8601 date/time text SDTM allows in its --DTC variables.

SDTMIG section 4.4 (v3.3): a date/time is ``YYYY-MM-DDThh:mm:ss`` (the extended format),
and precision is reduced by leaving components off the right end (``2003-12-15T13:14``,
``2003-12-15T13``, ``2003-12-15``, ``2003-12``, ``2003``). A component that is unknown while
a later one is known is written as a single hyphen (section 4.4.4): ``2003---15`` (month
unknown), ``--12-15`` (year unknown), ``-----T07:15`` (date unknown), ``2003-12-15T-:15``
(hour unknown). Beyond the IG's examples, this accepts what ISO 8601 allows in the same
shape: a decimal fraction of the second, a UTC designator or offset after the time
(``Z``, ``+01:00``), and an interval of two such values (``start/end``). Durations
(``P...``) are not --DTC values and are rejected.
"""

import calendar
import re
from datetime import date

_DATE = re.compile(r"(\d{4}|-)(?:-(\d{2}|-)(?:-(\d{2}|-))?)?")
_TIME = re.compile(r"(\d{2}|-)(?::(\d{2}|-)(?::(\d{2}(?:\.\d+)?|-))?)?(Z|[+-]\d{2}(?::?\d{2})?)?")
_UNKNOWN = "-"


def is_sdtm_datetime(text: str) -> bool:
    """Whether a value is an ISO 8601 date/time (or interval) as SDTM --DTC allows it.

    Args:
        text: the value, without surrounding blanks.

    Returns:
        True for a complete or reduced-precision date/time, with SDTM's hyphens for unknown
        middle components, or an interval of two of them; False otherwise.
    """
    parts = text.split("/")
    if len(parts) == 2:
        return all(_is_datetime(part) for part in parts)
    return len(parts) == 1 and _is_datetime(text)


def _is_datetime(text: str) -> bool:
    date_text, separator, time_text = text.partition("T")
    date_match = _DATE.fullmatch(date_text)
    if date_match is None:
        return False
    components = list(date_match.groups())
    if separator:
        time_match = _TIME.fullmatch(time_text)
        # A time needs the full date in front of it, each part known or a hyphen.
        if time_match is None or components[2] is None:
            return False
        components.extend(time_match.groups()[:3])
    present = [part for part in components if part is not None]
    # Unknown components are only written in front of a known one, never at the end.
    if present[-1] == _UNKNOWN:
        return False
    return _in_range(*(components + [None] * (6 - len(components))))


def _in_range(
    year: str | None,
    month: str | None,
    day: str | None,
    hour: str | None,
    minute: str | None,
    second: str | None,
) -> bool:
    known = {
        name: value
        for name, value in (("month", month), ("day", day), ("hour", hour), ("minute", minute))
        if value not in (None, _UNKNOWN)
    }
    if "month" in known and not 1 <= int(known["month"]) <= 12:
        return False
    if "day" in known:
        day_number = int(known["day"])
        if "month" in known and year not in (None, _UNKNOWN):
            try:
                date(int(year), int(known["month"]), day_number)
            except ValueError:
                return False
        elif "month" in known:
            # No year: 29 February may be real.
            if not 1 <= day_number <= calendar.monthrange(2000, int(known["month"]))[1]:
                return False
        elif not 1 <= day_number <= 31:
            return False
    if "hour" in known and not 0 <= int(known["hour"]) <= 23:
        return False
    if "minute" in known and not 0 <= int(known["minute"]) <= 59:
        return False
    return second in (None, _UNKNOWN) or float(second) < 60
