"""The lab silo: five sites' laboratory results, as their LIS exports and HL7 v2 feeds drop them.

A person's lab is their home site's lab, and the lab knows them by ``Person.lab_mrn``. Two
sites export CSV files (``SITE-A01`` comma-separated UTF-8 in conventional units and New York
time; ``SITE-B07`` semicolon-separated cp1252 in SI units and Denver time, US date format),
each split into two files by collection year; three sites send HL7 v2.5.1 ORU^R01 feeds, one
file each (``SITE-A02`` MLLP-framed, ``SITE-C03`` CR-separated, ``SITE-D02`` LF-separated
with a UTF-8 byte order mark and local codes only). ``lab/patient_index.csv`` is every LIS's
cross-reference from lab patient id to EHR MRN.

Every random draw for a person comes from ``person.rng("lab")``: panels ordered on a few
collection days in the four years before ``AS_OF`` (mostly adults, more often for people with
diabetes), values drawn around a latent level per person and analyte (higher glucose and HbA1c
for people with diabetes or prediabetes in the EHR silo, lower haemoglobin with anaemia,
higher lipids with hyperlipidaemia), converted to the site's unit and rounded to the site's
reporting precision. Reference ranges are written in the site's unit and the abnormal flag
compares the written value with the written limits (``H`` above the upper limit, ``L`` below
the lower one).

A handful of deliberate irregularities go to the first people with labs at a site, in roster
order (``DELIBERATE``), so that every roster with enough people at the site has exactly the
stated number of each whatever its size: local codes the site's terminology map lacks
(``UNMAPPED_CODES``), units no UCUM spelling matches (``UNKNOWN_UNITS``), values below the
assay's reporting limit (``'<7'``), HL7 orders sent preliminary and later final with one value
changed, coded (urine culture) and text (comment) results with HL7 escape sequences, and one
malformed HL7 message (``MALFORMED_MESSAGE_ID``). The first person with labs at each CSV site
who is alive on ``AS_OF`` has one order still pending: blank value, status ``I`` (HL7 table
0085 "specimen in lab; results pending"; ``Pending`` at ``SITE-B07``), no result time.

``lab_truth`` gives what was written, one row per result a correct reader keeps, so tests can
hold the readers and the conformed silver table to it.
"""

import csv
import io
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path

import polars as pl

from connectors.synth import codes as c
from connectors.synth import ehr
from connectors.synth.clock import utc_offset
from connectors.synth.cohort import AS_OF, Person
from connectors.synth.demographics import SITES_BY_CODE, Site
from connectors.synth.files import AtomicFolder

FOLDER = "lab"
PATIENT_INDEX_NAME = "patient_index.csv"
PATIENT_INDEX_COLUMNS: tuple[str, ...] = ("site", "lab_patient_id", "mrn")
"""The columns of ``lab/patient_index.csv``, in order."""

WINDOW_START = date(AS_OF.year - 4, AS_OF.month, AS_OF.day) + timedelta(days=1)
"""The first day a specimen may be collected: the lab history covers four years to ``AS_OF``."""

CSV_SITES: tuple[str, ...] = ("SITE-A01", "SITE-B07")
HL7_SITES: tuple[str, ...] = ("SITE-A02", "SITE-C03", "SITE-D02")

CSV_SPLIT_YEAR = 2024
"""CSV rows collected (local time) before 1 January of this year go to a site's first file."""

CSV_FILES: dict[str, tuple[str, str]] = {
    "SITE-A01": ("lis_export_2021-2023.csv", "lis_export_2024-2025.csv"),
    "SITE-B07": ("LABEXPORT_2021_2023.csv", "LABEXPORT_2024_2025.csv"),
}
"""Per CSV site: the file of rows collected before ``CSV_SPLIT_YEAR``, then the one after."""

HL7_FILES: dict[str, str] = {site: f"{site}-oru.hl7" for site in HL7_SITES}

CSV_HEADERS: dict[str, tuple[str, ...]] = {
    "SITE-A01": (
        "MRN", "ACCESSION", "ORDER_CODE", "ORDER_NAME", "TEST_CODE", "TEST_NAME", "RESULT",
        "UNITS", "REF_RANGE", "FLAG", "STATUS", "SPECIMEN", "COLLECTED", "RESULTED",
    ),
    "SITE-B07": (
        "PatientID", "SpecimenNo", "TestID", "TestDescription", "Value", "Unit", "LowRef",
        "HighRef", "AbnFlag", "ResultStatus", "SpecimenType", "CollectionDateTime",
        "VerifiedDateTime",
    ),
}

UNMAPPED_CODES: dict[str, tuple[str, str]] = {
    "SITE-A01": ("VITD25", "ng/mL"),
    "SITE-B07": ("1099", "µg/L"),
    "SITE-D02": ("FERR", "ng/mL"),
}
"""Per site: the local code its terminology map lacks, on purpose, and the unit sent with it."""

UNKNOWN_UNITS: dict[str, tuple[str, str]] = {
    "SITE-A01": ("HBA1C", "% Hb"),
    "SITE-B07": ("1031", "mval/l"),
    "SITE-D02": ("GLUC", "mg%"),
}
"""Per site: a (mapped) local code sometimes sent with a unit no UCUM spelling matches."""

BELOW_LIMIT: dict[str, tuple[str, str]] = {"SITE-A01": ("ALT", "<7"), "SITE-B07": ("1050", "<5")}
"""Per CSV site: the ALT code and the text of a value below the assay's reporting limit."""

MALFORMED_FILE = "lab/hl7/SITE-C03-oru.hl7"
MALFORMED_MESSAGE_ID = "C03-MALFORMED-0001"
"""MSH-10 of the one malformed message: an NM OBX whose value is text. A reader rejects it
(one record quarantined) and keeps every other message of the file."""

MOLAR_MASS_G_PER_MOL: dict[str, float] = {
    "glucose": 180.156,
    "creatinine": 113.12,
    "cholesterol": 386.654,
    "hdl": 386.654,
    "triglycerides": 885.7,
}
"""Molar masses behind the SI conversions (triglycerides as triolein)."""

HBA1C_NGSP_PER_IFCC = (0.09148, 2.152)
"""NGSP % = 0.09148 × IFCC mmol/mol + 2.152."""

_DELIBERATE_PLAN: dict[str, tuple[str, ...]] = {
    "SITE-A01": (
        "unmapped_code", "unknown_unit", "below_limit", "unmapped_code", "unknown_unit",
        "below_limit", "unmapped_code", "unknown_unit",
    ),
    "SITE-B07": (
        "unmapped_code", "unknown_unit", "below_limit", "unmapped_code", "unknown_unit",
        "below_limit", "unmapped_code", "unknown_unit",
    ),
    "SITE-A02": ("corrected", "coded", "comment", "corrected", "coded", "comment"),
    "SITE-C03": ("malformed", "corrected", "coded", "comment", "corrected", "coded", "comment"),
    "SITE-D02": (
        "corrected", "unmapped_code", "unknown_unit", "corrected", "unmapped_code",
        "unknown_unit", "unmapped_code", "unknown_unit",
    ),
}

DELIBERATE: dict[str, dict[str, int]] = {
    site: dict(Counter(plan)) for site, plan in _DELIBERATE_PLAN.items()
}
"""Per site: how many of each deliberate irregularity it sends, given at least
``MIN_LAB_PEOPLE_PER_SITE`` people with labs there. ``unmapped_code``, ``unknown_unit`` and
``below_limit`` count result rows; ``corrected`` counts orders sent as P then F (one value
differs); ``coded`` counts urine cultures (one CWE result each); ``comment`` counts ST
comments (one each, on a basic metabolic panel, with HL7 escapes); ``malformed`` counts
messages. Each CSV site also has ``PENDING_ROWS`` pending row (status ``I``, blank value)."""

MIN_LAB_PEOPLE_PER_SITE = max(len(plan) for plan in _DELIBERATE_PLAN.values())
PENDING_ROWS = 1

TRUTH_SCHEMA: dict[str, pl.DataType] = {
    "site": pl.String(),
    "source_kind": pl.String(),
    "file": pl.String(),
    "message_id": pl.String(),
    "lab_patient_id": pl.String(),
    "mrn": pl.String(),
    "person_index": pl.Int64(),
    "accession": pl.String(),
    "panel_code": pl.String(),
    "test_code": pl.String(),
    "test_system": pl.String(),
    "loinc": pl.String(),
    "value": pl.Float64(),
    "unit": pl.String(),
    "value_written": pl.Float64(),
    "unit_written": pl.String(),
    "comparator": pl.String(),
    "value_text": pl.String(),
    "value_type": pl.String(),
    "value_code": pl.String(),
    "value_system": pl.String(),
    "value_display": pl.String(),
    "value_drawn": pl.Float64(),
    "reference_low": pl.Float64(),
    "reference_high": pl.Float64(),
    "abnormal_flag": pl.String(),
    "result_status": pl.String(),
    "deliberate": pl.String(),
    "superseded_value_written": pl.Float64(),
    "specimen_type": pl.String(),
    "collected_at": pl.Datetime("us", "UTC"),
    "resulted_at": pl.Datetime("us", "UTC"),
}
"""Columns of ``lab_truth``, in order."""


# --- analytes and how each site reports them -----------------------------------------------


@dataclass(frozen=True)
class Analyte:
    """A lab analyte in its canonical form: the LOINC code and UCUM unit results conform to."""

    key: str
    loinc: str
    display: str
    unit: str


ANALYTES: dict[str, Analyte] = {
    a.key: a
    for a in (
        Analyte("glucose", "2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL"),
        Analyte("creatinine", "2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL"),
        Analyte("cholesterol", "2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL"),
        Analyte("hdl", "2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL"),
        Analyte(
            "triglycerides", "2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL"
        ),
        Analyte("haemoglobin", "718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL"),
        Analyte("hba1c", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%"),
        Analyte("sodium", "2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L"),
        Analyte("potassium", "2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L"),
        Analyte(
            "wbc", "6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL"
        ),
        Analyte(
            "platelets", "777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL"
        ),
        Analyte(
            "alt",
            "1742-6",
            "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
            "U/L",
        ),
    )
}
"""The synthetic analytes by key, with canonical LOINC, LOINC long name and canonical unit."""

# Extra tests that only the deliberate irregularities use (no canonical analyte).
_VITAMIN_D = "vitamin_d"
_FERRITIN = "ferritin"


@dataclass(frozen=True)
class SiteTest:
    """How one site reports one test.

    ``slope`` and ``intercept`` turn the site's number into the canonical one
    (``canonical = slope × site + intercept``).
    """

    analyte: str
    code: str
    name: str
    unit: str
    decimals: int
    slope: float = 1.0
    intercept: float = 0.0
    loinc: str | None = None

    def to_site(self, canonical: float) -> float:
        return (canonical - self.intercept) / self.slope

    def to_canonical(self, written: float) -> float:
        return self.slope * written + self.intercept


def _mg_per_dl_per_mmol(key: str) -> float:
    return MOLAR_MASS_G_PER_MOL[key] / 10


_HL7_UNITS = {
    "glucose": ("mg/dL", 0), "creatinine": ("mg/dL", 2), "cholesterol": ("mg/dL", 0),
    "hdl": ("mg/dL", 0), "triglycerides": ("mg/dL", 0), "haemoglobin": ("g/dL", 1),
    "hba1c": ("%", 1), "sodium": ("mmol/L", 0), "potassium": ("mmol/L", 1),
    "wbc": ("10*3/uL", 1), "platelets": ("10*3/uL", 0), "alt": ("U/L", 0),
}


def _hl7_tests(codes: dict[str, tuple[str, str]]) -> dict[str, SiteTest]:
    return {
        key: SiteTest(key, code, name, _HL7_UNITS[key][0], _HL7_UNITS[key][1])
        for key, (code, name) in codes.items()
    }


SITE_TESTS: dict[str, dict[str, SiteTest]] = {
    "SITE-A01": {
        "glucose": SiteTest("glucose", "GLU", "Glucose", "mg/dL", 0),
        "creatinine": SiteTest("creatinine", "CREA", "Creatinine", "mg/dL", 2),
        "cholesterol": SiteTest("cholesterol", "CHOL", "Cholesterol, Total", "mg/dL", 0),
        "hdl": SiteTest("hdl", "HDL", "HDL Cholesterol", "mg/dL", 0),
        "triglycerides": SiteTest("triglycerides", "TRIG", "Triglycerides", "mg/dL", 0),
        "haemoglobin": SiteTest("haemoglobin", "HGB", "Hemoglobin", "g/dL", 1),
        "hba1c": SiteTest("hba1c", "HBA1C", "Hemoglobin A1c", "%", 1),
        "sodium": SiteTest("sodium", "NA", "Sodium", "mEq/L", 0),
        "potassium": SiteTest("potassium", "K", "Potassium", "mEq/L", 1),
        "wbc": SiteTest("wbc", "WBC", "WBC Count", "K/uL", 1),
        "platelets": SiteTest("platelets", "PLT", "Platelet Count", "K/uL", 0),
        "alt": SiteTest("alt", "ALT", "ALT (SGPT)", "U/L", 0),
        _VITAMIN_D: SiteTest(_VITAMIN_D, "VITD25", "Vitamin D, 25-Hydroxy", "ng/mL", 0),
    },
    "SITE-B07": {
        "glucose": SiteTest(
            "glucose", "1001", "Glucose", "mmol/L", 1, _mg_per_dl_per_mmol("glucose"),
            loinc="14749-6",
        ),
        "creatinine": SiteTest(
            "creatinine", "1002", "Creatinine", "µmol/L", 0,
            MOLAR_MASS_G_PER_MOL["creatinine"] / 10_000, loinc="14682-9",
        ),
        "cholesterol": SiteTest(
            "cholesterol", "1003", "Cholesterol", "mmol/L", 2,
            _mg_per_dl_per_mmol("cholesterol"), loinc="14647-2",
        ),
        "hdl": SiteTest(
            "hdl", "1004", "HDL-Cholesterol", "mmol/L", 2, _mg_per_dl_per_mmol("hdl"),
            loinc="14646-4",
        ),
        "triglycerides": SiteTest(
            "triglycerides", "1005", "Triglycerides", "mmol/L", 2,
            _mg_per_dl_per_mmol("triglycerides"), loinc="14927-8",
        ),
        "haemoglobin": SiteTest("haemoglobin", "1010", "Haemoglobin", "g/L", 0, 0.1),
        "hba1c": SiteTest(
            "hba1c", "1020", "HbA1c (IFCC)", "mmol/mol", 0, *HBA1C_NGSP_PER_IFCC,
            loinc="59261-8",
        ),
        "sodium": SiteTest("sodium", "1030", "Sodium", "mmol/L", 0),
        "potassium": SiteTest("potassium", "1031", "Potassium", "mmol/L", 1),
        "wbc": SiteTest("wbc", "1040", "Leukocytes", "10^9/L", 1),
        "platelets": SiteTest("platelets", "1041", "Thrombocytes", "10^9/L", 0),
        "alt": SiteTest("alt", "1050", "ALT (GPT)", "U/L", 0),
        _FERRITIN: SiteTest(_FERRITIN, "1099", "Ferritin", "µg/L", 0),
    },
    "SITE-A02": _hl7_tests(
        {
            "glucose": ("GLU", "Glucose"), "creatinine": ("CREA", "Creatinine"),
            "cholesterol": ("CHOL", "Cholesterol"), "hdl": ("HDL", "HDL Cholesterol"),
            "triglycerides": ("TRIG", "Triglycerides"), "haemoglobin": ("HGB", "Hemoglobin"),
            "hba1c": ("HBA1C", "Hemoglobin A1c"), "sodium": ("NA", "Sodium"),
            "potassium": ("K", "Potassium"), "wbc": ("WBC", "WBC"),
            "platelets": ("PLT", "Platelets"), "alt": ("ALT", "ALT"),
        }
    ),
    "SITE-C03": _hl7_tests(
        {
            "glucose": ("GLU-S", "Glucose, serum"), "creatinine": ("CRE-S", "Creatinine, serum"),
            "cholesterol": ("CHOL-S", "Cholesterol, serum"), "hdl": ("HDL-S", "HDL, serum"),
            "triglycerides": ("TRIG-S", "Triglycerides, serum"),
            "haemoglobin": ("HGB-B", "Hemoglobin, blood"), "hba1c": ("A1C-B", "HbA1c, blood"),
            "sodium": ("NA-S", "Sodium, serum"), "potassium": ("K-S", "Potassium, serum"),
            "wbc": ("WBC-B", "White cell count"), "platelets": ("PLT-B", "Platelet count"),
            "alt": ("ALT-S", "ALT, serum"),
        }
    ),
    "SITE-D02": {
        **_hl7_tests(
            {
                "glucose": ("GLUC", "Glucose"), "creatinine": ("CREAT", "Creatinine"),
                "cholesterol": ("CHOL", "Cholesterol total"), "hdl": ("HDLC", "HDL cholesterol"),
                "triglycerides": ("TRIG", "Triglycerides"), "haemoglobin": ("HGB", "Hemoglobin"),
                "hba1c": ("A1C", "Hemoglobin A1c"), "sodium": ("NA", "Sodium"),
                "potassium": ("K", "Potassium"), "wbc": ("WBC", "Leukocytes"),
                "platelets": ("PLT", "Platelets"), "alt": ("ALT", "Alanine aminotransferase"),
            }
        ),
        _FERRITIN: SiteTest(_FERRITIN, "FERR", "Ferritin", "ng/mL", 0),
    },
}
"""Per site, per analyte key: the local code, name, unit and precision it reports with."""

_TEST_LOINC_SYSTEM = "LN"
_LOCAL_SYSTEM = "L"


@dataclass(frozen=True)
class Panel:
    """An orderable test or panel."""

    code: str
    name: str
    loinc: str
    loinc_display: str
    tests: tuple[str, ...]
    specimen: str
    turnaround_minutes: tuple[int, int]


PANELS: dict[str, Panel] = {
    p.code: p
    for p in (
        Panel(
            "BMP", "Basic metabolic panel", "51990-0", "Basic metabolic panel - Blood",
            ("glucose", "creatinine", "sodium", "potassium"), "SER", (40, 300),
        ),
        Panel(
            "LIPID", "Lipid panel", "24331-1", "Lipid 1996 panel - Serum or Plasma",
            ("cholesterol", "hdl", "triglycerides"), "SER", (60, 480),
        ),
        Panel(
            "CBC", "Complete blood count", "58410-2", "CBC panel - Blood by Automated count",
            ("haemoglobin", "wbc", "platelets"), "BLD", (20, 180),
        ),
        Panel(
            "HBA1C", "Hemoglobin A1c", "4548-4", ANALYTES["hba1c"].display, ("hba1c",), "BLD",
            (120, 2880),
        ),
        Panel("ALT", "ALT (SGPT)", "1742-6", ANALYTES["alt"].display, ("alt",), "SER", (40, 300)),
        Panel(
            "VITD", "Vitamin D, 25-Hydroxy", "62292-8",
            "25-Hydroxyvitamin D2+25-Hydroxyvitamin D3 [Mass/volume] in Serum or Plasma",
            (_VITAMIN_D,), "SER", (1440, 5760),
        ),
        Panel(
            "FERR", "Ferritin", "2276-4", "Ferritin [Mass/volume] in Serum or Plasma",
            (_FERRITIN,), "SER", (240, 2880),
        ),
        Panel(
            "GLUC", "Glucose", "2345-7", ANALYTES["glucose"].display, ("glucose",), "SER",
            (40, 300),
        ),
        Panel(
            "K", "Potassium", "2823-3", ANALYTES["potassium"].display, ("potassium",), "SER",
            (40, 300),
        ),
        Panel(
            "UCX", "Urine culture", "630-4", "Bacteria identified in Urine by Culture", (),
            "UR", (1440, 4320),
        ),
    )
}
"""Orderable panels by local order code: tests, specimen and turnaround."""

_SPECIMENS: dict[str, dict[str, str]] = {
    # HL7 table 0487 code -> how each kind of feed names it.
    "SER": {"hl7": "Serum", "SITE-A01": "Serum", "SITE-B07": "Serum"},
    "BLD": {"hl7": "Whole blood", "SITE-A01": "Whole Blood", "SITE-B07": "EDTA whole blood"},
    "UR": {"hl7": "Urine", "SITE-A01": "Urine", "SITE-B07": "Urine"},
}

_COMMENT_LOINC = ("48767-8", "Annotation comment [Interpretation] Narrative")
_COMMENTS: tuple[str, ...] = (
    "Specimen hemolyzed & lipemic; potassium may be falsely elevated.",
    "Fasting status not documented | interpret glucose with caution.",
    "Result verified by repeat analysis & reviewed by the laboratory director.",
    "Sample received at room temperature; delay > 4 h ^ possible glycolysis.",
)
"""Texts of the comment results; the HL7 writer escapes their delimiters (\\T\\, \\F\\, \\S\\)."""

_ORGANISMS: tuple[tuple[str, str], ...] = (
    ("112283007", "Escherichia coli"),
    ("56415008", "Klebsiella pneumoniae"),
    ("78065002", "Enterococcus faecalis"),
    ("264868006", "No growth"),
)
"""SNOMED CT organism codes of urine culture results (preferred terms)."""

_MALFORMED_VALUE = "HEMOLYZED"


# --- reference ranges -----------------------------------------------------------------------


def _canonical_range(key: str, gender: str, child: bool) -> tuple[float | None, float | None]:
    male, female = gender == "male", gender == "female"
    if key == "creatinine":
        if child:
            return 0.30, 0.70
        return (0.74, 1.35) if male else (0.59, 1.04) if female else (0.59, 1.35)
    if key == "haemoglobin":
        if child:
            return 11.0, 14.5
        return (13.2, 16.6) if male else (11.6, 15.0) if female else (11.6, 16.6)
    if key == _FERRITIN:
        return (30.0, 400.0) if male else (13.0, 150.0)
    return {
        "glucose": (70.0, 99.0),
        "cholesterol": (None, 199.0),
        "hdl": (40.0, None),
        "triglycerides": (None, 149.0),
        "hba1c": (4.0, 5.6),
        "sodium": (136.0, 145.0),
        "potassium": (3.5, 5.1),
        "wbc": (4.5, 11.0),
        "platelets": (150.0, 400.0),
        "alt": (7.0, 56.0),
        _VITAMIN_D: (30.0, 100.0),
    }[key]


# ALT: the CSV sites report from 0; B07 gives an upper limit only.
_RANGE_OVERRIDES: dict[tuple[str, str], tuple[float | None, float | None]] = {
    ("SITE-A01", "alt"): (0.0, 55.0),
    ("SITE-B07", "alt"): (None, 50.0),
}


@dataclass(frozen=True)
class _Range:
    low: float | None
    high: float | None
    low_text: str
    high_text: str

    @property
    def text(self) -> str:
        """The range as one string: ``70-99``, ``0-199`` or ``>=40``."""
        if self.low_text and self.high_text:
            return f"{self.low_text}-{self.high_text}"
        if self.low_text:
            return f">={self.low_text}"
        return f"<={self.high_text}" if self.high_text else ""

    def flag(self, value: float) -> str:
        if self.high is not None and value > self.high:
            return "H"
        if self.low is not None and value < self.low:
            return "L"
        return ""


@cache
def _site_range(site: str, key: str, gender: str, child: bool) -> _Range:
    test = SITE_TESTS[site][key]
    override = _RANGE_OVERRIDES.get((site, key))
    low, high = override or _canonical_range(key, gender, child)
    if low is not None and override is None:
        low = test.to_site(low)
    if high is not None and override is None:
        high = test.to_site(high)
    if low is None and site != "SITE-B07":
        # One-string ranges state an upper limit as 0-199 rather than as a bound such as <200,
        # whose own limit is ambiguous (is 200 inside?).
        low = 0.0
    low_text = _number(low, test.decimals) if low is not None else ""
    high_text = _number(high, test.decimals) if high is not None else ""
    return _Range(
        float(low_text) if low_text else None,
        float(high_text) if high_text else None,
        low_text,
        high_text,
    )


def _number(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return "0" if text in ("-0", "-0.0") else text


# --- one person's lab history -----------------------------------------------------------------


@dataclass
class _Result:
    test: SiteTest | None
    value_type: str
    text: str
    number: float | None = None
    comparator: str | None = None
    drawn: float | None = None
    range: _Range | None = None
    flag: str = ""
    status: str = "F"
    deliberate: str | None = None
    unit: str = ""
    code: tuple[str, str, str] | None = None
    observation: tuple[str, str] | None = None
    preliminary_text: str | None = None
    preliminary_number: float | None = None
    preliminary_flag: str = ""


@dataclass
class _Order:
    person: Person
    site: str
    number: int
    panel: Panel
    collected: datetime
    resulted: datetime | None
    results: list[_Result] = field(default_factory=list)
    final_at: datetime | None = None
    malformed: bool = False

    @property
    def accession(self) -> str:
        short = SITES_BY_CODE[self.site].short
        return f"{short}{self.collected:%y}-{self.person.index:05d}-{self.number:03d}"

    @property
    def placer(self) -> str:
        return f"PO{self.person.index:05d}{self.number:03d}"

    def control_id(self, part: int) -> str:
        if self.malformed:
            return MALFORMED_MESSAGE_ID
        short = SITES_BY_CODE[self.site].short
        return f"{short}-{self.person.index:05d}-{self.number:03d}-{part}"


@dataclass
class LatentLevels:
    """A person's usual level of each analyte (canonical units) and its visit-to-visit spread.

    Attributes:
        levels: analyte key to (level, spread, kind): a ``normal`` draw has standard deviation
            ``spread``; a ``log`` draw is the level times ``exp(N(0, spread))``.
    """

    levels: dict[str, tuple[float, float, str]]

    def draw(self, rng: random.Random, key: str) -> float:
        """One measurement of analyte ``key`` around the person's level (not clipped)."""
        level, spread, kind = self.levels[key]
        if kind == "log":
            return level * math.exp(rng.gauss(0, spread))
        return rng.gauss(level, spread)


LIMITS: dict[str, tuple[float, float]] = {
    "glucose": (45.0, 450.0), "creatinine": (0.25, 4.0), "cholesterol": (95.0, 360.0),
    "hdl": (18.0, 110.0), "triglycerides": (35.0, 900.0), "haemoglobin": (7.0, 19.0),
    "hba1c": (4.0, 14.0), "sodium": (124.0, 153.0), "potassium": (2.9, 6.3),
    "wbc": (2.0, 28.0), "platelets": (50.0, 650.0), "alt": (8.0, 400.0),
    _VITAMIN_D: (6.0, 95.0), _FERRITIN: (8.0, 600.0),
}
"""Plausible bounds (canonical units); draws are clipped to them. ALT starts above every
site's reporting limit, so only the deliberate rows are reported as below it."""


def latent_levels(
    rng: random.Random, person: Person, age: int, chronic: frozenset[c.Code]
) -> LatentLevels:
    """Draw a person's usual level of every analyte from their sex, age and conditions.

    Args:
        rng: the generator to draw from (the caller's stream).
        person: the roster entry.
        age: age in years the levels are for.
        chronic: the person's chronic conditions (``ehr.chronic_conditions``).

    Returns:
        The levels, in canonical units, with their visit-to-visit spread.
    """
    male = person.gender == "male"
    female = person.gender == "female"
    diabetic = c.DIABETES_T2 in chronic
    prediabetic = c.PREDIABETES in chronic
    gauss = rng.gauss
    if diabetic:
        glucose, a1c = gauss(155, 30), gauss(7.6, 1.0)
    elif prediabetic:
        glucose, a1c = gauss(108, 6), rng.uniform(5.7, 6.4)
    else:
        glucose, a1c = gauss(91, 7), gauss(5.25, 0.25)
    if age < 18:
        creatinine = 0.28 + 0.025 * age + gauss(0, 0.05)
        haemoglobin = gauss(12.8, 0.7)
    else:
        creatinine = gauss(0.98 if male else 0.78 if female else 0.88, 0.14)
        creatinine += 0.12 if age >= 70 else 0.0
        haemoglobin = gauss(15.0 if male else 13.4 if female else 14.2, 0.9)
    if c.ANEMIA in chronic:
        haemoglobin -= rng.uniform(1.5, 3.0)
    lipid = c.HYPERLIPIDEMIA in chronic
    cholesterol = gauss(212, 28) if lipid else gauss(176, 24)
    hdl = gauss(47 if male else 58, 10) - (5 if diabetic or c.OBESITY in chronic else 0)
    triglycerides = math.exp(gauss(math.log(160 if lipid else 100), 0.3))
    alt = math.exp(gauss(math.log(26 if male else 20), 0.3))
    if c.OBESITY in chronic:
        alt *= 1.3
    levels = {
        "glucose": (glucose, 14 if diabetic else 7, "normal"),
        "creatinine": (max(creatinine, 0.3), 0.06, "log"),
        "cholesterol": (cholesterol, 0.06, "log"),
        "hdl": (max(hdl, 22.0), 0.07, "log"),
        "triglycerides": (triglycerides, 0.2, "log"),
        "haemoglobin": (haemoglobin, 0.4, "normal"),
        "hba1c": (max(a1c, 4.3), 0.25, "normal"),
        "sodium": (gauss(140, 1.5), 1.5, "normal"),
        "potassium": (gauss(4.2, 0.25), 0.25, "normal"),
        "wbc": (math.exp(gauss(math.log(6.8), 0.2)), 0.15, "log"),
        "platelets": (gauss(255, 45), 0.08, "log"),
        "alt": (alt, 0.15, "log"),
        _VITAMIN_D: (gauss(29, 9), 0.1, "log"),
        _FERRITIN: (math.exp(gauss(math.log(120 if male else 60), 0.5)), 0.1, "log"),
    }
    return LatentLevels(levels)


_NIGHT = range(1, 3)


def _daytime_safe(moment: datetime) -> datetime:
    """Move a time out of 01:00-03:00, where daylight-saving changes make local time ambiguous."""
    if moment.hour in _NIGHT:
        return moment.replace(hour=3)
    return moment


class _PersonLab:
    """Draws one person's orders and results, in the site's units, from ``rng("lab")``."""

    def __init__(self, person: Person) -> None:
        self.person = person
        self.site = person.home_site
        self.tests = SITE_TESTS[self.site]
        self.rng = person.rng("lab")
        self.orders: list[_Order] = []
        first = max(WINDOW_START, person.birth_date + timedelta(days=1))
        last = person.end_date - timedelta(days=2)
        self.first, self.last = first, last
        self.has_labs = False
        if last < first:
            return
        rng = self.rng
        self.adult = person.age_on(last) >= 18
        if rng.random() >= (0.93 if self.adult else 0.3):
            return
        self.has_labs = True
        self.chronic = ehr.chronic_conditions(person)
        self.latent = latent_levels(rng, person, person.age_on(last), self.chronic)
        self.visits()

    # -- regular orders ------------------------------------------------------------------------

    def visits(self) -> None:
        rng, chronic = self.rng, self.chronic
        diabetic = c.DIABETES_T2 in chronic
        prediabetic = c.PREDIABETES in chronic
        lipid = c.HYPERLIPIDEMIA in chronic
        years = max((self.last - self.first).days, 1) / 365.25
        if self.adult:
            base = 5 + rng.randint(0, 6) + 5 * diabetic + 2 * prediabetic + lipid
            base += 3 if self.person.age_on(self.last) >= 65 else 0
        else:
            base = 1 + rng.randint(0, 2)
        count = max(1, round(base * min(years, 4.0) / 4.0))
        span = (self.last - self.first).days
        days = sorted(self.first + timedelta(days=rng.randint(0, span)) for _ in range(count))
        for day in days:
            collected = self.collection_time(day)
            age = self.person.age_on(day)
            chosen: list[str] = []
            if self.adult and age >= 18:
                if rng.random() < 0.85:
                    chosen.append("BMP")
                if rng.random() < 0.6:
                    chosen.append("CBC")
                if rng.random() < (0.6 if lipid else 0.35 if age >= 30 else 0.1):
                    chosen.append("LIPID")
                if rng.random() < (0.85 if diabetic else 0.5 if prediabetic else 0.08):
                    chosen.append("HBA1C")
                if rng.random() < 0.3:
                    chosen.append("ALT")
            else:
                if rng.random() < 0.8:
                    chosen.append("CBC")
                if rng.random() < 0.5:
                    chosen.append("BMP")
            for code in chosen or ["BMP"]:
                self.order(PANELS[code], collected, age)

    def collection_time(self, day: date) -> datetime:
        rng = self.rng
        if rng.random() < 0.75:
            clock = time(rng.randint(7, 11), rng.randrange(60))
        else:
            clock = time(rng.randint(6, 21), rng.randrange(60))
        return datetime.combine(day, clock)

    def new_order(self, panel: Panel, collected: datetime) -> _Order:
        low, high = panel.turnaround_minutes
        resulted = _daytime_safe(collected + timedelta(minutes=self.rng.randint(low, high)))
        order = _Order(self.person, self.site, len(self.orders) + 1, panel, collected, resulted)
        self.orders.append(order)
        return order

    def order(self, panel: Panel, collected: datetime, age: int) -> _Order:
        order = self.new_order(panel, collected)
        for key in panel.tests:
            order.results.append(self.numeric(key, age))
        return order

    def numeric(self, key: str, age: int, *, unit: str | None = None) -> _Result:
        rng = self.rng
        test = self.tests[key]
        low, high = LIMITS[key]
        drawn = min(max(self.latent.draw(rng, key), low), high)
        text = _number(test.to_site(drawn), test.decimals)
        number = float(text)
        site_range = _site_range(self.site, key, self.person.gender, age < 18)
        status = "C" if self.site in CSV_SITES and rng.random() < 0.004 else "F"
        return _Result(
            test=test,
            value_type="NM",
            text=text,
            number=number,
            drawn=drawn,
            range=site_range,
            flag=site_range.flag(number),
            status=status,
            unit=test.unit if unit is None else unit,
        )

    # -- deliberate irregularities ---------------------------------------------------------------

    def random_moment(self) -> tuple[datetime, int]:
        span = (self.last - self.first).days
        day = self.first + timedelta(days=self.rng.randint(0, span))
        return self.collection_time(day), self.person.age_on(day)

    def add(self, kind: str) -> None:
        getattr(self, f"add_{kind}")()

    def add_unmapped_code(self) -> None:
        key = _VITAMIN_D if self.site == "SITE-A01" else _FERRITIN
        collected, age = self.random_moment()
        order = self.new_order(PANELS["VITD" if key == _VITAMIN_D else "FERR"], collected)
        result = self.numeric(key, age)
        result.deliberate = "unmapped_code"
        result.status = "F"
        order.results.append(result)

    def add_unknown_unit(self) -> None:
        code, unit = UNKNOWN_UNITS[self.site]
        key = next(k for k, t in self.tests.items() if t.code == code)
        panel = {"hba1c": "HBA1C", "potassium": "K", "glucose": "GLUC"}[key]
        collected, age = self.random_moment()
        order = self.new_order(PANELS[panel], collected)
        result = self.numeric(key, age, unit=unit)
        result.deliberate = "unknown_unit"
        result.status = "F"
        order.results.append(result)

    def add_below_limit(self) -> None:
        collected, age = self.random_moment()
        order = self.new_order(PANELS["ALT"], collected)
        result = self.numeric("alt", age)
        text = BELOW_LIMIT[self.site][1]
        limit = float(text[1:])
        result.drawn = self.rng.uniform(2.0, limit - 0.5)
        result.text, result.number, result.comparator = text, limit, "<"
        assert result.range is not None
        result.flag = result.range.flag(limit)
        result.deliberate, result.status = "below_limit", "F"
        order.results.append(result)

    def add_pending(self) -> None:
        rng = self.rng
        day = AS_OF - timedelta(days=1)
        collected = datetime.combine(day, time(rng.randint(13, 17), rng.randrange(60)))
        order = self.new_order(PANELS["HBA1C"], collected)
        order.resulted = None
        result = self.numeric("hba1c", self.person.age_on(day))
        result.text, result.number, result.drawn, result.flag = "", None, None, ""
        result.value_type, result.status, result.deliberate = "", "I", "pending"
        order.results.append(result)

    def add_corrected(self) -> None:
        rng = self.rng
        order = max(self.orders, key=lambda o: len(o.results))
        assert order.resulted is not None
        order.final_at = _daytime_safe(order.resulted + timedelta(minutes=rng.randint(60, 600)))
        changed = rng.randrange(len(order.results))
        for index, result in enumerate(order.results):
            result.deliberate = "corrected"
            result.preliminary_text = result.text
            result.preliminary_number = result.number
            result.preliminary_flag = result.flag
            if index != changed or result.number is None or result.test is None:
                continue
            step = 10.0 ** -result.test.decimals
            delta = rng.randint(2, 6) * step * rng.choice((-1, 1))
            if result.number + delta <= 0:
                delta = -delta
            text = _number(result.number + delta, result.test.decimals)
            result.preliminary_text, result.preliminary_number = text, float(text)
            assert result.range is not None
            result.preliminary_flag = result.range.flag(float(text))

    def add_coded(self) -> None:
        rng = self.rng
        collected, _ = self.random_moment()
        order = self.new_order(PANELS["UCX"], collected)
        code, display = rng.choice(_ORGANISMS)
        order.results.append(
            _Result(
                test=None,
                value_type="CWE",
                text=f"{code}^{display}^SCT",
                code=(code, "SCT", display),
                flag="N" if display == "No growth" else "A",
                deliberate="coded",
                observation=(PANELS["UCX"].loinc, PANELS["UCX"].loinc_display),
            )
        )

    def add_comment(self) -> None:
        collected, age = self.random_moment()
        order = self.order(PANELS["BMP"], collected, age)
        order.results.append(
            _Result(
                test=None,
                value_type="ST",
                text=self.rng.choice(_COMMENTS),
                deliberate="comment",
                observation=_COMMENT_LOINC,
            )
        )

    def add_malformed(self) -> None:
        collected, age = self.random_moment()
        order = self.new_order(PANELS["K"], collected)
        order.malformed = True
        result = self.numeric("potassium", age)
        result.text, result.number, result.drawn, result.flag = _MALFORMED_VALUE, None, None, ""
        order.results.append(result)


def _lab_people(people: Iterable[Person]) -> list[_PersonLab]:
    """Every person with labs, with their orders and their share of the deliberate rows."""
    seen: Counter[str] = Counter()
    pending: set[str] = set()
    labs = []
    for person in people:
        lab = _PersonLab(person)
        if not lab.has_labs:
            continue
        site = lab.site
        plan = _DELIBERATE_PLAN[site]
        rank = seen[site]
        seen[site] += 1
        if rank < len(plan):
            lab.add(plan[rank])
        if site in CSV_SITES and site not in pending and person.deceased_date is None:
            pending.add(site)
            lab.add("pending")
        labs.append(lab)
    return labs


# --- rendering --------------------------------------------------------------------------------


def _offset_hours(site: Site, local: datetime) -> int:
    text = utc_offset(site, local)
    return int(text[:3])


def _utc(site: Site, local: datetime) -> datetime:
    return (local - timedelta(hours=_offset_hours(site, local))).replace(tzinfo=UTC)


def _hl7_time(site: Site, local: datetime, *, seconds: bool = False) -> str:
    offset = utc_offset(site, local).replace(":", "")
    return local.strftime("%Y%m%d%H%M%S" if seconds else "%Y%m%d%H%M") + offset


def _escape(text: str) -> str:
    """Escape HL7 v2 delimiters (``|^~\\&`` as sent in MSH-1 and MSH-2)."""
    return (
        text.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
    )


_HL7_SEX = {"male": "M", "female": "F", "other": "O", "unknown": "U"}


def _segments(order: _Order, *, preliminary: bool) -> list[str]:
    person, site_code = order.person, order.site
    site = SITES_BY_CODE[site_code]
    local_only = site_code == "SITE-D02"
    reported = order.resulted if preliminary or order.final_at is None else order.final_at
    assert reported is not None
    status = "P" if preliminary else "F"
    collected = _hl7_time(site, order.collected)
    reported_text = _hl7_time(site, reported)
    panel = order.panel
    if local_only:
        service = f"{panel.code}^{_escape(panel.name)}^{_LOCAL_SYSTEM}"
    else:
        service = (
            f"{panel.loinc}^{_escape(panel.loinc_display)}^{_TEST_LOINC_SYSTEM}"
            f"^{panel.code}^{_escape(panel.name)}^{_LOCAL_SYSTEM}"
        )
    given = person.given_names
    name = f"{_escape(person.family_name)}^{_escape(given[0])}"
    if len(given) > 1:
        name += f"^{_escape(given[1])}"
    segments = [
        "|".join(
            (
                "MSH", "^~\\&", "LIS", site_code, "BIOFED", "BIOFED",
                _hl7_time(site, reported, seconds=True), "", "ORU^R01^ORU_R01",
                order.control_id(1 if preliminary else 2), "P", "2.5.1", "", "", "AL", "NE",
                "", "UNICODE UTF-8",
            )
        ),
        "|".join(
            (
                "PID", "1", "", f"{person.lab_mrn}^^^{site_code}-LIS^MR", "", name, "",
                f"{person.birth_date:%Y%m%d}", _HL7_SEX[person.gender],
            )
        ),
        f"ORC|RE|{order.placer}|{order.accession}||{'A' if preliminary else 'CM'}",
        "|".join(
            (
                "OBR", "1", order.placer, order.accession, service, "", "", collected,
                *([""] * 14), reported_text, "", "HM" if panel.specimen == "BLD" else "CH",
                status,
            )
        ),
    ]
    for set_id, result in enumerate(order.results, start=1):
        segments.append(
            _obx(order, result, set_id, preliminary, collected=collected, reported=reported_text)
        )
    specimen = f"{panel.specimen}^{_SPECIMENS[panel.specimen]['hl7']}^HL70487"
    segments.append("|".join(("SPM", "1", order.accession, "", specimen, *([""] * 12), collected)))
    return segments


def _obx(
    order: _Order, result: _Result, set_id: int, preliminary: bool, *, collected: str, reported: str
) -> str:
    local_only = order.site == "SITE-D02"
    test = result.test
    if test is not None:
        analyte = ANALYTES.get(test.analyte)
        if local_only or analyte is None:
            observation = f"{test.code}^{_escape(test.name)}^{_LOCAL_SYSTEM}"
        else:
            observation = (
                f"{analyte.loinc}^{_escape(analyte.display)}^{_TEST_LOINC_SYSTEM}"
                f"^{test.code}^{_escape(test.name)}^{_LOCAL_SYSTEM}"
            )
    else:
        assert result.observation is not None
        loinc, display = result.observation
        observation = f"{loinc}^{_escape(display)}^{_TEST_LOINC_SYSTEM}"
    if result.value_type == "CWE":
        value = result.text
    elif preliminary and result.preliminary_text is not None:
        value = _escape(result.preliminary_text)
    else:
        value = _escape(result.text)
    flag = result.preliminary_flag if preliminary and result.preliminary_text else result.flag
    if result.value_type == "NM":
        flag = flag or "N"
    unit = ""
    if result.unit:
        unit = f"{_escape(result.unit)}^^UCUM" if result.deliberate != "unknown_unit" else (
            _escape(result.unit)
        )
    reference = _escape(result.range.text) if result.range is not None else ""
    return "|".join(
        (
            "OBX", str(set_id), result.value_type, observation, "", value, unit, reference,
            flag, "", "", "P" if preliminary else "F", "", "", collected, "", "", "", "",
            reported,
        )
    )


def _message(
    site: Site, order: _Order, sent: datetime, *, preliminary: bool
) -> tuple[datetime, str, list[str]]:
    control_id = order.control_id(1 if preliminary else 2)
    return _utc(site, sent), control_id, _segments(order, preliminary=preliminary)


def _hl7_file(site_code: str, orders: list[_Order]) -> tuple[bytes, int]:
    site = SITES_BY_CODE[site_code]
    messages: list[tuple[datetime, str, list[str]]] = []
    for order in orders:
        assert order.resulted is not None
        if order.final_at is not None:
            messages.append(_message(site, order, order.resulted, preliminary=True))
            messages.append(_message(site, order, order.final_at, preliminary=False))
        else:
            messages.append(_message(site, order, order.resulted, preliminary=False))
    messages.sort(key=lambda m: (m[0], m[1]))
    if site_code == "SITE-A02":
        body = b"".join(
            b"\x0b" + "\r".join(segments).encode("utf-8") + b"\r\x1c\r"
            for _, _, segments in messages
        )
    elif site_code == "SITE-C03":
        body = b"".join("\r".join(s).encode("utf-8") + b"\r" for _, _, s in messages)
    else:
        body = b"\xef\xbb\xbf" + b"".join(
            "\n".join(s).encode("utf-8") + b"\n" for _, _, s in messages
        )
    return body, len(messages)


_B07_STATUS = {"F": "Final", "P": "Prelim", "C": "Corrected", "I": "Pending"}


def _csv_row(order: _Order, result: _Result) -> list[str]:
    site_code = order.site
    test = result.test
    assert test is not None and result.range is not None
    specimen = _SPECIMENS[order.panel.specimen][site_code]
    if site_code == "SITE-A01":
        fmt = "%Y-%m-%d %H:%M"
        return [
            order.person.lab_mrn, order.accession, order.panel.code, order.panel.name, test.code,
            test.name, result.text, result.unit, result.range.text, result.flag, result.status,
            specimen, order.collected.strftime(fmt),
            order.resulted.strftime(fmt) if order.resulted else "",
        ]
    fmt = "%m/%d/%Y %H:%M"
    return [
        order.person.lab_mrn, order.accession, test.code, test.name, result.text, result.unit,
        result.range.low_text, result.range.high_text, result.flag, _B07_STATUS[result.status],
        specimen, order.collected.strftime(fmt),
        order.resulted.strftime(fmt) if order.resulted else "",
    ]


def _csv_files(site_code: str, orders: list[_Order]) -> dict[str, tuple[bytes, int]]:
    site = SITES_BY_CODE[site_code]
    ordered = sorted(orders, key=lambda o: (_utc(site, o.collected), o.accession))
    first, second = CSV_FILES[site_code]
    rows: dict[str, list[list[str]]] = {first: [], second: []}
    for order in ordered:
        name = first if order.collected.year < CSV_SPLIT_YEAR else second
        rows[name].extend(_csv_row(order, result) for result in order.results)
    files = {}
    for name, lines in rows.items():
        buffer = io.StringIO()
        if site_code == "SITE-A01":
            writer = csv.writer(buffer, lineterminator="\n")
        else:
            writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
        writer.writerow(CSV_HEADERS[site_code])
        writer.writerows(lines)
        encoding = "utf-8" if site_code == "SITE-A01" else "cp1252"
        files[name] = (buffer.getvalue().encode(encoding), len(lines))
    return files


def _orders_by_site(labs: Sequence[_PersonLab]) -> dict[str, list[_Order]]:
    by_site: dict[str, list[_Order]] = {site: [] for site in (*CSV_SITES, *HL7_SITES)}
    for lab in labs:
        by_site[lab.site].extend(lab.orders)
    return by_site


def write_lab(people: Iterable[Person], out: Path) -> dict[str, int]:
    """Write the lab silo: two sites' LIS CSV exports, three sites' HL7 v2 feeds, the MPI index.

    Writes ``out/lab/csv/SITE-A01/`` and ``out/lab/csv/SITE-B07/`` (two export files each,
    ``CSV_FILES``), ``out/lab/hl7/<SITE>-oru.hl7`` for ``SITE-A02``, ``SITE-C03`` and
    ``SITE-D02``, and ``out/lab/patient_index.csv`` (``site,lab_patient_id,mrn``, one row per
    person with labs, in roster order), replacing files of those names; each folder's files
    carry their final names only once all of them are complete. HL7 messages are in the order
    of their MSH-7, so a preliminary message comes before its final one; CSV rows are in the
    order of collection.

    Args:
        people: the roster, in index order.
        out: the cohort's output folder.

    Returns:
        Path relative to ``out`` to its number of records: data rows of a CSV file, messages
        of an HL7 file.

    Raises:
        OSError: if a folder cannot be created or written.
    """
    labs = _lab_people(people)
    by_site = _orders_by_site(labs)
    root = Path(out) / FOLDER
    counts: dict[str, int] = {}
    contents: dict[Path, dict[str, bytes]] = {}
    for site_code in CSV_SITES:
        folder = root / "csv" / site_code
        contents[folder] = {}
        for name, (data, rows) in _csv_files(site_code, by_site[site_code]).items():
            contents[folder][name] = data
            counts[f"{FOLDER}/csv/{site_code}/{name}"] = rows
    contents[root / "hl7"] = {}
    for site_code in HL7_SITES:
        data, messages = _hl7_file(site_code, by_site[site_code])
        contents[root / "hl7"][HL7_FILES[site_code]] = data
        counts[f"{FOLDER}/hl7/{HL7_FILES[site_code]}"] = messages
    index = io.StringIO()
    writer = csv.writer(index, lineterminator="\n")
    writer.writerow(PATIENT_INDEX_COLUMNS)
    writer.writerows([lab.site, lab.person.lab_mrn, lab.person.mrn] for lab in labs)
    contents[root] = {PATIENT_INDEX_NAME: index.getvalue().encode("utf-8")}
    counts[f"{FOLDER}/{PATIENT_INDEX_NAME}"] = len(labs)
    with ExitStack() as stack:
        for folder, files in contents.items():
            atomic = stack.enter_context(AtomicFolder(folder))
            for name, data in files.items():
                atomic.open(name).write(data)
    return counts


# --- ground truth -----------------------------------------------------------------------------


def _truth_unit(result: _Result) -> tuple[str | None, str | None]:
    """(canonical LOINC, canonical unit) of a result, or the written unit in UCUM spelling."""
    test = result.test
    if test is None:
        assert result.observation is not None
        return result.observation[0], None
    analyte = ANALYTES.get(test.analyte)
    if analyte is None:
        return None, result.unit.replace("µ", "u")
    return analyte.loinc, analyte.unit


def lab_truth(people: Iterable[Person]) -> pl.DataFrame:
    """What ``write_lab`` writes for a roster, one row per result a correct reader keeps.

    Rows come site by site (CSV sites first): CSV results in file order, HL7 results in roster
    order (the files order messages by MSH-7). A result sent preliminary then final appears
    once, as the final (``superseded_value_written`` holds the preliminary number); the
    malformed message is left out.

    ``value`` is the canonical-unit value of what was written: ``value_written`` converted back
    exactly with ``MOLAR_MASS_G_PER_MOL`` and ``HBA1C_NGSP_PER_IFCC`` (so it matches a
    conformed value to rounding error), and ``value_drawn`` is the draw before rounding to
    the site's precision. For a value below the reporting limit, ``value_written`` is the
    limit and ``comparator`` is ``'<'``. Deliberate rows are marked in ``deliberate``:
    ``unmapped_code`` rows have a null ``loinc`` and ``unit`` is the written unit in UCUM
    spelling (``value`` = ``value_written``); ``unknown_unit`` rows keep the analyte's
    ``loinc``, ``unit`` and ``value`` (what the site meant), although a conformer cannot
    convert them. Coded and text results have a null ``value`` and ``unit``; their ``loinc``
    is the LOINC sent. The pending row has status ``I`` and a null value, ``value_type``, ``unit``
    and ``resulted_at``.

    Args:
        people: the roster, in index order.

    Returns:
        A frame with the columns of ``TRUTH_SCHEMA``.
    """
    columns: dict[str, list[object]] = {name: [] for name in TRUTH_SCHEMA}
    for site_code, orders in _orders_by_site(_lab_people(people)).items():
        site = SITES_BY_CODE[site_code]
        csv_site = site_code in CSV_SITES
        if csv_site:
            orders = sorted(orders, key=lambda o: (_utc(site, o.collected), o.accession))
            files = [f"{FOLDER}/csv/{site_code}/{name}" for name in CSV_FILES[site_code]]
        else:
            files = [f"{FOLDER}/hl7/{HL7_FILES[site_code]}"] * 2
        for order in orders:
            if order.malformed:
                continue
            resulted = order.final_at or order.resulted
            shared = {
                "site": site_code,
                "source_kind": "csv" if csv_site else "hl7v2",
                "file": files[order.collected.year >= CSV_SPLIT_YEAR],
                "message_id": None if csv_site else order.control_id(2),
                "lab_patient_id": order.person.lab_mrn,
                "mrn": order.person.mrn,
                "person_index": order.person.index,
                "accession": order.accession,
                "panel_code": _truth_panel_code(order),
                "specimen_type": order.panel.specimen,
                "collected_at": _utc(site, order.collected),
                "resulted_at": _utc(site, resulted) if resulted is not None else None,
            }
            for result in order.results:
                row = {**shared, **_truth_result(order.site, result)}
                for name, values in columns.items():
                    values.append(row[name])
    return pl.DataFrame(columns, schema=TRUTH_SCHEMA)


def _truth_panel_code(order: _Order) -> str | None:
    if order.site == "SITE-B07":
        return None
    if order.site in ("SITE-A01", "SITE-D02"):
        return order.panel.code
    return order.panel.loinc


def _truth_result(site_code: str, result: _Result) -> dict[str, object]:
    """The columns of a truth row that describe the result itself."""
    test = result.test
    loinc, unit = _truth_unit(result)
    local_coded = site_code in CSV_SITES or site_code == "SITE-D02"
    if test is None:
        assert result.observation is not None
        test_code, test_system = result.observation[0], _TEST_LOINC_SYSTEM
    elif local_coded or test.analyte not in ANALYTES:
        test_code, test_system = test.code, _LOCAL_SYSTEM
    else:
        test_code, test_system = ANALYTES[test.analyte].loinc, _TEST_LOINC_SYSTEM
    value = None
    if result.number is not None and test is not None:
        known = test.analyte in ANALYTES
        value = test.to_canonical(result.number) if known else result.number
    code = result.code or (None, None, None)
    flag = result.flag
    if site_code not in CSV_SITES and result.value_type == "NM":
        flag = flag or "N"
    return {
        "test_code": test_code,
        "test_system": test_system,
        "loinc": loinc,
        "value": value,
        "unit": unit if result.value_type == "NM" else None,
        "value_written": result.number,
        "unit_written": result.unit or None,
        "comparator": result.comparator,
        "value_text": result.text or None,
        "value_type": result.value_type or None,
        "value_code": code[0],
        "value_system": code[1],
        "value_display": code[2],
        "value_drawn": result.drawn,
        "reference_low": result.range.low if result.range is not None else None,
        "reference_high": result.range.high if result.range is not None else None,
        "abnormal_flag": flag or None,
        "result_status": result.status,
        "deliberate": result.deliberate,
        "superseded_value_written": result.preliminary_number,
    }
