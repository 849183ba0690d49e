from datetime import date, datetime

import pytest

from connectors.dicom import values as v


def decoder(*terms: str | None) -> v.Text:
    return v.Text(list(terms), set())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20240229", date(2024, 2, 29)),
        ("2024.02.29", date(2024, 2, 29)),
        ("20230229", None),
        ("2024022", None),
        ("abcdefgh", None),
    ],
)
def test_da_values_parse_to_dates_or_none(text, expected):
    assert v.parse_da(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20240102", datetime(2024, 1, 2)),
        ("2024", datetime(2024, 1, 1)),
        ("20240102131415.5", datetime(2024, 1, 2, 13, 14, 15, 500000)),
        ("20240102131415.123456+0100", datetime(2024, 1, 2, 13, 14, 15, 123456)),
        ("202401021314-0500", datetime(2024, 1, 2, 13, 14)),
        ("20240102131460", datetime(2024, 1, 2, 13, 14, 59)),
        ("20241302", None),
        ("20240102+01", None),
        ("2024010213.5", None),
    ],
)
def test_dt_values_parse_to_naive_datetimes_dropping_the_offset(text, expected):
    assert v.parse_dt(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1314", (13, 14, 0, 0)),
        ("131415.25", (13, 14, 15, 250000)),
        ("13:14:15", (13, 14, 15, 0)),
        ("2460", None),
        ("1", None),
    ],
)
def test_tm_values_parse_to_clock_parts(text, expected):
    assert v.parse_tm(text) == expected


def test_default_character_set_decodes_as_latin_1():
    assert decoder().decode("Müller".encode("latin-1")) == "Müller"


def test_utf_8_character_set_decodes_utf_8():
    assert decoder("ISO_IR 192").decode("山田".encode()) == "山田"


def test_iso_2022_code_extensions_switch_sets_at_escape_sequences():
    # PS3.5 H.3.1: a Japanese name in ISO 2022 IR 87 with JIS X 0208 escapes.
    raw = b"\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B"
    assert decoder("", "ISO 2022 IR 87").decode(raw, person_name=True) == "山田^太郎"


def test_undecodable_text_is_replaced_with_a_fixed_warning():
    sink: set[str] = set()
    assert v.Text(["ISO_IR 192"], sink).decode(b"\xff\xfe") == "\ufffd\ufffd"
    assert sink == {v.W_UNDECODABLE}


def test_an_unknown_character_set_falls_back_to_latin_1_with_a_fixed_warning():
    sink: set[str] = set()
    assert v.Text(["NOT A CHARSET"], sink).decode(b"caf\xe9") == "café"
    assert sink == {v.W_CHARSET}


def test_ascii_values_are_split_and_stripped_with_empty_ones_null():
    assert v.ascii_json(b"ORIGINAL\\PRIMARY\\\\ AXIAL ", decoder()) == (
        '"ORIGINAL","PRIMARY",null,"AXIAL"'
    )
    assert v.ascii_json(b"1.2.3\x00", decoder()) == '"1.2.3"'
    assert v.ascii_json(b"  ", decoder()) is None


def test_text_values_keep_leading_spaces_and_escape_for_json():
    assert v.text_json(b' say "hi"\\b ', decoder()) == '" say \\"hi\\"","b"'
    assert v.long_text_json(b"line\\one\r\n ", decoder()) == '"line\\\\one\\r\\n"'


def test_person_names_become_component_group_objects():
    raw = "Yamada^Tarou=山田^太郎".encode()
    assert v.person_name_json(raw, decoder("ISO_IR 192")) == (
        '{"Alphabetic":"Yamada^Tarou","Ideographic":"山田^太郎"}'
    )
    assert v.person_name_json(b"A^B\\", decoder()) == '{"Alphabetic":"A^B"},null'


def test_integer_strings_accept_integral_decimals_and_keep_other_text_with_a_warning():
    text = decoder()
    assert v.integer_strings(b" 7\\+8\\1.0", text) == [7, 8, 1]
    assert text.warnings == set()
    assert v.integer_strings(b"7\\x1", text) == [7, "x1"]
    assert text.warnings == {v.W_NUMBER}


def test_decimal_strings_refuse_nan_infinity_and_underscores():
    text = decoder()
    assert v.decimal_strings(b"1.5\\-2e-3\\", text) == [1.5, -0.002, None]
    assert v.decimal_strings(b"nan\\inf\\1_0", text) == ["nan", "inf", "1_0"]
    assert text.warnings == {v.W_NUMBER}
    assert v.numbers_json(["nan", 1.5, None]) == '"nan",1.5,null'


def test_non_finite_floats_are_written_as_null_with_a_warning():
    sink: set[str] = set()
    assert v.floats_json([1.5, float("nan"), float("-inf")], sink) == "1.5,null,null"
    assert sink == {v.W_FLOAT}
    assert v.floats_json([1e-5], sink) == "1e-05"


def test_attribute_tags_are_hex_group_then_element():
    assert v.attribute_tags(b"\x20\x00\x32\x00", True) == ["00200032"]
    assert v.attribute_tags(b"\x00\x20\x00\x32", False) == ["00200032"]


def test_inline_binary_is_little_endian_base64():
    assert v.inline_binary(b"\x12\x34", "OW", False) == "NBI="
    assert v.inline_binary(b"\x12\x34", "OB", False) == "EjQ="
