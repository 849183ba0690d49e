"""Which audiences a role may see.

A seam: for now a fixed table; the policy file (``mcp_catalog/policy.yaml``) replaces it.
"""

from types import MappingProxyType

ROLE_AUDIENCES = MappingProxyType({"researcher": ("research",)})
"""Role name -> the gold-view audiences it may query."""


class UnknownRoleError(ValueError):
    """The configured role is not one the catalog knows."""


def audiences_for(role: str) -> tuple[str, ...]:
    """The audiences whose views ``role`` may see.

    Args:
        role: the role the server runs as (from configuration, never from a tool argument).

    Returns:
        The audience names, in a fixed order.

    Raises:
        UnknownRoleError: when ``role`` is not a known role (exact match); the message lists
            the known roles.
    """
    try:
        return ROLE_AUDIENCES[role]
    except KeyError:
        known = ", ".join(sorted(ROLE_AUDIENCES))
        raise UnknownRoleError(f"unknown role {role!r}; known roles: {known}") from None
