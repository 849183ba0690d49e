import json
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime

import pytest

from quality.results import ExpectationOutcome, SuiteResult


def _outcome(description: str, severity: str, success: bool, unexpected: int) -> ExpectationOutcome:
    return ExpectationOutcome(
        expectation="expect_column_values_to_be_unique",
        column="id",
        description=description,
        severity=severity,
        success=success,
        element_count=10,
        unexpected_count=unexpected,
        unexpected_percent=unexpected * 10.0,
    )


def _result(*outcomes: ExpectationOutcome) -> SuiteResult:
    return SuiteResult(
        table="silver/ehr/observations",
        suite="silver_ehr_observations",
        evaluated_at=datetime(2026, 11, 2, 8, 30, tzinfo=UTC),
        rows=10,
        outcomes=outcomes,
    )


def test_a_failed_warning_does_not_fail_the_suite():
    passed = _outcome("id is unique", "error", True, 0)
    implausible = _outcome("values are plausible", "warning", False, 2)
    result = _result(passed, implausible)
    assert result.success
    assert result.errors == ()
    assert result.warnings == (implausible,)


def test_a_failed_error_fails_the_suite():
    duplicate = _outcome("id is unique", "error", False, 2)
    result = _result(duplicate, _outcome("values are plausible", "warning", True, 0))
    assert not result.success
    assert result.errors == (duplicate,)
    assert result.warnings == ()


def test_to_dict_is_json_with_iso_times_and_counts():
    result = _result(_outcome("id is unique", "error", False, 2))
    text = json.dumps(result.to_dict())
    assert json.loads(text) == {
        "table": "silver/ehr/observations",
        "suite": "silver_ehr_observations",
        "evaluated_at": "2026-11-02T08:30:00+00:00",
        "rows": 10,
        "success": False,
        "errors": 1,
        "warnings": 0,
        "outcomes": [
            {
                "expectation": "expect_column_values_to_be_unique",
                "column": "id",
                "description": "id is unique",
                "severity": "error",
                "success": False,
                "element_count": 10,
                "unexpected_count": 2,
                "unexpected_percent": 20.0,
            }
        ],
    }


def test_results_are_frozen():
    result = _result()
    with pytest.raises(FrozenInstanceError):
        result.rows = 3  # type: ignore[misc]
