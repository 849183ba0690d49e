"""Identity suites: the restricted person crosswalk, which links every source identifier of every
silo to one person, and its quarantine of identities that could not be linked.

The codes restate ``pipelines.ehr`` (quality may not import pipelines); a test holds the two
equal.
"""

import polars as pl

from quality.suites._checks import (
    compound_unique,
    derived_true,
    exact_columns,
    in_set,
    matches,
    not_null,
    sha256_hex,
)
from quality.suites._model import Check, Suite
from quality.suites.bronze import CROSSWALK_COLUMNS, PERSON_KEY

CROSSWALK_PATH = "restricted/person_crosswalk"
CONFLICTS_TABLE = "restricted/identity_conflicts"
"""The quarantine's suite name: its asset key, as ``bronze/ehr/rejects`` names the FHIR
quarantine."""
CONFLICTS_PATH = "_rejects/identity/crosswalk"
"""Where the pipeline stores the quarantine's rows."""

CONFLICT_COLUMNS: tuple[str, ...] = (
    "source_system",
    "identifier_type",
    "identifier_sha256",
    "reason",
    "source",
    "locator",
    "source_sha256",
    "ingested_at",
)
"""``pipelines.ehr.CONFLICT_SCHEMA``."""

TYPES_OF_SYSTEM: dict[str, tuple[str, ...]] = {
    "ehr": ("fhir_patient_id", "mrn"),
    "lab": ("lab_patient_id",),
    "imaging": ("dicom_patient_id",),
    "genomics": ("vcf_sample_id",),
    "trials": ("usubjid",),
}
"""The identifier types each silo's source systems hold (``lab:<SITE>`` and
``trials:<STUDYID>`` are systems of the lab and trials silos)."""
IDENTIFIER_TYPES: tuple[str, ...] = tuple(t for types in TYPES_OF_SYSTEM.values() for t in types)

RULES_OF_TYPE: dict[str, tuple[str, ...]] = {
    "fhir_patient_id": ("ehr_patient", "ehr_mrn"),
    "mrn": ("ehr_patient",),
    "lab_patient_id": ("lab_index_mrn",),
    "vcf_sample_id": ("sample_manifest_mrn",),
    "dicom_patient_id": ("ris_order_mrn",),
    "usubjid": ("enrolment_mrn",),
}
"""The link rules (``pipelines.ehr.LINK_RULES``) that may link each identifier type."""
LINK_RULES: tuple[str, ...] = tuple(dict.fromkeys(r for rs in RULES_OF_TYPE.values() for r in rs))

CONFLICT_REASONS: tuple[str, ...] = (
    "unknown_mrn",
    "claimed_by_two_people",
    "linked_to_another_person",
    "mrn_shared_by_two_people",
)
"""``pipelines.ehr.CONFLICT_REASONS``."""

SOURCE_SYSTEM = r"^(?:ehr|imaging|genomics|(?:lab|trials):\S(?:[^\x00-\x1f]*\S)?)$"
"""``ehr``, ``imaging``, ``genomics``, ``lab:<SITE>`` or ``trials:<STUDYID>``. A site is named
as its feed names it, and an HL7 sending facility may hold spaces (``NIST Lab Facility``)."""


def silo_of(source_system: pl.Expr) -> pl.Expr:
    """The silo of a source system (``lab:SITE-A01`` -> ``lab``)."""
    return source_system.str.split(":").list.first()


def _type_fits_system() -> pl.Expr:
    silo = silo_of(pl.col("source_system"))
    fits = pl.lit(False)
    for system, types in TYPES_OF_SYSTEM.items():
        fits = fits | ((silo == system) & pl.col("identifier_type").is_in(types))
    return fits


def _rule_fits_type() -> pl.Expr:
    fits = pl.lit(False)
    for kind, rules in RULES_OF_TYPE.items():
        fits = fits | ((pl.col("identifier_type") == kind) & pl.col("link_rule").is_in(rules))
    return fits


def _identity_columns() -> list[Check]:
    return [
        not_null("source_system"),
        matches(
            "source_system",
            SOURCE_SYSTEM,
            "source_system is ehr, imaging, genomics, lab:<SITE> or trials:<STUDYID>",
        ),
        not_null("identifier_type"),
        in_set("identifier_type", IDENTIFIER_TYPES, what="identifier type"),
        derived_true(
            "identifier_type_of_its_system",
            ("source_system", "identifier_type"),
            lambda _: _type_fits_system(),
            "each identifier type belongs to its source system's silo",
            column="source_system,identifier_type",
        ),
    ]


def crosswalk_suite() -> Suite:
    """The restricted person crosswalk: every source identifier linked to one person, by a
    known rule, and every person an EHR person."""
    one_person = (
        pl.col("person_key").n_unique().over("source_system", "identifier_type", "identifier") == 1
    )
    ehr_people = pl.col("person_key").filter(pl.col("source_system") == "ehr").implode()
    checks = [
        exact_columns(CROSSWALK_COLUMNS, "the person crosswalk"),
        *_identity_columns(),
        not_null("identifier"),
        compound_unique(("source_system", "identifier_type", "identifier")),
        not_null("person_key"),
        matches("person_key", PERSON_KEY, "person_key is a 32-hex random key"),
        derived_true(
            "fhir_patient_id_one_person",
            ("source_system", "identifier_type", "identifier", "person_key"),
            lambda _: pl.when(pl.col("identifier_type") == "fhir_patient_id").then(one_person),
            "each fhir_patient_id maps to exactly one person_key",
            column="identifier,person_key",
        ),
        derived_true(
            "person_known_to_the_ehr",
            ("source_system", "person_key"),
            lambda _: pl.col("person_key").is_in(ehr_people),
            "every person_key is a person of the EHR (other silos link through its MRNs)",
            column="person_key",
        ),
        not_null("link_rule"),
        in_set("link_rule", LINK_RULES, what="link rule"),
        derived_true(
            "link_rule_of_its_identifier_type",
            ("identifier_type", "link_rule"),
            lambda _: _rule_fits_type(),
            "each row's link rule is one that links its identifier type",
            column="identifier_type,link_rule",
        ),
        not_null("linked_at"),
    ]
    return Suite(CROSSWALK_PATH, CROSSWALK_COLUMNS, tuple(checks))


def crosswalk_conflicts_suite() -> Suite:
    """The identities quarantined instead of linked: where each row is and why, the
    identifier as a digest only."""
    checks = [
        exact_columns(CONFLICT_COLUMNS, "the identity quarantine"),
        *_identity_columns(),
        *sha256_hex("identifier_sha256"),
        not_null("reason"),
        in_set("reason", CONFLICT_REASONS, what="identity conflict"),
        not_null("source"),
        not_null("locator", description="locator says where in its source each row is"),
        compound_unique(
            ("source_system", "identifier_type", "identifier_sha256", "source", "locator")
        ),
        *sha256_hex(),
        not_null("ingested_at"),
    ]
    return Suite(CONFLICTS_TABLE, CONFLICT_COLUMNS, tuple(checks))


IDENTITY_SUITES = {CROSSWALK_PATH: crosswalk_suite, CONFLICTS_TABLE: crosswalk_conflicts_suite}
"""The identity suites by table (``quality.suite_tables.IDENTITY_SUITE_TABLES``): the crosswalk
and its quarantine, both written by the ``person_crosswalk`` multi-asset."""
