from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mcp_catalog.aggregates import AggregateQuery
from mcp_catalog.catalog import TableState, build_manifest, dataset_entry
from mcp_catalog.governance.deid import Pseudonyms, date_shifts, new_surrogates
from mcp_catalog.governance.lab import LAB_RESULTS, LAB_VIEWS, lab_record_identifiers
from mcp_catalog.governance.views import RESEARCH_VIEWS, ViewContext, build_view
from mcp_catalog.lint import lint_text
from mcp_catalog.policy import load_policy
from mcp_catalog.query import DatasetQuery

KEY = bytes(range(32))
DATE_KEY = bytes(range(32, 64))
PEOPLE = ["pk-1", "pk-2", "pk-3"]
(SPEC,) = LAB_VIEWS
UTC_DT = pl.Datetime("us", "UTC")

# silver/lab/lab_results exactly as the contract lays it out.
SILVER_SCHEMA = {
    "result_id": pl.String(),
    "person_key": pl.String(),
    "link_status": pl.String(),
    "lab_patient_id": pl.String(),
    "site": pl.String(),
    "source_kind": pl.String(),
    "message_id": pl.String(),
    "accession": pl.String(),
    "panel_code": pl.String(),
    "panel_display": pl.String(),
    "specimen_type": pl.String(),
    "category": pl.String(),
    "collected_at": UTC_DT,
    "resulted_at": UTC_DT,
    "local_code": pl.String(),
    "local_system": pl.String(),
    "local_display": pl.String(),
    "source_loinc": pl.String(),
    "loinc": pl.String(),
    "loinc_display": pl.String(),
    "analyte": pl.String(),
    "mapping_status": pl.String(),
    "map_version": pl.String(),
    "value_type": pl.String(),
    "value_text": pl.String(),
    "value_original": pl.Float64(),
    "unit_original": pl.String(),
    "comparator": pl.String(),
    "value": pl.Float64(),
    "unit": pl.String(),
    "unit_status": pl.String(),
    "reference_low": pl.Float64(),
    "reference_high": pl.Float64(),
    "reference_text": pl.String(),
    "abnormal_flag": pl.String(),
    "result_status": pl.String(),
    "value_code": pl.String(),
    "value_system": pl.String(),
    "value_display": pl.String(),
    "source_file": pl.String(),
    "source_locator": pl.String(),
    "source_sha256": pl.String(),
    "ingested_at": UTC_DT,
}

COLLECTED = datetime(2024, 3, 5, 13, 20, tzinfo=UTC)
RESULTED = datetime(2024, 3, 5, 18, 2, tzinfo=UTC)


def _result(result_id: str, person: str | None, link_status: str = "linked", **extra) -> dict:
    row = {
        "result_id": result_id,
        "person_key": person,
        "link_status": link_status,
        "lab_patient_id": f"LABMRN-{result_id}",
        "site": "SITE-B07",
        "source_kind": "csv",
        "accession": f"ACC-{result_id}",
        "panel_code": "BMP",
        "specimen_type": "SER",
        "category": "laboratory",
        "collected_at": COLLECTED,
        "resulted_at": RESULTED,
        "local_code": "1001",
        "local_system": "SITE-B07",
        "local_display": "Glucose",
        "source_loinc": "14749-6",
        "loinc": "2345-7",
        "loinc_display": "Glucose [Mass/volume] in Serum or Plasma",
        "analyte": "glucose",
        "mapping_status": "mapped",
        "map_version": "2026.09.1",
        "value_type": "NM",
        "value_text": "5.5",
        "value_original": 5.5,
        "unit_original": "mmol/L",
        "value": 99.09,
        "unit": "mg/dL",
        "unit_status": "converted",
        "reference_low": 70.0,
        "reference_high": 99.0,
        "reference_text": "3.9-5.5",
        "abnormal_flag": "N",
        "result_status": "F",
        "source_file": f"csv/SITE-B07/{result_id}.csv",
        "source_locator": "line:2",
        "source_sha256": "ab" * 32,
        "ingested_at": datetime(2024, 3, 6, tzinfo=UTC),
    }
    return row | extra


ROWS = [
    _result("a1" * 16, "pk-1"),
    _result(
        "b2" * 16,
        "pk-1",
        source_kind="hl7v2",
        message_id="MSG-0001",
        value_type="ST",
        value_text="Jane Doe: sample haemolysed, call 555-0100",
        value_original=None,
        value=None,
        unit_status="not_numeric",
        result_status="Final",
        collected_at=datetime(2024, 3, 9, 8, 0, tzinfo=UTC),
        resulted_at=None,
    ),
    _result("c3" * 16, "pk-2"),  # pk-2 did not consent
    _result("d4" * 16, None, "unknown_patient"),
    _result("e5" * 16, None, "unknown_mrn"),
    # a person key but an untrusted link: left out whatever the key says
    _result("f6" * 16, "pk-1", "unknown_mrn"),
]
SILVER = {LAB_RESULTS: pl.DataFrame(ROWS, schema=SILVER_SCHEMA)}


def _ctx(consented=("pk-1",), pseudonyms: Pseudonyms | None = None) -> ViewContext:
    return ViewContext(
        pseudonyms=pseudonyms or Pseudonyms(key=KEY),
        shifts=date_shifts(PEOPLE, key=DATE_KEY),
        consented=pl.Series("person_key", list(consented), dtype=pl.String()),
        reference_date=date(2026, 1, 1),
    )


def _shift(person: str) -> timedelta:
    shifts = date_shifts(PEOPLE, key=DATE_KEY)
    days = shifts.filter(pl.col("person_key") == person).get_column("shift_days").item()
    return timedelta(days=days)


def _pseudonym(identifier: str, prefix: str, key: bytes = KEY) -> str:
    frame = pl.DataFrame({"id": [identifier]})
    return Pseudonyms(key=key).apply(frame, "id", prefix=prefix, alias="p").item()


def _build(ctx: ViewContext | None = None, silver=SILVER) -> pl.DataFrame:
    return build_view(SPEC, silver, ctx or _ctx())


def test_only_linked_consented_people_results_are_in_the_view():
    view = _build()
    expected = pl.DataFrame(
        {
            "record_key": [_pseudonym("a1" * 16, "L"), _pseudonym("b2" * 16, "L")],
            "person_pseudonym": [_pseudonym("pk-1", "P")] * 2,
            "source_kind": ["csv", "hl7v2"],
            "value": [99.09, None],
            "unit_status": ["converted", "not_numeric"],
        }
    ).sort("record_key")
    got = view.select("record_key", "person_pseudonym", "source_kind", "value", "unit_status")
    assert_frame_equal(got, expected)


def test_everyone_consenting_adds_only_the_linked_person():
    view = _build(_ctx(consented=PEOPLE))
    assert sorted(view.get_column("person_pseudonym").unique().to_list()) == sorted(
        [_pseudonym("pk-1", "P"), _pseudonym("pk-2", "P")]
    )
    assert view.height == 3


def test_pseudonyms_are_stable_keyed_and_unlike_the_source_ids():
    first, again = _build(), _build()
    assert_frame_equal(first, again)
    keys = first.get_column("record_key").to_list()
    assert all(k.startswith("L-") for k in keys)
    assert not set(keys) & {r["result_id"] for r in ROWS}
    other = _build(_ctx(pseudonyms=Pseudonyms(key=bytes(32))))
    assert not set(other.get_column("record_key")) & set(keys)
    assert not set(other.get_column("person_pseudonym")) & set(first.get_column("person_pseudonym"))


def test_no_identifier_or_free_text_reaches_the_view():
    text = str(_build(_ctx(consented=PEOPLE)).rows())
    secrets = ["pk-1", "pk-2", "LABMRN-", "ACC-", "MSG-0001", "Jane Doe", "555-0100", "csv/"]
    secrets += [r["result_id"] for r in ROWS]
    for secret in secrets:
        assert secret not in text, secret
    assert not {"value_text", "lab_patient_id", "accession", "message_id", "result_id"} & set(
        _build().columns
    )


def test_times_move_by_exactly_the_persons_shift():
    view = _build(_ctx(consented=PEOPLE)).sort("collected_at")
    by_person = {
        p: view.filter(pl.col("person_pseudonym") == _pseudonym(p, "P")) for p in ("pk-1", "pk-2")
    }
    pk1 = by_person["pk-1"].sort("collected_at")
    assert pk1.get_column("collected_at").to_list() == sorted(
        [COLLECTED + _shift("pk-1"), datetime(2024, 3, 9, 8, 0, tzinfo=UTC) + _shift("pk-1")]
    )
    assert pk1.get_column("resulted_at").to_list() == [RESULTED + _shift("pk-1"), None]
    assert by_person["pk-2"].get_column("collected_at").item() == COLLECTED + _shift("pk-2")
    assert _shift("pk-1") != _shift("pk-2")


def test_a_person_without_a_date_shift_stops_the_build():
    ctx = _ctx()
    ctx = ViewContext(
        pseudonyms=ctx.pseudonyms,
        shifts=ctx.shifts.filter(pl.col("person_key") != "pk-1"),
        consented=ctx.consented,
        reference_date=ctx.reference_date,
    )
    with pytest.raises(ValueError, match="date shifts are missing"):
        _build(ctx)


def test_values_outside_the_declared_code_sets_are_withheld():
    view = _build()
    statuses = dict(zip(view["source_kind"], view["result_status"], strict=True))
    assert statuses == {"csv": "F", "hl7v2": None}
    for column in SPEC.columns:
        if column.enum is not None:
            assert set(view.get_column(column.name).drop_nulls()) <= set(column.enum)


def test_the_view_has_exactly_the_declared_columns_and_dtypes():
    schema = pl.Schema({c.name: c.dtype for c in SPEC.columns})
    assert _build().schema == schema
    empty = _build(silver={LAB_RESULTS: SILVER[LAB_RESULTS].clear()})
    assert empty.height == 0 and empty.schema == schema


def test_column_lineage_names_only_columns_of_the_silver_table():
    lineage = SPEC.column_lineage()
    assert list(lineage) == [c.name for c in SPEC.columns]
    for inputs in lineage.values():
        assert inputs and all(t == LAB_RESULTS and c in SILVER_SCHEMA for t, c in inputs)
    assert lineage["record_key"] == ((LAB_RESULTS, "result_id"),)


def test_the_surrogate_scheme_gets_every_record_key_from_the_lab_identifiers():
    wanted = pl.concat(
        [
            pl.DataFrame({"prefix": "P", "identifier": PEOPLE}),
            lab_record_identifiers(SILVER),
        ]
    )
    mapping = new_surrogates(
        wanted,
        pl.DataFrame(schema={"prefix": pl.String, "identifier": pl.String, "surrogate": pl.String}),
    )
    view = _build(_ctx(pseudonyms=Pseudonyms(surrogates=mapping)))
    surrogates = dict(zip(mapping["identifier"], mapping["surrogate"], strict=True))
    assert sorted(view.get_column("record_key")) == sorted(
        [surrogates["a1" * 16], surrogates["b2" * 16]]
    )


def test_lab_view_text_passes_the_catalog_linter():
    tools = [f"query_{v.name}" for v in (*RESEARCH_VIEWS, *LAB_VIEWS)]
    findings = lint_text("title", SPEC.title, tool_names=tools)
    findings += lint_text("description", SPEC.description, tool_names=tools)
    for column in SPEC.columns:
        findings += lint_text(f"column {column.name}", column.description, tool_names=tools)
    assert findings == []


def test_the_shipped_policy_governs_the_view_as_it_declares():
    policy = load_policy()
    rules = policy.dataset(SPEC.audience, SPEC.name)
    assert rules is not None and rules.consent and rules.consent_scope == "research"
    assert rules.columns == {c.name: c.column_class for c in SPEC.columns}
    assert rules.aggregation is not None and rules.aggregation.measures == ["value"]
    state = TableState(row_count=3, delta_version=0, last_materialized=datetime.now(UTC))
    manifest = build_manifest(
        [dataset_entry(SPEC, state)], generated_at=datetime.now(UTC), policy=policy
    )
    (entry,) = manifest.datasets
    DatasetQuery.for_dataset(entry)
    AggregateQuery.for_dataset(entry, rules.aggregation)
