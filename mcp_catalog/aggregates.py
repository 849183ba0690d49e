"""Typed aggregate queries over one dataset, generated from its policy.

``aggregate_<dataset>`` groups by at most three allow-listed dimensions, filters with the
same typed filters as ``query_<dataset>`` (over the dimension and measure columns only) and,
for a genomic dataset, the same ``region`` as its query tool, and returns people and record
counts per cell, plus the mean, median and quartiles of allow-listed numeric measures where
a cell is large enough. Disclosure control itself lives in :mod:`mcp_catalog.disclosure`.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import polars as pl
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from mcp_catalog.manifest import CatalogDataset, region_problem
from mcp_catalog.policy import Aggregation
from mcp_catalog.query import (
    COHORT_MESSAGE,
    DatasetQuery,
    build_arguments_model,
    cohort_field,
    compact_schema,
    explain_region,
    region_conditions,
    region_model,
    strict_parse,
)

MAX_GROUP_BY = 3
MAX_MEASURES = 4
STATS = ("mean", "median", "p25", "p75")
_STRICT = ConfigDict(extra="forbid", strict=True)


def _distinct(values: list[Any]) -> list[Any]:
    keys = [json.dumps(v, sort_keys=True, default=str) for v in values]
    if len(set(keys)) != len(keys):
        raise ValueError("an entry is listed twice")
    return values


@dataclass(frozen=True)
class AggregateQuery:
    """Models and error sentences of one dataset's aggregate tool."""

    dataset: CatalogDataset
    aggregation: Aggregation
    arguments_model: type[BaseModel]
    result_model: type[BaseModel]
    filters: DatasetQuery
    """The row query over the dimension and measure columns, for filter errors and plans."""

    @classmethod
    def for_dataset(
        cls, dataset: CatalogDataset, aggregation: Aggregation, *, cohort: bool = False
    ) -> "AggregateQuery":
        """Generate the aggregate models of one dataset.

        Args:
            dataset: the catalog entry (all columns).
            aggregation: the policy's dimensions and measures.
            cohort: whether the tool takes a saved cohort as a filter (``cohort``).

        Returns:
            The aggregate definition.

        Raises:
            ValueError: when a dimension or measure is not a column of the dataset, a
                measure is not numeric, or the dataset's region does not fit its columns.
        """
        names = [*aggregation.dimensions, *aggregation.measures]
        columns = [dataset.column(n) for n in names]
        if any(c is None for c in columns):
            raise ValueError(f"dataset {dataset.name!r} aggregates a column it does not have")
        if any(dataset.column(m).type not in ("integer", "number") for m in aggregation.measures):  # type: ignore[union-attr]
            raise ValueError(f"dataset {dataset.name!r} has a non-numeric measure")
        problem = region_problem(dataset)
        if problem is not None:
            raise ValueError(problem)
        # The region is over the whole dataset's position columns, which need not be
        # dimensions: it is added beside the narrowed filters, not inside them.
        narrowed = dataset.model_copy(
            update={
                "columns": [c for c in columns if c is not None],
                "key": [names[0]],
                "region": None,
            }
        )
        filters = DatasetQuery.for_dataset(narrowed)
        filters_field = build_arguments_model(narrowed).model_fields.get("filters")
        dims = tuple(aggregation.dimensions)
        fields: dict[str, Any] = {
            "group_by": (
                Annotated[list[Literal[dims]], AfterValidator(_distinct)],
                Field(
                    default_factory=list,
                    max_length=MAX_GROUP_BY,
                    json_schema_extra={"uniqueItems": True},
                    description=f"Columns to group by (0 to {MAX_GROUP_BY}); none gives the "
                    "total only.",
                ),
            ),
        }
        if aggregation.measures:
            measure = create_model(
                f"aggregate_{dataset.name}_measure",
                __config__=_STRICT,
                __doc__="One statistic of one numeric column.",
                column=(Literal[tuple(aggregation.measures)], Field(description="Numeric column.")),
                stat=(Literal[STATS], Field(description="Statistic to compute per cell.")),
            )
            fields["measures"] = (
                Annotated[list[measure], AfterValidator(_distinct)],
                Field(
                    default_factory=list,
                    max_length=MAX_MEASURES,
                    description=f"Statistics to compute (0 to {MAX_MEASURES}); returned only "
                    "for cells with enough people.",
                ),
            )
        if filters_field is not None:
            fields["filters"] = (filters_field.annotation, Field(None))
        region = region_model(dataset)
        if region is not None:
            fields["region"] = (region | None, Field(None))
        if cohort:
            fields["cohort"] = cohort_field()
        arguments = create_model(
            f"aggregate_{dataset.name}_arguments", __config__=_STRICT, **fields
        )
        return cls(dataset, aggregation, arguments, _result_model(dataset, aggregation), filters)

    def conditions(self, arguments: BaseModel, schema: pl.Schema) -> list[pl.Expr]:
        """The region (first) and the filters as polars expressions, all to be ANDed.

        Args:
            arguments: validated arguments.
            schema: the dataset's frame schema.

        Returns:
            The expressions; empty when neither a region nor filters were given.
        """
        return [
            *region_conditions(self.dataset.region, getattr(arguments, "region", None)),
            *self.filters.conditions(arguments, schema),
        ]

    def input_schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments, self-contained."""
        return compact_schema(self.arguments_model.model_json_schema(by_alias=True))

    def output_schema(self) -> dict[str, Any]:
        """The JSON schema of the result, self-contained."""
        return compact_schema(self.result_model.model_json_schema(by_alias=True))

    def parse(self, arguments: Mapping[str, Any]) -> BaseModel:
        """Validate raw arguments strictly.

        Raises:
            QueryError: with corrective sentences naming what is allowed, never the values.
        """
        return strict_parse(
            self.arguments_model, arguments, lambda e: self._explain(e["loc"], e["type"], e)
        )

    def _explain(self, loc: tuple[int | str, ...], kind: str, error: Any) -> str:
        dims = ", ".join(self.aggregation.dimensions)
        if not loc:
            return "arguments must be a JSON object."
        top = loc[0]
        if len(loc) == 1 and kind == "extra_forbidden":
            allowed = ", ".join(self.arguments_model.model_fields)
            return f"unknown argument; allowed arguments: {allowed}."
        if top == "group_by":
            return f"group_by must be a list of up to {MAX_GROUP_BY} distinct columns from: {dims}."
        if top == "measures":
            measures = ", ".join(self.aggregation.measures)
            return (
                f"measures must be a list of up to {MAX_MEASURES} distinct {{column, stat}} "
                f"entries; columns: {measures}; stats: {', '.join(STATS)}."
            )
        if top == "filters":
            return self.filters._explain(error)
        if top == "region":
            return explain_region(loc, kind)
        if top == "cohort":
            return COHORT_MESSAGE
        return "arguments do not match the input schema of this tool."


def _result_model(dataset: CatalogDataset, aggregation: Aggregation) -> type[BaseModel]:
    cell_fields: dict[str, Any] = {}
    for name in aggregation.dimensions:
        column = dataset.column(name)
        kind = {"integer": int, "number": float, "boolean": bool}.get(column.type, str)  # type: ignore[union-attr]
        cell_fields[name] = (kind | None, Field(None, description=column.description))  # type: ignore[union-attr]
    for name in aggregation.measures:
        for stat in STATS:
            cell_fields[f"{stat}_{name}"] = (
                float | None,
                Field(None, description=f"{stat} of {name}; null when withheld."),
            )
    cell = create_model(
        f"aggregate_{dataset.name}_cell",
        __config__=ConfigDict(extra="forbid"),
        __doc__="One group. Counts are null when suppressed.",
        people=(int | None, Field(description="Distinct people in the group; null if suppressed.")),
        records=(int | None, Field(description="Rows in the group; null if suppressed.")),
        suppressed=(bool, Field(description="True when the counts are withheld.")),
        suppression=(
            Literal["primary", "complementary"] | None,
            Field(
                description="primary: fewer people than the minimum cell size; complementary: "
                "withheld so a primary cell cannot be derived."
            ),
        ),
        **cell_fields,
    )
    return create_model(
        f"aggregate_{dataset.name}_result",
        __doc__=f"Suppressed counts over {dataset.name}.",
        cells=(list[cell], Field(description="One entry per group, in group order.")),
        total_people=(
            int | None,
            Field(description="Distinct people matching the filters; null if below the minimum."),
        ),
        total_records=(int | None, Field(description="Rows matching; null if suppressed.")),
        min_cell_size=(int, Field(description="Groups with fewer people are suppressed.")),
        suppressed_cells=(int, Field(description="Cells withheld for being small.")),
        complementary_cells=(int, Field(description="Cells withheld to protect small ones.")),
        delta_version=(int, Field(description="Delta table version the rows were read from.")),
        as_of=(str, Field(description="When the dataset was last materialised (ISO 8601).")),
        freshness=(
            Literal["fresh", "warn", "stale", "unknown"],
            Field(description="Age of the newest source data against the dataset's SLA."),
        ),
        correlation_id=(str, Field(description="Identifies this call in the audit log.")),
    )
