"""OpenLineage for asset runs: START before the work, COMPLETE or FAIL after it.

Datasets are named by their Delta URIs (landing files by their paths), so lineage runs from
the source file through bronze, silver and gold to the catalog and, through the MCP server's
read events, to the agent.
"""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg

from pipelines.lake import Lake
from quality.lineage import LineageDataset, LineageEmitter, asset_run_id

FAILED = "the asset failed; its Dagster run log holds the details"


def job_name(key: dg.AssetKey) -> str:
    """The OpenLineage job name of an asset: its key joined with dots."""
    return ".".join(key.path)


def table_input(lake: Lake, path: str) -> LineageDataset:
    """A lake table read by a run, at its current version."""
    version = lake.version(path)
    return LineageDataset(uri=lake.uri(path), version=None if version is None else str(version))


def table_output(
    lake: Lake,
    path: str,
    *,
    descriptions: Mapping[str, str] | None = None,
    column_lineage: Mapping[str, tuple[tuple[str, str], ...]] | None = None,
) -> LineageDataset:
    """A lake table written by a run: its schema, row count, version and column lineage.

    Args:
        lake: the lake.
        path: the table path.
        descriptions: column descriptions to put in the schema facet.
        column_lineage: output column to ``(input table path, input column)`` pairs.
    """
    table = lake.table(path)
    if table is None:
        return LineageDataset(uri=lake.uri(path))
    descriptions = descriptions or {}
    fields = tuple(
        (f.name, str(f.type), descriptions.get(f.name, "")) for f in table.schema().fields
    )
    lineage = None
    if column_lineage is not None:
        lineage = {
            out: tuple((lake.uri(src), col) for src, col in inputs)
            for out, inputs in column_lineage.items()
        }
    return LineageDataset(
        uri=lake.uri(path),
        fields=fields,
        column_lineage=lineage,
        row_count=lake.row_count(path),
        version=str(table.version()),
    )


@dataclass
class LineageRun:
    """The outputs an asset body declares as it writes them."""

    outputs: list[LineageDataset] = field(default_factory=list)


@contextmanager
def asset_lineage(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    lake: Lake,
    *,
    job: str,
    inputs: Sequence[LineageDataset],
    outputs: Sequence[str],
) -> Iterator[LineageRun]:
    """Emit START now, and COMPLETE (with the outputs the body described) or FAIL at the end.

    Args:
        context: the Dagster context (its run id seeds the OpenLineage run id).
        lake: the lake (its root decides where file-transport events go).
        job: the OpenLineage job name.
        inputs: datasets read.
        outputs: table paths the run writes, announced on START.
    """
    run_id = asset_run_id(context.run.run_id, job)
    parent = (context.run.run_id, "dagster.run")
    declared = [LineageDataset(uri=lake.uri(p)) for p in outputs]
    with LineageEmitter.for_lake(lake.root) as emitter:
        emitter.start(run_id=run_id, job=job, inputs=inputs, outputs=declared, parent=parent)
        run = LineageRun()
        try:
            yield run
        except BaseException:
            emitter.fail(
                run_id=run_id, job=job, inputs=inputs, outputs=declared, error=FAILED, parent=parent
            )
            raise
        emitter.complete(
            run_id=run_id, job=job, inputs=inputs, outputs=run.outputs or declared, parent=parent
        )


def quality_event(
    context: dg.AssetCheckExecutionContext, lake: Lake, *, job: str, path: str, quality: Mapping
) -> None:
    """A COMPLETE event for a quality check run, with its results on the table it read."""
    version = lake.version(path)
    dataset = LineageDataset(
        uri=lake.uri(path), quality=quality, version=None if version is None else str(version)
    )
    with LineageEmitter.for_lake(lake.root) as emitter:
        emitter.complete(
            run_id=asset_run_id(context.run.run_id, job),
            job=job,
            inputs=[dataset],
            parent=(context.run.run_id, "dagster.run"),
        )
