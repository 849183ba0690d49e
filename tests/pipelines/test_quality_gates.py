"""Quality gates end to end: a failing silver suite keeps bad data out of gold and the catalog."""

import json

import dagster as dg
import polars as pl
from deltalake import write_deltalake

from connectors.synth import write_cohort
from pipelines.cli import materialize
from pipelines.lake import Lake
from pipelines.quality_record import QUALITY_RESULTS_PATH


def test_a_corrupted_silver_table_blocks_the_gold_view_it_feeds(tmp_path):
    landing, root = tmp_path / "landing", tmp_path / "lake"
    write_cohort(landing, patients=20, seed=3)
    lake = Lake(root)
    with dg.instance_for_test() as instance:
        assert materialize(str(root), str(landing), instance=instance).success
        gold_before = lake.version("gold/research/conditions")
        manifest_before = (root / "_catalog" / "manifest.json").read_text()

        # A duplicate condition id slips into silver (a bad manual fix, a broken MERGE): the
        # rerun's MERGE cannot remove it, so the silver suite must stop the gold view.
        silver = lake.read("silver/ehr/conditions")
        write_deltalake(lake.uri("silver/ehr/conditions"), silver.head(1).to_arrow(), mode="append")
        result = materialize(str(root), str(landing), instance=instance)

    assert not result.success
    checks = {
        (
            e.asset_check_evaluation_data.asset_key.to_user_string(),
            e.asset_check_evaluation_data.check_name,
        ): e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }
    assert checks[("silver/ehr/conditions", "quality_suite")] is False
    assert checks[("silver/ehr/patients", "quality_suite")] is True
    assert lake.version("gold/research/conditions") == gold_before
    assert (root / "_catalog" / "manifest.json").read_text() == manifest_before
    history = lake.read(QUALITY_RESULTS_PATH).filter(
        pl.col("table") == "silver/ehr/conditions", ~pl.col("success")
    )
    outcomes = json.loads(history.get_column("outcomes_json").item())
    unique = [
        o
        for o in outcomes
        if o["expectation"] == "expect_column_values_to_be_unique" and o["column"] == "id"
    ]
    assert unique and unique[0]["unexpected_count"] == 2 and not unique[0]["success"]


def test_quality_results_are_recorded_once_per_table_version(materialised_lake):
    lake = Lake(materialised_lake.root)
    results = lake.read(QUALITY_RESULTS_PATH)
    assert results.select("table", "suite", "delta_version").is_duplicated().sum() == 0
    assert results.get_column("success").all()
    recorded = set(results.get_column("table").to_list())
    assert {"silver/ehr/observations", "gold/research/patients", "_rejects/ehr/fhir"} <= recorded


def test_the_manifest_carries_each_views_latest_quality(materialised_lake):
    manifest = json.loads((materialised_lake.root / "_catalog" / "manifest.json").read_text())
    for dataset in manifest["datasets"]:
        quality = dataset["quality"]
        assert quality["success"] and quality["expectations"] > 5 and quality["failed_errors"] == 0
