"""The generated catalog: every gold view's schema, policy class, size, version and lineage."""

import os
import tempfile
from datetime import UTC, datetime

import dagster as dg

from mcp_catalog.catalog import TableState, build_manifest
from mcp_catalog.governance.views import RESEARCH_VIEWS, ViewSpec
from mcp_catalog.manifest import dump_manifest
from pipelines.resources import LakeResource

MANIFEST_PATH = "_catalog/manifest.json"


def _state(lake, spec: ViewSpec) -> TableState:
    table = lake.table(spec.path)
    if table is None:
        raise dg.Failure(f"gold view {spec.path} does not exist; materialise it before the catalog")
    history = table.history(1)[0]
    return TableState(
        row_count=lake.row_count(spec.path),
        delta_version=table.version(),
        last_materialized=datetime.fromtimestamp(history["timestamp"] / 1000, tz=UTC),
    )


@dg.asset(
    key=["catalog"],
    group_name="catalog",
    deps=[dg.AssetKey(spec.path.split("/")) for spec in RESEARCH_VIEWS],
    description="lake/_catalog/manifest.json: the catalog the MCP server is generated from.",
)
def catalog(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    store = lake.lake()
    manifest = build_manifest(
        ((s, _state(store, s)) for s in RESEARCH_VIEWS), generated_at=datetime.now(UTC)
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
