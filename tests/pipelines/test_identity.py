"""The person crosswalk's rules on small frames: the EHR's people, every silo's manifest linked
by the silo's own rule, and the conflicts quarantined instead of guessed."""

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from deltalake import write_deltalake
from polars.testing import assert_frame_equal

from pipelines import crosswalk_links, ehr, genomics, identity, imaging, lab, trials
from pipelines.checks import lake_path
from quality.report import collect_report_data, render_report
from quality.suite_tables import IDENTITY_SUITE_TABLES
from quality.suites import identity as identity_suites
from quality.suites import imaging as imaging_suites
from quality.suites import lab as lab_suites
from quality.suites import suite_for
from quality.suites import trials as trial_suites
from quality.suites.bronze import CROSSWALK_COLUMNS
from quality.validation import validate_table

CONFLICTS_TABLE = identity_suites.CONFLICTS_TABLE
T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
T1 = datetime(2026, 2, 1, 12, tzinfo=UTC)
SHA = "a" * 64
UTC_US = pl.Datetime("us", "UTC")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _patients(*rows: tuple[str, str | None]) -> pl.DataFrame:
    """Bronze patients, one per ``(id, mrn)``, at lines 1, 2, ... of Patient.ndjson."""
    return pl.DataFrame(
        {
            "id": [r[0] for r in rows],
            "mrn": [r[1] for r in rows],
            "source_file": ["Patient.ndjson"] * len(rows),
            "source_locator": [f"line:{n}" for n in range(1, len(rows) + 1)],
            "source_sha256": [SHA] * len(rows),
            "ingested_at": [T0] * len(rows),
        },
        schema={
            "id": pl.String,
            "mrn": pl.String,
            "source_file": pl.String,
            "source_locator": pl.String,
            "source_sha256": pl.String,
            "ingested_at": UTC_US,
        },
    )


def _provenance(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    return frame.with_columns(
        pl.lit(name).alias("source_file"),
        pl.lit(SHA).alias("source_sha256"),
        pl.lit(T0, UTC_US).alias("ingested_at"),
    )


def _lab_index(*rows: tuple[str, str, str]) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema=["site", "lab_patient_id", "mrn"], orient="row")
    return _provenance(frame, "patient_index.csv")


def _samples(*rows: tuple[str, str]) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema=["sample_id", "mrn"], orient="row")
    return _provenance(frame, "samples.csv")


def _orders(*rows: tuple[str, str, str]) -> pl.DataFrame:
    frame = pl.DataFrame(
        rows, schema=["accession_number", "patient_id", "mrn"], orient="row"
    ).with_columns(pl.lit(None, pl.String).alias("encounter_id"))
    return _provenance(frame, "orders.csv")


def _enrolment(*rows: tuple[str, str, str]) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema=["studyid", "usubjid", "mrn"], orient="row")
    return _provenance(frame.with_columns(pl.lit("SITE-A01").alias("site")), "enrolment.csv")


def _person(crosswalk: pl.DataFrame, system: str, kind: str, identifier: str) -> str | None:
    found = crosswalk.filter(
        (pl.col("source_system") == system)
        & (pl.col("identifier_type") == kind)
        & (pl.col("identifier") == identifier)
    )
    assert found.height <= 1
    return found.item(0, "person_key") if found.height else None


def _ehr(patients: pl.DataFrame, crosswalk: pl.DataFrame | None = None):
    rows, conflicts = ehr.crosswalk_update(patients, crosswalk, linked_at=T1)
    return rows, conflicts


def _apply(crosswalk: pl.DataFrame | None, build: identity.CrosswalkBuild) -> pl.DataFrame:
    base = pl.DataFrame(schema=ehr.CROSSWALK_SCHEMA) if crosswalk is None else crosswalk
    return pl.concat([base, build.rows])


# --- EHR ------------------------------------------------------------------------------------


def test_new_patients_become_new_people_with_their_mrns():
    rows, conflicts = _ehr(_patients(("p1", "M1"), ("p2", "M2"), ("p3", None)))
    assert conflicts.height == 0
    assert rows.schema == pl.Schema(ehr.CROSSWALK_SCHEMA)
    assert rows.select("source_system", "identifier_type", "identifier", "link_rule").rows() == [
        ("ehr", "fhir_patient_id", "p1", "ehr_patient"),
        ("ehr", "mrn", "M1", "ehr_patient"),
        ("ehr", "fhir_patient_id", "p2", "ehr_patient"),
        ("ehr", "mrn", "M2", "ehr_patient"),
        ("ehr", "fhir_patient_id", "p3", "ehr_patient"),
    ]
    people = rows.get_column("person_key").to_list()
    assert people[0] == people[1] != people[2] == people[3] != people[4]
    assert all(len(p) == 32 and int(p, 16) >= 0 for p in people)
    assert rows.get_column("linked_at").unique().to_list() == [T1]


def test_a_new_patient_id_whose_mrn_is_linked_joins_that_person():
    first, _ = _ehr(_patients(("p1", "M1")))
    rows, conflicts = _ehr(_patients(("p1", "M1"), ("p9", "M1")), first)
    assert conflicts.height == 0
    assert rows.select("identifier", "person_key", "link_rule").rows() == [
        ("p9", _person(first, "ehr", "mrn", "M1"), "ehr_mrn")
    ]


def test_a_new_patient_id_whose_mrns_belong_to_two_people_is_quarantined_not_linked():
    first, _ = _ehr(_patients(("p1", "M1"), ("p2", "M2")))
    # p9 arrives in two versions: one with p1's MRN, one with p2's.
    later = _patients(("p1", "M1"), ("p2", "M2"), ("p9", "M1"), ("p9", "M2"))
    rows, conflicts = _ehr(later, first)
    assert rows.height == 0
    expected = pl.DataFrame(
        {
            "source_system": ["ehr", "ehr"],
            "identifier_type": ["fhir_patient_id"] * 2,
            "identifier_sha256": [_digest("p9")] * 2,
            "reason": ["claimed_by_two_people"] * 2,
            "source": ["Patient.ndjson"] * 2,
            "locator": ["line:3", "line:4"],
            "source_sha256": [SHA] * 2,
            "ingested_at": [T0] * 2,
        },
        schema=ehr.CONFLICT_SCHEMA,
    )
    assert_frame_equal(conflicts, expected)


def test_an_mrn_already_held_by_another_person_stays_with_that_person_and_is_quarantined():
    first, _ = _ehr(_patients(("p1", "M1"), ("p2", "M2")))
    # p2's record now carries p1's MRN (and a new one): two FHIR patients that are different
    # people hold M1. The new MRN M3 still joins p2's person.
    rows, conflicts = _ehr(_patients(("p1", "M1"), ("p2", "M1"), ("p2", "M3")), first)
    assert rows.select("identifier_type", "identifier", "person_key").rows() == [
        ("mrn", "M3", _person(first, "ehr", "fhir_patient_id", "p2"))
    ]
    assert conflicts.select("identifier_type", "identifier_sha256", "reason", "locator").rows() == [
        ("mrn", _digest("M1"), "mrn_shared_by_two_people", "line:2")
    ]


def test_links_never_move_and_a_rerun_on_the_same_patients_adds_nothing():
    patients = _patients(("p1", "M1"), ("p2", "M2"))
    first, _ = _ehr(patients)
    again, conflicts = _ehr(patients, first)
    assert again.height == conflicts.height == 0


def test_new_crosswalk_rows_still_takes_bare_ids_and_mrns():
    bare = pl.DataFrame({"id": ["p1", "p2"], "mrn": ["M1", "M1"]})
    rows = ehr.new_crosswalk_rows(bare, None, linked_at=T1)
    assert rows.select("identifier", "link_rule").rows() == [
        ("p1", "ehr_patient"),
        ("M1", "ehr_patient"),
        ("p2", "ehr_mrn"),
    ]
    assert rows.get_column("person_key").n_unique() == 1


# --- Manifests ------------------------------------------------------------------------------

PATIENTS = _patients(("p1", "M1"), ("p2", "M2"), ("p3", "M3"))


def _manifests(**frames: pl.DataFrame) -> dict[str, pl.DataFrame]:
    paths = {
        "lab": lab.INDEX_PATH,
        "samples": genomics.SAMPLES_PATH,
        "orders": imaging.ORDERS_PATH,
        "enrolment": trials.ENROLMENT_PATH,
    }
    return {paths[name]: frame for name, frame in frames.items()}


def test_every_manifest_links_its_identifiers_to_the_person_of_their_mrn():
    manifests = _manifests(
        lab=_lab_index(("SITE-A01", "L1", "M1"), ("SITE-B07", "L1", "M2")),
        samples=_samples(
            ("S1", "M3"),
        ),
        orders=_orders(("A1", "D-1", "M1"), ("A2", "D-1", "M1"), ("A3", "D-2", "M2")),
        enrolment=_enrolment(("STUDY-1", "STUDY-1-001", "M2"), ("STUDY-2", "STUDY-1-001", "M3")),
    )
    build = identity.build_crosswalk(PATIENTS, manifests, None, linked_at=T1)
    assert build.conflicts.height == 0
    crosswalk = _apply(None, build)
    person = {mrn: _person(crosswalk, "ehr", "mrn", mrn) for mrn in ("M1", "M2", "M3")}
    silos = build.rows.filter(pl.col("source_system") != "ehr")
    expected = pl.DataFrame(
        [
            ("genomics", "vcf_sample_id", "S1", person["M3"], T1, "sample_manifest_mrn"),
            ("imaging", "dicom_patient_id", "D-1", person["M1"], T1, "ris_order_mrn"),
            ("imaging", "dicom_patient_id", "D-2", person["M2"], T1, "ris_order_mrn"),
            ("lab:SITE-A01", "lab_patient_id", "L1", person["M1"], T1, "lab_index_mrn"),
            ("lab:SITE-B07", "lab_patient_id", "L1", person["M2"], T1, "lab_index_mrn"),
            ("trials:STUDY-1", "usubjid", "STUDY-1-001", person["M2"], T1, "enrolment_mrn"),
            ("trials:STUDY-2", "usubjid", "STUDY-1-001", person["M3"], T1, "enrolment_mrn"),
        ],
        schema=ehr.CROSSWALK_SCHEMA,
        orient="row",
    )
    assert_frame_equal(silos.sort("source_system", "identifier"), expected)
    assert build.new_by_system() == {
        "ehr": 6,
        "genomics": 1,
        "imaging": 2,
        "lab:SITE-A01": 1,
        "lab:SITE-B07": 1,
        "trials:STUDY-1": 1,
        "trials:STUDY-2": 1,
    }
    # The next run over the same manifests adds nothing and quarantines nothing.
    again = identity.build_crosswalk(PATIENTS, manifests, crosswalk, linked_at=T1)
    assert again.rows.height == again.conflicts.height == again.relabelled.height == 0


def test_the_silos_own_link_functions_give_the_crosswalk_s_person():
    manifests = _manifests(
        lab=_lab_index(("SITE-A01", "L1", "M1")),
        samples=_samples(
            ("S1", "M3"),
        ),
        orders=_orders(("A1", "D-1", "M2")),
        enrolment=_enrolment(
            ("STUDY-1", "STUDY-1-001", "M2"),
        ),
    )
    crosswalk = _apply(None, identity.build_crosswalk(PATIENTS, manifests, None, linked_at=T1))
    index, samples, orders, enrolment = manifests.values()
    results = pl.DataFrame({"site": ["SITE-A01"], "patient_id": ["L1"]})
    assert lab.link_results(results, index, crosswalk).item(0, "person_key") == _person(
        crosswalk, "lab:SITE-A01", "lab_patient_id", "L1"
    )
    links = genomics.sample_links(samples, crosswalk)
    assert links.item(0, "person_key") == _person(crosswalk, "genomics", "vcf_sample_id", "S1")
    # An instance of a PatientID without an order of its own accession: its PatientID's person.
    instances = pl.DataFrame({"patient_id": ["D-1"], "accession_number": ["OUTSIDE-9"]})
    linked = imaging.link_instances(instances, orders, crosswalk, None)
    assert linked.item(0, "person_key") == _person(crosswalk, "imaging", "dicom_patient_id", "D-1")
    subjects = pl.DataFrame({"studyid": ["STUDY-1"], "usubjid": ["STUDY-1-001"]})
    assert trials.link_subjects(subjects, enrolment, crosswalk).item(0, "person_key") == (
        _person(crosswalk, "trials:STUDY-1", "usubjid", "STUDY-1-001")
    )


def _conflicts(build: identity.CrosswalkBuild) -> list[tuple[str, str, str, str, str]]:
    return build.conflicts.select(
        "source_system", "identifier_type", "identifier_sha256", "reason", "locator"
    ).rows()


def test_a_manifest_row_whose_mrn_no_patient_holds_is_quarantined_and_not_linked():
    manifests = _manifests(
        lab=_lab_index(("SITE-A01", "L1", "M1"), ("SITE-A01", "L2", "M404")),
        enrolment=_enrolment(
            ("STUDY-1", "STUDY-1-009", "M404"),
        ),
    )
    build = identity.build_crosswalk(PATIENTS, manifests, None, linked_at=T1)
    assert _conflicts(build) == [
        (
            "lab:SITE-A01",
            "lab_patient_id",
            _digest("L2"),
            "unknown_mrn",
            f"sha256(lab_patient_id):{_digest('L2')[:16]}",
        ),
        (
            "trials:STUDY-1",
            "usubjid",
            _digest("STUDY-1-009"),
            "unknown_mrn",
            f"sha256(usubjid):{_digest('STUDY-1-009')[:16]}",
        ),
    ]
    assert build.conflicts.get_column("source").to_list() == ["patient_index.csv", "enrolment.csv"]
    linked = set(build.rows.get_column("identifier").to_list())
    assert "L1" in linked and not {"L2", "STUDY-1-009"} & linked
    assert build.conflict_counts() == {
        "unknown_mrn": 2,
        "claimed_by_two_people": 0,
        "linked_to_another_person": 0,
        "mrn_shared_by_two_people": 0,
    }


def test_a_patient_id_whose_orders_name_two_people_is_quarantined_on_every_order():
    orders = _orders(("A1", "D-1", "M1"), ("A2", "D-1", "M2"), ("A3", "D-2", "M2"))
    build = identity.build_crosswalk(PATIENTS, _manifests(orders=orders), None, linked_at=T1)
    assert _conflicts(build) == [
        (
            "imaging",
            "dicom_patient_id",
            _digest("D-1"),
            "claimed_by_two_people",
            f"sha256(accession_number):{_digest(accession)[:16]}",
        )
        for accession in ("A1", "A2")
    ]
    imaging_rows = build.rows.filter(pl.col("source_system") == "imaging")
    assert imaging_rows.get_column("identifier").to_list() == ["D-2"]
    # The imaging rule leaves the PatientID unlinked too.
    crosswalk = _apply(None, build)
    instances = pl.DataFrame({"patient_id": ["D-1"], "accession_number": ["OUTSIDE-9"]})
    assert imaging.link_instances(instances, orders, crosswalk, None).item(0, "person_key") is None


def test_a_patient_id_with_one_known_person_links_and_its_order_naming_no_one_is_quarantined():
    orders = _orders(("A1", "D-1", "M1"), ("A2", "D-1", "M404"))
    build = identity.build_crosswalk(PATIENTS, _manifests(orders=orders), None, linked_at=T1)
    crosswalk = _apply(None, build)
    assert _person(crosswalk, "imaging", "dicom_patient_id", "D-1") == _person(
        crosswalk, "ehr", "mrn", "M1"
    )
    assert [(c[3], c[4]) for c in _conflicts(build)] == [
        ("unknown_mrn", f"sha256(accession_number):{_digest('A2')[:16]}")
    ]


def test_an_identifier_a_later_manifest_moves_to_another_person_keeps_its_person():
    first_manifests = _manifests(
        samples=_samples(
            ("S1", "M1"),
        ),
        enrolment=_enrolment(
            ("STUDY-1", "U1", "M1"),
        ),
    )
    first = identity.build_crosswalk(PATIENTS, first_manifests, None, linked_at=T0)
    crosswalk = _apply(None, first)
    moved = _manifests(
        samples=_samples(
            ("S1", "M2"),
        ),
        enrolment=_enrolment(
            ("STUDY-1", "U1", "M3"),
        ),
    )
    later = identity.build_crosswalk(PATIENTS, moved, crosswalk, linked_at=T1)
    assert later.rows.height == 0
    assert [(c[0], c[3]) for c in _conflicts(later)] == [
        ("genomics", "linked_to_another_person"),
        ("trials:STUDY-1", "linked_to_another_person"),
    ]
    assert _person(crosswalk, "genomics", "vcf_sample_id", "S1") == _person(
        crosswalk, "ehr", "mrn", "M1"
    )


# --- Silver agrees with the crosswalk ------------------------------------------------------


def _moved_crosswalk() -> tuple[pl.DataFrame, identity.CrosswalkBuild, dict[str, pl.DataFrame]]:
    """A crosswalk linking a lab patient id, a sample, a PatientID and a subject to M1's
    person, then manifests moving each of them to M2's, and the build over those."""
    first = _manifests(
        lab=_lab_index(("SITE-A01", "L1", "M1")),
        samples=_samples(("S1", "M1")),
        orders=_orders(("A1", "D-1", "M1")),
        enrolment=_enrolment(("STUDY-1", "U1", "M1")),
    )
    crosswalk = _apply(None, identity.build_crosswalk(PATIENTS, first, None, linked_at=T0))
    moved = _manifests(
        lab=_lab_index(("SITE-A01", "L1", "M2")),
        samples=_samples(("S1", "M2")),
        orders=_orders(("A1", "D-1", "M2")),
        enrolment=_enrolment(("STUDY-1", "U1", "M2")),
    )
    return crosswalk, identity.build_crosswalk(PATIENTS, moved, crosswalk, linked_at=T1), moved


def test_silver_links_a_moved_identifier_to_its_crosswalk_person_not_the_manifest_s():
    crosswalk, later, moved = _moved_crosswalk()
    assert later.rows.height == 0
    assert {c[3] for c in _conflicts(later)} == {"linked_to_another_person"}
    index, samples, orders, enrolment = moved.values()
    m1, m2 = (_person(crosswalk, "ehr", "mrn", m) for m in ("M1", "M2"))
    results = pl.DataFrame({"site": ["SITE-A01"], "patient_id": ["L1"]})
    instances = pl.DataFrame({"patient_id": ["D-1", "D-1"], "accession_number": ["A1", "A9"]})
    subjects = pl.DataFrame({"studyid": ["STUDY-1"], "usubjid": ["U1"]})
    # The silos' rules alone follow the manifest to M2's person ...
    assert lab.index_links(results, index, crosswalk).item(0, "person_key") == m2
    assert genomics.manifest_links(samples, crosswalk).item(0, "person_key") == m2
    assert imaging.order_links(instances, orders, crosswalk).get_column("person_key").to_list() == [
        m2,
        m2,
    ]
    assert trials.enrolment_links(subjects, enrolment, crosswalk).item(0, "person_key") == m2
    # ... silver keeps the crosswalk's person, whether or not it is told of the conflicts.
    for conflicts in (None, later.conflicts):
        linked = lab.link_results(results, index, crosswalk, conflicts=conflicts)
        assert linked.select("person_key", "link_status").row(0) == (m1, "linked")
        links = genomics.sample_link_statuses(samples, crosswalk, conflicts=conflicts)
        assert links.rows() == [("S1", m1, "linked")]
        assert genomics.sample_links(samples, crosswalk, conflicts=conflicts).rows() == [("S1", m1)]
        images = imaging.link_instances(instances, orders, crosswalk, None, conflicts=conflicts)
        assert images.select("person_key", "link_status").rows() == [
            (m1, "linked"),
            (m1, "no_order"),
        ]
        subject = trials.link_subjects(subjects, enrolment, crosswalk, conflicts=conflicts)
        assert subject.select("person_key", "link_status").row(0) == (m1, "linked")
    assert m1 == _person(crosswalk, "lab:SITE-A01", "lab_patient_id", "L1") != m2


def test_an_order_s_encounter_is_kept_only_for_the_crosswalk_s_person():
    crosswalk, later, moved = _moved_crosswalk()
    m1, m2 = (_person(crosswalk, "ehr", "mrn", m) for m in ("M1", "M2"))
    orders = moved[imaging.ORDERS_PATH].with_columns(pl.lit("E-M2").alias("encounter_id"))
    instances = pl.DataFrame({"patient_id": ["D-1"], "accession_number": ["A1"]})
    encounters = pl.DataFrame({"id": ["E-M2"], "person_key": [m2]})
    linked = imaging.link_instances(
        instances, orders, crosswalk, encounters, conflicts=later.conflicts
    )
    assert linked.select("person_key", "encounter_id", "link_status").row(0) == (
        m1,
        None,
        "linked",
    )


def test_an_identifier_in_conflict_and_not_in_the_crosswalk_is_linked_to_no_one():
    # D-1's orders name two people; S9 is listed by two manifests for two people.
    orders = _orders(("A1", "D-1", "M1"), ("A2", "D-1", "M2"), ("A3", "D-2", "M3"))
    samples = pl.concat(
        [
            _samples(("S9", "M1"), ("S1", "M3")),
            _provenance(pl.DataFrame({"sample_id": ["S9"], "mrn": ["M2"]}), "samples-2.csv"),
        ]
    )
    build = identity.build_crosswalk(
        PATIENTS, _manifests(orders=orders, samples=samples), None, linked_at=T1
    )
    crosswalk = _apply(None, build)
    assert {(c[0], c[3]) for c in _conflicts(build)} == {
        ("imaging", "claimed_by_two_people"),
        ("genomics", "claimed_by_two_people"),
    }
    assert _person(crosswalk, "imaging", "dicom_patient_id", "D-1") is None
    # One conflict per manifest row, so the quarantine's key holds.
    assert build.conflicts.filter(pl.col("source_system") == "genomics").select(
        "source", "reason"
    ).rows() == [
        ("samples-2.csv", "claimed_by_two_people"),
        ("samples.csv", "claimed_by_two_people"),
    ]
    assert _failed(CONFLICTS_TABLE, build.conflicts) == set()
    instances = pl.DataFrame(
        {"patient_id": ["D-1", "D-1", "D-2"], "accession_number": ["A1", "A9", "A3"]}
    )
    encounters = pl.DataFrame(
        {"id": ["E1"], "person_key": [_person(crosswalk, "ehr", "mrn", "M1")]}
    )
    orders = orders.with_columns(pl.lit("E1").alias("encounter_id"))
    # By the RIS rule alone the instance of A1 is its order's person, with its encounter.
    alone = imaging.link_instances(instances, orders, crosswalk, encounters)
    assert alone.select("link_status", "encounter_id").row(0) == ("linked", "E1")
    linked = imaging.link_instances(
        instances, orders, crosswalk, encounters, conflicts=build.conflicts
    )
    assert linked.select("person_key", "encounter_id", "link_status").rows() == [
        (None, None, "identity_conflict"),
        (None, None, "identity_conflict"),
        (_person(crosswalk, "imaging", "dicom_patient_id", "D-2"), None, "linked"),
    ]
    links = genomics.sample_link_statuses(samples, crosswalk, conflicts=build.conflicts)
    assert links.rows() == [
        ("S1", _person(crosswalk, "genomics", "vcf_sample_id", "S1"), "linked"),
        ("S9", None, "identity_conflict"),
        ("S9", None, "identity_conflict"),
    ]


def _conflict(system: str, kind: str, identifier: str, reason: str) -> pl.DataFrame:
    return pl.DataFrame(
        [(system, kind, _digest(identifier), reason, "index.csv", "sha256(x):0", SHA, T0)],
        schema=ehr.CONFLICT_SCHEMA,
        orient="row",
    )


def test_lab_and_trial_rows_in_undecided_conflict_are_unlinked_and_unknown_mrn_stays():
    manifests = _manifests(
        lab=_lab_index(("SITE-A01", "L1", "M1"), ("SITE-A01", "L2", "M404")),
        enrolment=_enrolment(("STUDY-1", "U1", "M1"), ("STUDY-1", "U2", "M404")),
    )
    build = identity.build_crosswalk(PATIENTS, manifests, None, linked_at=T1)
    crosswalk = _apply(None, build)
    m1 = _person(crosswalk, "ehr", "mrn", "M1")
    # The crosswalk holds L1 and U1; the quarantine holds L2 and U2 as unknown_mrn. A lab
    # patient id and a subject the crosswalk never linked are undecided: which person they
    # are is quarantined, as a manifest of two people would leave them.
    conflicts = pl.concat(
        [
            build.conflicts,
            _conflict("lab:SITE-A01", "lab_patient_id", "L3", "claimed_by_two_people"),
            _conflict("lab:SITE-B07", "lab_patient_id", "L1", "claimed_by_two_people"),
            _conflict("trials:STUDY-1", "usubjid", "U3", "claimed_by_two_people"),
            # A link that stands: the crosswalk's row wins over its conflict.
            _conflict("trials:STUDY-1", "usubjid", "U1", "linked_to_another_person"),
        ]
    )
    index = pl.concat(
        [
            manifests[lab.INDEX_PATH],
            _lab_index(("SITE-A01", "L3", "M1"), ("SITE-B07", "L1", "M1")),
        ]
    )
    results = pl.DataFrame(
        {
            "site": ["SITE-A01", "SITE-A01", "SITE-A01", "SITE-B07", "SITE-A01"],
            "patient_id": ["L1", "L2", "L3", "L1", "L4"],
        }
    )
    linked = lab.link_results(results, index, crosswalk, conflicts=conflicts)
    assert linked.select("person_key", "link_status").rows() == [
        (m1, "linked"),
        (None, "unknown_mrn"),
        (None, "identity_conflict"),
        (None, "identity_conflict"),
        (None, "unknown_patient"),
    ]
    enrolment = pl.concat([manifests[trials.ENROLMENT_PATH], _enrolment(("STUDY-1", "U3", "M1"))])
    subjects = pl.DataFrame({"studyid": ["STUDY-1"] * 4, "usubjid": ["U1", "U2", "U3", "U4"]})
    linked = trials.link_subjects(subjects, enrolment, crosswalk, conflicts=conflicts)
    assert linked.select("person_key", "link_status").rows() == [
        (m1, "linked"),
        (None, "unknown_mrn"),
        (None, "identity_conflict"),
        (None, "not_enrolled"),
    ]


def test_an_identifier_its_index_no_longer_lists_stays_unlinked_whatever_the_crosswalk_holds():
    crosswalk, _, _ = _moved_crosswalk()
    assert _person(crosswalk, "lab:SITE-A01", "lab_patient_id", "L1") is not None
    # Every manifest now lists other identifiers only (its lines removed, or quarantined when
    # read): the silos' sources no longer vouch for L1, S1, D-1 or U1.
    index = _lab_index(("SITE-A01", "L2", "M2"))
    results = pl.DataFrame({"site": ["SITE-A01"], "patient_id": ["L1"]})
    assert lab.link_results(results, index, crosswalk).select(
        "person_key", "link_status"
    ).rows() == [(None, "unknown_patient")]
    enrolment = _enrolment(("STUDY-1", "U2", "M2"))
    subjects = pl.DataFrame({"studyid": ["STUDY-1"], "usubjid": ["U1"]})
    linked = trials.link_subjects(subjects, enrolment, crosswalk)
    assert linked.select("person_key", "link_status").rows() == [(None, "not_enrolled")]
    assert genomics.sample_links(_samples(("S2", "M2")), crosswalk).get_column(
        "sample_id"
    ).to_list() == ["S2"]
    orders = _orders(("A2", "D-2", "M2"))
    instances = pl.DataFrame({"patient_id": ["D-1", "D-1"], "accession_number": ["A1", "A2"]})
    linked = imaging.link_instances(instances, orders, crosswalk, None)
    assert linked.select("person_key", "link_status").rows() == [
        (None, "unknown_patient"),
        (None, "patient_mismatch"),
    ]


def test_a_crosswalk_row_of_another_source_system_does_not_link_a_silver_row():
    manifests = _manifests(lab=_lab_index(("SITE-A01", "L1", "M1")))
    crosswalk = _apply(None, identity.build_crosswalk(PATIENTS, manifests, None, linked_at=T1))
    # SITE-B07's L1 is another patient: its index names M2, and the crosswalk's L1 is A01's.
    index = _lab_index(("SITE-A01", "L1", "M1"), ("SITE-B07", "L1", "M2"))
    results = pl.DataFrame({"site": ["SITE-B07"], "patient_id": ["L1"]})
    assert lab.link_results(results, index, crosswalk).item(0, "person_key") == _person(
        crosswalk, "ehr", "mrn", "M2"
    )


def test_silver_reads_no_conflicts_before_the_crosswalk_wrote_its_quarantine(tmp_path: Path):
    from pipelines.lake import Lake

    lake = Lake(tmp_path / "lake")
    assert crosswalk_links.read_conflicts(lake).schema == pl.Schema(ehr.CONFLICT_SCHEMA)
    conflicts = _conflict("imaging", "dicom_patient_id", "D-1", "claimed_by_two_people")
    write_deltalake(lake.uri(identity.CONFLICTS_PATH), conflicts.to_arrow())
    assert_frame_equal(crosswalk_links.read_conflicts(lake), conflicts)


def test_each_silo_s_link_statuses_name_identity_conflict_as_its_suite_does():
    assert crosswalk_links.IDENTITY_CONFLICT == "identity_conflict"
    assert crosswalk_links.UNDECIDED_REASONS == (
        "claimed_by_two_people",
        "linked_to_another_person",
        "mrn_shared_by_two_people",
    )
    for statuses in (lab.LINK_STATUSES, trials.LINK_STATUSES, imaging.LINK_STATUSES):
        assert statuses[-1] == crosswalk_links.IDENTITY_CONFLICT
    assert genomics.LINK_STATUSES == ("linked", "unknown_mrn", "identity_conflict")
    assert lab_suites.LINK_STATUS == lab.LINK_STATUSES
    assert trial_suites.LINK_STATUS == trials.LINK_STATUSES
    assert imaging_suites.LINK_STATUS == imaging.LINK_STATUSES


def test_the_imaging_suite_refuses_a_person_on_an_instance_in_identity_conflict():
    silver = imaging_suites.SILVER_INSTANCE_DTYPES
    person = "0" * 32
    row = {name: None for name in silver}
    frame = pl.DataFrame(
        [
            {**row, "sop_instance_uid": "1.2.3", "link_status": "identity_conflict"},
            {**row, "sop_instance_uid": "1.2.4", "link_status": "identity_conflict"},
        ],
        schema=silver,
    ).with_columns(
        pl.Series("person_key", [None, person], dtype=pl.String()),
    )
    failed = {
        o.description: o.unexpected_count
        for o in validate_table(
            "silver/imaging/dicom_instances",
            frame,
            references={"silver/ehr/encounters": pl.DataFrame(schema={"id": pl.String()})},
        ).outcomes
        if not o.success
    }
    assert (
        failed.get(
            "person_key is empty where the PatientID's identity is in conflict (identity_conflict)"
        )
        == 1
    )
    assert not [d for d in failed if "link_status" in d and "identity" not in d]


def test_conflicts_hold_digests_and_locators_never_values():
    manifests = _manifests(
        lab=_lab_index(
            ("SITE-A01", "LAB00012345", "MRN00000404"),
        ),
        orders=_orders(("ACC0001", "PID-0001", "MRN00000001"), ("ACC0002", "PID-0001", "M2")),
    )
    patients = _patients(("p1", "MRN00000001"), ("p2", "M2"))
    build = identity.build_crosswalk(patients, manifests, None, linked_at=T1)
    assert build.conflicts.height == 3
    values = {"LAB00012345", "MRN00000404", "ACC0001", "ACC0002", "PID-0001", "MRN00000001"}
    cells = " ".join(str(v) for row in build.conflicts.rows() for v in row)
    assert not [v for v in values if v in cells]


def test_empty_manifests_and_none_at_all_link_only_the_ehr():
    empty = _manifests(
        lab=lab.empty_index(),
        samples=pl.DataFrame(schema=genomics.SAMPLES_TABLE_COLUMNS),
        orders=pl.DataFrame(schema=imaging.ORDERS_TABLE_COLUMNS),
        enrolment=trials.empty_enrolment(),
    )
    for manifests in (empty, {}):
        build = identity.build_crosswalk(PATIENTS, manifests, None, linked_at=T1)
        assert build.new_by_system() == {"ehr": 6}
        assert build.conflicts.schema == pl.Schema(ehr.CONFLICT_SCHEMA)


def test_a_path_that_is_not_an_identity_manifest_is_refused():
    with pytest.raises(ValueError, match="bronze/lab/results are not identity manifests"):
        identity.build_crosswalk(
            PATIENTS, {lab.RESULTS_PATH: lab.empty_index()}, None, linked_at=T1
        )


def test_a_crosswalk_written_before_link_rules_gets_the_rule_of_each_identifier_type():
    old = pl.DataFrame(
        {
            "source_system": ["ehr", "ehr"],
            "identifier_type": ["fhir_patient_id", "mrn"],
            "identifier": ["p1", "M1"],
            "person_key": ["0" * 32, "0" * 32],
            "linked_at": [T0, T0],
        },
        schema={k: v for k, v in ehr.CROSSWALK_SCHEMA.items() if k != "link_rule"},
    )
    filled = identity.with_link_rules(old)
    assert filled.get_column("link_rule").to_list() == ["ehr_patient", "ehr_patient"]
    build = identity.build_crosswalk(PATIENTS.head(1), {}, old, linked_at=T1)
    assert build.rows.height == 0  # p1 and M1 are known; nothing moves
    partly = filled.with_columns(
        pl.when(pl.col("identifier") == "M1")
        .then(None)
        .otherwise(pl.col("link_rule"))
        .alias("link_rule")
    )
    relabelled = identity.build_crosswalk(PATIENTS.head(1), {}, partly, linked_at=T1).relabelled
    assert relabelled.select("identifier", "link_rule", "linked_at").rows() == [
        ("M1", "ehr_patient", T0)
    ]
    with pytest.raises(ValueError, match="identifier types without a link rule"):
        identity.with_link_rules(old.with_columns(pl.lit("passport").alias("identifier_type")))


# --- Suites ---------------------------------------------------------------------------------


def test_the_suites_restate_the_crosswalk_contract():
    assert tuple(ehr.CROSSWALK_SCHEMA) == CROSSWALK_COLUMNS
    assert tuple(ehr.CONFLICT_SCHEMA) == identity_suites.CONFLICT_COLUMNS
    assert tuple(ehr.CONFLICT_REASONS) == identity_suites.CONFLICT_REASONS
    assert set(identity_suites.LINK_RULES) == set(ehr.LINK_RULES)
    assert set(identity_suites.IDENTIFIER_TYPES) == set(identity.IDENTIFIER_TYPES)
    for kind, rule in identity.RULE_OF_TYPE.items():
        assert rule in identity_suites.RULES_OF_TYPE[kind]
    assert identity_suites.CONFLICTS_PATH == identity.CONFLICTS_PATH
    assert suite_for(identity_suites.CONFLICTS_TABLE).table == identity_suites.CONFLICTS_TABLE
    assert lake_path(identity_suites.CONFLICTS_TABLE) == identity.CONFLICTS_PATH
    assert set(identity_suites.IDENTITY_SUITES) == set(IDENTITY_SUITE_TABLES)


def _failed(table: str, frame: pl.DataFrame) -> set[str]:
    return {o.description for o in validate_table(table, frame).outcomes if not o.success}


def test_the_crosswalk_and_quarantine_suites_pass_on_a_build_and_catch_broken_rows():
    manifests = _manifests(
        lab=_lab_index(("SITE-A01", "L1", "M1"), ("SITE-A01", "L2", "M404")),
        orders=_orders(("A1", "D-1", "M1"), ("A2", "D-1", "M2")),
    )
    build = identity.build_crosswalk(PATIENTS, manifests, None, linked_at=T1)
    crosswalk = _apply(None, build)
    assert _failed("restricted/person_crosswalk", crosswalk) == set()
    assert _failed(CONFLICTS_TABLE, build.conflicts) == set()

    stranger = crosswalk.with_columns(
        pl.when(pl.col("identifier") == "L1")
        .then(pl.lit("f" * 32))
        .otherwise(pl.col("person_key"))
        .alias("person_key"),
        pl.when(pl.col("identifier") == "M1")
        .then(pl.lit("lab_index_mrn"))
        .otherwise(pl.col("link_rule"))
        .alias("link_rule"),
    )
    assert _failed("restricted/person_crosswalk", stranger) == {
        "every person_key is a person of the EHR (other silos link through its MRNs)",
        "each row's link rule is one that links its identifier type",
    }
    leaked = build.conflicts.with_columns(
        pl.lit("L2").alias("identifier_sha256"), pl.lit("guessed").alias("reason")
    )
    assert _failed(CONFLICTS_TABLE, leaked) == {
        "identifier_sha256 is 64 lowercase hex characters",
        "reason holds only identity conflict codes",
    }


# --- Report ---------------------------------------------------------------------------------


def test_the_report_counts_identities_per_system_and_conflicts_per_reason_only(tmp_path: Path):
    patients = _patients(
        ("patient-0001", "MRN00000001"),
        ("patient-0002", "MRN00000002"),
        ("patient-0003", "MRN00000003"),
    )
    manifests = _manifests(
        lab=_lab_index(
            ("SITE-A01", "LAB00012345", "MRN00000001"), ("SITE-A01", "LAB00099999", "MRN00000404")
        ),
        orders=_orders(
            ("ACC0001", "PID-0001", "MRN00000001"), ("ACC0002", "PID-0001", "MRN00000002")
        ),
    )
    build = identity.build_crosswalk(patients, manifests, None, linked_at=T1)
    lake = tmp_path / "lake"
    write_deltalake(str(lake / "restricted/person_crosswalk"), _apply(None, build).to_arrow())
    write_deltalake(str(lake / identity.CONFLICTS_PATH), build.conflicts.to_arrow())
    data = collect_report_data(lake, now=T1)
    found = data.identity
    assert found is not None and found.crosswalk_found and found.conflicts_found
    assert found.people == 3
    assert [(s.source_system, s.identifier_type, s.linked, s.conflicts) for s in found.systems] == [
        ("ehr", "fhir_patient_id", 3, 0),
        ("ehr", "mrn", 3, 0),
        ("lab:SITE-A01", "lab_patient_id", 1, 1),
        ("imaging", "dicom_patient_id", 0, 2),
    ]
    assert [(c.source_system, c.reason, c.rows) for c in found.conflicts] == [
        ("imaging", "claimed_by_two_people", 2),
        ("lab:SITE-A01", "unknown_mrn", 1),
    ]
    page = render_report(data, tmp_path / "report").read_text(encoding="utf-8")
    assert 'id="identity"' in page and "MRN held by no EHR patient" in page
    identifiers = _apply(None, build).get_column("identifier").to_list()
    for value in (*identifiers, "LAB00099999", "PID-0001", "ACC0001", "MRN00000404"):
        assert value not in page


def test_the_report_says_when_the_lake_has_no_crosswalk_yet(tmp_path: Path):
    lake = tmp_path / "lake"
    write_deltalake(str(lake / "bronze/ehr/files"), pl.DataFrame({"source_file": ["a"]}).to_arrow())
    data = collect_report_data(lake, now=T1)
    assert data.identity is None
    page = render_report(data, tmp_path / "report").read_text(encoding="utf-8")
    assert "Identity linkage: not yet recorded" in page


def test_a_crosswalk_without_its_columns_is_noted_not_counted(tmp_path: Path):
    lake = tmp_path / "lake"
    write_deltalake(
        str(lake / "restricted/person_crosswalk"), pl.DataFrame({"person_key": ["k1"]}).to_arrow()
    )
    data = collect_report_data(lake, now=T1)
    assert data.identity is not None and not data.identity.crosswalk_found
    assert any("lacks columns ['identifier_type', 'source_system']" in n for n in data.notes)
    page = render_report(data, tmp_path / "report").read_text(encoding="utf-8")
    assert "Identity linkage" in page


@pytest.mark.parametrize(
    ("system", "valid"),
    [
        ("lab:NIST Lab Facility", True),  # an HL7 sending facility, as a real feed names it
        ("lab:SITE-A01", True),
        ("trials:CDISCPILOT01", True),
        ("imaging", True),
        ("lab:", False),
        ("lab: SITE", False),
        ("lab:SITE\n", False),
        ("pacs", False),
    ],
)
def test_source_systems_are_named_as_their_feeds_name_them(system: str, valid: bool):
    from quality.suites.identity import SOURCE_SYSTEM

    frame = pl.DataFrame({"source_system": [system]})
    assert frame.select(pl.col("source_system").str.contains(SOURCE_SYSTEM)).item() is valid
