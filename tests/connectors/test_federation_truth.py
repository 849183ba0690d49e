import csv
from datetime import date, timedelta

import pysam
import pytest

from connectors.synth import build_people, cohort_truth, lab_truth, trial_truth, write_genomics
from connectors.synth import codes as c
from connectors.synth.dicom import _studies
from connectors.synth.dicom_catalog import PROCEDURES
from connectors.synth.ehr import chronic_conditions
from connectors.synth.federation import RosterFacts
from connectors.synth.genomics import KNOWN_VARIANTS

PATIENTS = 60
SEED = 11
ON = date(2026, 1, 15)
T2D = {"conditions": [{"codes": [c.DIABETES_T2.code], "system": c.SNOMED}]}
TCF7L2 = next(v for v in KNOWN_VARIANTS if v.rsid == "rs7903146")


@pytest.fixture(scope="module")
def people():
    return build_people(PATIENTS, SEED)


@pytest.fixture(scope="module")
def facts(people):
    return RosterFacts.from_people(people)


@pytest.fixture(scope="module")
def labs(people):
    return lab_truth(people)


def consenting(people, on=ON):
    return {p.mrn for p in people if p.research_consent == "permit" and p.consent_date <= on}


def ask(facts, criteria, on=ON):
    return facts.cohort(criteria, reference_date=on)


def test_a_question_without_criteria_finds_exactly_the_people_who_permit_research(people, facts):
    found = ask(facts, {})
    assert found == consenting(people)
    states = {p.research_consent for p in people if p.mrn not in found}
    assert states == {"deny", "revoked"}


def test_a_consent_recorded_after_the_reference_date_does_not_count_yet(people, facts):
    latest = max(
        (p for p in people if p.research_consent == "permit"), key=lambda p: p.consent_date
    )
    before = latest.consent_date - timedelta(days=1)
    assert latest.mrn not in ask(facts, {}, before)
    assert latest.mrn in ask(facts, {}, latest.consent_date)
    assert ask(facts, {}, before) == consenting(people, before)


def test_cohort_truth_gives_the_same_answer_as_the_precomputed_facts(people, facts):
    assert cohort_truth(people, T2D, reference_date=ON) == ask(facts, T2D)


def test_type_2_diabetes_is_found_in_the_consenting_people_whose_ehr_record_has_it(people, facts):
    diabetic = {p.mrn for p in people if c.DIABETES_T2 in chronic_conditions(p)}
    expected = diabetic & consenting(people)
    assert expected and ask(facts, T2D) == expected
    other_system = {"conditions": [{"codes": [c.DIABETES_T2.code], "system": c.LOINC}]}
    assert ask(facts, other_system) == set()


def test_any_listed_code_of_a_condition_criterion_is_enough(facts):
    either = {"conditions": [{"codes": [c.DIABETES_T2.code, c.HYPERTENSION.code]}]}
    hypertension = {"conditions": [{"codes": [c.HYPERTENSION.code]}]}
    assert ask(facts, either) == ask(facts, T2D) | ask(facts, hypertension)


def test_lab_ranges_apply_to_the_canonical_value_whatever_unit_the_site_wrote(people, facts, labs):
    high = labs.filter(
        (labs["loinc"] == "4548-4") & (labs["value"] >= 8.0) & (labs["unit_written"] != "%")
    )
    assert high.height, "no HbA1c of 8 % or more was written in another unit"
    written_in_si = set(high["mrn"].to_list()) & consenting(people)
    assert written_in_si and written_in_si <= ask(
        facts, {"labs": [{"loinc": "4548-4", "min": 8.0}]}
    )


def test_results_the_conformer_cannot_use_never_find_their_person(people, facts, labs):
    usable = labs.filter(labs["deliberate"].is_null() | (labs["deliberate"] != "unknown_unit"))
    left_out = 0
    for row in labs.filter(labs["deliberate"] == "unknown_unit").iter_rows(named=True):
        if row["mrn"] not in consenting(people):
            continue
        low, high = row["value"] - 1e-6, row["value"] + 1e-6
        others = usable.filter(
            (usable["mrn"] == row["mrn"])
            & (usable["loinc"] == row["loinc"])
            & usable["value"].is_between(low, high)
        )
        if others.height == 0:
            question = {"labs": [{"loinc": row["loinc"], "min": low, "max": high}]}
            assert row["mrn"] not in ask(facts, question)
            left_out += 1
    assert left_out, "no unknown-unit result was checked"


def test_a_pending_result_and_an_unmapped_code_carry_no_value(facts, labs):
    pending = labs.filter(labs["deliberate"] == "pending")
    unmapped = labs.filter(labs["deliberate"] == "unmapped_code")
    assert pending.height and unmapped.height
    assert pending["value"].null_count() == pending.height
    assert unmapped["loinc"].null_count() == unmapped.height
    kept = sum(len(person.labs) for person in facts.people.values())
    numeric = labs.filter(
        (labs["value_type"] == "NM")
        & labs["loinc"].is_not_null()
        & labs["value"].is_not_null()
        & (labs["deliberate"].is_null() | (labs["deliberate"] != "unknown_unit"))
    )
    assert kept == numeric.height


def test_a_result_below_the_reporting_limit_counts_as_the_limit(people, facts, labs):
    bound = labs.filter(labs["comparator"] == "<")
    rows = [r for r in bound.iter_rows(named=True) if r["mrn"] in consenting(people)]
    assert rows
    for row in rows:
        at_limit = {"labs": [{"loinc": row["loinc"], "min": row["value"], "max": row["value"]}]}
        assert row["mrn"] in ask(facts, at_limit)


def test_imaging_studies_are_the_ordered_procedures_of_each_person(people, facts):
    body_part = {p.code: p.body_part for p in PROCEDURES}
    ordered: dict[str, set[tuple[str, str]]] = {}
    for _, row in _studies(people):
        if row is not None:
            mrn, modality, code = row[2], row[4], row[5]
            ordered.setdefault(mrn, set()).add((modality, body_part[code]))
    assert ordered
    for mrn, person in facts.people.items():
        # An outside prior repeats its person's first CT or MR: it adds no new kind of study.
        assert set(person.imaging) == ordered.get(mrn, set())
    ct_abdomen = {"imaging": [{"modality": "CT", "body_part": "ABDOMEN"}]}
    expected = {m for m, kinds in ordered.items() if ("CT", "ABDOMEN") in kinds}
    assert ask(facts, ct_abdomen) == expected & consenting(people)


def test_variant_carriers_are_the_samples_the_written_vcf_calls_with_the_alt_allele(
    people, facts, tmp_path
):
    write_genomics(people, tmp_path)
    folder = tmp_path / "genomics"
    with (folder / "samples.csv").open(newline="") as handle:
        mrn_of = {row["sample_id"]: row["mrn"] for row in csv.DictReader(handle)}
    carriers: dict[tuple[str, int, str, str], set[str]] = {}
    with pysam.VariantFile(str(folder / "cohort.vcf.gz")) as vcf:
        for record in vcf:
            for index, alt in enumerate(record.alts, start=1):
                key = (record.chrom, record.pos, record.ref, alt)
                carriers[key] = {
                    mrn_of[sample]
                    for sample, call in record.samples.items()
                    if None not in call["GT"] and index in call["GT"]
                }
    known = (TCF7L2.chrom, TCF7L2.pos, TCF7L2.ref, TCF7L2.alt)
    assert len(carriers[known]) >= 5
    chr_x = max((k for k in carriers if k[0] == "chrX"), key=lambda k: len(carriers[k]))
    for key in (known, chr_x):
        chrom, pos, ref, alt = key
        question = {"variants": [{"chrom": chrom, "pos": pos, "ref": ref, "alt": alt}]}
        assert ask(facts, question) == carriers[key] & consenting(people)


def test_trial_subjects_are_the_enrolled_people_and_each_is_in_one_arm(people, facts):
    enrolled = {p.mrn for p in people if p.trial_usubjid is not None}
    subjects = trial_truth(people)
    withdrew = set(subjects.filter(subjects["disposition"] == "WITHDRAWAL BY SUBJECT")["mrn"])
    assert withdrew, "nobody withdrew consent from the trial"
    study = {"trials": [{"study_id": "BIOFED-01"}]}
    assert ask(facts, study) == (enrolled - withdrew) & consenting(people)
    arms = set(trial_truth(people)["arm"].to_list())
    by_arm = [ask(facts, {"trials": [{"study_id": "BIOFED-01", "arm": arm}]}) for arm in arms]
    assert len(arms) == 2 and set.union(*by_arm) == ask(facts, study)
    assert not set.intersection(*by_arm)
    assert ask(facts, {"trials": [{"study_id": "CDISCPILOT01"}]}) == set()


def test_age_is_the_reference_year_minus_the_birth_year_and_ninety_or_more_counts_as_ninety(
    people, facts
):
    adults = {"age": {"min": 18, "max": 64}}
    expected = {p.mrn for p in people if 18 <= ON.year - p.birth_date.year <= 64}
    assert ask(facts, adults) == expected & consenting(people)
    oldest = [p for p in people if p.age_on(ON) >= 90 and p.mrn in consenting(people)]
    assert oldest, "the roster has nobody aged 90 or more who consented"
    for person in oldest:
        assert person.mrn in ask(facts, {"age": {"min": 90, "max": 90}})
        assert person.mrn not in ask(facts, {"age": {"min": 91}})


def test_sex_is_the_administrative_gender(people, facts):
    females = {p.mrn for p in people if p.gender == "female"}
    assert ask(facts, {"sex": "female"}) == females & consenting(people)


def test_every_given_criterion_must_hold(facts):
    parts = [
        {"labs": [{"loinc": "2345-7", "min": 100}]},
        {"sex": "female"},
        {"age": {"min": 40}},
        {"variants": [{"chrom": TCF7L2.chrom, "pos": TCF7L2.pos, "ref": "C", "alt": "T"}]},
    ]
    combined = {kind: value for part in parts for kind, value in part.items()}
    expected = set.intersection(*(ask(facts, part) for part in parts))
    assert ask(facts, combined) == expected
    assert ask(
        facts, {"labs": [{"loinc": "2345-7", "min": 100}, {"loinc": "4548-4", "min": 9}]}
    ) == (
        ask(facts, {"labs": [{"loinc": "2345-7", "min": 100}]})
        & ask(facts, {"labs": [{"loinc": "4548-4", "min": 9}]})
    )


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        ({"diagnoses": []}, "unknown criterion kind"),
        ({"labs": [{"loinc": "4548-4", "unit": "%"}]}, "unknown field"),
        ({"imaging": [{"modality": "CT", "from": "2025-01-01"}]}, "shift every date"),
        ({"conditions": [{"codes": []}]}, "non-empty list of codes"),
        ({"variants": [{"chrom": "chr10", "pos": 1}]}, "needs ref, alt"),
        ({"labs": {"loinc": "4548-4"}}, "must be a list"),
        ({"sex": ["female"]}, "administrative gender"),
    ],
)
def test_a_malformed_question_is_refused_with_the_reason(facts, criteria, message):
    with pytest.raises(ValueError, match=message):
        ask(facts, criteria)


def test_a_subject_leaves_the_study_from_the_day_they_withdraw_consent(people, facts):
    study = {"trials": [{"study_id": "BIOFED-01"}]}
    withdrawals = [
        (mrn, enrolment.consent_withdrawn)
        for mrn, person in facts.people.items()
        for enrolment in person.trials
        if enrolment.consent_withdrawn is not None and person.consent == "permit"
    ]
    assert withdrawals
    for mrn, day in withdrawals:
        assert mrn not in ask(facts, study, day)
        assert mrn in ask(facts, {"sex": facts.people[mrn].gender}, day)
        assert facts.people[mrn].consent_date < day
        assert mrn in ask(facts, study, day - timedelta(days=1))
