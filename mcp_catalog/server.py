"""The generated, read-only MCP catalog server.

``build_server`` turns a validated manifest into an ``MCPServer``: per dataset visible to the
role, one ``query_<name>`` tool whose input and output schemas are generated from the
catalog, and one data card resource; plus a listing resource. The tools are built as SDK
``Tool`` objects directly so that argument validation happens in our code and every error
the client sees is a fixed, corrective sentence (the SDK's own validation message would echo
pydantic's text, input values included).
"""

import json
import logging
import secrets
import threading
import uuid
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl
from deltalake import DeltaTable
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resources import TextResource
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import ToolAnnotations
from pydantic import BaseModel, create_model

from mcp_catalog.cursor import CursorCodec, CursorError, query_fingerprint
from mcp_catalog.manifest import CatalogDataset, Manifest
from mcp_catalog.query import DatasetQuery, QueryError
from mcp_catalog.roles import audiences_for
from quality.freshness import FreshnessSLA, freshness_status
from quality.lineage import LineageDataset, LineageEmitter

SERVER_NAME = "biofed-catalog"
LISTING_URI = "catalog://datasets"
INTERNAL_ERROR_MESSAGE = (
    "the query could not be completed because of an internal error; correlation id {correlation_id}"
)
_JSON = "application/json"

logger = logging.getLogger(__name__)


class CatalogBuildError(Exception):
    """The manifest cannot be served as it is (a missing table, a bad key, a name clash)."""


def card_uri(dataset: CatalogDataset) -> str:
    """The data card resource URI of a dataset."""
    return f"{LISTING_URI}/{dataset.name}"


def tool_name(dataset: CatalogDataset) -> str:
    """The name of the query tool of a dataset."""
    return f"query_{dataset.name}"


def _server_version() -> str:
    try:
        return version("biofed")
    except PackageNotFoundError:  # pragma: no cover - only outside an installed checkout
        return "0"


def _table_uri(lake: str | Path, dataset: CatalogDataset) -> str:
    relative = PurePosixPath(dataset.path)
    if relative.is_absolute() or not relative.parts or ".." in relative.parts:
        raise CatalogBuildError(
            f"dataset {dataset.name!r} has a table path outside the lake; rebuild the catalog "
            "(`make demo`)."
        )
    if isinstance(lake, str) and "://" in lake:
        return f"{lake.rstrip('/')}/{relative}"
    return str(Path(lake).expanduser().resolve() / relative)


class _RawArguments(FuncMetadata):
    """Hands the raw arguments to the tool, which validates them itself.

    The SDK's own validation turns a pydantic ``ValidationError`` into a message with pydantic's
    text, which repeats the caller's input values and a pydantic URL. Our tool validates with the
    same generated model and raises ``ToolError`` with fixed sentences instead.
    """

    def validate_arguments(self, arguments_to_validate: dict[str, Any]) -> dict[str, Any]:
        return {"arguments": dict(arguments_to_validate)}


def _describe(dataset: CatalogDataset) -> str:
    lines = [dataset.description.strip(), "", "Columns:"]
    lines += [f"- {c.name} ({c.type}): {c.description}" for c in dataset.columns]
    return "\n".join(lines)


class _PinnedTable:
    """A dataset's Delta table at the manifest's version, opened on the first query.

    The Delta log is read once and the lazy scan is kept: the version never changes for the
    life of the server, so neither do its files or schema, and each query only reads data
    files (a fresh ``scan_delta`` per call measured about twice as slow on a local table).
    """

    def __init__(self, uri: str, version: int, storage_options: dict[str, str] | None) -> None:
        self._uri = uri
        self._version = version
        self._storage_options = storage_options
        self._lock = threading.Lock()
        self._opened: tuple[pl.LazyFrame, pl.Schema] | None = None

    def scan(self) -> tuple[pl.LazyFrame, pl.Schema]:
        """The lazy scan of the pinned version, and its schema."""
        with self._lock:
            if self._opened is None:
                table = DeltaTable(
                    self._uri, version=self._version, storage_options=self._storage_options
                )
                frame = pl.scan_delta(table)
                self._opened = (frame, frame.collect_schema())
            return self._opened


def current_freshness(dataset: CatalogDataset, *, now: datetime | None = None) -> str:
    """The dataset's freshness now: time passes while a server runs, so the status recorded
    in the manifest is recomputed from its SLA and newest source time on every call."""
    block = dataset.freshness
    if block is None:
        return "unknown"
    sla = FreshnessSLA(
        timedelta(seconds=block.warn_after_seconds), timedelta(seconds=block.fail_after_seconds)
    )
    return freshness_status(block.newest_source_at, sla, now=now or datetime.now(UTC))


def _query_tool(
    query: DatasetQuery,
    table: _PinnedTable,
    cursors: CursorCodec,
    lineage: LineageEmitter,
    table_uri: str,
) -> Tool:
    dataset = query.dataset
    name = tool_name(dataset)

    def answer(arguments: dict[str, Any]) -> BaseModel:
        try:
            parsed = query.parse(arguments)
        except QueryError as exc:
            raise ToolError(str(exc)) from None
        query_hash = query_fingerprint(query.canonical(parsed))
        offset = 0
        cursor = parsed.cursor  # type: ignore[attr-defined]
        if cursor is not None:
            try:
                offset = cursors.decode(
                    cursor,
                    dataset=dataset.name,
                    delta_version=dataset.delta_version,
                    query_hash=query_hash,
                )
            except CursorError as exc:
                raise ToolError(str(exc)) from None
        frame, schema = table.scan()
        window = query.plan(frame, schema, parsed, offset).collect()
        limit: int = parsed.limit  # type: ignore[attr-defined]
        next_cursor = None
        if window.height > limit:
            next_cursor = cursors.encode(
                dataset=dataset.name,
                delta_version=dataset.delta_version,
                query_hash=query_hash,
                offset=offset + limit,
            )
        page = query.page(
            window, parsed, next_cursor=next_cursor, freshness=current_freshness(dataset)
        )
        # Lineage names the view and version read, never the arguments or the rows.
        lineage.read(
            job=f"mcp.{name}",
            dataset=LineageDataset(uri=table_uri, version=str(dataset.delta_version)),
        )
        return page

    def run_query(arguments: dict[str, Any]) -> BaseModel:
        try:
            return answer(arguments)
        except ToolError:
            raise
        except Exception:
            # The exception text may hold a path, a value or internals: it stays in the log.
            correlation_id = uuid.uuid4().hex
            logger.exception("%s failed; correlation id %s", name, correlation_id)
            raise ToolError(INTERNAL_ERROR_MESSAGE.format(correlation_id=correlation_id)) from None

    run_query.__name__ = name
    metadata = _RawArguments(
        # Documents the arguments for anyone introspecting the tool; the SDK never validates
        # with it because ``validate_arguments`` is overridden.
        arg_model=create_model(f"{name}_arguments", __base__=(query.arguments_model, ArgModelBase)),
        output_model=query.result_model,
        output_schema=query.output_schema(),
    )
    return Tool(
        fn=run_query,
        name=name,
        title=dataset.title,
        description=_describe(dataset),
        parameters=query.input_schema(),
        fn_metadata=metadata,
        is_async=False,
        annotations=ToolAnnotations(
            title=dataset.title,
            read_only_hint=True,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )


def data_card(dataset: CatalogDataset) -> dict[str, Any]:
    """What a client may know about a dataset (never its storage path)."""
    return {
        "name": dataset.name,
        "title": dataset.title,
        "description": dataset.description,
        "owner": dataset.owner,
        "audience": dataset.audience,
        "tool": tool_name(dataset),
        "uri": card_uri(dataset),
        "key": list(dataset.key),
        "columns": [
            {
                "name": column.name,
                "type": column.type,
                "description": column.description,
                "class": column.column_class,
                "filterable": column.filterable,
                "sortable": column.sortable,
                "enum": column.enum,
            }
            for column in dataset.columns
        ],
        "row_count": dataset.row_count,
        "delta_version": dataset.delta_version,
        "last_materialized": dataset.last_materialized.isoformat(),
        "upstream": list(dataset.upstream),
        "max_limit": dataset.max_limit,
        "freshness": _dump(dataset.freshness),
        "quality": _dump(dataset.quality),
    }


def _dump(block: BaseModel | None) -> dict[str, Any] | None:
    return None if block is None else block.model_dump(mode="json")


def _listing(datasets: list[CatalogDataset]) -> list[dict[str, Any]]:
    return [
        {
            "name": dataset.name,
            "title": dataset.title,
            "description": dataset.description,
            "row_count": dataset.row_count,
            "delta_version": dataset.delta_version,
            "last_materialized": dataset.last_materialized.isoformat(),
            "uri": card_uri(dataset),
            "tool": tool_name(dataset),
        }
        for dataset in datasets
    ]


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def build_server(
    manifest: Manifest,
    lake: str | Path,
    *,
    role: str = "researcher",
    storage_options: dict[str, str] | None = None,
    cursor_secret: bytes | None = None,
    lineage: LineageEmitter | None = None,
) -> MCPServer:
    """Build the read-only catalog server for one role.

    Nothing is read at build time except a check that each visible dataset's Delta table
    exists; rows are read per call, at the version the manifest pins.

    Args:
        manifest: the validated catalog.
        lake: the lake root (a local folder or an object-store URI such as ``s3://bucket/lake``).
        role: the role the server runs as; it decides which audiences' views are served.
        storage_options: passed to delta-rs for object stores.
        cursor_secret: HMAC key for paging cursors (at least 16 bytes); random per process
            when None, so cursors do not survive a restart.
        lineage: where each query's OpenLineage read event goes; by default the lake's
            ``_lineage/events.ndjson``, or ``OPENLINEAGE_URL`` when set.

    Returns:
        The server, ready for ``run()`` or an in-memory ``Client``.

    Raises:
        UnknownRoleError: when ``role`` is not a known role.
        CatalogBuildError: when a dataset's table is missing, its path leaves the lake, its
            key is not among its columns, or two visible datasets share a name.
        ValueError: when ``cursor_secret`` is shorter than 16 bytes.
    """
    audiences = audiences_for(role)
    datasets = [d for d in manifest.datasets if d.audience in audiences]
    cursors = CursorCodec(cursor_secret if cursor_secret is not None else secrets.token_bytes(32))
    if lineage is not None:
        emitter = lineage
    else:
        try:
            emitter = LineageEmitter.for_lake(lake)
        except ValueError as exc:
            raise CatalogBuildError(
                "lineage for a lake on object storage goes over HTTP: set OPENLINEAGE_URL"
            ) from exc

    seen: set[str] = set()
    tools: list[Tool] = []
    for dataset in datasets:
        if dataset.name in seen:
            raise CatalogBuildError(
                f"two datasets visible to role {role!r} are called {dataset.name!r}; "
                "dataset names must be unique across the audiences of a role."
            )
        seen.add(dataset.name)
        table_uri = _table_uri(lake, dataset)
        if not DeltaTable.is_deltatable(table_uri, storage_options=storage_options):
            raise CatalogBuildError(
                f"dataset {dataset.name!r} has no Delta table at {table_uri}; rebuild the lake "
                "and its catalog (`make demo`)."
            )
        try:
            query = DatasetQuery.for_dataset(dataset)
        except ValueError as exc:
            raise CatalogBuildError(f"{exc}; rebuild the catalog (`make demo`).") from exc
        table = _PinnedTable(table_uri, dataset.delta_version, storage_options)
        tools.append(_query_tool(query, table, cursors, emitter, table_uri))

    resources = [
        TextResource(
            uri=LISTING_URI,
            name="datasets",
            title="Datasets",
            description=(
                "Datasets offered here: name, title, description, row count, Delta version, "
                "last materialisation."
            ),
            mime_type=_JSON,
            text=_json(_listing(datasets)),
        )
    ]
    resources += [
        TextResource(
            uri=card_uri(dataset),
            name=f"{dataset.name}_card",
            title=f"{dataset.title} (data card)",
            description=(
                f"Data card of {dataset.name}: columns, key, owner, freshness and lineage."
            ),
            mime_type=_JSON,
            text=_json(data_card(dataset)),
        )
        for dataset in datasets
    ]
    audience_list = ", ".join(audiences)
    return MCPServer(
        SERVER_NAME,
        title="biofed catalog",
        instructions=(
            f"Read-only access to {len(datasets)} governed datasets of the biofed lake for the "
            f"{audience_list} audience: each has a query tool and a data card resource, and "
            f"{LISTING_URI} lists them."
        ),
        version=_server_version(),
        tools=tools,
        resources=resources,
    )
