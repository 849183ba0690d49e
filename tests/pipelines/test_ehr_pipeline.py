"""End to end: synthetic landing files -> bronze -> silver -> gold -> catalog, in a real lake."""

import json

import anyio
import polars as pl
import pytest

from mcp_catalog.config import load_config
from mcp_catalog.governance.deid import date_shifts, keyed_hash
from mcp_catalog.governance.keys import load_keys
from mcp_catalog.governance.views import IDENTIFIED_VIEWS, RESEARCH_VIEWS
from mcp_catalog.manifest import load_manifest
from mcp_catalog.policy import load_policy
from mcp_catalog.serve import open_service
from pipelines.cli import materialize
from pipelines.defs.catalog.assets import SERVED_VIEWS
from pipelines.ehr import SILVER_TABLES
from pipelines.lake import Lake
from tests.pipelines.conftest import TextSearch


def _tables(root):
    return sorted(p.parent.relative_to(root).as_posix() for p in root.rglob("_delta_log"))


def test_a_full_materialisation_fills_every_layer(materialised_lake):
    lake = Lake(materialised_lake.root)
    tables = _tables(materialised_lake.root)
    for table in SILVER_TABLES:
        assert f"bronze/ehr/{table}" in tables and f"silver/ehr/{table}" in tables
        assert lake.read(f"silver/ehr/{table}").height > 0, table
    assert lake.row_count("_rejects/ehr/fhir") == 0 and lake.table("_rejects/ehr/fhir") is not None
    silver_patients = lake.read("silver/ehr/patients")
    assert silver_patients.get_column("person_key").null_count() == 0
    assert silver_patients.get_column("person_key").n_unique() == silver_patients.height
    for spec in RESEARCH_VIEWS:
        assert lake.read(spec.path).height > 0, spec.path


def test_every_commit_carries_the_dagster_run_id(materialised_lake):
    lake = Lake(materialised_lake.root)
    run_ids = materialised_lake.first_run.run_ids
    for path in _tables(materialised_lake.root):
        first = lake.table(path).history()[-1]
        assert first["dagster_run_id"] in run_ids, path


def test_the_manifest_describes_every_gold_view(materialised_lake):
    lake = Lake(materialised_lake.root)
    manifest = load_manifest(materialised_lake.root / "_catalog" / "manifest.json")
    research = manifest.for_audience("research")
    assert [d.name for d in research] == [s.name for s in SERVED_VIEWS]
    assert [d.name for d in manifest.for_audience("clinical")] == [v.name for v in IDENTIFIED_VIEWS]
    assert manifest.policy_version == load_policy().version
    for dataset, spec in zip(research, SERVED_VIEWS, strict=True):
        table = lake.read(spec.path)
        assert dataset.row_count == table.height
        assert dataset.delta_version == lake.version(spec.path)
        assert [c.name for c in dataset.columns] == table.columns
        assert dataset.upstream == list(spec.sources) and dataset.owner


def test_blood_pressure_components_reach_the_research_view_as_their_own_rows(materialised_lake):
    lake = Lake(materialised_lake.root)
    gold = lake.read("gold/research/observations")
    systolic = gold.filter(pl.col("code") == "8480-6")
    diastolic = gold.filter(pl.col("code") == "8462-4")
    assert systolic.height > 0 and systolic.height == diastolic.height
    assert systolic.get_column("value_quantity").null_count() == 0
    assert set(systolic.get_column("value_unit").to_list()) == {"mm[Hg]"}
    panels = lake.read("silver/ehr/observations").filter(pl.col("code") == "85354-9")
    assert lake.read("silver/ehr/observations").filter(pl.col("code") == "8480-6").height == (
        panels.height
    )


def test_consent_filters_people_out_of_gold(materialised_lake):
    lake = Lake(materialised_lake.root)
    people = lake.read("silver/ehr/patients").height
    consented = lake.read("gold/research/patients").height
    assert 0 < consented < people


def test_rerunning_on_unchanged_input_adds_no_delta_version(materialised_lake):
    lake = Lake(materialised_lake.root)
    before = {p: lake.version(p) for p in _tables(materialised_lake.root)}
    result = materialize(
        str(materialised_lake.root),
        str(materialised_lake.landing),
        instance=materialised_lake.instance,
    )
    assert result.success
    after = {p: lake.version(p) for p in _tables(materialised_lake.root)}
    assert after == before


def _identifiers(lake: Lake) -> dict[str, set[str]]:
    """Every direct identifier the silver layer holds, by kind."""
    found: dict[str, set[str]] = {
        "ids": set(),
        "mrn": set(),
        "names": set(),
        "addresses": set(),
        "postal_codes": set(),
        "person_keys": set(),
    }
    patients = lake.read("silver/ehr/patients")
    found["mrn"] |= set(patients.get_column("mrn").drop_nulls().to_list())
    # Whole names: a lone family name can also be a word of a code display ("White" is an OMB
    # race category), a full name cannot.
    found["names"] |= set(
        patients.select(pl.concat_str("given_name", "family_name", separator=" "))
        .to_series()
        .drop_nulls()
        .to_list()
    )
    found["addresses"] |= set(patients.get_column("address_line").drop_nulls().to_list())
    found["postal_codes"] |= set(patients.get_column("postal_code").drop_nulls().to_list())
    found["person_keys"] |= set(patients.get_column("person_key").to_list())
    for table in SILVER_TABLES:
        found["ids"] |= set(lake.read(f"silver/ehr/{table}").get_column("id").to_list())
    # The genomics silo's identifiers: biobank sample ids (and the MRNs of the manifest).
    samples = lake.read("bronze/genomics/samples")
    found["sample_ids"] = set(samples.get_column("sample_id").to_list())
    found["mrn"] |= set(samples.get_column("mrn").to_list())
    return found


def _assert_no_identifier(texts: list[str], identifiers: dict[str, set[str]]) -> None:
    blob = TextSearch(texts)
    cells = set(texts)
    for kind, values in identifiers.items():
        for value in values:
            # Long identifiers must not appear anywhere; short ones (a first name, a ZIP code)
            # must not appear as a whole value.
            leaked = value in blob if len(value) >= 8 else value in cells
            assert not leaked, f"a {kind} value from silver appears in the output"


def test_no_silver_identifier_appears_in_any_gold_table(materialised_lake):
    lake = Lake(materialised_lake.root)
    identifiers = _identifiers(lake)
    texts: list[str] = []
    for spec in RESEARCH_VIEWS:
        frame = lake.read(spec.path)
        assert "birth_date" not in frame.columns
        for column in frame.columns:
            texts += [str(v) for v in frame.get_column(column).drop_nulls().to_list()]
    _assert_no_identifier(texts, identifiers)


def test_gold_patients_keep_only_birth_years_and_shifted_death_dates(materialised_lake):
    # Re-derive each person's pseudonym and shift with the lake's own keys to compare row by row.
    lake = Lake(materialised_lake.root)
    keys = load_keys(materialised_lake.root / "restricted" / "keys.json")
    silver = lake.read("silver/ehr/patients")
    silver = silver.with_columns(
        pl.Series(
            "person_pseudonym",
            keyed_hash(
                keys.for_audience("research"), silver.get_column("person_key").to_list(), prefix="P"
            ),
        )
    )
    shifts = date_shifts(silver.get_column("person_key").to_list(), key=keys.date_shift)
    both = silver.join(shifts, on="person_key").join(
        lake.read("gold/research/patients"), on="person_pseudonym", suffix="_gold"
    )
    assert both.height == lake.row_count("gold/research/patients")
    young = both.filter(~pl.col("age_90_plus"))
    assert (young.get_column("birth_year") == young.get_column("birth_date").dt.year()).all()
    assert (
        both.filter(pl.col("age_90_plus")).get_column("birth_year").null_count()
        == both.filter(pl.col("age_90_plus")).height
    )
    dead = both.filter(pl.col("deceased_datetime").is_not_null())
    assert dead.height > 0
    true_date = pl.col("deceased_datetime").dt.date()
    checks = dead.select(
        shifted=(pl.col("death_date") == true_date + pl.duration(days=pl.col("shift_days"))).all(),
        moved=(pl.col("death_date") != true_date).all(),
    )
    assert checks.row(0) == (True, True)


@pytest.mark.anyio
async def test_no_silver_identifier_appears_in_any_mcp_response(materialised_lake):
    from mcp import Client

    lake = Lake(materialised_lake.root)
    identifiers = _identifiers(lake)
    manifest = load_manifest(materialised_lake.root / "_catalog" / "manifest.json")
    server = open_service(materialised_lake.root, load_config()).server_for("researcher")
    texts: list[str] = []
    async with Client(server) as client:
        for resource in (await client.list_resources()).resources:
            for content in (await client.read_resource(resource.uri)).contents:
                texts.append(content.text)
        tools = {tool.name for tool in (await client.list_tools()).tools}
        for dataset in manifest.for_audience("research"):
            if f"query_{dataset.name}" not in tools:
                continue
            cursor = None
            while True:
                args = {"limit": dataset.max_limit} | ({"cursor": cursor} if cursor else {})
                result = await client.call_tool(f"query_{dataset.name}", args)
                assert not result.is_error
                page = result.structured_content
                texts += [json.dumps(row) for row in page["rows"]]
                texts += [str(v) for row in page["rows"] for v in row.values() if v is not None]
                cursor = page["next_cursor"]
                if not cursor:
                    break
    assert texts
    _assert_no_identifier(texts, identifiers)


@pytest.fixture
def anyio_backend():
    return "asyncio"


def test_the_demo_lake_queries_like_the_catalog_says(materialised_lake):
    load_manifest(materialised_lake.root / "_catalog" / "manifest.json")
    server = open_service(materialised_lake.root, load_config()).server_for("researcher")

    async def first_female():
        from mcp import Client

        async with Client(server) as client:
            result = await client.call_tool(
                "query_patients",
                {
                    "filters": {"gender": {"eq": "female"}},
                    "select": ["person_pseudonym", "gender"],
                    "limit": 5,
                },
            )
            return result.structured_content

    page = anyio.run(first_female)
    expected = (
        pl.read_delta(str(materialised_lake.root / "gold/research/patients"))
        .filter(pl.col("gender") == "female")
        .sort("person_pseudonym")
        .head(5)
        .select("person_pseudonym", "gender")
    )
    assert page["rows"] == expected.to_dicts()
