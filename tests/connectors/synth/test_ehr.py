import re
from collections import defaultdict
from datetime import date, datetime
from statistics import mean

import orjson
import pytest

from connectors.synth import AS_OF, build_people, write_cohort
from connectors.synth import codes as c
from connectors.synth.ehr import RESOURCE_TYPES

PATIENTS = 500
SEED = 7
DATETIME_WITH_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    summary = write_cohort(out, patients=PATIENTS, seed=SEED)
    lines: dict[str, list[bytes]] = {}
    resources: dict[str, list[dict]] = {}
    for rtype in RESOURCE_TYPES:
        raw = (out / "ehr" / f"{rtype}.ndjson").read_bytes()
        assert raw.endswith(b"\n")
        lines[rtype] = raw.splitlines()
        resources[rtype] = [orjson.loads(line) for line in lines[rtype]]
    return summary, lines, resources


@pytest.fixture(scope="module")
def people():
    return {p.patient_id: p for p in build_people(PATIENTS, SEED)}


def _walk(node):
    """Every dict inside a JSON value, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _patient_of(resource: dict) -> str:
    reference = (resource.get("subject") or resource.get("patient"))["reference"]
    assert reference.startswith("Patient/")
    return reference.removeprefix("Patient/")


def _codes_of(resources: list[dict], element: str) -> dict[str, set[str]]:
    by_patient: dict[str, set[str]] = defaultdict(set)
    for resource in resources:
        by_patient[_patient_of(resource)].add(resource[element]["coding"][0]["code"])
    return by_patient


def test_every_line_is_one_compact_resource_of_the_files_type(cohort):
    _, lines, resources = cohort
    for rtype in RESOURCE_TYPES:
        assert resources[rtype], rtype
        for line, resource in zip(lines[rtype], resources[rtype], strict=True):
            assert resource["resourceType"] == rtype
            assert isinstance(resource["id"], str) and resource["id"]
            assert list(resource)[:2] == ["resourceType", "id"]
            # Compact, and keys in the order they were written (no sorting).
            assert orjson.dumps(resource) == line


def test_ids_are_unique_per_resource_type(cohort):
    _, _, resources = cohort
    for rtype in RESOURCE_TYPES:
        ids = [r["id"] for r in resources[rtype]]
        assert len(set(ids)) == len(ids), rtype


def test_every_reference_points_at_a_resource_in_the_export(cohort):
    _, _, resources = cohort
    known = {f"{rtype}/{r['id']}" for rtype in RESOURCE_TYPES for r in resources[rtype]}
    references = [
        node["reference"]
        for rtype in RESOURCE_TYPES
        for resource in resources[rtype]
        for node in _walk(resource)
        if "reference" in node
    ]
    assert references
    assert {ref.split("/")[0] for ref in references} == {"Patient", "Encounter", "Condition"}
    assert set(references) <= known


def test_every_coding_uses_a_real_system_and_a_code_from_the_code_tables(cohort):
    _, _, resources = cohort
    known = c.all_codes()
    displays = {
        (value.system, value.code): value.display
        for value in vars(c).values()
        if isinstance(value, c.Code)
    }
    for table in (c.RACE, c.ETHNICITY, c.MARITAL_STATUS, c.LANGUAGE, c.ENCOUNTER_CLASS,
                  c.INTERPRETATION):
        displays.update({(v.system, v.code): v.display for v in table.values()})
    seen_systems = set()
    for rtype in RESOURCE_TYPES:
        for resource in resources[rtype]:
            for node in _walk(resource):
                if "code" in node and "system" in node and node["system"] != c.UCUM:
                    key = (node["system"], node["code"])
                    assert key in known, key
                    assert node["display"] == displays[key], key
                    seen_systems.add(node["system"])
    assert {c.SNOMED, c.LOINC, c.RXNORM, c.CVX, c.CDC_RACE_ETHNICITY, c.V3_ACT_CODE,
            c.V2_IDENTIFIER_TYPE, c.CONSENT_SCOPE, c.V3_ACT_REASON, c.OBSERVATION_CATEGORY,
            c.CONDITION_CLINICAL, c.CONDITION_VER_STATUS, c.CONDITION_CATEGORY,
            c.V3_INTERPRETATION, c.BCP47} <= seen_systems


def test_quantities_carry_the_ucum_unit_of_their_loinc_code(cohort):
    _, _, resources = cohort
    checked = 0
    for observation in resources["Observation"]:
        parts = [observation, *observation.get("component", [])]
        for part in parts:
            quantity = part.get("valueQuantity")
            if quantity is None:
                continue
            loinc = part["code"]["coding"][0]["code"]
            ucum = c.OBSERVATION_UNITS[loinc]
            assert quantity["system"] == c.UCUM
            assert quantity["code"] == ucum
            assert quantity["unit"] == c.UNITS[ucum].unit
            assert isinstance(quantity["value"], int | float)
            checked += 1
    assert checked > 10_000


def test_observation_categories_match_what_was_measured(cohort):
    _, _, resources = cohort
    labs = {c.GLUCOSE.code, c.HBA1C.code, c.CHOLESTEROL.code, c.TRIGLYCERIDES.code,
            c.HDL.code, c.CREATININE.code, c.HEMOGLOBIN.code, c.WBC.code}
    by_category = defaultdict(set)
    for observation in resources["Observation"]:
        category = observation["category"][0]["coding"][0]["code"]
        by_category[category].add(observation["code"]["coding"][0]["code"])
    assert by_category["laboratory"] == labs
    assert by_category["social-history"] == {c.SMOKING_STATUS.code}
    assert c.BP_PANEL.code in by_category["vital-signs"]
    assert not by_category["vital-signs"] & labs


def test_lab_results_carry_an_interpretation_that_agrees_with_the_reference_range(cohort):
    _, _, resources = cohort
    flags = set()
    for observation in resources["Observation"]:
        if observation["category"][0]["coding"][0]["code"] != "laboratory":
            continue
        value = observation["valueQuantity"]["value"]
        bounds = observation["referenceRange"][0]
        flag = observation["interpretation"][0]["coding"][0]["code"]
        flags.add(flag)
        if flag == "H":
            assert value > bounds["high"]["value"]
        elif flag == "L":
            assert value < bounds["low"]["value"]
        else:
            assert value <= bounds["high"]["value"]
    assert flags == {"H", "L", "N"}


def test_smoking_status_is_a_coded_social_history_value(cohort):
    _, _, resources = cohort
    smoking = [
        o for o in resources["Observation"] if o["code"]["coding"][0]["code"] == "72166-2"
    ]
    values = {o["valueCodeableConcept"]["coding"][0]["code"] for o in smoking}
    assert values == {code.code for code in c.SMOKING_VALUES}
    assert len({_patient_of(o) for o in smoking}) == len(smoking)


def test_hypertension_is_far_more_common_in_older_people(cohort, people):
    _, _, resources = cohort
    conditions = _codes_of(resources["Condition"], "code")
    young = [p for p in people.values() if p.age_on(p.end_date) < 40]
    old = [p for p in people.values() if p.age_on(p.end_date) >= 60]

    def prevalence(group):
        return sum(c.HYPERTENSION.code in conditions[p.patient_id] for p in group) / len(group)

    assert prevalence(old) > 0.4
    assert prevalence(young) < 0.1


def test_diabetics_have_higher_hba1c_and_glucose(cohort):
    _, _, resources = cohort
    diabetic = {
        pid for pid, codes in _codes_of(resources["Condition"], "code").items()
        if c.DIABETES_T2.code in codes
    }
    values = defaultdict(lambda: defaultdict(list))
    for observation in resources["Observation"]:
        code = observation["code"]["coding"][0]["code"]
        if code in (c.HBA1C.code, c.GLUCOSE.code):
            group = "diabetic" if _patient_of(observation) in diabetic else "other"
            values[code][group].append(observation["valueQuantity"]["value"])
    assert mean(values[c.HBA1C.code]["diabetic"]) > 6.5
    assert mean(values[c.HBA1C.code]["other"]) < 6.4
    assert mean(values[c.GLUCOSE.code]["diabetic"]) > mean(values[c.GLUCOSE.code]["other"]) + 25


def test_treatments_follow_their_conditions(cohort):
    _, _, resources = cohort
    conditions = {r["id"]: r["code"]["coding"][0]["code"] for r in resources["Condition"]}
    pairs = {
        (
            conditions[r["reasonReference"][0]["reference"].removeprefix("Condition/")],
            r["medicationCodeableConcept"]["coding"][0]["code"],
        )
        for r in resources["MedicationRequest"]
    }
    assert (c.DIABETES_T2.code, c.METFORMIN_ER_500.code) in pairs
    assert (c.HYPERTENSION.code, c.LISINOPRIL_10.code) in pairs
    assert (c.ASTHMA.code, c.ALBUTEROL_MDI.code) in pairs
    assert not {med for cond, med in pairs if cond == c.DIABETES_T2.code} - {
        c.METFORMIN_ER_500.code
    }
    condition_encounters = {r["id"]: r["encounter"]["reference"] for r in resources["Condition"]}
    for request in resources["MedicationRequest"]:
        reason = request["reasonReference"][0]["reference"].removeprefix("Condition/")
        assert condition_encounters[reason] == request["encounter"]["reference"]
    statuses = {r["status"] for r in resources["MedicationRequest"]}
    assert statuses == {"active", "completed", "stopped"}
    assert {r["intent"] for r in resources["MedicationRequest"]} == {"order"}


def test_encounters_end_after_they_start_and_within_the_record(cohort, people):
    _, _, resources = cohort
    classes = defaultdict(int)
    per_patient = defaultdict(int)
    for encounter in resources["Encounter"]:
        start = _when(encounter["period"]["start"])
        end = _when(encounter["period"]["end"])
        assert start < end
        person = people[_patient_of(encounter)]
        assert person.birth_date <= start.date()
        assert end.date() <= person.end_date
        classes[encounter["class"]["code"]] += 1
        per_patient[person.patient_id] += 1
    total = sum(classes.values())
    assert classes["AMB"] / total > 0.75
    assert classes["EMER"] > classes["IMP"] > 0
    assert len(per_patient) == PATIENTS
    assert min(per_patient.values()) >= 3
    assert max(per_patient.values()) <= 25


def test_abatement_follows_onset_and_only_resolved_conditions_have_one(cohort, people):
    _, _, resources = cohort
    resolved = 0
    for condition in resources["Condition"]:
        status = condition["clinicalStatus"]["coding"][0]["code"]
        if "abatementDateTime" in condition:
            assert status == "resolved"
            onset = _when(condition["onsetDateTime"])
            abatement = _when(condition["abatementDateTime"])
            assert abatement > onset
            assert abatement.date() <= people[_patient_of(condition)].end_date
            resolved += 1
        else:
            assert status == "active"
    assert resolved > 100


def test_procedure_periods_end_after_they_start(cohort):
    _, _, resources = cohort
    for procedure in resources["Procedure"]:
        period = procedure["performedPeriod"]
        assert _when(period["start"]) <= _when(period["end"])


def test_every_timestamp_carries_a_utc_offset_and_none_is_after_the_as_of_date(cohort):
    _, _, resources = cohort
    keys = ("start", "end", "onsetDateTime", "abatementDateTime", "recordedDate",
            "effectiveDateTime", "issued", "authoredOn", "occurrenceDateTime", "dateTime",
            "deceasedDateTime")
    count = 0
    for rtype in RESOURCE_TYPES:
        for resource in resources[rtype]:
            for node in _walk(resource):
                for key in keys:
                    if key in node:
                        assert DATETIME_WITH_TIME.fullmatch(node[key]), node[key]
                        assert _when(node[key]).date() <= AS_OF
                        count += 1
    assert count > 50_000


def test_patients_carry_the_roster_identity(cohort, people):
    _, _, resources = cohort
    patients = resources["Patient"]
    assert [p["id"] for p in patients] == list(people)
    for patient in patients:
        person = people[patient["id"]]
        identifier = patient["identifier"][0]
        assert identifier["type"]["coding"][0] == c.MR.coding()
        assert identifier["system"] == c.MRN_SYSTEM
        assert identifier["value"] == person.mrn
        assert patient["name"][0] == {
            "use": "official",
            "family": person.family_name,
            "given": list(person.given_names),
        }
        assert patient["gender"] == person.gender
        assert date.fromisoformat(patient["birthDate"]) == person.birth_date
        assert patient["address"][0]["postalCode"] == person.address.postal_code
        if person.deceased_date is None:
            assert "deceasedDateTime" not in patient
        else:
            assert _when(patient["deceasedDateTime"]).date() == person.deceased_date
        urls = [extension["url"] for extension in patient["extension"]]
        assert urls == [c.US_CORE_RACE, c.US_CORE_ETHNICITY]
        for extension in patient["extension"]:
            parts = {part["url"]: part for part in extension["extension"]}
            assert parts["text"]["valueString"]
            if "ombCategory" in parts:
                assert parts["ombCategory"]["valueCoding"]["system"] == c.CDC_RACE_ETHNICITY
    assert sum("deceasedDateTime" in p for p in patients) > 10


def test_consents_reflect_the_roster_consent_state(cohort, people):
    _, _, resources = cohort
    consents = resources["Consent"]
    assert sorted(_patient_of(r) for r in consents) == sorted(people)
    states = defaultdict(int)
    for consent in consents:
        person = people[_patient_of(consent)]
        states[person.research_consent] += 1
        provision = consent["provision"]
        expected = {
            "permit": ("active", "permit"),
            "deny": ("active", "deny"),
            "revoked": ("inactive", "permit"),
        }[person.research_consent]
        assert (consent["status"], provision["type"]) == expected
        assert consent["scope"]["coding"][0] == c.RESEARCH_SCOPE.coding()
        assert consent["category"][0]["coding"][0] == c.PATIENT_CONSENT.coding()
        assert consent["policy"] == [{"uri": c.BIOBANK_PROTOCOL}]
        assert provision["purpose"] == [c.HEALTHCARE_RESEARCH.coding()]
        assert _when(consent["dateTime"]).date() == person.consent_date
        if person.research_consent == "revoked":
            assert _when(provision["period"]["end"]) > _when(provision["period"]["start"])
            assert _when(provision["period"]["end"]).date() == person.consent_revoked_date
        else:
            assert "end" not in provision["period"]
    assert set(states) == {"permit", "deny", "revoked"}


def test_immunizations_are_completed_doses_from_the_cvx_table(cohort, people):
    _, _, resources = cohort
    vaccines = defaultdict(set)
    for immunization in resources["Immunization"]:
        assert immunization["status"] == "completed"
        assert immunization["primarySource"] is True
        code = immunization["vaccineCode"]["coding"][0]["code"]
        person = people[_patient_of(immunization)]
        vaccines[code].add(person.patient_id)
        if code == c.COVID_PFIZER.code:
            assert _when(immunization["occurrenceDateTime"]).date() >= date(2021, 5, 10)
    assert {c.FLU.code, c.COVID_PFIZER.code, c.DTAP.code, c.TD_ADULT.code} <= set(vaccines)
