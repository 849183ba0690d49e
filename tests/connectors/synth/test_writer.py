from pathlib import Path

import pytest

from connectors.synth import KNOWN_SILOS, build_people, write_cohort
from connectors.synth.ehr import RESOURCE_TYPES, write_ehr

EHR_FILES = [f"ehr/{rtype}.ndjson" for rtype in RESOURCE_TYPES]


def _contents(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in EHR_FILES}


def test_same_seed_gives_byte_identical_files(tmp_path):
    write_cohort(tmp_path / "a", patients=40, seed=7)
    write_cohort(tmp_path / "b", patients=40, seed=7)
    assert _contents(tmp_path / "a") == _contents(tmp_path / "b")


def test_different_seed_gives_different_files(tmp_path):
    write_cohort(tmp_path / "a", patients=40, seed=7)
    write_cohort(tmp_path / "b", patients=40, seed=8)
    first, second = _contents(tmp_path / "a"), _contents(tmp_path / "b")
    assert all(first[name] != second[name] for name in EHR_FILES)


def test_a_persons_records_do_not_depend_on_the_cohort_size(tmp_path):
    write_cohort(tmp_path / "small", patients=10, seed=7)
    write_cohort(tmp_path / "large", patients=50, seed=7)
    small, large = _contents(tmp_path / "small"), _contents(tmp_path / "large")
    for name in EHR_FILES:
        assert small[name], name
        assert large[name].startswith(small[name]), name
        assert len(large[name]) > len(small[name]), name


def test_summary_reports_every_file_with_its_record_count(tmp_path):
    summary = write_cohort(tmp_path, patients=25, seed=3)
    assert summary.patients == 25
    assert summary.out == tmp_path
    assert list(summary.files) == EHR_FILES
    for name, count in summary.files.items():
        assert (tmp_path / name).read_bytes().count(b"\n") == count
    assert summary.files["ehr/Patient.ndjson"] == 25
    assert summary.files["ehr/Consent.ndjson"] == 25


def test_output_folder_may_be_given_as_a_string(tmp_path):
    summary = write_cohort(str(tmp_path / "out"), patients=2)
    assert summary.out == tmp_path / "out"
    assert (tmp_path / "out" / "ehr" / "Patient.ndjson").exists()


def test_an_empty_cohort_writes_empty_files(tmp_path):
    summary = write_cohort(tmp_path, patients=0)
    assert set(summary.files.values()) == {0}
    assert all((tmp_path / name).read_bytes() == b"" for name in EHR_FILES)


def test_unknown_silo_is_rejected_with_the_known_ones_listed(tmp_path):
    with pytest.raises(ValueError, match=r"'dicom'.*known silos are: ehr, genomics"):
        write_cohort(tmp_path, patients=3, silos=("ehr", "dicom"))
    assert not (tmp_path / "ehr").exists()
    assert KNOWN_SILOS == ("ehr", "genomics", "imaging", "lab", "trials")


def test_a_silo_name_given_as_a_plain_string_is_accepted(tmp_path):
    summary = write_cohort(tmp_path, patients=2, silos="ehr")
    assert list(summary.files) == EHR_FILES


def test_writing_again_replaces_the_files_and_leaves_no_temporary_files(tmp_path):
    write_cohort(tmp_path, patients=20, seed=7)
    summary = write_cohort(tmp_path, patients=5, seed=7)
    assert (tmp_path / "ehr" / "Patient.ndjson").read_bytes().count(b"\n") == 5
    assert summary.files["ehr/Patient.ndjson"] == 5
    assert sorted(p.name for p in (tmp_path / "ehr").iterdir()) == sorted(
        f"{rtype}.ndjson" for rtype in RESOURCE_TYPES
    )


def test_a_failed_write_keeps_the_previous_files_and_cleans_up(tmp_path):
    write_cohort(tmp_path, patients=5, seed=7)
    before = _contents(tmp_path)

    def roster_that_breaks():
        yield from build_people(3, 7)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_ehr(roster_that_breaks(), tmp_path)
    assert _contents(tmp_path) == before
    assert not [p for p in (tmp_path / "ehr").iterdir() if p.name.startswith(".")]
