from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from connectors.synth import write_cohort
from pipelines.cli import materialize

PATIENTS = 60


@dataclass
class MaterialisedLake:
    root: Path
    landing: Path
    first_run: object
    instance: dg.DagsterInstance


@pytest.fixture(scope="session")
def materialised_lake(tmp_path_factory) -> Iterator[MaterialisedLake]:
    """A real lake: a synthetic cohort landed and every asset materialised once."""
    base = tmp_path_factory.mktemp("e2e")
    landing, lake = base / "landing", base / "lake"
    write_cohort(landing, patients=PATIENTS, seed=11, silos=("ehr", "genomics"))
    with dg.instance_for_test() as instance:
        result = materialize(str(lake), str(landing), instance=instance)
        assert result.success, "the first full materialisation failed"
        yield MaterialisedLake(lake, landing, result, instance)
