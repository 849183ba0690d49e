"""Turn a chunk of CSV records into ``lab_results`` rows, with polars expressions.

Every cell is trimmed and a blank cell is null, except ``value_text``, which keeps the value
exactly as sent. Parsing a value, a reference limit, a status or a value type runs once per
distinct text (the shared ``parse_number`` and ``parse_reference_range`` of
``connectors.lab_schema``) and is mapped back onto the rows in one vectorised step.

A record is quarantined for the first of these problems it has, in this order: blank patient
id; blank test code; blank value without a status that says no value exists yet (HL7 0085
I pending, X cannot be obtained, D deleted); a status the profile does not map; a value type
the profile does not map; then for ``collected_at`` and then ``resulted_at``, a local
date-time that does not exist (a daylight-saving gap) or a date-time in none of the accepted
formats. A blank date-time is null, not a problem. Reasons name the profile's column, never
the cell.
"""

import re
from collections.abc import Callable

import polars as pl

from connectors.lab_csv.profile import ColumnMap, SiteProfile
from connectors.lab_csv.text import LINE
from connectors.lab_schema import LAB_RESULT_COLUMNS, parse_number, parse_reference_range

REASON = "_reason"
"""Column of the reason a record is quarantined (null when kept)."""

NO_VALUE_STATUSES = ("I", "X", "D")
"""HL7 0085 statuses under which a blank value is expected: pending, cannot be obtained,
deleted."""

ISO_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M%#z",
)
"""ISO 8601 date-times with an offset or 'Z', accepted whatever the profile says."""

_OFFSET_DIRECTIVE = re.compile(r"%[#:]*z")
_ALL_FIELDS = tuple(ColumnMap.model_fields)
_NUMERIC_FIELDS = ("value", "reference_range", "reference_low", "reference_high")
_DATETIME_FIELDS = ("collected_at", "resulted_at")
_UTC = pl.Datetime("us", "UTC")


def reason_blank(field: str, header: str) -> str:
    """Reason for a record whose required ``field`` is blank."""
    what = {"patient_id": "patient id", "test_code": "test code"}[field]
    return f"{what} is blank (column {header})"


def reason_blank_value(header: str) -> str:
    """Reason for a blank value that no status explains."""
    return f"value is blank and the result status does not say it is pending (column {header})"


def reason_unmapped_status(header: str) -> str:
    """Reason for a status the profile does not map."""
    return f"result status is not one the site profile maps (column {header})"


def reason_unmapped_value_type(header: str) -> str:
    """Reason for a value type the profile does not map."""
    return f"value type is not one the site profile maps (column {header})"


def reason_bad_datetime(header: str) -> str:
    """Reason for a date-time in none of the accepted formats."""
    return f"date-time is in none of the site profile's formats nor ISO 8601 (column {header})"


def reason_local_gap(header: str, timezone: str) -> str:
    """Reason for a local date-time skipped by a daylight-saving change."""
    return f"local date-time does not exist in {timezone}, a daylight-saving gap (column {header})"


def lab_rows(raw: pl.DataFrame, profile: SiteProfile) -> pl.DataFrame:
    """The chunk's records as ``lab_results`` columns plus ``LINE`` and ``REASON``.

    Args:
        raw: ``LINE`` and one String column of raw cells per mapped field the file has,
            named by the field (always ``patient_id``, ``test_code`` and ``value``); the
            other fields are null.
        profile: the site profile.

    Returns:
        ``LINE``, every ``LAB_RESULT_COLUMNS`` column except ``observation_seq``, and
        ``REASON``, row for row; ``REASON`` is null for records that are kept.
    """
    present = [name for name in raw.columns if name != LINE]
    frame = raw.with_columns(
        *(pl.col(name).str.strip_chars().replace("", None).alias(name) for name in present),
        *(pl.lit(None, pl.String()).alias(name) for name in _ALL_FIELDS if name not in present),
        value_text=pl.col("value"),
    ).with_columns(value_text=pl.when(pl.col("value").is_not_null()).then(pl.col("value_text")))
    # Only the text that is parsed reads the decimal comma; value_text and reference_range
    # stay as sent.
    frame = frame.with_columns(
        (
            pl.col(name).str.replace_all(",", ".", literal=True)
            if profile.decimal_separator == ","
            else pl.col(name)
        ).alias(f"_{name}_number")
        for name in _NUMERIC_FIELDS
    )

    value = _map_distinct(frame["_value_number"], parse_number)
    statuses = _map_distinct(frame["result_status"], lambda t: profile.statuses.get(t.lower()))
    types = _map_distinct(frame["value_type"], lambda t: profile.value_types.get(t.lower()))
    datetimes: dict[str, pl.Expr] = {}
    for name in _DATETIME_FIELDS:
        datetimes[f"_{name}_utc"], datetimes[f"_{name}_gap"] = _parse_datetimes(
            pl.col(name), profile
        )
    frame = frame.with_columns(
        _comparator=_lookup("_value_number", value, 0, pl.String()),
        _number=_lookup("_value_number", value, 1, pl.Float64()),
        _status=_lookup("result_status", statuses, None, pl.String()),
        _declared_type=_lookup("value_type", types, None, pl.String()),
        **datetimes,
    )
    # A value the source declares text stays text, even when it looks like a number.
    number = pl.when(pl.col("_declared_type").fill_null("") != "ST").then(pl.col("_number"))

    if profile.columns.reference_low is not None:
        low_cell, high_cell = pl.col("reference_low"), pl.col("reference_high")
        # Written the way HL7 OBX-7 writes ranges, so both readers' reference_range read alike.
        reference_range = (
            pl.when(low_cell.is_not_null() & high_cell.is_not_null())
            .then(pl.concat_str(low_cell, pl.lit("-"), high_cell))
            .when(low_cell.is_not_null())
            .then(pl.concat_str(pl.lit(">"), low_cell))
            .when(high_cell.is_not_null())
            .then(pl.concat_str(pl.lit("<"), high_cell))
        )
        lows = _map_distinct(frame["_reference_low_number"], parse_number)
        highs = _map_distinct(frame["_reference_high_number"], parse_number)
        low = _lookup("_reference_low_number", lows, 1, pl.Float64())
        high = _lookup("_reference_high_number", highs, 1, pl.Float64())
    else:
        reference_range = pl.col("reference_range")
        ranges = _map_distinct(frame["_reference_range_number"], parse_reference_range)
        low = _lookup("_reference_range_number", ranges, 0, pl.Float64())
        high = _lookup("_reference_range_number", ranges, 1, pl.Float64())

    computed = {
        "source_locator": pl.concat_str(pl.lit("line:"), pl.col(LINE).cast(pl.String())),
        "source_kind": pl.lit("csv"),
        "site": pl.lit(profile.site),
        "panel_system": pl.when(pl.col("panel_code").is_not_null()).then(
            pl.lit(profile.panel_code_system, pl.String())
        ),
        "test_system": pl.when(pl.col("test_code").is_not_null()).then(
            pl.lit(profile.code_system)
        ),
        "category": pl.col("category").fill_null(pl.lit(profile.default_category, pl.String())),
        "value_type": pl.when(pl.col("value_text").is_not_null()).then(
            pl.when(number.is_not_null()).then(pl.lit("NM")).otherwise(pl.lit("ST"))
        ),
        "value_number": number,
        "comparator": pl.when(number.is_not_null()).then(pl.col("_comparator")),
        "reference_range": reference_range,
        "reference_low": low,
        "reference_high": high,
        "result_status": pl.col("_status"),
        "collected_at": pl.col("_collected_at_utc"),
        "resulted_at": pl.col("_resulted_at_utc"),
    }
    selected = [pl.col(LINE)]
    for column in LAB_RESULT_COLUMNS:
        if column.name == "observation_seq":
            continue
        if column.name in computed:
            expr = computed[column.name]
        elif column.name in frame.columns:
            expr = pl.col(column.name)
        else:
            expr = pl.lit(None)
        selected.append(expr.cast(column.dtype).alias(column.name))
    selected.append(_reasons(profile).alias(REASON))
    return frame.select(selected)


def _reasons(profile: SiteProfile) -> pl.Expr:
    columns = profile.columns
    checks: list[tuple[pl.Expr, str]] = [
        (pl.col("patient_id").is_null(), reason_blank("patient_id", columns.patient_id)),
        (pl.col("test_code").is_null(), reason_blank("test_code", columns.test_code)),
        (
            pl.col("value_text").is_null()
            & ~pl.col("_status").is_in(NO_VALUE_STATUSES).fill_null(False),
            reason_blank_value(columns.value),
        ),
    ]
    if columns.result_status is not None:
        checks.append((
            pl.col("result_status").is_not_null() & pl.col("_status").is_null(),
            reason_unmapped_status(columns.result_status),
        ))
    if columns.value_type is not None:
        checks.append((
            pl.col("value_type").is_not_null() & pl.col("_declared_type").is_null(),
            reason_unmapped_value_type(columns.value_type),
        ))
    for name in _DATETIME_FIELDS:
        header = getattr(columns, name)
        if header is None:
            continue
        checks.append((pl.col(f"_{name}_gap"), reason_local_gap(header, profile.timezone)))
        checks.append((
            pl.col(name).is_not_null() & pl.col(f"_{name}_utc").is_null(),
            reason_bad_datetime(header),
        ))
    reason = pl.lit(None, pl.String())
    for condition, text in reversed(checks):
        reason = pl.when(condition).then(pl.lit(text)).otherwise(reason)
    return reason


def _map_distinct(texts: pl.Series, parse: Callable[[str], object]) -> dict[str, object]:
    """``parse`` applied once per distinct non-null text."""
    return {text: parse(text) for text in texts.drop_nulls().unique().to_list()}


def _lookup(name: str, parsed: dict[str, object], part: int | None, dtype: pl.DataType) -> pl.Expr:
    """Column ``name`` mapped through ``parsed`` (``part`` of a tuple result), else null."""
    keys = list(parsed)
    results = [parsed[key] if part is None else parsed[key][part] for key in keys]
    return pl.col(name).replace_strict(keys, results, default=None, return_dtype=dtype)


def _parse_datetimes(text: pl.Expr, profile: SiteProfile) -> tuple[pl.Expr, pl.Expr]:
    """(UTC date-time, local time falls in a daylight-saving gap) of a date-time column.

    The profile's formats are tried in order, then ISO 8601 with an offset. A time without
    an offset is local to the profile's zone; one repeated by a fall-back change is taken as
    the earlier (daylight) instant.
    """
    candidates: list[pl.Expr] = []
    local: list[pl.Expr] = []
    for fmt in (*profile.datetime_formats, *ISO_FORMATS):
        if _OFFSET_DIRECTIVE.search(fmt):
            candidates.append(text.str.strptime(_UTC, fmt, strict=False))
            continue
        naive = text.str.strptime(pl.Datetime("us"), fmt, strict=False)
        local.append(naive)
        candidates.append(
            naive.dt.replace_time_zone(
                profile.timezone, ambiguous="earliest", non_existent="null"
            ).dt.convert_time_zone("UTC")
        )
    parsed = pl.coalesce(candidates)
    gap = parsed.is_null() & pl.coalesce(local).is_not_null() if local else pl.lit(False)
    return parsed, gap
