"""The imaging suites on hand-built frames (from the imaging contract): clean frames pass, and
a frame with one defect fails exactly the expectation that names it."""

import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pydicom
import pytest

from connectors.dicom.schema import instance_schema
from mcp_catalog.governance.deid import Pseudonyms, keyed_hash
from mcp_catalog.governance.dicom_deid import deidentify_header
from mcp_catalog.governance.imaging import IMAGING_VIEWS
from mcp_catalog.governance.views import ViewContext, build_view
from quality.freshness import freshness_status, sla_for
from quality.rejects import REJECT_THRESHOLDS, reject_ratio
from quality.suite_tables import IMAGING_SUITE_TABLES
from quality.suites import SUITE_TABLES, references_for, suite_for
from quality.suites.gold import FORBIDDEN_COLUMNS
from quality.suites.imaging import (
    BATCH_LEDGER_DTYPES,
    BRONZE_INSTANCE_DTYPES,
    DICOM_UID,
    IMAGING_GOLD_VIEWS,
    IMAGING_SUITES,
    ORDER_DTYPES,
    SERIES_DTYPES,
    SILVER_INSTANCE_DTYPES,
    STUDY_DTYPES,
    UID_COLUMNS,
    header_deidentified,
)
from quality.validation import validate_table
from quality.valuesets import MODALITY
from tests.quality.frames import (
    assert_only_these_fail,
    defect_params,
    failed,
    set_row,
    validator,
)

INSTANCES = "bronze/imaging/instances"
ORDERS = "bronze/imaging/orders"
BATCHES = "bronze/imaging/batches"
SILVER_INSTANCES = "silver/imaging/dicom_instances"
SILVER_SERIES = "silver/imaging/dicom_series"
SILVER_STUDIES = "silver/imaging/dicom_studies"
GOLD_STUDIES = "gold/research/imaging_studies"
GOLD_SERIES = "gold/research/imaging_series"
GOLD_INSTANCES = "gold/research/imaging_instances"
EHR_ENCOUNTERS = "silver/ehr/encounters"
GOLD_PATIENTS = "gold/research/patients"
GOLD_ENCOUNTERS = "gold/research/encounters"

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dicom"

INGESTED = datetime(2026, 11, 1, 12, tzinfo=UTC)
WRITTEN = datetime(2026, 10, 31, 18, tzinfo=UTC)
ORDERED = datetime(2025, 2, 27, 9, 30, tzinfo=UTC)

ROOT = "1.2.826.0.1.3680043.8.498."
STUDY_1, STUDY_2, STUDY_3 = ROOT + "1", ROOT + "2", ROOT + "3"
SERIES_1, SERIES_2, SERIES_3 = ROOT + "1.1", ROOT + "2.1", ROOT + "3.1"
SOP_1, SOP_2, SOP_3, SOP_4 = ROOT + "1.1.1", ROOT + "1.1.2", ROOT + "2.1.1", ROOT + "3.1.1"
FRAME_1 = ROOT + "1.9"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
DX_IMAGE = "1.2.840.10008.5.1.4.1.1.1.1"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
PERSON_1 = hashlib.md5(b"person 1").hexdigest()
PERSON_2 = hashlib.md5(b"person 2").hexdigest()
P1, P2 = "P-" + "a1" * 10, "P-" + "b2" * 10
E1 = "E-" + "c3" * 10
ENCOUNTER_1, ENCOUNTER_2 = "enc-0001", "enc-0002"
SHA_ORDERS = hashlib.sha256(b"orders.csv").hexdigest()


def _sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def remapped(uid: str) -> str:
    """A stand-in for the views' keyed UID remapping: ``2.25.`` and a 128-bit integer."""
    return "2.25." + str(int(hashlib.sha256(uid.encode()).hexdigest()[:32], 16))


# --- good frames, written from the contract (sections 1, 3 and 4b) --------------------------


def _raw_header(sop: str, series: str, study: str, modality: str) -> str:
    return json.dumps(
        {
            "00080018": {"vr": "UI", "Value": [sop]},
            "00080060": {"vr": "CS", "Value": [modality]},
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
            "0020000D": {"vr": "UI", "Value": [study]},
            "0020000E": {"vr": "UI", "Value": [series]},
        }
    )


def _instance(**values: object) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(BRONZE_INSTANCE_DTYPES)
    row.update(
        has_preamble=True,
        has_file_meta=True,
        transfer_syntax_uid=EXPLICIT_LE,
        bits_allocated=16,
        bits_stored=12,
        samples_per_pixel=1,
        has_pixels=True,
        n_private_elements=0,
        warnings=[],
        ingested_at=INGESTED,
    )
    row.update(values)
    row["header_json"] = _raw_header(
        str(row["sop_instance_uid"]),
        str(row["series_instance_uid"]),
        str(row["study_instance_uid"]),
        str(row["modality"]),
    )
    return row


def instances() -> pl.DataFrame:
    """Two CT slices of one study (a folder batch), an MR and a DX of a zip batch."""
    ct = {
        "sop_class_uid": CT_IMAGE,
        "sop_class_name": "CT Image Storage",
        "study_instance_uid": STUDY_1,
        "series_instance_uid": SERIES_1,
        "frame_of_reference_uid": FRAME_1,
        "patient_id": "PAC0001",
        "accession_number": "ACC0001",
        "study_date": date(2025, 3, 1),
        "modality": "CT",
        "rows": 512,
        "columns": 512,
        "burned_in_annotation": "NO",
        "batch": "batch-001",
    }
    rows = [
        _instance(
            **ct,
            source_file="batch-001/a1",
            sha256=_sha("a1"),
            size_bytes=2048,
            sop_instance_uid=SOP_1,
            instance_number=1,
        ),
        _instance(
            **ct,
            source_file="batch-001/a2",
            sha256=_sha("a2"),
            size_bytes=2050,
            sop_instance_uid=SOP_2,
            instance_number=2,
        ),
        _instance(
            source_file="batch-002.zip!exam/b1",
            sha256=_sha("b1"),
            size_bytes=4096,
            sop_class_uid=MR_IMAGE,
            sop_instance_uid=SOP_3,
            study_instance_uid=STUDY_2,
            series_instance_uid=SERIES_2,
            patient_id="PAC0002",
            accession_number="ACC0009",
            study_date=date(2025, 4, 2),
            modality="MR",
            rows=256,
            columns=256,
            number_of_frames=3,
            batch="batch-002.zip",
        ),
        _instance(
            source_file="batch-002.zip!exam/b2",
            sha256=_sha("b2"),
            size_bytes=8192,
            sop_class_uid=DX_IMAGE,
            sop_instance_uid=SOP_4,
            study_instance_uid=STUDY_3,
            series_instance_uid=SERIES_3,
            patient_id="PAC9999",
            modality="DX",
            rows=2048,
            columns=2048,
            burned_in_annotation="YES",
            n_private_elements=4,
            batch="batch-002.zip",
        ),
    ]
    return pl.DataFrame(rows, schema=BRONZE_INSTANCE_DTYPES)


def silver_instances() -> pl.DataFrame:
    return instances().drop("ingested_at").with_columns(
        pl.Series("person_key", [PERSON_1, PERSON_1, PERSON_2, None], dtype=pl.String()),
        pl.Series("encounter_id", [ENCOUNTER_1, ENCOUNTER_1, None, None], dtype=pl.String()),
        pl.Series(
            "link_status", ["linked", "linked", "no_order", "unknown_patient"], dtype=pl.String()
        ),
    )


def orders() -> pl.DataFrame:
    rows = [
        ("ACC0001", "PAC0001", "MRN00000101", ENCOUNTER_1, "CT", "24627-2", "CT Chest", ORDERED),
        ("ACC0002", "PAC0002", "MRN00000102", ENCOUNTER_2, "MR", "24590-2", "MR Brain", ORDERED),
    ]
    landed = ("landing/imaging/orders.csv", SHA_ORDERS, INGESTED)
    return pl.DataFrame([(*r, *landed) for r in rows], schema=ORDER_DTYPES, orient="row")


def batches() -> pl.DataFrame:
    rows = [
        ("batch-001", _sha("stamp-001"), _sha("batch-001"), 2, 9000, 2, 0, WRITTEN, INGESTED),
        ("batch-002.zip", _sha("stamp-002"), _sha("batch-002"), 3, 9100, 2, 1, WRITTEN, INGESTED),
    ]
    return pl.DataFrame(rows, schema=BATCH_LEDGER_DTYPES, orient="row")


def silver_series() -> pl.DataFrame:
    def series(**values: object) -> dict[str, object]:
        row: dict[str, object] = dict.fromkeys(SERIES_DTYPES)
        row.update(n_modalities=1, n_burned_in=0, n_excluded=0, has_pixels=True)
        row.update(values)
        return row

    rows = [
        series(
            series_instance_uid=SERIES_1,
            study_instance_uid=STUDY_1,
            person_key=PERSON_1,
            modality="CT",
            modalities=["CT"],
            series_number=1,
            series_date=date(2025, 3, 1),
            sop_class_uid=CT_IMAGE,
            rows=512,
            columns=512,
            pixel_spacing=[0.7, 0.7],
            slice_thickness=1.25,
            n_instances=2,
            n_frames=2,
        ),
        series(
            series_instance_uid=SERIES_2,
            study_instance_uid=STUDY_2,
            person_key=PERSON_2,
            modality="MR",
            modalities=["MR"],
            sop_class_uid=MR_IMAGE,
            rows=256,
            columns=256,
            n_instances=1,
            n_frames=3,
        ),
        series(
            series_instance_uid=SERIES_3,
            study_instance_uid=STUDY_3,
            modality="DX",
            modalities=["DX"],
            sop_class_uid=DX_IMAGE,
            n_instances=1,
            n_frames=1,
            n_burned_in=1,
            n_excluded=1,
        ),
    ]
    return pl.DataFrame(rows, schema=SERIES_DTYPES)


def silver_studies() -> pl.DataFrame:
    rows = [
        (STUDY_1, PERSON_1, ENCOUNTER_1, "linked", "PAC0001", "ACC0001", date(2025, 3, 1)),
        (STUDY_2, PERSON_2, None, "no_order", "PAC0002", "ACC0009", date(2025, 4, 2)),
        (STUDY_3, None, None, "unknown_patient", "PAC9999", None, None),
    ]
    # study_time, study_description, modalities, primary_modality, body_part_examined,
    # n_series, n_instances, n_patient_ids, n_persons
    rest = [
        ("101500", None, ["CT", "SR"], "CT", "CHEST", 1, 2, 1, 1),
        (None, None, ["MR"], "MR", None, 1, 1, 1, 1),
        (None, None, ["DX"], "DX", None, 1, 1, 1, 0),
    ]
    return pl.DataFrame(
        [(*r, *e) for r, e in zip(rows, rest, strict=True)], schema=STUDY_DTYPES, orient="row"
    )


def ehr_encounters() -> pl.DataFrame:
    return pl.DataFrame({"id": [ENCOUNTER_1, ENCOUNTER_2]})


def gold_patients() -> pl.DataFrame:
    return pl.DataFrame({"person_pseudonym": [P1, P2]})


def gold_encounters() -> pl.DataFrame:
    return pl.DataFrame({"record_key": [E1]})


def gold_studies() -> pl.DataFrame:
    schema = {
        "study_uid": pl.String(),
        "person_pseudonym": pl.String(),
        "encounter_key": pl.String(),
        "study_date": pl.Date(),
        "primary_modality": pl.String(),
        "modalities": pl.String(),
        "body_part": pl.String(),
        "n_series": pl.Int64(),
        "n_instances": pl.Int64(),
    }
    rows = [
        (remapped(STUDY_1), P1, E1, date(2025, 2, 19), "CT", "CT,SR", "CHEST", 1, 2),
        (remapped(STUDY_2), P2, None, date(2025, 5, 1), "MR", "MR", None, 1, 1),
    ]
    return pl.DataFrame(rows, schema=schema, orient="row")


def gold_series() -> pl.DataFrame:
    schema = {
        "series_uid": pl.String(),
        "study_uid": pl.String(),
        "person_pseudonym": pl.String(),
        "series_date": pl.Date(),
        "modality": pl.String(),
        "body_part": pl.String(),
        "laterality": pl.String(),
        "series_number": pl.Int64(),
        "manufacturer": pl.String(),
        "manufacturer_model_name": pl.String(),
        "sop_class_name": pl.String(),
        "rows": pl.Int64(),
        "columns": pl.Int64(),
        "pixel_spacing_mm": pl.Float64(),
        "slice_thickness_mm": pl.Float64(),
        "contrast": pl.Boolean(),
        "n_instances": pl.Int64(),
        "n_frames": pl.Int64(),
    }
    rows = [
        (
            *(remapped(SERIES_1), remapped(STUDY_1), P1, date(2025, 2, 19), "CT", "CHEST"),
            *(None, 1, "ACME", "Scanner 64", "CT Image Storage", 512, 512, 0.7, 1.25, False),
            *(2, 2),
        ),
        (
            *(remapped(SERIES_2), remapped(STUDY_2), P2, None, "MR", None),
            *(None, None, None, None, "MR Image Storage", 256, 256, None, None, None),
            *(1, 3),
        ),
    ]
    return pl.DataFrame(rows, schema=schema, orient="row")


def gold_header(sop: str, series: str, study: str, **extra: object) -> dict[str, object]:
    """A header as the views leave it: kind UIDs kept, instance UIDs remapped, the study date
    shifted, identifying attributes emptied or removed, no private tag."""
    header: dict[str, object] = {
        "00020002": {"vr": "UI", "Value": [CT_IMAGE]},
        "00020003": {"vr": "UI", "Value": [remapped(sop)]},
        "00020010": {"vr": "UI", "Value": [EXPLICIT_LE]},
        "00080016": {"vr": "UI", "Value": [CT_IMAGE]},
        "00080018": {"vr": "UI", "Value": [remapped(sop)]},
        "00080020": {"vr": "DA", "Value": ["20250219"]},
        "00080030": {"vr": "TM"},
        "00080050": {"vr": "SH"},
        "00080060": {"vr": "CS", "Value": ["CT"]},
        "00080070": {"vr": "LO", "Value": ["ACME"]},
        "00082218": {
            "vr": "SQ",
            "Value": [
                {
                    "00080100": {"vr": "SH", "Value": ["51185008"]},
                    "00080102": {"vr": "SH", "Value": ["SCT"]},
                }
            ],
        },
        "00100010": {"vr": "PN"},
        "00100020": {"vr": "LO"},
        "00100030": {"vr": "DA"},
        "00120062": {"vr": "CS", "Value": ["YES"]},
        "0020000D": {"vr": "UI", "Value": [remapped(study)]},
        "0020000E": {"vr": "UI", "Value": [remapped(series)]},
        "00200052": {"vr": "UI", "Value": [remapped(FRAME_1)]},
        "00280010": {"vr": "US", "Value": [512]},
    }
    header.update(extra)
    return header


def gold_instances() -> pl.DataFrame:
    schema = {
        "sop_uid": pl.String(),
        "series_uid": pl.String(),
        "study_uid": pl.String(),
        "person_pseudonym": pl.String(),
        "sop_class_name": pl.String(),
        "modality": pl.String(),
        "instance_number": pl.Int64(),
        "number_of_frames": pl.Int64(),
        "rows": pl.Int64(),
        "columns": pl.Int64(),
        "content_date": pl.Date(),
        "transfer_syntax_uid": pl.String(),
        "has_pixels": pl.Boolean(),
        "header_json": pl.String(),
    }
    uids = [(SOP_1, SERIES_1, STUDY_1, P1, 1), (SOP_2, SERIES_1, STUDY_1, P1, 2)]
    rows = [
        (
            *(remapped(sop), remapped(series), remapped(study), person, "CT Image Storage"),
            *("CT", number, None, 512, 512, date(2025, 2, 19), EXPLICIT_LE, True),
            json.dumps(gold_header(sop, series, study)),
        )
        for sop, series, study, person, number in uids
    ]
    mr = (SOP_3, SERIES_2, STUDY_2)
    rows.append(
        (
            *(*(remapped(u) for u in mr), P2, "MR Image Storage", "MR", None, 3, 256, 256),
            *(None, EXPLICIT_LE, True, json.dumps(gold_header(*mr))),
        )
    )
    return pl.DataFrame(rows, schema=schema, orient="row")


GOOD: dict[str, Callable[[], pl.DataFrame]] = {
    INSTANCES: instances,
    ORDERS: orders,
    BATCHES: batches,
    SILVER_INSTANCES: silver_instances,
    SILVER_SERIES: silver_series,
    SILVER_STUDIES: silver_studies,
    GOLD_STUDIES: gold_studies,
    GOLD_SERIES: gold_series,
    GOLD_INSTANCES: gold_instances,
}
REFERENCES: dict[str, Callable[[], pl.DataFrame]] = {
    EHR_ENCOUNTERS: ehr_encounters,
    SILVER_INSTANCES: silver_instances,
    SILVER_SERIES: silver_series,
    SILVER_STUDIES: silver_studies,
    GOLD_PATIENTS: gold_patients,
    GOLD_ENCOUNTERS: gold_encounters,
    GOLD_STUDIES: gold_studies,
    GOLD_SERIES: gold_series,
}


_validate = validator(GOOD, REFERENCES)


def _header(frame: pl.DataFrame, row: int, header: dict[str, object]) -> pl.DataFrame:
    return set_row(frame, row, header_json=json.dumps(header))


def _first_header(**extra: object) -> dict[str, object]:
    return gold_header(SOP_1, SERIES_1, STUDY_1, **extra)


def _without(header: dict[str, object], tag: str) -> dict[str, object]:
    return {k: v for k, v in header.items() if k != tag}


def _dup_first(frame: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([frame, frame.head(1)])


# --- registration and contracts ------------------------------------------------------------


def test_every_imaging_table_is_registered_with_its_suite():
    assert set(IMAGING_SUITE_TABLES) == set(IMAGING_SUITES) == set(GOOD)
    assert set(IMAGING_SUITE_TABLES) <= set(SUITE_TABLES)
    assert len(SUITE_TABLES) == len(set(SUITE_TABLES))
    assert [suite_for(t).table for t in IMAGING_SUITE_TABLES] == list(IMAGING_SUITE_TABLES)


def test_silver_and_gold_suites_read_the_tables_they_point_into():
    assert {t: references_for(t) for t in IMAGING_SUITE_TABLES} == {
        INSTANCES: (),
        ORDERS: (),
        BATCHES: (),
        SILVER_INSTANCES: (EHR_ENCOUNTERS,),
        SILVER_SERIES: (SILVER_STUDIES,),
        SILVER_STUDIES: (EHR_ENCOUNTERS,),
        GOLD_STUDIES: (GOLD_PATIENTS, GOLD_ENCOUNTERS, SILVER_STUDIES),
        GOLD_SERIES: (GOLD_PATIENTS, GOLD_STUDIES, SILVER_SERIES),
        GOLD_INSTANCES: (GOLD_PATIENTS, GOLD_SERIES, SILVER_INSTANCES),
    }


@pytest.mark.parametrize("table", IMAGING_SUITE_TABLES)
def test_each_imaging_suite_checks_its_columns_first_and_describes_every_check_once(table):
    suite = suite_for(table)
    assert suite.checks[0].expectation == "expect_table_columns_to_match_set"
    descriptions = [c.description for c in suite.checks]
    assert len(descriptions) == len(set(descriptions))
    assert set(suite.gx_columns()) <= set(suite.columns)


def test_the_suites_columns_are_the_contract_columns():
    for table, frame in GOOD.items():
        assert suite_for(table).columns == tuple(frame().columns), table
    assert tuple(BRONZE_INSTANCE_DTYPES)[-2:] == ("batch", "ingested_at")
    assert tuple(SILVER_INSTANCE_DTYPES)[-3:] == ("person_key", "encounter_id", "link_status")


def test_the_uid_columns_checked_are_text_columns_of_the_dicom_connector():
    schema = instance_schema()
    assert {c: schema.get(c) for c in UID_COLUMNS} == dict.fromkeys(UID_COLUMNS, pl.String())
    assert tuple(BRONZE_INSTANCE_DTYPES)[: len(schema)] == tuple(schema)


def test_imaging_research_suites_match_the_catalog_views():
    specs = {spec.path: spec for spec in IMAGING_VIEWS}
    assert list(specs) == [f"gold/research/{v.name}" for v in IMAGING_GOLD_VIEWS]
    for view in IMAGING_GOLD_VIEWS:
        spec = specs[f"gold/research/{view.name}"]
        assert view.columns == tuple(c.name for c in spec.columns), view.name


def test_research_views_carry_no_identifier_columns():
    identifiers = {*FORBIDDEN_COLUMNS, "accession_number", "sop_instance_uid", "study_id"}
    for view in IMAGING_GOLD_VIEWS:
        assert not set(view.columns) & identifiers, view.name


def test_the_modality_value_set_holds_the_contracts_modalities():
    assert {"CT", "MR", "DX", "US", "SR", "SEG", "PR", "KO", "OT", "SM"} <= set(MODALITY)


# --- UID syntax ----------------------------------------------------------------------------

VALID_UIDS = (
    "1.2.840.10008.1.2.1",
    "1.2.826.0.1.3680043.8.498.10",
    "2.25.329800735698586629295641978511506172918",
    "0.0",
    "1." + "2" * 62,
)
INVALID_UIDS = (
    "1.2.840.010008",
    "1..2",
    ".1.2",
    "1.2.",
    "1.2a.3",
    "12",
    "1.2.3 ",
    "",
    "1." + "2" * 63,
    "dccc9599087131742838cc1162a630fea87ba9bf61ac09bfda90d4adfa5ddaed",
)


def _uid_rows(uids: tuple[str, ...]) -> pl.DataFrame:
    one = instances().head(1)
    return pl.concat([one] * len(uids)).with_columns(
        pl.Series("sop_instance_uid", uids, dtype=pl.String()),
        pl.Series("source_file", [f"batch-001/u{i}" for i in range(len(uids))]),
    )


def test_valid_uids_pass_in_great_expectations():
    assert failed(_validate(INSTANCES, _uid_rows(VALID_UIDS))) == {}


def test_invalid_uids_fail_in_great_expectations():
    result = _validate(INSTANCES, _uid_rows(INVALID_UIDS))
    assert failed(result) == {
        "sop_instance_uid is a DICOM UID (digits and dots, no leading zeros, at most 64 "
        "characters)": len(INVALID_UIDS)
    }


@pytest.mark.parametrize(("uid", "ok"), [*((u, True) for u in VALID_UIDS[:4]), ("1.02", False)])
def test_the_uid_pattern_allows_zero_only_as_a_whole_component(uid, ok):
    assert bool(re.search(DICOM_UID, uid)) is ok


# --- header_json ---------------------------------------------------------------------------


def _lo(value: str) -> dict[str, object]:
    return {"vr": "LO", "Value": [value]}


def _tm() -> dict[str, object]:
    return {"vr": "TM", "Value": ["101500"]}


def _da() -> dict[str, object]:
    return {"vr": "DA", "Value": ["19700101"]}


def _pn() -> dict[str, object]:
    return {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}


def _nested(item: dict[str, object]) -> dict[str, object]:
    return _first_header(**{"00082218": {"vr": "SQ", "Value": [item]}})


def test_a_header_as_the_views_leave_it_is_deidentified():
    assert header_deidentified(json.dumps(_first_header()))


@pytest.mark.parametrize(
    ("what", "header"),
    [
        ("a private tag", _first_header(**{"00091001": {"vr": "LO"}})),
        ("a private creator", _first_header(**{"00290010": {"vr": "LO", "Value": ["ACME"]}})),
        ("a patient name (Z)", _first_header(**{"00100010": {"vr": "PN", "Value": [{"A": "x"}]}})),
        ("a study time (Z, a time is not shifted)", _first_header(**{"00080030": _tm()})),
        ("a birth date (outside the dates option)", _first_header(**{"00100030": _da()})),
        ("a study description (X)", _first_header(**{"00081030": _lo("CT CHEST")})),
        ("an institution name (X/Z/D: removed)", _first_header(**{"00080080": _lo("General")})),
        ("a patient ID (Z/D: emptied)", _first_header(**{"00100020": _lo("PAC0001")})),
        ("a patient name in a sequence item", _nested({"00100010": _pn()})),
        ("a private tag in a sequence item", _nested({"00191010": _lo("x")})),
        ("an overlay comment (60xx4000)", _first_header(**{"60024000": _lo("Jane")})),
        ("a bulk data URI", _first_header(**{"00281201": {"vr": "OW", "BulkDataURI": "x"}})),
        ("a key that is no tag", _first_header(**{"PatientName": _pn()})),
        ("a list instead of an object", []),
    ],
)
def test_a_header_keeping_what_the_profile_takes_out_is_not_deidentified(what, header):
    assert not header_deidentified(json.dumps(header)), what


def test_shifted_dates_dummies_and_empty_values_are_deidentified():
    header = _first_header(
        **{
            "00080021": _da(),  # Series Date X/D: dates are kept, shifted
            "0008002A": {"vr": "DT", "Value": ["20250219101500"]},
            "00181030": {"vr": "LO"},  # Protocol Name X/D: present without a value
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": ""}]},
            "00189074": {"vr": "DT", "Value": ["20250219"]},  # D: a dummy or shifted value
        }
    )
    assert header_deidentified(json.dumps(header))


def test_text_that_is_not_json_is_not_deidentified():
    assert not header_deidentified("{'00100010': 'Doe'}")


def test_headers_from_the_views_deidentifier_pass():
    raw = json.loads(instances().item(0, "header_json"))
    raw.update({"00091001": _lo("x"), "00100030": _da(), "00081030": _lo("CT CHEST")})
    assert not header_deidentified(json.dumps(raw))
    clean = deidentify_header(raw, shift_days=-10, uid_key=b"k" * 32)
    assert header_deidentified(json.dumps(clean))


def test_real_headers_pass_once_the_views_deidentifier_has_run():
    if not DATA.is_dir():
        pytest.skip(f"the shared DICOM files are not at {DATA}")
    # bad_sequence.dcm has malformed UIDs that pydicom warns about (warnings are errors).
    paths = sorted(p for p in DATA.glob("*.dcm") if p.name != "bad_sequence.dcm")
    assert paths
    for path in paths:
        dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        meta = getattr(dataset, "file_meta", None)
        header = meta.to_json_dict() if meta is not None else {}
        header.update(
            dataset.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=_no_bulk)
        )
        assert not header_deidentified(json.dumps(header)), path.name
        clean = deidentify_header(header, shift_days=7, uid_key=b"k" * 32)
        assert header_deidentified(json.dumps(clean)), path.name


def _no_bulk(_: object) -> str:
    return ""


# --- clean frames pass ---------------------------------------------------------------------


@pytest.mark.parametrize("table", IMAGING_SUITE_TABLES)
def test_each_imaging_suite_passes_on_a_good_frame(table):
    frame = GOOD[table]()
    result = _validate(table, frame)
    assert failed(result) == {}
    assert result.success and result.rows == frame.height
    assert [o.description for o in result.outcomes] == [
        c.description for c in suite_for(table).checks
    ]


def test_the_catalogs_imaging_views_built_from_good_silver_pass_the_gold_suites():
    key = b"pseudonym key for the test......"
    context = ViewContext(
        pseudonyms=Pseudonyms(key=key),
        shifts=pl.DataFrame({"person_key": [PERSON_1, PERSON_2], "shift_days": [-10, 12]}),
        consented=pl.Series([PERSON_1, PERSON_2]),
        reference_date=date(2026, 1, 1),
        uid_key=b"uid key for the test............",
    )
    silver = {
        SILVER_INSTANCES: silver_instances(),
        SILVER_SERIES: silver_series(),
        SILVER_STUDIES: silver_studies(),
    }
    tables = {
        **silver,
        **{spec.path: build_view(spec, silver, context) for spec in IMAGING_VIEWS},
        GOLD_PATIENTS: pl.DataFrame(
            {"person_pseudonym": keyed_hash(key, [PERSON_1, PERSON_2], prefix="P")}
        ),
        GOLD_ENCOUNTERS: pl.DataFrame({"record_key": keyed_hash(key, [ENCOUNTER_1], prefix="E")}),
    }
    # The unknown patient's DX study is not in the views; the other two studies are.
    assert [tables[t].height for t in (GOLD_STUDIES, GOLD_SERIES, GOLD_INSTANCES)] == [2, 2, 3]
    for table in (GOLD_STUDIES, GOLD_SERIES, GOLD_INSTANCES):
        references = {r: tables[r] for r in references_for(table)}
        assert failed(validate_table(table, tables[table], references=references)) == {}, table


@pytest.mark.parametrize("table", IMAGING_SUITE_TABLES)
def test_each_imaging_suite_passes_on_an_empty_table(table):
    assert failed(_validate(table, GOOD[table]().clear())) == {}


# --- one defect, one failed expectation ----------------------------------------------------

Mutation = Callable[[pl.DataFrame], pl.DataFrame]
UID_SYNTAX = "{} is a DICOM UID (digits and dots, no leading zeros, at most 64 characters)"
FUTURE = date.today() + timedelta(days=30)
OTHER_PERSON = "P-" + "d4" * 10

DEFECTS: list[tuple[str, str, Mutation, dict[str, int | None]]] = [
    # bronze instances
    (
        INSTANCES,
        "a file listed twice",
        _dup_first,
        {
            "source_file is unique": 2,
            "no SOP instance arrives twice (silver keeps one row per sop_instance_uid)": 2,
        },
    ),
    (
        INSTANCES,
        "the same instance in two batches (only a warning)",
        lambda f: set_row(f, 2, sop_instance_uid=SOP_1),
        {"no SOP instance arrives twice (silver keeps one row per sop_instance_uid)": 2},
    ),
    (
        INSTANCES,
        "an upper-case hash",
        lambda f: set_row(f, 0, sha256=_sha("a1").upper()),
        {"sha256 is 64 lowercase hex characters": 1},
    ),
    (
        INSTANCES,
        "an empty file",
        lambda f: set_row(f, 1, size_bytes=0),
        {"size_bytes is positive (no empty file is an instance)": 1},
    ),
    (
        INSTANCES,
        "a study UID component with a leading zero",
        lambda f: set_row(f, 2, study_instance_uid="1.2.826.0.1.03"),
        {UID_SYNTAX.format("study_instance_uid"): 1},
    ),
    (
        INSTANCES,
        "a frame of reference UID of 65 characters",
        lambda f: set_row(f, 0, frame_of_reference_uid="1." + "2" * 63),
        {UID_SYNTAX.format("frame_of_reference_uid"): 1},
    ),
    (
        INSTANCES,
        "a transfer syntax UID with a letter",
        lambda f: set_row(f, 3, transfer_syntax_uid="1.2.840.10008.1.2.x"),
        {UID_SYNTAX.format("transfer_syntax_uid"): 1},
    ),
    (
        INSTANCES,
        "a hashed SOP class UID",
        lambda f: set_row(f, 3, sop_class_uid=_sha("class")),
        {UID_SYNTAX.format("sop_class_uid"): 1},
    ),
    (
        INSTANCES,
        "no series UID",
        lambda f: set_row(f, 3, series_instance_uid=None),
        {"series_instance_uid is set on every row": 1},
    ),
    (
        INSTANCES,
        "an image of zero rows",
        lambda f: set_row(f, 0, rows=0),
        {"rows is positive where present": 1},
    ),
    (
        INSTANCES,
        "zero frames",
        lambda f: set_row(f, 2, number_of_frames=0),
        {"number_of_frames is positive where present": 1},
    ),
    (
        INSTANCES,
        "more bits stored than allocated",
        lambda f: set_row(f, 0, bits_stored=17),
        {"bits_stored is at most bits_allocated": 1},
    ),
    (
        INSTANCES,
        "a retired modality (only a warning in bronze)",
        lambda f: set_row(f, 3, modality="DD"),
        {"modality holds only DICOM modality codes": 1},
    ),
    (
        INSTANCES,
        "a burned-in flag in lower case",
        lambda f: set_row(f, 3, burned_in_annotation="yes"),
        {"burned_in_annotation holds only Burned In Annotation (YES or NO) codes": 1},
    ),
    (
        INSTANCES,
        "a study date in the future (only a warning)",
        lambda f: set_row(f, 2, study_date=FUTURE),
        {"study_date is not in the future": 1},
    ),
    (
        INSTANCES,
        "a reader warning (only a warning)",
        lambda f: set_row(f, 1, warnings=["PatientAge does not parse"]),
        {"every file was read without reader warnings (e.g. a value that does not parse)": 1},
    ),
    (
        INSTANCES,
        "a file outside its batch",
        lambda f: set_row(f, 1, source_file="batch-003/a2"),
        {"source_file lies in its batch (starts with the batch's folder or zip name)": 1},
    ),
    (
        INSTANCES,
        "a negative count of private elements",
        lambda f: set_row(f, 0, n_private_elements=-1),
        {"n_private_elements is a count (not negative)": 1},
    ),
    (
        INSTANCES,
        "no header",
        lambda f: set_row(f, 0, header_json=None),
        {"header_json is set on every row": 1},
    ),
    (
        INSTANCES,
        "a size kept as text",
        lambda f: f.with_columns(pl.col("size_bytes").cast(pl.String())),
        {
            "the columns of bronze DICOM instances have their contract dtypes": 4,
            # Text cannot be compared with numbers: GX records a metric error, no count.
            "size_bytes is positive (no empty file is an instance)": None,
        },
    ),
    (
        INSTANCES,
        "an extra column",
        lambda f: f.with_columns(pl.lit("Doe^Jane").alias("patient_name")),
        {"the columns are exactly those of bronze DICOM instances": 1},
    ),
    # orders
    (
        ORDERS,
        "an accession number ordered twice",
        lambda f: set_row(f, 1, accession_number="ACC0001"),
        {"accession_number is unique": 2},
    ),
    (
        ORDERS,
        "no patient id",
        lambda f: set_row(f, 0, patient_id=None),
        {"patient_id is set on every row": 1},
    ),
    (
        ORDERS,
        "no MRN",
        lambda f: set_row(f, 0, mrn=None),
        {"mrn is set on every row": 1},
    ),
    (
        ORDERS,
        "no encounter",
        lambda f: set_row(f, 1, encounter_id=None),
        {"encounter_id is set on every row (else the study links to no visit)": 1},
    ),
    (
        ORDERS,
        "an encounter id with a space",
        lambda f: set_row(f, 1, encounter_id="enc 2"),
        {"encounter_id is a FHIR id (1-64 of A-Z a-z 0-9 - .)": 1},
    ),
    (
        ORDERS,
        "a lab MRN (only a warning)",
        lambda f: set_row(f, 0, mrn="LAB00000101"),
        {"mrn has the EHR's MRN shape (else the order links to nobody)": 1},
    ),
    (
        ORDERS,
        "an unknown modality (only a warning)",
        lambda f: set_row(f, 0, modality="CAT"),
        {"modality holds only DICOM modality codes": 1},
    ),
    (
        ORDERS,
        "an order in the future (only a warning)",
        lambda f: set_row(f, 0, ordered_at=datetime.now(UTC) + timedelta(days=3)),
        {"ordered_at is not in the future": 1},
    ),
    (
        ORDERS,
        "an order time kept as text",
        lambda f: f.with_columns(pl.col("ordered_at").cast(pl.String())),
        {
            "the columns of the RIS orders have their contract dtypes": 2,
            "ordered_at is not in the future": 2,
        },
    ),
    # batch ledger
    (
        BATCHES,
        "a batch listed twice",
        _dup_first,
        {"batch is unique": 2},
    ),
    (
        BATCHES,
        "a file neither written nor rejected",
        lambda f: set_row(f, 1, files=4),
        {"files is instances plus rejected (each file is one instance or one reject)": 1},
    ),
    (
        BATCHES,
        "a negative reject count",
        lambda f: set_row(f, 0, rejected=-1, files=1),
        {"rejected is a count (not negative)": 1},
    ),
    (
        BATCHES,
        "a malformed hash",
        lambda f: set_row(f, 0, content_sha256="abc"),
        {"content_sha256 is 64 lowercase hex characters": 1},
    ),
    (
        BATCHES,
        "no write time",
        lambda f: set_row(f, 0, source_modified_at=None),
        {"source_modified_at is set on every row": 1},
    ),
    # silver instances
    (
        SILVER_INSTANCES,
        "an instance kept twice",
        _dup_first,
        {"source_file is unique": 2, "sop_instance_uid is unique": 2},
    ),
    (
        SILVER_INSTANCES,
        "a linked instance without a person",
        lambda f: set_row(f, 0, person_key=None),
        {"person_key is set wherever link_status is linked": 1},
    ),
    (
        SILVER_INSTANCES,
        "an unknown patient linked to a person",
        lambda f: set_row(f, 3, person_key=PERSON_2),
        {"person_key is empty where the PatientID is unknown (unknown_patient)": 1},
    ),
    (
        SILVER_INSTANCES,
        "an encounter on an unordered instance",
        lambda f: set_row(f, 2, encounter_id=ENCOUNTER_2),
        {"encounter_id is set only where link_status is linked": 1},
    ),
    (
        SILVER_INSTANCES,
        "an encounter the EHR does not have",
        lambda f: set_row(f, 1, encounter_id="enc-9999"),
        {"every encounter_id is the id of a row of silver/ehr/encounters": 1},
    ),
    (
        SILVER_INSTANCES,
        "an unknown link status",
        lambda f: set_row(f, 2, link_status="probable"),
        {"link_status holds only imaging link status codes": 1},
    ),
    (
        SILVER_INSTANCES,
        "no link status",
        lambda f: set_row(f, 2, link_status=None),
        {"link_status is set on every row": 1},
    ),
    (
        SILVER_INSTANCES,
        "a person_key not minted by the crosswalk",
        lambda f: set_row(f, 2, person_key="person-2"),
        {"person_key is a 32-hex random key": 1},
    ),
    (
        SILVER_INSTANCES,
        "a retired modality (an error in silver)",
        lambda f: set_row(f, 3, modality="DD"),
        {"modality holds only DICOM modality codes": 1},
    ),
    (
        SILVER_INSTANCES,
        "a SOP instance UID with a trailing space",
        lambda f: set_row(f, 0, sop_instance_uid=SOP_1 + " "),
        {UID_SYNTAX.format("sop_instance_uid"): 1},
    ),
    # silver series
    (
        SILVER_SERIES,
        "a series whose instances disagree on the modality",
        lambda f: set_row(f, 0, modality=None, modalities=["CT", "PR"], n_modalities=2),
        {"every series has one modality (n_modalities is 1: its instances agree)": 1},
    ),
    (
        SILVER_SERIES,
        "a series listed twice",
        _dup_first,
        {"series_instance_uid is unique": 2},
    ),
    (
        SILVER_SERIES,
        "a series of a study silver does not have",
        lambda f: set_row(f, 1, study_instance_uid=ROOT + "7"),
        {
            "every study_instance_uid is the study_instance_uid of a row of "
            "silver/imaging/dicom_studies": 1
        },
    ),
    (
        SILVER_SERIES,
        "a series without instances",
        lambda f: set_row(f, 1, n_instances=0),
        {"n_instances is positive where present": 1},
    ),
    (
        SILVER_SERIES,
        "more instances excluded than there are",
        lambda f: set_row(f, 2, n_excluded=2),
        {"n_excluded is at most n_instances": 1},
    ),
    (
        SILVER_SERIES,
        "a burned-in instance left in",
        lambda f: set_row(f, 2, n_excluded=0),
        {"n_burned_in is at most n_excluded (burned-in instances are left out)": 1},
    ),
    (
        SILVER_SERIES,
        "an unknown modality",
        lambda f: set_row(f, 1, modality="MRI", modalities=["MRI"]),
        {"modality holds only DICOM modality codes": 1},
    ),
    (
        SILVER_SERIES,
        "a negative frame count",
        lambda f: set_row(f, 1, n_frames=-3),
        {"n_frames is a count (not negative)": 1},
    ),
    (
        SILVER_SERIES,
        "a series UID with an empty component",
        lambda f: set_row(f, 0, series_instance_uid=ROOT + ".1"),
        {UID_SYNTAX.format("series_instance_uid"): 1},
    ),
    # silver studies
    (
        SILVER_STUDIES,
        "a study UID shared by two patients",
        lambda f: set_row(f, 0, n_patient_ids=2),
        {
            "no study names two PatientIDs (n_patient_ids is at most 1: no StudyInstanceUID "
            "is shared across patients)": 1
        },
    ),
    (
        SILVER_STUDIES,
        "a study without a PatientID",
        lambda f: set_row(f, 0, n_patient_ids=0),
        {"every study names a PatientID (else it cannot be linked to a person)": 1},
    ),
    (
        SILVER_STUDIES,
        "a study of two people",
        lambda f: set_row(f, 1, n_persons=2),
        {"every study belongs to at most one person (n_persons is 0 or 1)": 1},
    ),
    (
        SILVER_STUDIES,
        "a study listed twice",
        _dup_first,
        {"study_instance_uid is unique": 2},
    ),
    (
        SILVER_STUDIES,
        "a primary modality the study does not have",
        lambda f: set_row(f, 1, primary_modality="CT"),
        {"primary_modality is one of the study's modalities": 1},
    ),
    (
        SILVER_STUDIES,
        "an unknown primary modality",
        lambda f: set_row(f, 2, primary_modality="XRAY", modalities=["XRAY"]),
        {"primary_modality holds only DICOM modality codes": 1},
    ),
    (
        SILVER_STUDIES,
        "a linked study without a person",
        lambda f: set_row(f, 0, person_key=None),
        {"person_key is set wherever link_status is linked": 1},
    ),
    (
        SILVER_STUDIES,
        "an encounter the EHR does not have",
        lambda f: set_row(f, 0, encounter_id="enc-9999"),
        {"every encounter_id is the id of a row of silver/ehr/encounters": 1},
    ),
    (
        SILVER_STUDIES,
        "more series than instances",
        lambda f: set_row(f, 0, n_series=3),
        {"n_series is at most n_instances": 1},
    ),
    (
        SILVER_STUDIES,
        "a study date in the future (only a warning)",
        lambda f: set_row(f, 0, study_date=FUTURE),
        {"study_date is not in the future": 1},
    ),
    # gold studies
    (
        GOLD_STUDIES,
        "the original study UID",
        lambda f: set_row(f, 0, study_uid=STUDY_1),
        {
            "study_uid is a remapped UID (2.25. and an integer, a valid UID)": 1,
            "no study_uid is an original UID of silver/imaging/dicom_studies": 1,
        },
    ),
    (
        GOLD_STUDIES,
        "a UID under another root",
        lambda f: set_row(f, 1, study_uid=ROOT + "99"),
        {"study_uid is a remapped UID (2.25. and an integer, a valid UID)": 1},
    ),
    (
        GOLD_STUDIES,
        "a study listed twice",
        _dup_first,
        {"study_uid is unique": 2},
    ),
    (
        GOLD_STUDIES,
        "a person outside the patients view",
        lambda f: set_row(f, 1, person_pseudonym=OTHER_PERSON),
        {"every person_pseudonym is the person_pseudonym of a row of gold/research/patients": 1},
    ),
    (
        GOLD_STUDIES,
        "an encounter key of the wrong shape",
        lambda f: set_row(f, 0, encounter_key="E-123"),
        {
            "encounter_key is a keyed pseudonym (E- and 20 hex characters)": 1,
            "every encounter_key is the record_key of a row of gold/research/encounters": 1,
        },
    ),
    (
        GOLD_STUDIES,
        "unsorted modalities",
        lambda f: set_row(f, 0, modalities="SR,CT"),
        {"modalities lists distinct DICOM modality codes, sorted, comma-separated": 1},
    ),
    (
        GOLD_STUDIES,
        "a primary modality the study does not have",
        lambda f: set_row(f, 1, primary_modality="CT"),
        {"primary_modality is one of the study's modalities": 1},
    ),
    (
        GOLD_STUDIES,
        "the person_key column",
        lambda f: f.with_columns(pl.lit(PERSON_1).alias("person_key")),
        {"the columns are exactly those of the research view imaging_studies (no identifiers)": 1},
    ),
    (
        GOLD_STUDIES,
        "an MRN in the body part",
        lambda f: set_row(f, 0, body_part="MRN00000101"),
        {"no text value looks like an MRN": 1},
    ),
    (
        GOLD_STUDIES,
        "a study without series",
        lambda f: set_row(f, 1, n_series=0),
        {"n_series is positive where present": 1},
    ),
    # gold series
    (
        GOLD_SERIES,
        "the original series UID",
        lambda f: set_row(f, 0, series_uid=SERIES_1),
        {
            "series_uid is a remapped UID (2.25. and an integer, a valid UID)": 1,
            "no series_uid is an original UID of silver/imaging/dicom_series": 1,
        },
    ),
    (
        GOLD_SERIES,
        "the original study UID",
        lambda f: set_row(f, 1, study_uid=STUDY_2),
        {
            "study_uid is a remapped UID (2.25. and an integer, a valid UID)": 1,
            "no study_uid is an original UID of silver/imaging/dicom_series": 1,
            "every study_uid is the study_uid of a row of gold/research/imaging_studies": 1,
        },
    ),
    (
        GOLD_SERIES,
        "a series of a study the view left out",
        lambda f: set_row(f, 1, study_uid=remapped(STUDY_3)),
        {"every study_uid is the study_uid of a row of gold/research/imaging_studies": 1},
    ),
    (
        GOLD_SERIES,
        "a pixel spacing of zero",
        lambda f: set_row(f, 0, pixel_spacing_mm=0.0),
        {"pixel_spacing_mm is above zero where present (a row spacing in mm)": 1},
    ),
    (
        GOLD_SERIES,
        "an unknown modality",
        lambda f: set_row(f, 0, modality="CAT"),
        {"modality holds only DICOM modality codes": 1},
    ),
    (
        GOLD_SERIES,
        "a series left empty",
        lambda f: set_row(f, 1, n_instances=0),
        {"n_instances is positive where present": 1},
    ),
    (
        GOLD_SERIES,
        "a series listed twice",
        _dup_first,
        {"series_uid is unique": 2},
    ),
    (
        GOLD_SERIES,
        "a pseudonym of the wrong shape",
        lambda f: set_row(f, 0, person_pseudonym="P-XYZ"),
        {
            "person_pseudonym is a keyed pseudonym (P- and 20 hex characters)": 1,
            "every person_pseudonym is the person_pseudonym of a row of gold/research/patients": 1,
        },
    ),
    # gold instances
    (
        GOLD_INSTANCES,
        "the original SOP instance UID",
        lambda f: set_row(f, 0, sop_uid=SOP_1),
        {
            "sop_uid is a remapped UID (2.25. and an integer, a valid UID)": 1,
            "no sop_uid is an original UID of silver/imaging/dicom_instances": 1,
            "header_json's SOP instance, series and study UIDs are the row's remapped UIDs": 1,
        },
    ),
    (
        GOLD_INSTANCES,
        "an instance listed twice",
        _dup_first,
        {"sop_uid is unique": 2},
    ),
    (
        GOLD_INSTANCES,
        "an instance of a series the view left out",
        lambda f: set_row(f, 2, series_uid=remapped(SERIES_3)),
        {
            "every series_uid is the series_uid of a row of gold/research/imaging_series": 1,
            "header_json's SOP instance, series and study UIDs are the row's remapped UIDs": 1,
        },
    ),
    (
        GOLD_INSTANCES,
        "a private tag in the header",
        lambda f: _header(f, 1, gold_header(SOP_2, SERIES_1, STUDY_1, **{"00091001": _lo("x")})),
        {
            "header_json has no private tag and no value for an attribute the Basic Profile "
            "removes or empties (every action but D and U; dates kept shifted)": 1
        },
    ),
    (
        GOLD_INSTANCES,
        "a patient name in the header",
        lambda f: _header(f, 0, _first_header(**{"00100010": _pn()})),
        {
            "header_json has no private tag and no value for an attribute the Basic Profile "
            "removes or empties (every action but D and U; dates kept shifted)": 1
        },
    ),
    (
        GOLD_INSTANCES,
        "another instance's header",
        lambda f: _header(f, 0, gold_header(SOP_2, SERIES_1, STUDY_1)),
        {"header_json's SOP instance, series and study UIDs are the row's remapped UIDs": 1},
    ),
    (
        GOLD_INSTANCES,
        "a header without its SOP instance UID",
        lambda f: _header(f, 0, _without(_first_header(), "00080018")),
        {"header_json's SOP instance, series and study UIDs are the row's remapped UIDs": 1},
    ),
    (
        GOLD_INSTANCES,
        "the original frame of reference UID in the header",
        lambda f: _header(f, 0, _first_header(**{"00200052": {"vr": "UI", "Value": [FRAME_1]}})),
        {"header_json holds no original UID of silver/imaging/dicom_instances": 1},
    ),
    (
        GOLD_INSTANCES,
        "an original UID deep in a sequence",
        lambda f: _header(f, 2, _nested({"00081155": {"vr": "UI", "Value": [SOP_4]}})),
        {
            "header_json holds no original UID of silver/imaging/dicom_instances": 1,
            "header_json's SOP instance, series and study UIDs are the row's remapped UIDs": 1,
        },
    ),
    (
        GOLD_INSTANCES,
        "a header that is not JSON",
        lambda f: set_row(f, 1, header_json="not json"),
        {
            "header_json has no private tag and no value for an attribute the Basic Profile "
            "removes or empties (every action but D and U; dates kept shifted)": 1,
            "header_json's SOP instance, series and study UIDs are the row's remapped UIDs": 1,
            "header_json holds no original UID of silver/imaging/dicom_instances": 1,
        },
    ),
    (
        GOLD_INSTANCES,
        "an MRN kept in the header",
        lambda f: _header(f, 0, _first_header(**{"00080070": _lo("MRN00000101")})),
        {"no text value looks like an MRN": 1},
    ),
    (
        GOLD_INSTANCES,
        "a malformed transfer syntax UID",
        lambda f: set_row(f, 0, transfer_syntax_uid="1.2.840.10008.1.2.01"),
        {UID_SYNTAX.format("transfer_syntax_uid"): 1},
    ),
    (
        GOLD_INSTANCES,
        "zero frames",
        lambda f: set_row(f, 2, number_of_frames=0),
        {"number_of_frames is positive where present": 1},
    ),
]


@pytest.mark.parametrize(("table", "mutate", "expected"), defect_params(DEFECTS))
def test_a_single_defect_fails_the_expectation_that_names_it(table, mutate, expected):
    assert_only_these_fail(_validate(table, mutate(GOOD[table]())), expected)


def test_the_gold_uid_checks_read_the_silver_originals():
    # The same gold frame against a silver table that holds its UIDs: every one is flagged.
    silver = silver_studies().with_columns(
        pl.col("study_instance_uid").map_elements(remapped, return_dtype=pl.String())
    )
    result = _validate(GOLD_STUDIES, dicom_studies=silver)
    assert failed(result) == {"no study_uid is an original UID of silver/imaging/dicom_studies": 2}


@pytest.mark.parametrize(
    ("table", "description", "severity"),
    [
        (INSTANCES, "modality holds only DICOM modality codes", "warning"),
        (SILVER_INSTANCES, "modality holds only DICOM modality codes", "error"),
        (ORDERS, "modality holds only DICOM modality codes", "warning"),
        (INSTANCES, "study_date is not in the future", "warning"),
        (INSTANCES, UID_SYNTAX.format("sop_instance_uid"), "warning"),
        (GOLD_INSTANCES, UID_SYNTAX.format("transfer_syntax_uid"), "error"),
        (ORDERS, "encounter_id is set on every row (else the study links to no visit)", "warning"),
        (
            SILVER_SERIES,
            "every series has one modality (n_modalities is 1: its instances agree)",
            "error",
        ),
        (
            SILVER_STUDIES,
            "every study belongs to at most one person (n_persons is 0 or 1)",
            "error",
        ),
        (
            GOLD_INSTANCES,
            "header_json holds no original UID of silver/imaging/dicom_instances",
            "error",
        ),
    ],
)
def test_identity_and_privacy_are_errors_and_plausibility_warnings(table, description, severity):
    (check,) = [c for c in suite_for(table).checks if c.description == description]
    assert check.severity == severity


# --- freshness and rejects -----------------------------------------------------------------


@pytest.mark.parametrize(
    "table", [INSTANCES, ORDERS, BATCHES, SILVER_SERIES, GOLD_STUDIES, GOLD_INSTANCES]
)
def test_imaging_tables_expect_a_weekly_batch(table):
    sla = sla_for(table)
    assert sla is not None
    assert (sla.warn_after, sla.fail_after) == (timedelta(days=8), timedelta(days=15))


@pytest.mark.parametrize(
    ("age", "status"),
    [(timedelta(days=7), "fresh"), (timedelta(days=9), "warn"), (timedelta(days=16), "stale")],
)
def test_a_missed_weekly_batch_warns_and_two_are_stale(age, status):
    sla = sla_for(GOLD_SERIES)
    assert sla is not None
    assert freshness_status(INGESTED - age, sla, now=INGESTED) == status


def test_other_research_views_keep_their_daily_sla():
    sla = sla_for("gold/research/encounters")
    assert sla is not None and sla.fail_after == timedelta(days=3)


def _ledger_as_records(ledger: pl.DataFrame) -> pl.DataFrame:
    """The batch ledger in ``reject_ratio``'s shape, as the rejects.py comment says."""
    return ledger.select(
        pl.col("batch").alias("source_file"),
        pl.col("instances").alias("records"),
        pl.col("rejected").alias("rejects"),
    )


@pytest.mark.parametrize(
    ("instances_written", "rejected", "status"),
    [(500, 0, "pass"), (199, 1, "pass"), (97, 3, "warn"), (90, 10, "fail")],
)
def test_the_batch_ledger_tolerates_a_dicomdir_and_fails_a_broken_export(
    instances_written, rejected, status
):
    ledger = batches().with_columns(
        pl.Series("instances", [instances_written, 0]),
        pl.Series("rejected", [rejected, 0]),
    )
    threshold = REJECT_THRESHOLDS[BATCHES]
    result = reject_ratio(_ledger_as_records(ledger), threshold)
    assert result.status == status
    assert result.worst_files == ((("batch-001", instances_written, rejected),) if rejected else ())
