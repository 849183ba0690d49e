"""Conform lab results to LOINC and canonical UCUM units, and report what would not conform.

``conform_lab_results`` takes rows shaped like ``connectors.lab_schema.LAB_RESULT_COLUMNS``
(any reader, any site) and adds the conformed columns of ``silver/lab/lab_results``:

1. Codes. When ``test_system`` is LOINC (``LN``, ``LOINC`` or ``http://loinc.org``) the
   test code is the LOINC the source sent, else when ``alt_system`` is LOINC the alternate
   is; the other code is the site's local one. A row without a LOINC has its local code
   looked up in the site's map (``maps/<SITE>.yaml``). ``mapping_status`` says which way
   it went: ``loinc_reported``, ``mapped``, ``unmapped`` (no map, or the map lacks the
   code), ``invalid_loinc`` (the LOINC sent fails its check digit; ``loinc`` stays null).
2. Analyte. The valid LOINC is looked up in ``analytes.csv``; ``loinc`` becomes the
   analyte's canonical code (else the LOINC itself).
3. Units. The unit sent is put in UCUM spelling (``ucum.normalise_spelling``) and the value
   and reference limits converted to the analyte's canonical unit, with the code's molar
   mass, the ion's valence, or the HbA1c master equation where needed. ``unit_status``:
   ``canonical`` (already in it), ``converted``, ``no_canonical`` (no canonical unit: the
   value stays in the UCUM spelling of the unit sent), ``unknown_unit`` (not recognisable),
   ``unconvertible`` (not commensurable with the canonical unit), ``not_numeric`` (no
   number to convert), ``no_unit`` (a number without a unit). Value, unit and limits are
   null whenever the unit is unknown, unconvertible or missing: a number in an unknown unit
   is not a measurement anyone should aggregate (``value_original`` keeps it).

The work is vectorised: the Python side runs once per distinct code sent, per site and per
distinct (LOINC, unit) pair, giving a scale and offset per pair; the rows are converted by
one polars expression. Nothing is rounded.
"""

from pathlib import Path

import polars as pl

from connectors.lab_schema import LAB_RESULT_COLUMNS, Column
from connectors.terminology.analytes import AnalyteCode, load_analytes
from connectors.terminology.errors import TerminologyError, UnitConversionError
from connectors.terminology.loinc import is_valid_loinc
from connectors.terminology.maps import SITE_CODE, load_site_map
from connectors.terminology.ucum import conversion_coefficients, normalise_spelling

LOINC_SYSTEMS: frozenset[str] = frozenset({"LN", "LOINC", "HTTP://LOINC.ORG"})
"""Coding-system names (compared upper-cased) that mean LOINC."""

MAPPING_STATUSES = ("loinc_reported", "mapped", "unmapped", "invalid_loinc")
UNIT_STATUSES = (
    "canonical",
    "converted",
    "no_canonical",
    "unknown_unit",
    "unconvertible",
    "not_numeric",
    "no_unit",
)

CONFORMED_COLUMNS: list[Column] = [
    Column("local_code", pl.String(), "The site's own test code when it sent one (CSV code, "
           "HL7 local OBX-3 or its alternate)."),
    Column("local_system", pl.String(), "Coding system of local_code, as sent."),
    Column("local_display", pl.String(), "Name of local_code, as sent."),
    Column("source_loinc", pl.String(), "LOINC the source sent, or the site map gave."),
    Column("loinc", pl.String(), "Conformed LOINC: the analyte's canonical code, else "
           "source_loinc when valid; null when unmapped or invalid."),
    Column("loinc_display", pl.String(), "LOINC long common name of loinc from analytes.csv "
           "(else the map's or the sender's display); the test name as sent when loinc is "
           "null."),
    Column("analyte", pl.String(), "Analyte name from analytes.csv; null when not listed."),
    Column("mapping_status", pl.String(), "loinc_reported / mapped / unmapped / "
           "invalid_loinc."),
    Column("map_version", pl.String(), "Version of the site map consulted; null when none "
           "was (a LOINC was sent, or the site has no map)."),
    Column("value_original", pl.Float64(), "The number as sent (value_number), in "
           "unit_original."),
    Column("unit_original", pl.String(), "The unit as sent."),
    Column("value", pl.Float64(), "The value in `unit`, unrounded; null when the unit is "
           "unknown, unconvertible or missing."),
    Column("unit", pl.String(), "Canonical UCUM unit of the analyte; or the UCUM spelling "
           "of the unit sent when the analyte has no canonical unit; null when unknown."),
    Column("unit_status", pl.String(), "canonical / converted / no_canonical / unknown_unit "
           "/ unconvertible / not_numeric / no_unit."),
    Column("reference_low", pl.Float64(), "Lower reference limit converted to `unit` like "
           "the value."),
    Column("reference_high", pl.Float64(), "Upper reference limit converted to `unit` like "
           "the value."),
    Column("reference_text", pl.String(), "The reference range as sent."),
]
"""Columns ``conform_lab_results`` adds; ``unit``, ``reference_low`` and ``reference_high``
replace the input columns of those names in place."""

_REPLACED = ("unit", "reference_low", "reference_high")
_ADDED = [c for c in CONFORMED_COLUMNS if c.name not in _REPLACED]

MAPPING_REPORT_COLUMNS: list[Column] = [
    Column("site", pl.String(), "Site whose results have the issue."),
    Column("source_kind", pl.String(), "Reader of those results: 'csv' or 'hl7v2'."),
    Column("map_version", pl.String(), "Version of the site map consulted, if any."),
    Column("issue", pl.String(), "unmapped_code / invalid_loinc / unknown_unit / "
           "unconvertible_unit."),
    Column("code", pl.String(), "The code concerned: the local code for unmapped codes, the "
           "LOINC sent for invalid ones, the local code (else the LOINC) for unit issues."),
    Column("code_system", pl.String(), "Coding system of code ('LN' for LOINC)."),
    Column("code_display", pl.String(), "Name of code as the source sent it."),
    Column("unit", pl.String(), "The unit as sent."),
    Column("analyte", pl.String(), "Analyte of the rows, when known."),
    Column("rows", pl.Int64(), "Number of result rows with this issue, code and unit."),
]
MAPPING_REPORT_SCHEMA: dict[str, pl.DataType] = {c.name: c.dtype for c in MAPPING_REPORT_COLUMNS}

_ROW = "_conform_row"
_TEST = "_conform_test_code"
_ALT = "_conform_alt_code"
_TEST_LN = "_conform_test_is_loinc"
_ALT_LN = "_conform_alt_is_loinc"
_SENT = "_conform_sent_loinc"
_SENT_DISPLAY = "_conform_sent_display"
_VALID = "_conform_sent_valid"
_SITE_VERSION = "_conform_site_map_version"
_MAP_LOINC = "_conform_map_loinc"
_MAP_DISPLAY = "_conform_map_display"
_KEY = "_conform_loinc_key"
_CANONICAL_DISPLAY = "_conform_canonical_display"
_UNIT_KEY = "_conform_unit_key"
_UNIT_OUT = "_conform_unit"
_SCALE = "_conform_scale"
_OFFSET = "_conform_offset"
_UNIT_OUTCOME = "_conform_unit_outcome"


def _clean(name: str) -> pl.Expr:
    text = pl.col(name).cast(pl.String).str.strip_chars()
    return pl.when(text == "").then(None).otherwise(text)


def _unit_outcome(
    loinc: str | None, unit_sent: str | None, analytes: dict[str, AnalyteCode]
) -> tuple[str, str | None, float | None, float | None]:
    """(unit_status, unit, scale, offset) for one distinct (LOINC, unit) pair."""
    if unit_sent is None:
        return "no_unit", None, None, None
    ucum_unit = normalise_spelling(unit_sent)
    if ucum_unit is None:
        return "unknown_unit", None, None, None
    entry = analytes.get(loinc) if loinc is not None else None
    if entry is None or entry.canonical_unit is None:
        return "no_canonical", ucum_unit, 1.0, 0.0
    canonical = analytes[entry.canonical_loinc]
    if ucum_unit == entry.canonical_unit and entry.molar_mass == canonical.molar_mass:
        return "canonical", ucum_unit, 1.0, 0.0
    try:
        scale, offset = conversion_coefficients(
            ucum_unit,
            entry.canonical_unit,
            molar_mass=entry.molar_mass,
            to_molar_mass=canonical.molar_mass,
            analyte=entry.analyte,
        )
    except UnitConversionError:
        return "unconvertible", None, None, None
    return "converted", entry.canonical_unit, scale, offset


def _site_maps(sites: list[str], directory: Path | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    versions: dict[str, list[str]] = {"site": [], _SITE_VERSION: []}
    codes: dict[str, list[str]] = {"site": [], "local_code": [], _MAP_LOINC: [], _MAP_DISPLAY: []}
    for site in sorted(sites):
        if SITE_CODE.fullmatch(site) is None:
            continue
        site_map = load_site_map(site, directory=directory)
        if site_map is None:
            continue
        versions["site"].append(site)
        versions[_SITE_VERSION].append(site_map.version)
        for local_code, mapped in site_map.codes.items():
            codes["site"].append(site)
            codes["local_code"].append(local_code)
            codes[_MAP_LOINC].append(mapped.loinc)
            codes[_MAP_DISPLAY].append(mapped.display)
    return (
        pl.DataFrame(versions, schema={"site": pl.String(), _SITE_VERSION: pl.String()}),
        pl.DataFrame(codes, schema={k: pl.String() for k in codes}),
    )


def _analyte_lookup(analytes: dict[str, AnalyteCode]) -> pl.DataFrame:
    rows = list(analytes.values())
    return pl.DataFrame(
        {
            _KEY: [r.loinc for r in rows],
            "analyte": [r.analyte for r in rows],
            "loinc": [r.canonical_loinc for r in rows],
            _CANONICAL_DISPLAY: [analytes[r.canonical_loinc].display for r in rows],
        },
        schema={k: pl.String() for k in (_KEY, "analyte", "loinc", _CANONICAL_DISPLAY)},
    )


def conform_lab_results(
    frame: pl.DataFrame,
    *,
    analytes: dict[str, AnalyteCode] | None = None,
    maps_directory: Path | None = None,
) -> pl.DataFrame:
    """Add LOINC, analyte and canonical unit and value to lab result rows.

    Args:
        frame: rows with every column of ``LAB_RESULT_COLUMNS``; other columns pass through.
        analytes: the analyte table; the packaged ``analytes.csv`` by default.
        maps_directory: folder of site maps; the packaged ``maps/`` by default.

    Returns:
        The same rows in the same order: the input columns, with ``unit``,
        ``reference_low`` and ``reference_high`` replaced by conformed values, followed by
        the other ``CONFORMED_COLUMNS`` (dtypes as declared there).

    Raises:
        TerminologyError: when a lab result column is missing, or (subclasses) when the
            analyte table or a site map consulted is malformed.
    """
    missing = [c.name for c in LAB_RESULT_COLUMNS if c.name not in frame.columns]
    if missing:
        raise TerminologyError(
            "conform_lab_results needs the lab_results columns of connectors.lab_schema; "
            f"missing: {', '.join(missing)}"
        )
    table = load_analytes() if analytes is None else analytes
    base = frame.drop([c.name for c in _ADDED if c.name in frame.columns])
    output_order = [*base.columns, *(c.name for c in _ADDED)]

    rows = base.with_row_index(_ROW).with_columns(
        _clean("test_code").alias(_TEST),
        _clean("alt_code").alias(_ALT),
        _clean("test_system").str.to_uppercase().is_in(LOINC_SYSTEMS).fill_null(False)
        .alias(_TEST_LN),
        _clean("alt_system").str.to_uppercase().is_in(LOINC_SYSTEMS).fill_null(False)
        .alias(_ALT_LN),
        _clean("unit").alias(_UNIT_KEY),
        pl.col("unit").cast(pl.String).alias("unit_original"),
    )
    test_ln, alt_ln = pl.col(_TEST_LN), pl.col(_ALT_LN)
    local_is_alt = test_ln & ~alt_ln & pl.col(_ALT).is_not_null()
    local_is_test = ~test_ln

    def local(test_column: str, alt_column: str) -> pl.Expr:
        return (
            pl.when(local_is_test).then(pl.col(test_column))
            .when(local_is_alt).then(pl.col(alt_column))
        )

    rows = rows.with_columns(
        pl.when(test_ln).then(pl.col(_TEST)).when(alt_ln).then(pl.col(_ALT)).alias(_SENT),
        pl.when(test_ln).then(pl.col("test_display")).when(alt_ln).then(pl.col("alt_display"))
        .alias(_SENT_DISPLAY),
        local(_TEST, _ALT).alias("local_code"),
        local("test_system", "alt_system").cast(pl.String).alias("local_system"),
        local("test_display", "alt_display").cast(pl.String).alias("local_display"),
    )

    sent_codes = rows.get_column(_SENT).drop_nulls().unique().to_list()
    validity = pl.DataFrame(
        {_SENT: sent_codes, _VALID: [is_valid_loinc(code) for code in sent_codes]},
        schema={_SENT: pl.String(), _VALID: pl.Boolean()},
    )
    sites = rows.get_column("site").cast(pl.String).drop_nulls().unique().to_list()
    site_versions, site_codes = _site_maps(sites, maps_directory)
    rows = (
        rows.with_columns(pl.col("site").cast(pl.String).alias("_conform_site"))
        .join(validity, on=_SENT, how="left", maintain_order="left")
        .join(
            site_versions.rename({"site": "_conform_site"}),
            on="_conform_site",
            how="left",
            maintain_order="left",
        )
        .join(
            site_codes.rename({"site": "_conform_site"}),
            on=["_conform_site", "local_code"],
            how="left",
            maintain_order="left",
        )
    )

    sent = pl.col(_SENT)
    not_sent = sent.is_null()
    map_loinc = pl.when(not_sent).then(pl.col(_MAP_LOINC))
    status = (
        pl.when(sent.is_not_null() & pl.col(_VALID)).then(pl.lit("loinc_reported"))
        .when(sent.is_not_null()).then(pl.lit("invalid_loinc"))
        .when(map_loinc.is_not_null()).then(pl.lit("mapped"))
        .otherwise(pl.lit("unmapped"))
    )
    rows = rows.with_columns(
        pl.coalesce(sent, map_loinc).alias("source_loinc"),
        status.alias("mapping_status"),
        pl.when(not_sent).then(pl.col(_SITE_VERSION)).alias("map_version"),
        pl.when(not_sent).then(pl.col(_MAP_DISPLAY)).alias(_MAP_DISPLAY),
    ).with_columns(
        pl.when(pl.col("mapping_status").is_in(["loinc_reported", "mapped"]))
        .then(pl.col("source_loinc"))
        .alias(_KEY)
    )

    rows = rows.join(_analyte_lookup(table), on=_KEY, how="left", maintain_order="left")
    rows = rows.with_columns(pl.coalesce(pl.col("loinc"), pl.col(_KEY)).alias("loinc"))
    rows = rows.with_columns(
        pl.when(pl.col("loinc").is_not_null())
        .then(
            pl.coalesce(
                pl.col(_CANONICAL_DISPLAY),
                pl.col(_MAP_DISPLAY),
                pl.col(_SENT_DISPLAY),
                pl.col("test_display"),
            )
        )
        .otherwise(pl.col("test_display"))
        .cast(pl.String)
        .alias("loinc_display")
    )

    pairs = rows.select(_KEY, _UNIT_KEY).unique()
    outcomes = [_unit_outcome(key, unit, table) for key, unit in pairs.iter_rows()]
    conversions = pairs.with_columns(
        pl.Series(_UNIT_OUTCOME, [o[0] for o in outcomes], dtype=pl.String()),
        pl.Series(_UNIT_OUT, [o[1] for o in outcomes], dtype=pl.String()),
        pl.Series(_SCALE, [o[2] for o in outcomes], dtype=pl.Float64()),
        pl.Series(_OFFSET, [o[3] for o in outcomes], dtype=pl.Float64()),
    )
    rows = rows.join(
        conversions, on=[_KEY, _UNIT_KEY], how="left", nulls_equal=True, maintain_order="left"
    )

    def converted(column: str) -> pl.Expr:
        return pl.col(column).cast(pl.Float64) * pl.col(_SCALE) + pl.col(_OFFSET)

    number = pl.col("value_number").cast(pl.Float64)
    rows = rows.with_columns(
        number.alias("value_original"),
        converted("value_number").alias("value"),
        pl.col(_UNIT_OUT).alias("unit"),
        pl.when(number.is_null())
        .then(pl.lit("not_numeric"))
        .otherwise(pl.col(_UNIT_OUTCOME))
        .alias("unit_status"),
        converted("reference_low").alias("reference_low"),
        converted("reference_high").alias("reference_high"),
        pl.col("reference_range").cast(pl.String).alias("reference_text"),
    )
    dtypes = {c.name: c.dtype for c in CONFORMED_COLUMNS}
    return rows.sort(_ROW).select(
        pl.col(name).cast(dtypes[name]) if name in dtypes else pl.col(name)
        for name in output_order
    )


def mapping_report(conformed: pl.DataFrame) -> pl.DataFrame:
    """What did not conform, per site, issue, code and unit.

    Args:
        conformed: output of ``conform_lab_results`` (it needs ``site``, ``source_kind``
            and the conformed columns).

    Returns:
        A frame with ``MAPPING_REPORT_SCHEMA``: one row per distinct (site, issue, code,
        unit), sorted by them, where issue is ``unmapped_code`` (mapping_status
        unmapped), ``invalid_loinc``, ``unknown_unit`` or ``unconvertible_unit``
        (unit_status unknown_unit / unconvertible) and ``rows`` counts the results. When
        one key spans several source kinds, map versions or displays, the smallest is
        shown.

    Raises:
        TerminologyError: when a column the report needs is missing.
    """
    needed = [
        "site", "source_kind", "map_version", "mapping_status", "unit_status", "local_code",
        "local_system", "local_display", "source_loinc", "analyte", "unit_original",
        "test_system", "test_display", "alt_display",
    ]
    missing = [name for name in needed if name not in conformed.columns]
    if missing:
        raise TerminologyError(
            f"mapping_report needs conform_lab_results output; missing: {', '.join(missing)}"
        )
    common = [pl.col("site"), pl.col("source_kind"), pl.col("map_version")]
    has_local = pl.col("local_code").is_not_null()
    test_is_loinc = (
        pl.col("test_system").cast(pl.String).str.strip_chars().str.to_uppercase()
        .is_in(LOINC_SYSTEMS).fill_null(False)
    )
    # The name the source gave the LOINC it sent (OBX-3.2, or OBX-3.5 for an alternate).
    loinc_display_sent = (
        pl.when(test_is_loinc).then(pl.col("test_display")).otherwise(pl.col("alt_display"))
    )
    unmapped = conformed.filter(pl.col("mapping_status") == "unmapped").select(
        *common,
        pl.lit("unmapped_code").alias("issue"),
        pl.col("local_code").alias("code"),
        pl.col("local_system").alias("code_system"),
        pl.col("local_display").alias("code_display"),
        pl.col("unit_original").alias("unit"),
        pl.col("analyte"),
    )
    invalid = conformed.filter(pl.col("mapping_status") == "invalid_loinc").select(
        *common,
        pl.lit("invalid_loinc").alias("issue"),
        pl.col("source_loinc").alias("code"),
        pl.lit("LN").alias("code_system"),
        loinc_display_sent.alias("code_display"),
        pl.col("unit_original").alias("unit"),
        pl.col("analyte"),
    )
    units = conformed.filter(pl.col("unit_status").is_in(["unknown_unit", "unconvertible"]))
    unit_issues = units.select(
        *common,
        pl.when(pl.col("unit_status") == "unknown_unit")
        .then(pl.lit("unknown_unit"))
        .otherwise(pl.lit("unconvertible_unit"))
        .alias("issue"),
        pl.when(has_local).then(pl.col("local_code")).otherwise(pl.col("source_loinc"))
        .alias("code"),
        pl.when(has_local).then(pl.col("local_system")).otherwise(pl.lit("LN"))
        .alias("code_system"),
        pl.when(has_local).then(pl.col("local_display")).otherwise(loinc_display_sent)
        .alias("code_display"),
        pl.col("unit_original").alias("unit"),
        pl.col("analyte"),
    )
    string = {name: pl.String() for name in MAPPING_REPORT_SCHEMA if name != "rows"}
    issues = pl.concat(
        [frame.cast(string) for frame in (unmapped, invalid, unit_issues)], how="vertical"
    )
    keys = ["site", "issue", "code", "unit"]
    report = issues.group_by(keys).agg(
        pl.col("source_kind").min(),
        pl.col("map_version").min(),
        pl.col("code_system").min(),
        pl.col("code_display").min(),
        pl.col("analyte").min(),
        pl.len().cast(pl.Int64).alias("rows"),
    )
    return report.select(list(MAPPING_REPORT_SCHEMA)).sort(keys, nulls_last=True)
