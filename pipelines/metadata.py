"""Dagster metadata built from the connectors' and views' own column descriptions."""

import dagster as dg

from connectors.fhir.schema import Column
from mcp_catalog.governance.views import ViewSpec
from pipelines.lake import WriteOutcome
from quality.freshness import sla_for


def freshness_policy(path: str) -> dg.FreshnessPolicy | None:
    """The table's SLA as a Dagster freshness policy.

    Dagster measures it from the last materialisation; the catalog measures the same SLA
    from the newest source file, which is what MCP results report.
    """
    sla = sla_for(path)
    if sla is None:
        return None
    return dg.FreshnessPolicy.time_window(fail_window=sla.fail_after, warn_window=sla.warn_after)


def column_schema(columns: list[Column]) -> dg.TableSchema:
    """A Dagster table schema from connector columns."""
    return dg.TableSchema(
        columns=[dg.TableColumn(c.name, str(c.dtype), description=c.description) for c in columns]
    )


def view_schema(spec: ViewSpec) -> dg.TableSchema:
    """A Dagster table schema from a gold view spec."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(c.name, c.type, description=f"{c.description} [{c.column_class}]")
            for c in spec.columns
        ]
    )


def write_metadata(outcome: WriteOutcome, rows: int, **extra: object) -> dict[str, object]:
    """Standard materialisation metadata: rows, Delta version, whether anything was committed."""
    return {
        "dagster/row_count": rows,
        "delta_version": outcome.version,
        "committed": outcome.committed,
        "rows_written": outcome.rows_written,
        "rows_deleted": outcome.rows_deleted,
        "path": outcome.path,
        **extra,
    }
