"""Readers for the FHIR R4 data types the typed columns are built from.

Every reader takes the parent JSON object and the element name, checks the JSON type, and
raises ``InvalidFieldError`` naming the element path (never its value) when the type is
wrong. Date-times come back as microseconds since the Unix epoch in UTC and dates as days
since the epoch, because integer columns cast to polars temporal types far faster than
Python ``datetime`` objects convert.
"""

import re
from datetime import date, datetime, timedelta

_NO_CODE: tuple[None, None, None] = (None, None, None)

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MICROSECOND = timedelta(microseconds=1)
_MICROS_PER_DAY = 86_400_000_000

# Bulk exports repeat the same timestamps many times over (an encounter's start is also its
# conditions' onset and its procedures' start): about 70% of parses in Synthea data are
# repeats. The cache is emptied when full to keep memory bounded.
_DATETIME_CACHE: dict[str, int] = {}
_DATETIME_CACHE_LIMIT = 1 << 16

# FHIR dateTime and instant with a time part. FHIR requires seconds and a zone whenever a
# time is given; real feeds drop both, so seconds are optional and no zone means UTC.
_DATETIME_WITH_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})?"
)
# FHIR date: a year, a year and month, or a full date.
_DATE = re.compile(r"[0-9]{4}(?:-[0-9]{2}(?:-[0-9]{2})?)?")


class InvalidFieldError(Exception):
    """An element of a resource has the wrong JSON type or an unparseable value.

    Attributes:
        path: the element path inside the resource, e.g. ``valueQuantity.value``.
        problem: a fixed phrase such as ``is not a number``.
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path} {problem}")


def string(parent: dict, key: str, path: str | None = None) -> str | None:
    """The string element ``key`` of ``parent``, or None when absent."""
    value = parent.get(key)
    if value is None or type(value) is str:
        return value
    raise InvalidFieldError(path or key, "is not a string")


def boolean(parent: dict, key: str) -> bool | None:
    """The boolean element ``key`` of ``parent``, or None when absent."""
    value = parent.get(key)
    if value is None or type(value) is bool:
        return value
    raise InvalidFieldError(key, "is not a boolean")


def number(parent: dict, key: str, path: str) -> float | None:
    """The numeric element ``key`` of ``parent`` as a float, or None when absent."""
    value = parent.get(key)
    # bool is a subclass of int in Python, and JSON true is not a number.
    if value is None:
        return None
    if type(value) is float or type(value) is int:
        return float(value)
    raise InvalidFieldError(path, "is not a number")


def obj(parent: dict, key: str, path: str | None = None) -> dict | None:
    """The JSON object element ``key`` of ``parent``, or None when absent."""
    value = parent.get(key)
    if value is None or type(value) is dict:
        return value
    raise InvalidFieldError(path or key, "is not an object")


def array(parent: dict, key: str, path: str | None = None) -> list | None:
    """The JSON array element ``key`` of ``parent``, or None when absent."""
    value = parent.get(key)
    if value is None or type(value) is list:
        return value
    raise InvalidFieldError(path or key, "is not a list")


def first(parent: dict, key: str, path: str | None = None) -> dict | None:
    """The first object of the array element ``key``, or None when absent or empty."""
    path = path or key
    items = array(parent, key, path)
    if not items:
        return None
    item = items[0]
    if type(item) is not dict:
        raise InvalidFieldError(f"{path}[0]", "is not an object")
    return item


def concept(
    parent: dict, key: str, preferred: frozenset[str] | None = None, path: str | None = None
) -> tuple[str | None, str | None, str | None]:
    """System, code and display of the CodeableConcept element ``key``.

    The first coding is taken, or the first whose system is in ``preferred``; the display
    falls back to the concept's ``text``.
    """
    value = parent.get(key)
    if value is None:
        return _NO_CODE
    path = path or key
    if type(value) is not dict:
        raise InvalidFieldError(path, "is not an object")
    return concept_of(value, path, preferred)


def concept_of(
    value: dict, path: str, preferred: frozenset[str] | None = None
) -> tuple[str | None, str | None, str | None]:
    """System, code and display of a CodeableConcept object (see ``concept``)."""
    text = value.get("text")
    if text is not None and type(text) is not str:
        raise InvalidFieldError(f"{path}.text", "is not a string")
    codings = value.get("coding")
    if not codings:
        if codings is not None and type(codings) is not list:
            raise InvalidFieldError(f"{path}.coding", "is not a list")
        return (None, None, text)
    if type(codings) is not list:
        raise InvalidFieldError(f"{path}.coding", "is not a list")
    index = 0
    if preferred is not None and len(codings) > 1:
        for position, candidate in enumerate(codings):
            if type(candidate) is not dict:
                continue
            candidate_system = candidate.get("system")
            if type(candidate_system) is str and candidate_system in preferred:
                index = position
                break
    coding = codings[index]
    if type(coding) is not dict:
        raise InvalidFieldError(f"{path}.coding[{index}]", "is not an object")
    system = coding.get("system")
    code = coding.get("code")
    display = coding.get("display")
    if (
        (system is not None and type(system) is not str)
        or (code is not None and type(code) is not str)
        or (display is not None and type(display) is not str)
    ):
        raise InvalidFieldError(
            f"{path}.coding[{index}]", "has a system, code or display that is not a string"
        )
    return (system, code, text if display is None else display)


def concept_code(parent: dict, key: str, path: str | None = None) -> str | None:
    """The code of the first coding of the CodeableConcept element ``key``."""
    return concept(parent, key, None, path)[1]


def first_concept(
    parent: dict, key: str, preferred: frozenset[str] | None = None
) -> tuple[str | None, str | None, str | None]:
    """System, code and display of the first CodeableConcept of the array element ``key``."""
    item = first(parent, key)
    if item is None:
        return _NO_CODE
    return concept_of(item, f"{key}[0]", preferred)


def reference(parent: dict, key: str, target_type: str) -> str | None:
    """The logical id a Reference element points at, when it points at ``target_type``.

    ``Patient/abc``, ``https://host/fhir/Patient/abc``, ``Patient/abc/_history/2`` and
    ``urn:uuid:abc`` all give ``abc``. Conditional references (``Patient?identifier=...``),
    references to contained resources (``#p1``), logical references by identifier only, and
    references to another resource type give None: they name no resolvable id of that type.
    """
    value = parent.get(key)
    if value is None:
        return None
    if type(value) is not dict:
        raise InvalidFieldError(key, "is not an object")
    text = value.get("reference")
    if text is None:
        return None
    if type(text) is not str:
        raise InvalidFieldError(f"{key}.reference", "is not a string")
    return reference_id(text, target_type)


def reference_id(text: str, target_type: str) -> str | None:
    """The id in a reference string when it targets ``target_type`` (see ``reference``)."""
    head, _, tail = text.partition("/")
    if head == target_type and tail and "/" not in tail and "?" not in tail:
        return tail
    if text.startswith("urn:uuid:"):
        return text[9:] or None
    if "?" in text or text.startswith(("#", "urn:")):
        return None
    parts = text.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        del parts[-2:]
    if len(parts) < 2 or parts[-2] != target_type or not parts[-1]:
        return None
    return parts[-1]


def datetime_micros(parent: dict, key: str, path: str | None = None) -> int | None:
    """The dateTime or instant element ``key`` as microseconds since the epoch, in UTC.

    A zone offset is applied; a time without a zone is taken as UTC; a date, a year-month or
    a year alone is taken as midnight UTC of its first day.
    """
    value = parent.get(key)
    if value is None:
        return None
    if type(value) is not str:
        raise InvalidFieldError(path or key, "is not a string")
    micros = _DATETIME_CACHE.get(value)
    if micros is not None:
        return micros
    try:
        micros = parse_datetime_micros(value)
    except ValueError:
        raise InvalidFieldError(path or key, "is not a valid date-time") from None
    if len(_DATETIME_CACHE) >= _DATETIME_CACHE_LIMIT:
        _DATETIME_CACHE.clear()
    _DATETIME_CACHE[value] = micros
    return micros


def parse_datetime_micros(text: str) -> int:
    """Microseconds since the epoch, in UTC, of a FHIR dateTime or instant string.

    Raises:
        ValueError: when the string is not a FHIR dateTime.
    """
    if len(text) <= 10:
        return _parse_date_days(text, allow_partial=True) * _MICROS_PER_DAY
    if _DATETIME_WITH_TIME.fullmatch(text) is None:
        raise ValueError("not a FHIR dateTime")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        # FHIR allows a leap second (:60); Python's datetime does not.
        if text[16:19] != ":60":
            raise
        moment = datetime.fromisoformat(text[:17] + "59" + text[19:]) + timedelta(seconds=1)
    # Integer arithmetic on the fields: subtracting an aware epoch costs twice as much.
    micros = (
        (moment.toordinal() - _EPOCH_ORDINAL) * 86_400
        + moment.hour * 3_600
        + moment.minute * 60
        + moment.second
    ) * 1_000_000 + moment.microsecond
    offset = moment.utcoffset()
    if offset:
        micros -= offset // _MICROSECOND
    return micros


def full_date_days(parent: dict, key: str) -> int | None:
    """The date element ``key`` as days since the epoch; None when absent or partial.

    A partial date (``1970`` or ``1970-04``) gives None rather than an invented day.
    """
    value = parent.get(key)
    if value is None:
        return None
    if type(value) is not str:
        raise InvalidFieldError(key, "is not a string")
    try:
        return _parse_date_days(value, allow_partial=False)
    except ValueError:
        raise InvalidFieldError(key, "is not a valid date") from None


def _parse_date_days(text: str, *, allow_partial: bool) -> int | None:
    if _DATE.fullmatch(text) is None:
        raise ValueError("not a FHIR date")
    if len(text) == 10:
        return date.fromisoformat(text).toordinal() - _EPOCH_ORDINAL
    month = int(text[5:7]) if len(text) == 7 else 1
    # Checks the month even when the partial date is then dropped.
    day = date(int(text[:4]), month, 1)
    if not allow_partial:
        return None
    return day.toordinal() - _EPOCH_ORDINAL
