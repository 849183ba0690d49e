"""Quality gates of the EHR silo: a Great Expectations suite per table and the reject ratio.

Every check is blocking: a failed bronze check stops silver, a failed silver check stops the
gold views it feeds, and a failed gold check (an identifier in a research view, say) stops
the catalog, so the MCP server keeps serving the last good manifest.
"""

import dagster as dg

from pipelines.checks import domain_of, reject_ratio_result, suite_check
from pipelines.defs.ehr.assets import FILES_PATH
from pipelines.resources import LakeResource
from quality.suites import SUITE_TABLES


@dg.asset_check(
    asset=dg.AssetKey(["bronze", "ehr", "files"]),
    name="reject_ratio",
    blocking=True,
    description="Share of quarantined FHIR records across the EHR feed, against the "
    "threshold in quality/rejects.py.",
)
def ehr_reject_ratio(lake: LakeResource) -> dg.AssetCheckResult:
    return reject_ratio_result(FILES_PATH, lake.lake().read(FILES_PATH), "records")


suite_checks = [suite_check(table) for table in SUITE_TABLES if domain_of(table) == "ehr"]
