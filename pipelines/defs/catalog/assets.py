"""The generated catalog: every gold view's schema, policy class, size, version and lineage."""

import os
import tempfile
from datetime import UTC, datetime

import dagster as dg
import polars as pl

from connectors.fhir.schema import table_columns
from mcp_catalog.catalog import TableState, build_manifest, dataset_entry, source_entry
from mcp_catalog.federation import (
    FederationError,
    LinkCounts,
    dataset_federation,
    link_counts,
    primary_source,
)
from mcp_catalog.governance.genomics import GENOMIC_VIEWS
from mcp_catalog.governance.imaging import IMAGING_VIEWS
from mcp_catalog.governance.lab import LAB_VIEWS
from mcp_catalog.governance.trials import TRIAL_VIEWS
from mcp_catalog.governance.views import IDENTIFIED_VIEWS, RESEARCH_VIEWS, IdentifiedView, ViewSpec
from mcp_catalog.manifest import (
    PERSON_COLUMN,
    CatalogColumn,
    CatalogDataset,
    DatasetFederation,
    DatasetFreshness,
    DatasetQuality,
    RegionColumns,
    dump_manifest,
)
from mcp_catalog.policy import Policy, load_policy
from pipelines.lake import Lake
from pipelines.lineage import asset_lineage, table_input
from pipelines.quality_record import QUALITY_RESULTS_PATH
from pipelines.resources import LakeResource
from quality.freshness import freshness_status, sla_for

MANIFEST_PATH = "_catalog/manifest.json"

SERVED_VIEWS: tuple[ViewSpec, ...] = (
    *RESEARCH_VIEWS,
    *GENOMIC_VIEWS,
    *IMAGING_VIEWS,
    *LAB_VIEWS,
    *TRIAL_VIEWS,
)
"""Every materialised view the catalog serves, in catalog order."""

LEDGERS = {
    "ehr": "bronze/ehr/files",
    "genomics": "bronze/genomics/vcf_files",
    "imaging": "bronze/imaging/batches",
    "lab": "bronze/lab/files",
    "trials": "bronze/trials/files",
}
"""Each silo's ledger of landed files (batches for imaging, datasets for trials), which
records when every file was written."""


def _silo(source: str) -> str:
    """The silo a silver table comes from (``silver/ehr/patients`` -> ``ehr``)."""
    return source.split("/")[1]


def _newest_sources(lake: Lake, silos: set[str]) -> dict[str, datetime | None]:
    """When each silo's newest landing file was written, from its files ledger."""
    newest: dict[str, datetime | None] = {}
    for silo in sorted(silos):
        ledger = LEDGERS[silo]
        newest[silo] = (
            lake.read(ledger).get_column("source_modified_at").max()
            if lake.table(ledger) is not None
            else None
        )
    return newest


def _freshness(
    spec: ViewSpec | IdentifiedView, newest_by_silo: dict[str, datetime | None], now: datetime
) -> DatasetFreshness | None:
    """Freshness of a view from the newest source file of the silos it is built from."""
    path, sources = (
        (spec.path, spec.sources) if isinstance(spec, ViewSpec) else (spec.table, (spec.table,))
    )
    sla = sla_for(path)
    if sla is None:
        return None
    times = [t for t in (newest_by_silo[_silo(s)] for s in sources) if t is not None]
    newest = max(times) if times else None
    return DatasetFreshness(
        warn_after_seconds=int(sla.warn_after.total_seconds()),
        fail_after_seconds=int(sla.fail_after.total_seconds()),
        newest_source_at=newest,
        status=freshness_status(newest, sla, now=now),
        checked_at=now,
    )


def _quality(results: pl.DataFrame | None, path: str, version: int) -> DatasetQuality | None:
    """The latest suite result recorded for this version of the table, if any."""
    if results is None:
        return None
    rows = results.filter(pl.col("table") == path, pl.col("delta_version") == version).sort(
        "evaluated_at"
    )
    if rows.height == 0:
        return None
    latest = rows.row(-1, named=True)
    return DatasetQuality(
        suite=latest["suite"],
        evaluated_at=latest["evaluated_at"],
        success=latest["success"],
        expectations=latest["expectations"],
        failed_errors=latest["failed_errors"],
        failed_warnings=latest["failed_warnings"],
    )


_TYPES = {
    pl.String: "string",
    pl.Enum: "string",
    pl.Int64: "integer",
    pl.Int32: "integer",
    pl.Float64: "number",
    pl.Boolean: "boolean",
    pl.Date: "date",
    pl.Datetime: "datetime",
}


def _identified_columns(view: IdentifiedView, policy: Policy) -> list[CatalogColumn]:
    """Catalog columns of an identified view: type and description from the FHIR schema,
    class from the policy."""
    source = {c.name: c for c in table_columns(view.table.split("/")[-1])}
    rules = policy.dataset(view.audience, view.name)
    if rules is None:
        raise dg.Failure(f"{view.audience}/{view.name} is not in the policy")
    columns = []
    for name in view.columns:
        column = source[name]
        enum = list(column.dtype.categories) if isinstance(column.dtype, pl.Enum) else None
        columns.append(
            CatalogColumn.model_validate(
                {
                    "name": name,
                    "type": _TYPES[column.dtype.base_type()],
                    "description": column.description,
                    "class": rules.columns.get(name, "direct_identifier"),
                    "sortable": True,
                    "enum": enum,
                }
            )
        )
    return columns


def _region(spec: ViewSpec) -> RegionColumns | None:
    """The region columns of a view of genomic positions."""
    if spec.region is None:
        return None
    chrom, start, end = spec.region
    return RegionColumns(chrom=chrom, start=start, end=end)


def _state(lake: Lake, path: str, freshness, results, now: datetime) -> TableState:
    table = lake.table(path)
    if table is None:
        raise dg.Failure(f"{path} does not exist; materialise it before the catalog")
    history = table.history(1)[0]
    return TableState(
        row_count=lake.row_count(path),
        delta_version=table.version(),
        last_materialized=datetime.fromtimestamp(history["timestamp"] / 1000, tz=UTC),
        freshness=freshness,
        quality=_quality(results, path, table.version()),
    )


class _LinkCounter:
    """Linked and total rows of silver tables, each table read once per catalog build."""

    def __init__(self, lake: Lake) -> None:
        self._lake = lake
        self._counts: dict[str, LinkCounts] = {}

    def __call__(self, path: str) -> LinkCounts:
        if path not in self._counts:
            table = self._lake.table(path)
            # A silo without a feed yet has empty views and no silver table: nothing linked.
            self._counts[path] = (
                LinkCounts(0, 0) if table is None else link_counts(pl.scan_delta(table))
            )
        return self._counts[path]


def _federation(
    audience: str,
    name: str,
    sources: tuple[str, ...],
    primary: str | None,
    policy: Policy,
    count: _LinkCounter,
) -> DatasetFederation:
    """The federation block of one dataset; ``primary`` None for an aggregate."""
    rules = policy.dataset(audience, name)
    if rules is None:
        raise dg.Failure(f"{audience}/{name} is not in the policy")
    try:
        return dataset_federation(
            sources,
            rules,
            counts=None if primary is None else count(primary),
            unblinded_studies=policy.unblinded_studies(),
        )
    except FederationError as exc:
        raise dg.Failure(f"{audience}/{name}: {exc}") from exc


def _counted_source(spec: ViewSpec) -> str | None:
    """The silver table whose linked rows a view's card counts: its primary source for a
    person-level view, None for a view without a person column (an aggregate)."""
    person_level = any(c.name == PERSON_COLUMN for c in spec.columns)
    return primary_source(spec) if person_level else None


def _view_federation(spec: ViewSpec, policy: Policy, count: _LinkCounter) -> DatasetFederation:
    """A gold view's federation block."""
    return _federation(spec.audience, spec.name, spec.sources, _counted_source(spec), policy, count)


def _datasets(lake: Lake, policy: Policy, now: datetime) -> list[CatalogDataset]:
    """Every served dataset with its size, version, freshness, quality and federation (each
    input read once)."""
    silos = {_silo(s) for spec in SERVED_VIEWS for s in spec.sources}
    silos |= {_silo(view.table) for view in IDENTIFIED_VIEWS}
    newest = _newest_sources(lake, silos)
    results = lake.read(QUALITY_RESULTS_PATH) if lake.table(QUALITY_RESULTS_PATH) else None
    count = _LinkCounter(lake)
    datasets = [
        dataset_entry(
            spec,
            _state(lake, spec.path, _freshness(spec, newest, now), results, now),
            region=_region(spec),
        ).model_copy(update={"federation": _view_federation(spec, policy, count)})
        for spec in SERVED_VIEWS
    ]
    for view in IDENTIFIED_VIEWS:
        entry = source_entry(
            name=view.name,
            audience=view.audience,
            path=view.table,
            title=view.title,
            description=view.description,
            owner=view.owner,
            key=list(view.key),
            columns=_identified_columns(view, policy),
            state=_state(lake, view.table, _freshness(view, newest, now), results, now),
            max_limit=policy.datasets[f"{view.audience}/{view.name}"].row_cap,
        )
        # Identified records are one patient's rows each, linked like the silo's other rows.
        federation = _federation(view.audience, view.name, (view.table,), view.table, policy, count)
        datasets.append(entry.model_copy(update={"federation": federation}))
    return datasets


@dg.asset(
    key=["catalog"],
    group_name="catalog",
    deps=[
        *(dg.AssetKey(spec.path.split("/")) for spec in SERVED_VIEWS),
        *(dg.AssetKey(view.table.split("/")) for view in IDENTIFIED_VIEWS),
        dg.AssetKey(["gold", "research", "_consent"]),
    ],
    description="lake/_catalog/manifest.json: the catalog the MCP server is generated from.",
)
def catalog(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    store = lake.lake()
    inputs = [table_input(store, spec.path) for spec in SERVED_VIEWS]
    inputs += [table_input(store, view.table) for view in IDENTIFIED_VIEWS]
    # The silver tables whose linked rows the data cards count are read too.
    counted = {_counted_source(spec) for spec in SERVED_VIEWS} - {None}
    counted -= {view.table for view in IDENTIFIED_VIEWS}
    inputs += [
        table_input(store, path) for path in sorted(counted) if store.table(path) is not None
    ]
    with asset_lineage(context, store, job="catalog", inputs=inputs, outputs=[MANIFEST_PATH]):
        now = datetime.now(UTC)
        policy = load_policy()
        try:
            manifest = build_manifest(
                _datasets(store, policy, now), generated_at=now, policy=policy
            )
        except ValueError as exc:
            raise dg.Failure(f"the catalog does not match the access policy: {exc}") from exc
        target = store.local_path(MANIFEST_PATH)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a server starting meanwhile never reads half a manifest.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".manifest-", suffix=".json")
        with os.fdopen(fd, "w") as handle:
            handle.write(dump_manifest(manifest))
        os.replace(tmp, target)
    return dg.MaterializeResult(
        metadata={
            "path": str(target),
            "datasets": len(manifest.datasets),
            "rows": sum(d.row_count for d in manifest.datasets),
            "policy_version": policy.version,
        }
    )
