"""``python -m mcp_catalog.serve``: the catalog server as a real stdio subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from mcp_catalog.cursor import INVALID_CURSOR_MESSAGE
from tests.mcp_catalog.conftest import Lake

REPO = Path(__file__).resolve().parents[2]


def _command(lake: Path, role: str = "researcher", *extra: str) -> list[str]:
    """Serve the test lake under its own policy (its surface is not the shipped contract)."""
    config = lake / "server.yaml"
    config.write_text(f"policy: {lake / 'policy.yaml'}\n")
    return [
        "-m", "mcp_catalog.serve", "--lake", str(lake), "--config", str(config),
        "--role", role, "--accept-contract", *extra,
    ]


@pytest.mark.anyio
async def test_the_catalog_serves_over_stdio(lake: Lake):
    parameters = StdioServerParameters(command=sys.executable, args=_command(lake.root), cwd=REPO)
    async with Client(parameters, read_timeout_seconds=60) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert tools == {
            "query_patients", "query_observations", "aggregate_patients", "aggregate_observations"
        }

        card = json.loads(
            (await client.read_resource("catalog://datasets/observations")).contents[0].text
        )
        assert card["tools"]["query"] == "query_observations" and card["key"] == ["observation_key"]

        arguments = {"filters": {"code": {"eq": "718-7"}}, "limit": 20}
        first = await client.call_tool("query_observations", arguments)
        assert not first.is_error, first.content[0].text
        page = first.structured_content
        assert page["row_count"] == 20 and page["truncated"] is True
        assert {row["code"] for row in page["rows"]} == {"718-7"}

        second = await client.call_tool(
            "query_observations", {**arguments, "cursor": page["next_cursor"]}
        )
        assert not second.is_error, second.content[0].text
        keys = [row["observation_key"] for row in page["rows"]]
        more = [row["observation_key"] for row in second.structured_content["rows"]]
        assert more and max(keys) < min(more)

        moved = await client.call_tool(
            "query_observations",
            {"filters": {"code": {"eq": "8480-6"}}, "limit": 20, "cursor": page["next_cursor"]},
        )
        assert moved.is_error and INVALID_CURSOR_MESSAGE in moved.content[0].text

        unknown_column = await client.call_tool("query_observations", {"select": ["ssn"]})
        assert unknown_column.is_error
        assert "unknown column 'ssn' in select; allowed columns for observations:" in (
            unknown_column.content[0].text
        )

        unknown_argument = await client.call_tool("query_patients", {"include_phi": True})
        assert unknown_argument.is_error
        assert (
            "unknown argument 'include_phi'; allowed arguments: select, filters, sort, limit, "
            "cursor. (correlation id "
        ) in unknown_argument.content[0].text


def test_serving_a_lake_without_a_manifest_exits_2_and_says_to_run_make_demo(tmp_path: Path):
    completed = subprocess.run(
        [sys.executable, "-m", "mcp_catalog.serve", "--lake", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "make demo" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""


def test_serving_an_unknown_role_exits_2_with_the_known_roles(lake: Lake):
    completed = subprocess.run(
        [sys.executable, *_command(lake.root, role="admin")],
        cwd=REPO,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "the role is not one this server knows" in completed.stderr
    assert "Traceback" not in completed.stderr
