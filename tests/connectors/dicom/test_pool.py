from connectors.dicom.instance import instance_row
from connectors.dicom.pool import (
    CORRUPT,
    Reject,
    chunked,
    default_workers,
    read_chunk,
    read_chunks,
)
from connectors.dicom.sources import UNREADABLE, FileRef, ListingReject
from tests.connectors.dicom.conftest import identity, part10


def refs(tmp_path, count: int) -> list[FileRef]:
    made = []
    for index in range(count):
        path = tmp_path / f"{index:03d}.dcm"
        path.write_bytes(part10(identity(sop=f"1.2.3.{index}"), sop=f"1.2.3.{index}"))
        made.append(FileRef(path.name, str(path), None))
    return made


def test_worker_processes_return_the_rows_the_caller_reads_in_order(tmp_path):
    files = refs(tmp_path, 12)
    pooled = list(read_chunks(chunked(files, 3), workers=2))
    in_process = list(read_chunks(chunked(files, 3), workers=1))
    assert [r[:3] for r in pooled] == [r[:3] for r in in_process]
    assert all(r.cpu_seconds > 0 for r in pooled)
    assert [row[0] for result in pooled for row in result.rows] == [f.label for f in files]
    assert pooled[0].rows[0] == instance_row((tmp_path / "000.dcm").read_bytes(), "000.dcm")


def test_a_chunk_passes_listing_rejects_and_rejects_unreadable_files(tmp_path):
    (good,) = refs(tmp_path, 1)
    result = read_chunk(
        [
            ListingReject("bad.zip", "not a readable zip archive"),
            FileRef("gone", "/nope", None),
            good,
        ]
    )
    assert result.rejects == [
        Reject("bad.zip", "file", "not a readable zip archive"),
        Reject("gone", "file", UNREADABLE),
    ]
    assert len(result.rows) == 1
    assert result.files == 3
    assert result.cpu_seconds >= 0


def test_an_unexpected_structure_is_rejected_as_corrupt_not_raised(tmp_path, monkeypatch):
    (good,) = refs(tmp_path, 1)

    def broken(data: bytes, label: str) -> tuple:
        raise IndexError("index out of range")

    monkeypatch.setattr("connectors.dicom.pool.instance_row", broken)
    assert read_chunk([good]).rejects == [Reject(good.label, "file", CORRUPT)]


def test_chunks_cut_the_listing_in_order():
    assert list(chunked(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]


def test_default_workers_is_between_one_and_four():
    assert 1 <= default_workers() <= 4
