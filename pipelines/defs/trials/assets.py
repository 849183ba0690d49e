"""Trials silo: SDTM study transfers -> bronze per domain, conformance findings, variable
metadata -> silver per domain linked to person_key through the enrolment map -> research views
(subjects, adverse events, lab results) with the arm hidden while a study is blinded."""

from datetime import UTC, datetime

import dagster as dg

from mcp_catalog.governance.trials import TRIAL_VIEWS
from pipelines import trials
from pipelines.crosswalk_links import CONFLICTS_PATH
from pipelines.lab import ensure_tables
from pipelines.lineage import asset_lineage, table_input, table_output
from pipelines.manifest_asset import ManifestFeed, land_manifest
from pipelines.metadata import freshness_policy, write_metadata
from pipelines.research import CROSSWALK_PATH, research_view_asset
from pipelines.resources import LakeResource, LandingResource
from quality.lineage import LineageDataset

GROUP = "trials"

_DOMAIN_NAMES = {
    "dm": "Demographics",
    "ae": "Adverse Events",
    "lb": "Laboratory Test Results",
    "vs": "Vital Signs",
    "ex": "Exposure",
    "ds": "Disposition",
    "cm": "Concomitant Medications",
    "mh": "Medical History",
}

BRONZE_PATHS: dict[str, str] = {
    **{d: trials.bronze_path(d) for d in trials.DOMAINS},
    "other_domains": trials.OTHER_PATH,
    "findings": trials.FINDINGS_PATH,
    "variables": trials.VARIABLES_PATH,
    "files": trials.FILES_PATH,
    "rejects": trials.REJECTS_PATH,
}


@dg.multi_asset(
    group_name=GROUP,
    specs=[
        *[
            dg.AssetSpec(
                ["bronze", "trials", d],
                freshness_policy=freshness_policy(trials.bronze_path(d)),
                description=f"SDTM {d.upper()} ({_DOMAIN_NAMES[d]}) of every landed study, "
                "conformed to the SDTMIG variables (lower-case names; absent ones null), "
                "every original variable kept in record_json, with provenance. Restricted: "
                "holds subject identifiers.",
            )
            for d in trials.DOMAINS
        ],
        dg.AssetSpec(
            ["bronze", "trials", "other_domains"],
            freshness_policy=freshness_policy(trials.OTHER_PATH),
            description="Rows of SDTM domains without a typed table (TS, SUPPQUAL, ...), each "
            "whole as JSON, so that nothing landed is dropped.",
        ),
        dg.AssetSpec(
            ["bronze", "trials", "findings"],
            freshness_policy=freshness_policy(trials.FINDINGS_PATH),
            description="SDTM conformance findings of each dataset: rule, severity, variable, "
            "how many rows and the first one (never a value).",
        ),
        dg.AssetSpec(
            ["bronze", "trials", "variables"],
            freshness_policy=freshness_policy(trials.VARIABLES_PATH),
            description="Variable metadata of every dataset as the file declares it: name, "
            "label, type, length and position.",
        ),
        dg.AssetSpec(
            ["bronze", "trials", "files"],
            freshness_policy=freshness_policy(trials.FILES_PATH),
            description="Ledger of ingested SDTM datasets: path, sha256, size, rows and "
            "whether the file was quarantined.",
        ),
        dg.AssetSpec(
            ["bronze", "trials", "rejects"],
            freshness_policy=freshness_policy("bronze/trials/rejects"),
            description="SDTM datasets that could not be read: file and reason.",
        ),
    ],
)
def bronze_trials(context: dg.AssetExecutionContext, lake: LakeResource, landing: LandingResource):
    """Reads every study folder with a new or changed dataset, whole, into bronze."""
    store = lake.lake()
    run_id = context.run.run_id
    folder = landing.silo("trials")
    studies = trials.scan_landing(folder)
    ledger = store.read(trials.FILES_PATH) if store.table(trials.FILES_PATH) is not None else None
    changed = trials.changed_studies(studies, ledger)
    context.log.info(f"{len(studies)} study folders, {len(changed)} new or changed")
    sources = [
        LineageDataset(uri=str(f.path.resolve()), version=f.sha256)
        for s in studies
        for f in s.files
    ]
    metadata: dict[str, dict] = {}
    with asset_lineage(
        context, store, job="bronze.trials", inputs=sources, outputs=list(BRONZE_PATHS.values())
    ) as run:
        read = trials.read_bronze(changed, ingested_at=datetime.now(UTC))
        ensure_tables(store, trials.bronze_schemas(), run_id=run_id)
        # Files no longer landed (a dataset or a whole study folder removed) lose their rows.
        replaced = sorted(set(read.changed_sources) | trials.gone_sources(ledger, studies))
        frames = {
            **read.domains,
            "other_domains": read.other,
            "findings": read.findings,
            "variables": read.variables,
        }
        for name, frame in frames.items():
            path = BRONZE_PATHS[name]
            outcome = store.replace_sources(path, frame, replaced, run_id=run_id)
            metadata[name] = write_metadata(outcome, store.row_count(path))
        outcome = store.replace_sources(
            trials.REJECTS_PATH, read.rejects, replaced, run_id=run_id, source_column="source"
        )
        metadata["rejects"] = write_metadata(
            outcome, store.row_count(trials.REJECTS_PATH), rejects_this_run=read.rejects.height
        )
        outcome = (
            store.merge(
                trials.FILES_PATH,
                trials.ledger_after(ledger, read.ledger, replaced),
                ["source_file"],
                run_id=run_id,
            )
            if replaced
            else store.unchanged(trials.FILES_PATH)
        )
        metadata["files"] = write_metadata(
            outcome, store.row_count(trials.FILES_PATH), studies_changed=len(changed)
        )
        run.outputs = [table_output(store, p) for p in BRONZE_PATHS.values()]
    if read.rejects.height:
        context.log.warning(
            f"{read.rejects.height} SDTM datasets could not be read; their reasons are in "
            f"{trials.REJECTS_PATH}"
        )
    findings = read.findings.height
    if findings:
        context.log.warning(
            f"{findings} SDTM conformance findings in the changed studies; see "
            f"{trials.FINDINGS_PATH} and the checks on it"
        )
    for name, values in metadata.items():
        yield dg.MaterializeResult(asset_key=["bronze", "trials", name], metadata=values)


ENROLMENT_FEED = ManifestFeed(
    name=trials.ENROLMENT_NAME,
    table=trials.ENROLMENT_PATH,
    rejects_table=trials.ENROLMENT_REJECTS_PATH,
    key=trials.ENROLMENT_KEY,
    columns=trials.ENROLMENT_TABLE_COLUMNS,
    read=trials.read_enrolment,
    missing="Land the enrolment map (studyid, usubjid, site, mrn) as "
    "landing/trials/enrolment.csv, or generate a cohort with `biofed synth --out landing`. "
    "Subjects of studies it does not list stay unlinked.",
)


@dg.asset(
    key=["bronze", "trials", "enrolment"],
    group_name=GROUP,
    freshness_policy=freshness_policy(trials.ENROLMENT_PATH),
    description="The enrolment map from the trial management system: the EHR MRN of every "
    "study subject (USUBJID). Restricted: holds identifiers.",
    owners=["team:data-stewards"],
)
def trial_enrolment(
    context: dg.AssetExecutionContext, lake: LakeResource, landing: LandingResource
) -> dg.MaterializeResult:
    # Public or historic studies land without a map; their subjects stay unlinked, so the
    # map is not required beside the data.
    return land_manifest(
        context, lake.lake(), landing.silo("trials"), ENROLMENT_FEED, data_landed=False
    )


_SILVER_DEPS = [
    *[dg.AssetKey(["bronze", "trials", d]) for d in trials.DOMAINS],
    dg.AssetKey(["bronze", "trials", "enrolment"]),
    # Conformance errors (checks on the findings) block silver: such rows cannot be keyed.
    dg.AssetKey(["bronze", "trials", "findings"]),
    dg.AssetKey(CROSSWALK_PATH.split("/")),
    dg.AssetKey(["restricted", "identity_conflicts"]),
]


@dg.multi_asset(
    group_name=GROUP,
    specs=[
        dg.AssetSpec(
            ["silver", "trials", d],
            deps=_SILVER_DEPS,
            automation_condition=dg.AutomationCondition.eager(),
            freshness_policy=freshness_policy(trials.silver_path(d)),
            description=f"SDTM {d.upper()} ({_DOMAIN_NAMES[d]}): one row per "
            + ("subject" if d == "dm" else "subject and sequence number")
            + " across every study, linked to person_key through the enrolment map "
            "(link_status says how).",
        )
        for d in trials.DOMAINS
    ],
)
def silver_trials(context: dg.AssetExecutionContext, lake: LakeResource):
    """Builds every silver domain table from bronze; commits nothing when unchanged."""
    store = lake.lake()
    enrolment = (
        store.read(trials.ENROLMENT_PATH)
        if store.table(trials.ENROLMENT_PATH) is not None
        else trials.empty_enrolment()
    )
    crosswalk = store.read(CROSSWALK_PATH)
    inputs = [
        table_input(store, p)
        for p in (
            *(trials.bronze_path(d) for d in trials.DOMAINS),
            trials.ENROLMENT_PATH,
            CROSSWALK_PATH,
            CONFLICTS_PATH,
        )
        if store.table(p) is not None
    ]
    outputs = [trials.silver_path(d) for d in trials.DOMAINS]
    builds = {}
    with asset_lineage(context, store, job="silver.trials", inputs=inputs, outputs=outputs) as run:
        for d in trials.DOMAINS:
            builds[d] = trials.build_silver_domain(
                store, d, enrolment, crosswalk, run_id=context.run.run_id
            )
        run.outputs = [table_output(store, p) for p in outputs]
    for d, build in builds.items():
        if build.without_key:
            context.log.warning(
                f"{build.without_key} {d.upper()} rows lack a subject or sequence number and "
                f"stay in bronze only; see the conformance findings"
            )
        yield dg.MaterializeResult(
            asset_key=["silver", "trials", d],
            metadata=write_metadata(
                build.outcome,
                build.rows,
                superseded_rows=build.superseded,
                rows_without_key=build.without_key,
                **{f"rows_{s}": n for s, n in build.link_counts.items()},
            ),
        )


gold_assets = [
    research_view_asset(
        spec, empty_without_sources=True, automation_condition=dg.AutomationCondition.eager()
    )
    for spec in TRIAL_VIEWS
]
