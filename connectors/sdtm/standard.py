"""What the SDTM standard says about the domains biofed conforms: variables, types, cores.

Source: the CDISC SDTM Implementation Guide (SDTMIG) v3.3 domain specification tables
(section 5.2 DM; 6.1 Interventions CM, EX; 6.2 Events AE, DS, MH; 6.3 Findings LB, VS),
cross-checked against the v3.4 tables. ``STANDARD_VARIABLES`` lists, per domain and in the
IG's order, the variables that real submissions commonly carry (not every Permissible one);
anything else a file holds is kept in the row's ``record_json`` by ``conform_domain``.
General-class timing variables (VISITNUM, VISIT, VISITDY, EPOCH) and the device identifier
SPDEVID are listed where pilot and test data use them, since the SDTM model allows them in
every general-observation-class domain.

Required ("Req") variables, checked by the reader's ``required_variable_missing`` and
``required_value_missing`` rules:

- every dataset: STUDYID, DOMAIN, USUBJID (USUBJID not for trial-design datasets);
- DM: SUBJID, SITEID, SEX, COUNTRY, ARMCD, ARM, ACTARMCD, ACTARM. The four arm variables
  are Req in SDTMIG 3.1.3 and 3.2; ACTARMCD and ACTARM only exist since 3.1.3, so their
  absence is a *warning* (older data). SDTMIG 3.3 made all four Expected and added ARMNRS
  (reason the arm is null): a null arm value on a row whose ARMNRS is populated is not
  counted as missing.
- AE: AESEQ, AETERM, AEDECOD; CM: CMSEQ, CMTRT; DS: DSSEQ, DSTERM, DSDECOD (DSCAT is
  Expected, not Required); EX: EXSEQ, EXTRT; LB: LBSEQ, LBTESTCD, LBTEST; MH: MHSEQ, MHTERM;
  VS: VSSEQ, VSTESTCD, VSTEST.
"""

from typing import Literal, NamedTuple

VariableType = Literal["Char", "Num"]
Severity = Literal["error", "warning"]


class StandardVariable(NamedTuple):
    """One SDTM variable as the implementation guide defines it.

    Attributes:
        name: the variable name, upper case (``AESEQ``).
        label: the IG's variable label.
        type: ``"Char"`` or ``"Num"``.
    """

    name: str
    label: str
    type: VariableType


def _char(name: str, label: str) -> StandardVariable:
    return StandardVariable(name, label, "Char")


def _num(name: str, label: str) -> StandardVariable:
    return StandardVariable(name, label, "Num")


_IDENTIFIERS = (
    _char("STUDYID", "Study Identifier"),
    _char("DOMAIN", "Domain Abbreviation"),
    _char("USUBJID", "Unique Subject Identifier"),
)
_SPDEVID = _char("SPDEVID", "Sponsor Device Identifier")
_VISIT = (
    _num("VISITNUM", "Visit Number"),
    _char("VISIT", "Visit Name"),
    _num("VISITDY", "Planned Study Day of Visit"),
)
_EPOCH = _char("EPOCH", "Epoch")

STANDARD_VARIABLES: dict[str, tuple[StandardVariable, ...]] = {
    "DM": (
        *_IDENTIFIERS,
        _char("SUBJID", "Subject Identifier for the Study"),
        _char("RFSTDTC", "Subject Reference Start Date/Time"),
        _char("RFENDTC", "Subject Reference End Date/Time"),
        _char("RFXSTDTC", "Date/Time of First Study Treatment"),
        _char("RFXENDTC", "Date/Time of Last Study Treatment"),
        _char("RFICDTC", "Date/Time of Informed Consent"),
        _char("RFPENDTC", "Date/Time of End of Participation"),
        _char("DTHDTC", "Date/Time of Death"),
        _char("DTHFL", "Subject Death Flag"),
        _char("SITEID", "Study Site Identifier"),
        _char("INVID", "Investigator Identifier"),
        _char("INVNAM", "Investigator Name"),
        _char("BRTHDTC", "Date/Time of Birth"),
        _num("AGE", "Age"),
        _char("AGEU", "Age Units"),
        _char("SEX", "Sex"),
        _char("RACE", "Race"),
        _char("ETHNIC", "Ethnicity"),
        _char("ARMCD", "Planned Arm Code"),
        _char("ARM", "Description of Planned Arm"),
        _char("ACTARMCD", "Actual Arm Code"),
        _char("ACTARM", "Description of Actual Arm"),
        _char("ARMNRS", "Reason Arm and/or Actual Arm is Null"),
        _char("ACTARMUD", "Description of Unplanned Actual Arm"),
        _char("COUNTRY", "Country"),
        _char("DMDTC", "Date/Time of Collection"),
        _num("DMDY", "Study Day of Collection"),
    ),
    "AE": (
        *_IDENTIFIERS,
        _SPDEVID,
        _num("AESEQ", "Sequence Number"),
        _char("AEGRPID", "Group ID"),
        _char("AEREFID", "Reference ID"),
        _char("AESPID", "Sponsor-Defined Identifier"),
        _char("AETERM", "Reported Term for the Adverse Event"),
        _char("AEMODIFY", "Modified Reported Term"),
        _char("AELLT", "Lowest Level Term"),
        _num("AELLTCD", "Lowest Level Term Code"),
        _char("AEDECOD", "Dictionary-Derived Term"),
        _num("AEPTCD", "Preferred Term Code"),
        _char("AEHLT", "High Level Term"),
        _num("AEHLTCD", "High Level Term Code"),
        _char("AEHLGT", "High Level Group Term"),
        _num("AEHLGTCD", "High Level Group Term Code"),
        _char("AECAT", "Category for Adverse Event"),
        _char("AESCAT", "Subcategory for Adverse Event"),
        _char("AEPRESP", "Pre-Specified Adverse Event"),
        _char("AEBODSYS", "Body System or Organ Class"),
        _num("AEBDSYCD", "Body System or Organ Class Code"),
        _char("AESOC", "Primary System Organ Class"),
        _num("AESOCCD", "Primary System Organ Class Code"),
        _char("AELOC", "Location of Event"),
        _char("AESEV", "Severity/Intensity"),
        _char("AESER", "Serious Event"),
        _char("AEACN", "Action Taken with Study Treatment"),
        _char("AEACNOTH", "Other Action Taken"),
        _char("AEREL", "Causality"),
        _char("AERELNST", "Relationship to Non-Study Treatment"),
        _char("AEPATT", "Pattern of Adverse Event"),
        _char("AEOUT", "Outcome of Adverse Event"),
        _char("AESCAN", "Involves Cancer"),
        _char("AESCONG", "Congenital Anomaly or Birth Defect"),
        _char("AESDISAB", "Persist or Signif Disability/Incapacity"),
        _char("AESDTH", "Results in Death"),
        _char("AESHOSP", "Requires or Prolongs Hospitalization"),
        _char("AESLIFE", "Is Life Threatening"),
        _char("AESOD", "Occurred with Overdose"),
        _char("AESMIE", "Other Medically Important Serious Event"),
        _char("AECONTRT", "Concomitant or Additional Trtmnt Given"),
        _char("AETOXGR", "Standard Toxicity Grade"),
        _EPOCH,
        _char("AESTDTC", "Start Date/Time of Adverse Event"),
        _char("AEENDTC", "End Date/Time of Adverse Event"),
        _num("AESTDY", "Study Day of Start of Adverse Event"),
        _num("AEENDY", "Study Day of End of Adverse Event"),
        _char("AEDUR", "Duration of Adverse Event"),
        _char("AEENRF", "End Relative to Reference Period"),
        _char("AEENRTPT", "End Relative to Reference Time Point"),
        _char("AEENTPT", "End Reference Time Point"),
    ),
    "LB": (
        *_IDENTIFIERS,
        _num("LBSEQ", "Sequence Number"),
        _char("LBGRPID", "Group ID"),
        _char("LBREFID", "Specimen ID"),
        _char("LBSPID", "Sponsor-Defined Identifier"),
        _char("LBTESTCD", "Lab Test or Examination Short Name"),
        _char("LBTEST", "Lab Test or Examination Name"),
        _char("LBCAT", "Category for Lab Test"),
        _char("LBSCAT", "Subcategory for Lab Test"),
        _char("LBORRES", "Result or Finding in Original Units"),
        _char("LBORRESU", "Original Units"),
        _char("LBORNRLO", "Reference Range Lower Limit in Orig Unit"),
        _char("LBORNRHI", "Reference Range Upper Limit in Orig Unit"),
        _char("LBSTRESC", "Character Result/Finding in Std Format"),
        _num("LBSTRESN", "Numeric Result/Finding in Standard Units"),
        _char("LBSTRESU", "Standard Units"),
        _num("LBSTNRLO", "Reference Range Lower Limit-Std Units"),
        _num("LBSTNRHI", "Reference Range Upper Limit-Std Units"),
        _char("LBSTNRC", "Reference Range for Char Rslt-Std Units"),
        _char("LBNRIND", "Reference Range Indicator"),
        _char("LBSTAT", "Completion Status"),
        _char("LBREASND", "Reason Test Not Done"),
        _char("LBNAM", "Vendor Name"),
        _char("LBLOINC", "LOINC Code"),
        _char("LBSPEC", "Specimen Type"),
        _char("LBSPCCND", "Specimen Condition"),
        _char("LBMETHOD", "Method of Test or Examination"),
        _char("LBLOBXFL", "Last Observation Before Exposure Flag"),
        _char("LBBLFL", "Baseline Flag"),
        _char("LBFAST", "Fasting Status"),
        _char("LBDRVFL", "Derived Flag"),
        _char("LBTOX", "Toxicity"),
        _char("LBTOXGR", "Standard Toxicity Grade"),
        *_VISIT,
        _EPOCH,
        _char("LBDTC", "Date/Time of Specimen Collection"),
        _char("LBENDTC", "End Date/Time of Specimen Collection"),
        _num("LBDY", "Study Day of Specimen Collection"),
        _char("LBTPT", "Planned Time Point Name"),
        _num("LBTPTNUM", "Planned Time Point Number"),
        _char("LBELTM", "Planned Elapsed Time from Time Point Ref"),
        _char("LBTPTREF", "Time Point Reference"),
        _char("LBRFTDTC", "Date/Time of Reference Time Point"),
    ),
    "VS": (
        *_IDENTIFIERS,
        _num("VSSEQ", "Sequence Number"),
        _char("VSGRPID", "Group ID"),
        _char("VSSPID", "Sponsor-Defined Identifier"),
        _char("VSTESTCD", "Vital Signs Test Short Name"),
        _char("VSTEST", "Vital Signs Test Name"),
        _char("VSCAT", "Category for Vital Signs"),
        _char("VSSCAT", "Subcategory for Vital Signs"),
        _char("VSPOS", "Vital Signs Position of Subject"),
        _char("VSORRES", "Result or Finding in Original Units"),
        _char("VSORRESU", "Original Units"),
        _char("VSSTRESC", "Character Result/Finding in Std Format"),
        _num("VSSTRESN", "Numeric Result/Finding in Standard Units"),
        _char("VSSTRESU", "Standard Units"),
        _char("VSSTAT", "Completion Status"),
        _char("VSREASND", "Reason Not Performed"),
        _char("VSLOC", "Location of Vital Signs Measurement"),
        _char("VSLAT", "Laterality"),
        _char("VSLOBXFL", "Last Observation Before Exposure Flag"),
        _char("VSBLFL", "Baseline Flag"),
        _char("VSDRVFL", "Derived Flag"),
        *_VISIT,
        _EPOCH,
        _char("VSDTC", "Date/Time of Measurements"),
        _num("VSDY", "Study Day of Vital Signs"),
        _char("VSTPT", "Planned Time Point Name"),
        _num("VSTPTNUM", "Planned Time Point Number"),
        _char("VSELTM", "Planned Elapsed Time from Time Point Ref"),
        _char("VSTPTREF", "Time Point Reference"),
        _char("VSRFTDTC", "Date/Time of Reference Time Point"),
    ),
    "EX": (
        *_IDENTIFIERS,
        _SPDEVID,
        _num("EXSEQ", "Sequence Number"),
        _char("EXGRPID", "Group ID"),
        _char("EXREFID", "Reference ID"),
        _char("EXSPID", "Sponsor-Defined Identifier"),
        _char("EXLNKID", "Link ID"),
        _char("EXLNKGRP", "Link Group ID"),
        _char("EXTRT", "Name of Treatment"),
        _char("EXCAT", "Category of Treatment"),
        _char("EXSCAT", "Subcategory of Treatment"),
        _num("EXDOSE", "Dose"),
        _char("EXDOSTXT", "Dose Description"),
        _char("EXDOSU", "Dose Units"),
        _char("EXDOSFRM", "Dose Form"),
        _char("EXDOSFRQ", "Dosing Frequency per Interval"),
        _char("EXDOSRGM", "Intended Dose Regimen"),
        _char("EXROUTE", "Route of Administration"),
        _char("EXLOT", "Lot Number"),
        _char("EXLOC", "Location of Dose Administration"),
        _char("EXLAT", "Laterality"),
        _char("EXDIR", "Directionality"),
        _char("EXFAST", "Fasting Status"),
        _char("EXADJ", "Reason for Dose Adjustment"),
        *_VISIT,
        _EPOCH,
        _char("EXSTDTC", "Start Date/Time of Treatment"),
        _char("EXENDTC", "End Date/Time of Treatment"),
        _num("EXSTDY", "Study Day of Start of Treatment"),
        _num("EXENDY", "Study Day of End of Treatment"),
        _char("EXDUR", "Duration of Treatment"),
        _char("EXTPT", "Planned Time Point Name"),
        _num("EXTPTNUM", "Planned Time Point Number"),
        _char("EXELTM", "Planned Elapsed Time from Time Point Ref"),
        _char("EXTPTREF", "Time Point Reference"),
        _char("EXRFTDTC", "Date/Time of Reference Time Point"),
    ),
    "DS": (
        *_IDENTIFIERS,
        _num("DSSEQ", "Sequence Number"),
        _char("DSGRPID", "Group ID"),
        _char("DSREFID", "Reference ID"),
        _char("DSSPID", "Sponsor-Defined Identifier"),
        _char("DSTERM", "Reported Term for the Disposition Event"),
        _char("DSDECOD", "Standardized Disposition Term"),
        _char("DSCAT", "Category for Disposition Event"),
        _char("DSSCAT", "Subcategory for Disposition Event"),
        *_VISIT,
        _EPOCH,
        _char("DSDTC", "Date/Time of Collection"),
        _char("DSSTDTC", "Start Date/Time of Disposition Event"),
        _num("DSDY", "Study Day of Collection"),
        _num("DSSTDY", "Study Day of Start of Disposition Event"),
    ),
    "CM": (
        *_IDENTIFIERS,
        _num("CMSEQ", "Sequence Number"),
        _char("CMGRPID", "Group ID"),
        _char("CMSPID", "Sponsor-Defined Identifier"),
        _char("CMTRT", "Reported Name of Drug, Med, or Therapy"),
        _char("CMMODIFY", "Modified Reported Name"),
        _char("CMDECOD", "Standardized Medication Name"),
        _char("CMCAT", "Category for Medication"),
        _char("CMSCAT", "Subcategory for Medication"),
        _char("CMPRESP", "CM Pre-specified"),
        _char("CMOCCUR", "CM Occurrence"),
        _char("CMSTAT", "Completion Status"),
        _char("CMREASND", "Reason Medication Not Collected"),
        _char("CMINDC", "Indication"),
        _char("CMCLAS", "Medication Class"),
        _char("CMCLASCD", "Medication Class Code"),
        _num("CMDOSE", "Dose per Administration"),
        _char("CMDOSTXT", "Dose Description"),
        _char("CMDOSU", "Dose Units"),
        _char("CMDOSFRM", "Dose Form"),
        _char("CMDOSFRQ", "Dosing Frequency per Interval"),
        _num("CMDOSTOT", "Total Daily Dose"),
        _char("CMDOSRGM", "Intended Dose Regimen"),
        _char("CMROUTE", "Route of Administration"),
        *_VISIT,
        _EPOCH,
        _char("CMSTDTC", "Start Date/Time of Medication"),
        _char("CMENDTC", "End Date/Time of Medication"),
        _num("CMSTDY", "Study Day of Start of Medication"),
        _num("CMENDY", "Study Day of End of Medication"),
        _char("CMDUR", "Duration"),
        _char("CMSTRF", "Start Relative to Reference Period"),
        _char("CMENRF", "End Relative to Reference Period"),
        _char("CMSTRTPT", "Start Relative to Reference Time Point"),
        _char("CMSTTPT", "Start Reference Time Point"),
        _char("CMENRTPT", "End Relative to Reference Time Point"),
        _char("CMENTPT", "End Reference Time Point"),
    ),
    "MH": (
        *_IDENTIFIERS,
        _num("MHSEQ", "Sequence Number"),
        _char("MHGRPID", "Group ID"),
        _char("MHREFID", "Reference ID"),
        _char("MHSPID", "Sponsor-Defined Identifier"),
        _char("MHTERM", "Reported Term for the Medical History"),
        _char("MHMODIFY", "Modified Reported Term"),
        _char("MHDECOD", "Dictionary-Derived Term"),
        _char("MHEVDTYP", "Medical History Event Date Type"),
        _char("MHCAT", "Category for Medical History"),
        _char("MHSCAT", "Subcategory for Medical History"),
        _char("MHPRESP", "Medical History Event Pre-Specified"),
        _char("MHOCCUR", "Medical History Occurrence"),
        _char("MHSTAT", "Completion Status"),
        _char("MHREASND", "Reason Medical History Not Collected"),
        _char("MHBODSYS", "Body System or Organ Class"),
        *_VISIT,
        _EPOCH,
        _char("MHDTC", "Date/Time of History Collection"),
        _char("MHSTDTC", "Start Date/Time of Medical History Event"),
        _char("MHENDTC", "End Date/Time of Medical History Event"),
        _num("MHDY", "Study Day of History Collection"),
        _char("MHENRF", "End Relative to Reference Period"),
        _char("MHENRTPT", "End Relative to Reference Time Point"),
        _char("MHENTPT", "End Reference Time Point"),
    ),
}
"""Per domain code (upper case), the standard variables in the IG's order."""

DOMAIN_LABELS: dict[str, str] = {
    "DM": "Demographics",
    "AE": "Adverse Events",
    "LB": "Laboratory Test Results",
    "VS": "Vital Signs",
    "EX": "Exposure",
    "DS": "Disposition",
    "CM": "Concomitant/Prior Medications",
    "MH": "Medical History",
}
"""The IG's dataset label of each domain in ``STANDARD_VARIABLES``."""

TRIAL_DESIGN_DOMAINS = frozenset({"TA", "TD", "TE", "TI", "TM", "TS", "TV", "OI"})
"""Study-level datasets: they carry no USUBJID."""

RELATIONSHIP_DATASETS = ("SUPP", "RELREC", "RELSPEC", "RELSUB")
"""Name prefixes of relationship datasets, which carry no DOMAIN variable by design."""

_ARM_VARIABLES = ("ARMCD", "ARM", "ACTARMCD", "ACTARM")

REQUIRED_VARIABLES: dict[str, dict[str, Severity]] = {
    "DM": {
        "SUBJID": "error",
        "SITEID": "error",
        "SEX": "error",
        "ARMCD": "error",
        "ARM": "error",
        "ACTARMCD": "warning",
        "ACTARM": "warning",
        "COUNTRY": "error",
    },
    "AE": {"AESEQ": "error", "AETERM": "error", "AEDECOD": "error"},
    "LB": {"LBSEQ": "error", "LBTESTCD": "error", "LBTEST": "error"},
    "VS": {"VSSEQ": "error", "VSTESTCD": "error", "VSTEST": "error"},
    "EX": {"EXSEQ": "error", "EXTRT": "error"},
    "DS": {"DSSEQ": "error", "DSTERM": "error", "DSDECOD": "error"},
    "CM": {"CMSEQ": "error", "CMTRT": "error"},
    "MH": {"MHSEQ": "error", "MHTERM": "error"},
}
"""Domain-specific Req variables beyond the identifiers, with the severity of a finding."""

# Findings-class and other general variables that are numeric whatever the domain, by the
# suffix after the two-letter domain prefix; used to type CSV columns of any domain.
_NUMERIC_SUFFIXES = frozenset(
    {
        "SEQ", "DY", "STDY", "ENDY", "STRESN", "STNRLO", "STNRHI", "DOSE", "DOSTOT",
        "TPTNUM", "REPNUM", "LLOQ", "ULOQ", "STINT", "ENINT",
    }
)
_NUMERIC_NAMES = frozenset({"VISITNUM", "VISITDY", "TAETORD", "AGE"})


def is_relationship_dataset(dataset: str) -> bool:
    """Whether a dataset name is SUPP--, RELREC, RELSPEC or RELSUB (no DOMAIN variable)."""
    return dataset.upper().startswith(RELATIONSHIP_DATASETS)


def required_variables(domain: str, dataset: str) -> dict[str, Severity]:
    """The Req variables of a dataset, with the severity of a finding when one is absent.

    Args:
        domain: the dataset's domain code (upper case).
        dataset: the dataset (member) name, to recognise relationship datasets.

    Returns:
        Variable name -> ``"error"`` or ``"warning"``, identifiers first.
    """
    if is_relationship_dataset(dataset):
        return {"STUDYID": "error"}
    required: dict[str, Severity] = {"STUDYID": "error", "DOMAIN": "error"}
    if domain not in TRIAL_DESIGN_DOMAINS:
        required["USUBJID"] = "error"
    required.update(REQUIRED_VARIABLES.get(domain, {}))
    return required


def arm_variables() -> tuple[str, ...]:
    """DM's arm variables, which may be null when ARMNRS gives the reason (SDTMIG 3.3)."""
    return _ARM_VARIABLES


def standard_type(domain: str, variable: str) -> VariableType | None:
    """The standard type of a variable in a domain, or None when the standard is silent.

    Args:
        domain: the domain code (upper case).
        variable: the variable name (upper case).

    Returns:
        ``"Num"`` or ``"Char"`` for a variable of ``STANDARD_VARIABLES[domain]``; for other
        domains ``"Num"`` for the general numeric variables (``--SEQ``, ``--DY``,
        ``--STRESN``, ``--DOSE``, VISITNUM, AGE, ...) and None otherwise.
    """
    for standard in STANDARD_VARIABLES.get(domain, ()):
        if standard.name == variable:
            return standard.type
    if variable in _NUMERIC_NAMES:
        return "Num"
    if len(domain) == 2 and variable.startswith(domain) and variable[2:] in _NUMERIC_SUFFIXES:
        return "Num"
    return None


def standard_label(domain: str, variable: str) -> str | None:
    """The IG label of a variable of a domain in ``STANDARD_VARIABLES``, else None."""
    for standard in STANDARD_VARIABLES.get(domain, ()):
        if standard.name == variable:
            return standard.label
    return None
