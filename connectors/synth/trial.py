"""The trials silo: one randomised study, BIOFED-01, as CDISC SDTM datasets in SAS XPORT v5.

Everyone with a ``Person.trial_usubjid`` is enrolled: informed consent between
``ENROLMENT_START`` and ``ENROLMENT_END`` (earlier for the few who died before the study
opened, so that their participation ends with their death), 7-28 days of screening, then
randomisation 1:1 to placebo or biofedinib 10 mg once daily for 24 weeks and a follow-up visit
four weeks later. Some subjects stop early (withdrawal by subject, an adverse event, lost to
follow-up), and a subject whose death falls in the study dies on study, with a fatal adverse
event. Everything happens after the person's birth and no later than their death or
``AS_OF``, the data cut-off; a subject still on study then has no end-of-study disposition.

The study writes ``trials/BIOFED-01/{dm,ae,lb,vs,ex,ds,cm,mh}.xpt`` with SDTMIG variable
names, labels and types (character, or numeric as 8-byte floats), ISO 8601 dates and study
days counted from the first dose with no day 0, and ``enrolment.csv``, which ties each USUBJID
to the person's EHR MRN and home site. Medical history and prior medications follow the
chronic conditions the EHR silo gives the person. Every random draw for a subject comes from
``person.rng("trial")``. SAS XPORT headers carry creation times: they are set to
``XPT_TIMESTAMP`` so the same roster gives byte-identical files.
"""

import csv
import io
import math
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import polars as pl
import pyreadstat

from connectors.synth import codes as c
from connectors.synth import ehr
from connectors.synth.cohort import AS_OF, Person
from connectors.synth.files import AtomicFolder
from connectors.synth.lab import LIMITS, MOLAR_MASS_G_PER_MOL, latent_levels

STUDY_ID = "BIOFED-01"
FOLDER = "trials"
ENROLMENT_NAME = "enrolment.csv"
ENROLMENT_COLUMNS: tuple[str, ...] = ("studyid", "usubjid", "site", "mrn")
"""The columns of ``enrolment.csv``, in order."""

ENROLMENT_START = date(2023, 1, 2)
ENROLMENT_END = date(2024, 9, 30)
"""Informed consent dates of the study (the last ~2.5 years before ``AS_OF``)."""

XPT_TIMESTAMP = b"30JUN25:00:00:00"
"""Created/modified time written in every XPORT header: the data cut-off, ``AS_OF``."""

ARMS: tuple[tuple[str, str], ...] = (("PBO", "Placebo"), ("BFD10", "Biofedinib 10 mg"))
"""(ARMCD, ARM) of the two arms, randomised 1:1."""

DOMAINS: tuple[str, ...] = ("dm", "ae", "lb", "vs", "ex", "ds", "cm", "mh")
"""The datasets written, one ``<domain>.xpt`` each."""

DATASET_LABELS: dict[str, str] = {
    "dm": "Demographics",
    "ae": "Adverse Events",
    "lb": "Laboratory Test Results",
    "vs": "Vital Signs",
    "ex": "Exposure",
    "ds": "Disposition",
    "cm": "Concomitant/Prior Medications",
    "mh": "Medical History",
}

_COMMON = (
    ("STUDYID", "Study Identifier", "Char"),
    ("DOMAIN", "Domain Abbreviation", "Char"),
    ("USUBJID", "Unique Subject Identifier", "Char"),
)

VARIABLES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "dm": (
        *_COMMON,
        ("SUBJID", "Subject Identifier for the Study", "Char"),
        ("RFSTDTC", "Subject Reference Start Date/Time", "Char"),
        ("RFENDTC", "Subject Reference End Date/Time", "Char"),
        ("RFXSTDTC", "Date/Time of First Study Treatment", "Char"),
        ("RFXENDTC", "Date/Time of Last Study Treatment", "Char"),
        ("RFICDTC", "Date/Time of Informed Consent", "Char"),
        ("RFPENDTC", "Date/Time of End of Participation", "Char"),
        ("DTHDTC", "Date/Time of Death", "Char"),
        ("DTHFL", "Subject Death Flag", "Char"),
        ("SITEID", "Study Site Identifier", "Char"),
        ("BRTHDTC", "Date/Time of Birth", "Char"),
        ("AGE", "Age", "Num"),
        ("AGEU", "Age Units", "Char"),
        ("SEX", "Sex", "Char"),
        ("RACE", "Race", "Char"),
        ("ETHNIC", "Ethnicity", "Char"),
        ("ARMCD", "Planned Arm Code", "Char"),
        ("ARM", "Description of Planned Arm", "Char"),
        ("ACTARMCD", "Actual Arm Code", "Char"),
        ("ACTARM", "Description of Actual Arm", "Char"),
        ("COUNTRY", "Country", "Char"),
        ("DMDTC", "Date/Time of Collection", "Char"),
        ("DMDY", "Study Day of Collection", "Num"),
    ),
    "ae": (
        *_COMMON,
        ("AESEQ", "Sequence Number", "Num"),
        ("AETERM", "Reported Term for the Adverse Event", "Char"),
        ("AEDECOD", "Dictionary-Derived Term", "Char"),
        ("AEBODSYS", "Body System or Organ Class", "Char"),
        ("AESEV", "Severity/Intensity", "Char"),
        ("AESER", "Serious Event", "Char"),
        ("AEACN", "Action Taken with Study Treatment", "Char"),
        ("AEREL", "Causality", "Char"),
        ("AEOUT", "Outcome of Adverse Event", "Char"),
        ("AESDTH", "Results in Death", "Char"),
        ("EPOCH", "Epoch", "Char"),
        ("AESTDTC", "Start Date/Time of Adverse Event", "Char"),
        ("AEENDTC", "End Date/Time of Adverse Event", "Char"),
        ("AESTDY", "Study Day of Start of Adverse Event", "Num"),
        ("AEENDY", "Study Day of End of Adverse Event", "Num"),
    ),
    "lb": (
        *_COMMON,
        ("LBSEQ", "Sequence Number", "Num"),
        ("LBTESTCD", "Lab Test or Examination Short Name", "Char"),
        ("LBTEST", "Lab Test or Examination Name", "Char"),
        ("LBCAT", "Category for Lab Test", "Char"),
        ("LBLOINC", "LOINC Code", "Char"),
        ("LBORRES", "Result or Finding in Original Units", "Char"),
        ("LBORRESU", "Original Units", "Char"),
        ("LBORNRLO", "Reference Range Lower Limit in Orig Unit", "Char"),
        ("LBORNRHI", "Reference Range Upper Limit in Orig Unit", "Char"),
        ("LBSTRESC", "Character Result/Finding in Std Format", "Char"),
        ("LBSTRESN", "Numeric Result/Finding in Standard Units", "Num"),
        ("LBSTRESU", "Standard Units", "Char"),
        ("LBSTNRLO", "Reference Range Lower Limit-Std Units", "Num"),
        ("LBSTNRHI", "Reference Range Upper Limit-Std Units", "Num"),
        ("LBNRIND", "Reference Range Indicator", "Char"),
        ("LBSPEC", "Specimen Type", "Char"),
        ("LBBLFL", "Baseline Flag", "Char"),
        ("VISITNUM", "Visit Number", "Num"),
        ("VISIT", "Visit Name", "Char"),
        ("EPOCH", "Epoch", "Char"),
        ("LBDTC", "Date/Time of Specimen Collection", "Char"),
        ("LBDY", "Study Day of Specimen Collection", "Num"),
    ),
    "vs": (
        *_COMMON,
        ("VSSEQ", "Sequence Number", "Num"),
        ("VSTESTCD", "Vital Signs Test Short Name", "Char"),
        ("VSTEST", "Vital Signs Test Name", "Char"),
        ("VSPOS", "Vital Signs Position of Subject", "Char"),
        ("VSORRES", "Result or Finding in Original Units", "Char"),
        ("VSORRESU", "Original Units", "Char"),
        ("VSSTRESC", "Character Result/Finding in Std Format", "Char"),
        ("VSSTRESN", "Numeric Result/Finding in Standard Units", "Num"),
        ("VSSTRESU", "Standard Units", "Char"),
        ("VSBLFL", "Baseline Flag", "Char"),
        ("VISITNUM", "Visit Number", "Num"),
        ("VISIT", "Visit Name", "Char"),
        ("EPOCH", "Epoch", "Char"),
        ("VSDTC", "Date/Time of Measurements", "Char"),
        ("VSDY", "Study Day of Vital Signs", "Num"),
    ),
    "ex": (
        *_COMMON,
        ("EXSEQ", "Sequence Number", "Num"),
        ("EXTRT", "Name of Treatment", "Char"),
        ("EXDOSE", "Dose", "Num"),
        ("EXDOSU", "Dose Units", "Char"),
        ("EXDOSFRM", "Dose Form", "Char"),
        ("EXDOSFRQ", "Dosing Frequency per Interval", "Char"),
        ("EXROUTE", "Route of Administration", "Char"),
        ("EPOCH", "Epoch", "Char"),
        ("EXSTDTC", "Start Date/Time of Treatment", "Char"),
        ("EXENDTC", "End Date/Time of Treatment", "Char"),
        ("EXSTDY", "Study Day of Start of Treatment", "Num"),
        ("EXENDY", "Study Day of End of Treatment", "Num"),
    ),
    "ds": (
        *_COMMON,
        ("DSSEQ", "Sequence Number", "Num"),
        ("DSTERM", "Reported Term for the Disposition Event", "Char"),
        ("DSDECOD", "Standardized Disposition Term", "Char"),
        ("DSCAT", "Category for Disposition Event", "Char"),
        ("EPOCH", "Epoch", "Char"),
        ("DSSTDTC", "Start Date/Time of Disposition Event", "Char"),
        ("DSSTDY", "Study Day of Start of Disposition Event", "Num"),
    ),
    "cm": (
        *_COMMON,
        ("CMSEQ", "Sequence Number", "Num"),
        ("CMTRT", "Reported Name of Drug, Med, or Therapy", "Char"),
        ("CMDECOD", "Standardized Medication Name", "Char"),
        ("CMINDC", "Indication", "Char"),
        ("CMDOSE", "Dose per Administration", "Num"),
        ("CMDOSU", "Dose Units", "Char"),
        ("CMDOSFRQ", "Dosing Frequency per Interval", "Char"),
        ("CMROUTE", "Route of Administration", "Char"),
        ("CMSTDTC", "Start Date/Time of Medication", "Char"),
        ("CMENDTC", "End Date/Time of Medication", "Char"),
        ("CMSTDY", "Study Day of Start of Medication", "Num"),
        ("CMENDY", "Study Day of End of Medication", "Num"),
        ("CMENRTPT", "End Relative to Reference Time Point", "Char"),
        ("CMENTPT", "End Reference Time Point", "Char"),
    ),
    "mh": (
        *_COMMON,
        ("MHSEQ", "Sequence Number", "Num"),
        ("MHTERM", "Reported Term for the Medical History", "Char"),
        ("MHDECOD", "Dictionary-Derived Term", "Char"),
        ("MHBODSYS", "Body System or Organ Class", "Char"),
        ("MHCAT", "Category for Medical History", "Char"),
        ("MHSTDTC", "Start Date/Time of Medical History Event", "Char"),
        ("MHENRTPT", "End Relative to Reference Time Point", "Char"),
        ("MHENTPT", "End Reference Time Point", "Char"),
    ),
}
"""Per domain: (variable, label, SAS type ``Char`` or ``Num``) in dataset order."""

TRUTH_SCHEMA: dict[str, pl.DataType] = {
    "usubjid": pl.String(),
    "person_index": pl.Int64(),
    "mrn": pl.String(),
    "site": pl.String(),
    "arm": pl.String(),
    "armcd": pl.String(),
    "n_ae": pl.Int64(),
    "n_lb": pl.Int64(),
    "n_vs": pl.Int64(),
    "n_ex": pl.Int64(),
    "n_ds": pl.Int64(),
    "n_cm": pl.Int64(),
    "n_mh": pl.Int64(),
    "consent_date": pl.Date(),
    "first_dose_date": pl.Date(),
    "last_dose_date": pl.Date(),
    "end_date": pl.Date(),
    "disposition": pl.String(),
    "died": pl.Boolean(),
}
"""Columns of ``trial_truth``, in order."""

# --- terminology -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Term:
    decod: str
    bodsys: str
    verbatims: tuple[str, ...]


_NERV = "Nervous system disorders"
_GI = "Gastrointestinal disorders"
_GEN = "General disorders and administration site conditions"
_INF = "Infections and infestations"
_SKIN = "Skin and subcutaneous tissue disorders"
_MUSC = "Musculoskeletal and connective tissue disorders"
_RESP = "Respiratory, thoracic and mediastinal disorders"
_CARD = "Cardiac disorders"
_METAB = "Metabolism and nutrition disorders"
_PSY = "Psychiatric disorders"

# (MedDRA preferred term, its primary SOC, verbatim terms), placebo weight, active weight.
_AE_TERMS: tuple[tuple[_Term, float, float], ...] = (
    (_Term("Headache", _NERV, ("HEADACHE", "Headache", "mild headache")), 10, 11),
    (_Term("Dizziness", _NERV, ("DIZZINESS", "dizzy spells")), 4, 5),
    (_Term("Nausea", _GI, ("NAUSEA", "nausea")), 6, 11),
    (_Term("Diarrhoea", _GI, ("DIARRHEA", "loose stools")), 5, 9),
    (_Term("Vomiting", _GI, ("VOMITING",)), 2, 3),
    (_Term("Abdominal pain upper", _GI, ("UPPER ABDOMINAL PAIN", "epigastric pain")), 3, 4),
    (_Term("Fatigue", _GEN, ("FATIGUE", "tiredness")), 6, 7),
    (_Term("Nasopharyngitis", _INF, ("COMMON COLD", "NASOPHARYNGITIS")), 9, 9),
    (
        _Term(
            "Upper respiratory tract infection", _INF, ("URTI", "UPPER RESPIRATORY INFECTION")
        ),
        6, 6,
    ),
    (_Term("Urinary tract infection", _INF, ("UTI", "URINARY TRACT INFECTION")), 3, 3),
    (_Term("Rash", _SKIN, ("RASH", "skin rash on arms")), 2, 4),
    (_Term("Pruritus", _SKIN, ("ITCHING",)), 2, 2),
    (_Term("Arthralgia", _MUSC, ("JOINT PAIN", "ARTHRALGIA")), 4, 4),
    (_Term("Back pain", _MUSC, ("BACK PAIN", "lower back pain")), 5, 5),
    (
        _Term("Alanine aminotransferase increased", "Investigations", ("ALT INCREASED",
              "elevated ALT")),
        1, 4,
    ),
    (_Term("Hypertension", "Vascular disorders", ("HYPERTENSION", "high blood pressure")), 3, 3),
    (_Term("Insomnia", _PSY, ("INSOMNIA", "difficulty sleeping")), 3, 3),
    (_Term("Cough", _RESP, ("COUGH",)), 4, 4),
    (_Term("Hypoglycaemia", _METAB, ("HYPOGLYCEMIA", "low blood sugar")), 1, 5),
    (_Term("Pneumonia", _INF, ("PNEUMONIA",)), 1, 1),
    (_Term("Atrial fibrillation", _CARD, ("ATRIAL FIBRILLATION",)), 1, 1),
)
_SERIOUS_TERMS = frozenset({"Pneumonia", "Atrial fibrillation"})
_FATAL_TERMS: tuple[_Term, ...] = (
    _Term("Myocardial infarction", _CARD, ("MYOCARDIAL INFARCTION", "heart attack")),
    _Term("Cardiac arrest", _CARD, ("CARDIAC ARREST",)),
    _Term("Pneumonia", _INF, ("PNEUMONIA",)),
)
_DISCONTINUATION_TERMS = ("Alanine aminotransferase increased", "Nausea", "Rash", "Diarrhoea")

# EHR chronic condition -> (MHTERM, MedDRA PT, SOC), and the medication taken for it:
# (CMTRT, CMDECOD, dose, unit, frequency, route) or None.
_HISTORY: dict[c.Code, tuple[tuple[str, str, str], tuple | None]] = {
    c.DIABETES_T2: (
        ("TYPE 2 DIABETES", "Type 2 diabetes mellitus", _METAB),
        ("METFORMIN ER", "METFORMIN", 500.0, "mg", "BID", "ORAL"),
    ),
    c.PREDIABETES: (("PREDIABETES", "Glucose tolerance impaired", _METAB), None),
    c.HYPERTENSION: (
        ("HYPERTENSION", "Hypertension", "Vascular disorders"),
        ("LISINOPRIL", "LISINOPRIL", 10.0, "mg", "QD", "ORAL"),
    ),
    c.HYPERLIPIDEMIA: (
        ("HYPERLIPIDEMIA", "Hyperlipidaemia", _METAB),
        ("LIPITOR", "ATORVASTATIN", 10.0, "mg", "QD", "ORAL"),
    ),
    c.ASTHMA: (
        ("ASTHMA", "Asthma", _RESP),
        ("ALBUTEROL INHALER", "SALBUTAMOL", 0.18, "mg", "PRN", "RESPIRATORY (INHALATION)"),
    ),
    c.COPD: (
        ("COPD", "Chronic obstructive pulmonary disease", _RESP),
        ("ALBUTEROL INHALER", "SALBUTAMOL", 0.18, "mg", "PRN", "RESPIRATORY (INHALATION)"),
    ),
    c.DEPRESSION: (
        ("DEPRESSION", "Depression", _PSY),
        ("ZOLOFT", "SERTRALINE", 100.0, "mg", "QD", "ORAL"),
    ),
    c.ANXIETY: (("ANXIETY", "Anxiety", _PSY), None),
    c.ATRIAL_FIBRILLATION: (
        ("ATRIAL FIBRILLATION", "Atrial fibrillation", _CARD),
        ("COUMADIN", "WARFARIN", 5.0, "mg", "QD", "ORAL"),
    ),
    c.ISCHEMIC_HEART_DISEASE: (
        ("CORONARY ARTERY DISEASE", "Coronary artery disease", _CARD),
        ("BABY ASPIRIN", "ACETYLSALICYLIC ACID", 81.0, "mg", "QD", "ORAL"),
    ),
    c.OSTEOARTHRITIS_KNEE: (
        ("OSTEOARTHRITIS OF KNEE", "Osteoarthritis", _MUSC),
        ("ALEVE", "NAPROXEN", 220.0, "mg", "PRN", "ORAL"),
    ),
    c.ANEMIA: (("ANEMIA", "Anaemia", "Blood and lymphatic system disorders"), None),
    c.OBESITY: (("OBESITY", "Obesity", _METAB), None),
}

# Symptomatic treatment some adverse events get: AEDECOD -> CM fields.
_AE_TREATMENT: dict[str, tuple[str, str, float, str, str, str]] = {
    "Headache": ("TYLENOL", "PARACETAMOL", 500.0, "mg", "PRN", "ORAL"),
    "Back pain": ("ADVIL", "IBUPROFEN", 200.0, "mg", "PRN", "ORAL"),
    "Arthralgia": ("ADVIL", "IBUPROFEN", 200.0, "mg", "PRN", "ORAL"),
    "Nausea": ("ZOFRAN", "ONDANSETRON", 4.0, "mg", "PRN", "ORAL"),
    "Urinary tract infection": ("NITROFURANTOIN", "NITROFURANTOIN", 100.0, "mg", "BID", "ORAL"),
    "Cough": ("ROBITUSSIN", "GUAIFENESIN", 200.0, "mg", "PRN", "ORAL"),
}

_SEX = {"male": "M", "female": "F", "other": "U", "unknown": "U"}
_RACE = {
    "2106-3": "WHITE",
    "2054-5": "BLACK OR AFRICAN AMERICAN",
    "2028-9": "ASIAN",
    "1002-5": "AMERICAN INDIAN OR ALASKA NATIVE",
    "2076-8": "NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER",
}
_ETHNIC = {"2135-2": "HISPANIC OR LATINO", "2186-5": "NOT HISPANIC OR LATINO"}

_SCREENING, _TREATMENT, _FOLLOW_UP = "SCREENING", "TREATMENT", "FOLLOW-UP"

# (VISITNUM, VISIT, planned study day); screening is on the day of consent.
_VISITS: tuple[tuple[float, str, int], ...] = (
    (1.0, "SCREENING", 0),
    (2.0, "BASELINE", 1),
    (3.0, "WEEK 4", 29),
    (4.0, "WEEK 12", 85),
    (5.0, "WEEK 24", 169),
    (6.0, "FOLLOW-UP", 197),
)
_LAST_DOSE_VISIT = "WEEK 24"


@dataclass(frozen=True)
class _LabTest:
    testcd: str
    test: str
    category: str
    analyte: str
    loinc: str
    unit: str
    decimals: int
    std_unit: str
    std_factor: float
    std_decimals: int
    specimen: str
    visits: frozenset[str]


_ALL = frozenset({"SCREENING", "BASELINE", "WEEK 4", "WEEK 12", "WEEK 24", "FOLLOW-UP"})
_QUARTERLY = frozenset({"SCREENING", "BASELINE", "WEEK 12", "WEEK 24"})
_LIPID_VISITS = frozenset({"BASELINE", "WEEK 12", "WEEK 24"})
_HAEM_VISITS = frozenset({"SCREENING", "BASELINE", "WEEK 12", "WEEK 24", "FOLLOW-UP"})

_LAB_TESTS: tuple[_LabTest, ...] = (
    _LabTest("GLUC", "Glucose", "CHEMISTRY", "glucose", "2345-7", "mg/dL", 0, "mmol/L",
             10 / MOLAR_MASS_G_PER_MOL["glucose"], 1, "SERUM", _ALL),
    _LabTest("CREAT", "Creatinine", "CHEMISTRY", "creatinine", "2160-0", "mg/dL", 2, "umol/L",
             10_000 / MOLAR_MASS_G_PER_MOL["creatinine"], 0, "SERUM", _ALL),
    _LabTest("SODIUM", "Sodium", "CHEMISTRY", "sodium", "2951-2", "mmol/L", 0, "mmol/L", 1.0,
             0, "SERUM", _ALL),
    _LabTest("K", "Potassium", "CHEMISTRY", "potassium", "2823-3", "mmol/L", 1, "mmol/L", 1.0,
             1, "SERUM", _ALL),
    _LabTest("ALT", "Alanine Aminotransferase", "CHEMISTRY", "alt", "1742-6", "U/L", 0, "U/L",
             1.0, 0, "SERUM", _ALL),
    _LabTest("CHOL", "Cholesterol", "CHEMISTRY", "cholesterol", "2093-3", "mg/dL", 0, "mmol/L",
             10 / MOLAR_MASS_G_PER_MOL["cholesterol"], 2, "SERUM", _LIPID_VISITS),
    _LabTest("HDL", "HDL Cholesterol", "CHEMISTRY", "hdl", "2085-9", "mg/dL", 0, "mmol/L",
             10 / MOLAR_MASS_G_PER_MOL["hdl"], 2, "SERUM", _LIPID_VISITS),
    _LabTest("TRIG", "Triglycerides", "CHEMISTRY", "triglycerides", "2571-8", "mg/dL", 0,
             "mmol/L", 10 / MOLAR_MASS_G_PER_MOL["triglycerides"], 2, "SERUM", _LIPID_VISITS),
    _LabTest("HBA1C", "Hemoglobin A1C", "CHEMISTRY", "hba1c", "4548-4", "%", 1, "%", 1.0, 1,
             "BLOOD", _QUARTERLY),
    _LabTest("HGB", "Hemoglobin", "HEMATOLOGY", "haemoglobin", "718-7", "g/dL", 1, "g/L", 10.0,
             0, "BLOOD", _HAEM_VISITS),
    _LabTest("WBC", "Leukocytes", "HEMATOLOGY", "wbc", "6690-2", "10^3/uL", 1, "10^9/L", 1.0, 1,
             "BLOOD", _HAEM_VISITS),
    _LabTest("PLAT", "Platelets", "HEMATOLOGY", "platelets", "777-3", "10^3/uL", 0, "10^9/L",
             1.0, 0, "BLOOD", _HAEM_VISITS),
)
"""The central lab's tests: CDISC LBTESTCD/LBTEST, original and standard units."""


def _lab_range(analyte: str, gender: str, adult: bool) -> tuple[float | None, float | None]:
    male, female = gender == "male", gender == "female"
    if analyte == "creatinine":
        if not adult:
            return 0.30, 0.70
        return (0.74, 1.35) if male else (0.59, 1.04) if female else (0.59, 1.35)
    if analyte == "haemoglobin":
        if not adult:
            return 11.0, 14.5
        return (13.2, 16.6) if male else (11.6, 15.0) if female else (11.6, 16.6)
    return {
        "glucose": (70.0, 99.0), "sodium": (136.0, 145.0), "potassium": (3.5, 5.1),
        "alt": (7.0, 56.0), "cholesterol": (None, 199.0), "hdl": (40.0, None),
        "triglycerides": (None, 149.0), "hba1c": (4.0, 5.6), "wbc": (4.5, 11.0),
        "platelets": (150.0, 400.0),
    }[analyte]


# --- one subject --------------------------------------------------------------------------


def _iso(day: date) -> str:
    return day.isoformat()


def _number(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def _study_day(day: date, first_dose: date) -> int:
    """SDTM study day: day 1 is the first dose, the day before it is day -1 (no day 0)."""
    delta = (day - first_dose).days
    return delta + 1 if delta >= 0 else delta


Record = dict[str, object]


class _Course:
    """Draws a subject's dates, then renders every domain's records."""

    def __init__(self, person: Person) -> None:
        self.person = person
        self.rng = rng = person.rng("trial")
        self.usubjid = person.trial_usubjid or ""
        self.armcd, self.arm = ARMS[0] if rng.random() < 0.5 else ARMS[1]
        self.active = self.armcd != ARMS[0][0]
        self.limit = person.end_date
        self.records: dict[str, list[Record]] = {d: [] for d in DOMAINS}
        self.plan()

    # -- dates ---------------------------------------------------------------------------

    def plan(self) -> None:
        rng, person = self.rng, self.person
        limit = self.limit
        earliest = max(ENROLMENT_START, person.birth_date + timedelta(days=1))
        latest = min(ENROLMENT_END, limit - timedelta(days=60))
        if latest < earliest:
            # Died before the study could run its course, or born too late: enrolled in the
            # year before the end of the record instead.
            earliest = max(person.birth_date + timedelta(days=1), limit - timedelta(days=400))
            latest = max(earliest, limit - timedelta(days=60))
        earliest = min(earliest, limit)
        latest = min(latest, limit)
        self.consent = earliest + timedelta(days=rng.randint(0, (latest - earliest).days))
        self.first_dose = min(self.consent + timedelta(days=rng.randint(7, 28)), limit)
        self.visit_days: list[tuple[float, str, date]] = []
        for number, name, planned in _VISITS:
            if name == "SCREENING":
                day = self.consent
            elif name == "BASELINE":
                day = self.first_dose
            else:
                day = self.first_dose + timedelta(days=planned - 1 + rng.randint(-3, 3))
            self.visit_days.append((number, name, day))
        week24 = self.visit_days[4][2]
        follow_up = self.visit_days[5][2]

        draw = rng.random()
        reason: str | None = None
        stop: date | None = None
        if draw < 0.09:
            reason = "WITHDRAWAL BY SUBJECT"
        elif draw < 0.13:
            reason = "ADVERSE EVENT"
        elif draw < 0.16:
            reason = "LOST TO FOLLOW-UP"
        if reason is not None:
            stop = self.first_dose + timedelta(days=rng.randint(7, 160))
        # An adverse event that stops treatment is followed up 28 days later.
        planned_end = follow_up
        if stop is not None:
            planned_end = stop + timedelta(days=28) if reason == "ADVERSE EVENT" else stop
        death = self.person.deceased_date
        self.died = death is not None and death <= planned_end
        end: date | None
        if death is not None and self.died:
            reason = "DEATH"
            stop = min(stop, death) if stop is not None else death
            last_dose = min(week24, stop - timedelta(days=1))
            end = disposed = death
        elif stop is not None:
            last_dose = min(stop, week24)
            end, disposed = planned_end, stop
        else:
            reason = "COMPLETED"
            last_dose = week24
            end = disposed = follow_up
        last_dose = max(last_dose, self.first_dose)
        if disposed > AS_OF:
            # Still on study at the data cut-off: no end-of-study disposition yet.
            reason = None
        if end > AS_OF:
            end = None
        self.last_dose = last_dose if last_dose <= AS_OF else None
        self.disposed = disposed
        self.stop, self.reason, self.end = stop, reason, end
        horizon = end or AS_OF
        kept = []
        for number, name, day in self.visit_days:
            if day > horizon or (self.died and day >= horizon and name != "SCREENING"):
                continue
            if stop is not None and name != "SCREENING" and day > stop and not (
                name == "FOLLOW-UP" and reason == "ADVERSE EVENT"
            ):
                continue
            kept.append((number, name, day))
        if reason == "ADVERSE EVENT" and stop is not None:
            kept = [v for v in kept if v[1] != "FOLLOW-UP"]
            follow = stop + timedelta(days=28)
            if follow <= horizon:
                kept.append((6.0, "FOLLOW-UP", follow))
        self.visit_days = kept

    def epoch(self, day: date) -> str:
        if day < self.first_dose:
            return _SCREENING
        if self.last_dose is None or day <= self.last_dose:
            return _TREATMENT
        return _FOLLOW_UP

    def day(self, day: date) -> float:
        return float(_study_day(day, self.first_dose))

    def base(self, domain: str) -> Record:
        return {"STUDYID": STUDY_ID, "DOMAIN": domain.upper(), "USUBJID": self.usubjid}

    # -- domains -------------------------------------------------------------------------

    def build(self) -> dict[str, list[Record]]:
        self.chronic = ehr.chronic_conditions(self.person)
        self.adverse_events()
        self.labs()
        self.vitals()
        self.exposure()
        self.disposition()
        self.medications()
        self.history()
        self.demographics()
        for domain, records in self.records.items():
            key = {
                "ae": "AESTDTC", "lb": "LBDTC", "vs": "VSDTC", "ex": "EXSTDTC", "ds": "DSSTDTC",
                "cm": "CMSTDTC", "mh": "MHSTDTC",
            }.get(domain)
            if key is not None:
                records.sort(key=lambda r, k=key: str(r[k]))
            for seq, record in enumerate(records, start=1):
                if domain != "dm":
                    record[f"{domain.upper()}SEQ"] = float(seq)
        return self.records

    def demographics(self) -> None:
        person = self.person
        record = self.base("dm")
        short = self.usubjid.removeprefix(f"{STUDY_ID}-")
        dosed = self.first_dose <= AS_OF
        record.update(
            SUBJID=short,
            RFSTDTC=_iso(self.first_dose) if dosed else "",
            RFENDTC=_iso(self.last_dose) if self.last_dose else "",
            RFXSTDTC=_iso(self.first_dose) if dosed else "",
            RFXENDTC=_iso(self.last_dose) if self.last_dose else "",
            RFICDTC=_iso(self.consent),
            RFPENDTC=_iso(self.end) if self.end else "",
            DTHDTC=_iso(self.end) if self.died and self.end else "",
            DTHFL="Y" if self.died else "",
            SITEID=short.split("-")[0],
            BRTHDTC=_iso(person.birth_date),
            AGE=float(person.age_on(self.consent)),
            AGEU="YEARS",
            SEX=_SEX[person.gender],
            RACE=_RACE.get(person.race or "", "NOT REPORTED"),
            ETHNIC=_ETHNIC[person.ethnicity],
            ARMCD=self.armcd,
            ARM=self.arm,
            ACTARMCD=self.armcd,
            ACTARM=self.arm,
            COUNTRY="USA",
            DMDTC=_iso(self.consent),
            DMDY=self.day(self.consent),
        )
        self.records["dm"].append(record)

    def on_study(self) -> tuple[date, date]:
        return self.consent, min(self.end or AS_OF, AS_OF)

    def adverse_event(
        self,
        term: _Term,
        start: date,
        end: date | None,
        *,
        severity: str,
        serious: bool,
        action: str | None = None,
        relation: str | None = None,
        outcome: str | None = None,
        fatal: bool = False,
    ) -> None:
        rng = self.rng
        dosed = self.first_dose <= start and (self.last_dose is None or start <= self.last_dose)
        if relation is None:
            if not dosed:
                relation = "NOT RELATED"
            else:
                weights = (0.45, 0.25, 0.2, 0.1) if self.active else (0.6, 0.25, 0.12, 0.03)
                relation = rng.choices(
                    ("NOT RELATED", "UNLIKELY RELATED", "POSSIBLY RELATED", "RELATED"), weights
                )[0]
        if action is None:
            if not dosed:
                action = "NOT APPLICABLE"
            else:
                action = "DRUG INTERRUPTED" if rng.random() < 0.05 else "DOSE NOT CHANGED"
        if outcome is None:
            outcome = "RECOVERED/RESOLVED" if end is not None else "NOT RECOVERED/NOT RESOLVED"
        record = self.base("ae")
        record.update(
            AETERM=rng.choice(term.verbatims),
            AEDECOD=term.decod,
            AEBODSYS=term.bodsys,
            AESEV=severity,
            AESER="Y" if serious else "N",
            AEACN=action,
            AEREL=relation,
            AEOUT=outcome,
            AESDTH="Y" if fatal else "N",
            EPOCH=self.epoch(start),
            AESTDTC=_iso(start),
            AEENDTC=_iso(end) if end else "",
            AESTDY=self.day(start),
            AEENDY=self.day(end) if end else None,
        )
        self.records["ae"].append(record)
        treatment = _AE_TREATMENT.get(term.decod)
        if treatment is not None and rng.random() < 0.6:
            self.medication(treatment, term.decod, _iso(start), end, prior=False)

    def adverse_events(self) -> None:
        rng = self.rng
        first, last = self.on_study()
        span = (last - first).days
        terms, placebo, active = zip(*_AE_TERMS, strict=True)
        weights = active if self.active else placebo
        expected = (2.2 if self.active else 1.5) * min(span / 225, 1.0)
        # Poisson by inversion: few events, so the loop is short.
        count, threshold, product = 0, math.exp(-expected), rng.random()
        while product > threshold:
            count += 1
            product *= rng.random()
        for _ in range(count):
            term = rng.choices(terms, weights)[0]
            start = first + timedelta(days=rng.randint(0, span))
            end: date | None = start + timedelta(days=rng.randint(1, 30))
            if end is not None and (end > last or (self.died and end >= last)):
                end = None
            serious = term.decod in _SERIOUS_TERMS
            severity = "SEVERE" if serious else rng.choices(
                ("MILD", "MODERATE", "SEVERE"), (0.6, 0.32, 0.08)
            )[0]
            self.adverse_event(term, start, end, severity=severity, serious=serious)
        if self.reason == "ADVERSE EVENT" and self.stop is not None:
            decod = rng.choice(_DISCONTINUATION_TERMS)
            term = next(t for t, _, _ in _AE_TERMS if t.decod == decod)
            start = max(self.stop - timedelta(days=rng.randint(0, 5)), self.first_dose)
            end = self.stop + timedelta(days=rng.randint(5, 25))
            self.adverse_event(
                term, start, end if end <= last else None, severity="MODERATE", serious=False,
                action="DRUG WITHDRAWN",
            )
        if self.died and self.end is not None:
            term = rng.choice(_FATAL_TERMS)
            start = max(self.end - timedelta(days=rng.randint(0, 10)), self.consent)
            action = "DRUG WITHDRAWN" if self.epoch(start) == _TREATMENT else "NOT APPLICABLE"
            self.adverse_event(
                term, start, self.end, severity="SEVERE", serious=True, action=action,
                relation="NOT RELATED", outcome="FATAL", fatal=True,
            )

    def labs(self) -> None:
        rng, person = self.rng, self.person
        adult = person.age_on(self.consent) >= 18
        levels = latent_levels(rng, person, person.age_on(self.consent), self.chronic)
        for number, name, day in self.visit_days:
            moment = datetime.combine(day, time(rng.randint(7, 10), rng.randrange(60)))
            for test in _LAB_TESTS:
                if name not in test.visits:
                    continue
                low_limit, high_limit = LIMITS[test.analyte]
                value = levels.draw(rng, test.analyte)
                if self.active and day >= self.first_dose and name != "BASELINE":
                    effect = min((day - self.first_dose).days / 84, 1.0)
                    if test.analyte == "hba1c":
                        value -= 0.7 * effect
                    elif test.analyte == "glucose":
                        value *= 1 - 0.12 * effect
                    elif test.analyte == "alt":
                        value *= 1 + 0.15 * effect
                value = min(max(value, low_limit), high_limit)
                self.lab_record(test, value, number, name, moment, adult)

    def lab_record(
        self, test: _LabTest, value: float, number: float, visit: str, moment: datetime,
        adult: bool,
    ) -> None:
        original = _number(value, test.decimals)
        standard_value = float(original) * test.std_factor
        standard = _number(standard_value, test.std_decimals)
        low, high = _lab_range(test.analyte, self.person.gender, adult)
        std_low = None if low is None else float(_number(low * test.std_factor, test.std_decimals))
        std_high = (
            None if high is None else float(_number(high * test.std_factor, test.std_decimals))
        )
        result = float(standard)
        indicator = "NORMAL"
        if std_high is not None and result > std_high:
            indicator = "HIGH"
        elif std_low is not None and result < std_low:
            indicator = "LOW"
        record = self.base("lb")
        record.update(
            LBTESTCD=test.testcd,
            LBTEST=test.test,
            LBCAT=test.category,
            LBLOINC=test.loinc,
            LBORRES=original,
            LBORRESU=test.unit,
            LBORNRLO=_number(low, test.decimals) if low is not None else "",
            LBORNRHI=_number(high, test.decimals) if high is not None else "",
            LBSTRESC=standard,
            LBSTRESN=result,
            LBSTRESU=test.std_unit,
            LBSTNRLO=std_low,
            LBSTNRHI=std_high,
            LBNRIND=indicator,
            LBSPEC=test.specimen,
            LBBLFL="Y" if visit == "BASELINE" else "",
            VISITNUM=number,
            VISIT=visit,
            EPOCH=self.epoch(moment.date()),
            LBDTC=moment.strftime("%Y-%m-%dT%H:%M"),
            LBDY=self.day(moment.date()),
        )
        self.records["lb"].append(record)

    def vitals(self) -> None:
        rng, person = self.rng, self.person
        male, female = person.gender == "male", person.gender == "female"
        adult_height = rng.gauss(176.5 if male else 162.5 if female else 169.0, 7.0)
        obese = c.OBESITY in self.chronic
        bmi = rng.uniform(30.5, 38.0) if obese else min(max(rng.gauss(25.0, 2.8), 18.6), 29.7)
        hypertensive = c.HYPERTENSION in self.chronic
        for number, name, day in self.visit_days:
            moment = datetime.combine(day, time(rng.randint(8, 11), rng.randrange(60)))
            years = (day - person.birth_date).days / 365.25
            age = person.age_on(day)
            height = adult_height * ehr.growth(years)
            body_mass = (bmi if age >= 18 else 16.5 if age < 10 else 19.5) + rng.gauss(0, 0.4)
            weight = body_mass * (height / 100) ** 2
            if age >= 18:
                systolic = 112 + 0.35 * (age - 18) + rng.gauss(0, 8)
                diastolic = 71 + 0.12 * (age - 18) + rng.gauss(0, 6)
                if hypertensive:
                    systolic += rng.uniform(8, 22)
                    diastolic += rng.uniform(4, 10)
            else:
                systolic, diastolic = rng.gauss(102, 7), rng.gauss(63, 6)
            systolic = round(min(max(systolic, 85), 200))
            diastolic = round(min(max(diastolic, 45), systolic - 20))
            pulse = round(rng.gauss(74 if age >= 12 else 95, 9))
            temperature = round(min(max(rng.gauss(36.7, 0.25), 35.8), 37.6), 1)
            measures = [
                ("SYSBP", "Systolic Blood Pressure", "SITTING", str(systolic), "mmHg"),
                ("DIABP", "Diastolic Blood Pressure", "SITTING", str(diastolic), "mmHg"),
                ("PULSE", "Pulse Rate", "SITTING", str(pulse), "beats/min"),
                ("TEMP", "Temperature", "", f"{temperature:.1f}", "C"),
                ("WEIGHT", "Weight", "", f"{weight:.1f}", "kg"),
            ]
            if name == "SCREENING":
                measures.append(("HEIGHT", "Height", "", f"{height:.1f}", "cm"))
            for testcd, test, position, text, unit in measures:
                record = self.base("vs")
                record.update(
                    VSTESTCD=testcd,
                    VSTEST=test,
                    VSPOS=position,
                    VSORRES=text,
                    VSORRESU=unit,
                    VSSTRESC=text,
                    VSSTRESN=float(text),
                    VSSTRESU=unit,
                    VSBLFL="Y" if name == "BASELINE" else "",
                    VISITNUM=number,
                    VISIT=name,
                    EPOCH=self.epoch(day),
                    VSDTC=moment.strftime("%Y-%m-%dT%H:%M"),
                    VSDY=self.day(day),
                )
                self.records["vs"].append(record)

    def exposure(self) -> None:
        if self.first_dose > AS_OF:
            return
        starts = [self.first_dose] + [
            day for _, name, day in self.visit_days if name in ("WEEK 4", "WEEK 12")
        ]
        last = self.last_dose
        for index, start in enumerate(starts):
            if last is not None and start > last:
                break
            end = last
            if index + 1 < len(starts):
                interval_end = starts[index + 1] - timedelta(days=1)
                end = interval_end if last is None else min(interval_end, last)
            record = self.base("ex")
            record.update(
                EXTRT="BIOFEDINIB" if self.active else "PLACEBO",
                EXDOSE=10.0 if self.active else 0.0,
                EXDOSU="mg",
                EXDOSFRM="TABLET",
                EXDOSFRQ="QD",
                EXROUTE="ORAL",
                EPOCH=_TREATMENT,
                EXSTDTC=_iso(start),
                EXENDTC=_iso(end) if end else "",
                EXSTDY=self.day(start),
                EXENDY=self.day(end) if end else None,
            )
            self.records["ex"].append(record)

    def disposition(self) -> None:
        events = [
            ("INFORMED CONSENT OBTAINED", "INFORMED CONSENT OBTAINED", "PROTOCOL MILESTONE",
             self.consent),
        ]
        if self.first_dose <= AS_OF:
            events.append(("RANDOMIZED", "RANDOMIZED", "PROTOCOL MILESTONE", self.first_dose))
        if self.reason is not None:
            term = {
                "COMPLETED": "COMPLETED",
                "WITHDRAWAL BY SUBJECT": "Subject withdrew consent",
                "ADVERSE EVENT": "Adverse event",
                "LOST TO FOLLOW-UP": "Lost to follow-up",
                "DEATH": "Death",
            }[self.reason]
            events.append((term, self.reason, "DISPOSITION EVENT", self.disposed))
        for term, decod, category, day in events:
            record = self.base("ds")
            record.update(
                DSTERM=term,
                DSDECOD=decod,
                DSCAT=category,
                EPOCH=self.epoch(day) if category == "DISPOSITION EVENT" else _SCREENING,
                DSSTDTC=_iso(day),
                DSSTDY=self.day(day),
            )
            self.records["ds"].append(record)

    def medication(
        self, fields: tuple, indication: str, start: str, end: date | None, *, prior: bool
    ) -> None:
        trt, decod, dose, unit, frequency, route = fields
        record = self.base("cm")
        complete = len(start) == 10
        record.update(
            CMTRT=trt,
            CMDECOD=decod,
            CMINDC=indication,
            CMDOSE=dose,
            CMDOSU=unit,
            CMDOSFRQ=frequency,
            CMROUTE=route,
            CMSTDTC=start,
            CMENDTC=_iso(end) if end else "",
            CMSTDY=self.day(date.fromisoformat(start)) if complete else None,
            CMENDY=self.day(end) if end else None,
            CMENRTPT="ONGOING" if end is None and prior else "",
            CMENTPT="END OF STUDY" if end is None and prior else "",
        )
        self.records["cm"].append(record)

    def onset(self) -> str:
        """A partial ISO 8601 date (year, or year-month) some time before consent."""
        rng, person = self.rng, self.person
        first = max(person.birth_date.year, self.consent.year - 15)
        year = rng.randint(first, self.consent.year)
        if year == self.consent.year or rng.random() < 0.5:
            month_limit = self.consent.month if year == self.consent.year else 12
            low = person.birth_date.month if year == person.birth_date.year else 1
            return f"{year}-{rng.randint(min(low, month_limit), month_limit):02d}"
        return str(year)

    def medications(self) -> None:
        for code in sorted(self.chronic, key=lambda k: k.code):
            entry = _HISTORY.get(code)
            if entry is None or entry[1] is None or self.person.age_on(self.consent) < 18:
                continue
            (_, decod, _), fields = entry
            self.medication(fields, decod, self.onset(), None, prior=True)

    def history(self) -> None:
        for code in sorted(self.chronic, key=lambda k: k.code):
            entry = _HISTORY.get(code)
            if entry is None:
                continue
            (term, decod, bodsys), _ = entry
            record = self.base("mh")
            record.update(
                MHTERM=term,
                MHDECOD=decod,
                MHBODSYS=bodsys,
                MHCAT="GENERAL MEDICAL HISTORY",
                MHSTDTC=self.onset(),
                MHENRTPT="ONGOING",
                MHENTPT="SCREENING",
            )
            self.records["mh"].append(record)


@dataclass(frozen=True)
class _Enrolled:
    person: Person
    course: _Course
    records: dict[str, list[Record]]


def _enrolled(people: Iterable[Person]) -> list[_Enrolled]:
    out = []
    for person in people:
        if person.trial_usubjid is None:
            continue
        course = _Course(person)
        out.append(_Enrolled(person, course, course.build()))
    return out


# --- files --------------------------------------------------------------------------------

_XPT_STAMP = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")
_OBS_HEADER = b"HEADER RECORD*******OBS     HEADER RECORD"


def _frame(domain: str, records: Sequence[Record]) -> pl.DataFrame:
    columns: dict[str, list[object]] = {}
    schema: dict[str, pl.DataType] = {}
    for name, _, kind in VARIABLES[domain]:
        numeric = kind == "Num"
        schema[name] = pl.Float64() if numeric else pl.String()
        columns[name] = [
            record.get(name) if numeric else (record.get(name) or "") for record in records
        ]
    return pl.DataFrame(columns, schema=schema)


def _xpt_bytes(domain: str, frame: pl.DataFrame, scratch: Path) -> bytes:
    path = scratch / f"{domain}.xpt"
    pyreadstat.write_xport(
        frame,
        str(path),
        file_label=DATASET_LABELS[domain],
        column_labels=[label for _, label, _ in VARIABLES[domain]],
        table_name=domain.upper(),
        file_format_version=5,
    )
    data = path.read_bytes()
    header_end = data.index(_OBS_HEADER)
    header = _XPT_STAMP.sub(XPT_TIMESTAMP, data[:header_end])
    return header + data[header_end:]


def write_trial(people: Iterable[Person], out: Path) -> dict[str, int]:
    """Write the trials silo: study BIOFED-01 as SDTM XPORT datasets and its enrolment map.

    Writes ``out/trials/BIOFED-01/<domain>.xpt`` for every domain in ``DOMAINS`` (SAS XPORT
    version 5, dataset name the upper-case domain, ``DATASET_LABELS`` as dataset labels,
    ``VARIABLES`` as variables) and ``out/trials/enrolment.csv`` (``studyid,usubjid,site,mrn``,
    one row per subject in roster order: the trial management system's map, beside the study
    folders, not a dataset of the study), replacing files of those names; no file carries its
    final name until it is complete. Records are ordered by subject (roster order), then by date;
    ``--SEQ`` numbers them within each subject.

    Args:
        people: the roster, in index order.
        out: the cohort's output folder.

    Returns:
        Path relative to ``out`` (``trials/BIOFED-01/dm.xpt`` ...) to its number of records.

    Raises:
        OSError: if the folder cannot be created or written.
    """
    enrolled = _enrolled(people)
    folder_name = f"{FOLDER}/{STUDY_ID}"
    counts: dict[str, int] = {}
    files: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for domain in DOMAINS:
            records = [r for subject in enrolled for r in subject.records[domain]]
            files[f"{domain}.xpt"] = _xpt_bytes(domain, _frame(domain, records), Path(scratch))
            counts[f"{folder_name}/{domain}.xpt"] = len(records)
    enrolment = io.StringIO()
    writer = csv.writer(enrolment, lineterminator="\n")
    writer.writerow(ENROLMENT_COLUMNS)
    for subject in enrolled:
        person = subject.person
        writer.writerow([STUDY_ID, person.trial_usubjid, person.home_site, person.mrn])
    counts[f"{FOLDER}/{ENROLMENT_NAME}"] = len(enrolled)
    with AtomicFolder(Path(out) / FOLDER / STUDY_ID) as folder:
        for name, data in files.items():
            folder.open(name).write(data)
    with AtomicFolder(Path(out) / FOLDER) as folder:
        folder.open(ENROLMENT_NAME).write(enrolment.getvalue().encode("utf-8"))
    return counts


def trial_records(people: Iterable[Person]) -> dict[str, pl.DataFrame]:
    """The records ``write_trial`` writes, per domain, as typed frames (no files written).

    Args:
        people: the roster, in index order.

    Returns:
        Domain (``dm``, ``ae`` ...) to a frame with the ``VARIABLES`` of that domain: character
        variables as String (blank where the XPORT file has blanks), numeric ones as Float64.
    """
    enrolled = _enrolled(people)
    return {
        domain: _frame(domain, [r for s in enrolled for r in s.records[domain]])
        for domain in DOMAINS
    }


def trial_truth(people: Iterable[Person]) -> pl.DataFrame:
    """Who is in BIOFED-01 and what the datasets hold for them, one row per subject.

    Args:
        people: the roster, in index order.

    Returns:
        A frame with the columns of ``TRUTH_SCHEMA``: the subject's USUBJID, roster index,
        EHR MRN and home site, arm, record counts per domain, key dates (the last dose and
        end of participation are null while on study at the cut-off), the last disposition
        decoded term (``COMPLETED``, ``WITHDRAWAL BY SUBJECT``, ``ADVERSE EVENT``,
        ``LOST TO FOLLOW-UP``, ``DEATH``, or the last milestone while on study) and whether
        the subject died on study.
    """
    rows = []
    for subject in _enrolled(people):
        person, course, records = subject.person, subject.course, subject.records
        dispositions = records["ds"]
        rows.append(
            {
                "usubjid": person.trial_usubjid,
                "person_index": person.index,
                "mrn": person.mrn,
                "site": person.home_site,
                "arm": course.arm,
                "armcd": course.armcd,
                **{f"n_{d}": len(records[d]) for d in DOMAINS if d != "dm"},
                "consent_date": course.consent,
                "first_dose_date": course.first_dose if course.first_dose <= AS_OF else None,
                "last_dose_date": course.last_dose,
                "end_date": course.end,
                "disposition": dispositions[-1]["DSDECOD"] if dispositions else None,
                "died": course.died,
            }
        )
    return pl.DataFrame(rows, schema=TRUTH_SCHEMA) if rows else pl.DataFrame(schema=TRUTH_SCHEMA)
