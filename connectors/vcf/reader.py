"""Read VCF and BCF files into typed polars tables: variants, genotypes and vcf_files.

One code path: ``iter_vcf_batches`` streams ``VcfBatch`` items in memory bounded by
``batch_bytes`` and ``read_vcf`` concatenates them. The body is cut into chunks of whole
lines of about ``batch_bytes`` of text; each chunk is split into columns by ``pl.read_csv``
and typed with vectorised polars expressions (see ``connectors.vcf.records`` and
``connectors.vcf.genotypes`` for the decisions about values). A background thread reads,
inflates and cuts the text two chunks ahead, and two worker threads parse two chunks at a
time (polars releases the GIL), so parsing also runs while the consumer writes a batch.
Batches come out in file order; variants rows follow the file, genotypes rows of a batch
are ordered by sample, then record. Peak memory is about 25-30 times ``batch_bytes``.

A record that cannot be read is rejected whole: none of its rows reach variants or
genotypes, and the reject names the file, ``line:<n>`` (1-based, in the decompressed text;
for BCF, in the text VCF that bcftools decodes it to) and a fixed reason without values.
A gzip stream that ends early or is corrupt is rejected at the line where it breaks, and
reading stops there.
"""

import os
import weakref
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import polars as pl

from connectors.errors import MalformedRecordError, SourceNotFoundError
from connectors.result import OnError, ReadResult, RejectCollector, empty_rejects
from connectors.vcf.chunks import LINE, TextChunk, TruncatedText, read_chunk, text_chunks
from connectors.vcf.genotypes import GenotypeParser
from connectors.vcf.header import VcfHeader, parse_header
from connectors.vcf.records import RecordParser
from connectors.vcf.schema import VCF_FILES_SCHEMA, genotypes_schema, variants_schema
from connectors.vcf.source import (
    Prefetcher,
    StoredFile,
    bcf_header_lines,
    detect_compression,
    unreadable,
)

DEFAULT_BATCH_BYTES = 32 * 1024 * 1024
"""Text bytes per chunk: large enough to amortise per-chunk work (about 0.9 GB peak RSS)."""

TRUNCATED = "file is truncated or not a valid gzip stream"

_FIXED = ["chrom", "pos", "id", "ref", "alt", "qual", "filter", "info"]
# Two chunks are parsed at once (polars runs most of one chunk's work on one core) and two
# more are read ahead; memory holds about five chunks' worth.
_WORKERS = 2
_READ_AHEAD = 2
_MAX_WARNINGS = 100


@dataclass(frozen=True)
class VcfBatch:
    """The rows read from one chunk of a VCF file.

    Attributes:
        variants: rows with exactly ``variants_schema(header)``.
        genotypes: rows with exactly ``genotypes_schema(header)``.
        rejects: quarantined records with the shared reject schema (source, locator,
            reason).
    """

    variants: pl.DataFrame
    genotypes: pl.DataFrame
    rejects: pl.DataFrame


def read_vcf(
    source: str | os.PathLike[str],
    *,
    on_error: OnError = "raise",
    label: str | None = None,
) -> ReadResult:
    """Read a VCF (plain, BGZF or gzip) or BCF file into typed tables.

    Args:
        source: path of the file. Compression is recognised by its first bytes.
        on_error: ``"raise"`` stops at the first malformed record; ``"quarantine"`` sets it
            aside in ``rejects`` with its file, ``line:<n>`` and a reason.
        label: the value written to ``source_file`` (default: the path as given).

    Returns:
        ``ReadResult`` whose ``tables`` are ``variants`` (one row per record and ALT
        allele, in file order), ``genotypes`` (one row per record and sample; within each
        batch ordered by sample, then record) and ``vcf_files`` (one row describing the
        file), in that order.

    Raises:
        SourceNotFoundError: the path does not exist, is a folder, or cannot be read.
        UnsupportedFormatError: the file is not a VCF or BCF file, or its header cannot be
            read.
        MalformedRecordError: with ``on_error="raise"``, at the first malformed record.
        ValueError: ``on_error`` is not one of the two modes.
    """
    variants: list[pl.DataFrame] = []
    genotypes: list[pl.DataFrame] = []
    rejects: list[pl.DataFrame] = []
    with iter_vcf_batches(source, on_error=on_error, label=label) as reader:
        for batch in reader:
            variants.append(batch.variants)
            genotypes.append(batch.genotypes)
            rejects.append(batch.rejects)
        files = reader.file_row()
        header = reader.header
    return ReadResult(
        tables={
            "variants": _concat(variants, variants_schema(header)),
            "genotypes": _concat(genotypes, genotypes_schema(header)),
            "vcf_files": files,
        },
        rejects=pl.concat(rejects) if rejects else empty_rejects(),
    )


def iter_vcf_batches(
    source: str | os.PathLike[str],
    *,
    on_error: OnError = "raise",
    label: str | None = None,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> "VcfReader":
    """Stream a VCF or BCF file as typed batches in bounded memory.

    The file is opened and its header read when this is called (BCF is decoded to a
    temporary text VCF first); the body is read as the batches are taken. Use the reader
    as a context manager, or exhaust it, so that its thread and temporary files are
    released; a reader dropped early releases them too.

    Args:
        source: path of the file, as for ``read_vcf``.
        on_error: ``"raise"`` or ``"quarantine"``, as for ``read_vcf``.
        label: the value written to ``source_file`` (default: the path as given).
        batch_bytes: about how many bytes of (decompressed) text each batch covers (the
            first batches are smaller, so that parsing starts early); memory grows with it,
            about 25-30 times, not with the file.

    Returns:
        A ``VcfReader``: ``reader.header`` is available at once, iterating gives
        ``VcfBatch`` items, and ``reader.file_row()`` the ``vcf_files`` row once exhausted.

    Raises:
        SourceNotFoundError: the path does not exist, is a folder, or cannot be read.
        UnsupportedFormatError: the file is not a VCF or BCF file, or its header cannot be
            read.
        MalformedRecordError: while iterating with ``on_error="raise"``, at the first
            malformed record.
        ValueError: ``on_error`` or ``batch_bytes`` is out of range.
    """
    return VcfReader(source, on_error=on_error, label=label, batch_bytes=batch_bytes)


def read_vcf_header(source: str | os.PathLike[str]) -> VcfHeader:
    """Read only the header of a VCF or BCF file.

    Args:
        source: path of the file.

    Returns:
        The parsed header.

    Raises:
        SourceNotFoundError: the path does not exist, is a folder, or cannot be read.
        UnsupportedFormatError: the file is not a VCF or BCF file, or its header cannot be
            read.
    """
    path = _existing_file(source)
    if detect_compression(path) == "bcf":
        return parse_header(bcf_header_lines(path), str(path))
    stored = StoredFile(path)
    try:
        lines, _ = stored.read_header()
    finally:
        stored.close()
    return parse_header(lines, str(path))


class VcfReader:
    """Batches of one VCF file; a context manager and an iterator of ``VcfBatch``.

    Attributes:
        header: the file's parsed header, available before iterating.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        *,
        on_error: OnError = "raise",
        label: str | None = None,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
    ) -> None:
        if batch_bytes < 1:
            raise ValueError("batch_bytes must be at least 1")
        collector = RejectCollector(on_error)
        path = _existing_file(source)
        self._state = _ReadState(path, label or str(source), collector, batch_bytes)
        self.header = self._state.header
        self._batches: Iterator[VcfBatch] | None = None
        # The state, not the reader, is what the finalizer and the batch generator hold,
        # so a reader dropped early is collected at once and its resources released.
        self._finalizer = weakref.finalize(self, self._state.close)

    def __iter__(self) -> "VcfReader":
        return self

    def __next__(self) -> VcfBatch:
        if self._batches is None:
            self._batches = _batches(self._state)
        return next(self._batches)

    def __enter__(self) -> "VcfReader":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading: end the background thread and remove temporary files."""
        if self._batches is not None:
            self._batches.close()  # type: ignore[attr-defined]
        self._state.close()

    def file_row(self) -> pl.DataFrame:
        """The one-row ``vcf_files`` frame, with exactly ``VCF_FILES_SCHEMA``.

        Raises:
            RuntimeError: the batches have not all been read yet (the hash and counts
                cover the whole file).
        """
        if not self._state.finished:
            raise RuntimeError(
                "file_row() describes the whole file: iterate the reader until it is "
                "exhausted first."
            )
        return self._state.file_row()


class _ReadState:
    """Everything one read holds: the open file, the header, parsers, counts."""

    def __init__(
        self, path: Path, label: str, collector: RejectCollector, batch_bytes: int
    ) -> None:
        self.label = label
        self.collector = collector
        self.batch_bytes = batch_bytes
        self.finished = False
        self.closed = False
        self.prefetcher: Prefetcher[TextChunk] | None = None
        self.workers: ThreadPoolExecutor | None = None
        self.stored = StoredFile(path)
        try:
            lines, self.body = self.stored.read_header()
            self.header = parse_header(lines, str(path))
        except BaseException:
            self.stored.close()
            raise
        self.records = RecordParser(self.header, label)
        self.genotypes = GenotypeParser(self.header, label)
        self.columns = _FIXED + (
            ["format", *self.genotypes.sample_columns] if self.header.has_format_column else []
        )
        self.next_line = len(self.header.lines) + 1
        self.next_record = 0
        self.counts = {"records": 0, "variants": 0, "genotypes": 0, "rejected": 0}
        self.warnings: dict[str, None] = dict.fromkeys(self.header.warnings)

    def chunks(self) -> Iterator[TextChunk]:
        """Start reading ahead; the chunks of the body, in order."""
        chunks = text_chunks(self.stored.stream.read_block, self.body, self.batch_bytes)
        self.body = b""
        self.prefetcher = Prefetcher(chunks, depth=_READ_AHEAD)
        try:
            yield from self.prefetcher
        except OSError as exc:
            raise unreadable(self.stored.path, exc) from exc

    def submit(self, chunk: TextChunk) -> "Future[_Parsed]":
        """Parse a chunk in a worker thread; chunks must be submitted in file order."""
        if self.workers is None:
            self.workers = ThreadPoolExecutor(_WORKERS, thread_name_prefix="vcf-parse")
        future = self.workers.submit(self._parse, chunk, self.next_line)
        self.next_line += chunk.lines
        return future

    def _parse(self, chunk: TextChunk, first_line: int) -> "_Parsed":
        # Record indices are counted from 0 here and shifted in ``batch``: how many records
        # the chunks before hold is only known once they are parsed (blank lines are none).
        raw = read_chunk(chunk.data, self.columns, first_line, 0, chunk.lines)
        parsed = self.records.parse(raw.frame)
        genotypes = self.genotypes.parse(raw.frame, parsed.frame)
        failures = parsed.failures + genotypes.failures
        rejects = list(raw.rejects)
        records, genotype_frame = parsed.frame, genotypes.frame
        if failures:
            reason_of = np.full(records.height, -1)
            for index, (mask, _reason) in enumerate(failures):
                reason_of[(reason_of < 0) & mask] = index
            lines = records.get_column(LINE).to_numpy()
            rejects.extend(
                (int(lines[row]), failures[reason_of[row]][1])
                for row in np.flatnonzero(reason_of >= 0)
            )
            keep = reason_of < 0
            records = records.filter(pl.Series(keep))
            if genotype_frame.height:
                samples = genotype_frame.height // keep.size
                genotype_frame = genotype_frame.filter(pl.Series(np.tile(keep, samples)))
        # One contiguous chunk per column: consumers converting to Arrow (a Delta write)
        # then get one record batch per frame instead of many misaligned slices, and this
        # copy runs here, in a worker, rather than in the consumer's thread.
        return _Parsed(
            variants=self.records.variants(records).rechunk(),
            genotypes=genotype_frame.rechunk(),
            rejects=rejects,
            records=raw.records,
            warnings=parsed.warnings + genotypes.warnings,
        )

    def batch(self, parsed: "_Parsed") -> VcfBatch:
        """The batch of a parsed chunk, in file order: counted, rejects applied."""
        variants, genotypes = parsed.variants, parsed.genotypes
        if self.next_record:
            shift = pl.col("record_index") + self.next_record
            variants = variants.with_columns(shift)
            genotypes = genotypes.with_columns(shift)
        self.next_record += parsed.records
        self.counts["records"] += parsed.records
        self.counts["variants"] += variants.height
        self.counts["genotypes"] += genotypes.height
        for warning in parsed.warnings:
            if len(self.warnings) < _MAX_WARNINGS:
                self.warnings.setdefault(warning, None)
        return VcfBatch(variants, genotypes, self._rejects(parsed.rejects))

    def reject_truncation(self, partial_line: bool, cause: BaseException) -> VcfBatch:
        if partial_line:
            self.counts["records"] += 1
        rejects = self._rejects([(self.next_line, TRUNCATED)], cause)
        return VcfBatch(
            pl.DataFrame(schema=variants_schema(self.header)),
            pl.DataFrame(schema=genotypes_schema(self.header)),
            rejects,
        )

    def _rejects(
        self, rejects: list[tuple[int, str]], cause: BaseException | None = None
    ) -> pl.DataFrame:
        for line, reason in sorted(rejects):
            try:
                self.collector.reject(self.label, f"line:{line}", reason)
            except MalformedRecordError as error:
                raise error from cause
        self.counts["rejected"] += len(rejects)
        frame = self.collector.frame()
        self.collector = RejectCollector(self.collector.on_error)
        return frame

    def file_row(self) -> pl.DataFrame:
        header, stored = self.header, self.stored
        row = {
            "source_file": self.label,
            "sha256": stored.sha256,
            "size_bytes": stored.size_bytes,
            "compression": stored.compression,
            "index": stored.index,
            "fileformat": header.fileformat,
            "reference": header.reference,
            "contigs": [{"id": c.id, "length": c.length} for c in header.contigs],
            "samples": list(header.samples),
            "info_fields": [field.id for field in header.info],
            "format_fields": [field.id for field in header.formats],
            "header_text": header.text,
            **self.counts,
            "warnings": list(self.warnings),
        }
        return pl.DataFrame([row], schema=VCF_FILES_SCHEMA)

    def close(self) -> None:
        self.closed = True
        if self.workers is not None:
            self.workers.shutdown(wait=True, cancel_futures=True)
        if self.prefetcher is not None:
            self.prefetcher.stop()
        self.stored.close()


def _batches(state: _ReadState) -> Iterator[VcfBatch]:
    """Parse the body chunk by chunk while a thread reads ahead and workers parse ahead;
    batches come out in file order."""
    try:
        if state.closed:
            return
        chunks = state.chunks()
        pending: deque[Future[_Parsed]] = deque()
        truncated: TruncatedText | None = None
        exhausted = False
        while True:
            while not exhausted and len(pending) < _WORKERS:
                try:
                    pending.append(state.submit(next(chunks)))
                except StopIteration:
                    exhausted = True
                except TruncatedText as exc:
                    truncated, exhausted = exc, True
            if not pending:
                break
            batch = state.batch(pending.popleft().result())
            if batch.variants.height or batch.genotypes.height or batch.rejects.height:
                yield batch
        if truncated is not None:
            yield state.reject_truncation(truncated.partial_line, truncated.__cause__)
        state.finished = True
    finally:
        state.close()


@dataclass
class _Parsed:
    """What a worker made of one chunk, before it is counted in file order."""

    variants: pl.DataFrame
    genotypes: pl.DataFrame
    rejects: list[tuple[int, str]]
    records: int
    warnings: list[str]


def _existing_file(source: str | os.PathLike[str]) -> Path:
    path = Path(source)
    if not path.exists():
        raise SourceNotFoundError(
            f"{path} does not exist. Pass the path of a VCF (.vcf, .vcf.gz) or BCF file."
        )
    if path.is_dir():
        raise SourceNotFoundError(
            f"{path} is a folder. Pass the path of one VCF (.vcf, .vcf.gz) or BCF file."
        )
    return path


def _concat(frames: list[pl.DataFrame], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)
