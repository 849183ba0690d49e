"""The generated tool surface as a reviewable contract.

``tools/list`` and ``resources/list`` rendered to sorted, stable JSON, and its sha256. A
committed snapshot of it is compared in CI, so any change to a tool description, schema or
default is a reviewed diff.
"""

import hashlib
import json
from typing import Any

from mcp.server import MCPServer


async def render_contract(server: MCPServer) -> dict[str, Any]:
    """The server's listed surface as plain JSON data.

    Args:
        server: a built server.

    Returns:
        ``{"tools": [...], "resources": [...], "resource_templates": [...]}``: each entry the
        full listing entry dumped by alias without nulls; tools sorted by name, resources by
        URI, templates by URI template.
    """

    def dump(entry: Any) -> dict[str, Any]:
        return entry.model_dump(mode="json", by_alias=True, exclude_none=True)

    tools = sorted((dump(tool) for tool in await server.list_tools()), key=lambda t: t["name"])
    resources = sorted(
        (dump(resource) for resource in await server.list_resources()), key=lambda r: r["uri"]
    )
    templates = sorted(
        (dump(template) for template in await server.list_resource_templates()),
        key=lambda t: t["uriTemplate"],
    )
    return {"tools": tools, "resources": resources, "resource_templates": templates}


def contract_json(contract: dict[str, Any]) -> str:
    """The contract as stable JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(contract, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def contract_sha256(contract: dict[str, Any]) -> str:
    """The sha256 hex digest of :func:`contract_json`."""
    return hashlib.sha256(contract_json(contract).encode()).hexdigest()
