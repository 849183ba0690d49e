"""Quality gates of the EHR silo: a Great Expectations suite per table and the reject ratio.

Every check is blocking: a failed bronze check stops silver, a failed silver check stops the
gold views it feeds, and a failed gold check (an identifier in a research view, say) stops
the catalog, so the MCP server keeps serving the last good manifest.
"""

import dagster as dg

from pipelines.checks import domain_of, suite_check
from pipelines.defs.ehr.assets import FILES_PATH
from pipelines.resources import LakeResource
from quality.rejects import REJECT_THRESHOLDS, reject_ratio
from quality.suites import SUITE_TABLES


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


suite_checks = [suite_check(table) for table in SUITE_TABLES if domain_of(table) == "ehr"]
