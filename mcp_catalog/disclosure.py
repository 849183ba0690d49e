"""Statistical disclosure control for aggregate queries over de-identified views.

Published counts leak in three known ways, and each has its own defence here:

- a small cell names a small group: primary suppression hides cells with fewer than ``k``
  people;
- a hidden cell is a margin minus the published cells of its line: complementary suppression
  hides more cells until no line (and not the published total) has exactly one hidden cell,
  and an exact linear audit then hides more where chains of rows and columns would still
  pin a hidden cell down;
- two populations that differ by a few people give those people's counts by subtraction:
  :class:`QueryLedger` refuses a principal's query whose population is within ``k`` people
  of an earlier one of the same view.
"""

import math
import sqlite3
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import blake2b
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import polars as pl

Stat = Literal["mean", "median", "p25", "p75"]
"""Order statistics at the extremes (min, max) are not offered: they are one person's value."""

MAX_GROUP_BY = 3
DEFAULT_MAX_CELLS = 500
DEFAULT_MIN_MEASURE_PEOPLE = 10
DIFFERENCING_SUSPECTED = "differencing_suspected"

TOO_MANY_DIMENSIONS = "group_by accepts at most 3 columns; group by fewer columns"
DUPLICATE_DIMENSION = "group_by names a column twice; name each column once"
UNKNOWN_COLUMN = "a group_by or measure column is not in the view; use the view's columns"
PERSON_COLUMN_USED = "the person column cannot be grouped by or measured"
PERSON_COLUMN_MISSING = "the view has no person column; aggregates need one to count people"
PERSON_COLUMN_NULLS = "the person column has nulls; every row must belong to a person"
MIN_CELL_TOO_SMALL = "min_cell must be at least 2"
MIN_MEASURE_TOO_SMALL = "min_measure_people must be at least min_cell"
TOO_MANY_CELLS = "the grouping has too many groups; group by fewer or coarser columns"
UNSUPPORTED_STAT = "stat must be one of: mean, median, p25, p75"
NON_NUMERIC_MEASURE = "measures need a numeric column; choose a numeric column"
DUPLICATE_MEASURE = "a measure is requested twice or clashes with a result key; request it once"
MIN_DIFFERENCE_TOO_SMALL = "min_difference must be at least 2"
WINDOW_TOO_SMALL = "window must be at least 1"
LEDGER_CLOSED = "the query ledger is closed"

_QUANTILES: dict[str, float] = {"median": 0.5, "p25": 0.25, "p75": 0.75}
_RESERVED_KEYS = frozenset({"people", "records", "suppressed", "suppression"})
_PRIME = 2_147_483_647
"""2**31 - 1: the audit eliminates modulo this prime so that products fit in int64."""
_MAX_FIX_TRIALS = 8
_NAN = object()
"""Stands for a NaN group value so that NaN groups compare equal, as polars groups them."""


@dataclass(frozen=True)
class Measure:
    """One summary statistic of one numeric column, per cell."""

    column: str
    stat: Stat

    @property
    def key(self) -> str:
        """The cell key that carries this measure, ``<stat>_<column>``."""
        return f"{self.stat}_{self.column}"


@dataclass(frozen=True)
class AggregateResult:
    """The disclosure-controlled result of one aggregate query."""

    cells: list[dict[str, Any]]
    """One per group, sorted by the group values (nulls last): the group values, ``people``,
    ``records``, ``suppressed``, ``suppression`` (``"primary"``, ``"complementary"`` or None)
    and one ``<stat>_<column>`` key per measure. Suppressed cells carry None counts and
    measures."""
    total_people: int | None
    """Distinct people over all rows; None when fewer than ``min_cell``."""
    total_records: int | None
    suppressed_cells: int
    """All suppressed cells, primary and complementary."""
    complementary_cells: int
    """The suppressed cells that were hidden only to protect others."""
    population: list[str]
    """Sorted distinct people of the whole frame, for the ledger; never sent to clients."""


@dataclass(frozen=True)
class LedgerDecision:
    """Whether an aggregate population may be released to a principal."""

    allowed: bool
    reason: str | None
    """``"differencing_suspected"`` when refused."""
    closest_difference: int | None
    """The smallest nonzero symmetric difference to an earlier population (a count, for the
    audit record) when below twice the minimum difference, else None."""


def aggregate(
    frame: pl.DataFrame,
    *,
    group_by: Sequence[str],
    measures: Sequence[Measure] = (),
    min_cell: int,
    person_column: str = "person_pseudonym",
    min_measure_people: int | None = None,
    max_cells: int = DEFAULT_MAX_CELLS,
) -> AggregateResult:
    """Count people and rows per group, with small-cell and complementary suppression.

    Null group values form their own group. Cells with 1 to ``min_cell - 1`` people are
    suppressed (primary). Then, until stable, any line (cells that share every group value
    but one; with one dimension all cells form one line, whose margin is the total) and the
    published total with exactly one suppressed cell get a second one (complementary): the
    smallest open cell of the line by people, records, then group values, except that cells
    alone in another line come last (such a cell equals a margin another query publishes,
    so hiding it hides nothing) and cells that also give another single-suppression line
    its second come first (suppressions then close into rectangles instead of cascading).
    Every line is treated as having a margin. A line of one cell is exempt: its cell is the
    margin, a cell of a coarser grouping that gets that query's own suppression.

    With two or more dimensions an exact audit follows, because chains of rows and columns
    can pin down a cell that no single line gives away: while a suppressed cell's records
    count is a linear function of the published cells, the total and the margins of lines
    of at least ``min_cell`` people (which a filtered query publishes), more cells are
    suppressed, unless those margins pin it down even with every cell suppressed; that is
    differencing across queries, which no single result can prevent.

    Measures are computed over the rows of unsuppressed cells in which at least
    ``min_measure_people`` distinct people have a non-null value; quantiles use linear
    interpolation.

    Args:
        frame: a de-identified view with one row per record and a person column.
        group_by: up to three dimension columns (already allow-listed by the caller).
        measures: statistics of numeric columns per cell.
        min_cell: the minimum number of people in a published cell (k), at least 2.
        person_column: the column that identifies a person.
        min_measure_people: people with a value needed to publish a measure; defaults to
            ``max(min_cell, 10)`` and must be at least ``min_cell``.
        max_cells: the most groups a result may have.

    Returns:
        The suppressed cells, the totals (None below ``min_cell``) and the population.

    Raises:
        ValueError: with a fixed message when there are more than three group_by columns,
            a column is missing or repeated, the person column is grouped by, measured,
            missing or has nulls, a stat is not offered, a measure column is not numeric,
            ``min_cell`` is below 2, ``min_measure_people`` is below ``min_cell``, or the
            grouping has more than ``max_cells`` groups.
    """
    dims = list(group_by)
    measures = list(measures)
    _check_arguments(frame, dims, measures, min_cell, person_column)
    if min_measure_people is None:
        min_measure_people = max(min_cell, DEFAULT_MIN_MEASURE_PEOPLE)
    if min_measure_people < min_cell:
        raise ValueError(MIN_MEASURE_TOO_SMALL)

    people_series = frame.get_column(person_column)
    if people_series.null_count():
        raise ValueError(PERSON_COLUMN_NULLS)
    population = people_series.cast(pl.String()).unique().sort().to_list()
    total_people = len(population)
    total_published = total_people >= min_cell

    grouped = _group(frame, dims, measures, person_column)
    if grouped.height > max_cells:
        raise ValueError(TOO_MANY_CELLS)
    rows = grouped.to_dicts()
    people = [row["people"] for row in rows]
    records = [row["records"] for row in rows]
    keys = [tuple(_canonical(row[c]) for c in dims) for row in rows]

    status: list[str | None] = ["primary" if n < min_cell else None for n in people]
    lines = _lines(keys, len(dims))
    alone = [False] * len(rows)
    for cells in lines:
        if len(cells) == 1:
            alone[cells[0]] = True
    rank = [(alone[i], people[i], records[i], i) for i in range(len(rows))]
    if total_published and len(dims) != 1:
        lines.append(list(range(len(rows))))
    enforced = [cells for cells in lines if len(cells) > 1]
    _close_lines(status, enforced, rank)
    if len(dims) > 1 and total_published and any(status):
        known = _known_margins(frame, dims, keys, person_column, min_cell)
        _audit(status, enforced, known, rank)

    cells = [
        _cell(row, dims, measures, status[i], min_measure_people) for i, row in enumerate(rows)
    ]
    return AggregateResult(
        cells=cells,
        total_people=total_people if total_published else None,
        total_records=frame.height if total_published else None,
        suppressed_cells=sum(1 for s in status if s),
        complementary_cells=sum(1 for s in status if s == "complementary"),
        population=population,
    )


def complementary_safe(
    cells: list[dict[str, Any]], group_by: Sequence[str], total_published: bool
) -> bool:
    """Whether no line, and not the published total, has exactly one suppressed cell.

    A line of a single cell is exempt (its cell is its margin; see :func:`aggregate`).

    Args:
        cells: :attr:`AggregateResult.cells`.
        group_by: the dimensions the cells were grouped by.
        total_published: whether the total was published.

    Returns:
        True when no suppressed cell is its line's (or the total's) only suppressed cell.
    """
    dims = list(group_by)
    keys = [tuple(_canonical(cell[c]) for c in dims) for cell in cells]
    lines = [line for line in _lines(keys, len(dims)) if len(line) > 1]
    if total_published:
        lines.append(list(range(len(cells))))
    return all(sum(1 for i in line if cells[i]["suppressed"]) != 1 for line in lines)


def _check_arguments(
    frame: pl.DataFrame,
    dims: list[str],
    measures: list[Measure],
    min_cell: int,
    person_column: str,
) -> None:
    if min_cell < 2:
        raise ValueError(MIN_CELL_TOO_SMALL)
    if len(dims) > MAX_GROUP_BY:
        raise ValueError(TOO_MANY_DIMENSIONS)
    if len(set(dims)) != len(dims):
        raise ValueError(DUPLICATE_DIMENSION)
    if person_column not in frame.columns:
        raise ValueError(PERSON_COLUMN_MISSING)
    named = dims + [m.column for m in measures]
    if person_column in named:
        raise ValueError(PERSON_COLUMN_USED)
    if any(column not in frame.columns for column in named):
        raise ValueError(UNKNOWN_COLUMN)
    keys = [m.key for m in measures]
    if len(set(keys)) != len(keys) or set(keys) & (_RESERVED_KEYS | set(dims)):
        raise ValueError(DUPLICATE_MEASURE)
    for measure in measures:
        if measure.stat not in get_args(Stat):
            raise ValueError(UNSUPPORTED_STAT)
        if not frame.schema[measure.column].is_numeric():
            raise ValueError(NON_NUMERIC_MEASURE)


def _group(
    frame: pl.DataFrame, dims: list[str], measures: list[Measure], person_column: str
) -> pl.DataFrame:
    person = pl.col(person_column)
    aggregations = [person.n_unique().alias("people"), pl.len().alias("records")]
    for column in dict.fromkeys(m.column for m in measures):
        present = _values(column).is_not_null()
        aggregations.append(person.filter(present).n_unique().alias(f"__with_{column}"))
    for measure in measures:
        values = _values(measure.column)
        if measure.stat == "mean":
            statistic = values.mean()
        else:
            statistic = values.quantile(_QUANTILES[measure.stat], interpolation="linear")
        aggregations.append(statistic.alias(measure.key))
    if not dims:
        grouped = frame.select(aggregations)
        return grouped.filter(pl.col("people") > 0)
    return frame.group_by(dims).agg(aggregations).sort(dims, nulls_last=True)


def _values(column: str) -> pl.Expr:
    """A measure column as floats, NaN counted as missing."""
    return pl.col(column).cast(pl.Float64()).fill_nan(None)


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return _NAN
    return value


def _lines_by_dimension(
    keys: list[tuple[Any, ...]], dims: int
) -> list[dict[tuple[Any, ...], list[int]]]:
    """For each dimension, the cells sharing every other group value, by those values."""
    by_dimension: list[dict[tuple[Any, ...], list[int]]] = []
    for dim in range(dims):
        buckets: dict[tuple[Any, ...], list[int]] = {}
        for index, key in enumerate(keys):
            buckets.setdefault(key[:dim] + key[dim + 1 :], []).append(index)
        by_dimension.append(buckets)
    return by_dimension


def _lines(keys: list[tuple[Any, ...]], dims: int) -> list[list[int]]:
    return [cells for buckets in _lines_by_dimension(keys, dims) for cells in buckets.values()]


def _close_lines(status: list[str | None], lines: list[list[int]], rank: list[tuple]) -> None:
    """Until stable, give every line with exactly one suppressed cell a second one.

    The second is an open cell of the line, preferring (after ``rank``'s first element, which
    marks cells alone in a line) cells that also give a second suppressed cell to another
    line with only one, so that suppressions close into rectangles instead of cascading;
    then the smallest by ``rank``.
    """
    memberships: list[list[int]] = [[] for _ in status]
    for number, line in enumerate(lines):
        for i in line:
            memberships[i].append(number)
    hidden = [sum(1 for i in line if status[i]) for line in lines]
    changed = True
    while changed:
        changed = False
        for number, line in enumerate(lines):
            if hidden[number] != 1:
                continue
            pick = min(
                (i for i in line if not status[i]),
                key=lambda i, number=number: (
                    rank[i][0],
                    -sum(1 for other in memberships[i] if other != number and hidden[other] == 1),
                    rank[i],
                ),
            )
            status[pick] = "complementary"
            for other in memberships[pick]:
                hidden[other] += 1
            changed = True


def _known_margins(
    frame: pl.DataFrame,
    dims: list[str],
    keys: list[tuple[Any, ...]],
    person_column: str,
    min_cell: int,
) -> list[list[int]]:
    """The lines whose margin another query would publish: those of at least k people."""
    known: list[list[int]] = []
    for dim, buckets in enumerate(_lines_by_dimension(keys, len(dims))):
        others = dims[:dim] + dims[dim + 1 :]
        margins = frame.group_by(others).agg(pl.col(person_column).n_unique().alias("people"))
        people = {
            tuple(_canonical(row[c]) for c in others): row["people"] for row in margins.to_dicts()
        }
        known.extend(cells for key, cells in buckets.items() if people[key] >= min_cell)
    return known


def _determined(status: list[str | None], equations: list[list[int]]) -> list[int]:
    """The suppressed cells whose value the equations fix, by exact elimination mod a prime.

    A cell is fixed when its unit vector lies in the row space of the equations restricted
    to the suppressed cells: in reduced row echelon form it is a pivot whose row has no
    entry in a free column.
    """
    hidden = [i for i, s in enumerate(status) if s]
    column = {cell: c for c, cell in enumerate(hidden)}
    rows = [[column[i] for i in eq if status[i]] for eq in equations]
    rows = [r for r in rows if r]
    if not rows:
        return []
    matrix = np.zeros((len(rows), len(hidden)), dtype=np.int64)
    for r, cols in enumerate(rows):
        matrix[r, cols] = 1
    pivots: list[int] = []
    for col in range(len(hidden)):
        top = len(pivots)
        if top == matrix.shape[0]:
            break
        candidates = np.flatnonzero(matrix[top:, col])
        if candidates.size == 0:
            continue
        found = top + int(candidates[0])
        matrix[[top, found]] = matrix[[found, top]]
        inverse = pow(int(matrix[top, col]), _PRIME - 2, _PRIME)
        matrix[top] = matrix[top] * inverse % _PRIME
        others = np.flatnonzero(matrix[:, col])
        others = others[others != top]
        if others.size:
            update = np.outer(matrix[others, col], matrix[top]) % _PRIME
            matrix[others] = (matrix[others] - update) % _PRIME
        pivots.append(col)
    free = np.setdiff1d(np.arange(len(hidden)), pivots)
    return sorted(hidden[col] for row, col in enumerate(pivots) if not matrix[row, free].any())


def _audit(
    status: list[str | None],
    lines: list[list[int]],
    known: list[list[int]],
    rank: list[tuple],
) -> None:
    """Suppress more cells until no suppressed cell is pinned down by the published numbers.

    The equations are the lines with a known margin and the published total. A cell that
    the margins pin down even with every cell suppressed is left alone: hiding more here
    cannot help: that is differencing across queries, which no single result can prevent
    (the ledger refuses its pairwise form).
    Otherwise the first open cell (near the pinned one first, then by ``rank``) whose
    suppression frees it is suppressed; when no single cell does, the first is suppressed
    anyway and the search goes on. Adding unknowns never pins a freed cell again, and with
    every cell suppressed the cell is free, so this ends.
    """
    equations = [*known, list(range(len(status)))]
    by_margins = set(_determined(["margin"] * len(status), equations))
    while True:
        determined = [i for i in _determined(status, equations) if i not in by_margins]
        if not determined:
            return
        target = determined[0]
        near = {i for line in known if target in line for i in line}
        candidates = sorted(
            (i for i in range(len(status)) if not status[i]),
            key=lambda i: (i not in near, rank[i]),
        )
        chosen: list[str | None] | None = None
        for candidate in candidates[:_MAX_FIX_TRIALS]:
            trial = status.copy()
            trial[candidate] = "complementary"
            _close_lines(trial, lines, rank)
            freed = target not in _determined(trial, equations)
            if chosen is None or freed:
                chosen = trial
            if freed:
                break
        assert chosen is not None  # a cell not pinned by margins alone has an open cell
        status[:] = chosen


def _cell(
    row: dict[str, Any],
    dims: list[str],
    measures: list[Measure],
    suppression: str | None,
    min_measure_people: int,
) -> dict[str, Any]:
    cell: dict[str, Any] = {c: row[c] for c in dims}
    hidden = suppression is not None
    cell["people"] = None if hidden else row["people"]
    cell["records"] = None if hidden else row["records"]
    cell["suppressed"] = hidden
    cell["suppression"] = suppression
    for measure in measures:
        enough = row[f"__with_{measure.column}"] >= min_measure_people
        cell[measure.key] = row[measure.key] if enough and not hidden else None
    return cell


_SCHEMA = """
CREATE TABLE IF NOT EXISTS aggregate_populations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    principal TEXT NOT NULL,
    view TEXT NOT NULL,
    sketch BLOB NOT NULL,
    hashes BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS aggregate_populations_by_principal_view
    ON aggregate_populations (principal, view, id);
"""
_BUSY_TIMEOUT_SECONDS = 10.0
_SKETCH_BITS = 10
"""The sketch counts hashes in 2**10 buckets by their top bits."""
_SKETCH_MAX = np.iinfo(np.uint16).max
_NEAR_MISS_FACTOR = 2
"""Differences below this many times ``min_difference`` are computed exactly and reported."""
_IDS_PER_SELECT = 500


class QueryLedger:
    """Per-principal memory of aggregate populations, to refuse differencing attacks.

    A population is stored in sqlite as the zlib-compressed sorted little-endian
    ``array('q')`` of 64-bit blake2b hashes of its pseudonyms, next to a sketch: how many of
    those hashes fall in each of 1,024 buckets. Since the sum over buckets of the count
    differences is a lower bound on the symmetric difference, only populations whose sketch
    comes near are decompressed and compared exactly.

    The file survives restarts and is shared by processes on one machine: WAL mode, a busy
    timeout, and an immediate transaction around each check, so two processes cannot both
    pass a check and then record a differencing pair. One connection serves all threads
    behind a lock.
    """

    def __init__(self, path: Path | None, *, window: int = 500) -> None:
        """Args:
            path: the sqlite file; None keeps the ledger in memory (tests).
            window: how many recent populations per principal and view are compared.

        Raises:
            ValueError: when the window is below 1.
        """
        if window < 1:
            raise ValueError(WINDOW_TOO_SMALL)
        self._window = window
        self._lock = threading.Lock()
        connection = sqlite3.connect(
            ":memory:" if path is None else str(path),
            timeout=_BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
            check_same_thread=False,
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_SECONDS * 1000)}")
        connection.executescript(_SCHEMA)
        self._connection: sqlite3.Connection | None = connection

    def check_and_record(
        self, principal: str, view: str, population: Sequence[str], *, min_difference: int
    ) -> LedgerDecision:
        """Refuse a population within ``min_difference`` people of an earlier one, else record it.

        The population is compared with this principal's last ``window`` populations of the
        same view. A symmetric difference of 1 to ``min_difference - 1`` people refuses the
        query and records nothing. An identical population is allowed and moves to the front
        of the window instead of taking a second place in it.

        Args:
            principal: who asks (the authenticated subject).
            view: the view aggregated.
            population: the distinct person pseudonyms the aggregate covers.
            min_difference: the smallest allowed nonzero difference, normally ``min_cell``.

        Returns:
            The decision. ``closest_difference`` is the smallest nonzero symmetric difference
            to an earlier population when it is below ``2 * min_difference`` (a refusal or a
            near miss worth auditing), else None: farther populations are ruled out by their
            sketch without being compared exactly.

        Raises:
            ValueError: when ``min_difference`` is below 2.
            RuntimeError: when the ledger is closed.
            sqlite3.OperationalError: when the database stays locked past the busy timeout.
        """
        if min_difference < 2:
            raise ValueError(MIN_DIFFERENCE_TOO_SMALL)
        current = _population_hashes(population)
        sketch = _sketch(current)
        horizon = _NEAR_MISS_FACTOR * min_difference
        with self._lock:
            connection = self._connection
            if connection is None:
                raise RuntimeError(LEDGER_CLOSED)
            connection.execute("BEGIN IMMEDIATE")
            try:
                near = _near_ids(connection, principal, view, self._window, sketch, horizon)
                closest, identical = _closest_difference(connection, current, near)
                if closest is not None and closest < min_difference:
                    connection.execute("ROLLBACK")
                    return LedgerDecision(False, DIFFERENCING_SUSPECTED, closest)
                connection.executemany(
                    "DELETE FROM aggregate_populations WHERE id = ?", [(i,) for i in identical]
                )
                connection.execute(
                    "INSERT INTO aggregate_populations (principal, view, sketch, hashes)"
                    " VALUES (?, ?, ?, ?)",
                    (
                        principal,
                        view,
                        sketch.tobytes(),
                        zlib.compress(current.astype("<i8").tobytes()),
                    ),
                )
                connection.execute(
                    "DELETE FROM aggregate_populations WHERE principal = ? AND view = ?"
                    " AND id <= (SELECT id FROM aggregate_populations"
                    " WHERE principal = ? AND view = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (principal, view, principal, view, self._window),
                )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return LedgerDecision(True, None, closest)

    def close(self) -> None:
        """Close the database connection; later checks raise. Closing twice is harmless."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def _population_hashes(population: Sequence[str]) -> np.ndarray:
    """The sorted distinct 64-bit blake2b hashes of the pseudonyms, little-endian."""
    digests = b"".join(blake2b(person.encode(), digest_size=8).digest() for person in population)
    return np.unique(np.frombuffer(digests, dtype="<i8"))


def _sketch(hashes: np.ndarray) -> np.ndarray:
    """Counts per bucket of the hashes' top bits (saturating, which keeps the bound valid)."""
    buckets = (hashes.view("<u8") >> np.uint64(64 - _SKETCH_BITS)).astype(np.intp)
    counts = np.bincount(buckets, minlength=1 << _SKETCH_BITS)
    return np.minimum(counts, _SKETCH_MAX).astype("<u2")


def _near_ids(
    connection: sqlite3.Connection,
    principal: str,
    view: str,
    window: int,
    sketch: np.ndarray,
    horizon: int,
) -> list[int]:
    """Ids of the window's populations whose sketch bound is below ``horizon``."""
    rows = connection.execute(
        "SELECT id, sketch FROM aggregate_populations"
        " WHERE principal = ? AND view = ? ORDER BY id DESC LIMIT ?",
        (principal, view, window),
    ).fetchall()
    if not rows:
        return []
    sketches = np.frombuffer(b"".join(row[1] for row in rows), dtype="<u2")
    sketches = sketches.reshape(len(rows), sketch.size).astype(np.int32)
    bounds = np.abs(sketches - sketch.astype(np.int32)).sum(axis=1)
    return [row[0] for row, bound in zip(rows, bounds, strict=True) if bound < horizon]


def _closest_difference(
    connection: sqlite3.Connection, current: np.ndarray, ids: list[int]
) -> tuple[int | None, list[int]]:
    """The smallest nonzero symmetric difference to these populations, and identical ones."""
    best: int | None = None
    identical: list[int] = []
    for start in range(0, len(ids), _IDS_PER_SELECT):
        chunk = ids[start : start + _IDS_PER_SELECT]
        placeholders = ",".join("?" * len(chunk))
        rows = connection.execute(
            f"SELECT id, hashes FROM aggregate_populations WHERE id IN ({placeholders})",
            chunk,
        ).fetchall()
        for row_id, blob in rows:
            stored = np.frombuffer(zlib.decompress(blob), dtype="<i8")
            difference = current.size + stored.size - 2 * _shared(current, stored)
            if difference == 0:
                identical.append(row_id)
            elif best is None or difference < best:
                best = difference
    return best, identical


def _shared(a: np.ndarray, b: np.ndarray) -> int:
    """How many values two sorted arrays of distinct values have in common.

    A stable sort of two concatenated sorted runs is a linear merge; common values end up
    next to each other.
    """
    merged = np.concatenate((a, b))
    merged.sort(kind="stable")
    return int(np.count_nonzero(merged[1:] == merged[:-1]))
