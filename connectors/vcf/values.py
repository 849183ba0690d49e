"""Typing VCF values held as strings: casts that report failures, lists, percent-decoding.

Every function here is elementwise, so it can run on a column or on that column's distinct
values (``via_distinct``), whichever is cheaper.
"""

from collections.abc import Callable

import polars as pl

MISSING_VALUES = (".", "")
"""A value written as '.' (or left empty) is missing: null, never a type error."""

# VCF 4.3 percent-encoding of characters with a meaning in a VCF line. '%25' comes last so
# that '%253A' decodes to '%3A', not ':'.
_PERCENT_CODES = (
    ("3A", ":"),
    ("3B", ";"),
    ("3D", "="),
    ("2C", ","),
    ("0D", "\r"),
    ("0A", "\n"),
    ("09", "\t"),
    ("25", "%"),
)

# Distinct values are parsed instead of every value when a sample of the column has at most
# this share of distinct values: typing a few thousand distinct strings and gathering the
# results back costs less than typing millions.
_DISTINCT_SHARE = 0.25
_DISTINCT_MIN_ROWS = 4096
_DISTINCT_SAMPLE = 4096

Parsed = dict[str, pl.Series]


def without_missing(raw: pl.Series) -> pl.Series:
    """Make '.' and empty strings null.

    Args:
        raw: string values.

    Returns:
        The values, '.' and empty ones replaced by null.
    """
    return raw.replace(list(MISSING_VALUES), None)


def percent_decoded(values: pl.Expr) -> pl.Expr:
    """Decode VCF 4.3 percent-encoded characters (``%3B`` -> ``;`` ...) in strings.

    Args:
        values: an expression of strings.

    Returns:
        The expression with ``%3A %3B %3D %2C %0D %0A %09 %25`` decoded (any case).
    """
    for code, character in _PERCENT_CODES:
        values = values.str.replace_all(f"(?i)%{code}", character)
    return values


def percent_decode(values: pl.Series) -> pl.Series:
    """``percent_decoded`` on a Series, skipped when no value holds a '%'.

    Args:
        values: strings.

    Returns:
        The decoded strings.
    """
    if not values.str.contains("%", literal=True).any():
        return values
    return values.to_frame().select(percent_decoded(pl.first())).to_series()


def typed_scalar(raw: pl.Series, dtype: pl.DataType) -> tuple[pl.Series, pl.Series | None]:
    """Cast strings to ``dtype``; '.' and empty values become null.

    Args:
        raw: string values (nulls allowed).
        dtype: Int64, Float64 or String.

    Returns:
        The typed values, and a Boolean mask of the values that are not of the type (None
        when every value is of the type).
    """
    if dtype == pl.String():
        return percent_decode(without_missing(raw)), None
    typed = raw.cast(dtype, strict=False)
    nulls, raw_nulls = typed.null_count(), raw.null_count()
    # Without a null more than the raw values there is no missing value to count.
    if nulls == raw_nulls or nulls == raw_nulls + int(raw.is_in(MISSING_VALUES).sum()):
        return typed, None
    failed = typed.is_null() & raw.is_not_null() & ~raw.is_in(MISSING_VALUES)
    return typed, failed


def typed_list(raw: pl.Series, dtype: pl.DataType) -> tuple[pl.Series, pl.Series | None]:
    """Split comma-separated strings into typed lists.

    A value that is '.' (or empty) as a whole is a null list; a '.' element is a null
    element.

    Args:
        raw: string values (nulls allowed).
        dtype: the element dtype, Int64, Float64 or String.

    Returns:
        The typed lists, and a Boolean mask of the values holding an element that is not of
        the type (None when every element is of the type).
    """
    parts = without_missing(raw).str.split(",")
    if dtype == pl.String():
        flat = parts.list.explode()
        typed = parts.cast(pl.List(pl.String()))
        if flat.is_in(MISSING_VALUES).any():
            typed = typed.list.eval(
                pl.when(pl.element().is_in(MISSING_VALUES)).then(None).otherwise(pl.element())
            )
        if flat.str.contains("%", literal=True).any():
            typed = typed.list.eval(percent_decoded(pl.element()))
        return typed, None
    typed = parts.cast(pl.List(dtype), strict=False)
    # Null elements of the typed lists (null lists aside) are either missing values or
    # failures; most columns have none, and then there is nothing more to check.
    null_elements = int(typed.list.count_matches(None).sum())
    if null_elements == 0:
        return typed, None
    flat_raw = parts.list.explode(keep_nulls=False, empty_as_null=False)
    if null_elements == int(flat_raw.is_in(MISSING_VALUES).sum()):
        return typed, None
    failed = parts.list.eval(
        (
            pl.element().cast(dtype, strict=False).is_null() & ~pl.element().is_in(MISSING_VALUES)
        ).any()
    ).list.first()
    return typed, failed.fill_null(False)


def typed_list_via_distinct(
    raw: pl.Series, dtype: pl.DataType
) -> tuple[pl.Series, pl.Series | None]:
    """``typed_list`` run on the distinct values of ``raw`` when that is cheaper.

    Splitting and casting lists costs more than finding the distinct values, which list
    columns (allele depths, frequencies) usually have few of.

    Args:
        raw: string values (nulls allowed).
        dtype: the element dtype, Int64, Float64 or String.

    Returns:
        As ``typed_list``.
    """

    def parse(values: pl.Series) -> Parsed:
        typed, failed = typed_list(values, dtype)
        return {"typed": typed} if failed is None else {"typed": typed, "failed": failed}

    parsed = via_distinct(raw, parse)
    return parsed["typed"], parsed.get("failed")


def via_distinct(raw: pl.Series, parse: Callable[[pl.Series], Parsed]) -> Parsed:
    """Run an elementwise ``parse`` on the distinct values of ``raw`` when that is cheaper.

    Args:
        raw: string values (nulls allowed).
        parse: maps a string Series (nulls allowed) to named Series of the same length, row
            by row.

    Returns:
        ``parse(raw)``, computed either directly or on the distinct values and gathered back.
    """
    rows = len(raw)
    if rows < _DISTINCT_MIN_ROWS:
        return parse(raw)
    sample = raw.gather_every(max(1, rows // _DISTINCT_SAMPLE))
    if sample.n_unique() > len(sample) * _DISTINCT_SHARE:
        return parse(raw)
    distinct, codes = distinct_codes(raw, sample)
    if len(distinct) > rows * _DISTINCT_SHARE:
        return parse(raw)
    table = pl.DataFrame(parse(distinct.extend_constant(None, 1)))
    return dict(zip(table.columns, table[codes], strict=True))


def distinct_codes(raw: pl.Series, sample: pl.Series | None = None) -> tuple[pl.Series, pl.Series]:
    """The distinct values of strings, and the position of each value among them.

    Args:
        raw: string values (nulls allowed).
        sample: some of the values, where most distinct values are expected to show (by
            default, one value in ``len(raw) / 4096``).

    Returns:
        The distinct non-null values (in no particular order), and for every value of
        ``raw`` the index of its distinct value (UInt32); a null gets ``len(distinct)``.
    """
    if sample is None:
        sample = raw.gather_every(max(1, len(raw) // _DISTINCT_SAMPLE))
    # The values of a sample are looked up in one pass; only the values missing from the
    # sample are gathered and looked up a second time.
    distinct = sample.drop_nulls().unique()
    if distinct.is_empty():
        distinct = raw.drop_nulls().unique()
    codes = raw.cast(pl.Enum(distinct), strict=False).to_physical().cast(pl.UInt32())
    unknown = codes.is_null() & raw.is_not_null()
    if unknown.any():
        rows = unknown.arg_true()
        rest = raw.gather(rows)
        others = rest.unique()
        rest_codes = rest.cast(pl.Enum(others)).to_physical().cast(pl.UInt32()) + len(distinct)
        codes = codes.scatter(rows, rest_codes)
        distinct = pl.concat([distinct, others])
    # Nulls map to one extra null value after the distinct ones, so that a gather needs no
    # null indices and the parse decides what a null becomes.
    return distinct, codes.fill_null(len(distinct))
