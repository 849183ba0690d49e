"""The lab suites on hand-built frames (from the lab contract): clean frames pass, and a frame
with one defect fails exactly the expectation that names it."""

import hashlib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from connectors import terminology
from connectors.lab_schema import LAB_RESULT_SCHEMA
from mcp_catalog.governance.deid import MAX_SHIFT_DAYS, Pseudonyms, keyed_hash
from mcp_catalog.governance.lab import LAB_VIEWS
from mcp_catalog.governance.views import ViewContext, build_view
from pipelines import lab as pipeline
from quality.codes import loinc_check_digit_ok
from quality.suite_tables import LAB_SUITE_TABLES
from quality.suites import SUITE_TABLES, references_for, suite_for
from quality.suites._model import DeriveContext
from quality.suites.bronze import FILE_LEDGER_COLUMNS, files_suite
from quality.suites.gold import FORBIDDEN_COLUMNS
from quality.suites.lab import (
    BRONZE_RESULT_DTYPES,
    LAB_GOLD_VIEWS,
    LAB_SUITES,
    LINK_STATUS,
    LOINC_SYSTEMS,
    MAPPING_REPORT_DTYPES,
    MAPPING_STATUS,
    PATIENT_INDEX_DTYPES,
    SHIFT_ALLOWANCE,
    SILVER_RESULT_DTYPES,
    UNIT_STATUS,
    one_per_group,
)
from quality.validation import validate_table
from quality.valuesets import HL7_ABNORMAL_FLAGS, HL7_RESULT_STATUS
from tests.quality.frames import (
    assert_only_these_fail,
    defect_params,
    failed,
    set_row,
    validator,
)

RESULTS = "bronze/lab/results"
FILES = "bronze/lab/files"
PATIENT_INDEX = "bronze/lab/patient_index"
SILVER_RESULTS = "silver/lab/lab_results"
MAPPING_REPORT = "silver/lab/mapping_report"
GOLD_RESULTS = "gold/research/lab_results"
GOLD_PATIENTS = "gold/research/patients"

INGESTED = datetime(2026, 11, 1, 12, tzinfo=UTC)
WRITTEN = datetime(2026, 10, 31, 18, tzinfo=UTC)
COLLECTED = datetime(2026, 3, 2, 13, 5, tzinfo=UTC)
RESULTED = datetime(2026, 3, 2, 16, 40, tzinfo=UTC)
FUTURE = datetime.now(UTC) + timedelta(days=30)
UTC_TIME = pl.Datetime("us", "UTC")
PERSON_1 = hashlib.md5(b"person 1").hexdigest()
PERSON_2 = hashlib.md5(b"person 2").hexdigest()
P1, P2 = "P-" + "a1" * 10, "P-" + "b2" * 10
CSV_A01 = "csv/SITE-A01/results-2026-03.csv"
HL7_A02 = "hl7/SITE-A02-oru.hl7"
HL7_D02 = "hl7/SITE-D02-oru.hl7"
CSV_B07 = "csv/SITE-B07/export.csv"


def _sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _id(name: str) -> str:
    return _sha(name)[:32]


def _key(prefix: str, name: str) -> str:
    return f"{prefix}-{_sha(name)[:20]}"


# --- good frames, written from the lab contract -------------------------------------------


def results() -> pl.DataFrame:
    """A CSV glucose with a local code, an HL7 glucose sent as LOINC (the local code as the
    alternate), and a local-only HL7 code of SITE-D02."""

    def row(**values: object) -> dict[str, object]:
        base: dict[str, object] = dict.fromkeys(BRONZE_RESULT_DTYPES)
        base.update(
            value_type="NM",
            observation_seq=1,
            collected_at=COLLECTED,
            resulted_at=RESULTED,
            ingested_at=INGESTED,
        )
        base.update(values)
        base["source_sha256"] = _sha(str(base["source_file"]))
        return base

    rows = [
        row(
            source_locator="line:2",
            source_kind="csv",
            site="SITE-A01",
            patient_id="MRN00000101",
            accession="A01-0001",
            test_code="GLU",
            test_system="SITE-A01",
            test_display="Glucose",
            value_text="95",
            value_number=95.0,
            unit="mg/dL",
            reference_range="70-99",
            reference_low=70.0,
            reference_high=99.0,
            abnormal_flag="N",
            result_status="F",
            specimen_type="SER",
            source_file=CSV_A01,
        ),
        row(
            source_locator="MSH-10:MSG0001/OBX:1",
            source_kind="hl7v2",
            site="SITE-A02",
            message_id="MSG0001",
            patient_id="LAB00001234",
            patient_id_authority="SITE-A02-LIS",
            accession="A02-0001",
            test_code="2345-7",
            test_system="LN",
            test_display="Glucose [Mass/volume] in Serum or Plasma",
            alt_code="GLU",
            alt_system="L",
            value_text="182",
            value_number=182.0,
            unit="mg/dL",
            reference_low=70.0,
            reference_high=99.0,
            abnormal_flag="H~A",
            result_status="C",
            source_file=HL7_A02,
        ),
        row(
            source_locator="MSH-10:MSG0002/OBX:1",
            source_kind="hl7v2",
            site="SITE-D02",
            message_id="MSG0002",
            patient_id="MRN00000102",
            accession="D02-0001",
            test_code="GLUC",
            test_system="L",
            value_text="99",
            value_number=99.0,
            unit="mg%",
            result_status="P",
            source_file=HL7_D02,
        ),
    ]
    return pl.DataFrame(rows, schema=BRONZE_RESULT_DTYPES)


def files() -> pl.DataFrame:
    rows = [
        (CSV_A01, _sha(CSV_A01), 2048, 1, 0, INGESTED, WRITTEN),
        (HL7_A02, _sha(HL7_A02), 4096, 2, 1, INGESTED, WRITTEN),
    ]
    schema = {
        "source_file": pl.String(),
        "source_sha256": pl.String(),
        "bytes": pl.Int64(),
        "records": pl.Int64(),
        "rejects": pl.Int64(),
        "ingested_at": UTC_TIME,
        "source_modified_at": UTC_TIME,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def patient_index() -> pl.DataFrame:
    landed = ("patient_index.csv", _sha("patient_index.csv"), INGESTED)
    rows = [
        ("SITE-A01", "MRN00000101", "MRN00000101", *landed),
        ("SITE-A02", "LAB00001234", "MRN00000101", *landed),
        ("SITE-D02", "MRN00000102", "MRN00000102", *landed),
    ]
    return pl.DataFrame(rows, schema=PATIENT_INDEX_DTYPES, orient="row")


def silver_results() -> pl.DataFrame:
    """Glucose sent in mg/dL (A01, local code mapped), as LOINC (A02) and in mmol/L (B07,
    converted), a local code the map lacks, a LOINC without a canonical unit and a unit that
    is not recognised (D02)."""

    def row(name: str, **values: object) -> dict[str, object]:
        base: dict[str, object] = dict.fromkeys(SILVER_RESULT_DTYPES)
        base.update(
            result_id=_id(name),
            category="laboratory",
            collected_at=COLLECTED,
            resulted_at=RESULTED,
            value_type="NM",
            result_status="F",
            source_locator="line:2",
            ingested_at=INGESTED,
        )
        base.update(values)
        base["source_sha256"] = _sha(str(base["source_file"]))
        return base

    glucose = {"loinc": "2345-7", "loinc_display": "Glucose", "analyte": "glucose"}
    rows = [
        row(
            "a01-glu",
            person_key=PERSON_1,
            link_status="linked",
            lab_patient_id="MRN00000101",
            site="SITE-A01",
            source_kind="csv",
            accession="A01-0001",
            local_code="GLU",
            local_system="SITE-A01",
            source_loinc="2345-7",
            **glucose,
            mapping_status="mapped",
            map_version="2026.09.1",
            value_text="95",
            value_original=95.0,
            unit_original="mg/dL",
            value=95.0,
            unit="mg/dL",
            unit_status="canonical",
            reference_low=70.0,
            reference_high=99.0,
            reference_text="70-99",
            abnormal_flag="N",
            source_file=CSV_A01,
        ),
        row(
            "a02-glu",
            person_key=PERSON_1,
            link_status="linked",
            lab_patient_id="LAB00001234",
            site="SITE-A02",
            source_kind="hl7v2",
            message_id="MSG0001",
            accession="A02-0001",
            source_loinc="2345-7",
            **glucose,
            mapping_status="loinc_reported",
            value_text="182",
            value_original=182.0,
            unit_original="mg/dL",
            value=182.0,
            unit="mg/dL",
            unit_status="canonical",
            abnormal_flag="H~A",
            result_status="C",
            source_file=HL7_A02,
            source_locator="MSH-10:MSG0001/OBX:1",
        ),
        row(
            "b07-glu",
            link_status="unknown_mrn",
            lab_patient_id="0042",
            site="SITE-B07",
            source_kind="csv",
            accession="B07-0007",
            local_code="1001",
            local_system="SITE-B07",
            source_loinc="14749-6",
            **glucose,
            mapping_status="mapped",
            map_version="2026.09.1",
            value_text="5,3",
            value_original=5.3,
            unit_original="mmol/L",
            value=95.5,
            unit="mg/dL",
            unit_status="converted",
            reference_low=70.2,
            reference_high=99.1,
            source_file=CSV_B07,
        ),
        row(
            "a01-vitd",
            link_status="unknown_patient",
            lab_patient_id="MRN00009999",
            site="SITE-A01",
            source_kind="csv",
            accession="A01-0002",
            local_code="VITD25",
            local_system="SITE-A01",
            loinc_display="25-OH Vitamin D",
            mapping_status="unmapped",
            map_version="2026.09.1",
            value_text="31",
            value_original=31.0,
            unit_original="ng/mL",
            value=31.0,
            unit="ng/mL",
            unit_status="no_canonical",
            source_file=CSV_A01,
            source_locator="line:3",
        ),
        row(
            "a02-ferr",
            person_key=PERSON_1,
            link_status="linked",
            lab_patient_id="LAB00001234",
            site="SITE-A02",
            source_kind="hl7v2",
            message_id="MSG0001",
            accession="A02-0001",
            source_loinc="2276-4",
            loinc="2276-4",
            loinc_display="Ferritin",
            mapping_status="loinc_reported",
            value_text="40",
            value_original=40.0,
            unit_original="ng/mL",
            value=40.0,
            unit="ng/mL",
            unit_status="no_canonical",
            comparator=">",
            source_file=HL7_A02,
            source_locator="MSH-10:MSG0001/OBX:2",
        ),
        row(
            "d02-gluc",
            person_key=PERSON_2,
            link_status="linked",
            lab_patient_id="MRN00000102",
            site="SITE-D02",
            source_kind="hl7v2",
            message_id="MSG0002",
            accession="D02-0001",
            local_code="GLUC",
            local_system="L",
            source_loinc="2345-7",
            **glucose,
            mapping_status="mapped",
            map_version="2026.09.1",
            value_text="99",
            value_original=99.0,
            unit_original="mg%",
            unit_status="unknown_unit",
            result_status="P",
            source_file=HL7_D02,
            source_locator="MSH-10:MSG0002/OBX:1",
        ),
    ]
    return pl.DataFrame(rows, schema=SILVER_RESULT_DTYPES)


def mapping_report() -> pl.DataFrame:
    rows = [
        ("SITE-A01", "csv", "2026.09.1", "unmapped_code", "VITD25", "SITE-A01", "Vit D", None),
        ("SITE-D02", "hl7v2", "2026.09.1", "unknown_unit", "GLUC", "L", "Glucose", "mg%"),
        ("SITE-B07", "csv", "2026.09.1", "unknown_unit", "1031", "SITE-B07", "K", "mval/l"),
    ]
    rest = [(None, 3), ("glucose", 2), ("potassium", 1)]
    return pl.DataFrame(
        [(*r, *e) for r, e in zip(rows, rest, strict=True)],
        schema=MAPPING_REPORT_DTYPES,
        orient="row",
    )


def gold_patients() -> pl.DataFrame:
    return pl.DataFrame({"person_pseudonym": [P1, P2]})


def gold_results() -> pl.DataFrame:
    """The linked results of silver, as the view leaves them (times shifted by 12 days)."""
    shift = timedelta(days=-12)
    schema: dict[str, pl.DataType] = {
        c: SILVER_RESULT_DTYPES.get(c, pl.String()) for c in LAB_GOLD_VIEWS[0].columns
    }
    glucose = ("laboratory", "2345-7", "Glucose", "glucose")
    rows = [
        {
            "record_key": _key("L", "a01-glu"),
            "person_pseudonym": P1,
            "site": "SITE-A01",
            "source_kind": "csv",
            **dict(zip(("category", "loinc", "loinc_display", "analyte"), glucose, strict=True)),
            "value": 95.0,
            "unit": "mg/dL",
            "value_original": 95.0,
            "unit_original": "mg/dL",
            "reference_low": 70.0,
            "reference_high": 99.0,
            "abnormal_flag": "N",
            "result_status": "F",
            "mapping_status": "mapped",
            "unit_status": "canonical",
            "map_version": "2026.09.1",
        },
        {
            "record_key": _key("L", "a02-glu"),
            "person_pseudonym": P1,
            "site": "SITE-A02",
            "source_kind": "hl7v2",
            **dict(zip(("category", "loinc", "loinc_display", "analyte"), glucose, strict=True)),
            "value": 182.0,
            "unit": "mg/dL",
            "value_original": 182.0,
            "unit_original": "mg/dL",
            "abnormal_flag": "H~A",
            "result_status": "C",
            "mapping_status": "loinc_reported",
            "unit_status": "canonical",
        },
        {
            "record_key": _key("L", "a02-ferr"),
            "person_pseudonym": P1,
            "site": "SITE-A02",
            "source_kind": "hl7v2",
            "category": "laboratory",
            "loinc": "2276-4",
            "loinc_display": "Ferritin",
            "value": 40.0,
            "unit": "ng/mL",
            "comparator": ">",
            "value_original": 40.0,
            "unit_original": "ng/mL",
            "result_status": "F",
            "mapping_status": "loinc_reported",
            "unit_status": "no_canonical",
        },
        {
            "record_key": _key("L", "d02-gluc"),
            "person_pseudonym": P2,
            "site": "SITE-D02",
            "source_kind": "hl7v2",
            **dict(zip(("category", "loinc", "loinc_display", "analyte"), glucose, strict=True)),
            "value_original": 99.0,
            "unit_original": "mg%",
            "result_status": "P",
            "mapping_status": "mapped",
            "unit_status": "unknown_unit",
            "map_version": "2026.09.1",
        },
    ]
    for row in rows:
        row.update(collected_at=COLLECTED + shift, resulted_at=RESULTED + shift)
    return pl.DataFrame(rows, schema=schema)


GOOD: dict[str, Callable[[], pl.DataFrame]] = {
    RESULTS: results,
    FILES: files,
    PATIENT_INDEX: patient_index,
    SILVER_RESULTS: silver_results,
    MAPPING_REPORT: mapping_report,
    GOLD_RESULTS: gold_results,
}
REFERENCES: dict[str, Callable[[], pl.DataFrame]] = {
    GOLD_PATIENTS: gold_patients,
    SILVER_RESULTS: silver_results,
}

_validate = validator(GOOD, REFERENCES)


def _dup_first(frame: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([frame, frame.head(1)])


# --- registration and contracts ------------------------------------------------------------


def test_every_lab_table_is_registered_with_its_suite():
    assert set(LAB_SUITE_TABLES) == set(LAB_SUITES) == set(GOOD)
    assert set(LAB_SUITE_TABLES) <= set(SUITE_TABLES)
    assert len(SUITE_TABLES) == len(set(SUITE_TABLES))
    assert [suite_for(t).table for t in LAB_SUITE_TABLES] == list(LAB_SUITE_TABLES)


def test_only_the_research_view_reads_other_tables():
    assert {t: references_for(t) for t in LAB_SUITE_TABLES} == {
        RESULTS: (),
        FILES: (),
        PATIENT_INDEX: (),
        SILVER_RESULTS: (),
        MAPPING_REPORT: (),
        GOLD_RESULTS: (GOLD_PATIENTS, SILVER_RESULTS),
    }


@pytest.mark.parametrize("table", LAB_SUITE_TABLES)
def test_each_lab_suite_checks_its_columns_first_and_describes_every_check_once(table):
    suite = suite_for(table)
    assert suite.checks[0].expectation == "expect_table_columns_to_match_set"
    descriptions = [c.description for c in suite.checks]
    assert len(descriptions) == len(set(descriptions))
    assert set(suite.gx_columns()) <= set(suite.columns)


def test_the_suites_columns_are_the_contract_columns():
    for table, frame in GOOD.items():
        assert suite_for(table).columns == tuple(frame().columns), table
    assert tuple(BRONZE_RESULT_DTYPES)[: len(LAB_RESULT_SCHEMA)] == tuple(LAB_RESULT_SCHEMA)
    assert tuple(BRONZE_RESULT_DTYPES)[len(LAB_RESULT_SCHEMA) :] == (
        "source_file",
        "source_sha256",
        "ingested_at",
    )


def test_the_suites_columns_and_codes_are_the_pipelines_and_the_terminologys():
    assert BRONZE_RESULT_DTYPES == pipeline.RESULT_TABLE_SCHEMA
    assert PATIENT_INDEX_DTYPES == pipeline.INDEX_TABLE_COLUMNS
    assert SILVER_RESULT_DTYPES == pipeline.SILVER_COLUMNS
    assert tuple(pipeline.FILE_LEDGER_SCHEMA) == FILE_LEDGER_COLUMNS
    assert MAPPING_REPORT_DTYPES == terminology.MAPPING_REPORT_SCHEMA
    assert LINK_STATUS == pipeline.LINK_STATUSES
    assert MAPPING_STATUS == terminology.MAPPING_STATUSES
    assert UNIT_STATUS == terminology.UNIT_STATUSES
    assert frozenset(LOINC_SYSTEMS) == terminology.conform.LOINC_SYSTEMS


def test_the_lab_file_ledger_is_the_ehr_ledger_under_its_own_path():
    lab, ehr = suite_for(FILES), files_suite()
    assert (lab.table, lab.columns, lab.checks) == (FILES, FILE_LEDGER_COLUMNS, ehr.checks)


def test_lab_research_suite_matches_the_catalog_view():
    (spec,) = LAB_VIEWS
    (view,) = LAB_GOLD_VIEWS
    assert spec.path == GOLD_RESULTS
    assert view.columns == tuple(c.name for c in spec.columns)
    assert view.record_prefix == spec.record_prefix
    assert not set(view.columns) & {*FORBIDDEN_COLUMNS, "lab_patient_id", "accession"}


def test_a_shifted_date_stays_within_the_allowance():
    assert timedelta(days=MAX_SHIFT_DAYS) < SHIFT_ALLOWANCE


def test_the_value_sets_hold_what_the_contract_names():
    assert {"F", "P", "C", "X", "D", "I"} <= set(HL7_RESULT_STATUS)
    assert {"N", "L", "H", "LL", "HH", "A", "AA"} <= set(HL7_ABNORMAL_FLAGS)
    assert len(HL7_ABNORMAL_FLAGS) == len(set(HL7_ABNORMAL_FLAGS))


def test_the_good_frames_use_valid_loinc_codes():
    codes = silver_results().get_column("loinc").drop_nulls().unique().to_list()
    assert codes and all(loinc_check_digit_ok(c) for c in codes)


@pytest.mark.parametrize("table", LAB_SUITE_TABLES)
def test_clean_lab_frames_pass(table):
    result = _validate(table)
    assert failed(result) == {}
    assert result.success
    assert len(result.outcomes) == len(suite_for(table).checks)


@pytest.mark.parametrize("table", LAB_SUITE_TABLES)
def test_each_lab_suite_passes_on_an_empty_table(table):
    assert failed(_validate(table, GOOD[table]().clear())) == {}


def test_the_catalogs_lab_view_built_from_good_silver_passes_the_gold_suite():
    key = b"pseudonym key for the test......"
    context = ViewContext(
        pseudonyms=Pseudonyms(key=key),
        shifts=pl.DataFrame({"person_key": [PERSON_1, PERSON_2], "shift_days": [-10, 12]}),
        consented=pl.Series([PERSON_1, PERSON_2]),
        reference_date=date(2026, 1, 1),
    )
    (spec,) = LAB_VIEWS
    view = build_view(spec, {SILVER_RESULTS: silver_results()}, context)
    # The four linked results are in the view; the unknown patient's and MRN's are not.
    assert view.height == 4
    references = {
        GOLD_PATIENTS: pl.DataFrame(
            {"person_pseudonym": keyed_hash(key, [PERSON_1, PERSON_2], prefix="P")}
        ),
        SILVER_RESULTS: silver_results(),
    }
    assert failed(validate_table(GOLD_RESULTS, view, references=references)) == {}


# --- the unit rule, grouped ----------------------------------------------------------------


def _units(rows: list[tuple[str | None, str | None, bool]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["loinc", "unit", "applies"], orient="row")


def _one_unit(frame: pl.DataFrame) -> list[bool | None]:
    check = one_per_group(
        "one_unit", "unit", "loinc", pl.col("applies"), ("applies",), "one unit per loinc"
    )
    assert check.derived is not None
    context = DeriveContext(references={}, now=INGESTED, schema=frame.schema)
    return frame.select(check.derived.expression(context)).to_series().to_list()


def test_one_per_group_fails_every_row_of_a_group_with_two_values():
    frame = _units(
        [
            ("2345-7", "mg/dL", True),
            ("2345-7", "mmol/L", True),
            ("2345-7", "mg/dL", True),
            ("718-7", "g/dL", True),
        ]
    )
    assert _one_unit(frame) == [False, False, False, True]


def test_one_per_group_skips_rows_it_does_not_apply_to_and_empty_values():
    frame = _units(
        [
            ("2345-7", "mg/dL", True),
            ("2345-7", "mmol/L", False),
            ("2345-7", None, True),
            (None, "g/dL", True),
            (None, "mg/dL", True),
        ]
    )
    assert _one_unit(frame) == [True, None, None, None, None]


# --- single defects ------------------------------------------------------------------------

LOINC_DIGIT = "{} is a LOINC code with a valid Mod 10 check digit"

DEFECTS = [
    # bronze results
    (
        RESULTS,
        "a row without a test code",
        lambda f: set_row(f, 0, test_code=None),
        {"test_code is set on every row": 1},
    ),
    (
        RESULTS,
        "a row without a locator",
        lambda f: set_row(f, 1, source_locator=None),
        {"source_locator is set on every row": 1},
    ),
    (
        RESULTS,
        "a result read twice from one file",
        _dup_first,
        {"(site, source_file, source_locator) is unique": 2},
    ),
    (
        RESULTS,
        "a CSV status the profile did not map (only a warning)",
        lambda f: set_row(f, 0, result_status="Final"),
        {"result_status holds only HL7 table 0085 result status codes": 1},
    ),
    (
        RESULTS,
        "an unknown abnormal flag repetition (only a warning)",
        lambda f: set_row(f, 1, abnormal_flag="H~HIGH"),
        {"every abnormal_flag repetition is an HL7 table 0078 interpretation code": 1},
    ),
    (
        RESULTS,
        "a result before its collection (only a warning)",
        lambda f: set_row(f, 2, resulted_at=COLLECTED - timedelta(hours=1)),
        {"collected_at is not after resulted_at": 1},
    ),
    (
        RESULTS,
        "a LOINC with a wrong check digit (only a warning)",
        lambda f: set_row(f, 1, test_code="2345-6"),
        {LOINC_DIGIT.format("test_code") + " where test_system names LOINC (LN)": 1},
    ),
    (
        RESULTS,
        "a LOINC system spelt out, with a wrong check digit (only a warning)",
        lambda f: set_row(f, 1, test_code="2345-6", test_system="loinc"),
        {LOINC_DIGIT.format("test_code") + " where test_system names LOINC (LN)": 1},
    ),
    (
        RESULTS,
        "a local code that looks like a bad LOINC is not checked",
        lambda f: set_row(f, 0, test_code="2345-6"),
        {},
    ),
    (
        RESULTS,
        "an alternate LOINC with a wrong check digit (only a warning)",
        lambda f: set_row(f, 2, alt_code="718-6", alt_system="LN"),
        {LOINC_DIGIT.format("alt_code") + " where alt_system names LOINC (LN)": 1},
    ),
    (
        RESULTS,
        "a reference range upside down (only a warning)",
        lambda f: set_row(f, 0, reference_low=120.0),
        {"reference_low is at most reference_high": 1},
    ),
    (
        RESULTS,
        "an unknown reader",
        lambda f: set_row(f, 0, source_kind="xml"),
        {"source_kind holds only lab reader codes": 1},
    ),
    (
        RESULTS,
        "a hash of the wrong shape",
        lambda f: set_row(f, 0, source_sha256="abc"),
        {"source_sha256 is 64 lowercase hex characters": 1},
    ),
    (
        RESULTS,
        "a collection time without a zone",
        lambda f: f.with_columns(pl.col("collected_at").dt.replace_time_zone(None)),
        {"the columns of bronze lab results have their contract dtypes": 3},
    ),
    # file ledger
    (
        FILES,
        "a file listed twice",
        _dup_first,
        {"source_file is unique": 2},
    ),
    (
        FILES,
        "a negative reject count",
        lambda f: set_row(f, 1, rejects=-1),
        {"rejects is a count (not negative)": 1},
    ),
    # patient index
    (
        PATIENT_INDEX,
        "one lab patient id claimed for two MRNs",
        lambda f: set_row(f, 2, site="SITE-A01", lab_patient_id="MRN00000101"),
        {"(site, lab_patient_id) is unique": 2},
    ),
    (
        PATIENT_INDEX,
        "a blank MRN",
        lambda f: set_row(f, 1, mrn=None),
        {"mrn is set on every row": 1},
    ),
    (
        PATIENT_INDEX,
        "an MRN of another shape (only a warning)",
        lambda f: set_row(f, 1, mrn="12345"),
        {"mrn has the EHR's MRN shape (else the lab's patient links to nobody)": 1},
    ),
    # silver results
    (
        SILVER_RESULTS,
        "a result listed twice",
        _dup_first,
        {"result_id is unique": 2},
    ),
    (
        SILVER_RESULTS,
        "a result id of the wrong shape",
        lambda f: set_row(f, 3, result_id="r-1"),
        {"result_id is 32 lowercase hex characters": 1},
    ),
    (
        SILVER_RESULTS,
        "an unknown mapping status",
        lambda f: set_row(f, 3, mapping_status="guessed"),
        {"mapping_status holds only lab mapping status codes": 1},
    ),
    (
        SILVER_RESULTS,
        "an unknown unit status",
        lambda f: set_row(f, 5, unit_status="weird"),
        {"unit_status holds only lab unit status codes": 1},
    ),
    (
        SILVER_RESULTS,
        "an unknown link status",
        lambda f: set_row(f, 2, link_status="maybe"),
        {"link_status holds only lab link status codes": 1},
    ),
    (
        SILVER_RESULTS,
        "a conformed LOINC with a wrong check digit",
        lambda f: set_row(f, 4, loinc="2276-5", source_loinc="2276-5"),
        {LOINC_DIGIT.format("loinc"): 1},
    ),
    (
        SILVER_RESULTS,
        "an unmapped result with a LOINC",
        lambda f: set_row(f, 3, loinc="2345-7"),
        {"loinc is set exactly where mapping_status is loinc_reported or mapped": 1},
    ),
    (
        SILVER_RESULTS,
        "a mapped result without a LOINC",
        lambda f: set_row(f, 0, loinc=None, analyte=None, unit_status="no_canonical"),
        {"loinc is set exactly where mapping_status is loinc_reported or mapped": 1},
    ),
    (
        SILVER_RESULTS,
        "a mapped result without a map version",
        lambda f: set_row(f, 2, map_version=None),
        {"map_version is set wherever mapping_status is mapped (a site map was consulted)": 1},
    ),
    (
        SILVER_RESULTS,
        "an analyte without a LOINC",
        lambda f: set_row(f, 3, analyte="vitamin D"),
        {"analyte is set only where loinc is set (analytes.csv is keyed by LOINC)": 1},
    ),
    (
        SILVER_RESULTS,
        "a canonical unit for an analyte analytes.csv does not list",
        lambda f: set_row(f, 4, unit_status="canonical"),
        {
            "unit_status is canonical or converted only where analyte is set (a listed "
            "analyte fixes the canonical unit)": 1
        },
    ),
    (
        SILVER_RESULTS,
        "a converted value left in the unit sent",
        lambda f: set_row(f, 2, value=5.3, unit="mmol/L"),
        {"every loinc has exactly one unit among its canonical and converted values": 3},
    ),
    (
        SILVER_RESULTS,
        "two units for a LOINC without a canonical unit (only a warning)",
        lambda f: set_row(f, 1, loinc="2276-4", analyte=None, unit_status="no_canonical"),
        {
            "the values of a loinc without a canonical unit share one unit (else analytes.csv "
            "should give the analyte a canonical unit)": 2
        },
    ),
    (
        SILVER_RESULTS,
        "a converted result without a value",
        lambda f: set_row(f, 2, value=None),
        {"value is set wherever unit_status is canonical or converted": 1},
    ),
    (
        SILVER_RESULTS,
        "a canonical result without a unit",
        lambda f: set_row(f, 0, unit=None),
        {
            "unit is set where unit_status is canonical, converted or no_canonical and empty "
            "where it is unknown_unit": 1
        },
    ),
    (
        SILVER_RESULTS,
        "an unknown unit kept as a unit",
        lambda f: set_row(f, 5, unit="mg%"),
        {
            "unit is set where unit_status is canonical, converted or no_canonical and empty "
            "where it is unknown_unit": 1
        },
    ),
    (
        SILVER_RESULTS,
        "a unit that is not UCUM",
        lambda f: set_row(f, 3, unit="ng / mL"),
        {"unit is a UCUM expression (no spaces)": 1},
    ),
    (
        SILVER_RESULTS,
        "a value without the value sent",
        lambda f: set_row(f, 0, value_original=None),
        {"value is set only where value_original is (value is value_original converted)": 1},
    ),
    (
        SILVER_RESULTS,
        "an unknown comparator",
        lambda f: set_row(f, 4, comparator="~"),
        {"comparator holds only value comparator codes": 1},
    ),
    (
        SILVER_RESULTS,
        "a linked result without a person",
        lambda f: set_row(f, 0, person_key=None),
        {"person_key is set exactly where link_status is linked": 1},
    ),
    (
        SILVER_RESULTS,
        "an unlinked result with a person",
        lambda f: set_row(f, 2, person_key=PERSON_2),
        {"person_key is set exactly where link_status is linked": 1},
    ),
    (
        SILVER_RESULTS,
        "a person key of the wrong shape",
        lambda f: set_row(f, 0, person_key="person-1"),
        {"person_key is a 32-hex random key": 1},
    ),
    (
        SILVER_RESULTS,
        "a result before its collection (only a warning)",
        lambda f: set_row(f, 1, resulted_at=COLLECTED - timedelta(minutes=5)),
        {"collected_at is not after resulted_at": 1},
    ),
    (
        SILVER_RESULTS,
        "a collection in the future (only a warning)",
        lambda f: set_row(f, 1, collected_at=FUTURE, resulted_at=FUTURE),
        {"collected_at is not in the future": 1},
    ),
    (
        SILVER_RESULTS,
        "a status outside table 0085 (only a warning)",
        lambda f: set_row(f, 3, result_status="Final"),
        {"result_status holds only HL7 table 0085 result status codes": 1},
    ),
    (
        SILVER_RESULTS,
        "a value column of text",
        lambda f: f.with_columns(pl.col("value").cast(pl.String)),
        {
            # A check reading a column of the wrong dtype fails on every row.
            "the columns of silver lab results have their contract dtypes": 6,
            "value is set wherever unit_status is canonical or converted": 6,
            "every loinc has exactly one unit among its canonical and converted values": 6,
            "the values of a loinc without a canonical unit share one unit (else analytes.csv "
            "should give the analyte a canonical unit)": 6,
            "value is set only where value_original is (value is value_original converted)": 6,
        },
    ),
    (
        SILVER_RESULTS,
        "the person crosswalk's identifier column",
        lambda f: f.with_columns(pl.lit("MRN00000101").alias("mrn")),
        {"the columns are exactly those of silver lab results": 1},
    ),
    # mapping report
    (
        MAPPING_REPORT,
        "an issue outside the report's set",
        lambda f: set_row(f, 0, issue="missing_code"),
        {"issue holds only mapping issue codes": 1},
    ),
    (
        MAPPING_REPORT,
        "an issue about no results",
        lambda f: set_row(f, 1, rows=0),
        {"rows is at least 1 (every issue concerns some results)": 1},
    ),
    (
        MAPPING_REPORT,
        "one issue listed twice",
        _dup_first,
        {"(site, issue, code, unit) is unique": 2},
    ),
    (
        MAPPING_REPORT,
        "an unmapped code without the code",
        lambda f: set_row(f, 0, code=None),
        {"code is set wherever the issue is unmapped_code or invalid_loinc": 1},
    ),
    (
        MAPPING_REPORT,
        "an unknown unit without the unit",
        lambda f: set_row(f, 2, unit=None),
        {"unit is set wherever the issue is unknown_unit or unconvertible_unit": 1},
    ),
    (
        MAPPING_REPORT,
        "a row count of another type",
        lambda f: f.with_columns(pl.col("rows").cast(pl.UInt32)),
        {"the columns of the lab mapping report have their contract dtypes": 3},
    ),
    (
        MAPPING_REPORT,
        "a report row without a site",
        lambda f: set_row(f, 2, site=None),
        {"site is set on every row": 1},
    ),
    # gold results
    (
        GOLD_RESULTS,
        "a result listed twice",
        _dup_first,
        {"record_key is unique": 2},
    ),
    (
        GOLD_RESULTS,
        "the result id as the record key",
        lambda f: set_row(f, 0, record_key=_id("a01-glu")),
        {"record_key is a keyed pseudonym (L- and 20 hex characters)": 1},
    ),
    (
        GOLD_RESULTS,
        "a result without a person",
        lambda f: set_row(f, 1, person_pseudonym=None),
        {"person_pseudonym is set on every row": 1},
    ),
    (
        GOLD_RESULTS,
        "a person outside the patients view",
        lambda f: set_row(f, 3, person_pseudonym="P-" + "c3" * 10),
        {"every person_pseudonym is the person_pseudonym of a row of gold/research/patients": 1},
    ),
    (
        GOLD_RESULTS,
        "a LOINC with a wrong check digit",
        lambda f: set_row(f, 2, loinc="2276-0"),
        {LOINC_DIGIT.format("loinc"): 1},
    ),
    (
        GOLD_RESULTS,
        "two canonical units for glucose",
        lambda f: set_row(f, 1, unit="mmol/L", value=10.1),
        {"every loinc has exactly one unit among its canonical and converted values": 2},
    ),
    (
        GOLD_RESULTS,
        "a result before its collection (only a warning)",
        lambda f: set_row(f, 0, resulted_at=COLLECTED - timedelta(days=30)),
        {"collected_at is not after resulted_at": 1},
    ),
    (
        GOLD_RESULTS,
        "a collection time past the shift allowance (only a warning)",
        lambda f: set_row(f, 2, collected_at=FUTURE + timedelta(days=400)),
        {
            "collected_at is empty or between 1900 and a year past today (dates are shifted)": 1,
            "collected_at is not after resulted_at": 1,
        },
    ),
    (
        GOLD_RESULTS,
        "the lab patient id column",
        lambda f: f.with_columns(pl.lit("LAB00001234").alias("lab_patient_id")),
        {
            "the columns are exactly those of the research view lab_results (no identifiers)": 1,
            "no text value is a lab_patient_id or accession of silver/lab/lab_results": 4,
        },
    ),
    (
        GOLD_RESULTS,
        "a lab patient id in a kept column",
        lambda f: set_row(f, 1, specimen_type="LAB00001234"),
        {"no text value is a lab_patient_id or accession of silver/lab/lab_results": 1},
    ),
    (
        GOLD_RESULTS,
        "an accession number in a kept column",
        lambda f: set_row(f, 2, value_display="A02-0001"),
        {"no text value is a lab_patient_id or accession of silver/lab/lab_results": 1},
    ),
    (
        GOLD_RESULTS,
        "an MRN in a kept column",
        lambda f: set_row(f, 0, value_display="MRN00000555"),
        {"no text value looks like an MRN": 1},
    ),
    (
        GOLD_RESULTS,
        "an unknown unit status",
        lambda f: set_row(f, 3, unit_status="odd"),
        {"unit_status holds only lab unit status codes": 1},
    ),
]


@pytest.mark.parametrize(("table", "mutate", "expected"), defect_params(DEFECTS))
def test_a_single_defect_fails_the_expectation_that_names_it(table, mutate, expected):
    assert_only_these_fail(_validate(table, mutate(GOOD[table]())), expected)


def test_the_gold_identifier_check_reads_the_silver_identifiers():
    # The same gold frame against a silver table holding one of its texts as a patient id.
    silver = set_row(silver_results(), 3, lab_patient_id="SITE-D02")
    result = _validate(GOLD_RESULTS, lab_results=silver)
    assert failed(result) == {
        "no text value is a lab_patient_id or accession of silver/lab/lab_results": 1
    }


def test_the_suite_runs_on_a_frame_fresh_from_the_readers():
    # Millisecond times (a reader's own unit) are still the contract's UTC datetimes.
    frame = results().with_columns(pl.col("collected_at", "resulted_at").dt.cast_time_unit("ms"))
    assert failed(validate_table(RESULTS, frame)) == {}


@pytest.mark.parametrize(
    ("table", "description", "severity"),
    [
        (RESULTS, "result_status holds only HL7 table 0085 result status codes", "warning"),
        (RESULTS, "collected_at is not after resulted_at", "warning"),
        (
            RESULTS,
            LOINC_DIGIT.format("test_code") + " where test_system names LOINC (LN)",
            "warning",
        ),
        (RESULTS, "(site, source_file, source_locator) is unique", "error"),
        (PATIENT_INDEX, "(site, lab_patient_id) is unique", "error"),
        (PATIENT_INDEX, "mrn is set on every row", "error"),
        (SILVER_RESULTS, LOINC_DIGIT.format("loinc"), "error"),
        (
            SILVER_RESULTS,
            "every loinc has exactly one unit among its canonical and converted values",
            "error",
        ),
        (SILVER_RESULTS, "person_key is set exactly where link_status is linked", "error"),
        (SILVER_RESULTS, "collected_at is not after resulted_at", "warning"),
        (SILVER_RESULTS, "result_status holds only HL7 table 0085 result status codes", "warning"),
        (GOLD_RESULTS, "collected_at is not after resulted_at", "warning"),
        (
            GOLD_RESULTS,
            "every loinc has exactly one unit among its canonical and converted values",
            "error",
        ),
        (GOLD_RESULTS, "person_pseudonym is set on every row", "error"),
    ],
)
def test_biofed_guarantees_are_errors_and_what_labs_send_warnings(table, description, severity):
    (check,) = [c for c in suite_for(table).checks if c.description == description]
    assert check.severity == severity


def test_an_old_collection_time_is_plausible_and_one_before_1900_is_not():
    old = set_row(gold_results(), 0, collected_at=datetime(1950, 1, 1, tzinfo=UTC))
    assert failed(_validate(GOLD_RESULTS, old)) == {}
    ancient = set_row(gold_results(), 0, collected_at=datetime(1899, 12, 31, tzinfo=UTC))
    assert failed(_validate(GOLD_RESULTS, ancient)) == {
        "collected_at is empty or between 1900 and a year past today (dates are shifted)": 1
    }
