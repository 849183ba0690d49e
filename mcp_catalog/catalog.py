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
)


@dataclass(frozen=True)
class TableState:
    """A gold table as it stands in the lake."""

    row_count: int
    delta_version: int
    last_materialized: datetime
    freshness: DatasetFreshness | None = None
    quality: DatasetQuality | None = None


def dataset_entry(spec: ViewSpec, state: TableState, *, max_limit: int = 1000) -> CatalogDataset:
    """The catalog entry of one gold view.

    Args:
        spec: the view.
        state: its row count, Delta version and last commit time.
        max_limit: the largest page a query may ask for.

    Returns:
        A validated dataset entry.
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
    )


def build_manifest(
    entries: Iterable[tuple[ViewSpec, TableState]], *, generated_at: datetime
) -> Manifest:
    """The whole manifest, datasets in the order given.

    Raises:
        ValueError: when two views share an audience and a name.
    """
    datasets = [dataset_entry(spec, state) for spec, state in entries]
    seen: set[tuple[str, str]] = set()
    for d in datasets:
        if (d.audience, d.name) in seen:
            raise ValueError(f"two views named {d.audience}/{d.name}")
        seen.add((d.audience, d.name))
    return Manifest(generated_at=generated_at, datasets=datasets)
