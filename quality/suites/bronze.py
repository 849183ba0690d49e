"""Bronze suites: FHIR resources as read, the file ledger and rejects.

Bronze keeps every version of a resource (the same ``id`` may arrive in several files), so
its key is where the record came from: ``(source_file, source_locator)``. Clinical checks
belong to silver, where a resource is one row.
"""

from connectors.fhir.schema import OTHER_TABLE, TABLE_NAMES, table_columns
from quality.suites._checks import (
    compound_unique,
    exact_columns,
    matches,
    not_null,
    sha256_hex,
    unique,
)
from quality.suites._model import Check, Suite

INGEST_COLUMNS: tuple[str, ...] = ("source_sha256", "ingested_at")
"""Columns the pipeline adds to every bronze row (``pipelines.ehr.INGEST_COLUMNS``)."""
FILE_LEDGER_COLUMNS: tuple[str, ...] = (
    "source_file",
    "source_sha256",
    "bytes",
    "records",
    "rejects",
    "ingested_at",
    "source_modified_at",
)
"""``pipelines.ehr.FILE_LEDGER_SCHEMA``."""
REJECTS_COLUMNS: tuple[str, ...] = ("source", "locator", "reason", "source_sha256", "ingested_at")
"""``pipelines.ehr.REJECTS_SCHEMA``."""
CROSSWALK_COLUMNS: tuple[str, ...] = (
    "source_system",
    "identifier_type",
    "identifier",
    "person_key",
    "linked_at",
    "link_rule",
)
"""``pipelines.ehr.CROSSWALK_SCHEMA`` (its suite is ``quality.suites.identity``)."""

BRONZE_RESOURCE_TABLES: tuple[str, ...] = (*TABLE_NAMES.values(), OTHER_TABLE)

PERSON_KEY = r"^[0-9a-f]{32}$"
"""A person_key is a random UUID4 in hex: anything else was not minted by the crosswalk."""


def _provenance() -> list[Check]:
    return [
        not_null("source_file"),
        not_null("source_locator"),
        compound_unique(("source_file", "source_locator")),
        *sha256_hex(),
        not_null("ingested_at"),
    ]


def resource_suite(table: str) -> Suite:
    """The suite of one bronze resource table (``patients``, ..., ``other_resources``)."""
    columns = (*[c.name for c in table_columns(table)], *INGEST_COLUMNS)
    checks = [exact_columns(columns, f"bronze {table}"), not_null("id"), *_provenance()]
    if table == OTHER_TABLE:
        checks += [
            not_null("resource_type"),
            matches("resource_type", r"^[A-Z][A-Za-z]+$", "resource_type is a FHIR type name"),
        ]
    return Suite(f"bronze/ehr/{table}", columns, tuple(checks))


def files_suite() -> Suite:
    """The ledger of ingested landing files: one row per file path."""
    checks = [
        exact_columns(FILE_LEDGER_COLUMNS, "the file ledger"),
        not_null("source_file"),
        unique("source_file"),
        *sha256_hex(),
        *[
            Check(
                "expect_column_values_to_be_between",
                {"column": name, "min_value": 0},
                f"{name} is a count (not negative)",
                "error",
                name,
            )
            for name in ("bytes", "records", "rejects")
        ],
        not_null("ingested_at"),
        not_null("source_modified_at"),
    ]
    return Suite("bronze/ehr/files", FILE_LEDGER_COLUMNS, tuple(checks))


def rejects_suite() -> Suite:
    """Quarantined records: where they came from and why (never their values)."""
    checks = [
        exact_columns(REJECTS_COLUMNS, "the rejects ledger"),
        not_null("source"),
        not_null("reason"),
        not_null(
            "locator",
            severity="warning",
            description="locator says where in the file each reject was",
        ),
        *sha256_hex(),
        not_null("ingested_at"),
    ]
    return Suite("bronze/ehr/rejects", REJECTS_COLUMNS, tuple(checks))
