import json

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.sdtm import STANDARD_VARIABLES, conform_domain, conformed_schema, read_sdtm
from tests.connectors.sdtm.conftest import write_xpt


def ex_columns(subjects: list[str], **extra: list) -> dict[str, list]:
    n = len(subjects)
    columns = {
        "STUDYID": ["STUDY1"] * n,
        "DOMAIN": ["EX"] * n,
        "USUBJID": subjects,
        "EXSEQ": list(range(1, n + 1)),
        "EXTRT": ["DRUG X"] * n,
        "EXDOSE": [54.0] * n,
        "EXSTDTC": ["2020-01-02"] * n,
    }
    columns.update(extra)
    return columns


def test_ex_files_with_and_without_a_device_conform_to_one_schema(tmp_path):
    plain = write_xpt(tmp_path / "ex.xpt", ex_columns(["S-001"], VISITNUM=[3.0]))
    device = write_xpt(
        tmp_path / "ex_device.xpt",
        ex_columns(["S-002", "S-002"], SPDEVID=["DEV1", "DEV1"], EXVAMT=[5.0, 2.5]),
        name="EX",
    )
    first = conform_domain(read_sdtm(plain).tables["ex"], "EX")
    second = conform_domain(read_sdtm(device).tables["ex"], "ex")
    expected = pl.Schema(conformed_schema("EX"))
    assert first.schema == second.schema == expected
    assert list(expected)[:5] == ["studyid", "domain", "usubjid", "spdevid", "exseq"]
    assert list(expected)[-4:] == ["record_json", "source_file", "source_locator", "dataset"]
    assert first.select("spdevid", "visitnum", "exdose", "source_locator").rows() == [
        (None, 3.0, 54.0, "row:1")
    ]
    assert second["spdevid"].to_list() == ["DEV1", "DEV1"]
    assert [json.loads(text)["EXVAMT"] for text in second["record_json"]] == [5, 2.5]


def test_types_are_cast_to_the_standard_and_every_variable_kept_as_json():
    frame = pl.DataFrame(
        {
            "STUDYID": ["STUDY1", "STUDY1"],
            "DOMAIN": ["AE", "AE"],
            "USUBJID": ["S-001", "S-001"],
            "AESEQ": [1.0, 2.0],
            "AETERM": ['PAIN "SHARP"', None],
            "AEPTCD": ["10033371", " x "],
            "AETOXGR": [3.0, 2.5],
            "AELNKID": ["L1", None],
            "source_file": ["ae.xpt", "ae.xpt"],
            "source_locator": ["row:1", "row:2"],
            "dataset": ["AE", "AE"],
        }
    )
    conformed = conform_domain(frame, "AE")
    assert conformed.select("aeseq", "aeterm", "aeptcd", "aetoxgr", "aedecod").rows() == [
        (1.0, 'PAIN "SHARP"', 10033371.0, "3", None),
        (2.0, None, None, "2.5", None),
    ]
    assert "aelnkid" not in conformed.columns
    assert conformed["record_json"][0] == (
        '{"STUDYID":"STUDY1","DOMAIN":"AE","USUBJID":"S-001","AESEQ":1,'
        '"AETERM":"PAIN \\"SHARP\\"","AEPTCD":"10033371","AETOXGR":3,"AELNKID":"L1"}'
    )
    assert json.loads(conformed["record_json"][1]) == {
        "STUDYID": "STUDY1", "DOMAIN": "AE", "USUBJID": "S-001", "AESEQ": 2,
        "AEPTCD": " x ", "AETOXGR": 2.5,
    }
    assert conformed.select("source_file", "source_locator", "dataset").rows() == [
        ("ae.xpt", "row:1", "AE"),
        ("ae.xpt", "row:2", "AE"),
    ]


def test_a_frame_without_provenance_or_values_still_gets_the_schema():
    frame = pl.DataFrame({"USUBJID": [None, "S-001"], "MHTERM": [None, None]})
    conformed = conform_domain(frame, "mh")
    assert conformed.schema == pl.Schema(conformed_schema("MH"))
    assert conformed["record_json"].to_list() == ["{}", '{"USUBJID":"S-001"}']
    assert conformed["source_file"].to_list() == [None, None]


def test_an_empty_frame_conforms_to_an_empty_table():
    conformed = conform_domain(pl.DataFrame(schema={"USUBJID": pl.String}), "DM")
    assert_frame_equal(conformed, pl.DataFrame(schema=conformed_schema("DM")))


def test_a_domain_without_a_standard_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="domain must be one of: AE, CM, DM, DS, EX, LB, MH, VS"):
        conform_domain(pl.DataFrame({"USUBJID": ["S-001"]}), "QS")
    assert sorted(STANDARD_VARIABLES) == ["AE", "CM", "DM", "DS", "EX", "LB", "MH", "VS"]
