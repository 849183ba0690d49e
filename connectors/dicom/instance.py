"""One DICOM file's bytes -> one ``instances`` row (a plain tuple), or a rejection.

This is the work a pool worker does per file, so it returns plain Python values in
``INSTANCE_COLUMNS`` order; the parent builds the frame with the explicit schema.
"""

import hashlib
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from connectors.dicom import dictionary
from connectors.dicom import values as v
from connectors.dicom.parse import MEDIA_STORAGE_DIRECTORY, NOT_DICOM, HeaderError, parse_header

DICOMDIR = "DICOMDIR (Media Storage Directory): an index of other files, not an instance"
NO_SOP_INSTANCE = "no SOP Instance UID (0008,0018): not a DICOM composite instance"

W_SOP_CLASS_FROM_META = "SOPClassUID is absent; taken from MediaStorageSOPClassUID of the meta"
W_SOP_INSTANCE_MISMATCH = "MediaStorageSOPInstanceUID of the file meta differs from SOPInstanceUID"

_SOP_CLASS = 0x00080016
_SOP_INSTANCE = 0x00080018
_MEDIA_SOP_CLASS = 0x00020002
_MEDIA_SOP_INSTANCE = 0x00020003
_DIRECTORY_RECORDS = 0x00041220
_SHARED_GROUPS = 0x52009229
_PER_FRAME_GROUPS = 0x52009230
_PIXEL_MEASURES = 0x00289110
_PLANE_ORIENTATION = 0x00209116
_PLANE_POSITION = 0x00209113

_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


class InstanceRejected(Exception):
    """The file is not an instance this connector loads.

    Attributes:
        locator: ``file`` or ``element:(gggg,eeee)``.
        reason: a fixed sentence without values.
    """

    def __init__(self, locator: str, reason: str) -> None:
        super().__init__(reason)
        self.locator = locator
        self.reason = reason


# (column, tag, keyword, kind) of the columns read straight from one attribute.
_PLAIN: tuple[tuple[str, int, str, str], ...] = (
    ("study_instance_uid", 0x0020000D, "StudyInstanceUID", "uid"),
    ("series_instance_uid", 0x0020000E, "SeriesInstanceUID", "uid"),
    ("frame_of_reference_uid", 0x00200052, "FrameOfReferenceUID", "uid"),
    ("patient_id", 0x00100020, "PatientID", "str"),
    ("issuer_of_patient_id", 0x00100021, "IssuerOfPatientID", "str"),
    ("accession_number", 0x00080050, "AccessionNumber", "str"),
    ("patient_sex", 0x00100040, "PatientSex", "str"),
    ("patient_birth_date", 0x00100030, "PatientBirthDate", "date"),
    ("patient_age", 0x00101010, "PatientAge", "str"),
    ("study_date", 0x00080020, "StudyDate", "date"),
    ("study_time", 0x00080030, "StudyTime", "str"),
    ("series_date", 0x00080021, "SeriesDate", "date"),
    ("series_time", 0x00080031, "SeriesTime", "str"),
    ("content_date", 0x00080023, "ContentDate", "date"),
)
_PLAIN_2: tuple[tuple[str, int, str, str], ...] = (
    ("study_id", 0x00200010, "StudyID", "str"),
    ("study_description", 0x00081030, "StudyDescription", "str"),
    ("series_description", 0x0008103E, "SeriesDescription", "str"),
    ("protocol_name", 0x00181030, "ProtocolName", "str"),
    ("modality", 0x00080060, "Modality", "str"),
    ("series_number", 0x00200011, "SeriesNumber", "int"),
    ("instance_number", 0x00200013, "InstanceNumber", "int"),
    ("acquisition_number", 0x00200012, "AcquisitionNumber", "int"),
    ("body_part_examined", 0x00180015, "BodyPartExamined", "str"),
    ("laterality", 0x00200060, "Laterality", "str"),
    ("patient_position", 0x00185100, "PatientPosition", "str"),
    ("manufacturer", 0x00080070, "Manufacturer", "str"),
    ("manufacturer_model_name", 0x00081090, "ManufacturerModelName", "str"),
    ("station_name", 0x00081010, "StationName", "str"),
    ("institution_name", 0x00080080, "InstitutionName", "str"),
    ("device_serial_number", 0x00181000, "DeviceSerialNumber", "str"),
    ("software_versions", 0x00181020, "SoftwareVersions", "str"),
    ("rows", 0x00280010, "Rows", "int"),
    ("columns", 0x00280011, "Columns", "int"),
    ("bits_allocated", 0x00280100, "BitsAllocated", "int"),
    ("bits_stored", 0x00280101, "BitsStored", "int"),
    ("samples_per_pixel", 0x00280002, "SamplesPerPixel", "int"),
    ("photometric_interpretation", 0x00280004, "PhotometricInterpretation", "str"),
    ("number_of_frames", 0x00280008, "NumberOfFrames", "int"),
)
# (column, tag, keyword, kind, functional group sequences to look in, in order).
_FUNCTIONAL: tuple[tuple[str, int, str, str, tuple[int, ...]], ...] = (
    ("pixel_spacing", 0x00280030, "PixelSpacing", "floats", (_PIXEL_MEASURES,)),
    ("slice_thickness", 0x00180050, "SliceThickness", "float", (_PIXEL_MEASURES,)),
    ("spacing_between_slices", 0x00180088, "SpacingBetweenSlices", "float", (_PIXEL_MEASURES,)),
    ("image_orientation_patient", 0x00200037, "ImageOrientationPatient", "floats", (
        _PLANE_ORIENTATION,
    )),
    ("image_position_patient", 0x00200032, "ImagePositionPatient", "floats", (_PLANE_POSITION,)),
)  # fmt: skip
_PLAIN_3: tuple[tuple[str, int, str, str], ...] = (
    ("image_type", 0x00080008, "ImageType", "strs"),
    ("kvp", 0x00180060, "KVP", "float"),
    ("magnetic_field_strength", 0x00180087, "MagneticFieldStrength", "float"),
    ("repetition_time", 0x00180080, "RepetitionTime", "float"),
    ("echo_time", 0x00180081, "EchoTime", "float"),
    ("contrast_bolus_agent", 0x00180010, "ContrastBolusAgent", "str"),
    ("convolution_kernel", 0x00181210, "ConvolutionKernel", "str"),
)
_ACQUISITION_DATETIME = 0x0008002A
_ACQUISITION_DATE = 0x00080022
_ACQUISITION_TIME = 0x00080032
_BURNED_IN = 0x00280301
_LOSSY = 0x00282110
_CHARSET = 0x00080005

WANTED: frozenset[int] = frozenset(
    [t for _, t, _, _ in _PLAIN + _PLAIN_2 + _PLAIN_3]
    + [t for _, t, _, _, _ in _FUNCTIONAL]
    + [_SHARED_GROUPS, _PER_FRAME_GROUPS, _PIXEL_MEASURES, _PLANE_ORIENTATION, _PLANE_POSITION]
    + [_SOP_CLASS, _SOP_INSTANCE, _DIRECTORY_RECORDS, _CHARSET, _BURNED_IN, _LOSSY]
    + [_ACQUISITION_DATETIME, _ACQUISITION_DATE, _ACQUISITION_TIME]
)
"""Tags whose Python values the row needs (the parser captures only these)."""


def invalid(keyword: str, what: str) -> str:
    """The fixed warning for a typed value that does not parse.

    Args:
        keyword: the attribute's DICOM keyword.
        what: what it should have been ('date', 'integer', ...).

    Returns:
        A sentence naming the attribute, never its value.
    """
    return f"{keyword} is not a valid {what}; the column is null"


def invalid_uid(keyword: str) -> str:
    """The fixed warning for a UID that breaks the UID rules (kept as written).

    Args:
        keyword: the attribute's DICOM keyword.

    Returns:
        A sentence naming the attribute, never its value.
    """
    return f"{keyword} is not a valid UID (digits and dots, at most 64 characters); kept as written"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):  # a person name written where text was expected
        return value.get("Alphabetic") or None
    return repr(value)


def _string(found: Any) -> str | None:
    if not isinstance(found, list):
        return None
    texts = [t for t in map(_text, found) if t is not None]
    return "\\".join(texts) if texts else None


def _integer(found: Any, keyword: str, warnings: set[str]) -> int | None:
    if not isinstance(found, list) or not found or found[0] is None:
        return None
    value = found[0]
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    warnings.add(invalid(keyword, "integer"))
    return None


def _float(found: Any, keyword: str, warnings: set[str]) -> float | None:
    if not isinstance(found, list) or not found or found[0] is None:
        return None
    value = found[0]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    warnings.add(invalid(keyword, "number"))
    return None


def _floats(found: Any, keyword: str, warnings: set[str]) -> list[float | None] | None:
    if not isinstance(found, list) or not found:
        return None
    if all(x is None or isinstance(x, int | float) for x in found):
        return [None if x is None else float(x) for x in found]
    warnings.add(invalid(keyword, "list of numbers"))
    return None


def _strings(found: Any) -> list[str | None] | None:
    if not isinstance(found, list) or not found:
        return None
    return [_text(x) for x in found]


def _date(found: Any, keyword: str, warnings: set[str]) -> date | None:
    text = _string(found)
    if text is None:
        return None
    parsed = v.parse_da(text)
    if parsed is None:
        warnings.add(invalid(keyword, "date"))
    return parsed


def _uid(found: Any, keyword: str, warnings: set[str]) -> str | None:
    text = _string(found)
    if text is not None and (len(text) > 64 or not _UID.fullmatch(text)):
        warnings.add(invalid_uid(keyword))
    return text


_CONVERT: dict[str, Callable[[Any, str, set[str]], Any]] = {
    "str": lambda found, keyword, warnings: _string(found),
    "strs": lambda found, keyword, warnings: _strings(found),
    "uid": _uid,
    "int": _integer,
    "float": _float,
    "floats": _floats,
    "date": _date,
}


def _functional(values: dict[int, Any], tag: int, macros: tuple[int, ...]) -> Any:
    # Enhanced multi-frame objects keep these in functional groups: the shared group holds
    # what every frame has in common, else the first frame's group holds the first frame's.
    found = values.get(tag)
    if found:
        return found
    for groups in (_SHARED_GROUPS, _PER_FRAME_GROUPS):
        group = values.get(groups)
        if not isinstance(group, dict):
            continue
        for macro in macros:
            item = group.get(macro)
            if isinstance(item, dict) and item.get(tag):
                return item[tag]
    return None


def _acquisition_datetime(values: dict[int, Any], warnings: set[str]) -> datetime | None:
    text = _string(values.get(_ACQUISITION_DATETIME))
    if text is not None:
        parsed = v.parse_dt(text)
        if parsed is None:
            warnings.add(invalid("AcquisitionDateTime", "date and time"))
        return parsed
    day = _date(values.get(_ACQUISITION_DATE), "AcquisitionDate", warnings)
    if day is None:
        return None
    time_text = _string(values.get(_ACQUISITION_TIME))
    if time_text is None:
        return datetime(day.year, day.month, day.day)
    clock = v.parse_tm(time_text)
    if clock is None:
        warnings.add(invalid("AcquisitionTime", "time"))
        return None
    return datetime(day.year, day.month, day.day, *clock)


def sop_class_name(uid: str | None) -> str | None:
    """The registered name of a SOP class UID.

    Args:
        uid: the SOP Class UID.

    Returns:
        Its name in the DICOM registry (pydicom's UID dictionary), or None when the UID is
        not a registered SOP class.
    """
    if uid is None:
        return None
    return dictionary.tables().sop_classes.get(uid)


def _locator(error: HeaderError) -> str:
    if error.tag is None:
        return "file"
    return f"element:({error.tag >> 16:04X},{error.tag & 0xFFFF:04X})"


def instance_row(data: bytes, source_file: str) -> tuple:
    """Read one file's bytes into an ``instances`` row.

    Args:
        data: the whole file.
        source_file: the value of the ``source_file`` column.

    Returns:
        The row's values in ``INSTANCE_COLUMNS`` order.

    Raises:
        InstanceRejected: the file is empty, not DICOM, truncated, corrupt, a DICOMDIR or
            has no SOP Instance UID.
    """
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        header = parse_header(data, WANTED)
    except HeaderError as exc:
        raise InstanceRejected(_locator(exc), exc.reason) from None
    values = header.values
    meta = header.meta
    meta_class = _string(meta.get(_MEDIA_SOP_CLASS))
    sop_class = _string(values.get(_SOP_CLASS))
    if MEDIA_STORAGE_DIRECTORY in (meta_class, sop_class) or _DIRECTORY_RECORDS in values:
        raise InstanceRejected("file", DICOMDIR)
    warnings = header.warnings
    sop_instance = _uid(values.get(_SOP_INSTANCE), "SOPInstanceUID", warnings)
    if sop_instance is None:
        bare = not header.has_preamble and not header.has_file_meta
        raise InstanceRejected("file", NOT_DICOM if bare and sop_class is None else NO_SOP_INSTANCE)
    if sop_class is None and meta_class is not None:
        warnings.add(W_SOP_CLASS_FROM_META)
        sop_class = meta_class
    elif sop_class is not None:
        _uid(values.get(_SOP_CLASS), "SOPClassUID", warnings)
    meta_instance = _string(meta.get(_MEDIA_SOP_INSTANCE))
    if meta_instance is not None and meta_instance != sop_instance:
        warnings.add(W_SOP_INSTANCE_MISMATCH)

    get = values.get
    convert = _CONVERT
    plain = [convert[kind](get(tag), keyword, warnings) for _, tag, keyword, kind in _PLAIN]
    plain_2 = [convert[kind](get(tag), keyword, warnings) for _, tag, keyword, kind in _PLAIN_2]
    functional = [
        convert[kind](_functional(values, tag, macros), keyword, warnings)
        for _, tag, keyword, kind, macros in _FUNCTIONAL
    ]
    plain_3 = [convert[kind](get(tag), keyword, warnings) for _, tag, keyword, kind in _PLAIN_3]
    acquired = _acquisition_datetime(values, warnings)
    burned_in = _string(get(_BURNED_IN))
    if burned_in is not None and burned_in not in ("YES", "NO"):
        warnings.add("BurnedInAnnotation is neither YES nor NO; the column is null")
        burned_in = None
    charset = get(_CHARSET)
    return (
        source_file,
        sha256,
        len(data),
        header.has_preamble,
        header.has_file_meta,
        header.transfer_syntax_uid,
        sop_class,
        sop_class_name(sop_class),
        sop_instance,
        *plain,
        acquired,
        *plain_2,
        *functional,
        *plain_3,
        burned_in,
        _string(get(_LOSSY)),
        "\\".join(x or "" for x in charset) if isinstance(charset, list) else None,
        header.has_pixels,
        header.n_private,
        header.header_json,
        sorted(warnings),
    )
