import pytest

from connectors.synth.codes import LOINC, SNOMED, all_codes
from quality.codes import (
    loinc_check_digit_ok,
    loinc_mod10,
    snomed_concept_id_ok,
    snomed_partition,
    snomed_verhoeff_ok,
    verhoeff_ok,
)

REAL_LOINC = [
    "718-7",  # Hemoglobin [Mass/volume] in Blood
    "2339-0",  # Glucose [Mass/volume] in Blood
    "4548-4",  # Hemoglobin A1c/Hemoglobin.total in Blood
    "8480-6",  # Systolic blood pressure
    "8462-4",  # Diastolic blood pressure
    "29463-7",  # Body weight
    "39156-5",  # Body mass index (BMI) [Ratio]
    "85354-9",  # Blood pressure panel with all children optional
    "72166-2",  # Tobacco smoking status
    "2093-3",  # Cholesterol [Mass/volume] in Serum or Plasma
    "8302-2",  # Body height
    "59284-0",  # Patient Consent
]

REAL_SNOMED = [
    "38341003",  # Hypertensive disorder, systemic arterial
    "44054006",  # Diabetes mellitus type 2
    "195967001",  # Asthma
    "73211009",  # Diabetes mellitus
    "138875005",  # SNOMED CT Concept (the root)
    "404684003",  # Clinical finding
    "900000000000207008",  # SNOMED CT core module (18 digits)
]


@pytest.mark.parametrize("code", REAL_LOINC)
def test_real_loinc_codes_pass_the_mod10_check(code):
    assert loinc_check_digit_ok(code)


@pytest.mark.parametrize(
    "code",
    [
        "718-8",
        "2339-1",
        "29463-0",
        "8480-7",
        "7187",
        "718-",
        "-7",
        "0718-7",
        " 718-7",
        "LA6576-8",
        "",
    ],
)
def test_wrong_check_digits_and_malformed_loinc_codes_fail(code):
    assert not loinc_check_digit_ok(code)


def test_the_mod10_algorithm_gives_the_published_example():
    # The LOINC Users' Guide works through 12345: its check digit is 5.
    assert loinc_mod10("12345") == 5


def test_the_mod10_algorithm_refuses_non_digits():
    with pytest.raises(ValueError, match="digits"):
        loinc_mod10("71a")


@pytest.mark.parametrize("code", REAL_SNOMED)
def test_real_snomed_ids_pass_the_verhoeff_check(code):
    assert snomed_verhoeff_ok(code)


@pytest.mark.parametrize(
    "code",
    ["38341004", "44054007", "195967002", "12345", "0138875005", "1234567890123456789", "3834100x"],
)
def test_wrong_check_digits_and_malformed_snomed_ids_fail(code):
    assert not snomed_verhoeff_ok(code)


def test_verhoeff_matches_its_textbook_example():
    # Verhoeff's check digit of 236 is 3.
    assert verhoeff_ok("2363")
    assert not any(verhoeff_ok(f"236{d}") for d in "012456789")


def test_an_id_in_the_description_partition_is_a_valid_sctid_but_not_a_concept_id():
    # Item 1234567, partition 01 (description), plus its Verhoeff check digit.
    (description_id,) = [f"123456701{d}" for d in "0123456789" if verhoeff_ok(f"123456701{d}")]
    assert snomed_verhoeff_ok(description_id)
    assert snomed_partition(description_id) == "01"
    assert not snomed_concept_id_ok(description_id)
    assert snomed_partition("900000000000003001") == "00"  # "Fully specified name", a concept
    assert snomed_concept_id_ok("900000000000003001")


def test_every_loinc_and_snomed_code_of_the_synthetic_cohort_is_valid():
    pairs = all_codes()
    loinc = [c for s, c in pairs if s == LOINC]
    snomed = [c for s, c in pairs if s == SNOMED]
    assert loinc and snomed
    assert [c for c in loinc if not loinc_check_digit_ok(c)] == []
    assert [c for c in snomed if not snomed_concept_id_ok(c)] == []
