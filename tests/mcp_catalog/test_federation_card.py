"""The federation block of a dataset: its model, its sentences and the data card serving it."""

import json

import polars as pl
import pytest
from mcp import Client
from pydantic import ValidationError

from mcp_catalog.federation import (
    AGGREGATE_RULE,
    CROSSWALK_RULE,
    LINKAGE_RULES,
    FederationError,
    LinkCounts,
    consent_rule,
    dataset_federation,
    link_counts,
    linkage_rule,
    primary_source,
    silos_of,
)
from mcp_catalog.governance.genomics import GENOMIC_VIEWS
from mcp_catalog.governance.imaging import IMAGING_VIEWS
from mcp_catalog.governance.lab import LAB_VIEWS
from mcp_catalog.governance.trials import TRIAL_VIEWS
from mcp_catalog.governance.views import RESEARCH_VIEWS
from mcp_catalog.lint import lint_text
from mcp_catalog.manifest import (
    PERSON_COLUMN,
    DatasetFederation,
    Manifest,
    dump_manifest,
    load_manifest,
)
from mcp_catalog.policy import load_policy
from tests.mcp_catalog.conftest import make_server, write_lake

SERVED = (*RESEARCH_VIEWS, *GENOMIC_VIEWS, *IMAGING_VIEWS, *LAB_VIEWS, *TRIAL_VIEWS)
SILOS = ("ehr", "genomics", "imaging", "lab", "trials")


def _block(**overrides: object) -> dict[str, object]:
    block: dict[str, object] = {
        "silos": ["ehr"],
        "linkage_rule": "EHR records link by id.",
        "consent_rule": "Opt-in.",
        "linked_share": 0.75,
        "linked_rows": 3,
        "source_rows": 4,
    }
    return {**block, **overrides}


# -- the model ------------------------------------------------------------------------------


def test_a_block_whose_share_matches_its_counts_validates():
    block = DatasetFederation.model_validate(_block())
    assert block.linked_share == 0.75 and block.silos == ["ehr"]


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"linked_share": 0.5}, "linked_share must equal linked_rows / source_rows"),
        ({"linked_share": None}, "linked_share must equal linked_rows / source_rows"),
        ({"linked_rows": 5, "linked_share": 1.25}, "less than or equal to 1"),
        ({"linked_rows": 5, "linked_share": 1.0}, "linked_rows cannot exceed source_rows"),
        (
            {"linked_rows": 0, "source_rows": 0, "linked_share": 0.0},
            "linked_share is null when no source row needs linking",
        ),
        ({"linked_rows": -1}, "greater than or equal to 0"),
        ({"silos": []}, "at least 1 item"),
        ({"silos": ["lab", "ehr"]}, "silos are listed once each, sorted"),
        ({"silos": ["ehr", "ehr"]}, "silos are listed once each, sorted"),
        ({"silos": ["EHR"]}, "silo names are lower-case snake_case identifiers"),
        ({"linkage_rule": ""}, "at least 1 character"),
        ({"source_file": "x.ndjson"}, "Extra inputs are not permitted"),
    ],
)
def test_an_inconsistent_block_is_rejected(overrides, problem):
    with pytest.raises(ValidationError, match=problem):
        DatasetFederation.model_validate(_block(**overrides))


def test_an_aggregate_block_counts_no_rows_and_has_no_share():
    block = DatasetFederation.model_validate(
        _block(linked_rows=0, source_rows=0, linked_share=None)
    )
    assert block.linked_share is None


def test_a_manifest_without_federation_still_loads_and_dumps_without_the_key(tmp_path):
    manifest = write_lake(tmp_path / "lake").manifest
    path = tmp_path / "manifest.json"
    path.write_text(dump_manifest(manifest))
    assert "federation" not in path.read_text()
    loaded = load_manifest(path)
    assert all(d.federation is None for d in loaded.datasets)


def test_a_manifest_round_trips_its_federation_block(tmp_path):
    manifest = write_lake(tmp_path / "lake").manifest
    block = DatasetFederation.model_validate(_block())
    patients = manifest.datasets[0].model_copy(update={"federation": block})
    changed = manifest.model_copy(update={"datasets": [patients, *manifest.datasets[1:]]})
    path = tmp_path / "manifest.json"
    path.write_text(dump_manifest(changed))
    loaded = load_manifest(path)
    assert loaded.datasets[0].federation == block
    assert loaded.datasets[1].federation is None
    document = json.loads(path.read_text())
    assert document["datasets"][0]["federation"] == _block()


def test_a_manifest_with_an_unknown_federation_key_does_not_load(tmp_path):
    manifest = write_lake(tmp_path / "lake").manifest
    document = json.loads(dump_manifest(manifest))
    document["datasets"][0]["federation"] = _block(person_keys=["p1"])
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Manifest.model_validate(document)


# -- sources, primary sources and counts ---------------------------------------------------


def test_silos_come_from_the_silver_paths_once_each_sorted():
    assert silos_of(["silver/trials/lb", "silver/trials/dm"]) == ["trials"]
    assert silos_of(["silver/lab/lab_results", "silver/ehr/patients"]) == ["ehr", "lab"]


@pytest.mark.parametrize(
    ("sources", "problem"),
    [
        (["gold/research/patients"], "is not a silver table"),
        (["silver/patients"], "is not a silver table"),
        (["silver/pharmacy/dispenses"], "silo 'pharmacy' has no linkage rule"),
        ([], "at least one silver source"),
    ],
)
def test_a_source_outside_the_known_silos_is_refused(sources, problem):
    with pytest.raises(FederationError, match=problem):
        silos_of(sources)


def test_the_primary_source_is_the_table_a_view_draws_its_rows_from():
    primary = {spec.name: primary_source(spec) for spec in SERVED}
    assert primary == {
        "patients": "silver/ehr/patients",
        "encounters": "silver/ehr/encounters",
        "conditions": "silver/ehr/conditions",
        "observations": "silver/ehr/observations",
        "medication_requests": "silver/ehr/medication_requests",
        "procedures": "silver/ehr/procedures",
        "immunizations": "silver/ehr/immunizations",
        "variant_frequencies": "silver/genomics/variants",
        "genotypes": "silver/genomics/genotypes",
        "imaging_studies": "silver/imaging/dicom_studies",
        "imaging_series": "silver/imaging/dicom_series",
        "imaging_instances": "silver/imaging/dicom_instances",
        "lab_results": "silver/lab/lab_results",
        "trial_subjects": "silver/trials/dm",
        "trial_adverse_events": "silver/trials/ae",
        "trial_lab_results": "silver/trials/lb",
    }
    assert all(primary[spec.name] in spec.sources for spec in SERVED)


def test_link_counts_count_rows_with_a_person_key():
    frame = pl.DataFrame(
        {"person_key": ["a", None, "b", None, "a"], "value": [1, 2, 3, 4, 5]},
        schema={"person_key": pl.String, "value": pl.Int64},
    )
    assert link_counts(frame.lazy()) == LinkCounts(linked_rows=3, source_rows=5)
    assert link_counts(frame.clear()) == LinkCounts(linked_rows=0, source_rows=0)


def test_link_counts_refuse_a_table_without_a_person_key():
    with pytest.raises(FederationError, match="no person_key column"):
        link_counts(pl.DataFrame({"chrom": ["1"]}))


# -- the sentences -------------------------------------------------------------------------


def test_every_silo_has_one_linkage_sentence_naming_its_identifiers():
    assert sorted(LINKAGE_RULES) == sorted(SILOS)
    expected = {
        "ehr": ("FHIR Patient id", "MRN"),
        "lab": ("patient index", "site patient id", "MRN"),
        "imaging": ("RIS order", "accession number", "PatientID", "MRN"),
        "genomics": ("sample manifest", "sample id", "MRN"),
        "trials": ("enrolment map", "STUDYID", "USUBJID", "MRN"),
    }
    for silo, words in expected.items():
        rule = LINKAGE_RULES[silo]
        assert all(word in rule for word in words), silo
        assert rule.endswith(".") and rule.count(". ") == 0, silo


def test_the_linkage_rule_ends_with_the_crosswalk_and_an_aggregate_says_so_first():
    assert linkage_rule(["lab"]) == f"{LINKAGE_RULES['lab']} {CROSSWALK_RULE}"
    assert linkage_rule(["genomics"], aggregate=True) == (
        f"{AGGREGATE_RULE} {LINKAGE_RULES['genomics']} {CROSSWALK_RULE}"
    )
    assert "quarantined" in CROSSWALK_RULE and "restricted person crosswalk" in CROSSWALK_RULE
    with pytest.raises(FederationError, match="no linkage rule"):
        linkage_rule(["pharmacy"])


def test_a_person_level_view_is_rechecked_at_query_time():
    policy = load_policy()
    rule = consent_rule(policy.datasets["research/patients"], silos=["ehr"])
    assert rule.startswith("Opt-in:")
    assert "latest consent decision for the research scope" in rule
    assert "again at every query" in rule and "next build" not in rule
    assert "Trial" not in rule and "arms" not in rule


def test_an_aggregate_view_takes_consent_at_its_build():
    policy = load_policy()
    rule = consent_rule(
        policy.datasets["research/variant_frequencies"], silos=["genomics"], aggregate=True
    )
    assert "when the dataset was built" in rule and "at the next build" in rule
    assert "every query" not in rule


def test_a_trial_view_needs_the_study_consent_and_hides_blinded_arms():
    policy = load_policy()
    unblinded = policy.unblinded_studies()
    blinded = sorted(set(policy.trials) - unblinded)
    assert unblinded and blinded, "the shipped policy lists a blinded and an unblinded study"
    rule = consent_rule(
        policy.datasets["research/trial_subjects"],
        silos=["trials"],
        unblinded_studies=unblinded,
    )
    assert "consent to their own study not to be withdrawn" in rule
    assert f"unblinded ({', '.join(sorted(unblinded))})" in rule
    assert all(study not in rule for study in blinded)
    closed = consent_rule(policy.datasets["research/trial_subjects"], silos=["trials"])
    assert "Treatment arms are empty for every study" in closed


def test_a_dataset_not_filtered_by_consent_says_how_its_rows_are_released():
    policy = load_policy()
    rule = consent_rule(policy.datasets["clinical/patient"], silos=["ehr"])
    assert rule == (
        "Not filtered by consent: the dataset serves only treatment, and its rows are released "
        "only under an active break-glass grant, for the granted patient."
    )


def test_every_sentence_of_every_shipped_dataset_passes_the_catalog_linter():
    policy = load_policy()
    texts = [AGGREGATE_RULE, CROSSWALK_RULE, *LINKAGE_RULES.values()]
    for rules in policy.datasets.values():
        for silos in (["ehr"], ["trials"], ["genomics"]):
            for aggregate in (False, True):
                texts.append(
                    consent_rule(
                        rules,
                        silos=silos,
                        aggregate=aggregate,
                        unblinded_studies=policy.unblinded_studies(),
                    )
                )
    tool_names = {f"query_{s.name}" for s in SERVED} | {f"aggregate_{s.name}" for s in SERVED}
    for text in texts:
        assert lint_text("federation", text, tool_names=tool_names) == [], text


# -- the block of a dataset ------------------------------------------------------------------


def test_a_person_level_block_carries_its_counts_and_share():
    policy = load_policy()
    (lab,) = LAB_VIEWS
    block = dataset_federation(
        lab.sources, policy.datasets["research/lab_results"], counts=LinkCounts(3, 8)
    )
    assert block.silos == ["lab"]
    assert block.linked_rows == 3 and block.source_rows == 8 and block.linked_share == 0.375
    assert block.linkage_rule == linkage_rule(["lab"])
    assert block.consent_rule == consent_rule(
        policy.datasets["research/lab_results"], silos=["lab"]
    )


def test_an_aggregate_block_has_no_share_and_explains_why():
    policy = load_policy()
    frequencies = next(s for s in GENOMIC_VIEWS if s.name == "variant_frequencies")
    assert PERSON_COLUMN not in {c.name for c in frequencies.columns}
    block = dataset_federation(
        frequencies.sources, policy.datasets["research/variant_frequencies"], counts=None
    )
    assert block.silos == ["genomics"]
    assert (block.linked_share, block.linked_rows, block.source_rows) == (None, 0, 0)
    assert block.linkage_rule.startswith(AGGREGATE_RULE)
    assert "at the next build" in block.consent_rule


def test_an_empty_source_has_no_share():
    policy = load_policy()
    block = dataset_federation(
        ["silver/imaging/dicom_studies"],
        policy.datasets["research/imaging_studies"],
        counts=LinkCounts(0, 0),
    )
    assert block.linked_share is None and not block.linkage_rule.startswith(AGGREGATE_RULE)


# -- the data card ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_data_card_serves_the_block_and_cards_without_one_keep_their_shape(tmp_path):
    lake = write_lake(tmp_path)
    block = dataset_federation(
        ["silver/ehr/patients"], lake.policy.datasets["research/patients"], counts=LinkCounts(9, 12)
    )
    patients = lake.manifest.datasets[0].model_copy(update={"federation": block})
    manifest = lake.manifest.model_copy(
        update={"datasets": [patients, *lake.manifest.datasets[1:]]}
    )
    server = make_server(manifest, lake.root)
    async with Client(server) as client:
        card = json.loads(
            (await client.read_resource("catalog://datasets/patients")).contents[0].text
        )
        other = json.loads(
            (await client.read_resource("catalog://datasets/observations")).contents[0].text
        )
    assert card["federation"] == {
        "silos": ["ehr"],
        "linkage_rule": linkage_rule(["ehr"]),
        "consent_rule": consent_rule(lake.policy.datasets["research/patients"], silos=["ehr"]),
        "linked_share": 0.75,
        "linked_rows": 9,
        "source_rows": 12,
    }
    assert "the scope of the purpose of use" in card["federation"]["consent_rule"]
    assert "federation" not in other
