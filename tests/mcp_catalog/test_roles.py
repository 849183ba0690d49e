"""Role to audience mapping."""

import pytest

from mcp_catalog.roles import UnknownRoleError, audiences_for


def test_a_researcher_sees_the_research_audience():
    assert audiences_for("researcher") == ("research",)


@pytest.mark.parametrize("role", ["admin", "Researcher", "researcher ", ""])
def test_an_unknown_role_is_named_with_the_known_roles(role: str):
    with pytest.raises(UnknownRoleError, match=r"known roles: researcher$"):
        audiences_for(role)
