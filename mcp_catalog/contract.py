"""The generated tool surface as a reviewable contract.

``tools/list`` and ``resources/list`` rendered to sorted, stable JSON, and its sha256. A
committed snapshot of it is compared in CI, so any change to a tool description, schema or
default is a reviewed diff.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

from mcp.server import MCPServer


async def render_contract(server: MCPServer) -> dict[str, Any]:
    """The server's listed surface as plain JSON data.

    Args:
        server: a built server.

    Returns:
        ``{"tools": [...], "resources": [...], "resource_templates": [...], "prompts":
        [...]}``: each entry the full listing entry dumped by alias without nulls; tools and
        prompts sorted by name, resources by URI, templates by URI template.
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
    prompts = sorted(
        (dump(prompt) for prompt in await server.list_prompts()), key=lambda p: p["name"]
    )
    return {
        "tools": tools,
        "resources": resources,
        "resource_templates": templates,
        "prompts": prompts,
    }


def contract_json(contract: dict[str, Any]) -> str:
    """The contract as stable JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(contract, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def contract_sha256(contract: dict[str, Any]) -> str:
    """The sha256 hex digest of :func:`contract_json`."""
    return hashlib.sha256(contract_json(contract).encode()).hexdigest()


DEFAULT_CONTRACT_PATH = Path(__file__).resolve().parent / "contract.json"


class ContractError(Exception):
    """The generated tool surface differs from the reviewed snapshot."""


async def render_contracts(service: Any, roles: list[str] | None = None) -> dict[str, Any]:
    """The surface of every role (or the given ones) of a catalog service.

    Args:
        service: a :class:`mcp_catalog.server.CatalogService`.
        roles: the roles to render; all of the policy's when None.

    Returns:
        ``{"roles": {role: contract}}``.
    """
    chosen = roles if roles is not None else service.roles()
    return {"roles": {role: await render_contract(service.server_for(role)) for role in chosen}}


def _names(entries: list[dict[str, Any]], key: str) -> dict[str, str]:
    return {e[key]: json.dumps(e, sort_keys=True) for e in entries}


def describe_drift(reviewed: dict[str, Any], current: dict[str, Any]) -> str:
    """What changed in one role's surface, as a short sentence."""
    parts = []
    for section, key in (("tools", "name"), ("resources", "uri"), ("prompts", "name")):
        old, new = _names(reviewed.get(section, []), key), _names(current.get(section, []), key)
        added = sorted(set(new) - set(old))
        removed = sorted(set(old) - set(new))
        changed = sorted(n for n in set(old) & set(new) if old[n] != new[n])
        for label, names in (("added", added), ("removed", removed), ("changed", changed)):
            if names:
                parts.append(f"{section} {label}: {', '.join(names)}")
    return "; ".join(parts) or "resource templates changed"


def check_contract(rendered: dict[str, Any], snapshot: Path, *, accept: bool = False) -> str:
    """Compare a rendered surface with the reviewed snapshot.

    Args:
        rendered: :func:`render_contracts` output for the roles being served.
        snapshot: the reviewed ``contract.json``.
        accept: start anyway when it differs (the difference is reported, not hidden).

    Returns:
        The sha256 of the rendered surface.

    Raises:
        ContractError: when the snapshot is missing or a role's surface differs and
            ``accept`` is False.
    """
    digest = contract_sha256(rendered)
    if accept:
        return digest
    if not snapshot.is_file():
        raise ContractError(
            f"no reviewed tool contract at {snapshot}; review the surface and run "
            "`biofed catalog snapshot`, or start with --accept-contract."
        )
    reviewed = json.loads(snapshot.read_text()).get("roles", {})
    for role, current in rendered["roles"].items():
        if reviewed.get(role) != current:
            drift = describe_drift(reviewed.get(role, {}), current)
            raise ContractError(
                f"the tool contract of role {role} differs from the reviewed snapshot "
                f"({drift}). Review the change, then run `biofed catalog snapshot`, or start "
                "with --accept-contract."
            )
    return digest
