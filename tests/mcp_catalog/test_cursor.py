"""Signed paging cursors."""

import base64

import pytest

from mcp_catalog.cursor import INVALID_CURSOR_MESSAGE, CursorCodec, CursorError, query_fingerprint

SECRET = b"0123456789abcdef0123456789abcdef"
QUERY = query_fingerprint('{"dataset":"patients","limit":10}')
CONTEXT = {"dataset": "patients", "delta_version": 3, "query_hash": QUERY}


def test_a_cursor_round_trips_to_its_offset():
    codec = CursorCodec(SECRET)
    cursor = codec.encode(offset=40, **CONTEXT)
    assert codec.decode(cursor, **CONTEXT) == 40
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor


@pytest.mark.parametrize(
    "other",
    [
        {"dataset": "observations"},
        {"delta_version": 4},
        {"query_hash": query_fingerprint('{"dataset":"patients","limit":11}')},
    ],
)
def test_a_cursor_is_bound_to_its_dataset_version_and_query(other):
    codec = CursorCodec(SECRET)
    cursor = codec.encode(offset=40, **CONTEXT)
    with pytest.raises(CursorError) as raised:
        codec.decode(cursor, **{**CONTEXT, **other})
    assert str(raised.value) == INVALID_CURSOR_MESSAGE


def test_every_altered_byte_invalidates_the_cursor():
    codec = CursorCodec(SECRET)
    cursor = codec.encode(offset=40, **CONTEXT)
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    for index in range(len(raw)):
        altered = bytearray(raw)
        altered[index] ^= 0x01
        forged = base64.urlsafe_b64encode(bytes(altered)).rstrip(b"=").decode()
        with pytest.raises(CursorError):
            codec.decode(forged, **CONTEXT)


def test_a_cursor_signed_with_another_secret_is_rejected():
    cursor = CursorCodec(b"another secret, 32 bytes long..").encode(offset=40, **CONTEXT)
    with pytest.raises(CursorError):
        CursorCodec(SECRET).decode(cursor, **CONTEXT)


@pytest.mark.parametrize("garbage", ["", "x", "%%%%", "A" * 55, "A" * 56, "A" * 2048, "é" * 55])
def test_malformed_cursors_are_rejected(garbage: str):
    with pytest.raises(CursorError):
        CursorCodec(SECRET).decode(garbage, **CONTEXT)


def test_a_non_canonical_spelling_of_a_valid_cursor_is_rejected():
    codec = CursorCodec(SECRET)
    cursor = codec.encode(offset=40, **CONTEXT)
    with pytest.raises(CursorError):
        codec.decode(cursor + "=", **CONTEXT)


def test_offsets_must_be_positive_and_secrets_long_enough():
    with pytest.raises(ValueError, match="offset"):
        CursorCodec(SECRET).encode(offset=0, **CONTEXT)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        CursorCodec(b"short")
