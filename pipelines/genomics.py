"""Plain, Dagster-free steps of the genomics silo: landed VCFs to bronze, bronze to silver.

A VCF can hold millions of records, so nothing here holds a whole file: the reader yields
bounded batches, and each table is written by delta-rs pulling those batches in its own
thread, one commit per table and file. Silver is rebuilt one chromosome at a time.
"""

import contextlib
import hashlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
from deltalake import WriterProperties

from connectors.errors import MalformedRecordError
from connectors.result import empty_rejects
from connectors.vcf import VCF_FILES_SCHEMA, genotypes_schema, iter_vcf_batches, variants_schema
from connectors.vcf.reader import TRUNCATED
from pipelines.crosswalk_links import with_crosswalk
from pipelines.ehr import INGEST_COLUMNS, REJECTS_SCHEMA
from pipelines.lake import Lake, WriteOutcome
from pipelines.landing import LandingFile, files_with_suffixes, scan_files
from pipelines.manifests import blank, read_manifest, unparsed

VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz", ".bcf")
MANIFEST_NAME = "samples.csv"

FILES_PATH = "bronze/genomics/vcf_files"
VARIANTS_PATH = "bronze/genomics/variants"
GENOTYPES_PATH = "bronze/genomics/genotypes"
SAMPLES_PATH = "bronze/genomics/samples"
REJECTS_PATH = "_rejects/genomics/vcf"
MANIFEST_REJECTS_PATH = "_rejects/genomics/samples"
SILVER_VARIANTS_PATH = "silver/genomics/variants"
SILVER_GENOTYPES_PATH = "silver/genomics/genotypes"
SILVER_FILES_PATH = "silver/genomics/files"

PARTITION_COLUMNS = ("chrom",)

INGEST_BATCH_BYTES = 8 * 1024 * 1024
"""Decompressed VCF text per batch. Larger batches did not ingest faster here (the Delta
writes run beside the parsing), and peak memory grows with them: about 0.9 GB at 8 MiB and
1.6 GB at 32 MiB for a 3-sample file."""

BULK_WRITER = WriterProperties(compression="SNAPPY")
"""Parquet settings of bronze and silver: read in bulk by chromosome, never by lookup, so
delta-rs's default row groups and the fastest codec (zstd with 64k-row groups measured
about three times slower to write 3M genotypes here)."""

BULK_FILE_BYTES = 32 * 1024 * 1024
"""Data file size at which delta-rs starts a new file. delta-rs builds each file in memory,
one per open chromosome partition: with its default, peak memory tripled from a 1M- to a
4M-record VCF (1.1 to 3.2 GB); with 32 MiB it stays about 1.1 GB."""

FILE_LEDGER_COLUMNS: dict[str, pl.DataType] = {
    **VCF_FILES_SCHEMA,
    "source_sha256": pl.String(),
    "source_modified_at": pl.Datetime("us", "UTC"),
    "ingested_at": pl.Datetime("us", "UTC"),
}
"""``bronze/genomics/vcf_files``: the connector's file row plus when the file was written
(what freshness is measured from) and ingested."""

SAMPLE_MANIFEST_COLUMNS: dict[str, pl.DataType] = {
    "sample_id": pl.String(),
    "mrn": pl.String(),
    "specimen_type": pl.String(),
    "collection_date": pl.Date(),
    "sequencing_platform": pl.String(),
    "vcf_file": pl.String(),
}
"""The sample manifest a biobank sends with its VCFs: which person each sample is."""

SAMPLES_TABLE_COLUMNS: dict[str, pl.DataType] = {
    **SAMPLE_MANIFEST_COLUMNS,
    "source_file": pl.String(),
    **INGEST_COLUMNS,
}
"""``bronze/genomics/samples``: the manifest's rows with their provenance."""

SILVER_LEDGER_COLUMNS: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "source_sha256": pl.String(),
    "links_sha256": pl.String(),
    "samples": pl.Int64(),
    "linked_samples": pl.Int64(),
    "built_at": pl.Datetime("us", "UTC"),
}
"""``silver/genomics/files``: which bronze content and which sample links each file's silver
rows were built from, so a rerun with neither changed commits nothing."""


def scan_paths(folder: Path) -> list[Path]:
    """Every VCF or BCF below the genomics landing folder (no hashing: cheap enough for a
    sensor to call every minute)."""
    return files_with_suffixes(folder, VCF_SUFFIXES)


def scan_vcfs(folder: Path) -> list[LandingFile]:
    """Every VCF or BCF below the genomics landing folder, with hash, size and time."""
    return scan_files(folder, VCF_SUFFIXES)


def provenance(frame: pl.DataFrame, sha256: str, ingested_at: datetime) -> pl.DataFrame:
    """The bronze provenance columns added to a connector frame."""
    return frame.with_columns(
        pl.lit(sha256, INGEST_COLUMNS["source_sha256"]).alias("source_sha256"),
        pl.lit(ingested_at, INGEST_COLUMNS["ingested_at"]).alias("ingested_at"),
    )


def _arrow_schema(columns: dict[str, pl.DataType]) -> pa.Schema:
    schema = {**columns, **INGEST_COLUMNS}
    return pl.DataFrame(schema=schema).to_arrow().schema


class _Stop:
    """Put on a writer's queue: the batches end (cleanly when ``error`` is None)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class _StreamWriter:
    """One table written in its own thread from batches handed over through a small queue.

    delta-rs pulls the batches while it writes, so parsing the next batch (in the caller's
    thread) overlaps writing this one, and memory holds at most a few batches.

    delta-rs pulls from the iterator on a thread of its shared async runtime. An iterator
    that blocked until the next batch arrived could hold every runtime thread while another
    table's writer, whose queue the parser is waiting to fill, needs one to flush a file: a
    deadlock, seen here on a 4M-record file. So the iterator never blocks for long: while it
    waits it hands delta-rs an empty batch, which gives the runtime its thread back.
    """

    def __init__(
        self, write: Callable[[Iterator[pa.RecordBatch]], WriteOutcome], schema: pa.Schema
    ) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._write = write
        self._idle = [pa.RecordBatch.from_pylist([], schema=schema)]
        self.outcome: WriteOutcome | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _batches(self) -> Iterator[pa.RecordBatch]:
        while True:
            try:
                item = self._queue.get(timeout=0.02)
            except queue.Empty:
                yield from self._idle
                continue
            if isinstance(item, _Stop):
                if item.error is not None:
                    raise RuntimeError("the read stopped; nothing of this file was committed")
                return
            yield from item

    def _run(self) -> None:
        try:
            self.outcome = self._write(self._batches())
        except BaseException as exc:  # handed to the caller's thread by finish()
            self.error = exc

    def put(self, item: object) -> None:
        """Hand over batches (or a stop); fails fast when the writer has already failed."""
        while True:
            if self.error is not None:
                raise self.error
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def finish(self, error: BaseException | None = None) -> WriteOutcome | None:
        """End the stream and wait for the commit (or the abort, when ``error`` is set)."""
        if self.error is None:
            # A writer that fails meanwhile makes put raise; its error is reported below.
            with contextlib.suppress(BaseException):
                self.put(_Stop(error))
        self._thread.join()
        if error is None and self.error is not None:
            raise self.error
        return self.outcome


@dataclass(frozen=True)
class VcfIngest:
    """What ingesting one landed VCF did."""

    variants: WriteOutcome
    genotypes: WriteOutcome
    rejects: WriteOutcome
    ledger: WriteOutcome
    file_row: pl.DataFrame
    rejected: int


def ingest_vcf(
    lake: Lake,
    landed: LandingFile,
    *,
    run_id: str,
    ingested_at: datetime,
    batch_bytes: int = INGEST_BATCH_BYTES,
) -> VcfIngest:
    """Read one landed VCF into bronze: variants, genotypes, rejects and the file ledger.

    Each table gets one commit replacing the file's earlier rows, so a rerun after a change
    leaves no stale rows, and a read that fails commits nothing to variants or genotypes.
    Malformed records are quarantined with their line number.

    Args:
        lake: the lake.
        landed: the file, with its hash and modification time.
        run_id: the Dagster run id recorded in every commit.
        ingested_at: the time recorded on every row.
        batch_bytes: decompressed text per batch.

    Returns:
        The outcome of every write and the file's ledger row.

    Raises:
        ConnectorError: when the file is not a readable VCF at all.
    """
    label = landed.source_file
    rejects: list[pl.DataFrame] = []
    with iter_vcf_batches(
        landed.path, on_error="quarantine", label=label, batch_bytes=batch_bytes
    ) as reader:
        variant_schema = _arrow_schema(variants_schema(reader.header))
        genotype_schema = _arrow_schema(genotypes_schema(reader.header))
        properties = BULK_WRITER

        def writer(path: str, schema: pa.Schema) -> _StreamWriter:
            return _StreamWriter(
                lambda batches: lake.stream_source(
                    path,
                    batches,
                    schema,
                    label,
                    run_id=run_id,
                    partition_by=PARTITION_COLUMNS,
                    writer_properties=properties,
                    target_file_size=BULK_FILE_BYTES,
                ),
                schema,
            )

        variants = writer(VARIANTS_PATH, variant_schema)
        genotypes = writer(GENOTYPES_PATH, genotype_schema)
        try:
            for batch in reader:
                for target, frame, schema in (
                    (variants, batch.variants, variant_schema),
                    (genotypes, batch.genotypes, genotype_schema),
                ):
                    if frame.height:
                        table = provenance(frame, landed.sha256, ingested_at).to_arrow()
                        target.put(table.cast(schema).to_batches())
                if batch.rejects.height:
                    _stop_at_truncation(batch.rejects)
                    rejects.append(batch.rejects)
        except BaseException as exc:
            variants.finish(exc)
            genotypes.finish(exc)
            raise
        variant_outcome = variants.finish()
        genotype_outcome = genotypes.finish()
        file_row = reader.file_row()
    assert variant_outcome is not None and genotype_outcome is not None
    quarantined = pl.concat(rejects) if rejects else empty_rejects()
    reject_rows = provenance(quarantined, landed.sha256, ingested_at).select(list(REJECTS_SCHEMA))
    reject_outcome = lake.replace_sources(
        REJECTS_PATH, reject_rows, [label], run_id=run_id, source_column="source"
    )
    ledger_row = file_row.with_columns(
        pl.lit(landed.sha256).alias("source_sha256"),
        pl.lit(landed.modified_at, pl.Datetime("us", "UTC")).alias("source_modified_at"),
        pl.lit(ingested_at, pl.Datetime("us", "UTC")).alias("ingested_at"),
    ).select(list(FILE_LEDGER_COLUMNS))
    ledger_outcome = lake.merge(
        FILES_PATH, ledger_row, ["source_file"], run_id=run_id, delete_missing=False
    )
    return VcfIngest(
        variant_outcome,
        genotype_outcome,
        reject_outcome,
        ledger_outcome,
        ledger_row,
        reject_rows.height,
    )


def _stop_at_truncation(rejects: pl.DataFrame) -> None:
    """A file that ends early (still being copied, or cut in transfer) is not ingested in part.

    The reader sets the break aside as one reject and stops; a pipeline that kept the rows
    before it would lose the rest of the file behind a single reject.

    Raises:
        MalformedRecordError: naming the file and the line where it breaks.
    """
    cut = rejects.filter(pl.col("reason") == TRUNCATED)
    if cut.height:
        source, locator, _ = cut.row(0)
        raise MalformedRecordError(
            source, locator, f"{TRUNCATED}; land the complete file again"
        )


def already_ingested(lake: Lake, landed: LandingFile) -> bool:
    """True when the ledger holds this file with this content."""
    if lake.table(FILES_PATH) is None:
        return False
    ledger = lake.read(FILES_PATH).filter(pl.col("source_file") == landed.source_file)
    return ledger.height == 1 and ledger.item(0, "source_sha256") == landed.sha256


def read_sample_manifest(path: Path, *, source_file: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The sample manifest's rows, and its quarantined rows.

    A row without a sample id or MRN, with a collection date that is not an ISO date, or
    whose sample id is listed more than once (which person it is cannot be decided) is
    quarantined with its line number; every other row is kept.

    Args:
        path: the CSV file.
        source_file: the name recorded in the reject rows.

    Returns:
        ``(rows, rejects)``: rows with :data:`SAMPLE_MANIFEST_COLUMNS`, rejects with the
        shared reject columns (source, locator, reason).

    Raises:
        ManifestError: when the file is not a CSV with the manifest's columns.
    """
    return read_manifest(
        path,
        source_file=source_file,
        columns=SAMPLE_MANIFEST_COLUMNS,
        parsed={"collection_date": pl.col("collection_date").str.to_date("%Y-%m-%d", strict=False)},
        rules=(
            (blank("sample_id"), "the sample id is empty"),
            (blank("mrn"), "the MRN is empty, so the sample cannot be linked to a person"),
            (unparsed("collection_date"), "collection_date is not an ISO date (YYYY-MM-DD)"),
            (
                pl.col("sample_id").is_duplicated(),
                "the sample id is listed more than once; keep one row per sample",
            ),
        ),
        what="sample manifest",
    )


LINK_STATUSES: tuple[str, ...] = ("linked", "unknown_mrn", "identity_conflict")
"""How a manifest sample was tied to a person (:func:`sample_link_statuses`): ``linked`` (the
person crosswalk's row for the sample id, or for a sample it does not hold yet, the person of
the manifest's MRN), ``unknown_mrn`` (the manifest's MRN is no known person),
``identity_conflict`` (the crosswalk does not hold the sample because the identity quarantine
holds it as undecided: its manifest rows name two people, say). Silver genotypes carry only
the ``person_key`` it gives."""


def manifest_links(samples: pl.DataFrame, crosswalk: pl.DataFrame) -> pl.DataFrame:
    """``sample_id``, ``person_key`` and ``link_status`` of each manifest row, in the
    manifest's order, by the genomics rule alone: the manifest's MRN and the crosswalk's MRNs
    (MRN -> person).

    The rule the crosswalk links sample ids by (``sample_manifest_mrn``,
    :func:`pipelines.identity.sample_claims`); silver uses :func:`sample_links`.
    """
    mrns = (
        crosswalk.filter(pl.col("identifier_type") == "mrn")
        .select(pl.col("identifier").alias("mrn"), "person_key")
        .unique(subset=["mrn"], keep="none")
    )
    return (
        samples.select("sample_id", "mrn")
        .join(mrns, on="mrn", how="left", maintain_order="left")
        .select(
            "sample_id",
            "person_key",
            pl.when(pl.col("person_key").is_null())
            .then(pl.lit("unknown_mrn"))
            .otherwise(pl.lit("linked"))
            .alias("link_status"),
        )
    )


def sample_link_statuses(
    samples: pl.DataFrame, crosswalk: pl.DataFrame, *, conflicts: pl.DataFrame | None = None
) -> pl.DataFrame:
    """``sample_id``, ``person_key`` and ``link_status`` (:data:`LINK_STATUSES`) of each
    manifest row, as the crosswalk has them, sorted by sample id.

    A sample id the crosswalk holds (``genomics``, ``vcf_sample_id``) is its crosswalk person,
    even when the manifest now names another MRN; one the crosswalk does not hold and the
    identity quarantine holds as undecided is linked to no one (``identity_conflict``); any
    other goes through :func:`manifest_links`. A sample the manifest does not list has no row
    here, so no person. See :mod:`pipelines.crosswalk_links`.

    Args:
        samples: the sample manifest rows (``sample_id``, ``mrn``).
        crosswalk: the person crosswalk.
        conflicts: the identity quarantine (``_rejects/identity/crosswalk``), or None.
    """
    return with_crosswalk(
        manifest_links(samples, crosswalk),
        crosswalk,
        conflicts,
        source_system=pl.lit("genomics"),
        identifier_type="vcf_sample_id",
        identifier="sample_id",
        unlisted=None,
    ).sort("sample_id", maintain_order=True)


def sample_links(
    samples: pl.DataFrame, crosswalk: pl.DataFrame, *, conflicts: pl.DataFrame | None = None
) -> pl.DataFrame:
    """``sample_id`` -> ``person_key`` of :func:`sample_link_statuses`.

    Samples without a person (an unknown MRN, an identity in conflict) get a null
    ``person_key``: they stay in silver, unlinked, and are counted, but no research view shows
    them.
    """
    return sample_link_statuses(samples, crosswalk, conflicts=conflicts).select(
        "sample_id", "person_key"
    )


def _links_digest(links: pl.DataFrame) -> str:
    digest = hashlib.sha256()
    for sample, person in links.sort("sample_id").iter_rows():
        digest.update(f"{sample}\x00{person or ''}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class SilverBuild:
    """What rebuilding one file's silver rows did."""

    variants: WriteOutcome
    genotypes: WriteOutcome
    samples: int
    linked_samples: int
    changed: bool


def _chromosomes(lake: Lake, path: str, source_file: str) -> list[str]:
    return (
        pl.scan_delta(lake.uri(path), storage_options=lake.storage_options or None)
        .filter(pl.col("source_file") == source_file)
        .select(pl.col("chrom").unique())
        .collect()
        .get_column("chrom")
        .sort()
        .to_list()
    )


def _by_chromosome(
    lake: Lake,
    path: str,
    source_file: str,
    chromosomes: list[str],
    schema: pa.Schema,
    transform: Callable[[pl.DataFrame], pl.DataFrame],
) -> Iterator[pa.RecordBatch]:
    scan = pl.scan_delta(lake.uri(path), storage_options=lake.storage_options or None)
    for chrom in chromosomes:
        frame = (
            scan.filter(pl.col("chrom") == chrom, pl.col("source_file") == source_file)
            .collect()
            .sort("pos", "record_index")
        )
        yield from transform(frame).to_arrow().cast(schema).to_batches()


def build_silver(
    lake: Lake,
    source_file: str,
    links: pl.DataFrame,
    *,
    run_id: str,
    built_at: datetime,
) -> SilverBuild:
    """Rebuild one file's silver variants and genotypes, one chromosome at a time.

    Silver genotypes are bronze genotypes with ``person_key`` from ``links``; silver variants
    are bronze variants. Both are partitioned by chromosome and sorted by position. Nothing
    is committed when neither the file's bronze content nor its sample links changed.

    Args:
        lake: the lake.
        source_file: the landed file's name.
        links: ``sample_id`` -> ``person_key`` (see :func:`sample_links`).
        run_id: the Dagster run id recorded in every commit.
        built_at: the time recorded in the silver ledger.

    Returns:
        The outcome of both writes and the number of linked samples.

    Raises:
        FileNotFoundError: when the file has no bronze rows yet.
    """
    ledger = lake.read(FILES_PATH).filter(pl.col("source_file") == source_file)
    if ledger.height != 1:
        raise FileNotFoundError(
            f"{source_file} is not in {FILES_PATH}; materialise its bronze partition first"
        )
    sha = ledger.item(0, "source_sha256")
    file_samples = ledger.item(0, "samples").to_list()
    file_links = (
        pl.DataFrame({"sample_id": file_samples}, schema={"sample_id": pl.String()})
        .join(links, on="sample_id", how="left")
        .unique("sample_id", keep="first")
    )
    links_sha = _links_digest(file_links)
    linked = int(file_links.get_column("person_key").is_not_null().sum())
    if lake.table(SILVER_FILES_PATH) is not None:
        built = lake.read(SILVER_FILES_PATH).filter(pl.col("source_file") == source_file)
        if built.select("source_sha256", "links_sha256").rows() == [(sha, links_sha)]:
            return SilverBuild(
                lake.unchanged(SILVER_VARIANTS_PATH),
                lake.unchanged(SILVER_GENOTYPES_PATH),
                len(file_samples),
                linked,
                False,
            )
    properties = BULK_WRITER
    variant_arrow = pa.schema(lake.table_schema(VARIANTS_PATH))
    genotype_bronze = lake.table_schema(GENOTYPES_PATH)
    genotype_arrow = pa.schema([*genotype_bronze, pa.field("person_key", pa.large_string())])
    person = dict(file_links.iter_rows())

    def link(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(
            pl.col("sample_id").replace_strict(person, default=None, return_dtype=pl.String())
            .alias("person_key")
        )

    variants = lake.stream_source(
        SILVER_VARIANTS_PATH,
        _by_chromosome(
            lake,
            VARIANTS_PATH,
            source_file,
            _chromosomes(lake, VARIANTS_PATH, source_file),
            variant_arrow,
            lambda frame: frame,
        ),
        variant_arrow,
        source_file,
        run_id=run_id,
        partition_by=PARTITION_COLUMNS,
        writer_properties=properties,
        target_file_size=BULK_FILE_BYTES,
    )
    genotypes = lake.stream_source(
        SILVER_GENOTYPES_PATH,
        _by_chromosome(
            lake,
            GENOTYPES_PATH,
            source_file,
            _chromosomes(lake, GENOTYPES_PATH, source_file),
            genotype_arrow,
            link,
        ),
        genotype_arrow,
        source_file,
        run_id=run_id,
        partition_by=PARTITION_COLUMNS,
        writer_properties=properties,
        target_file_size=BULK_FILE_BYTES,
    )
    lake.merge(
        SILVER_FILES_PATH,
        pl.DataFrame(
            [(source_file, sha, links_sha, len(file_samples), linked, built_at)],
            schema=SILVER_LEDGER_COLUMNS,
            orient="row",
        ),
        ["source_file"],
        run_id=run_id,
        delete_missing=False,
    )
    return SilverBuild(variants, genotypes, len(file_samples), linked, True)
