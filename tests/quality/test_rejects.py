import polars as pl

from quality.rejects import REJECT_THRESHOLDS, RejectThreshold, reject_ratio

THRESHOLD = RejectThreshold(warn_ratio=0.01, fail_ratio=0.1)


def _ledger(rows):
    return pl.DataFrame(
        rows,
        schema={"source_file": pl.String(), "records": pl.Int64(), "rejects": pl.Int64()},
        orient="row",
    )


def test_a_clean_feed_passes():
    result = reject_ratio(_ledger([("a.ndjson", 100, 0), ("b.ndjson", 50, 0)]), THRESHOLD)
    assert (result.status, result.ratio, result.worst_files) == ("pass", 0.0, ())


def test_the_ratio_is_taken_over_the_whole_silo_and_names_the_worst_files():
    ledger = _ledger([("a.ndjson", 95, 0), ("log.ndjson", 0, 1), ("b.ndjson", 0, 4)])
    result = reject_ratio(ledger, THRESHOLD)
    assert (result.records, result.rejects, result.ratio, result.status) == (95, 5, 0.05, "warn")
    assert result.worst_files == (("b.ndjson", 0, 4), ("log.ndjson", 0, 1))


def test_a_broken_feed_fails():
    assert reject_ratio(_ledger([("a.ndjson", 10, 10)]), THRESHOLD).status == "fail"


def test_every_silo_ledger_has_a_threshold_with_warn_below_fail():
    for threshold in REJECT_THRESHOLDS.values():
        assert 0 < threshold.warn_ratio < threshold.fail_ratio < 1
