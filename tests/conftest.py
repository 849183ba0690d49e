import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

REPO = Path(__file__).resolve().parents[1]

PATIENTS = 60
SEED = 11
SILOS = ("ehr", "genomics", "imaging", "lab", "trials")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared folder of real public test files, beside the repository by default."""
    path = Path(os.environ.get("BIOFED_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(
            "../shared/data not found: clone the repo beside shared/ or set BIOFED_SHARED_DATA"
        )
    return path


@dataclass
class MaterialisedLake:
    root: Path
    landing: Path
    first_run: object
    instance: dg.DagsterInstance


@pytest.fixture(scope="session")
def materialised_lake(tmp_path_factory) -> Iterator[MaterialisedLake]:
    """A real lake: a synthetic cohort of every silo landed and every asset materialised once.

    Shared by the pipeline tests and the quality suites' tests (materialising it is the
    slowest step of the suite); tests that change a lake copy it first.
    """
    from connectors.synth import write_cohort
    from pipelines.cli import materialize

    base = tmp_path_factory.mktemp("e2e")
    landing, lake = base / "landing", base / "lake"
    write_cohort(landing, patients=PATIENTS, seed=SEED, silos=SILOS)
    with dg.instance_for_test() as instance:
        result = materialize(str(lake), str(landing), instance=instance)
        assert result.success, "the first full materialisation failed"
        yield MaterialisedLake(lake, landing, result, instance)
