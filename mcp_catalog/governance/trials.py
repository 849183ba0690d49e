"""The research views of the trials silo: subjects, adverse events and lab results (SDTM).

The views read the silver SDTM domains (``silver/trials/<domain>``: the standard variables
in lower case, plus ``person_key`` and ``link_status`` from the study's enrolment list) and
keep only rows whose subject is linked to a person (``link_status`` ``linked``) who
consented to research and has not withdrawn consent from that study
(``ViewContext.withdrawn_from_study``, from the study's disposition records; see
``mcp_catalog.governance.consent``). People appear as the audience's person pseudonym,
events and results as record pseudonyms of ``STUDYID|USUBJID|--SEQ`` (tags ``A`` and ``B``);
USUBJID, SUBJID, site and investigator never leave silver, nor does any verbatim text
(AETERM, the original results).

Blinding: a subject's arms (ARM, ARMCD, ACTARM) are shown only for studies in
``ViewContext.unblinded_studies`` (from the policy's ``trials`` section); for every other
study, one the policy does not list included, they are empty and ``arm_status`` says
``blinded``.

Dates: SDTM ``--DTC`` values are ISO 8601 text, possibly partial (``2024-03``, ``2024``) or
with a time. A view date is the complete calendar date at the start of the value
(``YYYY-MM-DD``, alone or followed by a time); a partial or malformed value gives an empty
date, because a year or month cannot be shifted without revealing more than it hides. Dates
then move by the person's secret shift, the same as in the EHR views. Study days (``--DY``)
are relative and kept as they are.

Ages: DM AGE in whole years (converted from AGEU), with everyone aged 90 or more reported as
90 (Safe Harbor).
"""

import polars as pl

from mcp_catalog.governance.deid import AGE_CAP, PERSON_PREFIX, shift_dates
from mcp_catalog.governance.views import ViewColumn, ViewContext, ViewSpec
from mcp_catalog.manifest import ColumnClass, ColumnType
from quality.valuesets import SDTM_ACN, SDTM_AESEV, SDTM_OUT, SDTM_SEX

DM = "silver/trials/dm"
DS = "silver/trials/ds"
AE = "silver/trials/ae"
LB = "silver/trials/lb"

AE_PREFIX = "A"
"""Tag of adverse event pseudonyms."""
LB_PREFIX = "B"
"""Tag of trial lab result pseudonyms."""

LINKED = "linked"
"""The link status of a subject matched to a person through the study's enrolment list."""

DISPOSITION_EVENT = "DISPOSITION EVENT"
"""The DSCAT of the disposition records (others are protocol milestones and other events)."""

ARM_STATUS: tuple[str, ...] = ("blinded", "unblinded")
SEX = SDTM_SEX
AE_SEVERITY = SDTM_AESEV
AE_ACTION = SDTM_ACN
AE_OUTCOME = SDTM_OUT

_PER_YEAR = {"YEARS": 1.0, "MONTHS": 12.0, "WEEKS": 52.1775, "DAYS": 365.25, "HOURS": 8766.0}
"""AGEU values (CDISC CT C66781) and how many of each make a year."""

_FULL_DATE = r"^(\d{4}-\d{2}-\d{2})(?:T|$)"


# -- expressions -----------------------------------------------------------------------------


def _linked_consented(frame: pl.DataFrame, ctx: ViewContext) -> pl.DataFrame:
    """Rows of subjects linked with certainty (``link_status`` ``linked``) who consented to
    research and did not withdraw their consent from the row's study."""
    kept = frame.filter(
        pl.col("person_key").is_not_null()
        & (pl.col("link_status") == LINKED)
        & pl.col("person_key").is_in(ctx.consented.implode())
    )
    if not ctx.withdrawn_from_study:
        return kept
    withdrawn = pl.DataFrame(
        sorted(ctx.withdrawn_from_study),
        schema={"person_key": pl.String(), "studyid": pl.String()},
        orient="row",
    )
    return kept.join(withdrawn, on=["person_key", "studyid"], how="anti", maintain_order="left")


def sdtm_date(column: str) -> pl.Expr:
    """The complete date an SDTM ISO 8601 ``--DTC`` value starts with, else null.

    ``2024-03-05`` and ``2024-03-05T10:20`` give 2024-03-05; partial dates (``2024-03``,
    ``2024``, ``2024---05``), intervals, impossible dates and nulls give null.

    Args:
        column: the ``--DTC`` column (String).

    Returns:
        A Date expression named ``column``.
    """
    return (
        pl.col(column)
        .str.extract(_FULL_DATE, 1)
        .str.strptime(pl.Date(), "%Y-%m-%d", strict=False)
        .alias(column)
    )


def _coded(column: str, values: tuple[str, ...]) -> pl.Expr:
    """A CDISC controlled term, trimmed and upper-cased; values outside the codelist are
    withheld so that the column's declared enum holds."""
    term = pl.col(column).str.strip_chars().str.to_uppercase()
    return pl.when(term.is_in(list(values))).then(term)


def _flag(column: str) -> pl.Expr:
    """An SDTM ``Y``/``N`` flag as a boolean; anything else is unknown (null)."""
    value = pl.col(column).str.strip_chars().str.to_uppercase()
    return pl.when(value == "Y").then(True).when(value == "N").then(False)


def _yes(column: str) -> pl.Expr:
    """An SDTM flag that is ``Y`` or absent (DTHFL, LBBLFL) as a boolean: absent is false."""
    return (pl.col(column).str.strip_chars().str.to_uppercase() == "Y").fill_null(False)


def _integer(column: str) -> pl.Expr:
    """An SDTM numeric that holds whole numbers (``--DY``) as an integer."""
    return pl.col(column).cast(pl.Int64(), strict=False)


def _age() -> pl.Expr:
    """DM AGE in whole years (AGEU converted, years when AGEU is empty), capped at 90; an
    age in an unknown unit, or a negative one, is withheld."""
    unit = pl.col("ageu").str.strip_chars().str.to_uppercase()
    per_year = pl.when(unit.is_null()).then(pl.lit(1.0))
    for name, factor in _PER_YEAR.items():
        per_year = per_year.when(unit == name).then(pl.lit(factor))
    years = (pl.col("age") / per_year).floor()
    return (
        # NaN compares greater than every number in polars: it must not become 90.
        pl.when(years.is_nan())
        .then(None)
        .when(years >= AGE_CAP)
        .then(pl.lit(float(AGE_CAP)))
        .when(years >= 0)
        .then(years)
        .cast(pl.Int64(), strict=False)
    )


def _unblinded(ctx: ViewContext) -> pl.Expr:
    """True for rows of a study the context lists as unblinded; false (blinded) otherwise,
    also for a row without a study id."""
    studies = pl.Series("studyid", sorted(ctx.unblinded_studies), dtype=pl.String())
    return pl.col("studyid").is_in(studies.implode()).fill_null(False)


def _arms(ctx: ViewContext, arms: dict[str, str]) -> list[pl.Expr]:
    """The arm columns (view name -> DM variable) shown for unblinded studies only, and
    ``arm_status``."""
    unblinded = _unblinded(ctx)
    return [
        *(pl.when(unblinded).then(pl.col(source)).alias(name) for name, source in arms.items()),
        pl.when(unblinded)
        .then(pl.lit("unblinded"))
        .otherwise(pl.lit("blinded"))
        .alias("arm_status"),
    ]


def _seq_text(column: str) -> pl.Expr:
    """A ``--SEQ`` number as text: ``3`` for 3.0, so the identifier reads like the source."""
    seq = pl.col(column)
    whole = seq.is_finite() & (seq == seq.round(0))
    return (
        pl.when(whole)
        .then(seq.cast(pl.Int64(), strict=False).cast(pl.String()))
        .otherwise(seq.cast(pl.String()))
    )


def _record_id(seq: str) -> pl.Expr:
    """The identifier a record pseudonym is computed from: ``STUDYID|USUBJID|--SEQ``."""
    return pl.concat_str(
        [pl.col("studyid"), pl.col("usubjid"), _seq_text(seq)], separator="|"
    ).alias("record_id")


def _subject_arms(dm: pl.DataFrame) -> pl.DataFrame:
    """ARM of every subject, one row per ``(studyid, usubjid)``."""
    return (
        dm.select("studyid", "usubjid", pl.col("arm").alias("dm_arm"))
        .sort("studyid", "usubjid", "dm_arm", nulls_last=True)
        .unique(["studyid", "usubjid"], keep="first", maintain_order=True)
    )


def _pseudonymise(frame: pl.DataFrame, ctx: ViewContext) -> pl.DataFrame:
    if "record_id" in frame.columns:
        frame = ctx.pseudonyms.apply(
            frame, "record_id", prefix=ctx.record_prefix, alias="record_key"
        )
    return ctx.pseudonyms.apply(frame, "person_key", prefix=PERSON_PREFIX, alias="person_pseudonym")


# -- builders --------------------------------------------------------------------------------


def _dispositions(ds: pl.DataFrame) -> pl.DataFrame:
    """Each subject's last disposition event: of the DS records with DSCAT ``DISPOSITION
    EVENT``, the last by DSSTDTC (ISO 8601 text, so in time order; an undated record counts
    as earliest), then DSSEQ; its DSDECOD."""
    return (
        ds.filter(pl.col("dscat").str.strip_chars().str.to_uppercase() == DISPOSITION_EVENT)
        .sort("studyid", "usubjid", "dsstdtc", "dsseq", nulls_last=False)
        .group_by("studyid", "usubjid", maintain_order=True)
        .agg(pl.col("dsdecod").last().alias("disposition"))
    )


def _build_subjects(silver: dict[str, pl.DataFrame], ctx: ViewContext) -> pl.DataFrame:
    # A person screened twice for one study has two USUBJIDs; the row of their latest
    # informed consent (then the greatest USUBJID) stands for them, so the key holds.
    dm = (
        _linked_consented(silver[DM], ctx)
        .sort("studyid", "person_key", "rficdtc", "usubjid", nulls_last=False)
        .unique(["studyid", "person_key"], keep="last", maintain_order=True)
    )
    frame = dm.join(
        _dispositions(silver[DS]), on=["studyid", "usubjid"], how="left", maintain_order="left"
    ).select(
        "person_key",
        pl.col("studyid").alias("study_id"),
        *_arms(ctx, {"arm": "arm", "arm_code": "armcd", "actual_arm": "actarm"}),
        _age().alias("age"),
        _coded("sex", SEX).alias("sex"),
        pl.col("race"),
        pl.col("ethnic").alias("ethnicity"),
        pl.col("country"),
        sdtm_date("rfstdtc").alias("reference_start"),
        sdtm_date("rfendtc").alias("reference_end"),
        sdtm_date("rficdtc").alias("informed_consent_date"),
        pl.col("disposition"),
        _yes("dthfl").alias("died"),
    )
    frame = shift_dates(
        frame, ("reference_start", "reference_end", "informed_consent_date"), ctx.shifts
    )
    return _pseudonymise(frame, ctx)


def _build_adverse_events(silver: dict[str, pl.DataFrame], ctx: ViewContext) -> pl.DataFrame:
    frame = (
        _linked_consented(silver[AE], ctx)
        .join(
            _subject_arms(silver[DM]),
            on=["studyid", "usubjid"],
            how="left",
            maintain_order="left",
        )
        .select(
            "person_key",
            _record_id("aeseq"),
            pl.col("studyid").alias("study_id"),
            *_arms(ctx, {"arm": "dm_arm"}),
            pl.col("aedecod").alias("term"),
            pl.col("aebodsys").alias("body_system"),
            _coded("aesev", AE_SEVERITY).alias("severity"),
            _flag("aeser").alias("serious"),
            pl.col("aerel").alias("relationship"),
            _coded("aeacn", AE_ACTION).alias("action_taken"),
            _coded("aeout", AE_OUTCOME).alias("outcome"),
            sdtm_date("aestdtc").alias("start_date"),
            sdtm_date("aeendtc").alias("end_date"),
            _integer("aestdy").alias("start_day"),
            pl.col("epoch"),
        )
    )
    frame = shift_dates(frame, ("start_date", "end_date"), ctx.shifts)
    return _pseudonymise(frame, ctx)


def _baseline(lb: pl.DataFrame) -> pl.Expr:
    """LBBLFL, or where it is empty LBLOBXFL (its SDTMIG 3.3 successor, "last observation
    before exposure") when the silver table carries it."""
    flag = pl.col("lbblfl")
    if "lblobxfl" in lb.columns:
        flag = flag.fill_null(pl.col("lblobxfl"))
    return (flag.str.strip_chars().str.to_uppercase() == "Y").fill_null(False)


def _build_lab_results(silver: dict[str, pl.DataFrame], ctx: ViewContext) -> pl.DataFrame:
    lb = silver[LB]
    frame = (
        _linked_consented(lb, ctx)
        .join(
            _subject_arms(silver[DM]),
            on=["studyid", "usubjid"],
            how="left",
            maintain_order="left",
        )
        .select(
            "person_key",
            _record_id("lbseq"),
            pl.col("studyid").alias("study_id"),
            *_arms(ctx, {"arm": "dm_arm"}),
            pl.col("lbtestcd").alias("test_code"),
            pl.col("lbtest").alias("test_name"),
            pl.col("lbcat").alias("category"),
            pl.col("lbloinc").alias("loinc"),
            pl.col("lbstresn").alias("result"),
            pl.col("lbstresc").alias("result_text"),
            pl.col("lbstresu").alias("unit"),
            pl.col("lbstnrlo").alias("normal_low"),
            pl.col("lbstnrhi").alias("normal_high"),
            pl.col("lbnrind").alias("normal_indicator"),
            _baseline(lb).alias("baseline"),
            pl.col("visit"),
            pl.col("visitnum").alias("visit_number"),
            _integer("lbdy").alias("study_day"),
            sdtm_date("lbdtc").alias("date"),
        )
    )
    frame = shift_dates(frame, ("date",), ctx.shifts)
    return _pseudonymise(frame, ctx)


def trial_record_identifiers(silver: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Every ``(prefix, identifier)`` pair the trial views pseudonymise besides people.

    For the surrogate scheme: the audience's surrogate table must hold these before the
    adverse event and lab views are built (people come from the crosswalk).

    Args:
        silver: frames keyed by path, holding at least ``silver/trials/ae`` and
            ``silver/trials/lb``.

    Returns:
        ``prefix``, ``identifier`` (duplicates possible, no nulls).
    """
    parts = [
        silver[path].select(pl.lit(prefix, pl.String()).alias("prefix"), _record_id(seq))
        for path, prefix, seq in ((AE, AE_PREFIX, "aeseq"), (LB, LB_PREFIX, "lbseq"))
    ]
    return pl.concat(parts).rename({"record_id": "identifier"}).drop_nulls()


# -- columns ---------------------------------------------------------------------------------


def _column(
    name: str,
    kind: ColumnType,
    description: str,
    derived_from: tuple[str, ...] | None = None,
    *,
    column_class: ColumnClass = "clinical",
    enum: tuple[str, ...] | None = None,
) -> ViewColumn:
    return ViewColumn(name, kind, description, column_class, enum, derived_from)


def _shifted(name: str, what: str, source: str) -> ViewColumn:
    return ViewColumn(
        name,
        "date",
        f"{what}, shifted by the person's secret date offset (the same offset as in the EHR "
        "views, so intervals within a person are kept); empty when the source gives only a "
        "partial date.",
        "sensitive",
        derived_from=(source,),
    )


def _person() -> ViewColumn:
    return ViewColumn(
        "person_pseudonym",
        "string",
        "Pseudonym of the person, stable within this audience only.",
        "pseudonym",
        derived_from=("person_key",),
    )


def _record(what: str, seq: str) -> ViewColumn:
    return ViewColumn(
        "record_key",
        "string",
        f"Pseudonym of the {what}, stable within this audience only.",
        "pseudonym",
        derived_from=("studyid", "usubjid", seq),
    )


def _study() -> ViewColumn:
    return _column("study_id", "string", "Study identifier (SDTM STUDYID).", ("studyid",))


def _arm_status() -> ViewColumn:
    return _column(
        "arm_status",
        "string",
        "unblinded when the study's treatment assignment may be shown; blinded otherwise "
        "(the arm columns are then empty).",
        ("studyid",),
        column_class="administrative",
        enum=ARM_STATUS,
    )


def _event_arm() -> ViewColumn:
    return _column(
        "arm",
        "string",
        "Planned arm of the subject (SDTM DM ARM); empty while the study is blinded.",
        ("arm",),
    )


SUBJECT_COLUMNS: tuple[ViewColumn, ...] = (
    _person(),
    _study(),
    _column(
        "arm",
        "string",
        "Planned arm (SDTM ARM); empty while the study is blinded.",
    ),
    _column(
        "arm_code",
        "string",
        "Code of the planned arm (SDTM ARMCD); empty while the study is blinded.",
        ("armcd",),
    ),
    _column(
        "actual_arm",
        "string",
        "Arm the subject was actually treated in (SDTM ACTARM); empty while the study is blinded.",
        ("actarm",),
    ),
    _arm_status(),
    _column(
        "age",
        "integer",
        "Age in whole years as the study recorded it (SDTM AGE, converted from AGEU); 90 "
        "for everyone aged 90 or more.",
        ("age", "ageu"),
        column_class="quasi_identifier",
    ),
    _column(
        "sex",
        "string",
        "Sex (SDTM SEX, CDISC codelist C66731: F, M, U, UNDIFFERENTIATED); other values are "
        "withheld.",
        column_class="quasi_identifier",
        enum=SEX,
    ),
    _column("race", "string", "Race (SDTM RACE).", column_class="quasi_identifier"),
    _column(
        "ethnicity",
        "string",
        "Ethnicity (SDTM ETHNIC).",
        ("ethnic",),
        column_class="quasi_identifier",
    ),
    _column(
        "country",
        "string",
        "Country of the investigational site (SDTM COUNTRY, ISO 3166-1 alpha-3).",
        column_class="quasi_identifier",
    ),
    _shifted("reference_start", "Subject reference start date (SDTM RFSTDTC)", "rfstdtc"),
    _shifted("reference_end", "Subject reference end date (SDTM RFENDTC)", "rfendtc"),
    _shifted("informed_consent_date", "Date of informed consent (SDTM RFICDTC)", "rficdtc"),
    _column(
        "disposition",
        "string",
        "Standardized term (DSDECOD) of the subject's last disposition event: of the DS "
        "records with DSCAT DISPOSITION EVENT, the latest by DSSTDTC, then DSSEQ; empty "
        "when there is none.",
        ("dsdecod", "dscat", "dsstdtc", "dsseq"),
    ),
    _column(
        "died",
        "boolean",
        "True when the subject died during the study (SDTM DTHFL is Y); false otherwise.",
        ("dthfl",),
    ),
)
"""Columns of ``research/trial_subjects``, in order."""

ADVERSE_EVENT_COLUMNS: tuple[ViewColumn, ...] = (
    _record("adverse event", "aeseq"),
    _person(),
    _study(),
    _event_arm(),
    _arm_status(),
    _column(
        "term",
        "string",
        "Dictionary-derived term of the event (SDTM AEDECOD, MedDRA preferred term); the "
        "verbatim term is withheld.",
        ("aedecod",),
    ),
    _column(
        "body_system",
        "string",
        "Body system or organ class of the event (SDTM AEBODSYS, MedDRA).",
        ("aebodsys",),
    ),
    _column(
        "severity",
        "string",
        "Severity (SDTM AESEV: MILD, MODERATE, SEVERE); other values are withheld.",
        ("aesev",),
        enum=AE_SEVERITY,
    ),
    _column(
        "serious",
        "boolean",
        "True when the event is serious (SDTM AESER is Y), false when it is N; empty when "
        "not recorded.",
        ("aeser",),
    ),
    _column(
        "relationship",
        "string",
        "Causality to the study treatment as the sponsor records it (SDTM AEREL).",
        ("aerel",),
    ),
    _column(
        "action_taken",
        "string",
        "Action taken with the study treatment (SDTM AEACN, CDISC codelist C66767); other "
        "values are withheld.",
        ("aeacn",),
        enum=AE_ACTION,
    ),
    _column(
        "outcome",
        "string",
        "Outcome of the event (SDTM AEOUT, CDISC codelist C66768); other values are withheld.",
        ("aeout",),
        enum=AE_OUTCOME,
    ),
    _shifted("start_date", "Start date of the event (SDTM AESTDTC)", "aestdtc"),
    _shifted("end_date", "End date of the event (SDTM AEENDTC)", "aeendtc"),
    _column(
        "start_day",
        "integer",
        "Study day of the start of the event, relative to the reference start date (SDTM "
        "AESTDY; day 1 is the reference start, there is no day 0).",
        ("aestdy",),
    ),
    _column(
        "epoch",
        "string",
        "Trial epoch in which the event started (SDTM EPOCH: SCREENING, TREATMENT, ...).",
    ),
)
"""Columns of ``research/trial_adverse_events``, in order."""

LAB_RESULT_COLUMNS: tuple[ViewColumn, ...] = (
    _record("trial lab result", "lbseq"),
    _person(),
    _study(),
    _event_arm(),
    _arm_status(),
    _column("test_code", "string", "Short name of the test (SDTM LBTESTCD).", ("lbtestcd",)),
    _column("test_name", "string", "Name of the test (SDTM LBTEST).", ("lbtest",)),
    _column(
        "category",
        "string",
        "Category of the test (SDTM LBCAT: CHEMISTRY, HEMATOLOGY, URINALYSIS, ...).",
        ("lbcat",),
    ),
    _column("loinc", "string", "LOINC code of the test (SDTM LBLOINC).", ("lbloinc",)),
    _column(
        "result",
        "number",
        "Numeric result in standard units (SDTM LBSTRESN); empty for a result that is not a "
        "number.",
        ("lbstresn",),
    ),
    _column(
        "result_text",
        "string",
        "Result in standard format as text (SDTM LBSTRESC), numeric or coded.",
        ("lbstresc",),
    ),
    _column("unit", "string", "Standard unit of the result (SDTM LBSTRESU).", ("lbstresu",)),
    _column(
        "normal_low",
        "number",
        "Lower limit of the normal range in standard units (SDTM LBSTNRLO).",
        ("lbstnrlo",),
    ),
    _column(
        "normal_high",
        "number",
        "Upper limit of the normal range in standard units (SDTM LBSTNRHI).",
        ("lbstnrhi",),
    ),
    _column(
        "normal_indicator",
        "string",
        "Result relative to the normal range (SDTM LBNRIND: NORMAL, HIGH, LOW, ABNORMAL).",
        ("lbnrind",),
    ),
    _column(
        "baseline",
        "boolean",
        "True for the subject's baseline result of the test (SDTM LBBLFL is Y, or LBLOBXFL "
        "when LBBLFL is empty); false otherwise.",
        ("lbblfl", "lblobxfl"),
    ),
    _column("visit", "string", "Protocol-defined name of the visit (SDTM VISIT)."),
    _column(
        "visit_number",
        "number",
        "Number of the visit, in protocol order (SDTM VISITNUM).",
        ("visitnum",),
    ),
    _column(
        "study_day",
        "integer",
        "Study day of the specimen collection, relative to the reference start date (SDTM LBDY).",
        ("lbdy",),
    ),
    _shifted("date", "Date of the specimen collection (SDTM LBDTC)", "lbdtc"),
)
"""Columns of ``research/trial_lab_results``, in order."""

_DM_COLUMNS = (
    "studyid",
    "usubjid",
    "person_key",
    "rficdtc",
    "arm",
    "armcd",
    "actarm",
    "age",
    "ageu",
    "sex",
    "race",
    "ethnic",
    "country",
    "rfstdtc",
    "rfendtc",
    "dthfl",
)
_AE_COLUMNS = (
    "studyid",
    "usubjid",
    "aeseq",
    "person_key",
    "aedecod",
    "aebodsys",
    "aesev",
    "aeser",
    "aerel",
    "aeacn",
    "aeout",
    "aestdtc",
    "aeendtc",
    "aestdy",
    "epoch",
)
_LB_COLUMNS = (
    "studyid",
    "usubjid",
    "lbseq",
    "person_key",
    "lbtestcd",
    "lbtest",
    "lbcat",
    "lbloinc",
    "lbstresn",
    "lbstresc",
    "lbstresu",
    "lbstnrlo",
    "lbstnrhi",
    "lbnrind",
    "lbblfl",
    "lblobxfl",
    "visit",
    "visitnum",
    "lbdy",
    "lbdtc",
)

TRIAL_VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec(
        name="trial_subjects",
        audience="research",
        title="Trial subjects (de-identified)",
        description="One row per consented person and clinical trial they took part in "
        "(SDTM DM and DS): age (90 for everyone aged 90 or more), sex, race, ethnicity, "
        "country, shifted reference and consent dates, last disposition event and death. "
        "Treatment arms are shown only for studies whose blinding the policy has lifted.",
        sources=(DM, DS),
        key=("study_id", "person_pseudonym"),
        columns=SUBJECT_COLUMNS,
        build=_build_subjects,
        source_of=(
            *((c, DM) for c in _DM_COLUMNS),
            *((c, DS) for c in ("dscat", "dsdecod", "dsstdtc", "dsseq")),
        ),
    ),
    ViewSpec(
        name="trial_adverse_events",
        audience="research",
        title="Trial adverse events (de-identified)",
        description="One row per adverse event of a consented trial subject (SDTM AE): MedDRA "
        "preferred term and body system, severity, seriousness, causality, action taken, "
        "outcome and shifted dates. Verbatim terms are withheld; the subject's arm is shown "
        "only for studies whose blinding the policy has lifted.",
        sources=(AE, DM),
        key=("record_key",),
        columns=ADVERSE_EVENT_COLUMNS,
        build=_build_adverse_events,
        record_prefix=AE_PREFIX,
        source_of=(*((c, AE) for c in _AE_COLUMNS), ("arm", DM)),
    ),
    ViewSpec(
        name="trial_lab_results",
        audience="research",
        title="Trial laboratory results (de-identified)",
        description="One row per laboratory result of a consented trial subject (SDTM LB) in "
        "standard units, with normal ranges, baseline flags, visits and shifted dates. The "
        "subject's arm is shown only for studies whose blinding the policy has lifted.",
        sources=(LB, DM),
        key=("record_key",),
        columns=LAB_RESULT_COLUMNS,
        build=_build_lab_results,
        record_prefix=LB_PREFIX,
        source_of=(*((c, LB) for c in _LB_COLUMNS), ("arm", DM)),
    ),
)
"""The research audience's views of the trials silo."""
