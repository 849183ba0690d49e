import pytest

from connectors.hl7v2.errors import FieldError
from connectors.hl7v2.message import Decoder, Delimiters
from connectors.hl7v2.values import (
    MISSING_VALUE_TYPE,
    NOT_A_NUMBER,
    NOT_STRUCTURED_NUMERIC,
    UNKNOWN_SN_COMPARATOR,
    ObservationValue,
    observation_value,
)

DECODER = Decoder(Delimiters())


def value(value_type: str | None, field: str) -> ObservationValue:
    return observation_value(value_type, field, DECODER)


@pytest.mark.parametrize(
    ("field", "number", "comparator"),
    [
        ("98", 98.0, None),
        ("-0.5", -0.5, None),
        ("+4.06", 4.06, None),
        (" 221 ", 221.0, None),
        ("<0.5", 0.5, "<"),
    ],
)
def test_nm_values_become_numbers(field, number, comparator):
    assert value("NM", field) == ObservationValue(text=field, number=number, comparator=comparator)


@pytest.mark.parametrize("field", ["12.3x", "positive", "1:40", "5 mg"])
def test_nm_values_that_are_not_numbers_are_field_errors(field):
    with pytest.raises(FieldError) as caught:
        value("NM", field)
    assert str(caught.value) == NOT_A_NUMBER


def test_a_repeated_nm_keeps_its_text_and_no_single_number():
    assert value("NM", "27~25") == ObservationValue(text="27~25")
    with pytest.raises(FieldError):
        value("NM", "27~x")


@pytest.mark.parametrize(
    ("field", "number", "comparator"),
    [
        ("^182", 182.0, None),
        ("<^5", 5.0, "<"),
        ("<=^5", 5.0, "<="),
        (">^10", 10.0, ">"),
        (">=^10", 10.0, ">="),
        ("=^7.5", 7.5, None),
        ("^10^-^20", 10.0, None),
        ("^2^+", 2.0, None),
        ("<^", None, "<"),
    ],
)
def test_sn_values_give_comparator_and_first_number(field, number, comparator):
    assert value("SN", field) == ObservationValue(text=field, number=number, comparator=comparator)


@pytest.mark.parametrize("field", ["^1^:^128", ">^1^/^64", "^1^.^3"])
def test_sn_ratios_and_sequences_keep_only_their_text(field):
    assert value("SN", field) == ObservationValue(text=field)


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ("<>^5", UNKNOWN_SN_COMPARATOR),
        ("about^5", UNKNOWN_SN_COMPARATOR),
        ("^five", NOT_STRUCTURED_NUMERIC),
        ("^<5", NOT_STRUCTURED_NUMERIC),
        ("^10^-^twenty", NOT_STRUCTURED_NUMERIC),
        ("^10^x^20", NOT_STRUCTURED_NUMERIC),
    ],
)
def test_sn_values_that_do_not_follow_the_type_are_field_errors(field, reason):
    with pytest.raises(FieldError) as caught:
        value("SN", field)
    assert str(caught.value) == reason


@pytest.mark.parametrize("value_type", ["CE", "CWE", "CNE"])
def test_coded_values_give_code_display_and_system(value_type):
    field = "260348001^Present ++ out of ++++^SCT"
    assert value(value_type, field) == ObservationValue(
        text=field, code="260348001", system="SCT", display="Present ++ out of ++++"
    )


def test_a_cwe_without_display_falls_back_to_its_original_text():
    field = "260415000^^SCT^^^^^^None seen"
    assert value("CWE", field).display == "None seen"
    assert value("CE", field).display is None


def test_repeated_coded_values_join_each_part_by_tilde():
    assert value("CWE", "A^Alpha^L~B^^L2") == ObservationValue(
        text="A^Alpha^L~B^^L2", code="A~B", system="L~L2", display="Alpha~"
    )


def test_coded_values_decode_escapes_per_component():
    assert value("CWE", "X1^A\\T\\E^L").display == "A&E"


@pytest.mark.parametrize(
    ("value_type", "field", "text"),
    [
        ("ST", "Many spherocytes present.", "Many spherocytes present."),
        ("TX", "E.coli \\T\\ STEC", "E.coli & STEC"),
        ("FT", "line 1\\.br\\line 2", "line 1\nline 2"),
        ("ST", "a\\S\\b", "a^b"),
        ("RP", "https://testurl.com^^image^PICT", "https://testurl.com^^image^PICT"),
        ("ED", "App5^NS^Octet-stream^Base64^SGVsbG8=", "App5^NS^Octet-stream^Base64^SGVsbG8="),
        ("DT", "20240305", "20240305"),
        ("TX", "one~two", "one~two"),
    ],
)
def test_text_and_other_types_keep_only_the_value_as_sent(value_type, field, text):
    assert value(value_type, field) == ObservationValue(text=text)


@pytest.mark.parametrize("field", ["", '""', "^^", "~", "  "])
def test_an_empty_value_is_all_null_whatever_the_type(field):
    assert value("NM", field) == ObservationValue()
    assert value(None, field) == ObservationValue()


def test_a_value_without_value_type_is_a_field_error():
    with pytest.raises(FieldError) as caught:
        value(None, "98")
    assert str(caught.value) == MISSING_VALUE_TYPE
