"""The lake: one place that knows the root, the storage options and how biofed writes.

Writes are idempotent. Tables keyed by a natural key are MERGEd, updating only rows that
changed and deleting rows whose key vanished, so rerunning on unchanged input commits
nothing. Tables fed file by file (bronze) replace exactly the rows of a source file whose
content hash changed. Every commit carries the Dagster run id.
"""

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import TableNotFoundError

DEFAULT_LAKE = "./lake"

LOOKUP_ROW_GROUP_ROWS = 65_536
"""Row-group size of tables served by key or region lookups: a lookup decodes whole row
groups, and delta-rs's default (about 1M rows) made a region read about ten times slower."""


def lookup_writer_properties(row_group_rows: int = LOOKUP_ROW_GROUP_ROWS) -> WriterProperties:
    """Parquet settings for tables read by lookups: small row groups, zstd (passing writer
    properties without a codec would turn compression off)."""
    return WriterProperties(compression="ZSTD", max_row_group_size=row_group_rows)


@dataclass(frozen=True)
class WriteOutcome:
    """What one write did to a table."""

    path: str
    version: int
    committed: bool
    rows_written: int
    rows_deleted: int = 0


def _delta_arrow(frame: pl.DataFrame) -> pa.Table:
    """Arrow data as Delta stores it: Delta has no enum type, so codes are written as strings."""
    categorical = [c for c, t in frame.schema.items() if isinstance(t, pl.Enum | pl.Categorical)]
    if categorical:
        frame = frame.with_columns(pl.col(c).cast(pl.String()) for c in categorical)
    return frame.to_arrow()


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class Lake:
    """A Delta lake rooted at a local folder or an object-store URI.

    Args:
        root: the lake root (a folder path or ``s3://...``); defaults to ``$BIOFED_LAKE`` or
            ``./lake``.
        storage_options: passed to delta-rs for object stores (credentials, endpoint).
    """

    def __init__(
        self, root: str | Path | None = None, storage_options: dict[str, str] | None = None
    ):
        root = root if root is not None else os.environ.get("BIOFED_LAKE", DEFAULT_LAKE)
        self.root = str(root)
        self.storage_options = dict(storage_options or {})
        self.is_local = "://" not in self.root or self.root.startswith("file://")

    def uri(self, path: str) -> str:
        """The URI of a table or file below the root (``silver/ehr/patients``)."""
        if self.is_local:
            return str(Path(self.root.removeprefix("file://")).resolve() / path)
        return self.root.rstrip("/") + "/" + path

    def local_path(self, path: str) -> Path:
        """A local filesystem path below the root, for files such as the manifest.

        Raises:
            ValueError: when the lake is on an object store.
        """
        if not self.is_local:
            raise ValueError("this lake is on an object store; read its files with storage options")
        return Path(self.uri(path))

    def table(self, path: str, version: int | None = None) -> DeltaTable | None:
        """The Delta table at ``path``, or None when it does not exist yet."""
        try:
            return DeltaTable(
                self.uri(path), version=version, storage_options=self.storage_options or None
            )
        except TableNotFoundError:
            return None

    def version(self, path: str) -> int | None:
        """The current version of a table, or None when it does not exist."""
        table = self.table(path)
        return None if table is None else table.version()

    def row_count(self, path: str, version: int | None = None) -> int:
        """Rows in a version of a table (the current one by default), from the log (no data
        read); 0 when absent."""
        table = self.table(path, version)
        if table is None:
            return 0
        return sum(
            int(n) for n in table.get_add_actions(flatten=True).column("num_records").to_pylist()
        )

    def read(self, path: str, version: int | None = None) -> pl.DataFrame:
        """Read a whole table (pinned to ``version`` when given).

        Raises:
            FileNotFoundError: when the table does not exist; materialise its asset first.
        """
        table = self.table(path, version)
        if table is None:
            raise FileNotFoundError(f"no Delta table at {path}; materialise its asset first")
        # Hand polars the table already opened, so the log is read once.
        return pl.read_delta(table)

    def unchanged(self, path: str) -> WriteOutcome:
        """The outcome of a write that had nothing to commit."""
        version = self.version(path)
        return WriteOutcome(path, -1 if version is None else version, False, 0)

    def table_schema(self, path: str) -> pa.Schema | None:
        """The Arrow schema of the current version, or None when the table does not exist."""
        table = self.table(path)
        return None if table is None else pa.schema(table.schema())

    def _commit(self, run_id: str, operation: str) -> CommitProperties:
        return CommitProperties(
            custom_metadata={"dagster_run_id": run_id, "biofed_operation": operation}
        )

    def merge(
        self,
        path: str,
        frame: pl.DataFrame,
        keys: Sequence[str],
        *,
        run_id: str,
        delete_missing: bool = True,
    ) -> WriteOutcome:
        """Upsert ``frame`` into the table by its natural key.

        Rows whose key exists and whose values are unchanged are left alone; changed rows are
        updated; new keys inserted; with ``delete_missing`` keys absent from ``frame`` are
        deleted (``frame`` is then the full current state). Unchanged input commits nothing.

        Args:
            path: table path below the root.
            frame: the rows to write; must hold every key column, with no duplicate keys.
            keys: natural-key columns.
            run_id: the Dagster run id recorded in the commit metadata.
            delete_missing: delete target rows whose key is not in ``frame``.

        Returns:
            The outcome with the table version after the write.

        Raises:
            ValueError: when ``frame`` has duplicate or null keys.
        """
        self._check_keys(path, frame, keys)
        data = _delta_arrow(frame)
        table = self.table(path)
        if table is None:
            write_deltalake(
                self.uri(path),
                data,
                storage_options=self.storage_options or None,
                commit_properties=self._commit(run_id, "create"),
            )
            return WriteOutcome(path, self.version(path) or 0, True, frame.height)
        value_columns = [c for c in frame.columns if c not in keys]
        on = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in keys)
        changed = " OR ".join(f"NOT (t.{_quote(c)} <=> s.{_quote(c)})" for c in value_columns)
        merger = table.merge(
            data,
            predicate=on,
            source_alias="s",
            target_alias="t",
            merge_schema=True,
            commit_properties=self._commit(run_id, "merge"),
        )
        if changed:
            merger = merger.when_matched_update_all(predicate=changed)
        merger = merger.when_not_matched_insert_all()
        if delete_missing:
            merger = merger.when_not_matched_by_source_delete()
        metrics = merger.execute()
        written = int(metrics["num_target_rows_inserted"]) + int(metrics["num_target_rows_updated"])
        deleted = int(metrics["num_target_rows_deleted"])
        version = self.version(path) or 0
        return WriteOutcome(path, version, written + deleted > 0, written, deleted)

    def insert_new(
        self, path: str, frame: pl.DataFrame, keys: Sequence[str], *, run_id: str
    ) -> WriteOutcome:
        """Append the rows of ``frame`` whose key is not in the table yet; never update.

        For append-only histories keyed so that a rerun on unchanged input finds its rows
        already there (quality results keyed by table, suite and Delta version).

        Raises:
            ValueError: when ``frame`` has duplicate or null keys.
        """
        self._check_keys(path, frame, keys)
        table = self.table(path)
        if table is None:
            write_deltalake(
                self.uri(path),
                _delta_arrow(frame),
                storage_options=self.storage_options or None,
                commit_properties=self._commit(run_id, "create"),
            )
            return WriteOutcome(path, self.version(path) or 0, True, frame.height)
        on = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in keys)
        metrics = (
            table.merge(
                _delta_arrow(frame),
                predicate=on,
                source_alias="s",
                target_alias="t",
                commit_properties=self._commit(run_id, "insert_new"),
            )
            .when_not_matched_insert_all()
            .execute()
        )
        inserted = int(metrics["num_target_rows_inserted"])
        return WriteOutcome(path, self.version(path) or 0, inserted > 0, inserted)

    def replace_sources(
        self,
        path: str,
        frame: pl.DataFrame,
        sources: Sequence[str],
        *,
        run_id: str,
        source_column: str = "source_file",
    ) -> WriteOutcome:
        """Replace every row that came from ``sources`` by the rows of ``frame``.

        Used for tables fed file by file: the caller passes the source files whose content
        changed (and only those), with all their rows (possibly none). Rows of other sources
        are kept. Nothing is committed when there is nothing to delete and nothing to add.

        Args:
            path: table path below the root.
            frame: the new rows of ``sources``, with ``source_column``.
            sources: the source files being replaced.
            run_id: the Dagster run id recorded in the commit metadata.
            source_column: the column naming the source file.

        Returns:
            The outcome with the table version after the write (-1 when there is no table).

        Raises:
            ValueError: when ``frame`` holds rows of a source not in ``sources``.
        """
        sources = sorted(set(sources))
        if frame.height and not frame.get_column(source_column).is_in(sources).all():
            raise ValueError(f"{path}: rows from sources that are not being replaced")
        table = self.table(path)
        if table is None:
            # An empty table is still created, so readers find the schema before any row.
            write_deltalake(
                self.uri(path),
                _delta_arrow(frame),
                storage_options=self.storage_options or None,
                commit_properties=self._commit(run_id, "create"),
            )
            return WriteOutcome(path, self.version(path) or 0, True, frame.height)
        existing = (
            pl.scan_delta(self.uri(path), storage_options=self.storage_options or None)
            .filter(pl.col(source_column).is_in(sources))
            .select(pl.len())
            .collect()
            .item()
        )
        if existing == 0 and frame.height == 0:
            return WriteOutcome(path, table.version(), False, 0)
        predicate = f"{_quote(source_column)} IN ({', '.join(_sql_literal(s) for s in sources)})"
        write_deltalake(
            self.uri(path),
            _delta_arrow(frame),
            mode="overwrite",
            predicate=predicate,
            schema_mode="merge",
            storage_options=self.storage_options or None,
            commit_properties=self._commit(run_id, "replace_sources"),
        )
        return WriteOutcome(path, self.version(path) or 0, True, frame.height, existing)

    def stream_source(
        self,
        path: str,
        batches: Iterable[pa.RecordBatch],
        schema: pa.Schema,
        source: str,
        *,
        run_id: str,
        partition_by: Sequence[str] = (),
        writer_properties: WriterProperties | None = None,
        source_column: str = "source_file",
        target_file_size: int | None = None,
    ) -> WriteOutcome:
        """Replace every row of one source file by a stream of batches, in one commit.

        For inputs too large to hold in memory (a VCF's genotypes): delta-rs pulls the batches
        as it writes, so memory stays bounded by a batch, and readers see either all of the old
        rows of ``source`` or all of the new ones. If ``batches`` raises, nothing is committed.
        Columns new to the table are added (schema merge), as files of one format may declare
        different fields.

        Args:
            path: table path below the root.
            batches: the new rows of ``source``, each with ``schema``.
            schema: the Arrow schema of the batches.
            source: the source file whose rows are replaced.
            run_id: the Dagster run id recorded in the commit metadata.
            partition_by: partition columns, used when the table is created.
            writer_properties: Parquet settings (row-group size, codec).
            source_column: the column naming the source file.
            target_file_size: bytes after which delta-rs starts a new data file. delta-rs
                builds each file in memory, one per open partition, so this bounds memory.

        Returns:
            The outcome, with the rows written and the rows of ``source`` replaced.
        """
        counted = _CountingBatches(batches)
        reader = pa.RecordBatchReader.from_batches(schema, iter(counted))
        table = self.table(path)
        if table is None:
            write_deltalake(
                self.uri(path),
                reader,
                mode="append",
                partition_by=list(partition_by) or None,
                writer_properties=writer_properties,
                target_file_size=target_file_size,
                storage_options=self.storage_options or None,
                commit_properties=self._commit(run_id, "create"),
            )
            return WriteOutcome(path, self.version(path) or 0, True, counted.rows)
        existing = (
            pl.scan_delta(table)
            .filter(pl.col(source_column) == source)
            .select(pl.len())
            .collect()
            .item()
        )
        write_deltalake(
            table,
            reader,
            mode="overwrite",
            predicate=f"{_quote(source_column)} = {_sql_literal(source)}",
            schema_mode="merge",
            writer_properties=writer_properties,
            target_file_size=target_file_size,
            storage_options=self.storage_options or None,
            commit_properties=self._commit(run_id, "replace_sources"),
        )
        return WriteOutcome(path, self.version(path) or 0, True, counted.rows, existing)

    def replace_table(
        self,
        path: str,
        frame: pl.DataFrame,
        *,
        run_id: str,
        writer_properties: WriterProperties | None = None,
    ) -> WriteOutcome:
        """Make the table hold exactly ``frame``, in its row order, or commit nothing.

        For derived tables whose physical layout matters (sorted by position, small row
        groups, so lookups prune): a MERGE would keep neither the order nor the row-group
        size. Compares with the current version first, so a rerun on unchanged input commits
        nothing.

        Args:
            path: table path below the root.
            frame: the whole new content, already in the order it should be stored.
            run_id: the Dagster run id recorded in the commit metadata.
            writer_properties: Parquet settings (row-group size, codec).

        Returns:
            The outcome with the table version after the write.
        """
        data = _delta_arrow(frame)
        table = self.table(path)
        replaced = 0
        if table is not None:
            current = pl.read_delta(table)
            if current.schema == frame.schema and current.equals(frame):
                return WriteOutcome(path, table.version(), False, 0)
            replaced = current.height
        write_deltalake(
            self.uri(path) if table is None else table,
            data,
            mode="overwrite",
            schema_mode="overwrite",
            writer_properties=writer_properties,
            storage_options=self.storage_options or None,
            commit_properties=self._commit(run_id, "create" if table is None else "replace"),
        )
        return WriteOutcome(path, self.version(path) or 0, True, frame.height, replaced)

    @staticmethod
    def _check_keys(path: str, frame: pl.DataFrame, keys: Sequence[str]) -> None:
        missing = [k for k in keys if k not in frame.columns]
        if missing:
            raise ValueError(f"{path}: key columns {missing} are not in the frame")
        if frame.select(pl.any_horizontal(pl.col(k).is_null() for k in keys).any()).item():
            raise ValueError(f"{path}: null values in key columns {list(keys)}")
        if frame.select(pl.struct(keys).is_duplicated().any()).item():
            raise ValueError(f"{path}: duplicate keys {list(keys)}; deduplicate before writing")


class _CountingBatches:
    """Passes batches through, counting their rows."""

    def __init__(self, batches: Iterable[pa.RecordBatch]) -> None:
        self._batches = batches
        self.rows = 0

    def __iter__(self):
        for batch in self._batches:
            self.rows += batch.num_rows
            yield batch
