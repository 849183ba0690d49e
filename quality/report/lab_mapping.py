"""How well each lab's results conformed to LOINC and UCUM: counts per site, never values.

Pure polars, shared by the compliance report and the pipeline (which puts the same tables in
its Dagster asset metadata as Markdown).
"""

import polars as pl

from quality.valuesets import LAB_MAPPING_STATUS, LAB_UNIT_STATUS

MAPPING_STATUSES = LAB_MAPPING_STATUS
UNIT_STATUSES = LAB_UNIT_STATUS
SUMMARY_INPUT_COLUMNS: tuple[str, ...] = (
    "site",
    "source_kind",
    "map_version",
    "mapping_status",
    "unit_status",
)
"""The only columns of ``silver/lab/lab_results`` :func:`site_summary` reads."""


def site_summary(silver: pl.DataFrame) -> pl.DataFrame:
    """Per site and source kind: results, map versions, and counts by mapping and unit status.

    Args:
        silver: rows of ``silver/lab/lab_results``; only the columns of
            :data:`SUMMARY_INPUT_COLUMNS` are read (others may be present).

    Returns:
        One row per ``(site, source_kind)``, sorted by both: ``site``, ``source_kind``,
        ``results`` (Int64), ``map_version`` (the distinct non-null versions consulted, sorted
        and joined by ``", "``; null when no site map was consulted), then one Int64 count
        column per status of :data:`MAPPING_STATUSES` and of :data:`UNIT_STATUSES`, in that
        order. A status outside those tuples is counted in ``results`` only.

    Raises:
        ValueError: a column of :data:`SUMMARY_INPUT_COLUMNS` is missing.
    """
    missing = [c for c in SUMMARY_INPUT_COLUMNS if c not in silver.columns]
    if missing:
        raise ValueError(
            f"site_summary needs the silver lab columns {list(SUMMARY_INPUT_COLUMNS)}; "
            f"missing: {missing}"
        )
    counts = [
        (pl.col("mapping_status") == s).sum().cast(pl.Int64).alias(s) for s in MAPPING_STATUSES
    ] + [(pl.col("unit_status") == s).sum().cast(pl.Int64).alias(s) for s in UNIT_STATUSES]
    return (
        silver.select(SUMMARY_INPUT_COLUMNS)
        .cast(pl.String)
        .group_by("site", "source_kind")
        .agg(
            pl.len().cast(pl.Int64).alias("results"),
            pl.col("map_version").drop_nulls().unique().sort().str.join(", ").alias("map_version"),
            *counts,
        )
        # An empty join means no map was consulted: say so with null, not "".
        .with_columns(pl.col("map_version").replace("", None))
        .sort("site", "source_kind", nulls_last=True)
    )


def markdown_table(frame: pl.DataFrame, *, limit: int = 50) -> str:
    """A frame as a Markdown table: at most ``limit`` rows, the rest counted in a last line.

    Args:
        frame: any frame; values are shown with ``str`` (None as an empty cell), with ``|``
            escaped and line breaks turned into spaces so each row stays one table row.
        limit: the most rows shown.

    Returns:
        The table, or ``(none)`` for a frame without rows.

    Raises:
        ValueError: ``limit`` is negative.
    """
    if limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit}")
    if frame.is_empty():
        return "(none)"
    head = "| " + " | ".join(_cell(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * frame.width
    rows = [
        "| " + " | ".join("" if v is None else _cell(str(v)) for v in row) + " |"
        for row in frame.head(limit).iter_rows()
    ]
    hidden = frame.height - limit
    # The blank line ends the table, so the count is not read as one more row.
    more = ["", f"{hidden:,} more row{'s' if hidden != 1 else ''} not shown."] if hidden > 0 else []
    return "\n".join([head, rule, *rows, *more])


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
