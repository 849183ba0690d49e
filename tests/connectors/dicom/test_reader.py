import zipfile

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.dicom import instance_schema, iter_dicom_batches, read_dicom
from connectors.dicom.instance import NO_SOP_INSTANCE
from connectors.dicom.parse import EMPTY, NOT_DICOM, TRUNCATED
from connectors.errors import DicomFileError, MalformedRecordError, SourceNotFoundError
from connectors.result import REJECT_SCHEMA
from tests.connectors.dicom.conftest import CT_IMAGE, identity, part10, text


def instance(index: int) -> bytes:
    sop = f"1.2.826.0.1.3680043.10.2.{index}"
    return part10(identity(sop=sop), sop=sop)


@pytest.fixture
def batch(tmp_path):
    """A landed batch: nested folders, a zip, a hidden file and three bad files."""
    root = tmp_path / "batch-001"
    (root / "s1").mkdir(parents=True)
    (root / "s1" / "i1").write_bytes(instance(1))
    (root / "s1" / "i2").write_bytes(instance(2))
    (root / ".hidden").write_bytes(b"not even looked at")
    (root / "empty.dcm").write_bytes(b"")
    (root / "notes.txt").write_bytes(b"Free text, not DICOM.\n")
    (root / "s2").mkdir()
    (root / "s2" / "cut").write_bytes(instance(3)[:-6])
    nosop = part10(text(0x00080016, "UI", CT_IMAGE) + text(0x00080060, "CS", "CT"))
    with zipfile.ZipFile(root / "more.zip", "w") as archive:
        archive.writestr("a/i4", instance(4))
        archive.writestr("a/nosop", nosop)
    return root


EXPECTED_REJECTS = pl.DataFrame(
    [
        ("empty.dcm", "file", EMPTY),
        ("more.zip!a/nosop", "file", NO_SOP_INSTANCE),
        ("notes.txt", "file", NOT_DICOM),
        ("s2/cut", "element:(0020,000E)", TRUNCATED),
    ],
    schema=REJECT_SCHEMA,
    orient="row",
)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_folder_with_a_zip_loads_instances_and_quarantines_the_rest(batch, workers):
    result = read_dicom(batch, on_error="quarantine", workers=workers)
    instances = result.tables["instances"]
    assert instances.schema == pl.Schema(instance_schema())
    assert instances["source_file"].to_list() == ["more.zip!a/i4", "s1/i1", "s1/i2"]
    assert instances["sop_instance_uid"].to_list() == [
        f"1.2.826.0.1.3680043.10.2.{i}" for i in (4, 1, 2)
    ]
    assert_frame_equal(result.rejects.sort("source"), EXPECTED_REJECTS)


def test_raise_mode_stops_at_the_first_bad_file_in_listing_order(batch):
    with pytest.raises(DicomFileError) as raised:
        read_dicom(batch, workers=1)
    assert (raised.value.source, raised.value.locator) == ("empty.dcm", "file")
    assert isinstance(raised.value, MalformedRecordError)
    assert "on_error='quarantine'" in str(raised.value)


def test_many_files_go_through_the_pool_and_stream_in_bounded_batches(tmp_path):
    for index in range(150):
        (tmp_path / f"{index:04d}.dcm").write_bytes(instance(index))
    batches = list(iter_dicom_batches(tmp_path, workers=2, batch_files=50))
    assert [b.files for b in batches] == [50, 50, 50]
    assert [b.instances.height for b in batches] == [50, 50, 50]
    assert all(b.rejects.schema == pl.Schema(REJECT_SCHEMA) for b in batches)
    uids = pl.concat([b.instances for b in batches])["sop_instance_uid"].to_list()
    assert uids == [f"1.2.826.0.1.3680043.10.2.{i}" for i in range(150)]


def test_one_file_is_labelled_with_its_name(tmp_path):
    (tmp_path / "x.dcm").write_bytes(instance(1))
    assert read_dicom(tmp_path / "x.dcm").tables["instances"]["source_file"].to_list() == ["x.dcm"]


def test_an_empty_folder_gives_an_empty_table_with_the_schema(tmp_path):
    result = read_dicom(tmp_path)
    assert_frame_equal(result.tables["instances"], pl.DataFrame(schema=instance_schema()))
    assert result.rejects.height == 0


def test_a_missing_source_is_reported(tmp_path):
    with pytest.raises(SourceNotFoundError):
        iter_dicom_batches(tmp_path / "nope")


@pytest.mark.parametrize(
    "options",
    [{"on_error": "ignore"}, {"workers": 0}, {"batch_files": 0}],
)
def test_options_out_of_range_are_refused_when_called(tmp_path, options):
    with pytest.raises(ValueError):
        iter_dicom_batches(tmp_path, **options)


def test_leaving_a_stream_early_stops_the_pool(tmp_path):
    for index in range(200):
        (tmp_path / f"{index:04d}.dcm").write_bytes(instance(index))
    stream = iter_dicom_batches(tmp_path, workers=2, batch_files=32)
    first = next(stream)
    stream.close()
    assert first.files == 32
    with pytest.raises(StopIteration):
        next(stream)


def test_raise_mode_through_the_pool_reports_the_first_bad_file(tmp_path):
    for index in range(100):
        (tmp_path / f"{index:04d}.dcm").write_bytes(instance(index))
    (tmp_path / "0070.dcm").write_bytes(b"")
    (tmp_path / "0090.dcm").write_bytes(b"")
    with pytest.raises(DicomFileError) as raised:
        read_dicom(tmp_path, workers=2)
    assert (raised.value.source, raised.value.reason) == ("0070.dcm", EMPTY)
