"""Builders of small DICOM files, byte by byte, for the cases real files rarely show.

Writing the bytes directly (rather than through pydicom) lets a test hold exactly the
encoding it is about: a wrong value, a cut-short element, a VR switch inside a sequence.
"""

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SOP_INSTANCE = "1.2.826.0.1.3680043.10.1.1"
STUDY = "1.2.826.0.1.3680043.10.1.2"
SERIES = "1.2.826.0.1.3680043.10.1.3"

_LONG = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}


def pad(value: bytes, vr: str) -> bytes:
    """Pad a value to even length as PS3.5 requires (NUL for UI and binary, else space)."""
    if len(value) % 2:
        value += b"\x00" if vr in ("UI", "OB", "UN") else b" "
    return value


def element(
    tag: int, vr: str, value: bytes, *, implicit: bool = False, little: bool = True
) -> bytes:
    """One data element (the value padded to even length unless it is an SQ body)."""
    if vr != "SQ":
        value = pad(value, vr)
    order = "<" if little else ">"
    head = struct.pack(f"{order}HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + struct.pack(f"{order}L", len(value)) + value
    if vr in _LONG:
        return head + vr.encode() + b"\x00\x00" + struct.pack(f"{order}L", len(value)) + value
    return head + vr.encode() + struct.pack(f"{order}H", len(value)) + value


def undefined(tag: int, vr: str, body: bytes, *, implicit: bool = False) -> bytes:
    """An undefined-length element (SQ or UN) closed by a sequence delimiter."""
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    head += struct.pack("<L", 0xFFFFFFFF) if implicit else vr.encode() + b"\x00\x00\xff\xff\xff\xff"
    return head + body + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def item(body: bytes, *, defined: bool = True, little: bool = True) -> bytes:
    """A sequence item of defined or undefined length."""
    order = "<" if little else ">"
    if defined:
        return struct.pack(f"{order}HHL", 0xFFFE, 0xE000, len(body)) + body
    return (
        struct.pack(f"{order}HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
        + body
        + b"\xfe\xff\x0d\xe0"
        + (b"\x00" * 4)
    )


def text(tag: int, vr: str, value: str, **kwargs: bool) -> bytes:
    """A text element (Latin-1)."""
    return element(tag, vr, value.encode("latin-1"), **kwargs)


def us(tag: int, *values: int, little: bool = True, implicit: bool = False) -> bytes:
    """A US element."""
    order = "<" if little else ">"
    return element(
        tag, "US", struct.pack(f"{order}{len(values)}H", *values), little=little, implicit=implicit
    )


def identity(*, implicit: bool = False, little: bool = True, sop: str = SOP_INSTANCE) -> bytes:
    """SOP Class, SOP Instance, Study, Series UIDs and Modality, in tag order."""
    kw = {"implicit": implicit, "little": little}
    return (
        text(0x00080016, "UI", CT_IMAGE, **kw)
        + text(0x00080018, "UI", sop, **kw)
        + text(0x00080060, "CS", "CT", **kw)
        + text(0x0020000D, "UI", STUDY, **kw)
        + text(0x0020000E, "UI", SERIES, **kw)
    )


def part10(
    dataset: bytes,
    *,
    transfer_syntax: str = EXPLICIT_LE,
    sop_class: str = CT_IMAGE,
    sop: str = SOP_INSTANCE,
    preamble: bool = True,
) -> bytes:
    """Preamble, 'DICM' and explicit little endian file meta around an encoded dataset."""
    meta = (
        element(0x00020001, "OB", b"\x00\x01")
        + text(0x00020002, "UI", sop_class)
        + text(0x00020003, "UI", sop)
        + text(0x00020010, "UI", transfer_syntax)
    )
    meta = element(0x00020000, "UL", struct.pack("<L", len(meta))) + meta
    start = b"\x00" * 128 + b"DICM" if preamble else b""
    return start + meta + dataset


WriteFile = Callable[..., Path]


@pytest.fixture
def write_file(tmp_path: Path) -> WriteFile:
    """Write bytes to a file under tmp_path (folders created) and return its path."""

    def write(data: bytes, name: str = "image.dcm") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    return write
