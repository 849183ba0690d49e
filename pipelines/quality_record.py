"""Recording quality results in the lake: the history behind the report and the catalog."""

import json
from datetime import datetime

import polars as pl

from pipelines.lake import Lake, WriteOutcome
from quality.results import SuiteResult

QUALITY_RESULTS_PATH = "_quality/results"
QUALITY_RESULTS_SCHEMA: dict[str, pl.DataType] = {
    "table": pl.String(),
    "suite": pl.String(),
    "delta_version": pl.Int64(),
    "evaluated_at": pl.Datetime("us", "UTC"),
    "success": pl.Boolean(),
    "rows": pl.Int64(),
    "expectations": pl.Int64(),
    "failed_errors": pl.Int64(),
    "failed_warnings": pl.Int64(),
    "outcomes_json": pl.String(),
    "dagster_run_id": pl.String(),
}
"""One row per table, suite and validated Delta version; counts only, never values."""


def result_row(result: SuiteResult, *, table: str, delta_version: int, run_id: str) -> pl.DataFrame:
    """A suite result as one row of the quality history, under the table's lake path."""
    evaluated_at: datetime = result.evaluated_at
    return pl.DataFrame(
        [
            {
                "table": table,
                "suite": result.suite,
                "delta_version": delta_version,
                "evaluated_at": evaluated_at,
                "success": result.success,
                "rows": result.rows,
                "expectations": len(result.outcomes),
                "failed_errors": len(result.errors),
                "failed_warnings": len(result.warnings),
                "outcomes_json": json.dumps([o.to_dict() for o in result.outcomes], sort_keys=True),
                "dagster_run_id": run_id,
            }
        ],
        schema=QUALITY_RESULTS_SCHEMA,
    )


def record_result(
    lake: Lake, result: SuiteResult, *, table: str, delta_version: int, run_id: str
) -> WriteOutcome:
    """Keep the first result of each table version: a rerun on unchanged data commits nothing.

    Args:
        lake: the lake.
        result: the suite result.
        table: the lake path of the table validated.
        delta_version: the version validated.
        run_id: the Dagster run id.
    """
    return lake.insert_new(
        QUALITY_RESULTS_PATH,
        result_row(result, table=table, delta_version=delta_version, run_id=run_id),
        ["table", "suite", "delta_version"],
        run_id=run_id,
    )
