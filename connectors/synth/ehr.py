"""The EHR silo: one person's record as FHIR R4 resources, and the bulk-export NDJSON writer.

Every random draw for a person comes from ``person.rng("ehr")``, so the record depends on
the person and nothing else. Resources are plain dicts built in FHIR's conventional key
order (``resourceType``, ``id``, then the elements in the order the specification lists
them) and serialised with orjson without sorting, which keeps the output byte-stable.
"""

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path

import orjson

from connectors.synth import codes as c
from connectors.synth.clock import fhir_datetime
from connectors.synth.cohort import AS_OF, HISTORY_YEARS, Person
from connectors.synth.demographics import Site
from connectors.synth.files import AtomicFolder

RESOURCE_TYPES: tuple[str, ...] = (
    "Patient",
    "Encounter",
    "Condition",
    "Observation",
    "MedicationRequest",
    "Procedure",
    "Immunization",
    "Consent",
)
"""The resource types of the bulk export, one NDJSON file each, in writing order."""

Resource = dict[str, object]


@cache
def _concept(code: c.Code) -> dict[str, object]:
    # Shared, never mutated: orjson serialises the same dict as often as it is referenced.
    return code.concept()


@cache
def _coding(code: c.Code) -> dict[str, str]:
    return code.coding()


def _category(code: c.Code) -> list[dict[str, object]]:
    return [_concept(code)]


def _quantity(value: float | int, ucum: str) -> dict[str, object]:
    unit = c.UNITS[ucum]
    return {"value": value, "unit": unit.unit, "system": c.UCUM, "code": unit.code}


def _uuid4_text(bits: int) -> str:
    """``str(uuid.UUID(int=bits, version=4))`` without building the UUID object."""
    bits = (bits & ~(0xC000 << 48) | 0x8000 << 48) & ~(0xF000 << 64) | 4 << 76
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


# --- what a person has ------------------------------------------------------------------


def _band(age: int, table: Sequence[tuple[int, float]]) -> float:
    """The value of the first ``(upper_age_exclusive, value)`` row that ``age`` is under."""
    for upper, value in table:
        if age < upper:
            return value
    return table[-1][1]


def _chronic_conditions(
    rng: random.Random, person: Person, age: int, smoker: c.Code | None
) -> list[c.Code]:
    """Which chronic conditions a person has, by age-dependent prevalence."""
    female = person.gender == "female"
    male = person.gender == "male"
    has: list[c.Code] = []

    def draw(code: c.Code, p: float) -> bool:
        if rng.random() < min(p, 0.95):
            has.append(code)
            return True
        return False

    obese = draw(c.OBESITY, _band(age, [(2, 0.0), (20, 0.19), (40, 0.40), (60, 0.44), (200, 0.42)]))
    weight_factor = 1.4 if obese else 0.85
    draw(
        c.HYPERTENSION,
        _band(age, [(18, 0.01), (40, 0.08), (60, 0.33), (80, 0.60), (200, 0.70)]) * weight_factor,
    )
    diabetic = draw(
        c.DIABETES_T2,
        _band(age, [(18, 0.002), (40, 0.04), (60, 0.14), (200, 0.24)]) * (1.8 if obese else 0.7),
    )
    if not diabetic:
        draw(c.PREDIABETES, _band(age, [(18, 0.004), (40, 0.05), (60, 0.10), (200, 0.12)]))
    draw(c.HYPERLIPIDEMIA, _band(age, [(18, 0.01), (40, 0.08), (60, 0.28), (200, 0.45)]))
    draw(c.ASTHMA, _band(age, [(5, 0.04), (18, 0.09), (200, 0.08)]))
    ever_smoked = smoker in (c.EX_SMOKER, c.DAILY_SMOKER)
    draw(
        c.COPD,
        _band(age, [(40, 0.0), (60, 0.04), (80, 0.10), (200, 0.12)])
        * (2.5 if ever_smoked else 0.3),
    )
    draw(
        c.DEPRESSION,
        _band(age, [(12, 0.01), (18, 0.08), (200, 0.12)]) * (1.4 if female else 0.7 if male else 1),
    )
    draw(c.ANXIETY, _band(age, [(12, 0.02), (18, 0.06), (200, 0.10)]))
    draw(c.ATRIAL_FIBRILLATION, _band(age, [(50, 0.002), (65, 0.02), (80, 0.07), (200, 0.13)]))
    draw(
        c.ISCHEMIC_HEART_DISEASE,
        _band(age, [(40, 0.002), (60, 0.04), (80, 0.12), (200, 0.20)]) * (1.3 if male else 0.8),
    )
    draw(c.OSTEOARTHRITIS_KNEE, _band(age, [(45, 0.005), (65, 0.08), (200, 0.18)]))
    draw(c.ANEMIA, 0.08 if (female and 12 <= age < 50) or age >= 65 else 0.03)
    return has


def _smoking_status(rng: random.Random, age: int) -> c.Code | None:
    if age < 12:
        return None
    if age < 18:
        return c.DAILY_SMOKER if rng.random() < 0.05 else c.NEVER_SMOKER
    return rng.choices(c.SMOKING_VALUES, weights=(0.58, 0.25, 0.17))[0]


_ACUTE_BY_AGE: tuple[tuple[int, tuple[c.Code, ...], tuple[float, ...]], ...] = (
    (
        12,
        (c.OTITIS_MEDIA, c.VIRAL_PHARYNGITIS, c.STREP_THROAT, c.VIRAL_SINUSITIS,
         c.ACUTE_BRONCHITIS, c.PNEUMONIA),
        (0.30, 0.25, 0.15, 0.10, 0.15, 0.05),
    ),
    (
        65,
        (c.VIRAL_SINUSITIS, c.VIRAL_PHARYNGITIS, c.ACUTE_BRONCHITIS, c.STREP_THROAT, c.PNEUMONIA),
        (0.35, 0.25, 0.25, 0.10, 0.05),
    ),
    (
        200,
        (c.ACUTE_BRONCHITIS, c.VIRAL_SINUSITIS, c.PNEUMONIA, c.VIRAL_PHARYNGITIS),
        (0.35, 0.25, 0.20, 0.20),
    ),
)

# Chronic conditions that bring a patient to hospital when they get worse.
_ADMITTING_CONDITIONS = (
    c.COPD, c.ATRIAL_FIBRILLATION, c.ISCHEMIC_HEART_DISEASE, c.DIABETES_T2, c.ASTHMA,
)

# (medication, probability) options per condition; alternatives are listed as one group.
_TREATMENT: dict[c.Code, tuple[tuple[tuple[c.Code, ...], tuple[float, ...], float], ...]] = {
    c.HYPERTENSION: (((c.LISINOPRIL_10, c.AMLODIPINE_5, c.HCTZ_25), (0.55, 0.25, 0.20), 0.9),),
    c.DIABETES_T2: (((c.METFORMIN_ER_500,), (1.0,), 0.9),),
    c.HYPERLIPIDEMIA: (((c.ATORVASTATIN_10, c.SIMVASTATIN_20), (0.6, 0.4), 0.8),),
    c.ASTHMA: (((c.ALBUTEROL_MDI,), (1.0,), 1.0), ((c.FLUTICASONE_MDI,), (1.0,), 0.5)),
    c.COPD: (((c.ALBUTEROL_MDI,), (1.0,), 0.9),),
    c.ATRIAL_FIBRILLATION: (((c.WARFARIN_5,), (1.0,), 0.7),),
    c.ISCHEMIC_HEART_DISEASE: (((c.ASPIRIN_81,), (1.0,), 0.9), ((c.CLOPIDOGREL_75,), (1.0,), 0.5)),
    c.DEPRESSION: (((c.SERTRALINE_100, c.FLUOXETINE_20), (0.6, 0.4), 0.8),),
    c.OSTEOARTHRITIS_KNEE: (((c.NAPROXEN_220,), (1.0,), 0.7),),
    c.ACUTE_BRONCHITIS: (((c.ACETAMINOPHEN_325,), (1.0,), 0.6),),
    c.VIRAL_SINUSITIS: (((c.ACETAMINOPHEN_325,), (1.0,), 0.4),),
    c.VIRAL_PHARYNGITIS: (((c.IBUPROFEN_200,), (1.0,), 0.5),),
    c.STREP_THROAT: (((c.PENICILLIN_V_250, c.AMOXICILLIN_250), (0.6, 0.4), 0.95),),
    c.OTITIS_MEDIA: (((c.AMOXICILLIN_250,), (1.0,), 0.8),),
    c.PNEUMONIA: (((c.AMOXICILLIN_500,), (1.0,), 0.9),),
}

# Medications only started in adults (weight-based paediatric dosing is out of scope).
_ADULT_ONLY = frozenset(
    {
        c.LISINOPRIL_10, c.AMLODIPINE_5, c.HCTZ_25, c.METFORMIN_ER_500, c.ATORVASTATIN_10,
        c.SIMVASTATIN_20, c.WARFARIN_5, c.ASPIRIN_81, c.CLOPIDOGREL_75, c.NAPROXEN_220,
        c.SERTRALINE_100, c.FLUOXETINE_20, c.AMOXICILLIN_500, c.PENICILLIN_V_250,
    }
)

_DOSAGE: dict[c.Code, tuple[str, bool]] = {
    c.LISINOPRIL_10: ("Take 1 tablet by mouth once daily", False),
    c.AMLODIPINE_5: ("Take 1 tablet by mouth once daily", False),
    c.HCTZ_25: ("Take 1 tablet by mouth every morning", False),
    c.METFORMIN_ER_500: ("Take 1 tablet by mouth once daily with the evening meal", False),
    c.ATORVASTATIN_10: ("Take 1 tablet by mouth once daily", False),
    c.SIMVASTATIN_20: ("Take 1 tablet by mouth every evening", False),
    c.ALBUTEROL_MDI: ("Inhale 2 puffs every 4 to 6 hours as needed for wheezing", True),
    c.FLUTICASONE_MDI: ("Inhale 2 puffs twice daily; rinse mouth after use", False),
    c.WARFARIN_5: ("Take 1 tablet by mouth once daily or as directed by the INR clinic", False),
    c.ASPIRIN_81: ("Take 1 tablet by mouth once daily", False),
    c.CLOPIDOGREL_75: ("Take 1 tablet by mouth once daily", False),
    c.SERTRALINE_100: ("Take 1 tablet by mouth once daily", False),
    c.FLUOXETINE_20: ("Take 1 capsule by mouth every morning", False),
    c.NAPROXEN_220: ("Take 1 tablet by mouth every 12 hours as needed for pain", True),
    c.ACETAMINOPHEN_325: ("Take 2 tablets by mouth every 6 hours as needed for fever", True),
    c.IBUPROFEN_200: ("Take 1 to 2 tablets by mouth every 6 hours as needed for pain", True),
    c.AMOXICILLIN_250: ("Take 1 capsule by mouth three times daily for 10 days", False),
    c.AMOXICILLIN_500: ("Take 1 tablet by mouth three times daily for 7 days", False),
    c.PENICILLIN_V_250: ("Take 1 tablet by mouth four times daily for 10 days", False),
}

# Routine vaccine doses: (vaccine, earliest age in days, latest age in days).
_CHILD_SCHEDULE: tuple[tuple[c.Code, int, int], ...] = (
    (c.HEP_B_PEDS, 0, 7),
    (c.HEP_B_PEDS, 28, 75),
    (c.HEP_B_PEDS, 180, 550),
    (c.DTAP, 56, 75),
    (c.DTAP, 112, 135),
    (c.DTAP, 180, 210),
    (c.DTAP, 450, 550),
    (c.DTAP, 1460, 2190),
    (c.IPV, 56, 75),
    (c.IPV, 112, 135),
    (c.IPV, 180, 550),
    (c.IPV, 1460, 2190),
    (c.HIB, 56, 75),
    (c.HIB, 112, 135),
    (c.HIB, 365, 460),
    (c.PCV13, 56, 75),
    (c.PCV13, 112, 135),
    (c.PCV13, 180, 210),
    (c.PCV13, 365, 460),
    (c.MMR, 365, 460),
    (c.MMR, 1460, 2190),
    (c.VARICELLA, 365, 460),
    (c.VARICELLA, 1460, 2190),
    (c.HEP_A_PEDS, 365, 400),
    (c.HEP_A_PEDS, 540, 700),
    (c.TDAP, 4015, 4745),
    (c.HPV, 4015, 4745),
    (c.HPV, 4200, 5000),
    (c.MENINGOCOCCAL, 4015, 4745),
    (c.MENINGOCOCCAL, 5840, 6570),
)
COVID_VACCINE_FROM = date(2021, 5, 10)
"""From when the 30 mcg mRNA dose is given to people aged 12 and over."""


# --- the encounter timeline ---------------------------------------------------------------


@dataclass
class _Encounter:
    id: str
    kind: str
    start: datetime
    end: datetime
    age: int
    type: c.Code = c.CHECK_UP
    reason: c.Code | None = None
    start_text: str = ""
    end_text: str = ""
    acute: c.Code | None = None
    diagnosed: list[c.Code] = field(default_factory=list)
    condition_ids: dict[c.Code, str] = field(default_factory=dict)


_AMB_KINDS_CHILD = (("checkup", "symptom", "problem"), (0.45, 0.40, 0.15))
_AMB_KINDS_ADULT = (
    ("checkup", "symptom", "followup", "general", "problem"),
    (0.35, 0.25, 0.20, 0.10, 0.10),
)
_CLASS_OF_KIND = {
    "checkup": "AMB", "symptom": "AMB", "followup": "AMB", "general": "AMB", "problem": "AMB",
    "procedure": "AMB", "emer": "EMER", "imp": "IMP",
}
_ROUTINE_KINDS = frozenset({"checkup", "general"})
_DIAGNOSING_KINDS = frozenset({"checkup", "general", "problem", "followup"})
_SICK_KINDS = frozenset({"symptom", "problem", "emer", "imp"})


class _Record:
    """Draws one person's EHR history and renders it as FHIR resources."""

    def __init__(self, person: Person) -> None:
        self.person = person
        self.rng = person.rng("ehr")
        self.site: Site = person.site
        self.subject = {"reference": f"Patient/{person.patient_id}"}
        self.out: dict[str, list[Resource]] = {rtype: [] for rtype in RESOURCE_TYPES}
        self.onset_index: dict[c.Code, int] = {}

    # -- helpers ------------------------------------------------------------------------

    def new_id(self) -> str:
        return _uuid4_text(self.rng.getrandbits(128))

    def when(self, moment: datetime) -> str:
        return fhir_datetime(self.site, moment)

    def gauss(self, mu: float, sigma: float, low: float, high: float) -> float:
        return min(max(self.rng.gauss(mu, sigma), low), high)

    # -- the story ----------------------------------------------------------------------

    def build(self) -> dict[str, list[Resource]]:
        encounters = self.plan()
        for encounter in encounters:
            self.render_encounter(encounter)
            self.conditions_at(encounter)
        taken: set[tuple[c.Code, int]] = set()
        flu_seasons: set[int] = set()
        once: set[c.Code] = set()
        smoking_recorded = False
        for index, encounter in enumerate(encounters):
            self.vital_signs(encounter, index)
            self.labs(encounter, index)
            if not smoking_recorded and self.smoking and encounter.age >= 12 and (
                encounter.kind in _ROUTINE_KINDS or index == len(encounters) - 1
            ):
                self.smoking_observation(encounter)
                smoking_recorded = True
            self.medications_at(encounter)
            self.procedures_at(encounter, index)
            self.immunizations_at(encounter, taken, flu_seasons, once)
        self.consent()
        return self.out

    def plan(self) -> list[_Encounter]:
        """Draw the person's profile, Patient resource and encounters, ready to render.

        Every draw the encounters depend on happens here, before any other, so
        ``encounter_summaries`` sees exactly the encounters that ``build`` writes.
        """
        person, rng = self.person, self.rng
        self.age = person.age_on(person.end_date)
        self.smoking = _smoking_status(rng, self.age)
        self.chronic = _chronic_conditions(rng, person, self.age, self.smoking)
        height_mu, height_sigma = {"male": (176.5, 7.0), "female": (162.5, 6.5)}.get(
            person.gender, (169.0, 8.0)
        )
        self.adult_height = rng.gauss(height_mu, height_sigma)
        self.obese = c.OBESITY in self.chronic
        self.base_bmi = (
            rng.uniform(30.5, 40.0) if self.obese else self.gauss(25.0, 2.8, 18.6, 29.7)
        )

        self.patient()
        encounters = self.timeline()
        self.assign_chronic_onsets(encounters)
        self.assign_reasons(encounters)
        self.plan_colonoscopy(encounters)
        return encounters

    def timeline(self) -> list[_Encounter]:
        person, rng = self.person, self.rng
        first_day = max(person.birth_date, AS_OF.replace(year=AS_OF.year - HISTORY_YEARS))
        last_day = max(first_day, person.end_date - timedelta(days=1))
        burden = sum(1 for code in self.chronic if code is not c.OBESITY)
        count = 3 + rng.randint(0, 4) + 2 * burden
        count += 3 if self.age >= 65 else 0
        count += 4 if self.age < 3 else 0
        count = min(max(count, 3), 25)
        span = (last_day - first_day).days
        days = sorted(first_day + timedelta(days=rng.randint(0, span)) for _ in range(count))
        old = self.age >= 65
        limit = datetime.combine(person.end_date, time(0, 0))
        encounters: list[_Encounter] = []
        for index, day in enumerate(days):
            age = person.age_on(day)
            if index == 0:
                kind = "checkup"
            else:
                weights = (0.80, 0.11, 0.09) if old else (0.86, 0.10, 0.04)
                klass = rng.choices(("AMB", "EMER", "IMP"), weights=weights)[0]
                if klass == "EMER":
                    kind = "emer"
                elif klass == "IMP":
                    kind = "imp"
                else:
                    kinds, weights = _AMB_KINDS_CHILD if age < 18 else _AMB_KINDS_ADULT
                    kind = rng.choices(kinds, weights=weights)[0]
            if kind == "emer":
                start = datetime.combine(day, time(rng.randrange(24), rng.randrange(60)))
                end = start + timedelta(minutes=rng.randint(120, 480))
            elif kind == "imp":
                start = datetime.combine(day, time(rng.randrange(24), rng.randrange(60)))
                end = start + timedelta(days=rng.randint(1, 6), minutes=rng.randint(0, 720))
            else:
                start = datetime.combine(day, time(rng.randint(8, 16), rng.choice((0, 15, 30, 45))))
                end = start + timedelta(minutes=rng.choice((15, 20, 30, 30, 45, 60)))
            if end > limit:
                # Keep the whole stay inside the record's lifetime.
                shift = end - limit + timedelta(minutes=rng.randint(5, 120))
                start, end = start - shift, end - shift
                born = datetime.combine(person.birth_date, time(0, 0))
                if start < born:
                    start = born + timedelta(hours=1)
                    end = min(start + timedelta(minutes=30), limit)
                age = person.age_on(start.date())
            encounters.append(_Encounter(self.new_id(), kind, start, end, age))
        encounters.sort(key=lambda e: e.start)
        return encounters

    def assign_chronic_onsets(self, encounters: list[_Encounter]) -> None:
        candidates = [i for i, e in enumerate(encounters) if e.kind in _DIAGNOSING_KINDS]
        if not candidates:
            candidates = list(range(len(encounters)))
        for code in self.chronic:
            # Most chronic problems are on the list early in a ten-year record.
            index = candidates[int(self.rng.random() ** 1.6 * len(candidates))]
            self.onset_index[code] = index
            encounters[index].diagnosed.append(code)

    def assign_reasons(self, encounters: list[_Encounter]) -> None:
        rng = self.rng
        for index, encounter in enumerate(encounters):
            known = [code for code in self.chronic if self.onset_index[code] < index]
            kind = encounter.kind
            if kind == "followup":
                treatable = [code for code in known if code is not c.OBESITY]
                if treatable:
                    encounter.reason = rng.choice(treatable)
                else:
                    kind = encounter.kind = "general"
            elif kind == "imp":
                admitting = [code for code in known if code in _ADMITTING_CONDITIONS]
                if admitting and rng.random() < 0.5:
                    encounter.reason = rng.choice(admitting)
                elif rng.random() < 0.35:
                    encounter.acute = c.PNEUMONIA if encounter.age >= 1 else c.ACUTE_BRONCHITIS
            elif kind in ("symptom", "problem", "emer"):
                chance = {"symptom": 0.85, "problem": 0.5, "emer": 0.6}[kind]
                if rng.random() < chance:
                    for upper, options, weights in _ACUTE_BY_AGE:
                        if encounter.age < upper:
                            encounter.acute = rng.choices(options, weights=weights)[0]
                            break
                elif kind == "problem" and known:
                    encounter.reason = rng.choice(known)
            if encounter.acute is not None:
                encounter.reason = encounter.acute
                encounter.diagnosed.append(encounter.acute)
            encounter.type = self.encounter_type(encounter)

    def encounter_type(self, encounter: _Encounter) -> c.Code:
        kind = encounter.kind
        if kind == "checkup":
            return c.WELL_CHILD if encounter.age < 18 else c.CHECK_UP
        return {
            "general": c.GENERAL_EXAM,
            "symptom": c.SYMPTOM_VISIT,
            "problem": c.PROBLEM_VISIT,
            "followup": c.FOLLOW_UP,
            "procedure": c.OUTPATIENT_PROCEDURE,
            "emer": c.ER_ADMISSION,
            "imp": c.HOSPITAL_ADMISSION,
        }[kind]

    def plan_colonoscopy(self, encounters: list[_Encounter]) -> None:
        eligible = [
            e for e in encounters[1:]
            if e.kind in ("general", "checkup") and 45 <= e.age <= 75 and not e.diagnosed
        ]
        if eligible and self.rng.random() < 0.4:
            encounter = self.rng.choice(eligible)
            encounter.kind = "procedure"
            encounter.type = c.OUTPATIENT_PROCEDURE
            encounter.start = encounter.start.replace(hour=self.rng.randint(7, 11), minute=0)
            encounter.end = encounter.start + timedelta(minutes=self.rng.randint(120, 210))

    # -- resources ----------------------------------------------------------------------

    def patient(self) -> None:
        person, rng = self.person, self.rng
        race = c.RACE.get(person.race) if person.race else None
        race_ext: list[dict[str, object]] = []
        if race is not None:
            race_ext.append({"url": "ombCategory", "valueCoding": _coding(race)})
        race_ext.append({"url": "text", "valueString": race.display if race else "Unknown"})
        ethnicity = c.ETHNICITY[person.ethnicity]
        resource: Resource = {
            "resourceType": "Patient",
            "id": person.patient_id,
            "extension": [
                {"url": c.US_CORE_RACE, "extension": race_ext},
                {
                    "url": c.US_CORE_ETHNICITY,
                    "extension": [
                        {"url": "ombCategory", "valueCoding": _coding(ethnicity)},
                        {"url": "text", "valueString": ethnicity.display},
                    ],
                },
            ],
            "identifier": [
                {
                    "use": "usual",
                    "type": _concept(c.MR),
                    "system": c.MRN_SYSTEM,
                    "value": person.mrn,
                }
            ],
            "name": [
                {
                    "use": "official",
                    "family": person.family_name,
                    "given": list(person.given_names),
                }
            ],
            "gender": person.gender,
            "birthDate": person.birth_date.isoformat(),
        }
        if person.deceased_date is not None:
            moment = datetime.combine(
                person.deceased_date, time(rng.randrange(24), rng.randrange(60))
            )
            resource["deceasedDateTime"] = self.when(moment)
        address = person.address
        resource["address"] = [
            {
                "use": "home",
                "line": list(address.lines),
                "city": address.city,
                "state": address.state,
                "postalCode": address.postal_code,
                "country": address.country,
            }
        ]
        if person.marital_status is not None:
            resource["maritalStatus"] = _concept(c.MARITAL_STATUS[person.marital_status])
        resource["communication"] = [
            {"language": _concept(c.LANGUAGE[person.language]), "preferred": True}
        ]
        resource["managingOrganization"] = {
            "identifier": {"system": c.SITE_SYSTEM, "value": person.home_site},
            "display": person.home_site,
        }
        self.out["Patient"].append(resource)

    def render_encounter(self, encounter: _Encounter) -> None:
        encounter.start_text = self.when(encounter.start)
        encounter.end_text = self.when(encounter.end)
        resource: Resource = {
            "resourceType": "Encounter",
            "id": encounter.id,
            "status": "finished",
            "class": _coding(c.ENCOUNTER_CLASS[_CLASS_OF_KIND[encounter.kind]]),
            "type": [_concept(encounter.type)],
            "subject": self.subject,
            "period": {"start": encounter.start_text, "end": encounter.end_text},
        }
        if encounter.reason is not None:
            resource["reasonCode"] = [_concept(encounter.reason)]
        resource["serviceProvider"] = {
            "identifier": {"system": c.SITE_SYSTEM, "value": self.person.home_site},
            "display": self.person.home_site,
        }
        self.out["Encounter"].append(resource)

    def conditions_at(self, encounter: _Encounter) -> None:
        rng = self.rng
        end_of_record = datetime.combine(self.person.end_date, time(0, 0))
        for code in encounter.diagnosed:
            abatement: datetime | None = None
            if code in c.ACUTE_CONDITIONS:
                abatement = encounter.start + timedelta(days=rng.randint(5, 21))
            elif code in (c.DEPRESSION, c.ANEMIA, c.ANXIETY) and rng.random() < 0.3:
                abatement = encounter.start + timedelta(days=rng.randint(90, 900))
            elif code is c.ASTHMA and encounter.age < 18 and rng.random() < 0.2:
                abatement = encounter.start + timedelta(days=rng.randint(365, 2500))
            if abatement is not None and abatement >= end_of_record:
                abatement = None
            condition_id = encounter.condition_ids[code] = self.new_id()
            resource: Resource = {
                "resourceType": "Condition",
                "id": condition_id,
                "clinicalStatus": _concept(
                    c.CONDITION_RESOLVED if abatement is not None else c.CONDITION_ACTIVE
                ),
                "verificationStatus": _concept(c.CONDITION_CONFIRMED),
                "category": _category(c.ENCOUNTER_DIAGNOSIS),
                "code": _concept(code),
                "subject": self.subject,
                "encounter": {"reference": f"Encounter/{encounter.id}"},
                "onsetDateTime": encounter.start_text,
            }
            if abatement is not None:
                resource["abatementDateTime"] = self.when(abatement)
            resource["recordedDate"] = encounter.start_text
            self.out["Condition"].append(resource)

    def has(self, code: c.Code, index: int) -> bool:
        """Whether ``code`` is diagnosed at or before encounter ``index``."""
        onset = self.onset_index.get(code)
        return onset is not None and onset <= index

    def observation(
        self,
        encounter: _Encounter,
        category: c.Code,
        code: c.Code,
        effective: str,
        value: object,
        *,
        issued: str | None = None,
        interpretation: c.Code | None = None,
        reference: tuple[float, float] | None = None,
        components: list[dict[str, object]] | None = None,
    ) -> None:
        resource: Resource = {
            "resourceType": "Observation",
            "id": self.new_id(),
            "status": "final",
            "category": _category(category),
            "code": _concept(code),
            "subject": self.subject,
            "encounter": {"reference": f"Encounter/{encounter.id}"},
            "effectiveDateTime": effective,
        }
        if issued is not None:
            resource["issued"] = issued
        if value is not None:
            if isinstance(value, c.Code):
                resource["valueCodeableConcept"] = _concept(value)
            else:
                resource["valueQuantity"] = _quantity(value, c.OBSERVATION_UNITS[code.code])
        if interpretation is not None:
            resource["interpretation"] = [_concept(interpretation)]
        if reference is not None:
            ucum = c.OBSERVATION_UNITS[code.code]
            low, high = reference
            bounds: dict[str, object] = {}
            if low > 0:
                bounds["low"] = _quantity(low, ucum)
            bounds["high"] = _quantity(high, ucum)
            resource["referenceRange"] = [bounds]
        if components is not None:
            resource["component"] = components
        self.out["Observation"].append(resource)

    def vital_signs(self, encounter: _Encounter, index: int) -> None:
        rng, gauss = self.rng, self.gauss
        age = encounter.age
        years = max((encounter.start.date() - self.person.birth_date).days / 365.25, 0.0)
        effective = self.when(encounter.start + timedelta(minutes=rng.randint(2, 10)))
        height = self.adult_height * growth(years)
        if age < 18:
            bmi = (16.5 if age < 10 else 19.5) + (5.5 if self.obese else 0.0)
        else:
            bmi = self.base_bmi
        bmi = max(bmi + rng.gauss(0, 0.6), 12.0)
        weight = bmi * (height / 100) ** 2
        sick = encounter.kind in _SICK_KINDS
        fever = encounter.acute is not None and rng.random() < 0.4
        vital = c.VITAL_SIGNS
        self.observation(encounter, vital, c.BODY_HEIGHT, effective, round(height, 1))
        self.observation(encounter, vital, c.BODY_WEIGHT, effective, round(weight, 1))
        if age >= 2:
            bmi_value = round(weight / (height / 100) ** 2, 1)
            self.observation(encounter, vital, c.BMI, effective, bmi_value)
        heart_mu = 130 if age < 1 else 105 if age < 6 else 90 if age < 12 else 74
        heart = rng.gauss(heart_mu, 9) + (12 if fever else 0)
        if self.has(c.ATRIAL_FIBRILLATION, index):
            heart += rng.uniform(0, 30)
        self.observation(encounter, vital, c.HEART_RATE, effective, round(heart))
        breath_mu = 38 if age < 1 else 26 if age < 6 else 20 if age < 12 else 15
        self.observation(
            encounter, vital, c.RESPIRATORY_RATE, effective, round(rng.gauss(breath_mu, 2.5))
        )
        if age >= 3:
            if age < 18:
                systolic, diastolic = rng.gauss(102, 7), rng.gauss(63, 6)
            else:
                systolic = 110 + 0.35 * (age - 18) + rng.gauss(0, 7)
                diastolic = 70 + 0.12 * (age - 18) + rng.gauss(0, 5)
                if c.HYPERTENSION in self.chronic:
                    systolic += rng.uniform(10, 28)
                    diastolic += rng.uniform(5, 14)
            systolic = round(min(max(systolic, 80), 210))
            diastolic = round(min(max(diastolic, 40), min(systolic - 20, 130)))
            self.observation(
                encounter,
                vital,
                c.BP_PANEL,
                effective,
                None,
                components=[
                    {
                        "code": _concept(c.SYSTOLIC_BP),
                        "valueQuantity": _quantity(systolic, "mm[Hg]"),
                    },
                    {
                        "code": _concept(c.DIASTOLIC_BP),
                        "valueQuantity": _quantity(diastolic, "mm[Hg]"),
                    },
                ],
            )
        if sick:
            temperature = rng.uniform(38.0, 39.6) if fever else gauss(36.8, 0.25, 36.0, 37.5)
            self.observation(encounter, vital, c.BODY_TEMPERATURE, effective, round(temperature, 1))
        if encounter.kind in ("emer", "imp"):
            low_oxygen = encounter.acute is c.PNEUMONIA or self.has(c.COPD, index)
            saturation = rng.randint(88, 95) if low_oxygen else rng.randint(95, 100)
            self.observation(encounter, vital, c.SPO2, effective, saturation)

    def labs(self, encounter: _Encounter, index: int) -> None:
        rng, gauss = self.rng, self.gauss
        kind, age = encounter.kind, encounter.age
        acute_care = kind in ("emer", "imp")
        routine = kind in _ROUTINE_KINDS and age >= 18
        diabetic_ever = c.DIABETES_T2 in self.chronic
        diabetic = self.has(c.DIABETES_T2, index)
        prediabetic = self.has(c.PREDIABETES, index)
        watch_sugar = kind == "followup" and encounter.reason in (c.DIABETES_T2, c.PREDIABETES)
        basic = acute_care or (routine and rng.random() < 0.6)
        lipids = routine and (age >= 35 or c.HYPERLIPIDEMIA in self.chronic) and rng.random() < 0.5
        a1c = (routine or watch_sugar) and (diabetic or prediabetic)
        if not (basic or lipids or a1c):
            return
        drawn = encounter.start + timedelta(minutes=rng.randint(10, 40))
        if drawn > encounter.end:
            drawn = encounter.end
        effective = self.when(drawn)
        issued = self.when(drawn + timedelta(minutes=rng.randint(45, 360)))
        male = self.person.gender == "male"

        def lab(code: c.Code, value: float, low: float, high: float, digits: int) -> None:
            value = round(value, digits) if digits else round(value)
            flag = "H" if value > high else "L" if value < low else "N"
            self.observation(
                encounter,
                c.LABORATORY,
                code,
                effective,
                value,
                issued=issued,
                interpretation=c.INTERPRETATION[flag],
                reference=(low, high),
            )

        if basic:
            if diabetic:
                glucose = gauss(165, 35, 95, 400)
            elif diabetic_ever or prediabetic:
                glucose = gauss(112, 9, 85, 140)
            else:
                glucose = gauss(90, 9, 65, 125)
            lab(c.GLUCOSE, glucose, 70, 99, 0)
            creatinine = gauss(0.98 if male else 0.78, 0.13, 0.45, 1.6)
            if age >= 70:
                creatinine += 0.1
            if diabetic:
                creatinine += rng.uniform(0, 0.3)
            lab(c.CREATININE, creatinine, 0.74 if male else 0.59, 1.35 if male else 1.04, 2)
            if age < 18:
                hemoglobin, low_hgb, high_hgb = gauss(12.8, 0.8, 9.5, 15.5), 11.0, 14.5
            elif male:
                hemoglobin, low_hgb, high_hgb = gauss(15.0, 1.0, 11.0, 18.5), 13.2, 16.6
            else:
                hemoglobin, low_hgb, high_hgb = gauss(13.5, 0.9, 10.0, 16.5), 11.6, 15.0
            if self.has(c.ANEMIA, index):
                hemoglobin -= rng.uniform(1.5, 3.0)
            lab(c.HEMOGLOBIN, hemoglobin, low_hgb, high_hgb, 1)
            infected = encounter.acute in (c.PNEUMONIA, c.STREP_THROAT, c.OTITIS_MEDIA)
            wbc = gauss(13.5, 2.5, 9.0, 25.0) if infected else gauss(7.0, 1.5, 3.2, 11.5)
            lab(c.WBC, wbc, 4.5, 11.0, 1)
        if lipids:
            hyperlipidemic = c.HYPERLIPIDEMIA in self.chronic
            cholesterol = gauss(238, 25, 185, 330) if hyperlipidemic else gauss(178, 22, 120, 240)
            lab(c.CHOLESTEROL, cholesterol, 0, 199, 0)
            triglycerides = gauss(210, 60, 90, 500) if hyperlipidemic else gauss(105, 35, 40, 240)
            lab(c.TRIGLYCERIDES, triglycerides, 0, 149, 0)
            hdl = gauss(48 if male else 58, 10, 25, 95) - (6 if diabetic_ever or self.obese else 0)
            lab(c.HDL, hdl, 40, 200, 0)
        if a1c:
            hba1c = gauss(7.4, 0.9, 6.5, 12.0) if diabetic else rng.uniform(5.7, 6.4)
            lab(c.HBA1C, hba1c, 4.0, 5.6, 1)

    def smoking_observation(self, encounter: _Encounter) -> None:
        effective = self.when(encounter.start + timedelta(minutes=self.rng.randint(2, 10)))
        self.observation(encounter, c.SOCIAL_HISTORY, c.SMOKING_STATUS, effective, self.smoking)

    def medications_at(self, encounter: _Encounter) -> None:
        rng = self.rng
        for condition in encounter.diagnosed:
            for options, weights, chance in _TREATMENT.get(condition, ()):
                if rng.random() >= chance:
                    continue
                medication = rng.choices(options, weights=weights)[0]
                if medication in _ADULT_ONLY and encounter.age < 18:
                    continue
                self.medication_request(encounter, condition, medication)

    def medication_request(
        self, encounter: _Encounter, condition: c.Code, medication: c.Code
    ) -> None:
        rng = self.rng
        authored = encounter.start + timedelta(minutes=rng.randint(5, 40))
        if authored > encounter.end:
            authored = encounter.end
        acute = condition in c.ACUTE_CONDITIONS
        if self.person.deceased_date is not None:
            status = "stopped" if not acute else "completed"
        elif acute:
            recent = (AS_OF - authored.date()).days < 14
            status = "active" if recent else "completed"
        else:
            status = "stopped" if rng.random() < 0.15 else "active"
        text, as_needed = _DOSAGE[medication]
        dosage: dict[str, object] = {"sequence": 1, "text": text}
        if as_needed:
            dosage["asNeededBoolean"] = True
        self.out["MedicationRequest"].append(
            {
                "resourceType": "MedicationRequest",
                "id": self.new_id(),
                "status": status,
                "intent": "order",
                "medicationCodeableConcept": _concept(medication),
                "subject": self.subject,
                "encounter": {"reference": f"Encounter/{encounter.id}"},
                "authoredOn": self.when(authored),
                "reasonReference": [
                    {"reference": f"Condition/{encounter.condition_ids[condition]}"}
                ],
                "dosageInstruction": [dosage],
            }
        )

    def procedures_at(self, encounter: _Encounter, index: int) -> None:
        rng, kind, age = self.rng, encounter.kind, encounter.age
        done: list[c.Code] = []
        if kind == "procedure":
            done.append(c.COLONOSCOPY)
        if kind in _ROUTINE_KINDS and age >= 18:
            on_medication = any(
                self.has(code, index) and code in _TREATMENT for code in self.chronic
            )
            if on_medication:
                done.append(c.MEDICATION_RECONCILIATION)
            if rng.random() < 0.6:
                done.append(c.HEALTH_NEEDS_ASSESSMENT)
            if self.person.gender == "female" and 50 <= age <= 74 and rng.random() < 0.35:
                done.append(c.MAMMOGRAPHY)
            if self.has(c.DIABETES_T2, index) and rng.random() < 0.3:
                done.append(c.DIABETIC_EYE_EXAM)
        if kind in _ROUTINE_KINDS and age >= 12:
            if rng.random() < 0.7:
                done.append(c.DEPRESSION_SCREENING)
            if rng.random() < 0.4:
                done.append(c.ANXIETY_ASSESSMENT)
        if encounter.acute is c.STREP_THROAT or (
            encounter.acute is c.VIRAL_PHARYNGITIS and rng.random() < 0.5
        ):
            done.append(c.THROAT_CULTURE)
        if encounter.acute is c.PNEUMONIA or (
            encounter.acute is c.ACUTE_BRONCHITIS and kind == "emer" and rng.random() < 0.5
        ):
            done.append(c.CHEST_XRAY)
        heart = any(
            code in encounter.diagnosed
            for code in (c.ATRIAL_FIBRILLATION, c.ISCHEMIC_HEART_DISEASE)
        )
        if heart or (kind == "emer" and age >= 40 and rng.random() < 0.5):
            done.append(c.ECG)
        lungs = any(code in encounter.diagnosed for code in (c.ASTHMA, c.COPD))
        if lungs and age >= 6:
            done.append(c.SPIROMETRY)

        cursor = encounter.start + timedelta(minutes=rng.randint(3, 10))
        for code in done:
            minutes = rng.randint(30, 75) if code is c.COLONOSCOPY else rng.randint(5, 20)
            start = min(cursor, encounter.end)
            end = min(start + timedelta(minutes=minutes), encounter.end)
            cursor = end
            self.out["Procedure"].append(
                {
                    "resourceType": "Procedure",
                    "id": self.new_id(),
                    "status": "completed",
                    "code": _concept(code),
                    "subject": self.subject,
                    "encounter": {"reference": f"Encounter/{encounter.id}"},
                    "performedPeriod": {"start": self.when(start), "end": self.when(end)},
                }
            )

    def immunizations_at(
        self,
        encounter: _Encounter,
        taken: set[tuple[c.Code, int]],
        flu_seasons: set[int],
        once: set[c.Code],
    ) -> None:
        if encounter.kind not in _ROUTINE_KINDS:
            return
        rng = self.rng
        day = encounter.start.date()
        age_days = (day - self.person.birth_date).days
        given: list[c.Code] = []
        for dose, (vaccine, earliest, latest) in enumerate(_CHILD_SCHEDULE):
            if earliest <= age_days <= latest and (vaccine, dose) not in taken:
                taken.add((vaccine, dose))
                if rng.random() < 0.92:
                    given.append(vaccine)
        season = day.year if day.month >= 8 else day.year - 1
        if age_days >= 183 and season not in flu_seasons and (day.month >= 9 or day.month <= 2):
            flu_seasons.add(season)
            if rng.random() < 0.55:
                given.append(c.FLU)
        age = encounter.age
        if day >= COVID_VACCINE_FROM and age >= 12 and c.COVID_PFIZER not in once:
            once.add(c.COVID_PFIZER)
            if rng.random() < 0.6:
                given.append(c.COVID_PFIZER)
        if age >= 19 and c.TD_ADULT not in once and rng.random() < 0.1:
            once.add(c.TD_ADULT)
            given.append(c.TD_ADULT)
        if age >= 65 and c.PPSV23 not in once:
            once.add(c.PPSV23)
            if rng.random() < 0.5:
                given.append(c.PPSV23)
        if age >= 65 and c.PCV13 not in once:
            once.add(c.PCV13)
            if rng.random() < 0.4:
                given.append(c.PCV13)
        moment = encounter.start + timedelta(minutes=rng.randint(10, 25))
        occurrence = self.when(min(moment, encounter.end))
        for vaccine in given:
            self.out["Immunization"].append(
                {
                    "resourceType": "Immunization",
                    "id": self.new_id(),
                    "status": "completed",
                    "vaccineCode": _concept(vaccine),
                    "patient": self.subject,
                    "encounter": {"reference": f"Encounter/{encounter.id}"},
                    "occurrenceDateTime": occurrence,
                    "primarySource": True,
                }
            )

    def consent(self) -> None:
        person, rng = self.person, self.rng
        signed = datetime.combine(person.consent_date, time(rng.randint(8, 16), rng.randrange(60)))
        signed_text = self.when(signed)
        period: dict[str, str] = {"start": signed_text}
        if person.consent_revoked_date is not None:
            revoked = datetime.combine(
                person.consent_revoked_date, time(rng.randint(8, 16), rng.randrange(60))
            )
            period["end"] = self.when(max(revoked, signed + timedelta(minutes=1)))
        self.out["Consent"].append(
            {
                "resourceType": "Consent",
                "id": self.new_id(),
                "status": "inactive" if person.research_consent == "revoked" else "active",
                "scope": _concept(c.RESEARCH_SCOPE),
                "category": _category(c.PATIENT_CONSENT),
                "patient": self.subject,
                "dateTime": signed_text,
                "organization": [
                    {
                        "identifier": {"system": c.SITE_SYSTEM, "value": person.home_site},
                        "display": person.home_site,
                    }
                ],
                "policy": [{"uri": c.BIOBANK_PROTOCOL}],
                "provision": {
                    "type": "deny" if person.research_consent == "deny" else "permit",
                    "period": period,
                    "purpose": [_coding(c.HEALTHCARE_RESEARCH)],
                },
            }
        )


# Fraction of adult height reached at a given age (years), interpolated between points.
_GROWTH = (
    (0.0, 0.29), (1.0, 0.44), (2.0, 0.51), (5.0, 0.63), (10.0, 0.80), (14.0, 0.94), (18.0, 1.0),
)


def growth(years: float) -> float:
    if years >= _GROWTH[-1][0]:
        return 1.0
    for (x0, y0), (x1, y1) in zip(_GROWTH, _GROWTH[1:], strict=False):
        if years <= x1:
            return y0 + (y1 - y0) * (years - x0) / (x1 - x0)
    return 1.0


def chronic_conditions(person: Person) -> frozenset[c.Code]:
    """The chronic conditions a person's EHR record holds, without drawing the record.

    Repeats the first draws :func:`ehr_record` makes (smoking status, then the chronic
    conditions) on a fresh ``person.rng("ehr")``, so other silos can agree with the EHR (a
    diabetic's HbA1c) without changing what it draws. Keep it in step with ``_Record``.

    Args:
        person: a roster entry.

    Returns:
        The chronic condition codes (``codes.DIABETES_T2``, ``codes.PREDIABETES`` ...).
    """
    rng = person.rng("ehr")
    age = person.age_on(person.end_date)
    smoking = _smoking_status(rng, age)
    return frozenset(_chronic_conditions(rng, person, age, smoking))


def ehr_record(person: Person) -> dict[str, list[Resource]]:
    """One person's EHR record as FHIR R4 resources.

    Args:
        person: a roster entry from ``build_people``.

    Returns:
        Resource type to that person's resources of that type, in time order. Every type in
        ``RESOURCE_TYPES`` is present (possibly with an empty list).
    """
    return _Record(person).build()


@dataclass(frozen=True)
class EncounterSummary:
    """One encounter of a person's EHR record, as ``write_ehr`` writes it.

    Attributes:
        id: the FHIR ``Encounter.id``.
        kind: the kind of visit: ``checkup``, ``symptom``, ``followup``, ``general``,
            ``problem`` or ``procedure`` (all ambulatory), ``emer`` (emergency department)
            or ``imp`` (inpatient stay).
        encounter_class: the ``Encounter.class`` code: ``AMB``, ``EMER`` or ``IMP``.
        type: the concept of ``Encounter.type``.
        reason: the concept of ``Encounter.reasonCode``, or None.
        start: ``period.start`` as naive local time at the person's home site.
        end: ``period.end``, likewise.
        start_text: ``period.start`` exactly as written, with its UTC offset.
        end_text: ``period.end`` exactly as written.
    """

    id: str
    kind: str
    encounter_class: str
    type: c.Code
    reason: c.Code | None
    start: datetime
    end: datetime
    start_text: str
    end_text: str


def encounter_summaries(person: Person) -> list[EncounterSummary]:
    """A person's encounters, exactly as ``write_ehr`` writes them to ``Encounter.ndjson``.

    Draws only the part of the record the encounters depend on, so it is much cheaper than
    ``ehr_record``; other silos use it to place their records inside real visits.

    Args:
        person: a roster entry from ``build_people``.

    Returns:
        The person's encounters in the order they are written (by start).
    """
    record = _Record(person)
    return [
        EncounterSummary(
            id=encounter.id,
            kind=encounter.kind,
            encounter_class=_CLASS_OF_KIND[encounter.kind],
            type=encounter.type,
            reason=encounter.reason,
            start=encounter.start,
            end=encounter.end,
            start_text=record.when(encounter.start),
            end_text=record.when(encounter.end),
        )
        for encounter in record.plan()
    ]


def write_ehr(people: Iterable[Person], out: Path) -> dict[str, int]:
    """Write the EHR silo as FHIR R4 bulk-export NDJSON, one file per resource type.

    Writes ``out/ehr/<ResourceType>.ndjson`` for every type in ``RESOURCE_TYPES``, replacing
    files of those names; nothing carries a final name until every file is complete.

    Args:
        people: the roster, in index order.
        out: the cohort's output folder.

    Returns:
        Path relative to ``out`` (``ehr/Patient.ndjson`` ...) to its number of records.

    Raises:
        OSError: if the folder cannot be created or written.
    """
    counts = dict.fromkeys(RESOURCE_TYPES, 0)
    with AtomicFolder(Path(out) / "ehr") as folder:
        handles = {rtype: folder.open(f"{rtype}.ndjson") for rtype in RESOURCE_TYPES}
        for lines in ehr_lines(people):
            for rtype, batch in lines.items():
                if batch:
                    handles[rtype].write(b"".join(batch))
                    counts[rtype] += len(batch)
    return {f"ehr/{rtype}.ndjson": counts[rtype] for rtype in RESOURCE_TYPES}


def ehr_lines(people: Iterable[Person]) -> Iterable[dict[str, list[bytes]]]:
    """Serialised NDJSON lines per resource type, one mapping per person.

    Args:
        people: the roster, in index order.

    Returns:
        An iterator of ``{resource type: [line, ...]}`` with each line newline-terminated.
    """
    dumps = orjson.dumps
    for person in people:
        record = ehr_record(person)
        yield {rtype: [dumps(r) + b"\n" for r in record[rtype]] for rtype in RESOURCE_TYPES}
