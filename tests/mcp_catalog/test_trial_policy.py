"""The policy's ``trials`` section: which studies are blinded, failing closed."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from mcp_catalog.policy import DEFAULT_POLICY_PATH, Policy, PolicyError, load_policy


def _shipped() -> dict[str, Any]:
    """The shipped policy document as the loader validates it (anchors expanded)."""
    document = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    return {k: v for k, v in document.items() if not str(k).startswith("x-")}


def _write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def test_the_shipped_policy_lists_both_trials_and_unblinds_only_the_published_one():
    policy = load_policy(DEFAULT_POLICY_PATH)
    assert policy.version == "2026.11.5"
    assert {study: trial.blinded for study, trial in policy.trials.items()} == {
        "BIOFED-01": True,
        "CDISCPILOT01": False,
    }
    assert all(trial.title.strip() for trial in policy.trials.values())
    assert policy.unblinded_studies() == frozenset({"CDISCPILOT01"})


def test_a_study_the_policy_does_not_list_is_not_unblinded():
    policy = load_policy(DEFAULT_POLICY_PATH)
    assert "CDISCPILOT02" not in policy.unblinded_studies()
    assert "cdiscpilot01" not in policy.unblinded_studies()
    document = _shipped()
    del document["trials"]
    assert Policy.model_validate(document).unblinded_studies() == frozenset()


@pytest.mark.parametrize(
    ("trial", "problem"),
    [
        ({"title": "t", "blinded": False, "unblinded_on": "2026-01-01"}, "Extra inputs"),
        ({"title": "t"}, "blinded"),
        ({"title": "t", "blinded": "no"}, "valid boolean"),
        ({"title": "t", "blinded": 0}, "valid boolean"),
        ({"blinded": False}, "title"),
    ],
)
def test_a_trial_entry_must_be_exact(tmp_path: Path, trial: dict[str, Any], problem: str):
    document = _shipped()
    document["trials"]["CDISCPILOT01"] = trial
    with pytest.raises(PolicyError, match="does not validate") as raised:
        load_policy(_write(tmp_path, document))
    assert "trials.CDISCPILOT01" in str(raised.value) and problem in str(raised.value)


def test_a_study_id_that_is_not_a_studyid_is_refused(tmp_path: Path):
    document = _shipped()
    document["trials"]["BIOFED 01; all"] = {"title": "t", "blinded": False}
    with pytest.raises(PolicyError, match="trial id 'BIOFED 01; all'"):
        load_policy(_write(tmp_path, document))


def test_a_policy_without_trials_keeps_its_fingerprint_and_one_with_trials_records_them():
    document = _shipped()
    with_trials = Policy.model_validate(document)
    assert '"trials":{"BIOFED-01":' in with_trials.model_dump_json()
    del document["trials"]
    without = Policy.model_validate(document)
    assert "trials" not in without.model_dump_json()
    assert without.fingerprint != with_trials.fingerprint
    document["trials"] = {}
    assert Policy.model_validate(document).fingerprint == without.fingerprint


def test_unblinding_a_study_changes_the_fingerprint():
    document = _shipped()
    before = Policy.model_validate(document).fingerprint
    document["trials"]["BIOFED-01"]["blinded"] = False
    after = Policy.model_validate(document)
    assert after.fingerprint != before
    assert after.unblinded_studies() == frozenset({"BIOFED-01", "CDISCPILOT01"})
