"""De-identification of DICOM headers, and the rule that keeps burned-in annotation out.

:func:`deidentify_header` applies the DICOM PS3.15 Basic Application Level Confidentiality
Profile (Table E.1-1, Basic Profile column, as :mod:`quality.dicom_profile` holds it) with
the Retain Longitudinal Temporal Information with Modified Dates Option (PS3.15 E.3.6) to a
header in the DICOM JSON model (PS3.18 F.2: keys of eight hex digits, elements
``{"vr": ..., "Value": [...]}``, sequence items nested as objects, person names as
``{"Alphabetic": ...}``, binary values as ``InlineBinary``). It is a pure function.

How the actions are applied:

* Private attributes (odd groups), their private creators included, are removed at every
  level; so are group lengths ``(gggg,0000)``, which describe an encoding the JSON model
  does not have.
* ``X`` removes the attribute; a sequence with ``X`` goes whole.
* ``Z`` keeps the attribute with no value.
* ``D`` replaces the value with one dummy of the VR: ``ANONYMIZED`` for text, ``0`` for
  numbers, ``000000`` for times, ``000Y`` for ages, no value for binary VRs (a header holds
  no bulk data) and a remapped UID for UI. A sequence with ``D`` (Content Sequence, ...) is
  replaced by a structural dummy: its items are de-identified by the same rules, and in
  them, at any depth, free text (LT, ST, UT: an SR's Text Value, which the table does not
  list) becomes ``ANONYMIZED`` too; codes, numbers, remapped UIDs and shifted dates stay,
  which is what keeps an SR tree readable.
* Compound actions take the most protective choice that leaves a usable header: ``X/Z``,
  ``X/D``, ``X/Z/D`` and ``X/Z/U*`` remove; ``Z/D`` empties. Research headers are not
  required to stay IOD-conformant, so the conformance escape of the compound codes is not
  needed.
* ``U``, and every UI value of a kept attribute, becomes :func:`remap_uid` of the original
  unless it is a DICOM-defined UID (root ``1.2.840.10008``, or pydicom's UID dictionary).
  UIDs that name a kind of thing rather than an instance (SOP classes, transfer syntaxes,
  coding schemes, context groups, mapping resources, the implementation class) are shared
  by every patient's data and are kept as they are.
* Dates: the Modified Dates option replaces the Basic Profile action of every DA and DT
  attribute: the value is moved by the person's ``shift_days``, wherever the attribute
  sits. A DT keeps only its moved date: its time of day and UTC offset would give back
  what the profile takes from the TM attributes (Study Time ``Z``, Series Time ``X/D``,
  Acquisition Time ``X/Z``, ...) and from Timezone Offset From UTC (``X``). A value that
  is not a full date (``YYYY`` or ``YYYYMM``, or not a date at all) cannot be moved by a
  number of days and loses its value. Patient's Birth Date is the exception: emptied
  (``Z``), as the option does not cover it. Times (TM) follow the Basic Profile; a
  whole-day shift leaves the time of kept attributes unchanged.
* The file meta group 0002 keeps its version, SOP class, transfer syntax and implementation
  class and version; Media Storage SOP Instance UID is remapped (``U``); the application
  entity titles, presentation addresses and private information of the transfer are
  removed, as Station Name is.
* Attributes the table does not list are kept (with their UIDs remapped and dates moved);
  ``BulkDataURI`` references are dropped, as they can name storage locations.
* The result records what was done: Patient Identity Removed ``YES``, De-identification
  Method, De-identification Method Code Sequence (DCM 113100 Basic Application
  Confidentiality Profile, 113107 Retain Longitudinal Temporal Information Modified Dates
  Option) and Longitudinal Temporal Information Modified ``MODIFIED``, replacing any earlier
  values of these attributes.

Burned-in annotation (:func:`excluded_expr`): the views describe instances whose pixels or
documents may later be released, so an instance whose pixels may show identifying text is
left out of them. Excluded are instances that state Burned In Annotation (0028,0301)
``YES`` or any value other than ``YES``/``NO``; where the attribute is absent, instances of
the modalities in :data:`PRESUMED_BURNED_IN` and of the Secondary Capture SOP classes, and
instances without a modality. The presumed modalities are those whose equipment
customarily prints demographics into the image and whose IODs do not require the
attribute: ultrasound (US: name, ID, date and institution in the scan image), endoscopy
(ES: video overlays), external-camera photography (XC: faces, wristbands, labels),
secondary capture (SC, OT: screenshots of other systems' screens, whatever the modality
says), hard copy (HC: scanned film with printed demographics) and documents (DOC: reports
with names). Instances without pixels and not documents (SR, KO, PR, ...) carry no
pixels to burn text into and are kept. A file that states ``NO`` is trusted.
"""

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import polars as pl
from pydicom.uid import UID_dictionary

from quality.dicom_profile import profile_action

DICOM_UID_ROOT = "1.2.840.10008."

PRESUMED_BURNED_IN: frozenset[str] = frozenset({"DOC", "ES", "HC", "OT", "SC", "US", "XC"})
"""Modalities presumed to carry burned-in annotation when the instance does not say."""

SECONDARY_CAPTURE_SOP_CLASSES: frozenset[str] = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    }
)
"""Secondary Capture storage SOP classes, presumed burned in whatever their modality."""

PATIENT_BIRTH_DATE = "00100030"
DEID_METHOD = (
    "DICOM PS3.15 Basic Application Confidentiality Profile",
    "Retain Longitudinal Temporal Information Modified Dates Option",
)
"""Values of De-identification Method (0012,0063): LO, so each at most 64 characters."""
DEID_METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)
"""DCM codes of De-identification Method Code Sequence (0012,0064), CID 7050."""

_TEXT_DUMMY = "ANONYMIZED"
_TAG = re.compile(r"[0-9A-Fa-f]{8}")
_DATE = re.compile(r"(\d{4})\.?(\d{2})\.?(\d{2})")
_DATETIME = re.compile(r"(\d{8})(\d{0,6}(?:\.\d{1,6})?)([+-]\d{4})?")
_TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "SH", "ST", "UC", "UR", "UT"})
_FREE_TEXT_VRS = frozenset({"LT", "ST", "UT"})
_NUMBER_VRS = frozenset({"DS", "FD", "FL", "IS", "SL", "SS", "SV", "UL", "US", "UV"})
_FILE_META_KEPT = frozenset(
    {"00020001", "00020002", "00020003", "00020010", "00020012", "00020013"}
)
_KIND_UIDS = frozenset(
    {
        "00020002",  # Media Storage SOP Class UID
        "00020010",  # Transfer Syntax UID
        "00020012",  # Implementation Class UID
        "00041510",  # Referenced SOP Class UID in File
        "00041512",  # Referenced Transfer Syntax UID in File
        "00080016",  # SOP Class UID
        "0008001A",  # Related General SOP Class UID
        "0008001B",  # Original Specialized SOP Class UID
        "0008010C",  # Coding Scheme UID
        "00080117",  # Context UID
        "00080118",  # Mapping Resource UID
        "00081150",  # Referenced SOP Class UID
    }
)
_RESOLVED = {
    "X": "X",
    "Z": "Z",
    "D": "D",
    "U": "U",
    "Z/D": "Z",
    "X/Z": "X",
    "X/D": "X",
    "X/Z/D": "X",
    "X/Z/U*": "X",
}


def remap_uid(uid: str, key: bytes) -> str:
    """A UID's keyed replacement: ``2.25.`` and a 128-bit integer, at most 44 characters.

    The integer is the HMAC-SHA256 of the UID under ``key``, cut to 128 bits and marked as a
    version 8 (custom) UUID, so the result is a well-formed UUID-derived UID (PS3.5 B.2).
    The same UID and key always give the same result; without the key it cannot be
    reversed or recomputed.

    Args:
        uid: the original UID (trailing NUL or space padding is ignored).
        key: the audience's UID key.

    Returns:
        The replacement UID.

    Raises:
        ValueError: when ``key`` is empty.
    """
    if not key:
        raise ValueError("remapping UIDs needs a non-empty key; set the audience's UID key")
    digest = bytearray(
        hmac.new(key, b"uid:" + uid.rstrip("\x00 ").encode(), hashlib.sha256).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x80
    digest[8] = (digest[8] & 0x3F) | 0x80
    return f"2.25.{int.from_bytes(digest, 'big')}"


def is_dicom_uid(uid: str) -> bool:
    """Whether a UID is defined by the DICOM standard (and so identifies no one).

    Args:
        uid: a UID.

    Returns:
        True for UIDs under the DICOM root or in pydicom's UID dictionary.
    """
    value = uid.rstrip("\x00 ")
    return value.startswith(DICOM_UID_ROOT) or value in UID_dictionary


def deidentify_header(header: Mapping[str, Any], *, shift_days: int, uid_key: bytes) -> dict:
    """Apply the Basic Profile with modified dates to one header in the DICOM JSON model.

    See the module docstring for each action. The input is not modified.

    Args:
        header: the header (file meta group included), as PS3.18 F.2 JSON.
        shift_days: the person's date shift in days.
        uid_key: the audience's UID key (see :func:`remap_uid`).

    Returns:
        A new header, keys in tag order, with the de-identification method attributes.

    Raises:
        ValueError: when ``uid_key`` is empty, or the header is not a DICOM JSON object
            (a key that is not eight hex digits, an element without a VR).
    """
    if not uid_key:
        raise ValueError("remapping UIDs needs a non-empty key; set the audience's UID key")
    result = _dataset(header, shift_days, uid_key, top=True)
    result.update(_method_attributes())
    return dict(sorted(result.items()))


def _dataset(
    items: Mapping[str, Any], shift: int, key: bytes, *, top: bool, in_dummy: bool = False
) -> dict:
    if not isinstance(items, Mapping):
        raise ValueError("a DICOM JSON dataset must be an object")
    result: dict[str, Any] = {}
    for raw_tag, element in items.items():
        if not isinstance(raw_tag, str) or not _TAG.fullmatch(raw_tag):
            raise ValueError("a DICOM JSON key must be eight hex digits")
        if not isinstance(element, Mapping) or not isinstance(element.get("vr"), str):
            raise ValueError("a DICOM JSON element must be an object with a VR")
        tag = raw_tag.upper()
        group, number = int(tag[:4], 16), int(tag[4:], 16)
        if group % 2 == 1 or number == 0:
            continue
        if top and group == 0x0002 and tag not in _FILE_META_KEPT:
            continue
        kept = _element(tag, element, shift, key, in_dummy)
        if kept is not None:
            result[tag] = kept
    return result


def _element(
    tag: str, element: Mapping[str, Any], shift: int, key: bytes, in_dummy: bool
) -> dict | None:
    vr = element["vr"]
    if vr in ("DA", "DT"):
        if tag == PATIENT_BIRTH_DATE:
            return {"vr": vr}
        return _with_values(vr, _shifted(vr, element.get("Value"), shift))
    action = profile_action(tag)
    resolved = _RESOLVED[action] if action is not None else None
    if resolved == "X":
        return None
    if resolved == "Z":
        return {"vr": vr}
    if resolved == "D":
        return _dummy(vr, element, shift, key)
    if resolved == "U":
        if vr != "UI":
            return None
        return _with_values(vr, _remapped(element.get("Value"), key))
    return _kept(tag, vr, element, shift, key, in_dummy)


def _kept(
    tag: str, vr: str, element: Mapping[str, Any], shift: int, key: bytes, in_dummy: bool
) -> dict:
    if vr == "SQ":
        return _with_values(vr, _items(element.get("Value"), shift, key, in_dummy))
    if vr == "UI" and tag not in _KIND_UIDS:
        return _with_values(vr, _remapped(element.get("Value"), key))
    if in_dummy and vr in _FREE_TEXT_VRS and "Value" in element:
        return {"vr": vr, "Value": [_TEXT_DUMMY]}
    return {k: v for k, v in element.items() if k in ("vr", "Value", "InlineBinary")}


def _dummy(vr: str, element: Mapping[str, Any], shift: int, key: bytes) -> dict:
    if "Value" not in element and "InlineBinary" not in element:
        return {"vr": vr}
    if vr == "SQ":
        return _with_values(vr, _items(element.get("Value"), shift, key, in_dummy=True))
    if vr == "UI":
        return _with_values(vr, _remapped(element.get("Value"), key))
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": _TEXT_DUMMY}]}
    if vr in _TEXT_VRS:
        return {"vr": vr, "Value": [_TEXT_DUMMY]}
    if vr in _NUMBER_VRS:
        return {"vr": vr, "Value": [0]}
    if vr == "TM":
        return {"vr": vr, "Value": ["000000"]}
    if vr == "AS":
        return {"vr": vr, "Value": ["000Y"]}
    return {"vr": vr}


def _with_values(vr: str, values: list | None) -> dict:
    return {"vr": vr} if not values else {"vr": vr, "Value": values}


def _items(values: Any, shift: int, key: bytes, in_dummy: bool) -> list | None:
    if values is None:
        return None
    if not isinstance(values, list):
        raise ValueError("a DICOM JSON sequence value must be a list of objects")
    return [_dataset(item, shift, key, top=False, in_dummy=in_dummy) for item in values]


def _remapped(values: Any, key: bytes) -> list | None:
    """Every UID remapped (DICOM-defined ones kept); None when a value is not a string."""
    if not isinstance(values, list):
        return None
    out: list[str | None] = []
    for value in values:
        if value is None:
            out.append(None)
        elif not isinstance(value, str):
            return None
        elif is_dicom_uid(value):
            out.append(value.rstrip("\x00 "))
        else:
            out.append(remap_uid(value, key))
    return out


def _shifted(vr: str, values: Any, shift: int) -> list | None:
    """Every date moved by ``shift`` days; None (no value) when one cannot be moved."""
    if not isinstance(values, list):
        return None
    move = shift_da if vr == "DA" else shift_dt
    out: list[str | None] = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        moved = move(value, shift) if isinstance(value, str) else None
        if moved is None:
            return None
        out.append(moved)
    return out


def shift_da(value: str, days: int) -> str | None:
    """A DA value moved by whole days.

    Args:
        value: ``YYYYMMDD`` (or the ACR-NEMA ``YYYY.MM.DD``), padding ignored.
        days: the shift.

    Returns:
        ``YYYYMMDD``, or None when the value is not a full date or leaves years 1-9999.
    """
    match = _DATE.fullmatch(value.strip())
    if match is None:
        return None
    moved = _moved(match.group(1), match.group(2), match.group(3), days)
    return None if moved is None else _da(moved)


def shift_dt(value: str, days: int) -> str | None:
    """A DT value reduced to its date, moved by whole days (see the module docstring).

    Args:
        value: ``YYYYMMDD[HH[MM[SS[.F]]]][&ZZXX]``, padding ignored.
        days: the shift.

    Returns:
        ``YYYYMMDD`` (a valid DT), or None when the value has no full date part.
    """
    match = _DATETIME.fullmatch(value.strip())
    if match is None:
        return None
    day = match.group(1)
    moved = _moved(day[:4], day[4:6], day[6:], days)
    if moved is None:
        return None
    return _da(moved)


def _moved(year: str, month: str, day: str, days: int) -> date | None:
    try:
        return date(int(year), int(month), int(day)) + timedelta(days=days)
    except (ValueError, OverflowError):
        return None


def _da(value: date) -> str:
    return f"{value.year:04d}{value.month:02d}{value.day:02d}"


def _method_attributes() -> dict[str, dict]:
    codes = [
        {
            "00080100": {"vr": "SH", "Value": [code]},
            "00080102": {"vr": "SH", "Value": ["DCM"]},
            "00080104": {"vr": "LO", "Value": [meaning]},
        }
        for code, meaning in DEID_METHOD_CODES
    ]
    return {
        "00120062": {"vr": "CS", "Value": ["YES"]},
        "00120063": {"vr": "LO", "Value": list(DEID_METHOD)},
        "00120064": {"vr": "SQ", "Value": codes},
        "00280303": {"vr": "CS", "Value": ["MODIFIED"]},
    }


def excluded_expr(
    *,
    burned_in: str = "burned_in_annotation",
    modality: str = "modality",
    sop_class_uid: str = "sop_class_uid",
) -> pl.Expr:
    """True for instances the burned-in rule leaves out of the research views.

    See the module docstring for the rule. Values are compared after trimming white space
    and upper-casing; an empty string counts as absent.

    Args:
        burned_in: the column holding Burned In Annotation (0028,0301).
        modality: the column holding Modality (0008,0060).
        sop_class_uid: the column holding SOP Class UID (0008,0016).

    Returns:
        A Boolean expression, never null.
    """
    flag = _normalised(burned_in)
    kind = _normalised(modality)
    presumed = (
        kind.is_null()
        | kind.is_in(sorted(PRESUMED_BURNED_IN)).fill_null(False)
        | pl.col(sop_class_uid)
        .str.strip_chars()
        .is_in(sorted(SECONDARY_CAPTURE_SOP_CLASSES))
        .fill_null(False)
    )
    return (
        pl.when(flag == "NO")
        .then(False)
        .when(flag.is_null())
        .then(presumed)
        .otherwise(True)
        .alias("excluded")
    )


def _normalised(column: str) -> pl.Expr:
    value = pl.col(column).str.strip_chars().str.to_uppercase()
    return pl.when(value.str.len_chars() > 0).then(value)
