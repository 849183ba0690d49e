"""CSV manifests that sources send beside their data (a biobank's sample manifest, a RIS order
export): read whole, checked row by row, bad rows quarantined by line."""

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

LINE = "_line"
"""The column holding each row's line number in the file (the header is line 1)."""


class ManifestError(ValueError):
    """A manifest cannot be read as a whole; the message says how to fix it."""


def read_manifest(
    path: Path,
    *,
    source_file: str,
    columns: Mapping[str, pl.DataType],
    parsed: Mapping[str, pl.Expr],
    rules: Sequence[tuple[pl.Expr, str]],
    what: str,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A manifest's rows, and its quarantined rows.

    Every value is read as text with surrounding blanks removed; ``parsed`` turns text
    columns into their types (a value that does not parse becomes null, which a rule should
    catch). A row is quarantined with its line number and the first rule it breaks.

    Args:
        path: the CSV file (UTF-8, header row).
        source_file: the name recorded in the reject rows and error messages.
        columns: the manifest's columns and their types, in order.
        parsed: column name to the expression that parses its text (others stay text).
        rules: ``(condition, reason)`` pairs over the text columns and the parsed ones
            (named ``_<column>``); a row meeting a condition is quarantined with the reason.
        what: what the manifest is, for messages ("sample manifest").

    Returns:
        ``(rows, rejects)``: rows with ``columns``, rejects with the shared reject columns
        (source, locator, reason).

    Raises:
        ManifestError: when the file is not a UTF-8 CSV with the manifest's columns.
    """
    try:
        raw = pl.read_csv(path, infer_schema=False, encoding="utf8")
    except (pl.exceptions.PolarsError, UnicodeDecodeError) as exc:
        raise ManifestError(
            f"{source_file} is not a readable UTF-8 CSV file; export the {what} as CSV with a "
            "header row"
        ) from exc
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise ManifestError(
            f"{source_file} lacks the columns {', '.join(missing)}; the {what} needs "
            f"{', '.join(columns)}"
        )
    frame = raw.select(
        pl.int_range(2, pl.len() + 2).alias(LINE),
        *(pl.col(c).str.strip_chars() for c in columns),
    ).with_columns(expr.alias(f"_{name}") for name, expr in parsed.items())
    reason = pl.lit(None, pl.String())
    for condition, text in reversed(rules):
        reason = pl.when(condition).then(pl.lit(text)).otherwise(reason)
    checked = frame.with_columns(reason.alias("_reason"))
    rejects = checked.filter(pl.col("_reason").is_not_null()).select(
        pl.lit(source_file).alias("source"),
        pl.format("line:{}", pl.col(LINE)).alias("locator"),
        pl.col("_reason").alias("reason"),
    )
    rows = (
        checked.filter(pl.col("_reason").is_null())
        .with_columns(pl.col(f"_{name}").alias(name) for name in parsed)
        .select(list(columns))
        .cast(dict(columns))
    )
    return rows, rejects


def blank(column: str) -> pl.Expr:
    """True where a text column is empty or missing."""
    return pl.col(column).fill_null("") == ""


def unparsed(column: str) -> pl.Expr:
    """True where a column has text that its parser could not read."""
    return pl.col(column).is_not_null() & (pl.col(column) != "") & pl.col(f"_{column}").is_null()
