"""Quality gates of the trials silo: the SDTM conformance findings as one check per rule,
a Great Expectations suite per table, and the share of datasets that could not be read.

A finding of severity ``error`` fails its rule's check, a ``warning`` only warns. The rules
that break a row's identity (a subject twice in DM, a sequence number used twice within a
subject, rows filed under the wrong domain) block silver: such rows would overwrite each
other there. The others (a required value missing, a date that is not ISO 8601, a subject
missing from DM) fail or warn visibly and let the data through, as real transfers carry
them: the rows are still whole in bronze and their record_json.
"""

import dagster as dg
import polars as pl

from connectors.sdtm import RULES
from pipelines import trials
from pipelines.checks import domain_of, reject_ratio_result, suite_check
from pipelines.resources import LakeResource
from quality.suites import SUITE_TABLES


@dg.asset_check(
    asset=dg.AssetKey(["bronze", "trials", "files"]),
    name="reject_ratio",
    blocking=True,
    description="Share of SDTM datasets that could not be read, against the threshold in "
    "quality/rejects.py.",
)
def trials_reject_ratio(lake: LakeResource) -> dg.AssetCheckResult:
    ledger = lake.lake().read(trials.FILES_PATH).select(
        "source_file",
        (1 - pl.col("rejects")).alias("records"),
        "rejects",
    )
    return reject_ratio_result(trials.FILES_PATH, ledger, "SDTM datasets")


KEY_RULES = ("usubjid_not_unique_in_dm", "seq_not_unique", "domain_mismatch")
"""Rules whose errors block silver: rows breaking them cannot be told apart by their key."""


def conformance_check(rule: str) -> dg.AssetChecksDefinition:
    """The check of one SDTM conformance rule over every landed study."""
    blocking = rule in KEY_RULES

    @dg.asset_check(
        asset=dg.AssetKey(["bronze", "trials", "findings"]),
        name=f"sdtm_{rule}",
        blocking=blocking,
        description=f"SDTM conformance rule {rule}: fails on a finding of severity error, "
        "warns on warnings only"
        + (", and blocks the silver trial tables" if blocking else "")
        + ".",
    )
    def _check(lake: LakeResource) -> dg.AssetCheckResult:
        findings = (
            lake.lake()
            .read(trials.FINDINGS_PATH)
            .filter(pl.col("rule").cast(pl.String) == rule)
        )
        errors = findings.filter(pl.col("severity").cast(pl.String) == "error")
        by_dataset = (
            findings.group_by("source_file", "variable")
            .agg(pl.col("rows").sum())
            .sort("source_file", "variable", nulls_last=True)
        )
        rows = int(findings.get_column("rows").sum()) if findings.height else 0
        return dg.AssetCheckResult(
            passed=findings.is_empty(),
            severity=dg.AssetCheckSeverity.ERROR
            if errors.height
            else dg.AssetCheckSeverity.WARN,
            description=(
                "no dataset breaks the rule"
                if findings.is_empty()
                else f"{findings.height} findings over {rows} rows in "
                f"{findings.get_column('source_file').n_unique()} datasets"
            ),
            metadata={
                "findings": findings.height,
                "errors": errors.height,
                "rows": rows,
                "datasets": dg.MetadataValue.json(
                    [
                        {"source_file": f, "variable": v, "rows": n}
                        for f, v, n in by_dataset.head(50).iter_rows()
                    ]
                ),
            },
        )

    return _check


conformance_checks = [conformance_check(rule) for rule in RULES]

suite_checks = [suite_check(table) for table in SUITE_TABLES if domain_of(table) == "trials"]
