import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.errors import (
    ConnectorError,
    MalformedRecordError,
    SourceNotFoundError,
    UnsupportedFormatError,
)
from connectors.result import REJECT_SCHEMA
from connectors.sdtm import SdtmFileError, read_sdtm
from connectors.sdtm.conformance import MESSAGES
from connectors.sdtm.files import (
    EMPTY,
    NO_KEY_HEADER,
    NOT_A_NUMBER,
    NOT_XPORT,
    SEVERAL_MEMBERS,
    TRUNCATED,
)
from connectors.sdtm.schema import dataset_schema, variable_schema
from tests.connectors.sdtm.conftest import ae_columns, dm_columns, lb_columns, write_xpt


def findings(result) -> list[tuple]:
    """The findings as (file, rule, severity, variable, rows, first locator)."""
    return (
        result.tables["findings"]
        .select("source_file", "rule", "severity", "variable", "rows", "first_locator")
        .rows()
    )


@pytest.fixture
def study(tmp_path):
    """A study folder: DM, AE (upper-case suffix), LB split over LB and LBUR, and clutter."""
    folder = tmp_path / "STUDY1"
    folder.mkdir()
    write_xpt(folder / "dm.xpt", dm_columns(["S-001", "S-002", "S-003"]))
    write_xpt(folder / "ae.XPT", ae_columns(["S-001", "S-001"], [1, 2]), name="AE")
    write_xpt(folder / "lb.xpt", lb_columns(["S-001", "S-002"], [1, 1]))
    lbur = lb_columns(["S-001"], [2], LBSPEC=["URINE"])
    del lbur["LBDTC"]
    write_xpt(folder / "lbur.xpt", lbur)
    (folder / ".hidden.xpt").write_bytes(b"not looked at")
    (folder / "define.xml").write_text("<ODM/>", encoding="utf-8")
    (folder / "old").mkdir()
    write_xpt(folder / "old" / "dm.xpt", dm_columns(["S-999"]))
    return folder


def test_a_study_folder_is_read_into_one_table_per_domain(study):
    result = read_sdtm(study)
    assert list(result.tables) == ["dm", "ae", "lb", "datasets", "variables", "findings"]
    assert result.rejects.is_empty()
    assert result.tables["findings"].is_empty()
    lb = result.tables["lb"]
    assert lb.columns == [
        "STUDYID", "DOMAIN", "USUBJID", "LBSEQ", "LBTESTCD", "LBTEST", "LBSTRESN", "LBDTC",
        "LBSPEC", "source_file", "source_locator", "dataset",
    ]
    assert lb.select("source_file", "source_locator", "dataset", "LBSEQ", "LBSPEC").rows() == [
        ("lb.xpt", "row:1", "LB", 1.0, None),
        ("lb.xpt", "row:2", "LB", 1.0, None),
        ("lbur.xpt", "row:1", "LBUR", 2.0, "URINE"),
    ]
    assert lb["LBDTC"].to_list() == ["2020-01-03T08:30", "2020-01-03T08:30", None]
    assert_frame_equal(
        result.tables["datasets"],
        pl.DataFrame(
            [
                ("ae.XPT", "AE", "AE", None, 2, "xport5"),
                ("dm.xpt", "DM", "DM", None, 3, "xport5"),
                ("lb.xpt", "LB", "LB", None, 2, "xport5"),
                ("lbur.xpt", "LBUR", "LB", None, 1, "xport5"),
            ],
            schema=dataset_schema(),
            orient="row",
        ),
    )


def test_variables_carry_labels_types_lengths_and_positions(tmp_path):
    path = write_xpt(
        tmp_path / "ae.xpt",
        ae_columns(["S-001"], [1]),
        labels={"AESEQ": "Sequence Number", "AETERM": "Reported Term for the Adverse Event"},
        label="Adverse Events",
    )
    result = read_sdtm(path)
    assert result.tables["datasets"]["label"].to_list() == ["Adverse Events"]
    variables = result.tables["variables"]
    assert variables.schema == pl.Schema(variable_schema())
    assert variables.filter(pl.col("variable").is_in(["USUBJID", "AESEQ", "AETERM"])).select(
        "variable", "label", "type", "length", "position"
    ).rows() == [
        ("USUBJID", None, "Char", 5, 3),
        ("AESEQ", "Sequence Number", "Num", 8, 4),
        ("AETERM", "Reported Term for the Adverse Event", "Char", 8, 5),
    ]


def test_a_duplicate_usubjid_in_dm_is_an_error_finding(tmp_path):
    write_xpt(tmp_path / "dm.xpt", dm_columns(["S-001", "S-002", "S-001", "S-001"]))
    result = read_sdtm(tmp_path)
    assert findings(result) == [
        ("dm.xpt", "usubjid_not_unique_in_dm", "error", "USUBJID", 2, "row:3"),
    ]
    assert result.tables["dm"].height == 4


def test_a_duplicate_seq_is_found_within_a_file_and_across_a_split_domain(tmp_path):
    write_xpt(tmp_path / "ae.xpt", ae_columns(["S-001", "S-001", "S-001", "S-002"], [1, 2, 2, 1]))
    write_xpt(tmp_path / "lb.xpt", lb_columns(["S-001", "S-002"], [1, 1]))
    write_xpt(tmp_path / "lbur.xpt", lb_columns(["S-002", "S-001"], [2, 1]))
    assert findings(read_sdtm(tmp_path)) == [
        ("ae.xpt", "seq_not_unique", "error", "AESEQ", 1, "row:3"),
        ("lbur.xpt", "seq_not_unique", "error", "LBSEQ", 1, "row:2"),
    ]


def test_dates_that_are_not_sdtm_iso_8601_are_warnings(tmp_path):
    starts = ["2020-01-05", "2020-13-01", "05/01/2020", "2020---15", None, "2020-02-30"]
    columns = ae_columns(["S-001"] * 6, [1, 2, 3, 4, 5, 6], AESTDTC=starts)
    columns["AEENDTC"] = ["2020-01", "2020", "--01-05", "2020-01-05T10", None, "2020-01-06T25:00"]
    write_xpt(tmp_path / "ae.xpt", columns)
    assert findings(read_sdtm(tmp_path)) == [
        ("ae.xpt", "invalid_iso8601", "warning", "AESTDTC", 3, "row:2"),
        ("ae.xpt", "invalid_iso8601", "warning", "AEENDTC", 1, "row:6"),
    ]


def test_missing_required_variables_are_errors_and_missing_actual_arms_warnings(tmp_path):
    ae = ae_columns(["S-001", "S-001"], [1, 2])
    del ae["AEDECOD"]
    write_xpt(tmp_path / "ae.xpt", ae)
    dm = dm_columns(["S-001"])
    del dm["ACTARMCD"], dm["ACTARM"]
    write_xpt(tmp_path / "dm.xpt", dm)
    result = read_sdtm(tmp_path)
    assert findings(result) == [
        ("ae.xpt", "required_variable_missing", "error", "AEDECOD", 2, "file"),
        ("dm.xpt", "required_variable_missing", "warning", "ACTARMCD", 1, "file"),
        ("dm.xpt", "required_variable_missing", "warning", "ACTARM", 1, "file"),
    ]
    assert "AEDECOD" not in result.tables["ae"].columns


def test_null_required_values_are_counted_and_armnrs_excuses_a_null_arm(tmp_path):
    dm = dm_columns(
        ["S-001", "S-002", "S-003", "S-004"],
        SEX=["F", None, "M", None],
        ARMCD=["A", "A", None, None],
        ARMNRS=[None, None, "SCREEN FAILURE", None],
    )
    write_xpt(tmp_path / "dm.xpt", dm)
    assert findings(read_sdtm(tmp_path)) == [
        ("dm.xpt", "required_value_missing", "error", "SEX", 2, "row:2"),
        ("dm.xpt", "required_value_missing", "error", "ARMCD", 1, "row:4"),
    ]


def test_a_dataset_without_domain_is_filed_by_its_name(tmp_path):
    ae = ae_columns(["S-001"], [1])
    del ae["DOMAIN"]
    write_xpt(tmp_path / "aelong.xpt", ae, name="AELONG")
    result = read_sdtm(tmp_path)
    assert list(result.tables) == ["ae", "datasets", "variables", "findings"]
    assert result.tables["findings"].drop("source_file", "dataset").rows() == [
        (
            "AE", "required_variable_missing", "error", "DOMAIN", 1, "file",
            MESSAGES["domain_variable_missing"],
        )
    ]


def test_domain_values_that_differ_or_disagree_with_the_name_are_mismatches(tmp_path):
    write_xpt(
        tmp_path / "ae.xpt",
        ae_columns(["S-001"] * 3, [1, 2, 3], DOMAIN=["AE", "AE", "CM"]),
    )
    write_xpt(tmp_path / "events.xpt", ae_columns(["S-001"], [4]), name="EVENTS")
    result = read_sdtm(tmp_path)
    assert findings(result) == [
        ("ae.xpt", "domain_mismatch", "error", "DOMAIN", 1, "row:3"),
        ("events.xpt", "domain_mismatch", "error", "DOMAIN", 1, "file"),
    ]
    assert result.tables["ae"]["source_file"].to_list() == ["ae.xpt"] * 3 + ["events.xpt"]


def test_subjects_absent_from_dm_are_warnings_only_when_dm_is_read(tmp_path):
    write_xpt(tmp_path / "dm.xpt", dm_columns(["S-001"]))
    ae = write_xpt(tmp_path / "ae.xpt", ae_columns(["S-001", "S-009", "S-009"], [1, 1, 2]))
    assert findings(read_sdtm(tmp_path)) == [
        ("ae.xpt", "subject_not_in_dm", "warning", "USUBJID", 2, "row:2"),
    ]
    assert findings(read_sdtm(ae)) == []


def test_a_num_variable_stored_as_char_is_a_type_warning(tmp_path):
    write_xpt(tmp_path / "ae.xpt", ae_columns(["S-001", "S-001"], [1, 2], AEPTCD=["", "1001"]))
    assert findings(read_sdtm(tmp_path)) == [
        ("ae.xpt", "variable_type_mismatch", "warning", "AEPTCD", 1, "row:2"),
    ]


@pytest.fixture
def bad_files(tmp_path):
    """One good DM and one file of each kind that cannot be loaded."""
    folder = tmp_path / "batch"
    folder.mkdir()
    good = write_xpt(folder / "dm.xpt", dm_columns(["S-001"]))
    # 7 rows of 47 bytes (329) fill five 80-byte records; the cut one splits a row.
    ae = write_xpt(tmp_path / "ae.xpt", ae_columns([f"S-00{i}" for i in range(7)], range(7)))
    raw = ae.read_bytes()
    (folder / "cut.xpt").write_bytes(raw[:-5])
    (folder / "cut_at_record.xpt").write_bytes(raw[:-80])
    (folder / "empty.xpt").write_bytes(b"")
    (folder / "notes.xpt").write_text("Free text, not a transport file.\n", encoding="utf-8")
    (folder / "two.xpt").write_bytes(good.read_bytes() + raw[240:])
    (folder / "lab.csv").write_text("MRN,TEST,RESULT\n123,GLU,5.5\n", encoding="utf-8")
    return folder


EXPECTED_REJECTS = pl.DataFrame(
    [
        ("cut.xpt", "file", TRUNCATED),
        ("cut_at_record.xpt", "file", TRUNCATED),
        ("empty.xpt", "file", EMPTY),
        ("lab.csv", "file", NO_KEY_HEADER),
        ("notes.xpt", "file", NOT_XPORT),
        ("two.xpt", "file", SEVERAL_MEMBERS),
    ],
    schema=REJECT_SCHEMA,
    orient="row",
)


def test_unreadable_files_are_quarantined_and_the_rest_loads(bad_files):
    result = read_sdtm(bad_files, on_error="quarantine")
    assert_frame_equal(result.rejects, EXPECTED_REJECTS)
    assert list(result.tables) == ["dm", "datasets", "variables", "findings"]
    assert result.tables["datasets"]["source_file"].to_list() == ["dm.xpt"]


def test_raise_mode_stops_at_the_first_unreadable_file(bad_files):
    with pytest.raises(SdtmFileError) as raised:
        read_sdtm(bad_files)
    error = raised.value
    assert isinstance(error, MalformedRecordError)
    assert isinstance(error, ConnectorError)
    assert (error.source, error.locator, error.reason) == ("cut.xpt", "file", TRUNCATED)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("cut.xpt", TRUNCATED),
        ("cut_at_record.xpt", TRUNCATED),
        ("empty.xpt", EMPTY),
        ("lab.csv", NO_KEY_HEADER),
        ("notes.xpt", NOT_XPORT),
        ("two.xpt", SEVERAL_MEMBERS),
    ],
)
def test_each_unreadable_file_read_alone_raises_its_reason(bad_files, name, reason):
    with pytest.raises(SdtmFileError) as raised:
        read_sdtm(bad_files / name)
    assert (raised.value.locator, raised.value.reason) == ("file", reason)


def test_a_transport_v8_file_with_long_names_is_read(tmp_path):
    path = write_xpt(
        tmp_path / "lb_central.xpt",
        lb_columns(["S-001"], [1], LBSPECIMENCONDITIONTEXT=["HAEMOLYSED"]),
        name="LBCENTRALLAB",
        version=8,
    )
    result = read_sdtm(path)
    assert result.tables["datasets"].select("dataset", "domain", "format").rows() == [
        ("LBCENTRALLAB", "LB", "xport8")
    ]
    assert result.tables["lb"]["LBSPECIMENCONDITIONTEXT"].to_list() == ["HAEMOLYSED"]
    assert findings(result) == []


def test_a_dataset_without_rows_keeps_its_typed_columns(tmp_path):
    columns = ae_columns([], [])
    path = write_xpt(tmp_path / "ae.xpt", columns, char=frozenset(columns) - {"AESEQ"})
    ae = read_sdtm(path).tables["ae"]
    assert ae.height == 0
    assert ae.schema["AESEQ"] == pl.Float64
    assert ae.schema["AETERM"] == pl.String


def test_missing_numbers_are_null_and_blank_text_is_null(tmp_path):
    columns = ae_columns(["S-001", "S-001"], [1, 2], AESTDY=[None, None])
    columns["AETERM"] = ["  HEADACHE  ", ""]
    ae = read_sdtm(write_xpt(tmp_path / "ae.xpt", columns)).tables["ae"]
    assert ae.schema["AESTDY"] == pl.Float64
    assert ae["AESTDY"].to_list() == [None, None]
    assert ae["AETERM"].to_list() == ["  HEADACHE", None]


def test_sas_special_missing_values_are_null(tmp_path):
    path = write_xpt(tmp_path / "ae.xpt", ae_columns(["S-001", "S-001"], [1, 2], AESTDY=[None, 5]))
    raw = path.read_bytes()
    missing = raw.index(b"." + bytes(7))  # '.' in IBM float: the first row's AESTDY
    path.write_bytes(raw[:missing] + b"A" + raw[missing + 1 :])  # now '.A'
    assert read_sdtm(path).tables["ae"]["AESTDY"].to_list() == [None, 5.0]


def test_windows_1252_text_in_a_transport_file_is_decoded(tmp_path):
    path = write_xpt(tmp_path / "ae.xpt", ae_columns(["S-001"], [1], AETERM=["NAUSEA-X"]))
    path.write_bytes(path.read_bytes().replace(b"NAUSEA-X", "Übelkeit".encode("cp1252")))
    assert read_sdtm(path).tables["ae"]["AETERM"].to_list() == ["Übelkeit"]


def test_a_csv_dataset_is_typed_by_the_standard(tmp_path):
    text = (
        "studyid,domain,usubjid,subjid,siteid,sex,age,dmdy,armcd,arm,actarmcd,actarm,country,"
        "rfstdtc,rpathcd\n"
        "STUDY1,DM,S-001,001,01,F, 63 ,-7,A,Arm A,A,Arm A,USA,2020-01-02  ,12\n"
        "STUDY1,DM,S-002,002,01,M,.,,A,Arm A,A,Arm A,USA,,\n"
    )
    path = tmp_path / "dm.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    result = read_sdtm(path)
    dm = result.tables["dm"]
    assert dm.schema["AGE"] == dm.schema["DMDY"] == pl.Float64
    assert dm.schema["RPATHCD"] == pl.String
    assert dm.select("AGE", "DMDY", "RFSTDTC", "RPATHCD").rows() == [
        (63.0, -7.0, "2020-01-02", "12"),
        (None, None, None, None),
    ]
    assert result.tables["datasets"].select("label", "records", "format").rows() == [
        ("Demographics", 2, "csv")
    ]
    variables = result.tables["variables"].filter(pl.col("variable").is_in(["AGE", "RPATHCD"]))
    assert variables.select("variable", "label", "type", "length").rows() == [
        ("AGE", "Age", "Num", None),
        ("RPATHCD", None, "Char", None),
    ]
    assert findings(result) == []


@pytest.fixture
def ae_csv(tmp_path):
    text = (
        "STUDYID,DOMAIN,USUBJID,AESEQ,AETERM,AEDECOD\n"
        "STUDY1,AE,S-001,1,Übelkeit,Nausea\n"
        "STUDY1,AE,S-001,two,Kopfschmerz,Headache\n"
        "STUDY1,AE,S-001,3,Müdigkeit,Fatigue\n"
    )
    path = tmp_path / "ae.csv"
    path.write_bytes(text.encode("cp1252"))
    return path


def test_a_csv_row_whose_number_is_text_is_quarantined(ae_csv):
    result = read_sdtm(ae_csv, on_error="quarantine")
    assert result.rejects.rows() == [("ae.csv", "row:2", NOT_A_NUMBER)]
    ae = result.tables["ae"]
    assert ae.select("AESEQ", "AETERM", "source_locator").rows() == [
        (1.0, "Übelkeit", "row:1"),
        (3.0, "Müdigkeit", "row:3"),
    ]
    assert result.tables["datasets"]["records"].to_list() == [2]


def test_a_csv_row_whose_number_is_text_raises_in_raise_mode(ae_csv):
    with pytest.raises(MalformedRecordError) as raised:
        read_sdtm(ae_csv)
    assert (raised.value.locator, raised.value.reason) == ("row:2", NOT_A_NUMBER)


def test_relationship_and_trial_design_datasets_are_held_to_their_own_identifiers(tmp_path):
    write_xpt(tmp_path / "dm.xpt", dm_columns(["S-001"]))
    (tmp_path / "suppae.csv").write_text(
        "STUDYID,RDOMAIN,USUBJID,IDVAR,IDVARVAL,QNAM,QLABEL,QVAL\n"
        "STUDY1,AE,S-001,AESEQ,1,AETRTEM,Treatment Emergent Flag,Y\n"
        "STUDY1,AE,S-404,AESEQ,1,AETRTEM,Treatment Emergent Flag,N\n",
        encoding="utf-8",
    )
    (tmp_path / "ts.csv").write_text(
        "STUDYID,DOMAIN,TSSEQ,TSPARMCD,TSPARM,TSVAL\nSTUDY1,TS,1,TITLE,Trial Title,A study\n",
        encoding="utf-8",
    )
    result = read_sdtm(tmp_path)
    assert list(result.tables) == ["dm", "suppae", "ts", "datasets", "variables", "findings"]
    assert result.tables["ts"]["TSSEQ"].to_list() == [1.0]
    assert result.tables["suppae"]["IDVARVAL"].to_list() == ["1", "1"]
    assert findings(result) == [
        ("suppae.csv", "subject_not_in_dm", "warning", "USUBJID", 1, "row:2"),
    ]


def test_no_finding_reject_or_error_repeats_a_value(tmp_path):
    secret = "SECRET-4711"
    write_xpt(tmp_path / "dm.xpt", dm_columns([secret, secret], SEX=[None, "F"]))
    write_xpt(
        tmp_path / "ae.xpt",
        ae_columns([secret + "X", secret], [1, 1], AESTDTC=[secret, "2020"], AEPTCD=[secret, ""]),
    )
    (tmp_path / "zz.csv").write_text(
        f"STUDYID,DOMAIN,USUBJID,AESEQ\nS,AE,{secret},{secret}\n", encoding="utf-8"
    )
    result = read_sdtm(tmp_path, on_error="quarantine")
    assert {rule for rule in result.tables["findings"]["rule"]} >= {
        "usubjid_not_unique_in_dm", "required_value_missing", "subject_not_in_dm",
        "invalid_iso8601", "variable_type_mismatch",
    }
    texts = [
        *result.tables["findings"].select(pl.exclude("rows")).iter_rows(),
        *result.rejects.iter_rows(),
    ]
    assert not any(secret in str(value) for row in texts for value in row)
    with pytest.raises(MalformedRecordError) as raised:
        read_sdtm(tmp_path)
    assert secret not in str(raised.value)


def test_sources_that_name_nothing_readable_raise_with_a_way_out(tmp_path):
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        read_sdtm(tmp_path / "missing")
    with pytest.raises(SourceNotFoundError, match="holds no .xpt or .csv file"):
        read_sdtm(tmp_path)
    (tmp_path / "dm.sas7bdat").write_bytes(b"x")
    with pytest.raises(UnsupportedFormatError, match="rename the file"):
        read_sdtm(tmp_path / "dm.sas7bdat")
    with pytest.raises(ValueError, match="on_error"):
        read_sdtm(tmp_path, on_error="ignore")
