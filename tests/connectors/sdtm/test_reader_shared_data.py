"""Every real SDTM file in shared/data/trials loads, with its findings.

Expected counts and findings were taken from the files with pyreadstat and pandas directly
(row counts, blank Req values, duplicated keys, subjects missing from DM), not from this
reader's output. The CDISC pilot folder conforms to every rule checked; the rules-engine
test suite breaks two on purpose: AEDECOD is blank on all 74 AE rows, and DM's row 13
(CDISC013) has no ARMCD and no ARMNRS. DM's row 15 has no arm at all but ARMNRS
'SCREEN FAILURE', which SDTMIG 3.3 allows.
"""

import json

import polars as pl
import pyreadstat
import pytest
from polars.testing import assert_frame_equal

from connectors.sdtm import conform_domain, conformed_schema, read_sdtm
from connectors.sdtm.conformance import MESSAGES
from connectors.sdtm.schema import dataset_schema, finding_schema

PILOT = "sdtm_cdiscpilot01"
SUITE = "sdtm_cre_testsuite"

# folder -> file -> (table key, dataset name, rows)
EXPECTED_FILES = {
    PILOT: {
        "dm.xpt": ("dm", "DM", 306),
        "ex.xpt": ("ex", "EX", 591),
        "lbur.xpt": ("lb", "LBUR", 4913),
    },
    SUITE: {
        "AE.xpt": ("ae", "AE", 74),
        "DM.xpt": ("dm", "DM", 18),
        "EX.xpt": ("ex", "EX", 1583),
        "LB.xpt": ("lb", "LB", 3488),
        "VS.xpt": ("vs", "VS", 1414),
    },
}

SUITE_FINDINGS = [
    ("AE.xpt", "AE", "AE", "required_value_missing", "error", "AEDECOD", 74, "row:1"),
    *(
        ("AE.xpt", "AE", "AE", "variable_type_mismatch", "warning", name, 0, "file")
        for name in ("AELLTCD", "AEPTCD", "AEHLTCD", "AEHLGTCD", "AEBDSYCD", "AESOCCD")
    ),
    ("DM.xpt", "DM", "DM", "required_value_missing", "error", "ARMCD", 1, "row:13"),
]


@pytest.fixture(scope="module")
def trials(shared_data):
    return shared_data / "trials"


@pytest.fixture(scope="module")
def pilot(trials):
    return read_sdtm(trials / PILOT)


@pytest.fixture(scope="module")
def suite(trials):
    return read_sdtm(trials / SUITE)


def test_the_expected_outcomes_cover_every_shared_trial_file(trials):
    found = {
        (path.parent.name, path.name) for path in trials.rglob("*") if path.is_file()
    }
    assert found == {(folder, name) for folder, files in EXPECTED_FILES.items() for name in files}


@pytest.mark.parametrize("folder", sorted(EXPECTED_FILES))
def test_each_study_folder_loads_every_dataset_with_its_rows(trials, folder):
    result = read_sdtm(trials / folder)
    expected = EXPECTED_FILES[folder]
    assert result.rejects.is_empty()
    domains = sorted({key for key, _, _ in expected.values()}, key=lambda k: (k != "dm", k))
    assert list(result.tables) == [*domains, "datasets", "variables", "findings"]
    for name, (key, dataset, rows) in expected.items():
        table = result.tables[key].filter(pl.col("source_file") == name)
        assert table.height == rows
        assert table["dataset"].unique().to_list() == [dataset]
        assert table["source_locator"].head(2).to_list() == ["row:1", "row:2"]
        assert table["source_locator"][-1] == f"row:{rows}"
    assert_frame_equal(
        result.tables["datasets"],
        pl.DataFrame(
            [
                (name, dataset, key.upper(), None, rows, "xport5")
                for name, (key, dataset, rows) in expected.items()
            ],
            schema=dataset_schema(),
            orient="row",
        ),
    )


@pytest.mark.parametrize("folder", sorted(EXPECTED_FILES))
def test_each_shared_file_read_alone_gives_the_same_rows(trials, folder):
    for name, (key, _, rows) in EXPECTED_FILES[folder].items():
        result = read_sdtm(trials / folder / name)
        assert list(result.tables) == [key, "datasets", "variables", "findings"]
        assert result.tables[key].height == rows


def test_the_split_lbur_dataset_is_filed_under_lb(pilot):
    lb = pilot.tables["lb"]
    assert lb["DOMAIN"].unique().to_list() == ["LB"]
    assert lb["LBCAT"].value_counts(sort=True).rows() == [("URINALYSIS", 4370), ("OTHER", 543)]
    variables = pilot.tables["variables"].filter(pl.col("dataset") == "LBUR")
    assert variables.height == 24
    seq = variables.filter(pl.col("variable") == "LBSEQ").row(0, named=True)
    assert seq == {
        "source_file": "lbur.xpt",
        "dataset": "LBUR",
        "domain": "LB",
        "variable": "LBSEQ",
        "label": "Sequence Number",
        "type": "Num",
        "length": 8,
        "position": 4,
    }


def test_the_pilot_folder_has_no_findings(pilot):
    assert_frame_equal(pilot.tables["findings"], pl.DataFrame(schema=finding_schema()))


def test_the_rules_engine_suite_has_the_findings_its_data_holds(suite):
    findings = suite.tables["findings"]
    assert findings.drop("message").rows() == SUITE_FINDINGS
    assert set(findings["message"]) <= set(MESSAGES.values())


def test_the_screen_failure_with_armnrs_is_not_a_missing_arm(trials, suite):
    raw, _ = pyreadstat.read_xport(str(trials / SUITE / "DM.xpt"))
    assert raw.loc[14, ["ARMCD", "ARM", "ACTARMCD", "ACTARM"]].tolist() == ["", "", "", ""]
    dm = suite.tables["dm"]
    assert dm.row(14, named=True)["ARMNRS"] == "SCREEN FAILURE"
    assert dm.row(14, named=True)["ARMCD"] is None


def test_char_blanks_become_null_and_numbers_stay_float(pilot, suite):
    dm = pilot.tables["dm"]
    assert dm.schema["AGE"] == pl.Float64
    assert dm.schema["DMDY"] == pl.Float64
    first = dm.row(0, named=True)
    assert (first["USUBJID"], first["AGE"], first["DMDY"]) == ("01-701-1015", 63.0, -7.0)
    assert first["RFICDTC"] is None
    assert first["RFPENDTC"] == "2014-07-02T11:45"
    ae = suite.tables["ae"]
    assert ae["AEDECOD"].null_count() == 74
    assert ae["AEENDY"].null_count() == ae.filter(pl.col("AEENDTC").is_null()).height


def test_record_json_holds_each_row_as_the_file_does(trials, suite):
    raw, _ = pyreadstat.read_xport(str(trials / SUITE / "VS.xpt"))
    conformed = conform_domain(suite.tables["vs"], "VS")
    for index in (0, 700, 1413):
        expected = {
            name: value
            for name, value in raw.iloc[index].items()
            if value != "" and value == value  # drop blanks and NaN
        }
        assert json.loads(conformed["record_json"][index]) == expected


def test_both_real_ex_files_conform_to_one_schema(pilot, suite):
    assert "SPDEVID" not in pilot.tables["ex"].columns
    assert "SPDEVID" in suite.tables["ex"].columns
    with_device = conform_domain(suite.tables["ex"], "ex")
    without_device = conform_domain(pilot.tables["ex"], "ex")
    assert with_device.schema == without_device.schema == pl.Schema(conformed_schema("EX"))
    assert without_device["spdevid"].null_count() == 591
    assert with_device["spdevid"][0] == "DEV0001"
    assert without_device["visitnum"][0] == 3.0
    assert with_device["visitnum"].null_count() == 1583
    assert json.loads(with_device["record_json"][0])["EXVAMTU"] == "mL"


def test_reading_the_trials_root_does_not_descend_into_study_folders(trials):
    from connectors.errors import SourceNotFoundError

    with pytest.raises(SourceNotFoundError, match="sub-folders are not read"):
        read_sdtm(trials)
