"""The synthetic BIOFED-01 datasets read back through the SDTM connector."""


import polars as pl
import pytest

from connectors.sdtm import read_sdtm
from connectors.synth import build_people
from connectors.synth.trial import (
    DATASET_LABELS,
    DOMAINS,
    STUDY_ID,
    VARIABLES,
    trial_records,
    write_trial,
)

PATIENTS = 200
SEED = 7


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    people = build_people(PATIENTS, SEED)
    out = tmp_path_factory.mktemp("landing")
    write_trial(people, out)
    return out / "trials" / STUDY_ID, trial_records(people)


def test_each_dataset_reads_in_raise_mode_without_findings(study):
    folder, records = study
    for domain in DOMAINS:
        result = read_sdtm(folder / f"{domain}.xpt")
        assert result.rejects.is_empty()
        assert result.tables["findings"].is_empty(), domain
        table = result.tables[domain]
        assert table.height == records[domain].height
        assert table.select(pl.col("USUBJID")).to_series().to_list() == (
            records[domain]["USUBJID"].to_list()
        )
        (dataset,) = result.tables["datasets"].iter_rows(named=True)
        assert (dataset["domain"].lower(), dataset["label"], dataset["records"]) == (
            domain, DATASET_LABELS[domain], records[domain].height
        )
        variables = result.tables["variables"].sort("position")
        assert variables["variable"].to_list() == [name for name, _, _ in VARIABLES[domain]]
        assert variables["label"].to_list() == [label for _, label, _ in VARIABLES[domain]]


def test_the_datasets_together_have_every_subject_in_dm(study):
    folder, records = study
    # The study folder holds only its datasets (the enrolment map sits beside it).
    result = read_sdtm(folder)
    assert result.rejects.is_empty()
    assert result.tables["findings"].is_empty()
    assert {name for name in result.tables if name in DOMAINS} == set(DOMAINS)
    dm = set(result.tables["dm"]["USUBJID"])
    assert dm == set(records["dm"]["USUBJID"])
    for domain in DOMAINS:
        assert set(result.tables[domain]["USUBJID"]) <= dm
