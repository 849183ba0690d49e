"""Imaging silo: landed DICOM batches -> bronze instances (one dynamic partition per batch)
-> silver instances, series and studies linked to person_key and EHR encounters through the
RIS order export -> de-identified research views (PS3.15 Basic Profile)."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from connectors.errors import ConnectorError
from mcp_catalog.governance.imaging import IMAGING_VIEWS
from pipelines import imaging
from pipelines.crosswalk_links import CONFLICTS_PATH
from pipelines.lineage import asset_lineage, table_input, table_output
from pipelines.manifest_asset import ManifestFeed, land_manifest
from pipelines.metadata import freshness_policy, write_metadata
from pipelines.research import CROSSWALK_PATH, research_view_asset
from pipelines.resources import LakeResource, LandingResource
from pipelines.sensors import landing_sensor_result
from quality.lineage import LineageDataset

GROUP = "imaging"

dicom_batches = dg.DynamicPartitionsDefinition(name="dicom_batches")
"""One partition per landed batch: a folder or zip directly below ``landing/imaging``."""

BRONZE_KEYS = {
    "instances": imaging.INSTANCES_PATH,
    "batches": imaging.BATCHES_PATH,
    "rejects": imaging.REJECTS_PATH,
}


def _key(path: str) -> dg.AssetKey:
    return dg.AssetKey(path.split("/"))


def landed_batches(landing_root: str) -> list[str]:
    """The partition keys of the batches now in ``<landing_root>/imaging``."""
    return [p.name for p in imaging.scan_batches(Path(landing_root) / "imaging")]


@dg.multi_asset(
    group_name=GROUP,
    partitions_def=dicom_batches,
    specs=[
        dg.AssetSpec(
            ["bronze", "imaging", "instances"],
            freshness_policy=freshness_policy(imaging.INSTANCES_PATH),
            description="One row per DICOM file read: file hash and size, UIDs, SOP class, "
            "transfer syntax, about 50 key attributes typed, and the whole header as DICOM "
            "JSON (PS3.18) without pixel or bulk data. Restricted: holds identifiers.",
        ),
        dg.AssetSpec(
            ["bronze", "imaging", "batches"],
            freshness_policy=freshness_policy(imaging.BATCHES_PATH),
            description="One row per landed batch: a digest of its files' names, sizes and "
            "times (an unchanged batch is not read again), a digest of their content, and "
            "counts of files, instances and quarantined files.",
        ),
        dg.AssetSpec(
            ["bronze", "imaging", "rejects"],
            freshness_policy=freshness_policy("bronze/imaging/rejects"),
            description="Quarantined files of the DICOM batches: file, locator and reason "
            "(never a header value).",
        ),
    ],
)
def bronze_imaging(context: dg.AssetExecutionContext, lake: LakeResource, landing: LandingResource):
    """Reads one landed batch (this partition) into bronze, unless it is unchanged."""
    store = lake.lake()
    folder = landing.silo("imaging")
    name = context.partition_key
    path = folder / name
    if not path.exists():
        raise dg.Failure(
            f"{name} is no longer in {folder}. Land the batch again, or delete the partition "
            "in the Dagster UI if it was withdrawn (its rows stay in the lake until then)."
        )
    stamp = imaging.batch_stamp(path)
    if imaging.already_ingested(store, name, stamp):
        context.log.info(f"{name} is unchanged since it was ingested; nothing to write")
        for table, lake_path in BRONZE_KEYS.items():
            yield dg.MaterializeResult(
                asset_key=["bronze", "imaging", table],
                metadata=write_metadata(store.unchanged(lake_path), store.row_count(lake_path)),
            )
        return
    source = LineageDataset(uri=str(path.resolve()), version=stamp.stamp)
    with asset_lineage(
        context, store, job="bronze.imaging", inputs=[source], outputs=list(BRONZE_KEYS.values())
    ) as run:
        try:
            ingest = imaging.ingest_batch(
                store, path, name, run_id=context.run.run_id, ingested_at=datetime.now(UTC)
            )
        except ConnectorError as exc:
            raise dg.Failure(f"{name} could not be read: {exc}") from exc
        run.outputs = [table_output(store, p) for p in BRONZE_KEYS.values()]
    context.log.info(
        f"{name}: {ingest.files} files, {ingest.instances_read} instances, "
        f"{ingest.rejected} quarantined"
    )
    if ingest.rejected:
        context.log.warning(
            f"{ingest.rejected} files of {name} quarantined; their reasons are in "
            f"{imaging.REJECTS_PATH}"
        )
    outcomes = {"instances": ingest.instances, "batches": ingest.ledger, "rejects": ingest.rejects}
    for table, outcome in outcomes.items():
        yield dg.MaterializeResult(
            asset_key=["bronze", "imaging", table],
            metadata=write_metadata(
                outcome,
                store.row_count(BRONZE_KEYS[table]),
                files=ingest.files,
                instances_this_batch=ingest.instances_read,
                rejects_this_batch=ingest.rejected,
            ),
        )


ORDERS_FEED = ManifestFeed(
    name=imaging.ORDERS_NAME,
    table=imaging.ORDERS_PATH,
    rejects_table=imaging.ORDERS_REJECTS_PATH,
    key="accession_number",
    columns=imaging.ORDERS_TABLE_COLUMNS,
    read=imaging.read_orders,
    missing=f"Land the RIS order export ({', '.join(imaging.ORDER_COLUMNS)}) beside the "
    "DICOM batches, or generate a cohort with `biofed synth --out landing`.",
)


@dg.asset(
    key=["bronze", "imaging", "orders"],
    group_name=GROUP,
    freshness_policy=freshness_policy(imaging.ORDERS_PATH),
    description="The RIS order export: which patient (PACS PatientID and EHR MRN) and which "
    "EHR encounter each accession number belongs to. Restricted: holds identifiers.",
    owners=["team:data-stewards"],
)
def imaging_orders(
    context: dg.AssetExecutionContext, lake: LakeResource, landing: LandingResource
) -> dg.MaterializeResult:
    folder = landing.silo("imaging")
    return land_manifest(
        context,
        lake.lake(),
        folder,
        ORDERS_FEED,
        data_landed=bool(imaging.scan_batches(folder)),
    )


_SILVER_DEPS = [
    _key(imaging.INSTANCES_PATH),
    _key(imaging.ORDERS_PATH),
    _key(CROSSWALK_PATH),
    dg.AssetKey(["restricted", "identity_conflicts"]),
    _key(imaging.ENCOUNTERS_PATH),
]


@dg.multi_asset(
    group_name=GROUP,
    specs=[
        dg.AssetSpec(
            ["silver", "imaging", "dicom_instances"],
            deps=_SILVER_DEPS,
            automation_condition=dg.AutomationCondition.eager(),
            freshness_policy=freshness_policy(imaging.SILVER_INSTANCES_PATH),
            description="One row per SOP Instance UID across every batch (a later ingestion "
            "wins), linked to person_key and the EHR encounter through the RIS order of its "
            "accession number; link_status says how, and unlinked instances stay, counted.",
        ),
        dg.AssetSpec(
            ["silver", "imaging", "dicom_series"],
            deps=_SILVER_DEPS,
            automation_condition=dg.AutomationCondition.eager(),
            freshness_policy=freshness_policy(imaging.SILVER_SERIES_PATH),
            description="One row per series: modality (null when its instances disagree), "
            "body part, equipment, geometry, and counts of instances, frames and instances "
            "with burned-in annotation.",
        ),
        dg.AssetSpec(
            ["silver", "imaging", "dicom_studies"],
            deps=_SILVER_DEPS,
            automation_condition=dg.AutomationCondition.eager(),
            freshness_policy=freshness_policy(imaging.SILVER_STUDIES_PATH),
            description="One row per study: person, encounter, accession, date, modalities "
            "and counts, with the number of PatientIDs and people its instances name (one "
            "each for a sound study).",
        ),
    ],
)
def silver_imaging(context: dg.AssetExecutionContext, lake: LakeResource):
    """Rebuilds the silver imaging tables from every batch; commits nothing when unchanged."""
    store = lake.lake()
    if store.table(imaging.INSTANCES_PATH) is None:
        context.log.info("no DICOM batch has been ingested; the silver tables are empty")
    inputs = [
        table_input(store, p)
        for p in (imaging.INSTANCES_PATH, imaging.ORDERS_PATH, CROSSWALK_PATH, CONFLICTS_PATH)
        if store.table(p) is not None
    ]
    outputs = [
        imaging.SILVER_INSTANCES_PATH,
        imaging.SILVER_SERIES_PATH,
        imaging.SILVER_STUDIES_PATH,
    ]
    with asset_lineage(context, store, job="silver.imaging", inputs=inputs, outputs=outputs) as run:
        build = imaging.build_silver(store, store.read(CROSSWALK_PATH), run_id=context.run.run_id)
        run.outputs = [table_output(store, p) for p in outputs]
    unlinked = build.instance_rows - build.status_counts["linked"]
    if unlinked:
        context.log.warning(
            f"{unlinked} of {build.instance_rows} instances are not linked to an order: "
            + ", ".join(f"{s} {n}" for s, n in build.status_counts.items() if s != "linked")
        )
    links = {f"instances_{status}": n for status, n in build.status_counts.items()}
    for table, outcome in (
        ("dicom_instances", build.instances),
        ("dicom_series", build.series),
        ("dicom_studies", build.studies),
    ):
        yield dg.MaterializeResult(
            asset_key=["silver", "imaging", table],
            metadata=write_metadata(
                outcome,
                store.row_count(outcome.path),
                duplicate_instances=build.duplicates,
                **links,
            ),
        )


gold_assets = [
    research_view_asset(
        spec, empty_without_sources=True, automation_condition=dg.AutomationCondition.eager()
    )
    for spec in IMAGING_VIEWS
]

imaging_batch_job = dg.define_asset_job(
    "imaging_batch",
    selection=dg.AssetSelection.assets(bronze_imaging),
    description="Ingest one landed DICOM batch into bronze.",
)


@dg.sensor(
    job=imaging_batch_job,
    minimum_interval_seconds=60,
    description="Watches landing/imaging: a new batch (folder or zip) gets its own partition "
    "and a run; a changed one (its files' names, sizes or times) a new run of its partition.",
)
def imaging_landing_sensor(context: dg.SensorEvaluationContext, landing: LandingResource):
    folder = landing.silo("imaging")
    current = {path.name: imaging.batch_stamp(path).stamp for path in imaging.scan_batches(folder)}
    return landing_sensor_result(context, dicom_batches, current)
