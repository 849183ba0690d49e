import random
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mcp_catalog.disclosure import (
    DIFFERENCING_SUSPECTED,
    LEDGER_CLOSED,
    MIN_CELL_TOO_SMALL,
    MIN_DIFFERENCE_TOO_SMALL,
    TOO_MANY_CELLS,
    TOO_MANY_DIMENSIONS,
    UNKNOWN_COLUMN,
    UNSUPPORTED_STAT,
    LedgerDecision,
    Measure,
    QueryLedger,
    aggregate,
    complementary_safe,
)

PERSON = "person_pseudonym"


def _frame(counts: dict[tuple[Any, ...], int], dims: Sequence[str]) -> pl.DataFrame:
    """One row per person, ``count`` new people per cell."""
    columns: dict[str, list[Any]] = {PERSON: [], **{d: [] for d in dims}}
    for key, count in counts.items():
        for _ in range(count):
            columns[PERSON].append(f"P-{len(columns[PERSON]):05d}")
            for dim, value in zip(dims, key, strict=True):
                columns[dim].append(value)
    return pl.DataFrame(columns)


def _status(cells: list[dict[str, Any]], dims: Sequence[str]) -> dict[tuple[Any, ...], Any]:
    return {tuple(cell[d] for d in dims): cell["suppression"] for cell in cells}


def _cell(people: int | None, records: int | None, suppression: str | None, **groups: Any):
    return {
        **groups,
        "people": people,
        "records": records,
        "suppressed": suppression is not None,
        "suppression": suppression,
    }


def _pinned(
    frame: pl.DataFrame, cells: list[dict[str, Any]], dims: list[str], k: int, *, hide_all: bool
) -> set[int]:
    """Suppressed cells whose value the published numbers fix, by float rank (an oracle).

    Known: the total (here always published), every published cell, and the margin of every
    line of at least k people. With ``hide_all`` every cell counts as suppressed.
    """
    hidden = [i for i, cell in enumerate(cells) if hide_all or cell["suppressed"]]
    keys = [tuple(cell[d] for d in dims) for cell in cells]
    equations = [list(range(len(cells)))]
    for dim in range(len(dims)):
        others = dims[:dim] + dims[dim + 1 :]
        if not others:
            continue
        margins = frame.group_by(others).agg(pl.col(PERSON).n_unique().alias("n"))
        people = {tuple(row[o] for o in others): row["n"] for row in margins.to_dicts()}
        lines: dict[tuple[Any, ...], list[int]] = {}
        for i, key in enumerate(keys):
            lines.setdefault(key[:dim] + key[dim + 1 :], []).append(i)
        equations.extend(line for key, line in lines.items() if people[key] >= k)
    column = {cell: c for c, cell in enumerate(hidden)}
    matrix = np.zeros((len(equations), len(hidden)))
    for row, equation in enumerate(equations):
        for i in equation:
            if i in column:
                matrix[row, column[i]] = 1
    rank = np.linalg.matrix_rank(matrix)
    pinned = set()
    for c, cell in enumerate(hidden):
        unit = np.zeros((1, len(hidden)))
        unit[0, c] = 1
        if np.linalg.matrix_rank(np.vstack([matrix, unit])) == rank:
            pinned.add(cell)
    return pinned


def test_cells_of_one_to_k_minus_one_people_are_suppressed_and_k_is_published():
    frame = pl.DataFrame(
        {
            PERSON: ["a1", "a1", "a2", "a3", "a4", "a5", "b1", "c1", "c2", "c2", "n1", "n2", "n3"],
            "site": ["A", "A", "A", "A", "A", "A", "B", "C", "C", "C", None, None, None],
        }
    )

    result = aggregate(frame, group_by=["site"], min_cell=3)

    assert result.cells == [
        _cell(5, 6, None, site="A"),
        _cell(None, None, "primary", site="B"),
        _cell(None, None, "primary", site="C"),
        _cell(3, 3, None, site=None),
    ]
    assert (result.total_people, result.total_records) == (11, 13)
    assert (result.suppressed_cells, result.complementary_cells) == (2, 0)
    assert result.population == sorted(set(frame.get_column(PERSON).to_list()))


def test_one_small_cell_in_one_dimension_also_hides_the_next_smallest():
    frame = _frame({("A",): 20, ("B",): 8, ("C",): 2, ("D",): 8}, ["site"])

    result = aggregate(frame, group_by=["site"], min_cell=5)

    assert result.cells == [
        _cell(20, 20, None, site="A"),
        _cell(None, None, "complementary", site="B"),
        _cell(None, None, "primary", site="C"),
        _cell(8, 8, None, site="D"),
    ]
    assert result.total_people == 38
    assert (result.suppressed_cells, result.complementary_cells) == (2, 1)


def test_a_small_cell_in_two_dimensions_hides_a_rectangle_across_its_row_and_column():
    dims = ["gender", "age_band"]
    counts = {
        ("female", "18-39"): 3,
        ("female", "40-64"): 20,
        ("female", "65+"): 12,
        ("male", "18-39"): 15,
        ("male", "40-64"): 25,
        ("male", "65+"): 30,
    }

    result = aggregate(_frame(counts, dims), group_by=dims, min_cell=5)

    # The female row hides its smallest other cell (65+); the 18-39 column hides male 18-39;
    # both the male row and the 65+ column then have one hidden cell, and male 65+ closes
    # them together: a fixed point where every row and column hides two cells.
    assert _status(result.cells, dims) == {
        ("female", "18-39"): "primary",
        ("female", "40-64"): None,
        ("female", "65+"): "complementary",
        ("male", "18-39"): "complementary",
        ("male", "40-64"): None,
        ("male", "65+"): "complementary",
    }
    assert [c["people"] for c in result.cells] == [None, 20, None, None, 25, None]
    assert complementary_safe(result.cells, dims, total_published=True)


def test_a_cell_pinned_through_a_chain_of_rows_and_columns_gets_another_cell_hidden():
    dims = ["row", "column"]
    counts = {(f"r{r}", f"c{c}"): 30 for r in range(1, 5) for c in range(1, 5)}
    small = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 3), (3, 4), (4, 3), (4, 4), (1, 3)]
    for r, c in small:
        counts[(f"r{r}", f"c{c}")] = 2
    counts[("r1", "c4")] = 6
    frame = _frame(counts, dims)

    result = aggregate(frame, group_by=dims, min_cell=5)

    # Two hidden rectangles joined by r1/c3: every row and column hides two cells or none,
    # yet r1/c3 is a bridge between them and follows from the margins. Hiding the smallest
    # cell next to it (r1/c4) puts it on a cycle.
    expected = {key: ("primary" if value == 2 else None) for key, value in counts.items()}
    expected[("r1", "c4")] = "complementary"
    assert _status(result.cells, dims) == expected
    assert _pinned(frame, result.cells, dims, 5, hide_all=False) == set()


def _random_table(rng: random.Random) -> tuple[pl.DataFrame, list[str]]:
    dims = ["d0", "d1", "d2"][: rng.randint(1, 3)]
    people = rng.randint(1, 150)
    rows = rng.randint(people, 2 * people)
    columns: dict[str, list[Any]] = {
        PERSON: [f"P-{rng.randrange(people):04d}" for _ in range(rows)]
    }
    for dim in dims:
        levels = rng.randint(1, 6)
        columns[dim] = [
            None if rng.random() < 0.05 else f"v{min(int(rng.expovariate(0.6)), levels - 1)}"
            for _ in range(rows)
        ]
    return pl.DataFrame(columns), dims


@pytest.mark.parametrize("block", range(4))
def test_no_suppressed_cell_of_a_random_table_follows_from_what_is_published(block):
    for seed in range(block * 50, block * 50 + 50):
        rng = random.Random(seed)
        frame, dims = _random_table(rng)
        k = rng.randint(2, 8)

        result = aggregate(frame, group_by=dims, min_cell=k)

        published = result.total_people is not None
        truth = {
            tuple(row[d] for d in dims): row["people"]
            for row in frame.group_by(dims)
            .agg(pl.col(PERSON).n_unique().alias("people"))
            .rows(named=True)
        }
        for cell in result.cells:
            people = truth[tuple(cell[d] for d in dims)]
            assert (cell["suppression"] == "primary") == (people < k)
            assert cell["people"] in (None, people)
        assert complementary_safe(result.cells, dims, total_published=published), seed
        if published:
            assert result.suppressed_cells != 1, seed
            pinned = _pinned(frame, result.cells, dims, k, hide_all=False)
            by_margins_alone = _pinned(frame, result.cells, dims, k, hide_all=True)
            assert pinned <= by_margins_alone, seed


def test_a_total_below_k_is_withheld_and_every_cell_suppressed():
    frame = _frame({("A",): 2, ("B",): 1}, ["site"])

    result = aggregate(frame, group_by=["site"], min_cell=5)

    assert (result.total_people, result.total_records) == (None, None)
    assert result.cells == [
        _cell(None, None, "primary", site="A"),
        _cell(None, None, "primary", site="B"),
    ]
    assert result.population == ["P-00000", "P-00001", "P-00002"]


def test_no_grouping_gives_one_cell_equal_to_the_total():
    frame = _frame({(): 6}, [])

    result = aggregate(frame, group_by=[], min_cell=5)

    assert result.cells == [_cell(6, 6, None)]
    assert result.total_people == 6


def test_measures_appear_only_for_open_cells_where_enough_people_have_a_value():
    frame = pl.DataFrame(
        {
            PERSON: ["a1", "a2", "a3", "a4", "b1", "b2", "b3", "c1", "c1", "c2", "d1", "e1"],
            "site": ["A", "A", "A", "A", "B", "B", "B", "C", "C", "C", "D", "E"],
            "hba1c": [1.0, 2.0, 4.0, 7.0, 5.0, None, 6.0, 8.0, 9.0, 10.0, 11.0, 12.0],
        }
    )
    measures = [Measure("hba1c", stat) for stat in ("mean", "p25", "median", "p75")]

    result = aggregate(
        frame, group_by=["site"], measures=measures, min_cell=2, min_measure_people=3
    )

    # Linear interpolation over A's sorted values 1, 2, 4, 7 at position q * 3:
    # p25 at 0.75 -> 1.75, median at 1.5 -> 3.0, p75 at 2.25 -> 4.75.
    expected = pl.DataFrame(
        {
            "site": ["A", "B", "C", "D", "E"],
            "people": [4, 3, 2, None, None],
            "records": [4, 3, 3, None, None],
            "suppressed": [False, False, False, True, True],
            "suppression": [None, None, None, "primary", "primary"],
            "mean_hba1c": [3.5, None, None, None, None],
            "p25_hba1c": [1.75, None, None, None, None],
            "median_hba1c": [3.0, None, None, None, None],
            "p75_hba1c": [4.75, None, None, None, None],
        },
        schema_overrides={"people": pl.Int64, "records": pl.Int64},
    )
    assert_frame_equal(pl.DataFrame(result.cells), expected)


def test_measures_need_ten_people_with_a_value_by_default():
    frame = pl.DataFrame(
        {
            PERSON: [f"P{i}" for i in range(19)],
            "site": ["A"] * 10 + ["B"] * 9,
            "weight": [float(i) for i in range(19)],
        }
    )

    result = aggregate(frame, group_by=["site"], measures=[Measure("weight", "mean")], min_cell=5)

    assert [cell["mean_weight"] for cell in result.cells] == [4.5, None]


def test_extreme_order_statistics_are_not_offered():
    frame = _frame({("A",): 20}, ["site"]).with_columns(weight=pl.lit(1.0))

    maximum = Measure("weight", "max")  # type: ignore[arg-type]

    with pytest.raises(ValueError) as raised:
        aggregate(frame, group_by=["site"], measures=[maximum], min_cell=5)

    assert str(raised.value) == UNSUPPORTED_STAT


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"group_by": ["a", "b", "c", "d"]}, TOO_MANY_DIMENSIONS),
        ({"group_by": ["a", "b"], "max_cells": 24}, TOO_MANY_CELLS),
        ({"group_by": ["a", "diagnosis"]}, UNKNOWN_COLUMN),
        ({"group_by": ["a"], "measures": [Measure("weight", "mean")]}, UNKNOWN_COLUMN),
        ({"group_by": ["a"], "min_cell": 1}, MIN_CELL_TOO_SMALL),
    ],
    ids=["four-dimensions", "too-many-groups", "unknown-dimension", "unknown-measure", "k-of-1"],
)
def test_requests_beyond_the_limits_are_refused_with_fixed_messages(arguments, message):
    # a x b has 25 groups of one person each.
    frame = pl.DataFrame(
        {
            PERSON: [f"P{i}" for i in range(25)],
            "a": [f"a{i % 5}" for i in range(25)],
            "b": [f"b{i // 5}" for i in range(25)],
            "c": ["c"] * 25,
            "d": ["d"] * 25,
        }
    )

    with pytest.raises(ValueError) as raised:
        aggregate(frame, **{"min_cell": 5, **arguments})

    assert str(raised.value) == message


def test_complementary_safe_flags_a_line_with_one_suppressed_cell():
    cells = [
        _cell(None, None, "primary", g="A"),
        _cell(9, 9, None, g="B"),
        _cell(9, 9, None, g="C"),
    ]

    assert not complementary_safe(cells, ["g"], total_published=True)
    assert complementary_safe(cells[:1], ["g"], total_published=False)


def _people(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{i:04d}" for i in range(count)]


def test_the_same_population_twice_is_allowed():
    ledger = QueryLedger(None)
    cohort = _people("P", 40)

    first = ledger.check_and_record("alice", "patients", cohort, min_difference=5)
    second = ledger.check_and_record("alice", "patients", list(reversed(cohort)), min_difference=5)

    assert first == second == LedgerDecision(allowed=True, reason=None, closest_difference=None)


def test_a_population_one_person_away_is_refused_and_not_recorded():
    ledger = QueryLedger(None)
    cohort = _people("P", 40)
    ledger.check_and_record("alice", "patients", cohort, min_difference=5)

    refused = ledger.check_and_record("alice", "patients", cohort[1:], min_difference=5)
    # Five people from the recorded cohort, four from the refused one.
    beyond = ledger.check_and_record(
        "alice", "patients", cohort[1:] + _people("Q", 4), min_difference=5
    )

    assert refused == LedgerDecision(False, DIFFERENCING_SUSPECTED, 1)
    assert beyond == LedgerDecision(True, None, 5)


def test_a_population_k_or_more_people_away_is_allowed():
    ledger = QueryLedger(None)
    cohort = _people("P", 40)
    ledger.check_and_record("alice", "patients", cohort, min_difference=5)

    near_miss = ledger.check_and_record("alice", "patients", cohort[5:], min_difference=5)
    far = ledger.check_and_record("alice", "patients", _people("Q", 40), min_difference=5)

    assert near_miss == LedgerDecision(True, None, 5)
    assert far == LedgerDecision(True, None, None)


def test_another_principals_or_another_views_history_does_not_count():
    ledger = QueryLedger(None)
    cohort = _people("P", 40)
    ledger.check_and_record("alice", "patients", cohort, min_difference=5)

    bob = ledger.check_and_record("bob", "patients", cohort[1:], min_difference=5)
    other_view = ledger.check_and_record("alice", "observations", cohort[1:], min_difference=5)

    assert bob.allowed and other_view.allowed


def test_the_ledger_survives_reopening_its_file(tmp_path: Path):
    path = tmp_path / "ledger.sqlite"
    first = QueryLedger(path)
    first.check_and_record("alice", "patients", _people("P", 40), min_difference=5)
    first.close()

    reopened = QueryLedger(path)
    decision = reopened.check_and_record("alice", "patients", _people("P", 39), min_difference=5)
    reopened.close()

    assert decision == LedgerDecision(False, DIFFERENCING_SUSPECTED, 1)


def test_only_the_last_window_populations_are_compared(tmp_path: Path):
    ledger = QueryLedger(tmp_path / "ledger.sqlite", window=3)
    ledger.check_and_record("alice", "patients", _people("P", 40), min_difference=5)
    for prefix in ("Q", "R", "S"):
        ledger.check_and_record("alice", "patients", _people(prefix, 40), min_difference=5)

    forgotten = ledger.check_and_record("alice", "patients", _people("P", 39), min_difference=5)
    remembered = ledger.check_and_record("alice", "patients", _people("S", 39), min_difference=5)

    assert forgotten.allowed
    assert not remembered.allowed


def test_repeating_a_query_does_not_push_other_populations_out_of_the_window():
    ledger = QueryLedger(None, window=2)
    ledger.check_and_record("alice", "patients", _people("P", 40), min_difference=5)
    for _ in range(3):
        ledger.check_and_record("alice", "patients", _people("Q", 40), min_difference=5)

    decision = ledger.check_and_record("alice", "patients", _people("P", 39), min_difference=5)

    assert decision == LedgerDecision(False, DIFFERENCING_SUSPECTED, 1)


@pytest.mark.parametrize("shared", [True, False], ids=["one-ledger", "ledger-per-thread"])
def test_eight_threads_racing_with_near_populations_record_exactly_one(tmp_path, shared):
    path = tmp_path / "ledger.sqlite"
    QueryLedger(path).close()
    ledgers = [QueryLedger(path)] * 8 if shared else [QueryLedger(path) for _ in range(8)]
    cohort = _people("P", 200)
    start = threading.Barrier(8)
    decisions: list[LedgerDecision] = []
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            start.wait()
            # A far population of its own, then the contested one (two people from each other).
            own = _people(f"T{number}", 50)
            decisions.append(ledgers[number].check_and_record("alice", "v", own, min_difference=5))
            contested = [*cohort, f"X-{number}"]
            decisions.append(
                ledgers[number].check_and_record("alice", "v", contested, min_difference=5)
            )
        except BaseException as exc:  # reported by the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for ledger in set(ledgers):
        ledger.close()

    assert errors == []
    assert sum(d.allowed for d in decisions) == 8 + 1
    reopened = QueryLedger(path)
    for number in range(8):
        own = _people(f"T{number}", 49)
        assert not reopened.check_and_record("alice", "v", own, min_difference=5).allowed
    reopened.close()


def test_aggregate_populations_feed_the_ledger():
    ledger = QueryLedger(None)
    frame = _frame({("A",): 20, ("B",): 20}, ["site"])
    without_one = frame.filter(pl.col(PERSON) != "P-00000")

    whole = aggregate(frame, group_by=["site"], min_cell=5)
    smaller = aggregate(without_one, group_by=["site"], min_cell=5)

    assert ledger.check_and_record("alice", "v", whole.population, min_difference=5).allowed
    refused = ledger.check_and_record("alice", "v", smaller.population, min_difference=5)
    assert refused.reason == DIFFERENCING_SUSPECTED


def test_bad_ledger_use_raises():
    ledger = QueryLedger(None)
    with pytest.raises(ValueError) as raised:
        ledger.check_and_record("alice", "v", ["P1"], min_difference=1)
    assert str(raised.value) == MIN_DIFFERENCE_TOO_SMALL
    ledger.close()
    ledger.close()
    with pytest.raises(RuntimeError) as closed:
        ledger.check_and_record("alice", "v", ["P1"], min_difference=5)
    assert str(closed.value) == LEDGER_CLOSED
