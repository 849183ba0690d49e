"""Freshness end to end: source file age -> manifest -> every MCP result."""

import os
import time

import anyio
import dagster as dg
from mcp import Client

from connectors.synth import write_cohort
from mcp_catalog.config import load_config
from mcp_catalog.manifest import load_manifest
from mcp_catalog.serve import open_service
from pipelines.cli import materialize
from pipelines.definitions import build_definitions
from quality.freshness import sla_for


def _first_result(lake, tool="query_patients"):
    manifest = load_manifest(lake / "_catalog" / "manifest.json")

    async def call():
        async with Client(open_service(lake, load_config()).server_for("researcher")) as client:
            return (await client.call_tool(tool, {"limit": 1})).structured_content

    return manifest, anyio.run(call)


def test_a_freshly_materialised_lake_reports_every_view_fresh(materialised_lake):
    manifest, page = _first_result(materialised_lake.root)
    assert {d.freshness.status for d in manifest.datasets} == {"fresh"}
    assert page["freshness"] == "fresh" and page["newest_source_at"]


def test_a_lake_whose_newest_source_is_older_than_its_sla_reports_stale(tmp_path):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    write_cohort(
        landing, patients=15, seed=5, silos=("ehr", "genomics", "imaging", "lab", "trials")
    )
    # Older than every silo's fail window (EHR and lab: 3 days; imaging: 15; genomics and
    # trials: 95 days).
    long_ago = time.time() - 100 * 86400
    for path in landing.rglob("*"):
        os.utime(path, (long_ago, long_ago))
    with dg.instance_for_test() as instance:
        assert materialize(str(lake), str(landing), instance=instance).success
    manifest, page = _first_result(lake)
    assert {d.freshness.status for d in manifest.datasets} == {"stale"}
    assert page["freshness"] == "stale"


def test_every_silver_and_gold_asset_carries_its_sla_as_a_freshness_policy():
    specs = build_definitions().resolve_all_asset_specs()
    layered = [s for s in specs if s.key.path[0] in ("bronze", "silver", "gold", "restricted")]
    assert layered
    for spec in layered:
        sla = sla_for(spec.key.to_user_string())
        assert spec.freshness_policy is not None, spec.key
        assert spec.freshness_policy.fail_window.to_timedelta() == sla.fail_after
