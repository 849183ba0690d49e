import orjson
import polars as pl
import pytest

from connectors.errors import MalformedRecordError
from connectors.fhir import read_fhir
from connectors.fhir.components import observation_components
from connectors.fhir.schema import table_schema

PANEL = {
    "resourceType": "Observation",
    "id": "bp-1",
    "status": "final",
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs",
                }
            ]
        }
    ],
    "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
    "subject": {"reference": "Patient/p-1"},
    "encounter": {"reference": "Encounter/e-1"},
    "effectiveDateTime": "2024-03-01T08:00:00Z",
    "component": [
        {
            "code": {
                "coding": [
                    {
                        "system": "http://loinc.org",
                        "code": "8480-6",
                        "display": "Systolic blood pressure",
                    }
                ]
            },
            "valueQuantity": {
                "value": 128,
                "unit": "mm[Hg]",
                "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]",
            },
        },
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
            "valueQuantity": {"value": 84, "unit": "mmHg"},
            "interpretation": [{"coding": [{"code": "H"}]}],
        },
    ],
}


def _observations(tmp_path, *resources):
    path = tmp_path / "Observation.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in resources))
    return read_fhir(path).tables["observations"]


def test_each_panel_component_becomes_an_observation_row_with_the_panels_context(tmp_path):
    result = observation_components(_observations(tmp_path, PANEL))
    rows = result.tables["observations"]
    assert rows.select(
        "id",
        "patient_id",
        "encounter_id",
        "category",
        "code",
        "value_quantity",
        "value_unit",
        "interpretation",
        "source_locator",
    ).rows() == [
        (
            "bp-1.1",
            "p-1",
            "e-1",
            "vital-signs",
            "8480-6",
            128.0,
            "mm[Hg]",
            None,
            "line:1/component:1",
        ),
        ("bp-1.2", "p-1", "e-1", "vital-signs", "8462-4", 84.0, "mmHg", "H", "line:1/component:2"),
    ]
    assert rows.schema == _observations(tmp_path, PANEL).schema
    assert rows.get_column("effective_datetime").dt.hour().to_list() == [8, 8]
    assert result.rejects.height == 0


def test_observations_without_components_give_no_rows(tmp_path):
    plain = {k: v for k, v in PANEL.items() if k != "component"} | {"id": "x"}
    assert observation_components(_observations(tmp_path, plain)).tables["observations"].height == 0


def test_a_malformed_component_is_quarantined_with_its_locator_or_raised(tmp_path):
    bad = PANEL | {
        "component": [
            PANEL["component"][0] | {"valueQuantity": {"value": "128"}},
            PANEL["component"][1],
        ]
    }
    observations = _observations(tmp_path, bad)
    result = observation_components(observations, on_error="quarantine")
    assert result.tables["observations"].get_column("id").to_list() == ["bp-1.2"]
    assert result.rejects.rows() == [
        (
            str(tmp_path / "Observation.ndjson"),
            "line:1/component:1",
            "Observation.component.valueQuantity.value is not a number",
        )
    ]
    with pytest.raises(MalformedRecordError, match="component:1") as raised:
        observation_components(observations)
    assert "128" not in str(raised.value)


def test_component_rows_keep_the_connector_schema_when_there_are_none():
    empty = pl.DataFrame(schema=table_schema("observations"))
    assert observation_components(empty).tables["observations"].schema == empty.schema
