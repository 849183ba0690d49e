"""Read FHIR R4 bulk-export NDJSON and Bundle JSON into typed polars tables.

One code path: ``iter_fhir_batches`` streams ``FhirBatch`` items in bounded memory and
``read_fhir`` concatenates them. Row order follows the files (sorted) and the lines or
entries inside them.

Decisions about input that is not a plain resource:

- A Bundle, wherever it appears (a ``.json`` file, an entry's resource, an NDJSON line), is
  unpacked: one row per ``entry.resource``, located ``entry:N`` (0-based), nested bundles as
  ``entry:3/entry:0`` and NDJSON lines as ``line:5/entry:0``. The Bundle itself is no row.
  An entry without a resource (a batch-response or history entry) is rejected with the
  reason "bundle entry carries no resource".
- An NDJSON file whose lines all look like bulk-export log events (``eventId`` or
  ``exportId`` and no ``resourceType``) is rejected as a whole: one reject, locator ``file``,
  reason "bulk-export log file, not resources". Log events mixed with resources are rejected
  line by line.
- Blank NDJSON lines are skipped. A UTF-8 byte order mark is stripped. Gzip is recognised by
  its magic bytes, whatever the file name says.
- Folders are read recursively in sorted path order; only ``.ndjson``, ``.ndjson.gz``,
  ``.json`` and ``.json.gz`` files are read, and hidden files and folders (name starting
  with a dot) are skipped.

See ``connectors.fhir.extract`` for how typed columns are filled.
"""

import gc
import gzip
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import BinaryIO

import orjson
import polars as pl

from connectors.errors import MalformedRecordError, SourceNotFoundError, UnsupportedFormatError
from connectors.fhir.extract import EXTRACTORS, other_row
from connectors.fhir.fields import InvalidFieldError
from connectors.fhir.schema import OTHER_TABLE, TABLE_NAMES, table_columns
from connectors.result import OnError, ReadResult, RejectCollector, empty_rejects

REJECTS = "rejects"
"""``FhirBatch.table`` of a batch of quarantined records (shared reject schema)."""

LOG_FILE_REASON = "bulk-export log file, not resources"
_LOG_LINE_REASON = "line is a bulk-export log event, not a resource"

_NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz")
_JSON_SUFFIXES = (".json", ".json.gz")
_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
_TABLE_ORDER = [*TABLE_NAMES.values(), OTHER_TABLE]
_TABLE_OF_TYPE = {rtype: (TABLE_NAMES[rtype], extract) for rtype, extract in EXTRACTORS.items()}
# The garbage collector is paused while this many NDJSON lines are parsed, then resumed
# before batches are handed to the caller, so caller code never runs with it off.
_LINES_PER_PAUSE = 10_000


@dataclass(frozen=True)
class FhirBatch:
    """A slice of one output table, as yielded by ``iter_fhir_batches``.

    Attributes:
        table: a table name (a value of ``TABLE_NAMES`` or ``OTHER_TABLE``), or ``REJECTS``.
        frame: rows with the schema ``table_schema(table)``; for ``REJECTS``, rows with the
            shared ``REJECT_SCHEMA`` (source, locator, reason).
    """

    table: str
    frame: pl.DataFrame


def read_fhir(source: str | os.PathLike[str], *, on_error: OnError = "raise") -> ReadResult:
    """Read FHIR R4 resources from NDJSON files, Bundle JSON files, or a folder of them.

    Args:
        source: a ``.ndjson``, ``.ndjson.gz``, ``.json`` (Bundle or single resource) or
            ``.json.gz`` file, or a folder read recursively in sorted order.
        on_error: ``"raise"`` stops at the first malformed record; ``"quarantine"`` sets it
            aside in ``rejects`` with its file, locator and a reason.

    Returns:
        ``ReadResult`` whose ``tables`` map table names to frames with exactly
        ``table_schema(name)``: only tables that received rows, ``patients`` first, then
        ``TABLE_NAMES`` order, ``other_resources`` last.

    Raises:
        SourceNotFoundError: the path does not exist, cannot be read, or is a folder
            without FHIR files.
        UnsupportedFormatError: the path is a file without a FHIR file extension.
        MalformedRecordError: with ``on_error="raise"``, at the first malformed record.
        ValueError: ``on_error`` is not one of the two modes.
    """
    parts: dict[str, list[pl.DataFrame]] = {}
    reject_parts: list[pl.DataFrame] = []
    for batch in iter_fhir_batches(source, on_error=on_error):
        if batch.table == REJECTS:
            reject_parts.append(batch.frame)
        else:
            parts.setdefault(batch.table, []).append(batch.frame)
    tables = {name: pl.concat(parts[name]) for name in _TABLE_ORDER if name in parts}
    rejects = pl.concat(reject_parts) if reject_parts else empty_rejects()
    return ReadResult(tables=tables, rejects=rejects)


def iter_fhir_batches(
    source: str | os.PathLike[str],
    *,
    on_error: OnError = "raise",
    batch_size: int = 50_000,
) -> Iterator[FhirBatch]:
    """Stream FHIR resources as typed batches, holding at most ``batch_size`` rows per table.

    The source is checked when this is called; reading starts at the first ``next()``.
    Concatenating the frames of each table in the order they come gives ``read_fhir``'s
    tables; the ``REJECTS`` batches concatenated give its rejects. A Bundle file is parsed
    whole, so memory also grows with the largest single Bundle.

    Args:
        source: a FHIR file or folder, as for ``read_fhir``.
        on_error: ``"raise"`` or ``"quarantine"``, as for ``read_fhir``.
        batch_size: the most rows a batch holds; a table's rows are handed over as soon as
            this many have gathered, and the rest at the end.

    Returns:
        An iterator of ``FhirBatch`` items, each for one table (or ``REJECTS``).

    Raises:
        SourceNotFoundError: the path does not exist, cannot be read, or is a folder
            without FHIR files.
        UnsupportedFormatError: the path is a file without a FHIR file extension.
        MalformedRecordError: while iterating with ``on_error="raise"``, at the first
            malformed record.
        ValueError: ``on_error`` or ``batch_size`` is out of range.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    run = _Run(on_error, batch_size)
    files = _source_files(Path(source))
    return _batches(files, run)


def _batches(files: list[Path], run: "_Run") -> Iterator[FhirBatch]:
    for path in files:
        source = str(path)
        if path.name.lower().endswith(_NDJSON_SUFFIXES):
            for _ in _read_ndjson(path, source, run):
                yield from run.take_ready()
        else:
            _read_json(path, source, run)
            yield from run.take_ready()
    yield from run.take_rest()


def _source_files(path: Path) -> list[Path]:
    if not path.exists():
        raise SourceNotFoundError(
            f"{path} does not exist. Pass the path of a FHIR .ndjson, .ndjson.gz or .json "
            "file, or of a folder holding such files."
        )
    if path.is_dir():
        files = sorted(
            child
            for child in path.rglob("*")
            if _is_fhir_name(child.name)
            and not any(part.startswith(".") for part in child.relative_to(path).parts)
            and child.is_file()
        )
        if not files:
            raise SourceNotFoundError(
                f"{path} holds no .ndjson, .ndjson.gz, .json or .json.gz file. Point at the "
                "folder the FHIR export was written to."
            )
        return files
    if not _is_fhir_name(path.name):
        raise UnsupportedFormatError(
            f"{path} is not a FHIR file this reader knows by name. read_fhir reads bulk-export "
            ".ndjson (or .ndjson.gz) files and Bundle .json files; rename the file if it holds "
            "one of these."
        )
    return [path]


def _is_fhir_name(name: str) -> bool:
    return name.lower().endswith(_NDJSON_SUFFIXES + _JSON_SUFFIXES)


def _open_binary(path: Path) -> BinaryIO:
    try:
        with open(path, "rb") as probe:
            magic = probe.read(2)
        if magic == _GZIP_MAGIC:
            return gzip.open(path, "rb")
        return open(path, "rb")
    except OSError as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: OSError) -> SourceNotFoundError:
    return SourceNotFoundError(
        f"{path} cannot be read ({exc.strerror or type(exc).__name__}). Check that the file "
        "is in place and readable by this process."
    )


@contextmanager
def _gc_paused() -> Iterator[None]:
    # Parsing allocates millions of small dicts and lists that all survive until the batch
    # is built; the collector's generation scans over them cost 3-5x the parse itself.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_ndjson(path: Path, source: str, run: "_Run") -> Iterator[None]:
    """Parse one NDJSON file into ``run``, yielding after every slice of lines."""
    log_lines: list[int] = []
    only_log_so_far = True
    number = 0

    def release_log_lines() -> None:
        nonlocal only_log_so_far
        only_log_so_far = False
        for log_number in log_lines:
            run.reject(source, f"line:{log_number}", _LOG_LINE_REASON)
        log_lines.clear()

    with _open_binary(path) as stream:
        numbered = enumerate(stream, 1)
        exhausted = False
        while not exhausted:
            first_number = number
            with _gc_paused():
                try:
                    for number, line in islice(numbered, _LINES_PER_PAUSE):
                        if number == 1 and line.startswith(_BOM):
                            line = line[3:]
                        if line.isspace() or not line:
                            continue
                        try:
                            value = orjson.loads(line)
                        except orjson.JSONDecodeError as exc:
                            if only_log_so_far:
                                release_log_lines()
                            run.reject(source, f"line:{number}", "line is not valid JSON", exc)
                            continue
                        if type(value) is not dict:
                            if only_log_so_far:
                                release_log_lines()
                            run.reject(source, f"line:{number}", "line is not a JSON object")
                        elif "resourceType" not in value and (
                            "eventId" in value or "exportId" in value
                        ):
                            if only_log_so_far:
                                log_lines.append(number)
                            else:
                                run.reject(source, f"line:{number}", _LOG_LINE_REASON)
                        else:
                            if only_log_so_far:
                                release_log_lines()
                            run.add(value, source, f"line:{number}", line.strip())
                    exhausted = number - first_number < _LINES_PER_PAUSE
                except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                    exhausted = True
                    run.reject(
                        source,
                        f"line:{number + 1}",
                        "file is truncated or not a valid gzip stream",
                        exc,
                    )
                except OSError as exc:
                    raise _unreadable(path, exc) from exc
            yield
    if log_lines:
        run.reject(source, "file", LOG_FILE_REASON)


def _read_json(path: Path, source: str, run: "_Run") -> None:
    """Parse one Bundle (or single resource) JSON file into ``run``."""
    with _open_binary(path) as stream:
        try:
            data = stream.read()
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            run.reject(source, "file", "file is truncated or not a valid gzip stream", exc)
            return
        except OSError as exc:
            raise _unreadable(path, exc) from exc
    if data.startswith(_BOM):
        data = data[3:]
    with _gc_paused():
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            run.reject(
                source,
                "file",
                "file is not valid JSON (one resource per line belongs in a .ndjson file)",
                exc,
            )
            return
        if type(document) is not dict or type(document.get("resourceType")) is not str:
            run.reject(source, "file", "JSON file is neither a Bundle nor a FHIR resource")
        elif document["resourceType"] == "Bundle":
            run.add_bundle(document, source, None)
        else:
            run.add(document, source, "resource")
        # Dropped before the collector is back on, so its next pass does not walk the
        # whole parsed tree.
        del document


class _Run:
    """Rows and rejects gathered for one read, cut into batches of ``batch_size`` rows."""

    def __init__(self, on_error: OnError, batch_size: int) -> None:
        self._on_error = on_error
        self._collector = RejectCollector(on_error)
        self._batch_size = batch_size
        self._rows: dict[str, list[tuple]] = {}
        self._ready: list[FhirBatch] = []

    def reject(
        self, source: str, locator: str, reason: str, cause: BaseException | None = None
    ) -> None:
        try:
            self._collector.reject(source, locator, reason)
        except MalformedRecordError as error:
            raise error from cause
        if len(self._collector) >= self._batch_size:
            self._ready.append(FhirBatch(REJECTS, self._collector.frame()))
            self._collector = RejectCollector(self._on_error)

    def add(self, resource: dict, source: str, locator: str, raw: bytes | None = None) -> None:
        """Add one resource; ``raw`` is its JSON text as read, when it stood alone in the file."""
        resource_type = resource.get("resourceType")
        if type(resource_type) is not str or not resource_type:
            self.reject(source, locator, "resource has no resourceType")
            return
        if resource_type == "Bundle":
            self.add_bundle(resource, source, locator)
            return
        resource_id = resource.get("id")
        if type(resource_id) is not str or not resource_id:
            reason = "resource has no id" if not resource_id else "resource id is not a string"
            self.reject(source, locator, reason)
            return
        typed = _TABLE_OF_TYPE.get(resource_type)
        if typed is None:
            table, values = OTHER_TABLE, other_row(resource)
        else:
            table, extract = typed
            try:
                values = extract(resource)
            except InvalidFieldError as exc:
                self.reject(source, locator, f"{resource_type}.{exc.path} {exc.problem}", exc)
                return
        rows = self._rows.get(table)
        if rows is None:
            rows = self._rows[table] = []
        # An NDJSON line is kept as read: it is the resource already, decimals keep their
        # written precision (1.50 stays 1.50), and re-serialising would cost a fifth of the
        # read time. Bundle entries have no text of their own and are serialised by orjson.
        rows.append((*values, source, locator, orjson.dumps(resource) if raw is None else raw))
        if len(rows) >= self._batch_size:
            self._ready.append(FhirBatch(table, _frame(table, rows)))
            self._rows[table] = []

    def add_bundle(self, bundle: dict, source: str, locator: str | None) -> None:
        entries = bundle.get("entry")
        if entries is None:
            return
        if type(entries) is not list:
            self.reject(source, locator or "file", "Bundle.entry is not a list")
            return
        prefix = "" if locator is None else f"{locator}/"
        for index, entry in enumerate(entries):
            entry_locator = f"{prefix}entry:{index}"
            if type(entry) is not dict:
                self.reject(source, entry_locator, "bundle entry is not a JSON object")
                continue
            resource = entry.get("resource")
            if resource is None:
                self.reject(source, entry_locator, "bundle entry carries no resource")
            elif type(resource) is not dict:
                self.reject(source, entry_locator, "bundle entry resource is not a JSON object")
            else:
                self.add(resource, source, entry_locator)

    def take_ready(self) -> list[FhirBatch]:
        ready, self._ready = self._ready, []
        return ready

    def take_rest(self) -> list[FhirBatch]:
        rest = self.take_ready()
        for table in _TABLE_ORDER:
            rows = self._rows.pop(table, None)
            if rows:
                rest.append(FhirBatch(table, _frame(table, rows)))
        if len(self._collector):
            rest.append(FhirBatch(REJECTS, self._collector.frame()))
            self._collector = RejectCollector(self._on_error)
        return rest


def _build_plan(table: str) -> list[tuple[str, pl.DataType, pl.DataType | None]]:
    plan = []
    for column in table_columns(table):
        # Temporal columns arrive as epoch integers and resource_json as orjson's UTF-8
        # bytes: casting those in polars is much cheaper than building Python datetime and
        # str objects.
        if isinstance(column.dtype, pl.Datetime):
            via: pl.DataType | None = pl.Int64()
        elif isinstance(column.dtype, pl.Date):
            via = pl.Int32()
        elif column.name == "resource_json":
            via = pl.Binary()
        else:
            via = None
        plan.append((column.name, column.dtype, via))
    return plan


_PLANS = {table: _build_plan(table) for table in _TABLE_ORDER}


def _frame(table: str, rows: list[tuple]) -> pl.DataFrame:
    series = []
    for (name, dtype, via), values in zip(_PLANS[table], zip(*rows, strict=True), strict=True):
        if via is None:
            series.append(pl.Series(name, values, dtype=dtype))
        else:
            series.append(pl.Series(name, values, dtype=via).cast(dtype))
    return pl.DataFrame(series)
