import json
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.errors import MalformedRecordError
from connectors.fhir import read_fhir
from connectors.fhir.schema import table_schema
from connectors.result import REJECT_SCHEMA

BUNDLES = Path(__file__).resolve().parents[2] / "data" / "fhir" / "bundles"
LOINC = "http://loinc.org"
UCUM_DEGREES = "Cel"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def expected_frame(table: str, path: Path, rows: list[dict[str, object]]) -> pl.DataFrame:
    """Expected rows without resource_json, which is compared as parsed JSON instead."""
    schema = {k: v for k, v in table_schema(table).items() if k != "resource_json"}
    rows = [{**row, "source_file": str(path)} for row in rows]
    return pl.DataFrame({name: [row.get(name) for row in rows] for name in schema}, schema=schema)


def assert_rows(
    result_table: pl.DataFrame, table: str, path: Path, rows: list[dict[str, object]]
) -> None:
    assert dict(result_table.schema) == table_schema(table)
    assert_frame_equal(result_table.drop("resource_json"), expected_frame(table, path, rows))


def entry_resources(path: Path, locators: list[str]) -> list[dict]:
    """The resources at the given ``entry:N[/entry:M]`` locators, read with the json module."""
    bundle = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for locator in locators:
        node = bundle
        for step in locator.split("/"):
            node = node["entry"][int(step.removeprefix("entry:"))]["resource"]
        found.append(node)
    return found


def assert_resource_json(frame: pl.DataFrame, path: Path) -> None:
    locators = frame["source_locator"].to_list()
    parsed = [json.loads(text) for text in frame["resource_json"]]
    assert parsed == entry_resources(path, locators)
    # Compact: orjson writes no whitespace between tokens.
    assert all(", " not in text and '": ' not in text for text in frame["resource_json"])


def rejects_frame(path: Path, rows: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(str(path), locator, reason) for locator, reason in rows],
        schema=REJECT_SCHEMA,
        orient="row",
    )


def test_a_collection_bundle_gives_one_row_per_entry():
    path = BUNDLES / "collection.json"
    result = read_fhir(path)
    assert list(result.tables) == ["patients", "observations", "other_resources"]
    assert_rows(
        result.tables["patients"],
        "patients",
        path,
        [
            {
                "id": "pat-c1",
                "gender": "male",
                "birth_date": date(1990, 12, 31),
                "source_locator": "entry:0",
            }
        ],
    )
    assert_rows(
        result.tables["observations"],
        "observations",
        path,
        [
            {
                "id": "obs-c1",
                "patient_id": "pat-c1",
                "status": "final",
                "system": LOINC,
                "code": "8302-2",
                "display": "Body height",
                "effective_datetime": utc(2021, 5, 1, 12, 0),
                "value_quantity": 180.5,
                "value_unit": "cm",
                "source_locator": "entry:1",
            }
        ],
    )
    assert_rows(
        result.tables["other_resources"],
        "other_resources",
        path,
        [{"resource_type": "Organization", "id": "org-c1", "source_locator": "entry:2"}],
    )
    for frame in result.tables.values():
        assert_resource_json(frame, path)
    assert result.rejects.is_empty()


def test_a_transaction_bundle_resolves_urn_uuid_references():
    path = BUNDLES / "transaction.json"
    result = read_fhir(path)
    patient = "0b1e5e0a-0000-4000-8000-000000000001"
    encounter = "0b1e5e0a-0000-4000-8000-000000000002"
    assert list(result.tables) == ["patients", "encounters", "conditions", "observations"]
    assert_rows(
        result.tables["encounters"],
        "encounters",
        path,
        [
            {
                "id": encounter,
                "patient_id": patient,
                "status": "finished",
                "class_code": "IMP",
                "period_start": utc(2022, 1, 10, 8, 0),
                "period_end": utc(2022, 1, 12, 16, 0),
                "source_locator": "entry:1",
            }
        ],
    )
    assert_rows(
        result.tables["conditions"],
        "conditions",
        path,
        [
            {
                "id": "0b1e5e0a-0000-4000-8000-000000000003",
                "patient_id": patient,
                "encounter_id": encounter,
                "system": "http://snomed.info/sct",
                "code": "233604007",
                "display": "Pneumonia",
                "onset_datetime": utc(2022, 1, 9),
                "source_locator": "entry:2",
            }
        ],
    )
    # A conditional reference (Patient?identifier=...) is kept as a row with no patient id.
    assert_rows(
        result.tables["observations"],
        "observations",
        path,
        [
            {
                "id": "0b1e5e0a-0000-4000-8000-000000000004",
                "status": "final",
                "system": LOINC,
                "code": "8310-5",
                "display": "Body temperature",
                "value_quantity": 38.2,
                "value_unit": UCUM_DEGREES,
                "source_locator": "entry:3",
            }
        ],
    )
    assert result.rejects.is_empty()


def test_a_searchset_bundle_reads_matches_includes_and_outcomes():
    path = BUNDLES / "searchset.json"
    result = read_fhir(path)
    assert list(result.tables) == ["patients", "observations", "other_resources"]
    assert_rows(
        result.tables["observations"],
        "observations",
        path,
        [
            {
                "id": "obs-s1",
                "patient_id": "pat-s1",
                "status": "final",
                "system": LOINC,
                "code": "718-7",
                "display": "Hemoglobin [Mass/volume] in Blood",
                "effective_datetime": utc(2023, 3, 3, 6, 3, 3),
                "value_quantity": 13.1,
                "value_unit": "g/dL",
                "interpretation": "L",
                "source_locator": "entry:0",
            }
        ],
    )
    assert result.tables["patients"]["source_locator"].to_list() == ["entry:1"]
    assert result.tables["other_resources"]["resource_type"].to_list() == ["OperationOutcome"]


def test_response_only_entries_of_a_batch_response_are_rejected_not_lost():
    path = BUNDLES / "batch-response.json"
    result = read_fhir(path, on_error="quarantine")
    assert result.tables["patients"]["id"].to_list() == ["pat-b1"]
    assert_rows(
        result.tables["observations"],
        "observations",
        path,
        [
            {
                "id": "obs-b3",
                "patient_id": "pat-b1",
                "status": "final",
                "system": LOINC,
                "code": "29463-7",
                "display": "Body weight",
                "value_quantity": 70.0,
                "value_unit": "kg",
                "source_locator": "entry:2",
            }
        ],
    )
    reason = "bundle entry carries no resource"
    expected = rejects_frame(path, [("entry:1", reason), ("entry:3", reason)])
    assert_frame_equal(result.rejects, expected)
    with pytest.raises(MalformedRecordError, match="at entry:1: bundle entry carries no resource"):
        read_fhir(path)


def test_a_bundle_inside_a_bundle_is_read_with_a_nested_locator():
    path = BUNDLES / "nested.json"
    result = read_fhir(path, on_error="quarantine")
    assert result.tables["patients"]["source_locator"].to_list() == ["entry:0"]
    assert result.tables["observations"].select("id", "source_locator").rows() == [
        ("obs-n1", "entry:1/entry:1"),
        ("obs-n2", "entry:2"),
    ]
    assert result.tables["observations"]["value_string"].to_list() == [
        "Within normal limits",
        None,
    ]
    assert_rows(
        result.tables["other_resources"],
        "other_resources",
        path,
        [
            {
                "resource_type": "Composition",
                "id": "comp-1",
                "patient_id": "pat-n1",
                "source_locator": "entry:1/entry:0",
            }
        ],
    )
    for frame in result.tables.values():
        assert_resource_json(frame, path)
    assert_frame_equal(
        result.rejects,
        rejects_frame(path, [("entry:3/entry:0", "bundle entry carries no resource")]),
    )


def test_a_single_resource_json_file_is_one_row_located_resource():
    path = BUNDLES / "single-resource.json"
    result = read_fhir(path)
    assert_rows(
        result.tables["patients"],
        "patients",
        path,
        [{"id": "pat-single", "gender": "female", "source_locator": "resource"}],
    )
    assert json.loads(result.tables["patients"]["resource_json"][0]) == json.loads(
        path.read_text(encoding="utf-8")
    )


def test_a_bundle_with_a_byte_order_mark_reads_like_one_without(tmp_path):
    source = BUNDLES / "collection.json"
    copy = tmp_path / "collection.json"
    copy.write_bytes(b"\xef\xbb\xbf" + source.read_bytes())
    original, marked = read_fhir(source), read_fhir(copy)
    assert marked.tables.keys() == original.tables.keys()
    for table, frame in original.tables.items():
        expected = frame.with_columns(source_file=pl.lit(str(copy)))
        assert_frame_equal(marked.tables[table], expected)


def test_a_bundle_on_an_ndjson_line_is_unpacked(tmp_path):
    bundle = json.loads((BUNDLES / "collection.json").read_text(encoding="utf-8"))
    path = tmp_path / "bundles.ndjson"
    path.write_text(json.dumps(bundle) + "\n", encoding="utf-8")
    result = read_fhir(path)
    assert result.tables["observations"]["source_locator"].to_list() == ["line:1/entry:1"]
