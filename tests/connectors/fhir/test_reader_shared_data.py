"""Every real FHIR file in shared/data loads, or is rejected for a stated reason.

The expected counts were taken from the files with jq and Python's json module (counting
``resourceType`` per line or per ``entry.resource``), not from this reader's output.
"""

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.fhir import read_fhir
from connectors.fhir.schema import table_schema

NO_RESOURCE = "bundle entry carries no resource"

# file -> (rows per table, rejects as (locator, reason))
EXPECTED: dict[str, tuple[dict[str, int], list[tuple[str, str]]]] = {
    "ndjson/AllergyIntolerance.000.ndjson": ({"other_resources": 11}, []),
    "ndjson/Condition.000.ndjson": ({"conditions": 555}, []),
    "ndjson/Encounter.000.ndjson": ({"encounters": 1215}, []),
    "ndjson/Immunization.000.ndjson": ({"immunizations": 161}, []),
    "ndjson/MedicationRequest.000.ndjson": ({"medication_requests": 1745}, []),
    "ndjson/Patient.000.ndjson": ({"patients": 13}, []),
    "ndjson/Procedure.000.ndjson": ({"procedures": 2056}, []),
    "ndjson/log.ndjson": ({}, [("file", "bulk-export log file, not resources")]),
    # batch-response; entry 1 has the Encounter's fields inline instead of a resource.
    "bundles/ObservationBundle.json": (
        {"patients": 1, "observations": 1},
        [("entry:1", NO_RESOURCE)],
    ),
    # DiagnosticReport 30, DocumentReference 23, Claim 30, ExplanationOfBenefit 30,
    # CareTeam 4, CarePlan 4, ImagingStudy 1, Provenance 1 -> 123 other resources.
    "bundles/synthea_Temika453_Wuckert783.json": (
        {
            "patients": 1,
            "encounters": 23,
            "conditions": 25,
            "observations": 156,
            "medication_requests": 7,
            "procedures": 20,
            "immunizations": 20,
            "other_resources": 123,
        },
        [],
    ),
    "bundles/synthea_hospitalInformation.json": ({"other_resources": 95}, []),
}


def test_the_expected_outcomes_cover_every_shared_fhir_file(shared_data):
    found = {
        path.relative_to(shared_data / "fhir").as_posix()
        for path in (shared_data / "fhir").rglob("*")
        if path.is_file()
    }
    assert found == EXPECTED.keys()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_shared_fhir_file_loads_or_is_rejected_for_a_stated_reason(shared_data, name):
    path = shared_data / "fhir" / name
    counts, rejects = EXPECTED[name]
    result = read_fhir(path, on_error="quarantine")
    assert {table: frame.height for table, frame in result.tables.items()} == counts
    for table, frame in result.tables.items():
        assert dict(frame.schema) == table_schema(table)
        assert frame["source_file"].unique().to_list() == [str(path)]
    assert result.rejects.select("locator", "reason").rows() == rejects
    assert set(result.rejects["source"]) <= {str(path)}


def test_shared_patients_carry_demographics(shared_data):
    patients = read_fhir(shared_data / "fhir" / "ndjson" / "Patient.000.ndjson").tables["patients"]
    # jq: 3 lines carry deceasedDateTime; 9 female and 4 male; all 13 ombCategory "White".
    assert patients.filter(pl.col("deceased"))["deceased_datetime"].null_count() == 0
    assert patients["deceased"].sum() == 3
    assert patients["gender"].value_counts(sort=True).rows() == [("female", 9), ("male", 4)]
    assert patients["race"].unique().to_list() == ["White"]
    assert patients["mrn"].null_count() == 0
    assert patients["birth_date"].null_count() == 0


def test_shared_medication_requests_keep_codes_and_dosage_text(shared_data):
    path = shared_data / "fhir" / "ndjson" / "MedicationRequest.000.ndjson"
    requests = read_fhir(path).tables["medication_requests"]
    # jq: every request has medicationCodeableConcept; 82 have dosageInstruction[0].text.
    assert requests["medication_code"].null_count() == 0
    assert requests["dosage_text"].is_not_null().sum() == 82
    assert requests["patient_id"].null_count() == 0


def test_the_synthea_bundle_resolves_every_urn_uuid_patient_reference(shared_data):
    path = shared_data / "fhir" / "bundles" / "synthea_Temika453_Wuckert783.json"
    result = read_fhir(path)
    patient_id = result.tables["patients"]["id"].item()
    # jq: 373 resources reference urn:uuid:<patient>; the Patient and Provenance do not.
    referencing = sum(
        frame["patient_id"].eq(patient_id).sum()
        for table, frame in result.tables.items()
        if table != "patients"
    )
    assert referencing == 373
    observations = result.tables["observations"]
    # jq: 121 valueQuantity, 22 valueCodeableConcept, 13 panels with components only.
    assert observations["value_quantity"].is_not_null().sum() == 121
    assert observations["value_code"].is_not_null().sum() == 22
    panels = observations.filter(
        pl.col("value_quantity").is_null() & pl.col("value_code").is_null()
    )
    assert panels.height == 13
    assert panels["value_string"].null_count() == 13


def test_the_shared_ndjson_folder_equals_its_files_concatenated(shared_data):
    folder = shared_data / "fhir" / "ndjson"
    whole = read_fhir(folder, on_error="quarantine")
    tables: dict[str, list[pl.DataFrame]] = {}
    rejects = []
    for path in sorted(folder.iterdir()):
        part = read_fhir(path, on_error="quarantine")
        for table, frame in part.tables.items():
            tables.setdefault(table, []).append(frame)
        rejects.append(part.rejects)
    assert list(whole.tables) == [
        "patients",
        "encounters",
        "conditions",
        "medication_requests",
        "procedures",
        "immunizations",
        "other_resources",
    ]
    for table, frames in tables.items():
        assert_frame_equal(whole.tables[table], pl.concat(frames))
    assert_frame_equal(whole.rejects, pl.concat(rejects))
