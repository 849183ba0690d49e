"""JWT verification with real keys generated per test, and the development token issuer."""

import base64
import functools
import hashlib
import hmac
import json
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from mcp_catalog.auth import (
    ALLOWED_ALGORITHMS,
    DEV_ISSUER,
    MAX_TOKEN_BYTES,
    AuthSettings,
    JwtVerifier,
    TokenError,
    dev_key_paths,
    ensure_dev_key,
    issue_dev_token,
)
from mcp_catalog.policy import load_policy
from mcp_catalog.principal import principal_from_claims

ISSUER = "https://idp.biofed.test"
AUDIENCE = "http://127.0.0.1:8765/mcp"
DROP = object()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class Signer:
    """A private key with its kid and JWS algorithm."""

    kid: str
    key: Any
    algorithm: str

    def public_jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        jwk = algorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig"}

    def sign(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        headers = {"kid": self.kid} if header is None else header
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers=headers)


@functools.cache
def _rsa_private(label: str, bits: int) -> rsa.RSAPrivateKey:
    # Key generation is slow here; each label is one key for the whole module.
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def rsa_signer(kid: str = "rsa-1", bits: int = 2048, label: str | None = None) -> Signer:
    return Signer(kid, _rsa_private(label or kid, bits), "RS256")


def write_jwks(path: Path, *signers: Signer) -> Path:
    path.write_text(json.dumps({"keys": [s.public_jwk() for s in signers]}), encoding="utf-8")
    return path


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "j-1",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not DROP}


@pytest.fixture
def rsa_key() -> Signer:
    return rsa_signer()


@pytest.fixture
def verifier(tmp_path: Path, rsa_key: Signer) -> JwtVerifier:
    jwks = write_jwks(tmp_path / "jwks.json", rsa_key)
    return JwtVerifier(AuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=jwks))


def reason_of(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(TokenError) as caught:
        verifier.verify(token)
    return caught.value.reason


def test_a_valid_rs256_token_verifies_and_returns_its_claims(
    verifier: JwtVerifier, rsa_key: Signer
) -> None:
    expected = claims(scope="biofed.research.read")
    assert verifier.verify(rsa_key.sign(expected)) == expected


@pytest.mark.parametrize(
    "signer",
    [
        Signer("ec-1", ec.generate_private_key(ec.SECP256R1()), "ES256"),
        Signer("ed-1", ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
    ],
    ids=["ES256", "EdDSA"],
)
def test_ec_and_eddsa_tokens_verify(tmp_path: Path, signer: Signer) -> None:
    jwks = write_jwks(tmp_path / "jwks.json", signer, rsa_signer())
    verifier = JwtVerifier(AuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=jwks))
    assert verifier.verify(signer.sign(claims()))["sub"] == "alice"


@dataclass(frozen=True)
class _FromNow:
    """A claim time relative to when the test runs."""

    seconds: int


def _at_run_time(overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        k: int(time.time()) + v.seconds if isinstance(v, _FromNow) else v
        for k, v in overrides.items()
    }


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        # Times are offsets from when the test runs (a long suite runs it minutes after
        # collection), resolved by _at_run_time.
        ({"exp": _FromNow(-120)}, "expired"),
        ({"nbf": _FromNow(120)}, "not_yet_valid"),
        ({"iat": _FromNow(120)}, "not_yet_valid"),
        ({"aud": "http://127.0.0.1:9999/mcp"}, "wrong_audience"),
        ({"aud": DROP}, "missing_audience"),
        ({"aud": AUDIENCE + "/"}, "wrong_audience"),
        ({"aud": AUDIENCE.upper()}, "wrong_audience"),
        ({"aud": "http://127.0.0.1:8765"}, "wrong_audience"),
        ({"aud": [AUDIENCE + "/", "other"]}, "wrong_audience"),
        ({"aud": []}, "wrong_audience"),
        ({"aud": [AUDIENCE, 7]}, "wrong_audience"),
        ({"iss": "https://evil.example"}, "wrong_issuer"),
        ({"iss": ISSUER + "/"}, "wrong_issuer"),
        ({"iss": DROP}, "missing_claim"),
        ({"exp": DROP}, "missing_claim"),
        ({"sub": DROP}, "missing_claim"),
        ({"sub": 42}, "missing_claim"),
        ({"exp": "tomorrow"}, "malformed_token"),
    ],
    ids=lambda value: str(value) if isinstance(value, str) else None,
)
def test_claims_that_do_not_fit_are_refused_with_a_reason(
    verifier: JwtVerifier, rsa_key: Signer, overrides: dict[str, Any], reason: str
) -> None:
    assert reason_of(verifier, rsa_key.sign(claims(**_at_run_time(overrides)))) == reason


def test_an_audience_list_with_the_exact_entry_is_accepted(
    verifier: JwtVerifier, rsa_key: Signer
) -> None:
    token = rsa_key.sign(claims(aud=["https://other.example/api", AUDIENCE]))
    assert verifier.verify(token)["aud"] == ["https://other.example/api", AUDIENCE]


def test_clock_skew_within_the_leeway_is_tolerated(verifier: JwtVerifier, rsa_key: Signer) -> None:
    now = int(time.time())
    token = rsa_key.sign(claims(exp=now - 10, nbf=now + 10, iat=now + 10))
    assert verifier.verify(token)["sub"] == "alice"


def test_a_token_signed_by_an_unknown_key_is_refused(verifier: JwtVerifier) -> None:
    stranger = rsa_signer(kid="stranger")
    assert reason_of(verifier, stranger.sign(claims())) == "unknown_key"


def test_a_token_signed_by_another_key_under_a_trusted_kid_fails_its_signature(
    verifier: JwtVerifier, rsa_key: Signer
) -> None:
    impostor = rsa_signer(kid=rsa_key.kid, label="impostor")
    assert reason_of(verifier, impostor.sign(claims())) == "invalid_signature"


def test_a_tampered_payload_fails_its_signature(verifier: JwtVerifier, rsa_key: Signer) -> None:
    header, _, signature = rsa_key.sign(claims()).split(".")
    forged = f"{header}.{_segment(claims(sub='mallory'))}.{signature}"
    assert reason_of(verifier, forged) == "invalid_signature"


def test_a_token_without_kid_uses_the_only_key_but_not_one_of_several(
    tmp_path: Path, rsa_key: Signer
) -> None:
    token = rsa_key.sign(claims(), header={})
    single = JwtVerifier(
        AuthSettings(
            issuer=ISSUER, audience=AUDIENCE, jwks_file=write_jwks(tmp_path / "1.json", rsa_key)
        )
    )
    assert single.verify(token)["sub"] == "alice"
    both = write_jwks(tmp_path / "2.json", rsa_key, rsa_signer(kid="rsa-2"))
    several = JwtVerifier(AuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=both))
    assert reason_of(several, token) == "unknown_key"


@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"])
def test_alg_none_is_refused(verifier: JwtVerifier, rsa_key: Signer, signature: str) -> None:
    header = _segment({"alg": "none", "typ": "JWT", "kid": rsa_key.kid})
    token = f"{header}.{_segment(claims())}.{signature}"
    assert reason_of(verifier, token) == "disallowed_algorithm"


def test_hs256_signed_with_the_rsa_public_key_as_secret_is_refused(
    verifier: JwtVerifier, rsa_key: Signer
) -> None:
    public_pem = rsa_key.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        f"{_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': rsa_key.kid})}.{_segment(claims())}"
    )
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert reason_of(verifier, f"{signing_input}.{_b64(mac)}") == "disallowed_algorithm"


def test_an_algorithm_that_does_not_fit_the_key_is_refused(tmp_path: Path, rsa_key: Signer) -> None:
    ec_key = Signer(rsa_key.kid, ec.generate_private_key(ec.SECP256R1()), "ES256")
    verifier = JwtVerifier(
        AuthSettings(
            issuer=ISSUER, audience=AUDIENCE, jwks_file=write_jwks(tmp_path / "j.json", rsa_key)
        )
    )
    assert reason_of(verifier, ec_key.sign(claims())) == "disallowed_algorithm"


def test_an_algorithm_outside_the_configured_subset_is_refused(
    tmp_path: Path, rsa_key: Signer
) -> None:
    verifier = JwtVerifier(
        AuthSettings(
            issuer=ISSUER,
            audience=AUDIENCE,
            jwks_file=write_jwks(tmp_path / "j.json", rsa_key),
            algorithms=("ES256",),
        )
    )
    assert reason_of(verifier, rsa_key.sign(claims())) == "disallowed_algorithm"


def test_an_rsa_key_shorter_than_2048_bits_is_not_trusted(tmp_path: Path) -> None:
    weak = rsa_signer(kid="weak", bits=1024)
    verifier = JwtVerifier(
        AuthSettings(
            issuer=ISSUER, audience=AUDIENCE, jwks_file=write_jwks(tmp_path / "j.json", weak)
        )
    )
    # Signed by hand: PyJWT itself warns about signing with a short key.
    signing_input = f"{_segment({'alg': 'RS256', 'kid': 'weak'})}.{_segment(claims())}"
    signature = weak.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    assert reason_of(verifier, f"{signing_input}.{_b64(signature)}") == "unknown_key"


def test_a_one_megabyte_token_is_refused_by_length_before_parsing(
    verifier: JwtVerifier,
) -> None:
    # Not even JWT-shaped: a parse would fail differently, so the reason proves the order.
    assert reason_of(verifier, "{" * 1_000_000) == "token_too_large"
    assert reason_of(verifier, "a" * (MAX_TOKEN_BYTES + 1)) == "token_too_large"


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b", "a.b.c.d.e", "a.b.c", "é.b.c", "eyJhbGciOiJSUzI1NiJ9.!!.c", "a..c"],
)
def test_garbage_is_a_malformed_token(verifier: JwtVerifier, token: str) -> None:
    assert reason_of(verifier, token) == "malformed_token"


def test_an_empty_token_is_a_missing_token(verifier: JwtVerifier) -> None:
    assert reason_of(verifier, "") == "missing_token"


def test_token_errors_say_nothing_of_the_token(verifier: JwtVerifier, rsa_key: Signer) -> None:
    token = rsa_key.sign(claims(aud="http://elsewhere/mcp", sub="alice-secret-subject"))
    with pytest.raises(TokenError) as caught:
        verifier.verify(token)
    assert str(caught.value) == "The access token was not issued for this resource."
    assert "alice-secret-subject" not in str(caught.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"algorithms": ("HS256",)},
        {"algorithms": ("RS256", "none")},
        {"algorithms": ()},
        {"jwks_file": None},
        {"jwks_url": "https://idp.example/jwks"},
    ],
)
def test_auth_settings_refuse_unsafe_or_ambiguous_configuration(
    tmp_path: Path, kwargs: dict[str, Any]
) -> None:
    values: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "jwks_file": tmp_path / "j.json",
        **kwargs,
    }
    with pytest.raises(ValueError):
        AuthSettings(**values)


def test_a_jwks_url_must_be_https_off_loopback() -> None:
    with pytest.raises(ValueError):
        AuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_url="http://idp.example/jwks")
    AuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_url="http://127.0.0.1:9/jwks")


def test_a_jwks_with_private_key_material_is_refused(tmp_path: Path, rsa_key: Signer) -> None:
    private = jwt.get_algorithm_by_name("RS256").to_jwk(rsa_key.key, as_dict=True)
    path = tmp_path / "j.json"
    path.write_text(json.dumps({"keys": [{**private, "kid": "k"}]}), encoding="utf-8")
    with pytest.raises(ValueError, match="private"):
        JwtVerifier(AuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=path))


def test_a_jwks_with_only_a_symmetric_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.json"
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}))
    with pytest.raises(ValueError):
        JwtVerifier(AuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=path))


@pytest.fixture
def jwks_server(rsa_key: Signer) -> Iterator[tuple[str, list[str]]]:
    document = json.dumps({"keys": [rsa_key.public_jwk()]}).encode()
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_jwks_url_is_fetched_lazily_once_and_forged_kids_do_not_refetch(
    jwks_server: tuple[str, list[str]], rsa_key: Signer
) -> None:
    url, hits = jwks_server
    verifier = JwtVerifier(AuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_url=url))
    assert verifier.fetches_keys
    assert hits == []
    for _ in range(3):
        assert verifier.verify(rsa_key.sign(claims()))["sub"] == "alice"
    for n in range(5):
        forged = rsa_signer(kid=f"forged-{n}", label="stranger")
        assert reason_of(verifier, forged.sign(claims())) == "unknown_key"
    assert hits == ["/jwks.json"]


# -- development keys and tokens ---------------------------------------------------------------


def test_the_dev_key_is_created_private_and_kept_on_later_calls(tmp_path: Path) -> None:
    key_path, jwks_path = ensure_dev_key(tmp_path)
    assert (key_path, jwks_path) == dev_key_paths(tmp_path)
    assert key_path == tmp_path / "restricted" / "dev-signing-key.pem"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_path.parent.stat().st_mode) == 0o700
    key_bytes, jwks_text = key_path.read_bytes(), jwks_path.read_text()
    assert ensure_dev_key(tmp_path) == (key_path, jwks_path)
    assert key_path.read_bytes() == key_bytes
    assert jwks_path.read_text() == jwks_text


def test_the_dev_jwks_is_public_with_an_rfc7638_thumbprint_kid(tmp_path: Path) -> None:
    key_path, jwks_path = ensure_dev_key(tmp_path)
    (jwk,) = json.loads(jwks_path.read_text())["keys"]
    assert "d" not in jwk and jwk["kty"] == "RSA" and jwk["alg"] == "RS256"
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"))
    assert jwk["kid"] == _b64(hashlib.sha256(canonical.encode()).digest())
    private = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048


def test_a_missing_dev_jwks_is_rewritten_from_the_existing_key(tmp_path: Path) -> None:
    _, jwks_path = ensure_dev_key(tmp_path)
    before = jwks_path.read_text()
    jwks_path.unlink()
    ensure_dev_key(tmp_path)
    assert jwks_path.read_text() == before


def test_a_dev_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    key_path, _ = ensure_dev_key(tmp_path)
    key_path.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        ensure_dev_key(tmp_path)


def test_a_dev_token_round_trips_through_the_verifier_and_the_policy(tmp_path: Path) -> None:
    token = issue_dev_token(
        tmp_path,
        subject="alice",
        role="researcher",
        purpose="research",
        protocol="BIOFED-DEMO-001",
        audience=AUDIENCE,
        scopes=["biofed.research.read", "biofed.research.aggregate"],
    )
    _, jwks_path = dev_key_paths(tmp_path)
    verifier = JwtVerifier(AuthSettings(issuer=DEV_ISSUER, audience=AUDIENCE, jwks_file=jwks_path))
    verified = verifier.verify(token)
    header = jwt.get_unverified_header(token)
    (jwk,) = json.loads(jwks_path.read_text())["keys"]
    assert header["alg"] == "RS256" and header["kid"] == jwk["kid"]
    assert verified["iss"] == DEV_ISSUER and verified["aud"] == AUDIENCE
    assert verified["scope"] == "biofed.research.read biofed.research.aggregate"
    assert verified["client_id"] == "biofed-cli"
    assert verified["exp"] - verified["iat"] == 3600 and verified["nbf"] == verified["iat"]
    assert len(verified["jti"]) >= 16
    assert "biofed_break_glass" not in verified
    principal = principal_from_claims(verified, load_policy())
    assert (principal.subject, principal.role, principal.protocol) == (
        "alice",
        "researcher",
        "BIOFED-DEMO-001",
    )
    assert principal.scopes == {"biofed.research.read", "biofed.research.aggregate"}
    other = issue_dev_token(
        tmp_path,
        subject="alice",
        role="researcher",
        purpose="research",
        audience=AUDIENCE,
        scopes=[],
    )
    assert jwt.decode(other, options={"verify_signature": False})["jti"] != verified["jti"]


def test_a_dev_token_for_another_audience_does_not_verify_here(tmp_path: Path) -> None:
    token = issue_dev_token(
        tmp_path,
        subject="alice",
        role="researcher",
        purpose="research",
        audience="http://127.0.0.1:9000/mcp",
        scopes=["biofed.research.read"],
    )
    verifier = JwtVerifier(
        AuthSettings(issuer=DEV_ISSUER, audience=AUDIENCE, jwks_file=dev_key_paths(tmp_path)[1])
    )
    assert reason_of(verifier, token) == "wrong_audience"


def test_a_break_glass_dev_token_carries_the_grant_claim(tmp_path: Path) -> None:
    now = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
    token = issue_dev_token(
        tmp_path,
        subject="dr-jones",
        role="clinician",
        purpose="treatment",
        audience=AUDIENCE,
        scopes=["biofed.clinical.break_glass"],
        break_glass_patient="patient-123",
        break_glass_reason="emergency_treatment",
        break_glass_minutes=30,
        now=now,
    )
    unverified = jwt.decode(token, options={"verify_signature": False})
    start = int(now.timestamp())
    assert unverified["biofed_break_glass"] == {
        "patient": "patient-123",
        "reason": "emergency_treatment",
        "nbf": start,
        "exp": start + 30 * 60,
    }
    principal = principal_from_claims(unverified, load_policy(), now=now + timedelta(minutes=1))
    assert principal.break_glass is not None and principal.break_glass_problem is None
    assert principal.break_glass.patient == "patient-123"
    assert principal.break_glass.active(now + timedelta(minutes=29))
    assert not principal.break_glass.active(now + timedelta(minutes=30))


def test_a_break_glass_dev_token_without_a_reason_is_refused_by_the_policy(
    tmp_path: Path,
) -> None:
    token = issue_dev_token(
        tmp_path,
        subject="dr-jones",
        role="clinician",
        purpose="treatment",
        audience=AUDIENCE,
        scopes=["biofed.clinical.break_glass"],
        break_glass_patient="patient-123",
    )
    unverified = jwt.decode(token, options={"verify_signature": False})
    assert set(unverified["biofed_break_glass"]) == {"patient", "nbf", "exp"}
    principal = principal_from_claims(unverified, load_policy())
    assert principal.break_glass is None
    assert principal.break_glass_problem == "break_glass_no_reason"


@pytest.mark.parametrize(
    "kwargs", [{"ttl_seconds": 0}, {"ttl_seconds": 90_000}, {"scopes": ["a b"]}, {"scopes": [""]}]
)
def test_dev_tokens_refuse_bad_lifetimes_and_scopes(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    values: dict[str, Any] = {
        "subject": "alice",
        "role": "researcher",
        "purpose": "research",
        "audience": AUDIENCE,
        "scopes": ["biofed.research.read"],
        **kwargs,
    }
    with pytest.raises(ValueError):
        issue_dev_token(tmp_path, **values)


def test_only_asymmetric_algorithms_are_allowed() -> None:
    assert ALLOWED_ALGORITHMS == ("RS256", "ES256", "EdDSA")
