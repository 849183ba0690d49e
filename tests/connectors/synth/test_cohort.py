import re
from datetime import timedelta

import pytest

from connectors.synth import AS_OF, build_people
from connectors.synth.demographics import RESTRICTED_ZIP3, SITES_BY_CODE


@pytest.fixture(scope="module")
def roster():
    return build_people(1000, 7)


def test_roster_for_fewer_people_is_a_prefix_of_the_larger_roster():
    assert build_people(10, 7) == build_people(50, 7)[:10]


def test_same_seed_gives_the_same_roster_and_another_seed_a_different_one():
    assert build_people(30, 7) == build_people(30, 7)
    other = build_people(30, 8)
    assert [p.patient_id for p in other] != [p.patient_id for p in build_people(30, 7)]


def test_zero_people_is_an_empty_roster():
    assert build_people(0, 7) == []


@pytest.mark.parametrize("patients", [-1, 2.5, True])
def test_roster_size_must_be_a_whole_number_of_zero_or_more(patients):
    with pytest.raises(ValueError, match="patients"):
        build_people(patients, 7)


def test_identifiers_are_unique_across_the_roster(roster):
    for field in ("patient_id", "mrn", "dicom_patient_id"):
        values = [getattr(p, field) for p in roster]
        assert len(set(values)) == len(values), field
    for field in ("vcf_sample_id", "trial_usubjid"):
        values = [getattr(p, field) for p in roster if getattr(p, field) is not None]
        assert len(set(values)) == len(values), field
    own_lab_mrns = [p.lab_mrn for p in roster if p.lab_mrn != p.mrn]
    assert len(set(own_lab_mrns)) == len(own_lab_mrns)
    assert not set(own_lab_mrns) & {p.mrn for p in roster}


def test_identifiers_have_their_documented_formats(roster):
    for person in roster:
        assert re.fullmatch(r"MRN\d{8}", person.mrn)
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                            person.patient_id)
        assert person.lab_mrn == person.mrn or re.fullmatch(r"LAB\d{8}", person.lab_mrn)
        assert person.dicom_patient_id.startswith(SITES_BY_CODE[person.home_site].short + "-")
        if person.vcf_sample_id is not None:
            assert re.fullmatch(r"BF01-S\d{6}", person.vcf_sample_id)
        if person.trial_usubjid is not None:
            short = SITES_BY_CODE[person.home_site].short
            assert re.fullmatch(rf"BIOFED-01-{short}-\d{{4}}", person.trial_usubjid)


def test_linkage_identifiers_cover_the_planned_shares_of_people(roster):
    n = len(roster)
    assert 0.24 < sum(p.lab_mrn != p.mrn for p in roster) / n < 0.36
    assert 0.33 < sum(p.vcf_sample_id is not None for p in roster) / n < 0.47
    assert 0.15 < sum(p.trial_usubjid is not None for p in roster) / n < 0.25


def test_only_people_who_joined_the_biobank_have_a_dna_sample(roster):
    sampled = [p for p in roster if p.vcf_sample_id is not None]
    assert {p.research_consent for p in sampled} == {"permit", "revoked"}


def test_trial_subjects_are_numbered_from_one_per_site(roster):
    by_site: dict[str, list[int]] = {}
    for person in roster:
        if person.trial_usubjid is not None:
            by_site.setdefault(person.home_site, []).append(int(person.trial_usubjid[-4:]))
    for numbers in by_site.values():
        assert numbers == list(range(1, len(numbers) + 1))


def test_ages_span_newborns_to_ninety_and_over():
    ages = [p.age_on(p.end_date) for p in build_people(500, 7)]
    assert min(ages) == 0
    assert sum(age >= 90 for age in ages) >= 2
    assert max(ages) <= 100


def test_some_people_live_in_restricted_three_digit_zip_areas():
    people = build_people(500, 7)
    assert all(re.fullmatch(r"\d{5}", p.address.postal_code) for p in people)
    restricted = {p.address.postal_code[:3] for p in people} & RESTRICTED_ZIP3
    assert len(restricted) >= 3


def test_consent_mix_has_permit_deny_and_revoked_in_plausible_shares(roster):
    n = len(roster)
    share = {state: sum(p.research_consent == state for p in roster) / n
             for state in ("permit", "deny", "revoked")}
    assert 0.78 < share["permit"] < 0.92
    assert 0.06 < share["deny"] < 0.14
    assert 0.02 < share["revoked"] < 0.08


def test_consent_and_death_dates_are_in_order(roster):
    for person in roster:
        assert person.birth_date <= person.consent_date <= person.end_date <= AS_OF
        if person.research_consent == "revoked":
            assert person.consent_date <= person.consent_revoked_date <= person.end_date
        else:
            assert person.consent_revoked_date is None
        if person.deceased_date is not None:
            assert person.birth_date < person.deceased_date < AS_OF
            assert person.deceased_date > AS_OF - timedelta(days=5 * 366)


def test_about_one_in_twenty_people_has_died(roster):
    assert 0.03 < sum(p.deceased_date is not None for p in roster) / len(roster) < 0.08


def test_gender_is_mostly_male_or_female_with_a_few_other_and_unknown(roster):
    genders = [p.gender for p in roster]
    assert set(genders) == {"male", "female", "other", "unknown"}
    assert sum(g in ("other", "unknown") for g in genders) / len(genders) < 0.05


def test_each_silo_stream_of_a_person_is_its_own_repeatable_sequence():
    person = build_people(1, 7)[0]
    assert person.rng("ehr").random() == person.rng("ehr").random()
    assert person.rng("ehr").random() != person.rng("lab").random()
