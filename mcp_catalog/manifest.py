"""The generated catalog: what the pipeline writes to ``lake/_catalog/manifest.json`` and
the server is built from. Validated on load, so a hand-edited or stale manifest fails early.
"""

import json
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mcp_catalog.policy import ColumnClass

MANIFEST_VERSION = 2

ColumnType = Literal["string", "integer", "number", "boolean", "date", "datetime"]

PERSON_COLUMN = "person_pseudonym"
"""The column that names the person a row is about, in every person-level view."""

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class ManifestError(Exception):
    """The manifest is missing, unreadable or does not validate."""


class CatalogColumn(BaseModel):
    """One column of a gold view as the catalog describes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: ColumnType
    description: str
    column_class: ColumnClass = Field(alias="class")
    filterable: bool = True
    sortable: bool = True
    enum: list[str] | None = None
    """Closed set of values for a coded column; filters on it only accept these."""

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("column names are lower-case snake_case identifiers")
        return value


class DatasetFreshness(BaseModel):
    """How fresh a view's newest source data is, against its SLA."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warn_after_seconds: int
    fail_after_seconds: int
    newest_source_at: datetime | None
    """When the newest source data feeding the view was produced."""
    status: Literal["fresh", "warn", "stale", "unknown"]
    """The status when the catalog was built; the server recomputes it at query time."""
    checked_at: datetime


class DatasetQuality(BaseModel):
    """The latest quality suite result for the view's current Delta version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str
    evaluated_at: datetime
    success: bool
    expectations: int
    failed_errors: int
    failed_warnings: int


class RegionColumns(BaseModel):
    """The columns that place a row of a genomic view on the genome.

    A row covers the 1-based, inclusive interval ``start``..``end`` of contig ``chrom``; the
    query tool of the view then accepts a ``region`` that returns the rows overlapping an
    interval. ``start`` and ``end`` may name the same column when every row is one position.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    chrom: str
    """A string column: the contig (chromosome) name, as in the VCF ``CHROM`` field."""
    start: str
    """An integer column: the first position the row covers (1-based)."""
    end: str
    """An integer column: the last position the row covers (1-based, inclusive)."""

    @field_validator("chrom", "start", "end")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("region columns are lower-case snake_case identifiers")
        return value


class DatasetFederation(BaseModel):
    """Where a view's rows come from across the silos and how they reach one person.

    ``linked_rows`` and ``source_rows`` count the rows of the view's primary silver source
    (the table its rows are drawn from) that carry a ``person_key``, and all of them;
    ``linked_share`` is their ratio, or None exactly when ``source_rows`` is 0: no row needs
    linking (an aggregate view, whose rows are not people, counts none) or the source is
    empty.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    silos: list[str] = Field(min_length=1)
    """The silos the view's silver sources belong to (``ehr``, ``lab``, ...), sorted."""
    linkage_rule: str = Field(min_length=1)
    """How a source row is matched to a person, one sentence per silo."""
    consent_rule: str = Field(min_length=1)
    """Which people's rows the view holds and when their consent is checked."""
    linked_share: float | None = Field(ge=0.0, le=1.0)
    linked_rows: int = Field(ge=0)
    source_rows: int = Field(ge=0)

    @field_validator("silos")
    @classmethod
    def _silo_names(cls, value: list[str]) -> list[str]:
        if any(not _NAME.match(silo) for silo in value):
            raise ValueError("silo names are lower-case snake_case identifiers")
        if value != sorted(set(value)):
            raise ValueError("silos are listed once each, sorted")
        return value

    @model_validator(mode="after")
    def _share_of_rows(self) -> "DatasetFederation":
        if self.linked_rows > self.source_rows:
            raise ValueError("linked_rows cannot exceed source_rows")
        if self.source_rows == 0:
            if self.linked_share is not None:
                raise ValueError("linked_share is null when no source row needs linking")
        elif self.linked_share is None or not math.isclose(
            self.linked_share, self.linked_rows / self.source_rows, rel_tol=0.0, abs_tol=1e-9
        ):
            raise ValueError("linked_share must equal linked_rows / source_rows")
        return self


class CatalogDataset(BaseModel):
    """One gold view: where it lives, what it holds, how fresh it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """Tool-safe view name, unique within an audience (``patients``)."""
    audience: str
    """Who the view is minimised for (``research``)."""
    path: str
    """Delta table path relative to the lake root (``gold/research/patients``)."""
    title: str
    description: str
    owner: str
    key: list[str]
    """Columns that identify a row; the last-resort sort for stable paging."""
    columns: list[CatalogColumn]
    row_count: int
    delta_version: int
    last_materialized: datetime
    upstream: list[str]
    """Lake tables this view is computed from (``silver/ehr/patients``)."""
    max_limit: int = 1000
    freshness: DatasetFreshness | None = None
    quality: DatasetQuality | None = None
    region: RegionColumns | None = Field(None, exclude_if=lambda value: value is None)
    """The genomic position columns of the view, for region queries; None (and absent from
    the JSON) for views that are not placed on the genome."""
    federation: DatasetFederation | None = Field(None, exclude_if=lambda value: value is None)
    """The view's silos, linkage and consent rules and linked share; None (and absent from the
    JSON) in catalogs built before it was recorded."""

    @field_validator("name", "audience")
    @classmethod
    def _safe_identifier(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("dataset and audience names are lower-case snake_case identifiers")
        return value

    @model_validator(mode="after")
    def _region_columns(self) -> "CatalogDataset":
        problem = region_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self

    def column(self, name: str) -> CatalogColumn | None:
        """The column called ``name`` (exact match), or None."""
        for col in self.columns:
            if col.name == name:
                return col
        return None


def region_problem(dataset: CatalogDataset) -> str | None:
    """What is wrong with a dataset's region columns, or None when they fit its columns.

    Args:
        dataset: a catalog entry (possibly a narrowed copy, which skips validation).

    Returns:
        A sentence naming the region column and what it must be, or None.
    """
    region = dataset.region
    if region is None:
        return None
    for role, name, kind in (
        ("chrom", region.chrom, "string"),
        ("start", region.start, "integer"),
        ("end", region.end, "integer"),
    ):
        column = dataset.column(name)
        if column is None:
            return f"region {role} column {name!r} is not a column of {dataset.name}"
        if column.type != kind:
            return f"region {role} column {name!r} of {dataset.name} must be of type {kind}"
    return None


class Manifest(BaseModel):
    """The whole catalog."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    manifest_version: Literal[2] = MANIFEST_VERSION
    generated_at: datetime
    policy_version: str | None = None
    """The version of the access policy the catalog was built under; the server refuses to
    serve it under another."""
    policy_sha256: str | None = None
    datasets: list[CatalogDataset]

    def for_audience(self, audience: str) -> list[CatalogDataset]:
        """The datasets of one audience, in manifest order."""
        return [d for d in self.datasets if d.audience == audience]


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest file.

    Args:
        path: the ``manifest.json`` the catalog asset wrote.

    Returns:
        The validated manifest.

    Raises:
        ManifestError: when the file is missing or does not validate; the message says to run
            ``make demo`` (or materialise the ``catalog`` asset).
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(
            f"No catalog manifest at {path}. Run `make demo` (or materialise the `catalog` "
            "asset with `dagster dev -w workspace.yaml`) to build the lake and its catalog."
        )
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except ValueError as exc:
        raise ManifestError(
            f"The catalog manifest at {path} does not validate. Rebuild it by materialising "
            "the `catalog` asset (`make demo`)."
        ) from exc


def dump_manifest(manifest: Manifest) -> str:
    """The manifest as stable, indented JSON (aliases used, keys in model order)."""
    return json.dumps(manifest.model_dump(mode="json", by_alias=True), indent=2) + "\n"
