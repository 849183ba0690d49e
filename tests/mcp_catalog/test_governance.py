"""The governed gate over the in-memory MCP client: who calls, what they see, what is
recorded. (The same cases over real HTTP with real tokens are in
tests/pipelines/test_governed_http.py.)"""

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_catalog.audit import AuditLog
from mcp_catalog.principal import configured_principal
from tests.mcp_catalog.conftest import Lake, make_server, write_consent, write_lake, write_policy

pytestmark = pytest.mark.anyio


@pytest.fixture
def own_lake(tmp_path: Path) -> Lake:
    """A lake of one test's own: these tests change consent and read the audit log."""
    return write_lake(tmp_path / "lake")


def records(root: Path) -> list[dict[str, Any]]:
    path = root / "_audit" / "audit.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def call(server, tool: str, arguments: dict[str, Any]):
    async with Client(server) as client:
        return await client.call_tool(tool, arguments)


async def test_every_answer_is_audited_before_it_leaves_with_what_was_disclosed(own_lake: Lake):
    server = make_server(own_lake.manifest, own_lake.root)
    result = await call(server, "query_patients", {"limit": 5, "select": ["gender"]})
    assert not result.is_error
    page = result.structured_content
    (record,) = [r for r in records(own_lake.root) if r["action"] == "query_patients"]
    assert (record["decision"], record["reason"], record["rows"]) == ("allow", "ok", 5)
    assert record["correlation_id"] == page["correlation_id"]
    assert record["columns"] == ["gender"] and record["principal"] == "test-researcher"
    # The people behind the rows are recorded even though their pseudonym was not selected.
    expected = (
        own_lake.patients.sort("person_pseudonym").head(5).get_column("person_pseudonym").to_list()
    )
    assert record["subjects"] == expected
    assert record["arguments"] == {"limit": 5, "select": ["gender"]}
    assert json.loads(result.content[0].text) == page


async def test_a_data_steward_sees_no_quasi_identifiers_and_is_told_what_was_withheld(
    own_lake: Lake,
):
    steward = configured_principal(
        own_lake.policy, subject="steward", role="data_steward", purpose="quality_improvement"
    )
    server = make_server(own_lake.manifest, own_lake.root, role="data_steward", principal=steward)
    page = (await call(server, "query_patients", {"limit": 3})).structured_content
    assert set(page["rows"][0]) == {"person_pseudonym", "deceased"}
    assert page["masked_columns"] == ["birth_year", "gender", "state", "zip3"]
    refused = await call(server, "query_patients", {"select": ["zip3"]})
    assert refused.is_error and "unknown column 'zip3' in select" in refused.content[0].text


async def test_a_revocation_counts_from_the_next_call_even_for_a_cached_query(own_lake: Lake):
    server = make_server(own_lake.manifest, own_lake.root)
    arguments = {"limit": 100, "select": ["person_pseudonym"]}
    first = (await call(server, "query_patients", arguments)).structured_content
    again = (await call(server, "query_patients", arguments)).structured_content
    assert again["rows"] == first["rows"]
    assert [r["cached"] for r in records(own_lake.root) if r["action"] == "query_patients"] == [
        False,
        True,
    ]
    revoked = first["rows"][0]["person_pseudonym"]
    people = own_lake.patients.get_column("person_pseudonym").to_list()
    write_consent(own_lake.root, people, revoked=(revoked,))
    after = (await call(server, "query_patients", arguments)).structured_content
    assert revoked not in {row["person_pseudonym"] for row in after["rows"]}
    total = await call(server, "aggregate_patients", {})
    assert total.structured_content["total_people"] == own_lake.patients.height - 1


async def test_aggregates_suppress_small_cells_and_refuse_differencing(own_lake: Lake):
    server = make_server(own_lake.manifest, own_lake.root)
    by_state = await call(server, "aggregate_patients", {"group_by": ["state", "gender"]})
    cells = by_state.structured_content["cells"]
    assert all(set(cell) >= {"state", "gender", "people"} for cell in cells)
    assert all("deceased" not in cell for cell in cells)  # not grouped by, so not sent
    for cell in cells:
        assert cell["suppressed"] == (cell["people"] is None)
        assert cell["people"] is None or cell["people"] >= 5
    years = own_lake.patients.get_column("birth_year").to_list()
    # A birth year held by 1-4 people, with enough people born after it.
    low = next(
        year
        for year in sorted(set(years))
        if 0 < years.count(year) < 5 and sum(y > year for y in years) >= 5
    )
    first = await call(server, "aggregate_patients", {"filters": {"birth_year": {"gte": low}}})
    assert not first.is_error
    second = await call(server, "aggregate_patients", {"filters": {"birth_year": {"gt": low}}})
    assert second.is_error
    assert "differs from an earlier one of yours by fewer than 5 people" in second.content[0].text
    refused = [r for r in records(own_lake.root) if r["reason"] == "differencing_suspected"]
    assert len(refused) == 1 and refused[0]["rows"] == 0
    assert "near_duplicate_population" in refused[0]["risk_reasons"]


async def test_a_page_over_the_byte_cap_is_cut_at_a_whole_row_and_the_cursor_resumes_there(
    own_lake: Lake,
):
    policy = write_policy(
        own_lake.root / "small-pages.yaml",
        own_lake.manifest,
        limits={**own_lake.policy.limits.model_dump(), "max_page_bytes": 2048},
    )
    server = make_server(own_lake.manifest, own_lake.root, policy=policy)
    seen: list[str] = []
    cursor = None
    while True:
        arguments = {"limit": 100, "select": ["person_pseudonym", "state"]}
        page = (
            await call(server, "query_patients", arguments | ({"cursor": cursor} if cursor else {}))
        ).structured_content
        assert len(json.dumps(page["rows"], separators=(",", ":"))) <= 2048
        seen += [row["person_pseudonym"] for row in page["rows"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert page["truncated"] is True
    assert seen == sorted(own_lake.patients.get_column("person_pseudonym").to_list())


async def test_a_query_past_the_deadline_is_refused_and_recorded(own_lake: Lake):
    policy = write_policy(
        own_lake.root / "impatient.yaml",
        own_lake.manifest,
        limits={**own_lake.policy.limits.model_dump(), "query_timeout_seconds": 1e-6},
    )
    server = make_server(own_lake.manifest, own_lake.root, policy=policy)
    result = await call(server, "query_patients", {})
    assert result.is_error and "did not finish within 1e-06 s" in result.content[0].text
    (record,) = [r for r in records(own_lake.root) if r["action"] == "query_patients"]
    assert (record["decision"], record["reason"], record["rows"]) == ("deny", "timeout", 0)


async def test_a_call_without_an_identity_is_refused_before_anything_is_read(own_lake: Lake):
    from mcp_catalog.serve import open_audit
    from mcp_catalog.server import CatalogService

    service = CatalogService(
        own_lake.manifest, own_lake.root, policy=own_lake.policy, audit=open_audit(own_lake.root)
    )
    result = await call(service.server_for("researcher"), "query_patients", {})
    assert result.is_error and "the caller could not be identified" in result.content[0].text
    assert all(g.table.reads == 0 for g in service.datasets.values())
    (record,) = records(own_lake.root)
    assert (record["decision"], record["reason"]) == ("deny", "no_principal")


async def test_the_audit_log_failing_means_no_data(own_lake: Lake, tmp_path: Path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    server = make_server(
        own_lake.manifest, own_lake.root, audit=AuditLog(blocked / "audit", b"k" * 32)
    )
    result = await call(server, "query_patients", {"limit": 1})
    assert result.is_error and result.structured_content is None
    assert "audit log cannot be written; no data was returned" in result.content[0].text
