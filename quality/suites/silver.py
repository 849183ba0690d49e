"""Silver suites: one row per FHIR resource, typed, linked to ``person_key``.

Severities: FHIR required bindings, invariants, keys, code formats and references are
errors; extensible bindings, plausible ranges and "not in the future" are warnings.
Subject cardinality follows FHIR R4: ``subject``/``patient`` is 1..1 on Condition,
MedicationRequest, Procedure and Immunization (a missing patient is an error) and 0..1 on
Encounter, Observation and Consent (a warning).
"""

import polars as pl

from connectors.fhir.schema import TABLE_NAMES, table_columns
from quality.suites._checks import (
    BCP47,
    CONDITION_CATEGORY,
    CONSENT_SCOPE,
    EARLIEST_BIRTH,
    ENCOUNTER_CLASS,
    FHIR_ID,
    LONGEST_ENCOUNTER,
    MARITAL_STATUS,
    OBSERVATION_CATEGORY,
    UCUM_UNIT,
    US_ZIP,
    cvx_codes,
    derived_true,
    exact_columns,
    expected_units,
    icd10cm_codes,
    in_set,
    loinc_codes,
    matches,
    not_in_future,
    not_null,
    ordered,
    plausible_values,
    references,
    rxnorm_codes,
    set_when_set,
    sha256_hex,
    snomed_codes,
    unique,
)
from quality.suites._model import Check, DeriveContext, Suite
from quality.valuesets import (
    CONDITION_ABATED_CLINICAL,
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    CONSENT_PROVISION_TYPE,
    CONSENT_STATUS,
    ENCOUNTER_STATUS,
    GENDER,
    IMMUNIZATION_STATUS,
    MEDREQ_INTENT,
    MEDREQ_STATUS,
    OBSERVATION_STATUS,
    PROCEDURE_STATUS,
)

SILVER_TABLES: tuple[str, ...] = tuple(TABLE_NAMES.values())
PATIENTS = "silver/ehr/patients"
ENCOUNTERS = "silver/ehr/encounters"

_SUBJECT_REQUIRED = {"conditions", "medication_requests", "procedures", "immunizations"}
"""Tables whose FHIR resource has a 1..1 subject or patient."""


def silver_columns(table: str) -> tuple[str, ...]:
    """A silver table's columns: typed columns without ``resource_json``, plus ``person_key``
    and the ingest columns (``pipelines.ehr.silver_frame``)."""
    typed = [c.name for c in table_columns(table) if c.name != "resource_json"]
    return ("id", "person_key", *typed[1:], "source_sha256", "ingested_at")


def _keys(table: str) -> list[Check]:
    return [
        exact_columns(silver_columns(table), f"silver {table}"),
        not_null("id"),
        unique("id"),
        matches("id", FHIR_ID, "id is a FHIR id (1-64 of A-Z a-z 0-9 - .)"),
    ]


def _provenance() -> list[Check]:
    return [
        not_null("source_file"),
        not_null("source_locator"),
        *sha256_hex(),
        not_null("ingested_at"),
    ]


def _subject(table: str, *, encounter: bool) -> list[Check]:
    checks = [
        not_null(
            "patient_id",
            severity="error" if table in _SUBJECT_REQUIRED else "warning",
            description="every record names its patient",
        ),
        set_when_set("person_key", "patient_id"),
        references("patient_id", PATIENTS, "id"),
    ]
    if encounter:
        checks.append(references("encounter_id", ENCOUNTERS, "id", severity="warning"))
    return checks


def _patients() -> list[Check]:
    def born_plausibly(context: DeriveContext) -> pl.Expr:
        birth = pl.col("birth_date")
        return pl.when(birth.is_not_null()).then(
            birth.is_between(pl.lit(EARLIEST_BIRTH), pl.lit(context.now.date()))
        )

    def died_plausibly(context: DeriveContext) -> pl.Expr:
        death = pl.col("deceased_datetime")
        after_birth = pl.col("birth_date").is_null() | (death.dt.date() >= pl.col("birth_date"))
        not_future = death <= pl.lit(context.now).cast(pl.Datetime("us", "UTC"))
        return pl.when(death.is_not_null()).then(after_birth & not_future)

    return [
        not_null("person_key", description="every patient is linked to a person_key"),
        in_set("gender", GENDER, what="FHIR AdministrativeGender"),
        derived_true(
            "birth_date_plausible",
            ("birth_date",),
            born_plausibly,
            f"birth_date is after {EARLIEST_BIRTH.year} and not in the future",
            severity="warning",
            column="birth_date",
        ),
        derived_true(
            "deceased_datetime_plausible",
            ("deceased_datetime", "birth_date"),
            died_plausibly,
            "deceased_datetime is not before birth_date nor in the future",
            severity="warning",
            column="deceased_datetime",
        ),
        not_null(
            "mrn",
            severity="warning",
            description="every patient has an MRN (silos link people through it)",
        ),
        in_set("marital_status", MARITAL_STATUS, severity="warning", what="FHIR marital-status"),
        derived_true(
            "postal_code_us_zip",
            ("postal_code", "country"),
            lambda _: pl.when(
                pl.col("postal_code").is_not_null() & (pl.col("country") == "US")
            ).then(pl.col("postal_code").str.contains(US_ZIP)),
            "US postal codes are ZIP or ZIP+4",
            severity="warning",
            column="postal_code",
        ),
        matches("language", BCP47, "language is a BCP 47 tag", severity="warning"),
    ]


def _encounters() -> list[Check]:
    def bounded(_: DeriveContext) -> pl.Expr:
        start, end = pl.col("period_start"), pl.col("period_end")
        return pl.when(start.is_not_null() & end.is_not_null()).then(
            (end - start) <= pl.lit(LONGEST_ENCOUNTER)
        )

    return [
        in_set("status", ENCOUNTER_STATUS, what="FHIR EncounterStatus"),
        in_set("class_code", ENCOUNTER_CLASS, severity="warning", what="v3 ActEncounterCode"),
        snomed_codes("type_system", "type_code"),
        snomed_codes("reason_system", "reason_code"),
        ordered("period_start", "period_end"),
        derived_true(
            "encounter_at_most_a_year",
            ("period_start", "period_end"),
            bounded,
            f"an encounter lasts at most {LONGEST_ENCOUNTER.days} days",
            severity="warning",
            column="period_start,period_end",
        ),
        not_in_future("period_start"),
    ]


def _conditions() -> list[Check]:
    return [
        in_set("clinical_status", CONDITION_CLINICAL, what="FHIR condition-clinical"),
        in_set("verification_status", CONDITION_VERIFICATION, what="FHIR condition-ver-status"),
        derived_true(
            "abated_condition_not_active",
            ("abatement_datetime", "clinical_status"),
            lambda _: pl.when(
                pl.col("abatement_datetime").is_not_null() & pl.col("clinical_status").is_not_null()
            ).then(pl.col("clinical_status").is_in(list(CONDITION_ABATED_CLINICAL))),
            "an abated condition is inactive, in remission or resolved (FHIR con-4)",
            column="clinical_status",
        ),
        in_set("category", CONDITION_CATEGORY, severity="warning", what="condition-category"),
        snomed_codes(),
        icd10cm_codes(),
        ordered("onset_datetime", "abatement_datetime"),
        not_in_future("onset_datetime"),
        not_in_future("recorded_date"),
    ]


def _observations() -> list[Check]:
    return [
        in_set("status", OBSERVATION_STATUS, what="FHIR ObservationStatus"),
        in_set("category", OBSERVATION_CATEGORY, severity="warning", what="observation-category"),
        loinc_codes(),
        snomed_codes("value_system", "value_code"),
        matches("value_unit", UCUM_UNIT, "value_unit is a UCUM expression", severity="warning"),
        expected_units(),
        plausible_values(),
        not_in_future("effective_datetime"),
    ]


def _medication_requests() -> list[Check]:
    return [
        in_set("status", MEDREQ_STATUS, what="FHIR medicationrequest-status"),
        in_set("intent", MEDREQ_INTENT, what="FHIR medicationrequest-intent"),
        rxnorm_codes("medication_system", "medication_code"),
        not_in_future("authored_on"),
    ]


def _procedures() -> list[Check]:
    return [
        in_set("status", PROCEDURE_STATUS, what="FHIR EventStatus"),
        snomed_codes(),
        ordered("performed_start", "performed_end"),
        not_in_future("performed_start"),
    ]


def _immunizations() -> list[Check]:
    return [
        in_set("status", IMMUNIZATION_STATUS, what="FHIR immunization-status"),
        cvx_codes("vaccine_system", "vaccine_code"),
        not_in_future("occurrence_datetime"),
    ]


def _consents() -> list[Check]:
    return [
        in_set("status", CONSENT_STATUS, what="FHIR consent-state-codes"),
        in_set("scope", CONSENT_SCOPE, severity="warning", what="FHIR consent-scope"),
        in_set("provision_type", CONSENT_PROVISION_TYPE, what="FHIR consent-provision-type"),
        ordered("provision_start", "provision_end"),
        not_null(
            "date_time",
            severity="warning",
            description="every consent says when it was recorded (the latest decides)",
        ),
        not_in_future("date_time"),
    ]


_SPECIFIC = {
    "patients": _patients,
    "encounters": _encounters,
    "conditions": _conditions,
    "observations": _observations,
    "medication_requests": _medication_requests,
    "procedures": _procedures,
    "immunizations": _immunizations,
    "consents": _consents,
}


def silver_references(table: str) -> tuple[str, ...]:
    """The silver tables one silver table's references point into."""
    if table == "patients":
        return ()
    if table in ("encounters", "consents"):
        return (PATIENTS,)
    return (PATIENTS, ENCOUNTERS)


def silver_suite(table: str) -> Suite:
    """The suite of one silver EHR table."""
    checks = _keys(table)
    refs = silver_references(table)
    if refs:
        checks += _subject(table, encounter=ENCOUNTERS in refs)
    checks += _SPECIFIC[table]()
    checks += _provenance()
    return Suite(f"silver/ehr/{table}", silver_columns(table), tuple(checks), refs)
