"""Typed column values per FHIR R4 resource type.

Each extractor turns one resource into a tuple in the column order of
``schema.RESOURCE_COLUMNS`` (provenance excluded). Date-times are microseconds since the
epoch in UTC and dates are days since the epoch (see ``fields``); the reader casts them.
An element of the wrong JSON type raises ``InvalidFieldError`` and the whole resource is
rejected.

Choices the column descriptions leave open:

- Codes: the first coding of a CodeableConcept; for Condition, Observation and Procedure
  codes the first SNOMED CT or LOINC coding when there is one. A missing display falls back
  to the concept's text.
- ``patient_id`` comes from ``subject`` (``patient`` for Immunization and Consent) and is
  null when the reference is conditional, contained, by identifier only, or to a resource
  type other than Patient (a Group subject, say).
- ``Patient.birth_date`` is null for a partial birthDate (``1970`` or ``1970-04``): a clinical
  birth date is not invented. Partial dateTimes elsewhere become midnight UTC of the first
  day of the period.
- Observation values: only valueQuantity, valueCodeableConcept and valueString have typed
  columns; other value[x] types and the components of panels stay in ``resource_json``.
- Periods stand in for dateTimes where R4 allows either (onsetPeriod.start,
  effectivePeriod.start, performedPeriod).
"""

from collections.abc import Callable

from connectors.fhir.fields import (
    InvalidFieldError,
    array,
    boolean,
    concept,
    concept_code,
    concept_of,
    datetime_micros,
    first,
    first_concept,
    full_date_days,
    number,
    obj,
    reference,
    reference_id,
    string,
)

SNOMED_OR_LOINC = frozenset({"http://snomed.info/sct", "http://loinc.org"})
UCUM = "http://unitsofmeasure.org"
US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_CORE_ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
GENDERS = frozenset({"male", "female", "other", "unknown"})

Row = tuple[object, ...]


def _patient(resource: dict) -> Row:
    mrn = _mrn(resource)
    family, given = _official_name(resource)
    gender = resource.get("gender")
    if gender is not None and (type(gender) is not str or gender not in GENDERS):
        raise InvalidFieldError("gender", "is not one of male, female, other, unknown")
    deceased, deceased_at = _deceased(resource)
    line, city, state, postal_code, country = _home_address(resource)
    marital = concept_code(resource, "maritalStatus")
    communication = first(resource, "communication")
    language = None
    if communication is not None:
        language = concept_code(communication, "language", "communication[0].language")
    race, ethnicity = _race_and_ethnicity(resource)
    return (
        resource["id"],
        mrn,
        family,
        given,
        gender,
        full_date_days(resource, "birthDate"),
        deceased,
        deceased_at,
        line,
        city,
        state,
        postal_code,
        country,
        race,
        ethnicity,
        marital,
        language,
    )


def _mrn(resource: dict) -> str | None:
    identifiers = array(resource, "identifier")
    if not identifiers:
        return None
    for index, identifier in enumerate(identifiers):
        if type(identifier) is not dict:
            raise InvalidFieldError(f"identifier[{index}]", "is not an object")
        kind = obj(identifier, "type", f"identifier[{index}].type")
        codings = None
        if kind is not None:
            codings = array(kind, "coding", f"identifier[{index}].type.coding")
        if codings and any(type(c) is dict and c.get("code") == "MR" for c in codings):
            return string(identifier, "value", f"identifier[{index}].value")
    return string(identifiers[0], "value", "identifier[0].value")


def _official_name(resource: dict) -> tuple[str | None, str | None]:
    names = array(resource, "name")
    if not names:
        return (None, None)
    index = next(
        (i for i, name in enumerate(names) if type(name) is dict and name.get("use") == "official"),
        0,
    )
    name = names[index]
    path = f"name[{index}]"
    if type(name) is not dict:
        raise InvalidFieldError(path, "is not an object")
    family = string(name, "family", f"{path}.family")
    given = array(name, "given", f"{path}.given")
    if given is not None and any(type(part) is not str for part in given):
        raise InvalidFieldError(f"{path}.given", "is not a list of strings")
    return (family, " ".join(given) if given else None)


def _deceased(resource: dict) -> tuple[bool | None, int | None]:
    at = datetime_micros(resource, "deceasedDateTime")
    if at is not None:
        return (True, at)
    return (boolean(resource, "deceasedBoolean"), None)


def _home_address(resource: dict) -> tuple[str | None, ...]:
    addresses = array(resource, "address")
    if not addresses:
        return (None, None, None, None, None)
    index = next(
        (i for i, a in enumerate(addresses) if type(a) is dict and a.get("use") == "home"), 0
    )
    address = addresses[index]
    path = f"address[{index}]"
    if type(address) is not dict:
        raise InvalidFieldError(path, "is not an object")
    lines = array(address, "line", f"{path}.line")
    line = None
    if lines:
        line = lines[0]
        if type(line) is not str:
            raise InvalidFieldError(f"{path}.line[0]", "is not a string")
    return (
        line,
        string(address, "city", f"{path}.city"),
        string(address, "state", f"{path}.state"),
        string(address, "postalCode", f"{path}.postalCode"),
        string(address, "country", f"{path}.country"),
    )


def _race_and_ethnicity(resource: dict) -> tuple[str | None, str | None]:
    extensions = array(resource, "extension")
    race = ethnicity = None
    for index, extension in enumerate(extensions or ()):
        if type(extension) is not dict:
            raise InvalidFieldError(f"extension[{index}]", "is not an object")
        url = extension.get("url")
        if url == US_CORE_RACE:
            race = _omb_category(extension, f"extension[{index}]")
        elif url == US_CORE_ETHNICITY:
            ethnicity = _omb_category(extension, f"extension[{index}]")
    return (race, ethnicity)


def _omb_category(extension: dict, path: str) -> str | None:
    """The ombCategory display of a US Core race or ethnicity extension, else its text."""
    text = None
    for index, part in enumerate(array(extension, "extension", f"{path}.extension") or ()):
        part_path = f"{path}.extension[{index}]"
        if type(part) is not dict:
            raise InvalidFieldError(part_path, "is not an object")
        url = part.get("url")
        if url == "ombCategory":
            coding = obj(part, "valueCoding", f"{part_path}.valueCoding")
            display = None
            if coding is not None:
                display = string(coding, "display", f"{part_path}.valueCoding.display")
            if display is not None:
                return display
        elif url == "text" and text is None:
            text = string(part, "valueString", f"{part_path}.valueString")
    return text


def _encounter(resource: dict) -> Row:
    encounter_class = obj(resource, "class")
    period = obj(resource, "period") or {}
    return (
        resource["id"],
        reference(resource, "subject", "Patient"),
        string(resource, "status"),
        None if encounter_class is None else string(encounter_class, "code", "class.code"),
        *first_concept(resource, "type"),
        datetime_micros(period, "start", "period.start"),
        datetime_micros(period, "end", "period.end"),
        *first_concept(resource, "reasonCode"),
    )


def _condition(resource: dict) -> Row:
    return (
        resource["id"],
        reference(resource, "subject", "Patient"),
        reference(resource, "encounter", "Encounter"),
        concept_code(resource, "clinicalStatus"),
        concept_code(resource, "verificationStatus"),
        first_concept(resource, "category")[1],
        *concept(resource, "code", SNOMED_OR_LOINC),
        _datetime_or_period_start(resource, "onset"),
        _datetime_or_period_start(resource, "abatement"),
        datetime_micros(resource, "recordedDate"),
    )


def _observation(resource: dict) -> Row:
    effective = datetime_micros(resource, "effectiveDateTime")
    if effective is None:
        effective = datetime_micros(resource, "effectiveInstant")
    if effective is None:
        effective = _period_start(resource, "effectivePeriod")
    quantity_value = quantity_unit = value_string = None
    value_code = (None, None, None)
    quantity = obj(resource, "valueQuantity")
    if quantity is not None:
        quantity_value = number(quantity, "value", "valueQuantity.value")
        quantity_unit = _unit(quantity)
    else:
        coded = obj(resource, "valueCodeableConcept")
        if coded is not None:
            value_code = concept_of(coded, "valueCodeableConcept")
        else:
            value_string = string(resource, "valueString")
    return (
        resource["id"],
        reference(resource, "subject", "Patient"),
        reference(resource, "encounter", "Encounter"),
        string(resource, "status"),
        first_concept(resource, "category")[1],
        *concept(resource, "code", SNOMED_OR_LOINC),
        effective,
        quantity_value,
        quantity_unit,
        *value_code,
        value_string,
        first_concept(resource, "interpretation")[1],
    )


def _unit(quantity: dict) -> str | None:
    """The UCUM code of a Quantity when its system is UCUM, else its human-readable unit."""
    unit = string(quantity, "unit", "valueQuantity.unit")
    if string(quantity, "system", "valueQuantity.system") == UCUM:
        code = string(quantity, "code", "valueQuantity.code")
        if code is not None:
            return code
    return unit


def _medication_request(resource: dict) -> Row:
    dosage = first(resource, "dosageInstruction")
    return (
        resource["id"],
        reference(resource, "subject", "Patient"),
        reference(resource, "encounter", "Encounter"),
        string(resource, "status"),
        string(resource, "intent"),
        # A medicationReference names a Medication resource: no code to copy here.
        *concept(resource, "medicationCodeableConcept"),
        datetime_micros(resource, "authoredOn"),
        None if dosage is None else string(dosage, "text", "dosageInstruction[0].text"),
    )


def _procedure(resource: dict) -> Row:
    start = end = datetime_micros(resource, "performedDateTime")
    if start is None:
        period = obj(resource, "performedPeriod")
        if period is not None:
            start = datetime_micros(period, "start", "performedPeriod.start")
            end = datetime_micros(period, "end", "performedPeriod.end")
    return (
        resource["id"],
        reference(resource, "subject", "Patient"),
        reference(resource, "encounter", "Encounter"),
        string(resource, "status"),
        *concept(resource, "code", SNOMED_OR_LOINC),
        start,
        end,
    )


def _immunization(resource: dict) -> Row:
    return (
        resource["id"],
        reference(resource, "patient", "Patient"),
        reference(resource, "encounter", "Encounter"),
        string(resource, "status"),
        *concept(resource, "vaccineCode"),
        datetime_micros(resource, "occurrenceDateTime"),
    )


def _consent(resource: dict) -> Row:
    policy_uri = concept_code(resource, "policyRule")
    if policy_uri is None:
        policy = first(resource, "policy")
        policy_uri = None if policy is None else string(policy, "uri", "policy[0].uri")
    provision = obj(resource, "provision") or {}
    period = obj(provision, "period", "provision.period") or {}
    return (
        resource["id"],
        reference(resource, "patient", "Patient"),
        string(resource, "status"),
        concept_code(resource, "scope"),
        first_concept(resource, "category")[1],
        policy_uri,
        string(provision, "type", "provision.type"),
        _purposes(provision),
        datetime_micros(period, "start", "provision.period.start"),
        datetime_micros(period, "end", "provision.period.end"),
        datetime_micros(resource, "dateTime"),
    )


def _purposes(provision: dict) -> list[str] | None:
    purposes = array(provision, "purpose", "provision.purpose")
    if purposes is None:
        return None
    codes = []
    for index, coding in enumerate(purposes):
        if type(coding) is not dict:
            raise InvalidFieldError(f"provision.purpose[{index}]", "is not an object")
        code = string(coding, "code", f"provision.purpose[{index}].code")
        if code is not None:
            codes.append(code)
    return codes


def _datetime_or_period_start(resource: dict, stem: str) -> int | None:
    moment = datetime_micros(resource, f"{stem}DateTime")
    if moment is None:
        moment = _period_start(resource, f"{stem}Period")
    return moment


def _period_start(resource: dict, key: str) -> int | None:
    period = obj(resource, key)
    return None if period is None else datetime_micros(period, "start", f"{key}.start")


def other_row(resource: dict) -> Row:
    """Resource type, id and patient id of a resource without typed columns.

    The patient reference is read leniently: a malformed ``subject`` or ``patient`` of a type
    this connector does not model gives a null patient id rather than a reject.
    """
    patient_id = None
    for key in ("subject", "patient"):
        value = resource.get(key)
        if type(value) is dict:
            text = value.get("reference")
            if type(text) is str:
                patient_id = reference_id(text, "Patient")
                if patient_id is not None:
                    break
    return (resource["resourceType"], resource["id"], patient_id)


EXTRACTORS: dict[str, Callable[[dict], Row]] = {
    "Patient": _patient,
    "Encounter": _encounter,
    "Condition": _condition,
    "Observation": _observation,
    "MedicationRequest": _medication_request,
    "Procedure": _procedure,
    "Immunization": _immunization,
    "Consent": _consent,
}
"""Resource type to the function giving its typed column values."""
