"""Read-only MCP tools over the audit log, for roles holding the audit scope.

Compliance officers search the log, list the disclosures of one person's data, follow
high-risk events and break-glass reviews, and verify the hash chain. Each of these calls is
itself audited.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.types import CallToolResult
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from mcp_catalog.audit import redact_arguments
from mcp_catalog.query import compact_schema
from mcp_catalog.server import CatalogService, Denied, _Call, _tool

MAX_RECORDS = 200
_IDENT = r"^[A-Za-z0-9._:@+\-/]{1,128}$"
_STRICT = ConfigDict(extra="forbid", strict=True)

Limit = Annotated[
    int, Field(ge=1, le=MAX_RECORDS, description=f"At most this many records (1 to {MAX_RECORDS}).")
]
Since = Annotated[
    AwareDatetime | None,
    Field(None, description="Only records at or after this time (ISO 8601 with zone)."),
]
Until = Annotated[
    AwareDatetime | None,
    Field(None, description="Only records before this time (ISO 8601 with zone)."),
]


class SearchArguments(BaseModel):
    """Filters over the audit log; all that are given must hold."""

    model_config = _STRICT
    principal: str | None = Field(None, pattern=_IDENT, description="The caller's subject.")
    dataset: str | None = Field(None, pattern=_IDENT, description="Dataset as <audience>/<name>.")
    decision: Literal["allow", "deny", "error"] | None = Field(None, description="Outcome.")
    since: Since
    until: Until
    min_risk: int | None = Field(None, ge=0, le=100, description="Minimum risk score.")
    limit: Limit = 50


class DisclosureArguments(BaseModel):
    """Whose disclosures to list."""

    model_config = _STRICT
    subject: str = Field(
        pattern=_IDENT,
        description="A person pseudonym of one audience, or the patient reference of a "
        "break-glass record (sha256:...).",
    )
    limit: Limit = 50


class AlertArguments(BaseModel):
    """Which alerts to list."""

    model_config = _STRICT
    since: Since
    limit: Limit = 50


class VerifyArguments(BaseModel):
    """No arguments."""

    model_config = _STRICT


class RecordsResult(BaseModel):
    """Audit records, newest first."""

    records: list[dict[str, Any]] = Field(description="Audit records as stored.")
    count: int = Field(description="Number of records returned.")
    correlation_id: str = Field(description="Identifies this call in the audit log.")


class VerifyResult(BaseModel):
    """The outcome of verifying the audit chain."""

    ok: bool = Field(description="True when every record is present, in order and unedited.")
    records: int = Field(description="Records read.")
    first_bad: int | None = Field(description="Line of the first bad or missing record.")
    problem: str | None = Field(description="What is wrong there.")
    correlation_id: str = Field(description="Identifies this call in the audit log.")


def _parse(model: type[BaseModel], arguments: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(arguments)
    except ValidationError as exc:
        fields = sorted(
            {str(e["loc"][0]) for e in exc.errors() if e["loc"]} & set(model.model_fields)
        )
        allowed = ", ".join(model.model_fields) or "none"
        named = f" (check: {', '.join(fields)})" if fields else ""
        raise Denied(
            "validation_error",
            f"arguments do not match this tool's schema{named}; allowed arguments: {allowed}",
        ) from None


def audit_tools(service: CatalogService) -> list[Any]:
    """The compliance tools of a service.

    Args:
        service: the catalog service whose audit log they read.

    Returns:
        SDK tools: audit_search, audit_disclosures, audit_alerts, break_glass_reviews,
        audit_verify.
    """
    scope = service.policy.audit_scope
    log = service.audit_log

    def records(name: str, model: type[BaseModel], fetch) -> Any:
        def body(call: _Call, arguments: dict[str, Any]) -> BaseModel:
            parsed = _parse(model, arguments)
            found = fetch(parsed)
            call.rows = len(found)
            return RecordsResult(
                records=found, count=len(found), correlation_id=call.correlation_id
            )

        def run(arguments: dict[str, Any], ctx) -> CallToolResult:
            call = service.new_call(ctx, name, arguments=redact_arguments(arguments))
            return service._run(call, None, scope, lambda c: body(c, arguments))

        return run

    def since(parsed: BaseModel) -> datetime | None:
        return getattr(parsed, "since", None)

    search = records(
        "audit_search",
        SearchArguments,
        lambda p: log.search(
            principal=p.principal,
            dataset=p.dataset,
            decision=p.decision,
            since=p.since,
            until=p.until,
            min_risk=p.min_risk,
            limit=p.limit,
        ),
    )
    disclosures = records(
        "audit_disclosures",
        DisclosureArguments,
        lambda p: log.disclosures(p.subject, limit=p.limit),
    )
    alerts = records(
        "audit_alerts",
        AlertArguments,
        lambda p: log.alerts(min_risk=service.policy.risk.alert_at, since=since(p), limit=p.limit),
    )
    reviews = records(
        "break_glass_reviews",
        AlertArguments,
        lambda p: log.search(kind="break_glass_review", since=since(p), limit=p.limit),
    )

    def verify_body(call: _Call, arguments: dict[str, Any]) -> BaseModel:
        _parse(VerifyArguments, arguments)
        report = log.verify()
        return VerifyResult(
            ok=report.ok,
            records=report.records,
            first_bad=report.first_bad,
            problem=report.problem,
            correlation_id=call.correlation_id,
        )

    def verify(arguments: dict[str, Any], ctx) -> CallToolResult:
        call = service.new_call(ctx, "audit_verify", arguments=redact_arguments(arguments))
        return service._run(call, None, scope, lambda c: verify_body(c, arguments))

    definitions = [
        (
            search,
            "audit_search",
            "Search the audit log",
            "Audit records matching all given filters (principal, dataset, decision, time range, "
            "minimum risk), newest first.",
            SearchArguments,
            RecordsResult,
        ),
        (
            disclosures,
            "audit_disclosures",
            "Accounting of disclosures",
            "Every released result that included the given person's data: when, to whom, under "
            "which role and purpose, from which dataset.",
            DisclosureArguments,
            RecordsResult,
        ),
        (
            alerts,
            "audit_alerts",
            "High-risk events",
            f"Audit records with a risk score of at least {service.policy.risk.alert_at}, and "
            "security alerts, newest first.",
            AlertArguments,
            RecordsResult,
        ),
        (
            reviews,
            "break_glass_reviews",
            "Break-glass reviews",
            "Review items written for every release of identified data under a break-glass "
            "grant, newest first.",
            AlertArguments,
            RecordsResult,
        ),
        (
            verify,
            "audit_verify",
            "Verify the audit chain",
            "Checks that every audit record is present, in order and unedited, and names the "
            "first one that is not.",
            VerifyArguments,
            VerifyResult,
        ),
    ]
    return [
        _tool(
            fn,
            name,
            title=title,
            description=description,
            parameters=compact_schema(args.model_json_schema()),
            arg_model=args,
            result_model=result,
            output_schema=compact_schema(result.model_json_schema()),
        )
        for fn, name, title, description, args, result in definitions
    ]
