"""Expectation suites of every table, as plain data (Great Expectations is not imported).

One suite per table path: the EHR's bronze resources, file ledger, rejects, restricted person
crosswalk, silver resources and research views, then the genomics, imaging, lab and trials
silos' tables and the cross-silo consent table (their own modules). :func:`suite_for` gives
a table's :class:`Suite`; :mod:`quality.validation` runs it in Great Expectations.
"""

from functools import cache

from quality.suite_tables import SUITE_TABLES
from quality.suites._model import DERIVED_PREFIX, Check, DeriveContext, Derived, Suite
from quality.suites.bronze import (
    BRONZE_RESOURCE_TABLES,
    files_suite,
    rejects_suite,
    resource_suite,
)
from quality.suites.consent import CONSENT_SUITES
from quality.suites.genomics import GENOMICS_SUITES
from quality.suites.gold import GOLD_VIEWS, gold_suite
from quality.suites.identity import IDENTITY_SUITES
from quality.suites.imaging import IMAGING_SUITES
from quality.suites.lab import LAB_SUITES
from quality.suites.silver import SILVER_TABLES, silver_suite
from quality.suites.trials import TRIAL_SUITES


class UnknownTableError(KeyError):
    """No suite exists for the table path asked for."""

    def __init__(self, table: str) -> None:
        super().__init__(table)
        self.table = table

    def __str__(self) -> str:
        return (
            f"no expectation suite for {self.table!r}: use one of quality.suites.SUITE_TABLES "
            "(paths below the lake root, e.g. 'silver/ehr/observations')"
        )


@cache
def suite_for(table: str) -> Suite:
    """The expectation suite of one table.

    Args:
        table: a path of :data:`SUITE_TABLES` (the crosswalk and its quarantine,
            ``restricted/identity_conflicts``, are :data:`quality.suites.identity.IDENTITY_SUITES`).

    Returns:
        The suite (built once per process).

    Raises:
        UnknownTableError: (a ``KeyError``) for a path without a suite.
    """
    if table in IDENTITY_SUITES:
        return IDENTITY_SUITES[table]()
    if table not in SUITE_TABLES:
        raise UnknownTableError(table)
    if table in GENOMICS_SUITES:
        return GENOMICS_SUITES[table]()
    if table in IMAGING_SUITES:
        return IMAGING_SUITES[table]()
    if table in LAB_SUITES:
        return LAB_SUITES[table]()
    if table in TRIAL_SUITES:
        return TRIAL_SUITES[table]()
    if table in CONSENT_SUITES:
        return CONSENT_SUITES[table]()
    layer, _, name = table.rpartition("/")
    if table == "bronze/ehr/files":
        return files_suite()
    if table == "bronze/ehr/rejects":
        return rejects_suite()
    if layer == "bronze/ehr":
        return resource_suite(name)
    if layer == "silver/ehr":
        return silver_suite(name)
    return gold_suite(name)


def references_for(table: str) -> tuple[str, ...]:
    """The other tables a table's suite reads for referential integrity.

    Args:
        table: a path of :data:`SUITE_TABLES`.

    Returns:
        Table paths (possibly none), to pass as ``references`` to
        :func:`quality.validation.validate_table`.

    Raises:
        UnknownTableError: (a ``KeyError``) for a path without a suite.
    """
    return suite_for(table).references


__all__ = [
    "BRONZE_RESOURCE_TABLES",
    "DERIVED_PREFIX",
    "GOLD_VIEWS",
    "SILVER_TABLES",
    "SUITE_TABLES",
    "Check",
    "DeriveContext",
    "Derived",
    "Suite",
    "UnknownTableError",
    "references_for",
    "suite_for",
]
