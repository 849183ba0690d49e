"""Quality gates of the EHR silo: a Great Expectations suite per table and the reject ratio.

Every check is blocking: a failed bronze check stops silver, a failed silver check stops the
gold views it feeds, and a failed gold check (an identifier in a research view, say) stops
the catalog, so the MCP server keeps serving the last good manifest.
"""

import dagster as dg

from pipelines.defs.ehr.assets import FILES_PATH, REJECTS_PATH
from pipelines.lineage import quality_event
from pipelines.quality_record import record_result
from pipelines.resources import LakeResource
from quality.rejects import REJECT_THRESHOLDS, reject_ratio
from quality.suites import SUITE_TABLES, references_for
from quality.validation import DataDocs, validate_table

LAKE_PATHS = {"bronze/ehr/rejects": REJECTS_PATH}
"""Suite names whose table lives elsewhere in the lake."""

DATA_DOCS_PATH = "_quality/gx"


def lake_path(table: str) -> str:
    """Where a suite's table lives in the lake."""
    return LAKE_PATHS.get(table, table)


def _suite_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(table.split("/")),
        name="quality_suite",
        blocking=True,
        description=f"Great Expectations suite of {table}: keys, code systems and "
        "check digits, value ranges, date order, references, identifiers.",
    )
    def _check(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        store = lake.lake()
        path = lake_path(table)
        version = store.version(path)
        if version is None:
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"{path} does not exist",
            )
        references = {r: store.read(lake_path(r)) for r in references_for(table)}
        result = validate_table(
            table,
            store.read(path),
            references=references,
            docs=DataDocs(store.local_path(DATA_DOCS_PATH)),
        )
        record_result(store, result, table=path, delta_version=version, run_id=context.run.run_id)
        quality_event(
            context,
            store,
            job=f"{table.replace('/', '.')}.quality_suite",
            path=path,
            quality={
                "row_count": result.rows,
                "assertions": [(o.expectation, o.success, o.column) for o in result.outcomes],
            },
        )
        failed = [
            f"{o.severity}: {o.description} ({o.unexpected_count} rows)"
            for o in (*result.errors, *result.warnings)
        ]
        return dg.AssetCheckResult(
            passed=result.success,
            severity=dg.AssetCheckSeverity.ERROR,
            description="; ".join(failed[:10]) or "all expectations met",
            metadata={
                "rows": result.rows,
                "delta_version": version,
                "expectations": len(result.outcomes),
                "failed_errors": len(result.errors),
                "failed_warnings": len(result.warnings),
            },
        )

    return _check


@dg.asset_check(
    asset=dg.AssetKey(["bronze", "ehr", "files"]),
    name="reject_ratio",
    blocking=True,
    description="Share of quarantined FHIR records across the EHR feed, against the "
    "threshold in quality/rejects.py.",
)
def ehr_reject_ratio(lake: LakeResource) -> dg.AssetCheckResult:
    threshold = REJECT_THRESHOLDS[FILES_PATH]
    result = reject_ratio(lake.lake().read(FILES_PATH), threshold)
    return dg.AssetCheckResult(
        passed=result.status != "fail",
        severity=dg.AssetCheckSeverity.ERROR
        if result.status == "fail"
        else dg.AssetCheckSeverity.WARN,
        description=f"{result.rejects} of {result.records + result.rejects} records quarantined "
        f"({result.ratio:.2%}); warn above {threshold.warn_ratio:.2%}, fail above "
        f"{threshold.fail_ratio:.2%}",
        metadata={
            "records": result.records,
            "rejects": result.rejects,
            "ratio": result.ratio,
            "status": result.status,
            "worst_files": dg.MetadataValue.json(
                [{"source_file": f, "records": n, "rejects": r} for f, n, r in result.worst_files]
            ),
        },
    )


suite_checks = [_suite_check(table) for table in SUITE_TABLES]
