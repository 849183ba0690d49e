"""Load one SDTM dataset file (SAS XPORT or CSV) into a typed frame and its metadata.

XPORT (v5, and v8 as pyreadstat reads it): Char variables become ``String`` with trailing
blanks stripped and empty values null, Num variables ``Float64`` with SAS missing values
(``.``, ``.A``-``.Z``, ``._``) null; numbers are never converted to dates. Character data
is decoded as UTF-8, else as Windows-1252. Before a file is trusted its structure is
checked, because readstat silently returns fewer rows for a file cut at a record boundary:
the size must be a multiple of the 80-byte record, the member must have its observation
header, and the bytes after the last row read may only be blank padding. (Version 5 holds
no row count, so a cut that falls on a row boundary and a record boundary at once cannot
be told from a shorter file.) A transport file with more than one member is refused (SDTM
submissions hold one dataset per file, and readstat would read only the first).

CSV: UTF-8 (a byte order mark is dropped), else Windows-1252; comma separated, a header
row first. Variables are typed by the SDTM standard where it knows them (``--SEQ``,
``--DY``, ``--STRESN``, ``AGE``, ``VISITNUM``, every Num variable of the standard domains)
and ``String`` otherwise; in a numeric variable ``.`` and ``.A``-``.Z`` are SAS missing
values, and a value that is not a number rejects its row. The header must name STUDYID and
DOMAIN (RDOMAIN for a relationship dataset).

Variable names are upper-cased (SAS names are case-insensitive); two variables with one
name refuse the file.
"""

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyreadstat

from connectors.result import RejectCollector
from connectors.sdtm.schema import PROVENANCE
from connectors.sdtm.standard import is_relationship_dataset, standard_label, standard_type

EMPTY = "file is empty"
NOT_XPORT = "file is not a SAS XPORT transport file"
TRUNCATED = "SAS XPORT file is truncated or corrupt"
SEVERAL_MEMBERS = "SAS XPORT file holds more than one dataset; SDTM needs one dataset per file"
NOT_TEXT = "character data is neither UTF-8 nor Windows-1252 text"
UNREADABLE = "file cannot be read"
DUPLICATE_NAMES = "two variables of the file share one name"
UNNAMED_COLUMN = "CSV header has a column without a name"
NOT_CSV = "file cannot be parsed as comma-separated values"
NO_KEY_HEADER = "CSV header does not name STUDYID and DOMAIN (RDOMAIN for a relationship dataset)"
NOT_A_NUMBER = "value of a numeric SDTM variable is not a number"

_RECORD = 80
_HEADER = b"HEADER RECORD*******"


def _header(kind: bytes) -> bytes:
    """The first 48 bytes of an XPORT header record of a kind (padded to 8 bytes)."""
    return _HEADER + kind.ljust(8) + b"HEADER RECORD!!!!!!!"


_LIBRARY_V5 = _header(b"LIBRARY")
_LIBRARY_V8 = _header(b"LIBV8")
_MEMBERS = (_header(b"MEMBER"), _header(b"MEMBV8"))
_OBSERVATIONS = (_header(b"OBS"), _header(b"OBSV8"))
_BOM = b"\xef\xbb\xbf"
_SAS_MISSING = re.compile(r"\.[A-Z_]?")
_ROW = "__row"


class UnreadableFileError(Exception):
    """Internal: the file cannot be loaded; ``reason`` is the fixed reject reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Variable:
    """A variable as the file declares it."""

    name: str
    label: str | None
    type: str
    length: int | None


@dataclass(frozen=True, eq=False)
class LoadedDataset:
    """One dataset file, loaded.

    Attributes:
        source_file: the file's label (relative name).
        dataset: the dataset name, upper case.
        domain: the domain the rows are filed under, upper case.
        domain_from_name: True when the domain was taken from the dataset name (no DOMAIN
            variable, or DOMAIN null on every row).
        label: the dataset label, if any.
        format: ``xport5``, ``xport8`` or ``csv``.
        frame: the rows: the file's variables, then the provenance columns.
        variables: the variables in file order.
    """

    source_file: str
    dataset: str
    domain: str
    domain_from_name: bool
    label: str | None
    format: str
    frame: pl.DataFrame
    variables: list[Variable]


def load_xport(path: Path, source_file: str) -> LoadedDataset:
    """Load a SAS XPORT file.

    Raises:
        UnreadableFileError: the file is empty, not XPORT, truncated, corrupt, holds several
            members, or has character data in an unknown encoding.
    """
    raw = _read_bytes(path)
    version, data_start = _check_xport_structure(raw)
    frame, meta = _read_xport_data(path)
    names = [name.upper() for name in meta.column_names]
    if len(set(names)) != len(names):
        raise UnreadableFileError(DUPLICATE_NAMES)
    widths = [int(meta.variable_storage_width[name]) for name in meta.column_names]
    _check_rows_complete(raw, data_start, frame.height, sum(widths))
    variables = [
        Variable(
            name=upper,
            label=meta.column_names_to_labels.get(name) or None,
            type="Char" if meta.readstat_variable_types[name] == "string" else "Num",
            length=width,
        )
        for name, upper, width in zip(meta.column_names, names, widths, strict=True)
    ]
    columns = [
        _char(pl.col(name)) if variable.type == "Char" else _num(pl.col(name))
        for name, variable in zip(meta.column_names, variables, strict=True)
    ]
    frame = frame.select(
        column.alias(variable.name)
        for column, variable in zip(columns, variables, strict=True)
    ).with_row_index(_ROW, offset=1)
    dataset = (meta.table_name or "").strip().upper() or path.stem.upper()
    return _finish(source_file, dataset, meta.file_label or None, version, frame, variables)


def load_csv(path: Path, source_file: str, collector: RejectCollector) -> LoadedDataset:
    """Load a CSV dataset; rows with a non-numeric value in a numeric variable are rejected.

    Raises:
        UnreadableFileError: the file is empty, not text in a known encoding, not CSV, or
            its header does not identify an SDTM dataset.
        MalformedRecordError: with a raise-mode collector, at the first rejected row.
    """
    text = _decode(_read_bytes(path))
    try:
        header = next(csv.reader(io.StringIO(text)), [])
    except csv.Error as exc:
        raise UnreadableFileError(NOT_CSV) from exc
    names = [name.strip().upper() for name in header]
    if "" in names:
        raise UnreadableFileError(UNNAMED_COLUMN)
    if len(set(names)) != len(names):
        raise UnreadableFileError(DUPLICATE_NAMES)
    if "STUDYID" not in names or not {"DOMAIN", "RDOMAIN"} & set(names):
        raise UnreadableFileError(NO_KEY_HEADER)
    try:
        frame = pl.read_csv(
            io.BytesIO(text.encode("utf-8")), infer_schema=False, new_columns=names
        )
    except pl.exceptions.PolarsError as exc:
        raise UnreadableFileError(NOT_CSV) from exc
    frame = frame.select(_char(pl.col(name)) for name in names)
    dataset = path.stem.strip().upper()
    domain, _ = _domain_of(frame, dataset)
    numeric = [name for name in names if standard_type(domain, name) == "Num"]
    frame = _parse_numbers(frame, numeric, source_file, collector)
    variables = [
        Variable(
            name=name,
            label=standard_label(domain, name),
            type="Num" if name in numeric else "Char",
            length=None,
        )
        for name in names
    ]
    return _finish(source_file, dataset, None, "csv", frame, variables)


def _finish(
    source_file: str,
    dataset: str,
    label: str | None,
    file_format: str,
    frame: pl.DataFrame,
    variables: list[Variable],
) -> LoadedDataset:
    """Add provenance to a frame of the variables and ``_ROW`` (1-based row in the file)."""
    domain, from_name = _domain_of(frame, dataset)
    frame = frame.select(
        *(variable.name for variable in variables),
        pl.lit(source_file, pl.String()).alias(PROVENANCE[0]),
        pl.format("row:{}", pl.col(_ROW)).alias(PROVENANCE[1]),
        pl.lit(dataset, pl.String()).alias(PROVENANCE[2]),
    )
    return LoadedDataset(
        source_file=source_file,
        dataset=dataset,
        domain=domain,
        domain_from_name=from_name,
        label=label,
        format=file_format,
        frame=frame,
        variables=variables,
    )


def _domain_of(frame: pl.DataFrame, dataset: str) -> tuple[str, bool]:
    """The domain of a dataset: its most frequent DOMAIN value, else from its name.

    A tie goes to the value that comes first in the file.
    """
    if "DOMAIN" in frame.columns:
        counts = (
            frame.select(pl.col("DOMAIN").str.to_uppercase())
            .with_row_index("first")
            .drop_nulls("DOMAIN")
            .group_by("DOMAIN")
            .agg(pl.len().alias("rows"), pl.col("first").min())
            .sort(["rows", "first"], descending=[True, False])
        )
        if counts.height:
            return counts.item(0, "DOMAIN"), False
    if is_relationship_dataset(dataset):
        return dataset, True
    return dataset[:2], True


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UnreadableFileError(UNREADABLE) from exc
    if not raw:
        raise UnreadableFileError(EMPTY)
    return raw


def _check_xport_structure(raw: bytes) -> tuple[str, int]:
    """The transport version and the offset of the first observation byte."""
    if raw.startswith(_LIBRARY_V5):
        version = "xport5"
    elif raw.startswith(_LIBRARY_V8):
        version = "xport8"
    else:
        raise UnreadableFileError(NOT_XPORT)
    if len(raw) % _RECORD:
        raise UnreadableFileError(TRUNCATED)
    headers = _header_records(raw)
    if sum(header in _MEMBERS for _, header in headers) > 1:
        raise UnreadableFileError(SEVERAL_MEMBERS)
    observations = [offset for offset, header in headers if header in _OBSERVATIONS]
    if not observations:
        raise UnreadableFileError(TRUNCATED)
    return version, observations[0] + _RECORD


def _header_records(raw: bytes) -> list[tuple[int, bytes]]:
    """Offset and first 48 bytes of each header record (found by bytes.find, not a loop
    over every record, which would cost seconds on a large LB)."""
    found = []
    offset = raw.find(_HEADER)
    while offset != -1:
        if offset % _RECORD == 0:
            found.append((offset, raw[offset : offset + len(_LIBRARY_V5)]))
        offset = raw.find(_HEADER, offset + 1)
    return found


def _check_rows_complete(raw: bytes, data_start: int, rows: int, row_length: int) -> None:
    """The bytes after the rows read must be blank padding, not the start of a lost row."""
    if raw[data_start + rows * row_length :].strip(b" "):
        raise UnreadableFileError(TRUNCATED)


def _read_xport_data(path: Path) -> tuple[pl.DataFrame, Any]:
    for encoding in (None, "WINDOWS-1252"):
        try:
            return pyreadstat.read_xport(
                str(path),
                output_format="polars",
                disable_datetime_conversion=True,
                encoding=encoding,
            )
        except UnicodeDecodeError:
            continue
        except (pyreadstat.ReadstatError, pyreadstat.PyreadstatError, OSError) as exc:
            raise UnreadableFileError(TRUNCATED) from exc
    raise UnreadableFileError(NOT_TEXT)


def _decode(raw: bytes) -> str:
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
        encodings: tuple[str, ...] = ("utf-8",)
    else:
        encodings = ("utf-8", "cp1252")
    for encoding in encodings:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnreadableFileError(NOT_TEXT)


def _char(column: pl.Expr) -> pl.Expr:
    text = column.cast(pl.String()).str.strip_chars_end(" ")
    return pl.when(text != "").then(text)


def _num(column: pl.Expr) -> pl.Expr:
    number = column.cast(pl.Float64())
    return pl.when(number.is_finite()).then(number)


def _parse_numbers(
    frame: pl.DataFrame, numeric: list[str], source_file: str, collector: RejectCollector
) -> pl.DataFrame:
    frame = frame.with_row_index(_ROW, offset=1)
    if not numeric:
        return frame
    parsed = {}
    bad = pl.lit(False)
    for name in numeric:
        text = pl.col(name).str.strip_chars()
        missing = text.is_null() | text.str.contains(f"^(?:{_SAS_MISSING.pattern})?$")
        number = text.cast(pl.Float64(), strict=False)
        parsed[name] = pl.when(~missing).then(number)
        bad = bad | (~missing & (number.is_null() | ~number.is_finite()))
    frame = frame.with_columns(bad.alias("__bad"), **parsed)
    for row in frame.filter(pl.col("__bad")).get_column(_ROW):
        collector.reject(source_file, f"row:{row}", NOT_A_NUMBER)
    return frame.filter(~pl.col("__bad")).drop("__bad")
