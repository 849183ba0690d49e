"""How a catalog server is deployed: profile, transport, bind address, TLS, token issuer.

``mcp_catalog/server.yaml`` is the shipped development configuration (loopback HTTP with
local development tokens, stdio as a researcher). A production deployment passes its own
file to ``biofed serve --config`` and runs ``biofed scan --config`` on it first.
"""

import ipaddress
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "server.yaml"
_STRICT = ConfigDict(extra="forbid")


class ConfigError(Exception):
    """The configuration file is missing, not YAML, or does not validate."""


class StdioIdentity(BaseModel):
    """Who a stdio server acts as: stdio has no token, so identity is configuration."""

    model_config = _STRICT

    principal: str = "local-user"
    role: str = "researcher"
    purpose: str = "research"
    protocol: str | None = "BIOFED-DEMO-001"


class HttpConfig(BaseModel):
    """The streamable-HTTP transport."""

    model_config = _STRICT

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=1, le=65535)
    public_url: str | None = None
    """The URL clients use (``https://catalog.example.org``); the resource URI and token
    audience are ``<public_url>/mcp``. Defaults to ``http(s)://<host>:<port>``."""
    allowed_hosts: list[str] | None = None
    """Host header values accepted (DNS-rebinding protection); defaults to the bind address
    and ``localhost`` on its port."""
    allowed_origins: list[str] = []
    max_body_bytes: int = Field(1_000_000, ge=1024, le=64_000_000)
    tls_cert: str | None = None
    tls_key: str | None = None


class AuthConfig(BaseModel):
    """Bearer-token verification (OAuth 2.1 resource server)."""

    model_config = _STRICT

    enabled: bool = True
    issuer: str = "biofed-dev"
    audience: str | None = None
    """Exact audience tokens must carry; defaults to the resource URI."""
    jwks_file: str | None = "restricted/dev-jwks.json"
    """A JWKS file; relative paths are below the lake root."""
    jwks_url: str | None = None
    algorithms: list[str] = ["RS256", "ES256", "EdDSA"]
    leeway_seconds: int = Field(30, ge=0, le=300)


class ServerConfig(BaseModel):
    """A catalog server deployment."""

    model_config = _STRICT

    profile: Literal["development", "production"] = "development"
    transport: Literal["stdio", "http"] = "stdio"
    policy: str | None = None
    """Path of the access policy (relative to this file); the shipped
    ``mcp_catalog/policy.yaml`` when unset."""
    contract: str | None = None
    """Path of the reviewed tool contract (relative to this file); the shipped
    ``mcp_catalog/contract.json`` when unset."""
    stdio: StdioIdentity = StdioIdentity()
    http: HttpConfig = HttpConfig()
    auth: AuthConfig = AuthConfig()

    def base_url(self) -> str:
        """The URL clients reach the server at."""
        if self.http.public_url:
            return self.http.public_url.rstrip("/")
        scheme = "https" if self.http.tls_cert else "http"
        host = self.http.host if ":" not in self.http.host else f"[{self.http.host}]"
        return f"{scheme}://{host}:{self.http.port}"

    def resource(self) -> str:
        """The protected resource URI (RFC 9728), which is also the token audience."""
        return f"{self.base_url()}/mcp"

    def audience(self) -> str:
        """The exact audience tokens must carry."""
        return self.auth.audience or self.resource()

    def hosts(self) -> list[str]:
        """Accepted Host header values."""
        if self.http.allowed_hosts is not None:
            return list(self.http.allowed_hosts)
        port = self.http.port
        hosts = [f"{self.http.host}:{port}", f"localhost:{port}"]
        if self.http.public_url:
            hosts.append(self.http.public_url.split("://", 1)[-1].split("/", 1)[0])
        return list(dict.fromkeys(hosts))


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_config(path: str | Path | None = None) -> ServerConfig:
    """Read and validate a server configuration.

    Args:
        path: the YAML file; the shipped development configuration when None.

    Returns:
        The configuration.

    Raises:
        ConfigError: when the file is missing, not YAML, or does not validate.
    """
    file = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    if not file.is_file():
        raise ConfigError(f"No server configuration at {file}.")
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The server configuration {file} is not valid YAML.") from exc
    try:
        config = ServerConfig.model_validate(document)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}"
            for e in exc.errors(include_url=False)[:5]
        )
        raise ConfigError(f"The server configuration {file} does not validate: {details}") from None
    # The policy and contract a configuration names are beside it, wherever it is run from.
    relative = {
        name: str((file.parent / value).resolve())
        for name in ("policy", "contract")
        if (value := getattr(config, name)) and not Path(value).is_absolute()
    }
    return config.model_copy(update=relative) if relative else config
