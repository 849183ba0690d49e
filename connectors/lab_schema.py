"""The one row shape of a lab result, shared by the LIS export and HL7 v2 readers.

Both ``connectors.lab_csv`` and ``connectors.hl7v2`` return a ``lab_results`` table with
exactly these columns, in this order, so that the pipeline can conform results from every
lab source in one step. Values stay as the source sent them (codes, units, flags); only
their parsing is shared here: a number with an optional comparator, and a reference range.
"""

import re
from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class Column:
    """One typed column: its name, polars dtype and a one-line description."""

    name: str
    dtype: pl.DataType
    description: str


_UTC = pl.Datetime("us", "UTC")

LAB_RESULT_COLUMNS: list[Column] = [
    Column("source_locator", pl.String(), "Where in the file: 'line:N' (CSV) or "
           "'MSH-10:<id>/OBX:<n>' (HL7 v2, n the OBX's position in the message)."),
    Column("source_kind", pl.String(), "Which reader produced the row: 'csv' or 'hl7v2'."),
    Column("site", pl.String(), "Code of the site whose lab produced the result: the CSV "
           "profile's site, or HL7 MSH-4 (sending facility), else MSH-3."),
    Column("message_id", pl.String(), "HL7 MSH-10 message control id; null for CSV."),
    Column("patient_id", pl.String(), "The patient's identifier in the lab system (lab MRN): "
           "HL7 PID-3 (the MR repetition, else the first), or the profile's patient column."),
    Column("patient_id_authority", pl.String(), "Assigning authority of patient_id (HL7 "
           "PID-3.4 first component); null when not sent."),
    Column("accession", pl.String(), "Lab accession / filler order number (HL7 OBR-3, else "
           "OBR-2); the order the result belongs to."),
    Column("placer_order", pl.String(), "Placer order number (HL7 OBR-2, ORC-2)."),
    Column("panel_code", pl.String(), "Code of the ordered test or panel (HL7 OBR-4.1)."),
    Column("panel_system", pl.String(), "Coding system of panel_code (HL7 OBR-4.3)."),
    Column("panel_display", pl.String(), "Name of the ordered test or panel (HL7 OBR-4.2)."),
    Column("observation_seq", pl.Int64(), "OBX-1 set id, or the 1-based row number of the "
           "result within its accession in a CSV file."),
    Column("observation_sub_id", pl.String(), "HL7 OBX-4 observation sub-id; null for CSV."),
    Column("test_code", pl.String(), "Test code as sent (HL7 OBX-3.1, or the profile's code "
           "column): a LOINC code or the site's local code."),
    Column("test_system", pl.String(), "Coding system of test_code: 'LN' for LOINC, else the "
           "site's local system name (HL7 OBX-3.3, or the profile's code_system)."),
    Column("test_display", pl.String(), "Test name as sent (HL7 OBX-3.2)."),
    Column("alt_code", pl.String(), "Alternate code (HL7 OBX-3.4), often the local code."),
    Column("alt_system", pl.String(), "Coding system of alt_code (HL7 OBX-3.6)."),
    Column("alt_display", pl.String(), "Alternate name (HL7 OBX-3.5)."),
    Column("category", pl.String(), "Result category when the source gives one "
           "(laboratory, vital-signs, ...)."),
    Column("value_type", pl.String(), "HL7 OBX-2 value type (NM, SN, ST, TX, CE, CWE, ...); "
           "for CSV 'NM' when the value parses as a number, else 'ST'."),
    Column("value_text", pl.String(), "The value exactly as sent, escapes decoded (HL7 "
           "OBX-5 with repetitions joined by '~'). May hold free text."),
    Column("value_number", pl.Float64(), "The numeric value: NM parsed, SN's number (the "
           "first of a range), or a CSV value such as '<0.5' parsed to 0.5."),
    Column("comparator", pl.String(), "'<', '<=', '>', '>=' when the value is a bound, "
           "else null."),
    Column("value_code", pl.String(), "Code of a coded value (CE/CWE OBX-5.1)."),
    Column("value_system", pl.String(), "Coding system of value_code (OBX-5.3)."),
    Column("value_display", pl.String(), "Text of a coded value (OBX-5.2)."),
    Column("unit", pl.String(), "Unit as sent (HL7 OBX-6.1, or the profile's unit column)."),
    Column("unit_system", pl.String(), "Coding system of the unit (HL7 OBX-6.3, e.g. UCUM)."),
    Column("reference_range", pl.String(), "Reference range as sent (HL7 OBX-7, or the "
           "profile's range column, or 'low-high' from separate columns)."),
    Column("reference_low", pl.Float64(), "Lower limit parsed from the range, in `unit`."),
    Column("reference_high", pl.Float64(), "Upper limit parsed from the range, in `unit`."),
    Column("abnormal_flag", pl.String(), "Abnormal flags (HL7 OBX-8, repetitions joined by "
           "'~'): N, L, H, LL, HH, A, AA, ..."),
    Column("result_status", pl.String(), "Result status in HL7 table 0085 terms (F final, "
           "P preliminary, C corrected, I pending, X cannot be obtained, R not verified, "
           "D deleted); CSV statuses are mapped by the site profile."),
    Column("specimen_type", pl.String(), "Specimen type (HL7 SPM-4.1, else OBR-15.1)."),
    Column("collected_at", _UTC, "When the specimen was collected (HL7 OBR-7, else "
           "SPM-17.1, else OBX-14), in UTC."),
    Column("resulted_at", _UTC, "When the result was produced (HL7 OBX-19, else OBR-22), "
           "in UTC."),
]
"""Columns of every reader's ``lab_results`` table, in order."""

LAB_RESULT_SCHEMA: dict[str, pl.DataType] = {c.name: c.dtype for c in LAB_RESULT_COLUMNS}


def empty_lab_results() -> pl.DataFrame:
    """An empty ``lab_results`` frame."""
    return pl.DataFrame(schema=LAB_RESULT_SCHEMA)


_NUMBER = re.compile(r"\s*(<=|>=|<|>|=)?\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*")
_RANGE = re.compile(
    r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?:-|–|to|_)\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*",
    re.IGNORECASE,
)


def parse_number(text: str | None) -> tuple[str | None, float | None]:
    """A value such as ``'5.4'``, ``'<0.5'`` or ``'>= 90'`` as (comparator, number).

    Returns ``(None, None)`` for anything that is not one number with an optional leading
    comparator (``'Positive'``, ``'1:40'``, ``''``). ``'='`` is dropped.
    """
    if text is None:
        return None, None
    match = _NUMBER.fullmatch(text)
    if match is None:
        return None, None
    comparator = match.group(1)
    return (None if comparator in (None, "=") else comparator), float(match.group(2))


def parse_reference_range(text: str | None) -> tuple[float | None, float | None]:
    """Limits of a reference range: ``'70-99'``, ``'4.3 to 6.2'``, ``'70_105'`` (HL7 v2.4
    examples), ``'<5'`` (upper only), ``'>60'`` (lower only). Anything else gives
    ``(None, None)``.
    """
    if not text:
        return None, None
    match = _RANGE.fullmatch(text)
    if match is not None:
        return float(match.group(1)), float(match.group(2))
    comparator, number = parse_number(text)
    if comparator in ("<", "<="):
        return None, number
    if comparator in (">", ">="):
        return number, None
    return None, None
