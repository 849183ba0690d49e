"""Ground truth for cross-silo cohort questions, from the generators' own plans.

``cohort_truth`` answers a ``find_cohort`` question (conditions by code, lab results by LOINC
and range, imaging by modality and body part, variant carriers, trial participation, age
band, sex) for a synthetic roster without reading any file or table: every fact comes from
what the silo writers planned for each person (``ehr_record``, ``lab_truth``, the imaging
study plans, the genotype calls, ``trial_truth``). It applies the lake's rules the way the
pipeline and the research views apply them, so a test can hold the served answer to it:

* every Condition the EHR writes is confirmed, so none is left out for its verification
  status (the cohort tool ignores refuted and entered-in-error records);
* research consent is opt-in: only people whose research consent is ``permit`` and was
  recorded on or before the reference date count (``deny`` and ``revoked`` never do);
* a silo's record counts only when that silo links it to the person: lab results through the
  lab's patient index, imaging studies through the RIS orders (or, for a prior imported from
  an outside centre, through the PatientID's other orders), genotypes through the sample
  manifest, trial subjects through the enrolment map; the merged archive's study of nobody
  in the roster never counts;
* the lab silo's deliberate defects are left out as the conformer leaves them out: results
  of local codes the site map lacks have no LOINC, results in units no UCUM spelling matches
  have no canonical value, the pending result has no value and the malformed HL7 message is
  quarantined; a result below the reporting limit counts with the limit as its value (the
  view's ``value`` with comparator ``<``);
* a variant carrier has at least one copy of the ALT allele in a fully called genotype;
* a trial subject who withdrew consent from the study (the disposition record the trial
  writes for ``WITHDRAWAL BY SUBJECT`` says "Subject withdrew consent") leaves that study's
  views from the day of the withdrawal, and stays in every other silo's.

Imaging dates are not modelled: the research views move every date by a per-person secret
offset, so a date range over ``study_date`` has no ground truth outside the lake's keys.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from connectors.synth.cohort import Person
from connectors.synth.dicom import _studies
from connectors.synth.dicom_catalog import LEGACY
from connectors.synth.ehr import ehr_record
from connectors.synth.genomics import _person_calls, _SiteTable, cohort_sites
from connectors.synth.lab import lab_truth
from connectors.synth.trial import STUDY_ID, trial_records, trial_truth

CRITERIA_KINDS: tuple[str, ...] = (
    "conditions",
    "labs",
    "imaging",
    "variants",
    "trials",
    "age",
    "sex",
)
"""The criterion kinds of a ``find_cohort`` question, as its ``criteria`` object names them."""

AGE_CAP = 90
"""The research views give people aged 90 or more no birth year (``age_90_plus``)."""

_FIELDS: dict[str, frozenset[str]] = {
    "conditions": frozenset({"codes", "system"}),
    "labs": frozenset({"loinc", "min", "max"}),
    "imaging": frozenset({"modality", "body_part", "from", "to"}),
    "variants": frozenset({"chrom", "pos", "ref", "alt"}),
    "trials": frozenset({"study_id", "arm"}),
    "age": frozenset({"min", "max"}),
}

_DROPPED_LAB_DEFECTS = frozenset({"unknown_unit", "pending"})
"""Deliberate lab rows that keep a LOINC in ``lab_truth`` but have no conformed value."""

CONSENT_WITHDRAWN = "WITHDRAWAL BY SUBJECT"
"""The disposition (DSDECOD) the trial writes with the verbatim "Subject withdrew consent"."""


@dataclass(frozen=True)
class Enrolment:
    """One person's place in a trial.

    Attributes:
        study_id: the STUDYID.
        arm: the arm the subject was randomised to.
        consent_withdrawn: the day the subject withdrew consent from the study, or None.
    """

    study_id: str
    arm: str
    consent_withdrawn: date | None = None

    def shown(self, on: date) -> bool:
        """Whether the study's views hold the subject on ``on`` (no withdrawal by then)."""
        return self.consent_withdrawn is None or self.consent_withdrawn > on


@dataclass(frozen=True)
class PersonFacts:
    """What the silos hold about one person, as the lake links it.

    Attributes:
        mrn: the EHR MRN (the crosswalk's ``("ehr", "mrn", mrn)`` identifier).
        gender: FHIR administrative gender.
        birth_date: date of birth.
        consent: research consent state (``permit``, ``deny`` or ``revoked``).
        consent_date: when the consent decision was recorded.
        conditions: ``(system, code)`` of every Condition in the EHR record.
        labs: ``(loinc, canonical value)`` of every linked lab result with a number in its
            analyte's canonical unit.
        imaging: ``(modality, body part)`` of every linked imaging study.
        genotypes: ``(chrom, pos, ref, alt)`` to copies of that ALT allele, for the sites
            where the person has a full call (sequenced people only).
        trials: every study the person is enrolled in.
    """

    mrn: str
    gender: str
    birth_date: date
    consent: str
    consent_date: date
    conditions: frozenset[tuple[str, str]] = frozenset()
    labs: tuple[tuple[str, float], ...] = ()
    imaging: frozenset[tuple[str, str]] = frozenset()
    genotypes: Mapping[tuple[str, int, str, str], int] = field(default_factory=dict)
    trials: tuple[Enrolment, ...] = ()

    def consented(self, on: date) -> bool:
        """Whether the person's opt-in research consent holds on ``on``."""
        return self.consent == "permit" and self.consent_date <= on

    def age_90_plus(self, on: date) -> bool:
        """Whether the research views group the person as aged 90 or more on ``on``."""
        years = on.year - self.birth_date.year
        if (on.month, on.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years >= AGE_CAP


@dataclass(frozen=True)
class RosterFacts:
    """Every person's :class:`PersonFacts`, by MRN, computed once for many questions."""

    people: Mapping[str, PersonFacts]

    @classmethod
    def from_people(cls, people: Iterable[Person]) -> "RosterFacts":
        """Draw every silo's plan for a roster (the whole roster: the lab and imaging
        writers give their deliberate irregularities to the first people in roster order).

        Args:
            people: the roster from ``build_people``, in index order.

        Returns:
            The facts of every person.
        """
        roster = list(people)
        labs = _lab_facts(roster)
        imaging = _imaging_facts(roster)
        genotypes = _genotype_facts(roster)
        trials = _trial_facts(roster)
        facts = {
            p.mrn: PersonFacts(
                mrn=p.mrn,
                gender=p.gender,
                birth_date=p.birth_date,
                consent=p.research_consent,
                consent_date=p.consent_date,
                conditions=_conditions(p),
                labs=tuple(labs.get(p.mrn, ())),
                imaging=frozenset(imaging.get(p.mrn, ())),
                genotypes=genotypes.get(p.mrn, {}),
                trials=tuple(trials.get(p.mrn, ())),
            )
            for p in roster
        }
        return cls(facts)

    def cohort(self, criteria: Mapping[str, object], *, reference_date: date) -> set[str]:
        """The MRNs of the consented people meeting every criterion.

        Args:
            criteria: a ``find_cohort`` ``criteria`` object (see :func:`cohort_truth`).
            reference_date: the day consent must hold and ages are counted at.

        Returns:
            The MRNs.

        Raises:
            ValueError: for an unknown criterion kind or field, a criterion missing what it
                needs, or an imaging date range (not modelled: dates are shifted per person).
        """
        checks = _compile(criteria, reference_date)
        return {
            mrn
            for mrn, person in self.people.items()
            if person.consented(reference_date) and all(check(person) for check in checks)
        }


def cohort_truth(
    people: Iterable[Person], criteria: Mapping[str, object], *, reference_date: date
) -> set[str]:
    """The MRNs of the people a ``find_cohort`` question should find, from the generators.

    ``criteria`` has the ``find_cohort`` shape; every given criterion must hold:

    * ``conditions``: a list of ``{"codes": [...], "system": uri}`` (system optional); each
      needs a Condition with one of its codes;
    * ``labs``: a list of ``{"loinc": code, "min": x, "max": y}`` (bounds optional,
      inclusive, in the analyte's canonical unit); each needs a result in range;
    * ``imaging``: a list of ``{"modality": m, "body_part": b}`` (either optional; DICOM
      Modality and BodyPartExamined); each needs a study of that kind;
    * ``variants``: a list of ``{"chrom", "pos", "ref", "alt"}`` (contig named as in the VCF,
      ``chr10``); each needs a fully called genotype with a copy of the ALT allele;
    * ``trials``: a list of ``{"study_id": id, "arm": name}`` (arm optional; the research
      views show it only for unblinded studies); each needs enrolment in the study (and
      arm) without a withdrawal of the study's consent by the reference date;
    * ``age``: ``{"min": a, "max": b}`` (either optional, inclusive), age being the
      reference year minus the birth year; people aged 90 or more, whom the views give no
      birth year, count as aged 90;
    * ``sex``: an administrative gender (``female``, ``male``, ``other``, ``unknown``).

    Args:
        people: the whole roster from ``build_people``, in index order.
        criteria: the question.
        reference_date: the day consent must hold and ages are counted at (the day the views
            were materialised).

    Returns:
        The MRNs of the consented people meeting every criterion.

    Raises:
        ValueError: for an unknown criterion kind or field, a criterion missing what it
            needs, or an imaging date range (not modelled: dates are shifted per person).
    """
    return RosterFacts.from_people(people).cohort(criteria, reference_date=reference_date)


# --- compiling a question ---------------------------------------------------------------


def _compile(criteria: Mapping[str, object], reference_date: date) -> list:
    unknown = sorted(set(criteria) - set(CRITERIA_KINDS))
    if unknown:
        raise ValueError(
            f"unknown criterion kind(s) {unknown}; known kinds are {', '.join(CRITERIA_KINDS)}"
        )
    checks = []
    for kind in CRITERIA_KINDS:
        value = criteria.get(kind)
        if value is None:
            continue
        if kind == "sex":
            if not isinstance(value, str):
                raise ValueError("sex must be an administrative gender such as 'female'")
            checks.append(lambda p, sex=value: p.gender == sex)
        elif kind == "age":
            checks.append(_age_check(_fields(kind, value), reference_date))
        else:
            if not isinstance(value, Sequence) or isinstance(value, str | bytes):
                raise ValueError(f"{kind} must be a list of criteria")
            builder = _BUILDERS[kind]
            checks.extend(builder(_fields(kind, item), reference_date) for item in value)
    return checks


def _fields(kind: str, item: object) -> Mapping[str, object]:
    if not isinstance(item, Mapping):
        raise ValueError(f"each {kind} criterion must be an object")
    unknown = sorted(set(item) - _FIELDS[kind])
    if unknown:
        raise ValueError(
            f"unknown field(s) {unknown} in a {kind} criterion; "
            f"its fields are {', '.join(sorted(_FIELDS[kind]))}"
        )
    return item


def _condition_check(item: Mapping[str, object], _on: date):
    codes = item.get("codes")
    if not codes or isinstance(codes, str):
        raise ValueError("a conditions criterion needs a non-empty list of codes")
    system = item.get("system")
    wanted = {str(code) for code in codes}
    return lambda p: any(
        code in wanted and (system is None or own == system) for own, code in p.conditions
    )


def _between(value: float, low: object, high: object) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _lab_check(item: Mapping[str, object], _on: date):
    loinc = item.get("loinc")
    if not loinc:
        raise ValueError("a labs criterion needs a loinc code")
    low, high = item.get("min"), item.get("max")
    return lambda p: any(code == loinc and _between(value, low, high) for code, value in p.labs)


def _imaging_check(item: Mapping[str, object], _on: date):
    if item.get("from") is not None or item.get("to") is not None:
        raise ValueError(
            "imaging date ranges have no ground truth: the research views shift every date "
            "by a per-person secret offset"
        )
    modality, body_part = item.get("modality"), item.get("body_part")
    if modality is None and body_part is None:
        raise ValueError("an imaging criterion needs a modality or a body part")
    return lambda p: any(
        (modality is None or m == modality) and (body_part is None or b == body_part)
        for m, b in p.imaging
    )


def _variant_check(item: Mapping[str, object], _on: date):
    missing = [name for name in ("chrom", "pos", "ref", "alt") if item.get(name) is None]
    if missing:
        raise ValueError(f"a variants criterion needs {', '.join(missing)}")
    key = (str(item["chrom"]), int(item["pos"]), str(item["ref"]), str(item["alt"]))
    return lambda p: p.genotypes.get(key, 0) >= 1


def _trial_check(item: Mapping[str, object], reference_date: date):
    study = item.get("study_id")
    if not study:
        raise ValueError("a trials criterion needs a study_id")
    arm = item.get("arm")
    return lambda p: any(
        e.study_id == study and (arm is None or e.arm == arm) and e.shown(reference_date)
        for e in p.trials
    )


def _age_check(item: Mapping[str, object], reference_date: date):
    low, high = item.get("min"), item.get("max")

    def check(person: PersonFacts) -> bool:
        if person.age_90_plus(reference_date):
            age = AGE_CAP
        else:
            age = reference_date.year - person.birth_date.year
        return _between(age, low, high)

    return check


_BUILDERS = {
    "conditions": _condition_check,
    "labs": _lab_check,
    "imaging": _imaging_check,
    "variants": _variant_check,
    "trials": _trial_check,
}


# --- what each silo holds ---------------------------------------------------------------


def _conditions(person: Person) -> frozenset[tuple[str, str]]:
    found = set()
    for resource in ehr_record(person)["Condition"]:
        for coding in resource["code"]["coding"]:
            found.add((coding["system"], coding["code"]))
    return frozenset(found)


def _lab_facts(people: list[Person]) -> dict[str, list[tuple[str, float]]]:
    """Linked results with a canonical value. Every person with labs is in the lab's
    patient index, so each result links; the defects the conformer cannot use are dropped."""
    truth = lab_truth(people)
    kept: dict[str, list[tuple[str, float]]] = {}
    for row in truth.iter_rows(named=True):
        if row["value_type"] != "NM" or row["loinc"] is None or row["value"] is None:
            continue
        if row["deliberate"] in _DROPPED_LAB_DEFECTS:
            continue
        kept.setdefault(row["mrn"], []).append((row["loinc"], float(row["value"])))
    return kept


def _imaging_facts(people: list[Person]) -> dict[str, set[tuple[str, str]]]:
    """Studies linked through their order, or (a prior from outside, without an order)
    through the PatientID's orders; studies of PatientIDs no order names never link."""
    by_patient_id = {p.dicom_patient_id: p.mrn for p in people}
    ordered_ids: set[str] = set()
    plans = []
    for plan, row in _studies(people):
        if row is not None:
            ordered_ids.add(plan.patient.patient_id)
        plans.append(plan)
    found: dict[str, set[tuple[str, str]]] = {}
    for plan in plans:
        patient_id = plan.patient.patient_id
        if plan.department is LEGACY or patient_id not in ordered_ids:
            continue
        modality = plan.department.devices[plan.procedure.family].modality
        found.setdefault(by_patient_id[patient_id], set()).add((modality, plan.procedure.body_part))
    return found


def _genotype_facts(people: list[Person]) -> dict[str, dict[tuple[str, int, str, str], int]]:
    """Copies of each ALT allele per sequenced person, at fully called sites, drawn exactly
    as ``write_genomics`` draws them (every sequenced person is in the sample manifest)."""
    sequenced = [p for p in people if p.vcf_sample_id is not None]
    if not sequenced:
        return {}
    table = _SiteTable(cohort_sites(sequenced[0].seed))
    found: dict[str, dict[tuple[str, int, str, str], int]] = {}
    for person in sequenced:
        rng = person.rng("genomics")
        calls = _person_calls(
            np.random.default_rng(rng.getrandbits(128)), person.gender == "male", table
        )
        own: dict[tuple[str, int, str, str], int] = {}
        for i, site in enumerate(table.sites):
            ploidy = int(calls.ploidy[i])
            alleles = calls.alleles[i, :ploidy]
            if ploidy == 0 or (alleles < 0).any():
                continue
            for index, alt in enumerate(site.alts, start=1):
                own[(site.chrom, site.pos, site.ref, alt)] = int((alleles == index).sum())
        found[person.mrn] = own
    return found


def _trial_facts(people: list[Person]) -> dict[str, list[Enrolment]]:
    """Every subject of the enrolment map, with their arm and any consent withdrawal."""
    disposition = trial_records(people)["ds"]
    withdrawn = {
        usubjid: date.fromisoformat(day)
        for usubjid, decod, day in disposition.select("USUBJID", "DSDECOD", "DSSTDTC").iter_rows()
        if decod == CONSENT_WITHDRAWN
    }
    found: dict[str, list[Enrolment]] = {}
    for row in trial_truth(people).iter_rows(named=True):
        enrolment = Enrolment(STUDY_ID, row["arm"], withdrawn.get(row["usubjid"]))
        found.setdefault(row["mrn"], []).append(enrolment)
    return found
