"""LOINC format and check digit, and agreement with the quality package's own copy."""

import pytest

from connectors.terminology.analytes import load_analytes
from connectors.terminology.loinc import is_valid_loinc, loinc_check_digit
from quality.codes import loinc_check_digit_ok, loinc_mod10


@pytest.mark.parametrize(
    ("digits", "check"),
    [
        ("2345", 7),  # glucose
        ("718", 7),  # haemoglobin
        ("2160", 0),  # creatinine
        ("4548", 4),  # HbA1c
        ("14749", 6),  # glucose, moles
        ("59261", 8),  # HbA1c, IFCC
        ("6690", 2),  # leukocytes
        ("2951", 2),  # sodium
        ("17861", 6),  # calcium
        ("8867", 4),  # heart rate
    ],
)
def test_check_digit_of_published_codes(digits, check):
    assert loinc_check_digit(digits) == check
    assert is_valid_loinc(f"{digits}-{check}")


@pytest.mark.parametrize("code", ["2345-7", "718-7", "59261-8", "33914-3"])
def test_every_other_check_digit_is_rejected(code):
    digits, check = code.split("-")
    wrong = [f"{digits}-{d}" for d in range(10) if d != int(check)]
    assert [c for c in wrong if is_valid_loinc(c)] == []


@pytest.mark.parametrize(
    "code",
    [
        "2354-7",  # adjacent digits of 2345-7 transposed
        "2245-7",  # one digit of 2345-7 changed
        "7188-7",  # a digit inserted into 718-7
    ],
)
def test_corrupted_codes_are_rejected(code):
    assert not is_valid_loinc(code)


@pytest.mark.parametrize(
    "code",
    ["", "2345", "2345-", "-7", "2345-77", "02345-7", " 2345-7", "2345-7 ", "2345_7",
     "23a5-7", "12345678-9", None, 23457, "２３４５-７"],
)
def test_malformed_codes_are_invalid(code):
    assert not is_valid_loinc(code)


@pytest.mark.parametrize("digits", ["", "12a", "-1", "１２", " 12"])
def test_check_digit_needs_ascii_digits(digits):
    with pytest.raises(ValueError, match="ASCII digits"):
        loinc_check_digit(digits)


def test_check_digit_agrees_with_quality_codes_on_many_numbers():
    for number in range(1, 100_000, 7):
        digits = str(number)
        assert loinc_check_digit(digits) == loinc_mod10(digits), digits


def test_validity_agrees_with_quality_codes_on_valid_and_corrupted_codes():
    codes = list(load_analytes())
    candidates = codes + [f"{c.split('-')[0]}-{(int(c[-1]) + 1) % 10}" for c in codes]
    candidates += [f"{n}-{d}" for n in range(1, 3000, 13) for d in range(10)]
    disagreements = [c for c in candidates if is_valid_loinc(c) != loinc_check_digit_ok(c)]
    assert disagreements == []
    assert sum(is_valid_loinc(c) for c in candidates) > len(codes)
