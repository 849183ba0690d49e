"""Run a table's suite in Great Expectations 1.x and report counts, never values.

How a validation runs:

1. Derived checks (check digits, references, ranges per LOINC code, "not in the future")
   become boolean columns, computed in polars.
2. The frame goes to pandas (GX 1.x does not take polars). Only the columns some expectation
   reads carry values; every other column is an all-null placeholder, so GX still sees the
   table's column set but never holds free text, names or codes it does not check.
3. GX validates it against the table's suite with :data:`RESULT_FORMAT`: counts, no values.
4. The outcomes become a :class:`~quality.results.SuiteResult`.

One ephemeral GX context per process holds a pandas data source and, per table, a data
asset, a whole-frame batch definition, the expectation suite and a validation definition,
each built on first use and reused by every later validation of that table.

With ``docs=``, the result is also stored in a file-backed GX project
(:class:`DataDocs`) from which :meth:`DataDocs.build` renders Data Docs. Stored results are
reduced to an allow-list of count fields first, and metric error messages (which can quote
a value) are withheld, so no data value reaches the project.

Great Expectations is imported only when a validation runs: ``import quality`` stays cheap.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import polars as pl

from quality.results import ExpectationOutcome, SuiteResult
from quality.suites import DeriveContext, Suite, UnknownTableError, suite_for

if TYPE_CHECKING:
    import pandas as pd

try:  # advisory file locks where the OS has them (the embedded default: Linux, macOS)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

RESULT_FORMAT: dict[str, Any] = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
    "exclude_unexpected_values": True,
    "return_unexpected_index_query": False,
}
"""Counts and percentages only: no unexpected values, rows, indices or queries."""

CHECK_KEY = "biofed_check"
"""Key in each GX expectation's ``meta`` holding its index in the suite's checks."""

DATASOURCE = "biofed"
BATCH_DEFINITION = "whole_table"

_COUNT_FIELDS = frozenset(
    {
        "element_count",
        "unexpected_count",
        "unexpected_percent",
        "missing_count",
        "missing_percent",
        "unexpected_percent_total",
        "unexpected_percent_nonmissing",
    }
)
_SCHEMA_EXPECTATIONS = frozenset({"expect_table_columns_to_match_set"})
"""Expectations whose ``observed_value`` and ``details`` are column names, not data."""
_WITHHELD = "metric error; the message is withheld because it may quote a data value"

__all__ = [
    "RESULT_FORMAT",
    "DataDocs",
    "MissingReferenceError",
    "UnknownTableError",
    "validate_table",
]


class MissingReferenceError(ValueError):
    """A suite needs other tables (for referential integrity) that were not passed."""

    def __init__(self, table: str, missing: tuple[str, ...]) -> None:
        self.table = table
        self.missing = missing
        super().__init__(
            f"the suite of {table} checks references into {', '.join(missing)}: pass them as "
            f"references={{path: frame}} (quality.suites.references_for({table!r}) lists them)"
        )


# --- preparing the frame -------------------------------------------------------------------


def _derive(
    suite: Suite, frame: pl.DataFrame, references: Mapping[str, pl.DataFrame], now: datetime
) -> pl.DataFrame:
    """The frame with every derived boolean column added (False where inputs are missing)."""
    clashing = [c for c in frame.columns if c in {d.name for d in suite.derived}]
    if clashing:
        # A data column named like a derived one must not be overwritten: keep it visible
        # to the column-set check under another name.
        frame = frame.rename({c: f"{c}__data" for c in clashing})
    context = DeriveContext(references=references, now=now, schema=frame.schema)
    columns = []
    for derived in suite.derived:
        if all(name in frame.columns for name in derived.inputs):
            expression = derived.expression(context)
        else:
            # The check cannot be evaluated: every row fails it (the column-set check says why).
            expression = pl.lit(False)
        columns.append(expression.cast(pl.Boolean).alias(derived.name))
    return frame.with_columns(columns) if columns else frame


def _to_pandas(suite: Suite, frame: pl.DataFrame) -> pd.DataFrame:
    """The frame as pandas with values only in the columns GX reads (and derived columns)."""
    derived = {d.name for d in suite.derived}
    read = set(suite.gx_columns()) | derived
    columns = []
    for name, dtype in frame.schema.items():
        if name not in read:
            # All-null float64: GX sees the column's name; hashing it for the batch
            # fingerprint costs next to nothing.
            columns.append(pl.lit(None, dtype=pl.Float64).alias(name))
        elif isinstance(dtype, pl.Enum | pl.Categorical):
            columns.append(pl.col(name).cast(pl.String))
        elif isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            # Naive UTC: GX's pair metrics call Series.values, which pandas 3.1 deprecates
            # (with a warning) for timezone-aware columns.
            columns.append(pl.col(name).dt.convert_time_zone("UTC").dt.replace_time_zone(None))
        else:
            columns.append(pl.col(name))
    data = frame.select(columns).to_pandas()
    for name in derived & set(data.columns):
        # Nullable booleans would arrive as Python objects; pandas' masked boolean is faster.
        data[name] = data[name].astype("boolean")
    return data


# --- Great Expectations objects --------------------------------------------------------------


def _camel(expectation_type: str) -> str:
    return "".join(part.capitalize() for part in expectation_type.split("_"))


def _gx_suite(suite: Suite) -> Any:
    """A GX ExpectationSuite equivalent to ``suite`` (not yet added to any context)."""
    import great_expectations as gx
    from great_expectations.expectations.metadata_types import FailureSeverity

    derived_names = [d.name for d in suite.derived]
    expectations = []
    for index, check in enumerate(suite.checks):
        kwargs = dict(check.kwargs)
        if check.expectation in _SCHEMA_EXPECTATIONS:
            # Derived columns are part of what GX sees; the data columns are the contract.
            kwargs["column_set"] = [*kwargs["column_set"], *derived_names]
        expectation_class = getattr(gx.expectations, _camel(check.expectation))
        expectations.append(
            expectation_class(
                **kwargs,
                description=check.description,
                severity=FailureSeverity.CRITICAL
                if check.severity == "error"
                else FailureSeverity.WARNING,
                meta={CHECK_KEY: index, "severity": check.severity},
                catch_exceptions=True,
            )
        )
    return gx.ExpectationSuite(name=suite.name, expectations=expectations)


@dataclass
class _Prepared:
    """A table's validation definition (pandas asset, whole-frame batch, registered suite)
    in the process's ephemeral context."""

    validation: Any


class _Runtime:
    """The process's ephemeral GX context and the per-table objects built in it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._context: Any = None
        self._source: Any = None
        self._tables: dict[str, _Prepared] = {}

    def run(self, suite: Suite, data: pd.DataFrame) -> Any:
        """Validate a prepared frame; returns the GX ``ExpectationSuiteValidationResult``."""
        with self._lock:
            if suite.table not in self._tables:
                self._tables[suite.table] = self._prepare(suite)
            validation = self._tables[suite.table].validation
            result = validation.run(
                # A copy: GX fills in defaults in the dict it is given.
                batch_parameters={"dataframe": data},
                result_format=dict(RESULT_FORMAT),
            )
            # The run also kept the result in the context's in-memory store; nothing reads
            # it there, so drop it rather than let a long-lived process accumulate results.
            store = self._context.validation_results_store
            for key in store.list_keys():
                store.remove_key(key)
            return result

    def _prepare(self, suite: Suite) -> _Prepared:
        import great_expectations as gx

        if self._context is None:
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context = gx.get_context(mode="ephemeral")
            # Progress bars would write to stderr on every validation.
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            self._source = context.data_sources.add_pandas(name=DATASOURCE)
            self._context = context
        asset = self._source.add_dataframe_asset(name=suite.name)
        batch_definition = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
        gx_suite = self._context.suites.add(_gx_suite(suite))
        validation = self._context.validation_definitions.add(
            gx.ValidationDefinition(name=suite.name, data=batch_definition, suite=gx_suite)
        )
        return _Prepared(validation)


_RUNTIME = _Runtime()


# --- outcomes --------------------------------------------------------------------------------


def _count(value: Any) -> int | None:
    return None if value is None else int(value)


def _percent(value: Any) -> float | None:
    return None if value is None else float(value)


def _outcome(suite: Suite, result: Any, columns_seen: int) -> tuple[int, ExpectationOutcome]:
    index = int(result.expectation_config.meta[CHECK_KEY])
    check = suite.checks[index]
    details = result.result or {}
    if check.expectation in _SCHEMA_EXPECTATIONS:
        mismatched = details.get("details", {}).get("mismatched", {})
        wrong = len(mismatched.get("unexpected", ())) + len(mismatched.get("missing", ()))
        counts = (columns_seen, wrong if details else None, None)
    else:
        counts = (
            _count(details.get("element_count")),
            _count(details.get("unexpected_count")),
            _percent(details.get("unexpected_percent")),
        )
    return index, ExpectationOutcome(
        expectation=check.expectation,
        column=check.column,
        description=check.description,
        severity=check.severity,
        success=bool(result.success),
        element_count=counts[0],
        unexpected_count=counts[1],
        unexpected_percent=counts[2],
    )


# --- the entry point -------------------------------------------------------------------------


def validate_table(
    table: str,
    frame: pl.DataFrame,
    *,
    references: Mapping[str, pl.DataFrame] | None = None,
    docs: DataDocs | None = None,
) -> SuiteResult:
    """Validate one table with its expectation suite.

    Args:
        table: a path of :data:`quality.suites.SUITE_TABLES`, e.g. ``silver/ehr/encounters``.
        frame: the table's rows (as read from the lake).
        references: the tables :func:`quality.suites.references_for` names, by path.
        docs: a Data Docs project to store the validation result in, if any.

    Returns:
        One outcome per expectation, in suite order, with counts and never values.

    Raises:
        UnknownTableError: (a ``KeyError``) for a table without a suite.
        MissingReferenceError: (a ``ValueError``) when a needed reference is not passed.
    """
    suite = suite_for(table)
    given = references or {}
    missing = tuple(r for r in suite.references if r not in given)
    if missing:
        raise MissingReferenceError(table, missing)
    evaluated_at = datetime.now(UTC)
    derived = _derive(suite, frame, {r: given[r] for r in suite.references}, evaluated_at)
    data = _to_pandas(suite, derived)
    gx_result = _RUNTIME.run(suite, data)
    del data
    outcomes = sorted(_outcome(suite, r, frame.width) for r in gx_result.results)
    if docs is not None:
        docs._store(suite, gx_result, evaluated_at)
    return SuiteResult(
        table=table,
        suite=suite.name,
        evaluated_at=evaluated_at,
        rows=frame.height,
        outcomes=tuple(o for _, o in outcomes),
    )


# --- Data Docs -------------------------------------------------------------------------------


def _scrub(result: Any) -> Any:
    """Reduce a GX suite result, in place, to counts (and, for column-set checks, names)."""
    for each in result.results:
        kind = each.expectation_config.type
        allowed = _COUNT_FIELDS | (
            {"observed_value", "details"} if kind in _SCHEMA_EXPECTATIONS else frozenset()
        )
        kept = {k: v for k, v in (each.result or {}).items() if k in allowed}
        if "unexpected_count" in kept:
            kept["partial_unexpected_list"] = []
        each.result = kept
        info = each.exception_info or {}
        raised = bool(info.get("raised_exception")) or any(
            isinstance(v, dict) and v.get("raised_exception") for v in info.values()
        )
        each.exception_info = {
            "raised_exception": raised,
            "exception_message": _WITHHELD if raised else None,
            "exception_traceback": None,
        }
    return result


class _Projects:
    """File-backed GX contexts by root, and the suites already saved in each, per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._contexts: dict[Path, Any] = {}
        self._saved: set[tuple[Path, str]] = set()

    def context(self, root: Path) -> Any:
        with self._lock:
            if root not in self._contexts:
                import great_expectations as gx

                root.mkdir(parents=True, exist_ok=True)
                self._contexts[root] = gx.get_context(mode="file", context_root_dir=str(root))
            return self._contexts[root]

    def save_suite(self, root: Path, suite: Suite) -> None:
        if (root, suite.name) in self._saved:
            return
        # The code is the source of truth: replace whatever an older version stored.
        self.context(root).suites.add_or_update(_gx_suite(suite))
        self._saved.add((root, suite.name))


_PROJECTS = _Projects()


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Serialise writers to one project across processes (Dagster runs checks in parallel)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".biofed.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class DataDocs:
    """A file-backed Great Expectations project that keeps validation results for Data Docs.

    ``DataDocs(root)`` is cheap: the GX context under ``root`` is opened (and scaffolded on
    first use) once per process and reused. The pipeline keeps one at
    ``<lake>/_quality/gx``.

    Args:
        root: the GX project directory (holds ``great_expectations.yml``).
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"DataDocs({str(self.root)!r})"

    def _store(self, suite: Suite, result: Any, evaluated_at: datetime) -> None:
        """Keep one validation result (scrubbed to counts) and its suite in the project.

        Args:
            suite: the suite that ran.
            result: the GX ``ExpectationSuiteValidationResult`` (scrubbed in place).
            evaluated_at: when the validation ran.
        """
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        _scrub(result)
        # Name the run after the suite so Data Docs lists runs by table, not as "__none__".
        run_time = getattr(result.meta.get("run_id"), "run_time", None) or evaluated_at
        run_id = RunIdentifier(run_name=suite.name, run_time=run_time)
        result.meta["run_id"] = run_id
        suite_id = ExpectationSuiteIdentifier(name=suite.name)
        key = ValidationResultIdentifier(
            expectation_suite_identifier=suite_id,
            run_id=run_id,
            batch_identifier=result.batch_id or f"{DATASOURCE}-{suite.name}",
        )
        with _locked(self.root):
            _PROJECTS.save_suite(self.root, suite)
            _PROJECTS.context(self.root).validation_results_store.store_validation_results(
                suite_validation_result=result,
                suite_validation_result_identifier=key,
                expectation_suite_identifier=suite_id,
            )

    def build(self) -> Path:
        """Render the Data Docs site from every stored suite and result.

        Returns:
            The path of the site's ``index.html``.
        """
        with _locked(self.root):
            urls = _PROJECTS.context(self.root).build_data_docs()
        url = next(iter(urls.values()))
        return Path(unquote(urlparse(url).path)) if url.startswith("file:") else Path(url)
