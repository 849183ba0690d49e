"""Builders of the checks the suites share: keys, provenance, code systems, ranges, dates.

Each returns :class:`~quality.suites._model.Check` objects. Value sets, code systems and
plausible ranges live here as data, with where they come from.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from quality.codes import loinc_check_digit_ok, snomed_concept_id_ok
from quality.results import Severity
from quality.suites._model import DERIVED_PREFIX, Check, DeriveContext, Derived

# --- code systems --------------------------------------------------------------------------

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"


# --- extensible or preferred bindings (other codes are possible, so only a warning) ---------

ENCOUNTER_CLASS = (
    "AMB",
    "EMER",
    "FLD",
    "HH",
    "IMP",
    "ACUTE",
    "NONAC",
    "OBSENC",
    "PRENC",
    "SS",
    "VR",
)
"""v3 ActEncounterCode."""
CONDITION_CATEGORY = ("problem-list-item", "encounter-diagnosis", "health-concern")
"""FHIR condition-category plus US Core's health-concern."""
OBSERVATION_CATEGORY = (
    "social-history",
    "vital-signs",
    "imaging",
    "laboratory",
    "procedure",
    "survey",
    "exam",
    "therapy",
    "activity",
)
CONSENT_SCOPE = ("adr", "research", "patient-privacy", "treatment")
MARITAL_STATUS = ("A", "D", "I", "L", "M", "C", "P", "T", "U", "S", "W", "UNK")
"""FHIR R4 marital-status: v3 MaritalStatus codes plus UNK."""

# --- formats -------------------------------------------------------------------------------

FHIR_ID = r"^[A-Za-z0-9\-\.]{1,64}$"
"""FHIR R4 ``id`` datatype."""
SHA256_HEX = r"^[0-9a-f]{64}$"
RXNORM_CODE = r"^[0-9]{1,8}$"
CVX_CODE = r"^[0-9]{1,3}$"
ICD10CM_CODE = r"^[A-TV-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?$"
UCUM_UNIT = r"^(?:[A-Za-z0-9%.\/*^+\-()\[\]'_]|\{[^{}\s]*\})+$"
"""A sane UCUM expression: unit atoms, digits, operators, brackets, ``{annotations}``; no
spaces (``mm Hg`` and ``mg / dL`` fail)."""
US_ZIP = r"^[0-9]{5}(?:-[0-9]{4})?$"
BCP47 = r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$"
MRN_LIKE = r"\bMRN\d{8}\b"
"""The EHR's medical record numbers (``MRN`` and eight digits)."""
UUID_LIKE = r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
"""FHIR logical ids of the EHR are UUIDs: none may reach a gold view."""

EARLIEST_BIRTH = date(1880, 1, 1)
LONGEST_ENCOUNTER = timedelta(days=366)


@dataclass(frozen=True)
class Plausible:
    """A plausible range for one LOINC quantity in its UCUM unit (wide: catches unit mix-ups
    and typos, not abnormal results)."""

    what: str
    code: str
    unit: str
    low: float
    high: float


PLAUSIBLE_RANGES: tuple[Plausible, ...] = (
    Plausible("body height", "8302-2", "cm", 20, 250),
    Plausible("body weight", "29463-7", "kg", 0.5, 350),
    Plausible("BMI", "39156-5", "kg/m2", 8, 100),
    Plausible("heart rate", "8867-4", "/min", 20, 300),
    Plausible("respiratory rate", "9279-1", "/min", 4, 80),
    Plausible("body temperature", "8310-5", "Cel", 25, 45),
    Plausible("SpO2", "59408-5", "%", 50, 100),
    Plausible("SpO2", "2708-6", "%", 50, 100),
    Plausible("systolic blood pressure", "8480-6", "mm[Hg]", 40, 300),
    Plausible("diastolic blood pressure", "8462-4", "mm[Hg]", 10, 200),
    Plausible("blood glucose", "2339-0", "mg/dL", 10, 1500),
    Plausible("HbA1c", "4548-4", "%", 2, 25),
    Plausible("hemoglobin", "718-7", "g/dL", 2, 25),
)
"""Wide physiological limits per LOINC code; a value outside is almost surely an error."""


# --- builders ------------------------------------------------------------------------------


def _kw(**kwargs: object) -> dict[str, object]:
    return kwargs


def not_null(column: str, *, severity: Severity = "error", description: str = "") -> Check:
    return Check(
        "expect_column_values_to_not_be_null",
        _kw(column=column),
        description or f"{column} is set on every row",
        severity,
        column,
    )


def unique(column: str) -> Check:
    return Check(
        "expect_column_values_to_be_unique",
        _kw(column=column),
        f"{column} is unique",
        "error",
        column,
    )


def compound_unique(columns: Iterable[str]) -> Check:
    names = list(columns)
    return Check(
        "expect_compound_columns_to_be_unique",
        _kw(column_list=names, ignore_row_if="never"),
        f"({', '.join(names)}) is unique",
        "error",
        ",".join(names),
    )


def in_set(
    column: str, values: Iterable[str], *, severity: Severity = "error", what: str = ""
) -> Check:
    return Check(
        "expect_column_values_to_be_in_set",
        _kw(column=column, value_set=list(values)),
        f"{column} holds only {what or 'allowed'} codes",
        severity,
        column,
    )


def matches(column: str, regex: str, description: str, *, severity: Severity = "error") -> Check:
    return Check(
        "expect_column_values_to_match_regex",
        _kw(column=column, regex=regex),
        description,
        severity,
        column,
    )


def exact_columns(columns: Iterable[str], what: str) -> Check:
    return Check(
        "expect_table_columns_to_match_set",
        _kw(column_set=list(columns), exact_match=True),
        f"the columns are exactly those of {what}",
        "error",
        None,
    )


def ordered(first: str, second: str, *, severity: Severity = "error") -> Check:
    """``first <= second`` where both are set (FHIR invariant per-1 for a Period)."""
    return Check(
        "expect_column_pair_values_a_to_be_greater_than_b",
        _kw(
            column_A=second, column_B=first, or_equal=True, ignore_row_if="either_value_is_missing"
        ),
        f"{first} is not after {second}",
        severity,
        f"{first},{second}",
    )


def derived_true(
    name: str,
    inputs: Iterable[str],
    expression: Callable[[DeriveContext], pl.Expr],
    description: str,
    *,
    severity: Severity = "error",
    column: str | None = None,
) -> Check:
    """A derived boolean column that must be True wherever it applies (null: not applicable)."""
    derived = Derived(DERIVED_PREFIX + name, tuple(inputs), expression)
    return Check(
        "expect_column_values_to_be_in_set",
        _kw(column=derived.name, value_set=[True], mostly=1.0),
        description,
        severity,
        column if column is not None else ",".join(derived.inputs) or None,
        derived,
    )


# --- derived expressions -------------------------------------------------------------------


def _per_value(series: pl.Series, predicate: Callable[[str], bool]) -> pl.Series:
    """Apply a Python predicate once per distinct value (codes repeat a lot)."""
    distinct = series.drop_nulls().unique().to_list()
    verdicts = {value: predicate(value) for value in distinct}
    return series.replace_strict(verdicts, default=None, return_dtype=pl.Boolean)


def _where_system(system_column: str, system: str, verdict: pl.Expr, code_column: str) -> pl.Expr:
    applies = (pl.col(system_column) == system) & pl.col(code_column).is_not_null()
    return pl.when(applies).then(verdict)


def code_check(
    name: str,
    system_column: str,
    code_column: str,
    system: str,
    description: str,
    *,
    predicate: Callable[[str], bool] | None = None,
    regex: str | None = None,
) -> Check:
    """Codes of one code system pass a check-digit predicate or match a format."""

    def expression(_: DeriveContext) -> pl.Expr:
        code = pl.col(code_column).cast(pl.String)
        if predicate is not None:
            verdict = code.map_batches(lambda s: _per_value(s, predicate), return_dtype=pl.Boolean)
        else:
            verdict = code.str.contains(regex or "")
        return _where_system(system_column, system, verdict, code_column)

    return derived_true(
        name, (system_column, code_column), expression, description, column=code_column
    )


def loinc_codes(system_column: str = "system", code_column: str = "code") -> Check:
    return code_check(
        f"{code_column}_loinc_check_digit",
        system_column,
        code_column,
        LOINC,
        f"LOINC {code_column}s have a valid Mod 10 check digit",
        predicate=loinc_check_digit_ok,
    )


def snomed_codes(system_column: str = "system", code_column: str = "code") -> Check:
    return code_check(
        f"{code_column}_snomed_concept_id",
        system_column,
        code_column,
        SNOMED,
        f"SNOMED CT {code_column}s are concept ids with a valid Verhoeff check digit",
        predicate=snomed_concept_id_ok,
    )


def rxnorm_codes(system_column: str, code_column: str) -> Check:
    return code_check(
        f"{code_column}_rxnorm_format",
        system_column,
        code_column,
        RXNORM,
        f"RxNorm {code_column}s are RxCUIs (digits only)",
        regex=RXNORM_CODE,
    )


def cvx_codes(system_column: str, code_column: str) -> Check:
    return code_check(
        f"{code_column}_cvx_format",
        system_column,
        code_column,
        CVX,
        f"CVX {code_column}s are 1 to 3 digits",
        regex=CVX_CODE,
    )


def icd10cm_codes(system_column: str = "system", code_column: str = "code") -> Check:
    return code_check(
        f"{code_column}_icd10cm_format",
        system_column,
        code_column,
        ICD10CM,
        f"ICD-10-CM {code_column}s are well formed (A00 to Z99, optional subcategory)",
        regex=ICD10CM_CODE,
    )


def references(column: str, table: str, key: str, *, severity: Severity = "error") -> Check:
    """Every set ``column`` value is a ``key`` of ``table`` (referential integrity)."""
    layer, _, name = table.rpartition("/")

    def expression(context: DeriveContext) -> pl.Expr:
        target = context.references[table]
        if key not in target.columns:
            # The referenced table lost its key column: nothing can be shown to resolve.
            return pl.when(pl.col(column).is_not_null()).then(pl.lit(False))
        keys = target.get_column(key).drop_nulls().unique()
        return pl.when(pl.col(column).is_not_null()).then(pl.col(column).is_in(keys.implode()))

    return derived_true(
        f"{column}_in_{name}",
        (column,),
        expression,
        f"every {column} is the {key} of a row of {table}",
        severity=severity,
        column=column,
    )


def set_when_set(column: str, when: str) -> Check:
    """``column`` is set wherever ``when`` is set."""
    return derived_true(
        f"{column}_set_when_{when}_set",
        (column, when),
        lambda _: pl.when(pl.col(when).is_not_null()).then(pl.col(column).is_not_null()),
        f"{column} is set wherever {when} is set",
        column=column,
    )


def not_in_future(column: str) -> Check:
    return derived_true(
        f"{column}_not_in_future",
        (column,),
        lambda context: pl.when(pl.col(column).is_not_null()).then(
            pl.col(column) <= pl.lit(context.now).cast(pl.Datetime("us", "UTC"))
        ),
        f"{column} is not in the future",
        severity="warning",
        column=column,
    )


def plausible_values(ranges: Iterable[Plausible] = PLAUSIBLE_RANGES) -> Check:
    """Quantities of known LOINC codes, in the code's usual unit, lie within wide limits.

    One expectation for every code: GX's cost is per expectation, not per row.
    """
    table = tuple(ranges)

    def lookup(field: str) -> pl.Expr:
        if field == "unit":
            units = {r.code: r.unit for r in table}
            return pl.col("code").replace_strict(units, default=None, return_dtype=pl.String)
        limits = {r.code: float(getattr(r, field)) for r in table}
        return pl.col("code").replace_strict(limits, default=None, return_dtype=pl.Float64)

    def expression(_: DeriveContext) -> pl.Expr:
        low, high, unit = lookup("low"), lookup("high"), lookup("unit")
        applies = (
            (pl.col("system") == LOINC)
            & unit.is_not_null()
            & (pl.col("value_unit") == unit)
            & pl.col("value_quantity").is_not_null()
        )
        return pl.when(applies).then(pl.col("value_quantity").is_between(low, high))

    return derived_true(
        "value_plausible",
        ("system", "code", "value_unit", "value_quantity"),
        expression,
        "vital signs and common lab results lie within wide physiological limits "
        "(e.g. body height 20-250 cm, heart rate 20-300 /min)",
        severity="warning",
        column="value_quantity",
    )


def expected_units(ranges: Iterable[Plausible] = PLAUSIBLE_RANGES) -> Check:
    """A quantity of a known LOINC code carries that code's usual UCUM unit."""
    units: Mapping[str, str] = {r.code: r.unit for r in ranges}

    def expression(_: DeriveContext) -> pl.Expr:
        expected = pl.col("code").replace_strict(units, default=None, return_dtype=pl.String)
        applies = (
            (pl.col("system") == LOINC)
            & expected.is_not_null()
            & pl.col("value_quantity").is_not_null()
        )
        return pl.when(applies).then(pl.col("value_unit").eq_missing(expected))

    return derived_true(
        "value_unit_expected_for_code",
        ("system", "code", "value_unit", "value_quantity"),
        expression,
        "quantities of known LOINC codes use the code's usual UCUM unit",
        severity="warning",
        column="value_unit",
    )


def sha256_hex(column: str = "source_sha256") -> list[Check]:
    return [
        not_null(column),
        matches(column, SHA256_HEX, f"{column} is 64 lowercase hex characters"),
    ]
