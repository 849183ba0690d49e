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


def _silo(source: str) -> str:
    """The silo a silver table comes from (``silver/ehr/patients`` -> ``ehr``)."""
    return source.split("/")[1]


def _newest_sources(lake: Lake, silos: set[str]) -> dict[str, datetime | None]:
    """When each silo's newest landing file was written, from its files ledger."""
    newest: dict[str, datetime | None] = {}
    for silo in sorted(silos):
        ledger = f"bronze/{silo}/files"
        newest[silo] = (
            lake.read(ledger).get_column("source_modified_at").max()
            if lake.table(ledger) is not None
            else None
        )
    return newest


def _freshness(
    spec: ViewSpec, newest_by_silo: dict[str, datetime | None], now: datetime
) -> DatasetFreshness | None:
    """Freshness of a view from the newest source file of the silos it is built from."""
    sla = sla_for(spec.path)
    if sla is None:
        return None
    times = [t for t in (newest_by_silo[_silo(s)] for s in spec.sources) if t is not None]
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


def _states(lake: Lake, now: datetime) -> list[tuple[ViewSpec, TableState]]:
    """Every gold view with its size, version, freshness and quality (each input read once)."""
    newest = _newest_sources(lake, {_silo(s) for spec in RESEARCH_VIEWS for s in spec.sources})
    results = lake.read(QUALITY_RESULTS_PATH) if lake.table(QUALITY_RESULTS_PATH) else None
    states = []
    for spec in RESEARCH_VIEWS:
        table = lake.table(spec.path)
        if table is None:
            raise dg.Failure(
                f"gold view {spec.path} does not exist; materialise it before the catalog"
            )
        history = table.history(1)[0]
        states.append(
            (
                spec,
                TableState(
                    row_count=lake.row_count(spec.path),
                    delta_version=table.version(),
                    last_materialized=datetime.fromtimestamp(history["timestamp"] / 1000, tz=UTC),
                    freshness=_freshness(spec, newest, now),
                    quality=_quality(results, spec.path, table.version()),
                ),
            )
        )
    return states


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
        manifest = build_manifest(_states(store, now), generated_at=now)
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
