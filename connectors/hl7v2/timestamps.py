"""HL7 v2 timestamps (TS/DTM) to UTC.

The form is ``YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]``: precision may stop after any part
(missing parts read as the start of the period: ``2014`` is 1 January 2014 00:00), and a
timestamp without an offset is local time in the zone the caller names. Fractions of a
second are kept to the microsecond (further digits are cut). Local times that a daylight
saving change makes ambiguous or skip read with the offset in force before the change
(``zoneinfo``'s ``fold=0``).
"""

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache

_TIMESTAMP = re.compile(
    r"(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d+))?)?)?)?)?)?"
    r"(?:([+-])(\d{2})(\d{2}))?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def parse_timestamp(text: str, default_zone: tzinfo) -> datetime:
    """Read an HL7 timestamp as an aware datetime in UTC.

    Args:
        text: the timestamp (the first component of a TS field), surrounding blanks
            allowed.
        default_zone: the zone of a timestamp that carries no offset.

    Returns:
        The instant, with ``tzinfo=UTC``.

    Raises:
        ValueError: the text is not an HL7 timestamp or names a date or time that does not
            exist (month 13, 31 April, hour 24, offset +2400). The message holds no value.
    """
    match = _TIMESTAMP.fullmatch(text.strip())
    if match is None:
        raise ValueError("not an HL7 timestamp")
    year, month, day, hour, minute, second, fraction, sign, off_hours, off_minutes = match.groups()
    if sign is None:
        zone = default_zone
    else:
        hours, minutes = int(off_hours), int(off_minutes)
        if hours > 23 or minutes > 59:
            raise ValueError("timestamp offset out of range")
        offset = timedelta(hours=hours, minutes=minutes)
        zone = timezone(-offset if sign == "-" else offset)
    try:
        local = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int(fraction[:6].ljust(6, "0")) if fraction else 0,
            tzinfo=zone,
        )
    except ValueError as exc:
        raise ValueError("timestamp names a date or time that does not exist") from exc
    return local.astimezone(UTC)


@lru_cache(maxsize=65_536)
def epoch_microseconds(text: str, default_zone: tzinfo) -> int:
    """An HL7 timestamp as microseconds since 1970-01-01 UTC (cached: feeds repeat times).

    Args:
        text: the timestamp, as for ``parse_timestamp``.
        default_zone: the zone of a timestamp that carries no offset.

    Returns:
        Microseconds since the Unix epoch.

    Raises:
        ValueError: as ``parse_timestamp``.
    """
    return (parse_timestamp(text, default_zone) - _EPOCH) // _MICROSECOND
