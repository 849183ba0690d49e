"""The OAuth 2.1 resource-server front of the MCP catalog over streamable HTTP.

:func:`build_http_app` returns one ASGI app that every HTTP request passes through before
any MCP code sees it. In order, it:

1. refuses a ``Host`` that is not configured (421) or an ``Origin`` that is not allowed
   (403), on every path, against DNS rebinding;
2. serves the RFC 9728 protected-resource metadata, and 404 for anything but ``/mcp``;
3. on ``/mcp``: refuses a declared body over the cap (413), then authenticates the bearer
   token from the ``Authorization`` header only (401 with ``WWW-Authenticate`` pointing at
   the metadata), builds the :class:`~mcp_catalog.principal.Principal` from the verified
   claims, applies the per-principal token bucket (429), accepts POST only (405) with JSON
   content (415) and an ``Accept`` that allows JSON (406), reads the body under the cap (413),
   answers malformed JSON and non-JSON-RPC bodies itself (400), and checks a ``tools/call``
   against the scope the tool requires (403 ``insufficient_scope``, the tool never runs);
4. forwards the request to the MCP app of the principal's role with the body re-serialised
   from the parsed message it checked (no parser differential between this layer and the
   SDK), the ``Authorization`` header and query string removed, and the principal and
   correlation id set on the ASGI scope (:data:`PRINCIPAL_SCOPE_KEY`,
   :data:`CORRELATION_SCOPE_KEY`), where a tool reads them from its Starlette request.

Every refusal writes exactly one audit record through the gateway and carries a fresh
correlation id in ``X-Correlation-Id`` and in the JSON body. When the audit record cannot
be written the answer is 503 and nothing is forwarded. Responses never hold token text,
claims, paths or exception text.
"""

import json
import logging
import math
import re
import ssl
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import anyio.to_thread
import uvicorn
from mcp.server.streamable_http import check_accept_headers
from mcp_types.methods import SPEC_CLIENT_METHODS, SPEC_CLIENT_NOTIFICATION_METHODS
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.routing import Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_catalog.auth import MAX_TOKEN_BYTES, JwtVerifier, TokenError
from mcp_catalog.policy import Policy
from mcp_catalog.principal import Principal, PrincipalError, principal_from_claims

PRINCIPAL_SCOPE_KEY = "biofed.principal"
"""ASGI scope key of the verified :class:`Principal` on forwarded requests."""
CORRELATION_SCOPE_KEY = "biofed.correlation_id"
"""ASGI scope key of the request's correlation id (also sent as ``X-Correlation-Id``)."""
MCP_PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource"
RESOURCE_NAME = "biofed catalog"
FORWARDED_STATUS = 200
"""``http_status`` of records written before a request is forwarded: the front let it pass;
the MCP layer decides the status of its answer (200 for JSON-RPC results and most errors)."""

_KNOWN_METHODS = SPEC_CLIENT_METHODS | SPEC_CLIENT_NOTIFICATION_METHODS
_AUDITED_BY_GATEWAY = frozenset({"tools/call", "resources/read", "prompts/get"})
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# RFC 6750 b64token after exactly one space; the scheme is case-insensitive (RFC 9110).
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] ([A-Za-z0-9\-._~+/]+=*)")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._:@+\-]{1,128}$")
_MAX_ECHOED_ID = 128
_MAX_RATE_KEYS = 10_000
_NOT_FORWARDED_HEADERS = frozenset({b"authorization", b"content-length", b"transfer-encoding"})

_PARSE_ERROR = -32700
_INVALID_REQUEST = -32600
_REFUSED = -32001

logger = logging.getLogger(__name__)


class HttpGateway(Protocol):
    """What the HTTP front needs from the catalog: per-role MCP apps, scopes and audit."""

    policy: Policy
    audit_error: type[Exception]
    """The exception :meth:`audit_http` raises when the audit log cannot be written."""

    def mcp_app(self, role: str) -> ASGIApp:
        """The role's streamable-HTTP MCP app (stateless, JSON responses), serving ``/mcp``."""
        ...

    def lifespan(self) -> AbstractAsyncContextManager[None]:
        """Runs the session manager of every role app while the server runs."""
        ...

    def required_scope(self, role: str, tool: str) -> str | None:
        """The scope ``tool`` requires for ``role``; None when the role has no such tool."""
        ...

    def audit_http(
        self,
        *,
        correlation_id: str,
        action: str,
        decision: str,
        reason: str,
        http_status: int,
        principal: Principal | None = None,
        subject: str | None = None,
        client_id: str | None = None,
    ) -> None:
        """Append one audit record; raise :attr:`audit_error` when it cannot be written."""
        ...


@dataclass(frozen=True)
class HttpSettings:
    """Where and how the HTTP transport listens."""

    host: str = "127.0.0.1"
    port: int = 8765
    resource: str = "http://127.0.0.1:8765/mcp"
    """The canonical resource URI: the audience every token must name."""
    allowed_hosts: tuple[str, ...] = ("127.0.0.1:8765", "localhost:8765")
    """Exact ``Host`` header values answered; anything else is 421."""
    allowed_origins: tuple[str, ...] = ()
    """Exact ``Origin`` values allowed; requests without ``Origin`` are allowed."""
    max_body_bytes: int = 1_000_000
    rate_per_minute: int = 300
    """Token-bucket refill per principal (``policy.limits.rate_per_minute``)."""
    burst: int = 60
    """Token-bucket capacity per principal (``policy.limits.burst``)."""
    authorization_servers: tuple[str, ...] = ()
    scopes_supported: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        parts = urlsplit(self.resource)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("resource must be an absolute http(s) URI.")
        if parts.query or parts.fragment:
            raise ValueError("resource must not carry a query or fragment (RFC 8707).")
        if not self.allowed_hosts:
            raise ValueError("allowed_hosts must name at least one Host header value.")
        if self.max_body_bytes < 1 or self.rate_per_minute < 1 or self.burst < 1:
            raise ValueError("max_body_bytes, rate_per_minute and burst must be positive.")


class TokenBucketLimiter:
    """A token bucket per key: ``burst`` requests at once, refilled at ``rate_per_minute``."""

    def __init__(
        self, rate_per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate_per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """Take one token for ``key``.

        Args:
            key: what the limit is kept per (a principal key).

        Returns:
            0.0 when allowed, else the seconds until a token is available.
        """
        now = self._clock()
        tokens, stamp = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - stamp) * self._rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > _MAX_RATE_KEYS:
                self._forget_full(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self._rate

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled completely is the same as no bucket.
        full = [
            key
            for key, (tokens, stamp) in self._buckets.items()
            if tokens + (now - stamp) * self._rate >= self._burst
        ]
        for key in full:
            del self._buckets[key]


@dataclass(frozen=True)
class _Refusal:
    status: int
    reason: str
    message: str
    code: int = _REFUSED
    headers: tuple[tuple[str, str], ...] = ()
    data: dict[str, Any] = field(default_factory=dict)


def _http_action(scope: Scope, known_paths: frozenset[str]) -> str:
    # Only fixed vocabulary reaches the audit log: the request line is caller input.
    method = scope.get("method", "")
    path = scope.get("path", "")
    method = method if method in _HTTP_METHODS else "OTHER"
    return f"{method} {path if path in known_paths else '*'}"


def _echoed_id(payload: Any) -> str | int | None:
    if not isinstance(payload, dict):
        return None
    value = payload.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and len(value) <= _MAX_ECHOED_ID):
        return value
    return None


def _safe_name(value: Any) -> str | None:
    return value if isinstance(value, str) and _SAFE_NAME.match(value) else None


class _BiofedHttpApp:
    """The ASGI app returned by :func:`build_http_app`."""

    def __init__(self, gateway: HttpGateway, verifier: JwtVerifier, settings: HttpSettings) -> None:
        self._gateway = gateway
        self._verifier = verifier
        self._settings = settings
        self._allowed_hosts = frozenset(settings.allowed_hosts)
        self._allowed_origins = frozenset(settings.allowed_origins)
        self._limiter = TokenBucketLimiter(settings.rate_per_minute, settings.burst)
        self._router = Router(lifespan=lambda _app: gateway.lifespan())
        parts = urlsplit(settings.resource)
        self.metadata_url = f"{parts.scheme}://{parts.netloc}{METADATA_PATH}{parts.path}"
        self._metadata_paths = frozenset(
            {METADATA_PATH, METADATA_PATH + MCP_PATH, METADATA_PATH + parts.path}
        )
        self._known_paths = self._metadata_paths | {MCP_PATH}
        self._metadata = json.dumps(
            {
                "resource": settings.resource,
                "authorization_servers": list(settings.authorization_servers),
                "scopes_supported": list(settings.scopes_supported),
                "bearer_methods_supported": ["header"],
                "resource_name": RESOURCE_NAME,
            },
            separators=(",", ":"),
        ).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._router.lifespan(scope, receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    # -- responses -------------------------------------------------------------------------

    @staticmethod
    async def _send_json(
        send: Send,
        status: int,
        body: dict[str, Any],
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
            *((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers),
        ]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})

    def _audit(
        self,
        correlation_id: str,
        *,
        action: str,
        decision: str,
        reason: str,
        http_status: int,
        principal: Principal | None = None,
        subject: str | None = None,
        client_id: str | None = None,
    ) -> bool:
        """Write one audit record; False when it could not be written (fail closed)."""
        try:
            self._gateway.audit_http(
                correlation_id=correlation_id,
                action=action,
                decision=decision,
                reason=reason,
                http_status=http_status,
                principal=principal,
                subject=subject,
                client_id=client_id,
            )
        except self._gateway.audit_error:
            logger.error("Audit record not written; request %s refused.", correlation_id)
            return False
        except Exception as exc:
            # Same outcome for an unexpected failure; only its type is logged, not its text.
            logger.error(
                "Audit record not written (%s); request %s refused.",
                type(exc).__name__,
                correlation_id,
            )
            return False
        return True

    async def _audit_unavailable(
        self, send: Send, correlation_id: str, request_id: str | int | None = None
    ) -> None:
        await self._send_json(
            send,
            503,
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "error": {
                    "code": _REFUSED,
                    "message": "The request was refused because the audit log cannot be written.",
                    "data": {"correlation_id": correlation_id},
                },
            },
            (("x-correlation-id", correlation_id),),
        )

    async def _refuse(
        self,
        send: Send,
        correlation_id: str,
        refusal: _Refusal,
        *,
        action: str,
        principal: Principal | None = None,
        subject: str | None = None,
        client_id: str | None = None,
        request_id: str | int | None = None,
    ) -> None:
        written = self._audit(
            correlation_id,
            action=action,
            decision="deny",
            reason=refusal.reason,
            http_status=refusal.status,
            principal=principal,
            subject=subject,
            client_id=client_id,
        )
        if not written:
            await self._audit_unavailable(send, correlation_id, request_id)
            return
        body = {
            "jsonrpc": "2.0",
            "id": request_id,
            "error": {
                "code": refusal.code,
                "message": refusal.message,
                "data": {**refusal.data, "correlation_id": correlation_id},
            },
        }
        await self._send_json(
            send,
            refusal.status,
            body,
            (*refusal.headers, ("x-correlation-id", correlation_id)),
        )

    def _invalid_token(self, reason: str) -> _Refusal:
        return _Refusal(
            401,
            reason,
            "The bearer token is not valid for this server.",
            headers=(
                (
                    "www-authenticate",
                    f'Bearer error="invalid_token", resource_metadata="{self.metadata_url}"',
                ),
            ),
        )

    # -- the request path ------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        correlation_id = uuid.uuid4().hex
        action = _http_action(scope, self._known_paths)
        hosts = headers.getlist("host")
        if len(hosts) != 1 or hosts[0] not in self._allowed_hosts:
            refusal = _Refusal(421, "bad_host", "This server does not answer to that host name.")
            await self._refuse(send, correlation_id, refusal, action=action)
            return
        origins = headers.getlist("origin")
        if origins and (len(origins) != 1 or origins[0] not in self._allowed_origins):
            refusal = _Refusal(403, "bad_origin", "Requests from that origin are not allowed.")
            await self._refuse(send, correlation_id, refusal, action=action)
            return
        path = scope["path"]
        if path in self._metadata_paths:
            await self._serve_metadata(scope, send)
            return
        if path != MCP_PATH:
            await self._send_json(send, 404, {"error": "not_found"})
            return
        await self._mcp(scope, receive, send, headers, correlation_id, action)

    async def _serve_metadata(self, scope: Scope, send: Send) -> None:
        if scope["method"] != "GET":
            await self._send_json(send, 405, {"error": "method_not_allowed"}, (("allow", "GET"),))
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self._metadata)).encode()),
                    (b"cache-control", b"public, max-age=300"),
                    (b"x-content-type-options", b"nosniff"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self._metadata})

    async def _mcp(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: Headers,
        correlation_id: str,
        action: str,
    ) -> None:
        too_large = _Refusal(413, "body_too_large", "The request body is larger than allowed.")
        lengths = headers.getlist("content-length")
        if lengths:
            if len(lengths) != 1 or not lengths[0].isdigit():
                refusal = _Refusal(
                    400,
                    "invalid_request",
                    "The Content-Length header is not valid.",
                    code=_INVALID_REQUEST,
                )
                await self._refuse(send, correlation_id, refusal, action=action)
                return
            if int(lengths[0]) > self._settings.max_body_bytes:
                await self._refuse(send, correlation_id, too_large, action=action)
                return

        principal = await self._authenticate(send, headers, correlation_id, action)
        if principal is None:
            return

        wait = self._limiter.take(principal.key)
        if wait > 0:
            refusal = _Refusal(
                429,
                "rate_limited",
                "Too many requests; retry after the number of seconds in Retry-After.",
                headers=(("retry-after", str(max(1, math.ceil(wait)))),),
            )
            await self._refuse(send, correlation_id, refusal, action=action, principal=principal)
            return

        if scope["method"] != "POST":
            # Stateless: no session to DELETE and no stream a GET could usefully open (the SDK
            # would hold a GET open as an idle SSE stream), so 405 as the transport spec allows.
            refusal = _Refusal(
                405,
                "method_not_allowed",
                "Use POST for MCP requests; this server keeps no sessions or streams.",
                headers=(("allow", "POST"),),
            )
            await self._refuse(send, correlation_id, refusal, action=action, principal=principal)
            return

        # The MCP layer would refuse these too, but without an audit record for tools/call.
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            refusal = _Refusal(
                415,
                "unsupported_media_type",
                "Send the request with Content-Type application/json.",
            )
            await self._refuse(send, correlation_id, refusal, action=action, principal=principal)
            return
        if not check_accept_headers(Request(scope))[0]:
            refusal = _Refusal(
                406, "not_acceptable", "The Accept header must allow application/json."
            )
            await self._refuse(send, correlation_id, refusal, action=action, principal=principal)
            return

        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # Nobody to answer; nothing was forwarded.
            body.extend(message.get("body", b""))
            if len(body) > self._settings.max_body_bytes:
                await self._refuse(
                    send, correlation_id, too_large, action=action, principal=principal
                )
                return
            if not message.get("more_body", False):
                break

        forwarded = await self._screen(bytes(body), send, principal, correlation_id, action)
        if forwarded is not None:
            await self._forward(scope, forwarded, receive, send, principal, correlation_id)

    async def _authenticate(
        self, send: Send, headers: Headers, correlation_id: str, action: str
    ) -> Principal | None:
        """The principal of the request, or None after a refusal was sent."""
        values = headers.getlist("authorization")
        if not values:
            # A token in the query string or the body is not looked at, so it is never
            # logged or audited either.
            refusal = _Refusal(
                401,
                "missing_token",
                "This endpoint needs an OAuth bearer token in the Authorization header.",
                headers=(("www-authenticate", f'Bearer resource_metadata="{self.metadata_url}"'),),
            )
            await self._refuse(send, correlation_id, refusal, action=action)
            return None
        if len(values) > 1:
            await self._refuse(
                send, correlation_id, self._invalid_token("malformed_token"), action=action
            )
            return None
        value = values[0]
        if len(value) > MAX_TOKEN_BYTES + len("Bearer "):
            await self._refuse(
                send, correlation_id, self._invalid_token("token_too_large"), action=action
            )
            return None
        match = _BEARER.fullmatch(value)
        if match is None:
            await self._refuse(
                send, correlation_id, self._invalid_token("malformed_token"), action=action
            )
            return None
        token = match.group(1)
        try:
            if self._verifier.fetches_keys:
                claims = await anyio.to_thread.run_sync(self._verifier.verify, token)
            else:
                claims = self._verifier.verify(token)
        except TokenError as exc:
            await self._refuse(send, correlation_id, self._invalid_token(exc.reason), action=action)
            return None
        except Exception as exc:
            logger.error("Token verification failed unexpectedly (%s).", type(exc).__name__)
            await self._refuse(
                send, correlation_id, self._invalid_token("verification_error"), action=action
            )
            return None
        try:
            return principal_from_claims(claims, self._gateway.policy)
        except PrincipalError as exc:
            await self._refuse(
                send,
                correlation_id,
                self._invalid_token(exc.reason),
                action=action,
                subject=_safe_name(claims.get("sub")),
                client_id=_safe_name(claims.get("client_id") or claims.get("azp")),
            )
            return None

    async def _screen(
        self,
        body: bytes,
        send: Send,
        principal: Principal,
        correlation_id: str,
        action: str,
    ) -> bytes | None:
        """Check the JSON-RPC message and write its record when this layer owns it.

        Returns:
            The body to forward, re-serialised from exactly what was checked (so no parser
            difference, duplicate key or encoding trick can make the MCP layer read another
            message than the one screened), or None after a refusal was sent.
        """
        try:
            payload = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            refusal = _Refusal(
                400, "parse_error", "Parse error: the body is not valid JSON.", code=_PARSE_ERROR
            )
            await self._refuse(send, correlation_id, refusal, action=action, principal=principal)
            return None
        request_id = _echoed_id(payload)
        if (
            not isinstance(payload, dict)
            or payload.get("jsonrpc") != "2.0"
            or not isinstance(payload.get("method"), str)
        ):
            refusal = _Refusal(
                400,
                "invalid_request",
                "Invalid request: send one JSON-RPC 2.0 request object (batches are not accepted).",
                code=_INVALID_REQUEST,
            )
            await self._refuse(
                send,
                correlation_id,
                refusal,
                action=action,
                principal=principal,
                request_id=request_id,
            )
            return None

        method: str = payload["method"]
        # (action, decision, reason) of the record written here before forwarding; None when
        # the gateway's own handler records the call.
        record: tuple[str, str, str] | None
        if method not in _KNOWN_METHODS:
            # The method name is caller text: it stays out of the audit record.
            record = ("unknown", "deny", "unknown_method")
        elif method in _AUDITED_BY_GATEWAY and method != "tools/call":
            record = None
        elif method != "tools/call":
            record = (method, "allow", "ok")
        else:
            params = payload.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            required = (
                self._gateway.required_scope(principal.role, name)
                if isinstance(name, str)
                else None
            )
            if not isinstance(name, str):
                record = (method, "deny", "invalid_params")
            elif required is None:
                # Forwarded so the MCP layer answers its own not-found error, the same for a
                # tool that exists nowhere and one that belongs to another role.
                record = (method, "deny", "unknown_tool")
            elif required not in principal.scopes:
                await self._refuse(
                    send,
                    correlation_id,
                    self._insufficient_scope(required),
                    action=method,
                    principal=principal,
                    request_id=request_id,
                )
                return None
            else:
                record = None
        if record is not None:
            record_action, decision, reason = record
            if not self._audit(
                correlation_id,
                action=record_action,
                decision=decision,
                reason=reason,
                http_status=FORWARDED_STATUS,
                principal=principal,
            ):
                await self._audit_unavailable(send, correlation_id, request_id)
                return None
        return json.dumps(payload, separators=(",", ":")).encode("ascii")

    def _insufficient_scope(self, required: str) -> _Refusal:
        return _Refusal(
            403,
            "insufficient_scope",
            f"This tool requires the scope {required}, which the token does not grant.",
            headers=(
                (
                    "www-authenticate",
                    f'Bearer error="insufficient_scope", scope="{required}", '
                    f'resource_metadata="{self.metadata_url}"',
                ),
            ),
            data={"required_scope": required},
        )

    async def _forward(
        self,
        scope: Scope,
        body: bytes,
        receive: Receive,
        send: Send,
        principal: Principal,
        correlation_id: str,
    ) -> None:
        inner = dict(scope)
        # The MCP layer needs neither the token nor the query string; what it does not hold
        # it cannot log or leak. The body is the re-serialised one, so its length is new.
        inner["headers"] = [
            (k, v) for k, v in scope["headers"] if k not in _NOT_FORWARDED_HEADERS
        ] + [(b"content-length", str(len(body)).encode("ascii"))]
        inner["query_string"] = b""
        inner[PRINCIPAL_SCOPE_KEY] = principal
        inner[CORRELATION_SCOPE_KEY] = correlation_id
        id_header = (b"x-correlation-id", correlation_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), id_header]}
            await send(message)

        app = self._gateway.mcp_app(principal.role)
        await app(inner, _replay(body, receive), send_with_id)


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python's parser would accept them.
    raise ValueError("not JSON")


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive callable that hands out the buffered body once, then the real stream (so a
    client disconnect still reaches the MCP layer)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def build_http_app(gateway: HttpGateway, verifier: JwtVerifier, settings: HttpSettings) -> ASGIApp:
    """Build the authenticated HTTP front of the catalog (see the module docstring).

    Args:
        gateway: the per-role MCP apps, tool scopes and audit log.
        verifier: verifies access tokens; its audience must be ``settings.resource``.
        settings: listening address, resource URI, Host/Origin allow-lists, limits.

    Returns:
        The ASGI app (it runs ``gateway.lifespan()`` in the ASGI lifespan).

    Raises:
        ValueError: when the verifier's audience is not the configured resource URI.
    """
    if verifier.settings.audience != settings.resource:
        raise ValueError("The token audience must be the resource URI the server publishes.")
    return _BiofedHttpApp(gateway, verifier, settings)


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server TLS context that accepts TLS 1.3 only.

    Args:
        cert: PEM certificate chain.
        key: PEM private key.

    Returns:
        The context (``minimum_version`` TLS 1.3, no compression, ALPN ``http/1.1``).

    Raises:
        OSError, ssl.SSLError: when the files cannot be read or do not match.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.options |= ssl.OP_NO_COMPRESSION
    context.load_cert_chain(certfile=cert, keyfile=key)
    context.set_alpn_protocols(["http/1.1"])
    return context


def uvicorn_config(
    app: ASGIApp,
    settings: HttpSettings,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> uvicorn.Config:
    """The uvicorn configuration :func:`serve_http` runs with.

    Log level warning, no access log (a request line can hold a query string), no
    ``X-Forwarded-*`` trust, no ``Server`` header, lifespan required; with a certificate and
    key, the TLS 1.3-only context of :func:`tls_context`.

    Args:
        app: the app from :func:`build_http_app`.
        settings: host and port.
        tls_cert: PEM certificate chain (with ``tls_key``).
        tls_key: PEM private key (with ``tls_cert``).

    Returns:
        The configuration.

    Raises:
        ValueError: when only one of ``tls_cert`` and ``tls_key`` is given.
        OSError, ssl.SSLError: when the certificate or key cannot be loaded.
    """
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("Give both tls_cert and tls_key, or neither.")
    factory = None
    if tls_cert is not None and tls_key is not None:
        context = tls_context(tls_cert, tls_key)

        def factory(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> Any:
            return context

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        lifespan="on",
        ssl_context_factory=factory,
    )


def serve_http(
    app: ASGIApp,
    settings: HttpSettings,
    *,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> None:
    """Serve ``app`` with uvicorn until interrupted.

    Args:
        app: the app from :func:`build_http_app`.
        settings: host and port.
        tls_cert: PEM certificate chain; with ``tls_key`` the server speaks TLS 1.3 only.
        tls_key: PEM private key.

    Raises:
        ValueError, OSError, ssl.SSLError: as :func:`uvicorn_config`.
    """
    uvicorn.Server(uvicorn_config(app, settings, tls_cert=tls_cert, tls_key=tls_key)).run()
