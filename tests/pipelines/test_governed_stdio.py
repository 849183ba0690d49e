"""The governed catalog end to end over stdio: the real ``biofed serve --lake L``.

Over stdio there is no token: who calls is the server's configuration (``--role``,
``--purpose``, ``--principal``), and break-glass, which only a verified token can carry, is
never available. One server per role runs at the same time on one copy of the materialised
lake, as four MCP hosts on one machine would, sharing its audit log. The sessions are run
once by a module fixture; each test then checks what one identity was given and what the
audit log says about it.
"""

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult

from mcp_catalog.policy import load_policy
from pipelines.cli import main as biofed_main
from tests.pipelines.conftest import research_tools

REPO = Path(__file__).resolve().parents[2]
BIOFED = str(Path(sys.executable).with_name("biofed"))
POLICY = load_policy()
PATIENT_COLUMNS = list(POLICY.datasets["research/patients"].columns)
STEWARD_COLUMNS = POLICY.datasets["research/patients"].visible_columns("data_steward")

CLINICAL = [key.split("/", 1)[1] for key in POLICY.datasets if key.startswith("clinical/")]
AUDIT_TOOLS = {"audit_search", "audit_disclosures", "audit_alerts", "break_glass_reviews"}
AUDIT_TOOLS |= {"audit_verify"}
IDENTITIES = {
    "researcher": ("research", "stdio-rita"),
    "data_steward": ("quality_improvement", "stdio-steve"),
    "clinician": ("treatment", "stdio-clare"),
    "compliance_officer": ("audit", "stdio-carl"),
}
NO_GRANT = "identified records are released only under a break-glass grant"


@dataclass(frozen=True)
class Sessions:
    """What each configured identity was answered, and the lake the servers wrote to."""

    lake: Path
    tools: dict[str, set[str]]
    answers: dict[str, CallToolResult]
    pseudonym: str
    """A person the researcher was shown (for the accounting of disclosures)."""


def _server(lake: Path, role: str) -> StdioServerParameters:
    purpose, principal = IDENTITIES[role]
    return StdioServerParameters(
        command=BIOFED,
        args=[
            *("serve", "--lake", str(lake), "--role", role, "--purpose", purpose),
            *("--principal", principal, "--accept-contract"),
        ],
        cwd=REPO,
    )


async def _run_sessions(lake: Path) -> Sessions:
    tools: dict[str, set[str]] = {}
    answers: dict[str, CallToolResult] = {}
    shown: list[str] = []
    researcher_done, clinician_done = anyio.Event(), anyio.Event()

    async def session(role: str, script) -> None:
        async with Client(_server(lake, role), read_timeout_seconds=120) as client:
            tools[role] = {tool.name for tool in (await client.list_tools()).tools}
            await script(client)

    async def researcher(client: Client) -> None:
        answers["researcher"] = await client.call_tool("query_patients", {"limit": 5})
        shown.append(answers["researcher"].structured_content["rows"][0]["person_pseudonym"])
        answers["researcher_unknown_tool"] = await client.call_tool("drop_tables", {})
        researcher_done.set()

    async def steward(client: Client) -> None:
        answers["steward"] = await client.call_tool("query_patients", {"limit": 5})

    async def clinician(client: Client) -> None:
        answers["clinician"] = await client.call_tool("query_patient_observations", {"limit": 5})
        grant = {"patient": "any", "reason": "emergency_treatment"}
        answers["clinician_argument"] = await client.call_tool(
            "query_patient_observations", {"limit": 5, "break_glass": grant}
        )
        clinician_done.set()

    async def officer(client: Client) -> None:
        await researcher_done.wait()
        await clinician_done.wait()
        calls = {
            "audit_search": {"principal": "stdio-rita"},
            "audit_disclosures": {"subject": shown[0]},
            "audit_alerts": {},
            "break_glass_reviews": {},
            "audit_verify": {},
        }
        for name, arguments in calls.items():
            answers[name] = await client.call_tool(name, arguments)
        answers["officer_query"] = await client.call_tool("query_patients", {"limit": 1})

    scripts = {
        "researcher": researcher,
        "data_steward": steward,
        "clinician": clinician,
        "compliance_officer": officer,
    }
    with anyio.fail_after(300):
        async with anyio.create_task_group() as group:
            for role, script in scripts.items():
                group.start_soon(session, role, script)
    return Sessions(lake, tools, answers, shown[0])


@pytest.fixture(scope="module")
def sessions(materialised_lake, tmp_path_factory) -> Sessions:
    lake = tmp_path_factory.mktemp("governed-stdio") / "lake"
    # A fresh audit log: the shared session lake has records of other tests' calls.
    shutil.copytree(materialised_lake.root, lake, ignore=shutil.ignore_patterns("_audit"))
    return anyio.run(_run_sessions, lake)


def audit_records(lake: Path, **match: Any) -> list[dict[str, Any]]:
    lines = (lake / "_audit" / "audit.ndjson").read_text().splitlines()
    records = [json.loads(line) for line in lines if line]
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def refusal(result: CallToolResult) -> str:
    assert result.is_error
    return result.content[0].text


def test_a_researcher_configured_for_stdio_sees_research_rows_audited_under_its_identity(
    sessions: Sessions,
) -> None:
    assert sessions.tools["researcher"] == research_tools("researcher")
    page = structured(sessions.answers["researcher"])
    assert page["row_count"] == 5 and page["masked_columns"] == []
    assert all(set(row) == set(PATIENT_COLUMNS) for row in page["rows"])
    (record,) = audit_records(sessions.lake, principal="stdio-rita", action="query_patients")
    assert (record["transport"], record["role"], record["purpose"], record["protocol"]) == (
        "stdio",
        "researcher",
        "research",
        "BIOFED-DEMO-001",
    )
    assert (record["decision"], record["rows"]) == ("allow", 5)
    assert record["correlation_id"] == page["correlation_id"]
    assert record["subjects"] == sorted(row["person_pseudonym"] for row in page["rows"])


def test_a_data_steward_configured_for_stdio_sees_masked_columns_and_no_quasi_identifiers(
    sessions: Sessions,
) -> None:
    page = structured(sessions.answers["steward"])
    assert page["rows"] and all(set(row) == set(STEWARD_COLUMNS) for row in page["rows"])
    assert set(page["masked_columns"]) == set(PATIENT_COLUMNS) - set(STEWARD_COLUMNS)
    assert {"zip3", "birth_year", "gender"} <= set(page["masked_columns"])
    (record,) = audit_records(sessions.lake, principal="stdio-steve", action="query_patients")
    assert (record["role"], record["purpose"], record["decision"]) == (
        "data_steward",
        "quality_improvement",
        "allow",
    )
    assert set(record["masked_columns"]) == set(page["masked_columns"])


def test_a_clinician_over_stdio_never_gets_break_glass_even_when_arguments_ask_for_it(
    sessions: Sessions,
) -> None:
    assert {f"query_{name}" for name in CLINICAL} <= sessions.tools["clinician"]
    for answer in ("clinician", "clinician_argument"):
        assert refusal(sessions.answers[answer]).startswith(
            f"Error executing tool query_patient_observations: {NO_GRANT}"
        )
    records = audit_records(sessions.lake, principal="stdio-clare")
    requests = [r for r in records if r["kind"] == "request" and r["action"] != "tools/call"]
    alerts = [r for r in records if r["kind"] == "security_alert"]
    assert [(r["decision"], r["reason"]) for r in requests] == [
        ("deny", "break_glass_required")
    ] * 2
    assert {r["correlation_id"] for r in alerts} == {r["correlation_id"] for r in requests}
    for record in records:
        assert record["rows"] == 0 and record["result_sha256"] is None
        assert record["break_glass"] is None and record["transport"] == "stdio"


def test_a_compliance_officer_over_stdio_reads_the_audit_log_through_the_audit_tools(
    sessions: Sessions,
) -> None:
    assert sessions.tools["compliance_officer"] == AUDIT_TOOLS
    searched = structured(sessions.answers["audit_search"])["records"]
    assert searched and {r["principal"] for r in searched} == {"stdio-rita"}
    assert ("query_patients", "allow") in {(r["action"], r["decision"]) for r in searched}

    disclosed = structured(sessions.answers["audit_disclosures"])["records"]
    assert ("stdio-rita", "researcher", "research/patients") in {
        (r["principal"], r["role"], r["dataset"]) for r in disclosed
    }

    alerts = structured(sessions.answers["audit_alerts"])["records"]
    assert ("security_alert", "stdio-clare", "break_glass_required") in {
        (r["kind"], r["principal"], r["reason"]) for r in alerts
    }
    reviews = structured(sessions.answers["break_glass_reviews"])
    assert (reviews["records"], reviews["count"]) == ([], 0)
    verified = structured(sessions.answers["audit_verify"])
    assert verified["ok"] is True and verified["first_bad"] is None

    own = audit_records(sessions.lake, principal="stdio-carl", kind="request")
    assert {(r["action"], r["decision"]) for r in own} >= {(name, "allow") for name in AUDIT_TOOLS}
    assert {(r["role"], r["purpose"]) for r in own} == {("compliance_officer", "audit")}


def test_an_unknown_tool_over_stdio_is_not_found_and_writes_one_deny_record(
    sessions: Sessions,
) -> None:
    assert refusal(sessions.answers["researcher_unknown_tool"]) == "Unknown tool: drop_tables"
    assert refusal(sessions.answers["officer_query"]) == "Unknown tool: query_patients"
    for principal in ("stdio-rita", "stdio-carl"):
        (record,) = audit_records(sessions.lake, principal=principal, action="tools/call")
        assert (record["decision"], record["reason"], record["rows"]) == (
            "deny",
            "unknown_tool",
            0,
        )
        assert record["transport"] == "stdio"


def test_the_audit_log_four_stdio_servers_wrote_at_once_verifies(
    sessions: Sessions, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("BIOFED_AUDIT_KEY", raising=False)
    records = audit_records(sessions.lake)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert {r["principal"] for r in records} == {p for _, p in IDENTITIES.values()}
    capsys.readouterr()
    assert biofed_main(["audit", "verify", "--lake", str(sessions.lake)]) == 0
    assert f"Audit chain verified: {len(records)} records" in capsys.readouterr().out


def test_the_compliance_report_shows_who_used_the_catalog(
    sessions: Sessions, tmp_path, monkeypatch
) -> None:
    monkeypatch.delenv("BIOFED_AUDIT_KEY", raising=False)
    assert biofed_main(["report", "--lake", str(sessions.lake), "--out", str(tmp_path)]) == 0
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert 'id="access"' in html and "chain verified" in html
    for _, principal in IDENTITIES.values():
        assert f"<code>{principal}</code>" in html
