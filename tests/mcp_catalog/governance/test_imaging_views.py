import json
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.fhir.schema import table_schema
from mcp_catalog.governance.deid import Pseudonyms, date_shifts
from mcp_catalog.governance.dicom_deid import remap_uid
from mcp_catalog.governance.imaging import IMAGING_VIEWS, INSTANCES, SERIES, STUDIES
from mcp_catalog.governance.views import RESEARCH_VIEWS, ViewContext, build_view
from mcp_catalog.lint import lint_text
from mcp_catalog.policy import load_policy
from quality.suites.imaging import SERIES_DTYPES, STUDY_DTYPES

KEY = bytes(range(32))
DATE_KEY = bytes(range(32, 64))
UID_KEY = bytes(range(64, 96))
VIEWS = {spec.name: spec for spec in IMAGING_VIEWS}

# The silver tables: instances with the columns the views read; series and studies as the
# silver quality suites hold them.
INSTANCE_SCHEMA = {
    "source_file": pl.String(),
    "sop_instance_uid": pl.String(),
    "series_instance_uid": pl.String(),
    "study_instance_uid": pl.String(),
    "sop_class_uid": pl.String(),
    "sop_class_name": pl.String(),
    "patient_id": pl.String(),
    "accession_number": pl.String(),
    "modality": pl.String(),
    "instance_number": pl.Int64(),
    "number_of_frames": pl.Int64(),
    "rows": pl.Int64(),
    "columns": pl.Int64(),
    "content_date": pl.Date(),
    "transfer_syntax_uid": pl.String(),
    "burned_in_annotation": pl.String(),
    "has_pixels": pl.Boolean(),
    "header_json": pl.String(),
    "person_key": pl.String(),
    "encounter_id": pl.String(),
    "link_status": pl.String(),
}
SERIES_SCHEMA = SERIES_DTYPES
STUDY_SCHEMA = STUDY_DTYPES

CT, US, SR, OT, MR = (
    "1.2.840.10008.5.1.4.1.1.2",
    "1.2.840.10008.5.1.4.1.1.6.1",
    "1.2.840.10008.5.1.4.1.1.88.34",
    "1.2.840.10008.5.1.4.1.1.7",
    "1.2.840.10008.5.1.4.1.1.4",
)
ROOT = "1.2.826.0.1.3680043.8.498."
LE = "1.2.840.10008.1.2.1"


def _frame(schema: dict, rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame([{c: row.get(c) for c in schema} for row in rows], schema=schema)


def _header(sop: str, series: str, study: str, when: str) -> str:
    return json.dumps(
        {
            "00080018": {"vr": "UI", "Value": [sop]},
            "00080020": {"vr": "DA", "Value": [when]},
            "0020000D": {"vr": "UI", "Value": [study]},
            "0020000E": {"vr": "UI", "Value": [series]},
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
            "00100020": {"vr": "LO", "Value": ["MRN0042"]},
            "00291010": {"vr": "LO", "Value": ["vendor secret"]},
        }
    )


def _instance(sop, series, study, person, modality, sop_class, **extra) -> dict:
    row = {
        "source_file": f"batch-001/{sop}",
        "sop_instance_uid": ROOT + sop,
        "series_instance_uid": ROOT + series,
        "study_instance_uid": ROOT + study,
        "sop_class_uid": sop_class,
        "sop_class_name": "Storage",
        "patient_id": "PAT-" + str(person),
        "modality": modality,
        "instance_number": int(sop.split(".")[-1]),
        "rows": 512,
        "columns": 512,
        "content_date": date(2023, 1, 15),
        "transfer_syntax_uid": LE,
        "has_pixels": modality != "SR",
        "header_json": _header(ROOT + sop, ROOT + series, ROOT + study, "20230115"),
        "person_key": person,
        "link_status": "linked",
    }
    return row | extra


ENC = {"encounter_id": "enc-1"}
INSTANCE_ROWS = [
    # study 1 (pk-1, ordered in enc-1): CT x3, US kept (NO) and US excluded (absent), SR,
    # an OT secondary capture (excluded: its series goes)
    _instance("1.1.1", "1.1", "1", "pk-1", "CT", CT, **ENC),
    _instance("1.1.2", "1.1", "1", "pk-1", "CT", CT, **ENC),
    _instance("1.1.3", "1.1", "1", "pk-1", "CT", CT, number_of_frames=5, **ENC),
    _instance("1.2.1", "1.2", "1", "pk-1", "US", US, burned_in_annotation="NO", **ENC),
    _instance("1.2.2", "1.2", "1", "pk-1", "US", US, **ENC),
    _instance("1.3.1", "1.3", "1", "pk-1", "SR", SR, rows=None, columns=None, **ENC),
    _instance("1.4.1", "1.4", "1", "pk-1", "OT", OT, **ENC),
    # study 2 (pk-2, no order): one MR kept, one burned in
    _instance(
        "2.1.1", "2.1", "2", "pk-2", "MR", MR, burned_in_annotation="NO", link_status="no_order"
    ),
    _instance(
        "2.1.2", "2.1", "2", "pk-2", "MR", MR, burned_in_annotation="YES", link_status="no_order"
    ),
    # study 3: pk-3 did not consent
    _instance("3.1.1", "3.1", "3", "pk-3", "CT", CT),
    # study 4: PatientID unknown to the RIS
    _instance("4.1.1", "4.1", "4", None, "CT", CT, link_status="unknown_patient"),
    # study 5: the order names someone else
    _instance("5.1.1", "5.1", "5", "pk-1", "CT", CT, link_status="patient_mismatch"),
    # study 6: two PatientIDs in one study
    _instance("6.1.1", "6.1", "6", "pk-2", "CT", CT),
]


def _series_rows() -> list[dict]:
    rows = {}
    for row in INSTANCE_ROWS:
        series = row["series_instance_uid"]
        rows.setdefault(
            series,
            {
                "series_instance_uid": series,
                "study_instance_uid": row["study_instance_uid"],
                "person_key": row["person_key"],
                "modality": row["modality"],
                "modalities": [row["modality"]],
                "body_part_examined": "HEAD",
                "laterality": None,
                "series_number": int(series.split(".")[-1]),
                "series_description": "Jane's head",
                "series_date": date(2023, 1, 15),
                "manufacturer": "ACME",
                "manufacturer_model_name": "Scanner 9",
                "sop_class_uid": row["sop_class_uid"],
                "sop_class_name": "Storage",
                "rows": 512,
                "columns": 512,
                "pixel_spacing": [0.5, 0.6],
                "slice_thickness": 1.25,
                "contrast_bolus_agent": "Iohexol" if row["modality"] == "CT" else " ",
                # silver counts every instance; the views count kept ones only
                "n_instances": 99,
                "n_frames": 99,
            },
        )
    return list(rows.values())


def _study_rows() -> list[dict]:
    rows = {}
    for row in INSTANCE_ROWS:
        study = row["study_instance_uid"]
        rows.setdefault(
            study,
            {
                "study_instance_uid": study,
                "person_key": row["person_key"],
                "encounter_id": row.get("encounter_id"),
                "link_status": row["link_status"],
                "patient_id": row["patient_id"],
                "study_date": date(2023, 1, 15),
                "body_part_examined": "HEAD",
                "primary_modality": "OT",
                "n_series": 99,
                "n_instances": 99,
                "n_patient_ids": 2 if study == ROOT + "6" else 1,
                "n_persons": 0 if row["person_key"] is None else 1,
            },
        )
    return list(rows.values())


SILVER = {
    INSTANCES: _frame(INSTANCE_SCHEMA, INSTANCE_ROWS),
    SERIES: _frame(SERIES_SCHEMA, _series_rows()),
    STUDIES: _frame(STUDY_SCHEMA, _study_rows()),
}
PEOPLE = ["pk-1", "pk-2", "pk-3"]


def _ctx(uid_key: bytes = UID_KEY, consented=("pk-1", "pk-2")) -> ViewContext:
    return ViewContext(
        pseudonyms=Pseudonyms(key=KEY),
        shifts=date_shifts(PEOPLE, key=DATE_KEY),
        consented=pl.Series("person_key", list(consented), dtype=pl.String()),
        reference_date=date(2026, 1, 1),
        uid_key=uid_key,
    )


def _shift(person: str) -> int:
    shifts = date_shifts(PEOPLE, key=DATE_KEY)
    return shifts.filter(pl.col("person_key") == person).get_column("shift_days").item()


def _u(suffix: str) -> str:
    return remap_uid(ROOT + suffix, UID_KEY)


def _pseudonym(identifier: str, prefix: str) -> str:
    frame = pl.DataFrame({"id": [identifier]})
    return Pseudonyms(key=KEY).apply(frame, "id", prefix=prefix, alias="p").item()


def _person(key: str) -> str:
    return _pseudonym(key, "P")


def _moved(person: str) -> date:
    return date(2023, 1, 15) + timedelta(days=_shift(person))


def _build(name: str, ctx: ViewContext | None = None) -> pl.DataFrame:
    return build_view(VIEWS[name], SILVER, ctx or _ctx())


def test_studies_count_only_kept_instances_of_consented_linked_people():
    expected = pl.DataFrame(
        {
            "study_uid": [_u("1"), _u("2")],
            "person_pseudonym": [_person("pk-1"), _person("pk-2")],
            "encounter_key": [_pseudonym("enc-1", "E"), None],
            "study_date": [_moved("pk-1"), _moved("pk-2")],
            "primary_modality": ["CT", "MR"],
            "modalities": ["CT,SR,US", "MR"],
            "body_part": ["HEAD", "HEAD"],
            "n_series": [3, 1],
            "n_instances": [5, 1],
        }
    ).sort("study_uid")
    assert_frame_equal(_build("imaging_studies"), expected)


def test_series_count_instances_and_frames_over_kept_instances_only():
    view = _build("imaging_series")
    got = view.select("series_uid", "study_uid", "modality", "n_instances", "n_frames")
    expected = pl.DataFrame(
        {
            "series_uid": [_u("1.1"), _u("1.2"), _u("1.3"), _u("2.1")],
            "study_uid": [_u("1"), _u("1"), _u("1"), _u("2")],
            "modality": ["CT", "US", "SR", "MR"],
            "n_instances": [3, 1, 1, 1],
            "n_frames": [7, 1, 0, 1],
        }
    )
    assert_frame_equal(got.sort("series_uid"), expected.sort("series_uid"))
    ct = view.filter(pl.col("series_uid") == _u("1.1")).row(0, named=True)
    assert (ct["pixel_spacing_mm"], ct["slice_thickness_mm"], ct["contrast"]) == (0.5, 1.25, True)
    us = view.filter(pl.col("series_uid") == _u("1.2")).row(0, named=True)
    assert us["contrast"] is False


def test_instances_leave_out_burned_in_unconsented_and_untrusted_links():
    view = _build("imaging_instances")
    assert sorted(view.get_column("sop_uid").to_list()) == sorted(
        _u(s) for s in ("1.1.1", "1.1.2", "1.1.3", "1.2.1", "1.3.1", "2.1.1")
    )
    assert view.columns == [c.name for c in VIEWS["imaging_instances"].columns]


def test_a_revoked_consent_removes_the_person_from_every_imaging_view():
    ctx = _ctx(consented=("pk-2",))
    for name in VIEWS:
        view = _build(name, ctx)
        assert view.get_column("person_pseudonym").unique().to_list() == [_person("pk-2")], name


def test_imaging_dates_move_by_the_same_offset_as_the_persons_ehr_dates():
    encounters = pl.DataFrame(
        [
            {
                "id": "enc-1",
                "person_key": "pk-1",
                "patient_id": "fhir-1",
                "status": "finished",
                "period_start": datetime(2023, 1, 15, 9, tzinfo=UTC),
            }
        ],
        schema={
            "id": pl.String(),
            "person_key": pl.String(),
            **{k: v for k, v in table_schema("encounters").items() if k not in ("id",)},
        },
    )
    research = {spec.name: spec for spec in RESEARCH_VIEWS}
    ehr = build_view(research["encounters"], {"silver/ehr/encounters": encounters}, _ctx())
    ehr_shift = (ehr.get_column("period_start").item().date() - date(2023, 1, 15)).days
    assert ehr_shift == _shift("pk-1") != 0

    studies = _build("imaging_studies").filter(pl.col("study_uid") == _u("1"))
    series = _build("imaging_series").filter(pl.col("study_uid") == _u("1"))
    instances = _build("imaging_instances").filter(pl.col("study_uid") == _u("1"))
    for moved in (
        studies.get_column("study_date"),
        series.get_column("series_date"),
        instances.get_column("content_date"),
    ):
        assert set(moved.to_list()) == {date(2023, 1, 15) + timedelta(days=ehr_shift)}
    assert studies.get_column("encounter_key").item() == ehr.get_column("record_key").item()


def test_uids_agree_across_the_three_views_and_inside_the_headers():
    studies = _build("imaging_studies")
    series = _build("imaging_series")
    instances = _build("imaging_instances")
    assert set(series.get_column("study_uid")) == set(studies.get_column("study_uid"))
    assert set(instances.get_column("series_uid")) == set(series.get_column("series_uid"))
    for row in instances.iter_rows(named=True):
        header = json.loads(row["header_json"])
        assert header["00080018"]["Value"] == [row["sop_uid"]]
        assert header["0020000E"]["Value"] == [row["series_uid"]]
        assert header["0020000D"]["Value"] == [row["study_uid"]]
        assert "00291010" not in header and header["00100010"] == {"vr": "PN"}
        moved = _moved("pk-1" if row["study_uid"] == _u("1") else "pk-2")
        assert header["00080020"]["Value"] == [moved.strftime("%Y%m%d")]
        assert header["00120062"]["Value"] == ["YES"]


def test_no_source_identifier_reaches_any_imaging_view():
    for name in VIEWS:
        text = str(_build(name).rows())
        for secret in ("pk-1", "pk-2", "enc-1", ROOT, "Doe^Jane", "MRN0042", "vendor secret"):
            assert secret not in text, (name, secret)


def test_another_uid_key_gives_other_uids_and_an_empty_key_is_refused():
    other = _build("imaging_studies", _ctx(uid_key=bytes(32)))
    assert not set(other.get_column("study_uid")) & set(
        _build("imaging_studies").get_column("study_uid")
    )
    for name in VIEWS:
        with pytest.raises(ValueError, match="non-empty key"):
            _build(name, _ctx(uid_key=b""))
        with pytest.raises(ValueError, match="non-empty key"):
            _build(name, _ctx(uid_key=b"", consented=()))


def test_a_person_without_a_date_shift_stops_the_build():
    ctx = _ctx()
    ctx = ViewContext(
        pseudonyms=ctx.pseudonyms,
        shifts=ctx.shifts.filter(pl.col("person_key") != "pk-2"),
        consented=ctx.consented,
        reference_date=ctx.reference_date,
        uid_key=ctx.uid_key,
    )
    for name in VIEWS:
        with pytest.raises(ValueError, match="date shifts are missing"):
            _build(name, ctx)


def test_modalities_outside_the_defined_terms_are_withheld():
    silver = dict(SILVER)
    silver[INSTANCES] = SILVER[INSTANCES].with_columns(
        pl.when(pl.col("sop_instance_uid") == ROOT + "2.1.1")
        .then(pl.lit("MR^Jane"))
        .otherwise(pl.col("modality"))
        .alias("modality")
    )
    ctx = _ctx()
    instances = build_view(VIEWS["imaging_instances"], silver, ctx)
    assert instances.filter(pl.col("sop_uid") == _u("2.1.1")).get_column("modality").item() is None
    studies = build_view(VIEWS["imaging_studies"], silver, ctx)
    two = studies.filter(pl.col("study_uid") == _u("2")).row(0, named=True)
    assert (two["modalities"], two["primary_modality"], two["n_instances"]) == (None, None, 1)


@pytest.mark.parametrize("spec", IMAGING_VIEWS, ids=lambda s: s.name)
def test_column_lineage_names_only_columns_of_the_silver_tables(spec):
    schemas = {INSTANCES: INSTANCE_SCHEMA, SERIES: SERIES_SCHEMA, STUDIES: STUDY_SCHEMA}
    lineage = spec.column_lineage()
    assert list(lineage) == [c.name for c in spec.columns]
    for inputs in lineage.values():
        assert inputs and all(column in schemas[table] for table, column in inputs)


def test_imaging_view_text_passes_the_catalog_linter():
    tools = [f"query_{v.name}" for v in (*RESEARCH_VIEWS, *IMAGING_VIEWS)]
    findings = []
    for view in IMAGING_VIEWS:
        findings += lint_text(f"dataset {view.name} title", view.title, tool_names=tools)
        findings += lint_text(f"dataset {view.name}", view.description, tool_names=tools)
        for column in view.columns:
            findings += lint_text(f"column {column.name}", column.description, tool_names=tools)
    assert findings == []


def test_the_policy_classes_every_imaging_column_as_the_view_declares():
    policy = load_policy()
    for spec in IMAGING_VIEWS:
        rules = policy.dataset(spec.audience, spec.name)
        assert rules is not None and rules.consent and rules.consent_scope == "research"
        assert rules.columns == {c.name: c.column_class for c in spec.columns}
        assert rules.min_cell_size == 11
        assert "researcher" in rules.access and "data_steward" in rules.access


def test_empty_silver_tables_give_empty_views_of_the_declared_columns():
    silver = {path: frame.clear() for path, frame in SILVER.items()}
    for spec in IMAGING_VIEWS:
        view = build_view(spec, silver, _ctx())
        assert view.height == 0
        assert view.schema == pl.Schema({c.name: c.dtype for c in spec.columns})
