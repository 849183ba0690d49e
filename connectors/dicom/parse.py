"""Parse the header of one DICOM file, in memory, into the PS3.18 JSON model.

Why not ``pydicom.dcmread(..., stop_before_pixels=True)`` and ``Dataset.to_json_dict``:
measured here on the shared files, dcmread takes about 0.8 ms of CPU per file and
to_json_dict another 1-4 ms, while ingest (which also hashes every byte, about 0.5 ms per
file on this corpus) has to beat a bare dcmread loop 1.5 times on two cores. This parser
walks the bytes once with precompiled structs and writes each element's JSON member
straight from its bytes (about 0.45 ms per file), keeping Python values only for the tags
the caller wants. Members of explicit VR elements and sequences are memoised by their
encoded bytes (see ``_memos``): within a series most of a header repeats byte for byte,
which brings a warm file to about 0.2 ms.

It follows pydicom's reading rules, so both give the same model (the tests compare them
on every shared file):

* Part 10 files (preamble, 'DICM', explicit little endian group 0002), and bare datasets
  without preamble or file meta, whose encoding (implicit or explicit VR, byte order) is
  found from the first element.
* Implicit VR: VRs from pydicom's dictionary, private VRs from its private dictionaries
  (by private creator), ambiguous VRs (``US or SS``, ``OB or OW``, ...) resolved as pydicom
  resolves them for reading.
* Explicit VR: an element whose VR bytes are not letters is read as implicit VR (writers
  that switch inside sequences, pydicom #1067); a sequence item whose first element has no
  VR is read as implicit VR; ``UN`` with undefined length is a sequence in implicit VR
  little endian, and ``UN`` of a known attribute takes the dictionary VR.
* Deflated transfer syntaxes are inflated first; encapsulated (compressed) pixel data is
  never decoded.
* Reading stops at top-level PixelData, FloatPixelData or DoubleFloatPixelData, which sets
  ``has_pixels``; the pixel element's length (or, when encapsulated, its fragment items)
  is checked against the file's size so that a truncated file is not taken for a whole one.
"""

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from connectors.dicom import dictionary
from connectors.dicom import values as v

PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
"""PixelData, FloatPixelData, DoubleFloatPixelData."""

IMPLICIT_LITTLE = "1.2.840.10008.1.2"
EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
EXPLICIT_BIG = "1.2.840.10008.1.2.2"
DEFLATED = frozenset(
    {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95", "1.2.840.10008.1.2.4.205"}
)
"""Transfer syntaxes whose whole dataset is deflated (RFC 1951) after the file meta."""

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF

_ASCII, _TEXT, _INTEGERS, _FLOATS, _AT, _BINARY, _SQ = range(7)
_ASCII_VRS = frozenset(("AE", "AS", "CS", "DA", "DT", "TM", "UI"))
_ALL_VRS = tuple(
    "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN "  # noqa: SIM905
    "UR US UT UV".split()
)
_LONG_VRS = frozenset(
    ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV")
)


def _kind(vr: str) -> int:
    if vr in _ASCII_VRS:
        return _ASCII
    if vr in v.TEXT_JSON:
        return _TEXT
    if vr in ("FL", "FD"):
        return _FLOATS
    if vr in v.NUMBERS:
        return _INTEGERS
    return {"SQ": _SQ, "AT": _AT}.get(vr, _BINARY)


def _info(index: int, vr: str) -> tuple:
    # Everything the loop needs about a VR in one lookup: the VR, whether explicit VR gives
    # it a 4-byte length, its kind, its index (for the JSON head cache) and its converters.
    return (
        vr,
        vr in _LONG_VRS,
        _kind(vr),
        index,
        v.TEXT_JSON.get(vr) or v.NUMBERS.get(vr),
        v.PYTHON_TEXT.get(vr),
        v.PYTHON_JSON.get(vr),
    )


_INFO = {vr: _info(i, vr) for i, vr in enumerate(_ALL_VRS)}
_RAW_INFO = {vr.encode(): info for vr, info in _INFO.items()}
_LONG_RAW_VRS = frozenset(vr.encode() for vr in _LONG_VRS)
_UN_INFO = _INFO["UN"]
_SQ_INFO = _INFO["SQ"]
_BULK = v.BULK_THRESHOLD
_json_string = v.json_string

_LE_TAG_LENGTH = struct.Struct("<HHL")
_BE_TAG_LENGTH = struct.Struct(">HHL")
_LE_EXPLICIT = struct.Struct("<HH2sH")
_BE_EXPLICIT = struct.Struct(">HH2sH")
_LE_U32 = struct.Struct("<L")
_BE_U32 = struct.Struct(">L")
_LE_READERS = (_LE_TAG_LENGTH.unpack_from, _LE_EXPLICIT.unpack_from, _LE_U32.unpack_from)
_BE_READERS = (_BE_TAG_LENGTH.unpack_from, _BE_EXPLICIT.unpack_from, _BE_U32.unpack_from)
_LE_TAG = struct.Struct("<HH")
_BE_TAG = struct.Struct(">HH")
_LE_U16 = struct.Struct("<H")
_BE_U16 = struct.Struct(">H")

# Descriptors of LUTs and palettes are 'US or SS' in the dictionary but always read as US.
_US_DESCRIPTORS = frozenset({0x00283002, 0x00281101, 0x00281102, 0x00281103})
_CHARSET = 0x00080005
_PIXEL_REPRESENTATION = 0x00280103

TRUNCATED = "file is truncated: an element runs past the end of the file"
BAD_ITEM = "a sequence holds something other than items: the header is corrupt"
ITEM_OVERRUN = "a sequence item's elements overrun the item's length: the header is corrupt"
BAD_DELIMITER = "a sequence delimiter appears outside a sequence: the header is corrupt"
NOT_DICOM = "not a DICOM file: no DICM prefix and no parseable dataset"
BAD_DEFLATE = "the deflated dataset cannot be inflated: the file is corrupt or truncated"
EMPTY = "file is empty"

W_IMPLICIT_ITEM = "a sequence item is encoded in implicit VR inside an explicit VR dataset"
W_IMPLICIT_ELEMENT = "an element without a valid VR was read as implicit VR"
W_UNKNOWN_VR = "an element has a VR unknown to the standard and was read as UN"
W_NO_META = "no File Meta Information: the transfer syntax was inferred from the dataset"
W_VR_MISMATCH = "the dataset's VR encoding differs from the one its transfer syntax declares"
W_STRAY_DELIMITER = "an item delimiter appears outside an item and was skipped"
W_UN_KNOWN = "a known attribute is encoded with VR UN; it was read with its dictionary VR"
W_UNKNOWN_TS = "the transfer syntax is not a known one; the dataset was read by inspection"


class HeaderError(Exception):
    """The bytes are not a readable DICOM header.

    Attributes:
        reason: a fixed sentence without values.
        tag: the element being read when it failed, when known.
    """

    def __init__(self, reason: str, tag: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tag = tag


@dataclass
class ParsedHeader:
    """What the parser found in one file.

    Attributes:
        has_preamble: the file has the 128-byte preamble and 'DICM'.
        has_file_meta: the file carries group 0002 elements.
        transfer_syntax_uid: declared in the meta, else the encoding found.
        header_json: the header (meta and dataset) in the PS3.18 JSON model.
        meta: Python values of every group 0002 element (tag -> values).
        values: Python values of the wanted tags of the dataset (tag -> values; a wanted
            sequence -> the same for its first item).
        has_pixels: pixel data follows the header.
        n_private: private elements at any depth.
        warnings: fixed sentences.
    """

    has_preamble: bool
    has_file_meta: bool
    transfer_syntax_uid: str
    header_json: str
    meta: dict[int, Any]
    values: dict[int, Any]
    has_pixels: bool
    n_private: int
    warnings: set[str] = field(default_factory=set)


_META_TAGS = frozenset(range(0x00020000, 0x00020200))
_IMPLICIT_VRS: dict[int, str | None] = {}
_PRIVATE_VRS: dict[tuple[str, int], str] = {}


def dictionary_vr(tag: int) -> str | None:
    """The VR of a standard attribute (repeating groups included), or None if unknown.

    Args:
        tag: the tag as a 32-bit integer.

    Returns:
        The VR as the dictionary writes it (ambiguous ones like 'US or SS' included).
    """
    if tag in _IMPLICIT_VRS:
        return _IMPLICIT_VRS[tag]
    vr = dictionary.standard_vr(tag)
    if len(_IMPLICIT_VRS) < 100_000:
        _IMPLICIT_VRS[tag] = vr
    return vr


def _private_vr(tag: int, creators: dict[int, str] | None) -> str:
    element = tag & 0xFFFF
    if 0x0010 <= element <= 0x00FF:
        return "LO"
    if element < 0x1000 or not creators:
        return "UN"
    creator = creators.get((tag & 0xFFFF0000) | (element >> 8))
    if creator is None:
        return "UN"
    masked = tag & 0xFFFF00FF
    found = _PRIVATE_VRS.get((creator, masked))
    if found is None:
        found = dictionary.private_vr(tag, creator) or "UN"
        if len(_PRIVATE_VRS) < 100_000:
            _PRIVATE_VRS[(creator, masked)] = found
    return found


def _looks_explicit(buf: bytes, pos: int) -> bool:
    # Two upper-case letters where an explicit VR would be; a 4-byte implicit length would
    # need to exceed 16 kB to look like that (pydicom uses the same test).
    return pos + 6 <= len(buf) and 0x40 < buf[pos + 4] < 0x5B and 0x40 < buf[pos + 5] < 0x5B


class _Parser:
    __slots__ = (
        "buf",
        "n",
        "warnings",
        "n_private",
        "pixel_representation",
        "has_pixels",
        "wanted",
        "special",
        "heads",
    )

    def __init__(self, buf: bytes, warnings: set[str], wanted: frozenset[int]) -> None:
        self.buf = buf
        self.n = len(buf)
        self.warnings = warnings
        self.n_private = 0
        self.pixel_representation = 0
        self.has_pixels = False
        self.wanted = wanted
        # Elements whose Python values matter here too (never memoised): the wanted ones,
        # the character set, and the pixel representation (it resolves 'US or SS').
        self.special = wanted | {_CHARSET, _PIXEL_REPRESENTATION}
        self.heads = _HEADS

    def dataset(
        self,
        pos: int,
        end: int | None,
        little: bool,
        implicit: bool,
        text: v.Text,
        capture: dict | None,
        top: bool = False,
    ) -> tuple[list[str], int]:
        """Read elements from ``pos`` to ``end`` (None: to an item delimiter, or EOF on top).

        Returns the JSON members ('"GGGGEEEE":{...}') and the position after the dataset.
        Values of wanted tags are stored in ``capture`` (tag -> Python values; a wanted
        sequence -> the capture dict of its first item).
        """
        buf = self.buf
        n = self.n
        heads = self.heads
        wanted = self.wanted
        special = self.special
        tag_length, explicit_header, u32 = _LE_READERS if little else _BE_READERS
        raw_info = _RAW_INFO
        json_string = _json_string
        limit = n if end is None else end
        parts: list[str] = []
        append = parts.append
        creators: dict[int, str] | None = None
        memo, sequence_memo = _NO_MEMOS if implicit else _memos(wanted, little, text)
        try:
            while pos < limit:
                # An element header cut short raises struct.error: handled below.
                key = None
                start = pos
                if implicit:
                    group, elem, length = tag_length(buf, pos)
                    pos += 8
                    info = None
                else:
                    group, elem, raw_vr, length = explicit_header(buf, pos)
                    info = raw_info.get(raw_vr)
                    if info is not None and group != 0xFFFE:
                        if info[1]:
                            length = u32(buf, pos + 8)[0]
                            pos += 12
                        else:
                            pos += 8
                        if memo is not None and info[2] < _BINARY and length <= 256:
                            key = buf[start : pos + length]
                            hit = memo.get(key)
                            if hit is not None:
                                append(hit[0])
                                pos += length
                                if hit[1] is not None and capture is not None:
                                    capture[group << 16 | elem] = hit[1]
                                continue
                            nwarnings = len(self.warnings)
                    elif group == 0xFFFE or not (b"AA" <= raw_vr <= b"ZZ"):
                        group, elem, length = tag_length(buf, pos)
                        pos += 8
                        info = None
                        if group != 0xFFFE:
                            self.warnings.add(W_IMPLICIT_ELEMENT)
                    else:
                        info = _UN_INFO
                        pos += 8
                        self.warnings.add(W_UNKNOWN_VR)
                tag = group << 16 | elem
                if group == 0xFFFE:
                    if tag == _ITEM_END:
                        if end is None and not top:
                            return parts, pos
                        self.warnings.add(W_STRAY_DELIMITER)
                        continue
                    raise HeaderError(BAD_DELIMITER, tag)
                odd = group & 1
                if odd:
                    self.n_private += 1
                elif top and group == 0x7FE0 and tag in PIXEL_TAGS:
                    self.has_pixels = True
                    self._check_pixels(pos, length, little, tag)
                    return parts, pos
                sequence_implicit = implicit
                if info is None:
                    vr = (
                        _private_vr(tag, creators)
                        if odd
                        else (dictionary_vr(tag) or _group_vr(tag))
                    )
                    if len(vr) > 2:
                        vr = self._resolve_ambiguous(tag, vr)
                    info = _INFO.get(vr) or _UN_INFO
                if info is _UN_INFO:
                    vr, sequence_implicit = self._un_vr(tag, length, creators, implicit)
                    info = _INFO.get(vr) or _UN_INFO
                vr, _, kind, index, to_json, to_python, python_json = info
                head = heads.get(tag << 6 | index)
                if head is None:
                    head = _head(tag, vr, index)
                stop = pos + length
                if stop > n:
                    if length != 0xFFFFFFFF:
                        raise HeaderError(TRUNCATED, tag)
                    if kind != _SQ and self._starts_with_item(pos, little):
                        vr, _, kind, index, to_json, to_python, python_json = _SQ_INFO
                        head = heads.get(tag << 6 | index) or _head(tag, vr, index)
                    if kind == _SQ:
                        child = None
                        if capture is not None and tag in wanted:
                            child = capture[tag] = {}
                        items, pos = self.sequence(
                            pos, None, little, sequence_implicit, text, child
                        )
                        append(f'{head},"Value":[{items}]}}' if items else head + "}")
                    else:
                        pos = self._skip_fragments(pos, little, tag)
                        append(head + "}")
                    continue
                if kind == _ASCII:
                    if not length:
                        append(head + "}")
                        continue
                    raw = buf[pos:stop]
                    pos = stop
                    if tag in special:
                        values = to_python(raw, text)
                        body = python_json(values)
                        if capture is not None and tag in wanted:
                            capture[tag] = values
                        if tag == _CHARSET:
                            text = v.Text(values, self.warnings)
                            memo, sequence_memo = (
                                _NO_MEMOS if implicit else _memos(wanted, little, text)
                            )
                    else:
                        s = raw.decode("latin-1")
                        if "\\" in s:
                            body = to_json(raw, text)
                        else:
                            s = s.strip(" \x00")
                            body = json_string(s) if s else None
                elif kind == _TEXT:
                    if not length:
                        append(head + "}")
                        continue
                    raw = buf[pos:stop]
                    pos = stop
                    if tag in special or (odd and elem <= 0x00FF):
                        values = to_python(raw, text)
                        body = python_json(values)
                        if capture is not None and tag in wanted:
                            capture[tag] = values
                        if tag == _CHARSET:
                            text = v.Text(values, self.warnings)
                            memo, sequence_memo = (
                                _NO_MEMOS if implicit else _memos(wanted, little, text)
                            )
                        elif odd and 0x0010 <= elem <= 0x00FF and body is not None:
                            if creators is None:
                                creators = {}
                            creators[tag] = values[0]
                    else:
                        body = to_json(raw, text)
                elif kind == _SQ:
                    # Sequences read in implicit VR (UN) depend on more than their bytes.
                    if (
                        sequence_memo is not None
                        and not sequence_implicit
                        and length <= _SEQUENCE_MEMO_BYTES
                    ):
                        key = buf[start:stop]
                        hit = sequence_memo.get(key)
                        if hit is not None:
                            append(hit[0])
                            self.n_private += hit[2]
                            if hit[1] is not None and capture is not None:
                                capture[tag] = hit[1]
                            pos = stop
                            continue
                        nwarnings = len(self.warnings)
                        n_private = self.n_private
                    # A wanted sequence captures its first item wherever it is, so that a
                    # memoised reading serves captured and uncaptured places alike.
                    child = {} if tag in wanted else None
                    if child is not None and capture is not None:
                        capture[tag] = child
                    items, _ = self.sequence(pos, stop, little, sequence_implicit, text, child)
                    member = f'{head},"Value":[{items}]}}' if items else head + "}"
                    append(member)
                    pos = stop
                    if key is not None and len(self.warnings) == nwarnings:
                        if len(sequence_memo) >= _SEQUENCE_MEMO_SIZE:
                            sequence_memo.clear()
                        sequence_memo[key] = (member, child, self.n_private - n_private)
                    continue
                elif not length:
                    append(head + "}")
                    continue
                elif kind == _INTEGERS:
                    values = to_json(buf[pos:stop], little)
                    pos = stop
                    body = ",".join(map(str, values)) if values else None
                    if capture is not None and tag in wanted:
                        capture[tag] = values
                    if tag == _PIXEL_REPRESENTATION and top and values:
                        self.pixel_representation = values[0]
                elif kind == _BINARY:
                    pos = stop
                    if length > _BULK:
                        append(head + "}")
                    else:
                        data = v.inline_binary(buf[stop - length : stop], vr, little)
                        append(f'{head},"InlineBinary":"{data}"}}')
                    continue
                elif kind == _FLOATS:
                    values = to_json(buf[pos:stop], little)
                    pos = stop
                    body = v.floats_json(values, self.warnings)
                    if capture is not None and tag in wanted:
                        capture[tag] = values
                else:  # AT
                    values = v.attribute_tags(buf[pos:stop], little)
                    pos = stop
                    body = ",".join([f'"{t}"' for t in values]) if values else None
                member = f'{head},"Value":[{body}]}}' if body is not None else head + "}"
                append(member)
                if (
                    key is not None
                    and not odd
                    and tag not in _NOT_MEMOISED
                    and len(self.warnings) == nwarnings
                ):
                    if len(memo) >= _MEMO_SIZE:
                        memo.clear()
                    memo[key] = (member, values if tag in wanted else None)
        except struct.error:
            # Fewer bytes than an element header: zero padding after the last element of
            # the file is tolerated (pydicom stops there too), anything else is truncation.
            if not (top and end is None and not buf[pos:].strip(b"\x00")):
                raise HeaderError(TRUNCATED) from None
            return parts, n
        if end is None and not top:
            raise HeaderError(TRUNCATED)
        return parts, pos

    def sequence(
        self,
        pos: int,
        end: int | None,
        little: bool,
        implicit: bool,
        text: v.Text,
        capture: dict | None,
    ) -> tuple[str, int]:
        """Read the items of a sequence value (``end`` None: undefined length).

        Returns the JSON text of the items ('{...},{...}') and the position after them.
        Only the first item is captured.
        """
        buf = self.buf
        n = self.n
        tag_length = (_LE_TAG_LENGTH if little else _BE_TAG_LENGTH).unpack_from
        items: list[str] = []
        while end is None or pos < end:
            if pos + 8 > n:
                raise HeaderError(TRUNCATED)
            group, elem, length = tag_length(buf, pos)
            tag = group << 16 | elem
            pos += 8
            if tag == _SEQUENCE_END:
                if end is None:
                    return ",".join(items), pos
                continue
            if tag != _ITEM:
                raise HeaderError(BAD_ITEM, tag)
            item_implicit = implicit
            if (
                not implicit
                and length
                and not (pos + 6 <= n and 0x40 < buf[pos + 4] < 0x5B and 0x40 < buf[pos + 5] < 0x5B)
            ):
                item_implicit = True
                if length != _UNDEFINED or buf[pos : pos + 4] != b"\xfe\xff\x0d\xe0":
                    self.warnings.add(W_IMPLICIT_ITEM)
            item_capture = capture if not items else None
            if length == _UNDEFINED:
                members, pos = self.dataset(pos, None, little, item_implicit, text, item_capture)
            else:
                stop = pos + length
                if stop > n:
                    raise HeaderError(TRUNCATED)
                members, reached = self.dataset(
                    pos, stop, little, item_implicit, text, item_capture
                )
                if reached != stop:
                    raise HeaderError(ITEM_OVERRUN)
                pos = stop
            items.append("{" + ",".join(members) + "}")
        if end is not None and pos != end:
            raise HeaderError(ITEM_OVERRUN)
        return ",".join(items), pos

    def _un_vr(
        self, tag: int, length: int, creators: dict[int, str] | None, implicit: bool
    ) -> tuple[str, bool]:
        # PS3.5 6.2.2: UN with undefined length is a sequence in implicit VR little endian;
        # a known attribute written as UN takes its dictionary VR (pydicom does the same).
        if length == _UNDEFINED:
            return "SQ", True
        known = _private_vr(tag, creators) if (tag >> 16) & 1 else dictionary_vr(tag)
        if known is None or known == "UN" or length >= 0xFFFF:
            return "UN", implicit
        if len(known) > 2:
            known = self._resolve_ambiguous(tag, known)
        self.warnings.add(W_UN_KNOWN)
        return known, True if known == "SQ" else implicit

    def _resolve_ambiguous(self, tag: int, vr: str) -> str:
        if vr == "US or SS":
            if tag in _US_DESCRIPTORS:
                return "US"
            return "SS" if self.pixel_representation == 1 else "US"
        if "OW" in vr:
            return "OW"
        return vr.split(" or ")[0]

    def _starts_with_item(self, pos: int, little: bool) -> bool:
        if pos + 4 > self.n:
            return False
        group, elem = (_LE_TAG if little else _BE_TAG).unpack_from(self.buf, pos)
        return (group << 16 | elem) == _ITEM

    def _skip_fragments(self, pos: int, little: bool, tag: int) -> int:
        """Skip an undefined-length value made of items up to its sequence delimiter."""
        tag_length = _LE_TAG_LENGTH if little else _BE_TAG_LENGTH
        while True:
            if pos + 8 > self.n:
                raise HeaderError(TRUNCATED, tag)
            group, elem, length = tag_length.unpack_from(self.buf, pos)
            pos += 8
            item_tag = group << 16 | elem
            if item_tag == _SEQUENCE_END:
                return pos
            if item_tag != _ITEM or length == _UNDEFINED:
                raise HeaderError(BAD_ITEM, tag)
            pos += length
            if pos > self.n:
                raise HeaderError(TRUNCATED, tag)

    def _check_pixels(self, pos: int, length: int, little: bool, tag: int) -> None:
        if length == _UNDEFINED:
            self._skip_fragments(pos, little, tag)
        elif pos + length > self.n:
            raise HeaderError(TRUNCATED, tag)


_HEADS: dict[int, str] = {}
_MEMOS: dict[tuple[frozenset[int], bool, str], tuple[dict, dict]] = {}
_NO_MEMOS: tuple[None, None] = (None, None)
_MEMO_SIZE = 20_000
_SEQUENCE_MEMO_SIZE = 256
_SEQUENCE_MEMO_BYTES = 65_536
# Their values change how the elements after them are read.
_NOT_MEMOISED = frozenset({_CHARSET, _PIXEL_REPRESENTATION})


def _memos(
    wanted: frozenset[int], little: bool, text: v.Text
) -> tuple[dict[bytes, tuple], dict[bytes, tuple]] | tuple[None, None]:
    """The memos of JSON members of explicit VR elements and sequences, by encoded bytes.

    Within a series most elements (and whole sequences) repeat byte for byte from one file
    to the next. A member depends only on those bytes (tag, VR, length and value), on the
    byte order and on the character set, so the memos are kept per byte order and
    character set, and per ``wanted`` (a hit gives the captured values too). Readings that
    warned are not memoised, so that every file reports its own warnings. Bounded: a memo
    that fills up starts over.
    """
    if text.codec is None:  # ISO 2022 code extensions: decoding depends on more than bytes
        return _NO_MEMOS
    memo_key = (wanted, little, text.codec)
    memos = _MEMOS.get(memo_key)
    if memos is None:
        memos = _MEMOS[memo_key] = ({}, {})
    return memos


def _head(tag: int, vr: str, index: int) -> str:
    head = f'"{tag:08X}":{{"vr":"{vr}"'
    if len(_HEADS) < 100_000:
        _HEADS[tag << 6 | index] = head
    return head


def _group_vr(tag: int) -> str:
    # Group lengths (gggg,0000) are UL; anything else the dictionary does not know is UN.
    return "UL" if not tag & 0xFFFF else "UN"


def parse_header(data: bytes, wanted: frozenset[int] = frozenset()) -> ParsedHeader:
    """Parse the header of one DICOM file held in memory.

    Args:
        data: the whole file.
        wanted: tags whose Python values the caller needs (sequences among them capture
            their first item's wanted values).

    Returns:
        The header in the JSON model with what was found about its encoding.

    Raises:
        HeaderError: the bytes are empty, not DICOM, truncated or corrupt.
    """
    if not data:
        raise HeaderError(EMPTY)
    warnings: set[str] = set()
    has_preamble = data[128:132] == b"DICM"
    pos = 132 if has_preamble else 0
    meta: dict[int, Any] = {}
    meta_members: list[str] = []
    latin = v.Text(None, warnings)
    if data[pos : pos + 2] == b"\x02\x00":
        explicit = _looks_explicit(data, pos)
        if explicit or has_preamble:
            meta_end = _meta_end(data, pos, explicit)
            meta_parser = _Parser(data, warnings, _META_TAGS)
            meta_members, pos = meta_parser.dataset(
                pos, meta_end, True, not explicit, latin, meta, top=True
            )
            if not explicit:
                warnings.add(W_VR_MISMATCH)
    has_file_meta = bool(meta_members)
    declared = _first_text(meta, 0x00020010)
    if declared is not None and _first_text(meta, 0x00020002) == MEDIA_STORAGE_DIRECTORY:
        # Callers reject directories; there is no need to read the directory records.
        return ParsedHeader(has_preamble, has_file_meta, declared, "", meta, {}, False, 0)
    if not has_preamble and not has_file_meta and not _plausible_start(data, pos):
        raise HeaderError(NOT_DICOM)

    body = data
    if declared in DEFLATED:
        try:
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            body = inflater.decompress(data[pos:]) + inflater.flush()
        except zlib.error as exc:
            raise HeaderError(BAD_DEFLATE) from exc
        if not inflater.eof:
            raise HeaderError(BAD_DEFLATE)
        pos = 0
    little, implicit = _encoding(declared, body, pos, warnings)
    if declared is None:
        warnings.add(W_NO_META)
        declared = IMPLICIT_LITTLE if implicit else EXPLICIT_LITTLE if little else EXPLICIT_BIG
    parser = _Parser(body, warnings, wanted)
    values: dict[int, Any] = {}
    members, _ = parser.dataset(pos, None, little, implicit, latin, values, top=True)
    if not has_file_meta and not members:
        raise HeaderError(NOT_DICOM)
    return ParsedHeader(
        has_preamble,
        has_file_meta,
        declared,
        "{" + ",".join(meta_members + members) + "}",
        meta,
        values,
        parser.has_pixels,
        parser.n_private,
        warnings,
    )


def _meta_end(data: bytes, pos: int, explicit: bool) -> int:
    """Where group 0002 ends: the file meta is read while the group number is 2."""
    n = len(data)
    while pos + 8 <= n and data[pos : pos + 2] == b"\x02\x00":
        if explicit and _looks_explicit(data, pos):
            if data[pos + 4 : pos + 6] in _LONG_RAW_VRS:
                if pos + 12 > n:
                    break
                pos += 12 + _LE_U32.unpack_from(data, pos + 8)[0]
            else:
                pos += 8 + _LE_U16.unpack_from(data, pos + 6)[0]
        else:
            pos += 8 + _LE_U32.unpack_from(data, pos + 4)[0]
    return min(pos, n)


def _first_text(values: dict[int, Any], tag: int) -> str | None:
    found = values.get(tag)
    return found[0] if found and isinstance(found[0], str) else None


def _encoding(declared: str | None, body: bytes, pos: int, warnings: set[str]) -> tuple[bool, bool]:
    """(little endian, implicit VR) of the dataset: declared, checked against its first bytes."""
    explicit_found = _looks_explicit(body, pos)
    if declared == IMPLICIT_LITTLE:
        little, implicit = True, True
    elif declared == EXPLICIT_BIG:
        little, implicit = False, False
    elif declared is None:
        little = _first_group(body, pos, True) <= _first_group(body, pos, False)
        return little, not explicit_found
    else:
        little, implicit = True, False
        if declared not in DEFLATED and not declared.startswith("1.2.840.10008.1.2"):
            warnings.add(W_UNKNOWN_TS)
    if pos + 6 <= len(body) and implicit == explicit_found:
        # pydicom follows what it finds in the first element, with a warning.
        warnings.add(W_VR_MISMATCH)
        implicit = not explicit_found
    return little, implicit


def _first_group(data: bytes, pos: int, little: bool) -> int:
    if pos + 2 > len(data):
        return 0xFFFF
    return (_LE_U16 if little else _BE_U16).unpack_from(data, pos)[0]


def _plausible_start(data: bytes, pos: int) -> bool:
    # A bare dataset starts with a low, even group (0008 almost always) in either byte order.
    if pos + 8 > len(data):
        return False
    return any(
        (group := _first_group(data, pos, little)) <= 0x0010 and not group & 1
        for little in (True, False)
    )
