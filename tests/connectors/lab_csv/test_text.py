"""Decoding, delimiter sniffing and record cutting of CSV exports."""

import codecs

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.lab_csv.text import (
    LINE,
    UNCLOSED_QUOTE,
    FileProblem,
    decode,
    detect_delimiter,
    split_fields,
    split_records,
)

MICRO = "Creatinine;88;\u00b5mol/L\n"


@pytest.mark.parametrize(
    ("data", "codec"),
    [
        (b"a,b\n1,2\n", "utf-8"),
        (codecs.BOM_UTF8 + "a,b\n\u00b5,2\n".encode(), "utf-8-sig"),
        ("a,b\n\u00b5,2\n".encode("utf-16"), "utf-16"),
        (MICRO.encode("cp1252"), "cp1252"),
        (MICRO.encode("utf-8"), "utf-8"),
    ],
)
def test_auto_encoding_follows_the_byte_order_mark_then_utf8_then_cp1252(data, codec):
    text, used = decode(data, "auto")
    assert used == codec
    assert "\ufeff" not in text
    assert text.replace("\r\n", "\n") in ("a,b\n1,2\n", "a,b\n\u00b5,2\n", MICRO)


def test_a_cp1252_micro_sign_is_decoded_as_a_micro_sign():
    text, _ = decode(MICRO.encode("cp1252"), "auto")
    assert "\u00b5mol/L" in text


def test_a_declared_utf8_file_may_carry_a_byte_order_mark():
    assert decode(codecs.BOM_UTF8 + b"MRN,X\n", "utf-8") == ("MRN,X\n", "utf-8-sig")
    assert decode(b"MRN,X\n", "utf-8") == ("MRN,X\n", "utf-8")


def test_a_file_that_does_not_decode_with_the_declared_codec_is_a_file_problem():
    with pytest.raises(FileProblem) as raised:
        decode(MICRO.encode("cp1252"), "utf-8")
    assert raised.value.reason == "file is not text in utf-8"


def test_bytes_undefined_in_cp1252_are_a_file_problem_in_auto_mode():
    with pytest.raises(FileProblem) as raised:
        decode(b"a,b\n\x81\xff,2\n", "auto")
    assert raised.value.reason == "file is not text in utf-8 or cp1252"


@pytest.mark.parametrize("delimiter", [",", ";", "|", "\t"])
def test_the_delimiter_is_sniffed_among_the_four_candidates(delimiter):
    rows = [
        ["MRN", "TEST", "VALUE", "UNIT"],
        ["M1", "Glucose, fasting", "5.4", "mmol/L"],
        ["M2", "Sodium", "140", "mmol/L"],
    ]
    text = "".join(delimiter.join(row) + "\n" for row in rows)
    assert detect_delimiter(text, "auto") == delimiter


def test_a_declared_delimiter_is_used_as_is():
    assert detect_delimiter("a,b;c\n", ";") == ";"


def test_a_header_alone_falls_back_to_the_most_frequent_candidate():
    assert detect_delimiter("MRN;TEST;VALUE\n", "auto") == ";"
    assert detect_delimiter("MRN\n", "auto") == ","


def records_frame(rows: list[tuple[int, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={LINE: pl.Int64(), "text": pl.String()}, orient="row")


def test_records_carry_the_physical_line_they_start_on():
    text = (
        "\n"  # a blank first line: the header is on line 2
        "A,B,C\r\n"
        '1,"two\r\nlines",3\r\n'
        "\r\n"
        ",,\n"
        '"",  ,""\n'
        "4,5,6"
    )
    records = split_records(text, ",")
    assert records.header == ["A", "B", "C"]
    assert records.header_line == 2
    assert_frame_equal(records.records, records_frame([(3, '1,"two\nlines",3'), (8, "4,5,6")]))
    assert records.problems == []


def test_a_quote_left_open_takes_the_rest_of_the_file_into_one_invalid_record():
    records = split_records('A,B\n1,2\n3,"open\n4,5\n', ",")
    assert_frame_equal(records.records, records_frame([(2, "1,2")]))
    assert records.problems == [(3, UNCLOSED_QUOTE)]


def test_a_file_of_bare_carriage_returns_is_read_line_by_line():
    records = split_records("A,B\r1,2\r3,4\r", ",")
    assert records.header == ["A", "B"]
    assert_frame_equal(records.records, records_frame([(2, "1,2"), (3, "3,4")]))


def test_a_file_without_records_has_no_header():
    records = split_records("\n ; \n", ";")
    assert (records.header, records.header_line, records.records.height) == ([], 0, 0)


def test_fields_are_unquoted_and_counted():
    records = records_frame(
        [
            (2, "a,b,c"),
            (3, '"x, y","say ""hi""",'),
            (4, ',"",z'),
            (5, "only,two"),
            (6, 'too,"many",fields,here'),
            (7, '5" tube,b,c'),
        ]
    )
    fields, wrong = split_fields(records, ",", {"first": 0, "second": 1, "third": 2}, 3)
    expected = pl.DataFrame(
        {
            LINE: [2, 3, 4, 7],
            "first": ["a", "x, y", "", '5" tube'],
            "second": ["b", 'say "hi"', "", "b"],
            "third": ["c", "", "z", "c"],
        },
        schema={LINE: pl.Int64(), "first": pl.String(), "second": pl.String(),
                "third": pl.String()},
    )
    assert_frame_equal(fields, expected)
    assert wrong.rows() == [(5, 2), (6, 4)]


def test_a_quoted_field_keeps_the_line_break_it_spans():
    records = split_records('A;B\n1;"x\ny"\n', ";")
    fields, wrong = split_fields(records.records, ";", {"b": 1}, 2)
    assert fields.rows() == [(2, "x\ny")]
    assert wrong.height == 0


def test_a_decimal_comma_rules_out_the_comma_as_delimiter():
    text = "MRN;VALUE\nM1;5,4\nM2;6,1\n"
    assert detect_delimiter(text, "auto", decimal_comma=True) == ";"
    assert detect_delimiter("MRN\n", "auto", decimal_comma=True) == ";"
