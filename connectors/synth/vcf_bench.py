"""A large synthetic VCF for the ingest benchmark, written fast and in bounded memory.

The records look like a small joint-called cohort: INFO DP, AF, AC, AN, MQ and DB; FORMAT
GT:DP:GQ:AD; about 5% multi-allelic sites (two ALTs, per-ALT AF and AC, three AD values);
about 2% ``./.`` calls and a few phased ones; positions sorted over the first few GRCh38
chromosomes. INFO AC, AN, AF and DP agree with the genotypes written.

Text is built a chunk of records at a time with numpy and polars (most fields gathered from
precomputed text tables rather than formatted row by row) and cut into BGZF blocks that two
threads deflate while the next chunk is built; pysam then writes the tabix index. Memory
does not grow with the number of records, and the same arguments give the same bytes.
"""

import io
import struct
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl
import pysam

BENCH_CONTIGS: tuple[tuple[str, int], ...] = (
    ("chr1", 248_956_422),
    ("chr2", 242_193_529),
    ("chr3", 198_295_559),
    ("chr4", 190_214_555),
)
"""The contigs records are spread over, in proportion to their GRCh38 lengths."""

MAX_SAMPLES = 10_000
"""The most sample columns a benchmark file may have (keeps AC and AN in the text tables)."""

CHUNK_RECORDS = 200_000
"""Records built and written at a time; bounds memory whatever the file size."""

_MARGIN = 10_000
_MULTIALLELIC_RATE = 0.05
_MISSING_RATE = 0.02
_PHASED_RATE = 0.02
_DB_RATE = 1 / 3
_READ_ERROR = 0.01
_MAX_QUAL = 50_000
"""QUAL is drawn in tenths below this."""

_MAX_MQ = 601
"""MQ is drawn in tenths below this."""

COMPRESS_LEVEL = 1
"""zlib level of the BGZF blocks: fast to write; a reader inflates any level alike."""

# GT text by code: unphased diploid calls in PL order (0-5), phased a|b (6 + 3a + b), then
# the no-call.
_GT_TEXT: tuple[str, ...] = (
    *("0/0", "0/1", "1/1", "0/2", "1/2", "2/2"),
    *(f"{a}|{b}" for a in range(3) for b in range(3)),
    "./.",
)
_NO_CALL = 15

_HEADER = """##fileformat=VCFv4.2
##source=biofed-synth-benchmark
##reference=GRCh38
{contigs}
##FILTER=<ID=PASS,Description="All filters passed">
##INFO=<ID=DP,Number=1,Type=Integer,Description="Total read depth over the samples">
##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency in called genotypes">
##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count in called genotypes">
##INFO=<ID=AN,Number=1,Type=Integer,Description="Number of alleles in called genotypes">
##INFO=<ID=MQ,Number=1,Type=Float,Description="RMS mapping quality">
##INFO=<ID=DB,Number=0,Type=Flag,Description="dbSNP membership">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">
##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths for the ref and alt alleles">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{samples}
"""


def benchmark_header(samples: int) -> str:
    """The header of a benchmark VCF with ``samples`` sample columns (``S1`` ...).

    Args:
        samples: the number of sample columns.

    Returns:
        The header text, ``#CHROM`` line included, newline-terminated.
    """
    contigs = "\n".join(f"##contig=<ID={name},length={length}>" for name, length in BENCH_CONTIGS)
    names = "\t".join(f"S{i + 1}" for i in range(samples))
    return _HEADER.format(contigs=contigs, samples=names)


def _per_contig(records: int) -> list[int]:
    lengths = np.array([length for _, length in BENCH_CONTIGS], dtype=np.int64)
    counts = records * lengths // lengths.sum()
    counts[: records - int(counts.sum())] += 1
    return counts.tolist()


_SMALL = 100
"""Depths, qualities and allele depths stay below this, so their text comes from tables."""


_NUMBERS = 100_000
"""Integers below this take their text from a table."""


@cache
def _tables() -> dict[str, pl.Series]:
    """Text of numbers and of field combinations, gathered instead of formatted per row.

    Several fields and the separators between them share one table entry, so a line is
    assembled from few pieces.
    """
    bases = "ACGT"
    alts = [*bases, *(f"{a},{b}" for a in bases for b in bases)]
    return {
        "number": pl.Series([str(i) for i in range(_NUMBERS)]),
        # ",<n>" for a second ALT's value, and "" (the last entry) when there is none.
        "tail": pl.Series([*(f",{i}" for i in range(_NUMBERS)), ""]),
        "alleles": pl.Series([f"\t{ref}\t{alt}\t" for ref in bases for alt in alts]),
        "qual": pl.Series([f"{q // 10}.{q % 10}\tPASS\tDP=" for q in range(_MAX_QUAL)]),
        "mq": pl.Series(
            [
                f";MQ={q // 10}.{q % 10}{db}\tGT:DP:GQ:AD"
                for q in range(_MAX_MQ)
                for db in ("", ";DB")
            ]
        ),
        "call": pl.Series(
            [
                "\t./.:.:.:." if code == _NO_CALL else f"\t{_GT_TEXT[code]}:{depth}:{quality}:"
                for code in range(len(_GT_TEXT))
                for depth in range(_SMALL)
                for quality in range(_SMALL)
            ]
        ),
        # "<ref>,<alt>" allele depths, and "" (the last entry) for a no-call.
        "pair": pl.Series([*(f"{a},{b}" for a in range(_SMALL) for b in range(_SMALL)), ""]),
    }


def _text(values: np.ndarray) -> pl.Series:
    """Decimal text of non-negative integers."""
    if len(values) and values.max() < _NUMBERS:
        return _tables()["number"].gather(values)
    return pl.Series(values).cast(pl.String)


def _rounded(values: np.ndarray, low: np.ndarray | int, high: np.ndarray | int) -> np.ndarray:
    return np.clip(np.rint(values), low, high).astype(np.int64)


def _binomial(rng: np.random.Generator, trials: np.ndarray, p: np.ndarray) -> np.ndarray:
    mean = trials * p
    spread = np.sqrt(mean * (1 - p))
    return _rounded(mean + spread * rng.standard_normal(trials.shape), 0, trials)


def _chunk_text(rng: np.random.Generator, chrom: str, positions: np.ndarray, samples: int) -> bytes:
    """One chunk of data lines, newline-terminated, in position order."""
    tables = _tables()
    n = len(positions)
    multi = rng.random(n) < _MULTIALLELIC_RATE
    ref = rng.integers(0, 4, n)
    first_offset = rng.integers(1, 4, n)
    # The second ALT's offset from REF differs from the first's: a third base.
    second_offset = (first_offset + rng.integers(0, 2, n)) % 3 + 1
    first, second = (ref + first_offset) % 4, (ref + second_offset) % 4
    # Skewed towards rare alleles, as in real cohorts.
    frequency = 0.01 + 0.89 * rng.random(n) ** 2.5
    second_frequency = np.where(multi, frequency * rng.uniform(0.1, 0.5, n), 0.0)
    reference_frequency = 1.0 - frequency - second_frequency

    # Hardy-Weinberg draws of two alleles per sample; some become no-calls or phased.
    draws = rng.random((n, samples, 2))
    alleles = (draws >= reference_frequency[:, None, None]).astype(np.int64)
    alleles += draws >= (reference_frequency + frequency)[:, None, None]
    no_call = rng.random((n, samples)) < _MISSING_RATE
    low, high = alleles.min(axis=2), alleles.max(axis=2)
    phased = (low != high) & (rng.random((n, samples)) < _PHASED_RATE) & ~no_call
    code = np.where(
        phased, 6 + 3 * alleles[:, :, 0] + alleles[:, :, 1], high * (high + 1) // 2 + low
    )
    code = np.where(no_call, _NO_CALL, code)

    # Normal approximations of the Poisson depth and binomial read counts: several times
    # faster than the exact draws, and close enough for benchmark data.
    depth = _rounded(30 + np.sqrt(30) * rng.standard_normal((n, samples)), 1, _SMALL - 1)
    copies_1 = (alleles == 1).sum(axis=2)
    copies_2 = (alleles == 2).sum(axis=2)
    share_1 = copies_1 / 2 * (1 - 2 * _READ_ERROR) + _READ_ERROR
    share_2 = np.where(multi[:, None], copies_2 / 2 * (1 - 2 * _READ_ERROR) + _READ_ERROR, 0.0)
    ad_1 = _binomial(rng, depth, share_1)
    ad_2 = _binomial(rng, depth - ad_1, np.minimum(share_2 / (1 - share_1), 1.0))
    ad_0 = depth - ad_1 - ad_2
    quality = np.minimum(rng.integers(10, 60, (n, samples)) + depth, _SMALL - 1)

    called = ~no_call
    number = 2 * called.sum(axis=1)
    count_1 = (copies_1 * called).sum(axis=1)
    count_2 = (copies_2 * called).sum(axis=1)
    total_depth = (depth * called).sum(axis=1)
    db = rng.random(n) < _DB_RATE
    rs = rng.integers(1_000, 1_500_000_000, n)
    qual = rng.integers(300, _MAX_QUAL, n)
    mapping_quality = rng.integers(400, _MAX_MQ, n)

    col = pl.col
    af_1 = pl.Series(count_1 / np.maximum(number, 1)).round(4).cast(pl.String)
    af_2 = pl.Series(count_2 / np.maximum(number, 1)).round(4).cast(pl.String)
    columns: dict[str, pl.Series | np.ndarray] = {
        "pos": _text(positions),
        "db": db,
        "rs": pl.Series(rs).cast(pl.String),
        "alleles": tables["alleles"].gather(
            ref * 20 + np.where(multi, 4 + first * 4 + second, first)
        ),
        "qual": tables["qual"].gather(qual),
        "dp": _text(total_depth),
        "an": number,
        "af_1": af_1,
        "af_2": af_2,
        "multi": multi,
        "ac_1": _text(count_1),
        "ac_2": tables["tail"].gather(np.where(multi, count_2, _NUMBERS)),
        "an_text": _text(number),
        "mq": tables["mq"].gather(mapping_quality * 2 + db),
    }
    for s in range(samples):
        call = (code[:, s] * _SMALL + depth[:, s]) * _SMALL + quality[:, s]
        pair = np.where(no_call[:, s], _SMALL * _SMALL, ad_0[:, s] * _SMALL + ad_1[:, s])
        tail = np.where(no_call[:, s] | ~multi, _NUMBERS, ad_2[:, s])
        columns[f"call_{s}"] = tables["call"].gather(call)
        columns[f"pair_{s}"] = tables["pair"].gather(pair)
        columns[f"tail_{s}"] = tables["tail"].gather(tail)
    frame = pl.DataFrame(columns)
    multi_expr = col("multi")
    frequency = (
        pl.when(col("an") == 0)
        .then(pl.when(multi_expr).then(pl.lit(".,.")).otherwise(pl.lit(".")))
        .when(multi_expr)
        .then(pl.concat_str([col("af_1"), col("af_2")], separator=","))
        .otherwise(col("af_1"))
    )
    line = pl.concat_str(
        [
            pl.lit(f"{chrom}\t"),
            col("pos"),
            pl.lit("\t"),
            pl.when(col("db"))
            .then(pl.concat_str([pl.lit("rs"), col("rs")]))
            .otherwise(pl.lit(".")),
            col("alleles"),
            col("qual"),
            col("dp"),
            pl.lit(";AF="),
            frequency,
            pl.lit(";AC="),
            col("ac_1"),
            col("ac_2"),
            pl.lit(";AN="),
            col("an_text"),
            col("mq"),
            *(col(f"{part}_{s}") for s in range(samples) for part in ("call", "pair", "tail")),
        ]
    )
    buffer = io.BytesIO()
    frame.select(line).write_csv(buffer, include_header=False, quote_style="never")
    return buffer.getvalue()


# --- BGZF -----------------------------------------------------------------------------

_BGZF_BLOCK = 0xFF00
"""Uncompressed bytes per BGZF block, as htslib writes them."""
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_BGZF_HEADER = struct.Struct("<4BI2BH2BHH")
_BGZF_FOOTER = struct.Struct("<II")
_IN_FLIGHT = 512
"""BGZF blocks (of ~64 KiB each) compressing or waiting to be written, at most."""


def _bgzf_block(data: bytes) -> bytes:
    deflated = zlib.compress(data, COMPRESS_LEVEL, wbits=-15)
    if len(deflated) > 0x10000 - 26:
        deflated = zlib.compress(data, 0, wbits=-15)
    # BSIZE is the whole block's size minus one: 18 header bytes, data, 8 footer bytes.
    header = _BGZF_HEADER.pack(31, 139, 8, 4, 0, 0, 255, 6, 66, 67, 2, len(deflated) + 25)
    return header + deflated + _BGZF_FOOTER.pack(zlib.crc32(data), len(data))


class _BgzfWriter:
    """Cuts text into BGZF blocks compressed on worker threads, written in order."""

    def __init__(self, handle: BinaryIO, executor: ThreadPoolExecutor) -> None:
        self.handle = handle
        self.executor = executor
        self.rest = b""
        self.pending: deque[Future[bytes]] = deque()

    def write(self, data: bytes) -> None:
        buffer = self.rest + data
        cut = len(buffer) - len(buffer) % _BGZF_BLOCK
        for start in range(0, cut, _BGZF_BLOCK):
            self.pending.append(
                self.executor.submit(_bgzf_block, buffer[start : start + _BGZF_BLOCK])
            )
        self.rest = buffer[cut:]
        # zlib releases the GIL: blocks compress while the next chunk is built, and memory
        # stays bounded by the blocks in flight.
        while self.pending and (self.pending[0].done() or len(self.pending) > _IN_FLIGHT):
            self.handle.write(self.pending.popleft().result())

    def close(self) -> None:
        if self.rest:
            self.pending.append(self.executor.submit(_bgzf_block, self.rest))
            self.rest = b""
        while self.pending:
            self.handle.write(self.pending.popleft().result())
        self.handle.write(_BGZF_EOF)


def write_benchmark_vcf(path: str | Path, *, records: int, samples: int = 3, seed: int = 1) -> Path:
    """Write a bgzipped, tabix-indexed synthetic VCF of ``records`` data lines.

    The same arguments give the same file. It is built under a hidden temporary name next
    to ``path`` and renamed when complete; the index is ``<path>.tbi``. Four million records
    with three samples take well under a minute on two cores.

    Args:
        path: where to write the ``.vcf.gz`` file (replaced if present).
        records: the number of data lines (0 or more).
        samples: the number of sample columns (1 to ``MAX_SAMPLES``), named ``S1``, ``S2`` ...
        seed: the random seed.

    Returns:
        The path of the compressed VCF.

    Raises:
        ValueError: if ``records`` or ``samples`` is out of range, or there are more records
            than positions on the benchmark contigs.
        OSError: if the files cannot be written.
    """
    if isinstance(records, bool) or not isinstance(records, int) or records < 0:
        raise ValueError("records must be a whole number of 0 or more")
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLES:
        raise ValueError(f"samples must be a whole number from 1 to {MAX_SAMPLES}")
    target = Path(path)
    per_contig = _per_contig(records)
    for (_, length), count in zip(BENCH_CONTIGS, per_contig, strict=True):
        if count > length - 2 * _MARGIN:
            raise ValueError("records must be fewer than the positions of the benchmark contigs")
    rng = np.random.default_rng(seed)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with partial.open("wb") as handle, ThreadPoolExecutor(max_workers=2) as executor:
            writer = _BgzfWriter(handle, executor)
            writer.write(benchmark_header(samples).encode("ascii"))
            for (chrom, length), count in zip(BENCH_CONTIGS, per_contig, strict=True):
                if not count:
                    continue
                # One record in each of ``count`` equal bins: sorted, distinct positions
                # built chunk by chunk without knowing the others.
                width = (length - 2 * _MARGIN) // count
                for start in range(0, count, CHUNK_RECORDS):
                    index = np.arange(start, min(start + CHUNK_RECORDS, count), dtype=np.int64)
                    positions = _MARGIN + 1 + index * width + rng.integers(0, width, len(index))
                    writer.write(_chunk_text(rng, chrom, positions, samples))
            writer.close()
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    pysam.tabix_index(str(target), preset="vcf", force=True)
    return target
