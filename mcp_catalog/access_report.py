"""The access section of the compliance report, summarised from the audit log.

Counts per caller and dataset, refusals by reason, high-risk events and break-glass releases:
names, codes, counts and times only, never arguments or returned values.
"""

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from mcp_catalog.audit import AuditError, AuditLog
from quality.report.model import AccessEvent, AccessSummary

MAX_EVENTS = 50


def _event(record: dict[str, Any]) -> AccessEvent:
    return AccessEvent(
        time=datetime.fromisoformat(record["time"]),
        kind=record.get("kind", "request"),
        principal=record.get("principal"),
        role=record.get("role"),
        action=record["action"],
        dataset=record.get("dataset"),
        decision=record["decision"],
        reason=record["reason"],
        risk_score=int(record.get("risk_score", 0)),
    )


def access_summary(log: AuditLog, *, alert_at: int) -> AccessSummary:
    """Summarise an audit log for compliance officers.

    Args:
        log: the lake's audit log.
        alert_at: the policy's alert threshold (risk scores at or above it are listed).

    Returns:
        The summary; ``verified`` says whether the hash chain held.

    Raises:
        AuditError: when a line of the log cannot be read at all.
    """
    report = log.verify()
    decisions: Counter[str] = Counter()
    principals: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    datasets: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    refusals: Counter[str] = Counter()
    alerts: list[AccessEvent] = []
    reviews: list[AccessEvent] = []
    first = last = None
    count = 0
    try:
        for record in log.records():
            count += 1
            moment = datetime.fromisoformat(record["time"])
            first = moment if first is None else min(first, moment)
            last = moment if last is None else max(last, moment)
            kind = record.get("kind", "request")
            if kind == "break_glass_review":
                reviews.append(_event(record))
                continue
            decisions[record["decision"]] += 1
            who = (
                record.get("principal") or "unknown",
                record.get("role") or "—",
                record.get("purpose") or "—",
            )
            totals = principals[who]
            totals[0] += 1
            totals[1] += record["decision"] == "deny"
            totals[2] += int(record.get("rows", 0))
            if record.get("dataset"):
                datasets[record["dataset"]][0] += 1
                datasets[record["dataset"]][1] += int(record.get("rows", 0))
            if record["decision"] == "deny":
                refusals[record["reason"]] += 1
            if kind == "security_alert" or int(record.get("risk_score", 0)) >= alert_at:
                alerts.append(_event(record))
    except AuditError:
        if count == 0:
            raise
    return AccessSummary(
        records=count,
        verified=report.ok,
        problem=report.problem,
        first_at=first,
        last_at=last,
        decisions=tuple(sorted(decisions.items())),
        by_principal=tuple(
            sorted(
                ((p, r, u, *v) for (p, r, u), v in principals.items()),  # type: ignore[misc]
                key=lambda row: (-row[3], row[0]),
            )
        ),
        by_dataset=tuple(
            sorted(((d, *v) for d, v in datasets.items()), key=lambda row: (-row[1], row[0]))  # type: ignore[misc]
        ),
        refusals=tuple(sorted(refusals.items(), key=lambda item: (-item[1], item[0]))),
        alerts=tuple(sorted(alerts, key=lambda e: e.time, reverse=True)[:MAX_EVENTS]),
        break_glass=tuple(sorted(reviews, key=lambda e: e.time, reverse=True)[:MAX_EVENTS]),
    )
