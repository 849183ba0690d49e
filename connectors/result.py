"""The shape every connector returns."""

from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from connectors.errors import MalformedRecordError

OnError = Literal["raise", "quarantine"]

REJECT_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "locator": pl.String(),
    "reason": pl.String(),
}
"""Quarantined records: which file, where in it, and why (never the record's values)."""


def empty_rejects() -> pl.DataFrame:
    """An empty frame with the shared reject schema."""
    return pl.DataFrame(schema=REJECT_SCHEMA)


@dataclass
class ReadResult:
    """What a reader produced.

    Attributes:
        tables: named frames, the main table first.
        rejects: quarantined records with the shared reject schema.
    """

    tables: dict[str, pl.DataFrame]
    rejects: pl.DataFrame = field(default_factory=empty_rejects)


class RejectCollector:
    """Collects quarantined records, or raises at the first one when ``on_error='raise'``."""

    def __init__(self, on_error: OnError) -> None:
        if on_error not in ("raise", "quarantine"):
            raise ValueError("on_error must be 'raise' or 'quarantine'")
        self.on_error = on_error
        self._rows: list[tuple[str, str, str]] = []

    def reject(self, source: str, locator: str, reason: str) -> None:
        """Quarantine one record, or raise ``MalformedRecordError`` in raise mode.

        Raises:
            MalformedRecordError: when the collector was made with ``on_error='raise'``.
        """
        if self.on_error == "raise":
            raise MalformedRecordError(source, locator, reason)
        self._rows.append((source, locator, reason))

    def __len__(self) -> int:
        return len(self._rows)

    def frame(self) -> pl.DataFrame:
        """The collected rejects as a frame with the shared schema."""
        return pl.DataFrame(self._rows, schema=REJECT_SCHEMA, orient="row")
