"""Data quality: expectation suites per dataset, freshness SLAs and reports.

Knows nothing of Dagster or MCP; Dagster asset checks in ``pipelines`` call into it.

Expectation suites (``quality.suites``) cover every EHR table: bronze resources, the file
ledger and rejects, the restricted person crosswalk, silver resources and the research
views. ``quality.validation.validate_table`` runs one in Great Expectations 1.x and returns
a ``quality.results.SuiteResult`` of counts, never values; ``quality.codes`` holds the LOINC
and SNOMED CT check-digit algorithms. Great Expectations is imported only when a validation
runs, and the names below are loaded on first use, so ``import quality`` stays cheap.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "SUITE_TABLES": "quality.suite_tables",
    "references_for": "quality.suites",
    "validate_table": "quality.validation",
    "DataDocs": "quality.validation",
    "SuiteResult": "quality.results",
    "ExpectationOutcome": "quality.results",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'quality' has no attribute {name!r}")
