"""Trials suites: the conformed SDTM domains in silver and the research views of subjects,
adverse events and trial lab results.

Severities follow who guarantees a property. biofed deduplicates each domain on its key and
links subjects through the study's enrolment list, so keys, the DOMAIN routing, link
statuses and the person a subject is linked to are errors. What a sponsor wrote is a
warning: ISO 8601 dates, CDISC controlled terms, sequence numbers and study days, and events
of subjects missing from DM (the reader's ``subject_not_in_dm`` rule, here across files).

The research views' guarantees are errors: the columns, the keys, the pseudonyms, ages
capped at 90 and, above all, blinding: while a study is blinded its arm columns are empty,
every row of a study has the same ``arm_status``, and the event views agree with the
subjects view about it. Dates the views copy from the sponsor (shifted) are only checked
for plausibility, as warnings.

Silver's columns are the pipeline's linkage, ``connectors.sdtm.standard.STANDARD_VARIABLES``
in lower case and the provenance (``pipelines.trials.silver_schema``); ISO 8601 is checked by
the SDTM reader's own rule (``connectors.sdtm.iso8601``). The research views' columns are
restated here (``quality`` may not import ``pipelines`` or ``mcp_catalog``); tests hold both
equal to the originals.
"""

from collections.abc import Callable, Iterable
from functools import partial

import polars as pl

from connectors.sdtm.iso8601 import is_sdtm_datetime
from connectors.sdtm.standard import STANDARD_VARIABLES
from quality.codes import loinc_check_digit_ok
from quality.results import Severity
from quality.suite_tables import TRIAL_DOMAINS
from quality.suites._checks import (
    _per_value,
    compound_unique,
    derived_true,
    exact_columns,
    in_set,
    matches,
    not_null,
    ordered,
    references,
    sha256_hex,
    unique,
)
from quality.suites._model import Check, DeriveContext, Suite
from quality.suites.bronze import PERSON_KEY
from quality.suites.genomics import _on_contract_dtypes, _typed
from quality.suites.gold import AUDIENCE, GoldView, _privacy, _pseudonym_format
from quality.suites.lab import one_per_group, plausible_date
from quality.valuesets import (
    SDTM_ACN,
    SDTM_AESEV,
    SDTM_AGEU,
    SDTM_ETHNIC,
    SDTM_NRIND,
    SDTM_NY,
    SDTM_OUT,
    SDTM_SEX,
)

SILVER = "silver/trials"
DM = f"{SILVER}/dm"
GOLD_PATIENTS = f"gold/{AUDIENCE}/patients"
GOLD_SUBJECTS = f"gold/{AUDIENCE}/trial_subjects"
GOLD_ADVERSE_EVENTS = f"gold/{AUDIENCE}/trial_adverse_events"
GOLD_LAB_RESULTS = f"gold/{AUDIENCE}/trial_lab_results"

_UTC = pl.Datetime("us", "UTC")
_S = pl.String()
_SDTM_DTYPES: dict[str, pl.DataType] = {"Char": pl.String(), "Num": pl.Float64()}

LINKAGE_DTYPES: dict[str, pl.DataType] = {"person_key": _S, "link_status": _S}
"""What precedes the standard variables in ``silver/trials/<domain>``: the linkage through the
study's enrolment list."""
PROVENANCE_DTYPES: dict[str, pl.DataType] = {
    "source_file": _S,
    "source_locator": _S,
    "dataset": _S,
    "source_sha256": _S,
    "ingested_at": _UTC,
}
"""What follows them: ``conform_domain``'s provenance (file, ``row:N``, dataset member), the
file's hash and the ingestion time (bronze's ``record_json`` stays in bronze)."""

LINK_STATUS: tuple[str, ...] = ("linked", "not_enrolled", "unknown_mrn", "identity_conflict")
"""Linked to a person (the person crosswalk's); no enrolment row for the subject; an enrolment
MRN the person crosswalk does not know; a subject the crosswalk does not hold because its
identity is in conflict (``pipelines.trials.LINK_STATUSES``)."""
ARM_STATUS: tuple[str, ...] = ("blinded", "unblinded")
ARM_COLUMNS: tuple[str, ...] = ("arm", "arm_code", "actual_arm")
"""The research subjects' columns that reveal treatment assignment."""
AGE_CAP = 90
"""Ages of 90 and over are reported as 90 (HIPAA Safe Harbor)."""
NO_YES: tuple[str, ...] = ("N", "Y")
"""AESER's values (SDTMIG: "Y" or "N")."""
YES_ONLY: tuple[str, ...] = ("Y",)
"""Flags that are "Y" or empty (DTHFL, --BLFL, --LOBXFL)."""
AE_SERIOUS_CRITERIA: tuple[str, ...] = (
    "aescan",
    "aescong",
    "aesdisab",
    "aesdth",
    "aeshosp",
    "aeslife",
    "aesod",
    "aesmie",
)
"""The AE seriousness criteria, each a NY codelist value."""


def _subject_key(columns: Iterable[str]) -> pl.Expr:
    """One text key of several columns (null when any of them is)."""
    return pl.concat_str([pl.col(c).cast(pl.String) for c in columns], separator="\x1f")


def subjects_in(
    table: str,
    columns: tuple[str, ...],
    target: tuple[str, ...],
    *,
    severity: Severity = "error",
    derive: Callable[..., Check] = derived_true,
) -> Check:
    """Every set ``columns`` tuple is the ``target`` tuple of a row of ``table`` (a compound
    reference, e.g. a subject's study and USUBJID)."""
    key = _subject_key(columns)

    def expression(context: DeriveContext) -> pl.Expr:
        source = context.references[table]
        if not set(target) <= set(source.columns):
            # The referenced table lost a key column: nothing can be shown to resolve.
            return pl.when(key.is_not_null()).then(pl.lit(False))
        keys = source.select(_subject_key(target)).to_series().drop_nulls().unique()
        return pl.when(key.is_not_null()).then(key.is_in(keys.implode()))

    name = table.rpartition("/")[2]
    return derive(
        f"{'_'.join(columns)}_in_{name}",
        columns,
        expression,
        f"every ({', '.join(columns)}) is the ({', '.join(target)}) of a row of {table}",
        severity=severity,
        column=",".join(columns),
    )


def _in_codelist(
    column: str, values: tuple[str, ...], what: str, *, severity: Severity = "warning"
) -> Check:
    return in_set(column, values, severity=severity, what=what)


# --- silver --------------------------------------------------------------------------------


def standard_dtypes(domain: str) -> dict[str, pl.DataType]:
    """The standard variables of a domain in lower case, with ``conform_domain``'s dtypes.

    Args:
        domain: a lower-case domain of :data:`~quality.suite_tables.TRIAL_DOMAINS`.

    Returns:
        Variable name to dtype (Char: String, Num: Float64), in the IG's order.
    """
    return {v.name.lower(): _SDTM_DTYPES[v.type] for v in STANDARD_VARIABLES[domain.upper()]}


def silver_dtypes(domain: str) -> dict[str, pl.DataType]:
    """The columns of ``silver/trials/<domain>`` and their dtypes, in order."""
    return {**LINKAGE_DTYPES, **standard_dtypes(domain), **PROVENANCE_DTYPES}


def _linkage(derive: Callable[..., Check]) -> list[Check]:
    link, person = pl.col("link_status"), pl.col("person_key")
    return [
        not_null("link_status"),
        in_set("link_status", LINK_STATUS, what="trial link status"),
        matches("person_key", PERSON_KEY, "person_key is a 32-hex random key"),
        derive(
            "person_key_iff_linked",
            ("link_status", "person_key"),
            lambda _: pl.when(link.is_not_null()).then(person.is_not_null() == (link == "linked")),
            "person_key is set exactly where link_status is linked",
            column="person_key",
        ),
    ]


def _same_person_as_dm(derive: Callable[..., Check]) -> Check:
    """A subject's rows carry the person_key DM's row of the subject carries (one enrolment
    list links every domain)."""
    keys = ("studyid", "usubjid")
    key = _subject_key(keys)

    def expression(context: DeriveContext) -> pl.Expr:
        dm = context.references[DM]
        if not {*keys, "person_key"} <= set(dm.columns):
            return pl.when(key.is_not_null()).then(pl.lit(False))
        subjects = (
            dm.select(_subject_key(keys).alias("key"), pl.col("person_key").cast(pl.String))
            .drop_nulls("key")
            .unique("key", keep="first")
        )
        in_dm = key.is_in(subjects.get_column("key").implode())
        dm_person = key.replace_strict(
            subjects.get_column("key"),
            subjects.get_column("person_key"),
            default=None,
            return_dtype=pl.String,
        )
        return pl.when(in_dm).then(pl.col("person_key").eq_missing(dm_person))

    return derive(
        "person_key_as_in_dm",
        (*keys, "person_key"),
        expression,
        f"every subject's person_key is the one its row of {DM} carries",
        column="person_key",
    )


def _whole(column: str, what: str, derive: Callable[..., Check], *, positive: bool) -> Check:
    """``column`` holds whole numbers, positive ones (``--SEQ``) or any but 0 (``--DY``)."""
    value = pl.col(column)
    sign = value > 0 if positive else value != 0
    return derive(
        f"{column}_{'positive' if positive else 'nonzero'}_whole",
        (column,),
        lambda _: pl.when(value.is_not_null()).then((value == value.round(0)) & sign),
        f"{column} is {what}",
        severity="warning",
        column=column,
    )


def _iso8601(column: str, derive: Callable[..., Check]) -> Check:
    """``column`` holds SDTM ISO 8601 date/times (the SDTM reader's own rule, so this and its
    ``invalid_iso8601`` finding agree)."""
    value = pl.col(column)
    return derive(
        f"{column}_iso8601",
        (column,),
        lambda _: pl.when(value.is_not_null()).then(
            value.map_batches(lambda s: _per_value(s, is_sdtm_datetime), return_dtype=pl.Boolean)
        ),
        f"{column} is an ISO 8601 date or time (SDTM --DTC)",
        severity="warning",
        column=column,
    )


def _domain_checks(domain: str, dtypes: dict[str, pl.DataType]) -> list[Check]:
    """The sponsor-written values of one domain checked against CDISC controlled terms."""
    if domain == "dm":
        return [
            _in_codelist("sex", SDTM_SEX, "CDISC SEX (C66731)"),
            _in_codelist("ageu", SDTM_AGEU, "CDISC AGEU (C66781)"),
            _in_codelist("ethnic", SDTM_ETHNIC, "CDISC ETHNIC (C66790)"),
            _in_codelist("dthfl", YES_ONLY, "Y (or empty) death flag"),
            Check(
                "expect_column_values_to_be_between",
                {"column": "age", "min_value": 0},
                "age is not negative",
                "warning",
                "age",
            ),
        ]
    if domain == "ae":
        return [
            _in_codelist("aeser", NO_YES, "Y or N seriousness"),
            _in_codelist("aesev", SDTM_AESEV, "CDISC AESEV (C66769)"),
            _in_codelist("aeout", SDTM_OUT, "CDISC OUT (C66768)"),
            _in_codelist("aeacn", SDTM_ACN, "CDISC ACN (C66767)"),
            *[
                _in_codelist(c, SDTM_NY, "CDISC NY (C66742)")
                for c in AE_SERIOUS_CRITERIA
                if c in dtypes
            ],
        ]
    if domain == "lb":
        return [
            _in_codelist("lbnrind", SDTM_NRIND, "CDISC NRIND (C78736)"),
            _in_codelist("lbblfl", YES_ONLY, "Y (or empty) baseline flag"),
            _in_codelist("lblobxfl", YES_ONLY, "Y (or empty) last-before-exposure flag"),
            derived_true(
                "lbloinc_loinc_check_digit",
                ("lbloinc",),
                lambda _: pl.when(pl.col("lbloinc").is_not_null()).then(
                    pl.col("lbloinc").map_batches(
                        lambda s: _per_value(s, loinc_check_digit_ok), return_dtype=pl.Boolean
                    )
                ),
                "lbloinc is a LOINC code with a valid Mod 10 check digit",
                severity="warning",
                column="lbloinc",
            ),
        ]
    if domain == "vs":
        return [
            _in_codelist("vsblfl", YES_ONLY, "Y (or empty) baseline flag"),
            _in_codelist("vslobxfl", YES_ONLY, "Y (or empty) last-before-exposure flag"),
        ]
    return []


def silver_domain_suite(domain: str) -> Suite:
    """One conformed SDTM domain of every study, linked to persons.

    Args:
        domain: a lower-case domain of :data:`~quality.suite_tables.TRIAL_DOMAINS`.

    Returns:
        The suite of ``silver/trials/<domain>``; every domain but DM reads DM.
    """
    dtypes = silver_dtypes(domain)
    checked = _on_contract_dtypes(dtypes)
    seq = f"{domain}seq"
    keys = ("studyid", "usubjid") if domain == "dm" else ("studyid", "usubjid", seq)
    code = domain.upper()
    what = f"silver SDTM {code}"
    checks = [
        exact_columns(tuple(dtypes), what),
        _typed(dtypes, what, " (Char is text, Num is Float64)"),
        *[not_null(c) for c in keys],
        compound_unique(keys),
        checked(
            "domain_matches_table",
            ("domain",),
            lambda _: pl.col("domain").eq_missing(pl.lit(code)),
            f"domain is {code} on every row (rows are routed by their DOMAIN value)",
            column="domain",
        ),
        *_linkage(checked),
    ]
    if domain != "dm":
        checks += [
            _same_person_as_dm(checked),
            subjects_in(DM, ("studyid", "usubjid"), ("studyid", "usubjid"), severity="warning"),
            _whole(seq, "a positive whole number", checked, positive=True),
        ]
    checks += [
        *[_iso8601(c, checked) for c in dtypes if c.endswith("dtc")],
        *[
            _whole(
                c, "a whole number other than 0 (SDTM has no study day 0)", checked, positive=False
            )
            for c, dtype in dtypes.items()
            if c.endswith("dy") and dtype == pl.Float64
        ],
        *_domain_checks(domain, dtypes),
        not_null("source_file"),
        not_null("source_locator"),
        *sha256_hex(),
        not_null("ingested_at"),
    ]
    references_ = () if domain == "dm" else (DM,)
    return Suite(f"{SILVER}/{domain}", tuple(dtypes), tuple(checks), references_)


# --- gold ----------------------------------------------------------------------------------

_EVENT_HEAD = ("record_key", "person_pseudonym", "study_id", "arm", "arm_status")

TRIAL_GOLD_VIEWS: tuple[GoldView, ...] = (
    GoldView(
        "trial_subjects",
        (
            "person_pseudonym",
            "study_id",
            "arm",
            "arm_code",
            "actual_arm",
            "arm_status",
            "age",
            "sex",
            "race",
            "ethnicity",
            "country",
            "reference_start",
            "reference_end",
            "informed_consent_date",
            "disposition",
            "died",
        ),
        None,
    ),
    GoldView(
        "trial_adverse_events",
        (
            *_EVENT_HEAD,
            "term",
            "body_system",
            "severity",
            "serious",
            "relationship",
            "action_taken",
            "outcome",
            "start_date",
            "end_date",
            "start_day",
            "epoch",
        ),
        "A",
    ),
    GoldView(
        "trial_lab_results",
        (
            *_EVENT_HEAD,
            "test_code",
            "test_name",
            "category",
            "loinc",
            "result",
            "result_text",
            "unit",
            "normal_low",
            "normal_high",
            "normal_indicator",
            "baseline",
            "visit",
            "visit_number",
            "study_day",
            "date",
        ),
        "B",
    ),
)
"""The trials research views (trials contract, "Gold view columns"), in ``TRIAL_VIEWS``
order."""


def _gold_view(name: str) -> GoldView:
    return next(v for v in TRIAL_GOLD_VIEWS if v.name == name)


def _no_usubjid() -> Check:
    """No text value of a view is a USUBJID of silver DM (the study's subject identifier
    links back to the enrolment list). SUBJID is left out: a short number that a result
    text may equal."""

    def expression(context: DeriveContext) -> pl.Expr:
        dm = context.references[DM]
        if "usubjid" not in dm.columns:
            return pl.lit(False)
        subjects = dm.get_column("usubjid").cast(pl.String).drop_nulls().unique().implode()
        text = [c for c, dtype in context.schema.items() if dtype == pl.String]
        if not text:
            return pl.lit(True)
        return ~pl.any_horizontal(pl.col(c).is_in(subjects).fill_null(False) for c in text)

    return derived_true(
        "no_usubjid_values",
        (),
        expression,
        f"no text value is a usubjid of {DM}",
        column=None,
    )


def _person() -> list[Check]:
    return [
        not_null("person_pseudonym"),
        _pseudonym_format("person_pseudonym", "P"),
        references("person_pseudonym", GOLD_PATIENTS, "person_pseudonym"),
    ]


def _blinding(arms: Iterable[str]) -> list[Check]:
    """Arm columns are empty while a study is blinded; a study has one arm status."""
    status = pl.col("arm_status")
    checks = [
        not_null("arm_status"),
        in_set("arm_status", ARM_STATUS, what="arm status (blinded or unblinded)"),
        one_per_group(
            "one_arm_status_per_study",
            "arm_status",
            "study_id",
            pl.lit(True),
            (),
            "every row of a study has the same arm_status",
        ),
    ]
    for arm in arms:
        checks.append(
            derived_true(
                f"{arm}_empty_while_blinded",
                ("arm_status", arm),
                lambda _, arm=arm: pl.when(status == "blinded").then(pl.col(arm).is_null()),
                f"{arm} is empty wherever arm_status is blinded (blinding)",
                column=arm,
            )
        )
    return checks


def _arm_status_as_subjects() -> Check:
    """An event view's arm status of a study is the subjects view's (one blinding policy)."""

    def expression(context: DeriveContext) -> pl.Expr:
        subjects = context.references[GOLD_SUBJECTS]
        study = pl.col("study_id")
        if not {"study_id", "arm_status"} <= set(subjects.columns):
            return pl.when(study.is_not_null()).then(pl.lit(False))
        studies = (
            subjects.select("study_id", "arm_status")
            .drop_nulls("study_id")
            .unique("study_id", keep="first")
        )
        known = study.is_in(studies.get_column("study_id").implode())
        expected = study.replace_strict(
            studies.get_column("study_id"),
            studies.get_column("arm_status"),
            default=None,
            return_dtype=pl.String,
        )
        return pl.when(known).then(pl.col("arm_status").eq_missing(expected))

    return derived_true(
        "arm_status_as_in_trial_subjects",
        ("study_id", "arm_status"),
        expression,
        f"every study's arm_status is the one {GOLD_SUBJECTS} gives it",
        column="arm_status",
    )


def trial_subjects_suite() -> Suite:
    """One row per consented person and study: demographics, arms (unless blinded), dates."""
    view = _gold_view("trial_subjects")
    checks = [
        *_privacy(view),
        _no_usubjid(),
        not_null("study_id"),
        *_person(),
        compound_unique(("study_id", "person_pseudonym")),
        *_blinding(ARM_COLUMNS),
        Check(
            "expect_column_values_to_be_between",
            {"column": "age", "min_value": 0, "max_value": AGE_CAP},
            f"age is between 0 and {AGE_CAP} (ages over {AGE_CAP - 1} are reported as {AGE_CAP})",
            "error",
            "age",
        ),
        in_set("sex", SDTM_SEX, what="CDISC SEX (C66731)"),
        _in_codelist("ethnicity", SDTM_ETHNIC, "CDISC ETHNIC (C66790)"),
        *[
            plausible_date(c, shifted=True)
            for c in ("reference_start", "reference_end", "informed_consent_date")
        ],
        ordered("reference_start", "reference_end", severity="warning"),
        not_null("died"),
    ]
    refs = (GOLD_PATIENTS, DM)
    return Suite(GOLD_SUBJECTS, view.columns, tuple(checks), refs)


def _event_checks(view: GoldView) -> list[Check]:
    return [
        *_privacy(view),
        _no_usubjid(),
        not_null("record_key"),
        unique("record_key"),
        _pseudonym_format("record_key", view.record_prefix or ""),
        *_person(),
        not_null("study_id"),
        subjects_in(
            GOLD_SUBJECTS,
            ("study_id", "person_pseudonym"),
            ("study_id", "person_pseudonym"),
            severity="warning",
        ),
        *_blinding(("arm",)),
        _arm_status_as_subjects(),
    ]


def trial_adverse_events_suite() -> Suite:
    """Adverse events of consented trial subjects: coded terms, severity, shifted dates."""
    view = _gold_view("trial_adverse_events")
    checks = [
        *_event_checks(view),
        in_set("severity", SDTM_AESEV, what="CDISC AESEV (C66769)"),
        in_set("action_taken", SDTM_ACN, what="CDISC ACN (C66767)"),
        in_set("outcome", SDTM_OUT, what="CDISC OUT (C66768)"),
        plausible_date("start_date", shifted=True),
        plausible_date("end_date", shifted=True),
        ordered("start_date", "end_date", severity="warning"),
        derived_true(
            "start_day_not_zero",
            ("start_day",),
            lambda _: pl.when(pl.col("start_day").is_not_null()).then(pl.col("start_day") != 0),
            "start_day is not 0 (SDTM has no study day 0)",
            severity="warning",
            column="start_day",
        ),
    ]
    refs = (GOLD_PATIENTS, GOLD_SUBJECTS, DM)
    return Suite(GOLD_ADVERSE_EVENTS, view.columns, tuple(checks), refs)


def trial_lab_results_suite() -> Suite:
    """Lab results of consented trial subjects in standard units, with shifted dates."""
    view = _gold_view("trial_lab_results")
    checks = [
        *_event_checks(view),
        derived_true(
            "loinc_loinc_check_digit",
            ("loinc",),
            lambda _: pl.when(pl.col("loinc").is_not_null()).then(
                pl.col("loinc").map_batches(
                    lambda s: _per_value(s, loinc_check_digit_ok), return_dtype=pl.Boolean
                )
            ),
            "loinc is a LOINC code with a valid Mod 10 check digit",
            severity="warning",
            column="loinc",
        ),
        _in_codelist("normal_indicator", SDTM_NRIND, "CDISC NRIND (C78736)"),
        Check(
            "expect_column_pair_values_a_to_be_greater_than_b",
            {
                "column_A": "normal_high",
                "column_B": "normal_low",
                "or_equal": True,
                "ignore_row_if": "either_value_is_missing",
            },
            "normal_low is at most normal_high",
            "warning",
            "normal_low,normal_high",
        ),
        not_null("baseline"),
        plausible_date("date", shifted=True),
    ]
    refs = (GOLD_PATIENTS, GOLD_SUBJECTS, DM)
    return Suite(GOLD_LAB_RESULTS, view.columns, tuple(checks), refs)


TRIAL_SUITES: dict[str, Callable[[], Suite]] = {
    **{f"{SILVER}/{d}": partial(silver_domain_suite, d) for d in TRIAL_DOMAINS},
    GOLD_SUBJECTS: trial_subjects_suite,
    GOLD_ADVERSE_EVENTS: trial_adverse_events_suite,
    GOLD_LAB_RESULTS: trial_lab_results_suite,
}
"""Every trials table path to its suite's builder (``quality.suites.suite_for`` calls it)."""
