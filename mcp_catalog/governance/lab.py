"""The research view of the lab silo: conformed laboratory results of consented people.

The view reads ``silver/lab/lab_results``, where results from every site's laboratory (LIS
CSV exports and HL7 v2 ORU feeds) are conformed to LOINC and canonical UCUM units. It keeps:

* results whose lab patient is linked to a person (``link_status`` ``linked``; results of
  patients the lab's patient index does not know, or whose MRN is not in the crosswalk,
  are left out) who consented to research;
* the conformed and as-sent numbers, codes, ranges, flags and statuses.

It withholds the lab's identifiers (lab patient id, accession, HL7 message id, file
provenance) and the value as sent (``value_text``, free text that may name people). Results
get record pseudonyms (tag ``L``) and people the audience's person pseudonym; collection and
result times move by the person's secret shift, the same as in the EHR views. Values of the
columns with a closed code set that fall outside it are withheld, so the declared set holds.
"""

import polars as pl

from mcp_catalog.governance.deid import PERSON_PREFIX, shift_dates
from mcp_catalog.governance.views import ViewColumn, ViewContext, ViewSpec
from mcp_catalog.manifest import ColumnClass, ColumnType
from quality.valuesets import HL7_RESULT_STATUS, LAB_MAPPING_STATUS, LAB_UNIT_STATUS

LAB_RESULTS = "silver/lab/lab_results"
RECORD_PREFIX = "L"
"""Tag of lab result pseudonyms."""

LINKED = "linked"
"""The link status of a result whose lab patient is matched to a person."""

RESULT_STATUS = HL7_RESULT_STATUS
"""HL7 v2 table 0085 (observation result status): C corrected, D deleted, F final, I specimen
in lab, N not asked, O order detail only, P preliminary, R not verified, S partial, U changed
to final without new values, W posted to the wrong patient, X cannot be obtained."""

MAPPING_STATUS = LAB_MAPPING_STATUS

UNIT_STATUS = LAB_UNIT_STATUS

SOURCE_KIND: tuple[str, ...] = ("csv", "hl7v2")
"""The reader a result came from: an LIS CSV export or an HL7 v2 message."""

_SHIFTED = ("collected_at", "resulted_at")


def _column(
    name: str,
    kind: ColumnType,
    description: str,
    column_class: ColumnClass = "clinical",
    enum: tuple[str, ...] | None = None,
) -> ViewColumn:
    return ViewColumn(name, kind, description, column_class, enum)


def _shifted(name: str, what: str) -> ViewColumn:
    return ViewColumn(
        name,
        "datetime",
        f"{what}, in UTC, shifted by the person's secret date offset (the same offset as in "
        "the EHR views, so intervals within a person are kept).",
        "sensitive",
    )


LAB_RESULT_VIEW_COLUMNS: tuple[ViewColumn, ...] = (
    ViewColumn(
        "record_key",
        "string",
        "Pseudonym of the lab result, stable within this audience only.",
        "pseudonym",
        derived_from=("result_id",),
    ),
    ViewColumn(
        "person_pseudonym",
        "string",
        "Pseudonym of the person, stable within this audience only.",
        "pseudonym",
        derived_from=("person_key",),
    ),
    _column(
        "site",
        "string",
        "Code of the site whose laboratory produced the result.",
        "quasi_identifier",
    ),
    _column(
        "source_kind",
        "string",
        "How the result arrived: csv (a laboratory information system export) or hl7v2 "
        "(an HL7 v2 ORU^R01 message).",
        "administrative",
        SOURCE_KIND,
    ),
    _column(
        "category",
        "string",
        "Result category when the source gives one (laboratory, ...).",
    ),
    _column(
        "loinc",
        "string",
        "LOINC code of the result after conformance: the canonical code of its analyte (so "
        "the mass and molar codes of one analyte agree), else the valid code the laboratory "
        "sent or its site code map gave; empty when the local code is unmapped or the code "
        "fails the LOINC check digit.",
    ),
    _column(
        "loinc_display",
        "string",
        "Name of the LOINC code; the test name as sent when the code is not among the "
        "conformed analytes.",
    ),
    _column(
        "analyte",
        "string",
        "Analyte measured (glucose, creatinine, haemoglobin, ...), shared by every LOINC code "
        "of one analyte; empty when the code is not among the conformed analytes.",
    ),
    _column(
        "value",
        "number",
        "Numeric result expressed in unit; empty when the result has no number in that unit "
        "(see unit_status).",
    ),
    _column(
        "unit",
        "string",
        "UCUM unit of value and of the reference limits: the analyte's canonical unit, or the "
        "UCUM spelling of the unit sent when the analyte has none; empty when the unit sent "
        "is not recognised.",
    ),
    _column(
        "comparator",
        "string",
        "'<', '<=', '>' or '>=' when the result is a bound (value holds the limit); empty "
        "for an exact result.",
    ),
    _column(
        "value_original",
        "number",
        "Numeric result as the laboratory sent it, in unit_original.",
    ),
    _column("unit_original", "string", "Unit exactly as the laboratory sent it."),
    _column("value_code", "string", "Code of a coded result (HL7 CE/CWE value)."),
    _column("value_system", "string", "Coding system of value_code."),
    _column("value_display", "string", "Display text of the coded result."),
    _column(
        "reference_low",
        "number",
        "Lower limit of the reference range, converted to unit like the value.",
    ),
    _column(
        "reference_high",
        "number",
        "Upper limit of the reference range, converted to unit like the value.",
    ),
    _column(
        "abnormal_flag",
        "string",
        "Abnormal flags as sent (HL7 table 0078: N, L, H, LL, HH, A, AA, ...; several "
        "joined by '~').",
    ),
    _column(
        "result_status",
        "string",
        "Result status in HL7 table 0085 terms: F final, P preliminary, C corrected, R not "
        "verified, I specimen in lab, S partial, X cannot be obtained, D deleted, W posted "
        "to the wrong patient, N not asked, O order detail only, U changed to final; other "
        "values are withheld.",
        enum=RESULT_STATUS,
    ),
    _column("specimen_type", "string", "Specimen type as sent (HL7 SPM-4, else OBR-15)."),
    _shifted("collected_at", "When the specimen was collected"),
    _shifted("resulted_at", "When the result was produced"),
    _column(
        "mapping_status",
        "string",
        "How loinc was reached: loinc_reported (the laboratory sent a LOINC code), mapped "
        "(the site's code map gave one for its local code), unmapped (a local code the map "
        "lacks) or invalid_loinc (a code failing the LOINC check digit).",
        "administrative",
        MAPPING_STATUS,
    ),
    _column(
        "unit_status",
        "string",
        "How unit and value were reached: canonical (sent in the canonical unit), converted "
        "(converted to it), no_canonical (the analyte has no canonical unit), unknown_unit "
        "(the unit sent is not recognised), unconvertible (recognised but not convertible), "
        "not_numeric (no number to convert) or no_unit (a number sent without a unit).",
        "administrative",
        UNIT_STATUS,
    ),
    _column(
        "map_version",
        "string",
        "Version of the site code map consulted; empty when none was.",
        "administrative",
    ),
)
"""Columns of ``research/lab_results``, in order."""

_SILVER_COLUMNS = (
    "result_id",
    "person_key",
    *(c.name for c in LAB_RESULT_VIEW_COLUMNS if c.derived_from is None),
)
"""Every silver column the view reads; nothing else (identifiers, free text, provenance)
enters the builder's frame."""


def _closed_sets() -> list[pl.Expr]:
    """Withhold values outside the declared code sets, so a filter's enum is the truth."""
    return [
        pl.when(pl.col(c.name).is_in(list(c.enum))).then(pl.col(c.name)).alias(c.name)
        for c in LAB_RESULT_VIEW_COLUMNS
        if c.enum is not None
    ]


def _linked_consented(frame: pl.DataFrame, ctx: ViewContext) -> pl.DataFrame:
    """Rows of people linked with certainty (``link_status`` ``linked``) and consented."""
    return frame.filter(
        pl.col("person_key").is_not_null()
        & (pl.col("link_status") == LINKED)
        & pl.col("person_key").is_in(ctx.consented.implode())
    )


def _build_lab_results(silver: dict[str, pl.DataFrame], ctx: ViewContext) -> pl.DataFrame:
    (frame,) = silver.values()
    frame = _linked_consented(frame, ctx).select(_SILVER_COLUMNS).with_columns(_closed_sets())
    frame = shift_dates(frame, _SHIFTED, ctx.shifts)
    frame = ctx.pseudonyms.apply(frame, "result_id", prefix=ctx.record_prefix, alias="record_key")
    return ctx.pseudonyms.apply(frame, "person_key", prefix=PERSON_PREFIX, alias="person_pseudonym")


def lab_record_identifiers(silver: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Every ``(prefix, identifier)`` pair the lab view pseudonymises besides people.

    For the surrogate scheme: the audience's surrogate table must hold these before the view
    is built (people come from the crosswalk, as for every view).

    Args:
        silver: the view's source frames keyed by path.

    Returns:
        ``prefix``, ``identifier`` (duplicates possible, no nulls).
    """
    return (
        silver[LAB_RESULTS]
        .select(
            pl.lit(RECORD_PREFIX, pl.String()).alias("prefix"),
            pl.col("result_id").cast(pl.String()).alias("identifier"),
        )
        .drop_nulls()
    )


LAB_VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec(
        name="lab_results",
        audience="research",
        title="Laboratory results (de-identified)",
        description="One row per laboratory result of a consented person, from every site's "
        "laboratory (CSV exports and HL7 v2 feeds), conformed to LOINC and canonical UCUM "
        "units beside the values as sent, with shifted times. Free-text results and the "
        "laboratories' identifiers are withheld.",
        sources=(LAB_RESULTS,),
        key=("record_key",),
        columns=LAB_RESULT_VIEW_COLUMNS,
        build=_build_lab_results,
        record_prefix=RECORD_PREFIX,
    ),
)
"""The research audience's views of the lab silo."""
