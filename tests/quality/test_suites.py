"""The suites restate contracts owned elsewhere (quality may not import pipelines or
mcp_catalog); these tests hold the copies equal to the originals."""

import subprocess
import sys

import pytest

from mcp_catalog.governance import views
from pipelines import ehr
from quality.suite_tables import (
    CONSENT_SUITE_TABLES,
    GENOMICS_SUITE_TABLES,
    IDENTITY_SUITE_TABLES,
    IMAGING_SUITE_TABLES,
    LAB_SUITE_TABLES,
    TRIAL_SUITE_TABLES,
)
from quality.suites import SUITE_TABLES, UnknownTableError, references_for, suite_for
from quality.suites.bronze import CROSSWALK_COLUMNS, FILE_LEDGER_COLUMNS, REJECTS_COLUMNS
from quality.suites.gold import FORBIDDEN_COLUMNS, GOLD_VIEWS
from quality.suites.identity import CONFLICTS_PATH, IDENTITY_SUITES


def test_every_ehr_table_of_the_pipeline_has_a_suite():
    expected = [
        *[f"bronze/ehr/{t}" for t in ehr.BRONZE_TABLES],
        "bronze/ehr/files",
        "bronze/ehr/rejects",
        "restricted/person_crosswalk",
        "restricted/identity_conflicts",
        *[f"silver/ehr/{t}" for t in ehr.SILVER_TABLES],
        *[spec.path for spec in views.RESEARCH_VIEWS],
        *GENOMICS_SUITE_TABLES,
        *IMAGING_SUITE_TABLES,
        *LAB_SUITE_TABLES,
        *TRIAL_SUITE_TABLES,
        *CONSENT_SUITE_TABLES,
    ]
    assert sorted(SUITE_TABLES) == sorted(expected)
    assert (
        len(SUITE_TABLES)
        == len(set(SUITE_TABLES))
        == 26
        + len(IDENTITY_SUITE_TABLES)
        + len(GENOMICS_SUITE_TABLES)
        + len(IMAGING_SUITE_TABLES)
        + len(LAB_SUITE_TABLES)
        + len(TRIAL_SUITE_TABLES)
        + len(CONSENT_SUITE_TABLES)
    )
    assert [suite_for(t).table for t in SUITE_TABLES] == list(SUITE_TABLES)


def test_the_identity_suites_are_named_by_their_assets_and_run_where_their_rows_live():
    from pipelines.checks import lake_path
    from pipelines.identity import CONFLICTS_PATH as PIPELINE_CONFLICTS_PATH

    assert IDENTITY_SUITE_TABLES == ("restricted/person_crosswalk", "restricted/identity_conflicts")
    assert tuple(IDENTITY_SUITES) == IDENTITY_SUITE_TABLES
    assert [suite_for(t).table for t in IDENTITY_SUITE_TABLES] == list(IDENTITY_SUITE_TABLES)
    assert CONFLICTS_PATH == PIPELINE_CONFLICTS_PATH
    assert lake_path("restricted/identity_conflicts") == CONFLICTS_PATH
    assert lake_path("restricted/person_crosswalk") == "restricted/person_crosswalk"
    with pytest.raises(UnknownTableError):
        suite_for(CONFLICTS_PATH)


def test_ledger_rejects_and_crosswalk_columns_match_the_pipeline_schemas():
    assert tuple(ehr.FILE_LEDGER_SCHEMA) == FILE_LEDGER_COLUMNS
    assert tuple(ehr.REJECTS_SCHEMA) == REJECTS_COLUMNS
    assert tuple(ehr.CROSSWALK_SCHEMA) == CROSSWALK_COLUMNS


def test_gold_suites_expect_exactly_the_research_view_columns():
    assert [v.name for v in GOLD_VIEWS] == [s.name for s in views.RESEARCH_VIEWS]
    for view, spec in zip(GOLD_VIEWS, views.RESEARCH_VIEWS, strict=True):
        assert view.columns == tuple(c.name for c in spec.columns), spec.path
        assert suite_for(spec.path).columns == view.columns
        assert not set(view.columns) & set(FORBIDDEN_COLUMNS), spec.path


def test_references_point_silver_and_gold_events_at_their_own_layer():
    assert references_for("silver/ehr/patients") == ()
    assert references_for("silver/ehr/encounters") == ("silver/ehr/patients",)
    assert references_for("silver/ehr/consents") == ("silver/ehr/patients",)
    assert references_for("silver/ehr/observations") == (
        "silver/ehr/patients",
        "silver/ehr/encounters",
    )
    assert references_for("gold/research/patients") == ()
    assert references_for("gold/research/encounters") == ("gold/research/patients",)
    assert references_for("gold/research/procedures") == (
        "gold/research/patients",
        "gold/research/encounters",
    )
    assert all(
        references_for(t) == ()
        for t in SUITE_TABLES
        if not t.startswith(("s", "g")) and t not in GENOMICS_SUITE_TABLES
    )


def test_an_unknown_table_raises_a_key_error_that_says_what_to_use():
    with pytest.raises(KeyError) as caught:
        references_for("silver/ehr/specimens")
    assert isinstance(caught.value, UnknownTableError)
    assert "SUITE_TABLES" in str(caught.value)


@pytest.mark.parametrize("table", SUITE_TABLES)
def test_each_suite_checks_its_column_set_and_describes_every_check_once(table):
    suite = suite_for(table)
    assert suite.checks[0].expectation == "expect_table_columns_to_match_set"
    descriptions = [c.description for c in suite.checks]
    assert len(descriptions) == len(set(descriptions))
    assert {c.severity for c in suite.checks} <= {"error", "warning"}
    assert set(suite.gx_columns()) <= set(suite.columns)
    assert set(suite.references) == set(references_for(table))


def test_importing_quality_does_not_import_great_expectations():
    code = (
        "import sys, quality, quality.codes, quality.results, quality.suites, quality.validation;"
        "print('great_expectations' in sys.modules, 'dagster' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]
