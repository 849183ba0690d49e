"""Lab suites: results as the LIS exports and HL7 v2 feeds sent them, the file ledger, the
labs' patient index, the conformed silver results, the mapping report and the research view.

Severities follow who guarantees a property. What biofed itself computes (keys, the
conformed LOINC and its check digit, the mapping, unit and link statuses, the canonical
unit of an analyte) is an error: a failure is a bug of the pipeline, and stopping it is
right. What a lab sent (result statuses outside HL7 table 0085, abnormal flags outside table
0078, a LOINC with a wrong check digit, a result time before the collection time, a
reference range upside down) is a warning in bronze, silver and gold alike: the research
view copies silver, and a blocking error on a real feed's oddity would stop the pipeline
for data it cannot fix.

The central conformance rule is the unit's: after normalisation every result of one LOINC
code whose unit was canonical or converted carries the same unit (the analyte's canonical
UCUM unit), so values of one analyte can be compared across sites. It is checked per group
(:func:`one_per_group`), as a derived column true where a row's group agrees.

Bronze columns are the shared lab row (``connectors.lab_schema``) plus the pipeline's
provenance; silver's, the mapping report's and the research view's are restated here from
the lab contract (``quality`` may not import ``pipelines`` or ``mcp_catalog``); tests hold
them equal to the originals where those exist.
"""

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import date, timedelta

import polars as pl

from connectors.lab_schema import LAB_RESULT_SCHEMA
from quality.codes import loinc_check_digit_ok
from quality.results import Severity
from quality.suites._checks import (
    UCUM_UNIT,
    _per_value,
    compound_unique,
    derived_true,
    exact_columns,
    in_set,
    matches,
    not_in_future,
    not_null,
    ordered,
    references,
    sha256_hex,
    unique,
)
from quality.suites._model import Check, DeriveContext, Suite
from quality.suites.bronze import PERSON_KEY, files_suite
from quality.suites.genomics import EHR_MRN, _on_contract_dtypes, _typed
from quality.suites.gold import AUDIENCE, GoldView, _privacy, _pseudonym_format
from quality.valuesets import (
    HL7_ABNORMAL_FLAGS,
    HL7_RESULT_STATUS,
    LAB_LINK_STATUS,
    LAB_MAPPING_STATUS,
    LAB_SOURCE_KINDS,
    LAB_UNIT_STATUS,
)

BRONZE = "bronze/lab"
SILVER = "silver/lab"
BRONZE_RESULTS = f"{BRONZE}/results"
BRONZE_FILES = f"{BRONZE}/files"
PATIENT_INDEX = f"{BRONZE}/patient_index"
SILVER_RESULTS = f"{SILVER}/lab_results"
MAPPING_REPORT = f"{SILVER}/mapping_report"
GOLD_PATIENTS = f"gold/{AUDIENCE}/patients"
GOLD_RESULTS = f"gold/{AUDIENCE}/lab_results"

_UTC = pl.Datetime("us", "UTC")
_S = pl.String()
_F = pl.Float64()

BRONZE_RESULT_DTYPES: dict[str, pl.DataType] = {
    **LAB_RESULT_SCHEMA,
    "source_file": _S,
    "source_sha256": _S,
    "ingested_at": _UTC,
}
"""``bronze/lab/results``: the readers' ``lab_results`` row (``connectors.lab_schema``), then
the file it came from (below ``landing/lab``), the file's hash and when it was ingested."""
PATIENT_INDEX_DTYPES: dict[str, pl.DataType] = {
    "site": _S,
    "lab_patient_id": _S,
    "mrn": _S,
    "source_file": _S,
    "source_sha256": _S,
    "ingested_at": _UTC,
}
"""``bronze/lab/patient_index``: each lab's cross-reference of its patient ids to MRNs
(``landing/lab/patient_index.csv``) with its provenance."""
SILVER_RESULT_DTYPES: dict[str, pl.DataType] = {
    "result_id": _S,
    "person_key": _S,
    "link_status": _S,
    "lab_patient_id": _S,
    "site": _S,
    "source_kind": _S,
    "message_id": _S,
    "accession": _S,
    "panel_code": _S,
    "panel_display": _S,
    "specimen_type": _S,
    "category": _S,
    "collected_at": _UTC,
    "resulted_at": _UTC,
    "local_code": _S,
    "local_system": _S,
    "local_display": _S,
    "source_loinc": _S,
    "loinc": _S,
    "loinc_display": _S,
    "analyte": _S,
    "mapping_status": _S,
    "map_version": _S,
    "value_type": _S,
    "value_text": _S,
    "value_original": _F,
    "unit_original": _S,
    "comparator": _S,
    "value": _F,
    "unit": _S,
    "unit_status": _S,
    "reference_low": _F,
    "reference_high": _F,
    "reference_text": _S,
    "abnormal_flag": _S,
    "result_status": _S,
    "value_code": _S,
    "value_system": _S,
    "value_display": _S,
    "source_file": _S,
    "source_locator": _S,
    "source_sha256": _S,
    "ingested_at": _UTC,
}
"""``silver/lab/lab_results`` (lab contract, "Silver"): one row per result, keyed by
``result_id``, conformed to LOINC and canonical units, linked to a person."""
MAPPING_REPORT_DTYPES: dict[str, pl.DataType] = {
    "site": _S,
    "source_kind": _S,
    "map_version": _S,
    "issue": _S,
    "code": _S,
    "code_system": _S,
    "code_display": _S,
    "unit": _S,
    "analyte": _S,
    "rows": pl.Int64(),
}
"""``silver/lab/mapping_report``: ``connectors.terminology.mapping_report`` output, one row
per site, issue, code and unit, with the number of results it concerns."""

SOURCE_KINDS = LAB_SOURCE_KINDS
LINK_STATUS = LAB_LINK_STATUS
MAPPING_STATUS = LAB_MAPPING_STATUS
WITH_LOINC: tuple[str, ...] = ("loinc_reported", "mapped")
"""The mapping statuses under which a result has a conformed ``loinc``."""
UNIT_STATUS = LAB_UNIT_STATUS
IN_CANONICAL_UNIT: tuple[str, ...] = ("canonical", "converted")
"""The unit statuses under which ``value`` is in the analyte's canonical unit."""
WITH_UNIT: tuple[str, ...] = ("canonical", "converted", "no_canonical")
"""The unit statuses under which ``unit`` is a UCUM unit biofed determined."""
ISSUES: tuple[str, ...] = ("unmapped_code", "invalid_loinc", "unknown_unit", "unconvertible_unit")
"""What the mapping report lists (``connectors.terminology.mapping_report``)."""
COMPARATORS: tuple[str, ...] = ("<", "<=", ">", ">=")
"""``connectors.lab_schema.parse_number``'s comparators (``=`` is dropped)."""
LOINC_SYSTEMS: tuple[str, ...] = ("LN", "LOINC", "HTTP://LOINC.ORG")
"""Coding-system names that mean LOINC, compared upper-cased: HL7 v2 table 0396's ``LN`` (as
OBX-3.3 and OBX-3.6 carry it) and the spellings the terminology package also accepts."""
RESULT_ID = r"^[0-9a-f]{32}$"
"""``result_id``: the first 32 hex characters of a SHA-256."""
IDENTIFYING_COLUMNS: tuple[str, ...] = ("lab_patient_id", "accession")
"""Silver columns whose values identify a patient or an order: none may reach the view."""
EARLIEST_DATE = date(1900, 1, 1)
"""No result, visit or trial date of a living cohort lies before this."""
SHIFT_ALLOWANCE = timedelta(days=366)
"""How far past today a shifted date may lie: the views move dates by up to
``mcp_catalog.governance.deid.MAX_SHIFT_DAYS`` (365) either way."""


# --- shared builders -----------------------------------------------------------------------


def one_per_group(
    name: str,
    value: str,
    group: str,
    applies: pl.Expr,
    inputs: Iterable[str],
    description: str,
    *,
    severity: Severity = "error",
    derive: Callable[..., Check] = derived_true,
) -> Check:
    """Among the rows where ``applies`` holds, every ``group`` has one distinct ``value``.

    A row fails when its group (of applicable rows) holds several values, so a conflict fails
    every row of the group; rows where the check does not apply, or whose ``group`` or
    ``value`` is empty, are skipped (nulls are other checks' business).

    Args:
        name: the derived column's name (without the ``qc_`` prefix).
        value: the column that must agree within a group.
        group: the grouping column.
        applies: which rows take part.
        inputs: every column ``applies`` reads besides ``value`` and ``group``.
        description: the check's sentence.
        severity: ``error`` or ``warning``.
        derive: the derived-check builder (a dtype-guarded one for typed tables).

    Returns:
        A derived check.
    """
    taking_part = applies & pl.col(group).is_not_null() & pl.col(value).is_not_null()

    def expression(_: DeriveContext) -> pl.Expr:
        key = pl.when(taking_part).then(pl.col(group))
        distinct = pl.when(taking_part).then(pl.col(value)).n_unique().over(key)
        return pl.when(taking_part).then(distinct == 1)

    return derive(
        name,
        (value, group, *inputs),
        expression,
        description,
        severity=severity,
        column=f"{group},{value}",
    )


def _loinc_valid(
    column: str,
    *,
    system: str | None = None,
    severity: Severity = "error",
    derive: Callable[..., Check] = derived_true,
) -> Check:
    """``column`` holds LOINC codes with a valid Mod 10 check digit wherever it is set (and,
    with ``system``, wherever that column says LOINC)."""
    code = pl.col(column)

    def expression(_: DeriveContext) -> pl.Expr:
        applies = code.is_not_null()
        if system is not None:
            named = pl.col(system).str.strip_chars().str.to_uppercase()
            applies = applies & named.is_in(LOINC_SYSTEMS)
        verdict = code.map_batches(
            lambda s: _per_value(s, loinc_check_digit_ok), return_dtype=pl.Boolean
        )
        return pl.when(applies).then(verdict)

    where = f" where {system} names LOINC (LN)" if system else ""
    return derive(
        f"{column}_loinc_check_digit",
        (column,) if system is None else (system, column),
        expression,
        f"{column} is a LOINC code with a valid Mod 10 check digit{where}",
        severity=severity,
        column=column,
    )


def _flags_ok(value: str) -> bool:
    return all(flag in HL7_ABNORMAL_FLAGS for flag in value.split("~"))


def _abnormal_flags(derive: Callable[..., Check] = derived_true) -> Check:
    flags = pl.col("abnormal_flag")
    return derive(
        "abnormal_flag_in_hl7_0078",
        ("abnormal_flag",),
        lambda _: pl.when(flags.is_not_null()).then(
            flags.map_batches(lambda s: _per_value(s, _flags_ok), return_dtype=pl.Boolean)
        ),
        "every abnormal_flag repetition is an HL7 table 0078 interpretation code",
        severity="warning",
        column="abnormal_flag",
    )


def _result_status() -> Check:
    return in_set(
        "result_status", HL7_RESULT_STATUS, severity="warning", what="HL7 table 0085 result status"
    )


def _reference_range() -> Check:
    return Check(
        "expect_column_pair_values_a_to_be_greater_than_b",
        {
            "column_A": "reference_high",
            "column_B": "reference_low",
            "or_equal": True,
            "ignore_row_if": "either_value_is_missing",
        },
        "reference_low is at most reference_high",
        "warning",
        "reference_low,reference_high",
    )


def _status_sets() -> list[Check]:
    return [
        not_null("mapping_status"),
        in_set("mapping_status", MAPPING_STATUS, what="lab mapping status"),
        not_null("unit_status"),
        in_set("unit_status", UNIT_STATUS, what="lab unit status"),
    ]


def _one_unit_per_loinc(derive: Callable[..., Check] = derived_true) -> list[Check]:
    """Canonical units agree per LOINC (biofed's conformance: an error); the units of
    analytes without a canonical unit should agree too (else analytes.csv lacks one)."""
    status = pl.col("unit_status")
    return [
        one_per_group(
            "one_canonical_unit_per_loinc",
            "unit",
            "loinc",
            status.is_in(IN_CANONICAL_UNIT) & pl.col("value").is_not_null(),
            ("unit_status", "value"),
            "every loinc has exactly one unit among its canonical and converted values",
            derive=derive,
        ),
        one_per_group(
            "one_unit_per_loinc_without_canonical",
            "unit",
            "loinc",
            (status == "no_canonical") & pl.col("value").is_not_null(),
            ("unit_status", "value"),
            "the values of a loinc without a canonical unit share one unit (else "
            "analytes.csv should give the analyte a canonical unit)",
            severity="warning",
            derive=derive,
        ),
    ]


def plausible_date(
    column: str, *, shifted: bool, derive: Callable[..., Check] = derived_true
) -> Check:
    """``column`` (a date or a datetime) is empty or lies between :data:`EARLIEST_DATE` and
    today (plus :data:`SHIFT_ALLOWANCE` for dates a view shifted). A column of another dtype
    fails on every set row: it was meant to hold dates."""

    def expression(context: DeriveContext) -> pl.Expr:
        value = pl.col(column)
        dtype = context.schema.get(column)
        latest = context.now.date() + (SHIFT_ALLOWANCE if shifted else timedelta(0))
        if isinstance(dtype, pl.Datetime):
            day = value.dt.date()
        elif dtype == pl.Date:
            day = value
        else:
            return pl.when(value.is_not_null()).then(pl.lit(False))
        return pl.when(value.is_not_null()).then(
            day.is_between(pl.lit(EARLIEST_DATE), pl.lit(latest))
        )

    limit = "a year past today (dates are shifted)" if shifted else "today"
    return derive(
        f"{column}_plausible",
        (column,),
        expression,
        f"{column} is empty or between {EARLIEST_DATE.year} and {limit}",
        severity="warning",
        column=column,
    )


# --- bronze --------------------------------------------------------------------------------


def bronze_results_suite() -> Suite:
    """Lab results as read from every CSV export and HL7 v2 feed, one row per result."""
    dtypes = BRONZE_RESULT_DTYPES
    checked = _on_contract_dtypes(dtypes)
    checks = [
        exact_columns(tuple(dtypes), "bronze lab results"),
        _typed(dtypes, "bronze lab results"),
        *[not_null(c) for c in ("source_file", "source_locator", "site", "test_code")],
        compound_unique(("site", "source_file", "source_locator")),
        not_null("source_kind"),
        in_set("source_kind", SOURCE_KINDS, what="lab reader"),
        _result_status(),
        _abnormal_flags(checked),
        ordered("collected_at", "resulted_at", severity="warning"),
        _reference_range(),
        _loinc_valid("test_code", system="test_system", severity="warning", derive=checked),
        _loinc_valid("alt_code", system="alt_system", severity="warning", derive=checked),
        *sha256_hex(),
        not_null("ingested_at"),
    ]
    return Suite(BRONZE_RESULTS, tuple(dtypes), tuple(checks))


def files_ledger_suite() -> Suite:
    """The ledger of ingested lab files (the EHR ledger's columns and checks)."""
    return replace(files_suite(), table=BRONZE_FILES)


def patient_index_suite() -> Suite:
    """Each lab's patient index: one MRN per lab patient id of a site."""
    dtypes = PATIENT_INDEX_DTYPES
    checks = [
        exact_columns(tuple(dtypes), "the lab patient index"),
        _typed(dtypes, "the lab patient index"),
        *[not_null(c) for c in ("site", "lab_patient_id", "mrn")],
        compound_unique(("site", "lab_patient_id")),
        matches(
            "mrn",
            EHR_MRN,
            "mrn has the EHR's MRN shape (else the lab's patient links to nobody)",
            severity="warning",
        ),
        not_null("source_file"),
        *sha256_hex(),
        not_null("ingested_at"),
    ]
    return Suite(PATIENT_INDEX, tuple(dtypes), tuple(checks))


# --- silver --------------------------------------------------------------------------------


def silver_results_suite() -> Suite:
    """Conformed lab results: LOINC, canonical units, linked to a person."""
    dtypes = SILVER_RESULT_DTYPES
    checked = _on_contract_dtypes(dtypes)
    link, person = pl.col("link_status"), pl.col("person_key")
    mapping, unit_status = pl.col("mapping_status"), pl.col("unit_status")
    loinc, unit = pl.col("loinc"), pl.col("unit")
    checks = [
        exact_columns(tuple(dtypes), "silver lab results"),
        _typed(dtypes, "silver lab results"),
        not_null("result_id"),
        unique("result_id"),
        matches("result_id", RESULT_ID, "result_id is 32 lowercase hex characters"),
        not_null("site"),
        not_null("source_kind"),
        in_set("source_kind", SOURCE_KINDS, what="lab reader"),
        # Linkage.
        not_null("link_status"),
        in_set("link_status", LINK_STATUS, what="lab link status"),
        matches("person_key", PERSON_KEY, "person_key is a 32-hex random key"),
        checked(
            "person_key_iff_linked",
            ("link_status", "person_key"),
            lambda _: pl.when(link.is_not_null()).then(person.is_not_null() == (link == "linked")),
            "person_key is set exactly where link_status is linked",
            column="person_key",
        ),
        # Mapping to LOINC.
        *_status_sets(),
        _loinc_valid("loinc", derive=checked),
        checked(
            "loinc_iff_mapped",
            ("mapping_status", "loinc"),
            lambda _: pl.when(mapping.is_not_null()).then(
                loinc.is_not_null() == mapping.is_in(WITH_LOINC)
            ),
            "loinc is set exactly where mapping_status is loinc_reported or mapped",
            column="loinc",
        ),
        checked(
            "map_version_when_mapped",
            ("mapping_status", "map_version"),
            lambda _: pl.when(mapping == "mapped").then(pl.col("map_version").is_not_null()),
            "map_version is set wherever mapping_status is mapped (a site map was consulted)",
            column="map_version",
        ),
        checked(
            "analyte_only_with_loinc",
            ("analyte", "loinc"),
            lambda _: pl.when(pl.col("analyte").is_not_null()).then(loinc.is_not_null()),
            "analyte is set only where loinc is set (analytes.csv is keyed by LOINC)",
            column="analyte",
        ),
        # Units and values.
        checked(
            "canonical_unit_only_for_listed_analytes",
            ("unit_status", "analyte"),
            lambda _: pl.when(unit_status.is_in(IN_CANONICAL_UNIT)).then(
                pl.col("analyte").is_not_null()
            ),
            "unit_status is canonical or converted only where analyte is set (a listed "
            "analyte fixes the canonical unit)",
            column="unit_status",
        ),
        *_one_unit_per_loinc(checked),
        checked(
            "value_when_in_canonical_unit",
            ("unit_status", "value"),
            lambda _: pl.when(unit_status.is_in(IN_CANONICAL_UNIT)).then(
                pl.col("value").is_not_null()
            ),
            "value is set wherever unit_status is canonical or converted",
            column="value",
        ),
        checked(
            "unit_follows_unit_status",
            ("unit_status", "unit"),
            lambda _: (
                pl.when(unit_status.is_in(WITH_UNIT))
                .then(unit.is_not_null())
                .when(unit_status == "unknown_unit")
                .then(unit.is_null())
            ),
            "unit is set where unit_status is canonical, converted or no_canonical and "
            "empty where it is unknown_unit",
            column="unit",
        ),
        matches("unit", UCUM_UNIT, "unit is a UCUM expression (no spaces)"),
        checked(
            "value_only_with_value_original",
            ("value", "value_original"),
            lambda _: pl.when(pl.col("value").is_not_null()).then(
                pl.col("value_original").is_not_null()
            ),
            "value is set only where value_original is (value is value_original converted)",
            column="value",
        ),
        in_set("comparator", COMPARATORS, what="value comparator"),
        # What the lab sent.
        _result_status(),
        _abnormal_flags(checked),
        _reference_range(),
        ordered("collected_at", "resulted_at", severity="warning"),
        not_in_future("collected_at"),
        # Provenance.
        not_null("source_file"),
        not_null("source_locator"),
        *sha256_hex(),
        not_null("ingested_at"),
    ]
    return Suite(SILVER_RESULTS, tuple(dtypes), tuple(checks))


def mapping_report_suite() -> Suite:
    """What could not be conformed, per site, code and unit: unmapped codes, invalid LOINC,
    unknown and unconvertible units."""
    issue = pl.col("issue")
    dtypes = MAPPING_REPORT_DTYPES
    checks = [
        exact_columns(tuple(dtypes), "the lab mapping report"),
        _typed(dtypes, "the lab mapping report"),
        not_null("site"),
        in_set("source_kind", SOURCE_KINDS, what="lab reader"),
        not_null("issue"),
        in_set("issue", ISSUES, what="mapping issue"),
        compound_unique(("site", "issue", "code", "unit")),
        not_null("rows"),
        Check(
            "expect_column_values_to_be_between",
            {"column": "rows", "min_value": 1},
            "rows is at least 1 (every issue concerns some results)",
            "error",
            "rows",
        ),
        derived_true(
            "code_when_code_issue",
            ("issue", "code"),
            lambda _: pl.when(issue.is_in(("unmapped_code", "invalid_loinc"))).then(
                pl.col("code").is_not_null()
            ),
            "code is set wherever the issue is unmapped_code or invalid_loinc",
            column="code",
        ),
        derived_true(
            "unit_when_unit_issue",
            ("issue", "unit"),
            lambda _: pl.when(issue.is_in(("unknown_unit", "unconvertible_unit"))).then(
                pl.col("unit").is_not_null()
            ),
            "unit is set wherever the issue is unknown_unit or unconvertible_unit",
            column="unit",
        ),
    ]
    return Suite(MAPPING_REPORT, tuple(dtypes), tuple(checks))


# --- gold ----------------------------------------------------------------------------------

LAB_GOLD_VIEWS: tuple[GoldView, ...] = (
    GoldView(
        "lab_results",
        (
            "record_key",
            "person_pseudonym",
            "site",
            "source_kind",
            "category",
            "loinc",
            "loinc_display",
            "analyte",
            "value",
            "unit",
            "comparator",
            "value_original",
            "unit_original",
            "value_code",
            "value_system",
            "value_display",
            "reference_low",
            "reference_high",
            "abnormal_flag",
            "result_status",
            "specimen_type",
            "collected_at",
            "resulted_at",
            "mapping_status",
            "unit_status",
            "map_version",
        ),
        "L",
    ),
)
"""The lab research view (lab contract, "Gold view columns")."""


def no_source_identifiers(silver: str, columns: Iterable[str]) -> Check:
    """No text value of the view is a value of ``silver``'s identifying ``columns`` (a
    patient id or an accession number copied into any column links back to the source)."""
    names = tuple(columns)

    def expression(context: DeriveContext) -> pl.Expr:
        source = context.references[silver]
        if not set(names) <= set(source.columns):
            # The silver table lost an identifying column: nothing can be shown absent.
            return pl.lit(False)
        identifiers = (
            pl.concat([source.get_column(n).cast(pl.String).drop_nulls() for n in names])
            .unique()
            .implode()
        )
        text = [c for c, dtype in context.schema.items() if dtype == pl.String]
        if not text:
            return pl.lit(True)
        return ~pl.any_horizontal(pl.col(c).is_in(identifiers).fill_null(False) for c in text)

    return derived_true(
        f"no_{'_or_'.join(names)}_of_{silver.rpartition('/')[2]}",
        (),
        expression,
        f"no text value is a {' or '.join(names)} of {silver}",
        column=None,
    )


def research_lab_results_suite() -> Suite:
    """Lab results of consented, linked people: pseudonyms, shifted times, no identifiers."""
    view = LAB_GOLD_VIEWS[0]
    checks = [
        *_privacy(view),
        no_source_identifiers(SILVER_RESULTS, IDENTIFYING_COLUMNS),
        not_null("record_key"),
        unique("record_key"),
        _pseudonym_format("record_key", view.record_prefix or ""),
        not_null("person_pseudonym"),
        _pseudonym_format("person_pseudonym", "P"),
        references("person_pseudonym", GOLD_PATIENTS, "person_pseudonym"),
        *_status_sets(),
        _loinc_valid("loinc"),
        *_one_unit_per_loinc(),
        matches("unit", UCUM_UNIT, "unit is a UCUM expression (no spaces)"),
        _result_status(),
        _abnormal_flags(),
        ordered("collected_at", "resulted_at", severity="warning"),
        plausible_date("collected_at", shifted=True),
        plausible_date("resulted_at", shifted=True),
    ]
    return Suite(GOLD_RESULTS, view.columns, tuple(checks), (GOLD_PATIENTS, SILVER_RESULTS))


LAB_SUITES: dict[str, Callable[[], Suite]] = {
    BRONZE_RESULTS: bronze_results_suite,
    BRONZE_FILES: files_ledger_suite,
    PATIENT_INDEX: patient_index_suite,
    SILVER_RESULTS: silver_results_suite,
    MAPPING_REPORT: mapping_report_suite,
    GOLD_RESULTS: research_lab_results_suite,
}
"""Every lab table path to its suite's builder (``quality.suites.suite_for`` calls it)."""
