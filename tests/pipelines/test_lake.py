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


def _batches(frame: pl.DataFrame, size: int):
    for start in range(0, frame.height, size):
        yield from frame.slice(start, size).to_arrow().to_batches()


def _file_rows(source: str, n: int, chrom: str = "chr1") -> pl.DataFrame:
    return pl.DataFrame(
        {"source_file": [source] * n, "chrom": [chrom] * n, "pos": list(range(1, n + 1))}
    )


def test_stream_source_replaces_only_that_sources_rows_in_one_commit(lake):
    first = _file_rows("a.vcf", 5)
    schema = first.to_arrow().schema
    created = lake.stream_source("t", _batches(first, 2), schema, "a.vcf", run_id="run-1",
                                 partition_by=["chrom"])  # fmt: skip
    lake.stream_source("t", _batches(_file_rows("b.vcf", 3, "chr2"), 2), schema, "b.vcf",
                       run_id="run-2")  # fmt: skip
    replaced = lake.stream_source("t", _batches(_file_rows("a.vcf", 2), 1), schema, "a.vcf",
                                  run_id="run-3")  # fmt: skip
    assert (created.version, created.rows_written) == (0, 5)
    assert (replaced.version, replaced.rows_written, replaced.rows_deleted) == (2, 2, 5)
    stored = lake.read("t").sort("source_file", "pos")
    assert_frame_equal(
        stored.select("source_file", "chrom", "pos"),
        pl.concat([_file_rows("a.vcf", 2), _file_rows("b.vcf", 3, "chr2")]),
    )
    assert lake.table("t").metadata().partition_columns == ["chrom"]
    assert lake.table("t").history(1)[0]["dagster_run_id"] == "run-3"


def test_stream_source_commits_nothing_when_the_batches_fail(lake):
    schema = _file_rows("a.vcf", 1).to_arrow().schema
    lake.stream_source("t", _batches(_file_rows("a.vcf", 4), 2), schema, "a.vcf", run_id="run-1")

    def failing():
        yield from _batches(_file_rows("a.vcf", 2), 1)
        raise RuntimeError("the reader failed")

    with pytest.raises(Exception, match="the reader failed"):
        lake.stream_source("t", failing(), schema, "a.vcf", run_id="run-2")
    assert lake.version("t") == 0
    assert lake.read("t").height == 4


def test_replace_table_keeps_row_order_and_commits_nothing_when_unchanged(lake):
    from pipelines.lake import lookup_writer_properties

    frame = pl.DataFrame({"chrom": ["chr1"] * 5, "pos": [5, 1, 4, 2, 3]}).sort("pos")
    first = lake.replace_table(
        "t", frame, run_id="run-1", writer_properties=lookup_writer_properties(2)
    )
    again = lake.replace_table("t", frame, run_id="run-2")
    changed = lake.replace_table("t", frame.head(3), run_id="run-3")
    assert (first.version, first.committed) == (0, True)
    assert (again.version, again.committed) == (0, False)
    assert (changed.version, changed.rows_written, changed.rows_deleted) == (1, 3, 5)
    assert_frame_equal(lake.read("t"), frame.head(3))
