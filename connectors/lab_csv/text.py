"""The text layer of a CSV export: its encoding, its delimiter, and its records with line numbers.

Encoding (``'auto'``): a UTF-8 byte order mark gives ``utf-8-sig``, a UTF-16 one ``utf-16``;
otherwise strict UTF-8, and failing that cp1252 (the Windows code page most LIS exports use).
A declared encoding is checked the same way, so a file that does not decode is reported
before any row is read. A declared ``utf-8`` file that starts with a byte order mark is read
as ``utf-8-sig``, so the mark never ends up in the first header name.

Delimiter (``'auto'``): ``csv.Sniffer`` over the first 64 KiB, restricted to ``, ; | TAB``
(without ``,`` when the profile has a decimal comma); when the sniffer cannot decide, the
candidate that occurs most often in the header line.

Records follow RFC 4180 with polars string expressions rather than a Python loop: a record
is a physical line, continued over the next lines while a quoted field is open (an odd
number of ``"`` so far). Lines end in LF or CRLF (a file with bare CR line ends is read as
such); a CRLF inside a quoted field reads as LF. Records without a ``"`` are split on the
delimiter; the others field by field with a regular expression (``""`` is an escaped quote).
A record is located by the physical line it starts on (line 1 is the file's first line).
Records whose fields are all blank (an empty line, a line of delimiters) carry no result and
are skipped.
"""

import codecs
import csv
import re
from dataclasses import dataclass

import polars as pl

from connectors.lab_csv.profile import DELIMITER_CANDIDATES

SAMPLE_CHARS = 65_536
"""Characters of the file the delimiter is sniffed from."""

LINE = "_line"
"""Column of the physical line number a record starts on."""

UNCLOSED_QUOTE = "row is not valid CSV: a quoted field is not closed before the end of the file"

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class FileProblem(Exception):
    """The file as a whole cannot be read with the profile; ``reason`` holds no values."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode(data: bytes, declared: str) -> tuple[str, str]:
    """The file's text and the codec that decoded it.

    Args:
        data: the file's bytes.
        declared: the profile's encoding: ``'auto'`` or a normalised codec name.

    Returns:
        (text, codec name): ``utf-8-sig``, ``utf-16``, ``utf-8``, ``cp1252`` or the declared one.

    Raises:
        FileProblem: the bytes do not decode.
    """
    if declared != "auto":
        bom = declared == "utf-8" and data.startswith(codecs.BOM_UTF8)
        codec = "utf-8-sig" if bom else declared
        try:
            return data.decode(codec), codec
        except UnicodeDecodeError as exc:
            raise FileProblem(f"file is not text in {codec}") from exc
    if data.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif data.startswith(_UTF16_BOMS):
        candidates = ["utf-16"]
    else:
        candidates = ["utf-8", "cp1252"]
    for codec in candidates:
        try:
            return data.decode(codec), codec
        except UnicodeDecodeError:
            continue
    raise FileProblem(f"file is not text in {' or '.join(candidates)}")


def detect_delimiter(text: str, declared: str, *, decimal_comma: bool = False) -> str:
    """The declared delimiter, or the one sniffed from the start of ``text``.

    With ``decimal_comma``, ``','`` is not a candidate.
    """
    if declared != "auto":
        return declared
    candidates = DELIMITER_CANDIDATES.replace(",", "") if decimal_comma else DELIMITER_CANDIDATES
    sample = text[:SAMPLE_CHARS]
    if len(text) > SAMPLE_CHARS and "\n" in sample:
        # A record cut in the middle would look inconsistent to the sniffer.
        sample = sample[: sample.rindex("\n")]
    try:
        return csv.Sniffer().sniff(sample, delimiters=candidates).delimiter
    except csv.Error:
        first = sample.lstrip("\r\n").splitlines()
        header = first[0] if first else ""
        counts = {candidate: header.count(candidate) for candidate in candidates}
        best = max(counts, key=lambda candidate: counts[candidate])
        return best if counts[best] else candidates[0]


@dataclass
class Records:
    """The header and the data records of a CSV text.

    Attributes:
        header: the header's fields (empty when the file has no non-blank record).
        header_line: the line the header starts on (0 when there is none).
        records: ``LINE`` and ``text`` (the record, lines joined by LF) of each data record.
        problems: (line, reason) of records that are not valid CSV.
    """

    header: list[str]
    header_line: int
    records: pl.DataFrame
    problems: list[tuple[int, str]]


def split_records(text: str, delimiter: str) -> Records:
    """Cut ``text`` into records (see the module's description).

    Args:
        text: the decoded file.
        delimiter: the field delimiter.

    Returns:
        The header and the non-blank data records in file order.
    """
    if "\n" not in text and "\r" in text:
        text = text.replace("\r", "\n")
    # Python's split is several times faster here than polars' split-and-explode.
    lines = (
        pl.Series("text", text.split("\n"), dtype=pl.String())
        .str.strip_suffix("\r")
        .to_frame()
        .with_row_index(LINE, offset=1)
        .with_columns(pl.col(LINE).cast(pl.Int64()))
    )
    if text.endswith("\n"):
        lines = lines.head(-1)
    quotes = pl.col("text").str.count_matches('"', literal=True)
    opened_before = (quotes.cum_sum() - quotes) % 2 == 1
    lines = lines.with_columns(
        _record=(~opened_before).cum_sum(), _opened=opened_before, _quotes=quotes
    )
    unclosed = lines["_quotes"].sum() % 2 == 1
    if lines["_opened"].any():
        records = lines.group_by("_record", maintain_order=True).agg(
            pl.col(LINE).first(), pl.col("text").str.join("\n")
        )
    else:
        records = lines
    records = records.select(LINE, "text")
    problems: list[tuple[int, str]] = []
    if unclosed:
        problems.append((int(records[LINE][-1]), UNCLOSED_QUOTE))
        records = records.head(-1)
    blank = f"^[\\s\"{re.escape(delimiter)}]*$"
    records = records.filter(~pl.col("text").str.contains(blank))
    if records.is_empty():
        return Records([], 0, records, problems)
    header_line, header_text = records.row(0)
    header = next(csv.reader([header_text], delimiter=delimiter, quotechar='"'), [])
    return Records(header, header_line, records.slice(1), problems)


def split_fields(
    records: pl.DataFrame, delimiter: str, positions: dict[str, int], width: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The fields at ``positions`` of each record that has ``width`` fields.

    Args:
        records: ``LINE`` and ``text`` as in ``Records.records``.
        delimiter: the field delimiter.
        positions: output column name -> 0-based field index.
        width: the number of fields of the header.

    Returns:
        (``LINE`` and one String column per position, unquoted; ``LINE`` and ``fields``, the
        field count, of the records whose count differs from ``width``), both in line order.
    """
    escaped = re.escape(delimiter)
    plain = records.filter(~pl.col("text").str.contains('"', literal=True)).with_columns(
        _fields=pl.col("text").str.split(delimiter)
    )
    # Every field match starts with the delimiter (one is put before the record) so that an
    # empty first field is not lost; that first character is cut off below.
    field = f'{escaped}(?:"[^"]*(?:""[^"]*)*"[^{escaped}]*|[^{escaped}"][^{escaped}]*|)'
    quoted = records.filter(pl.col("text").str.contains('"', literal=True)).with_columns(
        _fields=(pl.lit(delimiter) + pl.col("text")).str.extract_all(field)
    )
    parts, wrong = [], []
    for frame, is_quoted in ((plain, False), (quoted, True)):
        counted = frame.with_columns(fields=pl.col("_fields").list.len().cast(pl.Int64()))
        wrong.append(counted.filter(pl.col("fields") != width).select(LINE, "fields"))
        good = counted.filter(pl.col("fields") == width)
        columns = []
        for name, index in positions.items():
            cell = pl.col("_fields").list.get(index)
            if is_quoted:
                cell = _unquoted(cell.str.slice(1))
            columns.append(cell.alias(name))
        parts.append(good.select(pl.col(LINE), *columns))
    fields = pl.concat(parts).sort(LINE)
    return fields, pl.concat(wrong).sort(LINE)


def _unquoted(cell: pl.Expr) -> pl.Expr:
    """A field without its enclosing quotes, ``""`` read as ``"``; other fields as they are."""
    enclosed = cell.str.starts_with('"') & cell.str.ends_with('"') & (cell.str.len_chars() >= 2)
    inner = cell.str.slice(1, cell.str.len_chars() - 2).str.replace_all('""', '"', literal=True)
    return pl.when(enclosed).then(inner).otherwise(cell)
