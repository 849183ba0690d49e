"""One planned imaging study rendered as DICOM Part-10 files: headers, pixels and encoding.

``render_study`` turns a ``StudyPlan`` into the study's files. Every value comes from the
plan and from generators seeded with ``plan.seed``, so a study's bytes depend on its plan
alone. UIDs are ``2.25.`` followed by a version-8 UUID taken from a SHA-256 digest of the
cohort seed and the study's, series' and instance's place in the roster, so they are
deterministic, unique and never reused across seeds.

Encoding goes through pydicom's element writer, but each element is encoded once per study
or series rather than once per file: a CT series repeats about eighty header elements over
its slices and only five change. The bytes are exactly what ``pydicom.dcmwrite`` writes for
the same dataset.
"""

import hashlib
import random
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    BasicTextSRStorage,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    DigitalXRayImageStorageForPresentation,
    EnhancedMRImageStorage,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    SecondaryCaptureImageStorage,
)

from connectors.synth.dicom_catalog import (
    Department,
    Device,
    Procedure,
    SeriesPlan,
    kernel_name,
)

IMPLEMENTATION_CLASS_UID = "2.25.223289924471432128093417914342718226370"
"""The file meta Implementation Class UID of the synthetic writer (a fixed UUID)."""
IMPLEMENTATION_VERSION = "BIOFED_SYNTH_1"
PRIVATE_CREATOR = "BIOFED SYNTH 1.0"
"""The private creator of the (0009,xx) block that local files carry."""
PRIVATE_GROUP = 0x0009

_REPORT_SERIES = 998
_DOSE_SERIES = 997


def uid(seed: int, *parts: object) -> str:
    """A deterministic ``2.25`` UID for one object of the cohort drawn from ``seed``.

    Args:
        seed: the cohort seed.
        parts: the object's place, for instance ``(person index, "study", 3)``.

    Returns:
        ``2.25.`` and the decimal form of a version-8 UUID derived from the parts.
    """
    text = "/".join(map(str, ("biofed", seed, "imaging-uid", *parts)))
    bits = int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "big")
    # RFC 9562 version 8 (custom) and variant 10 bits.
    bits = (bits & ~(0xF << 76) | 0x8 << 76) & ~(0x3 << 62) | 0x2 << 62
    return f"2.25.{bits}"


def file_name(seed: int, *parts: object) -> str:
    """An opaque file name for one instance: no identifier can be read from it.

    Args:
        seed: the cohort seed.
        parts: the instance's place, as for ``uid`` (but hashed in another namespace, so
            the name does not reveal the UID either).

    Returns:
        16 upper-case hex digits and ``.dcm``.
    """
    text = "/".join(map(str, ("biofed", seed, "imaging-file", *parts)))
    return hashlib.sha256(text.encode()).hexdigest()[:16].upper() + ".dcm"


@dataclass(frozen=True)
class Patient:
    """The patient as one PACS knows them.

    Attributes:
        patient_id: PatientID.
        issuer: IssuerOfPatientID.
        name: PatientName (``Family^Given^Middle``).
        birth_date: PatientBirthDate.
        sex: PatientSex: ``M``, ``F``, ``O`` or "" when unknown.
        mrn: the EHR MRN the RIS attached, written to the private block; None leaves the
            private block out (files from outside the federation).
    """

    patient_id: str
    issuer: str
    name: str
    birth_date: date
    sex: str
    mrn: str | None


@dataclass(frozen=True)
class StudyPlan:
    """Everything that decides one study's files.

    Attributes:
        seed: the cohort seed (UIDs and file names).
        key: the study's place in the roster, e.g. ``(12, 3)``; part of every UID.
        draws: the seed of the study's own random draws (acquisition details, pixels).
        patient: who the study is of.
        department: where it was done.
        procedure: what was done.
        accession: AccessionNumber.
        start: StudyDate/StudyTime (local).
        finish: the latest a series may start (the end of the encounter, for ordered ones).
        utc_offset: TimezoneOffsetFromUTC (``-0500``).
        referring: ReferringPhysicianName.
        operator: OperatorsName.
        radiologist: who signs the report, when there is one.
        location: where the order came from, written to the private block.
        ordered_at: when it was ordered, aware of its UTC offset (private block), or None.
        laterality: ``R`` or ``L`` for a paired body part, else "".
        report: whether the study carries a Basic Text SR report.
        dose_capture: whether the CT console saved its dose screen (burned-in text).
        syntax: the transfer syntax of every file, overriding the device's, or None.
    """

    seed: int
    key: tuple[object, ...]
    draws: int
    patient: Patient
    department: Department
    procedure: Procedure
    accession: str
    start: datetime
    finish: datetime
    utc_offset: str
    referring: str
    operator: str
    radiologist: str
    location: str
    ordered_at: datetime | None
    laterality: str = ""
    report: bool = False
    dose_capture: bool = False
    syntax: UID | None = None

    @property
    def device(self) -> Device:
        """The device that performed the procedure."""
        return self.department.devices[self.procedure.family]


@dataclass(frozen=True)
class RenderedFile:
    """One written instance.

    Attributes:
        name: opaque file name.
        data: the Part-10 bytes.
        sop_class: SOP Class UID.
        modality: Modality.
        frames: frames of pixel data (0 for documents).
        burned_in: whether BurnedInAnnotation is ``YES``.
    """

    name: str
    data: bytes
    sop_class: str
    modality: str
    frames: int
    burned_in: bool


# --- value formatting ------------------------------------------------------------------


def _ds(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _da(day: date) -> str:
    return day.strftime("%Y%m%d")


def _tm(moment: datetime) -> str:
    return moment.strftime("%H%M%S")


def _dt(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S")


def patient_age(birth: date, day: date) -> str:
    """PatientAge (``AS``) on a day: in days under a month, months under two years, else years.

    Args:
        birth: the date of birth.
        day: the day of the study.

    Returns:
        For instance ``015D``, ``013M`` or ``074Y``.
    """
    days = (day - birth).days
    years = day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))
    if years >= 2:
        return f"{min(years, 999):03d}Y"
    months = (day.year - birth.year) * 12 + day.month - birth.month - (day.day < birth.day)
    if months >= 1:
        return f"{months:03d}M"
    return f"{max(days, 0):03d}D"


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


# --- encoding ------------------------------------------------------------------------


_Encoding = tuple[bool, bool]
"""(implicit VR, little endian)"""


def _encoding_of(syntax: UID) -> _Encoding:
    if syntax == ImplicitVRLittleEndian:
        return True, True
    if syntax == ExplicitVRBigEndian:
        return False, False
    return False, True


class Layer:
    """Header elements shared by several files, encoded once per transfer syntax."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._encoded: dict[tuple[_Encoding, str], dict[int, bytes]] = {}

    def encoded(self, encoding: _Encoding, charset: str) -> dict[int, bytes]:
        """The layer's elements encoded, computed once per encoding and character set.

        Args:
            encoding: (implicit VR, little endian).
            charset: the SpecificCharacterSet value text is encoded in.

        Returns:
            Tag (as an int) to the element's bytes.
        """
        key = (encoding, charset)
        if key not in self._encoded:
            self._encoded[key] = _encode_elements(self.dataset, encoding, charset)
        return self._encoded[key]


def _encode_elements(dataset: Dataset, encoding: _Encoding, charset: str) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for elem in dataset:
        buffer = DicomBytesIO()
        buffer.is_implicit_VR, buffer.is_little_endian = encoding
        write_data_element(buffer, elem, charset)
        out[int(elem.tag)] = buffer.getvalue()
    return out


Element = tuple[int, str, str | bytes]
"""An element of one file: tag, VR and value (text of an ASCII VR, or bytes of a binary one)."""

_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT",
                       "UV"})


def _encode_element(tag: int, vr: str, value: str | bytes, encoding: _Encoding) -> bytes:
    """One element with a single-byte text or binary value, encoded as pydicom does."""
    implicit, little = encoding
    data = value.encode("ascii") if isinstance(value, str) else value
    if len(data) % 2:
        data += b"\x00" if vr in ("UI", "OB", "OW") else b" "
    order = "<" if little else ">"
    group, element = tag >> 16, tag & 0xFFFF
    if implicit:
        return struct.pack(f"{order}HHI", group, element, len(data)) + data
    if vr in _LONG_VRS:
        head = struct.pack(f"{order}HH2sHI", group, element, vr.encode(), 0, len(data))
    else:
        head = struct.pack(f"{order}HH2sH", group, element, vr.encode(), len(data))
    return head + data


def _file_meta(sop_class: str, sop_instance: str, syntax: str) -> bytes:
    """The preamble, ``DICM`` and the file meta group (always explicit VR little endian)."""
    encoding = (False, True)
    elements = b"".join(
        _encode_element(tag, vr, value, encoding)
        for tag, vr, value in (
            (0x00020001, "OB", b"\x00\x01"),
            (0x00020002, "UI", sop_class),
            (0x00020003, "UI", sop_instance),
            (0x00020010, "UI", syntax),
            (0x00020012, "UI", IMPLEMENTATION_CLASS_UID),
            (0x00020013, "SH", IMPLEMENTATION_VERSION),
        )
    )
    length = _encode_element(0x00020000, "UL", struct.pack("<I", len(elements)), encoding)
    return b"\x00" * 128 + b"DICM" + length + elements


def encode_part10(
    layers: Sequence[Layer], own: Sequence[Element], syntax: UID, sop_class: str
) -> bytes:
    """A Part-10 file of the elements of ``layers`` and ``own`` (later ones win).

    Gives the bytes ``pydicom.dcmwrite(..., enforce_file_format=True)`` writes for the
    merged dataset, with a file meta of the SOP class and instance, ``syntax``, and this
    writer's implementation UID and version.

    Args:
        layers: shared elements, outermost first; SpecificCharacterSet, when present, must
            be in one of them.
        own: the file's own elements; SOPInstanceUID (0008,0018) must be one.
        syntax: the transfer syntax.
        sop_class: the SOP Class UID (written to the file meta).

    Returns:
        The file's bytes.
    """
    merged: dict[int, bytes] = {}
    encoding = _encoding_of(syntax)
    charset = next(
        (str(layer.dataset.SpecificCharacterSet) for layer in layers
         if "SpecificCharacterSet" in layer.dataset),
        "ISO_IR 6",
    )
    for layer in layers:
        merged.update(layer.encoded(encoding, charset))
    sop_instance = ""
    for tag, vr, value in own:
        merged[tag] = _encode_element(tag, vr, value, encoding)
        if tag == 0x00080018:
            sop_instance = str(value)
    body = b"".join(merged[tag] for tag in sorted(merged))
    if syntax == DeflatedExplicitVRLittleEndian:
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        body = compressor.compress(body) + compressor.flush()
        if len(body) % 2:
            body += b"\x00"
    return _file_meta(sop_class, sop_instance, syntax) + body


# --- pixels --------------------------------------------------------------------------


_GRID_CACHE: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grid(rows: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates scaled to [-1, 1]."""
    key = (rows, columns)
    if key not in _GRID_CACHE:
        y, x = np.mgrid[0:rows, 0:columns].astype(np.float64)
        _GRID_CACHE[key] = (2 * y / (rows - 1) - 1, 2 * x / (columns - 1) - 1)
    return _GRID_CACHE[key]


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, a: float, b: float):
    return ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1.0


def _cross_section(body_part: str, size: int, depth: float, contrast: bool) -> np.ndarray:
    """Tissue density in HU of an idealised axial section; ``depth`` in [0, 1] moves along z."""
    y, x = _grid(size, size)
    hu = np.full((size, size), -1000.0)
    if body_part == "HEAD":
        scale = 0.95 - 0.35 * depth**2
        hu[_ellipse(x, y, 0, 0, 0.80 * scale, 0.92 * scale)] = 900.0
        hu[_ellipse(x, y, 0, 0, 0.70 * scale, 0.82 * scale)] = 35.0
        hu[_ellipse(x, y, 0, 0, 0.10, 0.25) & (depth < 0.6)] = 8.0
    elif body_part == "CHEST":
        hu[_ellipse(x, y, 0, 0.05, 0.92, 0.62)] = 40.0
        lung = 0.30 + 0.08 * np.sin(np.pi * depth)
        hu[_ellipse(x, y, -0.42, 0.0, lung, 0.45)] = -850.0
        hu[_ellipse(x, y, 0.42, 0.0, lung, 0.45)] = -850.0
        hu[_ellipse(x, y, 0.05, -0.05, 0.18, 0.20)] = 45.0
        hu[_ellipse(x, y, 0, 0.50, 0.10, 0.10)] = 700.0
    else:
        hu[_ellipse(x, y, 0, 0.05, 0.92, 0.70)] = -90.0
        hu[_ellipse(x, y, 0, 0.05, 0.84, 0.62)] = 40.0
        hu[_ellipse(x, y, -0.40, -0.10, 0.35 - 0.2 * depth, 0.35)] = 110.0 if contrast else 60.0
        hu[_ellipse(x, y, -0.45, 0.30, 0.10, 0.14)] = 180.0 if contrast else 30.0
        hu[_ellipse(x, y, 0.45, 0.30, 0.10, 0.14)] = 180.0 if contrast else 30.0
        hu[_ellipse(x, y, 0, 0.52, 0.11, 0.11)] = 650.0
    return hu


def _ct_pixels(plan: StudyPlan, series: SeriesPlan, index: int, noise: np.random.Generator):
    size = 32
    if series.kind == "localizer":
        y, x = _grid(size, size)
        hu = np.where(np.abs(x) < 0.75 - 0.1 * y**2, 200.0, -1000.0)
    else:
        depth = index / max(series.images - 1, 1)
        hu = _cross_section(plan.procedure.body_part, size, depth, bool(plan.procedure.contrast))
    hu = hu + noise.normal(0.0, 12.0, hu.shape)
    return np.clip(np.rint(hu + 1024.0), 0, 4095).astype(np.uint16)


# Relative MR signal of (background, fat/scalp, soft tissue/grey matter, fluid) per contrast.
_MR_SIGNAL = {
    "T1": (0.0, 0.95, 0.45, 0.12),
    "T2": (0.0, 0.55, 0.40, 0.95),
    "FLAIR": (0.0, 0.60, 0.45, 0.05),
    "PROTON_DENSITY": (0.0, 0.15, 0.55, 0.90),
}


def _mr_pixels(plan: StudyPlan, series: SeriesPlan, index: int, noise: np.random.Generator):
    size = 32
    y, x = _grid(size, size)
    assert series.sequence is not None
    signal = _MR_SIGNAL[series.sequence[7]]
    depth = index / max(series.images - 1, 1)
    image = np.full((size, size), signal[0])
    scale = 1.0 - 0.25 * (2 * depth - 1) ** 2
    image[_ellipse(x, y, 0, 0, 0.85 * scale, 0.90 * scale)] = signal[1]
    image[_ellipse(x, y, 0, 0, 0.75 * scale, 0.80 * scale)] = signal[2]
    image[_ellipse(x, y, 0, 0, 0.15, 0.30)] = signal[3]
    image = np.abs(image * 1800.0 + noise.normal(0.0, 25.0, image.shape))
    return np.clip(np.rint(image), 0, 4095).astype(np.uint16)


def _xr_pixels(plan: StudyPlan, series: SeriesPlan, monochrome1: bool, noise):
    rows, columns = 48, 40
    y, x = _grid(rows, columns)
    image = np.full((rows, columns), 150.0)
    if plan.procedure.body_part == "CHEST":
        image[_ellipse(x, y, 0, 0.1, 0.95, 0.95)] = 2300.0
        if series.view in ("PA", "AP"):
            image[_ellipse(x, y, -0.45, -0.05, 0.33, 0.70)] = 900.0
            image[_ellipse(x, y, 0.45, -0.05, 0.33, 0.70)] = 900.0
            image[_ellipse(x, y, 0.08, 0.25, 0.28, 0.30)] = 2600.0
        else:
            image[_ellipse(x, y, 0, -0.05, 0.60, 0.70)] = 1000.0
    else:
        image[np.abs(x) < 0.45] = 1500.0
        image[_ellipse(x, y, 0, -0.45, 0.35, 0.50)] = 3000.0
        image[_ellipse(x, y, 0, 0.45, 0.30, 0.50)] = 3000.0
    image = image + noise.normal(0.0, 40.0, image.shape)
    image = np.clip(np.rint(image), 0, 4095)
    if monochrome1:
        image = 4095 - image
    return image.astype(np.uint16)


def _dose_screen_pixels(noise: np.random.Generator) -> np.ndarray:
    """A console dose screen: dark background with lines of bright 'text' burned in."""
    image = np.full((48, 64), 16, dtype=np.uint8)
    for row in range(4, 44, 6):
        length = int(noise.integers(20, 60))
        glyphs = noise.integers(0, 2, size=length).astype(bool)
        image[row : row + 3, 2 : 2 + length][:, glyphs] = 235
    return image


def _pixel_data(array: np.ndarray, syntax: UID) -> Element:
    if array.dtype.itemsize == 1:
        return 0x7FE00010, "OB", array.tobytes()
    order = ">" if syntax == ExplicitVRBigEndian else "<"
    return 0x7FE00010, "OW", array.astype(f"{order}u2").tobytes()


# --- headers -------------------------------------------------------------------------
#
# A file's header is the union of layers: the equipment (per department and device), the
# protocol of a series (per device, procedure and series), the study, the series, and the
# file's own elements. Equipment and protocol layers are the same for every study that uses
# them, so they are built and encoded once per process.


@dataclass
class _Instance:
    """One file's own elements, and its pixels (encoded once the transfer syntax is known)."""

    sop_uid: str
    number: int
    own: list[Element]
    pixels: np.ndarray | None
    frames: int
    burned_in: bool = False

    @classmethod
    def of(
        cls, sop_uid: str, number: int | None, pixels: np.ndarray | None, frames: int,
        *extra: Element, burned_in: bool = False,
    ) -> "_Instance":
        own: list[Element] = [(0x00080018, "UI", sop_uid)]
        if number is not None:
            own.append((0x00200013, "IS", str(number)))
        return cls(sop_uid, number or 1, [*own, *extra], pixels, frames, burned_in)


@dataclass
class _Series:
    """A rendered series: its layers (protocol and series) and its instances."""

    number: int
    layers: tuple[Layer, ...]
    uid: str
    sop_class: str
    modality: str
    instances: list[_Instance] = field(default_factory=list)
    syntax: UID | None = None


_SHARED: dict[tuple[object, ...], Layer] = {}


def _shared(key: tuple[object, ...], build: Callable[[], Dataset]) -> Layer:
    layer = _SHARED.get(key)
    if layer is None:
        layer = _SHARED[key] = Layer(build())
    return layer


def _equipment_layer(department: Department, device: Device) -> Layer:
    def build() -> Dataset:
        ds = Dataset()
        ds.SpecificCharacterSet = device.charset
        ds.Manufacturer = device.manufacturer
        ds.InstitutionName = department.name
        ds.InstitutionAddress = department.address
        ds.StationName = device.station
        ds.InstitutionalDepartmentName = "Radiology"
        ds.ManufacturerModelName = device.model
        ds.DeviceSerialNumber = device.serial
        ds.SoftwareVersions = device.software
        return ds

    return _shared(("equipment", department.name, device.station), build)


def _study_layer(plan: StudyPlan, study_uid: str) -> Layer:
    procedure, patient = plan.procedure, plan.patient
    ds = Dataset()
    ds.StudyDate = _da(plan.start)
    ds.StudyTime = _tm(plan.start)
    ds.AccessionNumber = plan.accession
    ds.ReferringPhysicianName = plan.referring
    ds.TimezoneOffsetFromUTC = plan.utc_offset
    ds.StudyDescription = procedure.display
    ds.ProcedureCodeSequence = DicomSequence([_code(procedure.code, "LN", procedure.display)])
    ds.OperatorsName = plan.operator
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.IssuerOfPatientID = patient.issuer
    ds.PatientBirthDate = _da(patient.birth_date)
    ds.PatientSex = patient.sex
    ds.PatientAge = patient_age(patient.birth_date, plan.start.date())
    ds.StudyInstanceUID = study_uid
    ds.StudyID = str(random.Random(plan.draws).randint(1000, 99999))
    if patient.mrn is not None:
        block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
        block.add_new(0x01, "LO", patient.mrn)
        block.add_new(0x02, "LO", plan.location)
        if plan.ordered_at is not None:
            block.add_new(0x03, "DT", plan.ordered_at.strftime("%Y%m%d%H%M%S%z"))
    return Layer(ds)


def _protocol_common(
    ds: Dataset, procedure: Procedure, description: str, modality: str, sop_class: str,
    image_type: Sequence[str],
) -> None:
    ds.ImageType = list(image_type)
    ds.SOPClassUID = sop_class
    ds.Modality = modality
    ds.SeriesDescription = description
    ds.BodyPartExamined = procedure.body_part
    ds.ProtocolName = procedure.display
    ds.AcquisitionNumber = 1


def _series_layer(plan: StudyPlan, series_uid: str, number: int, when: datetime) -> Dataset:
    ds = Dataset()
    ds.SeriesDate = _da(when)
    ds.AcquisitionDate = _da(when)
    ds.ContentDate = _da(when)
    ds.SeriesTime = _tm(when)
    ds.AcquisitionTime = _tm(when)
    ds.ContentTime = _tm(when)
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = number
    if plan.laterality:
        ds.Laterality = plan.laterality
    return ds


def _image_pixel(ds: Dataset, rows: int, columns: int, photometric: str, bits: int) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16 if bits > 8 else 8
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0


_AXES = {
    "axial": ((1, 0, 0, 0, 1, 0), (0.0, 0.0, -1.0)),
    "sagittal": ((0, 1, 0, 0, 0, -1), (1.0, 0.0, 0.0)),
    "coronal": ((1, 0, 0, 0, 0, -1), (0.0, 1.0, 0.0)),
}
"""Row and column direction cosines, and the direction successive slices step along."""

_TABLE_Z = {"HEAD": -40.0, "CHEST": -180.0, "ABDOMEN": -380.0, "KNEE": -820.0, "LSPINE": -420.0}
_SLICE_AXIS = {"axial": 2, "sagittal": 0, "coronal": 1}
_MATRIX = 32
"""Rows and columns of CT and MR images."""


def _slice_positions(
    plan: StudyPlan, series: SeriesPlan, spacing: float, pixel: float
) -> list[tuple[float, float, float]]:
    """Each slice's ImagePositionPatient (LPS, mm), centred on the body part."""
    cosines, step = _AXES[series.orientation]
    half = pixel * _MATRIX / 2
    centre_x = {"R": -95.0, "L": 95.0}.get(plan.laterality, 0.0)
    centre = np.array((centre_x, 0.0, _TABLE_Z.get(plan.procedure.body_part, 0.0)))
    corner = centre - half * np.array(cosines[:3], float) - half * np.array(cosines[3:], float)
    count = series.images
    return [
        tuple(float(v) for v in corner + (index - (count - 1) / 2) * spacing * np.array(step))
        for index in range(count)
    ]


def _position(position: Sequence[float]) -> str:
    return "\\".join(_ds(v) for v in position)


def _ct_series(
    plan: StudyPlan, series: SeriesPlan, number: int, when: datetime, frame_uid: str,
    rng: random.Random,
) -> _Series:
    device, procedure = plan.device, plan.procedure
    localizer = series.kind == "localizer"
    pixel = procedure.fov * (1.6 if localizer else 1.0) / _MATRIX

    def protocol() -> Dataset:
        ds = Dataset()
        image_type = ("ORIGINAL", "PRIMARY", "LOCALIZER" if localizer else "AXIAL")
        _protocol_common(ds, procedure, series.description, "CT", CTImageStorage, image_type)
        ds.ContrastBolusAgent = "" if localizer else procedure.contrast
        if procedure.contrast and not localizer:
            ds.ContrastBolusRoute = "IV"
        ds.SliceThickness = _ds(0.6 if localizer else series.thickness)
        ds.DataCollectionDiameter = "500"
        ds.ReconstructionDiameter = _ds(pixel * _MATRIX)
        ds.DistanceSourceToDetector = "1085.6"
        ds.DistanceSourceToPatient = "595"
        ds.GantryDetectorTilt = "0"
        ds.RotationDirection = "CW"
        ds.FilterType = "FLAT" if localizer else "BODY FILTER"
        ds.FocalSpots = "1.2"
        if not localizer:
            ds.ConvolutionKernel = kernel_name(device, procedure.body_part)
        ds.PatientPosition = "HFS"
        ds.PositionReferenceIndicator = ""
        _image_pixel(ds, _MATRIX, _MATRIX, "MONOCHROME2", 12)
        ds.PixelSpacing = [_ds(pixel), _ds(pixel)]
        center, width = {"HEAD": (40, 80), "CHEST": (-600, 1500)}.get(
            procedure.body_part, (40, 400)
        )
        ds.WindowCenter = str(center)
        ds.WindowWidth = str(width)
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.ImageOrientationPatient = [_ds(v) for v in _AXES[series.orientation][0]]
        return ds

    series_uid = uid(plan.seed, *plan.key, "series", number)
    ds = _series_layer(plan, series_uid, number, when)
    if procedure.contrast and not localizer:
        ds.ContrastBolusVolume = _ds(rng.choice((80.0, 90.0, 100.0)))
    head = procedure.body_part == "HEAD"
    ds.KVP = _ds(120.0 if localizer or head else rng.choice((100.0, 120.0)))
    ds.TableHeight = _ds(rng.randint(140, 180))
    ds.ExposureTime = str(rng.randint(500, 1000))
    ds.XRayTubeCurrent = str(35 if localizer else rng.randint(150, 350))
    ds.Exposure = str(rng.randint(30, 300))
    if not localizer:
        ds.CTDIvol = round(rng.uniform(45.0, 60.0) if head else rng.uniform(6.0, 14.0), 2)
    ds.FrameOfReferenceUID = frame_uid
    key = ("ct", device.station, procedure.key, number)
    layers = (_shared(key, protocol), Layer(ds))
    out = _Series(number, layers, series_uid, CTImageStorage, "CT")
    noise = np.random.default_rng(rng.getrandbits(64))
    positions = _slice_positions(plan, series, series.thickness, pixel)
    for index, position in enumerate(positions):
        extra = [(0x00200032, "DS", _position(position))]
        if not localizer:
            extra.append((0x00201041, "DS", _ds(position[2])))
        sop_uid = uid(plan.seed, *plan.key, "series", number, index + 1)
        pixels = _ct_pixels(plan, series, index, noise)
        out.instances.append(_Instance.of(sop_uid, index + 1, pixels, 1, *extra))
    return out


def _mr_sequence(series: SeriesPlan) -> tuple[str, str, float, float, float, int, int, str]:
    if series.sequence is None:
        raise ValueError("an MR series needs its sequence parameters")
    return series.sequence


def _mr_protocol_common(ds: Dataset, plan: StudyPlan) -> None:
    ds.MagneticFieldStrength = _ds(plan.device.field_strength)
    ds.PatientPosition = "FFS" if plan.procedure.body_part == "KNEE" else "HFS"
    ds.PositionReferenceIndicator = ""
    ds.ReceiveCoilName = {"HEAD": "Head_32", "KNEE": "Knee_18"}.get(
        plan.procedure.body_part, "Spine_32"
    )
    ds.TransmitCoilName = "Body"


def _mr_series(
    plan: StudyPlan, series: SeriesPlan, number: int, when: datetime, frame_uid: str,
    rng: random.Random,
) -> _Series:
    device, procedure = plan.device, plan.procedure
    scanning, variant, tr, te, ti, flip, train, contrast = _mr_sequence(series)
    pixel = procedure.fov / _MATRIX

    def protocol() -> Dataset:
        ds = Dataset()
        _protocol_common(ds, procedure, series.description, "MR", MRImageStorage,
                         ("ORIGINAL", "PRIMARY", "M", "ND"))
        _mr_protocol_common(ds, plan)
        ds.ScanningSequence = scanning.split("\\")
        ds.SequenceVariant = variant.split("\\")
        ds.ScanOptions = ["SAT1"] if contrast == "PROTON_DENSITY" else ["PFP"]
        ds.MRAcquisitionType = "2D"
        ds.SliceThickness = _ds(series.thickness)
        ds.EchoTime = _ds(te)
        if ti:
            ds.InversionTime = _ds(ti)
        ds.NumberOfAverages = "1"
        ds.ImagingFrequency = _ds(42.577478 * device.field_strength)
        ds.ImagedNucleus = "1H"
        ds.EchoNumbers = "1"
        ds.SpacingBetweenSlices = _ds(series.thickness * 1.1)
        ds.EchoTrainLength = str(train)
        ds.PercentSampling = "100"
        ds.PercentPhaseFieldOfView = "81.25"
        ds.PixelBandwidth = "220"
        ds.FlipAngle = str(flip)
        ds.InPlanePhaseEncodingDirection = "ROW" if series.orientation == "axial" else "COL"
        _image_pixel(ds, _MATRIX, _MATRIX, "MONOCHROME2", 12)
        ds.PixelSpacing = [_ds(pixel), _ds(pixel)]
        ds.WindowCenter = "700"
        ds.WindowWidth = "1400"
        ds.ImageOrientationPatient = [_ds(v) for v in _AXES[series.orientation][0]]
        return ds

    series_uid = uid(plan.seed, *plan.key, "series", number)
    ds = _series_layer(plan, series_uid, number, when)
    ds.FrameOfReferenceUID = frame_uid
    ds.RepetitionTime = _ds(round(tr * rng.uniform(0.95, 1.05), 1))
    ds.SAR = _ds(round(rng.uniform(0.3, 2.5), 3))
    key = ("mr", device.station, procedure.key, number)
    layers = (_shared(key, protocol), Layer(ds))
    out = _Series(number, layers, series_uid, MRImageStorage, "MR")
    noise = np.random.default_rng(rng.getrandbits(64))
    axis = _SLICE_AXIS[series.orientation]
    for index, position in enumerate(
        _slice_positions(plan, series, series.thickness * 1.1, pixel)
    ):
        extra = [
            (0x00200032, "DS", _position(position)),
            (0x00201041, "DS", _ds(position[axis])),
        ]
        sop_uid = uid(plan.seed, *plan.key, "series", number, index + 1)
        pixels = _mr_pixels(plan, series, index, noise)
        out.instances.append(_Instance.of(sop_uid, index + 1, pixels, 1, *extra))
    return out


def _enhanced_mr_series(
    plan: StudyPlan, series: SeriesPlan, number: int, when: datetime, frame_uid: str,
    rng: random.Random,
) -> _Series:
    """The series as one Enhanced MR object: shared and per-frame functional groups."""
    _, _, tr, te, _, flip, train, contrast = _mr_sequence(series)
    pixel = plan.procedure.fov / _MATRIX
    series_uid = uid(plan.seed, *plan.key, "series", number)
    ds = _series_layer(plan, series_uid, number, when)
    _protocol_common(ds, plan.procedure, series.description, "MR", EnhancedMRImageStorage,
                     ("ORIGINAL", "PRIMARY", contrast, "NONE"))
    _mr_protocol_common(ds, plan)
    ds.FrameOfReferenceUID = frame_uid
    ds.AcquisitionDateTime = _dt(when)
    ds.ContentQualification = "PRODUCT"
    ds.ResonantNucleus = "1H"
    ds.KSpaceFiltering = "NONE"
    ds.ApplicableSafetyStandardAgency = "IEC"
    ds.ImageComments = series.description
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.ComplexImageComponent = "MAGNITUDE"
    ds.AcquisitionContrast = contrast
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    _image_pixel(ds, _MATRIX, _MATRIX, "MONOCHROME2", 12)
    ds.NumberOfFrames = series.images

    dimension_uid = uid(plan.seed, *plan.key, "series", number, "dimensions")
    organization = Dataset()
    organization.DimensionOrganizationUID = dimension_uid
    ds.DimensionOrganizationSequence = DicomSequence([organization])
    indices = []
    # Frames are indexed by stack and position in the stack (Frame Content Sequence).
    for pointer in (0x00209056, 0x00209057):
        index = Dataset()
        index.DimensionIndexPointer = pointer
        index.FunctionalGroupPointer = 0x00209111
        index.DimensionOrganizationUID = dimension_uid
        indices.append(index)
    ds.DimensionIndexSequence = DicomSequence(indices)

    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [_ds(pixel), _ds(pixel)]
    measures.SliceThickness = _ds(series.thickness)
    measures.SpacingBetweenSlices = _ds(series.thickness * 1.1)
    shared.PixelMeasuresSequence = DicomSequence([measures])
    plane = Dataset()
    plane.ImageOrientationPatient = [_ds(v) for v in _AXES[series.orientation][0]]
    shared.PlaneOrientationSequence = DicomSequence([plane])
    timing = Dataset()
    timing.RepetitionTime = _ds(round(tr * rng.uniform(0.95, 1.05), 1))
    timing.FlipAngle = str(flip)
    timing.EchoTrainLength = train
    shared.MRTimingAndRelatedParametersSequence = DicomSequence([timing])
    echo = Dataset()
    echo.EffectiveEchoTime = float(te)
    shared.MREchoSequence = DicomSequence([echo])
    frame_type = Dataset()
    frame_type.FrameType = ["ORIGINAL", "PRIMARY", contrast, "NONE"]
    frame_type.PixelPresentation = "MONOCHROME"
    frame_type.VolumetricProperties = "VOLUME"
    frame_type.VolumeBasedCalculationTechnique = "NONE"
    frame_type.ComplexImageComponent = "MAGNITUDE"
    frame_type.AcquisitionContrast = contrast
    shared.MRImageFrameTypeSequence = DicomSequence([frame_type])
    voi = Dataset()
    voi.WindowCenter = "700"
    voi.WindowWidth = "1400"
    shared.FrameVOILUTSequence = DicomSequence([voi])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])

    per_frame = []
    positions = _slice_positions(plan, series, series.thickness * 1.1, pixel)
    for index, position in enumerate(positions):
        content = Dataset()
        content.FrameAcquisitionDateTime = _dt(when + timedelta(seconds=index))
        content.StackID = "1"
        content.InStackPositionNumber = index + 1
        content.DimensionIndexValues = [1, index + 1]
        place = Dataset()
        place.ImagePositionPatient = [_ds(v) for v in position]
        item = Dataset()
        item.FrameContentSequence = DicomSequence([content])
        item.PlanePositionSequence = DicomSequence([place])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)

    out = _Series(number, (Layer(ds),), series_uid, EnhancedMRImageStorage, "MR")
    noise = np.random.default_rng(rng.getrandbits(64))
    frames = np.stack([_mr_pixels(plan, series, i, noise) for i in range(series.images)])
    sop_uid = uid(plan.seed, *plan.key, "series", number, 1)
    out.instances.append(_Instance.of(sop_uid, 1, frames, series.images))
    return out


_XR_ROWS, _XR_COLUMNS = 48, 40


def _xr_series(
    plan: StudyPlan, series: SeriesPlan, number: int, when: datetime, rng: random.Random
) -> _Series:
    device, procedure = plan.device, plan.procedure
    digital = device.modality == "DX"
    sop_class = DigitalXRayImageStorageForPresentation if digital else (
        ComputedRadiographyImageStorage
    )
    pixel = procedure.fov / _XR_ROWS
    chest = procedure.body_part == "CHEST"
    upright = chest and series.view != "AP"

    def protocol() -> Dataset:
        ds = Dataset()
        _protocol_common(ds, procedure, series.description, device.modality, sop_class,
                         ("ORIGINAL", "PRIMARY"))
        ds.ViewPosition = series.view
        ds.DistanceSourceToDetector = "1800" if upright else "1000"
        ds.ImagerPixelSpacing = [_ds(pixel), _ds(pixel)]
        ds.PatientOrientation = {
            "PA": ["L", "F"], "AP": ["R", "F"], "LL": ["A", "F"], "LAT": ["A", "F"],
        }[series.view]
        # Computed radiography readers hand out inverted (MONOCHROME1) images.
        _image_pixel(ds, _XR_ROWS, _XR_COLUMNS, "MONOCHROME2" if digital else "MONOCHROME1",
                     12)
        ds.PixelSpacing = [_ds(pixel), _ds(pixel)]
        ds.WindowCenter = "2048"
        ds.WindowWidth = "4096"
        ds.BurnedInAnnotation = "NO"
        if digital:
            ds.PresentationIntentType = "FOR PRESENTATION"
            ds.DetectorType = "SCINTILLATOR"
            ds.DetectorID = f"{device.station}-D1"
            ds.DistanceSourceToPatient = "1650" if upright else "900"
            ds.PixelIntensityRelationship = "LOG"
            ds.PixelIntensityRelationshipSign = 1
            ds.RescaleIntercept = "0"
            ds.RescaleSlope = "1"
            ds.RescaleType = "US"
            ds.LossyImageCompression = "00"
            ds.PresentationLUTShape = "IDENTITY"
            code, meaning = procedure.anatomy
            ds.AnatomicRegionSequence = DicomSequence([_code(code, "SCT", meaning)])
        return ds

    series_uid = uid(plan.seed, *plan.key, "series", number)
    ds = _series_layer(plan, series_uid, number, when)
    if digital:
        ds.ImageLaterality = plan.laterality or "U"
    ds.KVP = _ds(rng.choice((110.0, 120.0, 125.0)) if chest else rng.choice((65.0, 70.0)))
    ds.ExposureTime = str(rng.randint(5, 40))
    ds.XRayTubeCurrent = str(rng.randint(200, 500))
    ds.Exposure = str(rng.randint(2, 10))
    key = ("xr", device.station, procedure.key, number)
    layers = (_shared(key, protocol), Layer(ds))
    out = _Series(number, layers, series_uid, sop_class, device.modality)
    noise = np.random.default_rng(rng.getrandbits(64))
    sop_uid = uid(plan.seed, *plan.key, "series", number, 1)
    pixels = _xr_pixels(plan, series, not digital, noise)
    out.instances.append(_Instance.of(sop_uid, 1, pixels, 1))
    return out


def _dose_capture_series(
    plan: StudyPlan, number: int, when: datetime, rng: random.Random
) -> _Series:
    """The CT console's dose screen saved as a Secondary Capture with burned-in text."""
    series_uid = uid(plan.seed, *plan.key, "series", number)
    ds = _series_layer(plan, series_uid, number, when)
    _protocol_common(ds, plan.procedure, "Dose Report", "CT", SecondaryCaptureImageStorage,
                     ("DERIVED", "SECONDARY"))
    ds.ConversionType = "WSD"
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "YES"
    _image_pixel(ds, 48, 64, "MONOCHROME2", 8)
    out = _Series(number, (Layer(ds),), series_uid, SecondaryCaptureImageStorage, "CT")
    sop_uid = uid(plan.seed, *plan.key, "series", number, 1)
    pixels = _dose_screen_pixels(np.random.default_rng(rng.getrandbits(64)))
    out.instances.append(_Instance.of(sop_uid, 1, pixels, 1, burned_in=True))
    return out


def _report_series(
    plan: StudyPlan, study_uid: str, evidence: Sequence[_Series], signed: datetime
) -> _Series:
    """The radiologist's report as a Basic Text SR document (TID 2000 sections)."""
    number = _REPORT_SERIES
    series_uid = uid(plan.seed, *plan.key, "series", number)
    ds = Dataset()
    ds.SOPClassUID = BasicTextSRStorage
    ds.SeriesDate = _da(signed)
    ds.ContentDate = _da(signed)
    ds.SeriesTime = _tm(signed)
    ds.ContentTime = _tm(signed)
    ds.Modality = "SR"
    ds.Manufacturer = "Nuance"
    ds.ManufacturerModelName = "PowerScribe 360"
    ds.SoftwareVersions = "4.0"
    ds.StationName = "RADREAD01"
    ds.DeviceSerialNumber = "PS360-01"
    ds.SeriesDescription = "Radiology Report"
    ds.ReferencedPerformedProcedureStepSequence = DicomSequence([])
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = number
    ds.InstanceNumber = 1
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = DicomSequence(
        [_code("18748-4", "LN", "Diagnostic Imaging Report")]
    )
    ds.ContinuityOfContent = "SEPARATE"
    observer = Dataset()
    observer.VerifyingObserverName = plan.radiologist
    observer.VerifyingObserverIdentificationCodeSequence = DicomSequence([])
    observer.VerifyingOrganization = plan.department.name
    observer.VerificationDateTime = _dt(signed)
    ds.VerifyingObserverSequence = DicomSequence([observer])
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED"
    ds.PerformedProcedureCodeSequence = DicomSequence(
        [_code(plan.procedure.code, "LN", plan.procedure.display)]
    )
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "2000"
    ds.ContentTemplateSequence = DicomSequence([template])
    sections = []
    findings, impression = plan.procedure.report
    for section_code, section_name, item_code, item_name, text in (
        ("121070", "Findings", "121071", "Finding", findings),
        ("121072", "Impressions", "121073", "Impression", impression),
    ):
        entry = Dataset()
        entry.RelationshipType = "CONTAINS"
        entry.ValueType = "TEXT"
        entry.ConceptNameCodeSequence = DicomSequence([_code(item_code, "DCM", item_name)])
        entry.TextValue = text
        section = Dataset()
        section.RelationshipType = "CONTAINS"
        section.ValueType = "CONTAINER"
        section.ConceptNameCodeSequence = DicomSequence(
            [_code(section_code, "DCM", section_name)]
        )
        section.ContinuityOfContent = "SEPARATE"
        section.ContentSequence = DicomSequence([entry])
        sections.append(section)
    ds.ContentSequence = DicomSequence(sections)
    referenced = []
    for series in evidence:
        sops = []
        for inst in series.instances:
            sop = Dataset()
            sop.ReferencedSOPClassUID = series.sop_class
            sop.ReferencedSOPInstanceUID = inst.sop_uid
            sops.append(sop)
        item = Dataset()
        item.ReferencedSOPSequence = DicomSequence(sops)
        item.SeriesInstanceUID = series.uid
        referenced.append(item)
    evidence_item = Dataset()
    evidence_item.ReferencedSeriesSequence = DicomSequence(referenced)
    evidence_item.StudyInstanceUID = study_uid
    ds.CurrentRequestedProcedureEvidenceSequence = DicomSequence([evidence_item])
    # Reports are small and compress well; the reporting system archives them deflated.
    out = _Series(number, (Layer(ds),), series_uid, BasicTextSRStorage, "SR",
                  syntax=DeflatedExplicitVRLittleEndian)
    out.instances.append(
        _Instance.of(uid(plan.seed, *plan.key, "series", number, 1), None, None, 0)
    )
    return out


def _series_times(plan: StudyPlan, count: int, step: timedelta) -> list[datetime]:
    """When each series starts: ``step`` apart, squeezed so the last starts by ``finish``."""
    available = max(plan.finish - plan.start, timedelta(0))
    if count > 1 and step * (count - 1) > available:
        step = available / (count - 1)
    return [(plan.start + step * index).replace(microsecond=0) for index in range(count)]


_STEP = {"CT": timedelta(minutes=2), "MR": timedelta(minutes=6), "XR": timedelta(minutes=1)}


def render_study(plan: StudyPlan) -> list[RenderedFile]:
    """Render one planned study as DICOM Part-10 files.

    Args:
        plan: the study.

    Returns:
        The study's files, series by series, instances in order.
    """
    rng = random.Random(plan.draws)
    device, procedure = plan.device, plan.procedure
    study_uid = uid(plan.seed, *plan.key, "study")
    frame_uid = uid(plan.seed, *plan.key, "frame-of-reference")
    family = "XR" if procedure.family.startswith("XR") else procedure.family
    times = _series_times(plan, len(procedure.series) + plan.dose_capture, _STEP[family])
    series_out: list[_Series] = []
    for number, (series, when) in enumerate(zip(procedure.series, times, strict=False), 1):
        if family == "CT":
            series_out.append(_ct_series(plan, series, number, when, frame_uid, rng))
        elif family == "MR" and device.enhanced and number == 1:
            series_out.append(_enhanced_mr_series(plan, series, number, when, frame_uid, rng))
        elif family == "MR":
            series_out.append(_mr_series(plan, series, number, when, frame_uid, rng))
        else:
            series_out.append(_xr_series(plan, series, number, when, rng))
    if plan.dose_capture:
        series_out.append(_dose_capture_series(plan, _DOSE_SERIES, times[-1], rng))
    if plan.report:
        signed = times[-1] + timedelta(minutes=rng.randint(20, 240))
        series_out.append(_report_series(plan, study_uid, series_out, signed))

    study = (_equipment_layer(plan.department, device), _study_layer(plan, study_uid))
    files = []
    for series in series_out:
        syntax = plan.syntax or series.syntax or device.syntax
        for inst in series.instances:
            own = inst.own
            if inst.pixels is not None:
                own = [*own, _pixel_data(inst.pixels, syntax)]
            data = encode_part10((*study, *series.layers), own, syntax, series.sop_class)
            files.append(
                RenderedFile(
                    file_name(plan.seed, *plan.key, series.number, inst.number),
                    data,
                    series.sop_class,
                    series.modality,
                    inst.frames,
                    inst.burned_in,
                )
            )
    return files
