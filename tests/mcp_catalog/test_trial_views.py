import json
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mcp_catalog.aggregates import AggregateQuery
from mcp_catalog.catalog import TableState, build_manifest, dataset_entry
from mcp_catalog.governance.deid import Pseudonyms, date_shifts, new_surrogates
from mcp_catalog.governance.trials import (
    AE,
    DM,
    DS,
    LB,
    TRIAL_VIEWS,
    sdtm_date,
    trial_record_identifiers,
)
from mcp_catalog.governance.views import RESEARCH_VIEWS, ViewContext, build_view
from mcp_catalog.lint import lint_text
from mcp_catalog.policy import load_policy
from mcp_catalog.query import DatasetQuery

KEY = bytes(range(32))
DATE_KEY = bytes(range(32, 64))
PEOPLE = ["pk-1", "pk-2", "pk-3", "pk-4"]
VIEWS = {spec.name: spec for spec in TRIAL_VIEWS}
UNBLINDED = "CDISCPILOT01"
BLINDED = "BIOFED-01"
UNLISTED = "OTHER-99"
"""A study the policy does not mention."""

# The silver SDTM domains: standard variables in lower case (char String, num Float64),
# record_json, the reader's provenance, the link and the lake's provenance.
_TAIL = {
    "record_json": pl.String(),
    "source_file": pl.String(),
    "source_locator": pl.String(),
    "dataset": pl.String(),
    "person_key": pl.String(),
    "link_status": pl.String(),
    "source_sha256": pl.String(),
    "ingested_at": pl.Datetime("us", "UTC"),
}


def _schema(variables: str, numeric: str) -> dict[str, pl.DataType]:
    nums = set(numeric.split())
    schema = {v: (pl.Float64() if v in nums else pl.String()) for v in variables.split()}
    return schema | _TAIL


DM_SCHEMA = _schema(
    "studyid domain usubjid subjid rfstdtc rfendtc rfxstdtc rfxendtc rficdtc rfpendtc dthdtc "
    "dthfl siteid invid invnam brthdtc age ageu sex race ethnic armcd arm actarmcd actarm "
    "country dmdtc dmdy",
    "age dmdy",
)
DS_SCHEMA = _schema(
    "studyid domain usubjid dsseq dsgrpid dsrefid dsspid dsterm dsdecod dscat dsscat epoch "
    "dsdtc dsstdtc dsdy dsstdy",
    "dsseq dsdy dsstdy",
)
AE_SCHEMA = _schema(
    "studyid domain usubjid aeseq aegrpid aerefid aespid aeterm aemodify aellt aelltcd aedecod "
    "aeptcd aehlt aehltcd aehlgt aehlgtcd aecat aescat aepresp aebodsys aebdsycd aesoc aesoccd "
    "aeloc aesev aeser aeacn aeacnoth aerel aerelnst aepatt aeout aescan aescong aesdisab "
    "aesdth aeshosp aeslife aesod aesmie aecontrt aetoxgr epoch aestdtc aeendtc aestdy aeendy "
    "aedur aeenrf aeenrtpt aeentpt",
    "aeseq aelltcd aeptcd aehltcd aehlgtcd aebdsycd aesoccd aestdy aeendy",
)
LB_SCHEMA = _schema(
    "studyid domain usubjid lbseq lbgrpid lbrefid lbspid lbtestcd lbtest lbcat lbscat lborres "
    "lborresu lbornrlo lbornrhi lbstresc lbstresn lbstresu lbstnrlo lbstnrhi lbstnrc lbnrind "
    "lbstat lbreasnd lbnam lbloinc lbspec lbmethod lbblfl lblobxfl lbfast lbdrvfl lbtox "
    "lbtoxgr visitnum visit visitdy epoch lbdtc lbendtc lbdy lbtpt lbtptnum lbeltm lbtptref "
    "lbrftdtc",
    "lbseq lbstresn lbstnrlo lbstnrhi lbtoxgr visitnum visitdy lbdy lbtptnum",
)
SCHEMAS = {DM: DM_SCHEMA, DS: DS_SCHEMA, AE: AE_SCHEMA, LB: LB_SCHEMA}

# Who is who: usubjid -> (study, person_key, link_status).
SUBJECTS = {
    "01-701-1015": (UNBLINDED, "pk-1", "linked"),
    "01-701-1023": (UNBLINDED, "pk-3", "linked"),  # pk-3 did not consent
    "01-701-1028": (UNBLINDED, None, "not_enrolled"),
    "01-701-1033": (UNBLINDED, "pk-4", "unknown_mrn"),  # untrusted link, key or not
    "BIOFED-01-0002": (BLINDED, "pk-2", "linked"),  # screened, failed
    "BIOFED-01-0007": (BLINDED, "pk-2", "linked"),  # re-screened and randomised
    "OTHER-99-0001": (UNLISTED, "pk-1", "linked"),
}


def _row(schema: dict, domain: str, usubjid: str, **values) -> dict:
    study, person, link = SUBJECTS[usubjid]
    row = {
        "studyid": study,
        "domain": domain.upper(),
        "usubjid": usubjid,
        "source_file": f"{study}/{domain}.xpt",
        "source_locator": "row:1",
        "dataset": domain.upper(),
        "person_key": person,
        "link_status": link,
        "source_sha256": "cd" * 32,
        "ingested_at": datetime(2026, 1, 2, tzinfo=UTC),
        **values,
    }
    variables = {k.upper(): v for k, v in row.items() if k in schema and k not in _TAIL}
    row["record_json"] = json.dumps(variables)
    return row


def _frame(schema: dict, rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema)


def _dm(usubjid: str, **values) -> dict:
    base = {
        "subjid": usubjid.rsplit("-", 1)[1],
        "siteid": "SITE701X",
        "invnam": "Dr Quincy Investigator",
        "brthdtc": "1931-04-17",
        "age": 63.0,
        "ageu": "YEARS",
        "sex": "F",
        "race": "WHITE",
        "ethnic": "HISPANIC OR LATINO",
        "country": "USA",
        "armcd": "Pbo",
        "arm": "Placebo",
        "actarmcd": "Pbo",
        "actarm": "Placebo",
    }
    return _row(DM_SCHEMA, "dm", usubjid, **(base | values))


DM_ROWS = [
    _dm(
        "01-701-1015",
        age=95.0,
        rfstdtc="2014-01-02",
        rfendtc="2014-07-02T11:45",
        rficdtc="2013-12",
    ),
    _dm("01-701-1023", rfstdtc="2012-08-05"),
    _dm("01-701-1028", rfstdtc="2013-07-19"),
    _dm("01-701-1033", rfstdtc="2013-07-19"),
    _dm(
        "BIOFED-01-0002",
        age=44.0,
        sex="M",
        rficdtc="2024-01-10",
        armcd="SCRNFAIL",
        arm="Screen Failure",
        actarmcd="SCRNFAIL",
        actarm="Screen Failure",
    ),
    _dm(
        "BIOFED-01-0007",
        age=45.0,
        sex="M",
        rficdtc="2024-03-01",
        rfstdtc="2024-03-08",
        armcd="ACT",
        arm="Active 10 mg",
        actarmcd="ACT",
        actarm="Active 10 mg",
        dthfl="Y",
        dthdtc="2024-09-30",
    ),
    _dm(
        "OTHER-99-0001",
        age=600.0,
        ageu="MONTHS",
        sex="f",
        rfstdtc="2020-05-06",
        armcd="A",
        arm="Drug A",
        actarmcd="A",
        actarm="Drug A",
    ),
]


def _ds(usubjid: str, seq: float, cat: str, decod: str, start: str | None) -> dict:
    return _row(
        DS_SCHEMA,
        "ds",
        usubjid,
        dsseq=seq,
        dscat=cat,
        dsdecod=decod,
        dsterm=f"{decod.lower()} as told by Jane",
        dsstdtc=start,
    )


DS_ROWS = [
    _ds("01-701-1015", 1.0, "PROTOCOL MILESTONE", "RANDOMIZED", "2014-01-02"),
    _ds("01-701-1015", 2.0, "DISPOSITION EVENT", "ADVERSE EVENT", "2014-07-02"),
    # a higher DSSEQ, but earlier: not the last event
    _ds("01-701-1015", 3.0, "DISPOSITION EVENT", "COMPLETED", "2014-06-30"),
    # undated: counts as earliest
    _ds("01-701-1015", 4.0, "DISPOSITION EVENT", "LOST TO FOLLOW-UP", None),
    _ds("01-701-1015", 5.0, "OTHER EVENT", "FINAL LAB VISIT", "2014-08-01"),
    _ds("BIOFED-01-0002", 1.0, "DISPOSITION EVENT", "SCREEN FAILURE", "2024-01-20"),
    # same day: the higher DSSEQ wins
    _ds("BIOFED-01-0007", 1.0, "DISPOSITION EVENT", "ADVERSE EVENT", "2024-09-30"),
    _ds("BIOFED-01-0007", 2.0, "DISPOSITION EVENT", "DEATH", "2024-09-30"),
]


def _ae(usubjid: str, seq: float, **values) -> dict:
    base = {
        "aeseq": seq,
        "aeterm": "Jane's itchy rash after the picnic at Elm Street",
        "aedecod": "RASH",
        "aebodsys": "SKIN AND SUBCUTANEOUS TISSUE DISORDERS",
        "aesev": "MILD",
        "aeser": "N",
        "aeacn": "DOSE NOT CHANGED",
        "aerel": "POSSIBLY RELATED",
        "aeout": "RECOVERED/RESOLVED",
        "epoch": "TREATMENT",
    }
    return _row(AE_SCHEMA, "ae", usubjid, **(base | values))


AE_ROWS = [
    _ae(
        "01-701-1015",
        1.0,
        aestdtc="2014-02-03T08:00",
        aeendtc="2014-02",
        aestdy=33.0,
        aesev=" mild",
    ),
    _ae("01-701-1023", 1.0, aestdtc="2012-09-01"),
    _ae("01-701-1028", 1.0, aestdtc="2013-08-01"),
    _ae("01-701-1033", 1.0, aestdtc="2013-08-01"),
    _ae(
        "BIOFED-01-0007",
        1.0,
        aedecod="MYOCARDIAL INFARCTION",
        aebodsys="CARDIAC DISORDERS",
        aesev="GRADE 3",
        aeser="Y",
        aeacn="DRUG WITHDRAWN",
        aeout="FATAL",
        aestdtc="2024-09-28",
        aeendtc="2024-09-30",
        aestdy=205.0,
    ),
    _ae("OTHER-99-0001", 1.0, aestdtc="2020", aeser=None, aestdy=None),
]


def _lb(usubjid: str, seq: float, **values) -> dict:
    base = {
        "lbseq": seq,
        "lbtestcd": "ALB",
        "lbtest": "Albumin",
        "lbcat": "CHEMISTRY",
        "lbloinc": "1751-7",
        "lborres": "3.9 (redrawn for Jane)",
        "lborresu": "g/dL",
        "lbstresc": "39",
        "lbstresn": 39.0,
        "lbstresu": "g/L",
        "lbstnrlo": 35.0,
        "lbstnrhi": 46.0,
        "lbnrind": "NORMAL",
        "lbnam": "Central Lab of Jane's town",
        "visit": "SCREENING 1",
        "visitnum": 1.0,
        "epoch": "SCREENING",
    }
    return _row(LB_SCHEMA, "lb", usubjid, **(base | values))


LB_ROWS = [
    _lb("01-701-1015", 1.0, lblobxfl="Y", lbdtc="2013-12-26T11:20", lbdy=-7.0),
    _lb("01-701-1015", 2.0, lbblfl=None, lbdtc="2014-01-16", lbdy=15.0, visit="WEEK 2"),
    _lb("01-701-1023", 1.0, lbdtc="2012-07-29"),
    _lb("01-701-1028", 1.0, lbdtc="2013-07-11"),
    _lb("BIOFED-01-0007", 1.0, lbblfl="Y", lbdtc="2024-03", lbdy=1.0),
]

SILVER = {
    DM: _frame(DM_SCHEMA, DM_ROWS),
    DS: _frame(DS_SCHEMA, DS_ROWS),
    AE: _frame(AE_SCHEMA, AE_ROWS),
    LB: _frame(LB_SCHEMA, LB_ROWS),
}


def _ctx(
    consented=("pk-1", "pk-2", "pk-4"),
    unblinded: frozenset[str] | None = None,
    pseudonyms: Pseudonyms | None = None,
) -> ViewContext:
    return ViewContext(
        pseudonyms=pseudonyms or Pseudonyms(key=KEY),
        shifts=date_shifts(PEOPLE, key=DATE_KEY),
        consented=pl.Series("person_key", list(consented), dtype=pl.String()),
        reference_date=date(2026, 1, 1),
        unblinded_studies=load_policy().unblinded_studies() if unblinded is None else unblinded,
    )


def _build(name: str, ctx: ViewContext | None = None, silver=SILVER) -> pl.DataFrame:
    return build_view(VIEWS[name], silver, ctx or _ctx())


def _shift(person: str) -> timedelta:
    shifts = date_shifts(PEOPLE, key=DATE_KEY)
    days = shifts.filter(pl.col("person_key") == person).get_column("shift_days").item()
    return timedelta(days=days)


def _pseudonym(identifier: str, prefix: str) -> str:
    frame = pl.DataFrame({"id": [identifier]})
    return Pseudonyms(key=KEY).apply(frame, "id", prefix=prefix, alias="p").item()


P1, P2 = _pseudonym("pk-1", "P"), _pseudonym("pk-2", "P")


def test_trial_subjects_hold_linked_consented_people_with_arms_only_for_unblinded_studies():
    expected = pl.DataFrame(
        {
            "person_pseudonym": [P1, P2, P1],
            "study_id": [UNBLINDED, BLINDED, UNLISTED],
            "arm": ["Placebo", None, None],
            "arm_code": ["Pbo", None, None],
            "actual_arm": ["Placebo", None, None],
            "arm_status": ["unblinded", "blinded", "blinded"],
            "age": [90, 45, 50],
            "sex": ["F", "M", "F"],
            "race": ["WHITE"] * 3,
            "ethnicity": ["HISPANIC OR LATINO"] * 3,
            "country": ["USA"] * 3,
            "reference_start": [
                date(2014, 1, 2) + _shift("pk-1"),
                date(2024, 3, 8) + _shift("pk-2"),
                date(2020, 5, 6) + _shift("pk-1"),
            ],
            "reference_end": [date(2014, 7, 2) + _shift("pk-1"), None, None],
            "informed_consent_date": [None, date(2024, 3, 1) + _shift("pk-2"), None],
            "disposition": ["ADVERSE EVENT", "DEATH", None],
            "died": [False, True, False],
        }
    ).sort("study_id", "person_pseudonym")
    assert_frame_equal(_build("trial_subjects"), expected)


def test_adverse_events_keep_coded_terms_and_hide_arms_of_blinded_studies():
    expected = pl.DataFrame(
        {
            "record_key": [
                _pseudonym(f"{UNBLINDED}|01-701-1015|1", "A"),
                _pseudonym(f"{BLINDED}|BIOFED-01-0007|1", "A"),
                _pseudonym(f"{UNLISTED}|OTHER-99-0001|1", "A"),
            ],
            "person_pseudonym": [P1, P2, P1],
            "study_id": [UNBLINDED, BLINDED, UNLISTED],
            "arm": ["Placebo", None, None],
            "arm_status": ["unblinded", "blinded", "blinded"],
            "term": ["RASH", "MYOCARDIAL INFARCTION", "RASH"],
            "body_system": [
                "SKIN AND SUBCUTANEOUS TISSUE DISORDERS",
                "CARDIAC DISORDERS",
                "SKIN AND SUBCUTANEOUS TISSUE DISORDERS",
            ],
            "severity": ["MILD", None, "MILD"],
            "serious": [False, True, None],
            "relationship": ["POSSIBLY RELATED"] * 3,
            "action_taken": ["DOSE NOT CHANGED", "DRUG WITHDRAWN", "DOSE NOT CHANGED"],
            "outcome": ["RECOVERED/RESOLVED", "FATAL", "RECOVERED/RESOLVED"],
            "start_date": [
                date(2014, 2, 3) + _shift("pk-1"),
                date(2024, 9, 28) + _shift("pk-2"),
                None,
            ],
            "end_date": [None, date(2024, 9, 30) + _shift("pk-2"), None],
            "start_day": [33, 205, None],
            "epoch": ["TREATMENT"] * 3,
        }
    ).sort("record_key")
    assert_frame_equal(_build("trial_adverse_events"), expected)


def test_trial_lab_results_use_standard_units_and_either_baseline_flag():
    expected = pl.DataFrame(
        {
            "record_key": [
                _pseudonym(f"{UNBLINDED}|01-701-1015|1", "B"),
                _pseudonym(f"{UNBLINDED}|01-701-1015|2", "B"),
                _pseudonym(f"{BLINDED}|BIOFED-01-0007|1", "B"),
            ],
            "person_pseudonym": [P1, P1, P2],
            "study_id": [UNBLINDED, UNBLINDED, BLINDED],
            "arm": ["Placebo", "Placebo", None],
            "arm_status": ["unblinded", "unblinded", "blinded"],
            "test_code": ["ALB"] * 3,
            "test_name": ["Albumin"] * 3,
            "category": ["CHEMISTRY"] * 3,
            "loinc": ["1751-7"] * 3,
            "result": [39.0] * 3,
            "result_text": ["39"] * 3,
            "unit": ["g/L"] * 3,
            "normal_low": [35.0] * 3,
            "normal_high": [46.0] * 3,
            "normal_indicator": ["NORMAL"] * 3,
            "baseline": [True, False, True],
            "visit": ["SCREENING 1", "WEEK 2", "SCREENING 1"],
            "visit_number": [1.0] * 3,
            "study_day": [-7, 15, 1],
            "date": [date(2013, 12, 26) + _shift("pk-1"), date(2014, 1, 16) + _shift("pk-1"), None],
        }
    ).sort("record_key")
    assert_frame_equal(_build("trial_lab_results"), expected)


def test_a_silver_lab_table_without_lblobxfl_still_builds():
    silver = dict(SILVER) | {LB: SILVER[LB].drop("lblobxfl")}
    view = _build("trial_lab_results", silver=silver)
    assert view.sort("study_day").get_column("baseline").to_list() == [False, True, False]


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_a_context_without_unblinded_studies_hides_every_arm(name):
    view = _build(name, _ctx(unblinded=frozenset()))
    arms = [c for c in ("arm", "arm_code", "actual_arm") if c in view.columns]
    assert view.height > 0 and arms
    assert view.select(arms).null_count().row(0) == (view.height,) * len(arms)
    assert set(view.get_column("arm_status")) == {"blinded"}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_unblinding_a_study_shows_its_arms_and_no_other(name):
    view = _build(name, _ctx(unblinded=frozenset({BLINDED})))
    shown = view.filter(pl.col("arm").is_not_null())
    assert set(shown.get_column("study_id")) == {BLINDED}
    assert set(shown.get_column("arm")) == {"Active 10 mg"}
    assert set(view.filter(pl.col("study_id") != BLINDED).get_column("arm_status")) == {"blinded"}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_unconsented_and_unlinked_people_are_left_out(name):
    everyone = _build(name, _ctx(consented=PEOPLE))
    people = set(everyone.get_column("person_pseudonym"))
    assert people == {P1, P2, _pseudonym("pk-3", "P")}
    assert _pseudonym("pk-4", "P") not in people  # linked by key, but unknown_mrn
    only_two = _build(name, _ctx(consented=("pk-2",)))
    assert set(only_two.get_column("person_pseudonym")) == {P2}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_no_source_identifier_or_verbatim_text_reaches_a_view(name):
    rows = _build(name, _ctx(consented=PEOPLE)).rows()
    text = str(rows)
    secrets = [*SUBJECTS, "pk-1", "pk-2", "pk-3", "SITE701X", "Quincy", "1931-04-17", "Jane"]
    secrets += [".xpt", "picnic", "redrawn", "told by", "rash after"]
    for secret in secrets:
        assert secret not in text, secret
    # SUBJID is short and all digits: it could occur inside a hex pseudonym by chance.
    cells = {str(v) for row in rows for v in row}
    assert not cells & {"1015", "1023", "0002", "0007", "0001"}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_pseudonyms_are_stable_and_the_view_has_the_declared_schema(name):
    first = _build(name)
    assert_frame_equal(first, _build(name))
    spec = VIEWS[name]
    assert first.schema == pl.Schema({c.name: c.dtype for c in spec.columns})
    empty = _build(name, silver={p: f.clear() for p, f in SILVER.items()})
    assert empty.height == 0 and empty.schema == first.schema
    assert first.select(spec.key).is_duplicated().sum() == 0


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_a_person_without_a_date_shift_stops_the_build(name):
    ctx = _ctx()
    ctx = ViewContext(
        pseudonyms=ctx.pseudonyms,
        shifts=ctx.shifts.filter(pl.col("person_key") != "pk-2"),
        consented=ctx.consented,
        reference_date=ctx.reference_date,
        unblinded_studies=ctx.unblinded_studies,
    )
    with pytest.raises(ValueError, match="date shifts are missing"):
        _build(name, ctx)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-05", date(2024, 3, 5)),
        ("2024-03-05T10:20", date(2024, 3, 5)),
        ("2024-03-05T10:20:30+01:00", date(2024, 3, 5)),
        ("2024-03", None),
        ("2024", None),
        ("2024---05", None),
        ("2024-02-30", None),
        ("2024-03-05/2024-03-07", None),
        ("", None),
        (None, None),
    ],
)
def test_only_complete_sdtm_dates_become_dates(text, expected):
    frame = pl.DataFrame({"dtc": [text]}, schema={"dtc": pl.String()})
    assert frame.select(sdtm_date("dtc")).item() == expected


def test_the_surrogate_scheme_gets_every_record_key_from_the_trial_identifiers():
    wanted = pl.concat(
        [pl.DataFrame({"prefix": "P", "identifier": PEOPLE}), trial_record_identifiers(SILVER)]
    )
    empty = pl.DataFrame(
        schema={"prefix": pl.String, "identifier": pl.String, "surrogate": pl.String}
    )
    ctx = _ctx(pseudonyms=Pseudonyms(surrogates=new_surrogates(wanted, empty)))
    for name in VIEWS:
        view = _build(name, ctx)
        assert view.height > 0 and view.get_column("person_pseudonym").null_count() == 0
    events = _build("trial_adverse_events", ctx).get_column("record_key")
    assert events.null_count() == 0 and events.str.starts_with("A-").all()


@pytest.mark.parametrize("spec", TRIAL_VIEWS, ids=lambda s: s.name)
def test_column_lineage_names_only_columns_of_the_silver_tables(spec):
    lineage = spec.column_lineage()
    assert list(lineage) == [c.name for c in spec.columns]
    for inputs in lineage.values():
        assert inputs and all(
            table in spec.sources and column in SCHEMAS[table] for table, column in inputs
        )


def test_trial_view_text_passes_the_catalog_linter():
    tools = [f"query_{v.name}" for v in (*RESEARCH_VIEWS, *TRIAL_VIEWS)]
    findings = []
    for view in TRIAL_VIEWS:
        findings += lint_text(f"dataset {view.name} title", view.title, tool_names=tools)
        findings += lint_text(f"dataset {view.name}", view.description, tool_names=tools)
        for column in view.columns:
            findings += lint_text(f"column {column.name}", column.description, tool_names=tools)
    assert findings == []


def test_the_shipped_policy_governs_every_trial_view_as_it_declares():
    policy = load_policy()
    state = TableState(row_count=3, delta_version=0, last_materialized=datetime.now(UTC))
    manifest = build_manifest(
        [dataset_entry(spec, state) for spec in TRIAL_VIEWS],
        generated_at=datetime.now(UTC),
        policy=policy,
    )
    for spec, entry in zip(TRIAL_VIEWS, manifest.datasets, strict=True):
        rules = policy.dataset(spec.audience, spec.name)
        assert rules is not None and rules.consent and rules.consent_scope == "research"
        assert rules.columns == {c.name: c.column_class for c in spec.columns}
        assert rules.aggregation is not None and "arm" in rules.aggregation.dimensions
        DatasetQuery.for_dataset(entry)
        AggregateQuery.for_dataset(entry, rules.aggregation)
