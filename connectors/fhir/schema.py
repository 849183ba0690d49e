"""Typed columns per FHIR R4 resource type, with their descriptions.

One source of truth: the descriptions flow to Dagster column metadata, the catalog and the
MCP tool descriptions. Every table also carries ``resource_json`` (the full resource as read)
and the provenance columns ``source_file`` and ``source_locator``.
"""

from dataclasses import dataclass

import polars as pl

UTC_DATETIME = pl.Datetime("us", "UTC")

ADMINISTRATIVE_GENDER = pl.Enum(["male", "female", "other", "unknown"])


@dataclass(frozen=True)
class Column:
    """One typed column: its name, polars dtype and a one-line description."""

    name: str
    dtype: pl.DataType
    description: str


def _id(kind: str) -> Column:
    return Column("id", pl.String(), f"FHIR logical id of the {kind}.")


_PATIENT_REF = Column("patient_id", pl.String(), "FHIR id of the patient this record is about.")
_ENCOUNTER_REF = Column("encounter_id", pl.String(), "FHIR id of the encounter, if any.")


def _coded(prefix: str, what: str) -> list[Column]:
    return [
        Column(f"{prefix}system", pl.String(), f"Code system URI of the {what}."),
        Column(f"{prefix}code", pl.String(), f"Code of the {what} in that system."),
        Column(f"{prefix}display", pl.String(), f"Display text of the {what} code."),
    ]


PROVENANCE: list[Column] = [
    Column("source_file", pl.String(), "File the resource was read from."),
    Column(
        "source_locator",
        pl.String(),
        "Where in the file: line:N (NDJSON), entry:N (Bundle; nested as entry:3/entry:0) "
        "or resource (a single-resource JSON file).",
    ),
    Column("resource_json", pl.String(), "The full resource as read, serialised as JSON."),
]

RESOURCE_COLUMNS: dict[str, list[Column]] = {
    "Patient": [
        _id("patient"),
        Column(
            "mrn",
            pl.String(),
            "Medical record number (identifier typed MR), else the first identifier.",
        ),
        Column("family_name", pl.String(), "Official family name."),
        Column("given_name", pl.String(), "Official given names, space separated."),
        Column("gender", ADMINISTRATIVE_GENDER, "Administrative gender."),
        Column("birth_date", pl.Date(), "Date of birth."),
        Column("deceased", pl.Boolean(), "Whether the patient is known to have died."),
        Column("deceased_datetime", UTC_DATETIME, "Time of death, if recorded."),
        Column("address_line", pl.String(), "First line of the home address."),
        Column("city", pl.String(), "City of the home address."),
        Column("state", pl.String(), "State or province of the home address."),
        Column("postal_code", pl.String(), "Postal code of the home address."),
        Column("country", pl.String(), "Country of the home address."),
        Column("race", pl.String(), "US Core race (OMB category display)."),
        Column("ethnicity", pl.String(), "US Core ethnicity (OMB category display)."),
        Column("marital_status", pl.String(), "Marital status code (v3 MaritalStatus)."),
        Column("language", pl.String(), "Preferred language code."),
    ],
    "Encounter": [
        _id("encounter"),
        _PATIENT_REF,
        Column("status", pl.String(), "Encounter status (finished, in-progress, ...)."),
        Column("class_code", pl.String(), "Encounter class (AMB, EMER, IMP, ...; v3 ActCode)."),
        *_coded("type_", "encounter type"),
        Column("period_start", UTC_DATETIME, "Start of the encounter."),
        Column("period_end", UTC_DATETIME, "End of the encounter."),
        *_coded("reason_", "first reason for the encounter"),
    ],
    "Condition": [
        _id("condition"),
        _PATIENT_REF,
        _ENCOUNTER_REF,
        Column("clinical_status", pl.String(), "Clinical status (active, resolved, ...)."),
        Column("verification_status", pl.String(), "Verification status (confirmed, ...)."),
        Column("category", pl.String(), "Category code (encounter-diagnosis, problem-list-item)."),
        *_coded("", "condition (SNOMED CT, ICD-10-CM)"),
        Column("onset_datetime", UTC_DATETIME, "Onset of the condition."),
        Column("abatement_datetime", UTC_DATETIME, "When the condition abated, if it did."),
        Column("recorded_date", UTC_DATETIME, "When the condition was recorded."),
    ],
    "Observation": [
        _id("observation"),
        _PATIENT_REF,
        _ENCOUNTER_REF,
        Column("status", pl.String(), "Result status (final, amended, preliminary, ...)."),
        Column("category", pl.String(), "Category code (laboratory, vital-signs, survey, ...)."),
        *_coded("", "observation (LOINC)"),
        Column("effective_datetime", UTC_DATETIME, "Clinically relevant time of the observation."),
        Column("value_quantity", pl.Float64(), "Numeric value, when the result is a quantity."),
        Column(
            "value_unit",
            pl.String(),
            "UCUM unit code of the numeric value, else the unit text as sent.",
        ),
        *_coded("value_", "coded result"),
        Column("value_string", pl.String(), "Free-text result, when the value is a string."),
        Column("interpretation", pl.String(), "Interpretation code (H, L, N, ...)."),
    ],
    "MedicationRequest": [
        _id("medication request"),
        _PATIENT_REF,
        _ENCOUNTER_REF,
        Column("status", pl.String(), "Request status (active, completed, stopped, ...)."),
        Column("intent", pl.String(), "Request intent (order, plan, ...)."),
        *_coded("medication_", "medication (RxNorm)"),
        Column("authored_on", UTC_DATETIME, "When the prescription was written."),
        Column("dosage_text", pl.String(), "Free-text dosage instructions."),
    ],
    "Procedure": [
        _id("procedure"),
        _PATIENT_REF,
        _ENCOUNTER_REF,
        Column("status", pl.String(), "Procedure status (completed, ...)."),
        *_coded("", "procedure (SNOMED CT)"),
        Column("performed_start", UTC_DATETIME, "When the procedure started."),
        Column("performed_end", UTC_DATETIME, "When the procedure ended."),
    ],
    "Immunization": [
        _id("immunization"),
        _PATIENT_REF,
        _ENCOUNTER_REF,
        Column("status", pl.String(), "Immunization status (completed, not-done, ...)."),
        *_coded("vaccine_", "vaccine (CVX)"),
        Column("occurrence_datetime", UTC_DATETIME, "When the vaccine was given."),
    ],
    "Consent": [
        _id("consent"),
        _PATIENT_REF,
        Column("status", pl.String(), "Consent status (active, inactive, rejected, ...)."),
        Column(
            "scope",
            pl.String(),
            "Consent scope code (research, patient-privacy, treatment, adr).",
        ),
        Column("category_code", pl.String(), "First category code (LOINC 59284-0 and others)."),
        Column(
            "policy_uri",
            pl.String(),
            "Policy or protocol the consent refers to (policy URI, else the policyRule code).",
        ),
        Column("provision_type", pl.String(), "Base provision: permit or deny."),
        Column(
            "provision_purposes",
            pl.List(pl.String()),
            "Purpose-of-use codes of the provision (v3 PurposeOfUse).",
        ),
        Column("provision_start", UTC_DATETIME, "Start of the period the provision applies to."),
        Column("provision_end", UTC_DATETIME, "End of the period the provision applies to."),
        Column("date_time", UTC_DATETIME, "When the consent was recorded."),
    ],
}
"""Typed columns per supported resource type, before the provenance columns."""

OTHER_RESOURCE_COLUMNS: list[Column] = [
    Column("resource_type", pl.String(), "FHIR resource type."),
    Column("id", pl.String(), "FHIR logical id."),
    Column(
        "patient_id",
        pl.String(),
        "FHIR id of the patient (subject or patient reference), if any.",
    ),
]
"""Resource types without typed columns land here with their JSON kept whole."""

TABLE_NAMES: dict[str, str] = {
    "Patient": "patients",
    "Encounter": "encounters",
    "Condition": "conditions",
    "Observation": "observations",
    "MedicationRequest": "medication_requests",
    "Procedure": "procedures",
    "Immunization": "immunizations",
    "Consent": "consents",
}
"""Resource type to table name; every other type goes to ``other_resources``."""

OTHER_TABLE = "other_resources"


def table_schema(table: str) -> dict[str, pl.DataType]:
    """The polars schema of one connector table, provenance columns included.

    Args:
        table: a value of ``TABLE_NAMES`` or ``OTHER_TABLE``.

    Returns:
        Column name to dtype, in output order.

    Raises:
        KeyError: for an unknown table name.
    """
    return {c.name: c.dtype for c in table_columns(table)}


def table_columns(table: str) -> list[Column]:
    """The columns of one connector table, provenance included, in output order.

    Raises:
        KeyError: for an unknown table name.
    """
    if table == OTHER_TABLE:
        return [*OTHER_RESOURCE_COLUMNS, *PROVENANCE]
    by_table = {name: rtype for rtype, name in TABLE_NAMES.items()}
    return [*RESOURCE_COLUMNS[by_table[table]], *PROVENANCE]
