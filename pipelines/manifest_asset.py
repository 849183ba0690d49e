"""The asset step of a silo's manifest (a biobank's sample manifest, a RIS order export):
landed in bronze with its provenance, bad rows quarantined by line."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from pipelines.lake import Lake
from pipelines.landing import landing_file
from pipelines.lineage import asset_lineage, job_name, table_output
from pipelines.manifests import ManifestError
from pipelines.metadata import write_metadata
from quality.lineage import LineageDataset


@dataclass(frozen=True)
class ManifestFeed:
    """A manifest a silo lands beside its data, and where it goes in bronze."""

    name: str
    """The file name in the silo's landing folder (``samples.csv``)."""
    table: str
    """The bronze table of its rows."""
    rejects_table: str
    """Where its quarantined rows go."""
    key: str | tuple[str, ...]
    """The column (or columns) that name a row (one row per value)."""
    columns: Mapping[str, pl.DataType]
    """The bronze table's columns: the manifest's, ``source_file`` and the ingest columns."""
    read: Callable[..., tuple[pl.DataFrame, pl.DataFrame]]
    """``read(path, source_file=...)`` -> ``(rows, rejects)``; raises ``ManifestError``."""
    missing: str
    """What to do when data landed without the manifest (the run stops with it)."""

    @property
    def keys(self) -> list[str]:
        """The key columns, as a list."""
        return [self.key] if isinstance(self.key, str) else list(self.key)


def land_manifest(
    context: dg.AssetExecutionContext,
    store: Lake,
    folder: Path,
    feed: ManifestFeed,
    *,
    data_landed: bool,
) -> dg.MaterializeResult:
    """Read a silo's manifest into bronze: rows MERGEd on the key (nothing committed when
    unchanged), bad rows quarantined by line; empty when the silo has no feed at all.

    Args:
        context: the asset's context.
        store: the lake.
        folder: the silo's landing folder.
        feed: the manifest.
        data_landed: whether the silo's data files are there (a manifest is then required).

    Raises:
        dg.Failure: the manifest is missing beside landed data, or unreadable as a whole.
    """
    path = folder / feed.name
    run_id = context.run.run_id
    if not path.is_file():
        if data_landed:
            raise dg.Failure(f"No {feed.name} at {path}. {feed.missing}")
        # A site without this feed: an empty table, so the views exist and are empty.
        context.log.info(f"no data and no {feed.name} under {folder}")
        outcome = (
            store.unchanged(feed.table)
            if store.table(feed.table) is not None
            else store.merge(
                feed.table, pl.DataFrame(schema=dict(feed.columns)), feed.keys, run_id=run_id
            )
        )
        return dg.MaterializeResult(metadata=write_metadata(outcome, store.row_count(feed.table)))
    landed = landing_file(path, folder)
    source = LineageDataset(uri=str(path.resolve()), version=landed.sha256)
    outputs = [feed.table, feed.rejects_table]
    with asset_lineage(
        context, store, job=job_name(context.asset_key), inputs=[source], outputs=outputs
    ) as run:
        try:
            rows, rejects = feed.read(path, source_file=landed.source_file)
        except ManifestError as exc:
            raise dg.Failure(str(exc)) from exc
        provenance = [
            pl.lit(landed.sha256).alias("source_sha256"),
            pl.lit(datetime.now(UTC), pl.Datetime("us", "UTC")).alias("ingested_at"),
        ]
        rows = rows.with_columns(pl.lit(landed.source_file).alias("source_file"), *provenance)
        rows = rows.select(list(feed.columns))
        current = store.read(feed.table) if store.table(feed.table) is not None else None
        unchanged = current is not None and current.drop("ingested_at").sort(feed.keys).equals(
            rows.drop("ingested_at").sort(feed.keys)
        )
        outcome = (
            store.unchanged(feed.table)
            if unchanged
            else store.merge(feed.table, rows, feed.keys, run_id=run_id)
        )
        store.replace_sources(
            feed.rejects_table,
            rejects.with_columns(provenance),
            [landed.source_file],
            run_id=run_id,
            source_column="source",
        )
        run.outputs = [table_output(store, p) for p in outputs]
    if rejects.height:
        context.log.warning(
            f"{rejects.height} rows of {feed.name} quarantined at "
            f"{rejects.select('locator').head(20).to_series().to_list()}"
        )
    return dg.MaterializeResult(
        metadata=write_metadata(
            outcome, store.row_count(feed.table), quarantined_rows=rejects.height
        )
    )
