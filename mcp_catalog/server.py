"""The generated, read-only, governed MCP catalog server.

:class:`CatalogService` turns a validated manifest and the access policy into one
``MCPServer`` per role: per dataset the role may use, a ``query_<name>`` tool (paged rows,
the role's columns only) and, where the policy allows, an ``aggregate_<name>`` tool
(suppressed counts and statistics); for roles holding the audit scope, read-only tools over
the audit log; and data card resources. Tool schemas are generated from the catalog.

Roles the policy's ``cohorts`` section lists also get ``find_cohort`` (:mod:`mcp_catalog.cohort`):
the people of the research audience who meet criteria across views, as a suppressed count or,
for roles allowed them, the members' pseudonyms. A cohort can be saved as a named, versioned
resource (``cohort://{name}/{version}``, :mod:`mcp_catalog.cohorts_store`) that the query and
aggregate tools of person-level views accept as a ``cohort`` filter, and it can run in the
background (the SDK serves no ``tasks/*`` methods): the call returns a job whose status and
result are the resource ``cohort-job://{id}``, readable only by the principal who started it.
Each criterion read reports progress to clients that ask for it.

Every call goes through the same gate, whatever the transport:

1. who is calling comes from the verified token (HTTP) or the configuration (stdio);
2. scope, purpose, break-glass and risk are checked before any argument is trusted;
3. arguments are validated strictly against the generated model;
4. rows are read at the version the manifest pins, kept only above the policy's thresholds
   (``suppress_below``), filtered by the current consent of the purpose (read at its latest
   version on every call) or by the break-glass grant; a view without a person column (a
   frequency table computed over consented people) carries its consent from when it was
   built;
5. output is bounded (rows, bytes, field length), free text fenced, invisible characters
   stripped and links defanged;
6. one audit record is appended and fsynced before anything is returned; if it cannot be
   written the caller gets a fixed error and no data.

Errors the client sees are fixed sentences with a correlation id: no paths, values or
exception text.
"""

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import polars as pl
from deltalake import DeltaTable
from mcp.server import MCPServer
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.mcpserver.prompts.base import Prompt
from mcp.server.mcpserver.resources import TextResource
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.types import INTERNAL_ERROR, CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, create_model

from mcp_catalog.aggregates import AggregateQuery
from mcp_catalog.audit import AuditEvent, AuditLog, AuditWriteError, redact_arguments
from mcp_catalog.cohort import (
    BLINDED_ARM_MESSAGE,
    REGISTER,
    CohortRefusal,
    CohortSpec,
    Progress,
    columns_used,
    evaluate,
    views_used,
)
from mcp_catalog.cohorts_store import (
    NAME_PATTERN,
    CohortIntegrityError,
    CohortStore,
    SavedCohort,
    cohort_uri,
    parse_reference,
)
from mcp_catalog.cursor import CursorCodec, CursorError, query_fingerprint
from mcp_catalog.disclosure import Measure, QueryLedger, aggregate
from mcp_catalog.manifest import PERSON_COLUMN, CatalogDataset, Manifest, RegionColumns
from mcp_catalog.policy import Cohorts, DatasetPolicy, Policy
from mcp_catalog.principal import Principal
from mcp_catalog.prompts import catalog_prompts, check_prompt_request, prompt_completion
from mcp_catalog.query import (
    MAX_REGION_SPAN,
    BreakGlassTag,
    DatasetQuery,
    QueryError,
    rows_as_json,
)
from mcp_catalog.risk import RiskFeatures, RiskTracker
from mcp_catalog.safety import SafetyStats, clean_text, shape_rows
from quality.freshness import FreshnessSLA, freshness_status
from quality.lineage import LineageDataset, LineageEmitter

SERVER_NAME = "biofed-catalog"
LISTING_URI = "catalog://datasets"
PRINCIPAL_SCOPE_KEY = "biofed.principal"
CORRELATION_SCOPE_KEY = "biofed.correlation_id"
"""Where the HTTP layer puts the request's correlation id (also sent as X-Correlation-Id)."""
"""Where the HTTP layer puts the verified principal in the ASGI scope."""
CONSENT_TABLE = "_consent"
"""Per audience, ``gold/<audience>/_consent`` holds each person's current consent decisions."""
PERSON_LEVEL_CLASSES = frozenset({"pseudonym", "direct_identifier"})
"""Column classes that tie a row to a person: a view with one of them is person-level."""
FIND_COHORT = "find_cohort"
"""The name of the cohort tool."""
COHORT_TEMPLATE = "cohort://{name}/{version}"
LATEST_COHORT_TEMPLATE = "cohort://{name}"
JOB_TEMPLATE = "cohort-job://{job}"
_COHORT_URI = re.compile(rf"cohort://({NAME_PATTERN})(?:/([1-9][0-9]{{0,8}}))?")
_JOB_URI = re.compile(r"cohort-job://([0-9a-f]{32})")
_COHORT_SCHEMES = ("cohort://", "cohort-job://")
_FRESHNESS_ORDER = ("fresh", "unknown", "warn", "stale")

INTERNAL_ERROR_MESSAGE = (
    "the request could not be completed because of an internal error; correlation id "
    "{correlation_id}"
)
AUDIT_UNAVAILABLE_MESSAGE = (
    "the request was refused because the audit log cannot be written; no data was returned; "
    "correlation id {correlation_id}"
)
_JSON = "application/json"
_CACHE_MAX_BYTES = 256 * 1024
# Code-system URIs are the identity of a code, not links for a reader: known terminologies are
# returned as they are, anything else in a ``*system`` column is cleaned like any text.
_TERMINOLOGY = re.compile(
    r"http://(?:loinc\.org|snomed\.info/sct|unitsofmeasure\.org"
    r"|www\.nlm\.nih\.gov/research/umls/rxnorm"
    r"|hl7\.org/fhir/sid/(?:cvx|icd-10-cm|icd-10|ndc)"
    r"|(?:terminology\.)?hl7\.org/(?:fhir/)?CodeSystem/[A-Za-z0-9.-]{1,64})"
)

logger = logging.getLogger(__name__)


class CatalogBuildError(Exception):
    """The manifest cannot be served as it is (a missing table, a bad key, no policy)."""


class Denied(Exception):
    """A refusal: ``reason`` goes to the audit record, ``message`` (a fixed, corrective
    sentence) to the caller."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def card_uri(dataset: CatalogDataset) -> str:
    """The data card resource URI of a dataset."""
    return f"{LISTING_URI}/{dataset.name}"


def tool_name(dataset: CatalogDataset) -> str:
    """The name of the query tool of a dataset."""
    return f"query_{dataset.name}"


def aggregate_tool_name(dataset: CatalogDataset) -> str:
    """The name of the aggregate tool of a dataset."""
    return f"aggregate_{dataset.name}"


def _server_version() -> str:
    try:
        return version("biofed")
    except PackageNotFoundError:  # pragma: no cover - only outside an installed checkout
        return "0"


def _table_uri(lake: str | Path, path: str, name: str) -> str:
    relative = PurePosixPath(path)
    if relative.is_absolute() or not relative.parts or ".." in relative.parts:
        raise CatalogBuildError(
            f"dataset {name!r} has a table path outside the lake; rebuild the catalog "
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


class _PinnedTable:
    """A Delta table at one version, opened on the first read.

    The Delta log is read once and the lazy scan is kept: the version never changes for the
    life of the server, so neither do its files or schema.
    """

    def __init__(self, uri: str, version: int, storage_options: dict[str, str] | None) -> None:
        self._uri = uri
        self._version = version
        self._storage_options = storage_options
        self._lock = threading.Lock()
        self._opened: tuple[pl.LazyFrame, pl.Schema] | None = None
        self.reads = 0
        """How many times data was read (tests prove a refusal read nothing)."""

    def scan(self) -> tuple[pl.LazyFrame, pl.Schema]:
        """The lazy scan of the pinned version, and its schema."""
        with self._lock:
            self.reads += 1
            if self._opened is None:
                table = DeltaTable(
                    self._uri, version=self._version, storage_options=self._storage_options
                )
                frame = pl.scan_delta(table)
                schema = frame.collect_schema()
                files = _pinned_files(table, schema)
                self._opened = (frame if files is None else files, schema)
            return self._opened


def _pinned_files(table: DeltaTable, schema: pl.Schema) -> pl.LazyFrame | None:
    """A plain Parquet scan of a pinned version's data files, when that reads the same rows.

    ``scan_delta`` resolves the file list from the log on every collect (3-4 ms a query on a
    1M-row view); the version is pinned, so its files are fixed. Only for local tables whose
    files hold the logical rows as they are: no partition columns, deletion vectors or column
    mapping, and the same schema as the Delta scan; otherwise None (use ``scan_delta``).
    """
    features = set(table.protocol().reader_features or ())
    if features & {"deletionVectors", "columnMapping"} or table.metadata().partition_columns:
        return None
    files = table.file_uris()
    if not files or any("://" in f and not f.startswith("file://") for f in files):
        return None
    frame = pl.scan_parquet(files)
    return frame if frame.collect_schema() == schema else None


class ConsentIndex:
    """The current consent decisions of one audience, re-read when the table moves on.

    Unlike the views, this table is not pinned: a revocation landed and materialised after
    the server started takes effect on the next call.
    """

    def __init__(self, uri: str, storage_options: dict[str, str] | None) -> None:
        self._table = DeltaTable(uri, storage_options=storage_options)
        self._log = None if "://" in uri else Path(uri) / "_delta_log"
        self._lock = threading.Lock()
        self._by_scope: dict[str, pl.Series] = {}
        self._withdrawn = pl.Series("withdrawn", [], pl.String)
        self._version = -1

    def _latest(self) -> int:
        """The newest committed version: for a local table, the highest commit file name
        (tens of microseconds); otherwise delta-rs reads the new log entries."""
        if self._log is not None:
            try:
                commits = [
                    int(name[:-5])
                    for name in os.listdir(self._log)
                    if name.endswith(".json") and name[:-5].isdigit()
                ]
            except OSError:
                commits = []
            if commits:
                newest = max(commits)
                if newest != self._table.version():
                    self._table.update_incremental()
                return self._table.version()
        self._table.update_incremental()
        return self._table.version()

    def _refresh(self) -> int:
        current = self._latest()
        if current != self._version:
            frame = pl.from_arrow(self._table.to_pyarrow_table())
            self._by_scope = {
                str(key[0]): group.get_column(PERSON_COLUMN).unique().sort()
                for key, group in frame.filter(pl.col("permitted")).group_by("scope")
            }
            if STUDY_COLUMN in frame.columns:
                refused = frame.filter(pl.col(STUDY_COLUMN).is_not_null(), ~pl.col("permitted"))
                self._withdrawn = refused.select(_study_pair_key()).to_series().unique().sort()
            self._version = current
        return current

    def permitted(self, scope: str) -> tuple[int, pl.Series]:
        """The consent table's version and the pseudonyms permitted for ``scope``."""
        with self._lock:
            current = self._refresh()
            return current, self._by_scope.get(scope, pl.Series(PERSON_COLUMN, [], pl.String))

    def study_filter(self) -> pl.Expr:
        """Keeps the rows of a view with a ``study_id`` column whose person has not withdrawn
        consent from that study (the ``trial:<STUDYID>`` rows of the table), as of now."""
        with self._lock:
            self._refresh()
            withdrawn = self._withdrawn
        return ~_study_pair_key().is_in(withdrawn.implode())


STUDY_COLUMN = "study_id"
"""The column naming a trial's study in the trial views and the consent table."""


def _study_pair_key() -> pl.Expr:
    """One string per person and study (a study withdrawal is per pair)."""
    return pl.concat_str([pl.col(PERSON_COLUMN), pl.col(STUDY_COLUMN)], separator="/")


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


@dataclass
class GovernedDataset:
    """A dataset with its policy, its pinned table and its consent index."""

    dataset: CatalogDataset
    policy: DatasetPolicy
    table: _PinnedTable
    table_uri: str
    consent: ConsentIndex | None

    @property
    def key(self) -> str:
        """``<audience>/<name>``, as the policy and the audit log name it."""
        return f"{self.dataset.audience}/{self.dataset.name}"

    @property
    def person_level(self) -> bool:
        """Whether rows belong to people (the view has a ``person_pseudonym`` column).

        A view without one holds aggregates computed when it was built (allele counts over
        consented people, say): consent was applied then, and there is no row to filter by
        consent, count as a person or list in the accounting of disclosures now.
        """
        return self.dataset.column(PERSON_COLUMN) is not None

    def suppression(self) -> list[pl.Expr]:
        """The policy's row thresholds (``suppress_below``) as expressions to be ANDed; a
        null value fails its threshold."""
        return [pl.col(name) >= minimum for name, minimum in self.policy.suppress_below.items()]

    def role_view(self, role: str) -> CatalogDataset:
        """The dataset as ``role`` sees it: only the columns its classes allow, and a region
        only when every region column is among them."""
        visible = set(self.policy.visible_columns(role))
        columns = [c for c in self.dataset.columns if c.name in visible]
        key = [k for k in self.dataset.key if k in visible] or [columns[0].name]
        region = self.dataset.region
        if region is not None and not {region.chrom, region.start, region.end} <= visible:
            region = None
        return self.dataset.model_copy(
            update={
                "columns": columns,
                "key": key,
                "max_limit": min(self.dataset.max_limit, self.policy.row_cap),
                "region": region,
            }
        )

    def masked(self, role: str) -> list[str]:
        """The dataset's columns ``role`` does not see."""
        visible = set(self.policy.visible_columns(role))
        return [c.name for c in self.dataset.columns if c.name not in visible]


class _Cache:
    """Recent governed answers, keyed by everything that decides them.

    The key holds the dataset, its pinned version, the consent table's version, the
    canonical arguments, the page offset and the caller's role and purpose, so a new table
    or consent version, or another policy outcome, never hits an old entry. Break-glass
    answers are never stored.
    """

    def __init__(self, entries: int) -> None:
        self._entries = entries
        self._lock = threading.Lock()
        self._store: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self.hits = 0

    def get(self, key: str) -> tuple[Any, ...] | None:
        with self._lock:
            found = self._store.get(key)
            if found is not None:
                self._store.move_to_end(key)
                self.hits += 1
            return found

    def put(self, key: str, value: tuple[Any, ...], size: int) -> None:
        if self._entries <= 0 or size > _CACHE_MAX_BYTES:
            return
        with self._lock:
            self._store[key] = value
            self._store.move_to_end(key)
            while len(self._store) > self._entries:
                self._store.popitem(last=False)


@dataclass
class _Call:
    """What the audit record of one call will say."""

    principal: Principal | None
    action: str
    dataset: str | None = None
    arguments: dict[str, Any] | None = None
    rows: int = 0
    columns: list[str] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)
    result_sha256: str | None = None
    subjects: list[str] = field(default_factory=list)
    risk_score: int = 0
    risk_reasons: list[str] = field(default_factory=list)
    break_glass: dict[str, Any] | None = None
    cached: bool = False
    delta_version: int | None = None
    reason: str = "ok"
    """The reason code of the record of an allowed call (``job_started`` for a background
    cohort)."""
    after_audit: Callable[[bool], None] | None = None
    """Run once the call's outcome is settled: with True after its allow record was written,
    with False when that record could not be written (a background cohort starts only after
    the record of the call that started it)."""
    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.perf_counter)


def _fingerprint(payload: Any) -> str:
    return _fingerprint_and_size(payload)[0]


def _fingerprint_and_size(payload: Any) -> tuple[str, int]:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(text).hexdigest(), len(text)


class _CatalogServer(MCPServer):
    """An ``MCPServer`` whose resource reads and unknown tool calls are audited too."""

    def __init__(
        self,
        *args: Any,
        service: "CatalogService",
        role: str,
        prompts: list[Prompt] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._service = service
        self._role = role
        self._catalog_prompts = list(prompts or [])
        for prompt in self._catalog_prompts:
            self.add_prompt(prompt)
        if self._catalog_prompts:
            self.completion()(prompt_completion(self._catalog_prompts))

    @property
    def service(self) -> "CatalogService":
        """The catalog service this server belongs to."""
        return self._service

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        principal = self._service.principal_of(context)
        if self._service.required_scope(self._role, name) is None and (
            principal is None or principal.transport == "stdio"
        ):
            # Over HTTP the transport layer has already audited the unknown name.
            call = self._service.new_call(context, "tools/call")
            try:
                self._service.audit(call, "deny", "unknown_tool")
            except AuditWriteError:
                raise ToolError(
                    AUDIT_UNAVAILABLE_MESSAGE.format(correlation_id=call.correlation_id)
                ) from None
        return await super().call_tool(name, arguments, context)

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Any = None
    ) -> Any:
        call = self._service.new_call(context, "prompts/get")
        check = check_prompt_request(self._catalog_prompts, name, arguments)
        call.arguments, call.dataset = check.arguments, check.dataset
        try:
            self._service.audit(call, check.decision, check.reason, detail=check.detail)
        except AuditWriteError:
            raise MCPError(
                INTERNAL_ERROR, AUDIT_UNAVAILABLE_MESSAGE.format(correlation_id=call.correlation_id)
            ) from None
        if check.error is not None:
            raise MCPError(
                check.error.code,
                f"{check.error.message} (correlation id {call.correlation_id})",
            ) from None
        return await super().get_prompt(name, arguments, context)

    async def read_resource(self, uri: Any, context: Any = None) -> Any:
        text = str(uri)
        if text not in self._service.resource_uris(self._role) and self._service.is_cohort_uri(
            self._role, text
        ):
            # Saved cohorts and cohort jobs: the service audits each read itself.
            content = await anyio.to_thread.run_sync(
                self._service.read_cohort_resource, self._role, text, context
            )
            return [ReadResourceContents(content=content, mime_type=_JSON)]
        call = self._service.new_call(context, "resources/read")
        known = text in self._service.resource_uris(self._role)
        try:
            self._service.audit(
                call, "allow" if known else "deny", "ok" if known else "unknown_resource"
            )
        except AuditWriteError:
            raise ResourceError(
                AUDIT_UNAVAILABLE_MESSAGE.format(correlation_id=call.correlation_id)
            ) from None
        if not known:
            raise ResourceNotFoundError(
                f"Unknown resource; {LISTING_URI} lists the resources"
            ) from None
        return await super().read_resource(uri, context)


class CatalogService:
    """The governed catalog: one policy, one audit log, one server per role."""

    audit_error = AuditWriteError

    def __init__(
        self,
        manifest: Manifest,
        lake: str | Path,
        *,
        policy: Policy,
        audit: AuditLog,
        ledger: QueryLedger | None = None,
        stdio_principal: Principal | None = None,
        storage_options: dict[str, str] | None = None,
        cursor_secret: bytes | None = None,
        lineage: LineageEmitter | None = None,
        cache_entries: int = 256,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """Validate the manifest against the policy and open nothing but the consent tables.

        Args:
            manifest: the validated catalog.
            lake: the lake root (a folder or an object-store URI).
            policy: the access policy the manifest was built under.
            audit: where every call is recorded before data leaves.
            ledger: the aggregate query ledger (in memory when None).
            stdio_principal: who calls when there is no HTTP request (stdio, in-memory).
            storage_options: passed to delta-rs for object stores.
            cursor_secret: HMAC key for paging cursors (at least 16 bytes); random per
                process when None.
            lineage: where each read's OpenLineage event goes (the lake's file by default).
            cache_entries: how many governed answers to keep (0 disables the cache).
            clock: the current time (tests).

        Raises:
            CatalogBuildError: when the manifest was built under another policy version, a
                dataset has no policy or its column classes differ from the policy, a table
                or consent table is missing, or a key names a missing column.
            ValueError: when ``cursor_secret`` is shorter than 16 bytes.
        """
        if manifest.policy_version is not None and manifest.policy_version != policy.version:
            raise CatalogBuildError(
                f"the catalog was built under policy version {manifest.policy_version} but the "
                f"server runs policy version {policy.version}; rebuild the catalog (`make demo`)."
            )
        self.manifest = manifest
        self.policy = policy
        self.lake = lake
        self._audit = audit
        self._ledger = ledger or QueryLedger(None, window=policy.disclosure.ledger_window)
        self._stdio_principal = stdio_principal
        self._cursors = CursorCodec(
            cursor_secret if cursor_secret is not None else secrets.token_bytes(32)
        )
        self._now = clock or (lambda: datetime.now(UTC))
        self._risk = RiskTracker()
        self._cache = _Cache(cache_entries)
        self._workers = concurrent.futures.ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="biofed-query"
        )
        # Lineage events of reads are informational (the audit log is the durable record):
        # one background writer keeps them off the request path.
        self._background = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="biofed-lineage"
        )
        if lineage is not None:
            self._lineage = lineage
        else:
            try:
                self._lineage = LineageEmitter.for_lake(lake, durable=False)
            except ValueError as exc:
                raise CatalogBuildError(
                    "lineage for a lake on object storage goes over HTTP: set OPENLINEAGE_URL"
                ) from exc
        self.datasets: dict[str, GovernedDataset] = {}
        consent: dict[str, ConsentIndex] = {}
        for dataset in manifest.datasets:
            governed = self._govern(dataset, lake, storage_options, consent)
            self.datasets[governed.key] = governed
        self._servers: dict[str, MCPServer] = {}
        self._apps: dict[str, Any] = {}
        self._scopes: dict[str, dict[str, str]] = {}
        self._resources: dict[str, frozenset[str]] = {}
        self._cohort_specs: dict[str, CohortSpec | None] = {}
        self._cohort_store = CohortStore.for_lake(lake)
        self._jobs = _Jobs()

    # -- build ------------------------------------------------------------------------------

    def _govern(
        self,
        dataset: CatalogDataset,
        lake: str | Path,
        storage_options: dict[str, str] | None,
        consent: dict[str, ConsentIndex],
    ) -> GovernedDataset:
        rules = self.policy.dataset(dataset.audience, dataset.name)
        where = f"{dataset.audience}/{dataset.name}"
        if rules is None:
            raise CatalogBuildError(
                f"dataset {where} has no entry in the policy; add it to the policy and rebuild "
                "the catalog."
            )
        declared = {c.name: c.column_class for c in dataset.columns}
        if declared != rules.columns:
            raise CatalogBuildError(
                f"the columns or column classes of dataset {where} differ from the policy; "
                "rebuild the catalog (`make demo`) or correct the policy."
            )
        for name in rules.suppress_below:
            column = dataset.column(name)
            if column is None or column.type not in ("integer", "number"):
                raise CatalogBuildError(
                    f"dataset {where} suppresses rows below a minimum of {name!r}, which is "
                    "not an integer or number column in the catalog; correct suppress_below "
                    "in the policy or the column's type in the view."
                )
        person_level = dataset.column(PERSON_COLUMN) is not None
        if not person_level and any(a.aggregate for a in rules.access.values()):
            raise CatalogBuildError(
                f"dataset {where} grants aggregate access but has no {PERSON_COLUMN} column to "
                "count people by (its rows are already aggregates); remove aggregate access "
                "for it from the policy."
            )
        uri = _table_uri(lake, dataset.path, dataset.name)
        if not DeltaTable.is_deltatable(uri, storage_options=storage_options):
            raise CatalogBuildError(
                f"dataset {dataset.name!r} has no Delta table at {uri}; rebuild the lake "
                "and its catalog (`make demo`)."
            )
        index = None
        if rules.consent and not person_level:
            # An aggregate-level view: consent was applied when it was computed, under the
            # dataset's consent scope. Only a view with nothing tying a row to a person
            # qualifies, so a person-level view missing its pseudonym still fails here.
            tied = [c.name for c in dataset.columns if c.column_class in PERSON_LEVEL_CLASSES]
            if tied or rules.consent_scope is None:
                raise CatalogBuildError(
                    f"dataset {where} is filtered by consent but has no {PERSON_COLUMN}; "
                    "a person-level view needs that column, and an aggregate-level view needs "
                    "a consent_scope in the policy and no pseudonym or identifier column."
                )
        elif rules.consent:
            if dataset.audience not in consent:
                consent_uri = _table_uri(
                    lake, f"gold/{dataset.audience}/{CONSENT_TABLE}", dataset.name
                )
                if not DeltaTable.is_deltatable(consent_uri, storage_options=storage_options):
                    raise CatalogBuildError(
                        f"dataset {where} is filtered by consent but the {dataset.audience} "
                        "consent table is missing; rebuild the lake (`make demo`)."
                    )
                consent[dataset.audience] = ConsentIndex(consent_uri, storage_options)
            index = consent[dataset.audience]
        return GovernedDataset(
            dataset, rules, _PinnedTable(uri, dataset.delta_version, storage_options), uri, index
        )

    @property
    def stdio_role(self) -> str:
        """The role of the configured stdio principal.

        Raises:
            CatalogBuildError: when no stdio principal is configured.
        """
        if self._stdio_principal is None:
            raise CatalogBuildError("no stdio identity is configured")
        return self._stdio_principal.role

    def roles(self) -> list[str]:
        """Every role of the policy, in policy order."""
        return list(self.policy.roles)

    def server_for(self, role: str) -> MCPServer:
        """The MCP server of one role (built once).

        Raises:
            CatalogBuildError: for a role the policy does not define, or a dataset whose
                models cannot be generated.
        """
        if role not in self.policy.roles:
            known = ", ".join(self.policy.roles)
            raise CatalogBuildError(f"unknown role {role!r}; known roles: {known}")
        if role not in self._servers:
            self._servers[role] = self._build(role)
        return self._servers[role]

    def required_scope(self, role: str, tool: str) -> str | None:
        """The scope a tool requires, or None when the role has no such tool."""
        self.server_for(role)
        return self._scopes[role].get(tool)

    def resource_uris(self, role: str) -> frozenset[str]:
        """The resource URIs ``role`` may read."""
        self.server_for(role)
        return self._resources[role]

    def mcp_app(self, role: str) -> Any:
        """The role's streamable-HTTP ASGI app (stateless, JSON responses), built once."""
        if role not in self._apps:
            # Host and Origin are checked by the biofed HTTP front (mcp_catalog.http) against
            # the configured names; the SDK's own check would accept loopback names only.
            self._apps[role] = self.server_for(role).streamable_http_app(
                stateless_http=True,
                json_response=True,
                transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            )
        return self._apps[role]

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Run every role app's session manager (the HTTP app's lifespan)."""
        async with contextlib.AsyncExitStack() as stack:
            for role in self.roles():
                self.mcp_app(role)
                await stack.enter_async_context(self.server_for(role).session_manager.run())
            yield

    def _build(self, role: str) -> MCPServer:
        tools: list[Tool] = []
        scopes: dict[str, str] = {}
        visible: list[GovernedDataset] = []
        for governed in self.datasets.values():
            access = governed.policy.access.get(role)
            if access is not None and (access.rows or access.aggregate):
                visible.append(governed)
        spec = self._cohort_spec(role, visible)
        for governed in visible:
            access = governed.policy.access[role]
            # Saved cohorts filter the tools of the cohort audience's person-level views:
            # aggregates for every cohort role, rows only where members may be listed.
            cohort_view = spec is not None and self._in_cohort_audience(governed)
            if access.rows:
                tool = self._query_tool(
                    governed, role, cohort=cohort_view and self._lists_members(role)
                )
                tools.append(tool)
                scopes[tool.name] = governed.policy.read_scope
            if access.aggregate and governed.policy.aggregation is not None:
                tool = self._aggregate_tool(governed, role, cohort=cohort_view)
                tools.append(tool)
                scopes[tool.name] = governed.policy.aggregate_scope or governed.policy.read_scope
        if spec is not None:
            assert self.policy.cohorts is not None
            tools.append(self._cohort_tool(spec, role))
            scopes[FIND_COHORT] = self.policy.cohorts.scope
        names = [t.name for t in tools]
        if len(set(names)) != len(names):
            raise CatalogBuildError(
                f"two datasets visible to role {role!r} share a name; dataset names must be "
                "unique across the audiences of a role."
            )
        if self.policy.audit_scope in self.policy.roles[role].scopes:
            from mcp_catalog.audit_tools import audit_tools

            for tool in audit_tools(self):
                tools.append(tool)
                scopes[tool.name] = self.policy.audit_scope
        resources = self._resources_for(role, visible)
        self._scopes[role] = scopes
        self._resources[role] = frozenset(str(r.uri) for r in resources)
        server = _CatalogServer(
            SERVER_NAME,
            service=self,
            role=role,
            title="biofed catalog",
            instructions=(
                f"Read-only, governed access to the biofed lake for the {role} role: "
                f"{len(visible)} datasets, each with a data card resource listed at "
                f"{LISTING_URI}. Every call is checked against the access policy and audited."
            ),
            version=_server_version(),
            tools=tools,
            resources=resources,
            prompts=catalog_prompts(visible, role, cohort_tool=spec is not None),
            log_level="WARNING",
        )
        if spec is not None:
            self._add_cohort_templates(server, role)
        return server

    def _resources_for(self, role: str, visible: list[GovernedDataset]) -> list[TextResource]:
        resources = [
            TextResource(
                uri=LISTING_URI,
                name="datasets",
                title="Datasets",
                description="Datasets offered to this role: name, title, description, tools, "
                "row count, Delta version, last materialisation.",
                mime_type=_JSON,
                text=_json([_listing_entry(g, role) for g in visible]),
            )
        ]
        resources += [
            TextResource(
                uri=card_uri(g.dataset),
                name=f"{g.dataset.name}_card",
                title=f"{g.dataset.title} (data card)",
                description=f"Data card of {g.dataset.name}: columns this role sees, policy, "
                "owner, freshness, quality and lineage.",
                mime_type=_JSON,
                text=_json(data_card(g, role)),
            )
            for g in visible
        ]
        return resources

    # -- principals, audit ------------------------------------------------------------------

    def new_call(self, context: Any, action: str, **fields: Any) -> _Call:
        """The audit context of one call: its principal, and the correlation id the HTTP
        front already gave the request (so the header names this call's audit record)."""
        call = _Call(self.principal_of(context), action, **fields)
        request = None
        with contextlib.suppress(Exception):
            request = context.request_context.request
        correlation = getattr(request, "scope", {}).get(CORRELATION_SCOPE_KEY) if request else None
        if isinstance(correlation, str) and re.fullmatch(r"[0-9a-f]{32}", correlation):
            call.correlation_id = correlation
        return call

    def principal_of(self, context: Any) -> Principal | None:
        """Who is calling: the verified principal of an HTTP request, else the configured
        stdio principal; None when neither exists (the call is refused)."""
        request = None
        if context is not None:
            with contextlib.suppress(Exception):
                request = context.request_context.request
        if request is not None:
            principal = getattr(request, "scope", {}).get(PRINCIPAL_SCOPE_KEY)
            return principal if isinstance(principal, Principal) else None
        return self._stdio_principal

    @staticmethod
    def _who(principal: Principal | None) -> dict[str, Any]:
        """The identity fields of an audit record."""
        p = principal
        return {
            "transport": p.transport if p else "stdio",
            "principal": p.subject if p else None,
            "client_id": p.client_id if p else None,
            "role": p.role if p else None,
            "purpose": p.purpose if p else None,
            "protocol": p.protocol if p else None,
        }

    def audit(self, call: _Call, decision: str, reason: str, *, detail: str | None = None) -> None:
        """Append the audit record of one call (raises :class:`AuditWriteError`)."""
        self._audit.append(
            AuditEvent(
                correlation_id=call.correlation_id,
                **self._who(call.principal),
                action=call.action,
                dataset=call.dataset,
                arguments=call.arguments,
                decision=decision,  # type: ignore[arg-type]
                reason=reason,
                rows=call.rows,
                columns=call.columns,
                masked_columns=call.masked,
                result_sha256=call.result_sha256,
                subjects=call.subjects,
                risk_score=call.risk_score,
                risk_reasons=call.risk_reasons,
                break_glass=call.break_glass,
                cached=call.cached,
                delta_version=call.delta_version,
                duration_ms=round((time.perf_counter() - call.started) * 1000, 3),
                detail=detail,
            )
        )

    def audit_http(
        self,
        *,
        correlation_id: str,
        action: str,
        decision: str,
        reason: str,
        http_status: int,
        principal: Principal | None = None,
        subject: str | None = None,
        client_id: str | None = None,
    ) -> None:
        """Append the audit record of an HTTP-level decision (a refusal, or a protocol
        request that reached no tool). Raises :class:`AuditWriteError`."""
        self._audit.append(
            AuditEvent(
                kind="http_refusal" if decision != "allow" else "request",
                correlation_id=correlation_id,
                transport="http",
                principal=principal.subject if principal else subject,
                client_id=principal.client_id if principal else client_id,
                role=principal.role if principal else None,
                purpose=principal.purpose if principal else None,
                protocol=principal.protocol if principal else None,
                action=action,
                decision=decision,  # type: ignore[arg-type]
                reason=reason,
                http_status=http_status,
            )
        )

    def append_event(self, event: AuditEvent) -> None:
        """Append a prepared audit event (reviews, alerts)."""
        self._audit.append(event)

    @property
    def audit_log(self) -> AuditLog:
        """The audit log (for the compliance tools)."""
        return self._audit

    # -- the gate ---------------------------------------------------------------------------

    def _run(
        self,
        call: _Call,
        governed: GovernedDataset | None,
        scope: str,
        body: Callable[[_Call], BaseModel],
    ) -> CallToolResult:
        """Check who is calling, run ``body`` and audit the outcome, failing closed."""
        try:
            self._authorise(call, governed, scope)
            result = self._within_deadline(call, body)
        except Denied as denied:
            self._risk.denied(call.principal.key if call.principal else "anonymous")
            self._refuse(call, denied)
        except ToolError:
            raise
        except Exception:
            # The exception text may hold a path, a value or internals: it stays in the log.
            logger.exception("%s failed; correlation id %s", call.action, call.correlation_id)
            with contextlib.suppress(AuditWriteError):
                self.audit(call, "error", "internal_error")
            raise ToolError(
                INTERNAL_ERROR_MESSAGE.format(correlation_id=call.correlation_id)
            ) from None
        try:
            self.audit(call, "allow", call.reason)
            if call.break_glass is not None:
                # After the release record, so a review never exists for data not released.
                self._review(call)
        except AuditWriteError:
            logger.error("audit write failed; correlation id %s", call.correlation_id)
            if call.after_audit is not None:
                call.after_audit(False)
            raise ToolError(
                AUDIT_UNAVAILABLE_MESSAGE.format(correlation_id=call.correlation_id)
            ) from None
        if call.after_audit is not None:
            call.after_audit(True)
        return _tool_result(result)

    def _read_lineage(self, job: str, uri: str, version: int) -> None:
        """Record that an agent read a view version (names the view, never the arguments)."""

        def emit() -> None:
            try:
                self._lineage.read(job=job, dataset=LineageDataset(uri=uri, version=str(version)))
            except Exception:
                logger.exception("lineage event of %s could not be written", job)

        self._background.submit(emit)

    def flush_lineage(self) -> None:
        """Wait until every queued lineage event is written (tests, shutdown)."""
        self._background.submit(lambda: None).result()

    def _within_deadline(self, call: _Call, body: Callable[[_Call], BaseModel]) -> BaseModel:
        """Run ``body`` but answer no later than the policy's query timeout.

        A polars query cannot be interrupted, so a late one finishes in the background and its
        result is dropped: the caller gets a refusal, the audit record says ``timeout``, and no
        data from it ever leaves.
        """
        future = self._workers.submit(body, call)
        try:
            return future.result(timeout=self.policy.limits.query_timeout_seconds)
        except concurrent.futures.TimeoutError:
            raise Denied(
                "timeout",
                f"the query did not finish within {self.policy.limits.query_timeout_seconds:g} s "
                "and was stopped; narrow it with filters or a smaller limit",
            ) from None

    def _refuse(self, call: _Call, denied: Denied) -> None:
        try:
            self.audit(call, "deny", denied.reason)
            if denied.reason.startswith("break_glass"):
                self._alert(call, denied.reason)
        except AuditWriteError:
            raise ToolError(
                AUDIT_UNAVAILABLE_MESSAGE.format(correlation_id=call.correlation_id)
            ) from None
        raise ToolError(f"{denied.message} (correlation id {call.correlation_id})") from None

    def _side_record(
        self, call: _Call, kind: str, decision: str, reason: str, **extra: Any
    ) -> None:
        """A record beside a call's own: a security alert, or a break-glass review item."""
        self._audit.append(
            AuditEvent(
                kind=kind,  # type: ignore[arg-type]
                correlation_id=call.correlation_id,
                **self._who(call.principal),
                action=call.action,
                dataset=call.dataset,
                decision=decision,  # type: ignore[arg-type]
                reason=reason,
                **extra,
            )
        )

    def _alert(self, call: _Call, reason: str) -> None:
        self._side_record(
            call,
            "security_alert",
            "deny",
            reason,
            risk_score=max(call.risk_score, self.policy.risk.refuse_at),
            risk_reasons=call.risk_reasons,
            detail="A break-glass claim that does not qualify was presented.",
        )

    def _authorise(self, call: _Call, governed: GovernedDataset | None, scope: str) -> None:
        principal = call.principal
        if principal is None:
            raise Denied("no_principal", "the caller could not be identified")
        if principal.break_glass_problem is not None:
            # A claim that does not qualify is refused wherever it is presented, and reported.
            self._score(call, RiskFeatures(break_glass_invalid=True))
            raise Denied(
                principal.break_glass_problem,
                "the break-glass claim of this token is not valid; this was reported",
            )
        if scope not in principal.scopes:
            raise Denied("insufficient_scope", f"this tool requires the scope {scope}")
        if governed is None:
            return
        rules = governed.policy
        if principal.purpose not in rules.purposes:
            call.risk_score, reasons = self._score(call, RiskFeatures(purpose_mismatch=True))
            raise Denied(
                "purpose_not_allowed",
                f"the purpose of use {principal.purpose} is not allowed for this dataset; "
                f"allowed purposes: {', '.join(rules.purposes)}",
            )
        access = rules.access.get(principal.role)
        if access is not None and access.break_glass_only and call.action.startswith("query_"):
            grant = principal.break_glass
            if grant is None:
                raise Denied(
                    "break_glass_required",
                    "identified records are released only under a break-glass grant",
                )
            if not grant.active(self._now()):
                raise Denied("break_glass_expired", "the break-glass grant is not active now")

    def _score(self, call: _Call, features: RiskFeatures) -> tuple[int, list[str]]:
        key = call.principal.key if call.principal else "anonymous"
        scored = self._risk.score(key, features)
        call.risk_score = scored.score
        call.risk_reasons = list(scored.reasons)
        return scored.score, list(scored.reasons)

    def _check_risk(self, call: _Call, features: RiskFeatures) -> None:
        score, _ = self._score(call, features)
        if score >= self.policy.risk.refuse_at:
            raise Denied(
                "risk_threshold",
                "the request was refused as high risk and reported; narrow it or ask a "
                "compliance officer",
            )

    def _consented(
        self, governed: GovernedDataset, principal: Principal
    ) -> tuple[int, pl.Series | None]:
        """The consent version and the permitted pseudonyms (None: no consent filter).

        Raises:
            Denied: when the view carries its consent from when it was built (no person
                column) and the purpose requires another consent scope than that one.
        """
        rules = governed.policy
        purpose_scope = self.policy.purposes[principal.purpose].consent_scope
        if rules.consent and not governed.person_level:
            # No rows to filter: the view was computed only over people whose consent covered
            # its consent scope. A purpose that needs another scope cannot be served from it.
            if purpose_scope is not None and purpose_scope != rules.consent_scope:
                raise Denied(
                    "consent_scope_mismatch",
                    f"this dataset was computed under the {rules.consent_scope} consent scope, "
                    f"which does not cover the purpose of use {principal.purpose}",
                )
            return -1, None
        # The purpose's own consent scope, else the one the view was materialised under: a
        # revocation then reaches every purpose on the next call, not the next run.
        scope = purpose_scope or rules.consent_scope
        if governed.consent is None or scope is None:
            return -1, None
        return governed.consent.permitted(scope)

    @staticmethod
    def _study_consent(governed: GovernedDataset) -> list[pl.Expr]:
        """The filter of a trial view (a person-level view with a ``study_id`` column) that
        drops the rows of people who withdrew consent from their study, as the consent
        table says now: a withdrawal counts from the next call, not the next run."""
        if governed.consent is None or governed.dataset.column(STUDY_COLUMN) is None:
            return []
        return [governed.consent.study_filter()]

    # -- query tools ------------------------------------------------------------------------

    def _query_tool(self, governed: GovernedDataset, role: str, *, cohort: bool = False) -> Tool:
        view = governed.role_view(role)
        try:
            query = DatasetQuery.for_dataset(view, cohort=cohort)
        except ValueError as exc:
            raise CatalogBuildError(f"{exc}; rebuild the catalog (`make demo`).") from exc
        masked = governed.masked(role)
        rules = governed.policy
        classes = {c.name: c.column_class for c in governed.dataset.columns}
        free_text = {n for n, k in classes.items() if k == "free_text"}
        text_columns = {c.name for c in view.columns if c.type == "string"}
        system_columns = {c for c in text_columns if c.endswith("system")}
        suppression = governed.suppression()
        name = tool_name(view)

        def body(call: _Call, arguments: dict[str, Any]) -> BaseModel:
            principal = call.principal
            assert principal is not None
            try:
                parsed = query.parse(arguments)
            except QueryError as exc:
                raise Denied("validation_error", str(exc)) from None
            selected = query.selected(parsed)
            limit: int = parsed.limit  # type: ignore[attr-defined]
            grant = principal.break_glass if rules.access[role].break_glass_only else None
            # Under a grant, identifiers are what break-glass is for: its own weight (at the
            # alert threshold) stands in for them, so every use is listed but a normal one passes.
            self._check_risk(
                call,
                RiskFeatures(
                    direct_identifiers=0
                    if grant
                    else sum(classes[c] == "direct_identifier" for c in selected),
                    quasi_identifiers=0
                    if grant
                    else sum(classes[c] == "quasi_identifier" for c in selected),
                    rows_requested=limit,
                    break_glass=grant is not None,
                ),
            )
            saved = self._cohort_filter(call, role, getattr(parsed, "cohort", None), rows=True)
            cohort_version = saved.uri if saved is not None else ""
            # Cursors are bound to the caller as well as to the query (and to the version of
            # a saved cohort named by its latest version).
            query_hash = query_fingerprint(
                "\x00".join(
                    (
                        query.canonical(parsed),
                        principal.key,
                        principal.role,
                        principal.purpose,
                        cohort_version,
                    )
                )
            )
            offset = 0
            cursor = parsed.cursor  # type: ignore[attr-defined]
            if cursor is not None:
                try:
                    offset = self._cursors.decode(
                        cursor,
                        dataset=view.name,
                        delta_version=view.delta_version,
                        query_hash=query_hash,
                    )
                except CursorError as exc:
                    raise Denied("invalid_cursor", str(exc)) from None
            consent_version, consented = self._consented(governed, principal)
            cache_key = None
            if grant is None:
                cache_key = _fingerprint(
                    [
                        governed.key,
                        view.delta_version,
                        consent_version,
                        query.canonical(parsed),
                        cohort_version,
                        offset,
                        principal.role,
                        principal.purpose,
                    ]
                )
                hit = self._cache.get(cache_key)
                if hit is not None:
                    cached, subjects, rows, digest = hit
                    call.cached = True
                    return self._finish_query(
                        call,
                        cached.model_copy(update={"correlation_id": call.correlation_id}),
                        subjects,
                        rows,
                        digest,
                        selected,
                        masked,
                    )
            frame, schema = governed.table.scan()
            # Thresholds first: a row below one never reaches a filter, a sort or a page.
            if suppression:
                frame = frame.filter(*suppression)
            if consented is not None:
                frame = frame.filter(
                    pl.col(PERSON_COLUMN).is_in(consented.implode()),
                    *self._study_consent(governed),
                )
            if saved is not None:
                frame = frame.filter(pl.col(PERSON_COLUMN).is_in(saved.members))
            if grant is not None:
                frame = frame.filter(pl.col(rules.subject_column) == grant.patient)
            # The people behind the rows are recorded for the accounting of disclosures,
            # whether or not the caller selected the pseudonym column.
            extra = (
                [PERSON_COLUMN] if PERSON_COLUMN in schema and PERSON_COLUMN not in selected else []
            )
            planned = (
                _plan_with(query, frame, schema, parsed, offset, extra)
                if extra
                else query.plan(frame, schema, parsed, offset)
            )
            window = planned.collect()
            page_frame = window.head(limit)
            rows = rows_as_json(page_frame.select(selected), view)
            trusted = system_columns & set(selected)
            if trusted:
                stats = SafetyStats()
                for row in rows:
                    for column in trusted:
                        value = row[column]
                        if value is not None and not _TERMINOLOGY.fullmatch(value):
                            row[column] = clean_text(value, stats)
            shaped = shape_rows(
                rows,
                text_columns=(text_columns - system_columns) & set(selected),
                free_text_columns=free_text & set(selected),
                max_field_chars=rules.max_field_chars or self.policy.limits.max_field_chars,
                max_bytes=self.policy.limits.max_page_bytes,
            )
            kept = len(shaped.rows)
            more = window.height > limit or shaped.truncated
            next_cursor = (
                self._cursors.encode(
                    dataset=view.name,
                    delta_version=view.delta_version,
                    query_hash=query_hash,
                    offset=offset + kept,
                )
                if more and kept > 0
                else None
            )
            # The people whose rows left (a byte cap may have kept fewer than the window).
            subjects = (
                page_frame.head(kept)
                .get_column(PERSON_COLUMN)
                .drop_nulls()
                .unique()
                .sort()
                .to_list()
                if PERSON_COLUMN in page_frame.columns
                else []
            )
            tag = None
            if grant is not None:
                tag = BreakGlassTag(
                    patient=grant.patient,
                    reason=grant.reason,
                    expires=grant.expires,
                    notice="Released under a break-glass grant: identified data of one patient, "
                    "for treatment only. This access is logged and reviewed.",
                )
                call.break_glass = {
                    "patient": _patient_reference(grant.patient),
                    "reason": grant.reason,
                    "expires": grant.expires.isoformat(),
                }
            result = query.page(
                shaped.rows,
                truncated=more,
                next_cursor=next_cursor,
                freshness=current_freshness(view, now=self._now()),
                correlation_id=call.correlation_id,
                masked_columns=masked,
                untrusted_columns=sorted(free_text & set(selected)),
                flagged_columns=shaped.flagged_columns,
                break_glass=tag,
            )
            digest, size = _fingerprint_and_size(shaped.rows)
            if cache_key is not None and not shaped.flagged_columns:
                self._cache.put(cache_key, (result, subjects, kept, digest), size)
            self._read_lineage(f"mcp.{name}", governed.table_uri, view.delta_version)
            return self._finish_query(call, result, subjects, kept, digest, selected, masked)

        def run_query(arguments: dict[str, Any], ctx: Context) -> CallToolResult:
            call = self.new_call(
                ctx,
                name,
                dataset=governed.key,
                arguments=redact_arguments(arguments),
                delta_version=view.delta_version,
            )
            return self._run(call, governed, rules.read_scope, lambda c: body(c, arguments))

        return _tool(
            run_query,
            name,
            title=view.title,
            description=_describe(view, masked, rules, person_level=governed.person_level),
            parameters=query.input_schema(),
            arg_model=query.arguments_model,
            result_model=query.result_model,
            output_schema=query.output_schema(),
        )

    def _finish_query(
        self,
        call: _Call,
        result: BaseModel,
        subjects: list[str],
        rows: int,
        digest: str,
        selected: list[str],
        masked: list[str],
    ) -> BaseModel:
        call.rows = rows
        call.columns = selected
        call.masked = masked
        call.subjects = subjects[: self.policy.limits.audit_subjects_cap]
        call.result_sha256 = digest
        return result

    def _review(self, call: _Call) -> None:
        self._side_record(
            call,
            "break_glass_review",
            "allow",
            "break_glass_review",
            break_glass=call.break_glass,
            detail="Identified data was released under a break-glass grant; review the reason "
            "against the care record.",
        )

    # -- aggregate tools --------------------------------------------------------------------

    def _aggregate_tool(
        self, governed: GovernedDataset, role: str, *, cohort: bool = False
    ) -> Tool:
        rules = governed.policy
        assert rules.aggregation is not None
        try:
            spec = AggregateQuery.for_dataset(governed.dataset, rules.aggregation, cohort=cohort)
        except ValueError as exc:
            raise CatalogBuildError(f"{exc}; correct the policy's aggregation.") from exc
        dataset = governed.dataset
        name = aggregate_tool_name(dataset)
        k = rules.min_cell_size
        suppression = governed.suppression()

        def body(call: _Call, arguments: dict[str, Any]) -> BaseModel:
            principal = call.principal
            assert principal is not None
            try:
                parsed = spec.parse(arguments)
            except QueryError as exc:
                raise Denied("validation_error", str(exc)) from None
            group_by: list[str] = list(parsed.group_by)  # type: ignore[attr-defined]
            measures = [Measure(m.column, m.stat) for m in getattr(parsed, "measures", None) or ()]
            self._check_risk(call, RiskFeatures())
            saved = self._cohort_filter(call, role, getattr(parsed, "cohort", None), rows=False)
            _, consented = self._consented(governed, principal)
            frame, schema = governed.table.scan()
            if suppression:
                frame = frame.filter(*suppression)
            if consented is not None:
                frame = frame.filter(
                    pl.col(PERSON_COLUMN).is_in(consented.implode()),
                    *self._study_consent(governed),
                )
            if saved is not None:
                frame = frame.filter(pl.col(PERSON_COLUMN).is_in(saved.members))
            conditions = spec.conditions(parsed, schema)
            if conditions:
                frame = frame.filter(*conditions)
            needed = list(dict.fromkeys([PERSON_COLUMN, *group_by, *(m.column for m in measures)]))
            collected = frame.select(needed).collect()
            try:
                outcome = aggregate(
                    collected,
                    group_by=group_by,
                    measures=measures,
                    min_cell=k,
                    max_cells=self.policy.disclosure.max_group_cells,
                )
            except ValueError as exc:
                raise Denied("validation_error", str(exc)) from None
            decision = self._ledger.check_and_record(
                principal.key, governed.key, outcome.population, min_difference=k
            )
            if not decision.allowed:
                self._score(call, RiskFeatures(near_duplicate_population=True))
                raise Denied(
                    "differencing_suspected",
                    f"this aggregate differs from an earlier one of yours by fewer than {k} "
                    "people, which could single someone out; it was refused and reported",
                )
            self._read_lineage(f"mcp.{name}", governed.table_uri, dataset.delta_version)
            result = spec.result_model.model_validate(
                {
                    "cells": outcome.cells,
                    "total_people": outcome.total_people,
                    "total_records": outcome.total_records,
                    "min_cell_size": k,
                    "suppressed_cells": outcome.suppressed_cells,
                    "complementary_cells": outcome.complementary_cells,
                    "delta_version": dataset.delta_version,
                    "as_of": dataset.last_materialized.isoformat(),
                    "freshness": current_freshness(dataset, now=self._now()),
                    "correlation_id": call.correlation_id,
                }
            )
            call.rows = len(outcome.cells)
            call.columns = [*group_by, *(f"{m.stat}_{m.column}" for m in measures)]
            call.result_sha256 = _fingerprint(result.model_dump(mode="json")["cells"])
            return result

        def run_aggregate(arguments: dict[str, Any], ctx: Context) -> CallToolResult:
            call = self.new_call(
                ctx,
                name,
                dataset=governed.key,
                arguments=redact_arguments(arguments),
                delta_version=dataset.delta_version,
            )
            return self._run(
                call,
                governed,
                rules.aggregate_scope or rules.read_scope,
                lambda c: body(c, arguments),
            )

        dims = ", ".join(rules.aggregation.dimensions)
        description = (
            f"{dataset.description.strip()}\n\nCounts of people and records in {dataset.name}, "
            f"grouped by up to three of: {dims}. Groups with fewer than {k} people are "
            "suppressed, with complementary suppression so they cannot be derived from the "
            "total."
        )
        if rules.aggregation.measures:
            description += (
                f" Mean, median and quartiles of {', '.join(rules.aggregation.measures)} are "
                "given for large enough groups."
            )
        extra = _genomic_lines(dataset.region, rules)
        if extra:
            description += "\n\n" + "\n".join(extra)
        return _tool(
            run_aggregate,
            name,
            title=f"{dataset.title} (aggregates)",
            description=description,
            parameters=spec.input_schema(),
            arg_model=spec.arguments_model,
            result_model=spec.result_model,
            output_schema=spec.output_schema(),
        )

    # -- cohorts ------------------------------------------------------------------------------

    def _in_cohort_audience(self, governed: GovernedDataset) -> bool:
        cohorts = self.policy.cohorts
        return (
            cohorts is not None
            and governed.dataset.audience == cohorts.audience
            and governed.person_level
        )

    def _lists_members(self, role: str) -> bool:
        """Whether the policy lets ``role`` receive cohort members' pseudonyms at all."""
        cohorts = self.policy.cohorts
        grant = cohorts.roles.get(role) if cohorts is not None else None
        return grant is not None and grant.pseudonyms

    def _cohort_spec(self, role: str, visible: list[GovernedDataset]) -> CohortSpec | None:
        """The cohort tool of ``role``, or None when the policy or the catalog offers none."""
        if role in self._cohort_specs:
            return self._cohort_specs[role]
        cohorts = self.policy.cohorts
        spec = None
        if cohorts is not None and role in cohorts.roles:
            views = {g.dataset.name: g.dataset for g in visible if self._in_cohort_audience(g)}
            try:
                spec = CohortSpec.for_views(
                    views, audience=cohorts.audience, max_criteria=cohorts.max_criteria
                )
            except ValueError as exc:
                raise CatalogBuildError(f"{exc}; rebuild the catalog (`make demo`).") from exc
        self._cohort_specs[role] = spec
        return spec

    def is_cohort_uri(self, role: str, uri: str) -> bool:
        """Whether ``uri`` is in the cohort schemes and ``role`` has the cohort tool (its reads
        are then answered and audited by :meth:`read_cohort_resource`)."""
        self.server_for(role)
        return self._cohort_specs.get(role) is not None and uri.startswith(_COHORT_SCHEMES)

    def _cohort_governed(self, view: str) -> GovernedDataset | None:
        cohorts = self.policy.cohorts
        return None if cohorts is None else self.datasets.get(f"{cohorts.audience}/{view}")

    def _listing_problem(
        self, principal: Principal, role: str, columns: dict[str, list[str]]
    ) -> str | None:
        """Why members of a cohort read from ``columns`` may not be listed to the caller
        (a fixed sentence), or None when they may."""
        if not self._lists_members(role):
            return "this role receives cohort counts only, never members' pseudonyms"
        for view, names in columns.items():
            governed = self._cohort_governed(view)
            access = governed.policy.access.get(role) if governed is not None else None
            if governed is None or access is None or not access.rows:
                return (
                    f"members cannot be listed for a cohort defined on {view}, whose rows this "
                    "role may only count"
                )
            if not set(names) <= set(governed.policy.visible_columns(role)):
                return (
                    f"members cannot be listed for a cohort defined on columns of {view} "
                    "withheld from this role"
                )
            if governed.policy.read_scope not in principal.scopes:
                return f"listing members requires the scope {governed.policy.read_scope}"
        return None

    def _load_cohort(self, reference: str) -> SavedCohort:
        """A saved cohort by ``name`` or ``name@version`` (raises :class:`Denied`)."""
        unknown = Denied(
            "unknown_cohort",
            "no saved cohort has that name (and version); cohort takes a saved cohort's name "
            "or name@version",
        )
        try:
            name, version = parse_reference(reference)
        except ValueError:
            raise unknown from None
        if self._cohort_store is None:
            raise unknown
        try:
            saved = self._cohort_store.load(name, version)
        except CohortIntegrityError:
            logger.error("saved cohort %s failed its integrity check", name)
            raise Denied(
                "cohort_integrity",
                "the saved cohort failed its integrity check and was not used; report it to "
                "the data stewards",
            ) from None
        cohorts = self.policy.cohorts
        if saved is None or cohorts is None or saved.audience != cohorts.audience:
            raise unknown
        return saved

    def _cohort_filter(
        self, call: _Call, role: str, reference: str | None, *, rows: bool
    ) -> SavedCohort | None:
        """The saved cohort a query or aggregate names, checked for this caller."""
        if reference is None:
            return None
        principal = call.principal
        assert principal is not None
        saved = self._load_cohort(reference)
        self._check_cohort_purpose(principal, saved.datasets)
        if rows:
            problem = self._listing_problem(principal, role, saved.columns)
            if problem is not None:
                raise Denied(
                    "cohort_not_disclosable",
                    f"this cohort cannot select rows for this caller: {problem}",
                )
        return saved

    def _check_cohort_purpose(self, principal: Principal, views: list[str]) -> None:
        for view in views:
            governed = self._cohort_governed(view)
            if governed is None:
                raise Denied(
                    "unknown_cohort",
                    "the saved cohort was defined on a view this catalog no longer serves",
                )
            if principal.purpose not in governed.policy.purposes:
                raise Denied(
                    "purpose_not_allowed",
                    f"the purpose of use {principal.purpose} is not allowed for {view}; "
                    f"allowed purposes: {', '.join(governed.policy.purposes)}",
                )

    def _cohort_tool(self, spec: CohortSpec, role: str) -> Tool:
        cohorts = self.policy.cohorts
        assert cohorts is not None
        grant = cohorts.roles[role]
        governed = {name: self._cohort_governed(name) for name in spec.views}
        min_cell = max(g.policy.min_cell_size for g in governed.values() if g is not None)

        def body(call: _Call, arguments: dict[str, Any], progress: Progress | None) -> BaseModel:
            principal = call.principal
            assert principal is not None
            try:
                parsed = spec.parse(arguments)
            except QueryError as exc:
                raise Denied("validation_error", str(exc)) from None
            count = spec.criteria_count(parsed)
            if count > cohorts.max_criteria:
                raise Denied(
                    "too_many_criteria",
                    f"a cohort may have at most {cohorts.max_criteria} criteria (each list entry, "
                    f"age and sex count one); this one has {count}",
                )
            steps = spec.steps(parsed)
            views = views_used(steps)
            columns = columns_used(steps)
            call.columns = [f"{view}.{name}" for view, names in columns.items() for name in names]
            self._check_cohort_purpose(principal, views)
            unblinded = self.policy.unblinded_studies()
            if any(study not in unblinded for study in spec.arms_asked(parsed)):
                raise Denied("blinded_arm", BLINDED_ARM_MESSAGE)
            pseudonyms = parsed.output == "pseudonyms"  # type: ignore[attr-defined]
            if pseudonyms:
                problem = self._listing_problem(principal, role, columns)
                if problem is not None:
                    raise Denied("pseudonyms_not_allowed", f"{problem}; ask for a count")
            if parsed.save_as is not None:  # type: ignore[attr-defined]
                if not grant.save:
                    raise Denied("save_not_allowed", "this role may not save cohorts")
                if self._cohort_store is None:
                    raise Denied(
                        "save_unavailable", "cohorts can be saved only in a lake on local disk"
                    )
            self._check_risk(call, RiskFeatures())

            def answer(job_call: _Call, report: Progress | None) -> BaseModel:
                return self._cohort_answer(
                    job_call, spec, parsed, steps, principal, role, min_cell, report
                )

            if parsed.background:  # type: ignore[attr-defined]
                return self._start_cohort_job(call, spec, principal, answer)
            return answer(call, progress)

        async def run_find_cohort(arguments: dict[str, Any], ctx: Context) -> CallToolResult:
            call = self.new_call(
                ctx,
                FIND_COHORT,
                dataset=f"{cohorts.audience}/{FIND_COHORT}",
                arguments=redact_arguments(arguments),
            )
            token = anyio.lowlevel.current_token()

            def progress(done: int, total: int, message: str) -> None:
                # Sent only when the client asked for progress; a client that has gone away
                # does not stop the count.
                try:
                    anyio.from_thread.run(ctx.report_progress, done, total, message, token=token)
                except Exception:
                    logger.debug("progress of %s not delivered", call.correlation_id)

            return await anyio.to_thread.run_sync(
                self._run, call, None, cohorts.scope, lambda c: body(c, arguments, progress)
            )

        return _tool(
            run_find_cohort,
            FIND_COHORT,
            title="Cohort across research views",
            description=_cohort_description(spec, grant, cohorts, min_cell),
            parameters=spec.input_schema(),
            arg_model=spec.arguments_model,
            result_model=spec.output_model(),
            output_schema=spec.output_schema(),
            is_async=True,
            read_only=not grant.save,
            idempotent=not grant.save,
        )

    def _cohort_answer(
        self,
        call: _Call,
        spec: CohortSpec,
        parsed: BaseModel,
        steps: list[Any],
        principal: Principal,
        role: str,
        min_cell: int,
        progress: Progress | None,
    ) -> BaseModel:
        """Read every view the criteria need (thresholds, consent at its latest version),
        evaluate the cohort and shape the answer; saves the cohort when asked."""
        cohorts = self.policy.cohorts
        assert cohorts is not None
        views = views_used(steps)
        governed = {view: self._cohort_governed(view) for view in views}
        consent: dict[str, pl.Series | None] = {}
        consent_version = -1
        for view, dataset in governed.items():
            assert dataset is not None
            version, consent[view] = self._consented(dataset, principal)
            consent_version = max(consent_version, version)

        def scan(view: str) -> pl.LazyFrame:
            dataset = governed[view]
            assert dataset is not None
            frame, _ = dataset.table.scan()
            suppression = dataset.suppression()
            if suppression:
                frame = frame.filter(*suppression)
            permitted = consent[view]
            if permitted is not None:
                frame = frame.filter(
                    pl.col(PERSON_COLUMN).is_in(permitted.implode()),
                    *self._study_consent(dataset),
                )
            return frame

        try:
            members = evaluate(steps, scan, progress=progress)
        except CohortRefusal as refusal:
            raise Denied(refusal.reason, refusal.message) from None
        pseudonyms = parsed.output == "pseudonyms"  # type: ignore[attr-defined]
        name: str | None = parsed.save_as  # type: ignore[attr-defined]
        if (pseudonyms or name is not None) and len(members) > cohorts.max_members:
            raise Denied(
                "too_many_members",
                f"the cohort has more than {cohorts.max_members} members, the most that may be "
                "listed or saved; narrow the criteria, or ask for a count without saving",
            )
        if not pseudonyms:
            self._check_cohort_differencing(call, principal, members, min_cell)
        released = pseudonyms or len(members) >= min_cell
        versions = {view: g.dataset.delta_version for view, g in governed.items() if g}
        datasets = [g.dataset for g in governed.values() if g is not None]
        answer: dict[str, Any] = {
            "count": len(members) if released else None,
            "suppressed": not released,
            "min_cell_size": min_cell,
            "datasets": views,
            "delta_versions": versions,
            "as_of": min(d.last_materialized for d in datasets).isoformat(),
            "freshness": max(
                (current_freshness(d, now=self._now()) for d in datasets),
                key=_FRESHNESS_ORDER.index,
            ),
            "correlation_id": call.correlation_id,
        }
        if pseudonyms:
            answer["people"] = members
        if name is not None:
            assert self._cohort_store is not None
            try:
                saved = self._cohort_store.save(
                    name,
                    created_at=self._now(),
                    audience=cohorts.audience,
                    created_by_role=role,
                    purpose=principal.purpose,
                    definition=spec.definition(parsed),
                    datasets=views,
                    columns=columns_used(steps),
                    delta_versions=versions,
                    consent_version=consent_version,
                    min_cell_size=min_cell,
                    members=members,
                )
            except CohortIntegrityError:
                logger.error("saved cohort %s failed its integrity check", name)
                raise Denied(
                    "cohort_integrity",
                    "the latest version of that saved cohort failed its integrity check, so "
                    "no new version was saved; report it to the data stewards",
                ) from None
            answer["cohort"] = {"name": saved.name, "version": saved.version, "uri": saved.uri}
        for dataset in governed.values():
            assert dataset is not None
            self._read_lineage(
                f"mcp.{FIND_COHORT}", dataset.table_uri, dataset.dataset.delta_version
            )
        result = spec.result_model.model_validate(answer)
        call.rows = len(members) if pseudonyms else 0
        call.subjects = members[: self.policy.limits.audit_subjects_cap] if pseudonyms else []
        call.result_sha256 = _fingerprint(result.model_dump(mode="json"))
        return result

    # -- background cohorts --------------------------------------------------------------------

    def _start_cohort_job(
        self,
        call: _Call,
        spec: CohortSpec,
        principal: Principal,
        answer: Callable[[_Call, Progress | None], BaseModel],
    ) -> BaseModel:
        cohorts = self.policy.cohorts
        assert cohorts is not None
        owner = _job_owner(principal)
        job = _Job(secrets.token_hex(16), owner, call.correlation_id, time.monotonic())
        if not self._jobs.add(
            job, limit=cohorts.max_running_jobs, timeout=cohorts.job_timeout_seconds
        ):
            raise Denied(
                "too_many_jobs",
                f"at most {cohorts.max_running_jobs} background cohorts may run at once per "
                "caller; wait for one to finish",
            )
        # The job's own record (its outcome) shares the call's correlation id.
        job_call = dataclasses.replace(call, started=time.perf_counter())
        call.reason = "job_started"

        def start(recorded: bool) -> None:
            if not recorded:
                self._jobs.finish(job.id, "failed")
                return
            try:
                self._workers.submit(self._run_cohort_job, job, job_call, answer)
            except RuntimeError:  # the service is shutting down
                self._jobs.finish(job.id, "failed")

        call.after_audit = start
        return spec.job_model(job=job.id, status="running", result_uri=_job_uri(job.id))

    def _run_cohort_job(
        self,
        job: "_Job",
        call: _Call,
        answer: Callable[[_Call, Progress | None], BaseModel],
    ) -> None:
        """Run a background cohort and record its outcome before anyone can read it."""
        cohorts = self.policy.cohorts
        assert cohorts is not None
        try:
            result = answer(call, None)
            if time.monotonic() - job.started > cohorts.job_timeout_seconds:
                raise Denied("timeout", "the background cohort did not finish in time")
        except Denied as denied:
            self._risk.denied(call.principal.key if call.principal else "anonymous")
            with contextlib.suppress(AuditWriteError):
                self.audit(call, "deny", denied.reason)
            self._jobs.finish(job.id, "failed")
            return
        except Exception:
            logger.exception("background cohort failed; correlation id %s", call.correlation_id)
            with contextlib.suppress(AuditWriteError):
                self.audit(call, "error", "internal_error")
            self._jobs.finish(job.id, "failed")
            return
        try:
            self.audit(call, "allow", "ok")
        except AuditWriteError:
            logger.error("audit write failed; correlation id %s", call.correlation_id)
            self._jobs.finish(job.id, "failed")
            return
        self._jobs.finish(
            job.id,
            "done",
            result.model_dump(mode="json", by_alias=True, exclude_unset=True),
            call.subjects,
        )

    # -- cohort resources ------------------------------------------------------------------------

    def read_cohort_resource(self, role: str, uri: str, context: Any) -> str:
        """The JSON text of a saved cohort or a cohort job; every read is audited.

        Raises:
            ResourceNotFoundError: for an unknown cohort, version or job, or a job of another
                caller (the same answer, so a job's existence is not revealed).
            ResourceError: for any other refusal or failure (a fixed sentence and the
                correlation id).
        """
        call = self.new_call(context, "resources/read")
        try:
            payload, subjects = self._cohort_resource(call, role, uri)
            call.subjects = subjects[: self.policy.limits.audit_subjects_cap]
            call.rows = len(subjects)
            text = _json(payload)
        except Denied as denied:
            self._risk.denied(call.principal.key if call.principal else "anonymous")
            try:
                self.audit(call, "deny", denied.reason)
            except AuditWriteError:
                raise ResourceError(
                    AUDIT_UNAVAILABLE_MESSAGE.format(correlation_id=call.correlation_id)
                ) from None
            message = f"{denied.message} (correlation id {call.correlation_id})"
            if denied.reason in ("unknown_resource", "unknown_cohort", "unknown_job"):
                raise ResourceNotFoundError(message) from None
            raise ResourceError(message) from None
        except Exception:
            logger.exception("cohort resource read failed; correlation id %s", call.correlation_id)
            with contextlib.suppress(AuditWriteError):
                self.audit(call, "error", "internal_error")
            raise ResourceError(
                INTERNAL_ERROR_MESSAGE.format(correlation_id=call.correlation_id)
            ) from None
        call.result_sha256 = _fingerprint(payload)
        try:
            self.audit(call, "allow", "ok")
        except AuditWriteError:
            raise ResourceError(
                AUDIT_UNAVAILABLE_MESSAGE.format(correlation_id=call.correlation_id)
            ) from None
        return text

    def _cohort_resource(self, call: _Call, role: str, uri: str) -> tuple[Any, list[str]]:
        principal = call.principal
        if principal is None:
            raise Denied("no_principal", "the caller could not be identified")
        cohorts = self.policy.cohorts
        if cohorts is None or cohorts.scope not in principal.scopes:
            raise Denied("insufficient_scope", "reading cohorts requires the cohort tool's scope")
        call.dataset = f"{cohorts.audience}/{FIND_COHORT}"
        job = _JOB_URI.fullmatch(uri)
        if job is not None:
            return self._job_payload(principal, job.group(1))
        match = _COHORT_URI.fullmatch(uri)
        if match is None:
            raise Denied("unknown_resource", f"Unknown resource; {LISTING_URI} lists the resources")
        name, version = match.group(1), match.group(2)
        reference = name if version is None else f"{name}@{version}"
        return self._saved_payload(call, principal, role, reference)

    def _job_payload(self, principal: Principal, job_id: str) -> tuple[Any, list[str]]:
        cohorts = self.policy.cohorts
        assert cohorts is not None
        job = self._jobs.get(job_id)
        if job is None or job.owner != _job_owner(principal):
            raise Denied(
                "unknown_job" if job is None else "not_job_owner",
                "no cohort job of this caller has that id",
            ) from None
        status = job.status
        if status == "running" and time.monotonic() - job.started > cohorts.job_timeout_seconds:
            status = "failed"
        payload: dict[str, Any] = {"job": job.id, "status": status}
        if status == "done":
            payload["result"] = job.result
            return payload, list(job.subjects)
        if status == "failed":
            payload["correlation_id"] = job.correlation_id
        return payload, []

    def _check_cohort_differencing(
        self, call: _Call, principal: Principal, members: Any, min_cell: int
    ) -> None:
        """Record a counted cohort in the caller's ledger; refuse it when it differs from an
        earlier one of theirs by fewer than ``min_cell`` people (it could single someone out)."""
        cohorts = self.policy.cohorts
        assert cohorts is not None
        decision = self._ledger.check_and_record(
            principal.key, f"{cohorts.audience}/{FIND_COHORT}", members, min_difference=min_cell
        )
        if not decision.allowed:
            self._score(call, RiskFeatures(near_duplicate_population=True))
            raise Denied(
                "differencing_suspected",
                f"this cohort differs from an earlier one of yours by fewer than {min_cell} "
                "people, which could single someone out; it was refused and reported",
            )

    def _saved_payload(
        self, call: _Call, principal: Principal, role: str, reference: str
    ) -> tuple[Any, list[str]]:
        cohorts = self.policy.cohorts
        assert cohorts is not None
        saved = self._load_cohort(reference)
        self._check_cohort_purpose(principal, saved.datasets)
        register = self._cohort_governed(REGISTER)
        assert register is not None
        # Consent now, not when the cohort was saved: a withdrawal removes a member at once.
        consent_version, permitted = self._consented(register, principal)
        members = saved.members
        if permitted is not None:
            current = set(permitted.to_list())
            members = [member for member in members if member in current]
        listed = self._listing_problem(principal, role, saved.columns) is None
        k = saved.min_cell_size
        if not listed:
            self._check_cohort_differencing(call, principal, members, k)
        released = listed or len(members) >= k
        payload: dict[str, Any] = {
            "name": saved.name,
            "version": saved.version,
            "uri": saved.uri,
            "latest_uri": cohort_uri(saved.name),
            "created_at": saved.created_at.isoformat(),
            "created_by_role": saved.created_by_role,
            "purpose": saved.purpose,
            "definition": saved.definition,
            "datasets": saved.datasets,
            "delta_versions": saved.delta_versions,
            "consent_version": consent_version,
            "count": len(members) if released else None,
            "suppressed": not released,
            "min_cell_size": k,
            "sha256": saved.sha256,
        }
        if listed:
            payload["members"] = members
            return payload, list(members)
        return payload, []

    def _add_cohort_templates(self, server: MCPServer, role: str) -> None:
        """List the saved-cohort and cohort-job resource templates of a role's server; reads
        go through :meth:`read_cohort_resource` (the role server routes them there)."""

        def saved_version(name: str, version: str, ctx: Context) -> str:
            return self.read_cohort_resource(role, f"cohort://{name}/{version}", ctx)

        def saved_latest(name: str, ctx: Context) -> str:
            return self.read_cohort_resource(role, f"cohort://{name}", ctx)

        def job_status(job: str, ctx: Context) -> str:
            return self.read_cohort_resource(role, f"cohort-job://{job}", ctx)

        members = (
            "members' research pseudonyms when this role may list them"
            if self._lists_members(role)
            else "no members (counts only for this role)"
        )
        server.resource(
            COHORT_TEMPLATE,
            name="saved_cohort",
            title="Saved cohort",
            description="One version of a saved cohort: its criteria, views and Delta versions, "
            "when it was saved, and its count under current consent (suppressed when small); "
            f"{members}.",
            mime_type=_JSON,
        )(saved_version)
        server.resource(
            LATEST_COHORT_TEMPLATE,
            name="saved_cohort_latest",
            title="Saved cohort (latest version)",
            description="The latest version of a saved cohort, as the versioned resource.",
            mime_type=_JSON,
        )(saved_latest)
        server.resource(
            JOB_TEMPLATE,
            name="cohort_job",
            title="Background cohort",
            description="Status of a background cohort (running, done or failed) and, when "
            "done, its result; readable only by the caller who started it. A failed job "
            "carries only its correlation id.",
            mime_type=_JSON,
        )(job_status)


def _tool_result(result: BaseModel) -> CallToolResult:
    """The result as structured content plus the same JSON, compact, as text for clients that
    read only text. Fields never set (the dimensions an aggregate did not group by, statistics
    not asked for) are left out rather than sent as nulls."""
    structured = result.model_dump(mode="json", by_alias=True, exclude_unset=True)
    text = json.dumps(structured, ensure_ascii=False, separators=(",", ":"))
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=structured
    )


def _plan_with(
    query: DatasetQuery,
    frame: pl.LazyFrame,
    schema: pl.Schema,
    parsed: BaseModel,
    offset: int,
    extra: list[str],
) -> pl.LazyFrame:
    """The query's plan, keeping ``extra`` columns beside the selection (for the audit)."""
    selected = query.selected(parsed)
    widened = parsed.model_copy(update={"select": [*selected, *extra]})
    return query.plan(frame, schema, widened, offset)


def _patient_reference(patient: str) -> str:
    """A stable, non-reversible reference to a patient id for the audit record."""
    return "sha256:" + hashlib.sha256(f"biofed-patient:{patient}".encode()).hexdigest()[:32]


def _tool(
    fn: Callable[..., Any],
    name: str,
    *,
    title: str,
    description: str,
    parameters: dict[str, Any],
    arg_model: type[BaseModel],
    result_model: Any,
    output_schema: dict[str, Any],
    is_async: bool = False,
    read_only: bool = True,
    idempotent: bool = True,
) -> Tool:
    fn.__name__ = name
    metadata = _RawArguments(
        # Documents the arguments for anyone introspecting the tool; the SDK never validates
        # with it because ``validate_arguments`` is overridden.
        arg_model=create_model(f"{name}_arguments", __base__=(arg_model, ArgModelBase)),
        output_model=result_model,
        output_schema=output_schema,
    )
    return Tool(
        fn=fn,
        name=name,
        title=title,
        description=description,
        parameters=parameters,
        fn_metadata=metadata,
        is_async=is_async,
        context_kwarg="ctx",
        annotations=ToolAnnotations(
            title=title,
            read_only_hint=read_only,
            destructive_hint=False,
            idempotent_hint=idempotent,
            open_world_hint=False,
        ),
    )


@dataclass
class _Job:
    """A background cohort."""

    id: str
    owner: str
    """:func:`_job_owner` of the principal who started it: only they may read it."""
    correlation_id: str
    started: float
    """``time.monotonic()`` when it was started."""
    status: str = "running"
    """running, done or failed."""
    result: dict[str, Any] | None = None
    subjects: list[str] = field(default_factory=list)
    """Pseudonyms the result discloses (for the audit record of each read)."""


class _Jobs:
    """The background cohorts of this process (kept in memory: a restart forgets them)."""

    def __init__(self, keep: int = 256) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, _Job] = OrderedDict()

    def add(self, job: _Job, *, limit: int, timeout: float) -> bool:
        """Register a job unless its owner already runs ``limit`` jobs (False then); a job
        running for longer than ``timeout`` seconds no longer counts."""
        with self._lock:
            running = sum(
                1
                for j in self._jobs.values()
                if j.owner == job.owner
                and j.status == "running"
                and job.started - j.started <= timeout
            )
            if running >= limit:
                return False
            self._jobs[job.id] = job
            finished = [k for k, j in self._jobs.items() if j.status != "running"]
            for key in finished[: max(0, len(self._jobs) - self._keep)]:
                del self._jobs[key]
            return True

    def get(self, job_id: str) -> _Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def finish(
        self,
        job_id: str,
        status: str,
        result: dict[str, Any] | None = None,
        subjects: list[str] | None = None,
    ) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                job.status, job.result, job.subjects = status, result, list(subjects or [])


def _job_owner(principal: Principal) -> str:
    """Who may read a job: the same caller, role and purpose that started it."""
    return "\x00".join((principal.key, principal.role, principal.purpose))


def _job_uri(job_id: str) -> str:
    return JOB_TEMPLATE.replace("{job}", job_id)


def _cohort_description(spec: CohortSpec, grant: Any, cohorts: Cohorts, min_cell: int) -> str:
    """The cohort tool's description, generated from the catalog and the policy."""
    lines = [
        f"People of the {REGISTER} view ({spec.audience}) who meet every criterion given, "
        f"joined across views on {PERSON_COLUMN}. Criterion kinds and the view each reads:",
    ]
    sentences = {
        "conditions": "a condition with one of the codes (and the system, when given); "
        "refuted and entered-in-error records do not count.",
        "labs": "a result of the LOINC code from min to max (inclusive), in the view's unit.",
        "imaging": "a study of the primary modality, body part and date window; study dates "
        "are shifted per person, so a calendar window is approximate.",
        "variants": "carriers of at least one copy of the alternate allele.",
        "trials": "subjects of the study; an arm only where the study's arms are unblinded.",
        "age": "the year of the view's as_of minus the year of birth (one above the age in "
        "completed years before the birthday); people aged 90 or more have no year of birth "
        "and count as 90: 90 stands for 90 or older.",
        "sex": "the gender column.",
    }
    for kind in spec.kinds:
        lines.append(f"- {kind.name} ({kind.view}): {sentences[kind.name]}")
    lines += [
        f"At most {cohorts.max_criteria} criteria (each list entry, age and sex count one). "
        "Views are read at their pinned versions with their row thresholds; only people whose "
        "consent covers the purpose of use count, as of the call.",
        f"Counts below {min_cell} are suppressed (null); a count whose people differ from an "
        f"earlier one of the same caller by fewer than {min_cell} is refused.",
    ]
    if grant.pseudonyms:
        lines.append(
            "Output for this role: the count, or with output pseudonyms also the members' "
            f"research pseudonyms (at most {cohorts.max_members}) when this role reads the rows "
            "of every view used."
        )
    else:
        lines.append("Output for this role: the count only.")
    if grant.save:
        lines.append(
            "save_as keeps the cohort as the next version of a named cohort (at most "
            f"{cohorts.max_members} members), a saved cohort resource."
        )
    lines.append(
        "background true runs it as a job whose status and result are a job resource, "
        "readable only by the caller who started it. Progress is reported per criterion."
    )
    return "\n".join(lines)


def _region_sentence(region: RegionColumns) -> str:
    return (
        f"Region: the region argument {{chrom, start, end}} keeps the rows whose {region.chrom} "
        f"equals chrom and whose {region.start} to {region.end} interval overlaps start to "
        f"end; positions are 1-based and inclusive, and a region spans at most "
        f"{MAX_REGION_SPAN:,} bases."
    )


def _suppression_sentence(rules: DatasetPolicy) -> str:
    thresholds = "; ".join(
        f"{name} below {minimum}" for name, minimum in rules.suppress_below.items()
    )
    return f"Rows with {thresholds} (or missing) are withheld by policy and never returned."


def _genomic_lines(region: RegionColumns | None, rules: DatasetPolicy) -> list[str]:
    """The region and threshold sentences of a tool description (none for other views)."""
    lines = [_region_sentence(region)] if region is not None else []
    if rules.suppress_below:
        lines.append(_suppression_sentence(rules))
    return lines


def _built_consent_sentence(rules: DatasetPolicy) -> str:
    return (
        f"Computed only over people whose consent covered the {rules.consent_scope} scope when "
        "the view was built; the rows are aggregates, not people, and a withdrawal of consent "
        "reaches them at the next build."
    )


def _describe(
    dataset: CatalogDataset,
    masked: list[str],
    rules: DatasetPolicy,
    *,
    person_level: bool = True,
) -> str:
    lines = [dataset.description.strip(), "", "Columns:"]
    lines += [f"- {c.name} ({c.type}): {c.description}" for c in dataset.columns]
    if masked:
        lines += ["", f"Withheld from this role by policy: {', '.join(masked)}."]
    genomic = _genomic_lines(dataset.region, rules)
    if genomic:
        lines += ["", *genomic]
    if rules.consent and not person_level:
        lines += ["", _built_consent_sentence(rules)]
    elif rules.consent:
        lines += ["", "Only people whose consent covers the purpose of use are included."]
    if any(a.break_glass_only for a in rules.access.values()):
        lines += [
            "",
            "Rows are released only under an active break-glass grant, for the granted "
            "patient only.",
        ]
    return "\n".join(lines)


def data_card(governed: GovernedDataset, role: str) -> dict[str, Any]:
    """What a role may know about a dataset (never its storage path)."""
    dataset, rules = governed.dataset, governed.policy
    access = rules.access[role]
    visible = set(rules.visible_columns(role))
    if not rules.consent:
        consent = "not consent-filtered (treatment under a break-glass grant)"
    elif governed.person_level:
        consent = "rows and counts include only people whose consent covers the purpose"
    else:
        consent = _built_consent_sentence(rules)
    card: dict[str, Any] = {
        "name": dataset.name,
        "title": dataset.title,
        "description": dataset.description,
        "owner": dataset.owner,
        "audience": dataset.audience,
        "tools": {
            "query": tool_name(dataset) if access.rows else None,
            "aggregate": aggregate_tool_name(dataset) if access.aggregate else None,
        },
        "uri": card_uri(dataset),
        "key": list(dataset.key),
        "columns": [
            {
                "name": column.name,
                "type": column.type,
                "description": column.description,
                "class": column.column_class,
                "visible": column.name in visible,
                "filterable": column.filterable,
                "sortable": column.sortable,
                "enum": column.enum,
            }
            for column in dataset.columns
        ],
        "policy": {
            "purposes": list(rules.purposes),
            "consent": consent,
            "row_cap": rules.row_cap,
            "min_cell_size": rules.min_cell_size,
            "break_glass_only": access.break_glass_only,
            "aggregate_dimensions": (
                list(rules.aggregation.dimensions) if rules.aggregation else []
            ),
        },
        "row_count": dataset.row_count,
        "delta_version": dataset.delta_version,
        "last_materialized": dataset.last_materialized.isoformat(),
        "upstream": list(dataset.upstream),
        "max_limit": min(dataset.max_limit, rules.row_cap),
        "freshness": _dump(dataset.freshness),
        "quality": _dump(dataset.quality),
    }
    # Catalogs built before federation was recorded have no block; their cards keep their shape.
    if dataset.federation is not None:
        card["federation"] = _dump(dataset.federation)
    # Genomic entries only, so the cards of other views keep their shape.
    if rules.suppress_below:
        card["policy"]["suppress_below"] = dict(rules.suppress_below)
        card["policy"]["suppression"] = _suppression_sentence(rules)
    region = dataset.region
    if region is not None:
        # The query tool takes a region only when the role sees every region column.
        region_tools = [
            name
            for name, offered in (
                (
                    tool_name(dataset),
                    access.rows and {region.chrom, region.start, region.end} <= visible,
                ),
                (aggregate_tool_name(dataset), access.aggregate),
            )
            if offered
        ]
        card["region"] = {
            "chrom": region.chrom,
            "start": region.start,
            "end": region.end,
            "coordinates": "1-based, inclusive; a region returns the rows overlapping it",
            "max_span_bases": MAX_REGION_SPAN,
            "tools": region_tools,
        }
    return card


def _listing_entry(governed: GovernedDataset, role: str) -> dict[str, Any]:
    dataset = governed.dataset
    access = governed.policy.access[role]
    return {
        "name": dataset.name,
        "title": dataset.title,
        "description": dataset.description,
        "row_count": dataset.row_count,
        "delta_version": dataset.delta_version,
        "last_materialized": dataset.last_materialized.isoformat(),
        "uri": card_uri(dataset),
        "tools": [
            name
            for name, allowed in (
                (tool_name(dataset), access.rows),
                (aggregate_tool_name(dataset), access.aggregate),
            )
            if allowed
        ],
    }


def _dump(block: BaseModel | None) -> dict[str, Any] | None:
    return None if block is None else block.model_dump(mode="json")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def build_server(
    manifest: Manifest,
    lake: str | Path,
    *,
    role: str = "researcher",
    policy: Policy,
    audit: AuditLog,
    principal: Principal | None = None,
    **options: Any,
) -> MCPServer:
    """Build the governed catalog server of one role, calling as ``principal``.

    A convenience over :class:`CatalogService` for stdio and in-memory use.

    Args:
        manifest: the validated catalog.
        lake: the lake root.
        role: the role whose tools are served.
        policy: the access policy.
        audit: the audit log.
        principal: who calls (the stdio configuration); calls are refused when None.
        **options: passed to :class:`CatalogService`.

    Returns:
        The server, ready for ``run()`` or an in-memory ``Client``.

    Raises:
        CatalogBuildError: see :class:`CatalogService`.
    """
    service = CatalogService(
        manifest, lake, policy=policy, audit=audit, stdio_principal=principal, **options
    )
    return service.server_for(role)
