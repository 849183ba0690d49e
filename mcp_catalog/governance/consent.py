"""Who may appear in an audience's views: opt-in consent, latest decision wins."""

from datetime import datetime

import polars as pl

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
