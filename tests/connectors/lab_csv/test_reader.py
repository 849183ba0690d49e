"""read_lab_csv on small exports written in each site's layout."""

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

from connectors.errors import (
    MalformedRecordError,
    SourceNotFoundError,
    UnsupportedFormatError,
)
from connectors.lab_csv import (
    FILE_SCHEMA,
    UnknownSiteProfileError,
    load_profile,
    read_lab_csv,
)
from connectors.lab_schema import LAB_RESULT_SCHEMA
from connectors.result import REJECT_SCHEMA
from tests.connectors.lab_csv.exports import A01_HEADER, B07_HEADER, write_export

SITES = ["SITE-A01", "SITE-B07"]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def lab_frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    """Rows with every other lab_results column null."""
    return pl.DataFrame(
        [{name: row.get(name) for name in LAB_RESULT_SCHEMA} for row in rows],
        schema=LAB_RESULT_SCHEMA,
        orient="row",
    )


def rejects_frame(source: Path, rows: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(str(source), locator, reason) for locator, reason in rows],
        schema=REJECT_SCHEMA,
        orient="row",
    )


def test_a_site_a01_export_reads_into_the_shared_lab_row_shape(tmp_path):
    path = write_export(
        tmp_path / "a01.csv",
        "SITE-A01",
        [
            {},
            {
                "test_code": "CREA",
                "test_display": "Creatinine",
                "value": "<0.5",
                "reference_range": "0.6-1.2",
                "abnormal_flag": "L",
                "result_status": "P",
                "collected_at": "2024-07-01 07:00",
                "resulted_at": "2024-07-01 09:15",
            },
        ],
    )
    result = read_lab_csv(path, site="SITE-A01")
    common = {
        "source_kind": "csv",
        "site": "SITE-A01",
        "patient_id": "LAB-0001",
        "accession": "ACC-1",
        "panel_code": "BMP",
        "panel_system": "L",
        "panel_display": "Basic metabolic panel",
        "test_system": "L",
        "category": "laboratory",
        "value_type": "NM",
        "unit": "mg/dL",
        "specimen_type": "SER",
    }
    expected = lab_frame(
        [
            {
                **common,
                "source_locator": "line:2",
                "observation_seq": 1,
                "test_code": "GLU",
                "test_display": "Glucose",
                "value_text": "105",
                "value_number": 105.0,
                "reference_range": "70-99",
                "reference_low": 70.0,
                "reference_high": 99.0,
                "abnormal_flag": "H",
                "result_status": "F",
                # New York is UTC-5 in January and UTC-4 in July.
                "collected_at": utc(2024, 1, 15, 13, 30),
                "resulted_at": utc(2024, 1, 15, 15, 5),
            },
            {
                **common,
                "source_locator": "line:3",
                "observation_seq": 2,
                "test_code": "CREA",
                "test_display": "Creatinine",
                "value_text": "<0.5",
                "value_number": 0.5,
                "comparator": "<",
                "reference_range": "0.6-1.2",
                "reference_low": 0.6,
                "reference_high": 1.2,
                "abnormal_flag": "L",
                "result_status": "P",
                "collected_at": utc(2024, 7, 1, 11, 0),
                "resulted_at": utc(2024, 7, 1, 13, 15),
            },
        ]
    )
    assert list(result.tables) == ["lab_results", "files"]
    assert_frame_equal(result.tables["lab_results"], expected)
    assert_frame_equal(result.rejects, rejects_frame(path, []))
    assert_frame_equal(
        result.tables["files"],
        pl.DataFrame(
            [(str(path), "SITE-A01", "utf-8", ",", 2, 0, None)],
            schema=FILE_SCHEMA,
            orient="row",
        ),
    )


def b07_rows() -> list[dict[str, str]]:
    return [
        {
            "patient_id": "B07-77",
            "accession": "S-900",
            "test_code": "1002",
            "test_display": "Kreatinin",
            "value": "88",
            "unit": "\u00b5mol/L",
            "reference_range": "62-106",
            "abnormal_flag": "",
            "result_status": "F",
            "specimen_type": "Serum",
            "collected_at": "2024-01-15 08:30",
            "resulted_at": "2024-01-15 09:45",
        },
        {
            "patient_id": "B07-77",
            "accession": "S-900",
            "test_code": "1020",
            "test_display": "HbA1c",
            "value": "48",
            "unit": "mmol/mol",
            "reference_range": "-42",
            "abnormal_flag": "H",
            "result_status": "C",
            "specimen_type": "Blood",
            "collected_at": "2024-07-01 07:00",
            "resulted_at": "2024-07-01 08:00",
        },
    ]


def b07_expected() -> pl.DataFrame:
    common = {
        "source_kind": "csv",
        "site": "SITE-B07",
        "patient_id": "B07-77",
        "accession": "S-900",
        "test_system": "L",
        "category": "laboratory",
        "value_type": "NM",
    }
    return lab_frame(
        [
            {
                **common,
                "source_locator": "line:2",
                "observation_seq": 1,
                "test_code": "1002",
                "test_display": "Kreatinin",
                "value_text": "88",
                "value_number": 88.0,
                "unit": "\u00b5mol/L",
                "reference_range": "62-106",
                "reference_low": 62.0,
                "reference_high": 106.0,
                "result_status": "F",
                "specimen_type": "Serum",
                # Denver is UTC-7 in January and UTC-6 in July.
                "collected_at": utc(2024, 1, 15, 15, 30),
                "resulted_at": utc(2024, 1, 15, 16, 45),
            },
            {
                **common,
                "source_locator": "line:3",
                "observation_seq": 2,
                "test_code": "1020",
                "test_display": "HbA1c",
                "value_text": "48",
                "value_number": 48.0,
                "unit": "mmol/mol",
                "reference_range": "<42",
                "reference_high": 42.0,
                "abnormal_flag": "H",
                "result_status": "C",
                "specimen_type": "Blood",
                "collected_at": utc(2024, 7, 1, 13, 0),
                "resulted_at": utc(2024, 7, 1, 14, 0),
            },
        ]
    )


def test_a_site_b07_export_in_cp1252_reads_its_micro_sign_and_denver_times(tmp_path):
    path = write_export(tmp_path / "b07.csv", "SITE-B07", b07_rows())
    assert "\u00b5".encode("cp1252") in path.read_bytes()
    result = read_lab_csv(path, site="SITE-B07")
    assert_frame_equal(result.tables["lab_results"], b07_expected())
    assert result.tables["files"].select("encoding", "delimiter").row(0) == ("cp1252", ";")


def test_semicolon_and_cp1252_are_detected_when_the_profile_says_auto(tmp_path):
    path = write_export(tmp_path / "b07.csv", "SITE-B07", b07_rows())
    profile = load_profile("SITE-B07").model_copy(update={"delimiter": "auto", "encoding": "auto"})
    result = read_lab_csv(path, site=profile)
    assert_frame_equal(result.tables["lab_results"], b07_expected())
    assert result.tables["files"].select("encoding", "delimiter").row(0) == ("cp1252", ";")


@pytest.mark.parametrize(
    ("site", "local", "expected"),
    [
        # Daylight-saving time started on 2024-03-10 and ended on 2024-11-03 in both zones.
        ("SITE-B07", "2024-03-10 01:59", utc(2024, 3, 10, 8, 59)),
        ("SITE-B07", "2024-03-10 03:00", utc(2024, 3, 10, 9, 0)),
        ("SITE-B07", "2024-12-24 23:30", utc(2024, 12, 25, 6, 30)),
        # 01:30 happened twice on 2024-11-03; the earlier (daylight) instant is taken.
        ("SITE-B07", "2024-11-03 01:30", utc(2024, 11, 3, 7, 30)),
        ("SITE-A01", "2024-11-03 01:30", utc(2024, 11, 3, 5, 30)),
        ("SITE-A01", "2024-06-30 23:59", utc(2024, 7, 1, 3, 59)),
    ],
)
def test_local_times_become_utc_across_daylight_saving_changes(tmp_path, site, local, expected):
    path = write_export(tmp_path / "x.csv", site, [{"collected_at": local}])
    frame = read_lab_csv(path, site=site).tables["lab_results"]
    assert frame["collected_at"].to_list() == [expected]


@pytest.mark.parametrize("site", SITES)
def test_iso_8601_times_with_an_offset_are_read_whatever_the_profile_format(tmp_path, site):
    path = write_export(
        tmp_path / "x.csv",
        site,
        [
            {"collected_at": "2024-01-15T08:30:00Z"},
            {"collected_at": "2024-01-15T08:30:00.250+01:00"},
            {"collected_at": "2024-01-15T08:30-05:00"},
        ],
    )
    frame = read_lab_csv(path, site=site).tables["lab_results"]
    assert frame["collected_at"].to_list() == [
        utc(2024, 1, 15, 8, 30),
        datetime(2024, 1, 15, 7, 30, 0, 250_000, tzinfo=UTC),
        utc(2024, 1, 15, 13, 30),
    ]


def test_site_status_words_map_to_hl7_codes_case_insensitively(tmp_path):
    path = tmp_path / "b07.csv"
    text = ";".join(B07_HEADER) + "\n" + "".join(
        f"P1;S1;1001;Glucose;5.4;mmol/L;;;;{status};Serum;01/15/2024 08:30;\n"
        for status in ("Final", "Prelim", "Corrected", " FINAL ", "Pending", "")
    )
    path.write_bytes(text.encode("cp1252"))
    frame = read_lab_csv(path, site="SITE-B07").tables["lab_results"]
    assert frame["result_status"].to_list() == ["F", "P", "C", "F", "I", None]


@pytest.mark.parametrize(
    ("value", "value_type", "comparator", "number"),
    [
        ("5.4", "NM", None, 5.4),
        ("<0.5", "NM", "<", 0.5),
        ("> 90", "NM", ">", 90.0),
        ("<=1e3", "NM", "<=", 1000.0),
        (" 7 ", "NM", None, 7.0),
        ("Positive", "ST", None, None),
        ("1:40", "ST", None, None),
    ],
)
def test_values_are_numbers_with_an_optional_comparator_or_text(
    tmp_path, value, value_type, comparator, number
):
    path = write_export(tmp_path / "a01.csv", "SITE-A01", [{"value": value}])
    frame = read_lab_csv(path, site="SITE-A01").tables["lab_results"]
    row = frame.select("value_type", "value_text", "comparator", "value_number").row(0)
    assert row == (value_type, value, comparator, number)


@pytest.mark.parametrize(
    ("reference", "low", "high"),
    [
        ("70-99", 70.0, 99.0),
        ("4.3 to 6.2", 4.3, 6.2),
        ("<5.7", None, 5.7),
        (">60", 60.0, None),
        ("see note", None, None),
        ("", None, None),
    ],
)
def test_a_reference_range_column_gives_both_limits(tmp_path, reference, low, high):
    path = write_export(tmp_path / "a01.csv", "SITE-A01", [{"reference_range": reference}])
    frame = read_lab_csv(path, site="SITE-A01").tables["lab_results"]
    row = frame.select("reference_range", "reference_low", "reference_high").row(0)
    assert row == (reference or None, low, high)


@pytest.mark.parametrize(
    ("low_high", "text", "low", "high"),
    [
        (("3.5", "5.1"), "3.5-5.1", 3.5, 5.1),
        (("60", ""), ">60", 60.0, None),
        (("", "5"), "<5", None, 5.0),
        (("", ""), None, None, None),
        (("n/a", "5"), "n/a-5", None, 5.0),
    ],
)
def test_low_and_high_columns_give_a_range_as_hl7_writes_it(tmp_path, low_high, text, low, high):
    path = write_export(
        tmp_path / "b07.csv", "SITE-B07", [{"reference_range": "-".join(low_high)}]
    )
    frame = read_lab_csv(path, site="SITE-B07").tables["lab_results"]
    assert frame.select("reference_range", "reference_low", "reference_high").row(0) == (
        text, low, high
    )


def test_a_decimal_comma_profile_reads_values_and_limits_with_commas(tmp_path):
    path = tmp_path / "b07.csv"
    path.write_bytes(
        (";".join(B07_HEADER) + "\nP1;S1;1001;Glucose;5,4;mmol/L;3,9;5,5;;Final;;;\n").encode()
    )
    profile = load_profile("SITE-B07").model_copy(update={"decimal_separator": ","})
    frame = read_lab_csv(path, site=profile).tables["lab_results"]
    row = frame.select(
        "value_text", "value_number", "reference_range", "reference_low", "reference_high"
    ).row(0)
    assert row == ("5,4", 5.4, "3,9-5,5", 3.9, 5.5)


def test_observation_seq_counts_rows_within_each_accession_in_file_order(tmp_path):
    path = write_export(
        tmp_path / "a01.csv",
        "SITE-A01",
        [
            {"accession": "ACC-1"},
            {"accession": "ACC-2"},
            {"accession": "ACC-1"},
            {"accession": ""},
            {"accession": "ACC-2"},
            {"accession": ""},
            {"accession": "", "patient_id": "LAB-0002"},
            {"accession": "ACC-1"},
        ],
    )
    frame = read_lab_csv(path, site="SITE-A01").tables["lab_results"]
    assert frame["observation_seq"].to_list() == [1, 1, 2, 1, 2, 2, 1, 3]


def test_a_blank_value_is_read_when_the_status_says_pending(tmp_path):
    path = write_export(
        tmp_path / "a01.csv", "SITE-A01", [{"value": "", "result_status": "I"}]
    )
    result = read_lab_csv(path, site="SITE-A01")
    frame = result.tables["lab_results"]
    assert frame.select("value_type", "value_text", "value_number", "result_status").row(0) == (
        None, None, None, "I"
    )
    assert result.rejects.is_empty()


# A row per problem; the expected reason names the profile's column for that field.
BAD_ROWS: list[tuple[dict[str, str], str, dict[str, str]]] = [
    ({"patient_id": ""}, "patient id is blank (column {patient_id})", {}),
    ({"patient_id": "   "}, "patient id is blank (column {patient_id})", {}),
    ({"test_code": ""}, "test code is blank (column {test_code})", {}),
    (
        {"value": ""},
        "value is blank and the result status does not say it is pending (column {value})",
        {},
    ),
    (
        {"value": " ", "result_status": ""},
        "value is blank and the result status does not say it is pending (column {value})",
        {},
    ),
    (
        {"result_status": "Amended"},
        "result status is not one the site profile maps (column {result_status})",
        {},
    ),
    (
        {"collected_at": "15.01.2024 08:30"},
        "date-time is in none of the site profile's formats nor ISO 8601 (column {collected_at})",
        {},
    ),
    (
        {"resulted_at": "2024-02-30 08:30"},
        "date-time is in none of the site profile's formats nor ISO 8601 (column {resulted_at})",
        {"SITE-B07": "02/30/2024 08:30"},
    ),
    (
        {"collected_at": "2024-03-10 02:30"},
        "local date-time does not exist in {timezone}, a daylight-saving gap "
        "(column {collected_at})",
        {},
    ),
]


@pytest.mark.parametrize("site", SITES)
def test_every_kind_of_bad_row_is_quarantined_with_its_line_and_reason(tmp_path, site):
    profile = load_profile(site)
    headers = {**profile.columns.mapped(), "timezone": profile.timezone}
    rows = [{}]
    expected = []
    for change, reason, raw_by_site in BAD_ROWS:
        row = dict(change)
        if site in raw_by_site:
            row = {name: raw_by_site[site] for name in change}
        rows.append(row)
        expected.append((f"line:{len(rows) + 1}", reason.format(**headers)))
    rows.append({})
    path = write_export(tmp_path / "x.csv", site, rows)
    # Lines with too few and too many fields, after the last row.
    delimiter = profile.delimiter
    width = len(A01_HEADER if site == "SITE-A01" else B07_HEADER)
    with path.open("ab") as stream:
        stream.write(f"LAB-9{delimiter}ACC-9\r\n".encode())
        stream.write((delimiter.join(["x"] * (width + 1)) + "\r\n").encode())
    expected += [
        (f"line:{len(rows) + 2}", f"row has 2 fields where the header has {width}"),
        (f"line:{len(rows) + 3}", f"row has {width + 1} fields where the header has {width}"),
    ]

    result = read_lab_csv(path, site=site, on_error="quarantine")

    assert_frame_equal(result.rejects, rejects_frame(path, expected))
    assert result.tables["lab_results"]["source_locator"].to_list() == [
        "line:2", f"line:{len(rows) + 1}"
    ]
    assert result.tables["files"].select("rows", "rejected").row(0) == (2, len(expected))


def test_a_record_left_in_an_open_quote_is_quarantined_at_its_first_line(tmp_path):
    path = write_export(tmp_path / "a01.csv", "SITE-A01", [{}, {"test_display": '"Glu'}, {}])
    result = read_lab_csv(path, site="SITE-A01", on_error="quarantine")
    assert_frame_equal(
        result.rejects,
        rejects_frame(
            path,
            [("line:3", "row is not valid CSV: a quoted field is not closed before the end "
                        "of the file")],
        ),
    )
    assert result.tables["lab_results"]["source_locator"].to_list() == ["line:2"]


def test_a_quoted_field_over_two_lines_keeps_later_line_numbers_right(tmp_path):
    path = write_export(
        tmp_path / "a01.csv",
        "SITE-A01",
        [{"test_display": '"Glucose\r\nfasting"'}, {"patient_id": ""}, {}],
    )
    result = read_lab_csv(path, site="SITE-A01", on_error="quarantine")
    frame = result.tables["lab_results"]
    assert frame.select("source_locator", "test_display").rows() == [
        ("line:2", "Glucose\nfasting"),
        ("line:5", "Glucose"),
    ]
    assert result.rejects["locator"].to_list() == ["line:4"]


def test_raise_mode_stops_at_the_first_bad_row_with_its_locator(tmp_path):
    path = write_export(
        tmp_path / "a01.csv",
        "SITE-A01",
        [{}, {"collected_at": "yesterday", "patient_id": "LAB-SECRET"}, {"test_code": ""}],
    )
    with pytest.raises(MalformedRecordError) as raised:
        read_lab_csv(path, site="SITE-A01")
    error = raised.value
    assert (error.source, error.locator) == (str(path), "line:3")
    assert error.reason == (
        "date-time is in none of the site profile's formats nor ISO 8601 (column COLLECTED)"
    )
    assert "LAB-SECRET" not in str(error) and "yesterday" not in str(error)


@pytest.mark.parametrize("site", SITES)
def test_no_reject_reason_or_error_carries_a_value_of_the_file(tmp_path, site):
    secrets = {
        "patient_id": "MRN-424242",
        "accession": "ACC-SECRET-77",
        "test_display": "Jane Doe glucose",
        "value": "",
        "unit": "mg/dL-secret",
        "abnormal_flag": "HH-secret",
        "result_status": "Verified-secret",
        "specimen_type": "SER-secret",
        "collected_at": "13/13/2024 25:61",
        "resulted_at": "2024-03-10 02:45",
    }
    rows = [
        secrets,
        {**secrets, "patient_id": ""},
        {**secrets, "test_code": ""},
        {**secrets, "value": "987.654", "result_status": "F"},
        {**secrets, "value": "987.654", "result_status": "F", "collected_at": "2024-01-01 01:00"},
    ]
    path = write_export(tmp_path / "x.csv", site, rows)
    with path.open("ab") as stream:
        stream.write(b"MRN-424242\r\n")
    result = read_lab_csv(path, site=site, on_error="quarantine")
    assert result.rejects.height == len(rows) + 1
    texts = [*result.rejects["reason"].to_list(), *result.rejects["locator"].to_list()]
    with pytest.raises(MalformedRecordError) as raised:
        read_lab_csv(path, site=site)
    texts.append(str(raised.value))
    cells = {text for row in rows for text in row.values() if len(text) > 3} | {"987.654"}
    for text in texts:
        leaked = [cell for cell in cells if cell in text]
        assert not leaked, f"{text!r} carries {leaked}"


@pytest.mark.parametrize("site", [*SITES, "SYNTHEA"])
def test_lab_results_have_exactly_the_shared_schema(tmp_path, site):
    path = tmp_path / "x.csv"
    if site == "SYNTHEA":
        path.write_text(
            "DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE\n"
            "2020-01-01T00:00:00Z,p1,e1,laboratory,2345-7,Glucose,99,mg/dL,numeric\n"
        )
    else:
        write_export(path, site, [{}])
    frame = read_lab_csv(path, site=site).tables["lab_results"]
    assert frame.schema == pl.Schema(LAB_RESULT_SCHEMA)
    assert frame.height == 1
    empty = read_lab_csv(
        write_export(tmp_path / "y.csv", "SITE-A01", []), site=site, on_error="quarantine"
    )
    assert empty.tables["lab_results"].schema == pl.Schema(LAB_RESULT_SCHEMA)
    assert empty.tables["files"].schema == pl.Schema(FILE_SCHEMA)


def test_a_file_without_the_required_columns_is_not_an_export_of_the_profile(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("MRN,TEST_CODE,NAME\nLAB-1,GLU,Jane Doe\n", encoding="utf-8")
    reason = (
        "header lacks the column(s) RESULT that site profile SITE-A01 requires, so it is not "
        "that site's lab export"
    )
    result = read_lab_csv(path, site="SITE-A01", on_error="quarantine")
    assert_frame_equal(result.rejects, rejects_frame(path, [("file", reason)]))
    assert result.tables["lab_results"].is_empty()
    assert result.tables["files"].select("rows", "rejected").row(0) == (0, 1)
    with pytest.raises(UnsupportedFormatError, match="RESULT that site profile SITE-A01"):
        read_lab_csv(path, site="SITE-A01")


def test_a_b07_export_read_as_a01_is_rejected_as_a_file(tmp_path):
    path = write_export(tmp_path / "b07.csv", "SITE-B07", b07_rows())
    result = read_lab_csv(path, site="SITE-A01", on_error="quarantine")
    assert result.rejects.select("locator", "reason").rows() == [
        ("file", "file is not text in utf-8")
    ]
    assert result.tables["files"].select("encoding", "delimiter").row(0) == (None, None)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "file holds no header row"),
        (b"\r\n\r\n", "file holds no header row"),
        (
            b"MRN,ACCESSION,mrn,TEST_CODE,RESULT\n1,2,3,4,5\n",
            "header names the column(s) MRN more than once",
        ),
    ],
)
def test_files_that_cannot_hold_rows_are_rejected_whole(tmp_path, content, reason):
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    result = read_lab_csv(path, site="SITE-A01", on_error="quarantine")
    assert_frame_equal(result.rejects, rejects_frame(path, [("file", reason)]))


def test_headers_match_case_insensitively_and_trimmed_and_absent_optional_columns_are_null(
    tmp_path,
):
    path = tmp_path / "a01.csv"
    path.write_text(
        " mrn ,Test_Code,result,Units\nLAB-1,GLU,5.4,mmol/L\n", encoding="utf-8"
    )
    result = read_lab_csv(path, site="SITE-A01")
    frame = result.tables["lab_results"]
    assert frame.select("patient_id", "test_code", "value_number", "unit", "accession").row(0) == (
        "LAB-1", "GLU", 5.4, "mmol/L", None
    )
    assert result.tables["files"]["absent_columns"].to_list() == [
        "ACCESSION,ORDER_CODE,ORDER_NAME,TEST_NAME,REF_RANGE,FLAG,STATUS,SPECIMEN,COLLECTED,"
        "RESULTED"
    ]


def test_an_unknown_site_profile_is_an_error_listing_the_known_ones(tmp_path):
    path = write_export(tmp_path / "a01.csv", "SITE-A01", [{}])
    with pytest.raises(UnknownSiteProfileError, match="SITE-A01, SITE-B07, SYNTHEA"):
        read_lab_csv(path, site="SITE-Q42")


def test_a_profile_given_as_a_yaml_path_is_used(tmp_path):
    profile = tmp_path / "site-p11.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "site": "SITE-P11",
                "timezone": "Europe/Paris",
                "delimiter": "auto",
                "encoding": "auto",
                "decimal_separator": ",",
                "datetime_formats": ["%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M"],
                "code_system": "LN",
                "default_category": "laboratory",
                "statuses": {"endgültig": "F", "vorläufig": "P"},
                "columns": {
                    "patient_id": "Patient",
                    "test_code": "LOINC",
                    "value": "Wert",
                    "unit": "Einheit",
                    "reference_range": "Referenz",
                    "result_status": "Status",
                    "collected_at": "Entnahme",
                },
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    path = tmp_path / "export.csv"
    path.write_text(
        "Patient|LOINC|Wert|Einheit|Referenz|Status|Entnahme\n"
        "P-1|2345-7|5,4|mmol/L|3,9-5,5|Endgültig|15.01.2024 08:30:15\n"
        "P-1|718-7|>14|g/dL||vorläufig|01.07.2024 08:30\n",
        encoding="utf-8",
    )
    result = read_lab_csv(path, site=profile)
    expected = lab_frame(
        [
            {
                "source_locator": "line:2", "source_kind": "csv", "site": "SITE-P11",
                "patient_id": "P-1", "observation_seq": 1, "test_code": "2345-7",
                "test_system": "LN", "category": "laboratory", "value_type": "NM",
                "value_text": "5,4", "value_number": 5.4, "unit": "mmol/L",
                "reference_range": "3,9-5,5", "reference_low": 3.9, "reference_high": 5.5,
                "result_status": "F", "collected_at": utc(2024, 1, 15, 7, 30, 15),
            },
            {
                "source_locator": "line:3", "source_kind": "csv", "site": "SITE-P11",
                "patient_id": "P-1", "observation_seq": 2, "test_code": "718-7",
                "test_system": "LN", "category": "laboratory", "value_type": "NM",
                "value_text": ">14", "value_number": 14.0, "comparator": ">", "unit": "g/dL",
                "result_status": "P", "collected_at": utc(2024, 7, 1, 6, 30),
            },
        ]
    )
    assert_frame_equal(result.tables["lab_results"], expected)
    assert result.tables["files"].select("site", "encoding", "delimiter").row(0) == (
        "SITE-P11", "utf-8", "|"
    )


def test_a_site_profile_object_is_used_as_given(tmp_path):
    path = write_export(tmp_path / "a01.csv", "SITE-A01", [{}])
    profile = load_profile("SITE-A01").model_copy(update={"site": "SITE-A01-TEST"})
    frame = read_lab_csv(path, site=profile).tables["lab_results"]
    assert frame["site"].to_list() == ["SITE-A01-TEST"]


def test_a_declared_value_type_keeps_numeric_looking_text_as_text(tmp_path):
    path = tmp_path / "observations.csv"
    path.write_text(
        "DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE\n"
        "2020-01-01T00:00:00Z,p1,e1,survey,63586-2,Income,122863,,text\n"
        "2020-01-01T00:00:00Z,p1,e1,laboratory,2345-7,Glucose,99,mg/dL,Numeric\n"
        "2020-01-01T00:00:00Z,p1,e1,laboratory,2345-7,Glucose,high,mg/dL,numeric\n"
        "2020-01-01T00:00:00Z,p1,e1,laboratory,2345-7,Glucose,99,mg/dL,coded\n"
        "2020-01-01T00:00:00Z,p1,,,QALY,QALY,20.0,a,numeric\n"
        "2020-01-01T00:00:00Z,p1,,,DALY,DALY,,a,numeric\n",
        encoding="utf-8",
    )
    result = read_lab_csv(path, site="SYNTHEA", on_error="quarantine")
    frame = result.tables["lab_results"]
    assert frame.select("value_type", "value_number", "category", "accession").rows() == [
        ("ST", None, "survey", "e1"),
        ("NM", 99.0, "laboratory", "e1"),
        ("ST", None, "laboratory", "e1"),
        ("NM", 20.0, None, None),
    ]
    assert result.rejects.select("locator", "reason").rows() == [
        ("line:5", "value type is not one the site profile maps (column TYPE)"),
        (
            "line:7",
            "value is blank and the result status does not say it is pending (column VALUE)",
        ),
    ]


def test_a_missing_source_and_a_folder_are_errors(tmp_path):
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        read_lab_csv(tmp_path / "nope.csv", site="SITE-A01")
    with pytest.raises(UnsupportedFormatError, match="is a folder"):
        read_lab_csv(tmp_path, site="SITE-A01")


def test_on_error_must_be_one_of_the_two_modes(tmp_path):
    path = write_export(tmp_path / "a01.csv", "SITE-A01", [{}])
    with pytest.raises(ValueError, match="on_error"):
        read_lab_csv(path, site="SITE-A01", on_error="ignore")  # type: ignore[arg-type]



def test_a_byte_order_mark_never_reaches_the_first_header(tmp_path):
    path = write_export(tmp_path / "a01.csv", "SITE-A01", [{}])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = read_lab_csv(path, site="SITE-A01")
    assert result.tables["lab_results"]["patient_id"].to_list() == ["LAB-0001"]
    assert result.tables["files"]["encoding"].to_list() == ["utf-8-sig"]


def test_a_utf16_tab_separated_export_is_detected_by_an_auto_profile(tmp_path):
    path = tmp_path / "observations.tsv"
    path.write_bytes(
        "DATE\tPATIENT\tENCOUNTER\tCATEGORY\tCODE\tDESCRIPTION\tVALUE\tUNITS\tTYPE\r\n"
        "2020-01-01T00:00:00Z\tp1\te1\tlaboratory\t14682-9\tCreatinine\t88\t\u00b5mol/L\tnumeric\r\n"
        .encode("utf-16")
    )
    result = read_lab_csv(path, site="SYNTHEA")
    assert result.tables["lab_results"].select("test_code", "value_number", "unit").rows() == [
        ("14682-9", 88.0, "\u00b5mol/L")
    ]
    assert result.tables["files"].select("encoding", "delimiter").row(0) == ("utf-16", "\t")
