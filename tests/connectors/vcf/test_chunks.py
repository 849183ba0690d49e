import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.vcf.chunks import (
    LINE,
    NOT_UTF8,
    RECORD,
    TextChunk,
    TruncatedText,
    column_count_reason,
    read_chunk,
    text_chunks,
)
from connectors.vcf.source import CorruptStreamError

COLUMNS = ["a", "b", "c"]


def expected(rows: list[tuple], lines: list[int], records: list[int]) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema={name: pl.String() for name in COLUMNS}, orient="row")
    return frame.with_columns(
        pl.Series(LINE, lines, dtype=pl.Int64()), pl.Series(RECORD, records, dtype=pl.Int64())
    )


def test_lines_become_string_rows_numbered_from_the_given_line_and_record():
    chunk = read_chunk(b'1\t2\t3\nx\t.\t"q\n', COLUMNS, first_line=41, first_record=7)

    assert_frame_equal(chunk.frame, expected([("1", "2", "3"), ("x", ".", '"q')], [41, 42], [7, 8]))
    assert (chunk.rejects, chunk.records, chunk.lines) == ([], 2, 2)


def test_a_last_line_without_newline_and_crlf_endings_are_read():
    chunk = read_chunk(b"1\t2\t3\r\n4\t5\t6", COLUMNS, first_line=1, first_record=0)

    assert_frame_equal(chunk.frame, expected([("1", "2", "3"), ("4", "5", "6")], [1, 2], [0, 1]))


def test_lines_with_too_many_or_too_few_columns_are_rejected_by_line():
    data = b"1\t2\t3\n4\t5\n6\t7\t8\t9\n10\t11\t12\n"

    chunk = read_chunk(data, COLUMNS, first_line=20, first_record=100)

    assert_frame_equal(
        chunk.frame, expected([("1", "2", "3"), ("10", "11", "12")], [20, 23], [100, 103])
    )
    assert chunk.rejects == [(21, column_count_reason(3)), (22, column_count_reason(3))]
    assert (chunk.records, chunk.lines) == (4, 4)
    assert column_count_reason(3) == (
        "line does not have the 3 tab-separated columns the #CHROM line declares"
    )


def test_blank_lines_are_skipped_and_not_counted_as_records():
    chunk = read_chunk(b"1\t2\t3\n\n\r\n4\t5\t6\n", COLUMNS, first_line=1, first_record=0)

    assert_frame_equal(chunk.frame, expected([("1", "2", "3"), ("4", "5", "6")], [1, 4], [0, 1]))
    assert (chunk.records, chunk.lines) == (2, 4)


def test_empty_values_are_null_also_when_the_line_is_read_again():
    chunk = read_chunk(b"1\t\t\n4\t5\n", COLUMNS, first_line=1, first_record=0)

    assert_frame_equal(chunk.frame, expected([("1", None, None)], [1], [0]))
    assert chunk.rejects == [(2, column_count_reason(3))]


def test_a_line_that_is_not_utf8_is_rejected():
    chunk = read_chunk(b"1\t2\t3\n\xff\xfe\t2\t3\n4\t5\t6\n", COLUMNS, 1, 0)

    assert_frame_equal(chunk.frame, expected([("1", "2", "3"), ("4", "5", "6")], [1, 3], [0, 2]))
    assert chunk.rejects == [(2, NOT_UTF8)]


def test_a_chunk_of_only_bad_lines_gives_an_empty_frame():
    chunk = read_chunk(b"1\t2\n", COLUMNS, 5, 0)

    assert chunk.frame.height == 0
    assert chunk.frame.columns == [*COLUMNS, LINE, RECORD]
    assert chunk.rejects == [(5, column_count_reason(3))]


def reader_of(blocks: list[bytes], error: Exception | None = None):
    pending = list(blocks)

    def read_block() -> bytes:
        if pending:
            return pending.pop(0)
        if error is not None:
            raise error
        return b""

    return read_block


TEXT = b"".join(b"line %03d %s\n" % (number, b"x" * (number % 7)) for number in range(200))


@pytest.mark.parametrize("block_size", [1, 7, 64, 1000, 100_000])
@pytest.mark.parametrize("batch_bytes", [1, 50, 256, 4096])
def test_chunks_hold_whole_lines_counted_and_rejoin_to_the_text(block_size, batch_bytes):
    blocks = [TEXT[start : start + block_size] for start in range(0, len(TEXT), block_size)]

    chunks = list(text_chunks(reader_of(blocks[1:]), blocks[0], batch_bytes))

    assert b"".join(chunk.data for chunk in chunks) == TEXT
    for chunk in chunks:
        assert chunk.data.endswith(b"\n")
        assert chunk.lines == chunk.data.count(b"\n")
        assert len(chunk.data) <= max(batch_bytes, len(max(TEXT.splitlines(True), key=len)))


def test_chunks_grow_from_an_eighth_of_the_batch_size():
    chunks = list(text_chunks(reader_of([TEXT]), b"", 1600))

    sizes = [len(chunk.data) for chunk in chunks]
    assert sizes[0] <= 200 < sizes[1] <= 400 < sizes[2] <= 800 < sizes[3]


def test_a_last_line_without_newline_is_the_end_of_the_last_chunk():
    chunks = list(text_chunks(reader_of([b"a\nb\nc"]), b"", 1024))

    assert chunks == [TextChunk(b"a\nb\nc", 3)]


def test_a_line_longer_than_a_chunk_is_kept_whole():
    long_line = b"y" * 1000 + b"\n"
    blocks = [b"a\n" + long_line[:300], long_line[300:] + b"b\n"]

    chunks = list(text_chunks(reader_of(blocks), b"", 64))

    assert [chunk.data for chunk in chunks] == [b"a\n", long_line, b"b\n"]


def test_a_broken_stream_hands_over_the_complete_lines_then_raises():
    chunks = text_chunks(reader_of([b"a\nb\nhalf a li"], CorruptStreamError("cut")), b"", 1 << 20)

    assert next(chunks) == TextChunk(b"a\nb\n", 2)
    with pytest.raises(TruncatedText) as raised:
        next(chunks)
    assert raised.value.partial_line
    assert isinstance(raised.value.__cause__, CorruptStreamError)
