from datetime import UTC, datetime

import polars as pl

from mcp_catalog.governance.consent import consented_people

T = pl.Datetime("us", "UTC")


def _consents(rows):
    return pl.DataFrame(
        rows,
        schema={
            "person_key": pl.String(),
            "status": pl.String(),
            "scope": pl.String(),
            "provision_type": pl.String(),
            "provision_start": T,
            "provision_end": T,
            "date_time": T,
        },
        orient="row",
    )


def _at(year, month=1):
    return datetime(year, month, 1, tzinfo=UTC)


def test_only_people_whose_latest_research_consent_permits_are_included():
    consents = _consents(
        [
            ("permit", "active", "research", "permit", _at(2020), None, _at(2020)),
            ("deny", "active", "research", "deny", _at(2020), None, _at(2020)),
            ("revoked", "active", "research", "permit", _at(2020), None, _at(2020)),
            ("revoked", "inactive", "research", "permit", _at(2020), None, _at(2024)),
            ("expired", "active", "research", "permit", _at(2020), _at(2022), _at(2020)),
            ("other-scope", "active", "patient-privacy", "permit", None, None, _at(2020)),
            ("re-consented", "inactive", "research", "permit", None, None, _at(2019)),
            ("re-consented", "active", "research", "permit", None, None, _at(2023)),
        ]
    )
    assert consented_people(consents, as_of=_at(2025)).to_list() == ["permit", "re-consented"]


def test_a_later_revocation_removes_a_person_who_had_consented():
    consents = _consents(
        [
            ("p", "active", "research", "permit", None, None, _at(2020)),
            ("p", "inactive", "research", "permit", None, None, _at(2025, 6)),
        ]
    )
    assert consented_people(consents, as_of=_at(2026)).to_list() == []
