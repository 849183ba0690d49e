"""Start the catalog server: stdio for one configured identity, or OAuth-protected HTTP.

Both check the reviewed tool contract first and refuse to start when the generated surface
differs from it, unless told to accept the change. Configuration problems print one message
to stderr and exit with status 2, without a traceback.
"""

import argparse
import hashlib
import hmac
import os
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from mcp_catalog.audit import AuditError, AuditLog, load_audit_key
from mcp_catalog.config import ConfigError, ServerConfig, load_config
from mcp_catalog.contract import (
    DEFAULT_CONTRACT_PATH,
    ContractError,
    check_contract,
    render_contracts,
)
from mcp_catalog.disclosure import QueryLedger
from mcp_catalog.manifest import ManifestError, load_manifest
from mcp_catalog.policy import (
    DEFAULT_POLICY_PATH,
    POLICY_ENV,
    Policy,
    PolicyError,
    load_policy,
)
from mcp_catalog.principal import PrincipalError, configured_principal
from mcp_catalog.server import CatalogBuildError, CatalogService

EXIT_CONFIGURATION = 2
AUDIT_DIR = "_audit"
AUDIT_KEY_FILE = "restricted/audit-key.json"


class ServeError(Exception):
    """The server cannot start as configured; the message says how to fix it."""


@dataclass(frozen=True)
class Identity:
    """Command-line overrides of the stdio identity."""

    principal: str | None = None
    role: str | None = None
    purpose: str | None = None
    protocol: str | None = None


def policy_path(config: ServerConfig, override: str | Path | None = None) -> Path:
    """The policy file a configuration names (or the shipped one)."""
    if override is not None:
        return Path(override)
    if config.policy:
        return Path(config.policy)
    return Path(os.environ.get(POLICY_ENV) or DEFAULT_POLICY_PATH)


def open_audit(lake: str | Path) -> AuditLog:
    """The lake's audit log, its key from ``BIOFED_AUDIT_KEY`` or ``restricted/audit-key.json``."""
    root = Path(lake)
    return AuditLog(root / AUDIT_DIR, load_audit_key(root / AUDIT_KEY_FILE))


def open_service(
    lake: str | Path,
    config: ServerConfig,
    *,
    identity: Identity = Identity(),
    policy: Policy | None = None,
) -> CatalogService:
    """Load the manifest, policy, audit log and ledger of a lake and build the service.

    Raises:
        ServeError: on any configuration problem, with a message that says how to fix it.
    """
    root = Path(lake)
    try:
        policy = policy or load_policy(policy_path(config))
        manifest = load_manifest(root / "_catalog" / "manifest.json")
        key = load_audit_key(root / AUDIT_KEY_FILE)
        audit = AuditLog(root / AUDIT_DIR, key)
        (root / AUDIT_DIR).mkdir(parents=True, exist_ok=True)
        ledger = QueryLedger(
            root / AUDIT_DIR / "ledger.sqlite", window=policy.disclosure.ledger_window
        )
        stdio = config.stdio
        principal = configured_principal(
            policy,
            subject=identity.principal or stdio.principal,
            role=identity.role or stdio.role,
            purpose=identity.purpose or stdio.purpose,
            protocol=identity.protocol if identity.protocol is not None else stdio.protocol,
        )
        # Cursors survive restarts and are shared by replicas of one lake: their key is
        # derived from the audit key, for this one use.
        cursor_secret = hmac.new(key, b"biofed-cursor-secret", hashlib.sha256).digest()
        return CatalogService(
            manifest,
            lake,
            policy=policy,
            audit=audit,
            ledger=ledger,
            stdio_principal=principal,
            cursor_secret=cursor_secret,
        )
    except PrincipalError as exc:
        raise ServeError(f"the stdio identity is not allowed by the policy: {exc}") from None
    except (
        ManifestError,
        PolicyError,
        CatalogBuildError,
        AuditError,
        OSError,
        sqlite3.Error,
    ) as exc:
        raise ServeError(str(exc)) from None


def _pin(service: CatalogService, roles: list[str], contract: Path, accept: bool) -> str:
    rendered = anyio.run(render_contracts, service, roles)
    try:
        digest = check_contract(rendered, contract, accept=accept)
    except ContractError as exc:
        raise ServeError(str(exc)) from None
    print(f"biofed serve: tool contract sha256 {digest}", file=sys.stderr)
    return digest


def run_stdio(
    lake: str | Path,
    *,
    config: ServerConfig | None = None,
    identity: Identity = Identity(),
    accept_contract: bool = False,
) -> None:
    """Serve one configured identity over stdio.

    Raises:
        SystemExit: with status 2 on a configuration problem.
    """
    try:
        config = config or load_config()
        service = open_service(lake, config, identity=identity)
        role = service.stdio_role
        contract = Path(config.contract) if config.contract else DEFAULT_CONTRACT_PATH
        _pin(service, [role], contract, accept_contract)
        server = service.server_for(role)
    except (ServeError, ConfigError) as exc:
        print(f"biofed serve: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIGURATION) from None
    server.run("stdio")


def http_settings(config: ServerConfig, policy: Policy):
    """The HTTP transport settings of a configuration."""
    from mcp_catalog.http import HttpSettings

    return HttpSettings(
        host=config.http.host,
        port=config.http.port,
        resource=config.resource(),
        allowed_hosts=tuple(config.hosts()),
        allowed_origins=tuple(config.http.allowed_origins),
        max_body_bytes=config.http.max_body_bytes,
        rate_per_minute=policy.limits.rate_per_minute,
        burst=policy.limits.burst,
        authorization_servers=(config.auth.issuer,),
        scopes_supported=tuple(policy.scopes),
    )


def verifier_for(config: ServerConfig, lake: str | Path):
    """The bearer-token verifier of a configuration."""
    from mcp_catalog.auth import AuthSettings, JwtVerifier

    jwks_file = None
    if config.auth.jwks_file:
        jwks_file = Path(config.auth.jwks_file)
        if not jwks_file.is_absolute():
            jwks_file = Path(lake) / jwks_file
    return JwtVerifier(
        AuthSettings(
            issuer=config.auth.issuer,
            audience=config.audience(),
            jwks_file=jwks_file,
            jwks_url=config.auth.jwks_url,
            algorithms=tuple(config.auth.algorithms),
            leeway_seconds=config.auth.leeway_seconds,
        )
    )


def build_http(lake: str | Path, config: ServerConfig, *, accept_contract: bool = False):
    """The HTTP app of a lake (every role of the policy, behind bearer-token checks) and the
    transport settings it was built with.

    Raises:
        ServeError: on a configuration problem.
    """
    from mcp_catalog.http import build_http_app

    if not config.auth.enabled:
        raise ServeError(
            "HTTP without token verification is not supported; enable auth in the configuration."
        )
    service = open_service(lake, config)
    contract = Path(config.contract) if config.contract else DEFAULT_CONTRACT_PATH
    _pin(service, service.roles(), contract, accept_contract)
    if config.auth.jwks_file and config.auth.issuer == "biofed-dev":
        from mcp_catalog.auth import ensure_dev_key

        ensure_dev_key(Path(lake))
    try:
        verifier = verifier_for(config, lake)
    except (OSError, ValueError) as exc:
        raise ServeError(f"the token verifier cannot start: {exc}") from None
    settings = http_settings(config, service.policy)
    return build_http_app(service, verifier, settings), settings


def run_http(
    lake: str | Path,
    *,
    config: ServerConfig,
    accept_contract: bool = False,
) -> None:
    """Serve every role over streamable HTTP with OAuth bearer tokens (and TLS when set).

    Raises:
        SystemExit: with status 2 on a configuration problem.
    """
    from mcp_catalog.http import serve_http

    try:
        app, settings = build_http(lake, config, accept_contract=accept_contract)
    except (ServeError, ConfigError) as exc:
        print(f"biofed serve: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIGURATION) from None
    tls = (config.http.tls_cert, config.http.tls_key)
    print(_http_banner(config, lake), file=sys.stderr)
    serve_http(
        app,
        settings,
        tls_cert=Path(tls[0]) if tls[0] else None,
        tls_key=Path(tls[1]) if tls[1] else None,
    )


def _http_banner(config: ServerConfig, lake: str | Path) -> str:
    dev = config.auth.issuer == "biofed-dev"
    lines = [
        f"biofed catalog on {config.resource()} (protected resource metadata: "
        f"{config.base_url()}/.well-known/oauth-protected-resource/mcp)",
    ]
    if dev:
        lines += [
            "Development tokens: issue one with",
            f"  biofed token issue --lake {lake} --role researcher --purpose research "
            f"--protocol BIOFED-DEMO-001 --host {config.http.host} --port {config.http.port}",
            "and send it as `Authorization: Bearer <token>`, e.g. in VS Code .vscode/mcp.json:",
            f'  {{"servers": {{"biofed": {{"type": "http", "url": "{config.resource()}", '
            '"headers": {"Authorization": "Bearer <token>"}}}}',
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m mcp_catalog.serve --lake L [--config C] [--role R ...]`` (stdio)."""
    parser = argparse.ArgumentParser(
        prog="python -m mcp_catalog.serve",
        description="Serve the biofed catalog over stdio for one configured identity.",
    )
    parser.add_argument("--lake", required=True, help="lake root folder")
    parser.add_argument("--config", help="server configuration (default: the shipped one)")
    parser.add_argument("--role")
    parser.add_argument("--purpose")
    parser.add_argument("--protocol")
    parser.add_argument("--principal")
    parser.add_argument("--accept-contract", action="store_true")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"biofed serve: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIGURATION) from None
    identity = Identity(args.principal, args.role, args.purpose, args.protocol)
    run_stdio(args.lake, config=config, identity=identity, accept_contract=args.accept_contract)


if __name__ == "__main__":
    main()
