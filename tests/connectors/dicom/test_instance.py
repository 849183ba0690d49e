import hashlib
import json
from datetime import date, datetime

import polars as pl
import pytest

from connectors.dicom import INSTANCE_COLUMNS, instance_schema
from connectors.dicom.instance import (
    DICOMDIR,
    NO_SOP_INSTANCE,
    W_SOP_INSTANCE_MISMATCH,
    InstanceRejected,
    instance_row,
    invalid,
    invalid_uid,
)
from connectors.dicom.parse import NOT_DICOM, TRUNCATED
from tests.connectors.dicom.conftest import (
    CT_IMAGE,
    SERIES,
    SOP_INSTANCE,
    STUDY,
    element,
    identity,
    item,
    part10,
    text,
    us,
)


def row(data: bytes, label: str = "a/b.dcm") -> dict:
    values = instance_row(data, label)
    assert len(values) == len(INSTANCE_COLUMNS)
    frame = pl.DataFrame([values], schema=instance_schema(), orient="row")
    return frame.row(0, named=True)


def ct(*extra: bytes) -> bytes:
    """A CT header: identity plus extra elements (all with tags above (0020,000E))."""
    return part10(identity() + b"".join(extra))


def test_a_plain_ct_header_fills_the_typed_columns():
    dataset = (
        text(0x00080005, "CS", "ISO_IR 100")
        + text(0x00080008, "CS", "ORIGINAL\\PRIMARY\\AXIAL")
        + text(0x00080016, "UI", CT_IMAGE)
        + text(0x00080018, "UI", SOP_INSTANCE)
        + text(0x00080020, "DA", "20240102")
        + text(0x00080022, "DA", "20240102")
        + text(0x00080030, "TM", "101500")
        + text(0x00080032, "TM", "101530.25")
        + text(0x00080050, "SH", "ACC1")
        + text(0x00080060, "CS", "CT")
        + text(0x00080070, "LO", "ACME")
        + text(0x00100020, "LO", "P-1")
        + text(0x00100030, "DA", "19700101")
        + text(0x00100040, "CS", "F")
        + text(0x00180050, "DS", "2.5")
        + text(0x00180060, "DS", "120")
        + text(0x00181020, "LO", "1.0\\2.0")
        + text(0x0020000D, "UI", STUDY)
        + text(0x0020000E, "UI", SERIES)
        + text(0x00200011, "IS", "3")
        + text(0x00200013, "IS", "12")
        + text(0x00200032, "DS", "-10\\-20\\30.5")
        + text(0x00200037, "DS", "1\\0\\0\\0\\1\\0")
        + us(0x00280002, 1)
        + text(0x00280004, "CS", "MONOCHROME2")
        + us(0x00280010, 512)
        + us(0x00280011, 256)
        + text(0x00280030, "DS", "0.5\\0.6")
        + us(0x00280100, 16)
        + us(0x00280101, 12)
        + text(0x00280301, "CS", "NO")
        + element(0x7FE00010, "OW", b"\x00" * 8)
    )
    data = part10(dataset)
    found = row(data)
    assert found["source_file"] == "a/b.dcm"
    assert found["sha256"] == hashlib.sha256(data).hexdigest()
    assert found["size_bytes"] == len(data)
    assert (found["has_preamble"], found["has_file_meta"], found["has_pixels"]) == (True,) * 3
    assert found["sop_class_name"] == "CT Image Storage"
    assert (found["study_date"], found["patient_birth_date"]) == (
        date(2024, 1, 2),
        date(1970, 1, 1),
    )
    assert found["study_time"] == "101500"
    assert found["acquisition_datetime"] == datetime(2024, 1, 2, 10, 15, 30, 250000)
    assert (found["series_number"], found["instance_number"]) == (3, 12)
    assert (found["rows"], found["columns"], found["bits_stored"]) == (512, 256, 12)
    assert found["pixel_spacing"] == [0.5, 0.6]
    assert found["image_position_patient"] == [-10.0, -20.0, 30.5]
    assert found["image_orientation_patient"] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert found["image_type"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert (found["slice_thickness"], found["kvp"]) == (2.5, 120.0)
    assert found["software_versions"] == "1.0\\2.0"
    assert found["burned_in_annotation"] == "NO"
    assert found["specific_character_set"] == "ISO_IR 100"
    assert found["warnings"] == []
    assert json.loads(found["header_json"])["00100020"] == {"vr": "LO", "Value": ["P-1"]}


@pytest.mark.parametrize(
    ("extra", "column", "warning"),
    [
        (text(0x00200011, "IS", "3a"), "series_number", invalid("SeriesNumber", "integer")),
        (
            text(0x00280030, "DS", "0.5\\x"),
            "pixel_spacing",
            invalid("PixelSpacing", "list of numbers"),
        ),
        (text(0x00180050, "DS", "thin"), "slice_thickness", invalid("SliceThickness", "number")),
    ],
)
def test_a_value_that_does_not_parse_is_null_with_a_warning_naming_the_keyword(
    extra, column, warning
):
    found = row(ct(extra))
    assert found[column] is None
    assert warning in found["warnings"]


def test_dates_that_do_not_parse_are_null_and_the_warning_holds_no_value():
    dataset = (
        text(0x00080016, "UI", CT_IMAGE)
        + text(0x00080018, "UI", SOP_INSTANCE)
        + text(0x00080020, "DA", "20241399")
        + text(0x0008002A, "DT", "2024010")
        + text(0x00100030, "DA", "1970-01-01")
    )
    found = row(part10(dataset))
    assert (found["study_date"], found["patient_birth_date"], found["acquisition_datetime"]) == (
        None,
        None,
        None,
    )
    assert found["warnings"] == sorted(
        [
            invalid("StudyDate", "date"),
            invalid("PatientBirthDate", "date"),
            invalid("AcquisitionDateTime", "date and time"),
        ]
    )
    assert not any(v in w for w in found["warnings"] for v in ("2024", "1970"))


def test_acquisition_datetime_prefers_the_dt_attribute():
    dataset = (
        text(0x00080016, "UI", CT_IMAGE)
        + text(0x00080018, "UI", SOP_INSTANCE)
        + text(0x00080022, "DA", "20200101")
        + text(0x0008002A, "DT", "20240102030405+0200")
    )
    assert row(part10(dataset))["acquisition_datetime"] == datetime(2024, 1, 2, 3, 4, 5)


def test_acquisition_date_without_time_is_midnight():
    dataset = (
        text(0x00080016, "UI", CT_IMAGE)
        + text(0x00080018, "UI", SOP_INSTANCE)
        + text(0x00080022, "DA", "20200101")
    )
    assert row(part10(dataset))["acquisition_datetime"] == datetime(2020, 1, 1)


def test_enhanced_objects_take_geometry_from_functional_groups():
    measures = element(
        0x00289110, "SQ", item(text(0x00180050, "DS", "1.5") + text(0x00280030, "DS", "0.7\\0.8"))
    )
    orientation = element(0x00209116, "SQ", item(text(0x00200037, "DS", "0\\1\\0\\0\\0\\-1")))
    first = element(0x00209113, "SQ", item(text(0x00200032, "DS", "1\\2\\3")))
    second = element(0x00209113, "SQ", item(text(0x00200032, "DS", "1\\2\\4")))
    shared = element(0x52009229, "SQ", item(measures))
    per_frame = element(0x52009230, "SQ", item(first + orientation) + item(second))
    found = row(ct(shared, per_frame))
    assert found["pixel_spacing"] == [0.7, 0.8]
    assert found["slice_thickness"] == 1.5
    assert found["image_position_patient"] == [1.0, 2.0, 3.0]
    assert found["image_orientation_patient"] == [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]


def test_hashed_uids_are_kept_with_a_warning():
    dataset = (
        text(0x00080016, "UI", CT_IMAGE)
        + text(0x00080018, "UI", "a" * 64)
        + text(0x0020000D, "UI", "1.02.3")
    )
    found = row(part10(dataset, sop="a" * 64))
    assert found["sop_instance_uid"] == "a" * 64
    assert found["study_instance_uid"] == "1.02.3"
    assert found["warnings"] == sorted(
        [invalid_uid("SOPInstanceUID"), invalid_uid("StudyInstanceUID")]
    )


def test_meta_instance_uid_differing_from_the_dataset_is_a_warning():
    assert W_SOP_INSTANCE_MISMATCH in row(part10(identity(), sop="1.2.3.4"))["warnings"]


def test_burned_in_annotation_other_than_yes_or_no_is_null_with_a_warning():
    found = row(ct(text(0x00280301, "CS", "MAYBE")))
    assert found["burned_in_annotation"] is None
    assert "BurnedInAnnotation is neither YES nor NO; the column is null" in found["warnings"]


def test_a_file_without_sop_instance_uid_is_rejected():
    dataset = text(0x00080016, "UI", CT_IMAGE) + text(0x00080060, "CS", "CT")
    with pytest.raises(InstanceRejected) as raised:
        instance_row(part10(dataset), "x.dcm")
    assert (raised.value.locator, raised.value.reason) == ("file", NO_SOP_INSTANCE)


def test_a_dicomdir_is_rejected_as_an_index():
    records = element(0x00041220, "SQ", item(text(0x00041430, "CS", "PATIENT")))
    data = part10(records, sop_class="1.2.840.10008.1.3.10", sop="1.2.3")
    with pytest.raises(InstanceRejected) as raised:
        instance_row(data, "DICOMDIR")
    assert raised.value.reason == DICOMDIR


def test_a_bare_dataset_without_sop_attributes_is_not_dicom():
    with pytest.raises(InstanceRejected) as raised:
        instance_row(b"\x00" * 64, "zeros.bin")
    assert raised.value.reason == NOT_DICOM


def test_a_truncated_element_is_located_by_its_tag():
    data = ct(text(0x00280004, "CS", "MONOCHROME2"))
    with pytest.raises(InstanceRejected) as raised:
        instance_row(data[:-4], "cut.dcm")
    assert (raised.value.locator, raised.value.reason) == ("element:(0028,0004)", TRUNCATED)


def test_binary_integers_feed_integer_columns():
    found = row(ct(element(0x00280008, "IS", b"10"), us(0x00280010, 64), us(0x00280011, 32)))
    assert (found["number_of_frames"], found["rows"], found["columns"]) == (10, 64, 32)
