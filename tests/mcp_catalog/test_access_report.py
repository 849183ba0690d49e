"""The access section of the compliance report, from a real audit log."""

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mcp_catalog.access_report import access_summary
from mcp_catalog.audit import AuditEvent, AuditLog
from quality.report import collect_report_data, render_report

START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _log(tmp_path: Path) -> AuditLog:
    log = AuditLog(tmp_path / "lake" / "_audit", b"k" * 32)
    events = [
        dict(principal="ana", role="researcher", purpose="research", action="query_patients",
             dataset="research/patients", decision="allow", reason="ok", rows=40),
        dict(principal="ana", role="researcher", purpose="research", action="query_patients",
             dataset="research/patients", decision="deny", reason="validation_error"),
        dict(principal="bo", role="data_steward", purpose="quality_improvement",
             action="aggregate_observations", dataset="research/observations",
             decision="deny", reason="differencing_suspected", risk_score=35),
        dict(principal="cy", role="clinician", purpose="treatment", action="query_patient",
             dataset="clinical/patient", decision="allow", reason="ok", rows=1, risk_score=50),
        dict(kind="break_glass_review", principal="cy", role="clinician", purpose="treatment",
             action="query_patient", dataset="clinical/patient", decision="allow",
             reason="break_glass_review"),
        dict(kind="security_alert", principal="eve", role="researcher", purpose="research",
             action="query_patient", decision="deny", reason="break_glass_ineligible_role",
             risk_score=90),
    ]  # fmt: skip
    for minute, fields in enumerate(events):
        log.append(
            AuditEvent(correlation_id=f"{minute:032x}", transport="http", **fields),
            now=START + timedelta(minutes=minute),
        )
    return log


def test_the_summary_counts_callers_datasets_refusals_alerts_and_reviews(tmp_path: Path):
    summary = access_summary(_log(tmp_path), alert_at=50)
    assert summary.records == 6 and summary.verified is True
    assert (summary.first_at, summary.last_at) == (START, START + timedelta(minutes=5))
    assert dict(summary.decisions) == {"allow": 2, "deny": 3}
    assert summary.by_principal[0] == ("ana", "researcher", "research", 2, 1, 40)
    assert dict((d, (c, n)) for d, c, n in summary.by_dataset) == {
        "research/patients": (2, 40),
        "research/observations": (1, 0),
        "clinical/patient": (1, 1),
    }
    assert dict(summary.refusals) == {
        "validation_error": 1,
        "differencing_suspected": 1,
        "break_glass_ineligible_role": 1,
    }
    assert [(e.principal, e.reason) for e in summary.alerts] == [
        ("eve", "break_glass_ineligible_role"),
        ("cy", "ok"),
    ]
    assert [(e.principal, e.kind) for e in summary.break_glass] == [("cy", "break_glass_review")]


def test_a_broken_chain_is_reported_as_such(tmp_path: Path):
    log = _log(tmp_path)
    lines = log.log_path.read_text().splitlines()
    log.log_path.write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    summary = access_summary(AuditLog(log.directory, b"k" * 32), alert_at=50)
    assert summary.verified is False and "missing" in (summary.problem or "")


def test_the_report_shows_the_access_section_without_arguments_or_values(tmp_path: Path):
    summary = access_summary(_log(tmp_path), alert_at=50)
    lake = tmp_path / "lake"
    data = dataclasses.replace(collect_report_data(lake), access=summary)
    html = render_report(data, tmp_path / "report").read_text(encoding="utf-8")
    assert 'id="access"' in html and "chain verified" in html
    assert "<code>break_glass_ineligible_role</code>" in html
    assert "Break-glass releases to review" in html and "<code>cy</code>" in html
    empty = render_report(collect_report_data(lake), tmp_path / "bare").read_text(encoding="utf-8")
    assert "No audit log was read." in empty
