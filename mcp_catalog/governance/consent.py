"""Who may appear in an audience's views: opt-in consent, latest decision wins."""

from datetime import datetime

import polars as pl

from mcp_catalog.governance.deid import PERSON_PREFIX, Pseudonyms

RESEARCH_SCOPE = "research"


def consented_people(
    consents: pl.DataFrame, *, as_of: datetime, scope: str = RESEARCH_SCOPE
) -> pl.Series:
    """The people whose latest consent of ``scope`` permits use at ``as_of``.

    Opt-in: a person with no consent record of that scope is excluded. The latest record
    (by ``date_time``) decides, so a later revocation (status inactive, or a deny provision)
    removes the person.

    Args:
        consents: silver consents with ``person_key``, ``status``, ``scope``,
            ``provision_type``, ``provision_start``, ``provision_end``, ``date_time``.
        as_of: the time at which consent must hold (timezone-aware, UTC).
        scope: the consent scope code.

    Returns:
        A String series named ``person_key``, sorted, unique.
    """
    latest = (
        consents.filter(pl.col("scope") == scope, pl.col("person_key").is_not_null())
        .sort("date_time", nulls_last=False)
        .group_by("person_key", maintain_order=True)
        .last()
    )
    at = pl.lit(as_of).cast(pl.Datetime("us", "UTC"))
    permitted = latest.filter(
        pl.col("status") == "active",
        pl.col("provision_type") == "permit",
        pl.col("provision_start").is_null() | (pl.col("provision_start") <= at),
        pl.col("provision_end").is_null() | (pl.col("provision_end") >= at),
    )
    return permitted.get_column("person_key").unique().sort()


def consent_status(
    consents: pl.DataFrame,
    people: pl.Series,
    *,
    as_of: datetime,
    scopes: tuple[str, ...],
    pseudonyms: Pseudonyms,
) -> pl.DataFrame:
    """Every person's current decision per consent scope, under the audience's pseudonym.

    The catalog server reads this table at its latest version on every call, so a
    revocation takes effect as soon as it is materialised, without rebuilding the views.

    Args:
        consents: silver consents (see :func:`consented_people`).
        people: every ``person_key`` of the lake.
        as_of: the time at which consent must hold.
        scopes: the consent scopes the policy's purposes require.
        pseudonyms: the audience's pseudonym scheme.

    Returns:
        ``person_pseudonym``, ``scope``, ``permitted`` (bool), one row per person and scope,
        sorted.
    """
    frames = []
    everyone = pl.DataFrame(
        {"person_key": people.unique().sort()}, schema={"person_key": pl.String}
    )
    for scope in scopes:
        permitted = consented_people(consents, as_of=as_of, scope=scope)
        frames.append(
            everyone.with_columns(
                pl.lit(scope).alias("scope"),
                pl.col("person_key").is_in(permitted.implode()).alias("permitted"),
            )
        )
    frame = (
        pl.concat(frames)
        if frames
        else everyone.with_columns(
            pl.lit(None, pl.String).alias("scope"), pl.lit(None, pl.Boolean).alias("permitted")
        ).clear()
    )
    frame = pseudonyms.apply(frame, "person_key", prefix=PERSON_PREFIX, alias="person_pseudonym")
    return frame.sort("person_pseudonym", "scope")
