"""A real, small lake: two gold Delta tables, one with a second version, and its manifest."""

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml
from deltalake import DeltaTable, write_deltalake

from mcp_catalog.manifest import (
    CatalogColumn,
    CatalogDataset,
    Manifest,
    RegionColumns,
    dump_manifest,
)
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


# -- a small genomic lake: a variant frequency view (no person column) and a genotype view ----

GENOMIC_POSITIONS = RegionColumns(chrom="chrom", start="pos", end="end")
GENOMIC_PEOPLE = 40
GENOTYPE_SITES = [("chr1", p) for p in (100, 120, 140, 160, 180, 200)] + [
    ("chr2", 100),
    ("chr2", 300),
]
ZYGOSITY = {"0/0": "hom_ref", "0/1": "het", "1/1": "hom_alt", "./.": "no_call"}
ALT_COPIES = {"0/0": 0, "0/1": 1, "1/1": 2, "./.": None}


@dataclass(frozen=True)
class GenomicLake:
    root: Path
    manifest: Manifest
    policy: Policy
    frequencies: pl.DataFrame
    genotypes: pl.DataFrame
    people: list[str]
    revoked: tuple[str, ...]


def _frequency_rows() -> list[tuple[object, ...]]:
    """(chrom, pos, end, ref, alt, allele_count): boundary cases around chr1:100-200, rows
    at the threshold and below it, other contigs, and a run of 60 sites on chr3 for paging."""
    rows: list[tuple[object, ...]] = [
        ("chr1", 90, 99, "ACGTACGTAC", "A", 12),  # ends one base before 100
        ("chr1", 95, 104, "ACGTACGTAC", "A", 20),  # starts before 100, spans into it
        ("chr1", 100, 100, "G", "A", 7),
        ("chr1", 100, 100, "G", "T", 5),  # exactly at the threshold
        ("chr1", 150, 150, "C", "T", 3),  # below the threshold
        ("chr1", 160, 160, "A", "G", None),  # no count: withheld too
        ("chr1", 200, 200, "T", "C", 9),
        ("chr1", 201, 201, "T", "G", 30),  # starts one base after 200
        ("chr2", 100, 100, "G", "A", 40),
        ("chr10", 150, 150, "C", "A", 11),
    ]
    rows += [("chr3", 1000 + 10 * i, 1000 + 10 * i, "A", "G", (i * 7) % 40 + 1) for i in range(60)]
    return rows


def genomic_frequencies() -> pl.DataFrame:
    """The variant frequency view, sorted by (chrom, pos) as the gold builder writes it."""
    rows = _frequency_rows()
    frame = pl.DataFrame(
        rows,
        schema={
            "chrom": pl.String,
            "pos": pl.Int64,
            "end": pl.Int64,
            "ref": pl.String,
            "alt": pl.String,
            "allele_count": pl.Int64,
        },
        orient="row",
    )
    return frame.with_columns(
        allele_number=pl.lit(2 * GENOMIC_PEOPLE, pl.Int64),
        allele_frequency=pl.col("allele_count") / (2 * GENOMIC_PEOPLE),
        filter_pass=pl.int_range(pl.len()) % 4 != 0,
    ).sort("chrom", "pos", "ref", "alt")


def genomic_genotypes(people: list[str], seed: int = 11) -> pl.DataFrame:
    """One row per person and site, depths from 3 to 40 (about a fifth below 10)."""
    rng = random.Random(seed)
    records = []
    for person in people:
        for chrom, pos in GENOTYPE_SITES:
            genotype = rng.choice(list(ZYGOSITY))
            records.append(
                (
                    person,
                    chrom,
                    pos,
                    pos,
                    "G",
                    "A",
                    genotype,
                    ALT_COPIES[genotype],
                    ZYGOSITY[genotype],
                    rng.randint(3, 40),
                )
            )
    return pl.DataFrame(
        records,
        schema={
            "person_pseudonym": pl.String,
            "chrom": pl.String,
            "pos": pl.Int64,
            "end": pl.Int64,
            "ref": pl.String,
            "alt": pl.String,
            "genotype": pl.String,
            "alt_allele_copies": pl.Int64,
            "zygosity": pl.String,
            "depth": pl.Int64,
        },
        orient="row",
    ).sort("chrom", "pos", "person_pseudonym")


def build_genomic_manifest(
    *, classes: dict[str, str] | None = None, region: RegionColumns | None = GENOMIC_POSITIONS
) -> Manifest:
    """The catalog of the genomic test lake; ``classes`` overrides column classes."""
    classes = classes or {}

    def column(name: str, type_: str, description: str, class_: str = "clinical", **extra):
        return _column(name, type_, description, classes.get(name, class_), **extra)

    position = [
        column("chrom", "string", "Contig (chromosome) name as in the VCF."),
        column("pos", "integer", "First position of the variant, 1-based."),
        column("end", "integer", "Last position of the reference allele, 1-based."),
        column("ref", "string", "Reference allele."),
        column("alt", "string", "Alternate allele."),
    ]
    return Manifest(
        generated_at=MATERIALIZED,
        policy_version=TEST_POLICY_VERSION,
        datasets=[
            CatalogDataset(
                name="variant_frequencies",
                audience="research",
                path="gold/research/variant_frequencies",
                title="Variant frequencies",
                description="Allele counts and frequencies per variant over consented people.",
                owner="data-platform@example.org",
                key=["chrom", "pos", "ref", "alt"],
                columns=[
                    *position,
                    column("allele_count", "integer", "Copies of the alternate allele."),
                    column("allele_number", "integer", "Called alleles at the site."),
                    column("allele_frequency", "number", "allele_count over allele_number."),
                    column("filter_pass", "boolean", "Whether the site passed all filters."),
                ],
                row_count=len(_frequency_rows()),
                delta_version=0,
                last_materialized=MATERIALIZED,
                upstream=["silver/genomics/genotypes"],
                max_limit=50,
                region=region,
            ),
            CatalogDataset(
                name="genotypes",
                audience="research",
                path="gold/research/genotypes",
                title="Research genotypes",
                description="One row per consented person and variant site.",
                owner="data-platform@example.org",
                key=["person_pseudonym", "chrom", "pos", "ref", "alt"],
                columns=[
                    column(
                        "person_pseudonym",
                        "string",
                        "Research pseudonym of the person.",
                        "pseudonym",
                    ),
                    *position,
                    column("genotype", "string", "Genotype as written, such as 0/1."),
                    column("alt_allele_copies", "integer", "Copies of this alternate allele."),
                    column(
                        "zygosity",
                        "string",
                        "Zygosity of the call.",
                        enum=sorted(set(ZYGOSITY.values())),
                    ),
                    column("depth", "integer", "Read depth at the site."),
                ],
                row_count=GENOMIC_PEOPLE * len(GENOTYPE_SITES),
                delta_version=0,
                last_materialized=MATERIALIZED,
                upstream=["silver/genomics/genotypes"],
                max_limit=200,
                region=region,
            ),
        ],
    )


def genomic_policy_document(manifest: Manifest) -> dict[str, object]:
    """The shipped policy with the genomic test datasets: frequencies row-level only with an
    allele-count threshold of 5, genotypes with aggregates and a depth threshold of 10."""
    document = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    document = {k: v for k, v in document.items() if not k.startswith("x-")}
    document["version"] = TEST_POLICY_VERSION
    rows = ["pseudonym", "quasi_identifier", "sensitive", "clinical", "administrative"]
    steward = ["pseudonym", "clinical", "administrative"]
    frequencies, genotypes = manifest.datasets
    common = {
        "purposes": ["research", "quality_improvement"],
        "consent": True,
        "consent_scope": "research",
        "row_cap": 1000,
        "min_cell_size": 5,
        "read_scope": "biofed.research.read",
    }
    document["datasets"] = {
        "research/variant_frequencies": {
            "owner": frequencies.owner,
            **common,
            "columns": {c.name: c.column_class for c in frequencies.columns},
            "access": {
                "researcher": {"rows": True, "classes": rows},
                "data_steward": {"rows": True, "classes": steward},
            },
            "suppress_below": {"allele_count": 5},
        },
        "research/genotypes": {
            "owner": genotypes.owner,
            **common,
            "aggregate_scope": "biofed.research.aggregate",
            "columns": {c.name: c.column_class for c in genotypes.columns},
            "access": {
                "researcher": _access(rows),
                "data_steward": _access(steward),
                "clinician": {"aggregate": True},
            },
            "aggregation": {"dimensions": ["zygosity", "chrom"], "measures": ["depth"]},
            "suppress_below": {"depth": 10},
        },
    }
    return document


def write_policy_document(path: Path, document: dict[str, object]) -> Policy:
    """Write a policy document and load it."""
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return load_policy(path)


def write_genomic_lake(root: Path) -> GenomicLake:
    """Both genomic views (Delta, small row groups so a region skips some), the research
    consent table with three people revoked, the policy and the manifest."""
    from deltalake import WriterProperties

    people = [f"G{i:05d}" for i in range(GENOMIC_PEOPLE)]
    revoked = (people[3], people[17], people[29])
    frequencies = genomic_frequencies()
    genotypes = genomic_genotypes(people)
    properties = WriterProperties(max_row_group_size=16, compression="ZSTD")
    for name, frame in (("variant_frequencies", frequencies), ("genotypes", genotypes)):
        write_deltalake(
            root / "gold" / "research" / name, frame.to_arrow(), writer_properties=properties
        )
    write_consent(root, people, revoked)
    manifest = build_genomic_manifest()
    catalog = root / "_catalog"
    catalog.mkdir(parents=True)
    (catalog / "manifest.json").write_text(dump_manifest(manifest))
    policy = write_policy_document(root / "policy.yaml", genomic_policy_document(manifest))
    return GenomicLake(root, manifest, policy, frequencies, genotypes, people, revoked)


@pytest.fixture(scope="session")
def genomic_lake(tmp_path_factory: pytest.TempPathFactory) -> GenomicLake:
    return write_genomic_lake(tmp_path_factory.mktemp("genomic_lake"))
