"""The generated catalog: every gold view's schema, policy class, size, version and lineage."""

import os
import tempfile
from datetime import UTC, datetime

import dagster as dg
import polars as pl

from mcp_catalog.catalog import TableState, build_manifest
from mcp_catalog.governance.views import RESEARCH_VIEWS, ViewSpec
from mcp_catalog.manifest import DatasetFreshness, DatasetQuality, dump_manifest
from pipelines.lake import Lake
from pipelines.lineage import asset_lineage, table_input
from pipelines.quality_record import QUALITY_RESULTS_PATH
from pipelines.resources import LakeResource
from quality.freshness import freshness_status, sla_for

MANIFEST_PATH = "_catalog/manifest.json"


def _freshness(lake: Lake, spec: ViewSpec, now: datetime) -> DatasetFreshness | None:
    """Freshness of a view from the newest source file of the silos it is built from."""
    sla = sla_for(spec.path)
    if sla is None:
        return None
    newest = None
    for silo in sorted({source.split("/")[1] for source in spec.sources}):
        ledger = f"bronze/{silo}/files"
        if lake.table(ledger) is not None:
            latest = lake.read(ledger).get_column("source_modified_at").max()
            newest = latest if newest is None or (latest and latest > newest) else newest
    return DatasetFreshness(
        warn_after_seconds=int(sla.warn_after.total_seconds()),
        fail_after_seconds=int(sla.fail_after.total_seconds()),
        newest_source_at=newest,
        status=freshness_status(newest, sla, now=now),
        checked_at=now,
    )


def _quality(lake: Lake, path: str, version: int) -> DatasetQuality | None:
    """The latest suite result recorded for this version of the table, if any."""
    if lake.table(QUALITY_RESULTS_PATH) is None:
        return None
    rows = (
        lake.read(QUALITY_RESULTS_PATH)
        .filter(pl.col("table") == path, pl.col("delta_version") == version)
        .sort("evaluated_at")
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


def _state(lake: Lake, spec: ViewSpec, now: datetime) -> TableState:
    table = lake.table(spec.path)
    if table is None:
        raise dg.Failure(f"gold view {spec.path} does not exist; materialise it before the catalog")
    history = table.history(1)[0]
    return TableState(
        row_count=lake.row_count(spec.path),
        delta_version=table.version(),
        last_materialized=datetime.fromtimestamp(history["timestamp"] / 1000, tz=UTC),
        freshness=_freshness(lake, spec, now),
        quality=_quality(lake, spec.path, table.version()),
    )


@dg.asset(
    key=["catalog"],
    group_name="catalog",
    deps=[dg.AssetKey(spec.path.split("/")) for spec in RESEARCH_VIEWS],
    description="lake/_catalog/manifest.json: the catalog the MCP server is generated from.",
)
def catalog(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    store = lake.lake()
    inputs = [table_input(store, spec.path) for spec in RESEARCH_VIEWS]
    with asset_lineage(context, store, job="catalog", inputs=inputs, outputs=[MANIFEST_PATH]):
        now = datetime.now(UTC)
        manifest = build_manifest(
            ((s, _state(store, s, now)) for s in RESEARCH_VIEWS), generated_at=now
        )
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
        }
    )
