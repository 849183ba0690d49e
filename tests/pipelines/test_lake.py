from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipelines.lake import Lake


@pytest.fixture
def lake(tmp_path):
    return Lake(tmp_path / "lake")


def _frame(**overrides):
    base = {
        "k": [1, 2, 3],
        "v": ["a", "b", None],
        "tags": [["x"], ["y"], None],
        "d": [date(2020, 1, 1), None, date(2021, 5, 2)],
    }
    base.update(overrides)
    return pl.DataFrame(base)


def test_merge_of_unchanged_rows_commits_no_new_version(lake):
    first = lake.merge("t", _frame(), ["k"], run_id="run-1")
    again = lake.merge("t", _frame(), ["k"], run_id="run-2")
    assert (first.version, first.committed) == (0, True)
    assert (again.version, again.committed, again.rows_written) == (0, False, 0)
    assert lake.version("t") == 0


def test_merge_updates_changed_rows_inserts_new_and_deletes_missing_keys(lake):
    lake.merge("t", _frame(), ["k"], run_id="run-1")
    changed = pl.DataFrame(
        {"k": [2, 4], "v": ["B", "d"], "tags": [["y"], []], "d": [None, date(2022, 1, 1)]}
    )
    outcome = lake.merge("t", changed, ["k"], run_id="run-2")
    assert (outcome.version, outcome.rows_written, outcome.rows_deleted) == (1, 2, 2)
    assert_frame_equal(lake.read("t").sort("k"), changed)


def test_merge_detects_a_change_inside_a_list_column(lake):
    lake.merge("t", _frame(), ["k"], run_id="run-1")
    outcome = lake.merge("t", _frame(tags=[["x"], ["z"], None]), ["k"], run_id="run-2")
    assert (outcome.committed, outcome.rows_written) == (True, 1)


def test_every_commit_carries_the_run_id(lake):
    lake.merge("t", _frame(), ["k"], run_id="run-1")
    lake.merge("t", _frame(v=["a", "b", "c"]), ["k"], run_id="run-2")
    history = lake.table("t").history()
    assert [h["dagster_run_id"] for h in history] == ["run-2", "run-1"]


def test_merge_refuses_duplicate_or_null_keys(lake):
    with pytest.raises(ValueError, match="duplicate keys"):
        lake.merge("t", _frame(k=[1, 1, 2]), ["k"], run_id="r")
    with pytest.raises(ValueError, match="null values in key"):
        lake.merge("t", _frame(k=[1, None, 2]), ["k"], run_id="r")
    assert lake.table("t") is None


def _rows(source, values):
    return pl.DataFrame({"source_file": [source] * len(values), "x": values})


def test_replace_sources_replaces_only_the_named_files(lake):
    lake.replace_sources(
        "b",
        pl.concat([_rows("a.ndjson", [1, 2]), _rows("b.ndjson", [3])]),
        ["a.ndjson", "b.ndjson"],
        run_id="r1",
    )
    outcome = lake.replace_sources("b", _rows("b.ndjson", [7, 8]), ["b.ndjson"], run_id="r2")
    assert (outcome.version, outcome.rows_written, outcome.rows_deleted) == (1, 2, 1)
    assert sorted(lake.read("b").get_column("x").to_list()) == [1, 2, 7, 8]


def test_replace_sources_with_nothing_to_delete_or_add_commits_nothing(lake):
    lake.replace_sources("b", _rows("a.ndjson", [1]), ["a.ndjson"], run_id="r1")
    empty = pl.DataFrame(schema={"source_file": pl.String(), "x": pl.Int64()})
    outcome = lake.replace_sources("b", empty, ["c.ndjson"], run_id="r2")
    assert (outcome.committed, lake.version("b")) == (False, 0)


def test_replace_sources_removes_rows_of_a_file_that_now_yields_none(lake):
    lake.replace_sources("b", _rows("a.ndjson", [1]), ["a.ndjson"], run_id="r1")
    empty = pl.DataFrame(schema={"source_file": pl.String(), "x": pl.Int64()})
    outcome = lake.replace_sources("b", empty, ["a.ndjson"], run_id="r2")
    assert (outcome.committed, lake.read("b").height) == (True, 0)


def test_replace_sources_creates_an_empty_table_so_readers_find_the_schema(lake):
    empty = pl.DataFrame(schema={"source_file": pl.String(), "x": pl.Int64()})
    outcome = lake.replace_sources("b", empty, ["a.ndjson"], run_id="r1")
    assert (outcome.version, lake.read("b").schema) == (0, empty.schema)
    again = lake.replace_sources("b", empty, ["a.ndjson"], run_id="r2")
    assert (again.committed, lake.version("b")) == (False, 0)


def test_replace_sources_rejects_rows_of_other_sources(lake):
    with pytest.raises(ValueError, match="not being replaced"):
        lake.replace_sources("b", _rows("a.ndjson", [1]), ["b.ndjson"], run_id="r1")


def test_source_names_with_quotes_are_literals_in_the_predicate(lake):
    name = "it's; DROP TABLE b;--.ndjson"
    lake.replace_sources("b", _rows(name, [1]), [name], run_id="r1")
    lake.replace_sources("b", _rows("ok.ndjson", [2]), ["ok.ndjson"], run_id="r2")
    lake.replace_sources("b", _rows(name, [3]), [name], run_id="r3")
    assert_frame_equal(
        lake.read("b").sort("x"), pl.concat([_rows("ok.ndjson", [2]), _rows(name, [3])])
    )


def test_the_lake_root_defaults_to_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BIOFED_LAKE", str(tmp_path / "elsewhere"))
    assert Lake().uri("silver/x") == str((tmp_path / "elsewhere" / "silver" / "x").resolve())


def test_insert_new_appends_unseen_keys_and_never_updates(lake):
    first = pl.DataFrame({"k": [1, 2], "v": ["a", "b"]})
    lake.insert_new("h", first, ["k"], run_id="r1")
    again = lake.insert_new("h", pl.DataFrame({"k": [2, 3], "v": ["B", "c"]}), ["k"], run_id="r2")
    assert (again.rows_written, again.version) == (1, 1)
    assert_frame_equal(
        lake.read("h").sort("k"), pl.DataFrame({"k": [1, 2, 3], "v": ["a", "b", "c"]})
    )
    same = lake.insert_new("h", first, ["k"], run_id="r3")
    assert (same.committed, lake.version("h")) == (False, 1)
