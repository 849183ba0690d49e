"""The synthetic lab files read back through the lab connectors, held to the ground truth."""

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.errors import ConnectorError
from connectors.hl7v2 import read_hl7v2
from connectors.lab_csv import read_lab_csv
from connectors.synth import build_people
from connectors.synth.lab import (
    CSV_FILES,
    CSV_SITES,
    DELIBERATE,
    HL7_FILES,
    HL7_SITES,
    MALFORMED_MESSAGE_ID,
    lab_truth,
    write_lab,
)

PATIENTS = 160
SEED = 7
COMPARED = [
    "patient_id",
    "accession",
    "test_code",
    "test_system",
    "value_number",
    "comparator",
    "unit",
    "reference_low",
    "reference_high",
    "abnormal_flag",
    "result_status",
    "value_type",
    "value_text",
    "value_code",
    "collected_at",
    "resulted_at",
    "panel_code",
]


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    people = build_people(PATIENTS, SEED)
    out = tmp_path_factory.mktemp("landing")
    write_lab(people, out)
    return out / "lab", lab_truth(people)


def _expected(truth: pl.DataFrame, site: str) -> pl.DataFrame:
    return (
        truth.filter(pl.col("site") == site)
        .select(
            pl.col("lab_patient_id").alias("patient_id"),
            "accession",
            "test_code",
            "test_system",
            pl.col("value_written").alias("value_number"),
            "comparator",
            pl.col("unit_written").alias("unit"),
            "reference_low",
            "reference_high",
            "abnormal_flag",
            "result_status",
            "value_type",
            "value_text",
            "value_code",
            "collected_at",
            "resulted_at",
            "panel_code",
        )
        .sort("accession", "test_code")
    )


def test_lis_exports_read_in_raise_mode_give_the_ground_truth(landing):
    folder, truth = landing
    for site in CSV_SITES:
        frames = []
        for name in CSV_FILES[site]:
            result = read_lab_csv(folder / "csv" / site / name, site=site)
            assert result.rejects.height == 0
            frames.append(result.tables["lab_results"])
        read = pl.concat(frames)
        assert set(read["site"]) == {site}
        assert set(read["source_kind"]) == {"csv"}
        got = read.select(COMPARED).sort("accession", "test_code")
        assert_frame_equal(got, _expected(truth, site), check_dtypes=False)


def test_hl7_feeds_read_in_raise_mode_give_the_ground_truth_once_finals_replace_preliminaries(
    landing,
):
    folder, truth = landing
    for site in ("SITE-A02", "SITE-D02"):
        result = read_hl7v2(folder / "hl7" / HL7_FILES[site])
        assert result.rejects.height == 0
        read = result.tables["lab_results"]
        assert set(read["site"]) == {site}
        assert result.tables["messages"].height == read["message_id"].n_unique()
        preliminary = read.filter(pl.col("result_status") == "P")
        corrected = truth.filter((pl.col("site") == site) & (pl.col("deliberate") == "corrected"))
        assert preliminary.height == corrected.height
        assert preliminary["accession"].n_unique() == DELIBERATE[site]["corrected"]
        latest = read.with_row_index("order").sort("order").unique(
            ["accession", "test_code"], keep="last", maintain_order=True
        )
        got = latest.select(COMPARED).sort("accession", "test_code")
        assert_frame_equal(got, _expected(truth, site), check_dtypes=False)


def test_the_malformed_message_is_the_one_record_quarantined(landing):
    folder, truth = landing
    path = folder / "hl7" / HL7_FILES["SITE-C03"]
    with pytest.raises(ConnectorError, match=MALFORMED_MESSAGE_ID):
        read_hl7v2(path)
    result = read_hl7v2(path, on_error="quarantine")
    assert result.rejects.height == 1
    assert result.rejects["locator"][0].startswith(f"MSH-10:{MALFORMED_MESSAGE_ID}")
    read = result.tables["lab_results"]
    assert MALFORMED_MESSAGE_ID not in set(read["message_id"])
    latest = read.with_row_index("order").unique(
        ["accession", "test_code"], keep="last", maintain_order=True
    )
    got = latest.select(COMPARED).sort("accession", "test_code")
    assert_frame_equal(got, _expected(truth, "SITE-C03"), check_dtypes=False)
    for site in HL7_SITES:
        if site != "SITE-C03":
            others = read_hl7v2(folder / "hl7" / HL7_FILES[site], on_error="quarantine")
            assert others.rejects.is_empty()
