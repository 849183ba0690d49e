"""Secrets for pseudonyms and date shifts: from the environment or a key file, never the repo.

``BIOFED_PSEUDONYM_KEY`` and ``BIOFED_DATE_SHIFT_KEY`` (64 hex characters each) win; otherwise
a key file (by default ``<lake>/restricted/keys.json``, created with mode 0600 on first use)
holds random keys, so every fresh lake gets its own.
"""

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

PSEUDONYM_ENV = "BIOFED_PSEUDONYM_KEY"
DATE_SHIFT_ENV = "BIOFED_DATE_SHIFT_KEY"


class KeyMaterialError(Exception):
    """A key in the environment or the key file is malformed."""


@dataclass(frozen=True)
class DeidKeys:
    """The master secrets of one lake."""

    pseudonym: bytes
    date_shift: bytes

    def for_audience(self, audience: str) -> bytes:
        """The pseudonym key of one audience: joins work inside an audience, not across."""
        return hmac.new(self.pseudonym, b"audience:" + audience.encode(), hashlib.sha256).digest()

    def for_uids(self, audience: str) -> bytes:
        """The key that remaps DICOM UIDs for one audience: a UID maps to the same new UID in
        every view and run of the audience, and to unrelated ones in other audiences."""
        return hmac.new(self.pseudonym, b"dicom-uid:" + audience.encode(), hashlib.sha256).digest()


def _decode(name: str, text: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise KeyMaterialError(f"{name} must be 64 hexadecimal characters") from exc
    if len(key) < 32:
        raise KeyMaterialError(f"{name} must be at least 32 bytes (64 hexadecimal characters)")
    return key


def load_keys(key_file: Path) -> DeidKeys:
    """Load the de-identification keys, creating a key file with random keys if needed.

    Args:
        key_file: where keys live when the environment does not set them.

    Returns:
        The keys.

    Raises:
        KeyMaterialError: when a key is present but malformed.
    """
    env_p, env_d = os.environ.get(PSEUDONYM_ENV), os.environ.get(DATE_SHIFT_ENV)
    if env_p and env_d:
        return DeidKeys(_decode(PSEUDONYM_ENV, env_p), _decode(DATE_SHIFT_ENV, env_d))
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        payload = {"pseudonym": secrets.token_hex(32), "date_shift": secrets.token_hex(32)}
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle)
    try:
        stored = json.loads(key_file.read_text())
        return DeidKeys(
            _decode(PSEUDONYM_ENV, env_p or stored["pseudonym"]),
            _decode(DATE_SHIFT_ENV, env_d or stored["date_shift"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyMaterialError(
            f"the key file {key_file} is not valid JSON with pseudonym and date_shift"
        ) from exc
