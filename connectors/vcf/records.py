"""The fixed columns and INFO of VCF records, typed and checked, and split per ALT allele.

Decisions about values:

- POS is a whole number of 0 or more (0 marks a telomere in VCF 4.x).
- REF is a sequence of nucleotide letters: A, C, G, T, N, or an IUPAC ambiguity code (some
  reference genomes carry them, and variant callers copy them to REF), in any case.
- ALT is '.' or a comma-separated list of alleles, each of them bases, '*', a symbolic
  allele in angle brackets (``<DEL>``), a breakend (``T[2:3[``, ``]2:2]A``) or a single
  breakend (``.A``, ``A.``).
- QUAL and INFO values written '.' or left empty are missing (null), never errors.
- INFO values are typed by the header: a value that is not of the declared Type, or a
  Number=A / Number=R value without one value per ALT allele / per allele, rejects the
  record. String values are percent-decoded (VCF 4.3).
- INFO items whose key the header does not declare are kept verbatim in
  ``info_undeclared``; each such key gives one warning.
- A flag written with a value (``DB=1``) counts as present.
- ``end`` is INFO/END when the header declares END (Number=1, Integer) and the record has
  one at or after POS; an END before POS is ignored, as htslib does, and ``end`` falls back
  to pos + len(ref) - 1.
"""

import re
from dataclasses import dataclass

import numpy as np
import polars as pl

from connectors.vcf.chunks import LINE, RECORD
from connectors.vcf.header import FieldDef, VcfHeader
from connectors.vcf.schema import element_dtype, is_flag, variants_schema
from connectors.vcf.values import Parsed, typed_list, typed_scalar, via_distinct, without_missing

_BASES = "ACGTNacgtn"
_REF_LETTERS = _BASES + "RYKMSWBDHVrykmswbdhv"
_ALLELE = (
    rf"(?:[{_BASES}]+|\*|<[^<>,]+>|[{_BASES}.]*[\[\]][^\[\],]+[\[\]][{_BASES}.]*"
    rf"|\.[{_BASES}]+|[{_BASES}]+\.)"
)
_REF_PATTERN = rf"^[{_REF_LETTERS}]+$"
_ALT_PATTERN = rf"^(?:\.|{_ALLELE}(?:,{_ALLELE})*)$"

CHROM_EMPTY = "CHROM is empty"
POS_INVALID = "POS is not a whole number of 0 or more"
REF_INVALID = "REF is not a sequence of nucleotide letters (A, C, G, T, N or IUPAC codes)"
ALT_INVALID = (
    "ALT is not '.' or a comma-separated list of bases, '*', symbolic alleles or breakends"
)
QUAL_INVALID = "QUAL is not a number or '.'"

_EXTRA = "_undeclared_items"
_FAILED = "_failed:"
_MAX_UNDECLARED_WARNINGS = 50


def info_type_reason(field: FieldDef) -> str:
    """The reject reason of an INFO value that is not of the declared type."""
    return f"INFO/{field.id} is not of Type={field.type} as the header declares"


def info_count_reason(field: FieldDef) -> str:
    """The reject reason of a Number=A or Number=R INFO value with the wrong count."""
    if field.number == "A":
        return f"INFO/{field.id} does not hold one value per ALT allele (Number=A)"
    return f"INFO/{field.id} does not hold one value per allele, REF included (Number=R)"


def undeclared_info_warning(key: str) -> str:
    """The warning for an INFO key the header does not declare."""
    return (
        f"INFO key {key} is not declared in the header; its items are kept verbatim in "
        "info_undeclared"
    )


@dataclass
class Records:
    """The records of one chunk, typed, one row per record.

    Attributes:
        frame: ``RECORD``, ``LINE``, the fixed columns typed (``alt`` still as written),
            ``n_alt``, and one column per INFO field (Number=A and Number=R as whole lists).
        failures: ``(mask, reason)`` in check order; a mask marks the records (rows of
            ``frame``) that fail the check.
        warnings: fixed sentences about the chunk.
    """

    frame: pl.DataFrame
    failures: list[tuple[np.ndarray, str]]
    warnings: list[str]


class RecordParser:
    """Types and checks the fixed columns and INFO of a chunk's records for one header."""

    def __init__(self, header: VcfHeader, source_file: str) -> None:
        self._header = header
        self._source_file = source_file
        self._fields = header.info
        self._schema = variants_schema(header)
        end = header.info_field("END")
        self._end_column = (
            end.column if end is not None and end.number == "1" and end.type == "Integer" else None
        )

    def parse(self, raw: pl.DataFrame) -> Records:
        """Type and check the records of a chunk read by ``read_chunk``."""
        failures: list[tuple[np.ndarray, str]] = []
        warnings: list[str] = []
        alt, qual = pl.col("alt"), pl.col("qual")
        fixed = raw.select(
            RECORD,
            LINE,
            "chrom",
            pl.col("pos").cast(pl.Int64(), strict=False),
            pl.when(pl.col("id") != ".").then(pl.col("id")).alias("id"),
            "ref",
            "alt",
            pl.when(alt == ".")
            .then(0)
            .otherwise(alt.str.count_matches(",", literal=True) + 1)
            .cast(pl.Int32())
            .alias("n_alt"),
            qual.cast(pl.Float64(), strict=False),
            pl.when(pl.col("filter") != ".").then(pl.col("filter").str.split(";")).alias("filters"),
            pl.col("chrom").is_null().alias("_chrom_empty"),
            pl.col("ref").str.contains(_REF_PATTERN).not_().fill_null(True).alias("_bad_ref"),
            alt.str.contains(_ALT_PATTERN).not_().fill_null(True).alias("_bad_alt"),
            (qual.is_not_null() & (qual != ".")).alias("_qual_written"),
        ).with_columns(
            (pl.col("pos").is_null() | (pl.col("pos") < 0)).alias("_bad_pos"),
            (pl.col("qual").is_null() & pl.col("_qual_written")).alias("_bad_qual"),
        )
        for column, reason in (
            ("_chrom_empty", CHROM_EMPTY),
            ("_bad_pos", POS_INVALID),
            ("_bad_ref", REF_INVALID),
            ("_bad_alt", ALT_INVALID),
            ("_bad_qual", QUAL_INVALID),
        ):
            mask = fixed.get_column(column)
            if mask.any():
                failures.append((mask.to_numpy(), reason))
        fixed = fixed.drop(
            "_chrom_empty", "_bad_pos", "_bad_ref", "_bad_alt", "_qual_written", "_bad_qual"
        )

        info = raw.get_column("info")
        info_columns = self._info_columns(info, fixed.get_column("n_alt"), failures)
        undeclared = self._undeclared(info, info_columns.pop(_EXTRA, None), warnings)
        frame = fixed.with_columns(
            undeclared.alias("info_undeclared"),
            *(info_columns[field.column].alias(field.column) for field in self._fields),
        )
        return Records(frame, failures, warnings)

    def variants(self, records: pl.DataFrame) -> pl.DataFrame:
        """One row per record and ALT allele, with exactly ``variants_schema(header)``.

        Args:
            records: ``Records.frame`` of the records to keep.
        """
        n_alt = records.get_column("n_alt").to_numpy()
        multiallelic = n_alt > 1
        if multiallelic.any():
            counts = np.maximum(n_alt, 1)
            rows = np.repeat(np.arange(len(n_alt)), counts)
            starts = np.repeat(np.cumsum(counts) - counts, counts)
            allele_index = (np.arange(len(rows)) - starts + 1) * (n_alt[rows] > 0)
            frame = records[rows]
            split_alts = (
                records.filter(pl.Series(multiallelic)).get_column("alt").str.split(",").explode()
            )
            alt = frame.get_column("alt").scatter(np.flatnonzero(multiallelic[rows]), split_alts)
            multiallelic = multiallelic[rows]
        else:
            frame = records
            allele_index = n_alt > 0
            alt = frame.get_column("alt")
        frame = frame.with_columns(
            alt.replace(".", None).alias("alt"),
            pl.Series("allele_index", allele_index, dtype=pl.Int32()),
            pl.Series("multiallelic", multiallelic, dtype=pl.Boolean()),
        )
        index = pl.col("allele_index")
        per_allele = []
        for field in self._fields:
            if is_flag(field) or field.number not in ("A", "R"):
                continue
            values = pl.col(field.column)
            if field.number == "A":
                per_allele.append(
                    pl.when(index > 0)
                    .then(values.list.get(index - 1, null_on_oob=True))
                    .alias(field.column)
                )
            else:
                per_allele.append(
                    pl.when(values.is_not_null())
                    .then(
                        pl.concat_list(
                            values.list.get(0, null_on_oob=True),
                            pl.when(index > 0).then(values.list.get(index, null_on_oob=True)),
                        )
                    )
                    .alias(field.column)
                )
        ref_end = pl.col("pos") + pl.col("ref").str.len_bytes().cast(pl.Int64()) - 1
        end = ref_end
        if self._end_column is not None:
            declared_end = pl.col(self._end_column)
            end = pl.when(declared_end >= pl.col("pos")).then(declared_end).otherwise(ref_end)
        frame = frame.with_columns(
            *per_allele,
            end.alias("end"),
            (pl.col("n_alt") + 1).cast(pl.Int32()).alias("n_alleles"),
        )
        renamed = {"record_index": RECORD, "line": LINE}
        # Built column by column: a select would rechunk gathered columns for nothing.
        source_file = pl.repeat(self._source_file, frame.height, dtype=pl.String(), eager=True)
        return pl.DataFrame(
            [
                source_file.alias("source_file"),
                *(
                    frame.get_column(renamed.get(name, name)).alias(name)
                    for name in list(self._schema)[1:]
                ),
            ]
        )

    def _info_columns(
        self, info: pl.Series, n_alt: pl.Series, failures: list[tuple[np.ndarray, str]]
    ) -> Parsed:
        """Typed INFO columns at record level (Number=A and R as whole lists)."""
        if not self._fields:
            extra = without_missing(info).is_not_null()
            return {_EXTRA: extra} if extra.any() else {}
        parsed = via_distinct(info, self._parse_info)
        type_failures: list[tuple[np.ndarray, str]] = []
        count_failures: list[tuple[np.ndarray, str]] = []
        for field in self._fields:
            failed = parsed.pop(f"{_FAILED}{field.column}", None)
            if failed is not None and failed.any():
                type_failures.append((failed.to_numpy(), info_type_reason(field)))
            if field.number in ("A", "R") and not is_flag(field):
                # Per-ALT values of a record without ALT have nothing to describe (bcftools
                # writes AC=0 there): they are not checked, and no row carries them.
                expected = n_alt if field.number == "A" else n_alt + 1
                wrong = ((parsed[field.column].list.len() != expected) & (n_alt > 0)).fill_null(
                    False
                )
                if wrong.any():
                    count_failures.append((wrong.to_numpy(), info_count_reason(field)))
        failures.extend(type_failures)
        failures.extend(count_failures)
        return parsed

    def _parse_info(self, info: pl.Series) -> Parsed:
        """INFO strings to typed values, elementwise (see ``via_distinct``)."""
        padded = without_missing(info).to_frame("info").select(
            pl.concat_str(pl.lit(";"), pl.col("info"), pl.lit(";")).alias("padded"),
            (pl.col("info").str.count_matches(";", literal=True) + 1).alias("items"),
        )
        text = pl.col("padded")
        found = padded.select(
            *(
                (
                    text.str.contains(f";{re.escape(field.id)}[;=]")
                    if is_flag(field)
                    else text.str.splitn(f";{field.id}=", 2)
                    .struct.field("field_1")
                    .str.splitn(";", 2)
                    .struct.field("field_0")
                ).alias(field.column)
                for field in self._fields
            )
        )
        parsed: Parsed = {}
        present = []
        for field in self._fields:
            raw = found.get_column(field.column)
            if is_flag(field):
                parsed[field.column] = raw.fill_null(False)
                present.append(raw.fill_null(False).cast(pl.Int32()))
                continue
            present.append(raw.is_not_null().cast(pl.Int32()))
            if field.number == "1":
                values, failed = typed_scalar(raw, element_dtype(field))
            else:
                values, failed = typed_list(raw, element_dtype(field))
            parsed[field.column] = values
            if failed is not None:
                parsed[f"{_FAILED}{field.column}"] = failed.fill_null(False)
        declared = pl.DataFrame(present).select(pl.sum_horizontal(pl.all())).to_series()
        extra = (padded.get_column("items") > declared).fill_null(False)
        if extra.any():
            parsed[_EXTRA] = extra
        return parsed

    def _undeclared(
        self, info: pl.Series, extra: pl.Series | None, warnings: list[str]
    ) -> pl.Series:
        """``info_undeclared``: the items of keys the header does not declare, verbatim."""
        result = pl.repeat(None, len(info), dtype=pl.String(), eager=True)
        if extra is None or not extra.any():
            return result
        declared = [field.id for field in self._fields]
        rows = np.flatnonzero(extra.to_numpy())
        kept = (
            info.gather(rows)
            .str.split(";")
            .list.eval(
                pl.element().filter(
                    (pl.element() != "")
                    & ~pl.element().str.splitn("=", 2).struct.field("field_0").is_in(declared)
                )
            )
        )
        keys = kept.list.explode().drop_nulls().str.splitn("=", 2).struct.field("field_0")
        for key in sorted(keys.unique().to_list())[:_MAX_UNDECLARED_WARNINGS]:
            warnings.append(undeclared_info_warning(key))
        return result.scatter(rows, kept.list.join(";").replace("", None))
