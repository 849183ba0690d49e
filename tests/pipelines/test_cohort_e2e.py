"""From the landing files of all five silos to ``find_cohort`` answers over stdio, held to the
synthetic generators' ground truth.

The shared lake (tests/conftest.py) is the synthetic cohort landed in every silo and
materialised once. A copy is served by the real ``biofed serve`` over stdio, to a researcher
(purpose research, who may list members' pseudonyms, except for cohorts defined on genotypes,
which it may only count) and to a data steward (purpose quality improvement, counts only).
Every question is answered a second time by
``connectors.synth.cohort_truth`` from the generators' own plans, without reading the lake;
the pseudonyms of the truth's people come from the lake's restricted crosswalk and the
research audience's keys. The questions (codes, LOINC ranges, modalities, variants, the
study) are picked from the generators, not from the lake.
"""

import json
import shutil
import sys
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import anyio
import polars as pl
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult

from connectors.synth import build_people, lab_truth
from connectors.synth import codes as c
from connectors.synth.federation import RosterFacts
from connectors.synth.genomics import KNOWN_VARIANTS, cohort_sites
from connectors.synth.trial import STUDY_ID
from mcp_catalog.governance.deid import PERSON_PREFIX
from mcp_catalog.policy import load_policy
from pipelines.lake import Lake
from pipelines.research import CROSSWALK_PATH, pseudonyms_for
from pipelines.resources import LakeResource
from tests.pipelines.conftest import PATIENTS, SEED

REPO = Path(__file__).resolve().parents[2]
BIOFED = str(Path(sys.executable).with_name("biofed"))
MIN_CELL = load_policy().datasets["research/patients"].min_cell_size
PURPOSES = {"researcher": "research", "data_steward": "quality_improvement"}
RESEARCHER = "stdio-cohort-rita"
STEWARD_PRINCIPAL = "stdio-cohort-steve"


def _variant(rsid: str) -> dict[str, Any]:
    known = next(v for v in KNOWN_VARIANTS if v.rsid == rsid)
    return {"chrom": known.chrom, "pos": known.pos, "ref": known.ref, "alt": known.alt}


T2D = {"codes": [c.DIABETES_T2.code], "system": c.SNOMED}
HYPERTENSION_OR_LIPIDS = {"codes": [c.HYPERTENSION.code, c.HYPERLIPIDEMIA.code]}
# Bounds sit between reporting steps (HbA1c in 0.1 %, glucose in 1 mg/dL), never on a value.
HBA1C_DIABETIC = {"loinc": "4548-4", "min": 6.45, "max": None}
HBA1C_ABOVE_8 = {"loinc": "4548-4", "min": 8.05}
HBA1C_DIABETIC_BAND = {"loinc": "4548-4", "min": 6.45, "max": 7.45}
GLUCOSE_HIGH = {"loinc": "2345-7", "min": 100.5, "max": 130.5}
# Narrow ranges around a value a laboratory sent in a unit no UCUM spelling matches ("mg%",
# "% Hb" in connectors.synth.lab.UNKNOWN_UNITS): the lake keeps such results without a
# value, so they must not qualify their person.
GLUCOSE_70 = {"loinc": "2345-7", "min": 69.5, "max": 70.5}
HBA1C_5_2 = {"loinc": "4548-4", "min": 5.15, "max": 5.25}
GLUCOSE_ANY = {"loinc": "2345-7", "min": 80.5}
TCF7L2 = _variant("rs7903146")
FTO = _variant("rs9939609")
MTHFR = _variant("rs1801133")
# Sites of the seed's own cohort VCF (connectors.synth.genomics.cohort_sites), carried by
# most sequenced people: chr7:98071327 is multi-allelic (C>T common, C>G rare).
COMMON_CHR20 = {"chrom": "chr20", "pos": 18435644, "ref": "G", "alt": "C"}
COMMON_CHR7 = {"chrom": "chr7", "pos": 98071327, "ref": "C", "alt": "T"}
RARE_CHR7 = {"chrom": "chr7", "pos": 98071327, "ref": "C", "alt": "G"}
STUDY = {"study_id": STUDY_ID}
CHEST = {"body_part": "CHEST"}

LISTED: dict[str, dict[str, Any]] = {
    "ehr: type 2 diabetes": {"conditions": [T2D]},
    "ehr: adults 18-64": {"age": {"min": 18, "max": 64}},
    "ehr: female adults 18-64": {"sex": "female", "age": {"min": 18, "max": 64}},
    "ehr: aged 85 to 90, where 90 stands for 90 or older": {"age": {"min": 85, "max": 90}},
    "lab: HbA1c of 6.5 % or more": {"labs": [HBA1C_DIABETIC]},
    "lab: HbA1c between 6.5 and 7.4 %": {"labs": [HBA1C_DIABETIC_BAND]},
    "lab: glucose between 101 and 130 mg/dL": {"labs": [GLUCOSE_HIGH]},
    "lab: glucose of 70 mg/dL, not counting a result in an unknown unit": {"labs": [GLUCOSE_70]},
    "lab: HbA1c of 5.2 %, not counting a result in an unknown unit": {"labs": [HBA1C_5_2]},
    "imaging: CT of the abdomen": {"imaging": [{"modality": "CT", "body_part": "ABDOMEN"}]},
    "imaging: DX of the chest": {"imaging": [{"modality": "DX", "body_part": "CHEST"}]},
    "trials: BIOFED-01 subjects": {"trials": [STUDY]},
    "ehr+lab+imaging: diabetes, HbA1c above 8 %, any CT": {
        "conditions": [T2D],
        "labs": [HBA1C_ABOVE_8],
        "imaging": [{"modality": "CT"}],
    },
    "ehr+lab+imaging: hypertension or lipids, glucose, chest imaging, women": {
        "conditions": [HYPERTENSION_OR_LIPIDS],
        "labs": [GLUCOSE_ANY],
        "imaging": [CHEST],
        "sex": "female",
    },
    "ehr+lab+imaging+trials: chest imaging of trial subjects": {
        "conditions": [HYPERTENSION_OR_LIPIDS],
        "labs": [GLUCOSE_ANY],
        "imaging": [CHEST],
        "trials": [STUDY],
    },
}
"""Questions the researcher asks for members' pseudonyms (every view listable to it)."""

COUNTED: dict[str, dict[str, Any]] = {
    "genomics: rs9939609 carriers": {"variants": [FTO]},
    "genomics: rs7903146 carriers": {"variants": [TCF7L2]},
    "genomics+lab+ehr: common variant, glucose, adults": {
        "variants": [COMMON_CHR20],
        "labs": [GLUCOSE_ANY],
        "age": {"min": 18},
    },
    "genomics+lab+imaging: two common variants, glucose, chest imaging": {
        "variants": [COMMON_CHR20, COMMON_CHR7],
        "labs": [GLUCOSE_ANY],
        "imaging": [CHEST],
    },
    "all five silos": {
        "conditions": [HYPERTENSION_OR_LIPIDS],
        "labs": [GLUCOSE_ANY],
        "imaging": [CHEST],
        "variants": [COMMON_CHR20],
        "trials": [STUDY],
        "age": {"min": 18},
    },
}
"""Questions on genotypes, which researchers may count but never list. Each is asked by a
researcher of its own: the catalog refuses a count whose cohort differs from one the same
principal counted before by fewer than the minimum cell size (a differencing attack)."""

STEWARD: dict[str, dict[str, Any]] = {
    "small: type 2 diabetes": {"conditions": [T2D]},
    "large: glucose between 101 and 130 mg/dL": {"labs": [GLUCOSE_HIGH]},
    "large: rs9939609 carriers": {"variants": [FTO]},
}
"""Counts data stewards ask (no quasi-identifiers: no age or sex), one steward each."""

BLINDED_ARM = {"trials": [{"study_id": STUDY_ID, "arm": "Placebo"}]}
"""Refused: BIOFED-01 is blinded."""
LISTED_GENOTYPES = {"variants": [FTO]}
"""Refused with output pseudonyms: researchers count genotypes, never list their carriers."""

VIEWS = {
    "conditions": "conditions",
    "labs": "lab_results",
    "imaging": "imaging_studies",
    "variants": "genotypes",
    "trials": "trial_subjects",
}


@dataclass(frozen=True)
class Sessions:
    lake: Path
    tools: dict[str, set[str]]
    listed: dict[str, CallToolResult]
    counted: dict[str, CallToolResult]
    steward: dict[str, CallToolResult]
    refused: dict[str, CallToolResult]


def _server(lake: Path, role: str, principal: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=BIOFED,
        args=[
            *("serve", "--lake", str(lake), "--role", role, "--purpose", PURPOSES[role]),
            *("--principal", principal, "--accept-contract"),
        ],
        cwd=REPO,
    )


async def _session(
    lake: Path, role: str, principal: str, calls: dict[str, dict[str, Any]]
) -> tuple[set[str], dict[str, CallToolResult]]:
    """One ``biofed serve`` over stdio for one principal, asked ``calls`` in order."""
    async with Client(_server(lake, role, principal), read_timeout_seconds=120) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        return tools, {name: await client.call_tool("find_cohort", a) for name, a in calls.items()}


async def _run(lake: Path) -> Sessions:
    jobs: list[tuple[str, str, str, dict[str, dict[str, Any]]]] = [
        (
            "listed",
            "researcher",
            RESEARCHER,
            {
                **{q: {"criteria": c, "output": "pseudonyms"} for q, c in LISTED.items()},
                "blinded arm": {"criteria": BLINDED_ARM},
                "listed genotypes": {"criteria": LISTED_GENOTYPES, "output": "pseudonyms"},
            },
        ),
        *(
            ("counted", "researcher", f"{RESEARCHER}-{i}", {q: {"criteria": c}})
            for i, (q, c) in enumerate(COUNTED.items())
        ),
        *(
            ("steward", "data_steward", f"{STEWARD_PRINCIPAL}-{i}", {q: {"criteria": c}})
            for i, (q, c) in enumerate(STEWARD.items())
        ),
    ]
    tools: dict[str, set[str]] = {}
    answers: dict[str, dict[str, CallToolResult]] = {"listed": {}, "counted": {}, "steward": {}}
    # Each server spends seconds starting: a few at a time, as a few hosts on one machine.
    limiter = anyio.CapacityLimiter(3)

    async def run(group: str, role: str, principal: str, calls: dict) -> None:
        async with limiter:
            offered, got = await _session(lake, role, principal, calls)
        tools[role] = offered
        answers[group].update(got)

    with anyio.fail_after(600):
        async with anyio.create_task_group() as group:
            for job in jobs:
                group.start_soon(run, *job)
    listed = answers["listed"]
    refused = {name: listed.pop(name) for name in ("blinded arm", "listed genotypes")}
    return Sessions(lake, tools, listed, answers["counted"], answers["steward"], refused)


@pytest.fixture(scope="module")
def sessions(materialised_lake, tmp_path_factory) -> Sessions:
    lake = tmp_path_factory.mktemp("cohort-e2e") / "lake"
    # The servers write their audit log into the lake: serve a copy with a fresh log.
    shutil.copytree(materialised_lake.root, lake, ignore=shutil.ignore_patterns("_audit"))
    return anyio.run(_run, lake)


@pytest.fixture(scope="module")
def facts() -> RosterFacts:
    """Every person's records as the generators planned them (the lake is not read)."""
    return RosterFacts.from_people(build_people(PATIENTS, SEED))


@pytest.fixture(scope="module")
def research_pseudonym(sessions) -> dict[str, str]:
    """MRN -> research pseudonym, through the lake's crosswalk and the audience's keys."""
    store = Lake(str(sessions.lake))
    crosswalk = (
        store.read(CROSSWALK_PATH)
        .filter(pl.col("source_system") == "ehr", pl.col("identifier_type") == "mrn")
        .select(pl.col("identifier").alias("mrn"), "person_key")
    )
    assert crosswalk.height == PATIENTS
    scheme = pseudonyms_for(store, LakeResource(root=str(sessions.lake)), "research")
    mapped = scheme.apply(crosswalk, "person_key", prefix=PERSON_PREFIX, alias="pseudonym")
    return dict(mapped.select("mrn", "pseudonym").iter_rows())


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def truth(facts: RosterFacts, criteria: dict[str, Any], answer: dict[str, Any]) -> set[str]:
    """The generators' cohort on the day the views were materialised (``as_of``): consent
    held then, and ages count from its year."""
    return facts.cohort(criteria, reference_date=datetime.fromisoformat(answer["as_of"]).date())


def views_of(criteria: dict[str, Any]) -> set[str]:
    return {"patients", *(VIEWS[k] for k in criteria if k in VIEWS)}


def assert_read(answer: dict[str, Any], criteria: dict[str, Any]) -> None:
    """The answer names the register first, then every view a criterion read, once each."""
    datasets = answer["datasets"]
    assert datasets[0] == "patients" and len(set(datasets)) == len(datasets)
    assert set(datasets) == views_of(criteria) == set(answer["delta_versions"])


def test_the_researcher_and_the_steward_are_offered_the_cohort_tool(sessions) -> None:
    assert "find_cohort" in sessions.tools["researcher"]
    assert "find_cohort" in sessions.tools["data_steward"]


def test_the_variants_asked_are_sites_of_the_generators_cohort_vcf() -> None:
    sites = {(s.chrom, s.pos, s.ref): s for s in cohort_sites(SEED)}
    for variant in (COMMON_CHR20, COMMON_CHR7, RARE_CHR7, TCF7L2, FTO, MTHFR):
        site = sites[(variant["chrom"], variant["pos"], variant["ref"])]
        assert variant["alt"] in site.alts


def test_no_lab_bound_asked_lies_within_rounding_of_a_result(facts) -> None:
    """A bound next to a value would let unit-conversion rounding decide the answer."""
    bounds: dict[str, set[float]] = {}
    for criteria in (*LISTED.values(), *COUNTED.values(), *STEWARD.values()):
        for lab in criteria.get("labs", []):
            for bound in (lab.get("min"), lab.get("max")):
                if bound is not None:
                    bounds.setdefault(lab["loinc"], set()).add(bound)
    for person in facts.people.values():
        for loinc, value in person.labs:
            assert all(abs(value - b) > 1e-6 for b in bounds.get(loinc, ())), loinc


def test_both_bounds_of_the_lab_bands_decide_who_qualifies(facts) -> None:
    """Moving either bound of a band by a few reporting steps changes the true cohort, so an
    answer that ignored a bound could not pass."""
    on = date.today()
    for band, step in ((HBA1C_DIABETIC_BAND, 0.1), (GLUCOSE_HIGH, 1.0)):
        asked = facts.cohort({"labs": [band]}, reference_date=on)
        wider = {**band, "max": band["max"] + 10 * step}
        lower = {**band, "min": band["min"] - 10 * step}
        assert facts.cohort({"labs": [wider]}, reference_date=on) != asked
        assert facts.cohort({"labs": [lower]}, reference_date=on) != asked


def test_a_result_in_an_unknown_unit_would_change_the_narrow_lab_answers(facts) -> None:
    """Each narrow range holds a result sent in an unknown unit by a consenting person who
    has no other result in it: counting that result would add them."""
    truth_rows = lab_truth(build_people(PATIENTS, SEED))
    unknown = truth_rows.filter(pl.col("deliberate") == "unknown_unit")
    on = date.today()
    for band in (GLUCOSE_70, HBA1C_5_2):
        inside = unknown.filter(
            pl.col("loinc") == band["loinc"], pl.col("value").is_between(band["min"], band["max"])
        )
        people = {m for m in inside["mrn"] if facts.people[m].consented(on)}
        assert people and not people & facts.cohort({"labs": [band]}, reference_date=on)


def test_the_age_band_holds_people_over_ninety_only_as_ninety(facts) -> None:
    on = date.today()
    band = facts.cohort({"age": {"min": 85, "max": 90}}, reference_date=on)
    over = {m for m in band if on.year - facts.people[m].birth_date.year > 90}
    assert over and all(facts.people[m].age_90_plus(on) for m in over)


@pytest.mark.parametrize("question", list(LISTED))
def test_the_researcher_gets_the_generators_cohort_with_its_research_pseudonyms(
    sessions, facts, research_pseudonym, question
) -> None:
    criteria = LISTED[question]
    answer = structured(sessions.listed[question])
    expected = truth(facts, criteria, answer)
    assert answer["count"] == len(expected)
    assert answer["suppressed"] is False
    assert sorted(answer["people"]) == sorted(research_pseudonym[m] for m in expected)
    assert_read(answer, criteria)


@pytest.mark.parametrize("question", list(COUNTED))
def test_the_researcher_counts_genotype_cohorts_as_the_generators_planned_them(
    sessions, facts, question
) -> None:
    criteria = COUNTED[question]
    answer = structured(sessions.counted[question])
    expected = len(truth(facts, criteria, answer))
    assert answer.get("people") is None
    assert answer["min_cell_size"] == MIN_CELL
    if expected < MIN_CELL:
        assert (answer["suppressed"], answer["count"]) == (True, None)
    else:
        assert (answer["suppressed"], answer["count"]) == (False, expected)
    assert_read(answer, criteria)


@pytest.mark.parametrize("question", list(STEWARD))
def test_a_steward_count_is_suppressed_exactly_when_the_true_cohort_is_below_the_cell_size(
    sessions, facts, question
) -> None:
    answer = structured(sessions.steward[question])
    expected = len(truth(facts, STEWARD[question], answer))
    assert answer["min_cell_size"] == MIN_CELL
    assert answer.get("people") is None
    if expected < MIN_CELL:
        assert (answer["suppressed"], answer["count"]) == (True, None)
    else:
        assert (answer["suppressed"], answer["count"]) == (False, expected)
    assert question.startswith("small" if expected < MIN_CELL else "large")


def test_the_questions_reach_reportable_counts_and_cross_silo_people(sessions, facts) -> None:
    """The comparisons are only worth something if some answers are large, some small, and
    questions across silos find people."""
    listed = {q: len(truth(facts, c, structured(sessions.listed[q]))) for q, c in LISTED.items()}
    counted = {q: len(truth(facts, c, structured(sessions.counted[q]))) for q, c in COUNTED.items()}
    across = [q for q in listed if "+" in q]
    assert max(listed.values()) >= MIN_CELL and any(0 < n < MIN_CELL for n in listed.values())
    assert all(listed[q] > 0 for q in across) and len(across) >= 3
    genomic_across = [q for q in counted if "+" in q and counted[q] >= MIN_CELL]
    assert len(genomic_across) >= 2
    assert any(n < MIN_CELL for n in counted.values())


def test_an_arm_of_the_blinded_study_is_refused(sessions) -> None:
    refused = sessions.refused["blinded arm"]
    assert refused.is_error and "blinded" in refused.content[0].text


def test_carriers_of_a_variant_are_never_listed_to_a_researcher(sessions) -> None:
    refused = sessions.refused["listed genotypes"]
    assert refused.is_error and "ask for a count" in refused.content[0].text


def test_every_cohort_call_is_audited_under_the_callers_identity(sessions) -> None:
    lines = (sessions.lake / "_audit" / "audit.ndjson").read_text().splitlines()
    records = [json.loads(line) for line in lines if line]
    calls = [r for r in records if r["action"] == "find_cohort"]
    by_principal: dict[str, list[dict]] = {}
    for record in calls:
        by_principal.setdefault(record["principal"], []).append(record)
    assert len(by_principal.pop(RESEARCHER)) == len(LISTED) + len(sessions.refused)
    for i in range(len(COUNTED)):
        (record,) = by_principal.pop(f"{RESEARCHER}-{i}")
        assert (record["role"], record["purpose"], record["decision"]) == (
            "researcher",
            "research",
            "allow",
        )
    for i in range(len(STEWARD)):
        (record,) = by_principal.pop(f"{STEWARD_PRINCIPAL}-{i}")
        assert (record["role"], record["purpose"], record["decision"]) == (
            "data_steward",
            "quality_improvement",
            "allow",
        )
    assert by_principal == {}
