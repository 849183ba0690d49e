"""The trials suites on hand-built frames (from the trials contract): clean frames pass, and a
frame with one defect fails exactly the expectation that names it."""

import hashlib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from connectors.sdtm.iso8601 import is_sdtm_datetime
from connectors.sdtm.standard import STANDARD_VARIABLES
from mcp_catalog.governance.deid import AGE_CAP as VIEW_AGE_CAP
from mcp_catalog.governance.deid import Pseudonyms, keyed_hash
from mcp_catalog.governance.trials import ARM_STATUS as VIEW_ARM_STATUS
from mcp_catalog.governance.trials import TRIAL_VIEWS
from mcp_catalog.governance.views import ViewContext, build_view
from pipelines import trials as pipeline
from quality.suite_tables import TRIAL_DOMAINS, TRIAL_SUITE_TABLES
from quality.suites import SUITE_TABLES, references_for, suite_for
from quality.suites.gold import FORBIDDEN_COLUMNS
from quality.suites.trials import (
    AGE_CAP,
    ARM_STATUS,
    LINK_STATUS,
    LINKAGE_DTYPES,
    PROVENANCE_DTYPES,
    TRIAL_GOLD_VIEWS,
    TRIAL_SUITES,
    silver_dtypes,
)
from quality.validation import validate_table
from tests.quality.frames import (
    assert_only_these_fail,
    defect_params,
    failed,
    set_row,
    validator,
)

DM = "silver/trials/dm"
AE = "silver/trials/ae"
LB = "silver/trials/lb"
VS = "silver/trials/vs"
EX = "silver/trials/ex"
DS = "silver/trials/ds"
CM = "silver/trials/cm"
MH = "silver/trials/mh"
SUBJECTS = "gold/research/trial_subjects"
ADVERSE_EVENTS = "gold/research/trial_adverse_events"
LAB_RESULTS = "gold/research/trial_lab_results"
GOLD_PATIENTS = "gold/research/patients"

PILOT, BIOFED = "CDISCPILOT01", "BIOFED-01"
S1015, S1023, S1028, B0001 = "01-701-1015", "01-701-1023", "01-701-1028", "BF01-0001"
PERSON_1 = hashlib.md5(b"person 1").hexdigest()
PERSON_2 = hashlib.md5(b"person 2").hexdigest()
P1, P2 = "P-" + "a1" * 10, "P-" + "b2" * 10
INGESTED = datetime(2026, 11, 1, 12, tzinfo=UTC)
FUTURE = date.today() + timedelta(days=400)

SUBJECT_LINKS = {
    (PILOT, S1015): (PERSON_1, "linked"),
    (PILOT, S1023): (PERSON_2, "linked"),
    (PILOT, S1028): (None, "not_enrolled"),
    (BIOFED, B0001): (None, "unknown_mrn"),
}


def _key(prefix: str, name: str) -> str:
    return f"{prefix}-{hashlib.sha256(name.encode()).hexdigest()[:20]}"


# --- good silver frames, written from the trials contract ----------------------------------


def _domain_frame(domain: str, rows: list[dict[str, object]]) -> pl.DataFrame:
    """Rows of one silver domain: each row's subject and values, the rest filled in the way
    the pipeline does (DOMAIN, linkage from the enrolment list, provenance)."""
    dtypes = silver_dtypes(domain)
    study_file = {PILOT: "sdtm_cdiscpilot01", BIOFED: "BIOFED-01"}
    filled = []
    for number, values in enumerate(rows, start=1):
        row: dict[str, object] = dict.fromkeys(dtypes)
        row.update(values)
        person_key, link_status = SUBJECT_LINKS[(str(row["studyid"]), str(row["usubjid"]))]
        source_file = f"{study_file[str(row['studyid'])]}/{domain}.xpt"
        row.update(
            domain=domain.upper(),
            person_key=person_key,
            link_status=link_status,
            source_file=source_file,
            source_locator=f"row:{number}",
            dataset=domain.upper(),
            source_sha256=hashlib.sha256(source_file.encode()).hexdigest(),
            ingested_at=INGESTED,
        )
        row.update({k: v for k, v in values.items() if k in LINKAGE_DTYPES})
        filled.append(row)
    return pl.DataFrame(filled, schema=dtypes)


def dm() -> pl.DataFrame:
    common = {"studyid": PILOT, "ageu": "YEARS", "country": "USA", "siteid": "701"}
    return _domain_frame(
        "dm",
        [
            {
                **common,
                "usubjid": S1015,
                "subjid": "1015",
                "rfstdtc": "2014-01-02",
                "rfendtc": "2014-07-02",
                "rficdtc": "2013-12-26",
                "rfpendtc": "2014-07-02T11:45",
                "brthdtc": "1950",
                "age": 63.0,
                "sex": "F",
                "race": "WHITE",
                "ethnic": "HISPANIC OR LATINO",
                "armcd": "Pbo",
                "arm": "Placebo",
                "actarmcd": "Pbo",
                "actarm": "Placebo",
                "dmdtc": "2013-12-26",
                "dmdy": -7.0,
            },
            {
                **common,
                "usubjid": S1023,
                "subjid": "1023",
                "rfstdtc": "2012-08-05",
                "rfendtc": "2012-09-02",
                "dthdtc": "2012-09-02",
                "dthfl": "Y",
                "age": 91.0,
                "sex": "M",
                "race": "WHITE",
                "ethnic": "NOT HISPANIC OR LATINO",
                "armcd": "Xan_Hi",
                "arm": "Xanomeline High Dose",
                "actarmcd": "Xan_Hi",
                "actarm": "Xanomeline High Dose",
            },
            {
                **common,
                "usubjid": S1028,
                "subjid": "1028",
                "age": 71.0,
                "sex": "M",
                "armcd": "Scrnfail",
                "arm": "Screen Failure",
            },
            {
                "studyid": BIOFED,
                "usubjid": B0001,
                "subjid": "0001",
                "siteid": "A01",
                "country": "USA",
                "rfstdtc": "2025-05-06T09:30+01:00",
                "age": 54.0,
                "ageu": "YEARS",
                "sex": "UNDIFFERENTIATED",
                "armcd": "ARM-B",
                "arm": "Arm B",
            },
        ],
    )


def ae() -> pl.DataFrame:
    common = {"studyid": PILOT, "aesev": "MILD", "aeser": "N", "aesdth": "N", "aeacn": "UNKNOWN"}
    return _domain_frame(
        "ae",
        [
            {
                **common,
                "usubjid": S1015,
                "aeseq": 1.0,
                "aeterm": "APPLICATION SITE ERYTHEMA",
                "aedecod": "APPLICATION SITE ERYTHEMA",
                "aeout": "NOT RECOVERED/NOT RESOLVED",
                "aestdtc": "2014-01-03",
                "aestdy": 2.0,
            },
            {
                **common,
                "usubjid": S1015,
                "aeseq": 2.0,
                "aeterm": "DIARRHOEA",
                "aedecod": "DIARRHOEA",
                "aeout": "RECOVERED/RESOLVED",
                "aestdtc": "2014-01-09",
                "aeendtc": "2014-01",
                "aestdy": 8.0,
            },
            {
                **common,
                "usubjid": S1023,
                "aeseq": 1.0,
                "aeterm": "SINUS BRADYCARDIA",
                "aedecod": "SINUS BRADYCARDIA",
                "aesev": "SEVERE",
                "aeser": "Y",
                "aesdth": "Y",
                "aeacn": "DRUG WITHDRAWN",
                "aeout": "FATAL",
                "aestdtc": "2012-08-26",
                "aeendtc": "2012-09-02",
                "aestdy": 22.0,
                "aeendy": 29.0,
            },
        ],
    )


def lb() -> pl.DataFrame:
    common = {"studyid": PILOT, "usubjid": S1015, "lbtestcd": "GLUC", "lbtest": "Glucose"}
    return _domain_frame(
        "lb",
        [
            {
                **common,
                "lbseq": 1.0,
                "lbcat": "CHEMISTRY",
                "lbloinc": "2345-7",
                "lbstresc": "5.3",
                "lbstresn": 5.3,
                "lbstresu": "mmol/L",
                "lbstnrlo": 3.9,
                "lbstnrhi": 5.6,
                "lbnrind": "NORMAL",
                "lbblfl": "Y",
                "visitnum": 1.0,
                "visit": "SCREENING 1",
                "lbdtc": "2013-12-26T10:35",
                "lbdy": -7.0,
            },
            {
                **common,
                "lbseq": 2.0,
                "lbstresc": "7.0",
                "lbstresn": 7.0,
                "lbstresu": "mmol/L",
                "lbnrind": "HIGH",
                "lblobxfl": "Y",
                "visitnum": 4.0,
                "visit": "WEEK 2",
                "lbdtc": "2014-01-16T09:00:00.5",
                "lbdy": 15.0,
            },
            {
                "studyid": BIOFED,
                "usubjid": B0001,
                "lbseq": 1.0,
                "lbtestcd": "HGB",
                "lbtest": "Hemoglobin",
                "lbdtc": "2025-05-06T09:45Z",
            },
        ],
    )


def vs() -> pl.DataFrame:
    common = {"studyid": PILOT, "usubjid": S1023, "vstestcd": "SYSBP", "vstest": "Systolic BP"}
    return _domain_frame(
        "vs",
        [
            {**common, "vsseq": 1.0, "vsstresn": 138.0, "vsblfl": "Y", "vsdtc": "2012-08-05"},
            {**common, "vsseq": 2.0, "vsstresn": 142.0, "vsdtc": "2012-08-19T-:15", "vsdy": 15.0},
        ],
    )


def ex() -> pl.DataFrame:
    common = {"studyid": PILOT, "usubjid": S1015, "extrt": "PLACEBO", "exdose": 0.0}
    return _domain_frame(
        "ex",
        [
            {**common, "exseq": 1.0, "exstdtc": "2014-01-02", "exendtc": "2014-01-16"},
            {**common, "exseq": 2.0, "exstdtc": "2014-01-17", "exstdy": 16.0},
        ],
    )


def ds() -> pl.DataFrame:
    return _domain_frame(
        "ds",
        [
            {
                "studyid": PILOT,
                "usubjid": S1015,
                "dsseq": 1.0,
                "dsterm": "INFORMED CONSENT OBTAINED",
                "dsdecod": "INFORMED CONSENT OBTAINED",
                "dscat": "PROTOCOL MILESTONE",
                "dsstdtc": "2013-12-26",
            },
            {
                "studyid": PILOT,
                "usubjid": S1023,
                "dsseq": 1.0,
                "dsterm": "DEATH",
                "dsdecod": "DEATH",
                "dscat": "DISPOSITION EVENT",
                "dsstdtc": "2012-09-02",
            },
        ],
    )


def cm() -> pl.DataFrame:
    return _domain_frame(
        "cm",
        [
            {
                "studyid": PILOT,
                "usubjid": S1015,
                "cmseq": 1.0,
                "cmtrt": "ASPIRIN",
                "cmstdtc": "2003",
                "cmendtc": "2014-01-01/2014-01-03",
            },
        ],
    )


def mh() -> pl.DataFrame:
    return _domain_frame(
        "mh",
        [
            {
                "studyid": BIOFED,
                "usubjid": B0001,
                "mhseq": 1.0,
                "mhterm": "HYPERTENSION",
                "mhstdtc": "2010---15",
                "mhdtc": "--05-06",
            },
        ],
    )


# --- good gold frames ------------------------------------------------------------------------


def gold_patients() -> pl.DataFrame:
    return pl.DataFrame({"person_pseudonym": [P1, P2]})


def gold_subjects() -> pl.DataFrame:
    schema: dict[str, pl.DataType] = {
        "person_pseudonym": pl.String(),
        "study_id": pl.String(),
        "arm": pl.String(),
        "arm_code": pl.String(),
        "actual_arm": pl.String(),
        "arm_status": pl.String(),
        "age": pl.Int64(),
        "sex": pl.String(),
        "race": pl.String(),
        "ethnicity": pl.String(),
        "country": pl.String(),
        "reference_start": pl.Date(),
        "reference_end": pl.Date(),
        "informed_consent_date": pl.Date(),
        "disposition": pl.String(),
        "died": pl.Boolean(),
    }
    rows = [
        (P1, PILOT, "Placebo", "Pbo", "Placebo", "unblinded", 63, "F", "WHITE")
        + ("HISPANIC OR LATINO", "USA", date(2013, 12, 20), date(2014, 6, 20))
        + (date(2013, 12, 14), None, False),
        (P2, PILOT, "Xanomeline High Dose", "Xan_Hi", "Xanomeline High Dose", "unblinded")
        + (AGE_CAP, "M", "WHITE", "NOT HISPANIC OR LATINO", "USA", date(2012, 9, 1))
        + (date(2012, 9, 29), None, "DEATH", True),
        (P1, BIOFED, None, None, None, "blinded", 54, "F", None, None, "USA")
        + (date(2025, 4, 24), None, None, None, False),
    ]
    return pl.DataFrame(rows, schema=schema, orient="row")


def gold_adverse_events() -> pl.DataFrame:
    schema: dict[str, pl.DataType] = {
        "record_key": pl.String(),
        "person_pseudonym": pl.String(),
        "study_id": pl.String(),
        "arm": pl.String(),
        "arm_status": pl.String(),
        "term": pl.String(),
        "body_system": pl.String(),
        "severity": pl.String(),
        "serious": pl.Boolean(),
        "relationship": pl.String(),
        "action_taken": pl.String(),
        "outcome": pl.String(),
        "start_date": pl.Date(),
        "end_date": pl.Date(),
        "start_day": pl.Int64(),
        "epoch": pl.String(),
    }
    rows = [
        (_key("A", "ae-1"), P1, PILOT, "Placebo", "unblinded", "APPLICATION SITE ERYTHEMA")
        + ("GENERAL DISORDERS", "MILD", False, "POSSIBLE", "UNKNOWN")
        + ("NOT RECOVERED/NOT RESOLVED", date(2013, 12, 21), None, 2, "TREATMENT"),
        (_key("A", "ae-2"), P2, PILOT, "Xanomeline High Dose", "unblinded")
        + ("SINUS BRADYCARDIA", "CARDIAC DISORDERS", "SEVERE", True, "PROBABLE")
        + ("DRUG WITHDRAWN", "FATAL", date(2012, 9, 22), date(2012, 9, 29), 22, "TREATMENT"),
        (_key("A", "ae-3"), P1, BIOFED, None, "blinded", "HEADACHE", None, "MODERATE", None)
        + (None, None, None, None, None, -3, "SCREENING"),
    ]
    return pl.DataFrame(rows, schema=schema, orient="row")


def gold_lab_results() -> pl.DataFrame:
    schema: dict[str, pl.DataType] = {
        "record_key": pl.String(),
        "person_pseudonym": pl.String(),
        "study_id": pl.String(),
        "arm": pl.String(),
        "arm_status": pl.String(),
        "test_code": pl.String(),
        "test_name": pl.String(),
        "category": pl.String(),
        "loinc": pl.String(),
        "result": pl.Float64(),
        "result_text": pl.String(),
        "unit": pl.String(),
        "normal_low": pl.Float64(),
        "normal_high": pl.Float64(),
        "normal_indicator": pl.String(),
        "baseline": pl.Boolean(),
        "visit": pl.String(),
        "visit_number": pl.Float64(),
        "study_day": pl.Int64(),
        "date": pl.Date(),
    }
    glucose = ("GLUC", "Glucose", "CHEMISTRY", "2345-7")
    rows = [
        (_key("B", "lb-1"), P1, PILOT, "Placebo", "unblinded", *glucose, 5.3, "5.3", "mmol/L")
        + (3.9, 5.6, "NORMAL", True, "SCREENING 1", 1.0, -7, date(2013, 12, 20)),
        (_key("B", "lb-2"), P1, PILOT, "Placebo", "unblinded", *glucose, 7.0, "7.0", "mmol/L")
        + (3.9, 5.6, "HIGH", False, "WEEK 2", 4.0, 15, date(2014, 1, 10)),
        (_key("B", "lb-3"), P1, BIOFED, None, "blinded", "HGB", "Hemoglobin", None, None)
        + (None, None, None, None, None, None, False, None, None, None, date(2025, 4, 24)),
    ]
    return pl.DataFrame(rows, schema=schema, orient="row")


GOOD: dict[str, Callable[[], pl.DataFrame]] = {
    DM: dm,
    AE: ae,
    LB: lb,
    VS: vs,
    EX: ex,
    DS: ds,
    CM: cm,
    MH: mh,
    SUBJECTS: gold_subjects,
    ADVERSE_EVENTS: gold_adverse_events,
    LAB_RESULTS: gold_lab_results,
}
REFERENCES: dict[str, Callable[[], pl.DataFrame]] = {
    DM: dm,
    GOLD_PATIENTS: gold_patients,
    SUBJECTS: gold_subjects,
}

_validate = validator(GOOD, REFERENCES)


def _dup_first(frame: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([frame, frame.head(1)])


# --- registration and contracts ------------------------------------------------------------


def test_every_trials_table_is_registered_with_its_suite():
    assert set(TRIAL_SUITE_TABLES) == set(TRIAL_SUITES) == set(GOOD)
    assert set(TRIAL_SUITE_TABLES) <= set(SUITE_TABLES)
    assert len(SUITE_TABLES) == len(set(SUITE_TABLES))
    assert [suite_for(t).table for t in TRIAL_SUITE_TABLES] == list(TRIAL_SUITE_TABLES)


def test_the_domains_are_those_the_sdtm_standard_lists():
    assert {d.upper() for d in TRIAL_DOMAINS} == set(STANDARD_VARIABLES)


def test_events_and_views_read_the_tables_they_point_into():
    assert {t: references_for(t) for t in TRIAL_SUITE_TABLES} == {
        DM: (),
        **{f"silver/trials/{d}": (DM,) for d in TRIAL_DOMAINS if d != "dm"},
        SUBJECTS: (GOLD_PATIENTS, DM),
        ADVERSE_EVENTS: (GOLD_PATIENTS, SUBJECTS, DM),
        LAB_RESULTS: (GOLD_PATIENTS, SUBJECTS, DM),
    }


@pytest.mark.parametrize("table", TRIAL_SUITE_TABLES)
def test_each_trials_suite_checks_its_columns_first_and_describes_every_check_once(table):
    suite = suite_for(table)
    assert suite.checks[0].expectation == "expect_table_columns_to_match_set"
    descriptions = [c.description for c in suite.checks]
    assert len(descriptions) == len(set(descriptions))
    assert set(suite.gx_columns()) <= set(suite.columns)


@pytest.mark.parametrize("domain", TRIAL_DOMAINS)
def test_silver_columns_are_the_linkage_the_standard_variables_and_provenance(domain):
    standard = [v.name.lower() for v in STANDARD_VARIABLES[domain.upper()]]
    columns = suite_for(f"silver/trials/{domain}").columns
    assert columns == (*LINKAGE_DTYPES, *standard, *PROVENANCE_DTYPES)
    assert columns == tuple(GOOD[f"silver/trials/{domain}"]().columns)


@pytest.mark.parametrize("domain", TRIAL_DOMAINS)
def test_silver_columns_and_dtypes_are_the_pipelines(domain):
    assert silver_dtypes(domain) == pipeline.silver_schema(domain)


def test_domains_keys_and_link_statuses_are_the_pipelines():
    assert TRIAL_DOMAINS == pipeline.DOMAINS
    assert LINK_STATUS == pipeline.LINK_STATUSES
    for domain in TRIAL_DOMAINS:
        (key,) = [
            c
            for c in suite_for(f"silver/trials/{domain}").checks
            if c.expectation == "expect_compound_columns_to_be_unique"
        ]
        assert list(key.kwargs["column_list"]) == pipeline.domain_key(domain)


def test_trials_research_suites_match_the_catalog_views():
    specs = {spec.path: spec for spec in TRIAL_VIEWS}
    assert list(specs) == [f"gold/research/{v.name}" for v in TRIAL_GOLD_VIEWS]
    for view in TRIAL_GOLD_VIEWS:
        spec = specs[f"gold/research/{view.name}"]
        assert view.columns == tuple(c.name for c in spec.columns), view.name
        assert view.record_prefix == spec.record_prefix, view.name
        assert suite_for(spec.path).columns == view.columns
    for table, frame in GOOD.items():
        assert suite_for(table).columns == tuple(frame().columns), table


def test_research_views_carry_no_identifier_columns():
    identifiers = {*FORBIDDEN_COLUMNS, "usubjid", "subjid", "siteid", "invid", "invnam"}
    for view in TRIAL_GOLD_VIEWS:
        assert not set(view.columns) & identifiers, view.name


def test_blinding_terms_and_the_age_cap_are_the_views():
    assert ARM_STATUS == VIEW_ARM_STATUS
    assert AGE_CAP == VIEW_AGE_CAP


@pytest.mark.parametrize("table", TRIAL_SUITE_TABLES)
def test_clean_trials_frames_pass(table):
    result = _validate(table)
    assert failed(result) == {}
    assert result.success
    assert len(result.outcomes) == len(suite_for(table).checks)


@pytest.mark.parametrize("table", TRIAL_SUITE_TABLES)
def test_each_trials_suite_passes_on_an_empty_table(table):
    assert failed(_validate(table, GOOD[table]().clear())) == {}


@pytest.mark.parametrize("unblinded", [frozenset(), frozenset({PILOT})])
def test_the_catalogs_trial_views_built_from_good_silver_pass_the_gold_suites(unblinded):
    key = b"pseudonym key for the test......"
    context = ViewContext(
        pseudonyms=Pseudonyms(key=key),
        shifts=pl.DataFrame({"person_key": [PERSON_1, PERSON_2], "shift_days": [-10, 12]}),
        consented=pl.Series([PERSON_1, PERSON_2]),
        reference_date=date(2026, 1, 1),
        unblinded_studies=unblinded,
    )
    silver = {DM: dm(), DS: ds(), AE: ae(), LB: lb()}
    tables = {
        **silver,
        **{spec.path: build_view(spec, silver, context) for spec in TRIAL_VIEWS},
        GOLD_PATIENTS: pl.DataFrame(
            {"person_pseudonym": keyed_hash(key, [PERSON_1, PERSON_2], prefix="P")}
        ),
    }
    # Only the two linked subjects of the pilot study are in the views.
    assert [tables[t].height for t in (SUBJECTS, ADVERSE_EVENTS, LAB_RESULTS)] == [2, 3, 2]
    shown = tables[SUBJECTS].get_column("arm").is_not_null().all()
    assert shown is bool(unblinded)
    for table in (SUBJECTS, ADVERSE_EVENTS, LAB_RESULTS):
        references = {r: tables[r] for r in references_for(table)}
        assert failed(validate_table(table, tables[table], references=references)) == {}, table


# --- ISO 8601 ------------------------------------------------------------------------------

VALID_DTC = (
    "2003-12-15T13:14:17.123",
    "2003-12-15T13:14:17",
    "2003-12-15T13:14",
    "2003-12-15T13",
    "2003-12-15",
    "2003-12",
    "2003",
    "2003---15",
    "--12-15",
    "-----T07:15",
    "2003-12-15T-:15",
    "2003-12-15T13:-:17",
    "2003-12-15T13:14Z",
    "2003-12-15T13:14+01:00",
    "2003-12-01/2003-12-10",
)
INVALID_DTC = (
    "12/15/2003",
    "2003-13-01",
    "2003-12-32",
    "2003-1-5",
    "2003-12-15 13:14",
    "2003-12-15T24:00",
    "20031215",
    "2003-12-15T13:14:17,5",
    "15DEC2003",
    "2003-02-30",
    "2003-12-",
    "2003-12T10:00",
    "",
)


def test_the_dtc_examples_are_the_sdtm_readers_verdicts():
    assert all(is_sdtm_datetime(v) for v in VALID_DTC)
    assert not any(is_sdtm_datetime(v) for v in INVALID_DTC)


def test_dtc_values_are_checked_in_great_expectations():
    values = (*VALID_DTC, *INVALID_DTC)
    one = cm()
    frame = pl.concat([one] * len(values)).with_columns(
        pl.Series("cmstdtc", values, dtype=pl.String()),
        pl.Series("cmseq", [float(n) for n in range(1, len(values) + 1)]),
    )
    assert failed(_validate(CM, frame)) == {
        "cmstdtc is an ISO 8601 date or time (SDTM --DTC)": len(INVALID_DTC)
    }


# --- single defects ------------------------------------------------------------------------

ARM_BLINDED = "{} is empty wherever arm_status is blinded (blinding)"
ONE_STATUS = "every row of a study has the same arm_status"
IN_DM = "every (studyid, usubjid) is the (studyid, usubjid) of a row of silver/trials/dm"
IN_SUBJECTS = (
    "every (study_id, person_pseudonym) is the (study_id, person_pseudonym) of a row of "
    "gold/research/trial_subjects"
)
NO_USUBJID = "no text value is a usubjid of silver/trials/dm"
SHIFTED = "{} is empty or between 1900 and a year past today (dates are shifted)"

DEFECTS = [
    # silver dm
    (DM, "a subject listed twice", _dup_first, {"(studyid, usubjid) is unique": 2}),
    (
        DM,
        "a subject without USUBJID",
        lambda f: set_row(f, 2, usubjid=None),
        {"usubjid is set on every row": 1},
    ),
    (
        DM,
        "a row routed to the wrong domain",
        lambda f: set_row(f, 1, domain="AE"),
        {"domain is DM on every row (rows are routed by their DOMAIN value)": 1},
    ),
    (
        DM,
        "an unknown link status",
        lambda f: set_row(f, 3, link_status="enrolled"),
        {"link_status holds only trial link status codes": 1},
    ),
    (
        DM,
        "an enrolled subject without a person",
        lambda f: set_row(f, 0, person_key=None),
        {"person_key is set exactly where link_status is linked": 1},
    ),
    (
        DM,
        "an unenrolled subject with a person",
        lambda f: set_row(f, 2, person_key=PERSON_1),
        {"person_key is set exactly where link_status is linked": 1},
    ),
    (
        DM,
        "a US date format (only a warning)",
        lambda f: set_row(f, 0, rfstdtc="01/02/2014"),
        {"rfstdtc is an ISO 8601 date or time (SDTM --DTC)": 1},
    ),
    (
        DM,
        "a birth month 13 (only a warning)",
        lambda f: set_row(f, 0, brthdtc="1950-13"),
        {"brthdtc is an ISO 8601 date or time (SDTM --DTC)": 1},
    ),
    (
        DM,
        "sex spelt out (only a warning)",
        lambda f: set_row(f, 1, sex="MALE"),
        {"sex holds only CDISC SEX (C66731) codes": 1},
    ),
    (
        DM,
        "an age unit outside AGEU (only a warning)",
        lambda f: set_row(f, 0, ageu="Y"),
        {"ageu holds only CDISC AGEU (C66781) codes": 1},
    ),
    (
        DM,
        "an ethnicity outside ETHNIC (only a warning)",
        lambda f: set_row(f, 0, ethnic="LATINO"),
        {"ethnic holds only CDISC ETHNIC (C66790) codes": 1},
    ),
    (
        DM,
        "a death flag N (only a warning)",
        lambda f: set_row(f, 0, dthfl="N"),
        {"dthfl holds only Y (or empty) death flag codes": 1},
    ),
    (
        DM,
        "a negative age (only a warning)",
        lambda f: set_row(f, 2, age=-1.0),
        {"age is not negative": 1},
    ),
    (
        DM,
        "a study day 0 (only a warning)",
        lambda f: set_row(f, 0, dmdy=0.0),
        {"dmdy is a whole number other than 0 (SDTM has no study day 0)": 1},
    ),
    (
        DM,
        "an age read as text",
        lambda f: f.with_columns(pl.col("age").cast(pl.String)),
        {
            "the columns of silver SDTM DM have their contract dtypes (Char is text, Num is "
            "Float64)": 4,
            # Great Expectations cannot compare text with a number: no count, still a failure.
            "age is not negative": None,
        },
    ),
    (
        DM,
        "a column the standard does not list",
        lambda f: f.with_columns(pl.lit("x").alias("dmxfl")),
        {"the columns are exactly those of silver SDTM DM": 1},
    ),
    # silver ae
    (AE, "an event listed twice", _dup_first, {"(studyid, usubjid, aeseq) is unique": 2}),
    (
        AE,
        "an event without AESEQ",
        lambda f: set_row(f, 2, aeseq=None),
        {"aeseq is set on every row": 1},
    ),
    (
        AE,
        "a fractional sequence number (only a warning)",
        lambda f: set_row(f, 2, aeseq=1.5),
        {"aeseq is a positive whole number": 1},
    ),
    (
        AE,
        "seriousness spelt out (only a warning)",
        lambda f: set_row(f, 2, aeser="YES"),
        {"aeser holds only Y or N seriousness codes": 1},
    ),
    (
        AE,
        "a toxicity grade as severity (only a warning)",
        lambda f: set_row(f, 0, aesev="GRADE 1"),
        {"aesev holds only CDISC AESEV (C66769) codes": 1},
    ),
    (
        AE,
        "an outcome outside OUT (only a warning)",
        lambda f: set_row(f, 1, aeout="RESOLVED"),
        {"aeout holds only CDISC OUT (C66768) codes": 1},
    ),
    (
        AE,
        "an action outside ACN (only a warning)",
        lambda f: set_row(f, 1, aeacn="NONE"),
        {"aeacn holds only CDISC ACN (C66767) codes": 1},
    ),
    (
        AE,
        "a seriousness criterion outside NY (only a warning)",
        lambda f: set_row(f, 2, aesdth="DEATH"),
        {"aesdth holds only CDISC NY (C66742) codes": 1},
    ),
    (
        AE,
        "an event of a subject DM lacks (only a warning)",
        lambda f: set_row(f, 1, usubjid="01-701-9999", person_key=None, link_status="not_enrolled"),
        {IN_DM: 1},
    ),
    (
        AE,
        "an event linked to another person than its subject",
        lambda f: set_row(f, 2, person_key=PERSON_1),
        {"every subject's person_key is the one its row of silver/trials/dm carries": 1},
    ),
    (
        AE,
        "a study day 0 (only a warning)",
        lambda f: set_row(f, 0, aestdy=0.0),
        {"aestdy is a whole number other than 0 (SDTM has no study day 0)": 1},
    ),
    (
        AE,
        "a date with a space for the T (only a warning)",
        lambda f: set_row(f, 0, aestdtc="2014-01-03 10:00"),
        {"aestdtc is an ISO 8601 date or time (SDTM --DTC)": 1},
    ),
    # silver lb, vs, ex, ds, cm, mh
    (LB, "a result listed twice", _dup_first, {"(studyid, usubjid, lbseq) is unique": 2}),
    (
        LB,
        "a LOINC with a wrong check digit (only a warning)",
        lambda f: set_row(f, 0, lbloinc="2345-6"),
        {"lbloinc is a LOINC code with a valid Mod 10 check digit": 1},
    ),
    (
        LB,
        "a reference indicator abbreviated (only a warning)",
        lambda f: set_row(f, 1, lbnrind="H"),
        {"lbnrind holds only CDISC NRIND (C78736) codes": 1},
    ),
    (
        LB,
        "a baseline flag N (only a warning)",
        lambda f: set_row(f, 1, lbblfl="N"),
        {"lbblfl holds only Y (or empty) baseline flag codes": 1},
    ),
    (
        LB,
        "a result of a study the DM files lack (only a warning)",
        lambda f: set_row(f, 2, studyid="BIOFED-02", usubjid=B0001),
        {IN_DM: 1},
    ),
    (
        VS,
        "a baseline flag N (only a warning)",
        lambda f: set_row(f, 1, vsblfl="N"),
        {"vsblfl holds only Y (or empty) baseline flag codes": 1},
    ),
    (VS, "a measurement listed twice", _dup_first, {"(studyid, usubjid, vsseq) is unique": 2}),
    (
        EX,
        "an exposure without a start in ISO 8601 (only a warning)",
        lambda f: set_row(f, 1, exstdtc="17JAN2014"),
        {"exstdtc is an ISO 8601 date or time (SDTM --DTC)": 1},
    ),
    (
        EX,
        "a row without provenance",
        lambda f: set_row(f, 0, source_locator=None),
        {"source_locator is set on every row": 1},
    ),
    (DS, "a disposition listed twice", _dup_first, {"(studyid, usubjid, dsseq) is unique": 2}),
    (
        DS,
        "an unknown link status",
        lambda f: set_row(f, 0, link_status="linked_by_name"),
        {
            "link_status holds only trial link status codes": 1,
            "person_key is set exactly where link_status is linked": 1,
        },
    ),
    (
        CM,
        "a sequence number of 0 (only a warning)",
        lambda f: set_row(f, 0, cmseq=0.0),
        {"cmseq is a positive whole number": 1},
    ),
    (
        MH,
        "a row routed to the wrong domain",
        lambda f: set_row(f, 0, domain="MB"),
        {"domain is MH on every row (rows are routed by their DOMAIN value)": 1},
    ),
    (
        MH,
        "a hash of the wrong shape",
        lambda f: set_row(f, 0, source_sha256="sha"),
        {"source_sha256 is 64 lowercase hex characters": 1},
    ),
    # gold subjects
    (
        SUBJECTS,
        "an arm shown while blinded",
        lambda f: set_row(f, 2, arm="Arm B"),
        {ARM_BLINDED.format("arm"): 1},
    ),
    (
        SUBJECTS,
        "an arm code shown while blinded",
        lambda f: set_row(f, 2, arm_code="ARM-B"),
        {ARM_BLINDED.format("arm_code"): 1},
    ),
    (
        SUBJECTS,
        "an actual arm shown while blinded",
        lambda f: set_row(f, 2, actual_arm="Arm B"),
        {ARM_BLINDED.format("actual_arm"): 1},
    ),
    (
        SUBJECTS,
        "one subject of an unblinded study shown blinded",
        lambda f: set_row(f, 1, arm_status="blinded", arm=None, arm_code=None, actual_arm=None),
        {ONE_STATUS: 2},
    ),
    (
        SUBJECTS,
        "an arm status outside the set",
        lambda f: set_row(f, 2, arm_status="masked"),
        {"arm_status holds only arm status (blinded or unblinded) codes": 1},
    ),
    (
        SUBJECTS,
        "a subject without an arm status",
        lambda f: set_row(f, 2, arm_status=None),
        {"arm_status is set on every row": 1},
    ),
    (
        SUBJECTS,
        "an age over the cap",
        lambda f: set_row(f, 1, age=91),
        {"age is between 0 and 90 (ages over 89 are reported as 90)": 1},
    ),
    (
        SUBJECTS,
        "a person listed twice for a study",
        _dup_first,
        {"(study_id, person_pseudonym) is unique": 2},
    ),
    (
        SUBJECTS,
        "a person outside the patients view",
        lambda f: set_row(f, 1, person_pseudonym="P-" + "c3" * 10),
        {"every person_pseudonym is the person_pseudonym of a row of gold/research/patients": 1},
    ),
    (
        SUBJECTS,
        "sex outside the codelist",
        lambda f: set_row(f, 0, sex="FEMALE"),
        {"sex holds only CDISC SEX (C66731) codes": 1},
    ),
    (
        SUBJECTS,
        "an ethnicity outside the codelist (only a warning)",
        lambda f: set_row(f, 0, ethnicity="LATINO"),
        {"ethnicity holds only CDISC ETHNIC (C66790) codes": 1},
    ),
    (
        SUBJECTS,
        "a USUBJID kept in a column",
        lambda f: set_row(f, 0, race=S1015),
        {NO_USUBJID: 1},
    ),
    (
        SUBJECTS,
        "the USUBJID column",
        lambda f: f.with_columns(pl.lit(S1023).alias("usubjid")),
        {
            "the columns are exactly those of the research view trial_subjects (no identifiers)": 1,
            NO_USUBJID: 3,
        },
    ),
    (
        SUBJECTS,
        "a reference start before 1900 (only a warning)",
        lambda f: set_row(f, 0, reference_start=date(1013, 12, 20)),
        {SHIFTED.format("reference_start"): 1},
    ),
    (
        SUBJECTS,
        "a consent date too far ahead (only a warning)",
        lambda f: set_row(f, 1, informed_consent_date=FUTURE),
        {SHIFTED.format("informed_consent_date"): 1},
    ),
    (
        SUBJECTS,
        "a reference end before its start (only a warning)",
        lambda f: set_row(f, 0, reference_end=date(2013, 1, 1)),
        {"reference_start is not after reference_end": 1},
    ),
    (
        SUBJECTS,
        "dates kept as text",
        lambda f: f.with_columns(pl.col("reference_start").cast(pl.String)),
        {SHIFTED.format("reference_start"): 3},
    ),
    # gold adverse events
    (
        ADVERSE_EVENTS,
        "an arm shown while blinded",
        lambda f: set_row(f, 2, arm="Arm B"),
        {ARM_BLINDED.format("arm"): 1},
    ),
    (
        ADVERSE_EVENTS,
        "a blinded study shown unblinded in the events",
        lambda f: set_row(f, 2, arm_status="unblinded"),
        {"every study's arm_status is the one gold/research/trial_subjects gives it": 1},
    ),
    (
        ADVERSE_EVENTS,
        "an event listed twice",
        _dup_first,
        {"record_key is unique": 2},
    ),
    (
        ADVERSE_EVENTS,
        "a lab result's record key",
        lambda f: set_row(f, 0, record_key=_key("B", "ae-1")),
        {"record_key is a keyed pseudonym (A- and 20 hex characters)": 1},
    ),
    (
        ADVERSE_EVENTS,
        "an event of a person the subjects view lacks (only a warning)",
        lambda f: set_row(f, 2, person_pseudonym=P2),
        {IN_SUBJECTS: 1},
    ),
    (
        ADVERSE_EVENTS,
        "a severity outside AESEV",
        lambda f: set_row(f, 0, severity="GRADE 1"),
        {"severity holds only CDISC AESEV (C66769) codes": 1},
    ),
    (
        ADVERSE_EVENTS,
        "an outcome outside OUT",
        lambda f: set_row(f, 1, outcome="DIED"),
        {"outcome holds only CDISC OUT (C66768) codes": 1},
    ),
    (
        ADVERSE_EVENTS,
        "an event ending before it starts (only a warning)",
        lambda f: set_row(f, 1, end_date=date(2012, 9, 1)),
        {"start_date is not after end_date": 1},
    ),
    (
        ADVERSE_EVENTS,
        "a study day 0 (only a warning)",
        lambda f: set_row(f, 0, start_day=0),
        {"start_day is not 0 (SDTM has no study day 0)": 1},
    ),
    (
        ADVERSE_EVENTS,
        "a USUBJID in the term",
        lambda f: set_row(f, 2, term=B0001),
        {NO_USUBJID: 1},
    ),
    # gold lab results
    (
        LAB_RESULTS,
        "an arm shown while blinded",
        lambda f: set_row(f, 2, arm="Arm B"),
        {ARM_BLINDED.format("arm"): 1},
    ),
    (
        LAB_RESULTS,
        "two arm statuses in one study",
        lambda f: set_row(f, 1, arm_status="blinded", arm=None),
        {
            ONE_STATUS: 2,
            "every study's arm_status is the one gold/research/trial_subjects gives it": 1,
        },
    ),
    (
        LAB_RESULTS,
        "a LOINC with a wrong check digit (only a warning)",
        lambda f: set_row(f, 1, loinc="2345-0"),
        {"loinc is a LOINC code with a valid Mod 10 check digit": 1},
    ),
    (
        LAB_RESULTS,
        "a reference indicator abbreviated (only a warning)",
        lambda f: set_row(f, 0, normal_indicator="N"),
        {"normal_indicator holds only CDISC NRIND (C78736) codes": 1},
    ),
    (
        LAB_RESULTS,
        "a normal range upside down (only a warning)",
        lambda f: set_row(f, 0, normal_low=6.0),
        {"normal_low is at most normal_high": 1},
    ),
    (
        LAB_RESULTS,
        "a baseline flag left empty",
        lambda f: set_row(f, 2, baseline=None),
        {"baseline is set on every row": 1},
    ),
    (
        LAB_RESULTS,
        "a date too far ahead (only a warning)",
        lambda f: set_row(f, 2, date=FUTURE),
        {SHIFTED.format("date"): 1},
    ),
    (
        LAB_RESULTS,
        "a result without a study",
        lambda f: set_row(f, 0, study_id=None),
        {"study_id is set on every row": 1},
    ),
]


@pytest.mark.parametrize(("table", "mutate", "expected"), defect_params(DEFECTS))
def test_a_single_defect_fails_the_expectation_that_names_it(table, mutate, expected):
    assert_only_these_fail(_validate(table, mutate(GOOD[table]())), expected)


def test_the_event_views_read_the_subjects_views_blinding():
    # The same events against a subjects view that lifted the BIOFED-01 blinding.
    subjects = set_row(gold_subjects(), 2, arm_status="unblinded")
    result = _validate(ADVERSE_EVENTS, trial_subjects=subjects)
    assert failed(result) == {
        "every study's arm_status is the one gold/research/trial_subjects gives it": 1
    }


def test_the_gold_views_read_the_silver_usubjids():
    dm_frame = set_row(dm(), 2, usubjid="HEADACHE")
    result = _validate(ADVERSE_EVENTS, dm=dm_frame)
    assert failed(result) == {NO_USUBJID: 1}


@pytest.mark.parametrize(
    ("table", "description", "severity"),
    [
        (DM, "(studyid, usubjid) is unique", "error"),
        (AE, "(studyid, usubjid, aeseq) is unique", "error"),
        (AE, IN_DM, "warning"),
        (AE, "aestdtc is an ISO 8601 date or time (SDTM --DTC)", "warning"),
        (AE, "aesev holds only CDISC AESEV (C66769) codes", "warning"),
        (DM, "sex holds only CDISC SEX (C66731) codes", "warning"),
        (DM, "person_key is set exactly where link_status is linked", "error"),
        (SUBJECTS, ARM_BLINDED.format("arm"), "error"),
        (SUBJECTS, ARM_BLINDED.format("actual_arm"), "error"),
        (ADVERSE_EVENTS, ARM_BLINDED.format("arm"), "error"),
        (LAB_RESULTS, ONE_STATUS, "error"),
        (SUBJECTS, "age is between 0 and 90 (ages over 89 are reported as 90)", "error"),
        (SUBJECTS, SHIFTED.format("reference_start"), "warning"),
    ],
)
def test_biofed_guarantees_and_blinding_are_errors_sponsor_values_warnings(
    table, description, severity
):
    (check,) = [c for c in suite_for(table).checks if c.description == description]
    assert check.severity == severity
