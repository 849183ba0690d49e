"""Building the catalog manifest from the view specs and what the lake holds."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from mcp_catalog.governance.views import ViewSpec
from mcp_catalog.manifest import (
    CatalogColumn,
    CatalogDataset,
    DatasetFreshness,
    DatasetQuality,
    Manifest,
    RegionColumns,
)
from mcp_catalog.policy import Policy


@dataclass(frozen=True)
class TableState:
    """A gold table as it stands in the lake."""

    row_count: int
    delta_version: int
    last_materialized: datetime
    freshness: DatasetFreshness | None = None
    quality: DatasetQuality | None = None


def dataset_entry(
    spec: ViewSpec,
    state: TableState,
    *,
    max_limit: int = 1000,
    region: RegionColumns | None = None,
) -> CatalogDataset:
    """The catalog entry of one gold view.

    Args:
        spec: the view.
        state: its row count, Delta version and last commit time.
        max_limit: the largest page a query may ask for.
        region: the genomic position columns of the view (``chrom``, ``pos``, ``end``), which
            give its query tool a ``region`` argument; None for other views.

    Returns:
        A validated dataset entry.

    Raises:
        pydantic.ValidationError: when the region names a column the view lacks, or one of
            the wrong type (chrom a string column, start and end integer columns).
    """
    return CatalogDataset(
        name=spec.name,
        audience=spec.audience,
        path=spec.path,
        title=spec.title,
        description=spec.description,
        owner=spec.owner,
        key=list(spec.key),
        columns=[
            CatalogColumn.model_validate(
                {
                    "name": c.name,
                    "type": c.type,
                    "description": c.description,
                    "class": c.column_class,
                    "filterable": True,
                    "sortable": c.sortable,
                    "enum": list(c.enum) if c.enum else None,
                }
            )
            for c in spec.columns
        ],
        row_count=state.row_count,
        delta_version=state.delta_version,
        last_materialized=state.last_materialized,
        upstream=list(spec.sources),
        max_limit=max_limit,
        freshness=state.freshness,
        quality=state.quality,
        region=region,
    )


def source_entry(
    *,
    name: str,
    audience: str,
    path: str,
    title: str,
    description: str,
    owner: str,
    key: list[str],
    columns: list[CatalogColumn],
    state: TableState,
    max_limit: int = 1000,
    region: RegionColumns | None = None,
) -> CatalogDataset:
    """The catalog entry of a dataset served straight from a lake table (the identified
    records released under break-glass), with columns described by the caller.

    Args:
        name: the tool-safe dataset name.
        audience: who the dataset is for.
        path: the Delta table path relative to the lake root.
        title: a short title.
        description: what the dataset holds (catalog text, linted).
        owner: who answers for it.
        key: the columns that identify a row.
        columns: the column descriptions.
        state: its row count, Delta version and last commit time.
        max_limit: the largest page a query may ask for.
        region: the genomic position columns, when the table is placed on the genome.

    Returns:
        A validated dataset entry.

    Raises:
        pydantic.ValidationError: when a column or the region does not validate.
    """
    return CatalogDataset(
        name=name,
        audience=audience,
        path=path,
        title=title,
        description=description,
        owner=owner,
        key=key,
        columns=columns,
        row_count=state.row_count,
        delta_version=state.delta_version,
        last_materialized=state.last_materialized,
        upstream=[path],
        max_limit=max_limit,
        freshness=state.freshness,
        quality=state.quality,
        region=region,
    )


def build_manifest(
    datasets: Iterable[CatalogDataset], *, generated_at: datetime, policy: Policy
) -> Manifest:
    """The whole manifest, datasets in the order given, checked against the policy.

    Args:
        datasets: the entries (see :func:`dataset_entry` and :func:`source_entry`).
        generated_at: when the catalog is built.
        policy: the access policy the catalog is built under; its version is recorded.

    Returns:
        The manifest.

    Raises:
        ValueError: when two datasets share an audience and a name, or a dataset is not in
            the policy or its column classes differ from the policy's.
    """
    datasets = list(datasets)
    seen: set[tuple[str, str]] = set()
    for d in datasets:
        if (d.audience, d.name) in seen:
            raise ValueError(f"two views named {d.audience}/{d.name}")
        seen.add((d.audience, d.name))
        rules = policy.dataset(d.audience, d.name)
        if rules is None:
            raise ValueError(f"dataset {d.audience}/{d.name} is not in the policy")
        declared = {c.name: c.column_class for c in d.columns}
        if declared != rules.columns:
            differing = sorted(set(declared.items()).symmetric_difference(rules.columns.items()))
            raise ValueError(
                f"the column classes of {d.audience}/{d.name} differ from the policy: {differing}"
            )
    return Manifest(
        generated_at=generated_at,
        policy_version=policy.version,
        policy_sha256=policy.fingerprint,
        datasets=datasets,
    )
