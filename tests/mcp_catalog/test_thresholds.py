"""Row thresholds (``suppress_below``) and views without a person column: rows below a
threshold never leave the server, and an aggregate-level view carries the consent it was
built under. Real Delta tables, the in-memory MCP client and the real audit log."""

import copy
import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from mcp import Client
from mcp.types import CallToolResult
from polars.testing import assert_frame_equal
from pydantic import ValidationError

from mcp_catalog.audit import AuditLog
from mcp_catalog.lint import lint_text
from mcp_catalog.manifest import dump_manifest
from mcp_catalog.policy import DatasetPolicy
from mcp_catalog.principal import configured_principal
from mcp_catalog.scan import scan
from mcp_catalog.server import CatalogBuildError, CatalogService
from tests.mcp_catalog.conftest import (
    GenomicLake,
    genomic_policy_document,
    make_server,
    write_policy_document,
)

pytestmark = pytest.mark.anyio

FREQUENCIES = "query_variant_frequencies"
AUDIT_KEY = b"t" * 32
FREQUENCY_SCHEMA = {
    "chrom": pl.String,
    "pos": pl.Int64,
    "end": pl.Int64,
    "ref": pl.String,
    "alt": pl.String,
    "allele_count": pl.Int64,
    "allele_number": pl.Int64,
    "allele_frequency": pl.Float64,
    "filter_pass": pl.Boolean,
}


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
    text = result.content[0].text.removeprefix(f"Error executing tool {tool}: ")
    return re.sub(r" \(correlation id [0-9a-f]{32}\)$", "", text)


async def card(server, name: str) -> dict[str, Any]:
    async with Client(server) as client:
        return json.loads(
            (await client.read_resource(f"catalog://datasets/{name}")).contents[0].text
        )


def audited(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "_audit", AUDIT_KEY)


def released(lake: GenomicLake) -> pl.DataFrame:
    return lake.frequencies.filter(pl.col("allele_count") >= 5)


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=FREQUENCY_SCHEMA, orient="row")


@pytest.fixture(scope="module")
def server(genomic_lake: GenomicLake):
    return make_server(genomic_lake.manifest, genomic_lake.root)


# -- queries ---------------------------------------------------------------------------------


async def test_a_query_returns_every_row_at_or_above_the_threshold_and_none_below(
    server, genomic_lake: GenomicLake
):
    pages = [await query(server, FREQUENCIES, {"limit": 50})]
    while pages[-1]["next_cursor"]:
        cursor = pages[-1]["next_cursor"]
        pages.append(await query(server, FREQUENCIES, {"limit": 50, "cursor": cursor}))
    got = frame([row for page in pages for row in page["rows"]])

    expected = released(genomic_lake).sort("chrom", "pos", "ref", "alt")
    hidden = genomic_lake.frequencies.height - expected.height
    assert hidden >= 5  # below 5, and the one without a count
    assert_frame_equal(got, expected)
    # The row exactly at the threshold is released.
    assert got.filter(pl.col("allele_count") == 5).height > 0


@pytest.mark.parametrize(
    "arguments",
    [
        {"filters": {"allele_count": {"lt": 5}}},
        {"filters": {"allele_count": {"eq": 3}}},
        {"filters": {"allele_count": {"in": [1, 2, 3, 4]}}},
        {"filters": {"pos": {"eq": 150}, "chrom": {"eq": "chr1"}}},
        {"filters": {"pos": {"eq": 160}}, "select": ["chrom", "pos"]},
        {"region": {"chrom": "chr1", "start": 150, "end": 160}},
        {
            "sort": [{"column": "allele_count"}],
            "limit": 1,
            "select": ["pos"],
            "filters": {"chrom": {"eq": "chr1"}},
            "region": {"chrom": "chr1", "start": 140, "end": 170},
        },
    ],
)
async def test_rows_below_the_threshold_never_leave_even_when_asked_for_directly(
    server, genomic_lake: GenomicLake, arguments: dict[str, Any]
):
    below = genomic_lake.frequencies.filter(
        pl.col("allele_count").is_null() | (pl.col("allele_count") < 5)
    )
    assert below.height > 0
    result = await query(server, FREQUENCIES, arguments)
    assert result["rows"] == []
    assert result["truncated"] is False and result["next_cursor"] is None


async def test_the_lowest_released_rows_start_at_the_threshold(server):
    result = await query(
        server,
        FREQUENCIES,
        {"sort": [{"column": "allele_count"}], "limit": 3, "select": ["allele_count"]},
    )
    assert [row["allele_count"] for row in result["rows"]] == [5, 5, 5]


# -- aggregates ------------------------------------------------------------------------------


async def test_aggregates_count_only_rows_at_or_above_the_threshold(genomic_lake: GenomicLake):
    consented = ~pl.col("person_pseudonym").is_in(list(genomic_lake.revoked))
    everyone = genomic_lake.genotypes.filter(consented)
    kept = everyone.filter(pl.col("depth") >= 10)
    assert kept.height < everyone.height

    result = await query(
        make_server(genomic_lake.manifest, genomic_lake.root),
        "aggregate_genotypes",
        {"group_by": ["chrom"], "measures": [{"column": "depth", "stat": "p25"}]},
    )
    expected = (
        kept.group_by("chrom")
        .agg(people=pl.col("person_pseudonym").n_unique(), records=pl.len())
        .sort("chrom")
    )
    got = pl.DataFrame(
        [{k: c[k] for k in ("chrom", "people", "records")} for c in result["cells"]],
        schema=expected.schema,
    ).sort("chrom")
    assert_frame_equal(got, expected)
    assert result["total_records"] == kept.height
    assert all(c["p25_depth"] >= 10 for c in result["cells"])


async def test_an_aggregate_filtered_below_the_threshold_finds_nobody(genomic_lake: GenomicLake):
    shallow = genomic_lake.genotypes.filter(pl.col("depth") < 10)
    # Without the threshold this would be a publishable count.
    assert shallow["person_pseudonym"].n_unique() >= 10
    result = await query(
        make_server(genomic_lake.manifest, genomic_lake.root),
        "aggregate_genotypes",
        {"filters": {"depth": {"lt": 10}}},
    )
    assert result["total_people"] is None and result["total_records"] is None
    # No cell at all: a cell of 1 to 4 people would have been listed as suppressed.
    assert result["cells"] == []


# -- descriptions and cards ------------------------------------------------------------------


async def test_the_data_card_and_tool_descriptions_state_the_threshold(server):
    frequencies = await card(server, "variant_frequencies")
    assert frequencies["policy"]["suppress_below"] == {"allele_count": 5}
    sentence = (
        "Rows with allele_count below 5 (or missing) are withheld by policy and never returned."
    )
    assert frequencies["policy"]["suppression"] == sentence
    genotypes = await card(server, "genotypes")
    assert genotypes["policy"]["suppress_below"] == {"depth": 10}

    async with Client(server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert sentence in tools[FREQUENCIES].description
    depth = "Rows with depth below 10 (or missing) are withheld by policy and never returned."
    assert depth in tools["query_genotypes"].description
    assert depth in tools["aggregate_genotypes"].description
    for tool in tools.values():
        assert lint_text(f"{tool.name} description", tool.description or "") == []


async def test_cards_of_datasets_without_thresholds_or_regions_keep_their_shape(lake):
    patients = await card(make_server(lake.manifest, lake.root), "patients")
    assert "region" not in patients and "suppress_below" not in patients["policy"]


# -- policy and build validation -------------------------------------------------------------


def _policy_fields(**changes: Any) -> dict[str, Any]:
    return {
        "owner": "o",
        "purposes": [],
        "consent": False,
        "row_cap": 10,
        "min_cell_size": 5,
        "read_scope": "biofed.research.read",
        "columns": {"allele_count": "clinical", "chrom": "clinical"},
        "access": {},
        **changes,
    }


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"allele_num": 5}, "suppress_below names columns the dataset lacks: ['allele_num']"),
        ({"allele_count": "5"}, "valid integer"),
        ({"allele_count": True}, "valid integer"),
        ({"allele_count": 4.5}, "valid integer"),
    ],
)
def test_the_policy_rejects_thresholds_on_unknown_columns_or_that_are_not_integers(
    thresholds: dict[str, Any], message: str
):
    with pytest.raises(ValidationError, match=re.escape(message)):
        DatasetPolicy.model_validate(_policy_fields(suppress_below=thresholds))
    assert DatasetPolicy.model_validate(_policy_fields()).suppress_below == {}


def test_a_policy_without_thresholds_keeps_its_fingerprint():
    rules = DatasetPolicy.model_validate(_policy_fields())
    assert "suppress_below" not in rules.model_dump_json()
    with_thresholds = DatasetPolicy.model_validate(_policy_fields(suppress_below={"chrom": 1}))
    assert '"suppress_below":{"chrom":1}' in with_thresholds.model_dump_json()


def _service(lake: GenomicLake, tmp_path: Path, document: dict[str, Any]) -> CatalogService:
    policy = write_policy_document(tmp_path / "policy.yaml", document)
    return CatalogService(lake.manifest, lake.root, policy=policy, audit=audited(tmp_path))


def test_a_threshold_on_a_column_that_is_not_numeric_fails_the_build(
    genomic_lake: GenomicLake, tmp_path: Path
):
    document = genomic_policy_document(genomic_lake.manifest)
    document["datasets"]["research/variant_frequencies"]["suppress_below"] = {"chrom": 5}
    with pytest.raises(CatalogBuildError) as raised:
        _service(genomic_lake, tmp_path, document)
    assert str(raised.value) == (
        "dataset research/variant_frequencies suppresses rows below a minimum of 'chrom', "
        "which is not an integer or number column in the catalog; correct suppress_below in "
        "the policy or the column's type in the view."
    )


def test_aggregate_access_to_a_view_without_a_person_column_fails_the_build(
    genomic_lake: GenomicLake, tmp_path: Path
):
    document = genomic_policy_document(genomic_lake.manifest)
    frequencies = document["datasets"]["research/variant_frequencies"]
    frequencies["access"]["researcher"]["aggregate"] = True
    frequencies["aggregate_scope"] = "biofed.research.aggregate"
    frequencies["aggregation"] = {"dimensions": ["chrom"]}
    with pytest.raises(CatalogBuildError) as raised:
        _service(genomic_lake, tmp_path, document)
    assert str(raised.value) == (
        "dataset research/variant_frequencies grants aggregate access but has no "
        "person_pseudonym column to count people by (its rows are already aggregates); remove "
        "aggregate access for it from the policy."
    )


@pytest.mark.parametrize("problem", ["no_consent_scope", "pseudonym_under_another_name"])
def test_a_consent_filtered_view_without_person_column_must_be_aggregate_level(
    genomic_lake: GenomicLake, tmp_path: Path, problem: str
):
    document = genomic_policy_document(genomic_lake.manifest)
    manifest = genomic_lake.manifest
    if problem == "no_consent_scope":
        del document["datasets"]["research/variant_frequencies"]["consent_scope"]
    else:
        # A person-level view whose pseudonym column is misnamed must not skip consent.
        genotypes = manifest.datasets[1]
        columns = [
            c.model_copy(update={"name": "person_id"}) if c.name == "person_pseudonym" else c
            for c in genotypes.columns
        ]
        renamed = genotypes.model_copy(update={"columns": columns, "key": ["person_id"]})
        manifest = manifest.model_copy(update={"datasets": [manifest.datasets[0], renamed]})
        rules = document["datasets"]["research/genotypes"]
        rules["columns"] = {c.name: c.column_class for c in columns}
        rules["access"] = {"researcher": {"rows": True, "classes": ["pseudonym", "clinical"]}}
        del rules["aggregation"], rules["aggregate_scope"]
    policy = write_policy_document(tmp_path / "policy.yaml", document)
    with pytest.raises(CatalogBuildError, match="is filtered by consent but has no person_pseud"):
        CatalogService(manifest, genomic_lake.root, policy=policy, audit=audited(tmp_path))


def test_the_scan_reports_what_the_server_would_refuse(genomic_lake: GenomicLake, tmp_path):
    document = genomic_policy_document(genomic_lake.manifest)
    frequencies = document["datasets"]["research/variant_frequencies"]
    frequencies["suppress_below"] = {"chrom": 5}
    frequencies["access"]["researcher"]["aggregate"] = True
    frequencies["aggregate_scope"] = "biofed.research.aggregate"
    frequencies["aggregation"] = {"dimensions": ["chrom"]}
    policy_path = tmp_path / "policy.yaml"
    write_policy_document(policy_path, document)
    config = tmp_path / "server.yaml"
    config.write_text(f"policy: {policy_path}\n")
    manifest_path = tmp_path / "lake" / "_catalog" / "manifest.json"
    manifest_path.parent.mkdir(parents=True)
    manifest_path.write_text(dump_manifest(genomic_lake.manifest))

    report = scan(config_path=config, manifest_path=manifest_path)

    found = [
        (f.rule, f.where)
        for f in report.findings
        if f.rule in ("suppression_on_non_numeric_column", "aggregate_without_person_column")
    ]
    assert found == [
        ("suppression_on_non_numeric_column", "dataset research/variant_frequencies"),
        ("aggregate_without_person_column", "dataset research/variant_frequencies"),
    ]


# -- a view without a person column under consent-scoped purposes ----------------------------


@pytest.mark.parametrize("purpose", ["research", "quality_improvement"])
async def test_a_view_without_person_column_serves_consent_scoped_purposes(
    genomic_lake: GenomicLake, tmp_path: Path, purpose: str
):
    policy = genomic_lake.policy
    principal = configured_principal(
        policy,
        subject="test-researcher",
        role="researcher",
        purpose=purpose,
        protocol="BIOFED-DEMO-001" if purpose == "research" else None,
    )
    audit = audited(tmp_path)
    server = make_server(genomic_lake.manifest, genomic_lake.root, principal=principal, audit=audit)
    result = await query(server, FREQUENCIES, {"region": {"chrom": "chr1", "start": 1, "end": 300}})
    expected = released(genomic_lake).filter(pl.col("chrom") == "chr1")
    assert_frame_equal(frame(result["rows"]), expected)

    (record,) = [r for r in audit.records() if r["action"] == FREQUENCIES]
    assert (record["decision"], record["reason"]) == ("allow", "ok")
    assert record["rows"] == expected.height
    assert record["subjects"] == []  # the rows are about variants, not people


async def test_a_view_without_person_column_says_when_consent_was_applied(server):
    frequencies = await card(server, "variant_frequencies")
    sentence = (
        "Computed only over people whose consent covered the research scope when the view "
        "was built; the rows are aggregates, not people, and a withdrawal of consent reaches "
        "them at the next build."
    )
    assert frequencies["policy"]["consent"] == sentence
    genotypes = await card(server, "genotypes")
    assert genotypes["policy"]["consent"] == (
        "rows and counts include only people whose consent covers the purpose"
    )
    async with Client(server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert sentence in tools[FREQUENCIES].description
    assert "Only people whose consent covers the purpose of use" not in (
        tools[FREQUENCIES].description
    )


async def test_a_purpose_needing_another_consent_scope_is_refused_on_a_view_built_under_one(
    genomic_lake: GenomicLake, tmp_path: Path
):
    document = copy.deepcopy(genomic_policy_document(genomic_lake.manifest))
    document["purposes"]["biobank_research"] = {
        "description": "Research on biobank samples under broad consent.",
        "v3_code": "HRESCH",
        "consent_scope": "biobank",
    }
    document["roles"]["researcher"]["purposes"].append("biobank_research")
    for rules in document["datasets"].values():
        rules["purposes"].append("biobank_research")
    policy = write_policy_document(tmp_path / "policy.yaml", document)
    principal = configured_principal(
        policy, subject="test-researcher", role="researcher", purpose="biobank_research"
    )
    audit = audited(tmp_path)
    server = make_server(
        genomic_lake.manifest, genomic_lake.root, policy=policy, principal=principal, audit=audit
    )
    text = await error_text(server, FREQUENCIES, {"limit": 5})
    assert text == (
        "this dataset was computed under the research consent scope, which does not cover "
        "the purpose of use biobank_research"
    )
    (record,) = [r for r in audit.records() if r["action"] == FREQUENCIES]
    assert (record["decision"], record["reason"]) == ("deny", "consent_scope_mismatch")
    assert record["rows"] == 0
    # A person-level view filters per call instead: nobody has granted the biobank scope.
    assert (await query(server, "query_genotypes", {"limit": 5}))["rows"] == []


async def test_person_level_genomic_views_still_filter_by_consent_on_every_call(
    genomic_lake: GenomicLake, tmp_path: Path
):
    audit = audited(tmp_path)
    server = make_server(genomic_lake.manifest, genomic_lake.root, audit=audit)
    arguments = {"region": {"chrom": "chr1", "start": 100, "end": 100}, "limit": 200}
    result = await query(server, "query_genotypes", arguments)
    people = {row["person_pseudonym"] for row in result["rows"]}
    expected = (
        genomic_lake.genotypes.filter(
            (pl.col("chrom") == "chr1")
            & (pl.col("pos") == 100)
            & (pl.col("depth") >= 10)
            & ~pl.col("person_pseudonym").is_in(list(genomic_lake.revoked))
        )["person_pseudonym"]
        .unique()
        .to_list()
    )
    assert people == set(expected)
    assert not people & set(genomic_lake.revoked)
    (record,) = [r for r in audit.records() if r["action"] == "query_genotypes"]
    assert record["subjects"] == sorted(expected)
