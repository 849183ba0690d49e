"""Opaque, signed paging cursors.

A cursor carries only the offset of the next page. The dataset, its pinned Delta version and
a hash of the canonical query are bound into the HMAC-SHA256 tag instead of being carried, so
a cursor is valid only for the exact query, dataset and version that issued it, and tampering
with the offset breaks the tag.
"""

import base64
import hashlib
import hmac
import struct

INVALID_CURSOR_MESSAGE = "cursor is not valid for this query; repeat the query without a cursor"

_FORMAT = 1
_HEADER = struct.Struct(">BQ")  # format byte, offset
_TAG_BYTES = 32
_MAX_OFFSET = 2**62
_MIN_SECRET_BYTES = 16


class CursorError(ValueError):
    """A cursor that this server did not issue for this query; the message is fixed."""

    def __init__(self) -> None:
        super().__init__(INVALID_CURSOR_MESSAGE)


def query_fingerprint(canonical_query: str) -> str:
    """The sha256 hex digest of a canonical query text."""
    return hashlib.sha256(canonical_query.encode()).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class CursorCodec:
    """Issues and checks cursors with one secret (one per server process unless configured)."""

    def __init__(self, secret: bytes) -> None:
        """Args:
            secret: the HMAC key, at least 16 bytes.

        Raises:
            ValueError: when the secret is shorter than 16 bytes.
        """
        if len(secret) < _MIN_SECRET_BYTES:
            raise ValueError(f"cursor secret must be at least {_MIN_SECRET_BYTES} bytes")
        self._secret = secret

    def _tag(self, header: bytes, dataset: str, delta_version: int, query_hash: str) -> bytes:
        message = b"\x00".join(
            (
                b"biofed-cursor",
                header,
                dataset.encode(),
                str(delta_version).encode(),
                query_hash.encode(),
            )
        )
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def encode(self, *, dataset: str, delta_version: int, query_hash: str, offset: int) -> str:
        """A cursor for the page starting at ``offset`` of this query.

        Args:
            dataset: the dataset (view) name.
            delta_version: the pinned Delta version the page was read from.
            query_hash: :func:`query_fingerprint` of the canonical query.
            offset: rows already returned; positive.

        Returns:
            The base64url cursor (no padding).

        Raises:
            ValueError: when the offset is out of range.
        """
        if not 0 < offset <= _MAX_OFFSET:
            raise ValueError("cursor offset out of range")
        header = _HEADER.pack(_FORMAT, offset)
        return _b64(header + self._tag(header, dataset, delta_version, query_hash))

    def decode(self, cursor: str, *, dataset: str, delta_version: int, query_hash: str) -> int:
        """The offset a cursor points to, when it was issued for exactly this query.

        Args:
            cursor: the ``next_cursor`` string a client sent back.
            dataset: the dataset (view) being queried.
            delta_version: the pinned Delta version the server reads.
            query_hash: :func:`query_fingerprint` of the canonical query being asked.

        Returns:
            The offset of the next page.

        Raises:
            CursorError: when the cursor is malformed, tampered with, issued by another
                server secret, for another dataset, version or query.
        """
        expected_length = len(_b64(bytes(_HEADER.size + _TAG_BYTES)))
        if len(cursor) != expected_length:
            raise CursorError()
        try:
            raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        except ValueError:
            raise CursorError() from None
        # Only the canonical spelling is accepted, so one page has exactly one cursor.
        if _b64(raw) != cursor:
            raise CursorError()
        header, tag = raw[: _HEADER.size], raw[_HEADER.size :]
        if not hmac.compare_digest(tag, self._tag(header, dataset, delta_version, query_hash)):
            raise CursorError()
        cursor_format, offset = _HEADER.unpack(header)
        if cursor_format != _FORMAT or not 0 < offset <= _MAX_OFFSET:
            raise CursorError()
        return offset
