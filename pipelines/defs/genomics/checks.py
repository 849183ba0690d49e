"""Quality gates of the genomics silo: a Great Expectations suite per table and the share of
quarantined VCF records.

Every check is blocking, as in the EHR silo: a failed bronze check stops silver, a failed
silver check stops the research views, a failed view check stops the catalog.
"""

import dagster as dg
import polars as pl

from pipelines import genomics
from pipelines.checks import domain_of, suite_check
from pipelines.resources import LakeResource
from quality.rejects import REJECT_THRESHOLDS, reject_ratio
from quality.suites import SUITE_TABLES


@dg.asset_check(
    asset=dg.AssetKey(["bronze", "genomics", "vcf_files"]),
    name="reject_ratio",
    blocking=True,
    description="Share of quarantined VCF records across the genomics feed, against the "
    "threshold in quality/rejects.py.",
)
def vcf_reject_ratio(lake: LakeResource) -> dg.AssetCheckResult:
    threshold = REJECT_THRESHOLDS[genomics.FILES_PATH]
    ledger = lake.lake().read(genomics.FILES_PATH).select(
        "source_file",
        (pl.col("records") - pl.col("rejected")).alias("records"),
        pl.col("rejected").alias("rejects"),
    )
    result = reject_ratio(ledger, threshold)
    return dg.AssetCheckResult(
        passed=result.status != "fail",
        severity=dg.AssetCheckSeverity.ERROR
        if result.status == "fail"
        else dg.AssetCheckSeverity.WARN,
        description=f"{result.rejects} of {result.records + result.rejects} VCF records "
        f"quarantined ({result.ratio:.2%}); warn above {threshold.warn_ratio:.2%}, fail above "
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


suite_checks = [suite_check(table) for table in SUITE_TABLES if domain_of(table) == "genomics"]
