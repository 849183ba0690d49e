"""Read folders, zip archives and files of DICOM objects into the ``instances`` table.

One code path: ``iter_dicom_batches`` streams ``DicomBatch`` items of at most
``batch_files`` rows and ``read_dicom`` concatenates them. Files are listed in the caller's
process (sorted at each level, hidden names skipped, zip members listed from the archive)
and read in a pool of worker processes (see ``connectors.dicom.pool``), or in process when
the source names fewer than ``IN_PROCESS_BELOW`` files or ``workers=1``. Each file is read
whole (its SHA-256 covers every byte) and its header parsed up to the pixel data (see
``connectors.dicom.parse``); pixel values are never decoded.

A file that is not a readable instance is rejected whole with its ``source_file``, a
locator (``file`` or ``element:(gggg,eeee)``) and a fixed reason; in ``raise`` mode the
first one (in listing order) raises ``DicomFileError``.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path

import polars as pl
import pyarrow as pa

from connectors.dicom.pool import (
    CHUNK_FILES,
    IN_PROCESS_BELOW,
    Reject,
    chunked,
    default_workers,
    read_chunks,
)
from connectors.dicom.schema import instance_schema
from connectors.dicom.sources import iter_source
from connectors.errors import DicomFileError, SourceNotFoundError
from connectors.result import REJECT_SCHEMA, OnError, ReadResult

DEFAULT_BATCH_FILES = 512
"""Rows per batch: a few MB of header JSON, and few enough Delta commits per batch."""


@dataclass(frozen=True)
class DicomBatch:
    """The rows read from up to ``batch_files`` files.

    Attributes:
        instances: rows with exactly ``instance_schema()``.
        rejects: files set aside, with the shared reject schema (source, locator, reason).
        files: how many files this batch covers (instances plus rejects).
    """

    instances: pl.DataFrame
    rejects: pl.DataFrame
    files: int


def read_dicom(
    source: str | os.PathLike[str],
    *,
    on_error: OnError = "raise",
    workers: int | None = None,
) -> ReadResult:
    """Read DICOM files into one ``instances`` row per file.

    Args:
        source: a DICOM file, a folder (read recursively; names starting with '.' are
            skipped; zip archives in it are read too) or a zip archive (members read in
            memory).
        on_error: ``"raise"`` stops at the first file that is not a readable instance;
            ``"quarantine"`` sets it aside in ``rejects`` with a reason.
        workers: worker processes (default ``min(CPUs, 4)``); 1 reads in process.

    Returns:
        ``ReadResult`` whose ``tables`` hold ``instances`` (rows in listing order, with
        exactly ``instance_schema()``), and the rejects.

    Raises:
        SourceNotFoundError: the source does not exist.
        DicomFileError: with ``on_error="raise"``, at the first file that is not DICOM, is
            empty, truncated or corrupt, is a DICOMDIR, or has no SOP Instance UID.
        ValueError: ``on_error`` or ``workers`` is out of range.
    """
    instances: list[pl.DataFrame] = []
    rejects: list[pl.DataFrame] = []
    for batch in iter_dicom_batches(source, on_error=on_error, workers=workers):
        instances.append(batch.instances)
        rejects.append(batch.rejects)
    return ReadResult(
        tables={"instances": _concat(instances, instance_schema())},
        rejects=_concat(rejects, REJECT_SCHEMA),
    )


def iter_dicom_batches(
    source: str | os.PathLike[str],
    *,
    on_error: OnError = "raise",
    workers: int | None = None,
    batch_files: int = DEFAULT_BATCH_FILES,
) -> Iterator[DicomBatch]:
    """Stream DICOM files as batches of ``instances`` rows in bounded memory.

    The arguments are checked when this is called; files are listed and read as the
    batches are taken. Memory holds one batch and the chunks in flight in the pool, not the
    source. Closing the iterator early stops the pool.

    Args:
        source: a DICOM file, a folder or a zip archive, as for ``read_dicom``.
        on_error: ``"raise"`` or ``"quarantine"``, as for ``read_dicom``.
        workers: worker processes (default ``min(CPUs, 4)``); 1 reads in process.
        batch_files: files per batch (the last batch may hold fewer).

    Returns:
        An iterator of ``DicomBatch`` in listing order; nothing for an empty folder.

    Raises:
        SourceNotFoundError: the source does not exist.
        DicomFileError: while iterating with ``on_error="raise"``, at the first file that is
            not a readable instance.
        ValueError: ``on_error``, ``workers`` or ``batch_files`` is out of range.
    """
    if on_error not in ("raise", "quarantine"):
        raise ValueError("on_error must be 'raise' or 'quarantine'")
    if workers is not None and workers < 1:
        raise ValueError("workers must be at least 1 (or None for the default)")
    if batch_files < 1:
        raise ValueError("batch_files must be at least 1")
    path = Path(source)
    if not path.exists():
        raise SourceNotFoundError(
            f"{path} does not exist: pass a DICOM file, a folder of them or a zip archive"
        )
    return _batches(path, on_error, workers or default_workers(), batch_files)


def _batches(path: Path, on_error: OnError, workers: int, batch_files: int) -> Iterator[DicomBatch]:
    listing = iter_source(path)
    head = list(islice(listing, IN_PROCESS_BELOW))
    if len(head) < IN_PROCESS_BELOW:
        workers = 1
    schema = pl.DataFrame(schema=instance_schema()).to_arrow().schema
    rows: list[tuple] = []
    rejects: list[Reject] = []
    files = 0
    # Chunks that divide batch_files, so that every batch but the last holds exactly that.
    chunk = next(c for c in range(min(CHUNK_FILES, batch_files), 0, -1) if batch_files % c == 0)
    results = read_chunks(chunked(chain(head, listing), chunk), workers)
    try:
        for result in results:
            if result.rejects and on_error == "raise":
                first = result.rejects[0]
                raise DicomFileError(first.source, first.locator, first.reason)
            rows += result.rows
            rejects += result.rejects
            files += result.files
            if files == batch_files:
                yield DicomBatch(_frame(rows, schema), _rejects(rejects), files)
                rows, rejects, files = [], [], 0
        if files:
            yield DicomBatch(_frame(rows, schema), _rejects(rejects), files)
    finally:
        results.close()


def _frame(rows: list[tuple], schema: pa.Schema) -> pl.DataFrame:
    # Arrow arrays from the columns, then a zero-copy frame: measured 2.4x cheaper than
    # polars' own row ingestion, and this runs in the parent, beside the workers.
    if not rows:
        return pl.DataFrame(schema=instance_schema())
    columns = zip(*rows, strict=True)
    arrays = [
        pa.array(column, type=field.type) for column, field in zip(columns, schema, strict=True)
    ]
    return pl.from_arrow(pa.RecordBatch.from_arrays(arrays, schema=schema))


def _rejects(rejects: list[Reject]) -> pl.DataFrame:
    return pl.DataFrame(rejects, schema=REJECT_SCHEMA, orient="row")


def _concat(frames: list[pl.DataFrame], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    if not frames:
        return pl.DataFrame(schema=schema)
    return pl.concat(frames, how="vertical")
