"""Every served dataset's data card names its silos, its linkage and consent rules and the share
of its source rows that linked, read through the real server from the materialised lake."""

import json
from pathlib import Path

import polars as pl
import pytest
from mcp import Client

from mcp_catalog.config import load_config
from mcp_catalog.federation import AGGREGATE_RULE, LINKAGE_RULES
from mcp_catalog.lint import lint_text
from mcp_catalog.manifest import load_manifest
from mcp_catalog.policy import load_policy
from mcp_catalog.serve import open_service
from tests.pipelines.conftest import MaterialisedLake

pytestmark = pytest.mark.anyio

CARD_ROLES = ("researcher", "clinician")
"""Between them these roles are shown every dataset: research views and identified records."""

PRIMARY = {
    "research/patients": "silver/ehr/patients",
    "research/encounters": "silver/ehr/encounters",
    "research/conditions": "silver/ehr/conditions",
    "research/observations": "silver/ehr/observations",
    "research/medication_requests": "silver/ehr/medication_requests",
    "research/procedures": "silver/ehr/procedures",
    "research/immunizations": "silver/ehr/immunizations",
    "research/genotypes": "silver/genomics/genotypes",
    "research/imaging_studies": "silver/imaging/dicom_studies",
    "research/imaging_series": "silver/imaging/dicom_series",
    "research/imaging_instances": "silver/imaging/dicom_instances",
    "research/lab_results": "silver/lab/lab_results",
    "research/trial_subjects": "silver/trials/dm",
    "research/trial_adverse_events": "silver/trials/ae",
    "research/trial_lab_results": "silver/trials/lb",
    "clinical/patient": "silver/ehr/patients",
    "clinical/patient_encounters": "silver/ehr/encounters",
    "clinical/patient_conditions": "silver/ehr/conditions",
    "clinical/patient_observations": "silver/ehr/observations",
    "clinical/patient_medications": "silver/ehr/medication_requests",
}
"""The silver table each person-level dataset's rows are drawn from, written out by hand."""

AGGREGATES = {"research/variant_frequencies"}
"""Datasets whose rows are not people."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _cards(lake: Path) -> dict[str, dict]:
    """Every data card the roles in :data:`CARD_ROLES` are shown, by ``<audience>/<name>``."""
    service = open_service(lake, load_config())
    cards: dict[str, dict] = {}
    for role in CARD_ROLES:
        async with Client(service.server_for(role)) as client:
            for resource in (await client.list_resources()).resources:
                uri = str(resource.uri)
                if not uri.startswith("catalog://datasets/"):
                    continue
                card = json.loads((await client.read_resource(uri)).contents[0].text)
                cards[f"{card['audience']}/{card['name']}"] = card
    return cards


def _share(lake: Path, path: str) -> tuple[int, int]:
    """Rows of a silver table with a person, and all its rows, read straight from Delta."""
    frame = pl.read_delta(str(lake / path))
    return frame.filter(pl.col("person_key").is_not_null()).height, frame.height


async def test_every_served_dataset_card_carries_its_federation_block(
    materialised_lake: MaterialisedLake,
):
    lake = materialised_lake.root
    manifest = load_manifest(lake / "_catalog" / "manifest.json")
    cards = await _cards(lake)
    served = {f"{d.audience}/{d.name}" for d in manifest.datasets}
    assert set(cards) == served
    assert set(PRIMARY) | AGGREGATES == served

    for key, card in cards.items():
        block = card["federation"]
        entry = next(d for d in manifest.datasets if f"{d.audience}/{d.name}" == key)
        assert entry.federation is not None
        assert block == entry.federation.model_dump(mode="json"), key
        assert block["silos"] == sorted({path.split("/")[1] for path in card["upstream"]}), key
        for silo in block["silos"]:
            assert LINKAGE_RULES[silo] in block["linkage_rule"], key
        assert lint_text(key, block["linkage_rule"]) == [], key
        assert lint_text(key, block["consent_rule"]) == [], key


async def test_the_linked_share_is_the_share_of_source_rows_with_a_person(
    materialised_lake: MaterialisedLake,
):
    lake = materialised_lake.root
    cards = await _cards(lake)
    for key, path in PRIMARY.items():
        block = cards[key]["federation"]
        linked, rows = _share(lake, path)
        assert (block["linked_rows"], block["source_rows"]) == (linked, rows), key
        assert rows > 0, f"{path} is empty in the synthetic cohort"
        assert block["linked_share"] == pytest.approx(linked / rows), key
        assert not block["linkage_rule"].startswith(AGGREGATE_RULE), key
    # The synthetic cohort lands rows that cannot be linked (unknown lab patients, samples of
    # no one): a share below one shows the count is of rows, not of a flag on the dataset.
    assert any(cards[key]["federation"]["linked_share"] < 1 for key in PRIMARY)


async def test_an_aggregate_card_has_no_share_and_says_it_is_an_aggregate(
    materialised_lake: MaterialisedLake,
):
    cards = await _cards(materialised_lake.root)
    for key in AGGREGATES:
        block = cards[key]["federation"]
        assert (block["linked_share"], block["linked_rows"], block["source_rows"]) == (None, 0, 0)
        assert block["linkage_rule"].startswith(AGGREGATE_RULE)
        assert "at the next build" in block["consent_rule"]


async def test_the_consent_rule_follows_the_policy_of_each_dataset(
    materialised_lake: MaterialisedLake,
):
    policy = load_policy()
    cards = await _cards(materialised_lake.root)
    unblinded = sorted(policy.unblinded_studies())
    for key, card in cards.items():
        rules = policy.datasets[key]
        consent = card["federation"]["consent_rule"]
        if not rules.consent:
            assert consent.startswith("Not filtered by consent"), key
            assert "break-glass" in consent, key
            continue
        assert consent.startswith("Opt-in:"), key
        assert f"for the {rules.consent_scope} scope" in consent, key
        if key in PRIMARY:
            assert "again at every query" in consent, key
        is_trial = card["federation"]["silos"] == ["trials"]
        assert ("own study not to be withdrawn" in consent) == is_trial, key
        assert (f"unblinded ({', '.join(unblinded)})" in consent) == is_trial, key
