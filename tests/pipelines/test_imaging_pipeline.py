"""End to end: landed DICOM batches (a folder and a zip) and the RIS order export -> bronze
(one partition per batch) -> silver instances, series and studies linked to people and EHR
encounters -> de-identified research views served through MCP."""

import json
import zipfile
from datetime import UTC, datetime

import dagster as dg
import polars as pl
import pydicom
import pytest

from connectors.synth import build_people
from mcp_catalog.governance.consent import consented_people
from mcp_catalog.governance.dicom_deid import excluded_expr, remap_uid
from mcp_catalog.governance.keys import load_keys
from pipelines import imaging
from pipelines.defs.imaging.assets import dicom_batches, imaging_landing_sensor
from pipelines.lake import Lake
from pipelines.landing import sha256_file
from pipelines.resources import LandingResource
from quality.dicom_profile import basic_profile
from tests.pipelines.conftest import PATIENTS, SEED, call_tool, profiled_values

GOLD = {
    "studies": "gold/research/imaging_studies",
    "series": "gold/research/imaging_series",
    "instances": "gold/research/imaging_instances",
}


def _files_on_disk(batch) -> int:
    if batch.is_file():
        with zipfile.ZipFile(batch) as archive:
            return sum(1 for info in archive.infolist() if not info.is_dir())
    return sum(1 for p in batch.rglob("*") if p.is_file())


def _consented(lake: Lake) -> set[str]:
    consents = lake.read("silver/consent/consents")
    return set(consented_people(consents, as_of=datetime.now(UTC)).to_list())


def test_every_landed_batch_is_read_into_bronze_file_by_file(materialised_lake):
    lake = Lake(materialised_lake.root)
    folder = materialised_lake.landing / "imaging"
    batches = imaging.scan_batches(folder)
    assert {b.name for b in batches} == {"batch-001", "batch-002.zip"}
    ledger = {row["batch"]: row for row in lake.read(imaging.BATCHES_PATH).iter_rows(named=True)}
    assert set(ledger) == {b.name for b in batches}
    bronze = lake.read(imaging.INSTANCES_PATH)
    for batch in batches:
        row = ledger[batch.name]
        assert row["files"] == _files_on_disk(batch) > 0
        assert row["instances"] == row["files"] and row["rejected"] == 0
        assert bronze.filter(pl.col("batch") == batch.name).height == row["instances"]
    assert bronze.get_column("source_file").is_unique().all()
    # The file hash is the hash of the bytes on disk.
    sample = bronze.filter(pl.col("batch") == "batch-001").row(0, named=True)
    path = folder / sample["source_file"]
    assert pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID == sample[
        "sop_instance_uid"
    ]
    assert sha256_file(path) == sample["sha256"]
    assert lake.read(imaging.REJECTS_PATH).height == 0


def test_silver_instances_belong_to_the_person_the_generator_imaged(materialised_lake):
    lake = Lake(materialised_lake.root)
    silver = lake.read(imaging.SILVER_INSTANCES_PATH)
    people = {p.dicom_patient_id: p for p in build_people(PATIENTS, SEED)}
    crosswalk = lake.read("restricted/person_crosswalk").filter(
        pl.col("identifier_type") == "mrn"
    )
    person_of_mrn = dict(crosswalk.select("identifier", "person_key").iter_rows())
    statuses = set(silver.get_column("link_status"))
    assert {"linked", "no_order", "unknown_patient"} <= statuses
    for row in silver.iter_rows(named=True):
        person = people.get(row["patient_id"])
        if row["link_status"] == "unknown_patient":
            assert row["person_key"] is None and row["encounter_id"] is None
            continue
        assert person is not None, "a linked instance names a PatientID nobody has"
        assert row["person_key"] == person_of_mrn[person.mrn]
        if row["link_status"] == "no_order":
            assert row["encounter_id"] is None
    encounters = lake.read("silver/ehr/encounters").select(
        pl.col("id").alias("encounter_id"), pl.col("person_key").alias("encounter_person")
    )
    linked = silver.filter(pl.col("link_status") == "linked")
    joined = linked.join(encounters, on="encounter_id", how="left")
    assert joined.get_column("encounter_id").null_count() == 0
    assert (joined.get_column("encounter_person") == joined.get_column("person_key")).all()


def test_series_and_studies_summarise_their_instances(materialised_lake):
    lake = Lake(materialised_lake.root)
    instances = lake.read(imaging.SILVER_INSTANCES_PATH)
    series = lake.read(imaging.SILVER_SERIES_PATH)
    studies = lake.read(imaging.SILVER_STUDIES_PATH)
    per_series = dict(instances.group_by("series_instance_uid").len().iter_rows())
    assert dict(series.select("series_instance_uid", "n_instances").iter_rows()) == per_series
    per_study = instances.group_by("study_instance_uid").agg(
        pl.len().alias("n_instances"), pl.col("series_instance_uid").n_unique().alias("n_series")
    )
    got = studies.select("study_instance_uid", "n_instances", "n_series").sort(
        "study_instance_uid"
    )
    assert got.rows() == per_study.sort("study_instance_uid").cast(got.schema).rows()
    assert set(studies.get_column("n_patient_ids")) == {1}
    assert set(series.get_column("n_modalities")) == {1}
    assert {"CT", "MR", "SR"} <= set(series.get_column("modality"))
    assert series.get_column("n_frames").max() > series.get_column("n_instances").max() or (
        instances.get_column("number_of_frames").max() > 1
    )


def test_research_views_hold_consented_linked_people_without_burned_in_images(
    materialised_lake,
):
    lake = Lake(materialised_lake.root)
    silver = lake.read(imaging.SILVER_INSTANCES_PATH)
    consented = _consented(lake)
    kept = silver.filter(
        pl.col("person_key").is_in(list(consented)), ~excluded_expr().fill_null(False)
    )
    assert silver.filter(excluded_expr().fill_null(False)).height > 0, "no burned-in fixture"
    gold_instances = lake.read(GOLD["instances"])
    assert gold_instances.height == kept.height > 0
    patients = set(lake.read("gold/research/patients").get_column("person_pseudonym"))
    for view in GOLD.values():
        people = set(lake.read(view).get_column("person_pseudonym"))
        assert people and people <= patients
    studies = lake.read(GOLD["studies"])
    assert studies.get_column("n_instances").sum() == kept.height
    assert studies.get_column("study_uid").str.starts_with("2.25.").all()
    key = load_keys(materialised_lake.root / "restricted" / "keys.json").for_uids("research")
    expected = {remap_uid(uid, key) for uid in kept.get_column("sop_instance_uid")}
    assert set(gold_instances.get_column("sop_uid")) == expected


def test_a_study_moves_in_time_with_its_encounter(materialised_lake):
    lake = Lake(materialised_lake.root)
    gold = lake.read(GOLD["studies"]).filter(pl.col("encounter_key").is_not_null())
    encounters = lake.read("gold/research/encounters").select(
        pl.col("record_key").alias("encounter_key"), "period_start"
    )
    shifted = gold.join(encounters, on="encounter_key", how="inner").select(
        (pl.col("study_date") - pl.col("period_start").dt.date()).dt.total_days().alias("gap"),
        "study_uid",
    )
    assert shifted.height == gold.height > 0
    ehr = lake.read("silver/ehr/encounters").select(
        pl.col("id").alias("encounter_id"), "period_start"
    )
    silver = lake.read(imaging.SILVER_STUDIES_PATH).join(ehr, on="encounter_id", how="inner")
    key = load_keys(materialised_lake.root / "restricted" / "keys.json").for_uids("research")
    original = {
        remap_uid(uid, key): (day - start.date()).days
        for uid, day, start in silver.select(
            "study_instance_uid", "study_date", "period_start"
        ).iter_rows()
    }
    assert {uid: gap for gap, uid in shifted.iter_rows()} == {
        uid: original[uid] for _, uid in shifted.iter_rows()
    }


@pytest.mark.anyio
async def test_no_value_the_profile_removes_reaches_the_gold_views_or_mcp(materialised_lake):
    lake = Lake(materialised_lake.root)
    profile = basic_profile()
    silver = lake.read(imaging.SILVER_INSTANCES_PATH)
    secrets: set[str] = set()
    for header in silver.get_column("header_json"):
        removed, _, kept = profiled_values(json.loads(header), profile)
        secrets |= removed - kept
    assert len(secrets) > 100, "the synthetic headers should carry identifiers to remove"
    texts = []
    for view in GOLD.values():
        frame = lake.read(view)
        texts += [
            str(value)
            for column in frame.columns
            for value in frame.get_column(column).to_list()
            if value is not None
        ]
    gold_text = "\n".join(texts)
    leaked = sorted(s for s in secrets if s in gold_text)
    assert not leaked, f"{len(leaked)} removed values reached the gold views"
    answers = []
    for tool, arguments in (
        ("query_imaging_instances", {"limit": 200}),
        ("query_imaging_studies", {"limit": 200}),
        ("query_imaging_series", {"limit": 200}),
    ):
        _, result = await call_tool(
            materialised_lake.root, "researcher", "research", tool, arguments
        )
        assert result is not None and not result.is_error, result
        answers.append(json.dumps(result.structured_content))
        answers += [getattr(block, "text", "") for block in result.content]
    served = "\n".join(answers)
    assert '"rows"' in served
    leaked = sorted(s for s in secrets if s in served)
    assert not leaked, f"{len(leaked)} removed values reached the MCP output"


def test_the_shifted_header_dates_are_not_the_original_ones(materialised_lake):
    lake = Lake(materialised_lake.root)
    profile = basic_profile()
    key = load_keys(materialised_lake.root / "restricted" / "keys.json").for_uids("research")
    gold = dict(lake.read(GOLD["instances"]).select("sop_uid", "header_json").iter_rows())
    checked = 0
    for uid, header in lake.read(imaging.SILVER_INSTANCES_PATH).select(
        "sop_instance_uid", "header_json"
    ).iter_rows():
        deidentified = gold.get(remap_uid(uid, key))
        if deidentified is None:
            continue
        _, moments, _ = profiled_values(json.loads(header), profile)
        dates = {m for m in moments if len(m) >= 8 and m[:8].isdigit()}
        assert not [d for d in dates if d in deidentified]
        checked += bool(dates)
    assert checked > 0


def test_a_rerun_of_unchanged_batches_commits_nothing(materialised_lake):
    lake = Lake(materialised_lake.root)
    for batch in imaging.scan_batches(materialised_lake.landing / "imaging"):
        assert imaging.already_ingested(lake, batch.name, imaging.batch_stamp(batch))
    build = imaging.build_silver(
        lake, lake.read("restricted/person_crosswalk"), run_id="rerun"
    )
    assert not (build.instances.committed or build.series.committed or build.studies.committed)


def test_the_sensor_adds_a_partition_and_requests_a_run_per_new_or_changed_batch(tmp_path):
    folder = tmp_path / "imaging"
    (folder / "b1").mkdir(parents=True)
    (folder / "b1" / "a.dcm").write_bytes(b"x")
    with zipfile.ZipFile(folder / "b2.zip", "w") as archive:
        archive.writestr("x.dcm", b"y")
    (folder / "orders.csv").write_text("accession_number\n")
    resource = LandingResource(root=str(tmp_path))
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"landing": resource})
        first = imaging_landing_sensor(context)
        assert sorted(r.partition_key for r in first.run_requests) == ["b1", "b2.zip"]
        assert first.dynamic_partitions_requests[0].partition_keys == ["b1", "b2.zip"]
        instance.add_dynamic_partitions(dicom_batches.name, ["b1", "b2.zip"])
        again = dg.build_sensor_context(
            instance=instance, cursor=first.cursor, resources={"landing": resource}
        )
        assert imaging_landing_sensor(again).run_requests == []
        (folder / "b1" / "b.dcm").write_bytes(b"z")
        changed = dg.build_sensor_context(
            instance=instance, cursor=first.cursor, resources={"landing": resource}
        )
        result = imaging_landing_sensor(changed)
        assert [r.partition_key for r in result.run_requests] == ["b1"]
        assert not result.dynamic_partitions_requests


def test_a_file_that_is_not_dicom_is_quarantined_and_the_rest_ingested(
    tmp_path, materialised_lake
):
    source = next((materialised_lake.landing / "imaging" / "batch-001").rglob("*.dcm"))
    batch = tmp_path / "landing" / "b1"
    (batch / "sub").mkdir(parents=True)
    (batch / "sub" / "one.dcm").write_bytes(source.read_bytes())
    (batch / "notes.txt").write_text("not an image")
    lake = Lake(tmp_path / "lake")
    ingest = imaging.ingest_batch(
        lake, batch, "b1", run_id="r1", ingested_at=datetime.now(UTC), workers=1
    )
    assert (ingest.files, ingest.instances_read, ingest.rejected) == (2, 1, 1)
    assert lake.read(imaging.INSTANCES_PATH).get_column("source_file").to_list() == [
        "b1/sub/one.dcm"
    ]
    reject = lake.read(imaging.REJECTS_PATH).row(0, named=True)
    assert reject["source"] == "b1/notes.txt" and reject["batch"] == "b1"
    assert reject["reason"] and "not an image" not in reject["reason"]
    ledger = lake.read(imaging.BATCHES_PATH).row(0, named=True)
    assert (ledger["files"], ledger["instances"], ledger["rejected"]) == (2, 1, 1)


def test_orders_with_bad_rows_are_quarantined_by_line(tmp_path):
    path = tmp_path / "orders.csv"
    header = ",".join(imaging.ORDER_COLUMNS)
    path.write_text(
        f"{header}\n"
        "A1,P1,MRN1,E1,CT,1,Head CT,2024-01-02T10:00:00+01:00\n"
        ",P2,MRN2,E2,CT,1,Head CT,2024-01-02T10:00:00+01:00\n"
        "A3,P3,MRN3,E3,CT,1,Head CT,yesterday\n"
        "A4,P4,MRN4,E4,MR,2,Knee MR,2024-01-03T10:00:00Z\n"
        "A4,P5,MRN5,E5,MR,2,Knee MR,2024-01-03T10:00:00Z\n"
    )
    rows, rejects = imaging.read_orders(path, source_file="orders.csv")
    assert rows.get_column("accession_number").to_list() == ["A1"]
    assert rows.item(0, "ordered_at") == datetime(2024, 1, 2, 9, tzinfo=UTC)
    assert rejects.get_column("locator").to_list() == ["line:3", "line:4", "line:5", "line:6"]
    assert "accession number is empty" in rejects.item(0, "reason")
    assert "yesterday" not in " ".join(rejects.get_column("reason"))


def test_an_order_for_another_patient_leaves_the_instance_unlinked():
    instances = pl.DataFrame(
        {"patient_id": ["P1", "P1", "P9"], "accession_number": ["A1", "A2", "A1"]}
    )
    orders = pl.DataFrame(
        {
            "accession_number": ["A1"],
            "patient_id": ["P1"],
            "mrn": ["M1"],
            "encounter_id": ["E1"],
        }
    )
    crosswalk = pl.DataFrame(
        {"identifier_type": ["mrn"], "identifier": ["M1"], "person_key": ["K1"]}
    )
    encounters = pl.DataFrame({"id": ["E1"], "person_key": ["K1"]})
    linked = imaging.link_instances(instances, orders, crosswalk, encounters)
    assert linked.select("link_status", "person_key", "encounter_id").rows() == [
        ("linked", "K1", "E1"),
        ("no_order", "K1", None),
        ("patient_mismatch", None, None),
    ]


@pytest.mark.anyio
async def test_researchers_find_studies_by_modality_body_part_and_date_and_count_series(
    materialised_lake,
):
    lake = Lake(materialised_lake.root)
    studies = lake.read(GOLD["studies"])
    modality, body_part = (
        studies.group_by("primary_modality", "body_part").len().sort("len").row(-1)[:2]
    )
    dates = studies.get_column("study_date")
    low, high = dates.min(), dates.max()
    expected = studies.filter(
        pl.col("primary_modality") == modality, pl.col("body_part") == body_part
    )
    tools, result = await call_tool(
        materialised_lake.root, "researcher", "research", "query_imaging_studies",
        {
            "filters": {
                "primary_modality": {"eq": modality},
                "body_part": {"eq": body_part},
                "study_date": {"gte": low.isoformat(), "lte": high.isoformat()},
            },
            "limit": 500,
        },
    )  # fmt: skip
    assert {"query_imaging_studies", "aggregate_imaging_series"} <= tools
    assert not result.is_error, result.content
    rows = result.structured_content["rows"]
    assert {r["study_uid"] for r in rows} == set(expected.get_column("study_uid"))
    _, counts = await call_tool(
        materialised_lake.root, "researcher", "research", "aggregate_imaging_series",
        {"group_by": ["modality"]},
    )  # fmt: skip
    assert not counts.is_error, counts.content
    cells = counts.structured_content["cells"]
    assert cells and all(c["people"] is None or c["people"] >= 11 for c in cells)


@pytest.mark.anyio
async def test_instance_headers_are_served_whole_as_json(materialised_lake):
    lake = Lake(materialised_lake.root)
    gold = dict(lake.read(GOLD["instances"]).select("sop_uid", "header_json").iter_rows())
    assert max(len(h) for h in gold.values()) > 2000, "headers longer than the global field cap"
    _, result = await call_tool(
        materialised_lake.root, "researcher", "research", "query_imaging_instances",
        {"select": ["sop_uid", "header_json"], "limit": 50},
    )  # fmt: skip
    assert not result.is_error, result.content
    rows = result.structured_content["rows"]
    assert rows
    for row in rows:
        assert json.loads(row["header_json"]) == json.loads(gold[row["sop_uid"]])
