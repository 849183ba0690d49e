import re
from pathlib import Path

from tests.conftest import PATIENTS, SEED, MaterialisedLake

# The shared lake (tests/conftest.py) is built from this cohort.
__all__ = [
    "PATIENTS",
    "SEED",
    "MaterialisedLake",
    "call_tool",
    "research_tools",
    "upstream_selection",
    "TextSearch",
]

_SEPARATORS = re.compile(r'[\s"\\,:;{}\[\]()]+')
"""Characters that end a word of a text: white space and JSON punctuation."""


class TextSearch:
    """``value in "\\n".join(texts)`` for many values, in a fraction of the time.

    A value without a separator character can only occur inside one word of the texts (a
    run of characters between separators), so it is looked for in the distinct words alone,
    which are far fewer than the characters of the texts. A value with a separator in it
    is looked for in the whole text, as before.
    """

    def __init__(self, texts: list[str]) -> None:
        self.text = "\n".join(texts)
        self._words = "\n".join(set(_SEPARATORS.split(self.text)))

    def __contains__(self, value: str) -> bool:
        if not value or _SEPARATORS.search(value):
            return value in self.text
        return value in self._words


def upstream_selection(*targets: str) -> str:
    """The ``materialize`` selection of ``targets`` and every asset upstream of them (and
    the other assets of a multi-asset that runs whole).

    A target ending in ``/`` names every asset under that prefix (``bronze/lab/``). The
    selection follows the code location's graph as it is, so it stays right when assets
    gain inputs.
    """
    import dagster as dg

    from pipelines.definitions import build_definitions

    graph = build_definitions(lake="lake", landing="landing").resolve_asset_graph()
    names = {key.to_user_string(): key for key in graph.get_all_asset_keys()}
    chosen = set()
    for target in targets:
        found = (
            {k for n, k in names.items() if n.startswith(target)}
            if target.endswith("/")
            else {names[target]}
        )
        assert found, f"no asset matches {target}"
        chosen |= found
    selected: set = set()
    while chosen != selected:
        # A multi-asset that cannot be subset runs whole; its other assets need their inputs.
        selected = chosen
        chosen = (
            dg.AssetSelection.assets(*selected)
            .upstream()
            .required_multi_asset_neighbors()
            .resolve(graph)
        )
    return ",".join(sorted(key.to_user_string() for key in selected))


def research_tools(role: str) -> set[str]:
    """The research tools the shipped policy gives ``role``: query_ where it reads rows,
    aggregate_ where it may count, find_cohort where the cohort policy names the role."""
    from mcp_catalog.policy import load_policy

    policy = load_policy()
    tools = set()
    if policy.cohorts is not None and role in policy.cohorts.roles:
        tools.add("find_cohort")
    for key, rules in policy.datasets.items():
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


def profiled_values(header: dict, profile) -> tuple[set[str], set[str], set[str]]:
    """Strings of a header by what the profile does to their attribute: (removed, emptied,
    replaced or remapped, or private: identifying strings; the same, dates and times; kept
    attributes' strings). A kept attribute may say the same words as a removed one (a coded
    procedure's meaning and the study description): such words are not identifying."""
    removed: set[str] = set()
    moments: set[str] = set()
    kept: set[str] = set()
    for tag, element in header.items():
        private = int(tag[:4], 16) % 2 == 1
        action = profile.get(tag)
        values = element.get("Value", [])
        if element.get("vr") == "SQ":
            for item in values:
                inner = profiled_values(item, profile)
                removed |= inner[0]
                moments |= inner[1]
                kept |= inner[2]
            continue
        strings = [v.get("Alphabetic") if isinstance(v, dict) else v for v in values]
        strings = [v for v in strings if isinstance(v, str) and len(v) >= 6]
        if not private and (action is None or action == "K"):
            kept.update(strings)
        elif element.get("vr") in ("DA", "DT", "TM"):
            moments.update(strings)
        else:
            removed.update(strings)
    return removed, moments, kept
