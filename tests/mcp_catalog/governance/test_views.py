from datetime import UTC, date, datetime

import polars as pl
import pytest

from connectors.fhir.schema import table_schema
from mcp_catalog.governance.deid import Pseudonyms, date_shifts
from mcp_catalog.governance.views import RESEARCH_VIEWS, ViewContext, build_view

KEY = bytes(range(32))
DATE_KEY = bytes(range(32, 64))
VIEWS = {spec.name: spec for spec in RESEARCH_VIEWS}


def _silver(table, rows):
    schema = {
        "id": pl.String(),
        "person_key": pl.String(),
        **{k: v for k, v in table_schema(table).items() if k not in ("id", "resource_json")},
    }
    full = [{c: row.get(c) for c in schema} for row in rows]
    return pl.DataFrame(full, schema=schema)


def _ctx(consented=("pk-1",)):
    return ViewContext(
        pseudonyms=Pseudonyms(key=KEY),
        shifts=date_shifts(["pk-1", "pk-2"], key=DATE_KEY),
        consented=pl.Series("person_key", list(consented), dtype=pl.String()),
        reference_date=date(2026, 1, 1),
    )


PATIENTS = _silver(
    "patients",
    [
        {
            "id": "fhir-1",
            "person_key": "pk-1",
            "mrn": "MRN00000001",
            "family_name": "Doe",
            "given_name": "Jane",
            "gender": "female",
            "birth_date": date(1970, 4, 3),
            "address_line": "1 Main St",
            "city": "Springfield",
            "state": "MA",
            "postal_code": "01103",
            "deceased": True,
            "deceased_datetime": datetime(2024, 5, 6, 7, tzinfo=UTC),
        },
        {
            "id": "fhir-2",
            "person_key": "pk-2",
            "mrn": "MRN00000002",
            "family_name": "Roe",
            "gender": "male",
            "birth_date": date(1930, 1, 1),
            "postal_code": "03601",
        },
    ],
)


def test_research_patients_drop_identifiers_and_generalise_quasi_identifiers():
    view = build_view(VIEWS["patients"], {"silver/ehr/patients": PATIENTS}, _ctx(("pk-1", "pk-2")))
    assert view.columns == [c.name for c in VIEWS["patients"].columns]
    flat = {str(v) for row in view.iter_rows() for v in row}
    for identifier in (
        "fhir-1",
        "pk-1",
        "MRN00000001",
        "Doe",
        "Jane",
        "1 Main St",
        "Springfield",
        "01103",
        "1970-04-03",
        "2024-05-06",
    ):
        assert not any(identifier in v for v in flat), identifier
    rows = {r["birth_year"]: r for r in view.iter_rows(named=True)}
    assert rows[1970]["zip3"] == "011" and rows[1970]["age_90_plus"] is False
    assert rows[None]["zip3"] == "000" and rows[None]["age_90_plus"] is True
    assert (rows[1970]["deceased"], rows[None]["deceased"]) == (True, False)
    death = rows[1970]["death_date"]
    assert death != date(2024, 5, 6) and abs((death - date(2024, 5, 6)).days) <= 365


def test_people_without_consent_are_absent_from_every_view():
    view = build_view(VIEWS["patients"], {"silver/ehr/patients": PATIENTS}, _ctx(("pk-1",)))
    assert view.height == 1 and view.get_column("birth_year").to_list() == [1970]


def test_event_views_shift_dates_per_person_and_keep_intervals():
    encounters = _silver(
        "encounters",
        [
            {
                "id": "enc-1",
                "person_key": "pk-1",
                "patient_id": "fhir-1",
                "status": "finished",
                "period_start": datetime(2023, 1, 1, 9, tzinfo=UTC),
                "period_end": datetime(2023, 1, 1, 10, tzinfo=UTC),
            },
            {
                "id": "enc-2",
                "person_key": "pk-1",
                "patient_id": "fhir-1",
                "status": "finished",
                "period_start": datetime(2023, 3, 1, 9, tzinfo=UTC),
                "period_end": datetime(2023, 3, 4, 9, tzinfo=UTC),
            },
        ],
    )
    view = build_view(VIEWS["encounters"], {"silver/ehr/encounters": encounters}, _ctx())
    assert view.get_column("person_pseudonym").n_unique() == 1
    assert not view.get_column("record_key").is_in(["enc-1", "enc-2"]).any()
    lengths = (
        (view.get_column("period_end") - view.get_column("period_start")).dt.total_hours().sort()
    )
    assert lengths.to_list() == [1, 72]
    starts = view.sort("period_start").get_column("period_start")
    assert (starts[1] - starts[0]).days == 59
    assert starts[0] != datetime(2023, 1, 1, 9, tzinfo=UTC)


def test_the_same_person_gets_different_pseudonyms_in_different_audiences():
    a = build_view(VIEWS["patients"], {"silver/ehr/patients": PATIENTS}, _ctx())
    other = ViewContext(
        pseudonyms=Pseudonyms(key=bytes(32)),
        shifts=_ctx().shifts,
        consented=_ctx().consented,
        reference_date=date(2026, 1, 1),
    )
    b = build_view(VIEWS["patients"], {"silver/ehr/patients": PATIENTS}, other)
    assert a.get_column("person_pseudonym").item() != b.get_column("person_pseudonym").item()


def test_free_text_columns_are_not_in_research_views():
    for spec in RESEARCH_VIEWS:
        names = {c.name for c in spec.columns}
        assert not names & {"dosage_text", "value_string", "resource_json", "given_name", "mrn"}


@pytest.mark.parametrize("spec", RESEARCH_VIEWS, ids=lambda s: s.name)
def test_quasi_identifiers_are_not_sortable(spec):
    for column in spec.columns:
        assert column.sortable == (column.column_class != "quasi_identifier")


@pytest.mark.parametrize("spec", RESEARCH_VIEWS, ids=lambda s: s.name)
def test_column_lineage_names_only_columns_the_silver_source_has(spec):
    (source,) = spec.sources
    silver = set(table_schema(source.split("/")[-1])) | {"person_key"}
    lineage = spec.column_lineage()
    assert list(lineage) == [c.name for c in spec.columns]
    for inputs in lineage.values():
        assert inputs and all(table == source and column in silver for table, column in inputs)


def test_surrogate_identifiers_cover_people_records_and_encounters_of_every_view():
    from mcp_catalog.governance.views import surrogate_identifiers

    encounters = _silver("encounters", [{"id": "enc-1", "person_key": "pk-1"}])
    conditions = _silver(
        "conditions",
        [{"id": "con-1", "person_key": "pk-2", "encounter_id": "enc-1"}, {"id": "con-2"}],
    )
    pairs = surrogate_identifiers(
        {
            "silver/ehr/patients": PATIENTS,
            "silver/ehr/encounters": encounters,
            "silver/ehr/conditions": conditions,
        },
        pl.Series("person_key", ["pk-1", "pk-2"]),
        (VIEWS["patients"], VIEWS["encounters"], VIEWS["conditions"]),
    )
    assert set(pairs.rows()) == {
        ("P", "pk-1"),
        ("P", "pk-2"),
        ("E", "enc-1"),
        ("C", "con-1"),
        ("C", "con-2"),
    }
