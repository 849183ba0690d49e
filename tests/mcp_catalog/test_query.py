"""Generated query models, without the protocol around them."""

from datetime import UTC, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mcp_catalog.manifest import CatalogColumn, CatalogDataset
from mcp_catalog.query import DatasetQuery, QueryError, compact_schema
from tests.mcp_catalog.conftest import build_manifest


def _observations() -> DatasetQuery:
    return DatasetQuery.for_dataset(build_manifest(0, 0).datasets[1])


def test_non_finite_numbers_are_rejected_before_validation():
    with pytest.raises(QueryError, match="^arguments must be a JSON object of plain JSON values$"):
        _observations().parse({"filters": {"value_quantity": {"gt": float("nan")}}})


def test_equivalent_queries_have_the_same_canonical_form():
    query = _observations()
    plain = query.canonical(query.parse({"filters": {"code": {"eq": "718-7"}}}))
    spelled_out = query.canonical(
        query.parse(
            {
                "filters": {"code": {"eq": "718-7", "in": None}, "effective_date": None},
                "limit": 100,
                "select": None,
                "cursor": "ignored-by-the-canonical-form",
            }
        )
    )
    assert plain == spelled_out
    assert plain != query.canonical(query.parse({"filters": {"code": {"eq": "8480-6"}}}))


def test_column_names_that_shadow_pydantic_attributes_are_plain_columns():
    columns = [
        CatalogColumn.model_validate(
            {"name": name, "type": "string", "description": "x", "class": "clinical"}
        )
        for name in ("model_config", "schema", "json", "copy")
    ]
    dataset = CatalogDataset(
        name="odd",
        audience="research",
        path="gold/research/odd",
        title="Odd names",
        description="Columns named like pydantic attributes.",
        owner="x",
        key=["schema"],
        columns=columns,
        row_count=2,
        delta_version=0,
        last_materialized=datetime(2026, 1, 1, tzinfo=UTC),
        upstream=[],
    )
    query = DatasetQuery.for_dataset(dataset)
    arguments = query.parse({"filters": {"model_config": {"eq": "a"}, "copy": {"in": ["b"]}}})
    frame = pl.DataFrame({name: ["a", "b"] for name in ("model_config", "schema", "json", "copy")})
    frame = frame.with_columns(pl.Series("copy", ["b", "c"]))
    window = query.plan(frame.lazy(), frame.schema, arguments, 0).collect()
    assert_frame_equal(window, frame.head(1))
    assert list(query.input_schema()["properties"]["filters"]["properties"]) == [
        "model_config",
        "schema",
        "json",
        "copy",
    ]


def test_a_key_outside_the_columns_is_refused():
    dataset = build_manifest(0, 0).datasets[0]
    with pytest.raises(ValueError, match="has a key that is not among its columns"):
        DatasetQuery.for_dataset(dataset.model_copy(update={"key": ["ssn"]}))


def test_compact_schema_inlines_definitions_and_folds_nullable_types_but_not_enums():
    schema = {
        "$defs": {"Row": {"type": "object", "properties": {"a": {"type": "string"}}}},
        "type": "object",
        "properties": {
            "rows": {"type": "array", "items": {"$ref": "#/$defs/Row"}},
            "n": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
            "e": {"anyOf": [{"enum": ["x"], "type": "string"}, {"type": "null"}]},
        },
    }
    assert compact_schema(schema) == {
        "type": "object",
        "properties": {
            "rows": {
                "type": "array",
                "items": {"type": "object", "properties": {"a": {"type": "string"}}},
            },
            "n": {"type": ["integer", "null"], "default": None},
            "e": {"anyOf": [{"enum": ["x"], "type": "string"}, {"type": "null"}]},
        },
    }
