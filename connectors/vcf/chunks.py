"""Cutting the body of a VCF file into chunks of whole lines, and reading a chunk's columns.

A chunk is read by ``pl.read_csv`` as tab-separated strings (no quoting, no type inference).
When that fails or cannot be trusted to have kept one row per line (a line with too many or
too few columns, a blank line, text that is not UTF-8), the chunk is read again line by line
to find the lines at fault; they become rejects located by their line number.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from connectors.vcf.source import CorruptStreamError

LINE = "_line"
"""Column of the 1-based line number of each record in a chunk frame."""

RECORD = "_record"
"""Column of the 0-based index of each record among the file's data lines."""

NOT_UTF8 = "line is not UTF-8 text"


def column_count_reason(columns: int) -> str:
    """The reject reason of a line without the header's number of columns.

    Args:
        columns: the number of columns the #CHROM line declares.

    Returns:
        A fixed sentence naming that number (never the line's content).
    """
    return f"line does not have the {columns} tab-separated columns the #CHROM line declares"


@dataclass(frozen=True)
class TextChunk:
    """Whole lines of the body and how many there are.

    The last line lacks its newline only at the end of the file.
    """

    data: bytes
    lines: int


class TruncatedText(Exception):
    """The compressed stream broke; every complete line before the break was handed over.

    Attributes:
        partial_line: an incomplete line before the break was dropped.
    """

    def __init__(self, partial_line: bool) -> None:
        super().__init__("the compressed stream ends early or is corrupt")
        self.partial_line = partial_line


def text_chunks(
    read_block: Callable[[], bytes], first: bytes, batch_bytes: int
) -> Iterator[TextChunk]:
    """Cut text blocks into chunks of whole lines of about ``batch_bytes``.

    The first chunks are smaller (an eighth, a quarter, half of ``batch_bytes``) so that
    parsing starts before a whole batch has been inflated. A line longer than a chunk is
    kept whole. Newlines are counted block by block, as they arrive.

    Args:
        read_block: gives the next block of text, ``b""`` at the end.
        first: text already read (the body bytes read with the header).
        batch_bytes: the chunk size to grow to.

    Returns:
        An iterator of chunks, in order, that rejoin to ``first`` and the blocks.

    Raises:
        TruncatedText: after the last complete lines, when ``read_block`` raised
            ``CorruptStreamError``.
    """
    blocks = _Blocks()
    blocks.add(first)
    target = max(1, batch_bytes // 8)
    at_end = False
    while True:
        while blocks.size < target and not at_end:
            try:
                block = read_block()
            except CorruptStreamError as exc:
                chunk = blocks.take(blocks.size, at_end=False)
                if chunk is not None:
                    yield chunk
                raise TruncatedText(blocks.size > 0) from exc
            at_end = not block
            blocks.add(block)
        chunk = blocks.take(target, at_end)
        if chunk is None:
            if at_end:
                return
            target = blocks.size + 1  # one line longer than the chunk: read until it ends
            continue
        yield chunk
        target = min(batch_bytes, target * 2)


class _Blocks:
    """Text blocks not yet handed over, with the newline count of each."""

    def __init__(self) -> None:
        self._blocks: list[bytes] = []
        self._counts: list[int] = []
        self.size = 0

    def add(self, block: bytes) -> None:
        if block:
            self._blocks.append(block)
            self._counts.append(block.count(b"\n"))
            self.size += len(block)

    def take(self, target: int, at_end: bool) -> TextChunk | None:
        """Remove and return the lines ending last at or before ``target`` bytes (or the
        first line, when it is longer); everything left at the end of the file. None when
        no line is complete yet."""
        blocks, counts = self._blocks, self._counts
        if not blocks:
            return None
        cut = None if at_end and self.size <= target else self._find_cut(min(target, self.size))
        if cut is None:
            if not at_end:
                return None
            data = b"".join(blocks)
            chunk = TextChunk(data, sum(counts) + (not data.endswith(b"\n")))
            self._blocks, self._counts, self.size = [], [], 0
            return chunk
        index, position = cut
        head, tail = blocks[index][:position], blocks[index][position:]
        head_lines = counts[index] - tail.count(b"\n")
        data = b"".join([*blocks[:index], head])
        chunk = TextChunk(data, sum(counts[:index]) + head_lines)
        self._blocks = [tail, *blocks[index + 1 :]] if tail else blocks[index + 1 :]
        self._counts = (
            [counts[index] - head_lines, *counts[index + 1 :]] if tail else counts[index + 1 :]
        )
        self.size -= len(data)
        return chunk

    def _find_cut(self, target: int) -> tuple[int, int] | None:
        """(block, offset after the newline) of the last newline within ``target`` bytes,
        else of the first newline after it; None without any newline."""
        blocks = self._blocks
        index, start = len(blocks) - 1, 0
        for position, block in enumerate(blocks):
            if start + len(block) >= target:
                index = position
                break
            start += len(block)
        limit = target - start
        found = blocks[index].rfind(b"\n", 0, limit)
        if found >= 0:
            return index, found + 1
        for back in range(index - 1, -1, -1):
            found = blocks[back].rfind(b"\n")
            if found >= 0:
                return back, found + 1
        found = blocks[index].find(b"\n", limit)
        if found >= 0:
            return index, found + 1
        for ahead in range(index + 1, len(blocks)):
            found = blocks[ahead].find(b"\n")
            if found >= 0:
                return ahead, found + 1
        return None


@dataclass
class RawChunk:
    """The records of one chunk as strings.

    Attributes:
        frame: one String column per VCF column (named as given), plus ``LINE`` and
            ``RECORD`` (Int64); empty values are null.
        rejects: ``(line, reason)`` of lines that could not be split into columns.
        records: the number of data lines in the chunk (rejected ones included, blank
            lines not).
        lines: the number of lines in the chunk, blank ones included.
    """

    frame: pl.DataFrame
    rejects: list[tuple[int, str]]
    records: int
    lines: int


def read_chunk(
    data: bytes, columns: list[str], first_line: int, first_record: int, lines: int | None = None
) -> RawChunk:
    """Split a chunk of whole lines into string columns.

    Args:
        data: one or more whole lines; the last may lack its newline.
        columns: names of the VCF columns in order; every line must have this many.
        first_line: 1-based line number of the chunk's first line in the file.
        first_record: index among the file's data lines of the chunk's first data line.
        lines: the number of lines in ``data``, when already counted.

    Returns:
        The records of the chunk and the lines that could not be split.
    """
    if lines is None:
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    schema = {name: pl.String() for name in columns}
    frame = _read_csv(data, schema)
    if (
        frame is not None
        and frame.height == lines
        and frame.get_column(columns[-1]).null_count() == 0
    ):
        numbers = np.arange(lines, dtype=np.int64)
        frame = frame.with_columns(
            pl.Series(LINE, numbers + first_line),
            pl.Series(RECORD, numbers + first_record),
        )
        return RawChunk(frame, [], lines, lines)
    return _read_line_by_line(data, columns, first_line, first_record)


def _read_csv(data: bytes, schema: dict[str, pl.DataType]) -> pl.DataFrame | None:
    try:
        return pl.read_csv(
            data,
            separator="\t",
            has_header=False,
            schema=schema,
            quote_char=None,
            comment_prefix=None,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        return None


def _read_line_by_line(
    data: bytes, columns: list[str], first_line: int, first_record: int
) -> RawChunk:
    pieces = data.split(b"\n")
    if data.endswith(b"\n"):
        pieces.pop()
    expected_tabs = len(columns) - 1
    wrong_columns = column_count_reason(len(columns))
    kept: list[bytes] = []
    line_numbers: list[int] = []
    record_numbers: list[int] = []
    rejects: list[tuple[int, str]] = []
    record = first_record
    for offset, piece in enumerate(pieces):
        piece = piece.rstrip(b"\r")
        if not piece.strip():
            continue
        number = first_line + offset
        if piece.count(b"\t") != expected_tabs:
            rejects.append((number, wrong_columns))
        else:
            try:
                piece.decode("utf-8")
            except UnicodeDecodeError:
                rejects.append((number, NOT_UTF8))
            else:
                kept.append(piece)
                line_numbers.append(number)
                record_numbers.append(record)
        record += 1
    schema = {name: pl.String() for name in columns}
    frame = _read_csv(b"\n".join(kept) + b"\n", schema) if kept else None
    if frame is None or frame.height != len(kept):
        # read_csv cannot be trusted with these lines (a stray carriage return, say): split
        # them in Python, which is slow but exact.
        rows = [[value or None for value in piece.decode("utf-8").split("\t")] for piece in kept]
        frame = pl.DataFrame(rows, schema=schema, orient="row")
    frame = frame.with_columns(
        pl.Series(LINE, line_numbers, dtype=pl.Int64()),
        pl.Series(RECORD, record_numbers, dtype=pl.Int64()),
    )
    return RawChunk(frame, rejects, record - first_record, len(pieces))
