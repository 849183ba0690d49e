"""Tables of the HL7 v2 connector: ``lab_results`` (shared) and ``messages``.

``lab_results`` has exactly ``connectors.lab_schema.LAB_RESULT_COLUMNS``. ``messages`` has
one row per message found in the source (read or rejected), so that a feed can be
reconciled: every OBX segment of a message is either one of its ``results`` or one of its
``rejected_results``.
"""

import polars as pl

from connectors.lab_schema import LAB_RESULT_COLUMNS, LAB_RESULT_SCHEMA, Column

LAB_RESULTS = "lab_results"
"""Name of the results table in ``ReadResult.tables``."""

MESSAGES = "messages"
"""Name of the per-message table in ``ReadResult.tables``."""

_UTC = pl.Datetime("us", "UTC")

MESSAGE_COLUMNS: list[Column] = [
    Column(
        "source_locator",
        pl.String(),
        "Where in the file: 'MSH-10:<id>', or "
        "'message:<n>' (n the message's 1-based position in the file) when MSH-10 is "
        "empty or the MSH segment cannot be read.",
    ),
    Column("message_id", pl.String(), "MSH-10 message control id."),
    Column(
        "message_type",
        pl.String(),
        "MSH-9 message code and trigger event, joined by '^' (e.g. 'ORU^R01').",
    ),
    Column("trigger", pl.String(), "MSH-9.2 trigger event (e.g. 'R01')."),
    Column("version", pl.String(), "MSH-12 HL7 version (e.g. '2.5.1')."),
    Column("sending_application", pl.String(), "MSH-3.1 sending application."),
    Column("sending_facility", pl.String(), "MSH-4.1 sending facility (the site code)."),
    Column(
        "message_datetime",
        _UTC,
        "MSH-7 date/time of the message, in UTC (null when empty or not a timestamp).",
    ),
    Column(
        "patient_id",
        pl.String(),
        "PID-3 of the message's first PID (the MR repetition, else the first); null without PID.",
    ),
    Column(
        "encoding",
        pl.String(),
        "How the message's bytes were decoded: 'utf-8', or "
        "'latin-1' when MSH-18 says 8859/1 or the bytes are not valid UTF-8.",
    ),
    Column(
        "segments",
        pl.Int64(),
        "Number of segments in the message, MSH included, blank lines not counted.",
    ),
    Column("results", pl.Int64(), "Number of OBX segments that produced a lab_results row."),
    Column(
        "rejected_results",
        pl.Int64(),
        "Number of OBX segments that produced no row "
        "(quarantined with the OBX or with the whole message).",
    ),
]
"""Columns of the ``messages`` table, in order."""

MESSAGE_SCHEMA: dict[str, pl.DataType] = {c.name: c.dtype for c in MESSAGE_COLUMNS}


def empty_messages() -> pl.DataFrame:
    """An empty ``messages`` frame."""
    return pl.DataFrame(schema=MESSAGE_SCHEMA)


def table_columns(table: str) -> list[Column]:
    """The columns of ``lab_results`` or ``messages``.

    Args:
        table: ``LAB_RESULTS`` or ``MESSAGES``.

    Returns:
        The table's typed, described columns, in order.

    Raises:
        KeyError: the table is not one of the two.
    """
    return {LAB_RESULTS: LAB_RESULT_COLUMNS, MESSAGES: MESSAGE_COLUMNS}[table]


def table_schema(table: str) -> dict[str, pl.DataType]:
    """The polars schema of ``lab_results`` or ``messages``.

    Raises:
        KeyError: the table is not one of the two.
    """
    return {LAB_RESULTS: LAB_RESULT_SCHEMA, MESSAGES: MESSAGE_SCHEMA}[table]


def frame(table: str, rows: list[tuple]) -> pl.DataFrame:
    """Build one table from row tuples in column order, with exactly its schema.

    Datetime columns arrive as microseconds since the Unix epoch (UTC) and are cast, which
    costs far less than building Python datetime objects for every row.

    Args:
        table: ``LAB_RESULTS`` or ``MESSAGES``.
        rows: one tuple per row, values in column order.

    Returns:
        The frame (empty with the schema when there are no rows).
    """
    columns = table_columns(table)
    if not rows:
        return pl.DataFrame(schema=table_schema(table))
    series = []
    for column, values in zip(columns, zip(*rows, strict=True), strict=True):
        if isinstance(column.dtype, pl.Datetime):
            series.append(pl.Series(column.name, values, dtype=pl.Int64()).cast(column.dtype))
        else:
            series.append(pl.Series(column.name, values, dtype=column.dtype))
    return pl.DataFrame(series)
