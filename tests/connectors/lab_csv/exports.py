"""Small LIS exports in the layout of a built-in site profile, written byte for byte.

Rows are given by logical field (``patient_id``, ``value``, ...); the writer puts each under
the profile's header, in the export's column order, with the profile's delimiter and
encoding, local date-times in the profile's format, and the site's status words.
"""

from datetime import datetime
from pathlib import Path

A01_HEADER = [
    "MRN", "ACCESSION", "ORDER_CODE", "ORDER_NAME", "TEST_CODE", "TEST_NAME", "RESULT", "UNITS",
    "REF_RANGE", "FLAG", "STATUS", "SPECIMEN", "COLLECTED", "RESULTED",
]
B07_HEADER = [
    "PatientID", "SpecimenNo", "TestID", "TestDescription", "Value", "Unit", "LowRef",
    "HighRef", "AbnFlag", "ResultStatus", "SpecimenType", "CollectionDateTime",
    "VerifiedDateTime",
]

SITES = {
    "SITE-A01": {
        "header": A01_HEADER,
        "delimiter": ",",
        "encoding": "utf-8",
        "datetime": "%Y-%m-%d %H:%M",
        "statuses": {"F": "F", "P": "P", "C": "C", "I": "I"},
        "fields": {
            "patient_id": "MRN", "accession": "ACCESSION", "panel_code": "ORDER_CODE",
            "panel_display": "ORDER_NAME", "test_code": "TEST_CODE", "test_display": "TEST_NAME",
            "value": "RESULT", "unit": "UNITS", "reference_range": "REF_RANGE",
            "abnormal_flag": "FLAG", "result_status": "STATUS", "specimen_type": "SPECIMEN",
            "collected_at": "COLLECTED", "resulted_at": "RESULTED",
        },
    },
    "SITE-B07": {
        "header": B07_HEADER,
        "delimiter": ";",
        "encoding": "cp1252",
        "datetime": "%m/%d/%Y %H:%M",
        "statuses": {"F": "Final", "P": "Prelim", "C": "Corrected", "I": "Pending"},
        "fields": {
            "patient_id": "PatientID", "accession": "SpecimenNo", "test_code": "TestID",
            "test_display": "TestDescription", "value": "Value", "unit": "Unit",
            "abnormal_flag": "AbnFlag", "result_status": "ResultStatus",
            "specimen_type": "SpecimenType", "collected_at": "CollectionDateTime",
            "resulted_at": "VerifiedDateTime",
        },
    },
}

TYPICAL = {
    "patient_id": "LAB-0001",
    "accession": "ACC-1",
    "panel_code": "BMP",
    "panel_display": "Basic metabolic panel",
    "test_code": "GLU",
    "test_display": "Glucose",
    "value": "105",
    "unit": "mg/dL",
    "reference_range": "70-99",
    "abnormal_flag": "H",
    "result_status": "F",
    "specimen_type": "SER",
    "collected_at": "2024-01-15 08:30",
    "resulted_at": "2024-01-15 10:05",
}
"""A complete row: local times written ``%Y-%m-%d %H:%M``, status as an HL7 0085 code."""


def local_time(site: str, text: str) -> str:
    """``text`` (``%Y-%m-%d %H:%M``) in the site's date-time format; other text as is."""
    try:
        moment = datetime.strptime(text, "%Y-%m-%d %H:%M")
    except ValueError:
        return text
    return moment.strftime(SITES[site]["datetime"])


def cells(site: str, row: dict[str, str]) -> list[str]:
    """One row's cells in the site's column order."""
    layout = SITES[site]
    by_header: dict[str, str] = {}
    for field, text in row.items():
        if field in ("collected_at", "resulted_at"):
            text = local_time(site, text)
        elif field == "result_status":
            text = layout["statuses"].get(text, text)
        if field == "reference_range" and site == "SITE-B07":
            low, _, high = text.partition("-")
            by_header["LowRef"], by_header["HighRef"] = low, high
            continue
        if field in layout["fields"]:
            by_header[layout["fields"][field]] = text
    return [by_header.get(header, "") for header in layout["header"]]


def export_text(site: str, rows: list[dict[str, str]]) -> str:
    """The export's text: header and rows, each line ended by CRLF."""
    layout = SITES[site]
    lines = [layout["header"], *(cells(site, row) for row in rows)]
    return "".join(layout["delimiter"].join(line) + "\r\n" for line in lines)


def write_export(path: Path, site: str, rows: list[dict[str, str]]) -> Path:
    """Write rows (each ``TYPICAL`` updated by the given fields) as the site's export."""
    text = export_text(site, [{**TYPICAL, **row} for row in rows])
    path.write_bytes(text.encode(SITES[site]["encoding"]))
    return path
