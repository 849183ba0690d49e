from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from connectors.synth import write_cohort
from pipelines.cli import materialize

PATIENTS = 60
SEED = 11


@dataclass
class MaterialisedLake:
    root: Path
    landing: Path
    first_run: object
    instance: dg.DagsterInstance


@pytest.fixture(scope="session")
def materialised_lake(tmp_path_factory) -> Iterator[MaterialisedLake]:
    """A real lake: a synthetic cohort landed and every asset materialised once."""
    base = tmp_path_factory.mktemp("e2e")
    landing, lake = base / "landing", base / "lake"
    write_cohort(landing, patients=PATIENTS, seed=SEED, silos=("ehr", "genomics", "imaging"))
    with dg.instance_for_test() as instance:
        result = materialize(str(lake), str(landing), instance=instance)
        assert result.success, "the first full materialisation failed"
        yield MaterialisedLake(lake, landing, result, instance)


def research_tools(role: str) -> set[str]:
    """The research tools the shipped policy gives ``role``: query_ where it reads rows,
    aggregate_ where it may count."""
    from mcp_catalog.policy import load_policy

    tools = set()
    for key, rules in load_policy().datasets.items():
        audience, name = key.split("/", 1)
        access = rules.access.get(role)
        if audience != "research" or access is None:
            continue
        tools |= {f"query_{name}"} if access.rows else set()
        tools |= {f"aggregate_{name}"} if access.aggregate else set()
    return tools


async def call_tool(lake: Path, role: str, purpose: str, tool: str, arguments: dict):
    """Call one tool of the catalog served from ``lake`` to ``role`` (in memory, the real
    server): the tools the role sees, and the result (None when the role lacks the tool)."""
    from mcp import Client

    from mcp_catalog.config import load_config
    from mcp_catalog.serve import open_service

    config = load_config()
    config = config.model_copy(
        update={"stdio": config.stdio.model_copy(update={"role": role, "purpose": purpose})}
    )
    async with Client(open_service(lake, config).server_for(role)) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool(tool, arguments) if tool in tools else None
    return tools, result
