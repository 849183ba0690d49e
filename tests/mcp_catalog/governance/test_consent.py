from datetime import UTC, datetime

import polars as pl

from mcp_catalog.governance.consent import consent_events, consented_people

T = pl.Datetime("us", "UTC")


def _consents(rows):
    """FHIR consents (silver/ehr/consents columns) as the unified consent table."""
    fhir = pl.DataFrame(
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
    ).with_row_index("line", offset=1)
    fhir = fhir.with_columns(
        pl.format("consent-{}", "line").alias("id"),
        pl.lit("Consent.ndjson").alias("source_file"),
        pl.format("line:{}", "line").alias("source_locator"),
    ).drop("line")
    return consent_events(fhir, None)


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


def test_consent_status_lists_every_person_with_their_current_decision_per_scope():
    from mcp_catalog.governance.consent import consent_status
    from mcp_catalog.governance.deid import Pseudonyms, keyed_hash

    consents = _consents(
        [
            ("pk-1", "active", "research", "permit", None, None, _at(2020)),
            ("pk-2", "active", "research", "permit", None, None, _at(2020)),
            ("pk-2", "inactive", "research", "permit", None, None, _at(2021)),
        ]
    )
    people = pl.Series("person_key", ["pk-3", "pk-1", "pk-2", "pk-1"])
    key = b"k" * 32
    status = consent_status(
        consents, people, as_of=_at(2022), scopes=("research",), pseudonyms=Pseudonyms(key=key)
    )
    pseudonyms = keyed_hash(key, ["pk-1", "pk-2", "pk-3"], prefix="P")
    expected = dict(zip(pseudonyms, [True, False, False], strict=True))
    assert dict(zip(status["person_pseudonym"], status["permitted"], strict=True)) == expected
    assert status.columns == ["person_pseudonym", "scope", "study_id", "permitted"]
    assert status["study_id"].null_count() == status.height
    assert status["scope"].unique().to_list() == ["research"] and status.height == 3
