"""The ``biofed`` command: the contract snapshot, and ``biofed serve`` over real stdio."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from mcp_catalog.config import load_config
from mcp_catalog.contract import contract_json, render_contracts
from mcp_catalog.serve import open_service
from pipelines.cli import DEFAULT_CONTRACT, main

BIOFED = shutil.which("biofed", path=str(Path(sys.executable).parent)) or "biofed"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_the_tool_surface_matches_the_reviewed_contract(materialised_lake):
    service = open_service(materialised_lake.root, load_config())
    rendered = contract_json(await render_contracts(service))
    assert rendered == DEFAULT_CONTRACT.read_text(), (
        "tools/list or resources/list changed; review it, then run `biofed catalog snapshot`"
    )


def test_catalog_snapshot_regenerates_the_contract_file(materialised_lake, tmp_path, capsys):
    out = tmp_path / "contract.json"
    assert (
        main(["catalog", "snapshot", "--lake", str(materialised_lake.root), "--out", str(out)]) == 0
    )
    assert out.read_text() == DEFAULT_CONTRACT.read_text()
    assert (
        main(["catalog", "snapshot", "--lake", str(materialised_lake.root), "--out", str(out)]) == 0
    )
    assert "Unchanged" in capsys.readouterr().out


def test_biofed_serve_without_a_manifest_says_to_run_make_demo(tmp_path):
    done = subprocess.run(
        [BIOFED, "serve", "--lake", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.returncode == 2
    assert "make demo" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.anyio
async def test_biofed_serve_answers_an_mcp_client_over_stdio(materialised_lake):
    params = StdioServerParameters(
        command=BIOFED,
        args=["serve", "--lake", str(materialised_lake.root), "--role", "researcher"],
    )
    async with Client(params, read_timeout_seconds=60) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"query_patients", "query_observations", "query_conditions"} <= tools

        card = json.loads(
            (await client.read_resource("catalog://datasets/observations")).contents[0].text
        )
        assert card["tools"]["query"] == "query_observations"

        query = {
            "filters": {"category": {"eq": "vital-signs"}},
            "select": ["record_key", "code"],
            "limit": 50,
        }
        first = await client.call_tool("query_observations", query)
        assert not first.is_error
        page = first.structured_content
        assert page["row_count"] == 50 and page["truncated"] and page["next_cursor"]
        second = await client.call_tool(
            "query_observations", query | {"cursor": page["next_cursor"]}
        )
        keys = [r["record_key"] for r in page["rows"]] + [
            r["record_key"] for r in second.structured_content["rows"]
        ]
        assert len(set(keys)) == len(keys) == 100

        unknown_column = await client.call_tool("query_patients", {"select": ["family_name"]})
        assert (
            unknown_column.is_error
            and "allowed columns for patients" in unknown_column.content[0].text
        )
        unknown_argument = await client.call_tool("query_patients", {"include_phi": True})
        assert (
            unknown_argument.is_error
            and "unknown argument 'include_phi'" in unknown_argument.content[0].text
        )


def test_the_demo_summary_lists_tables_with_their_quality_and_the_views_freshness(
    materialised_lake,
):
    from pipelines.cli import _summary

    text = _summary(str(materialised_lake.root))
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert "pass (" in lines["silver/ehr/observations"]
    assert "pass (" in lines["gold/research/patients"]
    assert "freshness: fresh" in text
