"""Consent silo-wide: FHIR Consent and SDTM disposition records -> ``silver/consent/consents``.

What counts as a decision, and which decision wins, is defined once in
``mcp_catalog.governance.consent``; this module reads the sources from the lake (either may
not exist yet: a lake without a trials feed has no DS table) and summarises a build.
"""

from dataclasses import dataclass

import polars as pl

from mcp_catalog.governance.consent import CONSENT_SCHEMA, consent_events
from pipelines.lake import Lake

CONSENTS_PATH = "silver/consent/consents"
FHIR_CONSENTS_PATH = "silver/ehr/consents"
TRIAL_DS_PATH = "silver/trials/ds"
SOURCE_PATHS: tuple[str, ...] = (FHIR_CONSENTS_PATH, TRIAL_DS_PATH)
KEY: tuple[str, ...] = ("consent_id",)


@dataclass(frozen=True)
class ConsentBuild:
    """The unified table and what went into it."""

    table: pl.DataFrame
    """Rows of ``CONSENT_SCHEMA``, one per source record that is a consent decision."""
    fhir_records: int
    """FHIR Consent records read."""
    unlinked_fhir_records: int
    """FHIR Consents of a patient the crosswalk does not know: they govern nobody."""
    ds_records: int
    """SDTM DS records read."""

    def count(self, **equal: str) -> int:
        """Rows whose columns equal the given values (``count(decision="deny")``)."""
        frame = self.table
        for column, value in equal.items():
            frame = frame.filter(pl.col(column) == value)
        return frame.height


def read_source(store: Lake, path: str) -> pl.DataFrame | None:
    """A source table, or None while it does not exist."""
    return store.read(path) if store.table(path) is not None else None


def build_consents(
    fhir_consents: pl.DataFrame | None, trial_ds: pl.DataFrame | None
) -> ConsentBuild:
    """The unified consent table from the two silver sources.

    Args:
        fhir_consents: ``silver/ehr/consents`` or None.
        trial_ds: ``silver/trials/ds`` or None.

    Returns:
        The table and counts of what was read.

    Raises:
        ValueError: when a source lacks a column or two records share a ``consent_id``.
    """
    table = consent_events(fhir_consents, trial_ds)
    fhir = fhir_consents if fhir_consents is not None else pl.DataFrame()
    return ConsentBuild(
        table=table.select(list(CONSENT_SCHEMA)),
        fhir_records=fhir.height,
        unlinked_fhir_records=(
            fhir.get_column("person_key").null_count() if "person_key" in fhir.columns else 0
        ),
        ds_records=trial_ds.height if trial_ds is not None else 0,
    )


def build_from_lake(store: Lake) -> ConsentBuild:
    """:func:`build_consents` over the lake's current source tables."""
    return build_consents(read_source(store, FHIR_CONSENTS_PATH), read_source(store, TRIAL_DS_PATH))


class ConsentTableMissingError(RuntimeError):
    """The research views were asked for before the consent table exists."""


def read_consents(store: Lake) -> pl.DataFrame:
    """The unified consent table.

    Raises:
        ConsentTableMissingError: while it does not exist (no view is built without it).
    """
    if store.table(CONSENTS_PATH) is None:
        raise ConsentTableMissingError(
            f"{CONSENTS_PATH} does not exist yet: materialise it (asset "
            f"{CONSENTS_PATH}) before the research views and their consent table"
        )
    return store.read(CONSENTS_PATH)
