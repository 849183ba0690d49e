"""Helpers of the suite tests: validate a table's good frame with one defect, and read which
expectations failed."""

from collections.abc import Callable, Mapping

import polars as pl
import pytest

from quality.results import SuiteResult
from quality.suites import references_for
from quality.validation import validate_table

Frames = Mapping[str, Callable[[], pl.DataFrame]]


def validator(good: Frames, references: Frames) -> Callable[..., SuiteResult]:
    """``validate(table, frame=None, **refs)``: validate ``frame`` (default: the table's good
    frame) with good references, some of which ``refs`` replaces (keyed by the path's last
    part)."""

    def validate(table: str, frame: pl.DataFrame | None = None, **refs: pl.DataFrame):
        chosen = {
            path: refs.get(path.rpartition("/")[2], references[path]())
            for path in references_for(table)
        }
        return validate_table(table, good[table]() if frame is None else frame, references=chosen)

    return validate


def failed(result: SuiteResult) -> dict[str, int | None]:
    """Failed expectations (errors and warnings) by description, with their row counts."""
    return {o.description: o.unexpected_count for o in (*result.errors, *result.warnings)}


def set_row(frame: pl.DataFrame, row: int, /, **values: object) -> pl.DataFrame:
    """``frame`` with row ``row``'s columns set to ``values``, dtypes kept."""
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) == row)
        .then(pl.lit(value, dtype=frame.schema[column]))
        .otherwise(pl.col(column))
        .alias(column)
        for column, value in values.items()
    )


def defect_params(defects: list[tuple]) -> list:
    """``(table, name, mutate, expected)`` rows as pytest params named ``<table>: <name>``."""
    return [pytest.param(t, m, e, id=f"{t.split('/')[-1]}: {name}") for t, name, m, e in defects]


def assert_only_these_fail(result: SuiteResult, expected: dict[str, int | None]) -> None:
    """Exactly ``expected`` fails, and the suite fails only if one of them is an error."""
    assert failed(result) == expected
    severities = {o.description: o.severity for o in result.outcomes}
    assert result.success is all(severities[d] == "warning" for d in expected)
