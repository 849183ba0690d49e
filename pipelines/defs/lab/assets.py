"""Lab silo: LIS CSV exports and HL7 v2 ORU feeds -> bronze (per source file) -> one conformed
silver table of results (LOINC, UCUM) linked to person_key -> de-identified research view."""

from datetime import UTC, datetime

import dagster as dg

from mcp_catalog.governance.lab import LAB_VIEWS
from pipelines import ehr, lab
from pipelines.crosswalk_links import CONFLICTS_PATH
from pipelines.lineage import asset_lineage, table_input, table_output
from pipelines.manifest_asset import ManifestFeed, land_manifest
from pipelines.metadata import freshness_policy, write_metadata
from pipelines.research import CROSSWALK_PATH, research_view_asset
from pipelines.resources import LakeResource, LandingResource
from quality.lineage import LineageDataset
from quality.report.lab_mapping import markdown_table

GROUP = "lab"

BRONZE_PATHS = {
    "results": lab.RESULTS_PATH,
    "messages": lab.MESSAGES_PATH,
    "rejects": lab.REJECTS_PATH,
    "files": lab.FILES_PATH,
}


@dg.multi_asset(
    group_name=GROUP,
    specs=[
        dg.AssetSpec(
            ["bronze", "lab", "results"],
            freshness_policy=freshness_policy(lab.RESULTS_PATH),
            description="One row per lab result as the source sent it (an LIS export row or "
            "an HL7 OBX with its order context), with provenance. Restricted: holds lab "
            "patient ids.",
        ),
        dg.AssetSpec(
            ["bronze", "lab", "messages"],
            freshness_policy=freshness_policy(lab.MESSAGES_PATH),
            description="One row per HL7 v2 message read: control id, type, version, sender, "
            "time and how many results it gave or had quarantined.",
        ),
        dg.AssetSpec(
            ["bronze", "lab", "rejects"],
            freshness_policy=freshness_policy("bronze/lab/rejects"),
            description="Quarantined lab records and files: file, locator (line or MSH-10 "
            "and OBX) and reason (never a value).",
        ),
        dg.AssetSpec(
            ["bronze", "lab", "files"],
            freshness_policy=freshness_policy(lab.FILES_PATH),
            description="Ledger of ingested lab files: path, sha256, size, record and reject "
            "counts; an unchanged file is not read again.",
        ),
    ],
)
def bronze_lab(context: dg.AssetExecutionContext, lake: LakeResource, landing: LandingResource):
    """Reads new or changed lab files from ``landing/lab`` and replaces their rows in bronze."""
    store = lake.lake()
    run_id = context.run.run_id
    folder = landing.silo("lab")
    files = lab.scan_landing(folder)
    ledger = store.read(lab.FILES_PATH) if store.table(lab.FILES_PATH) is not None else None
    changed_landed = ehr.changed_files([f.landed for f in files], ledger)
    changed = [f for f in files if f.landed in changed_landed]
    context.log.info(f"{len(files)} lab files, {len(changed)} new or changed")
    sources = [
        LineageDataset(uri=str(f.landed.path.resolve()), version=f.landed.sha256) for f in files
    ]
    results = []
    with asset_lineage(
        context, store, job="bronze.lab", inputs=sources, outputs=list(BRONZE_PATHS.values())
    ) as run:
        batch = lab.read_bronze(changed, folder, ingested_at=datetime.now(UTC))
        lab.ensure_tables(store, lab.BRONZE_SCHEMAS, run_id=run_id)
        for name in ("results", "messages"):
            path = BRONZE_PATHS[name]
            outcome = store.replace_sources(
                path, batch.tables[name], batch.changed_sources, run_id=run_id
            )
            results.append((name, write_metadata(outcome, store.row_count(path))))
        outcome = store.replace_sources(
            lab.REJECTS_PATH,
            batch.rejects,
            batch.changed_sources,
            run_id=run_id,
            source_column="source",
        )
        results.append(
            (
                "rejects",
                write_metadata(
                    outcome,
                    store.row_count(lab.REJECTS_PATH),
                    rejects_this_run=batch.rejects.height,
                ),
            )
        )
        ledger_rows = ehr.ledger_update([f.landed for f in files], ledger, batch)
        outcome = (
            store.merge(
                lab.FILES_PATH, ledger_rows, ["source_file"], run_id=run_id, delete_missing=False
            )
            if ledger_rows.height
            else store.unchanged(lab.FILES_PATH)
        )
        results.append(
            (
                "files",
                write_metadata(
                    outcome, store.row_count(lab.FILES_PATH), files_changed=len(changed)
                ),
            )
        )
        run.outputs = [table_output(store, p) for p in BRONZE_PATHS.values()]
    if batch.rejects.height:
        context.log.warning(
            f"{batch.rejects.height} lab records quarantined; their reasons are in "
            f"{lab.REJECTS_PATH}"
        )
    for name, metadata in results:
        yield dg.MaterializeResult(asset_key=["bronze", "lab", name], metadata=metadata)


INDEX_FEED = ManifestFeed(
    name=lab.INDEX_NAME,
    table=lab.INDEX_PATH,
    rejects_table=lab.INDEX_REJECTS_PATH,
    key=lab.INDEX_KEY,
    columns=lab.INDEX_TABLE_COLUMNS,
    read=lab.read_patient_index,
    missing="Land each lab's patient index (site, lab_patient_id, mrn) beside the lab files "
    "as patient_index.csv, or generate a cohort with `biofed synth --out landing`.",
)


@dg.asset(
    key=["bronze", "lab", "patient_index"],
    group_name=GROUP,
    freshness_policy=freshness_policy(lab.INDEX_PATH),
    description="Each lab's patient index: the EHR MRN of every lab patient id, per site. "
    "Restricted: holds identifiers.",
    owners=["team:data-stewards"],
)
def lab_patient_index(
    context: dg.AssetExecutionContext, lake: LakeResource, landing: LandingResource
) -> dg.MaterializeResult:
    folder = landing.silo("lab")
    return land_manifest(
        context, lake.lake(), folder, INDEX_FEED, data_landed=bool(lab.scan_landing(folder))
    )


_SILVER_DEPS = [
    dg.AssetKey(["bronze", "lab", "results"]),
    dg.AssetKey(["bronze", "lab", "patient_index"]),
    dg.AssetKey(CROSSWALK_PATH.split("/")),
    dg.AssetKey(["restricted", "identity_conflicts"]),
]


@dg.multi_asset(
    group_name=GROUP,
    specs=[
        dg.AssetSpec(
            ["silver", "lab", "lab_results"],
            deps=_SILVER_DEPS,
            automation_condition=dg.AutomationCondition.eager(),
            freshness_policy=freshness_policy(lab.SILVER_PATH),
            description="One row per lab result across every CSV and HL7 source: the LOINC "
            "code (reported, or mapped from the site's local code with the map's version), "
            "the value in the analyte's one UCUM unit beside the value and unit as sent, and "
            "person_key through the lab's patient index. A corrected or final result "
            "replaces the preliminary one.",
        ),
        dg.AssetSpec(
            ["silver", "lab", "mapping_report"],
            deps=_SILVER_DEPS,
            automation_condition=dg.AutomationCondition.eager(),
            freshness_policy=freshness_policy(lab.REPORT_PATH),
            description="Per site: local codes no map knows, LOINC codes that fail their check "
            "digit, and units that are not UCUM or cannot be converted, with row counts. "
            "Such results stay in silver, flagged.",
        ),
    ],
)
def silver_lab(context: dg.AssetExecutionContext, lake: LakeResource):
    """Conforms every bronze result (LOINC, UCUM), links it and writes the mapping report."""
    store = lake.lake()
    inputs = [
        table_input(store, p)
        for p in (lab.RESULTS_PATH, lab.INDEX_PATH, CROSSWALK_PATH, CONFLICTS_PATH)
        if store.table(p) is not None
    ]
    outputs = [lab.SILVER_PATH, lab.REPORT_PATH]
    index = (
        store.read(lab.INDEX_PATH) if store.table(lab.INDEX_PATH) is not None else lab.empty_index()
    )
    with asset_lineage(context, store, job="silver.lab", inputs=inputs, outputs=outputs) as run:
        build = lab.build_silver(
            store, index, store.read(CROSSWALK_PATH), run_id=context.run.run_id
        )
        run.outputs = [table_output(store, p) for p in outputs]
    unlinked = build.rows - build.link_counts["linked"]
    if unlinked:
        context.log.warning(
            f"{unlinked} of {build.rows} lab results are not linked to a person: "
            + ", ".join(f"{s} {n}" for s, n in build.link_counts.items() if s != "linked")
        )
    if build.issues.height:
        context.log.warning(
            f"{build.issues.height} mapping issues (unmapped codes, unknown units) over "
            f"{build.issues.get_column('rows').sum()} results; see {lab.REPORT_PATH}"
        )
    summary = dg.MetadataValue.md(markdown_table(build.summary))
    issues = dg.MetadataValue.md(markdown_table(build.issues))
    links = {f"results_{status}": n for status, n in build.link_counts.items()}
    yield dg.MaterializeResult(
        asset_key=["silver", "lab", "lab_results"],
        metadata=write_metadata(
            build.results,
            build.rows,
            superseded_results=build.superseded,
            mapping_by_site=summary,
            mapping_issues=issues,
            **links,
        ),
    )
    yield dg.MaterializeResult(
        asset_key=["silver", "lab", "mapping_report"],
        metadata=write_metadata(
            build.report, build.issues.height, mapping_by_site=summary, mapping_issues=issues
        ),
    )


gold_assets = [
    research_view_asset(
        spec, empty_without_sources=True, automation_condition=dg.AutomationCondition.eager()
    )
    for spec in LAB_VIEWS
]
