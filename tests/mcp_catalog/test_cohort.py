"""The cohort tool over a small lake of the six views it reads, held to plain-Python truth."""

import json
import logging
import re
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import polars as pl
import pytest
import yaml
from deltalake import write_deltalake
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult

from mcp_catalog.audit import AuditLog
from mcp_catalog.cohort import AGE_CAP, KIND_VIEWS, CohortSpec
from mcp_catalog.cohorts_store import (
    CohortIntegrityError,
    CohortStore,
    parse_reference,
    record_sha256,
)
from mcp_catalog.lint import lint_text
from mcp_catalog.manifest import CatalogColumn, CatalogDataset, Manifest
from mcp_catalog.policy import DEFAULT_POLICY_PATH, Policy, PolicyError, load_policy
from mcp_catalog.principal import Principal, configured_principal
from mcp_catalog.server import CatalogService
from tests.mcp_catalog.conftest import write_consent

pytestmark = pytest.mark.anyio

MATERIALIZED = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
REFERENCE_YEAR = MATERIALIZED.year
K = 5
PEOPLE = [f"P{i:02d}" for i in range(40)]
REVOKED = ("P04", "P08")
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
T2D, HTN, A1C, HB = "44054006", "38341003", "4548-4", "718-7"
VARIANT = {"chrom": "chr10", "pos": 112998590, "ref": "C", "alt": "T"}
GENDERS = ["female", "male", "other", "unknown"]
AUDIT_KEY = b"k" * 32
CORRELATION = re.compile(r" \(correlation id [0-9a-f]{32}\)$")


# -- the lake: rows as plain Python, so the expected cohorts are computed without polars ------


def _birth(i: int) -> tuple[int | None, bool]:
    if i < 3:
        return None, True  # aged 90 or more: no year of birth in the view
    if i == 3:
        return None, False  # year of birth unknown
    if i == 39:
        return 2015, False  # a child
    return 1937 + 2 * (i - 4), False  # 89 down to 19


PATIENTS = [
    {
        "person_pseudonym": p,
        "birth_year": _birth(i)[0],
        "age_90_plus": _birth(i)[1],
        "gender": "female" if i % 2 == 0 else "male",
    }
    for i, p in enumerate(PEOPLE)
]
CONDITIONS = (
    [
        {"person_pseudonym": p, "system": SNOMED, "code": T2D, "verification_status": "confirmed"}
        for i, p in enumerate(PEOPLE)
        if i % 3 == 0
    ]
    + [
        {"person_pseudonym": p, "system": SNOMED, "code": HTN, "verification_status": "confirmed"}
        for i, p in enumerate(PEOPLE)
        if i % 4 == 0
    ]
    + [
        {
            "person_pseudonym": "P01",
            "system": SNOMED,
            "code": T2D,
            "verification_status": "refuted",
        },
        {
            "person_pseudonym": "P05",
            "system": SNOMED,
            "code": T2D,
            "verification_status": "entered-in-error",
        },
        {"person_pseudonym": "P07", "system": ICD10, "code": "E11.9", "verification_status": None},
    ]
)
LABS = [
    {"person_pseudonym": p, "loinc": A1C, "value": 5.0 + i % 10, "unit": "%"}
    for i, p in enumerate(PEOPLE)
    if i < 36
] + [{"person_pseudonym": p, "loinc": HB, "value": 13.0, "unit": "g/dL"} for p in PEOPLE[:36]]
IMAGING = [
    {
        "person_pseudonym": p,
        "study_date": date(2025, 1, 1) + timedelta(days=i),
        "primary_modality": "CT",
        "modalities": "CT",
        "body_part": "ABDOMEN",
    }
    for i, p in enumerate(PEOPLE)
    if i % 2 == 0
] + [
    {
        "person_pseudonym": p,
        "study_date": date(2024, 6, 1),
        "primary_modality": "MR",
        "modalities": "MR,SR",
        "body_part": "HEAD",
    }
    for i, p in enumerate(PEOPLE)
    if i % 5 == 0
]
GENOTYPES = [
    {
        "person_pseudonym": p,
        **VARIANT,
        "end": VARIANT["pos"],
        "alt_allele_copies": i % 3,
        # Two carriers' calls are below the depth threshold: their rows never count.
        "depth": 5 if i in (7, 28) else 30,
    }
    for i, p in enumerate(PEOPLE)
    if i < 35
]
TRIALS = (
    [
        {
            "person_pseudonym": p,
            "study_id": "CDISCPILOT01",
            "arm": "Placebo" if i % 2 == 0 else "Xanomeline High Dose",
            "arm_status": "unblinded",
        }
        for i, p in enumerate(PEOPLE)
        if 10 <= i <= 25
    ]
    + [
        {"person_pseudonym": p, "study_id": "BIOFED-01", "arm": None, "arm_status": "blinded"}
        for p in PEOPLE[26:31]
    ]
    # Unblinded in the policy, but its rows still say blinded: the data decides too.
    + [
        {"person_pseudonym": p, "study_id": "OPENSTUDY", "arm": None, "arm_status": "blinded"}
        for p in PEOPLE[31:34]
    ]
)


def _column(name: str, type_: str, class_: str, **extra: Any) -> CatalogColumn:
    return CatalogColumn.model_validate(
        {"name": name, "type": type_, "description": f"The {name}.", "class": class_, **extra}
    )


PERSON = _column("person_pseudonym", "string", "pseudonym")
VIEWS: dict[str, tuple[list[dict[str, Any]], list[CatalogColumn], dict[str, pl.DataType]]] = {
    "patients": (
        PATIENTS,
        [
            PERSON,
            _column("birth_year", "integer", "quasi_identifier"),
            _column("age_90_plus", "boolean", "quasi_identifier"),
            _column("gender", "string", "quasi_identifier", enum=GENDERS),
        ],
        {"birth_year": pl.Int64, "age_90_plus": pl.Boolean},
    ),
    "conditions": (
        CONDITIONS,
        [
            PERSON,
            _column("system", "string", "clinical"),
            _column("code", "string", "clinical"),
            _column(
                "verification_status",
                "string",
                "clinical",
                enum=["confirmed", "entered-in-error", "refuted", "unconfirmed"],
            ),
        ],
        {"verification_status": pl.String},
    ),
    "lab_results": (
        LABS,
        [
            PERSON,
            _column("loinc", "string", "clinical"),
            _column("value", "number", "clinical"),
            _column("unit", "string", "clinical"),
        ],
        {"value": pl.Float64},
    ),
    "imaging_studies": (
        IMAGING,
        [
            PERSON,
            _column("study_date", "date", "sensitive"),
            _column("primary_modality", "string", "clinical", enum=["CT", "DX", "MR", "SR"]),
            _column("modalities", "string", "clinical"),
            _column("body_part", "string", "clinical"),
        ],
        {"study_date": pl.Date},
    ),
    "genotypes": (
        GENOTYPES,
        [
            PERSON,
            _column("chrom", "string", "clinical"),
            _column("pos", "integer", "clinical"),
            _column("end", "integer", "clinical"),
            _column("ref", "string", "clinical"),
            _column("alt", "string", "clinical"),
            _column("alt_allele_copies", "integer", "sensitive"),
            _column("depth", "integer", "clinical"),
        ],
        {"pos": pl.Int64, "end": pl.Int64, "alt_allele_copies": pl.Int64, "depth": pl.Int64},
    ),
    "trial_subjects": (
        TRIALS,
        [
            PERSON,
            _column("study_id", "string", "clinical"),
            _column("arm", "string", "clinical"),
            _column("arm_status", "string", "administrative", enum=["blinded", "unblinded"]),
        ],
        {"arm": pl.String},
    ),
}
DIMENSIONS = {
    "patients": ["gender", "age_90_plus"],
    "conditions": ["code"],
    "lab_results": ["loinc"],
    "imaging_studies": ["primary_modality", "body_part"],
    "genotypes": ["chrom", "pos"],
    "trial_subjects": ["study_id", "arm"],
}
ROWS = ["pseudonym", "quasi_identifier", "sensitive", "clinical", "administrative"]


@dataclass(frozen=True)
class CohortLake:
    root: Path
    manifest: Manifest
    policy: Policy


def _frame(rows: list[dict[str, Any]], columns: list[CatalogColumn], dtypes) -> pl.DataFrame:
    schema = {c.name: dtypes.get(c.name, pl.String) for c in columns}
    return pl.DataFrame(rows, schema=schema, orient="row").select(list(schema))


def _policy_document(**overrides: Any) -> dict[str, Any]:
    document = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    document = {k: v for k, v in document.items() if not k.startswith("x-")}
    document["version"] = "test-cohort"
    document["trials"] = {
        **document["trials"],
        "OPENSTUDY": {"title": "An unblinded study", "blinded": False},
    }
    datasets = {}
    for name, (_, columns, _) in VIEWS.items():
        researcher = (
            {"aggregate": True} if name == "genotypes" else {"rows": True, "aggregate": True}
        )
        if "rows" in researcher:
            researcher["classes"] = ROWS
        datasets[f"research/{name}"] = {
            "owner": "data stewards <stewards@example.org>",
            "purposes": ["research", "quality_improvement"],
            "consent": True,
            "consent_scope": "research",
            "row_cap": 1000,
            "min_cell_size": K,
            "read_scope": "biofed.research.read",
            "aggregate_scope": "biofed.research.aggregate",
            "columns": {c.name: c.column_class for c in columns},
            "access": {
                "researcher": researcher,
                "data_steward": {
                    "rows": True,
                    "aggregate": True,
                    "classes": ["pseudonym", "clinical", "administrative"],
                },
                "clinician": {"aggregate": True},
            },
            "aggregation": {"dimensions": DIMENSIONS[name]},
        }
    datasets["research/genotypes"]["suppress_below"] = {"depth": 10}
    document["datasets"] = datasets
    document.update(overrides)
    return document


def write_cohort_lake(root: Path) -> CohortLake:
    root.mkdir(parents=True, exist_ok=True)
    datasets = []
    for name, (rows, columns, dtypes) in VIEWS.items():
        write_deltalake(root / "gold" / "research" / name, _frame(rows, columns, dtypes).to_arrow())
        datasets.append(
            CatalogDataset(
                name=name,
                audience="research",
                path=f"gold/research/{name}",
                title=f"Research {name.replace('_', ' ')}",
                description=f"The {name.replace('_', ' ')} of consented people.",
                owner="data stewards <stewards@example.org>",
                key=["person_pseudonym"],
                columns=columns,
                row_count=len(rows),
                delta_version=0,
                last_materialized=MATERIALIZED,
                upstream=[f"silver/{name}"],
            )
        )
    write_consent(root, PEOPLE, REVOKED)
    manifest = Manifest(generated_at=MATERIALIZED, policy_version="test-cohort", datasets=datasets)
    (root / "policy.yaml").write_text(yaml.safe_dump(_policy_document(), sort_keys=False))
    return CohortLake(root, manifest, load_policy(root / "policy.yaml"))


@pytest.fixture(scope="module")
def cohort_lake(tmp_path_factory: pytest.TempPathFactory) -> CohortLake:
    return write_cohort_lake(tmp_path_factory.mktemp("cohort_lake"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def researcher_server(cohort_lake: CohortLake, tmp_path_factory: pytest.TempPathFactory):
    """One researcher server for tests that neither count (no ledger) nor read the audit."""
    return make_service(cohort_lake, tmp_path_factory.mktemp("audit")).server_for("researcher")


PURPOSES = {"researcher": "research", "compliance_officer": "audit"}


def principal(policy: Policy, role: str = "researcher", subject: str = "rita") -> Principal:
    purpose = PURPOSES.get(role, "quality_improvement")
    protocol = "BIOFED-DEMO-001" if purpose == "research" else None
    return configured_principal(
        policy, subject=subject, role=role, purpose=purpose, protocol=protocol
    )


def make_service(lake: CohortLake, audit_dir: Path, role: str = "researcher", **kw: Any):
    return CatalogService(
        lake.manifest,
        lake.root,
        policy=kw.pop("policy", lake.policy),
        audit=AuditLog(audit_dir, AUDIT_KEY),
        stdio_principal=kw.pop("principal", None) or principal(lake.policy, role),
        **kw,
    )


async def call(server, arguments: dict[str, Any], tool: str = "find_cohort") -> CallToolResult:
    async with Client(server) as client:
        return await client.call_tool(tool, arguments)


async def answer(server, arguments: dict[str, Any], tool: str = "find_cohort") -> dict[str, Any]:
    result = await call(server, arguments, tool)
    assert not result.is_error, result.content[0].text
    assert result.structured_content is not None
    return result.structured_content


async def refusal(server, arguments: dict[str, Any], tool: str = "find_cohort") -> str:
    result = await call(server, arguments, tool)
    assert result.is_error
    text = result.content[0].text
    assert text.startswith(f"Error executing tool {tool}: ") and CORRELATION.search(text), text
    assert "Traceback" not in text and "pydantic" not in text
    return CORRELATION.sub("", text.removeprefix(f"Error executing tool {tool}: "))


def records(audit_dir: Path) -> list[dict[str, Any]]:
    return list(AuditLog(audit_dir, AUDIT_KEY).records())


# -- plain-Python truth ------------------------------------------------------------------------


def consented() -> set[str]:
    return set(PEOPLE) - set(REVOKED)


def age_of(row: dict[str, Any]) -> int | None:
    if row["age_90_plus"]:
        return AGE_CAP
    if row["birth_year"] is None:
        return None
    return min(REFERENCE_YEAR - row["birth_year"], AGE_CAP)


def with_condition(codes: set[str], system: str | None = None) -> set[str]:
    return {
        r["person_pseudonym"]
        for r in CONDITIONS
        if r["code"] in codes
        and (system is None or r["system"] == system)
        and r["verification_status"] not in ("refuted", "entered-in-error")
    }


def with_lab(loinc: str, low: float | None, high: float | None) -> set[str]:
    return {
        r["person_pseudonym"]
        for r in LABS
        if r["loinc"] == loinc
        and (low is None or r["value"] >= low)
        and (high is None or r["value"] <= high)
    }


def carriers() -> set[str]:
    return {
        r["person_pseudonym"] for r in GENOTYPES if r["alt_allele_copies"] >= 1 and r["depth"] >= 10
    }


def aged(low: int | None, high: int | None) -> set[str]:
    found = set()
    for row in PATIENTS:
        age = age_of(row)
        if age is not None and (low is None or age >= low) and (high is None or age <= high):
            found.add(row["person_pseudonym"])
    return found


def of_sex(sex: str) -> set[str]:
    return {r["person_pseudonym"] for r in PATIENTS if r["gender"] == sex}


def imaged(modality: str, body_part: str | None = None, start: date | None = None) -> set[str]:
    return {
        r["person_pseudonym"]
        for r in IMAGING
        if r["primary_modality"] == modality
        and (body_part is None or r["body_part"] == body_part)
        and (start is None or r["study_date"] >= start)
    }


# -- the generated surface ----------------------------------------------------------------------


async def test_each_cohort_role_gets_the_tool_with_the_kinds_of_the_views_it_sees(
    cohort_lake: CohortLake, tmp_path: Path
):
    service = make_service(cohort_lake, tmp_path / "audit")
    async with Client(service.server_for("researcher")) as client:
        tool = {t.name: t for t in (await client.list_tools()).tools}["find_cohort"]
        templates = (await client.list_resource_templates()).resource_templates
    schema = tool.input_schema
    assert list(schema["properties"]) == ["criteria", "output", "save_as", "background"]
    assert schema["required"] == ["criteria"] and schema["additionalProperties"] is False
    criteria = schema["properties"]["criteria"]
    assert list(criteria["properties"]) == list(KIND_VIEWS)
    assert criteria["additionalProperties"] is False and criteria["minProperties"] == 1
    assert criteria["properties"]["sex"]["anyOf"] == [
        {"enum": sorted(GENDERS), "type": "string"},
        {"type": "null"},
    ]
    assert schema["properties"]["output"]["enum"] == ["count", "pseudonyms"]
    assert tool.annotations is not None and tool.annotations.read_only_hint is False
    assert tool.output_schema is not None and len(tool.output_schema["anyOf"]) == 2
    assert sorted(t.uri_template for t in templates) == [
        "cohort-job://{job}",
        "cohort://{name}",
        "cohort://{name}/{version}",
    ]
    names = [t.name for t in (await _tools(service, "researcher"))]
    for text in [tool.description or "", *(t.description or "" for t in templates)]:
        assert lint_text("find_cohort", text, tool_names=names) == []
    assert "count as 90: 90 stands for 90 or older" in (tool.description or "")
    assert len(tool.description or "") <= 2000

    # A counts-only role: the same kinds, a read-only tool, no members in its description.
    clinician = make_service(cohort_lake, tmp_path / "audit", "clinician")
    async with Client(clinician.server_for("clinician")) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
    assert listed["find_cohort"].annotations.read_only_hint is True
    assert "the count only" in listed["find_cohort"].description
    # The compliance officer is not a cohort role.
    officer = make_service(cohort_lake, tmp_path / "audit", "compliance_officer")
    assert "find_cohort" not in {t.name for t in await _tools(officer, "compliance_officer")}


async def _tools(service: CatalogService, role: str):
    async with Client(service.server_for(role)) as client:
        return (await client.list_tools()).tools


def test_criterion_kinds_follow_the_views_offered(cohort_lake: CohortLake):
    views = {d.name: d for d in cohort_lake.manifest.datasets}
    spec = CohortSpec.for_views(views, audience="research", max_criteria=4)
    assert spec is not None and [k.name for k in spec.kinds] == list(KIND_VIEWS)

    without_labs = {n: d for n, d in views.items() if n not in ("lab_results", "genotypes")}
    spec = CohortSpec.for_views(without_labs, audience="research", max_criteria=4)
    assert spec is not None
    assert [k.name for k in spec.kinds] == ["conditions", "imaging", "trials", "age", "sex"]

    # No person register, or one without the generalised age: no cohort tool at all.
    no_register = {n: d for n, d in views.items() if n != "patients"}
    assert CohortSpec.for_views(no_register, audience="research", max_criteria=4) is None
    patients = views["patients"]
    bare = patients.model_copy(
        update={"columns": [c for c in patients.columns if c.name != "age_90_plus"]}
    )
    assert (
        CohortSpec.for_views({**views, "patients": bare}, audience="research", max_criteria=4)
        is None
    )

    # A criterion column of the wrong type is a build error, not a silent omission.
    labs = views["lab_results"]
    wrong = labs.model_copy(
        update={
            "columns": [
                c.model_copy(update={"type": "string"}) if c.name == "value" else c
                for c in labs.columns
            ]
        }
    )
    with pytest.raises(ValueError, match="value"):
        CohortSpec.for_views({**views, "lab_results": wrong}, audience="research", max_criteria=4)


# -- answers against the truth -------------------------------------------------------------


async def test_a_cross_view_cohort_matches_the_plain_python_truth(
    cohort_lake: CohortLake, tmp_path: Path
):
    server = make_service(cohort_lake, tmp_path / "audit").server_for("researcher")
    criteria = {
        "conditions": [{"codes": [T2D], "system": SNOMED}],
        "labs": [{"loinc": A1C, "min": 8.0, "max": None}],
        "imaging": [{"modality": "CT", "body_part": "ABDOMEN", "from": "2025-01-01"}],
        "age": {"min": 18, "max": 90},
    }
    expected = (
        consented()
        & with_condition({T2D}, SNOMED)
        & with_lab(A1C, 8.0, None)
        & imaged("CT", "ABDOMEN", date(2025, 1, 1))
        & aged(18, 90)
    )
    assert 0 < len(expected) < K
    result = await answer(server, {"criteria": criteria, "output": "pseudonyms"})
    assert result["people"] == sorted(expected)
    assert result["count"] == len(expected) and result["suppressed"] is False
    assert result["datasets"] == ["patients", "conditions", "lab_results", "imaging_studies"]
    assert result["delta_versions"] == dict.fromkeys(result["datasets"], 0)
    assert result["min_cell_size"] == K and result["freshness"] == "unknown"
    assert result["as_of"] == MATERIALIZED.isoformat()

    # Count only (the default): below the minimum cell size, so withheld; no people.
    counted = await answer(server, {"criteria": criteria})
    assert (counted["count"], counted["suppressed"]) == (None, True)
    assert "people" not in counted


@pytest.mark.parametrize(
    ("criteria", "truth"),
    [
        ({"sex": "female"}, lambda: of_sex("female")),
        ({"age": {"min": 90}}, lambda: aged(90, None)),
        ({"age": {"max": 30}}, lambda: aged(None, 30)),
        ({"age": {"min": 18, "max": 64}, "sex": "male"}, lambda: aged(18, 64) & of_sex("male")),
        ({"conditions": [{"codes": [T2D, "E11.9"]}]}, lambda: with_condition({T2D, "E11.9"})),
        (
            {"conditions": [{"codes": [T2D]}, {"codes": [HTN]}]},
            lambda: with_condition({T2D}) & with_condition({HTN}),
        ),
        ({"labs": [{"loinc": A1C, "min": 7.0, "max": 9.0}]}, lambda: with_lab(A1C, 7.0, 9.0)),
        ({"imaging": [{"modality": "MR"}]}, lambda: imaged("MR")),
        # SR is among a study's modalities but never its primary one.
        ({"imaging": [{"modality": "SR"}]}, lambda: set()),
        ({"trials": [{"study_id": "CDISCPILOT01"}]}, lambda: set(PEOPLE[10:26])),
        (
            {"trials": [{"study_id": "CDISCPILOT01", "arm": "Placebo"}]},
            lambda: {p for i, p in enumerate(PEOPLE) if 10 <= i <= 25 and i % 2 == 0},
        ),
    ],
)
async def test_each_criterion_kind_selects_what_its_rule_says(researcher_server, criteria, truth):
    result = await answer(researcher_server, {"criteria": criteria, "output": "pseudonyms"})
    assert result["people"] == sorted(truth() & consented())


async def test_people_aged_90_or_more_count_as_90_and_an_unknown_age_never_matches(
    cohort_lake: CohortLake, tmp_path: Path
):
    server = make_service(cohort_lake, tmp_path / "audit").server_for("researcher")
    oldest = await answer(server, {"criteria": {"age": {"min": 90}}, "output": "pseudonyms"})
    assert {"P00", "P01", "P02"} <= set(oldest["people"])
    everyone = await answer(
        server, {"criteria": {"age": {"min": 0, "max": 90}}, "output": "pseudonyms"}
    )
    assert "P03" not in everyone["people"]
    assert set(everyone["people"]) == consented() - {"P03"}
    below = await answer(server, {"criteria": {"age": {"max": 89}}, "output": "pseudonyms"})
    assert not {"P00", "P01", "P02"} & set(below["people"])


async def test_variant_carriers_need_an_alternate_copy_in_a_row_above_the_threshold(
    cohort_lake: CohortLake, tmp_path: Path
):
    # Researchers count genotypes only: the carriers are checked through a data steward.
    steward = make_service(cohort_lake, tmp_path / "audit", "data_steward")
    server = steward.server_for("data_steward")
    result = await answer(server, {"criteria": {"variants": [VARIANT]}})
    expected = carriers() & consented()
    assert {"P07", "P28"}.isdisjoint(expected)
    assert result["count"] == len(expected) and result["datasets"] == ["patients", "genotypes"]


# -- governance -------------------------------------------------------------------------------


async def test_a_small_count_is_suppressed_unless_the_members_are_listed(
    cohort_lake: CohortLake, tmp_path: Path
):
    # Exactly K subjects: shown. Three: withheld, unless listed to a role that may see them.
    criteria = {"trials": [{"study_id": "BIOFED-01"}]}
    expected = set(PEOPLE[26:31]) & consented()
    assert len(expected) == K
    few = {"criteria": {"trials": [{"study_id": "OPENSTUDY"}]}}
    server = make_service(cohort_lake, tmp_path / "audit").server_for("researcher")
    counted = await answer(server, few)
    assert counted == {**counted, "count": None, "suppressed": True, "min_cell_size": K}
    listed = await answer(server, {**few, "output": "pseudonyms"})
    assert listed["count"] == 3 and listed["people"] == ["P31", "P32", "P33"]
    assert listed["suppressed"] is False

    steward = make_service(cohort_lake, tmp_path / "audit", "data_steward")
    result = await answer(steward.server_for("data_steward"), {"criteria": criteria})
    assert (result["count"], result["suppressed"]) == (K, False)


async def test_members_are_listed_only_to_roles_that_read_every_view_used(
    cohort_lake: CohortLake, tmp_path: Path
):
    researcher = make_service(cohort_lake, tmp_path / "audit").server_for("researcher")
    assert await refusal(
        researcher, {"criteria": {"variants": [VARIANT]}, "output": "pseudonyms"}
    ) == (
        "members cannot be listed for a cohort defined on genotypes, whose rows this role may "
        "only count; ask for a count"
    )
    steward = make_service(cohort_lake, tmp_path / "audit", "data_steward")
    assert await refusal(
        steward.server_for("data_steward"), {"criteria": {"sex": "female"}, "output": "pseudonyms"}
    ) == ("this role receives cohort counts only, never members' pseudonyms; ask for a count")
    assert (
        await refusal(
            steward.server_for("data_steward"), {"criteria": {"sex": "female"}, "save_as": "mine"}
        )
        == "this role may not save cohorts"
    )


async def test_a_revoked_consent_leaves_counts_on_the_next_call(tmp_path: Path):
    lake = write_cohort_lake(tmp_path / "lake")
    server = make_service(lake, tmp_path / "audit").server_for("researcher")
    arguments = {"criteria": {"sex": "female"}, "output": "pseudonyms"}
    before = await answer(server, arguments)
    assert "P06" in before["people"] and not set(REVOKED) & set(before["people"])
    write_consent(lake.root, PEOPLE, (*REVOKED, "P06"))
    after = await answer(server, arguments)
    assert after["people"] == [p for p in before["people"] if p != "P06"]


async def test_counts_whose_people_differ_by_fewer_than_k_are_refused(
    cohort_lake: CohortLake, tmp_path: Path
):
    server = make_service(cohort_lake, tmp_path / "audit", "data_steward").server_for(
        "data_steward"
    )
    females = await answer(server, {"criteria": {"sex": "female"}})
    assert females["count"] == len(of_sex("female") & consented())
    # The same people again is no new disclosure.
    assert (await answer(server, {"criteria": {"sex": "female"}}))["count"] == females["count"]
    # Females but the two aged 90 or more: two people fewer, which would single them out.
    narrower = {"sex": "female", "age": {"max": 89}}
    gone = of_sex("female") & consented() - aged(None, 89)
    assert len(gone) == 2
    text = await refusal(server, {"criteria": narrower})
    assert text == (
        "this cohort differs from an earlier one of yours by fewer than 5 people, which could "
        "single someone out; it was refused and reported"
    )


async def test_too_many_criteria_and_blinded_arms_are_refused_clearly(
    cohort_lake: CohortLake, tmp_path: Path
):
    server = make_service(cohort_lake, tmp_path / "audit").server_for("researcher")
    many = {"labs": [{"loinc": A1C, "min": float(i)} for i in range(12)], "sex": "female"}
    assert await refusal(server, {"criteria": many}) == (
        "a cohort may have at most 12 criteria (each list entry, age and sex count one); this "
        "one has 13"
    )
    blinded = (
        "the treatment arm of a study whose arms are blinded cannot be a criterion; leave out "
        "arm to select the study's subjects"
    )
    # Blinded by the policy ...
    assert (
        await refusal(
            server, {"criteria": {"trials": [{"study_id": "BIOFED-01", "arm": "Placebo"}]}}
        )
        == blinded
    )
    # ... or by the rows, for a study the policy says is unblinded.
    assert (
        await refusal(server, {"criteria": {"trials": [{"study_id": "OPENSTUDY", "arm": "A"}]}})
        == blinded
    )


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            {},
            "criteria is required: an object with any of: conditions, labs, imaging, "
            "variants, trials, age, sex.",
        ),
        (
            {"criteria": {}},
            "criteria must be an object with at least one of: conditions, "
            "labs, imaging, variants, trials, age, sex.",
        ),
        (
            {"criteria": {"sex": "female"}, "include_phi": True},
            "unknown argument; allowed arguments: criteria, output, save_as, background.",
        ),
        (
            {"criteria": {"ssn": "1"}},
            "unknown criterion kind; criterion kinds for this role: "
            "conditions, labs, imaging, variants, trials, age, sex.",
        ),
        ({"criteria": {"sex": "F"}}, "sex must be one of: female, male, other, unknown."),
        (
            {"criteria": {"age": {"min": 70, "max": 60}}},
            "age is {min, max}: whole years from 0 to 90 (90 stands for 90 or older), at least "
            "one given, min not above max.",
        ),
        (
            {"criteria": {"age": {"min": "18"}}},
            "age is {min, max}: whole years from 0 to 90 (90 stands for 90 or older), at least "
            "one given, min not above max.",
        ),
        (
            {"criteria": {"labs": [{"loinc": "1' OR '1'='1"}]}},
            "each labs entry is {loinc: a LOINC code such as 4548-4, min and max: finite numbers "
            "or null, min not above max}.",
        ),
        (
            {"criteria": {"labs": {"loinc": A1C}}},
            "labs must be a list of 1 to 12 entries; each labs entry is {loinc: a LOINC code such "
            "as 4548-4, min and max: finite numbers or null, min not above max}.",
        ),
        (
            {"criteria": {"imaging": [{"from": "2024-02-30"}]}},
            "each imaging entry is {modality, body_part, from, to}, at least one given; dates "
            "written YYYY-MM-DD from 1800-01-01 to 2199-12-31, from not after to.",
        ),
        (
            {"criteria": {"conditions": [{"codes": [T2D], "verified": True}]}},
            "each conditions entry is {codes: 1 to 100 distinct codes, system: an optional code "
            "system URI}.",
        ),
        ({"criteria": {"sex": "female"}, "output": "rows"}, "output must be count or pseudonyms."),
        (
            {"criteria": {"sex": "female"}, "save_as": "../etc"},
            "save_as must be a cohort name: 1 to 64 lower-case letters, digits and dashes, not "
            "starting with a dash.",
        ),
        ({"criteria": {"sex": "female"}, "background": "yes"}, "background must be true or false."),
    ],
)
async def test_invalid_arguments_get_a_corrective_sentence_without_values(
    researcher_server, arguments, expected
):
    text = await refusal(researcher_server, arguments)
    assert text == expected
    assert "OR '1'" not in text and "2024-02-30" not in text


async def test_every_call_writes_one_audit_record_without_values(
    cohort_lake: CohortLake, tmp_path: Path
):
    audit_dir = tmp_path / "audit"
    server = make_service(cohort_lake, audit_dir).server_for("researcher")
    listed = await answer(server, {"criteria": {"sex": "female"}, "output": "pseudonyms"})
    await refusal(server, {"criteria": {"sex": "F"}})
    await answer(server, {"criteria": {"conditions": [{"codes": [T2D]}]}})
    allowed, denied, counted = records(audit_dir)
    assert allowed["action"] == "find_cohort" and allowed["decision"] == "allow"
    assert allowed["dataset"] == "research/find_cohort"
    assert allowed["subjects"] == listed["people"] and allowed["rows"] == listed["count"]
    assert allowed["columns"] == ["patients.gender", "patients.person_pseudonym"]
    assert (denied["decision"], denied["reason"]) == ("deny", "validation_error")
    assert counted["subjects"] == [] and counted["rows"] == 0
    text = json.dumps([allowed, denied, counted])
    assert T2D not in text and '"female"' not in text


async def test_a_forced_internal_error_gives_a_fixed_sentence(
    cohort_lake: CohortLake, tmp_path: Path, monkeypatch, caplog
):
    def broken(*args, **kwargs):
        raise RuntimeError(f"cannot read {cohort_lake.root}/gold/research/patients P00")

    monkeypatch.setattr("mcp_catalog.server.evaluate", broken)
    server = make_service(cohort_lake, tmp_path / "audit").server_for("researcher")
    with caplog.at_level(logging.ERROR, logger="mcp_catalog.server"):
        result = await call(server, {"criteria": {"sex": "female"}})
    text = result.content[0].text
    assert result.is_error and re.fullmatch(
        r"Error executing tool find_cohort: the request could not be completed because of an "
        r"internal error; correlation id [0-9a-f]{32}",
        text,
    )
    assert str(cohort_lake.root) not in text and "P00" not in text
    (record,) = records(tmp_path / "audit")
    assert (record["decision"], record["reason"]) == ("error", "internal_error")


async def test_progress_is_reported_once_per_criterion_without_counts(
    cohort_lake: CohortLake, tmp_path: Path
):
    server = make_service(cohort_lake, tmp_path / "audit").server_for("researcher")
    events: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append((progress, total, message))

    criteria = {"conditions": [{"codes": [T2D]}], "labs": [{"loinc": HB}], "sex": "male"}
    async with Client(server) as client:
        result = await client.call_tool(
            "find_cohort", {"criteria": criteria}, progress_callback=on_progress
        )
    assert not result.is_error
    assert events == [
        (1, 3, "criterion 1 of 3 evaluated (conditions)"),
        (2, 3, "criterion 2 of 3 evaluated (labs)"),
        (3, 3, "criterion 3 of 3 evaluated (sex)"),
    ]


# -- background jobs ---------------------------------------------------------------------------


async def _job(client: Client, uri: str) -> dict[str, Any]:
    with anyio.fail_after(20):
        while True:
            payload = json.loads((await client.read_resource(uri)).contents[0].text)
            if payload["status"] != "running":
                return payload
            await anyio.sleep(0.02)


async def test_a_background_cohort_is_a_resource_only_its_starter_reads(
    cohort_lake: CohortLake, tmp_path: Path
):
    audit_dir = tmp_path / "audit"
    service = make_service(cohort_lake, audit_dir)
    server = service.server_for("researcher")
    arguments = {"criteria": {"labs": [{"loinc": A1C, "min": 8.0}]}, "output": "pseudonyms"}
    async with Client(server) as client:
        handle = await client.call_tool("find_cohort", {**arguments, "background": True})
        job = handle.structured_content
        assert job is not None and set(job) == {"job", "status", "result_uri"}
        assert job["status"] == "running" and job["result_uri"] == f"cohort-job://{job['job']}"
        done = await _job(client, job["result_uri"])
        direct = await client.call_tool("find_cohort", arguments)
    assert done["status"] == "done"
    result, expected = done["result"], direct.structured_content
    assert {k: v for k, v in result.items() if k != "correlation_id"} == {
        k: v for k, v in expected.items() if k != "correlation_id"
    }
    assert result["people"] == sorted(with_lab(A1C, 8.0, None) & consented())

    # Another caller (or the same subject under another role) is told there is no such job.
    service._stdio_principal = principal(cohort_lake.policy, subject="someone-else")
    async with Client(server) as client:
        with pytest.raises(MCPError, match="no cohort job of this caller has that id"):
            await client.read_resource(job["result_uri"])
        with pytest.raises(MCPError, match="no cohort job of this caller has that id"):
            await client.read_resource("cohort-job://" + "0" * 32)
    actions = [(r["action"], r["decision"], r["reason"]) for r in records(audit_dir)]
    assert actions[0] == ("find_cohort", "allow", "job_started")
    assert ("find_cohort", "allow", "ok") in actions
    assert actions[-2:] == [
        ("resources/read", "deny", "not_job_owner"),
        ("resources/read", "deny", "unknown_job"),
    ]
    reads = [r for r in records(audit_dir) if r["action"] == "resources/read"]
    assert any(r["decision"] == "allow" and r["subjects"] == result["people"] for r in reads)


async def test_a_failed_background_cohort_says_only_failed_and_its_correlation_id(
    cohort_lake: CohortLake, tmp_path: Path
):
    server = make_service(cohort_lake, tmp_path / "audit").server_for("researcher")
    arguments = {"criteria": {"trials": [{"study_id": "OPENSTUDY", "arm": "A"}]}}
    async with Client(server) as client:
        handle = await client.call_tool("find_cohort", {**arguments, "background": True})
        job = handle.structured_content
        assert job is not None
        failed = await _job(client, job["result_uri"])
    assert set(failed) == {"job", "status", "correlation_id"} and failed["status"] == "failed"
    record = [r for r in records(tmp_path / "audit") if r["reason"] == "blinded_arm"]
    assert [r["correlation_id"] for r in record] == [failed["correlation_id"]]


async def test_background_cohorts_per_caller_are_capped(
    cohort_lake: CohortLake, tmp_path: Path, monkeypatch
):
    document = _policy_document()
    document["cohorts"] = {**document["cohorts"], "max_running_jobs": 1}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    policy = load_policy(path)
    service = make_service(
        cohort_lake, tmp_path / "audit", policy=policy, principal=principal(policy)
    )
    release = threading.Event()

    def held(steps, scan, *, progress=None):
        release.wait(20)
        return []

    monkeypatch.setattr("mcp_catalog.server.evaluate", held)
    async with Client(service.server_for("researcher")) as client:
        first = await client.call_tool(
            "find_cohort", {"criteria": {"sex": "female"}, "background": True}
        )
        second = await client.call_tool(
            "find_cohort", {"criteria": {"sex": "male"}, "background": True}
        )
        release.set()
        assert not first.is_error and first.structured_content is not None
        assert second.is_error
        assert "at most 1 background cohorts may run at once per caller" in (second.content[0].text)
        done = await _job(client, first.structured_content["result_uri"])
        assert done["status"] == "done" and done["result"]["count"] is None
        third = await client.call_tool(
            "find_cohort", {"criteria": {"sex": "male"}, "background": True}
        )
        assert not third.is_error


# -- saved cohorts -------------------------------------------------------------------------------


async def test_saved_cohorts_are_versioned_resources_with_members_for_allowed_roles(
    tmp_path: Path,
):
    lake = write_cohort_lake(tmp_path / "lake")
    audit_dir = tmp_path / "audit"
    server = make_service(lake, audit_dir).server_for("researcher")
    first = await answer(server, {"criteria": {"conditions": [{"codes": [T2D]}]}, "save_as": "t2d"})
    second = await answer(
        server,
        {"criteria": {"conditions": [{"codes": [T2D]}], "sex": "female"}, "save_as": "t2d"},
    )
    assert first["cohort"] == {"name": "t2d", "version": 1, "uri": "cohort://t2d/1"}
    assert second["cohort"] == {"name": "t2d", "version": 2, "uri": "cohort://t2d/2"}
    async with Client(server) as client:
        latest = json.loads((await client.read_resource("cohort://t2d")).contents[0].text)
        one = json.loads((await client.read_resource("cohort://t2d/1")).contents[0].text)
    assert latest["version"] == 2
    assert latest["definition"] == {"conditions": [{"codes": [T2D]}], "sex": "female"}
    assert latest["members"] == sorted(with_condition({T2D}) & of_sex("female") & consented())
    assert one["members"] == sorted(with_condition({T2D}) & consented())
    assert one["datasets"] == ["patients", "conditions"]
    assert one["count"] == len(one["members"]) and one["suppressed"] is False

    # A data steward reads the count, suppressed when small, and no members.
    steward = make_service(lake, audit_dir, "data_steward").server_for("data_steward")
    async with Client(steward) as client:
        seen = json.loads((await client.read_resource("cohort://t2d/2")).contents[0].text)
    assert "members" not in seen
    assert seen["count"] == (len(latest["members"]) if len(latest["members"]) >= K else None)

    # Versions are files that are never rewritten; the chain of hashes holds.
    store = CohortStore(lake.root / "_cohorts")
    assert store.versions("t2d") == [1, 2]
    assert store.load("t2d", 2).previous_sha256 == store.load("t2d", 1).sha256

    # A withdrawal of consent removes a member from the resource at once.
    member = one["members"][0]
    write_consent(lake.root, PEOPLE, (*REVOKED, member))
    async with Client(server) as client:
        again = json.loads((await client.read_resource("cohort://t2d/1")).contents[0].text)
    assert again["members"] == one["members"][1:]


async def test_a_saved_cohort_filters_the_query_and_aggregate_tools(tmp_path: Path):
    lake = write_cohort_lake(tmp_path / "lake")
    audit_dir = tmp_path / "audit"
    server = make_service(lake, audit_dir).server_for("researcher")
    saved = await answer(
        server,
        {
            "criteria": {"labs": [{"loinc": A1C, "min": 10.0}]},
            "save_as": "high-a1c",
            "output": "pseudonyms",
        },
    )
    members = saved["people"]
    rows = await answer(
        server,
        {"cohort": "high-a1c@1", "select": ["person_pseudonym", "code"]},
        tool="query_conditions",
    )
    assert {r["person_pseudonym"] for r in rows["rows"]} == set(members) & {
        r["person_pseudonym"] for r in CONDITIONS
    }
    counts = await answer(
        server, {"cohort": "high-a1c", "group_by": []}, tool="aggregate_lab_results"
    )
    assert counts["total_people"] == len(members)
    assert await refusal(server, {"cohort": "nope"}, tool="query_conditions") == (
        "no saved cohort has that name (and version); cohort takes a saved cohort's name or "
        "name@version"
    )
    assert await refusal(server, {"cohort": "high-a1c@7"}, tool="query_conditions") == (
        "no saved cohort has that name (and version); cohort takes a saved cohort's name or "
        "name@version"
    )
    assert await refusal(server, {"cohort": "High A1c"}, tool="query_conditions") == (
        "cohort must be a saved cohort's name (lower-case letters, digits and dashes, at most "
        "64) or name@version (a version from 1)."
    )

    # A data steward counts over the cohort but selects no rows by it.
    steward = make_service(lake, audit_dir, "data_steward").server_for("data_steward")
    async with Client(steward) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert "cohort" in tools["aggregate_conditions"].input_schema["properties"]
    assert "cohort" not in tools["query_conditions"].input_schema["properties"]
    total = await answer(steward, {"cohort": "high-a1c"}, tool="aggregate_lab_results")
    assert total["total_people"] == len(members)


async def test_a_cohort_counted_on_genotypes_never_selects_rows(tmp_path: Path):
    lake = write_cohort_lake(tmp_path / "lake")
    server = make_service(lake, tmp_path / "audit").server_for("researcher")
    await answer(server, {"criteria": {"variants": [VARIANT]}, "save_as": "carriers"})
    assert await refusal(server, {"cohort": "carriers"}, tool="query_patients") == (
        "this cohort cannot select rows for this caller: members cannot be listed for a cohort "
        "defined on genotypes, whose rows this role may only count"
    )
    async with Client(server) as client:
        seen = json.loads((await client.read_resource("cohort://carriers")).contents[0].text)
    assert "members" not in seen


async def test_an_edited_saved_cohort_is_refused(tmp_path: Path, caplog):
    lake = write_cohort_lake(tmp_path / "lake")
    audit_dir = tmp_path / "audit"
    server = make_service(lake, audit_dir).server_for("researcher")
    await answer(server, {"criteria": {"sex": "female"}, "save_as": "women"})
    path = lake.root / "_cohorts" / "women" / "1.json"
    record = json.loads(path.read_text())
    record["members"].append("P05")
    path.write_text(json.dumps(record))
    with caplog.at_level(logging.ERROR, logger="mcp_catalog.server"):
        text = await refusal(server, {"cohort": "women"}, tool="query_patients")
        async with Client(server) as client:
            with pytest.raises(MCPError, match="failed its integrity check"):
                await client.read_resource("cohort://women/1")
    assert text.startswith("the saved cohort failed its integrity check and was not used")
    reasons = [r["reason"] for r in records(audit_dir)]
    assert reasons[-2:] == ["cohort_integrity", "cohort_integrity"]


@pytest.mark.parametrize(
    "uri",
    [
        "cohort://",
        "cohort://Nope",
        "cohort://a/0",
        "cohort://a/1/2",
        "cohort://../x",
        "cohort://a%2F..",
        "cohort-job://abc",
        "cohort-job://" + "g" * 32,
    ],
)
async def test_malformed_cohort_uris_are_unknown_resources_and_audited(
    cohort_lake: CohortLake, tmp_path: Path, uri: str
):
    server = make_service(cohort_lake, tmp_path / "audit").server_for("researcher")
    async with Client(server) as client:
        with pytest.raises(MCPError, match="Unknown resource|no saved cohort|no cohort job"):
            await client.read_resource(uri)
    (record,) = records(tmp_path / "audit")
    assert record["decision"] == "deny" and record["action"] == "resources/read"


# -- the store and the policy ----------------------------------------------------------------


def _fields(members: list[str]) -> dict[str, Any]:
    return {
        "created_at": MATERIALIZED,
        "audience": "research",
        "created_by_role": "researcher",
        "purpose": "research",
        "definition": {"sex": "female"},
        "datasets": ["patients"],
        "columns": {"patients": ["gender", "person_pseudonym"]},
        "delta_versions": {"patients": 0},
        "consent_version": 0,
        "min_cell_size": K,
        "members": members,
    }


def test_the_store_appends_versions_and_verifies_their_hashes(tmp_path: Path):
    store = CohortStore(tmp_path / "_cohorts")
    first = store.save("women", **_fields(["P00", "P02"]))
    second = store.save("women", **_fields(["P00"]))
    assert (first.version, second.version) == (1, 2)
    assert second.previous_sha256 == first.sha256
    on_disk = json.loads((tmp_path / "_cohorts" / "women" / "1.json").read_text())
    assert record_sha256(on_disk) == on_disk["sha256"] == first.sha256
    assert store.load("women") == second and store.load("women", 1) == first
    assert store.load("women", 3) is None and store.load("men") is None
    assert store.load("../women") is None

    # Replacing version 1 breaks version 2's link to it, even with a recomputed hash.
    on_disk["members"] = ["P04"]
    on_disk["sha256"] = record_sha256(on_disk)
    (tmp_path / "_cohorts" / "women" / "1.json").write_text(json.dumps(on_disk))
    with pytest.raises(CohortIntegrityError):
        store.load("women", 2)
    with pytest.raises(ValueError):
        store.save("Women", **_fields([]))


@pytest.mark.parametrize(
    ("reference", "parsed"),
    [("t2d", ("t2d", None)), ("t2d-high-a1c@12", ("t2d-high-a1c", 12)), ("0a@1", ("0a", 1))],
)
def test_cohort_references_are_a_name_and_an_optional_version(reference, parsed):
    assert parse_reference(reference) == parsed


@pytest.mark.parametrize("reference", ["", "-a", "a@0", "a@", "A", "a b", "a" * 65, "a@1@2"])
def test_malformed_cohort_references_are_refused(reference):
    with pytest.raises(ValueError):
        parse_reference(reference)


def test_the_shipped_policy_gives_pseudonyms_and_saving_to_researchers_only():
    policy = load_policy(DEFAULT_POLICY_PATH)
    assert policy.version == "2026.11.5"
    cohorts = policy.cohorts
    assert cohorts is not None and cohorts.audience == "research"
    assert {role: (g.pseudonyms, g.save) for role, g in cohorts.roles.items()} == {
        "researcher": (True, True),
        "data_steward": (False, False),
        "clinician": (False, False),
    }


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"roles": {"auditor": {}}}, "cohorts: unknown role 'auditor'"),
        ({"roles": {"compliance_officer": {}}}, "cannot hold the scope"),
        ({"scope": "biofed.cohorts.all"}, "cohorts: unknown scope"),
        ({"roles": {"researcher": {"pseudonyms": "yes"}}}, "cohorts.roles.researcher.pseudonyms"),
        ({"max_members": 0}, "cohorts.max_members"),
        ({"members": 10}, "cohorts.members"),
    ],
)
def test_the_policy_loader_is_strict_about_cohorts(tmp_path: Path, change, expected):
    document = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    document["cohorts"] = {**document["cohorts"], **change}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(PolicyError, match=re.escape(expected)):
        load_policy(path)


def test_a_lake_on_object_storage_has_no_store(tmp_path: Path):
    assert CohortStore.for_lake("s3://bucket/lake") is None
    store = CohortStore.for_lake(tmp_path)
    assert store is not None and store.root == tmp_path.resolve() / "_cohorts"
