"""Generated query models, without the protocol around them."""

import math
from datetime import UTC, date, datetime

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


def _reference_json(value, kind):
    """What one value becomes in a result, written out value by value."""
    if value is None:
        return None
    if kind == "date":
        return value.isoformat()
    if kind == "datetime":
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    if kind == "number":
        return value if math.isfinite(value) else None
    return value


def test_rows_as_json_writes_iso_dates_utc_datetimes_and_no_non_finite_numbers():
    from mcp_catalog.query import rows_as_json

    dataset = (
        build_manifest(0, 0)
        .datasets[1]
        .model_copy(
            update={
                "columns": [
                    *build_manifest(0, 0).datasets[1].columns,
                    CatalogColumn.model_validate(
                        {
                            "name": "naive_at",
                            "type": "datetime",
                            "description": "x",
                            "class": "clinical",
                        }
                    ),
                ]
            }
        )
    )
    frame = pl.DataFrame(
        {
            "person_pseudonym": ["a", "b", "c", None],
            "observation_key": ["o1", "o2", "o3", "o4"],
            "code": ["718-7"] * 4,
            "value_quantity": [1.5, float("nan"), float("inf"), None],
            "value_unit": ["g/dL", None, "g/dL", "g/dL"],
            "effective_date": [date(1800, 1, 1), date(2024, 2, 29), None, date(2199, 12, 31)],
            "effective_at": [
                datetime(2024, 1, 1, 9, tzinfo=UTC),
                datetime(2024, 1, 1, 9, 0, 0, 123456, tzinfo=UTC),
                None,
                datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
            ],
            "naive_at": [datetime(2024, 1, 1), None, datetime(2024, 5, 5, 1, 2, 3, 500000), None],
        },
        schema_overrides={"effective_at": pl.Datetime("us", "UTC"), "naive_at": pl.Datetime("us")},
    )
    kinds = {column.name: column.type for column in dataset.columns}
    expected = [
        {name: _reference_json(value, kinds[name]) for name, value in row.items()}
        for row in frame.to_dicts()
    ]
    assert rows_as_json(frame, dataset) == expected
