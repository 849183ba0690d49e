"""Quality gates of the imaging silo: a Great Expectations suite per table and the share of
quarantined DICOM files.

Every check is blocking, as in the other silos: a failed bronze check stops silver, a failed
silver check stops the research views, a failed view check stops the catalog.
"""

import dagster as dg
import polars as pl

from pipelines import imaging
from pipelines.checks import domain_of, reject_ratio_result, suite_check
from pipelines.resources import LakeResource
from quality.suites import SUITE_TABLES


@dg.asset_check(
    asset=dg.AssetKey(["bronze", "imaging", "batches"]),
    name="reject_ratio",
    blocking=True,
    description="Share of quarantined DICOM files across the imaging feed, against the "
    "threshold in quality/rejects.py.",
)
def dicom_reject_ratio(lake: LakeResource) -> dg.AssetCheckResult:
    ledger = lake.lake().read(imaging.BATCHES_PATH).select(
        pl.col("batch").alias("source_file"),
        pl.col("instances").alias("records"),
        pl.col("rejected").alias("rejects"),
    )
    return reject_ratio_result(imaging.BATCHES_PATH, ledger, "DICOM files")


suite_checks = [suite_check(table) for table in SUITE_TABLES if domain_of(table) == "imaging"]
