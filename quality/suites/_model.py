"""Suites as plain data: what each expectation checks, without importing Great Expectations.

A :class:`Check` names a Great Expectations expectation type and its arguments. Anything
that needs computing first (a check digit, a lookup in another table, a range that depends
on the LOINC code) is a :class:`Derived` boolean column, computed in polars and then
validated in Great Expectations as "always True", so every outcome is still recorded by GX.
A derived value is None where the check does not apply (no code, another code system), and
GX skips nulls.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from quality.results import Severity

DERIVED_PREFIX = "qc_"
"""Derived columns are named ``qc_<what>`` so they cannot clash with data columns."""


@dataclass(frozen=True)
class Derived:
    """A boolean column computed in polars before validation."""

    name: str
    """Column name, starting with :data:`DERIVED_PREFIX`."""
    inputs: tuple[str, ...]
    """Columns of the validated frame the expression reads."""
    expression: Callable[["DeriveContext"], pl.Expr]
    """Builds the expression; True passes, False fails, null means not applicable."""


@dataclass(frozen=True)
class DeriveContext:
    """What a derived expression may use besides the frame's own columns."""

    references: Mapping[str, pl.DataFrame]
    """Other tables, keyed by table path (only those the suite declares)."""
    now: datetime
    """The validation time (UTC): "not in the future" means not after this."""
    schema: Mapping[str, pl.DataType]
    """The validated frame's columns and dtypes (for checks that scan every text column)."""


@dataclass(frozen=True)
class Check:
    """One expectation of a suite."""

    expectation: str
    """Great Expectations expectation type, e.g. ``expect_column_values_to_be_unique``."""
    kwargs: Mapping[str, Any]
    """The expectation's arguments (``column``, ``value_set``, ``regex``, ...)."""
    description: str
    """One short sentence saying what must hold."""
    severity: Severity = "error"
    column: str | None = None
    """The data column(s) reported (``"a,b"`` for pairs); for a derived check, its inputs."""
    derived: Derived | None = field(default=None, compare=False)

    def gx_columns(self) -> tuple[str, ...]:
        """The columns Great Expectations reads for this check (a derived check: its own)."""
        names: list[str] = []
        for key in ("column", "column_A", "column_B"):
            if key in self.kwargs:
                names.append(self.kwargs[key])
        names.extend(self.kwargs.get("column_list", ()))
        return tuple(names)


@dataclass(frozen=True)
class Suite:
    """The expectation suite of one table."""

    table: str
    """The table path below the lake root, e.g. ``silver/ehr/observations``."""
    columns: tuple[str, ...]
    """The table's expected columns, in order."""
    checks: tuple[Check, ...]
    references: tuple[str, ...] = ()
    """Other tables the derived checks read (referential integrity)."""

    @property
    def name(self) -> str:
        """The suite's name in Great Expectations: the path with ``/`` as ``_``, no dots."""
        return self.table.replace("/", "_")

    @property
    def derived(self) -> tuple[Derived, ...]:
        """The derived columns the checks need, each once, in check order."""
        seen: dict[str, Derived] = {}
        for check in self.checks:
            if check.derived is not None:
                seen.setdefault(check.derived.name, check.derived)
        return tuple(seen.values())

    def gx_columns(self) -> tuple[str, ...]:
        """Data columns whose values Great Expectations reads; every other column reaches GX
        as an empty placeholder (derived checks read their inputs in polars, not in GX)."""
        names: dict[str, None] = {}
        for check in self.checks:
            for name in check.gx_columns():
                if not name.startswith(DERIVED_PREFIX):
                    names[name] = None
        return tuple(names)
