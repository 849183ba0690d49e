"""The surrogate pseudonym scheme end to end: random values from a restricted mapping,
stable across runs, shared by every view of the audience and by its consent table."""

import dagster as dg
import polars as pl
import pytest
import yaml

from connectors.synth import write_cohort
from mcp_catalog.governance.deid import keyed_hash
from mcp_catalog.governance.keys import load_keys
from mcp_catalog.policy import DEFAULT_POLICY_PATH, POLICY_ENV
from pipelines.cli import materialize
from pipelines.defs.ehr.assets import CONSENT_STATUS_PATH, SURROGATES_PATH
from pipelines.lake import Lake

SELECTION = ",".join(
    [
        "bronze/ehr/files",
        "bronze/ehr/rejects",
        *(f"bronze/ehr/{t}" for t in ("patients", "encounters", "conditions", "consents")),
        "bronze/ehr/observations",
        "bronze/ehr/medication_requests",
        "bronze/ehr/procedures",
        "bronze/ehr/immunizations",
        "bronze/ehr/other_resources",
        "restricted/person_crosswalk",
        *(
            f"silver/ehr/{t}"
            for t in (
                "patients", "encounters", "conditions", "observations", "medication_requests",
                "procedures", "immunizations", "consents",
            )
        ),
        "silver/consent/consents",
        SURROGATES_PATH,
        "gold/research/patients",
        "gold/research/encounters",
        "gold/research/conditions",
        CONSENT_STATUS_PATH,
    ]
)  # fmt: skip


@pytest.fixture(scope="module")
def surrogate_lake(tmp_path_factory):
    base = tmp_path_factory.mktemp("surrogates")
    policy = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    policy["pseudonyms"] = {"research": "surrogate"}
    (base / "policy.yaml").write_text(yaml.safe_dump(policy))
    write_cohort(base / "landing", patients=20, seed=5)
    with pytest.MonkeyPatch.context() as patch, dg.instance_for_test() as instance:
        patch.setenv(POLICY_ENV, str(base / "policy.yaml"))
        runs = [
            materialize(str(base / "lake"), str(base / "landing"), SELECTION, instance=instance)
            for _ in range(2)
        ]
    assert all(run.success for run in runs)
    return Lake(str(base / "lake"))


def test_research_pseudonyms_are_random_surrogates_from_the_restricted_mapping(surrogate_lake):
    mapping = surrogate_lake.read(SURROGATES_PATH)
    people = mapping.filter(pl.col("prefix") == "P")
    patients = surrogate_lake.read("gold/research/patients")
    assert set(patients["person_pseudonym"]) <= set(people["surrogate"])
    # Nothing about the person key is in a surrogate: it is not the keyed pseudonym.
    keys = load_keys(surrogate_lake.local_path("restricted/keys.json"))
    keyed = set(
        keyed_hash(keys.for_audience("research"), people["identifier"].to_list(), prefix="P")
    )
    assert not keyed & set(patients["person_pseudonym"])
    conditions = surrogate_lake.read("gold/research/conditions")
    assert set(conditions["person_pseudonym"]) <= set(patients["person_pseudonym"]) | set(
        people["surrogate"]
    )
    assert set(conditions["record_key"]) <= set(
        mapping.filter(pl.col("prefix") == "C")["surrogate"]
    )
    consent = surrogate_lake.read(CONSENT_STATUS_PATH)
    assert set(patients["person_pseudonym"]) <= set(
        consent.filter(pl.col("permitted"))["person_pseudonym"]
    )


def test_surrogates_are_stable_across_runs(surrogate_lake):
    table = surrogate_lake.table(SURROGATES_PATH)
    assert table is not None
    history = table.history()
    # The first run created the mapping; the second, on the same landing files, added nothing.
    assert len(history) == 1
    mapping = surrogate_lake.read(SURROGATES_PATH)
    assert mapping.select("audience", "prefix", "identifier").is_duplicated().sum() == 0
    assert mapping["surrogate"].is_unique().all()
