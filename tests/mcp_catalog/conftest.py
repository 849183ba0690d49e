"""A real, small lake: two gold Delta tables, one with a second version, and its manifest."""

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml
from deltalake import DeltaTable, write_deltalake

from mcp_catalog.manifest import CatalogColumn, CatalogDataset, Manifest, dump_manifest
from mcp_catalog.policy import DEFAULT_POLICY_PATH, Policy, load_policy
from mcp_catalog.principal import Principal, configured_principal

ROWS = 250
GENDERS = ["female", "male", "other", "unknown"]
STATES = ["CA", "MA", "NY", "TX", "WA"]
CODES = ["2339-0", "718-7", "8480-6", "29463-7"]
UNITS = {"2339-0": "mg/dL", "718-7": "g/dL", "8480-6": "mm[Hg]", "29463-7": "kg"}
MATERIALIZED = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Lake:
    root: Path
    manifest: Manifest
    policy: Policy
    patients: pl.DataFrame
    """The patients table at version 0, the version the manifest pins."""
    patients_latest: pl.DataFrame
    """The patients table at version 1, which the server must not serve."""
    observations: pl.DataFrame


def _patients(rng: random.Random) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "person_pseudonym": [f"R{i:05d}" for i in rng.sample(range(10_000, 99_999), ROWS)],
            "birth_year": [rng.randint(1930, 2005) for _ in range(ROWS)],
            "gender": [rng.choice(GENDERS) for _ in range(ROWS)],
            "state": [rng.choice(STATES) for _ in range(ROWS)],
            "zip3": [f"{rng.randint(10, 999):03d}" for _ in range(ROWS)],
            "deceased": [rng.random() < 0.1 for _ in range(ROWS)],
        },
        schema={
            "person_pseudonym": pl.String,
            "birth_year": pl.Int64,
            "gender": pl.String,
            "state": pl.String,
            "zip3": pl.String,
            "deceased": pl.Boolean,
        },
    )


def _observations(rng: random.Random, people: list[str]) -> pl.DataFrame:
    codes = [rng.choice(CODES) for _ in range(ROWS)]
    starts = datetime(2023, 1, 1, tzinfo=UTC)
    moments = [starts + timedelta(minutes=rng.randint(0, 2 * 365 * 24 * 60)) for _ in range(ROWS)]
    return pl.DataFrame(
        {
            "person_pseudonym": [rng.choice(people) for _ in range(ROWS)],
            "observation_key": [f"O{i:06d}" for i in range(ROWS)],
            "code": codes,
            # A few missing values, so ordering of nulls is exercised.
            "value_quantity": [
                None if i % 50 == 7 else round(rng.uniform(1, 200), 2) for i in range(ROWS)
            ],
            "value_unit": [UNITS[code] for code in codes],
            "effective_date": [moment.date() for moment in moments],
            "effective_at": moments,
        },
        schema={
            "person_pseudonym": pl.String,
            "observation_key": pl.String,
            "code": pl.String,
            "value_quantity": pl.Float64,
            "value_unit": pl.String,
            "effective_date": pl.Date,
            "effective_at": pl.Datetime("us", "UTC"),
        },
    )


def _column(name: str, type_: str, description: str, class_: str, **extra: object) -> CatalogColumn:
    return CatalogColumn.model_validate(
        {"name": name, "type": type_, "description": description, "class": class_, **extra}
    )


TEST_POLICY_VERSION = "test-1"


def _access(classes: list[str]) -> dict[str, object]:
    return {"rows": True, "aggregate": True, "classes": classes}


def write_policy(path: Path, manifest: Manifest, **overrides: object) -> Policy:
    """The shipped policy with the test lake's datasets in place of the shipped ones."""
    document = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    document = {k: v for k, v in document.items() if not k.startswith("x-")}
    document["version"] = TEST_POLICY_VERSION
    dimensions = {
        "patients": ["gender", "state", "deceased"],
        "observations": ["code", "value_unit"],
    }
    measures = {"patients": ["birth_year"], "observations": ["value_quantity"]}
    document["datasets"] = {
        f"{d.audience}/{d.name}": {
            "owner": d.owner,
            "purposes": ["research", "quality_improvement"],
            "consent": True,
            "row_cap": 1000,
            "min_cell_size": 5,
            "read_scope": "biofed.research.read",
            "aggregate_scope": "biofed.research.aggregate",
            "columns": {c.name: c.column_class for c in d.columns},
            "access": {
                "researcher": _access(
                    ["pseudonym", "quasi_identifier", "sensitive", "clinical", "administrative"]
                ),
                "data_steward": _access(["pseudonym", "clinical", "administrative"]),
                "clinician": {"aggregate": True},
            },
            "aggregation": {"dimensions": dimensions[d.name], "measures": measures[d.name]},
        }
        for d in manifest.datasets
    }
    document.update(overrides)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return load_policy(path)


def write_consent(root: Path, people: list[str], revoked: tuple[str, ...] = ()) -> None:
    """The research consent table: everyone permitted except ``revoked``."""
    frame = pl.DataFrame(
        {
            "person_pseudonym": people,
            "scope": ["research"] * len(people),
            "permitted": [p not in revoked for p in people],
        }
    )
    write_deltalake(root / "gold" / "research" / "_consent", frame.to_arrow(), mode="overwrite")


def researcher(policy: Policy, subject: str = "test-researcher") -> Principal:
    """The stdio identity the tests call as."""
    return configured_principal(
        policy, subject=subject, role="researcher", purpose="research", protocol="BIOFED-DEMO-001"
    )


def make_server(manifest: Manifest, root: Path, *, role: str = "researcher", **options: object):
    """A governed server over a test lake, its policy and its audit log, as a researcher."""
    from mcp_catalog.serve import open_audit
    from mcp_catalog.server import build_server

    policy = options.pop("policy", None) or load_policy(root / "policy.yaml")
    audit = options.pop("audit", None) or open_audit(root)
    principal = options.pop("principal", None) or researcher(policy)
    return build_server(
        manifest, root, role=role, policy=policy, audit=audit, principal=principal, **options
    )


def build_manifest(patients_version: int, observations_version: int) -> Manifest:
    """The catalog of the test lake (descriptions are factual, no instructions)."""
    return Manifest(
        generated_at=MATERIALIZED,
        policy_version=TEST_POLICY_VERSION,
        datasets=[
            CatalogDataset(
                name="patients",
                audience="research",
                path="gold/research/patients",
                title="Research patients",
                description="One row per consented person, de-identified for research.",
                owner="data-platform@example.org",
                key=["person_pseudonym"],
                columns=[
                    _column(
                        "person_pseudonym",
                        "string",
                        "Research pseudonym of the person.",
                        "pseudonym",
                    ),
                    _column("birth_year", "integer", "Year of birth.", "quasi_identifier"),
                    _column(
                        "gender",
                        "string",
                        "Administrative gender.",
                        "quasi_identifier",
                        enum=GENDERS,
                    ),
                    _column("state", "string", "US state of residence.", "quasi_identifier"),
                    _column(
                        "zip3",
                        "string",
                        "First three digits of the ZIP code.",
                        "quasi_identifier",
                        sortable=False,
                    ),
                    _column("deceased", "boolean", "Whether the person has died.", "clinical"),
                ],
                row_count=ROWS,
                delta_version=patients_version,
                last_materialized=MATERIALIZED,
                upstream=["silver/ehr/patients"],
                max_limit=100,
            ),
            CatalogDataset(
                name="observations",
                audience="research",
                path="gold/research/observations",
                title="Research observations",
                description="Laboratory results and vital signs, one row per observation.",
                owner="data-platform@example.org",
                key=["observation_key"],
                columns=[
                    _column(
                        "person_pseudonym",
                        "string",
                        "Research pseudonym of the person.",
                        "pseudonym",
                    ),
                    _column(
                        "observation_key",
                        "string",
                        "Identifier of the observation.",
                        "administrative",
                    ),
                    _column("code", "string", "LOINC code.", "clinical", enum=CODES),
                    _column("value_quantity", "number", "Measured value.", "clinical"),
                    _column("value_unit", "string", "UCUM unit of the value.", "clinical"),
                    _column("effective_date", "date", "Day of the observation.", "clinical"),
                    _column("effective_at", "datetime", "Time of the observation.", "clinical"),
                ],
                row_count=ROWS,
                delta_version=observations_version,
                last_materialized=MATERIALIZED,
                upstream=["silver/lab/observations", "silver/ehr/observations"],
                max_limit=500,
            ),
        ],
    )


def write_lake(root: Path, seed: int = 7) -> Lake:
    """Write both gold tables (patients twice: versions 0 and 1) and the manifest."""
    rng = random.Random(seed)
    patients = _patients(rng)
    observations = _observations(rng, patients["person_pseudonym"].to_list())
    patients_uri = root / "gold" / "research" / "patients"
    observations_uri = root / "gold" / "research" / "observations"
    write_deltalake(patients_uri, patients.to_arrow())
    # Version 1 changes every birth year and adds people: results from it would differ.
    latest = pl.concat(
        [
            patients.with_columns(pl.col("birth_year") + 1),
            _patients(random.Random(seed + 1)).head(10),
        ]
    )
    write_deltalake(patients_uri, latest.to_arrow(), mode="overwrite")
    write_deltalake(observations_uri, observations.to_arrow())
    assert DeltaTable(patients_uri).version() == 1

    manifest = build_manifest(patients_version=0, observations_version=0)
    catalog = root / "_catalog"
    catalog.mkdir(parents=True)
    (catalog / "manifest.json").write_text(dump_manifest(manifest))
    policy = write_policy(root / "policy.yaml", manifest)
    people = sorted(set(patients["person_pseudonym"]) | set(latest["person_pseudonym"]))
    write_consent(root, people)
    return Lake(root, manifest, policy, patients, latest, observations)


@pytest.fixture(scope="session")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    return write_lake(tmp_path_factory.mktemp("lake"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def server(lake: Lake):
    return make_server(lake.manifest, lake.root)


def frame_from_rows(rows: list[dict[str, object]], like: pl.DataFrame) -> pl.DataFrame:
    """Rows of a tool result as a frame typed like ``like`` (ISO strings parsed back)."""
    wire = {
        name: pl.String if dtype in (pl.Date, pl.Datetime) else dtype
        for name, dtype in like.schema.items()
    }
    frame = pl.DataFrame(rows, schema=wire, orient="row")
    parsed = []
    for name, dtype in like.schema.items():
        if dtype == pl.Date:
            parsed.append(pl.col(name).str.to_date("%Y-%m-%d"))
        elif isinstance(dtype, pl.Datetime):
            parsed.append(
                pl.col(name).str.to_datetime(
                    "%Y-%m-%dT%H:%M:%S%z", time_unit=dtype.time_unit, time_zone=dtype.time_zone
                )
            )
    return frame.with_columns(parsed) if parsed else frame
