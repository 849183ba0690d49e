"""Gold suites: the research views, checked for keys, pseudonyms and leaked identifiers.

``quality`` may not import ``mcp_catalog``, so the views' columns are restated here; a test
holds them equal to ``mcp_catalog.governance.views.RESEARCH_VIEWS``. Privacy checks are
errors: a column outside the view's declared set, a value shaped like an MRN or a FHIR id
(UUID), a birth year for someone aged 90 or more, a ZIP code longer than three digits.
"""

from dataclasses import dataclass

import polars as pl

from quality.suites._checks import (
    MRN_LIKE,
    UUID_LIKE,
    cvx_codes,
    derived_true,
    exact_columns,
    icd10cm_codes,
    in_set,
    loinc_codes,
    matches,
    not_null,
    ordered,
    references,
    rxnorm_codes,
    snomed_codes,
    unique,
)
from quality.suites._model import Check, DeriveContext, Suite
from quality.valuesets import (
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    ENCOUNTER_STATUS,
    GENDER,
    IMMUNIZATION_STATUS,
    MEDREQ_INTENT,
    MEDREQ_STATUS,
    OBSERVATION_STATUS,
    PROCEDURE_STATUS,
)

AUDIENCE = "research"
PATIENTS = "gold/research/patients"
ENCOUNTERS = "gold/research/encounters"

PSEUDONYM_HEX = 20
"""Hex characters a pseudonym keeps (``mcp_catalog.governance.deid.keyed_hash``)."""

FORBIDDEN_COLUMNS: tuple[str, ...] = (
    "id",
    "mrn",
    "family_name",
    "given_name",
    "address_line",
    "city",
    "postal_code",
    "birth_date",
    "deceased_datetime",
    "person_key",
    "patient_id",
    "encounter_id",
    "resource_json",
    "source_file",
    "source_locator",
    "dosage_text",
    "value_string",
)
"""Silver columns no research view may carry: direct identifiers, free text, provenance."""


@dataclass(frozen=True)
class GoldView:
    """What quality needs to know of one research view."""

    name: str
    columns: tuple[str, ...]
    record_prefix: str | None
    """Pseudonym tag of ``record_key`` (None for patients, keyed by person)."""


def _coded(prefix: str) -> tuple[str, ...]:
    return (f"{prefix}system", f"{prefix}code", f"{prefix}display")


_EVENT = ("record_key", "person_pseudonym", "encounter_key")

GOLD_VIEWS: tuple[GoldView, ...] = (
    GoldView(
        "patients",
        (
            "person_pseudonym",
            "birth_year",
            "age_90_plus",
            "gender",
            "race",
            "ethnicity",
            "state",
            "zip3",
            "marital_status",
            "language",
            "deceased",
            "death_date",
        ),
        None,
    ),
    GoldView(
        "encounters",
        (
            "record_key",
            "person_pseudonym",
            "status",
            "class_code",
            *_coded("type_"),
            "period_start",
            "period_end",
            *_coded("reason_"),
        ),
        "E",
    ),
    GoldView(
        "conditions",
        (
            *_EVENT,
            "clinical_status",
            "verification_status",
            "category",
            *_coded(""),
            "onset_datetime",
            "abatement_datetime",
            "recorded_date",
        ),
        "C",
    ),
    GoldView(
        "observations",
        (
            *_EVENT,
            "status",
            "category",
            *_coded(""),
            "effective_datetime",
            "value_quantity",
            "value_unit",
            *_coded("value_"),
            "interpretation",
        ),
        "O",
    ),
    GoldView(
        "medication_requests",
        (*_EVENT, "status", "intent", *_coded("medication_"), "authored_on"),
        "M",
    ),
    GoldView(
        "procedures",
        (*_EVENT, "status", *_coded(""), "performed_start", "performed_end"),
        "R",
    ),
    GoldView(
        "immunizations",
        (*_EVENT, "status", *_coded("vaccine_"), "occurrence_datetime"),
        "I",
    ),
)
"""The research views, in ``RESEARCH_VIEWS`` order."""


def _pseudonym_format(column: str, prefix: str) -> Check:
    return matches(
        column,
        rf"^{prefix}-[0-9a-f]{{{PSEUDONYM_HEX}}}$",
        f"{column} is a keyed pseudonym ({prefix}- and {PSEUDONYM_HEX} hex characters)",
    )


def _no_values_like(name: str, pattern: str, what: str) -> Check:
    def expression(context: DeriveContext) -> pl.Expr:
        # Every text column actually present, including any that should not be there.
        text = [c for c, dtype in context.schema.items() if dtype == pl.String]
        if not text:
            return pl.lit(True)
        return ~pl.any_horizontal(pl.col(c).str.contains(pattern).fill_null(False) for c in text)

    return derived_true(
        f"no_{name}_like_values",
        (),
        expression,
        f"no text value looks like {what}",
        column=None,
    )


def _privacy(view: GoldView) -> list[Check]:
    return [
        exact_columns(view.columns, f"the research view {view.name} (no identifiers)"),
        _no_values_like("mrn", MRN_LIKE, "an MRN"),
        _no_values_like("uuid", UUID_LIKE, "a UUID (a FHIR id of the EHR)"),
    ]


def _patients() -> list[Check]:
    def under_90_if_year_shown(context: DeriveContext) -> pl.Expr:
        # Born in year Y means aged at least (this year - Y - 1): above 89 the year must go.
        year = pl.col("birth_year")
        return pl.when(year.is_not_null()).then(year >= context.now.year - 90)

    def year_plausible(context: DeriveContext) -> pl.Expr:
        year = pl.col("birth_year")
        return pl.when(year.is_not_null()).then(year.is_between(1880, context.now.year))

    return [
        not_null("person_pseudonym"),
        unique("person_pseudonym"),
        _pseudonym_format("person_pseudonym", "P"),
        in_set("gender", GENDER, what="FHIR AdministrativeGender"),
        not_null("age_90_plus"),
        derived_true(
            "birth_year_hidden_at_90",
            ("age_90_plus", "birth_year"),
            lambda _: pl.when(pl.col("age_90_plus")).then(pl.col("birth_year").is_null()),
            "birth_year is empty for people aged 90 or more",
            column="birth_year",
        ),
        derived_true(
            "birth_year_under_90",
            ("birth_year",),
            under_90_if_year_shown,
            "every birth_year shown is at most 90 years ago (ages over 89 are hidden)",
            column="birth_year",
        ),
        derived_true(
            "birth_year_plausible",
            ("birth_year",),
            year_plausible,
            "birth_year is between 1880 and this year",
            severity="warning",
            column="birth_year",
        ),
        matches("zip3", r"^[0-9]{3}$", "zip3 is three digits"),
        not_null("deceased"),
        derived_true(
            "death_date_means_deceased",
            ("death_date", "deceased"),
            lambda _: pl.when(pl.col("death_date").is_not_null()).then(pl.col("deceased")),
            "a person with a death_date is deceased",
            column="deceased",
        ),
    ]


def _event_keys(view: GoldView) -> list[Check]:
    checks = [
        not_null("record_key"),
        unique("record_key"),
        _pseudonym_format("record_key", view.record_prefix or ""),
        not_null("person_pseudonym"),
        _pseudonym_format("person_pseudonym", "P"),
        references("person_pseudonym", PATIENTS, "person_pseudonym"),
    ]
    if "encounter_key" in view.columns:
        checks += [
            _pseudonym_format("encounter_key", "E"),
            references("encounter_key", ENCOUNTERS, "record_key", severity="warning"),
        ]
    return checks


_CLINICAL = {
    "encounters": lambda: [
        in_set("status", ENCOUNTER_STATUS, what="FHIR EncounterStatus"),
        snomed_codes("type_system", "type_code"),
        snomed_codes("reason_system", "reason_code"),
        ordered("period_start", "period_end"),
    ],
    "conditions": lambda: [
        in_set("clinical_status", CONDITION_CLINICAL, what="FHIR condition-clinical"),
        in_set("verification_status", CONDITION_VERIFICATION, what="FHIR condition-ver-status"),
        snomed_codes(),
        icd10cm_codes(),
        ordered("onset_datetime", "abatement_datetime"),
    ],
    "observations": lambda: [
        in_set("status", OBSERVATION_STATUS, what="FHIR ObservationStatus"),
        loinc_codes(),
        snomed_codes("value_system", "value_code"),
    ],
    "medication_requests": lambda: [
        in_set("status", MEDREQ_STATUS, what="FHIR medicationrequest-status"),
        in_set("intent", MEDREQ_INTENT, what="FHIR medicationrequest-intent"),
        rxnorm_codes("medication_system", "medication_code"),
    ],
    "procedures": lambda: [
        in_set("status", PROCEDURE_STATUS, what="FHIR EventStatus"),
        snomed_codes(),
        ordered("performed_start", "performed_end"),
    ],
    "immunizations": lambda: [
        in_set("status", IMMUNIZATION_STATUS, what="FHIR immunization-status"),
        cvx_codes("vaccine_system", "vaccine_code"),
    ],
}


def gold_references(name: str) -> tuple[str, ...]:
    """The gold tables one research view's pseudonyms point into."""
    if name == "patients":
        return ()
    if name == "encounters":
        return (PATIENTS,)
    return (PATIENTS, ENCOUNTERS)


def gold_suite(name: str) -> Suite:
    """The suite of one research view."""
    view = next(v for v in GOLD_VIEWS if v.name == name)
    checks = _privacy(view)
    checks += _patients() if name == "patients" else [*_event_keys(view), *_CLINICAL[name]()]
    return Suite(f"gold/{AUDIENCE}/{name}", view.columns, tuple(checks), gold_references(name))
