"""What a suite run reports: one outcome per expectation, with counts and never values.

These are the only objects that leave ``quality`` after a validation. They carry how many
rows were checked and how many failed, so they can go to Dagster check metadata, the
catalog and logs without exposing a single patient value.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Severity = Literal["error", "warning"]
"""``error``: structural, identity or privacy problem; ``warning``: plausibility."""


@dataclass(frozen=True)
class ExpectationOutcome:
    """The outcome of one expectation: what was checked and how many rows failed it."""

    expectation: str
    """Great Expectations expectation type, e.g. ``expect_column_values_to_be_unique``."""
    column: str | None
    """The column checked, ``"a,b"`` for a pair or compound key, None for table checks."""
    description: str
    """One short sentence saying what must hold, e.g. ``id is unique``."""
    severity: Severity
    success: bool
    element_count: int | None
    """Rows checked (for a column-set check: columns in the table)."""
    unexpected_count: int | None
    """Rows (for a column-set check: columns missing or unexpected) that failed."""
    unexpected_percent: float | None
    """``unexpected_count`` as a percentage of the rows the check applies to (non-null
    values); None for a column-set check.

    All three are None when the expectation could not be evaluated at all (a column it
    reads is missing, say): ``success`` is then False."""

    def to_dict(self) -> dict[str, Any]:
        """The outcome as a JSON-serialisable dict."""
        return {
            "expectation": self.expectation,
            "column": self.column,
            "description": self.description,
            "severity": self.severity,
            "success": self.success,
            "element_count": self.element_count,
            "unexpected_count": self.unexpected_count,
            "unexpected_percent": self.unexpected_percent,
        }


@dataclass(frozen=True)
class SuiteResult:
    """The outcomes of one suite on one table at one time."""

    table: str
    """The table path below the lake root, e.g. ``silver/ehr/observations``."""
    suite: str
    """The expectation suite's name."""
    evaluated_at: datetime
    """When the validation ran (UTC)."""
    rows: int
    outcomes: tuple[ExpectationOutcome, ...]

    @property
    def success(self) -> bool:
        """True when no error-severity expectation failed (warnings do not count)."""
        return not self.errors

    @property
    def errors(self) -> tuple[ExpectationOutcome, ...]:
        """The failed expectations of severity ``error``."""
        return tuple(o for o in self.outcomes if not o.success and o.severity == "error")

    @property
    def warnings(self) -> tuple[ExpectationOutcome, ...]:
        """The failed expectations of severity ``warning``."""
        return tuple(o for o in self.outcomes if not o.success and o.severity == "warning")

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-serialisable dict (``evaluated_at`` as ISO 8601)."""
        return {
            "table": self.table,
            "suite": self.suite,
            "evaluated_at": self.evaluated_at.isoformat(),
            "rows": self.rows,
            "success": self.success,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "outcomes": [o.to_dict() for o in self.outcomes],
        }
