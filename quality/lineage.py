"""OpenLineage events for every asset run and every MCP read.

The pipeline emits START then COMPLETE (or FAIL) for each asset it materialises; the MCP
server emits one COMPLETE ``read`` per governed query, with the gold Delta table it read as
input. Together they let lineage run from a landed source file to the agent that read the
answer.

Events go to one of two places, chosen by :meth:`LineageEmitter.for_lake`:

* ``OPENLINEAGE_URL`` set: HTTP to that endpoint (Marquez and friends).
* otherwise: ``<lake>/_lineage/events.ndjson``, one JSON event per line.

Events carry structure only: dataset names, schemas, counts, Delta versions, check outcomes
and fixed error sentences. Never put a row value, a query argument or an exception text in
them.

Events are built with the OpenLineage client's ``event_v2`` classes and serialised with its
``Serde``, then handed straight to a transport. ``OpenLineageClient`` is deliberately not
used: its constructor rewrites ``os.environ`` when ``OPENLINEAGE_URL`` is set, reads
``openlineage.yml`` from the working directory and probes git on every emit, none of which a
governed server should do behind its operator's back.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import posixpath
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
)
from openlineage.client.generated import parent_run
from openlineage.client.generated.column_lineage_dataset import (
    ColumnLineageDatasetFacet,
    Fields,
    InputField,
)
from openlineage.client.generated.data_quality_assertions_dataset import (
    Assertion,
    DataQualityAssertionsDatasetFacet,
)
from openlineage.client.generated.data_quality_metrics_input_dataset import (
    ColumnMetrics,
    DataQualityMetricsInputDatasetFacet,
)
from openlineage.client.generated.dataset_version_dataset import DatasetVersionDatasetFacet
from openlineage.client.generated.documentation_job import DocumentationJobFacet
from openlineage.client.generated.error_message_run import ErrorMessageRunFacet
from openlineage.client.generated.output_statistics_output_dataset import (
    OutputStatisticsOutputDatasetFacet,
)
from openlineage.client.generated.schema_dataset import (
    SchemaDatasetFacet,
    SchemaDatasetFacetFields,
)
from openlineage.client.serde import Serde
from openlineage.client.transport.file import FileTransport
from openlineage.client.transport.http import HttpConfig, HttpTransport
from openlineage.client.transport.transport import Transport
from openlineage.client.uuid import generate_new_uuid

try:  # POSIX only; without it concurrent writers rely on O_APPEND alone.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "JOB_NAMESPACE",
    "PRODUCER",
    "LineageDataset",
    "LineageEmitter",
    "NdjsonFileTransport",
    "asset_run_id",
    "dataset_identity",
    "lineage_graph",
    "lineage_path",
    "read_events",
    "read_events_with_errors",
]

logger = logging.getLogger(__name__)

JOB_NAMESPACE = "biofed"


def _biofed_version() -> str:
    try:
        return importlib.metadata.version("biofed")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


PRODUCER = f"https://github.com/biofed/biofed/tree/{_biofed_version()}"

# Fixed namespace for asset-level run ids, so a rerun of the same Dagster run and asset
# always maps to the same OpenLineage run.
_ASSET_RUN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/biofed/biofed#asset-run")

# Short, bounded HTTP retries: a lineage server that is down must not stall a pipeline run
# or an agent's query for long (the client's default is 5 retries with backoff, ~10 s).
_HTTP_TIMEOUT_S = 2.0
_HTTP_RETRY = {"total": 2, "connect": 2, "read": 2, "backoff_factor": 0.1}

_OBJECT_STORE_SCHEMES = {"s3": "s3", "s3a": "s3", "s3n": "s3", "gs": "gs", "gcs": "gs"}
_AZURE_SCHEMES = {"abfss", "abfs", "wasbs", "wasb"}
_QUALITY_KEYS = {"row_count", "assertions", "column_metrics"}
_COLUMN_METRIC_KEYS = {"nullCount", "distinctCount", "sum", "count", "min", "max", "quantiles"}


def dataset_identity(uri: str) -> tuple[str, str]:
    """Map a table location to its OpenLineage (namespace, name).

    Follows the OpenLineage dataset naming spec: local paths are ``("file", absolute
    path)``, ``file://host/path`` on another host is ``("file://host", path)``, object
    stores are ``("s3://bucket", key)``, ``("gs://bucket", key)`` and
    ``("abfss://container@account.dfs.core.windows.net", path)``.

    Args:
        uri: A local path (relative paths resolve against the working directory), a
            ``file://`` URI, or an ``s3://``, ``s3a://``, ``gs://``, ``abfss://``,
            ``wasbs://`` or ``hdfs://`` URI.

    Returns:
        The ``(namespace, name)`` pair.

    Raises:
        ValueError: The URI is empty, has an unsupported scheme, or carries credentials,
            a query string or a fragment (which would leak into the lineage store).
    """
    if not isinstance(uri, str) or not uri.strip():
        raise ValueError("dataset uri must be a non-empty path or URI")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    # A one-letter scheme is a Windows drive ("C:\\lake"), not a URI.
    if not scheme or len(scheme) == 1:
        return "file", _absolute_posix(uri)
    if parts.query or parts.fragment:
        raise ValueError(
            "dataset uri must not carry a query string or fragment; pass the bare table location"
        )
    if scheme == "file":
        host = parts.netloc
        path = unquote(parts.path)
        if host in ("", "localhost"):
            return "file", _absolute_posix(path)
        return f"file://{host}", posixpath.normpath(path)
    if scheme in _OBJECT_STORE_SCHEMES or scheme in _AZURE_SCHEMES or scheme == "hdfs":
        if not parts.netloc:
            raise ValueError(f"{scheme}:// dataset uri needs a bucket or container")
        if scheme not in _AZURE_SCHEMES and "@" in parts.netloc:
            raise ValueError("dataset uri must not embed credentials; use storage options")
        key = unquote(parts.path).strip("/")
        if scheme == "hdfs":
            return f"hdfs://{parts.netloc}", "/" + key
        prefix = _OBJECT_STORE_SCHEMES.get(scheme, scheme)
        return f"{prefix}://{parts.netloc}", key or "/"
    raise ValueError(
        "dataset uri scheme must be one of: file, s3, gs, abfss, wasbs, hdfs "
        "(MCP reads name the gold Delta table, not a catalog:// resource)"
    )


def _absolute_posix(path: str) -> str:
    # abspath, not resolve(): the name is the path as configured, symlinks and all.
    return Path(os.path.abspath(path)).as_posix()


@dataclass(frozen=True)
class LineageDataset:
    """One dataset as it appears in a lineage event.

    Attributes:
        uri: Where the table lives (see :func:`dataset_identity`).
        fields: ``(name, type, description)`` per column, for the schema facet.
        column_lineage: Output column -> ``((input uri, input column), ...)``; only
            meaningful on outputs.
        row_count: Rows written (outputs: ``outputStatistics``) or rows read (inputs:
            ``dataQualityMetrics.rowCount``).
        quality: Check results on an input dataset: ``{"row_count": int, "assertions":
            [(name, success, column or None), ...], "column_metrics": {column:
            {"nullCount": int, ...}}}``. Counts only, never values.
        version: The Delta table version read or written.
    """

    uri: str
    fields: tuple[tuple[str, str, str], ...] | None = None
    column_lineage: Mapping[str, tuple[tuple[str, str], ...]] | None = None
    row_count: int | None = None
    quality: Mapping[str, Any] | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        if self.row_count is not None and (
            isinstance(self.row_count, bool)
            or not isinstance(self.row_count, int)
            or self.row_count < 0
        ):
            raise ValueError("row_count must be a non-negative int")
        if self.quality is not None:
            unknown = set(self.quality) - _QUALITY_KEYS
            if unknown:
                raise ValueError(
                    f"quality keys must be among {sorted(_QUALITY_KEYS)}; got {sorted(unknown)}"
                )


def lineage_path(lake_root: str | Path) -> Path:
    """Where file-mode lineage lives: ``<lake_root>/_lineage/events.ndjson``.

    Args:
        lake_root: A local lake folder or a ``file://`` URI.

    Returns:
        The NDJSON file path (it may not exist yet).

    Raises:
        ValueError: The lake root is on an object store, where file lineage cannot append.
    """
    root = str(lake_root)
    parts = urlsplit(root)
    if parts.scheme.lower() == "file":
        root = unquote(parts.path)
    elif len(parts.scheme) > 1:
        raise ValueError(
            "file lineage needs a local lake root; set OPENLINEAGE_URL for an object-store lake"
        )
    return Path(root) / "_lineage" / "events.ndjson"


class NdjsonFileTransport(Transport):
    """Append each event as one JSON line, durably, to a single local file.

    The openlineage ``FileTransport`` with ``append=True`` writes through a buffered text
    file, which may split a large event over several ``write`` calls, takes no lock and
    never fsyncs; concurrent Dagster workers could interleave mid-line. Here every event
    is one ``os.write`` on an ``O_APPEND`` descriptor, under an exclusive ``flock`` (so a
    short write can be finished before anyone else appends), followed by ``fsync``.
    A line torn by a crash is sealed with a newline before the next event, so the damage
    stays one unparseable line.
    """

    kind = "biofed_ndjson_file"

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._lock = threading.Lock()

    def emit(self, event: Any) -> None:
        """Append ``event`` as one line.

        Raises:
            OSError: The lineage file cannot be created or written.
        """
        line = (Serde.to_json(event) + "\n").encode("utf-8")
        with self._lock:
            self._append(line)

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.path, flags, 0o640)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size and hasattr(os, "pread") and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            view = memoryview(line)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)  # also releases the flock
        if created and self._fsync and hasattr(os, "O_DIRECTORY"):
            dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


class LineageEmitter:
    """Build OpenLineage run events for biofed jobs and hand them to a transport.

    Error policy: with a file transport (strict) an emission error raises, because a
    pipeline whose lineage store is broken should stop and say so. With any other
    transport (HTTP) an emission error is logged as a warning naming the job and the
    error type, never the event, and the caller carries on: a lineage server being down
    must not fail a materialisation or an agent's query.

    Args:
        transport: An openlineage ``Transport``.
        strict: Raise on emission errors. Defaults to True for file transports, False
            otherwise.
    """

    def __init__(self, transport: Transport, *, strict: bool | None = None) -> None:
        self.transport = transport
        if strict is None:
            strict = isinstance(transport, (NdjsonFileTransport, FileTransport))
        self.strict = strict

    @classmethod
    def for_lake(cls, lake_root: str | Path, *, durable: bool = True) -> LineageEmitter:
        """The emitter a pipeline or server should use for ``lake_root``.

        ``OPENLINEAGE_URL`` set: HTTP to ``<url>/<OPENLINEAGE_ENDPOINT or api/v1/lineage>``,
        with ``OPENLINEAGE_API_KEY`` as a bearer token when set. Otherwise the NDJSON file
        ``<lake_root>/_lineage/events.ndjson``.

        Args:
            lake_root: The lake folder (only used in file mode).
            durable: fsync each event in file mode. The catalog server passes False: its
                audit log is the durable record of every read, and a second fsync per query
                would double its cost.

        Returns:
            A ready emitter; call :meth:`close` when done.

        Raises:
            ValueError: ``OPENLINEAGE_URL`` is not an http(s) URL, or file mode was chosen
                for an object-store lake root.
        """
        url = os.environ.get("OPENLINEAGE_URL", "").strip()
        if not url:
            return cls(NdjsonFileTransport(lineage_path(lake_root), fsync=durable))
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("OPENLINEAGE_URL must be an http:// or https:// URL")
        config: dict[str, Any] = {
            "url": url,
            "endpoint": os.environ.get("OPENLINEAGE_ENDPOINT", "api/v1/lineage"),
            "timeout": _HTTP_TIMEOUT_S,
            "retry": dict(_HTTP_RETRY),
        }
        api_key = os.environ.get("OPENLINEAGE_API_KEY", "").strip()
        if api_key:
            config["auth"] = {"type": "api_key", "apiKey": api_key}
        return cls(HttpTransport(HttpConfig.from_dict(config)))

    def close(self) -> None:
        """Release the transport's resources (the HTTP session)."""
        self.transport.close()

    def __enter__(self) -> LineageEmitter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(
        self,
        *,
        run_id: str,
        job: str,
        inputs: Sequence[LineageDataset] = (),
        outputs: Sequence[LineageDataset] = (),
        description: str | None = None,
        parent: tuple[str, str] | None = None,
    ) -> None:
        """Emit START for ``job``'s run ``run_id``.

        Args:
            run_id: An RFC 4122 UUID (see :func:`asset_run_id`).
            job: The job name inside ``JOB_NAMESPACE``, e.g. the asset key.
            inputs: Datasets read.
            outputs: Datasets written.
            description: Job documentation facet.
            parent: ``(parent run id, parent job name)``, e.g. the Dagster run id and
                ``"dagster.run"``; emitted as the ``parent`` run facet.

        Raises:
            ValueError: A run id is not a UUID, a dataset uri is unsupported, or quality
                was given for an output.
            OSError: File mode only, the lineage file cannot be written.
        """
        self._emit(self._event(RunState.START, run_id, job, inputs, outputs, description, parent))

    def complete(
        self,
        *,
        run_id: str,
        job: str,
        inputs: Sequence[LineageDataset] = (),
        outputs: Sequence[LineageDataset] = (),
        description: str | None = None,
        parent: tuple[str, str] | None = None,
    ) -> None:
        """Emit COMPLETE for ``job``'s run ``run_id``; arguments as :meth:`start`."""
        self._emit(
            self._event(RunState.COMPLETE, run_id, job, inputs, outputs, description, parent)
        )

    def fail(
        self,
        *,
        run_id: str,
        job: str,
        error: str,
        inputs: Sequence[LineageDataset] = (),
        outputs: Sequence[LineageDataset] = (),
        description: str | None = None,
        parent: tuple[str, str] | None = None,
    ) -> None:
        """Emit FAIL with an ``errorMessage`` facet; other arguments as :meth:`start`.

        Args:
            error: A fixed sentence chosen by the caller ("lab_observations failed its
                schema check"). Never ``str(exc)`` and never a value from the data; no
                stack trace is attached.

        Raises:
            ValueError: ``error`` is empty, or as :meth:`start`.
        """
        if not isinstance(error, str) or not error.strip():
            raise ValueError("error must be a non-empty fixed sentence")
        event = self._event(RunState.FAIL, run_id, job, inputs, outputs, description, parent)
        event.run.facets["errorMessage"] = ErrorMessageRunFacet(
            message=error, programmingLanguage="python", producer=PRODUCER
        )
        self._emit(event)

    def read(self, *, job: str, dataset: LineageDataset, run_id: str | None = None) -> str:
        """Emit one COMPLETE event recording that ``job`` read ``dataset``.

        Used by the MCP server per query: the dataset (the gold Delta table, with the
        version read) is the only input; tool arguments and results are not recorded.

        Args:
            job: The reading job, e.g. ``mcp.query_lab_results``.
            dataset: The table read.
            run_id: A UUID to use; a new UUIDv7 when None.

        Returns:
            The run id, for correlation with the audit record.

        Raises:
            ValueError: As :meth:`start`.
            OSError: File mode only, the lineage file cannot be written.
        """
        run_id = str(generate_new_uuid()) if run_id is None else run_id
        event = self._event(RunState.COMPLETE, run_id, job, (dataset,), (), None, None)
        self._emit(event)
        return event.run.runId

    def _event(
        self,
        state: RunState,
        run_id: str,
        job: str,
        inputs: Sequence[LineageDataset],
        outputs: Sequence[LineageDataset],
        description: str | None,
        parent: tuple[str, str] | None,
    ) -> RunEvent:
        if not isinstance(job, str) or not job.strip():
            raise ValueError("job must be a non-empty name")
        run_facets: dict[str, Any] = {}
        if parent is not None:
            parent_run_id, parent_job = parent
            run_facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=_uuid(parent_run_id, "parent run id (parent[0])")),
                job=parent_run.Job(namespace=JOB_NAMESPACE, name=parent_job),
                producer=PRODUCER,
            )
        job_facets: dict[str, Any] = {}
        if description:
            job_facets["documentation"] = DocumentationJobFacet(
                description=description, producer=PRODUCER
            )
        return RunEvent(
            eventType=state,
            eventTime=_utc_now(),
            run=Run(runId=_uuid(run_id, "run id"), facets=run_facets),
            job=Job(namespace=JOB_NAMESPACE, name=job, facets=job_facets),
            inputs=[_input_dataset(ds) for ds in inputs],
            outputs=[_output_dataset(ds) for ds in outputs],
            producer=PRODUCER,
        )

    def _emit(self, event: RunEvent) -> None:
        if self.strict:
            self.transport.emit(event)
            return
        try:
            self.transport.emit(event)
        except Exception as exc:  # noqa: BLE001 - lineage must not fail the caller's run
            logger.warning(
                "OpenLineage %s event for job %r was not delivered (%s); continuing without it",
                event.eventType.value if event.eventType else "?",
                event.job.name,
                type(exc).__name__,
            )


def _uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"{what} must be an RFC 4122 UUID string") from None


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dataset_facets(ds: LineageDataset) -> dict[str, Any]:
    facets: dict[str, Any] = {}
    if ds.fields is not None:
        facets["schema"] = SchemaDatasetFacet(
            fields=[
                SchemaDatasetFacetFields(
                    name=name, type=dtype, description=description or None, ordinal_position=i
                )
                for i, (name, dtype, description) in enumerate(ds.fields, start=1)
            ],
            producer=PRODUCER,
        )
    if ds.column_lineage:
        lineage_fields = {}
        for output_field, sources in ds.column_lineage.items():
            input_fields = []
            for source_uri, source_field in sources:
                namespace, name = dataset_identity(source_uri)
                input_fields.append(InputField(namespace=namespace, name=name, field=source_field))
            lineage_fields[output_field] = Fields(inputFields=input_fields)
        facets["columnLineage"] = ColumnLineageDatasetFacet(
            fields=lineage_fields, producer=PRODUCER
        )
    if ds.version is not None:
        facets["version"] = DatasetVersionDatasetFacet(
            datasetVersion=str(ds.version), producer=PRODUCER
        )
    return facets


def _input_dataset(ds: LineageDataset) -> InputDataset:
    namespace, name = dataset_identity(ds.uri)
    input_facets: dict[str, Any] = {}
    row_count = ds.row_count
    column_metrics: dict[str, ColumnMetrics] = {}
    if ds.quality is not None:
        assertions = [
            Assertion(assertion=assertion, success=bool(success), column=column)
            for assertion, success, column in ds.quality.get("assertions", ())
        ]
        if assertions:
            input_facets["dataQualityAssertions"] = DataQualityAssertionsDatasetFacet(
                assertions=assertions, producer=PRODUCER
            )
        if ds.quality.get("row_count") is not None:
            row_count = ds.quality["row_count"]
        for column, metrics in (ds.quality.get("column_metrics") or {}).items():
            unknown = set(metrics) - _COLUMN_METRIC_KEYS
            if unknown:
                raise ValueError(
                    f"column metrics must be among {sorted(_COLUMN_METRIC_KEYS)}; "
                    f"got {sorted(unknown)}"
                )
            column_metrics[column] = ColumnMetrics(**metrics)
    if row_count is not None or column_metrics:
        input_facets["dataQualityMetrics"] = DataQualityMetricsInputDatasetFacet(
            columnMetrics=column_metrics, rowCount=row_count, producer=PRODUCER
        )
    return InputDataset(
        namespace=namespace, name=name, facets=_dataset_facets(ds), inputFacets=input_facets
    )


def _output_dataset(ds: LineageDataset) -> OutputDataset:
    if ds.quality is not None:
        raise ValueError(
            "quality belongs on input datasets (Marquez reads it there): emit the check "
            "as its own run that reads the table"
        )
    namespace, name = dataset_identity(ds.uri)
    output_facets: dict[str, Any] = {}
    if ds.row_count is not None:
        output_facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(
            rowCount=ds.row_count, producer=PRODUCER
        )
    return OutputDataset(
        namespace=namespace, name=name, facets=_dataset_facets(ds), outputFacets=output_facets
    )


def asset_run_id(dagster_run_id: str, asset_key: str) -> str:
    """A deterministic OpenLineage run id for one asset inside one Dagster run.

    Args:
        dagster_run_id: The Dagster run id (``context.run.run_id``).
        asset_key: The asset key as a string, e.g. ``silver/lab/observations``.

    Returns:
        A UUIDv5 string; the same arguments always give the same id.
    """
    return str(uuid.uuid5(_ASSET_RUN_NAMESPACE, f"{dagster_run_id}\x1f{asset_key}"))


def read_events_with_errors(lake_root: str | Path) -> tuple[list[dict], int]:
    """Parse ``<lake_root>/_lineage/events.ndjson``.

    Args:
        lake_root: The lake folder.

    Returns:
        ``(events, bad_lines)``: the parsed events in file order, and how many non-blank
        lines were not a JSON object (a line torn by a crash, for instance). Both empty
        when the file does not exist.
    """
    path = lineage_path(lake_root)
    if not path.exists():
        return [], 0
    events: list[dict] = []
    bad_lines = 0
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
            except ValueError:
                bad_lines += 1
                continue
            if isinstance(event, dict):
                events.append(event)
            else:
                bad_lines += 1
    return events, bad_lines


def read_events(lake_root: str | Path) -> list[dict]:
    """The parseable events of ``<lake_root>/_lineage/events.ndjson`` ([] when absent).

    Args:
        lake_root: The lake folder.

    Returns:
        The events in file order; unparseable lines are skipped (see
        :func:`read_events_with_errors` for their count).
    """
    return read_events_with_errors(lake_root)[0]


def lineage_graph(events: Iterable[dict]) -> tuple[set[str], set[tuple[str, str]]]:
    """The lineage graph of COMPLETE events.

    Args:
        events: OpenLineage run events as dicts (e.g. from :func:`read_events`).

    Returns:
        ``(nodes, edges)``. Dataset nodes are ``"<namespace>:<name>"``, job nodes are
        ``"job:<namespace>.<name>"``; edges run input dataset -> job -> output dataset.
    """
    nodes: set[str] = set()
    edges: set[tuple[str, str]] = set()
    for event in events:
        if event.get("eventType") != "COMPLETE":
            continue
        job = event.get("job")
        if not isinstance(job, dict) or "namespace" not in job or "name" not in job:
            continue
        job_key = f"job:{job['namespace']}.{job['name']}"
        nodes.add(job_key)
        for key in _dataset_keys(event.get("inputs")):
            nodes.add(key)
            edges.add((key, job_key))
        for key in _dataset_keys(event.get("outputs")):
            nodes.add(key)
            edges.add((job_key, key))
    return nodes, edges


def _dataset_keys(datasets: object) -> list[str]:
    if not isinstance(datasets, list):
        return []
    return [
        f"{d['namespace']}:{d['name']}"
        for d in datasets
        if isinstance(d, dict) and "namespace" in d and "name" in d
    ]
