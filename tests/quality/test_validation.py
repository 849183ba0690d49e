"""The suites on a real materialised lake: clean tables pass, corrupted ones fail the
matching expectation with the right count, and no data value leaves as a result or a page
of Data Docs."""

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from quality.results import SuiteResult
from quality.suites import SUITE_TABLES, UnknownTableError, references_for, suite_for
from quality.validation import DataDocs, MissingReferenceError, validate_table

PLANTED = "ZZQ-PLANTED-77"
LAKE_PATHS = {
    "bronze/ehr/rejects": "_rejects/ehr/fhir",
    "bronze/genomics/rejects": "_rejects/genomics/vcf",
    "restricted/identity_conflicts": "_rejects/identity/crosswalk",
}


@dataclass(frozen=True)
class Lake:
    root: Path

    def read(self, table: str) -> pl.DataFrame:
        return pl.read_delta(str(self.root / LAKE_PATHS.get(table, table)))

    def references(self, table: str) -> dict[str, pl.DataFrame]:
        return {r: self.read(r) for r in references_for(table)}


@pytest.fixture(scope="module")
def lake(materialised_lake) -> Lake:
    """The shared real lake (tests/conftest.py): every silo landed and materialised once."""
    return Lake(materialised_lake.root)


def _validate(lake: Lake, table: str, frame: pl.DataFrame | None = None, **kw) -> SuiteResult:
    frame = lake.read(table) if frame is None else frame
    return validate_table(table, frame, references=lake.references(table), **kw)


def _failed(result: SuiteResult) -> dict[str, int | None]:
    return {o.description: o.unexpected_count for o in (*result.errors, *result.warnings)}


@pytest.mark.parametrize("table", SUITE_TABLES)
def test_every_suite_passes_on_a_freshly_materialised_lake(lake, table):
    frame = lake.read(table)
    result = _validate(lake, table, frame)
    assert _failed(result) == {}
    assert result.success
    assert result.table == table and result.suite == suite_for(table).name
    assert result.rows == frame.height
    assert [o.description for o in result.outcomes] == [
        c.description for c in suite_for(table).checks
    ]
    assert result.evaluated_at.utcoffset() == timedelta(0)


def test_outcomes_carry_counts_of_the_rows_checked(lake):
    frame = lake.read("silver/ehr/observations")
    result = _validate(lake, "silver/ehr/observations", frame)
    unique = next(o for o in result.outcomes if o.description == "id is unique")
    assert (unique.element_count, unique.unexpected_count, unique.unexpected_percent) == (
        frame.height,
        0,
        0.0,
    )
    columns = result.outcomes[0]
    assert columns.expectation == "expect_table_columns_to_match_set"
    assert (columns.element_count, columns.unexpected_count) == (frame.width, 0)


def test_a_duplicate_silver_id_fails_the_unique_key(lake):
    frame = lake.read("silver/ehr/observations")
    duplicated = pl.concat([frame, frame.head(1)])
    result = _validate(lake, "silver/ehr/observations", duplicated)
    assert not result.success
    assert _failed(result) == {"id is unique": 2}
    (failure,) = result.errors
    assert (failure.expectation, failure.column) == ("expect_column_values_to_be_unique", "id")


def test_an_onset_after_abatement_fails_the_date_order(lake):
    frame = lake.read("silver/ehr/conditions")
    abated = pl.col("abatement_datetime").is_not_null()
    late = (abated.cum_sum() <= 3) & abated
    broken = frame.with_columns(
        pl.when(late)
        .then(pl.col("abatement_datetime") + pl.duration(days=1))
        .otherwise(pl.col("onset_datetime"))
        .alias("onset_datetime")
    )
    result = _validate(lake, "silver/ehr/conditions", broken)
    assert not result.success
    assert _failed(result) == {"onset_datetime is not after abatement_datetime": 3}
    (failure,) = result.errors
    assert failure.column == "onset_datetime,abatement_datetime"


def test_an_invalid_loinc_check_digit_fails_the_code_check(lake):
    frame = lake.read("silver/ehr/observations")
    hemoglobin = pl.col("code") == "718-7"
    first_five = hemoglobin & (hemoglobin.cum_sum() <= 5)
    broken = frame.with_columns(
        pl.when(first_five).then(pl.lit("718-8")).otherwise(pl.col("code")).alias("code")
    )
    result = _validate(lake, "silver/ehr/observations", broken)
    assert not result.success
    assert _failed(result) == {"LOINC codes have a valid Mod 10 check digit": 5}
    assert result.errors[0].column == "code"


def test_an_orphan_patient_id_fails_referential_integrity(lake):
    frame = lake.read("silver/ehr/encounters")
    orphans = pl.int_range(pl.len()) < 4
    broken = frame.with_columns(
        pl.when(orphans).then(pl.lit("orphan-patient")).otherwise("patient_id").alias("patient_id")
    )
    result = _validate(lake, "silver/ehr/encounters", broken)
    assert not result.success
    assert _failed(result) == {"every patient_id is the id of a row of silver/ehr/patients": 4}


def test_an_implausible_body_height_is_only_a_warning(lake):
    frame = lake.read("silver/ehr/observations")
    height = pl.col("code") == "8302-2"
    three = height & (height.cum_sum() <= 3)
    broken = frame.with_columns(
        pl.when(three).then(400.0).otherwise(pl.col("value_quantity")).alias("value_quantity")
    )
    result = _validate(lake, "silver/ehr/observations", broken)
    assert result.success
    assert result.errors == ()
    (warning,) = result.warnings
    assert warning.severity == "warning" and warning.unexpected_count == 3
    assert warning.description.startswith("vital signs and common lab results lie within")


def test_an_mrn_column_in_a_gold_view_fails_the_privacy_checks(lake):
    frame = lake.read("gold/research/patients")
    leaked = frame.with_columns(
        (pl.lit("MRN") + pl.int_range(pl.len()).cast(pl.String).str.zfill(8)).alias("mrn")
    )
    result = _validate(lake, "gold/research/patients", leaked)
    assert not result.success
    assert _failed(result) == {
        "the columns are exactly those of the research view patients (no identifiers)": 1,
        "no text value looks like an MRN": frame.height,
    }


def test_a_fhir_id_in_a_gold_text_column_is_caught(lake):
    frame = lake.read("gold/research/observations")
    silver_id = lake.read("silver/ehr/observations").get_column("id")[0]
    leaked = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.lit(f"see {silver_id}"))
        .otherwise("display")
        .alias("display")
    )
    result = _validate(lake, "gold/research/observations", leaked)
    assert _failed(result) == {"no text value looks like a UUID (a FHIR id of the EHR)": 1}


def test_a_gold_event_of_an_unknown_person_is_an_error(lake):
    frame = lake.read("gold/research/conditions")
    patients = lake.read("gold/research/patients").head(5)
    result = validate_table(
        "gold/research/conditions",
        frame,
        references={
            "gold/research/patients": patients,
            "gold/research/encounters": lake.read("gold/research/encounters"),
        },
    )
    orphans = frame.filter(
        ~pl.col("person_pseudonym").is_in(patients["person_pseudonym"].implode())
    )
    assert not result.success
    assert _failed(result) == {
        "every person_pseudonym is the person_pseudonym of a row of gold/research/patients": (
            orphans.height
        )
    }


def test_results_carry_counts_and_never_values(lake):
    frame = lake.read("silver/ehr/patients")
    planted = frame.with_columns(
        pl.when(pl.int_range(pl.len()) < 2)
        .then(pl.lit(PLANTED))
        .otherwise(pl.col("id"))
        .alias("id"),
        pl.lit(PLANTED).alias("gender"),
    )
    result = _validate(lake, "silver/ehr/patients", planted)
    assert _failed(result)["id is unique"] == 2
    assert _failed(result)["gender holds only FHIR AdministrativeGender codes"] == frame.height
    text = json.dumps(result.to_dict())
    assert PLANTED not in text
    assert PLANTED not in repr(result)


def test_data_docs_hold_counts_and_no_value(lake, tmp_path):
    observations = lake.read("silver/ehr/observations")
    planted = pl.concat([observations, observations.head(1)]).with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.lit(PLANTED))
        .when(pl.int_range(pl.len()) == pl.len() - 1)
        .then(pl.lit(PLANTED))
        .otherwise(pl.col("id"))
        .alias("id"),
        pl.when(pl.int_range(pl.len()) == 1)
        .then(pl.lit(f"{PLANTED} mg"))
        .otherwise(pl.col("value_unit"))
        .alias("value_unit"),
    )
    root = tmp_path / "gx"
    docs = DataDocs(root)
    result = _validate(lake, "silver/ehr/observations", planted, docs=docs)
    assert _failed(result)["id is unique"] == 2
    assert _failed(result)["value_unit is a UCUM expression"] == 1
    patients = lake.read("gold/research/patients").with_columns(pl.lit(PLANTED).alias("gender"))
    _validate(lake, "gold/research/patients", patients, docs=docs)
    # Text in a count column: GX cannot evaluate the range check and records an error.
    files = lake.read("bronze/ehr/files").with_columns(pl.lit(PLANTED).alias("bytes"))
    broken = _validate(lake, "bronze/ehr/files", files, docs=docs)
    (unevaluated,) = broken.errors
    assert (unevaluated.column, unevaluated.unexpected_count) == ("bytes", None)

    index = docs.build()

    assert index.name == "index.html" and index.is_file() and root in index.parents
    stored = list(root.rglob("uncommitted/validations/**/*.json"))
    assert len(stored) == 3
    pages = list(root.rglob("*.html"))
    assert len(pages) >= 3  # the index, a page per stored result and per suite
    for path in root.rglob("*"):
        if path.is_file():
            assert PLANTED.encode() not in path.read_bytes(), path
    # The counts did reach the project: the failed uniqueness check with its two rows.
    observations_result = next(p for p in stored if "silver_ehr_observations" in str(p))
    results = json.loads(observations_result.read_text())["results"]
    unique = next(
        r
        for r in results
        if r["expectation_config"]["kwargs"].get("column") == "id"
        and r["expectation_config"]["type"] == "expect_column_values_to_be_unique"
    )
    assert (unique["success"], unique["result"]["unexpected_count"]) == (False, 2)
    assert unique["result"]["partial_unexpected_list"] == []
    # A metric error keeps no message or traceback: either could quote a value.
    files_result = next(p for p in stored if "bronze_ehr_files" in str(p))
    errored = [
        r["exception_info"]
        for r in json.loads(files_result.read_text())["results"]
        if r["exception_info"]["raised_exception"]
    ]
    assert len(errored) == 1
    assert errored[0]["exception_traceback"] is None
    assert "withheld" in errored[0]["exception_message"]


def test_validating_again_reuses_the_suite_and_gives_the_same_outcomes(lake):
    frame = lake.read("silver/ehr/procedures")
    first = _validate(lake, "silver/ehr/procedures", frame)
    second = _validate(lake, "silver/ehr/procedures", frame)
    assert first.outcomes == second.outcomes
    assert second.evaluated_at >= first.evaluated_at


def test_a_table_without_a_suite_raises_a_key_error(lake):
    with pytest.raises(KeyError) as caught:
        validate_table("silver/ehr/specimens", pl.DataFrame({"id": ["a"]}))
    assert isinstance(caught.value, UnknownTableError)


def test_missing_references_raise_a_value_error_naming_them(lake):
    frame = lake.read("silver/ehr/observations")
    with pytest.raises(ValueError) as caught:
        validate_table(
            "silver/ehr/observations",
            frame,
            references={"silver/ehr/patients": lake.read("silver/ehr/patients")},
        )
    assert isinstance(caught.value, MissingReferenceError)
    assert caught.value.missing == ("silver/ehr/encounters",)
    assert "silver/ehr/encounters" in str(caught.value)


def test_a_missing_column_fails_the_suite_instead_of_raising(lake):
    frame = lake.read("silver/ehr/observations").drop("code")
    result = _validate(lake, "silver/ehr/observations", frame)
    assert not result.success
    failed = _failed(result)
    assert failed["the columns are exactly those of silver observations"] == 1
    assert failed["LOINC codes have a valid Mod 10 check digit"] == frame.height
