"""Sample columns of VCF records, parsed into one genotype row per record and sample.

Decisions about values:

- GT is parsed as written: an optional leading phase indicator (VCF 4.4), then allele
  indices or '.' separated by '/' or '|'. ``phased`` is true when at least one separator is
  written and every one is '|' (so a haploid call is phased only with a leading '|').
  A whole sample value '.' is a no-call: GT '.', one null allele, every other field null.
- Fields missing at the end of a sample value are null; so are values written '.' or left
  empty. A sample value with more fields than its FORMAT has keys rejects the record.
- FORMAT values are typed by the header (Number=1 scalar, any other Number a list); a value
  not of the declared type, a GT that is not a genotype, or a GT allele index the record
  does not have rejects the record.
- FORMAT keys the header does not declare are not read; each gives one warning.

Rows of a chunk are ordered by sample, then by record.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from connectors.vcf.chunks import RECORD
from connectors.vcf.header import FieldDef, VcfHeader
from connectors.vcf.schema import element_dtype, genotypes_schema
from connectors.vcf.values import (
    Parsed,
    distinct_codes,
    typed_list_via_distinct,
    typed_scalar,
    via_distinct,
    without_missing,
)

GT_INVALID = "GT is not a genotype (allele indices or '.' separated by '/' or '|')"
GT_OUT_OF_RANGE = "GT refers to an allele index the record does not have"
TOO_MANY_VALUES = "a sample column holds more values than the FORMAT column has keys"

_GT = re.compile(r"[/|]?(?:[0-9]+|\.)(?:[/|](?:[0-9]+|\.))*")
_SEPARATOR = re.compile(r"[/|]")
_INT32_MAX = 2**31 - 1
_NO_FORMAT = "."
_TOO_MANY = "_too_many"
_FAILED = "_failed:"
_GT_INVALID = "_gt_invalid"
_MAX_ALLELE = "_max_allele"


def format_type_reason(field: FieldDef) -> str:
    """The reject reason of a FORMAT value that is not of the declared type."""
    return f"FORMAT/{field.id} is not of Type={field.type} as the header declares"


def undeclared_format_warning(key: str) -> str:
    """The warning for a FORMAT key the header does not declare."""
    return f"FORMAT key {key} is not declared in the header; its values are not read"


@dataclass
class Genotypes:
    """The genotypes of one chunk.

    Attributes:
        frame: one row per record and sample, ``genotypes_schema(header)`` columns.
        failures: ``(mask, reason)``; a mask marks the records (rows of the chunk's records
            frame) that fail the check.
        warnings: fixed sentences about the chunk.
    """

    frame: pl.DataFrame
    failures: list[tuple[np.ndarray, str]]
    warnings: list[str]


class GenotypeParser:
    """Parses the FORMAT and sample columns of a chunk's records for one header."""

    def __init__(self, header: VcfHeader, source_file: str) -> None:
        self._source_file = source_file
        self._samples = list(header.samples)
        self._sample_columns = [f"sample:{index}" for index in range(len(header.samples))]
        self._fields = [field for field in header.formats if field.id != "GT"]
        self._declared = {field.id for field in header.formats}
        self._schema = genotypes_schema(header)
        self._empty = pl.DataFrame(schema=self._schema)

    @property
    def sample_columns(self) -> list[str]:
        """Names the chunk reader gives the sample columns."""
        return self._sample_columns

    def parse(self, raw: pl.DataFrame, records: pl.DataFrame) -> Genotypes:
        """Parse the sample columns of a chunk.

        Args:
            raw: the chunk as read by ``read_chunk`` (String columns, ``format`` and the
                sample columns included).
            records: ``Records.frame`` of the same rows (``pos`` typed, ``n_alt``).
        """
        if not self._samples or raw.height == 0:
            return Genotypes(self._empty, [], [])
        warnings: list[str] = []
        formats = without_missing(raw.get_column("format"))
        layouts = formats.unique().drop_nulls().to_list()
        for layout in layouts:
            for key in layout.split(":"):
                if key not in self._declared:
                    warnings.append(undeclared_format_warning(key))
        n_records, n_samples = raw.height, len(self._samples)
        values = pl.concat([raw.get_column(name) for name in self._sample_columns])
        if len(layouts) == 1 and formats.null_count() == 0:
            keys = _positions(layouts[0])
            parsed = via_distinct(values, lambda v: self._parse_values(v, keys, len(keys)))
        else:
            parsed = self._parse_mixed(values, formats, layouts, n_samples)
        n_alleles = (records.get_column("n_alt").cast(pl.Int64()) + 1).to_numpy()
        failures: list[tuple[np.ndarray, str]] = []
        checks = [(parsed.pop(_TOO_MANY, None), TOO_MANY_VALUES)]
        checks += [
            (parsed.pop(f"{_FAILED}{field.column}", None), format_type_reason(field))
            for field in self._fields
        ]
        checks.append((parsed.pop(_GT_INVALID, None), GT_INVALID))
        for mask, reason in checks:
            if mask is not None and mask.any():
                failures.append((_per_record(mask.to_numpy(), n_records), reason))
        highest = parsed.pop(_MAX_ALLELE).to_numpy()
        out_of_range = highest >= np.tile(n_alleles, n_samples)
        if out_of_range.any():
            failures.append((_per_record(out_of_range, n_records), GT_OUT_OF_RANGE))
        rows = n_records * n_samples
        sample_index = pl.Series(np.repeat(np.arange(n_samples, dtype=np.int32), n_records))
        columns = {
            "source_file": pl.repeat(self._source_file, rows, dtype=pl.String(), eager=True),
            "record_index": _tile(records.get_column(RECORD), n_samples),
            "chrom": _tile(records.get_column("chrom"), n_samples),
            "pos": _tile(records.get_column("pos"), n_samples),
            "sample_index": sample_index,
            "sample_id": pl.Series(self._samples, dtype=pl.String()).gather(sample_index),
            "gt": parsed["gt"],
            "alleles": parsed["alleles"],
            "ploidy": parsed["ploidy"],
            "phased": parsed["phased"],
            "called": parsed["called"],
            "n_alleles": _tile((records.get_column("n_alt") + 1).cast(pl.Int32()), n_samples),
            **{field.column: parsed[field.column] for field in self._fields},
        }
        # Built column by column: a select would rechunk the tiled columns for nothing.
        frame = pl.DataFrame([values.alias(name) for name, values in columns.items()])
        return Genotypes(frame, failures, warnings)

    def _parse_values(self, values: pl.Series, keys: dict[str, int], n_keys: int) -> Parsed:
        """Parse sample values that all follow one FORMAT layout."""
        parsed: Parsed = {}
        if max(keys.values()) < n_keys:
            part, too_many = _exact_parts(values, n_keys)
        else:
            # A key written twice (n_keys counts distinct keys) before another key: that
            # key's part lies beyond the first n_keys parts.
            part, too_many = _listed_parts(values, n_keys)
        too_many = (too_many & (values != _NO_FORMAT)).fill_null(False)
        if too_many.any():
            parsed[_TOO_MANY] = too_many
        position = keys.get("GT")
        gt = part(position) if position is not None else None
        parsed.update(_parse_gt(gt, len(values)))
        for field in self._fields:
            position = keys.get(field.id)
            if position is None:
                parsed[field.column] = _constant(None, _dtype(field), len(values))
                continue
            self._type(field, part(position), parsed)
        return parsed

    def _parse_mixed(
        self, values: pl.Series, formats: pl.Series, layouts: list[str], n_samples: int
    ) -> Parsed:
        """Parse sample values whose FORMAT layout differs between records."""
        positions = [_positions(layout) for layout in layouts]

        def per_record(key: str) -> pl.Series:
            found = [keys.get(key) for keys in positions]
            by_record = formats.replace_strict(
                layouts, found, default=None, return_dtype=pl.Int32()
            )
            return pl.concat([by_record] * n_samples)

        frame = pl.DataFrame({"value": values}).with_columns(
            pl.col("value").str.split(":").alias("parts"),
            pl.concat(
                [
                    formats.replace_strict(
                        layouts,
                        [len(keys) for keys in positions],
                        default=0,
                        return_dtype=pl.Int32(),
                    )
                ]
                * n_samples
            ).alias("n_keys"),
        )
        parts = pl.col("parts")
        frame = frame.with_columns(
            ((parts.list.len() > pl.col("n_keys")) & (pl.col("value") != _NO_FORMAT)).alias(
                _TOO_MANY
            ),
            *(
                parts.list.get(per_record(key), null_on_oob=True).alias(f"raw:{key}")
                for key in ["GT", *(field.id for field in self._fields)]
            ),
        )
        parsed: Parsed = {}
        too_many = frame.get_column(_TOO_MANY).fill_null(False)
        if too_many.any():
            parsed[_TOO_MANY] = too_many
        parsed.update(_parse_gt(frame.get_column("raw:GT"), frame.height))
        for field in self._fields:
            self._type(field, frame.get_column(f"raw:{field.id}"), parsed)
        return parsed

    def _type(self, field: FieldDef, raw: pl.Series, parsed: Parsed) -> None:
        dtype = element_dtype(field)
        if field.number == "1":
            # A cast costs less than finding the distinct values: no ``via_distinct``.
            values, failed = typed_scalar(raw, dtype)
        else:
            values, failed = typed_list_via_distinct(raw, dtype)
        parsed[field.column] = values
        if failed is not None:
            parsed[f"{_FAILED}{field.column}"] = failed.fill_null(False)


def _dtype(field: FieldDef) -> pl.DataType:
    element = element_dtype(field)
    return element if field.number == "1" else pl.List(element)


def _tile(values: pl.Series, times: int) -> pl.Series:
    """The values repeated ``times`` over, end to end, without copying them."""
    return pl.concat([values] * times, rechunk=False)


def _exact_parts(values: pl.Series, n_keys: int) -> tuple[Callable[[int], pl.Series], pl.Series]:
    """The first ``n_keys`` ':'-separated parts of sample values (null when a value has
    fewer), and whether a value has more than ``n_keys`` parts."""
    # One more part than needed: it is null unless a value has too many.
    fields = values.str.split_exact(":", n_keys).struct
    return (
        lambda position: fields.field(f"field_{position}"),
        fields.field(f"field_{n_keys}").is_not_null(),
    )


def _listed_parts(values: pl.Series, n_keys: int) -> tuple[Callable[[int], pl.Series], pl.Series]:
    """``_exact_parts`` for any layout, by splitting every value into a list."""
    parts = values.str.split(":")
    return (
        lambda position: parts.list.get(position, null_on_oob=True),
        parts.list.len() > n_keys,
    )


def _positions(layout: str) -> dict[str, int]:
    positions: dict[str, int] = {}
    for position, key in enumerate(layout.split(":")):
        positions.setdefault(key, position)
    return positions


def _per_record(mask: np.ndarray, n_records: int) -> np.ndarray:
    """A mask over sample-major genotype rows, folded to a mask over records."""
    return mask.reshape(-1, n_records).any(axis=0)


def _parse_gt(gt: pl.Series | None, length: int) -> Parsed:
    """Parse GT strings by parsing their few distinct values in Python."""
    if gt is None or gt.null_count() == len(gt):
        return {
            "gt": _constant(None, pl.String(), length) if gt is None else gt,
            "alleles": _constant(None, pl.List(pl.Int32()), length),
            "ploidy": _constant(0, pl.Int32(), length),
            "phased": _constant(False, pl.Boolean(), length),
            "called": _constant(False, pl.Boolean(), length),
            _MAX_ALLELE: _constant(-1, pl.Int64(), length),
        }
    distinct, codes = distinct_codes(gt)
    rows = [_genotype(text) for text in distinct.to_list()]
    rows.append((None, 0, False, False, False, -1))
    table = pl.DataFrame(
        rows,
        schema={
            "alleles": pl.List(pl.Int32()),
            "ploidy": pl.Int32(),
            "phased": pl.Boolean(),
            "called": pl.Boolean(),
            _GT_INVALID: pl.Boolean(),
            _MAX_ALLELE: pl.Int64(),
        },
        orient="row",
    )
    if not table.get_column(_GT_INVALID).any():
        table = table.drop(_GT_INVALID)
    # GT values absent from a sample (null) map to the last row: no alleles, ploidy 0.
    parsed = dict(zip(table.columns, table[codes], strict=True))
    parsed["gt"] = gt
    return parsed


def _constant(value: object, dtype: pl.DataType, length: int) -> pl.Series:
    return pl.repeat(value, length, dtype=dtype, eager=True)


def _genotype(text: str) -> tuple[list[int | None] | None, int, bool, bool, bool, int]:
    """(alleles, ploidy, phased, called, invalid, highest allele index) of one GT string."""
    if not _GT.fullmatch(text):
        return None, 0, False, False, True, -1
    body = text[1:] if text[0] in "/|" else text
    alleles = [None if allele == "." else int(allele) for allele in _SEPARATOR.split(body)]
    separators = _SEPARATOR.findall(text)
    phased = bool(separators) and all(separator == "|" for separator in separators)
    called = all(allele is not None for allele in alleles)
    highest = max((allele for allele in alleles if allele is not None), default=-1)
    if highest > _INT32_MAX:
        return None, len(alleles), phased, called, False, _INT32_MAX + 1
    return alleles, len(alleles), phased, called, False, highest
