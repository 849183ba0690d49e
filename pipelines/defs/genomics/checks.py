"""Quality gates of the genomics silo: a Great Expectations suite per table and the share of
quarantined VCF records.

Every check is blocking, as in the EHR silo: a failed bronze check stops silver, a failed
silver check stops the research views, a failed view check stops the catalog.
"""

import dagster as dg
import polars as pl

from pipelines import genomics
from pipelines.checks import domain_of, reject_ratio_result, suite_check
from pipelines.resources import LakeResource
from quality.suites import SUITE_TABLES


@dg.asset_check(
    asset=dg.AssetKey(["bronze", "genomics", "vcf_files"]),
    name="reject_ratio",
    blocking=True,
    description="Share of quarantined VCF records across the genomics feed, against the "
    "threshold in quality/rejects.py.",
)
def vcf_reject_ratio(lake: LakeResource) -> dg.AssetCheckResult:
    ledger = lake.lake().read(genomics.FILES_PATH).select(
        "source_file",
        (pl.col("records") - pl.col("rejected")).alias("records"),
        pl.col("rejected").alias("rejects"),
    )
    return reject_ratio_result(genomics.FILES_PATH, ledger, "VCF records")


suite_checks = [suite_check(table) for table in SUITE_TABLES if domain_of(table) == "genomics"]
