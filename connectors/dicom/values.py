"""Encoded DICOM values to PS3.18 JSON text and to Python values.

Two forms of each value: the JSON text of its ``Value`` array (without the brackets), which
the header serialiser writes for every element, and Python values, which only the few
attributes that become typed columns need. Text is decoded with the dataset's Specific
Character Set: single-byte sets and UTF-8 with ``bytes.decode``; ISO 2022 code extensions
with pydicom's decoder, which switches character sets at escape sequences. A value that
does not follow its VR is kept as written and reported with a fixed warning, never with
the value.
"""

import base64
import codecs
import math
import struct
import warnings
from collections.abc import Callable
from datetime import date, datetime
from json.encoder import encode_basestring

from connectors.dicom import dictionary

BULK_THRESHOLD = 1024
"""Binary values longer than this many bytes are left out of the JSON model."""

W_CHARSET = "SpecificCharacterSet names an unknown character set; text decoded as Latin-1"
W_UNDECODABLE = "some text could not be decoded with the declared SpecificCharacterSet"
W_NUMBER = "an IS or DS value in the header is not a number; it is kept as text"
W_FLOAT = "a floating point value in the header is not finite; written as null"

json_string = _json_string = encode_basestring
"""JSON text of a string, quotes included (the C encoder of the json module)."""


# pydicom's delimiters at which ISO 2022 decoding returns to the first character set.
_PN_DELIMS = {0x5E}
_TEXT_DELIMS = {0x0D, 0x0A, 0x09, 0x0C}


class Text:
    """Decodes text values with a dataset's Specific Character Set.

    Attributes:
        warnings: the set that collects fixed sentences (shared with the parser).
    """

    __slots__ = ("codec", "_encodings", "warnings")

    def __init__(self, terms: list | None, warning_sink: set[str]) -> None:
        self.warnings = warning_sink
        self._encodings: list[str] = []
        self.codec: str | None = "iso8859-1"
        cleaned = [t if isinstance(t, str) else "" for t in terms or []]
        if not any(cleaned):
            return
        if len(cleaned) == 1 and not cleaned[0].startswith("ISO 2022"):
            known = dictionary.tables().charsets.get(cleaned[0])
            if known is not None:
                self.codec = _python_codec(known)
                return
        # Code extensions, several terms, or a term to correct: pydicom's rules, imported
        # only now (pool workers do not load pydicom for the common character sets).
        from pydicom.charset import convert_encodings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            encodings = convert_encodings(cleaned)
        if caught:
            warning_sink.add(W_CHARSET)
        if len(encodings) == 1 and not cleaned[0].startswith("ISO 2022"):
            self.codec = _python_codec(encodings[0])
        else:
            self._encodings = encodings
            self.codec = None

    def decode(self, raw: bytes, person_name: bool = False) -> str:
        """Decode one value (or one person-name component group).

        Args:
            raw: the encoded bytes.
            person_name: decode with the PN delimiters (ISO 2022 sets switch back at them).

        Returns:
            The text; undecodable bytes become U+FFFD with a warning.
        """
        codec = self.codec
        if codec is not None:
            try:
                return raw.decode(codec)
            except UnicodeDecodeError:
                self.warnings.add(W_UNDECODABLE)
                return raw.decode(codec, "replace")
        from pydicom.charset import decode_bytes

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            text = decode_bytes(raw, self._encodings, _PN_DELIMS if person_name else _TEXT_DELIMS)
        if caught:
            self.warnings.add(W_UNDECODABLE)
        return text


def _python_codec(encoding: str) -> str:
    # pydicom names the default repertoire 'iso8859'; Latin-1 is what it decodes it as.
    if encoding in ("iso8859", "iso_ir_6"):
        return "iso8859-1"
    try:
        # The canonical name, so that one character set has one name (and one memo).
        return codecs.lookup(encoding).name
    except LookupError:
        return "iso8859-1"


# -- JSON text of a Value array (None: the value is empty) ----------------------------------------


def ascii_json(raw: bytes, text: Text) -> str | None:
    """AE, AS, CS, DA, DT, TM, UI: default repertoire; spaces and NULs around are padding."""
    s = raw.decode("latin-1")
    if "\\" not in s:
        s = s.strip(" \x00")
        return _json_string(s) if s else None
    parts = [p.strip(" \x00") for p in s.split("\\")]
    if not any(parts):
        return None
    return ",".join([_json_string(p) if p else "null" for p in parts])


def text_json(raw: bytes, text: Text) -> str | None:
    """LO, SH, UC: the extended character set may be used; trailing spaces are padding."""
    s = text.decode(raw)
    if "\\" not in s:
        s = s.rstrip(" \x00")
        return _json_string(s) if s else None
    parts = [p.rstrip(" \x00") for p in s.split("\\")]
    if not any(parts):
        return None
    return ",".join([_json_string(p) if p else "null" for p in parts])


def long_text_json(raw: bytes, text: Text) -> str | None:
    """LT, ST, UT: one value in which a backslash is an ordinary character."""
    s = text.decode(raw).rstrip(" \x00")
    return _json_string(s) if s else None


def uri_json(raw: bytes, text: Text) -> str | None:
    """UR: one value in the default repertoire."""
    s = raw.decode("latin-1").rstrip(" \x00")
    return _json_string(s) if s else None


def person_name_json(raw: bytes, text: Text) -> str | None:
    """PN: each value an object of its Alphabetic, Ideographic and Phonetic groups."""
    return names_json(person_names(raw, text))


def integer_string_json(raw: bytes, text: Text) -> str | None:
    """IS as JSON numbers (text kept, with a warning, when a value is not an integer)."""
    values = integer_strings(raw, text)
    if not values:
        return None
    return ",".join([_number_json(x) for x in values])


def decimal_string_json(raw: bytes, text: Text) -> str | None:
    """DS as JSON numbers (text kept, with a warning, when a value is not a number)."""
    values = decimal_strings(raw, text)
    if not values:
        return None
    return ",".join([_number_json(x) for x in values])


def _number_json(value: int | float | str | None) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return _json_string(value)
    return repr(value)


TEXT_JSON: dict[str, Callable[[bytes, Text], str | None]] = {
    "AE": ascii_json,
    "AS": ascii_json,
    "CS": ascii_json,
    "DA": ascii_json,
    "DT": ascii_json,
    "TM": ascii_json,
    "UI": ascii_json,
    "LO": text_json,
    "SH": text_json,
    "UC": text_json,
    "LT": long_text_json,
    "ST": long_text_json,
    "UT": long_text_json,
    "UR": uri_json,
    "PN": person_name_json,
    "IS": integer_string_json,
    "DS": decimal_string_json,
}
"""JSON text of the text VRs: (value bytes, decoder) -> Value array body or None."""


def _binary_numbers(code: str, size: int) -> Callable[[bytes, bool], list]:
    cache: dict[tuple[bool, int], struct.Struct] = {}

    def convert(raw: bytes, little: bool) -> list:
        count = len(raw) // size
        fmt = cache.get((little, count))
        if fmt is None:
            fmt = struct.Struct(("<" if little else ">") + f"{count}{code}")
            if count <= 64:
                cache[(little, count)] = fmt
        return list(fmt.unpack_from(raw))

    return convert


NUMBERS: dict[str, Callable[[bytes, bool], list]] = {
    "US": _binary_numbers("H", 2),
    "SS": _binary_numbers("h", 2),
    "UL": _binary_numbers("L", 4),
    "SL": _binary_numbers("l", 4),
    "UV": _binary_numbers("Q", 8),
    "SV": _binary_numbers("q", 8),
    "FL": _binary_numbers("f", 4),
    "FD": _binary_numbers("d", 8),
}
"""Binary number VRs: (value bytes, little endian) -> values."""


def integers_json(values: list) -> str | None:
    """JSON body of binary integers."""
    return ",".join(map(str, values)) if values else None


def floats_json(values: list, warnings_sink: set[str]) -> str | None:
    """JSON body of FL/FD values; NaN and infinities, which JSON cannot carry, are null."""
    if not values:
        return None
    body = ",".join(map(repr, values))
    if "n" in body:  # 'nan' or 'inf': finite reprs never hold an 'n'
        warnings_sink.add(W_FLOAT)
        body = ",".join([repr(x) if math.isfinite(x) else "null" for x in values])
    return body


def attribute_tags(raw: bytes, little: bool) -> list[str]:
    """AT values as 8-hex-digit tags (group then element).

    Args:
        raw: the value bytes (pairs of 16-bit group and element numbers).
        little: the value is little endian.

    Returns:
        The tags as upper-case hex strings.
    """
    numbers = NUMBERS["US"](raw[: len(raw) // 4 * 4], little)
    return [f"{numbers[i]:04X}{numbers[i + 1]:04X}" for i in range(0, len(numbers), 2)]


_SWAP_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def inline_binary(raw: bytes, vr: str, little: bool) -> str:
    """Base64 of a small binary value, in little endian byte order.

    Args:
        raw: the value bytes as stored.
        vr: the element's VR (its word size decides how big-endian bytes are swapped).
        little: the value is stored little endian.

    Returns:
        The base64 text.
    """
    size = _SWAP_SIZES.get(vr)
    if not little and size and len(raw) % size == 0:
        raw = b"".join(raw[i : i + size][::-1] for i in range(0, len(raw), size))
    return base64.b64encode(raw).decode("ascii")


# -- Python values, for the attributes that become columns ----------------------------------------


def ascii_strings(raw: bytes, text: Text) -> list[str | None]:
    """Values of AE, AS, CS, DA, DT, TM, UI (empty ones None)."""
    return [p.strip(" \x00") or None for p in raw.decode("latin-1").split("\\")]


def text_strings(raw: bytes, text: Text) -> list[str | None]:
    """Values of LO, SH, UC (empty ones None)."""
    return [p.rstrip(" \x00") or None for p in text.decode(raw).split("\\")]


def long_text(raw: bytes, text: Text) -> list[str | None]:
    """The one value of LT, ST, UT."""
    return [text.decode(raw).rstrip(" \x00") or None]


def person_names(raw: bytes, text: Text) -> list[dict[str, str]]:
    """PN values as {Alphabetic, Ideographic, Phonetic} (empty groups left out).

    Args:
        raw: the value bytes.
        text: the decoder of the dataset's character set.

    Returns:
        One dict per value (empty when the value is); an empty list for an empty element.
    """
    names: list[dict[str, str]] = []
    for encoded in raw.rstrip(b" \x00").split(b"\\"):
        name: dict[str, str] = {}
        for key, group in zip(
            ("Alphabetic", "Ideographic", "Phonetic"), encoded.split(b"="), strict=False
        ):
            decoded = text.decode(group, person_name=True).rstrip(" ")
            if decoded:
                name[key] = decoded
        names.append(name)
    return names if any(names) else []


def integer_strings(raw: bytes, text: Text) -> list[int | str | None]:
    """IS values as int; a value that is not an integer stays text (with a warning)."""
    values: list[int | str | None] = []
    for part in raw.decode("latin-1").split("\\"):
        part = part.strip(" \x00")
        if not part:
            values.append(None)
            continue
        try:
            values.append(int(part))
        except ValueError:
            values.append(_integral_float(part, text))
    return values if any(x is not None for x in values) else []


def _integral_float(part: str, text: Text) -> int | str:
    # Some writers put '1.0' in IS; the value is still the integer it names.
    try:
        number = float(part)
    except ValueError:
        number = math.nan
    if math.isfinite(number) and number == int(number):
        return int(number)
    text.warnings.add(W_NUMBER)
    return part


def decimal_strings(raw: bytes, text: Text) -> list[float | str | None]:
    """DS values as float; a value that is not a finite number stays text (with a warning)."""
    values: list[float | str | None] = []
    for part in raw.decode("latin-1").split("\\"):
        part = part.strip(" \x00")
        if not part:
            values.append(None)
            continue
        try:
            number = float(part)
        except ValueError:
            number = math.nan
        if math.isfinite(number) and "_" not in part:
            values.append(number)
        else:
            text.warnings.add(W_NUMBER)
            values.append(part)
    return values if any(x is not None for x in values) else []


PYTHON_TEXT: dict[str, Callable[[bytes, Text], list]] = {
    "AE": ascii_strings,
    "AS": ascii_strings,
    "CS": ascii_strings,
    "DA": ascii_strings,
    "DT": ascii_strings,
    "TM": ascii_strings,
    "UI": ascii_strings,
    "UR": ascii_strings,
    "LO": text_strings,
    "SH": text_strings,
    "UC": text_strings,
    "LT": long_text,
    "ST": long_text,
    "UT": long_text,
    "PN": person_names,
    "IS": integer_strings,
    "DS": decimal_strings,
}
"""Python values of the text VRs, for the attributes that become columns."""


def strings_json(values: list[str | None]) -> str | None:
    """JSON body of text values (None for an empty one); None when all are empty."""
    if not any(values):
        return None
    return ",".join([_json_string(x) if x is not None else "null" for x in values])


def numbers_json(values: list[int | float | str | None]) -> str | None:
    """JSON body of IS/DS values (text kept for a value that is not a number)."""
    if not values:
        return None
    return ",".join([_number_json(x) for x in values])


def names_json(values: list[dict[str, str]]) -> str | None:
    """JSON body of PN values: objects of their component groups."""
    if not values:
        return None
    return ",".join(
        [
            "{" + ",".join([f'"{k}":{_json_string(g)}' for k, g in name.items()]) + "}"
            if name
            else "null"
            for name in values
        ]
    )


PYTHON_JSON: dict[str, Callable[[list], str | None]] = {
    vr: names_json if vr == "PN" else numbers_json if vr in ("IS", "DS") else strings_json
    for vr in PYTHON_TEXT
}
"""JSON body of the Python values of each text VR."""


# -- typed column values --------------------------------------------------------------------------


def parse_da(value: str) -> date | None:
    """Parse a DA value (YYYYMMDD, or the ACR-NEMA YYYY.MM.DD).

    Args:
        value: the text of one value.

    Returns:
        The date, or None when the text is not a valid date.
    """
    if len(value) == 10 and value[4] == "." and value[7] == ".":
        value = value[:4] + value[5:7] + value[8:]
    if len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def parse_dt(value: str) -> datetime | None:
    """Parse a DT value into a naive datetime, dropping any UTC offset.

    Missing trailing components take their lowest value (month 1, hour 0, ...).

    Args:
        value: the text of one value: YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX].

    Returns:
        The datetime, or None when the text is not a valid DT value.
    """
    for sign in "+-":
        cut = value.find(sign, 4)
        if cut != -1:
            offset = value[cut + 1 :]
            if len(offset) != 4 or not offset.isdigit():
                return None
            value = value[:cut]
    main, _, fraction = value.partition(".")
    if not main.isdigit() or len(main) not in (4, 6, 8, 10, 12, 14):
        return None
    if fraction and (len(main) != 14 or not fraction.isdigit() or len(fraction) > 6):
        return None
    parts = [int(main[i : i + 2]) for i in range(4, len(main), 2)]
    month, day, hour, minute, second = (parts + [1, 1, 0, 0, 0][len(parts) :])[:5]
    try:
        return datetime(
            int(main[:4]), month, day, hour, minute, min(second, 59), int(fraction.ljust(6, "0"))
        )
    except ValueError:
        return None


def parse_tm(value: str) -> tuple[int, int, int, int] | None:
    """Parse a TM value (HH[MM[SS[.F{1,6}]]], or the ACR-NEMA HH:MM:SS).

    Args:
        value: the text of one value.

    Returns:
        (hour, minute, second, microsecond), or None when the text is not a valid time.
    """
    value = value.replace(":", "")
    main, _, fraction = value.partition(".")
    if not main.isdigit() or len(main) not in (2, 4, 6):
        return None
    if fraction and (len(main) != 6 or not fraction.isdigit() or len(fraction) > 6):
        return None
    hour, minute, second = ([int(main[i : i + 2]) for i in range(0, len(main), 2)] + [0, 0])[:3]
    if hour > 23 or minute > 59 or second > 60:
        return None
    return hour, minute, min(second, 59), int(fraction.ljust(6, "0"))
