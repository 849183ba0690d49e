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
from collections import Counter
from dataclasses import dataclass

import numpy as np
import polars as pl

from connectors.vcf.chunks import LINE, RECORD
from connectors.vcf.header import FieldDef, VcfHeader
from connectors.vcf.schema import element_dtype, is_flag, variants_schema
from connectors.vcf.values import (
    Parsed,
    typed_list_via_distinct,
    typed_scalar,
    via_distinct,
    without_missing,
)

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
# INFO layouts are looked for in a sample of this many records; at most this many of the
# most common are read by position, each of them if it is at least 1/(4 * _MAX_LAYOUTS) of
# the sample.
_LAYOUT_SAMPLE = 512
_MAX_LAYOUTS = 4


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
        frame: ``RECORD``, ``LINE``, the fixed columns typed (``alt`` and ``filter`` still as
            written), ``n_alt``, and one column per INFO field (Number=A and Number=R as whole
            lists).
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
        self._flags = {field.id for field in self._fields if is_flag(field)}
        self._valued = {field.id for field in self._fields if not is_flag(field)}
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
            "filter",
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
            # Split here, after the gather: gathering lists of strings costs more.
            pl.when(pl.col("filter") != ".").then(pl.col("filter").str.split(";")).alias("filters"),
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
        found, extra = self._info_items(without_missing(info))
        parsed: Parsed = {}
        for field in self._fields:
            raw = found[field.column]
            if is_flag(field):
                parsed[field.column] = raw
                continue
            if field.number == "1":
                values, failed = typed_scalar(raw, element_dtype(field))
            else:
                values, failed = typed_list_via_distinct(raw, element_dtype(field))
            parsed[field.column] = values
            if failed is not None:
                parsed[f"{_FAILED}{field.column}"] = failed.fill_null(False)
        if extra.any():
            parsed[_EXTRA] = extra
        return parsed

    def _info_items(self, info: pl.Series) -> tuple[Parsed, pl.Series]:
        """The value as written (a String, or a Boolean for a flag) of every INFO field,
        and whether a record holds items of undeclared keys (or odd items), elementwise.

        Records whose INFO follows one of the common layouts of the chunk (the same keys in
        the same order, as most files write them) take their values by position; the others
        are searched key by key.
        """
        layouts = self._layouts(info)
        if not layouts:
            return self._search_items(info)
        width = max(len(layout) for layout in layouts)
        parts = info.str.split(";")
        items = pl.DataFrame(
            [
                parts.list.get(index, null_on_oob=True).alias(str(index))
                for index in range(width + 1)
            ]
        )
        # Each distinct check of an item once, then each layout's match from them.
        checks = sorted(
            {
                (index, key, valued)
                for layout in layouts
                for index, (key, valued) in enumerate(layout)
            }
        )
        checked = items.select(
            (
                pl.col(str(index)).str.starts_with(f"{key}=")
                if valued
                else pl.col(str(index)) == key
            ).alias(f"{index}:{valued}:{key}")
            for index, key, valued in checks
        )
        by_layout = []
        for layout in layouts:
            match = items.get_column(str(len(layout))).is_null()
            for index, (key, valued) in enumerate(layout):
                match = match & checked.get_column(f"{index}:{valued}:{key}")
            by_layout.append(match.fill_null(False))
        found: Parsed = {}
        for field in self._fields:
            # the position of the field in each layout holding it -> the matches of those
            where: dict[int, pl.Series] = {}
            for layout, match in zip(layouts, by_layout, strict=True):
                for index, (key, _valued) in enumerate(layout):
                    if key == field.id:
                        where[index] = where[index] | match if index in where else match
            if is_flag(field):
                present = pl.repeat(False, info.len(), dtype=pl.Boolean(), eager=True)
                for match in where.values():
                    present = present | match
                found[field.column] = present
            elif not where:
                found[field.column] = pl.repeat(None, info.len(), dtype=pl.String(), eager=True)
            elif len(where) == 1 and all(field.id in dict(layout) for layout in layouts):
                # Rows of no layout are searched and overwritten below.
                (index,) = where
                found[field.column] = items.get_column(str(index)).str.slice(len(field.id) + 1)
            else:
                value = pl.lit(None, dtype=pl.String())
                for index, match in where.items():
                    value = (
                        pl.when(pl.lit(match))
                        .then(pl.col(str(index)).str.slice(len(field.id) + 1))
                        .otherwise(value)
                    )
                found[field.column] = items.select(value).to_series()
        any_match = by_layout[0]
        for match in by_layout[1:]:
            any_match = any_match | match
        searched = (~any_match & info.is_not_null()).to_numpy()
        extra = pl.repeat(False, info.len(), dtype=pl.Boolean(), eager=True)
        if not searched.any():
            return found, extra
        rows = np.flatnonzero(searched)
        if len(rows) * 2 > len(info):
            return self._search_items(info)
        indices = pl.Series(rows, dtype=pl.UInt32())
        some, some_extra = self._search_items(info.gather(indices))
        for column, values in some.items():
            found[column] = found[column].scatter(indices, values)
        return found, extra.scatter(indices, some_extra)

    def _layouts(self, info: pl.Series) -> list[tuple[tuple[str, bool], ...]]:
        """The common INFO layouts in a sample of the records: the keys in order, each with
        whether it is written with a value; only layouts of distinct declared keys, where
        every field that is not a flag has a value."""
        sample = info.gather_every(max(1, len(info) // _LAYOUT_SAMPLE)).drop_nulls()
        counts = Counter(
            tuple((item.partition("=")[0], "=" in item) for item in text.split(";"))
            for text in sample.to_list()
        )
        layouts = []
        for layout, count in counts.most_common(_MAX_LAYOUTS):
            if count * _MAX_LAYOUTS * 4 < len(sample):
                break
            keys = [key for key, _valued in layout]
            if len(set(keys)) == len(keys) and all(
                key in self._flags or (key in self._valued and valued) for key, valued in layout
            ):
                layouts.append(layout)
        return layouts

    def _search_items(self, info: pl.Series) -> tuple[Parsed, pl.Series]:
        """``_info_items`` by searching every record for every key."""
        padded = info.to_frame("info").select(
            pl.concat_str(pl.lit(";"), pl.col("info"), pl.lit(";")).alias("padded"),
            (pl.col("info").str.count_matches(";", literal=True) + 1).alias("items"),
        )
        text = pl.col("padded")
        frame = padded.select(
            *(
                (
                    text.str.contains(f";{re.escape(field.id)}[;=]").fill_null(False)
                    if is_flag(field)
                    else text.str.splitn(f";{field.id}=", 2)
                    .struct.field("field_1")
                    .str.splitn(";", 2)
                    .struct.field("field_0")
                ).alias(field.column)
                for field in self._fields
            )
        )
        found = {field.column: frame.get_column(field.column) for field in self._fields}
        present = [
            (values if is_flag(field) else values.is_not_null()).cast(pl.Int32())
            for field in self._fields
            for values in [found[field.column]]
        ]
        declared = pl.DataFrame(present).select(pl.sum_horizontal(pl.all())).to_series()
        return found, (padded.get_column("items") > declared).fill_null(False)

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
