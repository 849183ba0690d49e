"""The unified consent table: FHIR Consent and SDTM disposition records, latest decision wins,
research consent for every view, study consent for that study's trial views."""

import dataclasses
from datetime import UTC, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mcp_catalog.governance.consent import (
    BASES,
    CONSENT_SCHEMA,
    DECISIONS,
    SOURCE_SILOS,
    ConsentTableError,
    consent_events,
    consent_status,
    consented_people,
    current_decisions,
    fhir_consent_events,
    trial_consent_events,
    withdrawn_from_studies,
)
from mcp_catalog.governance.deid import Pseudonyms, keyed_hash
from mcp_catalog.governance.trials import DS
from mcp_catalog.governance.views import build_view
from quality.suites import consent as consent_suite
from tests.mcp_catalog.test_trial_views import DS_SCHEMA, SILVER, UNBLINDED, UNLISTED, VIEWS
from tests.mcp_catalog.test_trial_views import _ctx as trial_context

T = pl.Datetime("us", "UTC")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
FHIR_SCHEMA = {
    "id": pl.String(),
    "person_key": pl.String(),
    "status": pl.String(),
    "scope": pl.String(),
    "provision_type": pl.String(),
    "provision_start": T,
    "provision_end": T,
    "date_time": T,
    "source_file": pl.String(),
    "source_locator": pl.String(),
}


def _at(year: int, month: int = 1, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def _fhir(rows) -> pl.DataFrame:
    """(id, person, status, scope, provision, start, end, recorded) rows as silver consents."""
    return pl.DataFrame(
        [(*row, "Consent.ndjson", f"line:{n}") for n, row in enumerate(rows, 1)],
        schema=FHIR_SCHEMA,
        orient="row",
    )


def _ds(rows) -> pl.DataFrame:
    """(usubjid, person, link, seq, term, decod, category, start) rows as silver DS."""
    return pl.DataFrame(
        [
            {
                "studyid": "S-1",
                "usubjid": usubjid,
                "person_key": person,
                "link_status": link,
                "dsseq": seq,
                "dsterm": term,
                "dsdecod": decod,
                "dscat": category,
                "dsstdtc": start,
                "source_file": "S-1/ds.xpt",
                "source_locator": f"row:{int(seq)}",
            }
            for usubjid, person, link, seq, term, decod, category, start in rows
        ],
        schema={c: DS_SCHEMA[c] for c in DS_SCHEMA},
    )


def _events(rows) -> pl.DataFrame:
    """(id, person, scope, study, decision, status, recorded) rows as unified events."""
    return pl.DataFrame(
        [
            {
                "consent_id": cid,
                "person_key": person,
                "scope": scope,
                "study_id": study,
                "decision": decision,
                "status": status,
                "recorded_at": recorded,
                "basis": "fhir_consent" if study is None else "informed_consent_obtained",
                "source_silo": "ehr" if study is None else "trials",
                "source_file": "f",
                "source_locator": "l",
            }
            for cid, person, scope, study, decision, status, recorded in rows
        ],
        schema=CONSENT_SCHEMA,
    )


# -- sources -------------------------------------------------------------------------------


def test_fhir_consents_become_general_decisions_that_keep_their_source():
    fhir = _fhir(
        [
            ("c1", "pk-1", "active", "research", "permit", _at(2020), None, _at(2020)),
            ("c2", "pk-2", "inactive", "research", "permit", None, _at(2024), _at(2024)),
            ("c3", "pk-3", "active", "research", "deny", None, None, _at(2021)),
            ("c4", "pk-4", "active", "research", None, None, None, _at(2021)),
            ("c5", None, "active", "research", "permit", None, None, _at(2021)),
        ]
    )
    expected = pl.DataFrame(
        {
            "consent_id": ["ehr:c1", "ehr:c2", "ehr:c3", "ehr:c4"],
            "person_key": ["pk-1", "pk-2", "pk-3", "pk-4"],
            "scope": ["research"] * 4,
            "study_id": [None] * 4,
            "decision": ["permit", "permit", "deny", "deny"],
            "status": ["active", "inactive", "active", "active"],
            "provision_start": [_at(2020), None, None, None],
            "provision_end": [None, _at(2024), None, None],
            "recorded_at": [_at(2020), _at(2024), _at(2021), _at(2021)],
            "basis": ["fhir_consent"] * 4,
            "source_silo": ["ehr"] * 4,
            "source_file": ["Consent.ndjson"] * 4,
            "source_locator": ["line:1", "line:2", "line:3", "line:4"],
        },
        schema=CONSENT_SCHEMA,
    )
    assert_frame_equal(fhir_consent_events(fhir), expected)


def test_only_the_consent_milestone_and_records_saying_consent_was_withdrawn_are_decisions():
    ds = _ds(
        [
            ("U1", "pk-1", "linked", 1.0, "INFORMED CONSENT OBTAINED", "INFORMED CONSENT OBTAINED",
             "PROTOCOL MILESTONE", "2024-01-10"),
            ("U1", "pk-1", "linked", 2.0, "RANDOMIZED", "RANDOMIZED", "PROTOCOL MILESTONE",
             "2024-01-20"),
            ("U1", "pk-1", "linked", 3.0, "Subject withdrew consent", "WITHDRAWAL BY SUBJECT",
             "DISPOSITION EVENT", "2024-05-02T10:30"),
            # Left the study (stopped treatment): not a consent withdrawal.
            ("U2", "pk-2", "linked", 1.0, "Moved to another city", "WITHDRAWAL BY SUBJECT",
             "DISPOSITION EVENT", "2024-06-01"),
            ("U2", "pk-2", "linked", 2.0, "withdrew from treatment", "ADVERSE EVENT",
             "DISPOSITION EVENT", "2024-06-01"),
            ("U3", "pk-3", "linked", 1.0, "Parent revoked consent", "WITHDRAWAL BY PARENT/GUARDIAN",
             "DISPOSITION EVENT", "2024-07"),
            ("U4", "pk-4", "linked", 1.0, "OTHER", "WITHDRAWAL OF CONSENT", "DISPOSITION EVENT",
             "2024-08-01"),
            ("U5", "pk-5", "linked", 1.0, "Consent withdrawn after the rash", "ADVERSE EVENT",
             "DISPOSITION EVENT", "2024-09-01"),
            # A re-consent mentioning the earlier withdrawal is still a consent.
            ("U5", "pk-5", "linked", 2.0, "Re-consented after withdrawal",
             "INFORMED CONSENT OBTAINED", "PROTOCOL MILESTONE", "2024-10-01"),
            # The milestone term outside the milestone category is not the milestone.
            ("U6", "pk-6", "linked", 1.0, "INFORMED CONSENT OBTAINED", "INFORMED CONSENT OBTAINED",
             "DISPOSITION EVENT", "2024-01-01"),
            # Subjects the enrolment map does not tie to a person with certainty.
            ("U7", None, "not_enrolled", 1.0, "Subject withdrew consent", "WITHDRAWAL BY SUBJECT",
             "DISPOSITION EVENT", "2024-01-01"),
            ("U8", "pk-8", "unknown_mrn", 1.0, "Subject withdrew consent",
             "WITHDRAWAL BY SUBJECT", "DISPOSITION EVENT", "2024-01-01"),
        ]
    )  # fmt: skip
    events = trial_consent_events(ds)
    got = events.select("consent_id", "person_key", "scope", "study_id", "decision", "basis")
    expected = pl.DataFrame(
        [
            ("trials:S-1|U1|1", "pk-1", "trial:S-1", "S-1", "permit", "informed_consent_obtained"),
            ("trials:S-1|U1|3", "pk-1", "trial:S-1", "S-1", "deny", "consent_withdrawn"),
            ("trials:S-1|U3|1", "pk-3", "trial:S-1", "S-1", "deny", "consent_withdrawn"),
            ("trials:S-1|U4|1", "pk-4", "trial:S-1", "S-1", "deny", "consent_withdrawn"),
            ("trials:S-1|U5|1", "pk-5", "trial:S-1", "S-1", "deny", "consent_withdrawn"),
            ("trials:S-1|U5|2", "pk-5", "trial:S-1", "S-1", "permit", "informed_consent_obtained"),
        ],
        schema=["consent_id", "person_key", "scope", "study_id", "decision", "basis"],
        orient="row",
    )
    assert_frame_equal(got.sort("consent_id"), expected)
    assert events.get_column("status").unique().to_list() == ["active"]
    assert events.get_column("source_silo").unique().to_list() == ["trials"]
    recorded = dict(events.select("consent_id", "recorded_at").iter_rows())
    assert recorded["trials:S-1|U1|3"] == datetime(2024, 5, 2, 10, 30, tzinfo=UTC)
    assert recorded["trials:S-1|U1|1"] == _at(2024, 1, 10)
    # A partial date is no date: the withdrawal then counts as the latest record.
    assert recorded["trials:S-1|U3|1"] is None


def test_consent_events_join_both_sources_and_refuse_a_reused_record_key():
    fhir = _fhir([("c1", "pk-1", "active", "research", "permit", None, None, _at(2020))])
    ds = _ds(
        [("U1", "pk-1", "linked", 1.0, "INFORMED CONSENT OBTAINED", "INFORMED CONSENT OBTAINED",
          "PROTOCOL MILESTONE", "2024-01-10")]
    )  # fmt: skip
    events = consent_events(fhir, ds)
    assert events.get_column("consent_id").to_list() == ["ehr:c1", "trials:S-1|U1|1"]
    assert events.schema == pl.Schema(CONSENT_SCHEMA)
    assert consent_events(None, None).is_empty()
    assert consent_events(fhir, None).height == 1
    with pytest.raises(ValueError, match="share a consent_id"):
        consent_events(pl.concat([fhir, fhir]), None)


def test_a_fhir_shaped_table_is_refused_where_the_unified_one_is_expected():
    fhir = _fhir([("c1", "pk-1", "active", "research", "permit", None, None, _at(2020))])
    with pytest.raises(ConsentTableError, match="silver/consent/consents"):
        consented_people(fhir, as_of=NOW)
    with pytest.raises(ConsentTableError, match="SDTM DS"):
        trial_consent_events(fhir)


# -- decisions -----------------------------------------------------------------------------


def test_only_people_whose_latest_research_consent_permits_now_are_consented():
    fhir = _fhir(
        [
            ("a", "permit", "active", "research", "permit", _at(2020), None, _at(2020)),
            ("b", "deny", "active", "research", "deny", _at(2020), None, _at(2020)),
            ("c", "revoked", "active", "research", "permit", _at(2020), None, _at(2020)),
            ("d", "revoked", "inactive", "research", "permit", _at(2020), None, _at(2024)),
            ("e", "expired", "active", "research", "permit", _at(2020), _at(2022), _at(2020)),
            ("f", "not-yet", "active", "research", "permit", _at(2027), None, _at(2020)),
            ("g", "other-scope", "active", "patient-privacy", "permit", None, None, _at(2020)),
            ("h", "re-consented", "inactive", "research", "permit", None, None, _at(2019)),
            ("i", "re-consented", "active", "research", "permit", None, None, _at(2023)),
            ("j", "draft", "draft", "research", "permit", None, None, _at(2023)),
        ]
    )
    events = consent_events(fhir, None)
    assert consented_people(events, as_of=NOW).to_list() == ["permit", "re-consented"]
    assert consented_people(events, as_of=NOW, scope="patient-privacy").to_list() == ["other-scope"]


def test_on_a_tie_the_refusal_wins_and_an_undated_refusal_is_never_overtaken():
    events = _events(
        [
            ("1", "tie", "research", None, "permit", "active", _at(2024)),
            ("2", "tie", "research", None, "deny", "active", _at(2024)),
            ("3", "undated-deny", "research", None, "deny", "active", None),
            ("4", "undated-deny", "research", None, "permit", "active", _at(2025)),
            ("5", "undated-permit", "research", None, "permit", "active", None),
            ("6", "undated-permit", "research", None, "permit", "inactive", _at(2020)),
            ("7", "undated-permit-only", "research", None, "permit", "active", None),
        ]
    )
    assert consented_people(events, as_of=NOW).to_list() == ["undated-permit-only"]


def test_trial_consent_never_adds_anyone_to_research_consent():
    events = _events(
        [
            ("1", "trial-only", "trial:S-1", "S-1", "permit", "active", _at(2024)),
            ("2", "both", "research", None, "permit", "active", _at(2020)),
            ("3", "both", "trial:S-1", "S-1", "deny", "active", _at(2024)),
        ]
    )
    assert consented_people(events, as_of=NOW).to_list() == ["both"]


def test_a_study_withdrawal_holds_until_a_later_consent_to_that_study():
    events = _events(
        [
            ("1", "pk-1", "trial:S-1", "S-1", "permit", "active", _at(2023)),
            ("2", "pk-1", "trial:S-1", "S-1", "deny", "active", _at(2024)),
            ("3", "pk-1", "trial:S-2", "S-2", "permit", "active", _at(2023)),
            ("4", "pk-2", "trial:S-1", "S-1", "deny", "active", _at(2023)),
            ("5", "pk-2", "trial:S-1", "S-1", "permit", "active", _at(2024)),
            ("6", "pk-3", "research", None, "deny", "active", _at(2024)),
        ]
    )
    assert withdrawn_from_studies(events, as_of=NOW) == frozenset({("pk-1", "S-1")})
    decisions = current_decisions(events, as_of=NOW)
    assert decisions.columns == ["person_key", "scope", "study_id", "permitted"]
    assert decisions.height == 4


def test_consent_status_has_a_row_per_person_and_scope_and_per_study_with_a_decision():
    events = _events(
        [
            ("1", "pk-1", "research", None, "permit", "active", _at(2020)),
            ("2", "pk-2", "research", None, "permit", "active", _at(2020)),
            ("3", "pk-2", "research", None, "permit", "inactive", _at(2021)),
            ("4", "pk-1", "trial:S-1", "S-1", "permit", "active", _at(2020)),
            ("5", "pk-1", "trial:S-1", "S-1", "deny", "active", _at(2021)),
            ("6", "pk-3", "trial:S-2", "S-2", "permit", "active", _at(2021)),
            ("7", "pk-9", "trial:S-2", "S-2", "deny", "active", _at(2021)),
            ("8", "pk-1", "trial:S-2", "S-2", "permit", "active", _at(2021)),
        ]
    )
    people = pl.Series("person_key", ["pk-3", "pk-1", "pk-2", "pk-1"])
    key = b"k" * 32
    status = consent_status(
        events, people, as_of=_at(2022), scopes=("research",), pseudonyms=Pseudonyms(key=key)
    )
    p1, p2, p3 = keyed_hash(key, ["pk-1", "pk-2", "pk-3"], prefix="P")
    expected = pl.DataFrame(
        [
            (p1, "research", None, True),
            (p1, "trial:S-1", "S-1", False),
            (p1, "trial:S-2", "S-2", True),
            (p2, "research", None, False),
            (p3, "research", None, False),
            # Consent to the study alone permits nothing without research consent.
            (p3, "trial:S-2", "S-2", False),
        ],
        schema={
            "person_pseudonym": pl.String(),
            "scope": pl.String(),
            "study_id": pl.String(),
            "permitted": pl.Boolean(),
        },
        orient="row",
    ).sort("person_pseudonym", "scope")
    assert_frame_equal(status, expected)


# -- views ---------------------------------------------------------------------------------


def test_a_study_withdrawal_removes_the_subject_from_that_studys_trial_views_only():
    ctx = trial_context()
    withdrawn = dataclasses.replace(ctx, withdrawn_from_study=frozenset({("pk-1", UNBLINDED)}))
    p1 = keyed_hash(ctx.pseudonyms.key, ["pk-1"], prefix="P")[0]
    for name in ("trial_subjects", "trial_adverse_events", "trial_lab_results"):
        spec = VIEWS[name]
        before = build_view(spec, SILVER, ctx)
        after = build_view(spec, SILVER, withdrawn)
        gone = (pl.col("person_pseudonym") == p1) & (pl.col("study_id") == UNBLINDED)
        assert before.filter(gone).height > 0, name
        assert_frame_equal(after, before.filter(~gone))
    # The person's rows of their other study stay.
    subjects = build_view(VIEWS["trial_subjects"], SILVER, withdrawn)
    assert subjects.filter(pl.col("person_pseudonym") == p1)["study_id"].to_list() == [UNLISTED]


def test_the_disposition_records_of_the_view_fixture_hold_no_withdrawal():
    # Guards the test above: its withdrawal comes from the context alone.
    assert trial_consent_events(SILVER[DS]).filter(pl.col("decision") == "deny").is_empty()


# -- the quality suite restates the contract -----------------------------------------------


def test_the_consent_suite_restates_the_table_contract():
    assert tuple(CONSENT_SCHEMA) == consent_suite.CONSENT_COLUMNS
    assert consent_suite.DECISIONS == DECISIONS
    assert consent_suite.SOURCE_SILOS == SOURCE_SILOS
    assert consent_suite.BASES == BASES
