"""Genomics silo: landed VCFs -> bronze (one dynamic partition per file) -> silver linked to
person_key through the sample manifest -> research views of variants and genotypes."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from connectors.errors import ConnectorError
from mcp_catalog.governance.genomics import GENOMIC_VIEWS
from pipelines import genomics
from pipelines.crosswalk_links import CONFLICTS_PATH, read_conflicts
from pipelines.landing import landing_file
from pipelines.lineage import asset_lineage, table_input, table_output
from pipelines.manifest_asset import ManifestFeed, land_manifest
from pipelines.metadata import freshness_policy, write_metadata
from pipelines.research import CROSSWALK_PATH, research_view_asset
from pipelines.resources import LakeResource, LandingResource
from pipelines.sensors import landing_sensor_result
from quality.lineage import LineageDataset

GROUP = "genomics"

vcf_files = dg.DynamicPartitionsDefinition(name="vcf_files")
"""One partition per landed VCF, named by its path below ``landing/genomics``."""

BRONZE_KEYS = {
    "variants": genomics.VARIANTS_PATH,
    "genotypes": genomics.GENOTYPES_PATH,
    "vcf_files": genomics.FILES_PATH,
    "rejects": genomics.REJECTS_PATH,
}


def _key(path: str) -> dg.AssetKey:
    return dg.AssetKey(path.split("/"))


def landed_vcfs(landing_root: str) -> list[str]:
    """The partition keys of the VCFs now in ``<landing_root>/genomics``."""
    folder = Path(landing_root) / "genomics"
    return [path.relative_to(folder).as_posix() for path in genomics.scan_paths(folder)]


@dg.multi_asset(
    group_name=GROUP,
    partitions_def=vcf_files,
    specs=[
        dg.AssetSpec(
            ["bronze", "genomics", "variants"],
            freshness_policy=freshness_policy(genomics.VARIANTS_PATH),
            description="VCF records as read, one row per site and ALT allele (multi-allelic "
            "records split, with the original allele index), INFO typed from the header. "
            "Delta-partitioned by chromosome.",
        ),
        dg.AssetSpec(
            ["bronze", "genomics", "genotypes"],
            freshness_policy=freshness_policy(genomics.GENOTYPES_PATH),
            description="One row per VCF record and sample: allele calls (no-call kept apart "
            "from REF), phasing and typed FORMAT fields. Delta-partitioned by chromosome.",
        ),
        dg.AssetSpec(
            ["bronze", "genomics", "vcf_files"],
            freshness_policy=freshness_policy(genomics.FILES_PATH),
            description="One row per landed VCF: sha256, header text, reference, contigs, "
            "samples and counts, so the file can be told apart and reproduced exactly.",
        ),
        dg.AssetSpec(
            ["bronze", "genomics", "rejects"],
            freshness_policy=freshness_policy("bronze/genomics/rejects"),
            description="Quarantined VCF records: file, line and reason (never the values).",
        ),
    ],
)
def bronze_genomics(
    context: dg.AssetExecutionContext, lake: LakeResource, landing: LandingResource
):
    """Reads one landed VCF (this partition) into bronze, unless its content is already there."""
    store = lake.lake()
    folder = landing.silo("genomics")
    name = context.partition_key
    path = folder / name
    if not path.is_file():
        raise dg.Failure(
            f"{name} is no longer in {folder}. Land the file again, or delete the partition "
            "in the Dagster UI if it was withdrawn (its rows stay in the lake until then)."
        )
    landed = landing_file(path, folder)
    paths = list(BRONZE_KEYS.values())
    if genomics.already_ingested(store, landed):
        context.log.info(f"{name} is unchanged since it was ingested; nothing to write")
        for table, lake_path in BRONZE_KEYS.items():
            yield dg.MaterializeResult(
                asset_key=["bronze", "genomics", table],
                metadata=write_metadata(store.unchanged(lake_path), store.row_count(lake_path)),
            )
        return
    source = LineageDataset(uri=str(path.resolve()), version=landed.sha256)
    with asset_lineage(
        context, store, job="bronze.genomics", inputs=[source], outputs=paths
    ) as run:
        try:
            ingest = genomics.ingest_vcf(
                store, landed, run_id=context.run.run_id, ingested_at=datetime.now(UTC)
            )
        except ConnectorError as exc:
            raise dg.Failure(f"{name} could not be read: {exc}") from exc
        run.outputs = [table_output(store, p) for p in paths]
    file_row = ingest.file_row.row(0, named=True)
    context.log.info(
        f"{name}: {file_row['records']} records, {file_row['variants']} variants, "
        f"{file_row['genotypes']} genotypes, {ingest.rejected} quarantined"
    )
    outcomes = {
        "variants": ingest.variants,
        "genotypes": ingest.genotypes,
        "vcf_files": ingest.ledger,
        "rejects": ingest.rejects,
    }
    for table, outcome in outcomes.items():
        yield dg.MaterializeResult(
            asset_key=["bronze", "genomics", table],
            metadata=write_metadata(
                outcome,
                store.row_count(BRONZE_KEYS[table]),
                records=file_row["records"],
                rejects_this_file=ingest.rejected,
            ),
        )


SAMPLES_FEED = ManifestFeed(
    name=genomics.MANIFEST_NAME,
    table=genomics.SAMPLES_PATH,
    rejects_table=genomics.MANIFEST_REJECTS_PATH,
    key="sample_id",
    columns=genomics.SAMPLES_TABLE_COLUMNS,
    read=genomics.read_sample_manifest,
    missing="Land the biobank's sample manifest (sample_id, mrn, specimen_type, "
    "collection_date, sequencing_platform, vcf_file) beside the VCFs, or generate a cohort "
    "with `biofed synth --out landing`.",
)


@dg.asset(
    key=["bronze", "genomics", "samples"],
    group_name=GROUP,
    freshness_policy=freshness_policy(genomics.SAMPLES_PATH),
    description="The biobank's sample manifest: which person (MRN) each VCF sample id is, "
    "with specimen, collection date and platform. Restricted: holds MRNs.",
    owners=["team:data-stewards"],
)
def sample_manifest(
    context: dg.AssetExecutionContext, lake: LakeResource, landing: LandingResource
) -> dg.MaterializeResult:
    folder = landing.silo("genomics")
    return land_manifest(
        context,
        lake.lake(),
        folder,
        SAMPLES_FEED,
        data_landed=bool(genomics.scan_paths(folder)),
    )


_SILVER_DEPS = [
    *(_key(p) for p in (genomics.VARIANTS_PATH, genomics.GENOTYPES_PATH, genomics.FILES_PATH)),
    _key(genomics.SAMPLES_PATH),
    _key(CROSSWALK_PATH),
    dg.AssetKey(["restricted", "identity_conflicts"]),
]


@dg.multi_asset(
    group_name=GROUP,
    partitions_def=vcf_files,
    specs=[
        dg.AssetSpec(
            ["silver", "genomics", "variants"],
            deps=_SILVER_DEPS,
            freshness_policy=freshness_policy(genomics.SILVER_VARIANTS_PATH),
            description="Variants of every landed VCF, one row per site and ALT allele, "
            "partitioned by chromosome and sorted by position.",
        ),
        dg.AssetSpec(
            ["silver", "genomics", "genotypes"],
            deps=_SILVER_DEPS,
            freshness_policy=freshness_policy(genomics.SILVER_GENOTYPES_PATH),
            description="Genotypes of every landed VCF linked to person_key through the "
            "sample manifest's MRN and the person crosswalk; unlinked samples kept with an "
            "empty person_key.",
        ),
    ],
)
def silver_genomics(context: dg.AssetExecutionContext, lake: LakeResource):
    """Rebuilds this file's silver rows when its bronze content or its sample links changed."""
    store = lake.lake()
    name = context.partition_key
    inputs = [
        table_input(store, p)
        for p in (
            genomics.VARIANTS_PATH,
            genomics.GENOTYPES_PATH,
            genomics.SAMPLES_PATH,
            CROSSWALK_PATH,
            CONFLICTS_PATH,
        )
    ]
    outputs = [genomics.SILVER_VARIANTS_PATH, genomics.SILVER_GENOTYPES_PATH]
    with asset_lineage(
        context, store, job="silver.genomics", inputs=inputs, outputs=outputs
    ) as run:
        links = genomics.sample_links(
            store.read(genomics.SAMPLES_PATH),
            store.read(CROSSWALK_PATH),
            conflicts=read_conflicts(store),
        )
        try:
            build = genomics.build_silver(
                store, name, links, run_id=context.run.run_id, built_at=datetime.now(UTC)
            )
        except FileNotFoundError as exc:
            raise dg.Failure(str(exc)) from exc
        run.outputs = [table_output(store, p) for p in outputs]
    unlinked = build.samples - build.linked_samples
    if unlinked:
        context.log.warning(
            f"{unlinked} of {build.samples} samples in {name} are not linked to a person: "
            "their sample ids are missing from the manifest, their MRN is unknown or their "
            "identity is in conflict (see _rejects/identity/crosswalk)"
        )
    for table, outcome in (("variants", build.variants), ("genotypes", build.genotypes)):
        yield dg.MaterializeResult(
            asset_key=["silver", "genomics", table],
            metadata=write_metadata(
                outcome,
                store.row_count(outcome.path),
                samples=build.samples,
                linked_samples=build.linked_samples,
            ),
        )


gold_assets = [
    research_view_asset(
        spec, empty_without_sources=True, automation_condition=dg.AutomationCondition.eager()
    )
    for spec in GENOMIC_VIEWS
]

genomics_file_job = dg.define_asset_job(
    "genomics_file",
    selection=dg.AssetSelection.assets(bronze_genomics, silver_genomics),
    description="Ingest one landed VCF: bronze, then silver linked through the manifest.",
)


@dg.sensor(
    job=genomics_file_job,
    minimum_interval_seconds=60,
    description="Watches landing/genomics: a new VCF gets its own partition and a run; a "
    "changed one (size or modification time) a new run of its partition.",
)
def genomics_landing_sensor(context: dg.SensorEvaluationContext, landing: LandingResource):
    folder = landing.silo("genomics")
    current = {}
    for path in genomics.scan_paths(folder):
        stat = path.stat()
        current[path.relative_to(folder).as_posix()] = f"{stat.st_size}:{stat.st_mtime_ns}"
    return landing_sensor_result(context, vcf_files, current)
