"""The tool surface rendered as a stable, hashable contract."""

import json

import pytest

from mcp_catalog.contract import contract_json, contract_sha256, render_contract
from tests.mcp_catalog.conftest import Lake, make_server

pytestmark = pytest.mark.anyio


async def test_the_contract_lists_every_tool_and_resource_in_sorted_order(lake: Lake):
    contract = await render_contract(make_server(lake.manifest, lake.root))
    assert sorted(contract) == ["prompts", "resource_templates", "resources", "tools"]
    assert [tool["name"] for tool in contract["tools"]] == [
        "aggregate_observations",
        "aggregate_patients",
        "query_observations",
        "query_patients",
    ]
    assert [resource["uri"] for resource in contract["resources"]] == [
        "catalog://datasets",
        "catalog://datasets/observations",
        "catalog://datasets/patients",
    ]
    assert contract["resource_templates"] == []
    # No cohort tool without a patients register: only the dataset prompt.
    assert [prompt["name"] for prompt in contract["prompts"]] == ["describe_dataset"]
    assert contract["prompts"][0]["arguments"] == [
        {
            "name": "dataset",
            "description": contract["prompts"][0]["arguments"][0]["description"],
            "required": True,
        }
    ]
    tool = contract["tools"][3]
    assert sorted(tool) == [
        "annotations",
        "description",
        "inputSchema",
        "name",
        "outputSchema",
        "title",
    ]
    assert tool["annotations"]["readOnlyHint"] is True


async def test_the_contract_is_the_same_for_two_builds_of_one_manifest(lake: Lake):
    first = await render_contract(make_server(lake.manifest, lake.root))
    second = await render_contract(make_server(lake.manifest, lake.root, cursor_secret=b"x" * 16))
    text = contract_json(first)
    assert text == contract_json(second)
    assert text.endswith("}\n")
    assert json.loads(text) == first
    assert contract_sha256(first) == contract_sha256(second)
    assert len(contract_sha256(first)) == 64
    assert str(lake.root) not in text and "gold/" not in text


async def test_the_contract_ignores_data_changes_but_not_description_changes(lake: Lake):
    baseline = contract_sha256(await render_contract(make_server(lake.manifest, lake.root)))

    patients, observations = lake.manifest.datasets
    refreshed = lake.manifest.model_copy(
        update={"datasets": [patients.model_copy(update={"row_count": 251}), observations]}
    )
    assert contract_sha256(await render_contract(make_server(refreshed, lake.root))) == baseline

    columns = [
        column.model_copy(update={"description": "Calendar year of birth."})
        if column.name == "birth_year"
        else column
        for column in patients.columns
    ]
    described = lake.manifest.model_copy(
        update={"datasets": [patients.model_copy(update={"columns": columns}), observations]}
    )
    changed = await render_contract(make_server(described, lake.root))
    assert contract_sha256(changed) != baseline
    assert "Calendar year of birth." in contract_json(changed)
