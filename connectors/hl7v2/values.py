"""OBX-5 observation values read by their OBX-2 value type.

``text`` is always the value as sent, escapes decoded, repetitions joined by ``~``. The
value type then decides what else is read:

- ``NM``: the number (``lab_schema.parse_number``; a leading comparator such as ``<0.5``,
  which NM does not allow but senders write, is kept in ``comparator``). A value that is
  not a number is an error. A repeated NM (``27~25``) keeps its text and no single number.
- ``SN`` (structured numeric ``comparator^num1^separator^num2``): the comparator from SN.1
  (``=`` or empty: none) and SN.2 as the number, also for ranges (``^10^-^20`` gives 10)
  and suffixes (``^2^+``). Ratios and sequences (separator ``:``, ``/`` or ``.``, as
  in a titre ``^1^:^128``) are no single number: only their text is kept.
- ``CE``/``CWE``/``CNE``: code (component 1), display (component 2, else the original text
  of component 9) and coding system (component 3); repetitions joined by ``~``.
- ``ST``, ``TX``, ``FT`` and every other type (``RP``, ``ED``, ``DT``, ...): the text only.
"""

from typing import NamedTuple

from connectors.hl7v2.errors import FieldError
from connectors.hl7v2.message import Decoder
from connectors.lab_schema import parse_number

CODED_TYPES = frozenset({"CE", "CWE", "CNE"})
"""Value types whose OBX-5 is a coded element."""

NOT_A_NUMBER = "OBX-5 is not a number (value type NM)"
NOT_STRUCTURED_NUMERIC = "OBX-5 is not a structured numeric (value type SN)"
UNKNOWN_SN_COMPARATOR = "OBX-5 SN comparator is not one of <, <=, >, >= or ="
MISSING_VALUE_TYPE = "OBX-2 value type is missing"

_SN_COMPARATORS: dict[str, str | None] = {
    "": None,
    "=": None,
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
}
_SN_SINGLE_NUMBER = frozenset({"", "-", "+"})
_SN_SEPARATORS = frozenset({"", "-", "+", "/", ":", "."})


class ObservationValue(NamedTuple):
    """What one OBX-5 holds, in the ``lab_results`` value columns."""

    text: str | None = None
    number: float | None = None
    comparator: str | None = None
    code: str | None = None
    system: str | None = None
    display: str | None = None


EMPTY_VALUE = ObservationValue()
"""An OBX without a value (a pending result, for one)."""


def observation_value(value_type: str | None, field: str, decoder: Decoder) -> ObservationValue:
    """Read OBX-5 by its value type.

    Args:
        value_type: OBX-2, upper case, or None when empty.
        field: OBX-5 as written.
        decoder: the message's decoder.

    Returns:
        The value's columns; all None when OBX-5 holds nothing but blanks and delimiters,
        or ``""``.

    Raises:
        FieldError: OBX-2 is empty while OBX-5 holds a value, or the value does not
            follow its NM or SN type.
    """
    texts = decoder.repetition_texts(field)
    if not texts:
        return EMPTY_VALUE
    text = "~".join(texts)
    if value_type is None:
        raise FieldError(MISSING_VALUE_TYPE)
    if value_type == "NM":
        return _numeric(text, texts)
    if value_type == "SN":
        return _structured_numeric(text, decoder.repetitions(field), decoder)
    if value_type in CODED_TYPES:
        return _coded(text, decoder.repetitions(field), decoder, with_original=value_type != "CE")
    return ObservationValue(text=text)


def _numeric(text: str, texts: list[str]) -> ObservationValue:
    parsed = [parse_number(repetition) for repetition in texts]
    if any(number is None for _, number in parsed):
        raise FieldError(NOT_A_NUMBER)
    if len(parsed) > 1:
        return ObservationValue(text=text)
    comparator, number = parsed[0]
    return ObservationValue(text=text, number=number, comparator=comparator)


def _structured_numeric(text: str, repetitions: list[str], decoder: Decoder) -> ObservationValue:
    parsed = [_sn_number(repetition, decoder) for repetition in repetitions]
    if len(parsed) > 1:
        return ObservationValue(text=text)
    comparator, number = parsed[0]
    return ObservationValue(text=text, number=number, comparator=comparator)


def _sn_number(repetition: str, decoder: Decoder) -> tuple[str | None, float | None]:
    """(comparator, number) of one SN repetition; both None for a ratio or sequence."""
    sent_comparator = decoder.part(repetition, 1) or ""
    if sent_comparator not in _SN_COMPARATORS:
        raise FieldError(UNKNOWN_SN_COMPARATOR)
    separator = decoder.part(repetition, 3) or ""
    if separator not in _SN_SEPARATORS:
        raise FieldError(NOT_STRUCTURED_NUMERIC)
    first = _plain_number(decoder.part(repetition, 2))
    _plain_number(decoder.part(repetition, 4))
    if separator not in _SN_SINGLE_NUMBER:
        return None, None
    return _SN_COMPARATORS[sent_comparator], first


def _plain_number(text: str | None) -> float | None:
    if text is None:
        return None
    comparator, number = parse_number(text)
    if number is None or comparator is not None:
        raise FieldError(NOT_STRUCTURED_NUMERIC)
    return number


def _coded(
    text: str, repetitions: list[str], decoder: Decoder, *, with_original: bool
) -> ObservationValue:
    codes, systems, displays = [], [], []
    for repetition in repetitions:
        codes.append(decoder.part(repetition, 1))
        systems.append(decoder.part(repetition, 3))
        display = decoder.part(repetition, 2)
        if display is None and with_original:
            display = decoder.part(repetition, 9)
        displays.append(display)
    return ObservationValue(
        text=text, code=_joined(codes), system=_joined(systems), display=_joined(displays)
    )


def _joined(values: list[str | None]) -> str | None:
    """One value per repetition: the value itself, or all joined by '~' ('' for a gap)."""
    if len(values) == 1:
        return values[0]
    if all(value is None for value in values):
        return None
    return "~".join(value or "" for value in values)
