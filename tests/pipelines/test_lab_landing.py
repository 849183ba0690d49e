"""How the lab landing folder is read: which profile a CSV export gets, and what happens to an
export no profile describes (quarantined whole, with a reason that says how to fix it)."""

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from connectors.lab_csv import builtin_profiles
from pipelines import lab

HEADER = (
    "MRN,ACCESSION,ORDER_CODE,ORDER_NAME,TEST_CODE,TEST_NAME,RESULT,UNITS,REF_RANGE,FLAG,"
    "STATUS,SPECIMEN,COLLECTED,RESULTED"
)
ROW = (
    "LAB00000001,A1-001,BMP,Basic metabolic panel,GLU,Glucose,105,mg/dL,70-99,H,F,Serum,"
    "2024-01-05 07:39,2024-01-05 10:40"
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _export(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{HEADER}\n{ROW}\n", encoding="utf-8")
    return path


def _read(folder: Path):
    files = lab.scan_landing(folder)
    return files, lab.read_bronze(files, folder, ingested_at=NOW)


def test_an_export_in_a_site_folder_is_read_with_that_sites_profile(tmp_path):
    folder = tmp_path / "lab"
    _export(folder / "csv" / "SITE-A01" / "export.csv")
    files, batch = _read(folder)
    assert [(f.kind, f.site, f.landed.source_file) for f in files] == [
        ("csv", "SITE-A01", "csv/SITE-A01/export.csv")
    ]
    results = batch.tables["results"]
    assert results.select("site", "test_code", "value_number", "source_file").rows() == [
        ("SITE-A01", "GLU", 105.0, "csv/SITE-A01/export.csv")
    ]
    # 07:39 in New York in January is 12:39 UTC.
    collected = results.get_column("collected_at").to_list()
    assert collected == [datetime(2024, 1, 5, 12, 39, tzinfo=UTC)]
    assert batch.rejects.is_empty()
    assert batch.ledger.select("records", "rejects").rows() == [(1, 0)]


def test_a_profile_beside_the_exports_names_a_site_no_built_in_profile_knows(tmp_path):
    folder = tmp_path / "lab"
    _export(folder / "csv" / "SITE-Z09" / "export.csv")
    builtin = Path(lab.__file__).parents[1] / "connectors" / "lab_csv" / "sites" / "SITE-A01.yaml"
    profile = builtin.read_text(encoding="utf-8").replace("site: SITE-A01", "site: SITE-Z09")
    assert "site: SITE-Z09" in profile
    (folder / "csv" / "SITE-Z09" / "profile.yaml").write_text(profile, encoding="utf-8")
    _, batch = _read(folder)
    assert batch.tables["results"].get_column("site").to_list() == ["SITE-Z09"]
    assert batch.rejects.is_empty()


def test_exports_without_a_profile_are_quarantined_whole_with_how_to_fix_it(tmp_path):
    folder = tmp_path / "lab"
    _export(folder / "csv" / "SITE-X99" / "export.csv")
    _export(folder / "csv" / "loose.csv")
    files, batch = _read(folder)
    assert "SITE-X99" not in builtin_profiles()
    assert batch.tables["results"].is_empty()
    rejects = batch.rejects.sort("source")
    assert rejects.select("source", "locator").rows() == [
        ("csv/SITE-X99/export.csv", "file"),
        ("csv/loose.csv", "file"),
    ]
    reasons = rejects.get_column("reason").to_list()
    assert "profile.yaml" in reasons[0] and "SITE-A01" in reasons[0]
    assert "csv/<SITE>/" in reasons[1]
    # Nothing of the rows (the lab patient id, the value) is in a reason.
    assert not any("LAB00000001" in r or "105" in r for r in reasons)
    assert batch.ledger.sort("source_file").select("records", "rejects").rows() == [(0, 1), (0, 1)]
    assert {f.landed.source_file for f in files} == set(rejects.get_column("source"))


def test_a_patient_index_line_claiming_a_lab_id_for_two_mrns_is_quarantined_everywhere(tmp_path):
    path = tmp_path / "patient_index.csv"
    path.write_text(
        "site,lab_patient_id,mrn\n"
        "SITE-A01,LAB1,MRN1\n"
        "SITE-A01,LAB2,MRN2\n"
        "SITE-A01,LAB2,MRN3\n"
        "SITE-B07,LAB2,MRN2\n"
        "SITE-A01,LAB1,MRN1\n"
        "SITE-A01,,MRN4\n",
        encoding="utf-8",
    )
    rows, rejects = lab.read_patient_index(path, source_file="patient_index.csv")
    assert rows.sort("site", "lab_patient_id").rows() == [
        ("SITE-A01", "LAB1", "MRN1"),
        ("SITE-B07", "LAB2", "MRN2"),
    ]
    assert rejects.select("locator", "reason").rows() == [
        ("line:3", "the lab patient id is listed for more than one MRN"),
        ("line:4", "the lab patient id is listed for more than one MRN"),
        ("line:6", "the line repeats an earlier line of the index"),
        ("line:7", "lab_patient_id is empty"),
    ]
    linked = lab.link_results(
        pl.DataFrame(
            {"site": ["SITE-A01", "SITE-A01", "SITE-B07"], "patient_id": ["LAB1", "LAB2", "LAB2"]}
        ),
        rows,
        pl.DataFrame(
            {"identifier_type": ["mrn"], "identifier": ["MRN1"], "person_key": ["p1"]}
        ),
    )
    assert linked.select("person_key", "link_status").rows() == [
        ("p1", "linked"),
        (None, "unknown_patient"),
        (None, "unknown_mrn"),
    ]
