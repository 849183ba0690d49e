"""Genomic region queries: the generated ``region`` argument, its overlap semantics, its
strict validation, and how it combines with filters, sorting, paging and aggregates, over a
real Delta lake through the in-memory MCP client."""

import json
import re
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from mcp import Client
from mcp.types import CallToolResult
from polars.testing import assert_frame_equal
from pydantic import ValidationError

from mcp_catalog.catalog import TableState, source_entry
from mcp_catalog.cursor import INVALID_CURSOR_MESSAGE
from mcp_catalog.lint import lint_text
from mcp_catalog.manifest import RegionColumns, dump_manifest, load_manifest
from mcp_catalog.principal import configured_principal
from mcp_catalog.query import MAX_REGION_SPAN, DatasetQuery
from mcp_catalog.server import CatalogService
from tests.mcp_catalog.conftest import (
    GENOMIC_POSITIONS,
    GenomicLake,
    build_genomic_manifest,
    genomic_policy_document,
    make_server,
    write_genomic_lake,
    write_policy_document,
)

pytestmark = pytest.mark.anyio

FREQUENCIES = "query_variant_frequencies"
PYDANTIC_TRACES = ("pydantic", "Input should", "input_value", "errors.pydantic.dev", "type=")
SPAN_MESSAGE = (
    "region must span at most 50,000,000 bases (end - start + 1); split a wider interval "
    "into several queries."
)
CHROM_MESSAGE = (
    "region.chrom must be a contig name of 1 to 64 characters (letters, digits and "
    "punctuation other than quotes, brackets, commas and backslashes), such as chr1 or 1."
)
SHAPE_MESSAGE = (
    "region must be an object with exactly chrom (a contig name), start and end (1-based "
    "positions)."
)


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
    text = text.removeprefix(f"Error executing tool {tool}: ")
    return re.sub(r" \(correlation id [0-9a-f]{32}\)$", "", text)


def genomic_server(lake: GenomicLake, **options: Any):
    return make_server(lake.manifest, lake.root, **options)


@pytest.fixture(scope="module")
def server(genomic_lake: GenomicLake):
    return genomic_server(genomic_lake)


def released(lake: GenomicLake) -> pl.DataFrame:
    """What the frequency view may ever return: rows at or above the allele-count threshold."""
    return lake.frequencies.filter(pl.col("allele_count") >= 5)


def overlapping(frame: pl.DataFrame, chrom: str, start: int, end: int) -> pl.DataFrame:
    return frame.filter(
        (pl.col("chrom") == chrom) & (pl.col("pos") <= end) & (pl.col("end") >= start)
    )


def sites(rows: list[dict[str, Any]]) -> list[tuple[str, int, int, str]]:
    return [(r["chrom"], r["pos"], r["end"], r["alt"]) for r in rows]


def _principal(policy, role: str, purpose: str):
    return configured_principal(policy, subject=f"test-{role}", role=role, purpose=purpose)


# -- the schema ----------------------------------------------------------------------------


async def test_a_genomic_dataset_gets_a_strict_region_argument_in_both_tools(server):
    async with Client(server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    schema = tools[FREQUENCIES].input_schema
    assert list(schema["properties"]) == ["select", "filters", "region", "sort", "limit", "cursor"]
    region = schema["properties"]["region"]
    assert region["type"] == ["object", "null"] and region["additionalProperties"] is False
    assert region["required"] == ["chrom", "start", "end"]
    chrom, start, end = (region["properties"][k] for k in ("chrom", "start", "end"))
    assert (chrom["type"], chrom["maxLength"]) == ("string", 64)
    assert (start["type"], start["minimum"]) == ("integer", 1)
    assert (end["type"], end["minimum"]) == ("integer", 1)
    assert "pos to end interval overlaps start to end" in region["description"]

    aggregate = tools["aggregate_genotypes"].input_schema
    assert list(aggregate["properties"]) == ["group_by", "measures", "filters", "region"]
    assert aggregate["properties"]["region"]["properties"] == region["properties"]
    # Frequencies have no person to count: row-level access only.
    assert "aggregate_variant_frequencies" not in tools


async def test_datasets_without_a_region_have_no_region_argument(lake):
    server = make_server(lake.manifest, lake.root)
    async with Client(server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert list(tools["query_patients"].input_schema["properties"]) == [
        "select",
        "filters",
        "sort",
        "limit",
        "cursor",
    ]
    assert "region" not in tools["aggregate_patients"].input_schema["properties"]
    text = await error_text(
        server, "query_patients", {"region": {"chrom": "chr1", "start": 1, "end": 2}}
    )
    assert text == (
        "unknown argument 'region'; allowed arguments: select, filters, sort, limit, cursor."
    )


# -- overlap semantics ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        # The deletion at 95-104 spans into the region; 90-99 ends before it; 201 is after it.
        (
            ("chr1", 100, 200),
            [
                ("chr1", 95, 104, "A"),
                ("chr1", 100, 100, "A"),
                ("chr1", 100, 100, "T"),
                ("chr1", 200, 200, "C"),
            ],
        ),
        # start == end: a one-base region finds the SNVs there and the deletion covering it.
        (
            ("chr1", 100, 100),
            [("chr1", 95, 104, "A"), ("chr1", 100, 100, "A"), ("chr1", 100, 100, "T")],
        ),
        # The last base of the deletion overlaps; the base after it does not.
        (("chr1", 104, 104), [("chr1", 95, 104, "A")]),
        (("chr1", 105, 199), []),
        (("chr1", 99, 99), [("chr1", 90, 99, "A"), ("chr1", 95, 104, "A")]),
        (("chr1", 200, 201), [("chr1", 200, 200, "C"), ("chr1", 201, 201, "G")]),
        # Another contig with the same positions is not in the region.
        (("chr2", 100, 200), [("chr2", 100, 100, "A")]),
        # Exact contig names: chr1 does not match chr10, and 1 does not match chr1.
        (("chr10", 100, 200), [("chr10", 150, 150, "A")]),
        (("1", 1, 1000), []),
    ],
)
async def test_a_region_returns_the_rows_overlapping_it_one_based_and_inclusive(
    server, genomic_lake: GenomicLake, region: tuple[str, int, int], expected: list[tuple]
):
    chrom, start, end = region
    result = await query(
        server, FREQUENCIES, {"region": {"chrom": chrom, "start": start, "end": end}}
    )
    assert sites(result["rows"]) == expected
    assert sites(overlapping(released(genomic_lake), chrom, start, end).to_dicts()) == expected


async def test_the_widest_allowed_region_is_accepted_and_one_base_more_is_not(server):
    widest = {"chrom": "chr3", "start": 1, "end": MAX_REGION_SPAN}
    result = await query(server, FREQUENCIES, {"region": widest, "limit": 1})
    assert result["truncated"] is True
    wider = {**widest, "end": MAX_REGION_SPAN + 1}
    assert await error_text(server, FREQUENCIES, {"region": wider}) == SPAN_MESSAGE


# -- combined with filters, sort, select and paging ----------------------------------------


async def test_a_region_combines_with_filters_sort_select_and_paging(
    server, genomic_lake: GenomicLake
):
    arguments = {
        "region": {"chrom": "chr3", "start": 1100, "end": 1500},
        "filters": {"pos": {"lte": 1450}, "filter_pass": {"eq": True}},
        "sort": [{"column": "allele_count", "descending": True}],
        "select": ["pos", "allele_count"],
        "limit": 4,
    }
    pages = [await query(server, FREQUENCIES, arguments)]
    while pages[-1]["next_cursor"] is not None:
        cursor = pages[-1]["next_cursor"]
        pages.append(await query(server, FREQUENCIES, {**arguments, "cursor": cursor}))
    assert len(pages) > 2
    assert all(page["row_count"] == 4 for page in pages[:-1])
    assert [page["truncated"] for page in pages] == [True] * (len(pages) - 1) + [False]
    got = pl.DataFrame(
        [row for page in pages for row in page["rows"]],
        schema={"pos": pl.Int64, "allele_count": pl.Int64},
        orient="row",
    )

    expected = (
        overlapping(released(genomic_lake), "chr3", 1100, 1500)
        .filter((pl.col("pos") <= 1450) & pl.col("filter_pass"))
        .sort(["allele_count", "chrom", "pos", "ref", "alt"], descending=[True] + [False] * 4)
        .select("pos", "allele_count")
    )
    assert expected.height > 8
    assert_frame_equal(got, expected)


async def test_a_cursor_from_one_region_cannot_be_replayed_for_another(server):
    first = {"region": {"chrom": "chr3", "start": 1000, "end": 1600}, "limit": 5}
    cursor = (await query(server, FREQUENCIES, first))["next_cursor"]
    assert cursor is not None
    assert (await query(server, FREQUENCIES, {**first, "cursor": cursor}))["rows"]

    for region in (
        {"chrom": "chr3", "start": 1000, "end": 1601},
        {"chrom": "chr3", "start": 1001, "end": 1600},
        {"chrom": "chr1", "start": 1000, "end": 1600},
    ):
        arguments = {**first, "region": region, "cursor": cursor}
        assert await error_text(server, FREQUENCIES, arguments) == INVALID_CURSOR_MESSAGE
    # Nor without the region it was issued for.
    assert await error_text(server, FREQUENCIES, {"limit": 5, "cursor": cursor}) == (
        INVALID_CURSOR_MESSAGE
    )


def test_region_conditions_come_first_so_row_groups_are_pruned_by_position():
    dataset = build_genomic_manifest().datasets[0]
    query = DatasetQuery.for_dataset(dataset)
    parsed = query.parse(
        {
            "filters": {"allele_count": {"gte": 10}},
            "region": {"chrom": "chr1", "start": 100, "end": 200},
        }
    )
    conditions = query.conditions(parsed, pl.Schema())
    expected = [
        pl.col("chrom") == pl.lit("chr1", pl.String),
        pl.col("pos") <= pl.lit(200),
        pl.col("end") >= pl.lit(100),
        pl.col("allele_count") >= pl.lit(10),
    ]
    assert [str(c) for c in conditions] == [str(e) for e in expected]
    # The region is part of the canonical query that cursors and cached answers are bound to.
    assert json.loads(query.canonical(parsed))["region"] == {
        "chrom": "chr1",
        "start": 100,
        "end": 200,
    }


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        (
            {"chrom": "chr1", "start": 12345, "end": 12344},
            "region.end must be greater than or equal to region.start.",
        ),
        ({"chrom": "chr1", "start": 1, "end": 50_000_001}, SPAN_MESSAGE),
        ({"chrom": "chr1", "start": 12345, "end": 87_654_321}, SPAN_MESSAGE),
        (
            {"chrom": "chr1", "start": 1, "end": 2, "strand": "minus"},
            "unknown key 'strand' in region; region takes only chrom, start and end.",
        ),
        (
            {"chrom": "chr1", "start": 1, "end": 2, "x; DROP": 1},
            "unknown key in region; region takes only chrom, start and end.",
        ),
        (
            {"chrom": "chr1", "start": 1},
            "region.end is missing; region takes chrom, start and end.",
        ),
        (
            {"chrom": "chr1", "start": "12345", "end": 12346},
            "region.start must be an integer position of at least 1 (1-based).",
        ),
        (
            {"chrom": "chr1", "start": 12345.0, "end": 12346},
            "region.start must be an integer position of at least 1 (1-based).",
        ),
        (
            {"chrom": "chr1", "start": True, "end": 12346},
            "region.start must be an integer position of at least 1 (1-based).",
        ),
        (
            {"chrom": "chr1", "start": 0, "end": 12346},
            "region.start must be an integer position of at least 1 (1-based).",
        ),
        (
            {"chrom": "chr1", "start": 12345, "end": 2**63},
            "region.end must be an integer position of at least 1 (1-based).",
        ),
        ({"chrom": 12345, "start": 1, "end": 2}, CHROM_MESSAGE),
        ({"chrom": "chr 12345", "start": 1, "end": 2}, CHROM_MESSAGE),
        ({"chrom": "chr1' OR '1'='1", "start": 1, "end": 2}, CHROM_MESSAGE),
        ({"chrom": "", "start": 1, "end": 2}, CHROM_MESSAGE),
        ({"chrom": "c" * 65, "start": 1, "end": 2}, CHROM_MESSAGE),
        ("chr1:12345-12346", SHAPE_MESSAGE),
        ([["chr1", 12345, 12346]], SHAPE_MESSAGE),
    ],
)
async def test_an_invalid_region_is_rejected_with_a_corrective_sentence_and_no_values(
    server, region: Any, expected: str
):
    text = await error_text(server, FREQUENCIES, {"region": region})
    assert text == expected
    for value in ("12345", "12344", "87654321", "minus", "DROP", "OR", "ccccc", "12346"):
        assert value not in text


async def test_the_aggregate_tool_explains_region_errors_in_the_same_sentences(server):
    arguments = {"region": {"chrom": "chr1", "start": 12345, "end": 12344}}
    assert await error_text(server, "aggregate_genotypes", arguments) == (
        "region.end must be greater than or equal to region.start."
    )
    wide = {"region": {"chrom": "chr1", "start": 1, "end": 60_000_000}}
    assert await error_text(server, "aggregate_genotypes", wide) == SPAN_MESSAGE


# -- aggregates ----------------------------------------------------------------------------


async def test_the_aggregate_tool_counts_only_the_rows_overlapping_the_region(
    genomic_lake: GenomicLake,
):
    result = await query(
        genomic_server(genomic_lake),
        "aggregate_genotypes",
        {"group_by": ["zygosity"], "region": {"chrom": "chr1", "start": 120, "end": 180}},
    )
    expected = (
        overlapping(genomic_lake.genotypes, "chr1", 120, 180)
        .filter(
            (pl.col("depth") >= 10) & ~pl.col("person_pseudonym").is_in(list(genomic_lake.revoked))
        )
        .group_by("zygosity")
        .agg(people=pl.col("person_pseudonym").n_unique(), records=pl.len())
        .sort("zygosity")
    )
    assert min(expected["people"]) >= 5  # every cell is large enough to be published
    got = pl.DataFrame(
        [
            {"zygosity": c["zygosity"], "people": c["people"], "records": c["records"]}
            for c in result["cells"]
        ],
        schema=expected.schema,
    ).sort("zygosity")
    assert_frame_equal(got, expected, check_dtypes=False)
    assert result["total_records"] == expected["records"].sum()


# -- roles, descriptions and cards ---------------------------------------------------------


async def test_the_region_is_offered_only_to_roles_that_see_every_region_column(tmp_path):
    lake = write_genomic_lake(tmp_path)
    # chrom as a quasi-identifier: the data steward does not see it.
    manifest = build_genomic_manifest(classes={"chrom": "quasi_identifier"})
    policy = write_policy_document(tmp_path / "steward.yaml", genomic_policy_document(manifest))
    steward = make_server(
        manifest,
        lake.root,
        role="data_steward",
        policy=policy,
        principal=_principal(policy, "data_steward", "quality_improvement"),
    )
    async with Client(steward) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        card = json.loads(
            (await client.read_resource("catalog://datasets/variant_frequencies")).contents[0].text
        )
    assert "region" not in tools[FREQUENCIES].input_schema["properties"]
    assert "Region:" not in tools[FREQUENCIES].description
    # Aggregates are not masked by column class, so their region stays.
    assert "region" in tools["aggregate_genotypes"].input_schema["properties"]
    assert card["region"]["tools"] == []


async def test_descriptions_and_data_cards_name_the_region_columns_and_pass_the_linter(server):
    async with Client(server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        card = json.loads(
            (await client.read_resource("catalog://datasets/genotypes")).contents[0].text
        )
    region_sentence = (
        "Region: the region argument {chrom, start, end} keeps the rows whose chrom equals "
        "chrom and whose pos to end interval overlaps start to end; positions are 1-based "
        "and inclusive, and a region spans at most 50,000,000 bases."
    )
    for name in (FREQUENCIES, "query_genotypes", "aggregate_genotypes"):
        assert region_sentence in tools[name].description
        assert lint_text(f"{name} description", tools[name].description) == []
    assert card["region"] == {
        "chrom": "chrom",
        "start": "pos",
        "end": "end",
        "coordinates": "1-based, inclusive; a region returns the rows overlapping it",
        "max_span_bases": MAX_REGION_SPAN,
        "tools": ["query_genotypes", "aggregate_genotypes"],
    }


# -- the catalog model ---------------------------------------------------------------------


def test_region_columns_must_be_columns_of_the_dataset_with_the_right_types():
    dataset = build_genomic_manifest().datasets[0]
    fields = dataset.model_dump(by_alias=True)
    for region, problem in (
        ({"chrom": "contig", "start": "pos", "end": "end"}, "region chrom column 'contig'"),
        ({"chrom": "chrom", "start": "ref", "end": "end"}, "must be of type integer"),
        ({"chrom": "pos", "start": "pos", "end": "end"}, "must be of type string"),
        ({"chrom": "chrom", "start": "pos", "end": "allele_frequency"}, "must be of type integer"),
    ):
        with pytest.raises(ValidationError, match=re.escape(problem)):
            type(dataset).model_validate({**fields, "region": region})
    with pytest.raises(ValidationError):
        RegionColumns.model_validate({"chrom": "chrom", "start": "pos", "end": "end", "x": "y"})
    with pytest.raises(ValidationError):
        RegionColumns(chrom="Chrom", start="pos", end="end")


def test_a_manifest_without_regions_has_no_region_key_and_one_with_them_round_trips(tmp_path):
    without = build_genomic_manifest(region=None)
    assert '"region"' not in dump_manifest(without)
    with_region = build_genomic_manifest()
    path = tmp_path / "manifest.json"
    path.write_text(dump_manifest(with_region))
    loaded = load_manifest(path)
    assert loaded == with_region
    assert loaded.datasets[0].region == GENOMIC_POSITIONS
    assert json.loads(path.read_text())["datasets"][0]["region"] == {
        "chrom": "chrom",
        "start": "pos",
        "end": "end",
    }


def test_source_entries_accept_a_region():
    genotypes = build_genomic_manifest().datasets[1]
    state = TableState(row_count=1, delta_version=0, last_materialized=datetime.now(UTC))
    entry = source_entry(
        name="identified_genotypes",
        audience="clinical",
        path="silver/genomics/genotypes",
        title="Genotypes",
        description="Genotype calls per sample.",
        owner="data-platform@example.org",
        key=["chrom", "pos"],
        columns=genotypes.columns,
        state=state,
        region=GENOMIC_POSITIONS,
    )
    assert entry.region == GENOMIC_POSITIONS
    with pytest.raises(ValidationError):
        source_entry(
            name="identified_genotypes",
            audience="clinical",
            path="silver/genomics/genotypes",
            title="Genotypes",
            description="Genotype calls per sample.",
            owner="data-platform@example.org",
            key=["chrom", "pos"],
            columns=genotypes.columns,
            state=state,
            region=RegionColumns(chrom="chrom", start="position", end="end"),
        )


def test_the_service_builds_over_a_genomic_catalog(genomic_lake: GenomicLake):
    from mcp_catalog.serve import open_audit

    service = CatalogService(
        genomic_lake.manifest,
        genomic_lake.root,
        policy=genomic_lake.policy,
        audit=open_audit(genomic_lake.root),
    )
    assert sorted(service.datasets) == ["research/genotypes", "research/variant_frequencies"]
    assert not service.datasets["research/variant_frequencies"].person_level
    assert service.datasets["research/genotypes"].person_level
