"""find_cohort on the materialised five-silo lake, through the real server.

Counts are held to the synthetic generators' own ground truth
(``connectors.synth.federation``), which knows nothing of the lake: who has which condition,
lab result, study, genotype and birth date, and whose research consent holds.
"""

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import anyio
import polars as pl
import pytest
from deltalake import write_deltalake
from mcp import Client, StdioServerParameters

from connectors.synth.cohort import build_people
from connectors.synth.federation import RosterFacts
from mcp_catalog.manifest import load_manifest
from mcp_catalog.policy import load_policy
from tests.pipelines.conftest import PATIENTS, SEED, call_tool

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
BIOFED = str(Path(sys.executable).with_name("biofed"))
POLICY = load_policy()
K = POLICY.datasets["research/patients"].min_cell_size
HB = {"loinc": "718-7", "min": 12.0}
CARRIER = {"chrom": "chr1", "pos": 55045144, "ref": "C", "alt": "T"}
HYPERTENSION = {"codes": ["38341003"], "system": "http://snomed.info/sct"}
# Lab silo, genomics silo and the EHR's register: three silos in one question.
CROSS_SILO = {"labs": [HB], "variants": [CARRIER], "age": {"min": 18, "max": 64}}
# EHR conditions, lab results and demographics: views a researcher may list members of.
LISTABLE = {"conditions": [HYPERTENSION], "labs": [HB], "sex": "female"}


@pytest.fixture(scope="module")
def lake(materialised_lake, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shared lake: these tests save cohorts into it."""
    copy = tmp_path_factory.mktemp("cohort") / "lake"
    shutil.copytree(materialised_lake.root, copy)
    return copy


@pytest.fixture(scope="module")
def roster() -> RosterFacts:
    return RosterFacts.from_people(build_people(PATIENTS, SEED))


def truth(lake: Path, roster: RosterFacts, criteria: dict[str, Any]) -> int:
    """How many people the generators say meet ``criteria`` on the day the views were built."""
    manifest = load_manifest(lake / "_catalog" / "manifest.json")
    (patients,) = [d for d in manifest.datasets if d.name == "patients"]
    return len(roster.cohort(criteria, reference_date=patients.last_materialized.date()))


def stdio(lake: Path, role: str = "researcher", purpose: str = "research") -> Client:
    parameters = StdioServerParameters(
        command=BIOFED,
        args=[
            *("serve", "--lake", str(lake), "--role", role, "--purpose", purpose),
            *("--principal", f"stdio-cohort-{role}", "--accept-contract"),
        ],
        cwd=REPO,
    )
    return Client(parameters, read_timeout_seconds=120)


async def test_a_cross_silo_cohort_over_stdio_matches_the_generators_truth(
    lake: Path, roster: RosterFacts
):
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async with stdio(lake) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        templates = {
            t.uri_template for t in (await client.list_resource_templates()).resource_templates
        }
        counted = await client.call_tool(
            "find_cohort", {"criteria": CROSS_SILO}, progress_callback=on_progress
        )
        listed = await client.call_tool(
            "find_cohort", {"criteria": LISTABLE, "output": "pseudonyms"}
        )
    assert "find_cohort" in tools
    criteria = tools["find_cohort"].input_schema["properties"]["criteria"]["properties"]
    assert list(criteria) == ["conditions", "labs", "imaging", "variants", "trials", "age", "sex"]
    assert templates == {"cohort://{name}/{version}", "cohort://{name}", "cohort-job://{job}"}

    assert not counted.is_error, counted.content[0].text
    answer = counted.structured_content
    assert answer is not None
    expected = truth(lake, roster, CROSS_SILO)
    assert answer["count"] == (expected if expected >= K else None)
    assert answer["suppressed"] is (expected < K)
    assert answer["datasets"] == ["patients", "lab_results", "genotypes"]
    assert [done for done, _, _ in progress] == [1, 2, 3]
    assert {total for _, total, _ in progress} == {3}

    assert not listed.is_error, listed.content[0].text
    members = listed.structured_content
    assert members is not None
    assert members["count"] == truth(lake, roster, LISTABLE) == len(members["people"])
    assert all(person.startswith("P-") for person in members["people"])


@pytest.mark.parametrize(
    "criteria",
    [
        {"sex": "male"},
        {"age": {"min": 65}},
        {"conditions": [HYPERTENSION]},
        {"labs": [{"loinc": "718-7", "max": 13.5}]},
        {"imaging": [{"modality": "CT", "body_part": "CHEST"}]},
        {"imaging": [{"modality": "CT"}], "labs": [HB]},
    ],
)
async def test_each_listable_criterion_kind_matches_the_truth(
    lake: Path, roster: RosterFacts, criteria: dict[str, Any]
):
    _, result = await call_tool(
        lake,
        "researcher",
        "research",
        "find_cohort",
        {"criteria": criteria, "output": "pseudonyms"},
    )
    assert result is not None and not result.is_error, result.content[0].text
    assert result.structured_content["count"] == truth(lake, roster, criteria)


async def test_a_background_cohort_and_a_saved_cohort_over_stdio(lake: Path):
    arguments = {"criteria": LISTABLE, "output": "pseudonyms"}
    async with stdio(lake) as client:
        handle = await client.call_tool("find_cohort", {**arguments, "background": True})
        assert not handle.is_error and handle.structured_content is not None
        uri = handle.structured_content["result_uri"]
        with anyio.fail_after(60):
            while True:
                job = json.loads((await client.read_resource(uri)).contents[0].text)
                if job["status"] != "running":
                    break
                await anyio.sleep(0.05)
        saved = await client.call_tool("find_cohort", {**arguments, "save_as": "htn-hb-women"})
        resource = json.loads(
            (await client.read_resource("cohort://htn-hb-women")).contents[0].text
        )
        rows = await client.call_tool(
            "query_lab_results",
            {"cohort": "htn-hb-women@1", "select": ["person_pseudonym", "loinc"], "limit": 1000},
        )
        counts = await client.call_tool(
            "aggregate_lab_results", {"cohort": "htn-hb-women", "group_by": []}
        )
    assert job["status"] == "done"
    people = job["result"]["people"]
    assert saved.structured_content is not None
    assert saved.structured_content["people"] == people
    assert saved.structured_content["cohort"] == {
        "name": "htn-hb-women",
        "version": 1,
        "uri": "cohort://htn-hb-women/1",
    }
    assert resource["members"] == people and resource["definition"] == json.loads(
        json.dumps(LISTABLE)
    )
    assert not rows.is_error and rows.structured_content is not None
    assert {row["person_pseudonym"] for row in rows.structured_content["rows"]} == set(people)
    assert not counts.is_error and counts.structured_content is not None
    assert counts.structured_content["total_people"] == (len(people) if len(people) >= K else None)
    saved_file = lake / "_cohorts" / "htn-hb-women" / "1.json"
    assert json.loads(saved_file.read_text())["members"] == people


async def test_stewards_and_clinicians_get_counts_only(lake: Path, roster: RosterFacts):
    tools, refused = await call_tool(
        lake,
        "data_steward",
        "quality_improvement",
        "find_cohort",
        {"criteria": LISTABLE, "output": "pseudonyms"},
    )
    assert "find_cohort" in tools
    assert refused is not None and refused.is_error
    assert "this role receives cohort counts only" in refused.content[0].text
    _, counted = await call_tool(
        lake, "clinician", "quality_improvement", "find_cohort", {"criteria": {"labs": [HB]}}
    )
    assert counted is not None and not counted.is_error, counted.content[0].text
    expected = truth(lake, roster, {"labs": [HB]})
    assert counted.structured_content["count"] == (expected if expected >= K else None)
    assert "people" not in counted.structured_content


async def test_the_arm_of_the_blinded_study_is_refused(lake: Path):
    _, result = await call_tool(
        lake,
        "researcher",
        "research",
        "find_cohort",
        {"criteria": {"trials": [{"study_id": "BIOFED-01", "arm": "Placebo"}]}},
    )
    assert result is not None and result.is_error
    assert "the treatment arm of a study whose arms are blinded cannot be a criterion" in (
        result.content[0].text
    )


async def test_a_revoked_consent_leaves_the_next_answer(materialised_lake, tmp_path: Path):
    lake = tmp_path / "lake"
    shutil.copytree(materialised_lake.root, lake)
    arguments = {"criteria": {"labs": [HB]}, "output": "pseudonyms"}
    _, before = await call_tool(lake, "researcher", "research", "find_cohort", arguments)
    assert before is not None and not before.is_error
    leaving = before.structured_content["people"][0]

    consent_path = lake / "gold" / "research" / "_consent"
    consent = pl.read_delta(str(consent_path))
    revoked = consent.with_columns(
        pl.when(pl.col("person_pseudonym") == leaving)
        .then(False)
        .otherwise(pl.col("permitted"))
        .alias("permitted")
    )
    write_deltalake(consent_path, revoked.to_arrow(), mode="overwrite")

    _, after = await call_tool(lake, "researcher", "research", "find_cohort", arguments)
    assert after is not None and not after.is_error
    assert after.structured_content["people"] == [
        person for person in before.structured_content["people"] if person != leaving
    ]


async def test_a_study_consent_withdrawal_leaves_that_study_s_views_on_the_next_call(
    materialised_lake, tmp_path: Path
):
    """The consent table's per-study rows are re-read on every call, like research consent:
    a subject who withdrew consent from a study leaves that study's rows and cohorts at once,
    and stays in the views of the other silos."""
    lake = tmp_path / "lake"
    shutil.copytree(materialised_lake.root, lake)
    subjects = {"select": ["person_pseudonym", "study_id"], "limit": 1000}
    _, rows = await call_tool(lake, "researcher", "research", "query_trial_subjects", subjects)
    assert rows is not None and not rows.is_error
    (leaving, study) = sorted(
        (r["person_pseudonym"], r["study_id"]) for r in rows.structured_content["rows"]
    )[0]
    cohort = {"criteria": {"trials": [{"study_id": study}]}, "output": "pseudonyms"}
    _, before = await call_tool(lake, "researcher", "research", "find_cohort", cohort)
    assert before is not None and leaving in before.structured_content["people"]
    only = {"filters": {"person_pseudonym": {"eq": leaving}}}
    _, events = await call_tool(lake, "researcher", "research", "query_trial_lab_results", only)
    assert events is not None and events.structured_content["row_count"] > 0

    consent_path = lake / "gold" / "research" / "_consent"
    consent = pl.read_delta(str(consent_path))
    withdrawal = pl.DataFrame(
        {
            "person_pseudonym": [leaving],
            "scope": [f"trial:{study}"],
            "study_id": [study],
            "permitted": [False],
        }
    ).select(consent.columns)
    updated = pl.concat(
        [
            consent.filter(
                ~((pl.col("person_pseudonym") == leaving) & pl.col("study_id").eq_missing(study))
            ),
            withdrawal.cast(consent.schema),
        ]
    )
    write_deltalake(consent_path, updated.to_arrow(), mode="overwrite")

    for tool in ("query_trial_subjects", "query_trial_lab_results", "query_trial_adverse_events"):
        _, after = await call_tool(lake, "researcher", "research", tool, only)
        assert after is not None and after.structured_content["row_count"] == 0, tool
    _, cohort_after = await call_tool(lake, "researcher", "research", "find_cohort", cohort)
    assert cohort_after is not None
    assert cohort_after.structured_content["people"] == [
        p for p in before.structured_content["people"] if p != leaving
    ]
    # Research consent still holds: the person stays in the other silos' views.
    _, patient = await call_tool(lake, "researcher", "research", "query_patients", only)
    assert patient is not None and patient.structured_content["row_count"] == 1
