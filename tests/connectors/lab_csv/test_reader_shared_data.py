"""The real Synthea CSV files in shared/data/lab/csv, read with the SYNTHEA profile.

Expected counts were taken from the file with polars' own CSV reader (all columns as text),
not from this reader: 3626 observations; CATEGORY survey 1646, laboratory 815, vital-signs
742, social-history 86, exam 1, blank 336 (the yearly QALY/DALY/QOLS summary rows, which
also have no ENCOUNTER); TYPE numeric 2107, text 1519. No row lacks a patient, code or value.
"""

from datetime import UTC, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.errors import UnsupportedFormatError
from connectors.lab_csv import FILE_SCHEMA, read_lab_csv
from connectors.lab_schema import LAB_RESULT_SCHEMA

ROWS = 3626


@pytest.fixture(scope="module")
def observations(shared_data):
    path = shared_data / "lab" / "csv" / "synthea_observations.csv"
    return path, read_lab_csv(path, site="SYNTHEA", on_error="quarantine")


def test_every_observation_loads_or_is_quarantined_with_a_reason(observations):
    path, result = observations
    frame = result.tables["lab_results"]
    assert frame.schema == pl.Schema(LAB_RESULT_SCHEMA)
    assert frame.height + result.rejects.height == ROWS
    assert result.rejects["reason"].null_count() == 0
    # Every row has a patient, a code and a value, and every DATE is ISO 8601 with 'Z'.
    assert result.rejects.is_empty()
    assert_frame_equal(
        result.tables["files"],
        pl.DataFrame(
            [(str(path), "SYNTHEA", "utf-8", ",", ROWS, 0, None)],
            schema=FILE_SCHEMA,
            orient="row",
        ),
    )


def test_the_first_observation_is_a_body_height(observations):
    _, result = observations
    row = result.tables["lab_results"].row(0, named=True)
    assert row == {
        **dict.fromkeys(LAB_RESULT_SCHEMA),
        "source_locator": "line:2",
        "source_kind": "csv",
        "site": "SYNTHEA",
        "patient_id": "b37f7960-7e9e-f3f7-f891-79ae4f632406",
        "accession": "c485f49b-ceee-5413-7488-94e7c84063fe",
        "observation_seq": 1,
        "test_code": "8302-2",
        "test_system": "LN",
        "test_display": "Body Height",
        "category": "vital-signs",
        "value_type": "NM",
        "value_text": "101.8",
        "value_number": 101.8,
        "unit": "cm",
        "collected_at": datetime(2014, 8, 22, 18, 34, 30, tzinfo=UTC),
        "resulted_at": datetime(2014, 8, 22, 18, 34, 30, tzinfo=UTC),
    }


def test_categories_and_value_types_are_kept_as_the_file_states_them(observations):
    _, result = observations
    frame = result.tables["lab_results"]
    categories = dict(frame["category"].value_counts().iter_rows())
    assert categories == {
        "survey": 1646,
        "laboratory": 815,
        "vital-signs": 742,
        "social-history": 86,
        "exam": 1,
        None: 336,
    }
    assert dict(frame["value_type"].value_counts().iter_rows()) == {"NM": 2107, "ST": 1519}
    summary = frame.filter(pl.col("category").is_null())
    assert summary["accession"].null_count() == 336
    assert set(summary["test_code"]) == {"QALY", "DALY", "QOLS"}
    assert (frame["collected_at"] == frame["resulted_at"]).all()
    assert frame["source_locator"].to_list() == [f"line:{n}" for n in range(2, ROWS + 2)]


def test_text_results_keep_their_text_and_no_number(observations):
    _, result = observations
    negative = result.tables["lab_results"].filter(
        pl.col("test_code") == "92130-4"
    ).select("value_type", "value_text", "value_number").unique()
    assert negative.rows() == [("ST", "Negative (qualifier value)", None)]


def test_the_patients_file_is_not_an_observations_export(shared_data):
    path = shared_data / "lab" / "csv" / "synthea_patients.csv"
    reason = (
        "header lacks the column(s) PATIENT, CODE, VALUE that site profile SYNTHEA requires, "
        "so it is not that site's lab export"
    )
    result = read_lab_csv(path, site="SYNTHEA", on_error="quarantine")
    assert result.rejects.rows() == [(str(path), "file", reason)]
    assert result.tables["lab_results"].is_empty()
    assert result.tables["files"].select("rows", "rejected").row(0) == (0, 1)
    with pytest.raises(UnsupportedFormatError, match="PATIENT, CODE, VALUE"):
        read_lab_csv(path, site="SYNTHEA")
