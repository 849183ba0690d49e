"""OpenLineage for a whole run: every event validates, and lineage connects source to agent."""

from collections import defaultdict

from mcp_catalog.governance.views import RESEARCH_VIEWS
from pipelines.lake import Lake
from quality.lineage import dataset_identity, lineage_graph, read_events_with_errors
from tests.quality.test_lineage import assert_valid_openlineage


def _events(lake_root):
    events, bad = read_events_with_errors(lake_root)
    assert bad == 0 and events
    return events


def test_every_event_of_a_full_run_validates_against_the_openlineage_schema(materialised_lake):
    events = _events(materialised_lake.root)
    for event in events:
        assert_valid_openlineage(event)
    by_type = defaultdict(int)
    for event in events:
        by_type[event["eventType"]] += 1
    assert by_type["START"] > 0 and by_type["COMPLETE"] >= by_type["START"]
    assert by_type["FAIL"] == 0


def _node(uri: str) -> str:
    namespace, name = dataset_identity(uri)
    return f"{namespace}:{name}"


def test_lineage_connects_every_gold_view_back_to_its_source_files(materialised_lake):
    nodes, edges = lineage_graph(_events(materialised_lake.root))
    parents = defaultdict(set)
    for source, target in edges:
        parents[target].add(source)
    sources = {_node(str(p)) for p in (materialised_lake.landing / "ehr").glob("*.ndjson")}
    assert sources <= nodes
    lake = Lake(materialised_lake.root)
    for spec in RESEARCH_VIEWS:
        seen, todo = set(), [_node(lake.uri(spec.path))]
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(parents[node])
        reached = seen & sources
        assert reached, f"{spec.path} is not connected to any source file"


def test_gold_events_carry_column_lineage_and_checks_carry_quality_facets(materialised_lake):
    events = _events(materialised_lake.root)
    lake = Lake(materialised_lake.root)
    gold = _node(lake.uri("gold/research/patients"))
    outputs = [
        o
        for e in events
        if e["eventType"] == "COMPLETE"
        for o in e.get("outputs", [])
        if f"{o['namespace']}:{o['name']}" == gold
    ]
    lineage = outputs[-1]["facets"]["columnLineage"]["fields"]
    birth_year = lineage["birth_year"]["inputFields"]
    assert [f["field"] for f in birth_year] == ["birth_date"]
    assert birth_year[0]["name"].endswith("silver/ehr/patients")
    checks = [e for e in events if e["job"]["name"].endswith(".quality_suite")]
    assert checks
    facets = checks[0]["inputs"][0]["inputFacets"]
    assert facets["dataQualityAssertions"]["assertions"]
    assert facets["dataQualityMetrics"]["rowCount"] >= 0


def test_a_query_over_mcp_extends_lineage_to_the_agent(materialised_lake):
    import anyio
    from mcp import Client

    from mcp_catalog.config import load_config
    from mcp_catalog.manifest import load_manifest
    from mcp_catalog.serve import open_service

    load_manifest(materialised_lake.root / "_catalog" / "manifest.json")

    service = open_service(materialised_lake.root, load_config())

    async def query():
        async with Client(service.server_for("researcher")) as client:
            await client.call_tool("query_conditions", {"limit": 1})

    anyio.run(query)
    service.flush_lineage()  # events are written off the request path
    nodes, edges = lineage_graph(_events(materialised_lake.root))
    gold = _node(Lake(materialised_lake.root).uri("gold/research/conditions"))
    assert (gold, "job:biofed.mcp.query_conditions") in edges
