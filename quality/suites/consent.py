"""The consent suite: ``silver/consent/consents``, every silo's consent decisions in one table.

Severities follow who guarantees a property. biofed derives the decision, the scope of a
trial record, the basis and the record key, and links each decision to a known person: a
failure there is a bug of the pipeline and an error, because every research view is built
from this table. What a source system sent (a FHIR status outside the code list, a
provision period upside down, a consent dated in the future, a record without a date) is a
warning.

The columns and closed code sets are restated from ``mcp_catalog.governance.consent``
(``quality`` may not import ``mcp_catalog``); tests hold them equal to the originals.
"""

import polars as pl

from quality.suites._checks import (
    derived_true,
    exact_columns,
    in_set,
    matches,
    not_in_future,
    not_null,
    ordered,
    references,
    unique,
)
from quality.suites._model import Check, Suite
from quality.suites.bronze import PERSON_KEY
from quality.valuesets import CONSENT_STATUS

CONSENTS = "silver/consent/consents"
CROSSWALK = "restricted/person_crosswalk"

CONSENT_COLUMNS: tuple[str, ...] = (
    "consent_id",
    "person_key",
    "scope",
    "study_id",
    "decision",
    "status",
    "provision_start",
    "provision_end",
    "recorded_at",
    "basis",
    "source_silo",
    "source_file",
    "source_locator",
)
"""``mcp_catalog.governance.consent.CONSENT_SCHEMA``, in order."""
DECISIONS: tuple[str, ...] = ("permit", "deny")
SOURCE_SILOS: tuple[str, ...] = ("ehr", "trials")
BASES: tuple[str, ...] = ("fhir_consent", "informed_consent_obtained", "consent_withdrawn")
TRIAL_SCOPE_PREFIX = "trial:"
CONSENT_ID = r"^(?:ehr:[A-Za-z0-9\-\.]{1,64}|trials:[^|]+\|[^|]+\|[^|]+)$"
"""``ehr:<FHIR id>`` or ``trials:<STUDYID>|<USUBJID>|<DSSEQ>``."""

_FROM_TRIALS = pl.col("source_silo") == "trials"


def _study_scope(_context) -> pl.Expr:
    """A trial row's scope is trial:<study_id>; a FHIR row has no study and a FHIR scope."""
    trial_scope = pl.concat_str(pl.lit(TRIAL_SCOPE_PREFIX), pl.col("study_id"))
    return (
        pl.when(pl.col("source_silo").is_null())
        .then(pl.lit(None, pl.Boolean()))
        .when(_FROM_TRIALS)
        .then(
            (pl.col("study_id").is_not_null() & (pl.col("scope") == trial_scope)).fill_null(False)
        )
        .otherwise(
            pl.col("study_id").is_null()
            & ~pl.col("scope").str.starts_with(TRIAL_SCOPE_PREFIX).fill_null(False)
        )
    )


def _basis_agrees(_context) -> pl.Expr:
    """FHIR rows are fhir_consent; a trial permit is the informed consent milestone and a
    trial deny a consent withdrawal."""
    basis, decision = pl.col("basis"), pl.col("decision")
    return (
        pl.when(basis.is_null() | decision.is_null() | pl.col("source_silo").is_null())
        .then(None)
        .when(_FROM_TRIALS)
        .then(
            ((basis == "informed_consent_obtained") & (decision == "permit"))
            | ((basis == "consent_withdrawn") & (decision == "deny"))
        )
        .otherwise(basis == "fhir_consent")
    )


def _checks() -> list[Check]:
    return [
        exact_columns(CONSENT_COLUMNS, "the consent table"),
        not_null("consent_id"),
        unique("consent_id"),
        matches(
            "consent_id",
            CONSENT_ID,
            "consent_id names its source record (ehr:<FHIR id> or trials:<STUDYID>|<USUBJID>|"
            "<DSSEQ>)",
        ),
        not_null("person_key", description="every decision is about a linked person"),
        matches("person_key", PERSON_KEY, "person_key is a 32-hex random key"),
        references("person_key", CROSSWALK, "person_key"),
        not_null("decision"),
        in_set("decision", DECISIONS, what="permit or deny"),
        in_set("source_silo", SOURCE_SILOS, what="source silo"),
        not_null("source_silo"),
        in_set("basis", BASES, what="decision basis"),
        not_null("scope", severity="warning", description="every decision names its scope"),
        derived_true(
            "scope_matches_study",
            ("source_silo", "scope", "study_id"),
            _study_scope,
            "a trial decision has a study and the scope trial:<study_id>; a FHIR decision has "
            "neither",
            column="scope",
        ),
        derived_true(
            "basis_matches_decision",
            ("source_silo", "basis", "decision"),
            _basis_agrees,
            "trial permits come from informed consent milestones and trial denials from "
            "consent withdrawals; FHIR rows from FHIR Consent",
            column="basis",
        ),
        in_set("status", CONSENT_STATUS, severity="warning", what="FHIR consent-state-codes"),
        ordered("provision_start", "provision_end", severity="warning"),
        not_null(
            "recorded_at",
            severity="warning",
            description="every decision says when it was made (undated refusals count as the "
            "latest, undated permits as the earliest)",
        ),
        not_in_future("recorded_at"),
        not_null("source_file"),
        not_null("source_locator"),
    ]


def consent_suite() -> Suite:
    """The suite of ``silver/consent/consents``."""
    return Suite(CONSENTS, CONSENT_COLUMNS, tuple(_checks()), (CROSSWALK,))


CONSENT_SUITES = {CONSENTS: consent_suite}
"""Table path to suite builder."""
