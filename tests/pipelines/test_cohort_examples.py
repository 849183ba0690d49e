import json
import re
import shutil
from datetime import date

import pytest

from connectors.synth import build_people
from connectors.synth.federation import RosterFacts
from mcp_catalog.policy import load_policy
from pipelines.cohort_examples import (
    EXAMPLES,
    answer_text,
    call_json,
    example_calls_text,
)
from tests.pipelines.conftest import PATIENTS, SEED

MIN_CELL = load_policy().datasets["research/patients"].min_cell_size


@pytest.fixture(scope="module")
def text(materialised_lake, tmp_path_factory) -> str:
    lake = tmp_path_factory.mktemp("cohort-examples") / "lake"
    shutil.copytree(materialised_lake.root, lake, ignore=shutil.ignore_patterns("_audit"))
    return example_calls_text(lake)


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.silos)
def test_each_example_call_is_valid_json_of_its_arguments_over_at_least_two_silos(example):
    assert json.loads(call_json(example.arguments)) == example.arguments
    assert len(example.arguments["criteria"]) >= 2
    assert example.arguments["criteria"].keys() - {"age", "sex"}


def test_the_examples_print_each_question_its_call_and_the_generators_answer(text):
    facts = RosterFacts.from_people(build_people(PATIENTS, SEED))
    for number, example in enumerate(EXAMPLES, 1):
        assert f"{number}. {example.question}" in _flat(text)
        assert call_json(example.arguments) in text
        labs = example.arguments["criteria"].get("labs", [])
        bounds = [
            (lab["loinc"], bound)
            for lab in labs
            for bound in (lab.get("min"), lab.get("max"))
            if bound is not None
        ]
        for person in facts.people.values():
            for loinc, value in person.labs:
                # A converted value next to a bound could fall either side of it.
                assert not any(c == loinc and 0 < abs(value - b) < 1e-3 for c, b in bounds)
        truth = len(facts.cohort(example.arguments["criteria"], reference_date=date.today()))
        if truth < MIN_CELL:
            expected = f"-> fewer than {MIN_CELL} people: the count is suppressed"
        else:
            expected = f"-> {truth} people"
        assert expected in _flat(text)
    assert "refused" not in text
    assert text.rstrip().splitlines()[-1].strip().endswith(")")


def test_a_refusal_and_a_suppressed_count_read_as_such():
    assert answer_text("the treatment arm is blinded") == "refused: the treatment arm is blinded"
    suppressed = {"suppressed": True, "min_cell_size": 11, "count": None}
    assert answer_text(suppressed).startswith("fewer than 11 people: the count is suppressed")
