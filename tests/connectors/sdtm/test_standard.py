import pytest

from connectors.sdtm.standard import (
    DOMAIN_LABELS,
    REQUIRED_VARIABLES,
    STANDARD_VARIABLES,
    required_variables,
    standard_label,
    standard_type,
)

# Variables the trial views and quality checks read, by domain.
NEEDED = {
    "DM": "BRTHDTC AGE AGEU SEX RACE ETHNIC ARMCD ARM ACTARMCD ACTARM COUNTRY DMDTC DMDY "
    "RFSTDTC RFENDTC RFXSTDTC RFXENDTC RFICDTC RFPENDTC DTHDTC DTHFL SITEID SUBJID",
    "LB": "LBSEQ LBTESTCD LBTEST LBCAT LBLOINC LBSPEC LBBLFL LBLOBXFL LBSTRESN LBSTRESC "
    "LBSTRESU LBSTNRLO LBSTNRHI LBNRIND VISITNUM VISIT EPOCH LBDTC LBDY",
    "AE": "AESEQ AETERM AEDECOD AEBODSYS AESEV AESER AEREL AEACN AEOUT AESTDTC AEENDTC "
    "AESTDY EPOCH",
    "DS": "DSSEQ DSTERM DSDECOD DSCAT DSSTDTC",
    "EX": "SPDEVID EXSEQ EXTRT EXDOSE EXDOSU EXSTDTC EXENDTC",
}


@pytest.mark.parametrize("domain", sorted(STANDARD_VARIABLES))
def test_each_standard_domain_is_consistent(domain):
    variables = STANDARD_VARIABLES[domain]
    names = [variable.name for variable in variables]
    assert len(set(names)) == len(names)
    assert names[:3] == ["STUDYID", "DOMAIN", "USUBJID"]
    assert set(REQUIRED_VARIABLES[domain]) <= set(names)
    assert domain in DOMAIN_LABELS
    for variable in variables:
        assert variable.type in ("Char", "Num")
        assert variable.name == variable.name.upper() and len(variable.name) <= 8
        if variable.name.endswith("DTC"):
            assert variable.type == "Char"
        if variable.name.endswith(("SEQ", "DY", "STRESN", "NUM")):
            assert variable.type == "Num", variable.name


@pytest.mark.parametrize("domain", sorted(NEEDED))
def test_the_variables_downstream_code_reads_are_standard(domain):
    names = {variable.name for variable in STANDARD_VARIABLES[domain]}
    assert set(NEEDED[domain].split()) <= names


def test_required_variables_depend_on_the_kind_of_dataset():
    assert required_variables("DM", "DM") == {
        "STUDYID": "error", "DOMAIN": "error", "USUBJID": "error", "SUBJID": "error",
        "SITEID": "error", "SEX": "error", "ARMCD": "error", "ARM": "error",
        "ACTARMCD": "warning", "ACTARM": "warning", "COUNTRY": "error",
    }
    assert required_variables("DS", "DS") == {
        "STUDYID": "error", "DOMAIN": "error", "USUBJID": "error", "DSSEQ": "error",
        "DSTERM": "error", "DSDECOD": "error",
    }
    assert required_variables("TS", "TS") == {"STUDYID": "error", "DOMAIN": "error"}
    assert required_variables("SUPPAE", "SUPPAE") == {"STUDYID": "error"}
    assert required_variables("QS", "QS") == {
        "STUDYID": "error", "DOMAIN": "error", "USUBJID": "error",
    }


@pytest.mark.parametrize(
    ("domain", "variable", "expected"),
    [
        ("LB", "LBSTRESN", "Num"),
        ("LB", "LBORRES", "Char"),
        ("VS", "VSREPNUM", "Num"),
        ("QS", "QSSEQ", "Num"),
        ("QS", "QSSTRESN", "Num"),
        ("QS", "QSORRES", None),
        ("QS", "VISITNUM", "Num"),
        ("QS", "LBSEQ", None),
        ("DM", "AGE", "Num"),
    ],
)
def test_standard_types_come_from_the_tables_or_the_general_suffixes(domain, variable, expected):
    assert standard_type(domain, variable) == expected


def test_labels_come_only_from_the_standard_tables():
    assert standard_label("LB", "LBLOINC") == "LOINC Code"
    assert standard_label("VS", "VSREPNUM") is None
    assert standard_label("QS", "QSSEQ") is None
