"""The compliance report's lab terminology and SDTM conformance sections, from real Delta
tables in tmp_path; and the site summary and Markdown helpers the pipeline shares."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from deltalake import write_deltalake
from polars.testing import assert_frame_equal

from quality.report import ReportData, collect_report_data, render_report
from quality.report.lab_mapping import (
    MAPPING_STATUSES,
    UNIT_STATUSES,
    markdown_table,
    site_summary,
)
from quality.report.model import LabSiteMapping

NOW = (datetime.now(UTC) + timedelta(minutes=30)).replace(microsecond=0)
# Values that exist only in restricted or free-text columns: the report must never show them.
SENTINEL_PATIENT = "LABPT-Qzxw9731"
SENTINEL_TEXT = "Vkqpzyx-free-text"
SENTINEL_ACCESSION = "ACC-Jwqz4418"
SENTINEL_VALUE = 98765.4321
SENTINEL_MESSAGE = "Mxqzv-finding-message"
SENTINEL_LOCATOR = "row:73519"

# (site, source_kind, map_version, mapping_status, unit_status, rows)
SILVER_GROUPS = (
    ("SITE-A01", "csv", "2026.09.1", "mapped", "canonical", 3),
    ("SITE-A01", "csv", "2026.09.1", "mapped", "converted", 1),
    ("SITE-A01", "csv", "2026.09.1", "unmapped", "no_canonical", 3),
    ("SITE-A01", "csv", "2026.09.1", "mapped", "unknown_unit", 1),
    ("SITE-A02", "hl7v2", None, "loinc_reported", "canonical", 2),
    ("SITE-A02", "hl7v2", None, "loinc_reported", "not_numeric", 1),
    ("SITE-B07", "csv", "2026.09.1", "mapped", "converted", 2),
    ("SITE-B07", "csv", "2026.10.0", "invalid_loinc", "no_unit", 1),
    ("SITE-B07", "csv", "2026.10.0", "mapped", "unconvertible", 1),
)
# site, issue, code, code_display, unit, analyte, rows (map version 2026.09.1, system "L")
MAPPING_REPORT = (
    ("SITE-A01", "unmapped_code", "VITD25", "Vitamin D 25-OH", "ng/mL", None, 2),
    ("SITE-A01", "unmapped_code", "VITD25", "Vitamin D 25-OH", "nmol/L", None, 1),
    ("SITE-A01", "unknown_unit", "HBA1C", "HbA1c", "% Hb", "hba1c", 1),
    ("SITE-B07", "unmapped_code", "1099", "Ferritin", "µg/L", None, 5),
    ("SITE-B07", "unknown_unit", "1031", "Kalium", "mval/l", "potassium", 3),
    ("SITE-D02", "unmapped_code", "FERR", "Ferritin", "ng/mL", None, 4),
    ("SITE-D02", "unknown_unit", "GLUC", "Glucose", "mg%", "glucose", 1),
)
SOURCE_KIND = {"SITE-A01": "csv", "SITE-B07": "csv", "SITE-D02": "hl7v2"}
# source_file, dataset, rule, severity, variable, rows
FINDINGS = (
    ("CDISCPILOT01/ae.xpt", "AE", "invalid_iso8601", "warning", "AESTDTC", 3),
    ("CDISCPILOT01/lb.xpt", "LB", "invalid_iso8601", "warning", "LBDTC", 2),
    ("CDISCPILOT01/ae.xpt", "AE", "subject_not_in_dm", "warning", "USUBJID", 1),
    ("BIOFED-01/dm.xpt", "DM", "usubjid_not_unique_in_dm", "error", "USUBJID", 2),
    ("BIOFED-01/ae.xpt", "AE", "required_value_missing", "error", "AETERM", 1),
    ("CDISCPILOT01/vs.xpt", "VS", "seq_not_unique", "error", "VSSEQ", 4),
)


def _write(lake: Path, path: str, frame: pl.DataFrame) -> None:
    write_deltalake(str(lake / path), frame.to_arrow(), mode="overwrite")


def _silver_rows() -> pl.DataFrame:
    rows = [
        (site, kind, version, mapping, unit)
        for site, kind, version, mapping, unit, n in SILVER_GROUPS
        for _ in range(n)
    ]
    n = len(rows)
    at = NOW - timedelta(days=1)
    return pl.DataFrame(
        {
            "result_id": [f"{i:032x}" for i in range(n)],
            "person_key": ["k1"] * n,
            "link_status": ["linked"] * n,
            "lab_patient_id": [SENTINEL_PATIENT] * n,
            "site": [r[0] for r in rows],
            "source_kind": [r[1] for r in rows],
            "accession": [SENTINEL_ACCESSION] * n,
            "collected_at": [at] * n,
            "local_code": ["GLU"] * n,
            "loinc": ["2345-7"] * n,
            "mapping_status": [r[3] for r in rows],
            "map_version": [r[2] for r in rows],
            "value_text": [SENTINEL_TEXT] * n,
            "value_original": [SENTINEL_VALUE] * n,
            "value": [SENTINEL_VALUE] * n,
            "unit": ["mg/dL"] * n,
            "unit_status": [r[4] for r in rows],
            "reference_text": [SENTINEL_TEXT] * n,
            "source_file": ["csv/SITE-A01/export.csv"] * n,
        },
        schema_overrides={"collected_at": pl.Datetime("us", "UTC")},
    )


def _mapping_report() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "site": [r[0] for r in MAPPING_REPORT],
            "source_kind": [SOURCE_KIND[r[0]] for r in MAPPING_REPORT],
            "map_version": ["2026.09.1"] * len(MAPPING_REPORT),
            "issue": [r[1] for r in MAPPING_REPORT],
            "code": [r[2] for r in MAPPING_REPORT],
            "code_system": ["L"] * len(MAPPING_REPORT),
            "code_display": [r[3] for r in MAPPING_REPORT],
            "unit": [r[4] for r in MAPPING_REPORT],
            "analyte": [r[5] for r in MAPPING_REPORT],
            "rows": [r[6] for r in MAPPING_REPORT],
        },
        schema_overrides={"analyte": pl.String, "rows": pl.Int64},
    )


def _findings() -> pl.DataFrame:
    n = len(FINDINGS)
    return pl.DataFrame(
        {
            "source_file": [f[0] for f in FINDINGS],
            "dataset": [f[1] for f in FINDINGS],
            "domain": [f[1] for f in FINDINGS],
            "rule": [f[2] for f in FINDINGS],
            "severity": [f[3] for f in FINDINGS],
            "variable": [f[4] for f in FINDINGS],
            "rows": [f[5] for f in FINDINGS],
            "first_locator": [SENTINEL_LOCATOR] * n,
            "message": [SENTINEL_MESSAGE] * n,
            "source_sha256": ["ab" * 32] * n,
            "ingested_at": [NOW - timedelta(hours=1)] * n,
        },
        schema_overrides={"rows": pl.Int64, "ingested_at": pl.Datetime("us", "UTC")},
    )


def _trials_ledger() -> pl.DataFrame:
    files = ["BIOFED-01/dm.xpt", "CDISCPILOT01/ae.xpt", "CLEAN-03/dm.xpt"]
    return pl.DataFrame(
        {
            "source_file": files,
            "source_sha256": ["cd" * 32] * len(files),
            "bytes": [800] * len(files),
            "records": [10] * len(files),
            "rejects": [0] * len(files),
            "ingested_at": [NOW - timedelta(hours=1)] * len(files),
        },
        schema_overrides={"ingested_at": pl.Datetime("us", "UTC")},
    )


@pytest.fixture
def lab_lake(tmp_path: Path) -> Path:
    """A lake with the lab and trials silos' tables the report reads."""
    lake = tmp_path / "lake"
    _write(lake, "silver/lab/lab_results", _silver_rows())
    _write(lake, "silver/lab/mapping_report", _mapping_report())
    _write(lake, "bronze/trials/findings", _findings())
    _write(lake, "bronze/trials/files", _trials_ledger())
    return lake


@pytest.fixture
def ehr_only_lake(tmp_path: Path) -> Path:
    """A lake without the lab and trials silos."""
    lake = tmp_path / "lake"
    _write(lake, "silver/ehr/patients", pl.DataFrame({"id": ["p1"]}))
    return lake


def _render(lake: Path, out: Path) -> tuple[ReportData, str]:
    data = collect_report_data(lake, now=NOW)
    html = render_report(data, out).read_text(encoding="utf-8")
    return data, html


def _section(html: str, anchor: str) -> str:
    start = html.index(f'<section id="{anchor}">')
    return html[start : html.index("</section>", start)]


# --- site_summary and markdown_table ------------------------------------------------------------


def test_site_summary_counts_each_status_per_site_and_source_kind():
    silver = pl.DataFrame(
        {
            "site": ["SITE-B07", "SITE-A01", "SITE-A01", "SITE-A01", "SITE-A01"],
            "source_kind": ["csv", "hl7v2", "csv", "csv", "csv"],
            "map_version": ["2026.10.0", None, "2026.09.1", "2026.09.1", None],
            "mapping_status": ["invalid_loinc", "loinc_reported", "mapped", "unmapped", "mapped"],
            "unit_status": ["no_unit", "canonical", "converted", "unknown_unit", "converted"],
            "value_text": ["x"] * 5,
        }
    )
    zeros = {s: 0 for s in (*MAPPING_STATUSES, *UNIT_STATUSES)}
    expected = pl.DataFrame(
        [
            {
                "site": "SITE-A01",
                "source_kind": "csv",
                "results": 3,
                "map_version": "2026.09.1",
                **zeros,
                "mapped": 2,
                "unmapped": 1,
                "converted": 2,
                "unknown_unit": 1,
            },
            {
                "site": "SITE-A01",
                "source_kind": "hl7v2",
                "results": 1,
                "map_version": None,
                **zeros,
                "loinc_reported": 1,
                "canonical": 1,
            },
            {
                "site": "SITE-B07",
                "source_kind": "csv",
                "results": 1,
                "map_version": "2026.10.0",
                **zeros,
                "invalid_loinc": 1,
                "no_unit": 1,
            },
        ],
        schema={
            "site": pl.String,
            "source_kind": pl.String,
            "results": pl.Int64,
            "map_version": pl.String,
            **{s: pl.Int64 for s in (*MAPPING_STATUSES, *UNIT_STATUSES)},
        },
    )
    assert_frame_equal(site_summary(silver), expected)


def test_site_summary_joins_the_distinct_map_versions_of_a_site():
    silver = pl.DataFrame(
        {
            "site": ["SITE-B07"] * 4,
            "source_kind": ["csv"] * 4,
            "map_version": ["2026.10.0", "2026.09.1", None, "2026.10.0"],
            "mapping_status": ["mapped"] * 4,
            "unit_status": ["converted"] * 4,
        }
    )
    summary = site_summary(silver)
    assert summary.get_column("map_version").to_list() == ["2026.09.1, 2026.10.0"]
    assert summary.get_column("results").to_list() == [4]


def test_site_summary_of_no_rows_has_the_columns_and_no_rows():
    silver = pl.DataFrame(
        schema={
            c: pl.String
            for c in ("site", "source_kind", "map_version", "mapping_status", "unit_status")
        }
    )
    summary = site_summary(silver)
    assert summary.height == 0
    assert summary.columns == [
        "site",
        "source_kind",
        "results",
        "map_version",
        *MAPPING_STATUSES,
        *UNIT_STATUSES,
    ]


def test_site_summary_names_the_missing_columns():
    with pytest.raises(ValueError, match="unit_status"):
        site_summary(
            pl.DataFrame(
                {
                    "site": ["A"],
                    "source_kind": ["csv"],
                    "map_version": [None],
                    "mapping_status": ["mapped"],
                }
            )
        )


def test_markdown_table_shows_none_as_an_empty_cell_and_escapes_pipes():
    frame = pl.DataFrame({"code": ["VITD25", "a|b"], "unit": [None, "ng/mL"], "rows": [2, 1]})
    assert markdown_table(frame) == (
        "| code | unit | rows |\n|---|---|---|\n| VITD25 |  | 2 |\n| a\\|b | ng/mL | 1 |"
    )


def test_markdown_table_counts_the_rows_beyond_the_limit():
    frame = pl.DataFrame({"n": [1, 2, 3, 4]})
    assert markdown_table(frame, limit=1) == "| n |\n|---|\n| 1 |\n\n3 more rows not shown."
    assert markdown_table(frame, limit=3).endswith("| 3 |\n\n1 more row not shown.")
    assert markdown_table(frame, limit=4) == "| n |\n|---|\n| 1 |\n| 2 |\n| 3 |\n| 4 |"


def test_markdown_table_of_an_empty_frame_is_none():
    assert markdown_table(pl.DataFrame(schema={"n": pl.Int64})) == "(none)"


# --- the report ---------------------------------------------------------------------------------


def test_lab_mapping_counts_every_site_and_its_issues_most_results_first(
    lab_lake: Path, tmp_path: Path
):
    data, html = _render(lab_lake, tmp_path / "report")
    lab = data.lab_mapping

    assert lab is not None and lab.results_found and lab.report_found
    assert lab.sites[0] == LabSiteMapping(
        site="SITE-A01",
        source_kind="csv",
        results=8,
        map_version="2026.09.1",
        loinc_reported=0,
        mapped=5,
        unmapped=3,
        invalid_loinc=0,
        canonical=3,
        converted=1,
        no_canonical=3,
        unknown_unit=1,
        unconvertible=0,
        not_numeric=0,
        no_unit=0,
    )
    assert [(s.site, s.source_kind, s.results, s.map_version) for s in lab.sites] == [
        ("SITE-A01", "csv", 8, "2026.09.1"),
        ("SITE-A02", "hl7v2", 3, None),
        ("SITE-B07", "csv", 4, "2026.09.1, 2026.10.0"),
    ]
    assert [(i.site, i.code, i.unit, i.rows) for i in lab.issues] == [
        ("SITE-B07", "1099", "µg/L", 5),
        ("SITE-D02", "FERR", "ng/mL", 4),
        ("SITE-B07", "1031", "mval/l", 3),
        ("SITE-A01", "VITD25", "ng/mL", 2),
        ("SITE-A01", "HBA1C", "% Hb", 1),
        ("SITE-A01", "VITD25", "nmol/L", 1),
        ("SITE-D02", "GLUC", "mg%", 1),
    ]
    # Distinct (site, code) and (site, unit): VITD25 counts once at SITE-A01.
    assert (data.summary.unmapped_lab_codes, data.summary.unknown_lab_units) == (3, 3)

    section = _section(html, "lab-mapping")
    assert "Lab terminology mapping" in section
    assert "<code>2026.09.1, 2026.10.0</code>" in section
    for site in ("SITE-A01", "SITE-B07", "SITE-D02"):
        assert f'id="lab-{site.lower()}"' in section
    assert 'id="lab-site-a02"' not in section  # no issue at SITE-A02
    assert "3 issues, 4 results" in section  # SITE-A01
    a01 = section[section.index('id="lab-site-a01"') : section.index('id="lab-site-b07"')]
    assert (
        a01.index("<code>ng/mL</code>")
        < a01.index("<code>% Hb</code>")
        < a01.index("<code>nmol/L</code>")
    )
    assert '<span class="badge b-warn">unmapped code</span>' in section
    assert "<code>µg/L</code>" in section and "<code>mval/l</code>" in section
    strip = html[html.index('<section class="strip') : html.index("</section>")]
    assert "Unmapped lab codes" in strip and "3 unknown units" in strip


def test_sdtm_findings_per_study_and_rule_with_errors_first(lab_lake: Path, tmp_path: Path):
    data, html = _render(lab_lake, tmp_path / "report")
    sdtm = data.sdtm

    assert sdtm is not None
    assert sdtm.studies == ("BIOFED-01", "CDISCPILOT01", "CLEAN-03")
    found = [(f.severity, f.study, f.rule, f.datasets, f.findings, f.rows) for f in sdtm.findings]
    assert found == [
        ("error", "BIOFED-01", "usubjid_not_unique_in_dm", ("DM",), 1, 2),
        ("error", "BIOFED-01", "required_value_missing", ("AE",), 1, 1),
        ("error", "CDISCPILOT01", "seq_not_unique", ("VS",), 1, 4),
        ("warning", "CDISCPILOT01", "invalid_iso8601", ("AE", "LB"), 2, 5),
        ("warning", "CDISCPILOT01", "subject_not_in_dm", ("AE",), 1, 1),
    ]
    assert sdtm.findings[3].variables == ("AESTDTC", "LBDTC")
    assert (data.summary.sdtm_errors, data.summary.sdtm_warnings) == (3, 3)

    section = _section(html, "sdtm")
    rules = [f"<code>{f.rule}</code>" for f in sdtm.findings]
    positions = [section.index(r) for r in rules]
    assert positions == sorted(positions)
    assert "<code>AE</code>, <code>LB</code>" in section
    clean = section[section.index('id="sdtm-clean-03"') :]
    assert '<span class="badge b-ok">conforms</span>' in clean[: clean.index("</tr>")]
    biofed = section[section.index('id="sdtm-biofed-01"') :]
    assert '<span class="badge b-bad">errors</span>' in biofed[: biofed.index("</tr>")]


def test_the_report_never_shows_a_patient_value_or_a_finding_message(
    lab_lake: Path, tmp_path: Path
):
    _data, html = _render(lab_lake, tmp_path / "report")
    for sentinel in (
        SENTINEL_PATIENT,
        SENTINEL_TEXT,
        SENTINEL_ACCESSION,
        SENTINEL_MESSAGE,
        SENTINEL_LOCATOR,
        "98765",
    ):
        assert sentinel not in html


def test_a_lake_without_lab_or_trials_says_so_in_both_sections(ehr_only_lake: Path, tmp_path: Path):
    data, html = _render(ehr_only_lake, tmp_path / "report")

    assert data.lab_mapping is None and data.sdtm is None
    assert data.summary.unmapped_lab_codes is None and data.summary.sdtm_errors is None
    lab = _section(html, "lab-mapping")
    assert "Lab terminology mapping: not yet recorded. This lake has no lab silo" in lab
    sdtm = _section(html, "sdtm")
    assert "SDTM conformance: not yet recorded. This lake has no trials silo" in sdtm
    assert "no lab mapping report" in html and "no trials findings" in html


def test_lab_results_without_a_mapping_report_show_the_counts_and_a_note(
    tmp_path: Path,
):
    lake = tmp_path / "lake"
    _write(lake, "silver/lab/lab_results", _silver_rows())
    data, html = _render(lake, tmp_path / "report")

    assert data.lab_mapping is not None
    assert data.lab_mapping.results_found and not data.lab_mapping.report_found
    assert data.summary.unmapped_lab_codes is None
    section = _section(html, "lab-mapping")
    assert "<code>SITE-B07</code>" in section
    assert "<code>silver/lab/mapping_report</code> is not in the lake yet." in section


def test_empty_lab_tables_say_there_is_nothing_yet(tmp_path: Path):
    lake = tmp_path / "lake"
    _write(lake, "silver/lab/lab_results", _silver_rows().clear())
    _write(lake, "silver/lab/mapping_report", _mapping_report().clear())
    _write(lake, "bronze/trials/findings", _findings().clear())
    data, html = _render(lake, tmp_path / "report")

    assert data.lab_mapping is not None and data.lab_mapping.sites == ()
    assert (data.summary.unmapped_lab_codes, data.summary.unknown_lab_units) == (0, 0)
    assert (data.summary.sdtm_errors, data.summary.sdtm_warnings) == (0, 0)
    lab = _section(html, "lab-mapping")
    assert "has no results yet" in lab
    assert "every local code was mapped and every unit recognised" in lab
    assert "No finding: every dataset passed every rule checked." in _section(html, "sdtm")


def test_a_mapping_report_without_its_columns_is_noted_not_fatal(tmp_path: Path):
    lake = tmp_path / "lake"
    _write(lake, "silver/lab/mapping_report", pl.DataFrame({"site": ["SITE-A01"]}))
    data, html = _render(lake, tmp_path / "report")

    assert data.lab_mapping is not None and not data.lab_mapping.report_found
    assert any("silver/lab/mapping_report lacks columns" in n for n in data.notes)
    assert "could not be used (see the notes above)" in _section(html, "lab-mapping")
