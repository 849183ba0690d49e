"""Quality gates of the lab silo: a Great Expectations suite per table and the share of
quarantined lab records.

Every check is blocking, as in the other silos: a failed bronze check stops silver, a failed
silver check stops the research view, a failed view check stops the catalog.
"""

import dagster as dg

from pipelines import lab
from pipelines.checks import domain_of, reject_ratio_result, suite_check
from pipelines.resources import LakeResource
from quality.suites import SUITE_TABLES


@dg.asset_check(
    asset=dg.AssetKey(["bronze", "lab", "files"]),
    name="reject_ratio",
    blocking=True,
    description="Share of quarantined lab records (CSV rows, HL7 results and messages, whole "
    "files) across the lab feeds, against the threshold in quality/rejects.py.",
)
def lab_reject_ratio(lake: LakeResource) -> dg.AssetCheckResult:
    return reject_ratio_result(lab.FILES_PATH, lake.lake().read(lab.FILES_PATH), "lab records")


suite_checks = [suite_check(table) for table in SUITE_TABLES if domain_of(table) == "lab"]
