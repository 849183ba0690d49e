"""The real DICOM files of ../shared/data/dicom landed as one batch and materialised end to
end: no value the PS3.15 Basic Profile removes or replaces reaches the gold views or the
MCP output.

Each real PatientID is ordered (a RIS order row) for a different synthetic person who
consented to research, so the files link and reach the views; files without a PatientID
cannot link and stay out, as they should. The files are read where they are, never copied
into the repository.
"""

import csv
import json
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pydicom
import pytest

from connectors.synth import build_people, write_cohort
from mcp_catalog.governance.dicom_deid import excluded_expr
from pipelines import imaging
from pipelines.cli import materialize
from pipelines.lake import Lake
from quality.dicom_profile import basic_profile
from tests.pipelines.conftest import call_tool, profiled_values

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "dicom"
BATCH = "reference-001"
PEOPLE, SEED = 30, 5

pytestmark = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"the shared DICOM files are not at {SHARED} (clone the shared data beside the repo)",
)


def _orders(files: list[Path]) -> list[dict[str, str]]:
    consenting = [p for p in build_people(PEOPLE, SEED) if p.research_consent == "permit"]
    rows, people = [], {}
    for index, path in enumerate(files):
        dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        patient_id = str(dataset.get("PatientID") or "")
        if not patient_id:
            continue
        person = people.setdefault(patient_id, consenting[len(people)])
        accession = str(dataset.get("AccessionNumber") or "") or f"REF-{index:03d}"
        if any(row["accession_number"] == accession for row in rows):
            continue
        rows.append(
            {
                "accession_number": accession,
                "patient_id": patient_id,
                "mrn": person.mrn,
                "encounter_id": "",
                "modality": str(dataset.get("Modality") or ""),
                "procedure_code": "",
                "procedure_display": "",
                "ordered_at": "2020-01-01T08:00:00+00:00",
            }
        )
    return rows


@pytest.fixture(scope="module")
def real_lake(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("real-dicom")
    landing, root = base / "landing", base / "lake"
    write_cohort(landing, patients=PEOPLE, seed=SEED, silos=("ehr",))
    batch = landing / "imaging" / BATCH
    batch.mkdir(parents=True)
    files = sorted(SHARED.glob("*.dcm"))
    for path in files:
        shutil.copy(path, batch / path.name)
    with (landing / "imaging" / imaging.ORDERS_NAME).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(imaging.ORDER_COLUMNS))
        writer.writeheader()
        writer.writerows(_orders(files))
    with dg.instance_for_test() as instance:
        assert materialize(str(root), str(landing), instance=instance).success
    return root


def test_every_real_file_is_an_instance_and_the_linked_ones_reach_the_views(real_lake):
    lake = Lake(real_lake)
    bronze = lake.read(imaging.INSTANCES_PATH)
    assert bronze.height == len(list(SHARED.glob("*.dcm")))
    # Two of the files are one MR image in two transfer syntaxes (one SOP Instance UID):
    # silver keeps one row per instance.
    silver = lake.read(imaging.SILVER_INSTANCES_PATH)
    assert silver.height == bronze.get_column("sop_instance_uid").n_unique() < bronze.height
    kept = silver.filter(pl.col("person_key").is_not_null(), ~excluded_expr().fill_null(False))
    gold = lake.read("gold/research/imaging_instances")
    assert gold.height == kept.height >= 8
    assert {"CT", "MR", "SEG", "SR", "SM", "DX"} <= set(gold.get_column("modality"))


@pytest.mark.anyio
async def test_no_removed_value_of_a_real_file_reaches_the_views_or_mcp(real_lake):
    lake = Lake(real_lake)
    profile = basic_profile()
    silver = lake.read(imaging.SILVER_INSTANCES_PATH).filter(
        pl.col("person_key").is_not_null(), ~excluded_expr().fill_null(False)
    )
    secrets: set[str] = set()
    for header in silver.get_column("header_json"):
        removed, _, kept = profiled_values(json.loads(header), profile)
        secrets |= removed - kept
    assert len(secrets) > 50, "the real headers should carry values the profile removes"
    texts = []
    for view in ("imaging_studies", "imaging_series", "imaging_instances"):
        frame = lake.read(f"gold/research/{view}")
        for column in frame.columns:
            texts += [str(v) for v in frame.get_column(column).to_list() if v is not None]
    gold_text = "\n".join(texts)
    assert not [s for s in secrets if s in gold_text], "a removed value reached the gold views"
    served = []
    for view in ("imaging_studies", "imaging_series", "imaging_instances"):
        _, result = await call_tool(
            real_lake, "data_steward", "quality_improvement", f"query_{view}", {"limit": 100}
        )
        assert result is not None and not result.is_error, result
        assert result.structured_content["rows"]
        served.append(json.dumps(result.structured_content))
        served += [getattr(block, "text", "") for block in result.content]
    served_text = "\n".join(served)
    assert not [s for s in secrets if s in served_text], "a removed value reached MCP output"


@pytest.fixture
def anyio_backend():
    return "asyncio"
