"""Access-token verification for the HTTP transport, and local development tokens.

biofed is an OAuth 2.1 resource server: it never issues production tokens, it verifies
JWT access tokens signed by the configured authorisation server. :class:`JwtVerifier`
checks, in this order and before trusting a single claim: the token's length, its shape,
the header algorithm against a fixed allow-list of asymmetric algorithms (``none`` and the
HMAC family are never accepted, so a token "signed" with the public key as an HMAC secret
fails), the key id against the JWKS, the signature, and then the issuer, the audience (an
exact string match against this server's resource URI), expiry, not-before and issued-at
with a small leeway.

For local work ``ensure_dev_key`` keeps an RSA key under ``<lake>/restricted/`` and
``issue_dev_token`` signs tokens with it; the matching public JWKS lets a development
server verify them exactly as it would verify an authorisation server's tokens.
"""

import base64
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mcp_catalog.principal import BREAK_GLASS_CLAIM, PROTOCOL_CLAIM, PURPOSE_CLAIM, ROLE_CLAIM

ALLOWED_ALGORITHMS = ("RS256", "ES256", "EdDSA")
"""Asymmetric algorithms only: never ``none``, never HS256/384/512."""
MAX_TOKEN_BYTES = 8192
DEV_ISSUER = "biofed-dev"

DEV_KEY_NAME = "dev-signing-key.pem"
DEV_JWKS_NAME = "dev-jwks.json"

_MAX_JWKS_BYTES = 1_000_000
_JWKS_TIMEOUT_SECONDS = 5.0
_MIN_REFETCH_SECONDS = 30.0
"""The JWKS is fetched at most this often (after expiry, for an unknown kid, after a
failure)."""
_MAX_DEV_TTL_SECONDS = 24 * 60 * 60
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
"""Compact JWS; the signature may be empty so an unsigned token is reported by its alg."""
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# Which key a header algorithm may be verified with (kty, crv).
_KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "EdDSA": ("OKP", "Ed25519"),
}

logger = logging.getLogger(__name__)

_MESSAGES = {
    "missing_token": "No access token was presented.",
    "malformed_token": "The access token is not a well-formed JWT.",
    "token_too_large": "The access token is longer than this server accepts.",
    "invalid_signature": "The access token's signature does not verify.",
    "unknown_key": "The access token was not signed by a key this server trusts.",
    "disallowed_algorithm": "The access token uses a signing algorithm this server refuses.",
    "expired": "The access token has expired.",
    "not_yet_valid": "The access token is not valid yet.",
    "wrong_audience": "The access token was not issued for this resource.",
    "missing_audience": "The access token names no audience.",
    "wrong_issuer": "The access token was not issued by the trusted issuer.",
    "missing_claim": "The access token lacks a required claim.",
}


class TokenError(Exception):
    """An access token was refused; ``reason`` is a snake_case code for the audit record and
    the message a fixed sentence that holds nothing from the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(_MESSAGES.get(reason, "The access token is not valid."))
        self.reason = reason


@dataclass(frozen=True)
class AuthSettings:
    """How this resource server verifies access tokens.

    Exactly one of ``jwks_file`` and ``jwks_url`` names the trusted public keys.
    """

    issuer: str
    """The ``iss`` every token must carry (exact match)."""
    audience: str
    """This server's resource URI, e.g. ``http://127.0.0.1:8765/mcp`` (exact match)."""
    jwks_file: Path | None = None
    jwks_url: str | None = None
    algorithms: tuple[str, ...] = ALLOWED_ALGORITHMS
    leeway_seconds: int = 30
    """Clock skew tolerated for ``exp``, ``nbf`` and ``iat``."""
    jwks_cache_seconds: int = 300

    def __post_init__(self) -> None:
        if not self.issuer or not self.audience:
            raise ValueError("AuthSettings needs a non-empty issuer and audience.")
        if not self.algorithms or any(a not in ALLOWED_ALGORITHMS for a in self.algorithms):
            raise ValueError(f"algorithms must be a non-empty subset of {ALLOWED_ALGORITHMS}.")
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("Set exactly one of jwks_file and jwks_url.")
        if not 0 <= self.leeway_seconds <= 300:
            raise ValueError("leeway_seconds must be between 0 and 300.")
        if self.jwks_cache_seconds < 1:
            raise ValueError("jwks_cache_seconds must be at least 1.")
        if self.jwks_url is not None:
            parts = urlsplit(self.jwks_url)
            loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
            if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
                raise ValueError("jwks_url must be an https URL (plain http only on loopback).")


@dataclass(frozen=True)
class _TrustedKey:
    jwk: jwt.PyJWK
    curve: str | None


def _keys_from_jwks(document: Any, source: str) -> dict[str | None, _TrustedKey]:
    """Usable public signing keys of a JWKS document, by kid (None for a key without one)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError(f"The JWKS from {source} is not a JSON object with a 'keys' list.")
    keys: dict[str | None, _TrustedKey] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            continue
        if _PRIVATE_JWK_MEMBERS & entry.keys():
            raise ValueError(
                f"The JWKS from {source} holds private or symmetric key material; "
                "publish only public keys."
            )
        if entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if kid is not None and not isinstance(kid, str):
            continue
        algorithm = entry.get("alg")
        if algorithm is not None and algorithm not in ALLOWED_ALGORITHMS:
            continue
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            # A key type or curve this server does not verify with is skipped, not fatal.
            continue
        if key.algorithm_name not in ALLOWED_ALGORITHMS:
            continue
        if kid in keys:
            raise ValueError(f"The JWKS from {source} holds two keys with the same kid.")
        curve = entry.get("crv")
        keys[kid] = _TrustedKey(key, curve if isinstance(curve, str) else None)
    if not keys:
        raise ValueError(f"The JWKS from {source} holds no usable public signing key.")
    return keys


def _header_of(token: str) -> dict[str, Any]:
    """The JOSE header of a token already matched against ``_TOKEN_SHAPE`` (so its alphabet
    is checked; PyJWT's own per-character check costs more than the signature here)."""
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError) as exc:
        raise TokenError("malformed_token") from exc
    if not isinstance(header, dict):
        raise TokenError("malformed_token")
    return header


class JwtVerifier:
    """Verifies JWT access tokens for one resource (see the module docstring for the order
    of checks)."""

    def __init__(self, settings: AuthSettings) -> None:
        """Load the trusted keys.

        Args:
            settings: issuer, audience, keys and leeway.

        Raises:
            ValueError: when the JWKS file is missing, not JSON, or holds no usable public
                signing key (or holds private key material).
        """
        self.settings = settings
        self._algorithms = frozenset(settings.algorithms)
        self._lock = threading.Lock()
        self._keys: dict[str | None, _TrustedKey] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        if settings.jwks_file is not None:
            path = Path(settings.jwks_file)
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ValueError(f"Cannot read the JWKS file {path} as JSON.") from exc
            self._keys = _keys_from_jwks(document, str(path))

    @property
    def fetches_keys(self) -> bool:
        """Whether :meth:`verify` may block on a network fetch of the JWKS (call it off the
        event loop then)."""
        return self.settings.jwks_url is not None

    def _fetch(self) -> None:
        """Replace the cached keys from the JWKS URL; on any failure keep the old ones."""
        url = self.settings.jwks_url
        assert url is not None
        self._attempted_at = time.monotonic()
        try:
            body = bytearray()
            with (
                httpx2.Client(timeout=_JWKS_TIMEOUT_SECONDS, follow_redirects=False) as client,
                client.stream("GET", url, headers={"Accept": "application/json"}) as response,
            ):
                if response.status_code != 200:
                    raise ValueError("unusable JWKS response")
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > _MAX_JWKS_BYTES:
                        raise ValueError("JWKS response too large")
            keys = _keys_from_jwks(json.loads(body), "the JWKS URL")
        except (httpx2.HTTPError, ValueError):
            # Tokens under keys we do not hold fail as unknown_key until a fetch succeeds.
            logger.warning("The JWKS could not be fetched; keeping the keys already cached.")
            return
        self._keys = keys
        self._fetched_at = time.monotonic()

    def _key_for(self, kid: str | None) -> _TrustedKey:
        if self.settings.jwks_url is not None:
            with self._lock:
                now = time.monotonic()
                stale = now - self._fetched_at > self.settings.jwks_cache_seconds
                unknown = kid not in self._keys
                # One fetch per interval at most, whatever tokens arrive: forged kids must
                # not turn this server into a client hammering the authorisation server.
                if (stale or unknown) and now - self._attempted_at > _MIN_REFETCH_SECONDS:
                    self._fetch()
        keys = self._keys
        if kid is None:
            if len(keys) == 1:
                return next(iter(keys.values()))
            raise TokenError("unknown_key")
        key = keys.get(kid)
        if key is None:
            raise TokenError("unknown_key")
        return key

    def verify(self, token: str) -> dict[str, Any]:
        """Verify an access token and return its claims.

        The length is capped before anything is parsed; the header ``alg`` must be in the
        allow-list (so ``none`` and HS256 "signed" with the public key fail); the ``kid``
        must name a trusted key (a token without ``kid`` is accepted only when exactly one
        key is trusted) whose type fits the algorithm; then the signature, ``iss`` (exact),
        ``aud`` (a string equal to the configured audience, or a list containing exactly
        that string: no case, prefix or trailing-slash normalisation), ``exp`` (required),
        ``nbf`` and ``iat`` (an ``iat`` in the future beyond the leeway is not yet valid),
        and ``sub``. Key URLs in the token header (``jku``, ``x5u``, ``jwk``) are ignored.

        Args:
            token: the compact JWS, without the ``Bearer`` prefix.

        Returns:
            The verified claims.

        Raises:
            TokenError: with ``reason`` one of missing_token, token_too_large,
                malformed_token, disallowed_algorithm, unknown_key, invalid_signature,
                expired, not_yet_valid, wrong_issuer, missing_audience, wrong_audience,
                missing_claim.
        """
        if not isinstance(token, str) or not token:
            raise TokenError("missing_token")
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenError("token_too_large")
        if not token.isascii() or not _TOKEN_SHAPE.match(token):
            raise TokenError("malformed_token")
        header = _header_of(token)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise TokenError("disallowed_algorithm")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenError("malformed_token")
        trusted = self._key_for(kid)
        key = trusted.jwk
        kty, curve = _KEY_TYPES[algorithm]
        if key.key_type != kty or trusted.curve != curve or key.algorithm_name != algorithm:
            # The key cannot verify this algorithm (e.g. ES256 claimed against an RSA key).
            raise TokenError("disallowed_algorithm")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                leeway=self.settings.leeway_seconds,
                options={
                    "verify_signature": True,
                    "verify_exp": True,
                    "verify_nbf": True,
                    "verify_iat": True,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                    "require": [],
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.InvalidSignatureError as exc:
            raise TokenError("invalid_signature") from exc
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise TokenError("not_yet_valid") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise TokenError("disallowed_algorithm") from exc
        except jwt.InvalidKeyError as exc:
            raise TokenError("unknown_key") from exc
        except jwt.PyJWTError as exc:
            raise TokenError("malformed_token") from exc
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        if "exp" not in claims or "iss" not in claims:
            raise TokenError("missing_claim")
        if claims["iss"] != self.settings.issuer:
            raise TokenError("wrong_issuer")
        if "aud" not in claims or claims["aud"] is None:
            raise TokenError("missing_audience")
        audience = claims["aud"]
        if isinstance(audience, str):
            matches = audience == self.settings.audience
        elif isinstance(audience, list) and all(isinstance(a, str) for a in audience):
            matches = self.settings.audience in audience
        else:
            matches = False
        if not matches:
            raise TokenError("wrong_audience")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise TokenError("missing_claim")


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _public_jwk(private_key: rsa.RSAPrivateKey) -> dict[str, str]:
    numbers = private_key.public_key().public_numbers()
    members = {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}
    # RFC 7638: the required members in lexicographic order, no whitespace, SHA-256.
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode("ascii")
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=")
    return {**members, "kid": thumbprint.decode("ascii"), "alg": "RS256", "use": "sig"}


def dev_key_paths(lake: Path) -> tuple[Path, Path]:
    """Where the development signing key and its public JWKS live.

    Args:
        lake: the lake root folder.

    Returns:
        ``(<lake>/restricted/dev-signing-key.pem, <lake>/restricted/dev-jwks.json)``.
    """
    restricted = Path(lake) / "restricted"
    return restricted / DEV_KEY_NAME, restricted / DEV_JWKS_NAME


def _load_dev_key(key_path: Path) -> rsa.RSAPrivateKey:
    if key_path.stat().st_mode & 0o077:
        raise ValueError(
            f"The development signing key {key_path} is readable by others; "
            "chmod 600 it or delete it to have a new one made."
        )
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"The development signing key {key_path} is not an RSA key.")
    return key


def ensure_dev_key(lake: Path) -> tuple[Path, Path]:
    """Create the development signing key and its public JWKS on first use.

    The key is RSA-2048, written with mode 0600 through ``O_EXCL`` (never overwritten);
    the JWKS holds its public half with ``kid`` = the RFC 7638 thumbprint. Calling again
    keeps the existing key and rewrites the JWKS only if it is missing or stale.

    Args:
        lake: the lake root folder.

    Returns:
        ``(key_path, jwks_path)`` as :func:`dev_key_paths`.

    Raises:
        ValueError: when an existing key file is readable by group or others, or is not an
            RSA private key.
        OSError: when the files cannot be written.
    """
    key_path, jwks_path, _ = _ensure_dev_key(lake)
    return key_path, jwks_path


def _ensure_dev_key(lake: Path) -> tuple[Path, Path, rsa.RSAPrivateKey]:
    key_path, jwks_path = dev_key_paths(lake)
    key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not key_path.exists():
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # Another process made it first; use theirs.
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
    private_key = _load_dev_key(key_path)
    document = {"keys": [_public_jwk(private_key)]}
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if not jwks_path.exists() or jwks_path.read_text(encoding="utf-8") != text:
        temporary = jwks_path.with_name(f".{jwks_path.name}.{secrets.token_hex(4)}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, jwks_path)
    return key_path, jwks_path, private_key


def issue_dev_token(
    lake: Path,
    *,
    subject: str,
    role: str,
    purpose: str,
    audience: str,
    scopes: Sequence[str],
    protocol: str | None = None,
    ttl_seconds: int = 3600,
    break_glass_patient: str | None = None,
    break_glass_reason: str | None = None,
    break_glass_minutes: int = 60,
    client_id: str = "biofed-cli",
    now: datetime | None = None,
) -> str:
    """Sign a development access token with the lake's development key.

    The token is RS256 with the key's ``kid`` in the header and carries ``iss`` =
    ``biofed-dev``, ``sub``, ``aud``, ``iat``, ``nbf``, ``exp``, a random ``jti``, ``scope``
    (space-joined), ``client_id``, ``biofed_role``, ``biofed_purpose``, ``biofed_protocol``
    when given, and, when a patient is given, ``biofed_break_glass`` = ``{"patient",
    "reason", "nbf", "exp"}`` (``reason`` left out when none is given, which the server
    refuses). Role, purpose and scopes are not checked here: the server checks them.

    Args:
        lake: the lake root folder (the key is created on first use).
        subject: the ``sub`` claim.
        role: the biofed role.
        purpose: the purpose of use.
        audience: the resource URI of the server the token is for.
        scopes: OAuth scopes (none may contain a space).
        protocol: the research protocol id.
        ttl_seconds: lifetime, 1 second to 24 hours.
        break_glass_patient: the patient of a break-glass grant.
        break_glass_reason: the reason code of that grant.
        break_glass_minutes: the grant's window.
        client_id: the ``client_id`` claim.
        now: the issue time (UTC now by default).

    Returns:
        The compact JWS.

    Raises:
        ValueError: on a bad lifetime, a scope with a space or the key problems of
            :func:`ensure_dev_key`.
    """
    if not 0 < ttl_seconds <= _MAX_DEV_TTL_SECONDS:
        raise ValueError("ttl_seconds must be between 1 and 86400.")
    if any(not scope or " " in scope for scope in scopes):
        raise ValueError("Each scope must be a non-empty string without spaces.")
    if break_glass_patient is not None and break_glass_minutes < 1:
        raise ValueError("break_glass_minutes must be at least 1.")
    _, _, private_key = _ensure_dev_key(lake)
    kid = _public_jwk(private_key)["kid"]
    issued = int((now or datetime.now(UTC)).timestamp())
    claims: dict[str, Any] = {
        "iss": DEV_ISSUER,
        "sub": subject,
        "aud": audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        "jti": secrets.token_urlsafe(16),
        "scope": " ".join(scopes),
        "client_id": client_id,
        ROLE_CLAIM: role,
        PURPOSE_CLAIM: purpose,
    }
    if protocol is not None:
        claims[PROTOCOL_CLAIM] = protocol
    if break_glass_patient is not None:
        grant: dict[str, Any] = {"patient": break_glass_patient}
        if break_glass_reason is not None:
            grant["reason"] = break_glass_reason
        grant["nbf"] = issued
        grant["exp"] = issued + int(timedelta(minutes=break_glass_minutes).total_seconds())
        claims[BREAK_GLASS_CLAIM] = grant
    return jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": kid})
