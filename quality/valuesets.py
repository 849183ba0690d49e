"""FHIR R4 value sets with a *required* binding: valid data holds nothing else.

One source for the quality suites (which check them) and the gold views (whose MCP filters
accept only these values).
"""

GENDER = ("male", "female", "other", "unknown")
ENCOUNTER_STATUS = (
    "planned",
    "arrived",
    "triaged",
    "in-progress",
    "onleave",
    "finished",
    "cancelled",
    "entered-in-error",
    "unknown",
)
CONDITION_CLINICAL = ("active", "recurrence", "relapse", "inactive", "remission", "resolved")
CONDITION_ABATED_CLINICAL = ("inactive", "remission", "resolved")
"""FHIR invariant con-4: an abated condition's clinical status is one of these."""
CONDITION_VERIFICATION = (
    "unconfirmed",
    "provisional",
    "differential",
    "confirmed",
    "refuted",
    "entered-in-error",
)
OBSERVATION_STATUS = (
    "registered",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "cancelled",
    "entered-in-error",
    "unknown",
)
MEDREQ_STATUS = (
    "active",
    "on-hold",
    "cancelled",
    "completed",
    "entered-in-error",
    "stopped",
    "draft",
    "unknown",
)
MEDREQ_INTENT = (
    "proposal",
    "plan",
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
    "option",
)
PROCEDURE_STATUS = (
    "preparation",
    "in-progress",
    "not-done",
    "on-hold",
    "stopped",
    "completed",
    "entered-in-error",
    "unknown",
)
IMMUNIZATION_STATUS = ("completed", "entered-in-error", "not-done")
CONSENT_STATUS = ("draft", "proposed", "active", "rejected", "inactive", "entered-in-error")
CONSENT_PROVISION_TYPE = ("deny", "permit")

ZYGOSITY: tuple[str, ...] = (
    "hom_ref",
    "het",
    "hom_alt",
    "hemizygous",
    "other_alt",
    "partial",
    "no_call",
)
"""Zygosity of a person for one ALT allele of a site: every allele REF; some copies of this
ALT; only this ALT (two or more alleles); one allele, this ALT; no copy of this ALT but
another ALT of the site; some alleles not called; none called."""

MODALITY: tuple[str, ...] = (
    "ANN",
    "AR",
    "ASMT",
    "AU",
    "BDUS",
    "BI",
    "BMD",
    "CFM",
    "CR",
    "CT",
    "CTPROTOCOL",
    "DG",
    "DMS",
    "DOC",
    "DX",
    "ECG",
    "EEG",
    "EMG",
    "EOG",
    "EPS",
    "ES",
    "FID",
    "GM",
    "HC",
    "HD",
    "IO",
    "IOL",
    "IVOCT",
    "IVUS",
    "KER",
    "KO",
    "LEN",
    "LS",
    "M3D",
    "MG",
    "MR",
    "NM",
    "OAM",
    "OCT",
    "OP",
    "OPM",
    "OPT",
    "OPTBSV",
    "OPTENF",
    "OPV",
    "OSS",
    "OT",
    "PA",
    "PLAN",
    "POS",
    "PR",
    "PT",
    "PX",
    "REG",
    "RESP",
    "RF",
    "RG",
    "RTDOSE",
    "RTIMAGE",
    "RTINTENT",
    "RTPLAN",
    "RTRAD",
    "RTRECORD",
    "RTSEGANN",
    "RTSTRUCT",
    "RWV",
    "SEG",
    "SM",
    "SMR",
    "SR",
    "SRF",
    "STAIN",
    "TEXTUREMAP",
    "TG",
    "US",
    "VA",
    "XA",
    "XAPROTOCOL",
    "XC",
)
"""DICOM Defined Terms of Modality (0008,0060), PS3.3 C.7.3.1.1.1 (79 terms as of 2026),
not a FHIR value set: the retired terms (CD, DD, ST, ...) and the non-standard SC are left
out. PA (photoacoustic) and CFM (confocal microscopy) came with their image storage SOP
classes."""

LAB_SOURCE_KINDS: tuple[str, ...] = ("csv", "hl7v2")
"""Which reader produced a lab result: an LIS CSV export or an HL7 v2 ORU feed."""
LAB_LINK_STATUS: tuple[str, ...] = ("linked", "unknown_patient", "unknown_mrn", "identity_conflict")
"""How a lab result was tied to a person: linked (the patient index lists the lab patient id;
the person crosswalk's row for it gives the person, or for an id it does not hold yet, the
person of its index MRN); no
patient-index row for the lab's patient id; an index MRN the person crosswalk does not know;
an id the crosswalk does not hold because the identity quarantine holds it as undecided (its
index rows name two people, say)."""
LAB_MAPPING_STATUS: tuple[str, ...] = ("loinc_reported", "mapped", "unmapped", "invalid_loinc")
"""How a result's LOINC code was reached: the lab sent a valid LOINC; the site map gave one;
neither; the LOINC sent has a wrong check digit or shape. The same values as
``connectors.terminology.MAPPING_STATUSES``, which sets them (a test holds the two equal)."""
LAB_UNIT_STATUS: tuple[str, ...] = (
    "canonical",
    "converted",
    "no_canonical",
    "unknown_unit",
    "unconvertible",
    "not_numeric",
    "no_unit",
)
"""How a result's unit and value were reached: sent in the analyte's canonical unit;
converted to it; the analyte has no canonical unit (the sent unit's UCUM spelling is kept);
the sent unit is not recognisable; recognisable but not convertible to the canonical one;
the value is not a number; no unit was sent. The same values as
``connectors.terminology.UNIT_STATUSES`` (a test holds the two equal)."""

HL7_RESULT_STATUS: tuple[str, ...] = (
    "A",
    "B",
    "C",
    "D",
    "F",
    "I",
    "N",
    "O",
    "P",
    "R",
    "S",
    "U",
    "W",
    "X",
)
"""HL7 v2 table 0085, Observation Result Status Codes Interpretation (OBX-11): the v2.5.1
codes C, D, F, I, N, O, P, R, S, U, W, X, and A (amended) and B (appended) of v2.8. Lab CSV
statuses (``Final``, ``Prelim``, ``Corrected``) are mapped to these by the site profile."""

HL7_ABNORMAL_FLAGS: tuple[str, ...] = (
    "L",
    "H",
    "LL",
    "HH",
    "<",
    ">",
    "N",
    "A",
    "AA",
    "null",
    "U",
    "D",
    "B",
    "W",
    "S",
    "R",
    "I",
    "MS",
    "VS",
    "LU",
    "HU",
    "E",
    "IE",
    "NCL",
    "NS",
    "SDD",
    "SYN-R",
    "SYN-S",
    "POS",
    "NEG",
    "IND",
    "DET",
    "ND",
    "EXP",
    "UNE",
    "AC",
    "TOX",
    "QCF",
    "RR",
    "WR",
    "NR",
    "EX",
    "HX",
    "LX",
    "CAR",
)
"""HL7 v2 table 0078, Interpretation Codes (OBX-8): the v2.5.1 abnormal flags (``null`` is a
code: no range defined), then the codes later versions took over from the v3
ObservationInterpretation code system (significantly low and high, susceptibility, detection,
expectation, reactivity and threshold codes).
One OBX-8 repetition is one flag; repetitions arrive joined by ``~``."""

SDTM_NY: tuple[str, ...] = ("N", "NA", "U", "Y")
"""CDISC CT codelist NY (C66742), No Yes Response."""
SDTM_SEX: tuple[str, ...] = ("F", "M", "U", "UNDIFFERENTIATED")
"""CDISC CT codelist SEX (C66731)."""
SDTM_AGEU: tuple[str, ...] = ("DAYS", "HOURS", "MONTHS", "WEEKS", "YEARS")
"""CDISC CT codelist AGEU (C66781), Age Unit."""
SDTM_ETHNIC: tuple[str, ...] = (
    "HISPANIC OR LATINO",
    "NOT HISPANIC OR LATINO",
    "NOT REPORTED",
    "UNKNOWN",
)
"""CDISC CT codelist ETHNIC (C66790)."""
SDTM_AESEV: tuple[str, ...] = ("MILD", "MODERATE", "SEVERE")
"""CDISC CT codelist AESEV (C66769), Severity/Intensity Scale for Adverse Events."""
SDTM_OUT: tuple[str, ...] = (
    "FATAL",
    "NOT RECOVERED/NOT RESOLVED",
    "RECOVERED/RESOLVED",
    "RECOVERED/RESOLVED WITH SEQUELAE",
    "RECOVERING/RESOLVING",
    "UNKNOWN",
)
"""CDISC CT codelist OUT (C66768), Outcome of Event (AEOUT)."""
SDTM_ACN: tuple[str, ...] = (
    "DOSE INCREASED",
    "DOSE NOT CHANGED",
    "DOSE RATE REDUCED",
    "DOSE REDUCED",
    "DRUG INTERRUPTED",
    "DRUG WITHDRAWN",
    "NOT APPLICABLE",
    "UNKNOWN",
)
"""CDISC CT codelist ACN (C66767), Action Taken with Study Treatment (AEACN)."""
SDTM_NRIND: tuple[str, ...] = ("ABNORMAL", "HIGH", "LOW", "NORMAL")
"""CDISC CT codelist NRIND (C78736), Reference Range Indicator (LBNRIND)."""
