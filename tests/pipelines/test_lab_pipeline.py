"""End to end: the lab silo's LIS CSV exports and HL7 v2 ORU feeds -> bronze (per source file,
malformed records quarantined) -> one conformed silver table (LOINC, UCUM) linked to
person_key -> the de-identified research view, served through MCP.

Every expectation comes from outside the pipeline: the generator's ground truth
(``lab_truth``) and constants, the landed files (hashed, and read with the connectors
directly), the site maps' YAML, the de-identification keys of the lake. The tests read the
session lake; the rerun tests work on a copy, so they disturb no other test.
"""

import csv
import hashlib
import html
import io
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

from connectors.hl7v2 import read_hl7v2
from connectors.lab_csv import load_profile, read_lab_csv
from connectors.synth import build_people
from connectors.synth.lab import (
    CSV_FILES,
    CSV_SITES,
    DELIBERATE,
    HL7_FILES,
    HL7_SITES,
    MALFORMED_FILE,
    MALFORMED_MESSAGE_ID,
    SITE_TESTS,
    UNKNOWN_UNITS,
    UNMAPPED_CODES,
    lab_truth,
)
from mcp_catalog.governance.consent import consented_people
from mcp_catalog.governance.deid import date_shifts, keyed_hash
from mcp_catalog.governance.keys import load_keys
from mcp_catalog.policy import load_policy
from pipelines import lab
from pipelines.cli import main, materialize
from pipelines.lake import Lake
from tests.pipelines.conftest import PATIENTS, SEED, call_tool

GOLD = "gold/research/lab_results"
CROSSWALK = "restricted/person_crosswalk"
CONSENTS = "silver/consent/consents"
MAPS = Path(__file__).resolve().parents[2] / "connectors" / "terminology" / "maps"
SITES = (*CSV_SITES, *HL7_SITES)
MAPPED_SITES = ("SITE-A01", "SITE-B07", "SITE-D02")
"""The sites that send local codes only, so every result goes through the site's map."""

LAB_TABLES = (
    lab.RESULTS_PATH,
    lab.MESSAGES_PATH,
    lab.FILES_PATH,
    lab.REJECTS_PATH,
    lab.INDEX_PATH,
    lab.SILVER_PATH,
    lab.REPORT_PATH,
    GOLD,
)
LAB_SELECTION = ",".join(
    [
        "bronze/lab/results",
        "bronze/lab/messages",
        "bronze/lab/rejects",
        "bronze/lab/files",
        "bronze/lab/patient_index",
        "silver/lab/lab_results",
        "silver/lab/mapping_report",
        GOLD,
    ]
)
"""The lab silo's assets, from landing to the research view (their checks run with them)."""

KEY = ["site", "lab_patient_id", "accession", "test_code"]
"""What names one result in the ground truth and in silver: the site, the lab's patient id,
the accession and the code the source sent as the test's primary code."""

REL_TOL = 1e-9

CANONICAL = {
    "glucose": ("2345-7", "mg/dL"),
    "creatinine": ("2160-0", "mg/dL"),
    "hba1c": ("4548-4", "%"),
}
"""Analytes sent in a different unit (and, by SITE-B07, under a different LOINC) by each
site, with the canonical LOINC and unit they must land under."""

VIEW_COLUMNS = [
    "record_key", "person_pseudonym", "site", "source_kind", "category", "loinc",
    "loinc_display", "analyte", "value", "unit", "comparator", "value_original",
    "unit_original", "value_code", "value_system", "value_display", "reference_low",
    "reference_high", "abnormal_flag", "result_status", "specimen_type", "collected_at",
    "resulted_at", "mapping_status", "unit_status", "map_version",
]  # fmt: skip
"""The columns of ``research/lab_results`` the lab contract fixes, in order: no lab
identifier, no free text, no provenance."""

PROVENANCE = ("ingested_at", "source_sha256")
"""Silver columns a re-read file refreshes on all of its rows."""


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def truth() -> pl.DataFrame:
    """What the generator wrote for the session cohort: one row per result a reader keeps."""
    return lab_truth(build_people(PATIENTS, SEED))


def _site_maps() -> dict[str, dict]:
    """Each site map's YAML as written in connectors/terminology/maps."""
    return {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) for p in MAPS.glob("*.yaml")}


def _with_sent_code(silver: pl.DataFrame) -> pl.DataFrame:
    """Silver rows with ``test_code``: the code the source sent first (OBX-3.1 or the CSV code
    column), as ``lab_truth`` keys results. That is the LOINC when the source sent one (HL7
    SITE-A02 and SITE-C03), else the site's local code."""
    sent_loinc = pl.col("mapping_status").is_in(["loinc_reported", "invalid_loinc"])
    return silver.with_columns(
        pl.when(sent_loinc)
        .then(pl.col("source_loinc"))
        .otherwise(pl.col("local_code"))
        .alias("test_code")
    )


def _matched(silver: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """Truth rows joined one to one with silver rows on :data:`KEY` (silver columns that share
    a truth column's name get the suffix ``_silver``). Asserts that every truth result is in
    silver exactly once and silver holds nothing else."""
    keyed = _with_sent_code(silver)
    assert truth.select(KEY).is_duplicated().sum() == 0, "the truth's natural key is not unique"
    duplicated = keyed.select(KEY).is_duplicated().sum()
    assert duplicated == 0, f"{duplicated} silver rows share a natural key with another row"
    missing = truth.join(keyed, on=KEY, how="anti")
    assert missing.height == 0, (
        f"{missing.height} results the generator wrote are not in silver: "
        f"{missing.select('site', 'test_code', 'deliberate').rows()[:5]}"
    )
    extra = keyed.join(truth, on=KEY, how="anti")
    assert extra.height == 0, (
        f"{extra.height} silver rows match no result the generator wrote: "
        f"{extra.select('site', 'test_code', 'result_status').rows()[:5]}"
    )
    return truth.join(keyed, on=KEY, how="inner", suffix="_silver")


def _close(left: str, right: str) -> pl.Expr:
    """``left`` equals ``right`` to a relative tolerance of :data:`REL_TOL`; null is not close."""
    tolerance = REL_TOL * pl.max_horizontal(pl.col(left).abs(), pl.col(right).abs())
    return ((pl.col(left) - pl.col(right)).abs() <= tolerance).fill_null(False)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _landed_lab_files(landing: Path) -> dict[str, tuple[str, Path]]:
    """The lab files the generator lands, by path below ``landing/lab``: (site, path)."""
    folder = landing / "lab"
    files = {
        f"csv/{site}/{name}": (site, folder / "csv" / site / name)
        for site, names in CSV_FILES.items()
        for name in names
    }
    files |= {f"hl7/{name}": (site, folder / "hl7" / name) for site, name in HL7_FILES.items()}
    return files


def _read_directly(site: str, path: Path):
    """A landed lab file read with its connector in quarantine mode, as a reader would."""
    if path.suffix == ".csv":
        return read_lab_csv(path, site=load_profile(site), on_error="quarantine")
    return read_hl7v2(path, on_error="quarantine")


def _hl7_messages(path: Path) -> list[list[str]]:
    """The messages of an HL7 v2 file as lists of segments, framing and byte order mark
    removed (MLLP, CR or LF separated)."""
    text = path.read_bytes().decode("utf-8").lstrip("\ufeff")
    text = text.replace("\x0b", "").replace("\x1c", "")
    messages: list[list[str]] = []
    for segment in re.split(r"[\r\n]+", text):
        if segment.startswith("MSH"):
            messages.append([])
        if segment and messages:
            messages[-1].append(segment)
    return messages


def _message_values(path: Path, control_id: str) -> set[str]:
    """Every component of 4 or more characters in the segments after MSH of the message with
    MSH-10 ``control_id``: the patient, order and result values it carries."""
    found = [m for m in _hl7_messages(path) if m[0].split("|")[9] == control_id]
    assert len(found) == 1, f"{path.name} should hold exactly one message {control_id}"
    values = set()
    for segment in found[0][1:]:
        for field in segment.split("|")[1:]:
            values |= {v for v in re.split(r"[\^~&]", field) if len(v) >= 4}
    return values


def _markdown_rows(text: str) -> list[dict[str, str]]:
    """The rows of a Markdown table (as ``quality.report.lab_mapping.markdown_table`` writes
    it), as dicts of cell text by column."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [
        dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        for line in lines[2:]
    ]


def _html_rows(fragment: str) -> list[list[str]]:
    """The body rows of the HTML tables in ``fragment``, each as its cells' inner HTML."""
    rows = [
        re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        for row in re.findall(r"<tr>(.*?)</tr>", fragment, re.S)
    ]
    return [cells for cells in rows if cells]


def _cell_text(cell: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()


def _cell_code(cell: str) -> str:
    """The text of the first ``<code>`` of a cell (a code cell also holds its system)."""
    match = re.search(r"<code>(.*?)</code>", cell, re.S)
    assert match is not None, "the cell holds no code"
    return html.unescape(match.group(1))


def _expected_issues(truth: pl.DataFrame) -> pl.DataFrame:
    """The mapping report the planted irregularities call for: per site, the local code its
    map lacks and the unit no UCUM spelling matches, with the rows the generator wrote."""
    maps = _site_maps()
    rows = []
    for site in sorted(UNMAPPED_CODES):
        for issue, (code, unit) in (
            ("unknown_unit", UNKNOWN_UNITS[site]),
            ("unmapped_code", UNMAPPED_CODES[site]),
        ):
            planted = truth.filter(pl.col("site") == site, pl.col("deliberate") == issue)
            # The generator's own bookkeeping: the rows of the irregularity carry its code and
            # unit, and a small roster plants at most the stated number of them.
            assert set(planted.select("test_code", "unit_written").rows()) == {(code, unit)}
            assert 0 < planted.height <= DELIBERATE[site][issue], (site, issue)
            name = next(t.name for t in SITE_TESTS[site].values() if t.code == code)
            rows.append(
                {
                    "site": site,
                    "source_kind": "csv" if site in CSV_SITES else "hl7v2",
                    "map_version": maps[site]["version"],
                    "issue": issue,
                    "code": code,
                    "code_display": name,
                    "unit": unit,
                    "rows": planted.height,
                }
            )
    return pl.DataFrame(rows, schema_overrides={"rows": pl.Int64()})


def _latest_metadata(instance: dg.DagsterInstance, path: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(path.split("/")))
    assert event is not None and event.asset_materialization is not None, path
    return event.asset_materialization.metadata


# --- conformance ----------------------------------------------------------------------------


def test_one_analyte_from_every_site_lands_under_one_loinc_and_unit_with_its_true_value(
    materialised_lake, truth
):
    lake = Lake(materialised_lake.root)
    joined = _matched(lake.read(lab.SILVER_PATH), truth)
    # Glucose, creatinine and HbA1c reach silver from both CSV sites (conventional and SI
    # units, SITE-B07 under the molar or IFCC LOINC) and from the three HL7 feeds (LOINC or
    # local codes): one canonical LOINC and one unit each.
    for analyte, (loinc, unit) in CANONICAL.items():
        rows = joined.filter(
            pl.col("loinc") == loinc,
            pl.col("value").is_not_null(),
            pl.col("deliberate").ne_missing("unknown_unit"),
        )
        assert set(rows.get_column("site")) == set(SITES), analyte
        assert set(rows.get_column("loinc_silver")) == {loinc}, analyte
        assert set(rows.get_column("unit_silver")) == {unit}, analyte
        sent = dict(rows.group_by("site").agg(pl.col("unit_original").unique().sort()).iter_rows())
        assert sent == {site: [SITE_TESTS[site][analyte].unit] for site in SITES}, analyte
        b07 = rows.filter(pl.col("site") == "SITE-B07")
        assert set(b07.get_column("source_loinc")) == {SITE_TESTS["SITE-B07"][analyte].loinc}
    assert {"mmol/L", "µmol/L", "mmol/mol"} <= set(
        joined.filter(pl.col("site") == "SITE-B07").get_column("unit_original")
    )

    # Every number the generator wrote, converted to the canonical unit, is the silver value.
    numeric = joined.filter(
        pl.col("value").is_not_null(), pl.col("deliberate").ne_missing("unknown_unit")
    )
    assert numeric.height > 0.95 * truth.height
    wrong = numeric.filter(
        ~_close("value_silver", "value")
        | pl.col("unit_silver").ne_missing(pl.col("unit"))
        | pl.col("loinc_silver").ne_missing(pl.col("loinc"))
        | ~_close("value_original", "value_written")
    )
    assert wrong.height == 0, (
        f"{wrong.height} silver values disagree with the generator's: "
        f"{wrong.select('site', 'test_code', 'value', 'value_silver', 'unit_silver').rows()[:5]}"
    )
    # Reference limits are converted like the values: the site's limits through the site's
    # own conversion of that test (SI factors, the HbA1c master equation).
    conversions = pl.DataFrame(
        [
            {"site": site, "local_code": t.code, "slope": t.slope, "intercept": t.intercept}
            for site, tests in SITE_TESTS.items()
            for t in tests.values()
        ]
    )
    limits = numeric.join(conversions, on=["site", "local_code"], how="left")
    assert limits.get_column("slope").null_count() == 0
    for side in ("reference_low", "reference_high"):
        limits = limits.with_columns(
            (pl.col("slope") * pl.col(side) + pl.col("intercept")).alias(f"{side}_expected")
        )
        wrong = limits.filter(
            ~_close(f"{side}_silver", f"{side}_expected")
            & ~(pl.col(f"{side}_silver").is_null() & pl.col(side).is_null())
        )
        assert wrong.is_empty(), f"{wrong.height} silver {side} values are not the site's limit"
    # Results without a number (pending, coded, comments) have no value either.
    assert joined.filter(pl.col("value").is_null(), pl.col("value_silver").is_not_null()).is_empty()
    for column in ("collected_at", "resulted_at", "comparator", "result_status"):
        differs = joined.filter(pl.col(column).ne_missing(pl.col(f"{column}_silver")))
        assert differs.is_empty(), f"{differs.height} silver {column} values differ"
    assert set(joined.get_column("comparator").drop_nulls()) == {"<"}

    # The planted unknown units: no value or unit in silver, the number and unit as written.
    unknown = joined.filter(pl.col("deliberate") == "unknown_unit")
    assert (
        unknown.height
        == sum(
            truth.filter(pl.col("site") == s, pl.col("deliberate") == "unknown_unit").height
            for s in UNKNOWN_UNITS
        )
        > 0
    )
    assert unknown.get_column("value_silver").null_count() == unknown.height
    assert unknown.get_column("unit_silver").null_count() == unknown.height
    assert set(unknown.get_column("unit_status")) == {"unknown_unit"}
    assert (unknown.get_column("value_original") == unknown.get_column("value_written")).all()
    assert (unknown.get_column("unit_original") == unknown.get_column("unit_written")).all()
    assert {(s, u) for s, u in unknown.select("site", "unit_original").iter_rows()} == {
        (site, unit) for site, (_, unit) in UNKNOWN_UNITS.items()
    }
    # They keep the analyte's LOINC: the code was mapped, only the unit is unusable.
    assert (unknown.get_column("loinc_silver") == unknown.get_column("loinc")).all()


def test_the_mapping_report_lists_exactly_the_planted_codes_and_units(
    materialised_lake, truth, tmp_path
):
    lake = Lake(materialised_lake.root)
    expected = _expected_issues(truth)
    report = lake.read(lab.REPORT_PATH)
    assert_frame_equal(
        report.select(expected.columns).sort("site", "issue"),
        expected.sort("site", "issue"),
    )

    # The silver asset's materialisation metadata carries the same tables.
    metadata = _latest_metadata(materialised_lake.instance, lab.SILVER_PATH)
    issues = _markdown_rows(metadata["mapping_issues"].value)
    assert {(r["site"], r["issue"], r["code"], r["unit"], int(r["rows"])) for r in issues} == set(
        expected.select("site", "issue", "code", "unit", "rows").iter_rows()
    )
    by_site = {r["site"]: r for r in _markdown_rows(metadata["mapping_by_site"].value)}
    assert set(by_site) == set(SITES)
    maps = _site_maps()
    for site, row in by_site.items():
        rows = truth.filter(pl.col("site") == site)
        planted = dict(rows.group_by("deliberate").len().drop_nulls().iter_rows())
        assert int(row["results"]) == rows.height, site
        assert int(row["unmapped"]) == planted.get("unmapped_code", 0), site
        assert int(row["unknown_unit"]) == planted.get("unknown_unit", 0), site
        assert row["map_version"] == (maps[site]["version"] if site in MAPPED_SITES else ""), site

    # `biofed report` renders them in its lab mapping section.
    assert main(["report", "--lake", str(materialised_lake.root), "--out", str(tmp_path)]) == 0
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    start = page.index('<section id="lab-mapping">')
    section = page[start : page.index("</section>", start)]
    overview, issue_tables = section.split("<h3>Codes and units that did not conform</h3>")
    site_rows = {_cell_text(r[0]): [_cell_text(c) for c in r] for r in _html_rows(overview)}
    assert set(site_rows) == set(SITES)
    for site, cells in site_rows.items():
        # Site, source, results, as reported, mapped, map version, unmapped, invalid,
        # canonical, converted, unknown, unconvertible, other.
        rows = truth.filter(pl.col("site") == site)
        planted = dict(rows.group_by("deliberate").len().drop_nulls().iter_rows())
        assert int(cells[2].replace(",", "")) == rows.height, site
        assert int(cells[6]) == planted.get("unmapped_code", 0), site
        assert int(cells[10]) == planted.get("unknown_unit", 0), site
    shown = set()
    for block in issue_tables.split('<h3 id="lab-')[1:]:
        site = _cell_code(block)
        for cells in _html_rows(block):
            issue = _cell_text(cells[0]).replace(" ", "_")
            shown.add(
                (site, issue, _cell_code(cells[1]), _cell_code(cells[3]), int(_cell_text(cells[7])))
            )
    assert shown == set(expected.select("site", "issue", "code", "unit", "rows").iter_rows())


def test_results_mapped_through_a_site_map_carry_that_maps_version(materialised_lake, truth):
    lake = Lake(materialised_lake.root)
    silver = lake.read(lab.SILVER_PATH)
    maps = _site_maps()
    assert set(MAPPED_SITES) <= set(maps)
    mapped = silver.filter(pl.col("mapping_status") == "mapped")
    assert set(mapped.get_column("site")) == set(MAPPED_SITES)
    for site, code, source_loinc, version in (
        mapped.select("site", "local_code", "source_loinc", "map_version").unique().iter_rows()
    ):
        assert version == maps[site]["version"], (site, code)
        assert source_loinc == maps[site]["codes"][code]["loinc"], (site, code)
    # A code the map lacks was looked up in the same map version; a LOINC sent needs no map.
    unmapped = silver.filter(pl.col("mapping_status") == "unmapped")
    for site, code, version in unmapped.select("site", "local_code", "map_version").iter_rows():
        assert code not in maps[site]["codes"] and version == maps[site]["version"], (site, code)
    reported = silver.filter(pl.col("mapping_status") == "loinc_reported")
    assert set(reported.get_column("site")) == {"SITE-A02", "SITE-C03"}
    assert reported.get_column("map_version").null_count() == reported.height
    # Every result of a site that sends local codes went through its map, every result of a
    # site that sends LOINC codes did not.
    counts = dict(
        silver.group_by("site", "mapping_status")
        .len()
        .select(pl.concat_str("site", "mapping_status", separator="/"), "len")
        .iter_rows()
    )
    expected = {}
    for site in SITES:
        rows = truth.filter(pl.col("site") == site)
        if site in MAPPED_SITES:
            unmapped_rows = rows.filter(pl.col("deliberate") == "unmapped_code").height
            expected[f"{site}/mapped"] = rows.height - unmapped_rows
            expected[f"{site}/unmapped"] = unmapped_rows
        else:
            expected[f"{site}/loinc_reported"] = rows.height
    assert counts == expected


def test_a_corrected_hl7_order_leaves_one_final_row_per_test(materialised_lake, truth):
    lake = Lake(materialised_lake.root)
    corrected = truth.filter(pl.col("deliberate") == "corrected")
    orders = corrected.select("site", "accession").unique()
    assert dict(orders.group_by("site").len().iter_rows()) == {
        site: DELIBERATE[site]["corrected"] for site in HL7_SITES if "corrected" in DELIBERATE[site]
    }
    # The feeds send each such result twice, preliminary then final (read directly).
    files = _landed_lab_files(materialised_lake.landing)
    sent = []
    for site, path in files.values():
        if site in HL7_SITES:
            rows = _read_directly(site, path).tables["lab_results"]
            sent.append(rows.rename({"patient_id": "lab_patient_id"}))
    sent = pl.concat(sent).join(corrected.select(KEY), on=KEY, how="semi")
    by_status = sent.group_by(KEY).agg(
        pl.col("value_number").filter(pl.col("result_status") == "P").alias("preliminary"),
        pl.col("value_number").filter(pl.col("result_status") == "F").alias("final"),
        pl.len().alias("sent"),
    )
    check = corrected.join(by_status, on=KEY, how="left")
    assert (check.get_column("sent") == 2).all(), "each corrected result is sent P then F"
    assert check.get_column("preliminary").to_list() == [
        [v] for v in check.get_column("superseded_value_written")
    ]
    assert check.get_column("final").to_list() == [[v] for v in check.get_column("value_written")]

    # Silver keeps one row per test: the final value, status F, from the final message.
    joined = _matched(lake.read(lab.SILVER_PATH), truth).filter(pl.col("deliberate") == "corrected")
    assert joined.height == corrected.height
    assert set(joined.get_column("result_status_silver")) == {"F"}
    assert (joined.get_column("value_original") == joined.get_column("value_written")).all()
    assert (joined.get_column("message_id_silver") == joined.get_column("message_id")).all()
    changed = joined.filter(pl.col("value_written") != pl.col("superseded_value_written"))
    assert dict(changed.group_by("site", "accession").len().select("accession", "len").rows()) == {
        accession: 1 for accession in orders.get_column("accession")
    }, "one value of each corrected order differs between the P and F messages"
    metadata = _latest_metadata(materialised_lake.instance, lab.SILVER_PATH)
    assert metadata["superseded_results"].value == corrected.height


# --- bronze ----------------------------------------------------------------------------------


def test_the_malformed_message_is_the_only_reject_and_its_reason_holds_no_value(
    materialised_lake,
):
    lake = Lake(materialised_lake.root)
    rejects = lake.read(lab.REJECTS_PATH)
    assert rejects.height == 1
    reject = rejects.row(0, named=True)
    path = materialised_lake.landing / MALFORMED_FILE
    assert reject["source"] == Path(MALFORMED_FILE).relative_to("lab").as_posix()
    locator = reject["locator"]
    assert locator == f"MSH-10:{MALFORMED_MESSAGE_ID}" or locator.startswith(
        f"MSH-10:{MALFORMED_MESSAGE_ID}/"
    ), locator
    assert reject["source_sha256"] == _sha256(path)
    values = _message_values(path, MALFORMED_MESSAGE_ID)
    assert len(values) > 10, "the malformed message should carry patient and result values"
    assert reject["reason"], "a reject needs a reason"
    leaked = sorted(v for v in values if v in reject["reason"])
    assert not leaked, f"{len(leaked)} values of the message appear in the reject reason"


def test_the_ledger_lists_every_landed_file_with_its_hash_and_counts(materialised_lake, truth):
    lake = Lake(materialised_lake.root)
    landing = materialised_lake.landing / "lab"
    files = _landed_lab_files(materialised_lake.landing)
    on_disk = {
        p.relative_to(landing).as_posix()
        for p in landing.rglob("*")
        if p.is_file() and p.suffix in (".csv", ".hl7")
    }
    assert on_disk == set(files) | {lab.INDEX_NAME}
    ledger = {r["source_file"]: r for r in lake.read(lab.FILES_PATH).iter_rows(named=True)}
    assert set(ledger) == set(files)
    bronze = dict(lake.read(lab.RESULTS_PATH).group_by("source_file").len().iter_rows())
    for source_file, (site, path) in files.items():
        row = ledger[source_file]
        data = path.read_bytes()
        assert row["source_sha256"] == hashlib.sha256(data).hexdigest(), source_file
        assert row["bytes"] == len(data), source_file
        read = _read_directly(site, path)
        assert row["records"] == read.tables["lab_results"].height, source_file
        assert row["rejects"] == read.rejects.height, source_file
        # The same counts from the ground truth: one record per result, a corrected result
        # twice (P then F), and only the malformed message's result quarantined.
        written = truth.filter(pl.col("file") == f"lab/{source_file}")
        twice = written.filter(pl.col("deliberate") == "corrected").height
        assert row["records"] == written.height + twice, source_file
        assert row["rejects"] == (1 if f"lab/{source_file}" == MALFORMED_FILE else 0)
        assert bronze[source_file] == row["records"], source_file


# --- linking ---------------------------------------------------------------------------------


def test_every_result_is_linked_to_the_person_the_crosswalk_gives_its_mrn(materialised_lake, truth):
    lake = Lake(materialised_lake.root)
    silver = lake.read(lab.SILVER_PATH)
    with (materialised_lake.landing / "lab" / lab.INDEX_NAME).open(newline="") as handle:
        index = {(r["site"], r["lab_patient_id"]): r["mrn"] for r in csv.DictReader(handle)}
    crosswalk = lake.read(CROSSWALK).filter(pl.col("identifier_type") == "mrn")
    person_of_mrn = dict(crosswalk.select("identifier", "person_key").iter_rows())
    # The generator's index is the truth's: each result's lab patient is its person's MRN.
    assert {(s, p, m) for s, p, m in truth.select("site", "lab_patient_id", "mrn").iter_rows()} <= {
        (s, p, m) for (s, p), m in index.items()
    }
    assert set(index.values()) <= set(person_of_mrn), "an indexed MRN is not in the crosswalk"
    wrong = [
        row
        for row in silver.select("site", "lab_patient_id", "person_key").iter_rows()
        if (row[0], row[1]) in index and row[2] != person_of_mrn[index[(row[0], row[1])]]
    ]
    assert not wrong, f"{len(wrong)} results are linked to someone else than their MRN's person"
    joined = _matched(silver, truth)
    expected = joined.get_column("mrn").replace_strict(person_of_mrn, return_dtype=pl.String())
    assert (joined.get_column("person_key") == expected).all()
    counts = dict(silver.group_by("link_status").len().iter_rows())
    assert counts == {"linked": truth.height}
    metadata = _latest_metadata(materialised_lake.instance, lab.SILVER_PATH)
    assert (
        metadata["results_linked"].value,
        metadata["results_unknown_patient"].value,
        metadata["results_unknown_mrn"].value,
    ) == (truth.height, 0, 0)


# --- reruns ----------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """Every lab table's version and content at one moment."""

    versions: dict[str, int | None]
    tables: dict[str, pl.DataFrame]


@dataclass
class Reruns:
    """A copy of the session lake rerun twice: on the unchanged landing, then after one value
    of one CSV export was rewritten."""

    before: Snapshot
    unchanged: Snapshot
    changed: Snapshot
    unchanged_ok: bool
    changed_ok: bool
    source_file: str
    """The rewritten export, below ``landing/lab``."""
    new_sha256: str
    result_id: str
    """The silver result whose value was rewritten."""
    new_value: float


def _snapshot(lake: Lake) -> Snapshot:
    return Snapshot({p: lake.version(p) for p in LAB_TABLES}, {p: lake.read(p) for p in LAB_TABLES})


def _rewrite_one_glucose(lake: Lake, landing: Path) -> tuple[str, str, float]:
    """Add 1 mg/dL to one final glucose result of a consented person in SITE-A01's later
    export, changing nothing else in the file. Returns the file, the result id and the new
    value."""
    source_file = f"csv/SITE-A01/{CSV_FILES['SITE-A01'][1]}"
    consented = consented_people(lake.read(CONSENTS), as_of=datetime.now(UTC))
    target = (
        lake.read(lab.SILVER_PATH)
        .filter(
            pl.col("source_file") == source_file,
            pl.col("local_code") == "GLU",
            pl.col("result_status") == "F",
            pl.col("value_original").is_not_null(),
            pl.col("person_key").is_in(consented.implode()),
        )
        .sort("result_id")
        .row(0, named=True)
    )
    path = landing / "lab" / source_file
    lines = path.read_bytes().decode("utf-8").split("\n")
    header = next(csv.reader([lines[0]]))
    found = []
    for number, line in enumerate(lines[1:], start=1):
        row = dict(zip(header, next(csv.reader([line])), strict=True)) if line else {}
        if (row.get("MRN"), row.get("ACCESSION"), row.get("TEST_CODE")) == (
            target["lab_patient_id"],
            target["accession"],
            "GLU",
        ):
            found.append((number, row))
    assert len(found) == 1, "the glucose result to rewrite should be on one line"
    number, row = found[0]
    new_value = float(row["RESULT"]) + 1
    row["RESULT"] = f"{new_value:.0f}"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([row[c] for c in header])
    lines[number] = buffer.getvalue()
    path.write_bytes("\n".join(lines).encode("utf-8"))
    return source_file, target["result_id"], new_value


@pytest.fixture(scope="module")
def reruns(materialised_lake, tmp_path_factory) -> Reruns:
    """Copy the session lake and landing, rerun the lab assets on the unchanged landing, then
    rewrite one value of one CSV export and rerun them again."""
    base = tmp_path_factory.mktemp("lab-reruns")
    root, landing = base / "lake", base / "landing"
    # copytree keeps modification times, so the copied landing is the same delivery.
    shutil.copytree(materialised_lake.root, root)
    shutil.copytree(materialised_lake.landing, landing)
    lake = Lake(root)
    before = _snapshot(lake)
    with dg.instance_for_test() as instance:
        first = materialize(str(root), str(landing), LAB_SELECTION, instance=instance)
        unchanged = _snapshot(lake)
        source_file, result_id, new_value = _rewrite_one_glucose(lake, landing)
        second = materialize(str(root), str(landing), LAB_SELECTION, instance=instance)
        changed = _snapshot(lake)
    return Reruns(
        before,
        unchanged,
        changed,
        first.success,
        second.success,
        source_file,
        _sha256(landing / "lab" / source_file),
        result_id,
        new_value,
    )


def test_a_rerun_on_the_unchanged_landing_commits_no_new_version(reruns):
    assert reruns.unchanged_ok, "the rerun of the lab assets failed"
    assert reruns.before.versions[lab.SILVER_PATH] is not None
    assert reruns.unchanged.versions == reruns.before.versions
    for path in LAB_TABLES:
        assert_frame_equal(reruns.unchanged.tables[path], reruns.before.tables[path])


def _changed_rows(before: pl.DataFrame, after: pl.DataFrame, key: str, ignore=()) -> dict:
    """Per key whose row differs between two versions (ignoring ``ignore`` columns): the
    columns that differ. Asserts both versions hold the same keys."""
    assert set(before.get_column(key)) == set(after.get_column(key))
    columns = [c for c in before.columns if c != key and c not in ignore]
    joined = before.join(after, on=key, how="inner", suffix="_after")
    changed = {}
    for row in joined.iter_rows(named=True):
        differ = {c for c in columns if row[c] != row[f"{c}_after"]}
        if differ:
            changed[row[key]] = differ
    return changed


def test_a_changed_export_is_read_again_and_changes_only_its_one_result(reruns, materialised_lake):
    assert reruns.changed_ok, "the rerun after rewriting one export failed"
    before, after = reruns.unchanged, reruns.changed
    # Only the rewritten file was read again.
    ledger_before = before.tables[lab.FILES_PATH].sort("source_file")
    ledger_after = after.tables[lab.FILES_PATH].sort("source_file")
    rewritten = pl.col("source_file") == reruns.source_file
    assert_frame_equal(ledger_after.filter(~rewritten), ledger_before.filter(~rewritten))
    old, new = (
        ledger_before.filter(rewritten).row(0, named=True),
        ledger_after.filter(rewritten).row(0, named=True),
    )
    assert new["source_sha256"] == reruns.new_sha256 != old["source_sha256"]
    assert new["ingested_at"] > old["ingested_at"]
    assert (new["records"], new["rejects"]) == (old["records"], old["rejects"])
    order = ["source_file", "source_locator"]
    bronze_before = before.tables[lab.RESULTS_PATH].sort(order)
    bronze_after = after.tables[lab.RESULTS_PATH].sort(order)
    assert_frame_equal(bronze_after.filter(~rewritten), bronze_before.filter(~rewritten))

    # Silver: the one result has its new value; the file's other rows only their provenance;
    # every other row is untouched.
    silver_before, silver_after = before.tables[lab.SILVER_PATH], after.tables[lab.SILVER_PATH]
    assert _changed_rows(silver_before, silver_after, "result_id", PROVENANCE) == {
        reruns.result_id: {"value_text", "value_original", "value"}
    }
    row = silver_after.filter(pl.col("result_id") == reruns.result_id).row(0, named=True)
    assert (row["value_original"], row["value"], row["unit"]) == (
        reruns.new_value,
        reruns.new_value,
        "mg/dL",
    )
    reread = silver_before.filter(pl.col("source_file") == reruns.source_file)
    assert set(_changed_rows(silver_before, silver_after, "result_id")) == set(
        reread.get_column("result_id")
    )
    # The research view: one row of a consented person changes value, nothing else.
    audience = _keys(materialised_lake.root).for_audience("research")
    (record_key,) = keyed_hash(audience, [reruns.result_id], prefix="L")
    assert _changed_rows(before.tables[GOLD], after.tables[GOLD], "record_key") == {
        record_key: {"value", "value_original"}
    }
    versions = {p: after.versions[p] - before.versions[p] for p in LAB_TABLES}
    assert versions == {
        lab.RESULTS_PATH: 1,
        lab.MESSAGES_PATH: 0,
        lab.FILES_PATH: 1,
        lab.REJECTS_PATH: 0,
        lab.INDEX_PATH: 0,
        lab.SILVER_PATH: 1,
        lab.REPORT_PATH: 0,
        GOLD: 1,
    }


# --- research view ---------------------------------------------------------------------------


def _keys(root: Path):
    return load_keys(root / "restricted" / "keys.json")


def test_the_research_view_holds_linked_consented_people_without_lab_identifiers(
    materialised_lake, truth
):
    lake = Lake(materialised_lake.root)
    silver = lake.read(lab.SILVER_PATH)
    gold = lake.read(GOLD)
    keys = _keys(materialised_lake.root)
    consented = consented_people(lake.read(CONSENTS), as_of=datetime.now(UTC))
    kept = silver.filter(
        pl.col("link_status") == "linked", pl.col("person_key").is_in(consented.implode())
    )
    assert 0 < kept.height < silver.height, "consent should keep some people out"
    assert gold.columns == VIEW_COLUMNS
    audience = keys.for_audience("research")
    record_keys = keyed_hash(audience, kept.get_column("result_id").to_list(), prefix="L")
    assert sorted(gold.get_column("record_key")) == sorted(record_keys)
    kept = kept.with_columns(
        pl.Series("record_key", record_keys),
        pl.Series(
            "person_pseudonym",
            keyed_hash(audience, kept.get_column("person_key").to_list(), prefix="P"),
        ),
    )
    joined = gold.join(kept, on="record_key", how="inner", suffix="_silver")
    assert (
        joined.get_column("person_pseudonym") == joined.get_column("person_pseudonym_silver")
    ).all()

    # Times move by the person's secret shift, the same shift the EHR views use.
    shifts = date_shifts(
        lake.read(CROSSWALK).get_column("person_key").unique().to_list(), key=keys.date_shift
    )
    joined = joined.join(shifts, on="person_key", how="left")
    assert joined.get_column("shift_days").null_count() == 0
    for column in ("collected_at", "resulted_at"):
        expected = pl.col(f"{column}_silver") + pl.duration(days=pl.col("shift_days"))
        moved = joined.select(pl.col(column).eq_missing(expected).all()).item()
        assert moved, f"{column} is not the silver time moved by the person's shift"
    assert (joined.get_column("collected_at") != joined.get_column("collected_at_silver")).all()

    # No lab identifier, MRN, result id or free-text value reaches the view.
    with (materialised_lake.landing / "lab" / lab.INDEX_NAME).open(newline="") as handle:
        mrns = {r["mrn"] for r in csv.DictReader(handle)}
    identifiers = {
        "lab patient id": set(silver.get_column("lab_patient_id")),
        "MRN": mrns | set(truth.get_column("mrn")),
        "accession": set(silver.get_column("accession")),
        "message id": set(silver.get_column("message_id").drop_nulls()),
        "result id": set(silver.get_column("result_id")),
        "free-text value": set(
            silver.filter(pl.col("value_text").cast(pl.Float64, strict=False).is_null())
            .get_column("value_text")
            .drop_nulls()
        ),
    }
    assert len(identifiers["free-text value"]) >= 3, "comments and coded results as sent"
    cells = {
        str(value)
        for column in gold.columns
        for value in gold.get_column(column).unique().to_list()
        if value is not None
    }
    text = "\n".join(cells)
    for kind, values in identifiers.items():
        assert values, kind
        leaked = [v for v in values if (v in text if len(v) >= 8 else v in cells)]
        assert not leaked, f"{len(leaked)} {kind} values from silver appear in the research view"


@pytest.mark.anyio
async def test_researchers_count_hba1c_by_site_in_one_unit_and_query_its_rows(
    materialised_lake,
):
    lake = Lake(materialised_lake.root)
    hba1c = lake.read(GOLD).filter(pl.col("loinc") == "4548-4")
    assert set(hba1c.get_column("site")) == set(SITES)
    min_cell = load_policy().datasets["research/lab_results"].min_cell_size
    tools, result = await call_tool(
        materialised_lake.root, "researcher", "research", "aggregate_lab_results",
        {"group_by": ["site", "unit"], "filters": {"loinc": {"eq": "4548-4"}}},
    )  # fmt: skip
    assert {"aggregate_lab_results", "query_lab_results"} <= tools
    assert result is not None and not result.is_error, result
    answer = result.structured_content
    expected = {
        (site, unit): (people, records)
        for site, unit, people, records in hba1c.group_by("site", "unit")
        .agg(pl.col("person_pseudonym").n_unique(), pl.len())
        .iter_rows()
    }
    cells = {(c["site"], c["unit"]): c for c in answer["cells"]}
    assert set(cells) == set(expected)
    # One unit: every HbA1c result in a known unit is in NGSP %, whichever unit the lab sent.
    assert {unit for _, unit in cells if unit is not None} == {"%"}
    assert answer["min_cell_size"] == min_cell
    for group, cell in cells.items():
        people, records = expected[group]
        if people < min_cell:
            assert cell["suppressed"] and cell["suppression"] == "primary", group
            assert cell["people"] is None and cell["records"] is None, group
        if not cell["suppressed"]:
            assert (cell["people"], cell["records"]) == (people, records), group
    assert any(people < min_cell for people, _ in expected.values()), "no small cell to hide"
    population = hba1c.get_column("person_pseudonym").n_unique()
    assert population >= min_cell
    assert (answer["total_people"], answer["total_records"]) == (population, hba1c.height)

    _, rows = await call_tool(
        materialised_lake.root, "researcher", "research", "query_lab_results",
        {"filters": {"loinc": {"eq": "4548-4"}}, "limit": 500},
    )  # fmt: skip
    assert rows is not None and not rows.is_error, rows
    page = rows.structured_content
    assert not page["truncated"]
    assert {r["loinc"] for r in page["rows"]} == {"4548-4"}
    assert sorted(r["record_key"] for r in page["rows"]) == sorted(hba1c.get_column("record_key"))


@pytest.fixture
def anyio_backend():
    return "asyncio"
