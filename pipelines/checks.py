"""The quality-suite gate every domain puts on its tables: a blocking Great Expectations
check per table that has a suite, recorded in the lake and in the lineage."""

import dagster as dg
import polars as pl

from pipelines.lineage import quality_event
from pipelines.quality_record import record_result
from pipelines.resources import LakeResource
from quality.rejects import REJECT_THRESHOLDS, reject_ratio
from quality.suites import references_for
from quality.validation import DataDocs, validate_table

GOLD_DOMAINS: dict[str, str] = {
    "gold/research/variant_frequencies": "genomics",
    "gold/research/genotypes": "genomics",
    "gold/research/imaging_studies": "imaging",
    "gold/research/imaging_series": "imaging",
    "gold/research/imaging_instances": "imaging",
    "gold/research/lab_results": "lab",
    "gold/research/trial_subjects": "trials",
    "gold/research/trial_adverse_events": "trials",
    "gold/research/trial_lab_results": "trials",
}
"""Research views that belong to a silo other than the EHR."""

LAKE_PATHS = {
    "bronze/ehr/rejects": "_rejects/ehr/fhir",
    "bronze/genomics/rejects": "_rejects/genomics/vcf",
    "bronze/imaging/rejects": "_rejects/imaging/dicom",
    "bronze/lab/rejects": "_rejects/lab/results",
    "restricted/identity_conflicts": "_rejects/identity/crosswalk",
}
"""Suite names (asset keys) whose table lives elsewhere in the lake."""

DATA_DOCS_PATH = "_quality/gx"


def lake_path(table: str) -> str:
    """Where a suite's table lives in the lake."""
    return LAKE_PATHS.get(table, table)


def suite_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(table.split("/")),
        name="quality_suite",
        blocking=True,
        # The tables its references are checked against must be there first.
        additional_deps=[dg.AssetKey(r.split("/")) for r in references_for(table)],
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


def domain_of(table: str) -> str:
    """The clinical domain whose definitions carry a table's suite check."""
    for domain in ("genomics", "imaging", "lab", "trials"):
        if f"/{domain}/" in table:
            return domain
    return GOLD_DOMAINS.get(table, "ehr")


def reject_ratio_result(ledger_path: str, ledger: pl.DataFrame, what: str) -> dg.AssetCheckResult:
    """The reject-ratio gate of a feed: passes below the fail ratio, warns above the warn one.

    Args:
        ledger_path: the feed's file ledger, which keys its threshold in quality/rejects.py.
        ledger: rows with ``source_file``, ``records`` (read) and ``rejects``.
        what: what a record is, for the description ("FHIR records", "VCF records").
    """
    threshold = REJECT_THRESHOLDS[ledger_path]
    result = reject_ratio(ledger, threshold)
    return dg.AssetCheckResult(
        passed=result.status != "fail",
        severity=dg.AssetCheckSeverity.ERROR
        if result.status == "fail"
        else dg.AssetCheckSeverity.WARN,
        description=f"{result.rejects} of {result.records + result.rejects} {what} quarantined "
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
