"""Who is calling: identity, role, purpose and break-glass, from a verified token or from
the server's configuration (stdio), never from tool arguments or data.

``principal_from_claims`` turns verified JWT claims into a :class:`Principal` and checks them
against the policy: the role exists, the purpose is one the role may act under, research
names an approved, unexpired protocol, and the token's scopes are cut down to those the role
may hold. A break-glass claim that does not qualify does not invalidate the token: it is kept
as ``break_glass_problem`` so the call that tries to use it is refused and raises an alert.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from mcp_catalog.policy import Policy

ROLE_CLAIM = "biofed_role"
PURPOSE_CLAIM = "biofed_purpose"
PROTOCOL_CLAIM = "biofed_protocol"
BREAK_GLASS_CLAIM = "biofed_break_glass"

_SUBJECT = re.compile(r"^[A-Za-z0-9._:@+\-]{1,128}$")
_PATIENT = re.compile(r"^[A-Za-z0-9.\-]{1,64}$")

Transport = Literal["stdio", "http"]


class PrincipalError(Exception):
    """The identity cannot act here; ``reason`` is a snake_case code for the audit record and
    the message a fixed sentence without claim values."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class BreakGlassGrant:
    """Emergency access to one identified patient for a window."""

    patient: str
    """The FHIR Patient id the grant is for."""
    reason: str
    not_before: datetime
    expires: datetime

    def active(self, now: datetime) -> bool:
        """Whether ``now`` falls inside the grant's window."""
        return self.not_before <= now < self.expires


@dataclass(frozen=True)
class Principal:
    """The caller of one request."""

    subject: str
    role: str
    purpose: str
    transport: Transport
    scopes: frozenset[str]
    client_id: str | None = None
    protocol: str | None = None
    break_glass: BreakGlassGrant | None = None
    break_glass_problem: str | None = None
    """Set when the token carried a break-glass claim that does not qualify (a reason code)."""
    token_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """What rate limits, ledgers and caches are kept per: transport and subject."""
        return f"{self.transport}:{self.subject}"


def _text(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None


def check_purpose(
    policy: Policy, role: str, purpose: str, protocol: str | None, now: datetime
) -> None:
    """Check a role, purpose and protocol against the policy.

    Args:
        policy: the access policy.
        role: the role name (exact).
        purpose: the purpose of use (exact).
        protocol: the research protocol id, when the purpose needs one.
        now: the time the check is made at.

    Raises:
        PrincipalError: ``unknown_role``, ``purpose_not_allowed``, ``protocol_required``,
            ``unknown_protocol`` or ``protocol_expired``.
    """
    role_policy = policy.role(role)
    if role_policy is None:
        raise PrincipalError("unknown_role", "the role is not one this server knows")
    if purpose not in role_policy.purposes or purpose not in policy.purposes:
        raise PrincipalError(
            "purpose_not_allowed", "the purpose of use is not allowed for the role"
        )
    if policy.purposes[purpose].requires_protocol:
        if protocol is None:
            raise PrincipalError("protocol_required", "this purpose needs an approved protocol")
        approved = policy.protocols.get(protocol)
        if approved is None:
            raise PrincipalError("unknown_protocol", "the protocol is not an approved protocol")
        if approved.expires < now.date():
            raise PrincipalError("protocol_expired", "the protocol's approval has expired")


def _break_glass(
    policy: Policy, role: str, claim: Any, now: datetime
) -> tuple[BreakGlassGrant | None, str | None]:
    if claim is None:
        return None, None
    role_policy = policy.role(role)
    if role_policy is None or not role_policy.break_glass:
        return None, "break_glass_ineligible_role"
    if not isinstance(claim, dict):
        return None, "break_glass_malformed"
    patient, reason = claim.get("patient"), claim.get("reason")
    if not isinstance(reason, str) or not reason:
        return None, "break_glass_no_reason"
    if reason not in policy.break_glass.reasons:
        return None, "break_glass_unknown_reason"
    if not isinstance(patient, str) or not _PATIENT.match(patient):
        return None, "break_glass_malformed"
    try:
        start = datetime.fromtimestamp(int(claim["nbf"]), UTC)
        end = datetime.fromtimestamp(int(claim["exp"]), UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return None, "break_glass_malformed"
    if isinstance(claim.get("nbf"), bool) or isinstance(claim.get("exp"), bool):
        return None, "break_glass_malformed"
    if end <= start or end - start > timedelta(minutes=policy.break_glass.max_window_minutes):
        return None, "break_glass_window_too_long"
    return BreakGlassGrant(patient=patient, reason=reason, not_before=start, expires=end), None


def principal_from_claims(
    claims: dict[str, Any], policy: Policy, *, now: datetime | None = None
) -> Principal:
    """The principal of an HTTP request, from claims whose signature, issuer, audience and
    expiry have already been verified.

    Args:
        claims: the verified JWT claims.
        policy: the access policy.
        now: the check time (UTC now by default).

    Returns:
        The principal, with scopes cut down to those its role may hold.

    Raises:
        PrincipalError: when the subject is missing or malformed, or the role, purpose or
            protocol is not acceptable (see :func:`check_purpose`).
    """
    now = now or datetime.now(UTC)
    subject = _text(claims, "sub")
    if subject is None or not _SUBJECT.match(subject):
        raise PrincipalError("invalid_subject", "the token's subject is missing or malformed")
    role = _text(claims, ROLE_CLAIM)
    purpose = _text(claims, PURPOSE_CLAIM)
    if role is None or purpose is None:
        raise PrincipalError("missing_role_or_purpose", "the token names no role or purpose")
    protocol = _text(claims, PROTOCOL_CLAIM)
    check_purpose(policy, role, purpose, protocol, now)
    raw_scope = claims.get("scope")
    granted = raw_scope.split(" ") if isinstance(raw_scope, str) else []
    # Exact strings only: "Biofed.Research.Read", "biofed.research.read " or "biofed.*" match
    # nothing, so they grant nothing.
    allowed = set(policy.roles[role].scopes)
    scopes = frozenset(s for s in granted if s in allowed)
    grant, problem = _break_glass(policy, role, claims.get(BREAK_GLASS_CLAIM), now)
    client = _text(claims, "client_id") or _text(claims, "azp")
    return Principal(
        subject=subject,
        role=role,
        purpose=purpose,
        transport="http",
        scopes=scopes,
        client_id=client if client and _SUBJECT.match(client) else None,
        protocol=protocol,
        break_glass=grant,
        break_glass_problem=problem,
        token_id=_text(claims, "jti"),
    )


def configured_principal(
    policy: Policy,
    *,
    subject: str,
    role: str,
    purpose: str,
    protocol: str | None = None,
    now: datetime | None = None,
) -> Principal:
    """The fixed principal of a stdio server, from its configuration.

    Holds every scope its role may hold; never break-glass (that comes only from a token).

    Raises:
        PrincipalError: as :func:`check_purpose`, or ``invalid_subject``.
    """
    if not _SUBJECT.match(subject):
        raise PrincipalError("invalid_subject", "the configured principal name is malformed")
    check_purpose(policy, role, purpose, protocol, now or datetime.now(UTC))
    return Principal(
        subject=subject,
        role=role,
        purpose=purpose,
        transport="stdio",
        scopes=frozenset(policy.roles[role].scopes),
        protocol=protocol,
    )
