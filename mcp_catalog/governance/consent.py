"""Who may appear in an audience's views: one consent table for every silo.

Consent decisions come from two sources and land in one table (``silver/consent/consents``),
one row per source record:

* **FHIR Consent** (``silver/ehr/consents``): a general decision of its FHIR ``scope``
  (``research`` for research use), ``study_id`` empty. The decision is ``permit`` when the
  base provision says permit, ``deny`` otherwise (a deny provision, or none at all). The FHIR
  ``status`` is kept: only an ``active`` record can permit (an ``inactive`` one is a
  revocation, ``rejected`` a refusal, ``draft``/``proposed`` not yet agreed,
  ``entered-in-error`` no valid decision: none of them permits).
* **Trial disposition** (``silver/trials/ds``, SDTM DS), study-specific, scope
  ``trial:<STUDYID>``, for subjects the study's enrolment map links to a person:

  - ``permit``: the protocol milestone ``INFORMED CONSENT OBTAINED`` (DSCAT ``PROTOCOL
    MILESTONE``, DSDECOD from CDISC codelist C114118), dated by DSSTDTC.
  - ``deny``: a record that says consent was withdrawn: its DSDECOD or its DSTERM names
    consent together with a withdrawal (withdrew, withdrawn, withdrawal, revoked,
    revocation, rescinded, retracted). The words are not parsed further: a verbatim such as
    "consent not withdrawn" also counts, so a doubtful record fails closed (the pipeline's
    ``ds_withdrawals`` check counts the withdrawals applied and the subjects who left a study
    without one, for review). ``WITHDRAWAL BY SUBJECT`` and
    ``WITHDRAWAL BY PARENT/GUARDIAN`` (codelist NCOMPLT, C66727) say only that the subject
    left the study (often stopping treatment while allowing follow-up and the use of data
    already collected): they are a withdrawal of consent only when the record says consent,
    as in ``Subject withdrew consent``. A sponsor term such as ``WITHDRAWAL OF CONSENT``
    counts by its own words. The milestone ``INFORMED CONSENT OBTAINED`` is a permit
    whatever its DSTERM says (a re-consent may mention the earlier withdrawal).
  - every other DS record (randomised, completed, adverse event, lost to follow-up, ...)
    is not a consent decision.

The rules, opt-in throughout:

* Per person and scope (and study), the latest decision wins: records are ordered by
  ``recorded_at``; on a tie, one that does not permit wins; an undated record counts as the
  earliest when it permits and as the latest when it does not (an undated or partially
  dated revocation is never overtaken). SDTM dates count only when complete (``YYYY-MM-DD``,
  optionally with a time, taken as UTC).
* General research consent (FHIR, ``study_id`` empty) governs every research view of every
  silo: nobody appears without a latest research decision that permits now.
* A study's trial consent additionally governs that study's trial views: a person whose
  latest decision for the study does not permit (a consent withdrawal) is left out of that
  study's rows, and stays in every other view their research consent allows. A subject
  without any DS consent record for the study (a transfer that does not carry the
  milestones) is governed by research consent alone.
"""

from datetime import datetime

import polars as pl

from mcp_catalog.governance.deid import PERSON_PREFIX, Pseudonyms

RESEARCH_SCOPE = "research"
TRIAL_SCOPE_PREFIX = "trial:"
"""Scope of a study's own consent: ``trial:<STUDYID>``."""

DECISIONS: tuple[str, ...] = ("permit", "deny")
SOURCE_SILOS: tuple[str, ...] = ("ehr", "trials")
BASES: tuple[str, ...] = ("fhir_consent", "informed_consent_obtained", "consent_withdrawn")
"""What in the source record made it a decision: a FHIR Consent, the DS milestone, or a DS
record stating that consent was withdrawn."""
ACTIVE = "active"

INFORMED_CONSENT_OBTAINED = "INFORMED CONSENT OBTAINED"
PROTOCOL_MILESTONE = "PROTOCOL MILESTONE"
_MENTIONS_CONSENT = r"(?i)\bCONSENT"
_MENTIONS_WITHDRAWAL = r"(?i)WITHDR[AE]W|REVOK|REVOCATION|RESCIND|RETRACT"

_UTC = pl.Datetime("us", "UTC")
_S = pl.String()

CONSENT_SCHEMA: dict[str, pl.DataType] = {
    "consent_id": _S,
    "person_key": _S,
    "scope": _S,
    "study_id": _S,
    "decision": _S,
    "status": _S,
    "provision_start": _UTC,
    "provision_end": _UTC,
    "recorded_at": _UTC,
    "basis": _S,
    "source_silo": _S,
    "source_file": _S,
    "source_locator": _S,
}
"""``silver/consent/consents``, in column order."""

CONSENT_DESCRIPTIONS: dict[str, str] = {
    "consent_id": "The source record: ehr:<FHIR Consent id> or trials:<STUDYID>|<USUBJID>|<DSSEQ>.",
    "person_key": "The person the decision is about (restricted crosswalk key).",
    "scope": "What the decision covers: the FHIR consent scope (research, ...) for a general "
    "decision, trial:<STUDYID> for a study's own consent.",
    "study_id": "The study a trial consent decision belongs to (SDTM STUDYID); empty for a "
    "general decision.",
    "decision": "permit or deny.",
    "status": "FHIR Consent status (only active can permit); active for a trial record.",
    "provision_start": "Start of the period a FHIR provision applies to; empty when open.",
    "provision_end": "End of the period a FHIR provision applies to; empty when open.",
    "recorded_at": "When the decision was made (FHIR dateTime, SDTM DSSTDTC when complete); "
    "the latest decision per person and scope wins.",
    "basis": "What made the record a decision: fhir_consent, informed_consent_obtained, "
    "consent_withdrawn.",
    "source_silo": "The silo the record comes from: ehr or trials.",
    "source_file": "The landing file the record was read from.",
    "source_locator": "Where in that file (line, row).",
}

_FHIR_COLUMNS = (
    "id",
    "person_key",
    "status",
    "scope",
    "provision_type",
    "provision_start",
    "provision_end",
    "date_time",
    "source_file",
    "source_locator",
)
_DS_COLUMNS = (
    "person_key",
    "link_status",
    "studyid",
    "usubjid",
    "dsseq",
    "dsterm",
    "dsdecod",
    "dscat",
    "dsstdtc",
    "dsdtc",
    "source_file",
    "source_locator",
)
_LINKED = "linked"


class ConsentTableError(ValueError):
    """A frame passed as a consent source or as the unified table lacks required columns."""


def _require(frame: pl.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConsentTableError(
            f"{what} lacks columns {missing}; pass the table named in "
            "mcp_catalog.governance.consent's module documentation"
        )


def _upper(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars().str.to_uppercase()


def _states_withdrawal(column: str) -> pl.Expr:
    """True when the text names consent together with a withdrawal."""
    text = pl.col(column)
    return (
        text.str.contains(_MENTIONS_CONSENT) & text.str.contains(_MENTIONS_WITHDRAWAL)
    ).fill_null(False)


def informed_consent_obtained() -> pl.Expr:
    """The DS protocol milestone ``INFORMED CONSENT OBTAINED`` (DSDECOD and DSCAT compared
    trimmed and upper-cased).

    Returns:
        A Boolean expression over ``dsdecod`` and ``dscat``, never null.
    """
    return (
        (_upper("dsdecod") == INFORMED_CONSENT_OBTAINED) & (_upper("dscat") == PROTOCOL_MILESTONE)
    ).fill_null(False)


def consent_withdrawn() -> pl.Expr:
    """A DS record that says consent was withdrawn (see the module documentation); never the
    informed consent milestone.

    Returns:
        A Boolean expression over ``dsdecod``, ``dsterm`` and ``dscat``, never null.
    """
    return (
        _states_withdrawal("dsdecod") | _states_withdrawal("dsterm")
    ) & ~informed_consent_obtained()


def sdtm_instant(column: str) -> pl.Expr:
    """A complete SDTM ISO 8601 date or date-time as a UTC instant, else null.

    ``2024-03-05`` gives midnight, ``2024-03-05T10:20`` and ``2024-03-05T10:20:30`` that
    time (SDTM carries no zone: taken as UTC); partial dates (``2024-03``, ``2024``),
    impossible dates and nulls give null.

    Args:
        column: the ``--DTC`` column (String).

    Returns:
        A ``Datetime("us", "UTC")`` expression named ``column``.
    """
    text = pl.col(column).str.strip_chars()
    stamp = (
        pl.when(text.str.contains(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}"))
        .then(text.str.slice(0, 19))
        .when(text.str.contains(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}"))
        .then(text.str.slice(0, 16) + ":00")
        .when(text.str.contains(r"^\d{4}-\d{2}-\d{2}(?:$|T)"))
        .then(text.str.slice(0, 10) + "T00:00:00")
    )
    return (
        stamp.str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S", strict=False)
        .dt.replace_time_zone("UTC")
        .alias(column)
    )


def _seq_text(column: str) -> pl.Expr:
    seq = pl.col(column)
    whole = seq.is_finite() & (seq == seq.round(0))
    return (
        pl.when(whole)
        .then(seq.cast(pl.Int64(), strict=False).cast(pl.String()))
        .otherwise(seq.cast(pl.String()))
    )


def fhir_consent_events(consents: pl.DataFrame) -> pl.DataFrame:
    """The decisions of FHIR Consent records, general (``study_id`` empty).

    Args:
        consents: ``silver/ehr/consents``.

    Returns:
        Rows of :data:`CONSENT_SCHEMA`, one per Consent linked to a person.

    Raises:
        ConsentTableError: when a required column is missing.
    """
    _require(consents, _FHIR_COLUMNS, "the FHIR consent table")
    return (
        consents.filter(pl.col("person_key").is_not_null())
        .select(
            pl.concat_str(pl.lit("ehr:"), pl.col("id")).alias("consent_id"),
            "person_key",
            "scope",
            pl.lit(None, _S).alias("study_id"),
            pl.when(pl.col("provision_type") == "permit")
            .then(pl.lit("permit"))
            .otherwise(pl.lit("deny"))
            .alias("decision"),
            "status",
            "provision_start",
            "provision_end",
            pl.col("date_time").alias("recorded_at"),
            pl.lit("fhir_consent").alias("basis"),
            pl.lit("ehr").alias("source_silo"),
            "source_file",
            "source_locator",
        )
        .cast(CONSENT_SCHEMA)
    )


def trial_consent_events(ds: pl.DataFrame) -> pl.DataFrame:
    """The consent decisions of SDTM DS records of subjects linked to a person.

    Args:
        ds: ``silver/trials/ds`` (lower-case SDTM variables, ``person_key``, ``link_status``
            and provenance).

    Returns:
        Rows of :data:`CONSENT_SCHEMA`: a ``permit`` per informed consent milestone, a
        ``deny`` per consent withdrawal, scope ``trial:<STUDYID>``.

    Raises:
        ConsentTableError: when a required column is missing.
    """
    _require(ds, _DS_COLUMNS, "the SDTM DS table")
    permit, withdrawn = informed_consent_obtained(), consent_withdrawn()
    return (
        ds.filter(
            pl.col("person_key").is_not_null(),
            pl.col("link_status") == _LINKED,
            pl.col("studyid").is_not_null(),
            permit | withdrawn,
        )
        .select(
            pl.concat_str(
                pl.lit("trials:"),
                pl.concat_str(["studyid", "usubjid", _seq_text("dsseq")], separator="|"),
            ).alias("consent_id"),
            "person_key",
            pl.concat_str(pl.lit(TRIAL_SCOPE_PREFIX), pl.col("studyid")).alias("scope"),
            pl.col("studyid").alias("study_id"),
            pl.when(permit).then(pl.lit("permit")).otherwise(pl.lit("deny")).alias("decision"),
            pl.lit(ACTIVE).alias("status"),
            pl.lit(None, _UTC).alias("provision_start"),
            pl.lit(None, _UTC).alias("provision_end"),
            pl.coalesce(sdtm_instant("dsstdtc"), sdtm_instant("dsdtc")).alias("recorded_at"),
            pl.when(permit)
            .then(pl.lit("informed_consent_obtained"))
            .otherwise(pl.lit("consent_withdrawn"))
            .alias("basis"),
            pl.lit("trials").alias("source_silo"),
            "source_file",
            "source_locator",
        )
        .cast(CONSENT_SCHEMA)
    )


def consent_events(
    fhir_consents: pl.DataFrame | None, trial_ds: pl.DataFrame | None
) -> pl.DataFrame:
    """The unified consent table from FHIR Consent and SDTM DS.

    Args:
        fhir_consents: ``silver/ehr/consents``, or None when the lake has none yet.
        trial_ds: ``silver/trials/ds``, or None when the lake has no trials silo.

    Returns:
        Rows of :data:`CONSENT_SCHEMA` sorted by ``consent_id`` (unique).

    Raises:
        ConsentTableError: when a source lacks a required column.
        ValueError: when two source records give the same ``consent_id``.
    """
    parts = [pl.DataFrame(schema=CONSENT_SCHEMA)]
    if fhir_consents is not None:
        parts.append(fhir_consent_events(fhir_consents))
    if trial_ds is not None:
        parts.append(trial_consent_events(trial_ds))
    events = pl.concat(parts).sort("consent_id")
    if events.get_column("consent_id").is_duplicated().any():
        raise ValueError(
            "two consent records share a consent_id (a FHIR Consent id or a DS STUDYID, "
            "USUBJID and DSSEQ used twice); deduplicate the silver source tables first"
        )
    return events


def _check_events(events: pl.DataFrame) -> None:
    _require(events, tuple(CONSENT_SCHEMA), "the consent table (silver/consent/consents)")


def current_decisions(events: pl.DataFrame, *, as_of: datetime) -> pl.DataFrame:
    """Each person's current decision per scope and study: the latest record decides.

    Args:
        events: the unified consent table.
        as_of: the time at which consent must hold (timezone-aware).

    Returns:
        ``person_key``, ``scope``, ``study_id``, ``permitted`` (bool): one row per person,
        scope and study with a record, sorted.

    Raises:
        ConsentTableError: when ``events`` is not the unified table.
    """
    _check_events(events)
    at = pl.lit(as_of).cast(_UTC)
    permit_record = (pl.col("status") == ACTIVE) & (pl.col("decision") == "permit")
    undated = pl.col("recorded_at").is_null()
    # Undated permits count as the earliest record, undated refusals as the latest.
    rank = pl.when(undated & permit_record).then(0).when(undated).then(2).otherwise(1)
    group = ["person_key", "scope", "study_id"]
    latest = (
        events.filter(pl.col("person_key").is_not_null(), pl.col("scope").is_not_null())
        .with_columns(
            rank.alias("_rank"),
            (~permit_record.fill_null(False)).alias("_refuses"),
        )
        .sort([*group, "_rank", "recorded_at", "_refuses", "consent_id"], nulls_last=False)
        .group_by(group, maintain_order=True)
        .last()
    )
    permitted = (
        (pl.col("status") == ACTIVE)
        & (pl.col("decision") == "permit")
        & (pl.col("provision_start").is_null() | (pl.col("provision_start") <= at))
        & (pl.col("provision_end").is_null() | (pl.col("provision_end") >= at))
    ).fill_null(False)
    return latest.select(*group, permitted.alias("permitted")).sort(group, nulls_last=False)


def consented_people(
    events: pl.DataFrame, *, as_of: datetime, scope: str = RESEARCH_SCOPE
) -> pl.Series:
    """The people whose latest general consent of ``scope`` permits use at ``as_of``.

    Opt-in: a person without a general record of that scope is excluded. Study-specific
    records (trial consent) never add anyone here.

    Args:
        events: the unified consent table (``silver/consent/consents``).
        as_of: the time at which consent must hold (timezone-aware).
        scope: the consent scope code.

    Returns:
        A String series named ``person_key``, sorted, unique.

    Raises:
        ConsentTableError: when ``events`` is not the unified table (a FHIR consent table
            must go through :func:`consent_events` first).
    """
    decisions = current_decisions(events, as_of=as_of)
    return (
        decisions.filter(
            pl.col("scope") == scope, pl.col("study_id").is_null(), pl.col("permitted")
        )
        .get_column("person_key")
        .unique()
        .sort()
    )


def withdrawn_from_studies(events: pl.DataFrame, *, as_of: datetime) -> frozenset[tuple[str, str]]:
    """``(person_key, study_id)`` pairs whose latest trial consent decision does not permit.

    Args:
        events: the unified consent table.
        as_of: the time at which consent must hold (timezone-aware).

    Returns:
        The pairs to leave out of those studies' trial views.

    Raises:
        ConsentTableError: when ``events`` is not the unified table.
    """
    decisions = current_decisions(events, as_of=as_of)
    refused = decisions.filter(pl.col("study_id").is_not_null(), ~pl.col("permitted"))
    return frozenset(refused.select("person_key", "study_id").iter_rows())


def consent_status(
    events: pl.DataFrame,
    people: pl.Series,
    *,
    as_of: datetime,
    scopes: tuple[str, ...],
    pseudonyms: Pseudonyms,
) -> pl.DataFrame:
    """Every person's current decision per consent scope, under the audience's pseudonym.

    The catalog server reads this table at its latest version on every call, so a
    revocation takes effect as soon as it is materialised, without rebuilding the views.

    Two kinds of rows:

    * one per person and general scope of ``scopes`` (``study_id`` empty): ``permitted``
      when the person's latest general decision of that scope permits now (opt-in);
    * one per person and study with a trial consent record (scope ``trial:<STUDYID>``):
      ``permitted`` when the person's research consent permits now and their latest
      decision for that study does too. A trial row only ever takes people away: a study's
      rows are shown to a person-level query when the research row permits and the study's
      row, where there is one, permits too (a person without a trial consent record for the
      study is governed by research consent alone).

    Args:
        events: the unified consent table.
        people: every ``person_key`` of the lake.
        as_of: the time at which consent must hold.
        scopes: the general consent scopes the policy's purposes require.
        pseudonyms: the audience's pseudonym scheme.

    Returns:
        ``person_pseudonym``, ``scope``, ``study_id``, ``permitted`` (bool), sorted by
        pseudonym and scope; (``person_pseudonym``, ``scope``) is unique.

    Raises:
        ConsentTableError: when ``events`` is not the unified table.
    """
    decisions = current_decisions(events, as_of=as_of)
    everyone = pl.DataFrame(
        {"person_key": people.unique().sort()}, schema={"person_key": pl.String}
    )
    schema = {"person_key": _S, "scope": _S, "study_id": _S, "permitted": pl.Boolean()}
    frames = [pl.DataFrame(schema=schema)]
    general = decisions.filter(pl.col("study_id").is_null())
    for scope in scopes:
        permitted = general.filter(pl.col("scope") == scope, pl.col("permitted"))
        frames.append(
            everyone.select(
                "person_key",
                pl.lit(scope).alias("scope"),
                pl.lit(None, _S).alias("study_id"),
                pl.col("person_key")
                .is_in(permitted.get_column("person_key").implode())
                .alias("permitted"),
            )
        )
    research = general.filter(pl.col("scope") == RESEARCH_SCOPE, pl.col("permitted"))
    frames.append(
        decisions.filter(
            pl.col("study_id").is_not_null(),
            pl.col("person_key").is_in(everyone.get_column("person_key").implode()),
        ).select(
            "person_key",
            "scope",
            "study_id",
            (
                pl.col("permitted")
                & pl.col("person_key").is_in(research.get_column("person_key").implode())
            ).alias("permitted"),
        )
    )
    frame = pl.concat([f.cast(schema) for f in frames])
    frame = pseudonyms.apply(frame, "person_key", prefix=PERSON_PREFIX, alias="person_pseudonym")
    return frame.select("person_pseudonym", "scope", "study_id", "permitted").sort(
        "person_pseudonym", "scope"
    )
