"""The HTTP transport end to end: uvicorn on a loopback port, real signed JWTs, real MCP apps
per role behind the front, and httpx (``httpx2``) or the SDK's own client in front of it."""

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_catalog.auth import (
    DEV_ISSUER,
    AuthSettings,
    JwtVerifier,
    dev_key_paths,
    ensure_dev_key,
    issue_dev_token,
)
from mcp_catalog.http import (
    CORRELATION_SCOPE_KEY,
    PRINCIPAL_SCOPE_KEY,
    HttpSettings,
    build_http_app,
    tls_context,
    uvicorn_config,
)
from mcp_catalog.policy import Policy, load_policy
from mcp_catalog.principal import Principal

PROTOCOL = "BIOFED-DEMO-001"
LEGACY_VERSION = "2025-11-25"
TOOL_SCOPES = {
    "researcher": {
        "echo_identity": "biofed.research.read",
        "aggregate_identity": "biofed.research.aggregate",
    },
    "compliance_officer": {"audit_identity": "biofed.audit.read"},
}
READ = "biofed.research.read"
AGGREGATE = "biofed.research.aggregate"


class FakeAuditError(Exception):
    """What the fake audit log raises when told the disk is full."""


class FakeGateway:
    """Real MCP apps per role with identity-echo tools, and an in-memory audit list."""

    audit_error = FakeAuditError

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.records: list[dict[str, Any]] = []
        self.tool_runs: list[tuple[str, str]] = []
        self.forwarded = 0
        self.fail_audit = False
        self._servers: dict[str, MCPServer] = {}
        self._apps: dict[str, ASGIApp] = {}
        for role, tools in TOOL_SCOPES.items():
            server = MCPServer(f"biofed-test-{role}", log_level="WARNING")
            for name in tools:
                server.add_tool(self._identity_tool(name), name=name, description="Who is asking.")
            self._servers[role] = server
            self._apps[role] = server.streamable_http_app(
                stateless_http=True,
                json_response=True,
                # The front checks Host and Origin; the inner app must not second-guess it.
                transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            )

    def _identity_tool(self, name: str) -> Callable[..., dict[str, Any]]:
        def identity(ctx: Context, note: str = "") -> dict[str, Any]:
            request = ctx.request_context.request
            principal: Principal = request.scope[PRINCIPAL_SCOPE_KEY]
            self.tool_runs.append((name, principal.subject))
            return {
                "subject": principal.subject,
                "role": principal.role,
                "purpose": principal.purpose,
                "scopes": sorted(principal.scopes),
                "correlation_id": request.scope[CORRELATION_SCOPE_KEY],
                "saw_authorization": "authorization" in request.headers,
                "saw_query": request.url.query,
            }

        return identity

    def mcp_app(self, role: str) -> ASGIApp:
        inner = self._apps[role]

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            self.forwarded += 1
            await inner(scope, receive, send)

        return counted

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for server in self._servers.values():
                await stack.enter_async_context(server.session_manager.run())
            yield

    def required_scope(self, role: str, tool: str) -> str | None:
        return TOOL_SCOPES.get(role, {}).get(tool)

    def audit_http(self, **record: Any) -> None:
        if self.fail_audit:
            raise FakeAuditError("No space left on device: /srv/lake/restricted/audit/0001.log")
        self.records.append(record)


@dataclass
class Running:
    """One server on a loopback port."""

    port: int
    settings: HttpSettings
    gateway: FakeGateway
    lake: Path
    scheme: str = "http"

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    def token(
        self,
        subject: str = "alice",
        role: str = "researcher",
        scopes: tuple[str, ...] = (READ, AGGREGATE),
    ) -> str:
        purpose = {"researcher": "research", "compliance_officer": "audit"}[role]
        return issue_dev_token(
            self.lake,
            subject=subject,
            role=role,
            purpose=purpose,
            protocol=PROTOCOL if purpose == "research" else None,
            audience=self.settings.resource,
            scopes=list(scopes),
        )

    def signed(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        """A token with hand-made claims, signed with the trusted development key."""
        key_path, jwks_path = dev_key_paths(self.lake)
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        kid = json.loads(jwks_path.read_text())["keys"][0]["kid"]
        return jwt.encode(claims, key, algorithm="RS256", headers=header or {"kid": kid})

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        values = {
            "iss": DEV_ISSUER,
            "aud": self.settings.resource,
            "sub": "alice",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "scope": f"{READ} {AGGREGATE}",
            "biofed_role": "researcher",
            "biofed_purpose": "research",
            "biofed_protocol": PROTOCOL,
        }
        values.update(overrides)
        return values


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lake")
    ensure_dev_key(root)
    return root


def _start(app: ASGIApp, config: uvicorn.Config, sock: socket.socket) -> Callable[[], None]:
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(15)
        sock.close()

    return stop


@pytest.fixture
def serve(policy: Policy, lake: Path) -> Iterator[Callable[..., Running]]:
    stops: list[Callable[[], None]] = []

    def start(tls: tuple[Path, Path] | None = None, **overrides: Any) -> Running:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        scheme = "https" if tls else "http"
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": port,
            "resource": f"{scheme}://127.0.0.1:{port}/mcp",
            "allowed_hosts": (f"127.0.0.1:{port}", f"localhost:{port}"),
            "authorization_servers": (DEV_ISSUER,),
            "scopes_supported": tuple(sorted(policy.scopes)),
            **overrides,
        }
        settings = HttpSettings(**values)
        gateway = FakeGateway(policy)
        verifier = JwtVerifier(
            AuthSettings(
                issuer=DEV_ISSUER, audience=settings.resource, jwks_file=dev_key_paths(lake)[1]
            )
        )
        app = build_http_app(gateway, verifier, settings)
        tls_cert, tls_key = tls if tls else (None, None)
        config = uvicorn_config(app, settings, tls_cert=tls_cert, tls_key=tls_key)
        stops.append(_start(app, config, sock))
        return Running(port, settings, gateway, lake, scheme)

    yield start
    for stop in reversed(stops):
        stop()


@pytest.fixture
def running(serve: Callable[..., Running]) -> Running:
    return serve()


@pytest.fixture
def client() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=10) as http:
        yield http


MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": LEGACY_VERSION,
}


def rpc(
    client: httpx2.Client,
    server: Running,
    token: str | None,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    request_id: int | str = 1,
    headers: dict[str, str] | None = None,
) -> httpx2.Response:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        body["params"] = params
    sent = dict(MCP_HEADERS)
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    sent.update(headers or {})
    return client.post(server.url, content=json.dumps(body), headers=sent)


def call(
    client: httpx2.Client, server: Running, token: str | None, tool: str, **arguments: Any
) -> httpx2.Response:
    return rpc(client, server, token, "tools/call", {"name": tool, "arguments": arguments})


def structured(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert not result.get("isError"), result
    return result["structuredContent"]


def assert_denied(
    response: httpx2.Response,
    server: Running,
    status: int,
    reason: str,
    *secrets: str,
) -> dict[str, Any]:
    """One deny record with this reason, the correlation id in header and body, no tool run,
    nothing forwarded, and none of ``secrets`` in the response or the audit records."""
    assert response.status_code == status, response.text
    gateway = server.gateway
    assert len(gateway.records) == 1, gateway.records
    (record,) = gateway.records
    assert (record["decision"], record["reason"], record["http_status"]) == (
        "deny",
        reason,
        status,
    )
    correlation_id = response.headers["x-correlation-id"]
    assert record["correlation_id"] == correlation_id and len(correlation_id) == 32
    body = response.json()
    assert body["error"]["data"]["correlation_id"] == correlation_id
    assert gateway.tool_runs == []
    assert gateway.forwarded == 0
    exposed = response.text + repr(dict(response.headers)) + repr(gateway.records)
    for secret in secrets:
        assert secret not in exposed
    return record


# -- A. authentication and authorisation -------------------------------------------------------


def test_a_request_without_a_token_gets_401_pointing_at_the_resource_metadata(
    running: Running, client: httpx2.Client
) -> None:
    response = call(client, running, None, "echo_identity")
    record = assert_denied(response, running, 401, "missing_token")
    assert response.headers["www-authenticate"] == (
        f'Bearer resource_metadata="{running.base}/.well-known/oauth-protected-resource/mcp"'
    )
    assert record["principal"] is None and record["action"] == "POST /mcp"


def test_a_token_in_the_query_string_or_the_body_is_ignored_and_not_recorded(
    running: Running, client: httpx2.Client
) -> None:
    token = running.token()
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "echo_identity", "arguments": {}, "access_token": token},
        "access_token": token,
    }
    response = client.post(
        f"{running.url}?access_token={token}", content=json.dumps(body), headers=MCP_HEADERS
    )
    assert_denied(response, running, 401, "missing_token", token)


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Basic YWxpY2U6c2VjcmV0",
        "garbage",
        "Bearer two words",
        "Bearer  {token}",
        "Token {token}",
        "Bearer\t{token}",
        "Bearer {token}.x",
        "Bearer {token},Bearer {token}",
    ],
)
def test_a_malformed_authorization_header_is_401_invalid_token(
    running: Running, client: httpx2.Client, authorization: str
) -> None:
    token = running.token()
    headers = {"Authorization": authorization.format(token=token)}
    response = rpc(client, running, None, "tools/call", {"name": "echo_identity"}, headers=headers)
    assert_denied(response, running, 401, "malformed_token", token)
    assert response.headers["www-authenticate"] == (
        'Bearer error="invalid_token", '
        f'resource_metadata="{running.base}/.well-known/oauth-protected-resource/mcp"'
    )


def test_two_authorization_headers_are_refused(running: Running, client: httpx2.Client) -> None:
    alice, bob = running.token(subject="alice"), running.token(subject="bob")
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo_identity"}}
    headers = [
        *MCP_HEADERS.items(),
        ("Authorization", f"Bearer {alice}"),
        ("Authorization", f"Bearer {bob}"),
    ]
    response = client.post(running.url, content=json.dumps(body), headers=headers)
    assert_denied(response, running, 401, "malformed_token", alice, bob)


def test_an_overlong_authorization_header_is_refused_before_parsing(
    running: Running, client: httpx2.Client
) -> None:
    # Not a JWT at all: the reason shows the length was checked first.
    response = rpc(client, running, "{" * 9000, "tools/call", {"name": "echo_identity"})
    assert_denied(response, running, 401, "token_too_large")


def test_a_one_megabyte_token_never_reaches_the_tool(
    running: Running, client: httpx2.Client
) -> None:
    response = rpc(client, running, "a" * 1_000_000, "tools/call", {"name": "echo_identity"})
    assert_denied(response, running, 401, "token_too_large")


def _hs256_with_public_key(server: Running) -> str:
    key_path, jwks_path = dev_key_paths(server.lake)
    kid = json.loads(jwks_path.read_text())["keys"][0]["kid"]
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def segment(value: dict[str, Any]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{segment({'alg': 'HS256', 'kid': kid})}.{segment(server.claims())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _alg_none(server: Running) -> str:
    return jwt.encode(server.claims(), key=None, algorithm="none")


def _foreign_key(server: Running) -> str:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(server.claims(), stranger, algorithm="RS256", headers={"kid": "stranger"})


TOKEN_CASES: dict[str, tuple[Callable[[Running], str], str]] = {
    "expired": (lambda s: s.signed(s.claims(exp=int(time.time()) - 120)), "expired"),
    "nbf_future": (lambda s: s.signed(s.claims(nbf=int(time.time()) + 600)), "not_yet_valid"),
    "wrong_audience": (
        lambda s: s.signed(s.claims(aud="http://127.0.0.1:1/mcp")),
        "wrong_audience",
    ),
    "audience_trailing_slash": (
        lambda s: s.signed(s.claims(aud=s.settings.resource + "/")),
        "wrong_audience",
    ),
    "no_audience": (
        lambda s: s.signed({k: v for k, v in s.claims().items() if k != "aud"}),
        "missing_audience",
    ),
    "wrong_issuer": (lambda s: s.signed(s.claims(iss="https://evil.example")), "wrong_issuer"),
    "unknown_key": (_foreign_key, "unknown_key"),
    "alg_none": (_alg_none, "disallowed_algorithm"),
    "hs256_with_public_key": (_hs256_with_public_key, "disallowed_algorithm"),
    "unknown_role": (lambda s: s.signed(s.claims(biofed_role="admin")), "unknown_role"),
    "purpose_not_allowed": (
        lambda s: s.signed(s.claims(biofed_purpose="treatment")),
        "purpose_not_allowed",
    ),
    "no_protocol": (
        lambda s: s.signed({k: v for k, v in s.claims().items() if k != "biofed_protocol"}),
        "protocol_required",
    ),
}


@pytest.mark.parametrize("case", sorted(TOKEN_CASES))
def test_a_token_that_does_not_verify_is_401_with_the_reason_audited(
    running: Running, client: httpx2.Client, case: str
) -> None:
    make, reason = TOKEN_CASES[case]
    token = make(running)
    response = call(client, running, token, "echo_identity")
    record = assert_denied(response, running, 401, reason, token)
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert response.json()["error"]["message"] == "The bearer token is not valid for this server."
    assert record["principal"] is None


def test_a_verified_token_refused_by_the_policy_records_its_subject(
    running: Running, client: httpx2.Client
) -> None:
    token = running.signed(running.claims(biofed_role="admin", sub="mallory"))
    record = assert_denied(
        call(client, running, token, "echo_identity"), running, 401, "unknown_role"
    )
    assert record["subject"] == "mallory"


def test_a_token_lacking_the_tools_scope_is_403_naming_it(
    running: Running, client: httpx2.Client
) -> None:
    token = running.token(scopes=(READ,))
    response = call(client, running, token, "aggregate_identity")
    record = assert_denied(response, running, 403, "insufficient_scope", token)
    assert response.headers["www-authenticate"] == (
        f'Bearer error="insufficient_scope", scope="{AGGREGATE}", '
        f'resource_metadata="{running.base}/.well-known/oauth-protected-resource/mcp"'
    )
    error = response.json()["error"]
    assert error["data"]["required_scope"] == AGGREGATE
    assert AGGREGATE in error["message"]
    assert response.json()["id"] == 1
    assert record["principal"].subject == "alice" and record["action"] == "tools/call"


@pytest.mark.parametrize(
    "scope",
    [
        "Biofed.Research.Aggregate",
        "BIOFED.RESEARCH.AGGREGATE",
        f"{AGGREGATE}\t",
        f"{AGGREGATE}\u00a0",
        f"{AGGREGATE}.",
        "biofed.*",
        "biofed.research.*",
        "*",
        f"{AGGREGATE}*",
        ["biofed.research.aggregate"],
        f"{READ},{AGGREGATE}",
    ],
)
def test_scope_strings_match_exactly_or_not_at_all(
    running: Running, client: httpx2.Client, scope: Any
) -> None:
    token = running.signed(running.claims(scope=scope))
    response = call(client, running, token, "aggregate_identity")
    assert_denied(response, running, 403, "insufficient_scope", token)


def test_identity_in_arguments_or_meta_does_not_change_the_principal(
    running: Running, client: httpx2.Client
) -> None:
    token = running.token(subject="alice")
    params = {
        "name": "echo_identity",
        "arguments": {
            "note": "hi",
            "as_user": "mallory",
            "_meta": {"role": "admin", "subject": "mallory"},
        },
        "_meta": {"role": "admin", "biofed.principal": "mallory", "as_user": "mallory"},
    }
    headers = {"X-Biofed-Principal": "mallory", "X-Forwarded-User": "mallory"}
    response = rpc(client, running, token, "tools/call", params, headers=headers)
    seen = structured(response)
    assert (seen["subject"], seen["role"], seen["purpose"]) == ("alice", "researcher", "research")
    assert running.gateway.tool_runs == [("echo_identity", "alice")]


def test_the_tool_sees_the_principal_but_neither_the_token_nor_the_query(
    running: Running, client: httpx2.Client
) -> None:
    token = running.token(subject="alice", scopes=(READ,))
    response = client.post(
        f"{running.url}?debug=1",
        content=json.dumps(
            {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo_identity"}}
        ),
        headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"},
    )
    seen = structured(response)
    assert seen["subject"] == "alice" and seen["scopes"] == [READ]
    assert seen["saw_authorization"] is False and seen["saw_query"] == ""
    assert seen["correlation_id"] == response.headers["x-correlation-id"]
    # tools/call is audited by the gateway's tool handler, not a second time here.
    assert running.gateway.records == []


@pytest.mark.anyio
async def test_interleaved_requests_from_two_principals_each_see_their_own_identity(
    running: Running,
) -> None:
    tokens = {
        "alice": (running.token(subject="alice"), "echo_identity", "researcher"),
        "carol": (
            running.token(
                subject="carol", role="compliance_officer", scopes=("biofed.audit.read",)
            ),
            "audit_identity",
            "compliance_officer",
        ),
    }
    mismatches: list[tuple[str, Any]] = []

    async def one(http: httpx2.AsyncClient, who: str, n: int) -> None:
        token, tool, role = tokens[who]
        body = {
            "jsonrpc": "2.0",
            "id": n,
            "method": "tools/call",
            "params": {"name": tool, "arguments": {"note": who}},
        }
        response = await http.post(
            running.url,
            content=json.dumps(body),
            headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"},
        )
        seen = response.json()["result"]["structuredContent"]
        if (seen["subject"], seen["role"]) != (who, role):
            mismatches.append((who, seen))

    async with httpx2.AsyncClient(timeout=20) as http, anyio.create_task_group() as group:
        for n in range(40):
            group.start_soon(one, http, "alice", n)
            group.start_soon(one, http, "carol", n)
    assert mismatches == []
    runs = running.gateway.tool_runs
    assert sorted(set(runs)) == [("audit_identity", "carol"), ("echo_identity", "alice")]
    assert len(runs) == 80


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1:1", "localhost.evil.example:{port}"])
def test_an_unknown_host_header_is_421(running: Running, client: httpx2.Client, host: str) -> None:
    token = running.token()
    response = call_with_headers(client, running, token, {"Host": host.format(port=running.port)})
    record = assert_denied(response, running, 421, "bad_host", token)
    assert record["principal"] is None


def call_with_headers(
    client: httpx2.Client, server: Running, token: str, headers: dict[str, str]
) -> httpx2.Response:
    return rpc(client, server, token, "tools/call", {"name": "echo_identity"}, headers=headers)


def test_an_origin_that_is_not_allowed_is_403(running: Running, client: httpx2.Client) -> None:
    token = running.token()
    response = call_with_headers(client, running, token, {"Origin": "http://evil.example"})
    assert_denied(response, running, 403, "bad_origin", token)


def test_an_allowed_origin_and_an_allowed_alias_host_pass(
    serve: Callable[..., Running], client: httpx2.Client
) -> None:
    server = serve(allowed_origins=("https://agent.biofed.example",))
    headers = {"Origin": "https://agent.biofed.example", "Host": f"localhost:{server.port}"}
    response = call_with_headers(client, server, server.token(), headers)
    assert structured(response)["subject"] == "alice"


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]
)
def test_the_protected_resource_metadata_is_served_without_auth(
    running: Running, client: httpx2.Client, path: str
) -> None:
    response = client.get(running.base + path)
    assert response.status_code == 200
    assert response.json() == {
        "resource": running.url,
        "authorization_servers": [DEV_ISSUER],
        "scopes_supported": sorted(load_policy().scopes),
        "bearer_methods_supported": ["header"],
        "resource_name": "biofed catalog",
    }
    assert running.gateway.records == []


@pytest.mark.parametrize("path", ["/", "/mcp/", "/MCP", "/mcp/../mcp2", "/admin"])
def test_other_paths_are_404_and_forward_nothing(
    running: Running, client: httpx2.Client, path: str
) -> None:
    response = client.post(
        running.base + path,
        content="{}",
        headers={**MCP_HEADERS, "Authorization": f"Bearer {running.token()}"},
    )
    assert response.status_code == 404
    assert running.gateway.forwarded == 0 and running.gateway.records == []


# -- F. protocol and robustness ----------------------------------------------------------------


def post_raw(
    client: httpx2.Client, server: Running, token: str, content: bytes | str | Iterator[bytes]
) -> httpx2.Response:
    return client.post(
        server.url, content=content, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    )


PING = '{"jsonrpc": "2.0", "id": 1, "method": "ping"}'


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc": "2.0", "id": 1, "method": ',
        b"not json",
        b"\xff\xfe",
        b"[" * 100_000,
        b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": NaN}}',
        b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": -Infinity}}',
        PING.encode("utf-16"),
        b"\xef\xbb\xbf" + PING.encode(),
    ],
    ids=["truncated", "text", "bytes", "deep", "nan", "infinity", "utf16", "bom"],
)
def test_malformed_json_is_a_parse_error(
    running: Running, client: httpx2.Client, body: bytes
) -> None:
    token = running.token()
    response = post_raw(client, running, token, body)
    assert_denied(response, running, 400, "parse_error", token)
    error = response.json()
    assert error["id"] is None and error["error"]["code"] == -32700


@pytest.mark.parametrize(
    "body",
    [
        [{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}],
        [],
        "tools/list",
        42,
        None,
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "id": 1, "method": 7},
        {"id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 1, "result": {}},
    ],
)
def test_batches_and_non_json_rpc_bodies_are_invalid_requests(
    running: Running, client: httpx2.Client, body: Any
) -> None:
    token = running.token()
    response = post_raw(client, running, token, json.dumps(body))
    assert_denied(response, running, 400, "invalid_request", token)
    assert response.json()["error"]["code"] == -32600


@pytest.mark.parametrize(
    ("header", "value", "status", "reason"),
    [
        ("Content-Type", "text/plain", 415, "unsupported_media_type"),
        ("Content-Type", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ("Accept", "text/html", 406, "not_acceptable"),
    ],
)
def test_content_the_mcp_layer_would_refuse_is_refused_and_audited_here(
    running: Running, client: httpx2.Client, header: str, value: str, status: int, reason: str
) -> None:
    token = running.token()
    response = call_with_headers(client, running, token, {header: value})
    assert_denied(response, running, status, reason, token)


def test_the_mcp_layer_runs_exactly_the_message_that_was_screened(
    running: Running, client: httpx2.Client
) -> None:
    token = running.token(scopes=(READ,))
    # Duplicate keys: whichever one a parser keeps, the SDK reads the one the front checked.
    hidden = (
        '{"jsonrpc": "2.0", "id": 1, "method": "tools/call",'
        ' "params": {"name": "aggregate_identity", "name": "echo_identity"}}'
    )
    assert structured(post_raw(client, running, token, hidden))["subject"] == "alice"
    assert running.gateway.tool_runs == [("echo_identity", "alice")]
    running.gateway.tool_runs.clear()
    running.gateway.forwarded = 0
    smuggled = (
        '{"jsonrpc": "2.0", "id": 1, "method": "tools/call",'
        ' "params": {"name": "echo_identity", "name": "aggregate_identity"}}'
    )
    response = post_raw(client, running, token, smuggled)
    assert_denied(response, running, 403, "insufficient_scope", token)


def test_an_oversized_body_is_413_by_declared_length_before_auth(
    serve: Callable[..., Running], client: httpx2.Client
) -> None:
    server = serve(max_body_bytes=2048)
    response = client.post(server.url, content=b" " * 4096, headers=MCP_HEADERS)
    record = assert_denied(response, server, 413, "body_too_large")
    assert record["principal"] is None


def test_an_oversized_streamed_body_is_cut_at_the_cap(
    serve: Callable[..., Running], client: httpx2.Client
) -> None:
    server = serve(max_body_bytes=2048)
    token = server.token()

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b" " * 1024

    response = post_raw(client, server, token, chunks())
    record = assert_denied(response, server, 413, "body_too_large", token)
    assert record["principal"].subject == "alice"


def test_an_unknown_tool_is_audited_and_answered_not_found_by_the_mcp_layer(
    running: Running, client: httpx2.Client
) -> None:
    response = call(client, running, running.token(), "drop_tables")
    other_role = call(client, running, running.token(subject="bob"), "audit_identity")
    for answer in (response, other_role):
        assert answer.status_code == 200
        result = answer.json()
        assert result.get("error") or result["result"]["isError"]
    # The same answer for a tool that exists nowhere and one of another role.
    assert _without_ids(response.json()) == _without_ids(other_role.json())
    records = running.gateway.records
    assert [(r["decision"], r["reason"], r["action"]) for r in records] == [
        ("deny", "unknown_tool", "tools/call"),
        ("deny", "unknown_tool", "tools/call"),
    ]
    assert running.gateway.tool_runs == []


def _without_ids(body: dict[str, Any]) -> str:
    return (
        json.dumps({k: v for k, v in body.items() if k != "id"}, sort_keys=True)
        .replace("drop_tables", "X")
        .replace("audit_identity", "X")
    )


def test_an_unknown_method_is_audited_without_its_name_and_answered_by_the_sdk(
    running: Running, client: httpx2.Client
) -> None:
    response = rpc(client, running, running.token(), "tools/execute_everything")
    assert response.json()["error"]["code"] == -32601
    (record,) = running.gateway.records
    assert (record["decision"], record["reason"], record["action"]) == (
        "deny",
        "unknown_method",
        "unknown",
    )


def test_other_methods_are_audited_as_allowed_and_list_only_the_roles_tools(
    running: Running, client: httpx2.Client
) -> None:
    response = rpc(client, running, running.token(), "tools/list")
    names = sorted(tool["name"] for tool in response.json()["result"]["tools"])
    assert names == ["aggregate_identity", "echo_identity"]
    (record,) = running.gateway.records
    assert (record["decision"], record["reason"], record["action"]) == ("allow", "ok", "tools/list")
    assert record["correlation_id"] == response.headers["x-correlation-id"]


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT"])
def test_only_post_is_served_on_mcp(running: Running, client: httpx2.Client, method: str) -> None:
    token = running.token()
    response = client.request(
        method,
        running.url,
        headers={"Accept": "text/event-stream", "Authorization": f"Bearer {token}"},
    )
    record = assert_denied(response, running, 405, "method_not_allowed", token)
    assert response.headers["allow"] == "POST"
    assert record["action"] == f"{method} /mcp"


def test_the_rate_limit_is_per_principal(
    serve: Callable[..., Running], client: httpx2.Client
) -> None:
    server = serve(rate_per_minute=1, burst=3)
    alice, bob = server.token(subject="alice"), server.token(subject="bob")
    for _ in range(3):
        assert structured(call(client, server, alice, "echo_identity"))["subject"] == "alice"
    server.gateway.tool_runs.clear()
    server.gateway.forwarded = 0
    limited = call(client, server, alice, "echo_identity")
    record = assert_denied(limited, server, 429, "rate_limited", alice)
    assert record["principal"].subject == "alice"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert structured(call(client, server, bob, "echo_identity"))["subject"] == "bob"


@pytest.mark.parametrize("with_token", [True, False])
def test_an_unwritable_audit_log_is_503_and_nothing_is_forwarded(
    running: Running, client: httpx2.Client, with_token: bool
) -> None:
    running.gateway.fail_audit = True
    token = running.token() if with_token else None
    response = rpc(client, running, token, "tools/list")
    assert response.status_code == 503
    assert running.gateway.forwarded == 0 and running.gateway.records == []
    body = response.json()
    assert body["error"]["message"] == (
        "The request was refused because the audit log cannot be written."
    )
    assert body["error"]["data"]["correlation_id"] == response.headers["x-correlation-id"]
    assert "restricted" not in response.text and "No space" not in response.text


def test_an_unwritable_audit_log_stops_a_call_to_an_unknown_tool(
    running: Running, client: httpx2.Client
) -> None:
    running.gateway.fail_audit = True
    response = call(client, running, running.token(), "drop_tables")
    assert response.status_code == 503
    assert running.gateway.forwarded == 0


# -- the real MCP client through the front -----------------------------------------------------


@pytest.mark.anyio
async def test_the_sdk_client_initializes_lists_and_calls_through_the_front(
    running: Running,
) -> None:
    token = running.token(subject="alice")
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=20) as http:
        transport = streamable_http_client(running.url, http_client=http)
        async with Client(transport, mode="legacy") as mcp:
            listed = await mcp.list_tools()
            result = await mcp.call_tool("echo_identity", {"note": "hello"})
    assert sorted(t.name for t in listed.tools) == ["aggregate_identity", "echo_identity"]
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["subject"] == "alice"
    actions = [(r["action"], r["decision"], r["reason"]) for r in running.gateway.records]
    assert ("initialize", "allow", "ok") in actions
    assert ("tools/list", "allow", "ok") in actions
    assert all(r["principal"].subject == "alice" for r in running.gateway.records)
    assert running.gateway.tool_runs == [("echo_identity", "alice")]


@pytest.mark.anyio
async def test_the_sdk_client_on_the_2026_protocol_calls_through_the_front(
    running: Running,
) -> None:
    token = running.token(subject="alice")
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=20)
    async with http, Client(streamable_http_client(running.url, http_client=http)) as mcp:
        version = mcp.protocol_version
        result = await mcp.call_tool("echo_identity", {"note": "hello"})
    assert version == "2026-07-28"
    actions = [(r["action"], r["decision"], r["reason"]) for r in running.gateway.records]
    assert ("server/discover", "allow", "ok") in actions
    assert result.structured_content is not None
    assert result.structured_content["subject"] == "alice"
    assert running.gateway.tool_runs == [("echo_identity", "alice")]


@pytest.mark.anyio
async def test_the_sdk_client_sees_insufficient_scope_as_an_error(running: Running) -> None:
    token = running.token(subject="alice", scopes=(READ,))
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=20)
    transport = streamable_http_client(running.url, http_client=http)
    async with http, Client(transport, mode="legacy") as mcp:
        with pytest.raises(MCPError) as caught:
            await mcp.call_tool("aggregate_identity", {})
    assert AGGREGATE in str(caught.value)
    assert running.gateway.tool_runs == []


# -- TLS ---------------------------------------------------------------------------------------


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)

    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _client_context(cert: Path, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if maximum is not None:
        context.maximum_version = maximum
    return context


def test_the_tls_context_accepts_tls_1_3_only(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_context = tls_context(cert, key)
    assert server_context.minimum_version == ssl.TLSVersion.TLSv1_3
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    outcomes: list[str] = []

    def accept(count: int) -> None:
        for _ in range(count):
            connection, _ = listener.accept()
            try:
                with server_context.wrap_socket(connection, server_side=True) as tls:
                    outcomes.append(str(tls.version()))
            except (ssl.SSLError, OSError):
                outcomes.append("refused")

    thread = threading.Thread(target=accept, args=(2,), daemon=True)
    thread.start()
    tls12 = _client_context(cert, ssl.TLSVersion.TLSv1_2)
    with socket.create_connection(("127.0.0.1", port)) as raw, pytest.raises(ssl.SSLError):
        tls12.wrap_socket(raw, server_hostname="127.0.0.1")
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        _client_context(cert).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() == "TLSv1.3"
    thread.join(10)
    listener.close()
    assert outcomes == ["refused", "TLSv1.3"]


def test_the_server_over_tls_refuses_tls_1_2_clients(
    serve: Callable[..., Running], tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    server = serve(tls=(cert, key))
    token = server.token()
    with httpx2.Client(verify=_client_context(cert), timeout=10) as tls13:
        response = tls13.post(
            server.url,
            content=json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "tools/call",
                    "params": {"name": "echo_identity"},
                }
            ),
            headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"},
        )
        assert structured(response)["subject"] == "alice"
    tls12 = httpx2.Client(verify=_client_context(cert, ssl.TLSVersion.TLSv1_2), timeout=10)
    with tls12, pytest.raises(httpx2.ConnectError):
        tls12.get(server.base + "/.well-known/oauth-protected-resource")
