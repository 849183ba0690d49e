"""Code systems and the real codes the synthetic cohort uses, with their display names.

Only codes whose meaning and display were checked are listed here; the writers take every
code they emit from these tables, and the tests hold them to it. Displays follow the code
system's own wording (SNOMED CT fully specified names, LOINC long common names, RxNorm
normalised names, CDC CVX short descriptions).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    """One concept: the code system URI, the code and its display."""

    system: str
    code: str
    display: str

    def coding(self) -> dict[str, str]:
        """The FHIR ``Coding`` of this concept."""
        return {"system": self.system, "code": self.code, "display": self.display}

    def concept(self, text: str | None = None) -> dict[str, object]:
        """A FHIR ``CodeableConcept`` with this one coding and a ``text``."""
        return {"coding": [self.coding()], "text": text or self.display}


@dataclass(frozen=True)
class Unit:
    """A UCUM unit: ``code`` is the UCUM expression, ``unit`` the human-readable form."""

    code: str
    unit: str


# --- code system URIs -------------------------------------------------------------------

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
UCUM = "http://unitsofmeasure.org"
CDC_RACE_ETHNICITY = "urn:oid:2.16.840.1.113883.6.238"
BCP47 = "urn:ietf:bcp:47"
V2_IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
V3_MARITAL_STATUS = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VER_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"

US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_CORE_ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"

MRN_SYSTEM = "urn:oid:2.16.840.1.113883.19.5"
"""Identifier system of the EHR's medical record numbers (the HL7 example OID)."""

SITE_SYSTEM = "https://biofed.example/fhir/sid/site"
"""Identifier system of the federation's site codes (``SITE-A01`` ...)."""

BIOBANK_PROTOCOL = "https://biofed.example/protocols/BIOFED-01"
"""The biobank research protocol that every research consent refers to."""

# --- administrative ---------------------------------------------------------------------

MR = Code(V2_IDENTIFIER_TYPE, "MR", "Medical Record Number")

RACE: dict[str, Code] = {
    c.code: c
    for c in (
        Code(CDC_RACE_ETHNICITY, "1002-5", "American Indian or Alaska Native"),
        Code(CDC_RACE_ETHNICITY, "2028-9", "Asian"),
        Code(CDC_RACE_ETHNICITY, "2054-5", "Black or African American"),
        Code(CDC_RACE_ETHNICITY, "2076-8", "Native Hawaiian or Other Pacific Islander"),
        Code(CDC_RACE_ETHNICITY, "2106-3", "White"),
    )
}
"""OMB race categories (CDC Race & Ethnicity code set)."""

ETHNICITY: dict[str, Code] = {
    c.code: c
    for c in (
        Code(CDC_RACE_ETHNICITY, "2135-2", "Hispanic or Latino"),
        Code(CDC_RACE_ETHNICITY, "2186-5", "Not Hispanic or Latino"),
    )
}
"""OMB ethnicity categories."""

MARITAL_STATUS: dict[str, Code] = {
    c.code: c
    for c in (
        Code(V3_MARITAL_STATUS, "M", "Married"),
        Code(V3_MARITAL_STATUS, "S", "Never Married"),
        Code(V3_MARITAL_STATUS, "D", "Divorced"),
        Code(V3_MARITAL_STATUS, "W", "Widowed"),
    )
}

LANGUAGE: dict[str, Code] = {
    c.code: c
    for c in (
        Code(BCP47, "en-US", "English (United States)"),
        Code(BCP47, "es", "Spanish"),
        Code(BCP47, "zh", "Chinese"),
        Code(BCP47, "vi", "Vietnamese"),
        Code(BCP47, "pt", "Portuguese"),
    )
}

# --- encounters -------------------------------------------------------------------------

ENCOUNTER_CLASS: dict[str, Code] = {
    c.code: c
    for c in (
        Code(V3_ACT_CODE, "AMB", "ambulatory"),
        Code(V3_ACT_CODE, "EMER", "emergency"),
        Code(V3_ACT_CODE, "IMP", "inpatient encounter"),
    )
}

CHECK_UP = Code(SNOMED, "185349003", "Encounter for check up (procedure)")
WELL_CHILD = Code(SNOMED, "410620009", "Well child visit (procedure)")
GENERAL_EXAM = Code(SNOMED, "162673000", "General examination of patient (procedure)")
SYMPTOM_VISIT = Code(SNOMED, "185345009", "Encounter for symptom (procedure)")
PROBLEM_VISIT = Code(SNOMED, "185347001", "Encounter for problem (procedure)")
FOLLOW_UP = Code(SNOMED, "390906007", "Follow-up encounter (procedure)")
OUTPATIENT_PROCEDURE = Code(SNOMED, "371883000", "Outpatient procedure (procedure)")
ER_ADMISSION = Code(SNOMED, "50849002", "Emergency room admission (procedure)")
HOSPITAL_ADMISSION = Code(SNOMED, "32485007", "Hospital admission (procedure)")

ENCOUNTER_TYPES: tuple[Code, ...] = (
    CHECK_UP,
    WELL_CHILD,
    GENERAL_EXAM,
    SYMPTOM_VISIT,
    PROBLEM_VISIT,
    FOLLOW_UP,
    OUTPATIENT_PROCEDURE,
    ER_ADMISSION,
    HOSPITAL_ADMISSION,
)

# --- conditions (SNOMED CT) -------------------------------------------------------------

HYPERTENSION = Code(SNOMED, "38341003", "Hypertensive disorder, systemic arterial (disorder)")
DIABETES_T2 = Code(SNOMED, "44054006", "Diabetes mellitus type 2 (disorder)")
PREDIABETES = Code(SNOMED, "714628002", "Prediabetes (finding)")
HYPERLIPIDEMIA = Code(SNOMED, "55822004", "Hyperlipidemia (disorder)")
ASTHMA = Code(SNOMED, "195967001", "Asthma (disorder)")
COPD = Code(SNOMED, "13645005", "Chronic obstructive lung disease (disorder)")
DEPRESSION = Code(SNOMED, "35489007", "Depressive disorder (disorder)")
ANXIETY = Code(SNOMED, "197480006", "Anxiety disorder (disorder)")
OBESITY = Code(SNOMED, "162864005", "Body mass index 30+ - obesity (finding)")
ATRIAL_FIBRILLATION = Code(SNOMED, "49436004", "Atrial fibrillation (disorder)")
ISCHEMIC_HEART_DISEASE = Code(SNOMED, "414545008", "Ischemic heart disease (disorder)")
OSTEOARTHRITIS_KNEE = Code(SNOMED, "239873007", "Osteoarthritis of knee (disorder)")
ANEMIA = Code(SNOMED, "271737000", "Anemia (disorder)")

ACUTE_BRONCHITIS = Code(SNOMED, "10509002", "Acute bronchitis (disorder)")
VIRAL_SINUSITIS = Code(SNOMED, "444814009", "Viral sinusitis (disorder)")
VIRAL_PHARYNGITIS = Code(SNOMED, "195662009", "Acute viral pharyngitis (disorder)")
STREP_THROAT = Code(SNOMED, "43878008", "Streptococcal sore throat (disorder)")
OTITIS_MEDIA = Code(SNOMED, "65363002", "Otitis media (disorder)")
PNEUMONIA = Code(SNOMED, "233604007", "Pneumonia (disorder)")

CHRONIC_CONDITIONS: tuple[Code, ...] = (
    OBESITY,
    HYPERTENSION,
    PREDIABETES,
    DIABETES_T2,
    HYPERLIPIDEMIA,
    ASTHMA,
    COPD,
    DEPRESSION,
    ANXIETY,
    ATRIAL_FIBRILLATION,
    ISCHEMIC_HEART_DISEASE,
    OSTEOARTHRITIS_KNEE,
    ANEMIA,
)
ACUTE_CONDITIONS: tuple[Code, ...] = (
    ACUTE_BRONCHITIS,
    VIRAL_SINUSITIS,
    VIRAL_PHARYNGITIS,
    STREP_THROAT,
    OTITIS_MEDIA,
    PNEUMONIA,
)

CONDITION_ACTIVE = Code(CONDITION_CLINICAL, "active", "Active")
CONDITION_RESOLVED = Code(CONDITION_CLINICAL, "resolved", "Resolved")
CONDITION_CONFIRMED = Code(CONDITION_VER_STATUS, "confirmed", "Confirmed")
ENCOUNTER_DIAGNOSIS = Code(CONDITION_CATEGORY, "encounter-diagnosis", "Encounter Diagnosis")

# --- observations (LOINC, UCUM) ---------------------------------------------------------

VITAL_SIGNS = Code(OBSERVATION_CATEGORY, "vital-signs", "Vital Signs")
LABORATORY = Code(OBSERVATION_CATEGORY, "laboratory", "Laboratory")
SOCIAL_HISTORY = Code(OBSERVATION_CATEGORY, "social-history", "Social History")

BODY_HEIGHT = Code(LOINC, "8302-2", "Body height")
BODY_WEIGHT = Code(LOINC, "29463-7", "Body weight")
BMI = Code(LOINC, "39156-5", "Body mass index (BMI) [Ratio]")
HEART_RATE = Code(LOINC, "8867-4", "Heart rate")
RESPIRATORY_RATE = Code(LOINC, "9279-1", "Respiratory rate")
BODY_TEMPERATURE = Code(LOINC, "8310-5", "Body temperature")
SPO2 = Code(LOINC, "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry")
BP_PANEL = Code(LOINC, "85354-9", "Blood pressure panel with all children optional")
SYSTOLIC_BP = Code(LOINC, "8480-6", "Systolic blood pressure")
DIASTOLIC_BP = Code(LOINC, "8462-4", "Diastolic blood pressure")

GLUCOSE = Code(LOINC, "2339-0", "Glucose [Mass/volume] in Blood")
HBA1C = Code(LOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood")
CHOLESTEROL = Code(LOINC, "2093-3", "Cholesterol [Mass/volume] in Serum or Plasma")
TRIGLYCERIDES = Code(LOINC, "2571-8", "Triglyceride [Mass/volume] in Serum or Plasma")
HDL = Code(LOINC, "2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma")
CREATININE = Code(LOINC, "2160-0", "Creatinine [Mass/volume] in Serum or Plasma")
HEMOGLOBIN = Code(LOINC, "718-7", "Hemoglobin [Mass/volume] in Blood")
WBC = Code(LOINC, "6690-2", "Leukocytes [#/volume] in Blood by Automated count")

SMOKING_STATUS = Code(LOINC, "72166-2", "Tobacco smoking status")
NEVER_SMOKER = Code(SNOMED, "266919005", "Never smoked tobacco (finding)")
EX_SMOKER = Code(SNOMED, "8517006", "Ex-smoker (finding)")
DAILY_SMOKER = Code(SNOMED, "449868002", "Smokes tobacco daily (finding)")
SMOKING_VALUES: tuple[Code, ...] = (NEVER_SMOKER, EX_SMOKER, DAILY_SMOKER)

UNITS: dict[str, Unit] = {
    u.code: u
    for u in (
        Unit("cm", "cm"),
        Unit("kg", "kg"),
        Unit("kg/m2", "kg/m2"),
        Unit("/min", "/min"),
        Unit("mm[Hg]", "mmHg"),
        Unit("Cel", "Cel"),
        Unit("%", "%"),
        Unit("mg/dL", "mg/dL"),
        Unit("g/dL", "g/dL"),
        Unit("10*3/uL", "10*3/uL"),
    )
}
"""Every UCUM unit an observation may carry."""

OBSERVATION_UNITS: dict[str, str] = {
    BODY_HEIGHT.code: "cm",
    BODY_WEIGHT.code: "kg",
    BMI.code: "kg/m2",
    HEART_RATE.code: "/min",
    RESPIRATORY_RATE.code: "/min",
    BODY_TEMPERATURE.code: "Cel",
    SPO2.code: "%",
    SYSTOLIC_BP.code: "mm[Hg]",
    DIASTOLIC_BP.code: "mm[Hg]",
    GLUCOSE.code: "mg/dL",
    HBA1C.code: "%",
    CHOLESTEROL.code: "mg/dL",
    TRIGLYCERIDES.code: "mg/dL",
    HDL.code: "mg/dL",
    CREATININE.code: "mg/dL",
    HEMOGLOBIN.code: "g/dL",
    WBC.code: "10*3/uL",
}
"""LOINC code to the UCUM unit its quantity is reported in."""

OBSERVATION_CODES: tuple[Code, ...] = (
    BODY_HEIGHT,
    BODY_WEIGHT,
    BMI,
    HEART_RATE,
    RESPIRATORY_RATE,
    BODY_TEMPERATURE,
    SPO2,
    BP_PANEL,
    SYSTOLIC_BP,
    DIASTOLIC_BP,
    GLUCOSE,
    HBA1C,
    CHOLESTEROL,
    TRIGLYCERIDES,
    HDL,
    CREATININE,
    HEMOGLOBIN,
    WBC,
    SMOKING_STATUS,
)

INTERPRETATION: dict[str, Code] = {
    c.code: c
    for c in (
        Code(V3_INTERPRETATION, "H", "High"),
        Code(V3_INTERPRETATION, "L", "Low"),
        Code(V3_INTERPRETATION, "N", "Normal"),
    )
}

# --- medications (RxNorm clinical drugs) -------------------------------------------------

LISINOPRIL_10 = Code(RXNORM, "314076", "lisinopril 10 MG Oral Tablet")
AMLODIPINE_5 = Code(RXNORM, "197361", "amlodipine 5 MG Oral Tablet")
HCTZ_25 = Code(RXNORM, "310798", "hydrochlorothiazide 25 MG Oral Tablet")
METFORMIN_ER_500 = Code(
    RXNORM, "860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"
)
SIMVASTATIN_20 = Code(RXNORM, "312961", "simvastatin 20 MG Oral Tablet")
ATORVASTATIN_10 = Code(RXNORM, "617312", "atorvastatin 10 MG Oral Tablet")
ALBUTEROL_MDI = Code(RXNORM, "745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler")
FLUTICASONE_MDI = Code(
    RXNORM,
    "895996",
    "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler [Flovent]",
)
WARFARIN_5 = Code(RXNORM, "855332", "warfarin sodium 5 MG Oral Tablet")
ASPIRIN_81 = Code(RXNORM, "243670", "aspirin 81 MG Oral Tablet")
CLOPIDOGREL_75 = Code(RXNORM, "309362", "clopidogrel 75 MG Oral Tablet")
SERTRALINE_100 = Code(RXNORM, "312938", "sertraline 100 MG Oral Tablet")
FLUOXETINE_20 = Code(RXNORM, "310385", "fluoxetine 20 MG Oral Capsule")
NAPROXEN_220 = Code(RXNORM, "849574", "naproxen sodium 220 MG Oral Tablet")
ACETAMINOPHEN_325 = Code(RXNORM, "313782", "acetaminophen 325 MG Oral Tablet")
IBUPROFEN_200 = Code(RXNORM, "310965", "ibuprofen 200 MG Oral Tablet")
AMOXICILLIN_250 = Code(RXNORM, "308182", "amoxicillin 250 MG Oral Capsule")
AMOXICILLIN_500 = Code(RXNORM, "308192", "amoxicillin 500 MG Oral Tablet")
PENICILLIN_V_250 = Code(RXNORM, "834061", "penicillin V potassium 250 MG Oral Tablet")

MEDICATIONS: tuple[Code, ...] = (
    LISINOPRIL_10,
    AMLODIPINE_5,
    HCTZ_25,
    METFORMIN_ER_500,
    SIMVASTATIN_20,
    ATORVASTATIN_10,
    ALBUTEROL_MDI,
    FLUTICASONE_MDI,
    WARFARIN_5,
    ASPIRIN_81,
    CLOPIDOGREL_75,
    SERTRALINE_100,
    FLUOXETINE_20,
    NAPROXEN_220,
    ACETAMINOPHEN_325,
    IBUPROFEN_200,
    AMOXICILLIN_250,
    AMOXICILLIN_500,
    PENICILLIN_V_250,
)

# --- procedures (SNOMED CT) -------------------------------------------------------------

MEDICATION_RECONCILIATION = Code(SNOMED, "430193006", "Medication reconciliation (procedure)")
HEALTH_NEEDS_ASSESSMENT = Code(
    SNOMED, "710824005", "Assessment of health and social care needs (procedure)"
)
DEPRESSION_SCREENING = Code(SNOMED, "171207006", "Depression screening (procedure)")
ANXIETY_ASSESSMENT = Code(SNOMED, "710841007", "Assessment of anxiety (procedure)")
COLONOSCOPY = Code(SNOMED, "73761001", "Colonoscopy (procedure)")
MAMMOGRAPHY = Code(SNOMED, "71651007", "Mammography (procedure)")
THROAT_CULTURE = Code(SNOMED, "117015009", "Throat culture (procedure)")
CHEST_XRAY = Code(SNOMED, "399208008", "Plain X-ray of chest (procedure)")
ECG = Code(SNOMED, "29303009", "Electrocardiographic procedure (procedure)")
SPIROMETRY = Code(SNOMED, "127783003", "Spirometry (procedure)")
DIABETIC_EYE_EXAM = Code(SNOMED, "722161008", "Diabetic retinal eye exam (procedure)")

PROCEDURES: tuple[Code, ...] = (
    MEDICATION_RECONCILIATION,
    HEALTH_NEEDS_ASSESSMENT,
    DEPRESSION_SCREENING,
    ANXIETY_ASSESSMENT,
    COLONOSCOPY,
    MAMMOGRAPHY,
    THROAT_CULTURE,
    CHEST_XRAY,
    ECG,
    SPIROMETRY,
    DIABETIC_EYE_EXAM,
)

# --- immunizations (CVX) ----------------------------------------------------------------

FLU = Code(CVX, "140", "Influenza, seasonal, injectable, preservative free")
HEP_B_PEDS = Code(CVX, "08", "Hep B, adolescent or pediatric")
DTAP = Code(CVX, "20", "DTaP")
IPV = Code(CVX, "10", "IPV")
HIB = Code(CVX, "49", "Hib (PRP-OMP)")
PCV13 = Code(CVX, "133", "Pneumococcal conjugate PCV 13")
MMR = Code(CVX, "03", "MMR")
VARICELLA = Code(CVX, "21", "varicella")
HEP_A_PEDS = Code(CVX, "83", "Hep A, ped/adol, 2 dose")
TDAP = Code(CVX, "115", "Tdap")
HPV = Code(CVX, "62", "HPV, quadrivalent")
MENINGOCOCCAL = Code(CVX, "114", "meningococcal MCV4P")
TD_ADULT = Code(CVX, "113", "Td (adult) preservative free")
PPSV23 = Code(CVX, "33", "pneumococcal polysaccharide vaccine, 23 valent")
COVID_PFIZER = Code(CVX, "208", "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose")

VACCINES: tuple[Code, ...] = (
    FLU,
    HEP_B_PEDS,
    DTAP,
    IPV,
    HIB,
    PCV13,
    MMR,
    VARICELLA,
    HEP_A_PEDS,
    TDAP,
    HPV,
    MENINGOCOCCAL,
    TD_ADULT,
    PPSV23,
    COVID_PFIZER,
)

# --- consent ----------------------------------------------------------------------------

RESEARCH_SCOPE = Code(CONSENT_SCOPE, "research", "Research")
PATIENT_CONSENT = Code(LOINC, "59284-0", "Patient Consent")
HEALTHCARE_RESEARCH = Code(V3_ACT_REASON, "HRESCH", "healthcare research")

# --- everything, for validation ---------------------------------------------------------


def all_codes() -> frozenset[tuple[str, str]]:
    """Every ``(system, code)`` pair the synthetic writers may emit.

    Returns:
        The pairs from every table in this module.
    """
    pairs: set[tuple[str, str]] = set()
    for value in globals().values():
        if isinstance(value, Code):
            pairs.add((value.system, value.code))
        elif isinstance(value, dict | tuple):
            items = value.values() if isinstance(value, dict) else value
            pairs.update((c.system, c.code) for c in items if isinstance(c, Code))
    return frozenset(pairs)
