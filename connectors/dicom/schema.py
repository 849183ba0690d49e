"""Typed columns of the DICOM ``instances`` table, with their descriptions.

One source of truth: the descriptions flow to Dagster column metadata, the catalog and the
MCP tool descriptions. Every file read gives one row; the attribute columns come from the
top-level dataset unless a description says otherwise (enhanced multi-frame objects keep
spacing, orientation and position in their functional group sequences).
"""

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class Column:
    """One typed column: its name, polars dtype and a one-line description."""

    name: str
    dtype: pl.DataType
    description: str


def _attr(keyword: str, tag: str, what: str = "") -> str:
    return f"{keyword} {tag}{what}; null when absent or empty."


INSTANCE_COLUMNS: tuple[Column, ...] = (
    Column(
        "source_file",
        pl.String(),
        "Path of the file relative to the folder read (POSIX), the file's name when one file "
        "was read, or '<zip path>!<member path>' for a member of a zip archive.",
    ),
    Column("sha256", pl.String(), "SHA-256 of the file's bytes as stored (hex)."),
    Column("size_bytes", pl.Int64(), "Size of the file as stored, in bytes."),
    Column(
        "has_preamble",
        pl.Boolean(),
        "The file starts with the 128-byte preamble and the 'DICM' prefix (DICOM Part 10).",
    ),
    Column(
        "has_file_meta",
        pl.Boolean(),
        "The file carries File Meta Information (group 0002); false for a bare dataset.",
    ),
    Column(
        "transfer_syntax_uid",
        pl.String(),
        "TransferSyntaxUID (0002,0010) from the file meta; for a file without one, the "
        "syntax the dataset was found to be encoded in (implicit or explicit VR, endianness).",
    ),
    Column("sop_class_uid", pl.String(), _attr("SOPClassUID", "(0008,0016)")),
    Column(
        "sop_class_name",
        pl.String(),
        "Name of the SOP class in the DICOM registry (e.g. 'CT Image Storage'); null when "
        "the UID is not a registered SOP class.",
    ),
    Column(
        "sop_instance_uid",
        pl.String(),
        "SOPInstanceUID (0008,0018): the instance's identity. Never null (files without one "
        "are rejected).",
    ),
    Column("study_instance_uid", pl.String(), _attr("StudyInstanceUID", "(0020,000D)")),
    Column("series_instance_uid", pl.String(), _attr("SeriesInstanceUID", "(0020,000E)")),
    Column("frame_of_reference_uid", pl.String(), _attr("FrameOfReferenceUID", "(0020,0052)")),
    Column("patient_id", pl.String(), _attr("PatientID", "(0010,0020)")),
    Column("issuer_of_patient_id", pl.String(), _attr("IssuerOfPatientID", "(0010,0021)")),
    Column("accession_number", pl.String(), _attr("AccessionNumber", "(0008,0050)")),
    Column("patient_sex", pl.String(), _attr("PatientSex", "(0010,0040)", " (M, F, O)")),
    Column("patient_birth_date", pl.Date(), _attr("PatientBirthDate", "(0010,0030)")),
    Column(
        "patient_age", pl.String(), _attr("PatientAge", "(0010,1010)", " as written (e.g. 045Y)")
    ),
    Column("study_date", pl.Date(), _attr("StudyDate", "(0008,0020)")),
    Column(
        "study_time",
        pl.String(),
        _attr("StudyTime", "(0008,0030)", " as written (HHMMSS.FFFFFF, local time)"),
    ),
    Column("series_date", pl.Date(), _attr("SeriesDate", "(0008,0021)")),
    Column("series_time", pl.String(), _attr("SeriesTime", "(0008,0031)", " as written")),
    Column("content_date", pl.Date(), _attr("ContentDate", "(0008,0023)")),
    Column(
        "acquisition_datetime",
        pl.Datetime("us"),
        "AcquisitionDateTime (0008,002A), else AcquisitionDate (0008,0022) with "
        "AcquisitionTime (0008,0032) (midnight without one); naive local time as in the file "
        "(a UTC offset in the value is dropped); missing trailing components take their "
        "lowest value. Null when absent.",
    ),
    Column("study_id", pl.String(), _attr("StudyID", "(0020,0010)")),
    Column("study_description", pl.String(), _attr("StudyDescription", "(0008,1030)")),
    Column("series_description", pl.String(), _attr("SeriesDescription", "(0008,103E)")),
    Column("protocol_name", pl.String(), _attr("ProtocolName", "(0018,1030)")),
    Column(
        "modality", pl.String(), _attr("Modality", "(0008,0060)", " (CT, MR, US, SEG, SR, ...)")
    ),
    Column("series_number", pl.Int64(), _attr("SeriesNumber", "(0020,0011)")),
    Column("instance_number", pl.Int64(), _attr("InstanceNumber", "(0020,0013)")),
    Column("acquisition_number", pl.Int64(), _attr("AcquisitionNumber", "(0020,0012)")),
    Column("body_part_examined", pl.String(), _attr("BodyPartExamined", "(0018,0015)")),
    Column("laterality", pl.String(), _attr("Laterality", "(0020,0060)", " (R, L)")),
    Column("patient_position", pl.String(), _attr("PatientPosition", "(0018,5100)")),
    Column("manufacturer", pl.String(), _attr("Manufacturer", "(0008,0070)")),
    Column("manufacturer_model_name", pl.String(), _attr("ManufacturerModelName", "(0008,1090)")),
    Column("station_name", pl.String(), _attr("StationName", "(0008,1010)")),
    Column("institution_name", pl.String(), _attr("InstitutionName", "(0008,0080)")),
    Column("device_serial_number", pl.String(), _attr("DeviceSerialNumber", "(0018,1000)")),
    Column(
        "software_versions",
        pl.String(),
        _attr("SoftwareVersions", "(0018,1020)", ", several values joined with '\\'"),
    ),
    Column("rows", pl.Int64(), _attr("Rows", "(0028,0010)")),
    Column("columns", pl.Int64(), _attr("Columns", "(0028,0011)")),
    Column("bits_allocated", pl.Int64(), _attr("BitsAllocated", "(0028,0100)")),
    Column("bits_stored", pl.Int64(), _attr("BitsStored", "(0028,0101)")),
    Column("samples_per_pixel", pl.Int64(), _attr("SamplesPerPixel", "(0028,0002)")),
    Column(
        "photometric_interpretation",
        pl.String(),
        _attr("PhotometricInterpretation", "(0028,0004)", " (MONOCHROME2, RGB, ...)"),
    ),
    Column(
        "number_of_frames",
        pl.Int64(),
        _attr("NumberOfFrames", "(0028,0008)", "; single-frame objects usually omit it"),
    ),
    Column(
        "pixel_spacing",
        pl.List(pl.Float64()),
        "PixelSpacing (0028,0030) in mm, [row spacing, column spacing]; for enhanced "
        "multi-frame objects from the shared (else first per-frame) Pixel Measures "
        "functional group. Null when absent.",
    ),
    Column(
        "slice_thickness",
        pl.Float64(),
        "SliceThickness (0018,0050) in mm, top level or Pixel Measures functional group. "
        "Null when absent.",
    ),
    Column(
        "spacing_between_slices",
        pl.Float64(),
        "SpacingBetweenSlices (0018,0088) in mm, top level or Pixel Measures functional "
        "group. Null when absent.",
    ),
    Column(
        "image_orientation_patient",
        pl.List(pl.Float64()),
        "ImageOrientationPatient (0020,0037): row then column direction cosines (6 values); "
        "for enhanced objects from the shared (else first per-frame) Plane Orientation "
        "functional group. Null when absent.",
    ),
    Column(
        "image_position_patient",
        pl.List(pl.Float64()),
        "ImagePositionPatient (0020,0032) in mm (x, y, z of the first voxel); for enhanced "
        "objects the first frame's Plane Position functional group. Null when absent.",
    ),
    Column(
        "image_type",
        pl.List(pl.String()),
        _attr("ImageType", "(0008,0008)", " values (e.g. ['ORIGINAL', 'PRIMARY', 'AXIAL'])"),
    ),
    Column("kvp", pl.Float64(), _attr("KVP", "(0018,0060)", " in kV")),
    Column(
        "magnetic_field_strength",
        pl.Float64(),
        _attr("MagneticFieldStrength", "(0018,0087)", " in tesla"),
    ),
    Column("repetition_time", pl.Float64(), _attr("RepetitionTime", "(0018,0080)", " in ms")),
    Column("echo_time", pl.Float64(), _attr("EchoTime", "(0018,0081)", " in ms")),
    Column("contrast_bolus_agent", pl.String(), _attr("ContrastBolusAgent", "(0018,0010)")),
    Column(
        "convolution_kernel",
        pl.String(),
        _attr("ConvolutionKernel", "(0018,1210)", ", several values joined with '\\'"),
    ),
    Column(
        "burned_in_annotation",
        pl.String(),
        "BurnedInAnnotation (0028,0301): 'YES' or 'NO' as in the file; null when absent or "
        "any other value (with a warning).",
    ),
    Column(
        "lossy_image_compression",
        pl.String(),
        _attr("LossyImageCompression", "(0028,2110)", " ('00' never lossy, '01' lossy)"),
    ),
    Column(
        "specific_character_set",
        pl.String(),
        _attr("SpecificCharacterSet", "(0008,0005)", ", several terms joined with '\\'"),
    ),
    Column(
        "has_pixels",
        pl.Boolean(),
        "The dataset holds PixelData, FloatPixelData or DoubleFloatPixelData (7FE0,0010/"
        "0008/0009) at top level; the pixel values themselves are not read.",
    ),
    Column(
        "n_private_elements",
        pl.Int64(),
        "Number of private data elements (odd groups, private creators included) at any "
        "depth of the header.",
    ),
    Column(
        "header_json",
        pl.String(),
        "The whole header in the DICOM JSON model (PS3.18 Annex F), file meta group 0002 "
        "included, sequences nested; pixel data and binary values (OB, OD, OF, OL, OV, OW, "
        "UN) over 1 KiB keep only their 'vr'; smaller ones are InlineBinary (base64, little "
        "endian).",
    ),
    Column(
        "warnings",
        pl.List(pl.String()),
        "Fixed sentences about what was read differently from the standard (never a value); "
        "empty when the file read cleanly.",
    ),
)
"""The columns of ``instances``, in output order."""


def instance_schema() -> dict[str, pl.DataType]:
    """The polars schema of every ``instances`` frame.

    Returns:
        Column name to dtype, in output order.
    """
    return {c.name: c.dtype for c in INSTANCE_COLUMNS}
