"""Freshness SLAs as plain data, and the status they give.

A table is fresh while its newest source data is younger than the warn window, ``warn`` until
the fail window, and ``stale`` after it. The age is measured from the newest source file's
modification time (when the source system produced the data), not from when biofed last ran:
rerunning a pipeline on old files does not make old data fresh.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatch
from typing import Literal

FreshnessStatus = Literal["fresh", "warn", "stale", "unknown"]


@dataclass(frozen=True)
class FreshnessSLA:
    """How old a table's newest source data may be."""

    warn_after: timedelta
    fail_after: timedelta

    def __post_init__(self) -> None:
        if not timedelta(0) < self.warn_after <= self.fail_after:
            raise ValueError("a freshness SLA needs 0 < warn_after <= fail_after")


SLAS: tuple[tuple[str, FreshnessSLA], ...] = (
    # EHR bulk exports arrive daily; a missed day warns, three missed days is stale.
    ("bronze/ehr/*", FreshnessSLA(timedelta(hours=26), timedelta(days=3))),
    ("silver/ehr/*", FreshnessSLA(timedelta(hours=26), timedelta(days=3))),
    # Sequencing batches land weekly at best; a month without one warns, a quarter is stale.
    ("bronze/genomics/*", FreshnessSLA(timedelta(days=35), timedelta(days=95))),
    ("silver/genomics/*", FreshnessSLA(timedelta(days=35), timedelta(days=95))),
    ("gold/research/variant_frequencies", FreshnessSLA(timedelta(days=35), timedelta(days=95))),
    ("gold/research/genotypes", FreshnessSLA(timedelta(days=35), timedelta(days=95))),
    # PACS exports (and the RIS orders that come with them) land in weekly batches: a batch a
    # day late warns, two missed batches are stale.
    ("bronze/imaging/*", FreshnessSLA(timedelta(days=8), timedelta(days=15))),
    ("silver/imaging/*", FreshnessSLA(timedelta(days=8), timedelta(days=15))),
    ("gold/research/imaging_*", FreshnessSLA(timedelta(days=8), timedelta(days=15))),
    # LIS exports land nightly and HL7 results flow all day: a missed night warns, three
    # missed days are stale (the same as the EHR feeds).
    ("bronze/lab/*", FreshnessSLA(timedelta(hours=26), timedelta(days=3))),
    ("silver/lab/*", FreshnessSLA(timedelta(hours=26), timedelta(days=3))),
    # SDTM transfers from a trial's data management come monthly: five weeks warn, a missed
    # quarter is stale.
    ("bronze/trials/*", FreshnessSLA(timedelta(days=35), timedelta(days=95))),
    ("silver/trials/*", FreshnessSLA(timedelta(days=35), timedelta(days=95))),
    ("gold/research/trial_*", FreshnessSLA(timedelta(days=35), timedelta(days=95))),
    # Consent decisions arrive with the daily EHR exports (FHIR Consent) and the trial
    # transfers: a revocation must reach the views within the EHR's window.
    ("silver/consent/*", FreshnessSLA(timedelta(hours=26), timedelta(days=3))),
    ("gold/research/*", FreshnessSLA(timedelta(hours=26), timedelta(days=3))),
    ("restricted/*", FreshnessSLA(timedelta(hours=26), timedelta(days=3))),
)
"""Table path patterns (fnmatch) to SLAs; the first match wins."""


def sla_for(table: str) -> FreshnessSLA | None:
    """The SLA of a lake table path, or None when no pattern matches.

    Args:
        table: a lake path such as ``gold/research/patients``.
    """
    for pattern, sla in SLAS:
        if fnmatch(table, pattern):
            return sla
    return None


def freshness_status(
    newest_source_at: datetime | None, sla: FreshnessSLA, *, now: datetime
) -> FreshnessStatus:
    """The freshness of data whose newest source is ``newest_source_at``.

    Args:
        newest_source_at: when the newest source data was produced (timezone-aware), or None
            when unknown.
        sla: the table's SLA.
        now: the time of the check (timezone-aware).

    Returns:
        ``fresh``, ``warn``, ``stale``, or ``unknown`` when the source time is unknown.
    """
    if newest_source_at is None:
        return "unknown"
    age = now - newest_source_at
    if age <= sla.warn_after:
        return "fresh"
    if age <= sla.fail_after:
        return "warn"
    return "stale"
