"""Quality gates of the consent table: its Great Expectations suite (blocking: no research
view is built from a broken consent table) and a review of the trial withdrawals."""

import dagster as dg
import polars as pl

from mcp_catalog.governance.consent import consent_withdrawn, trial_consent_events
from pipelines import consent
from pipelines.checks import domain_of, suite_check
from pipelines.resources import LakeResource
from quality.suites import SUITE_TABLES

SUBJECT_WITHDRAWALS: tuple[str, ...] = ("WITHDRAWAL BY SUBJECT", "WITHDRAWAL BY PARENT/GUARDIAN")
"""NCOMPLT terms (C66727) for a subject who left the study: a consent withdrawal only when
the record also says consent."""


@dg.asset_check(
    asset=dg.AssetKey(consent.CONSENTS_PATH.split("/")),
    name="ds_withdrawals",
    additional_deps=[dg.AssetKey(consent.TRIAL_DS_PATH.split("/"))],
    description="Every SDTM disposition record that says consent was withdrawn is a deny in "
    "the consent table (fails otherwise); subjects who left a study without a record saying "
    "consent (WITHDRAWAL BY SUBJECT or BY PARENT/GUARDIAN alone) stay in the trial views and "
    "are counted for review (warns).",
)
def ds_withdrawals(lake: LakeResource) -> dg.AssetCheckResult:
    store = lake.lake()
    ds = consent.read_source(store, consent.TRIAL_DS_PATH)
    if ds is None:
        return dg.AssetCheckResult(passed=True, description="the lake has no disposition records")
    linked = ds.filter(pl.col("link_status") == "linked", pl.col("person_key").is_not_null())
    withdrawn = linked.filter(consent_withdrawn(), pl.col("studyid").is_not_null())
    decod = pl.col("dsdecod").str.strip_chars().str.to_uppercase()
    left_study = linked.filter(decod.is_in(list(SUBJECT_WITHDRAWALS)), ~consent_withdrawn())
    denials = consent.read_consents(store).filter(pl.col("basis") == "consent_withdrawn")
    expected = trial_consent_events(ds).filter(pl.col("basis") == "consent_withdrawn")
    missing = expected.join(denials.select("consent_id"), on="consent_id", how="anti").height
    if missing:
        severity, passed = dg.AssetCheckSeverity.ERROR, False
        description = f"{missing} consent withdrawals are not denials in the consent table"
    elif left_study.height:
        severity, passed = dg.AssetCheckSeverity.WARN, False
        description = (
            f"{left_study.height} subjects left a study without a record saying consent was "
            "withdrawn: they stay in the trial views; review their disposition records"
        )
    else:
        severity, passed = dg.AssetCheckSeverity.WARN, True
        description = f"{withdrawn.height} consent withdrawals, all applied"
    return dg.AssetCheckResult(
        passed=passed,
        severity=severity,
        description=description,
        metadata={
            "consent_withdrawals": withdrawn.height,
            "not_applied": missing,
            "left_study_without_consent_withdrawal": left_study.height,
            "studies": withdrawn.get_column("studyid").n_unique(),
        },
    )


suite_checks = [suite_check(table) for table in SUITE_TABLES if domain_of(table) == "consent"]
