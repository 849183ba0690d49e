"""The generated catalog server, over the in-memory MCP client, on a real Delta lake."""

import json
import logging
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult
from polars.testing import assert_frame_equal

from mcp_catalog.cursor import INVALID_CURSOR_MESSAGE
from mcp_catalog.manifest import DatasetFreshness
from mcp_catalog.query import DatasetQuery, QueryError
from mcp_catalog.server import CatalogBuildError, current_freshness
from quality.lineage import read_events
from tests.mcp_catalog.conftest import (
    Lake,
    build_manifest,
    frame_from_rows,
    make_server,
    write_lake,
)

pytestmark = pytest.mark.anyio

PATIENT_COLUMNS = ["person_pseudonym", "birth_year", "gender", "state", "zip3", "deceased"]
PYDANTIC_TRACES = ("pydantic", "Input should", "input_value", "errors.pydantic.dev", "type=")


async def call(server, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    async with Client(server) as client:
        return await client.call_tool(tool, arguments)


async def query(server, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await call(server, tool, arguments)
    assert not result.is_error, result.content[0].text
    assert result.structured_content is not None
    return result.structured_content


async def error_text(server, tool: str, arguments: dict[str, Any]) -> str:
    result = await call(server, tool, arguments)
    assert result.is_error
    (content,) = result.content
    text = content.text
    assert text.startswith(f"Error executing tool {tool}: ")
    for trace in PYDANTIC_TRACES:
        assert trace not in text
    # Every refusal names its audit record; the sentence before it is what the tests check.
    return re.sub(r" \(correlation id [0-9a-f]{32}\)$", "", text)


def by_key(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    return frame.sort(key)


async def test_each_dataset_has_a_read_only_query_tool_with_a_generated_strict_schema(server):
    async with Client(server) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert sorted(listed) == [
        "aggregate_observations",
        "aggregate_patients",
        "query_observations",
        "query_patients",
    ]

    patients = listed["query_patients"]
    assert patients.title == "Research patients"
    assert patients.annotations is not None
    assert patients.annotations.read_only_hint is True
    assert patients.annotations.destructive_hint is False
    assert patients.annotations.idempotent_hint is True
    assert patients.annotations.open_world_hint is False
    assert "- birth_year (integer): Year of birth." in patients.description

    schema = patients.input_schema
    assert "$defs" not in schema and "$ref" not in json.dumps(schema)
    assert schema["additionalProperties"] is False
    properties = schema["properties"]
    assert sorted(properties) == ["cursor", "filters", "limit", "select", "sort"]
    assert "required" not in schema
    select = properties["select"]
    assert select["items"]["enum"] == PATIENT_COLUMNS
    assert (select["minItems"], select["uniqueItems"]) == (1, True)
    limit = properties["limit"]
    assert (limit["type"], limit["minimum"], limit["maximum"], limit["default"]) == (
        "integer",
        1,
        100,
        100,
    )
    sort_key = properties["sort"]["items"]
    assert sort_key["additionalProperties"] is False
    assert sort_key["properties"]["column"]["enum"] == [
        "person_pseudonym",
        "birth_year",
        "gender",
        "state",
        "deceased",
    ]
    assert properties["sort"]["maxItems"] == 4
    assert properties["cursor"]["maxLength"] == 2048
    filters = properties["filters"]
    assert filters["additionalProperties"] is False
    assert list(filters["properties"]) == PATIENT_COLUMNS
    gender = filters["properties"]["gender"]
    assert gender["additionalProperties"] is False and gender["minProperties"] == 1
    assert sorted(gender["properties"]) == ["eq", "in"]
    assert gender["properties"]["eq"]["anyOf"] == [
        {"enum": ["female", "male", "other", "unknown"], "type": "string"},
        {"type": "null"},
    ]
    assert gender["properties"]["in"]["maxItems"] == 1000
    assert sorted(filters["properties"]["birth_year"]["properties"]) == [
        "eq",
        "gt",
        "gte",
        "in",
        "lt",
        "lte",
    ]
    observation_filters = listed["query_observations"].input_schema["properties"]["filters"]
    effective_date = observation_filters["properties"]["effective_date"]["properties"]["gte"]
    assert (effective_date["type"], effective_date["format"]) == (["string", "null"], "date")
    effective_at = observation_filters["properties"]["effective_at"]["properties"]["lt"]
    assert effective_at["format"] == "date-time"

    output = patients.output_schema
    assert output is not None
    assert output["properties"]["rows"]["items"]["additionalProperties"] is False
    assert set(output["required"]) == {
        "rows",
        "row_count",
        "truncated",
        "next_cursor",
        "delta_version",
        "as_of",
        "freshness",
        "newest_source_at",
        "masked_columns",
        "untrusted_columns",
        "flagged_columns",
        "break_glass",
        "correlation_id",
    }


async def test_instructions_say_what_the_server_offers_in_one_sentence(server):
    async with Client(server) as client:
        instructions = client.instructions
    assert instructions is not None
    assert instructions.endswith(".") and instructions.count(". ") <= 1
    assert "catalog://datasets" in instructions and "researcher role" in instructions


async def test_data_cards_and_listing_describe_the_catalog_without_storage_paths(
    server, lake: Lake
):
    async with Client(server) as client:
        listed = {r.uri: r for r in (await client.list_resources()).resources}
        card = json.loads(
            (await client.read_resource("catalog://datasets/patients")).contents[0].text
        )
        observations = json.loads(
            (await client.read_resource("catalog://datasets/observations")).contents[0].text
        )
        listing_result = await client.read_resource("catalog://datasets")

    assert sorted(listed) == [
        "catalog://datasets",
        "catalog://datasets/observations",
        "catalog://datasets/patients",
    ]
    assert all(r.mime_type == "application/json" for r in listed.values())

    dataset = lake.manifest.datasets[0]
    assert card["tools"] == {"query": "query_patients", "aggregate": "aggregate_patients"}
    assert card["key"] == ["person_pseudonym"]
    assert card["row_count"] == 250 and card["delta_version"] == 0
    assert card["owner"] == dataset.owner and card["audience"] == "research"
    assert card["upstream"] == ["silver/ehr/patients"] and card["max_limit"] == 100
    assert datetime.fromisoformat(card["last_materialized"]) == dataset.last_materialized
    assert card["columns"][2] == {
        "name": "gender",
        "type": "string",
        "description": "Administrative gender.",
        "class": "quasi_identifier",
        "visible": True,
        "filterable": True,
        "sortable": True,
        "enum": ["female", "male", "other", "unknown"],
    }
    assert [c["name"] for c in observations["columns"]][-2:] == ["effective_date", "effective_at"]

    text = listing_result.contents[0].text
    assert "gold/" not in text and str(lake.root) not in text
    listing = json.loads(text)
    assert [entry["name"] for entry in listing] == ["patients", "observations"]
    assert listing[1] == {
        "name": "observations",
        "title": "Research observations",
        "description": "Laboratory results and vital signs, one row per observation.",
        "row_count": 250,
        "delta_version": 0,
        "last_materialized": "2026-11-02T08:30:00+00:00",
        "uri": "catalog://datasets/observations",
        "tools": ["query_observations", "aggregate_observations"],
    }
    assert card["policy"]["min_cell_size"] == 5 and card["policy"]["consent"].startswith("rows")


@pytest.mark.parametrize(
    "uri",
    [
        "catalog://datasets/nope",
        "catalog://datasets/../x",
        "catalog://datasets/%2e%2e/patients",
        "catalog://datasets/patients%00",
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data",
    ],
)
async def test_unknown_resource_uris_are_not_found(server, uri: str):
    async with Client(server) as client:
        with pytest.raises(MCPError) as raised:
            await client.read_resource(uri)
    assert raised.value.message.startswith("Unknown resource")


async def test_eq_filter_returns_the_matching_rows_ordered_by_key(server, lake: Lake):
    result = await query(server, "query_patients", {"filters": {"gender": {"eq": "female"}}})
    expected = by_key(lake.patients.filter(pl.col("gender") == "female"), "person_pseudonym")
    assert 0 < expected.height <= 100
    assert result["row_count"] == expected.height
    assert result["truncated"] is False and result["next_cursor"] is None
    assert_frame_equal(frame_from_rows(result["rows"], lake.patients), expected)


async def test_in_and_boolean_filters_combine_with_and(server, lake: Lake):
    arguments = {"filters": {"state": {"in": ["CA", "NY"]}, "deceased": {"eq": False}}}
    result = await query(server, "query_patients", arguments)
    expected = by_key(
        lake.patients.filter(pl.col("state").is_in(["CA", "NY"]), ~pl.col("deceased")),
        "person_pseudonym",
    ).head(100)
    assert_frame_equal(frame_from_rows(result["rows"], lake.patients), expected)


async def test_range_filters_on_numbers_dates_and_datetimes(server, lake: Lake):
    arguments = {
        "filters": {
            "effective_date": {"gte": "2023-06-01", "lt": "2024-06-01"},
            "value_quantity": {"gt": 50},
            # 2023-09-01T02:00+02:00 is midnight UTC.
            "effective_at": {"gte": "2023-09-01T02:00:00+02:00"},
        },
        "limit": 500,
    }
    result = await query(server, "query_observations", arguments)
    expected = by_key(
        lake.observations.filter(
            pl.col("effective_date") >= date(2023, 6, 1),
            pl.col("effective_date") < date(2024, 6, 1),
            pl.col("value_quantity") > 50,
            pl.col("effective_at") >= datetime(2023, 9, 1, tzinfo=UTC),
        ),
        "observation_key",
    )
    assert expected.height > 20
    assert_frame_equal(frame_from_rows(result["rows"], lake.observations), expected)


async def test_select_returns_only_the_selected_columns(server, lake: Lake):
    result = await query(
        server,
        "query_observations",
        {"select": ["effective_at", "code"], "filters": {"code": {"eq": "718-7"}}, "limit": 5},
    )
    assert all(set(row) == {"effective_at", "code"} for row in result["rows"])
    expected = (
        by_key(lake.observations.filter(pl.col("code") == "718-7"), "observation_key")
        .head(5)
        .select("effective_at", "code")
    )
    assert_frame_equal(
        frame_from_rows(result["rows"], lake.observations.select("effective_at", "code")),
        expected,
    )
    assert result["truncated"] is True and result["next_cursor"]


async def test_paging_a_descending_sort_returns_every_row_exactly_once(server, lake: Lake):
    arguments: dict[str, Any] = {
        "sort": [{"column": "value_quantity", "descending": True}],
        "limit": 37,
    }
    pages: list[dict[str, Any]] = []
    async with Client(server) as client:
        cursor = None
        while True:
            page_arguments = arguments if cursor is None else {**arguments, "cursor": cursor}
            result = await client.call_tool("query_observations", page_arguments)
            assert not result.is_error, result.content[0].text
            page = result.structured_content
            pages.append(page)
            cursor = page["next_cursor"]
            assert page["truncated"] is (cursor is not None)
            if cursor is None:
                break
    assert [p["row_count"] for p in pages] == [37] * 6 + [28]
    rows = [row for page in pages for row in page["rows"]]
    expected = lake.observations.sort(
        ["value_quantity", "observation_key"], descending=[True, False], nulls_last=True
    )
    assert_frame_equal(frame_from_rows(rows, lake.observations), expected)


async def test_a_tampered_cursor_is_rejected(server):
    first = await query(server, "query_patients", {"limit": 10})
    cursor = first["next_cursor"]
    flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
    for bad in (flipped, cursor[:-1], cursor + "A", "not a cursor", "=" * 40):
        text = await error_text(server, "query_patients", {"limit": 10, "cursor": bad})
        assert text.endswith(INVALID_CURSOR_MESSAGE)


async def test_a_cursor_reused_with_another_query_is_rejected(server):
    arguments = {"filters": {"gender": {"eq": "male"}}, "limit": 10}
    cursor = (await query(server, "query_patients", arguments))["next_cursor"]
    assert (await query(server, "query_patients", {**arguments, "cursor": cursor}))["rows"]

    for other in (
        {"filters": {"gender": {"eq": "female"}}, "limit": 10},
        {"filters": {"gender": {"eq": "male"}}, "limit": 11},
        {"filters": {"gender": {"eq": "male"}}, "limit": 10, "select": ["gender"]},
        {"filters": {"gender": {"eq": "male"}}, "limit": 10, "sort": [{"column": "state"}]},
    ):
        text = await error_text(server, "query_patients", {**other, "cursor": cursor})
        assert text.endswith(INVALID_CURSOR_MESSAGE)
    text = await error_text(server, "query_observations", {"limit": 10, "cursor": cursor})
    assert text.endswith(INVALID_CURSOR_MESSAGE)


async def test_a_cursor_from_another_server_or_catalog_version_is_rejected(lake: Lake):
    secret = b"k" * 32
    first = make_server(lake.manifest, lake.root, cursor_secret=secret)
    cursor = (await query(first, "query_patients", {"limit": 10}))["next_cursor"]
    # Same secret, same version: the cursor carries over (stateless replicas).
    twin = make_server(lake.manifest, lake.root, cursor_secret=secret)
    assert (await query(twin, "query_patients", {"limit": 10, "cursor": cursor}))["rows"]

    stranger = make_server(lake.manifest, lake.root, cursor_secret=b"s" * 32)
    text = await error_text(stranger, "query_patients", {"limit": 10, "cursor": cursor})
    assert text.endswith(INVALID_CURSOR_MESSAGE)

    newer = lake.manifest.model_copy(
        update={
            "datasets": [
                lake.manifest.datasets[0].model_copy(update={"delta_version": 1}),
                lake.manifest.datasets[1],
            ]
        }
    )
    moved_on = make_server(newer, lake.root, cursor_secret=secret)
    text = await error_text(moved_on, "query_patients", {"limit": 10, "cursor": cursor})
    assert text.endswith(INVALID_CURSOR_MESSAGE)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            {"select": ["birth_year", "ssn"]},
            "unknown column 'ssn' in select; allowed columns for patients: person_pseudonym, "
            "birth_year, gender, state, zip3, deceased.",
        ),
        (
            {"filters": {"name": {"eq": "x"}}},
            "unknown column 'name' in filters; filterable columns for patients: "
            "person_pseudonym, birth_year, gender, state, zip3, deceased.",
        ),
        (
            {"sort": [{"column": "ssn"}]},
            "unknown column 'ssn' in sort; sortable columns for patients: person_pseudonym, "
            "birth_year, gender, state, deceased.",
        ),
        (
            {"sort": [{"column": "zip3"}]},
            "column 'zip3' cannot be sorted on; sortable columns for patients: "
            "person_pseudonym, birth_year, gender, state, deceased.",
        ),
        (
            {"sort": [{"column": "age; DROP TABLE patients"}]},
            "unknown column in sort; sortable columns for patients: person_pseudonym, "
            "birth_year, gender, state, deceased.",
        ),
        (
            {"sort": [{"column": "`birth_year`"}]},
            "unknown column in sort; sortable columns for patients:",
        ),
        (
            {"select": ["Birth_Year"]},
            "unknown column 'Birth_Year' in select; allowed columns for patients:",
        ),
        (
            {"include_phi": True},
            "unknown argument 'include_phi'; allowed arguments: select, filters, sort, limit, "
            "cursor.",
        ),
        (
            {"filters": {"birth_year": {"like": 1950}}},
            "unknown operator 'like' in filters.birth_year; allowed operators: eq, in, gte, gt, "
            "lte, lt.",
        ),
        (
            {"filters": {"gender": {"gte": "female"}}},
            "unknown operator 'gte' in filters.gender; allowed operators: eq, in.",
        ),
        (
            {"filters": {"birth_year": {}}},
            "filters.birth_year must be an object with at least one of: eq, in, gte, gt, lte, lt.",
        ),
        (
            {"filters": {"gender": {"eq": "femme"}}},
            "filters.gender.eq must be one of: female, male, other, unknown.",
        ),
        (
            {"filters": {"birth_year": {"eq": "1950"}}},
            "filters.birth_year.eq must be a 64-bit integer.",
        ),
        (
            {"filters": {"deceased": {"eq": 0}}},
            "filters.deceased.eq must be true or false.",
        ),
        (
            {"filters": {"state": {"eq": "C" * 257}}},
            "filters.state.eq must be a string of at most 256 characters.",
        ),
        (
            {"select": []},
            "select must be a non-empty list of distinct column names;",
        ),
        (
            {"select": ["gender", "gender"]},
            "select must be a non-empty list of distinct column names;",
        ),
        (
            {"sort": [{"column": "state"}] * 5},
            "sort must be a list of 1 to 4 entries {column, descending}, each column at most once;",
        ),
        (
            {"sort": [{"column": "state", "descending": "yes"}]},
            "sort descending must be true or false.",
        ),
        (
            {"filters": "gender = 'female'"},
            "filters must be an object keyed by column name;",
        ),
    ],
)
async def test_invalid_arguments_are_rejected_with_a_corrective_sentence(
    server, arguments: dict[str, Any], expected: str
):
    text = await error_text(server, "query_patients", arguments)
    assert expected in text
    assert "'C'" not in text and "CCCC" not in text and "DROP" not in text and "femme" not in text


def test_a_not_filterable_column_is_named_as_such():
    patients = build_manifest(0, 0).datasets[0]
    columns = [
        c.model_copy(update={"filterable": False}) if c.name == "zip3" else c
        for c in patients.columns
    ]
    narrowed = DatasetQuery.for_dataset(patients.model_copy(update={"columns": columns}))
    with pytest.raises(QueryError, match=r"^column 'zip3' cannot be filtered; filterable columns"):
        narrowed.parse({"filters": {"zip3": {"eq": "021"}}})


@pytest.mark.parametrize("limit", ["100", True, -1, 0, 2**63, 101, 10.0, None, [5]])
async def test_limit_is_an_integer_within_the_dataset_maximum_and_never_coerced(server, limit):
    text = await error_text(server, "query_patients", {"limit": limit})
    assert text.endswith("limit must be an integer from 1 to 100.")


async def test_sql_looking_values_are_literals_and_change_nothing(server, lake: Lake):
    uri = lake.root / "gold" / "research" / "patients"
    before = DeltaTable(uri).version()
    for value in ("1' OR '1'='1", "x'); DROP TABLE patients;--", 'R1" OR 1=1 --'):
        result = await query(server, "query_patients", {"filters": {"state": {"eq": value}}})
        assert result["rows"] == [] and result["row_count"] == 0
        result = await query(
            server, "query_patients", {"filters": {"person_pseudonym": {"in": [value, "*"]}}}
        )
        assert result["rows"] == []
    assert DeltaTable(uri).version() == before


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (
            {"effective_date": {"eq": "2024-02-30"}},
            "filters.effective_date.eq must be a calendar date",
        ),
        (
            {"effective_date": {"eq": "2024-2-3"}},
            "filters.effective_date.eq must be a calendar date",
        ),
        ({"effective_date": {"eq": "0001-01-01"}}, "from 1800-01-01 to 2199-12-31"),
        ({"effective_date": {"eq": 20240203}}, "filters.effective_date.eq must be a calendar date"),
        (
            {"effective_at": {"gte": "2024-02-03T10:00:00"}},
            "filters.effective_at.gte must be an ISO 8601 date-time with a timezone",
        ),
        ({"effective_at": {"gte": 1706954400}}, "filters.effective_at.gte must be an ISO 8601"),
        ({"value_quantity": {"gt": "5"}}, "filters.value_quantity.gt must be a finite number"),
        ({"code": {"in": ["718-7", "drop"]}}, "each value in filters.code.in must be one of:"),
        ({"code": {"in": []}}, "filters.code.in must be a list of 1 to 1000 values"),
    ],
)
async def test_typed_filter_values_are_validated_strictly(server, filters, expected):
    text = await error_text(server, "query_observations", {"filters": filters})
    assert expected in text


async def test_an_in_list_is_capped_at_1000_values(server):
    values = [f"R{i:05d}" for i in range(1001)]
    text = await error_text(
        server, "query_patients", {"filters": {"person_pseudonym": {"in": values}}}
    )
    assert "filters.person_pseudonym.in must be a list of 1 to 1000 values" in text
    assert "R00000" not in text
    result = await query(
        server, "query_patients", {"filters": {"person_pseudonym": {"in": values[:1000]}}}
    )
    assert result["truncated"] is False


async def test_explicit_nulls_mean_not_given(server, lake: Lake):
    result = await query(
        server,
        "query_patients",
        {
            "select": None,
            "sort": None,
            "cursor": None,
            "filters": {"gender": {"eq": "other", "in": None}},
        },
    )
    expected = by_key(lake.patients.filter(pl.col("gender") == "other"), "person_pseudonym")
    assert_frame_equal(frame_from_rows(result["rows"], lake.patients), expected.head(100))


async def test_results_come_from_the_pinned_version_not_the_latest(server, lake: Lake):
    rows: list[dict[str, Any]] = []
    arguments: dict[str, Any] = {"limit": 100}
    async with Client(server) as client:
        while True:
            page = (await client.call_tool("query_patients", arguments)).structured_content
            assert page["delta_version"] == 0
            assert page["as_of"] == "2026-11-02T08:30:00Z"
            assert page["masked_columns"] == []
            assert (page["freshness"], page["newest_source_at"]) == ("unknown", None)
            rows += page["rows"]
            if page["next_cursor"] is None:
                break
            arguments = {"limit": 100, "cursor": page["next_cursor"]}
    assert lake.patients_latest.height == 260
    assert_frame_equal(
        frame_from_rows(rows, lake.patients), by_key(lake.patients, "person_pseudonym")
    )


async def test_a_forced_internal_error_returns_only_a_fixed_sentence_and_a_correlation_id(
    tmp_path, caplog: pytest.LogCaptureFixture
):
    broken = write_lake(tmp_path / "lake")
    server = make_server(broken.manifest, broken.root)
    table = broken.root / "gold" / "research" / "patients"
    for data_file in table.glob("*.parquet"):
        data_file.unlink()

    with caplog.at_level(logging.ERROR, logger="mcp_catalog.server"):
        text = await error_text(server, "query_patients", {"filters": {"state": {"eq": "CA"}}})
    match = re.fullmatch(
        r"Error executing tool query_patients: the request could not be completed because of "
        r"an internal error; correlation id ([0-9a-f]{32})",
        text,
    )
    assert match is not None, text
    assert str(tmp_path) not in text and "parquet" not in text.lower()
    logged = [r for r in caplog.records if r.name == "mcp_catalog.server"]
    assert len(logged) == 1 and match.group(1) in logged[0].getMessage()
    assert logged[0].exc_info is not None

    shutil.rmtree(table)
    text = await error_text(server, "query_patients", {})
    assert "correlation id" in text and str(tmp_path) not in text


def test_an_unknown_role_is_refused_with_the_known_roles(lake: Lake):
    with pytest.raises(
        CatalogBuildError,
        match=r"^unknown role 'admin'; known roles: researcher, clinician, data_steward, "
        r"compliance_officer$",
    ):
        make_server(lake.manifest, lake.root, role="admin")
    with pytest.raises(CatalogBuildError):
        make_server(lake.manifest, lake.root, role="Researcher")


def test_a_missing_table_fails_the_build_naming_the_dataset(tmp_path, lake: Lake):
    (tmp_path / "gold" / "research" / "patients").mkdir(parents=True)
    with pytest.raises(CatalogBuildError, match=r"^dataset 'patients' has no Delta table"):
        make_server(lake.manifest, tmp_path, policy=lake.policy)


def test_a_short_cursor_secret_is_refused(lake: Lake):
    with pytest.raises(ValueError, match="at least 16 bytes"):
        make_server(lake.manifest, lake.root, cursor_secret=b"short")


async def test_integers_beyond_64_bits_are_rejected_before_any_read(server):
    text = await error_text(server, "query_patients", {"filters": {"birth_year": {"gte": 2**63}}})
    assert text.endswith("filters.birth_year.gte must be a 64-bit integer.")
    result = await query(server, "query_patients", {"filters": {"birth_year": {"lt": 2**63 - 1}}})
    assert result["row_count"] == 100


def test_an_enum_on_a_non_string_column_fails_the_build(lake: Lake):
    patients, observations = lake.manifest.datasets
    columns = [
        c.model_copy(update={"enum": ["1950"]}) if c.name == "birth_year" else c
        for c in patients.columns
    ]
    broken = lake.manifest.model_copy(
        update={"datasets": [patients.model_copy(update={"columns": columns}), observations]}
    )
    with pytest.raises(CatalogBuildError, match=r"enum on a non-string column \(birth_year\)"):
        make_server(broken, lake.root)


async def test_a_name_with_a_trailing_newline_is_not_echoed(server):
    text = await error_text(server, "query_patients", {"select": ["ssn\n"]})
    assert "unknown column in select; allowed columns for patients:" in text


def _with_freshness(dataset, newest_source_at):
    block = DatasetFreshness(
        warn_after_seconds=3600,
        fail_after_seconds=7200,
        newest_source_at=newest_source_at,
        status="fresh",
        checked_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return dataset.model_copy(update={"freshness": block})


def test_freshness_is_recomputed_at_call_time_from_the_sla(lake: Lake):
    dataset = lake.manifest.datasets[0]
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    made = {age: _with_freshness(dataset, now - timedelta(minutes=age)) for age in (30, 90, 150)}
    assert [current_freshness(made[a], now=now) for a in (30, 90, 150)] == [
        "fresh",
        "warn",
        "stale",
    ]
    assert current_freshness(dataset, now=now) == "unknown"
    assert current_freshness(_with_freshness(dataset, None), now=now) == "unknown"


async def test_every_result_says_how_fresh_the_data_is(lake: Lake):
    stale = _with_freshness(lake.manifest.datasets[0], datetime(2020, 1, 1, tzinfo=UTC))
    server = make_server(lake.manifest.model_copy(update={"datasets": [stale]}), lake.root)
    async with Client(server) as client:
        page = (await client.call_tool(f"query_{stale.name}", {"limit": 1})).structured_content
    assert page["freshness"] == "stale"
    assert page["newest_source_at"] == "2020-01-01T00:00:00Z"


async def test_each_query_emits_one_lineage_read_event_without_arguments(tmp_path):
    lake = write_lake(tmp_path / "lake")
    server = make_server(lake.manifest, lake.root)
    secret = "1' OR 'x'='x-planted"
    async with Client(server) as client:
        await client.call_tool("query_patients", {"filters": {"state": {"eq": secret}}})
        await client.call_tool("query_observations", {"limit": 1})
    server.service.flush_lineage()  # events are written off the request path
    events = read_events(lake.root)
    assert [e["job"]["name"] for e in events] == ["mcp.query_patients", "mcp.query_observations"]
    assert events[0]["inputs"][0]["name"].endswith("gold/research/patients")
    assert events[0]["inputs"][0]["facets"]["version"]["datasetVersion"] == "0"
    assert secret not in json.dumps(events)


def test_a_pinned_version_is_read_from_its_files_only_when_they_hold_the_rows_as_they_are(
    tmp_path, lake: Lake
):
    from mcp_catalog.server import _pinned_files

    plain = DeltaTable(lake.root / "gold" / "research" / "patients", version=0)
    frame = pl.scan_delta(plain)
    files = _pinned_files(plain, frame.collect_schema())
    assert files is not None
    assert_frame_equal(
        files.collect().sort("person_pseudonym"), lake.patients.sort("person_pseudonym")
    )

    partitioned_uri = tmp_path / "partitioned"
    from deltalake import write_deltalake

    write_deltalake(partitioned_uri, lake.patients.to_arrow(), partition_by=["gender"])
    partitioned = DeltaTable(partitioned_uri)
    assert _pinned_files(partitioned, pl.scan_delta(partitioned).collect_schema()) is None
