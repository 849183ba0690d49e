import csv
import re
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pyreadstat
import pytest
from polars.testing import assert_frame_equal

from connectors.synth import build_people
from connectors.synth.cohort import AS_OF
from connectors.synth.ehr import chronic_conditions
from connectors.synth.trial import (
    ARMS,
    DATASET_LABELS,
    DOMAINS,
    ENROLMENT_COLUMNS,
    ENROLMENT_END,
    ENROLMENT_START,
    STUDY_ID,
    TRUTH_SCHEMA,
    VARIABLES,
    XPT_TIMESTAMP,
    trial_records,
    trial_truth,
    write_trial,
)

PATIENTS = 300
SEED = 7
ISO_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2})?)?)?$")
DATE_PAIRS = {
    "dm": [("DMDTC", "DMDY")],
    "ae": [("AESTDTC", "AESTDY"), ("AEENDTC", "AEENDY")],
    "lb": [("LBDTC", "LBDY")],
    "vs": [("VSDTC", "VSDY")],
    "ex": [("EXSTDTC", "EXSTDY"), ("EXENDTC", "EXENDY")],
    "ds": [("DSSTDTC", "DSSTDY")],
    "cm": [("CMSTDTC", "CMSTDY"), ("CMENDTC", "CMENDY")],
    "mh": [("MHSTDTC", None)],
}
MEDDRA_SOC = {
    "Headache": "Nervous system disorders",
    "Dizziness": "Nervous system disorders",
    "Nausea": "Gastrointestinal disorders",
    "Diarrhoea": "Gastrointestinal disorders",
    "Vomiting": "Gastrointestinal disorders",
    "Abdominal pain upper": "Gastrointestinal disorders",
    "Fatigue": "General disorders and administration site conditions",
    "Nasopharyngitis": "Infections and infestations",
    "Upper respiratory tract infection": "Infections and infestations",
    "Urinary tract infection": "Infections and infestations",
    "Pneumonia": "Infections and infestations",
    "Rash": "Skin and subcutaneous tissue disorders",
    "Pruritus": "Skin and subcutaneous tissue disorders",
    "Arthralgia": "Musculoskeletal and connective tissue disorders",
    "Back pain": "Musculoskeletal and connective tissue disorders",
    "Alanine aminotransferase increased": "Investigations",
    "Hypertension": "Vascular disorders",
    "Insomnia": "Psychiatric disorders",
    "Cough": "Respiratory, thoracic and mediastinal disorders",
    "Hypoglycaemia": "Metabolism and nutrition disorders",
    "Atrial fibrillation": "Cardiac disorders",
    "Myocardial infarction": "Cardiac disorders",
    "Cardiac arrest": "Cardiac disorders",
}


@pytest.fixture(scope="module")
def people():
    return build_people(PATIENTS, SEED)


@pytest.fixture(scope="module")
def written(tmp_path_factory, people):
    out = tmp_path_factory.mktemp("cohort")
    return out / "trials" / STUDY_ID, write_trial(people, out)


@pytest.fixture(scope="module")
def datasets(written):
    """Every dataset read back from its XPORT file: (frame, metadata)."""
    folder, _ = written
    read = {}
    for domain in DOMAINS:
        frame, meta = pyreadstat.read_xport(str(folder / f"{domain}.xpt"))
        read[domain] = (pl.from_pandas(frame), meta)
    return read


@pytest.fixture(scope="module")
def truth(people):
    return trial_truth(people)


def _study_day(day: date, first_dose: date) -> int:
    delta = (day - first_dose).days
    return delta + 1 if delta >= 0 else delta


def test_writes_every_domain_and_the_enrolment_map_with_record_counts(written, datasets):
    folder, counts = written
    expected = [f"trials/{STUDY_ID}/{domain}.xpt" for domain in DOMAINS]
    assert list(counts) == [*expected, "trials/enrolment.csv"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{domain}.xpt" for domain in DOMAINS
    )
    assert (folder.parent / "enrolment.csv").is_file()
    for domain in DOMAINS:
        frame, meta = datasets[domain]
        assert counts[f"trials/{STUDY_ID}/{domain}.xpt"] == frame.height == meta.number_rows


def test_datasets_carry_sdtm_names_labels_and_types(datasets):
    for domain in DOMAINS:
        frame, meta = datasets[domain]
        assert meta.table_name == domain.upper()
        assert meta.file_label == DATASET_LABELS[domain]
        assert meta.column_names == [name for name, _, _ in VARIABLES[domain]]
        for name, label, kind in VARIABLES[domain]:
            assert len(name) <= 8 and len(label) <= 40
            assert meta.column_names_to_labels[name] == label
            assert meta.readstat_variable_types[name] == ("double" if kind == "Num" else "string")
        assert set(frame["DOMAIN"]) <= {domain.upper()}
        assert set(frame["STUDYID"]) <= {STUDY_ID}


def test_xport_files_hold_what_trial_records_returns(datasets, people):
    records = trial_records(people)
    for domain in DOMAINS:
        frame, _ = datasets[domain]
        expected = records[domain]
        read = frame.with_columns(
            pl.col(name).cast(pl.String) for name, kind in expected.schema.items()
            if kind == pl.String
        )
        assert_frame_equal(read, expected, check_dtypes=False)


def test_same_seed_gives_byte_identical_files(tmp_path, people):
    write_trial(people, tmp_path / "a")
    write_trial(build_people(PATIENTS, SEED), tmp_path / "b")
    first = tmp_path / "a" / "trials" / STUDY_ID
    second = tmp_path / "b" / "trials" / STUDY_ID
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    header = (first / "dm.xpt").read_bytes()[:560]
    assert header.count(XPT_TIMESTAMP) == 4


def test_a_subjects_records_do_not_depend_on_the_cohort_size(people):
    small = trial_records(build_people(60, SEED))
    large = trial_records(people)
    subjects = small["dm"]["USUBJID"].to_list()
    assert len(subjects) >= 8
    for domain in DOMAINS:
        assert_frame_equal(small[domain], large[domain].filter(pl.col("USUBJID").is_in(subjects)))


def test_dm_has_one_row_per_enrolled_person_and_every_subject_is_in_dm(datasets, people):
    dm, _ = datasets["dm"]
    enrolled = [p.trial_usubjid for p in people if p.trial_usubjid is not None]
    assert dm["USUBJID"].to_list() == enrolled
    assert dm["USUBJID"].is_unique().all()
    for domain in DOMAINS:
        frame, _ = datasets[domain]
        assert set(frame["USUBJID"]) <= set(enrolled), domain


def test_seq_numbers_each_subjects_records_from_one(datasets):
    for domain in DOMAINS:
        if domain == "dm":
            continue
        frame, _ = datasets[domain]
        seq = f"{domain.upper()}SEQ"
        for (_,), group in frame.group_by(["USUBJID"]):
            assert sorted(group[seq].to_list()) == [float(n) for n in range(1, group.height + 1)]


def test_enrolment_map_links_every_subject_to_the_persons_mrn_and_site(written, datasets, people):
    folder, _ = written
    with (folder.parent / "enrolment.csv").open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == ENROLMENT_COLUMNS
        rows = list(reader)
    by_subject = {p.trial_usubjid: p for p in people if p.trial_usubjid}
    dm, _ = datasets["dm"]
    assert [row["usubjid"] for row in rows] == dm["USUBJID"].to_list()
    for row in rows:
        person = by_subject[row["usubjid"]]
        assert (row["studyid"], row["site"], row["mrn"]) == (STUDY_ID, person.home_site, person.mrn)


def test_demographics_follow_the_person(datasets, people):
    dm, _ = datasets["dm"]
    by_subject = {p.trial_usubjid: p for p in people if p.trial_usubjid}
    for row in dm.iter_rows(named=True):
        person = by_subject[row["USUBJID"]]
        consent = date.fromisoformat(row["RFICDTC"])
        assert row["BRTHDTC"] == person.birth_date.isoformat()
        assert row["AGE"] == float(person.age_on(consent))
        assert row["AGEU"] == "YEARS"
        assert row["SEX"] == {"male": "M", "female": "F"}.get(person.gender, "U")
        assert row["SUBJID"] == row["USUBJID"].removeprefix(f"{STUDY_ID}-")
        assert row["SITEID"] == person.home_site.removeprefix("SITE-")
        assert row["COUNTRY"] == "USA"
        assert row["ETHNIC"] in ("HISPANIC OR LATINO", "NOT HISPANIC OR LATINO")
        assert (row["ACTARMCD"], row["ACTARM"]) == (row["ARMCD"], row["ARM"])
        assert (row["ARMCD"], row["ARM"]) in ARMS
        if row["DTHFL"] == "Y":
            assert row["DTHDTC"] == str(person.deceased_date)
        else:
            assert row["DTHFL"] == "" and row["DTHDTC"] == ""
    arms = Counter(dm["ARMCD"])
    assert set(arms) == {code for code, _ in ARMS}
    assert abs(arms["PBO"] - arms["BFD10"]) < 0.3 * dm.height


def test_dates_are_iso_8601_within_life_and_study_days_skip_zero(datasets, people):
    dm, _ = datasets["dm"]
    by_subject = {p.trial_usubjid: p for p in people if p.trial_usubjid}
    first_dose = {
        row["USUBJID"]: date.fromisoformat(row["RFSTDTC"])
        for row in dm.iter_rows(named=True)
        if row["RFSTDTC"]
    }
    for domain, pairs in DATE_PAIRS.items():
        frame, _ = datasets[domain]
        for row in frame.iter_rows(named=True):
            person = by_subject[row["USUBJID"]]
            for date_variable, day_variable in pairs:
                text = row[date_variable]
                if not text:
                    assert day_variable is None or row[day_variable] is None
                    continue
                assert ISO_DATE.match(text), (domain, date_variable, text)
                if domain == "mh" or (domain == "cm" and len(text) < 10):
                    assert text[:4] >= str(person.birth_date.year)
                    continue
                day = date.fromisoformat(text[:10])
                assert person.birth_date < day <= min(person.end_date, AS_OF)
                expected = _study_day(day, first_dose[row["USUBJID"]])
                assert expected != 0
                assert row[day_variable] == float(expected)
    in_window = 0
    for row in dm.iter_rows(named=True):
        person = by_subject[row["USUBJID"]]
        consent = date.fromisoformat(row["RFICDTC"])
        earliest = max(ENROLMENT_START, person.birth_date + timedelta(days=1))
        if min(ENROLMENT_END, person.end_date - timedelta(days=60)) >= earliest:
            assert ENROLMENT_START <= consent <= ENROLMENT_END
            in_window += 1
        if row["RFSTDTC"]:
            assert consent < date.fromisoformat(row["RFSTDTC"]) or row["DTHFL"] == "Y"
        if row["RFXENDTC"]:
            assert row["RFXSTDTC"] <= row["RFXENDTC"] <= (row["RFPENDTC"] or AS_OF.isoformat())
    assert in_window > 0.9 * dm.height


def test_disposition_records_consent_randomisation_and_how_each_subject_ended(
    datasets, truth
):
    ds, _ = datasets["ds"]
    dm, _ = datasets["dm"]
    consent = dict(zip(dm["USUBJID"], dm["RFICDTC"], strict=True))
    milestones = ds.filter(pl.col("DSDECOD") == "INFORMED CONSENT OBTAINED")
    assert dict(zip(milestones["USUBJID"], milestones["DSSTDTC"], strict=True)) == consent
    assert set(milestones["DSCAT"]) == {"PROTOCOL MILESTONE"}
    events = ds.filter(pl.col("DSCAT") == "DISPOSITION EVENT")
    assert events["USUBJID"].is_unique().all()
    decoded = Counter(events["DSDECOD"])
    assert set(decoded) <= {
        "COMPLETED", "WITHDRAWAL BY SUBJECT", "ADVERSE EVENT", "LOST TO FOLLOW-UP", "DEATH"
    }
    assert decoded["COMPLETED"] > decoded["WITHDRAWAL BY SUBJECT"] >= 2
    last = {
        subject: group.sort("DSSEQ")["DSDECOD"][-1]
        for (subject,), group in ds.group_by(["USUBJID"])
    }
    assert last == dict(zip(truth["usubjid"], truth["disposition"], strict=True))
    ended = dict(zip(events["USUBJID"], events["DSSTDTC"], strict=True))
    for row in dm.iter_rows(named=True):
        if row["USUBJID"] in ended and last[row["USUBJID"]] in ("COMPLETED", "DEATH"):
            assert ended[row["USUBJID"]] == row["RFPENDTC"]


def test_deaths_on_study_have_a_fatal_adverse_event(datasets):
    dm, _ = datasets["dm"]
    ae, _ = datasets["ae"]
    died = dm.filter(pl.col("DTHFL") == "Y")
    fatal = ae.filter(pl.col("AEOUT") == "FATAL")
    assert sorted(fatal["USUBJID"]) == sorted(died["USUBJID"])
    assert set(fatal["AESDTH"]) <= {"Y"} and set(fatal["AESER"]) <= {"Y"}
    ends = dict(zip(died["USUBJID"], died["DTHDTC"], strict=True))
    assert all(ends[s] == e for s, e in zip(fatal["USUBJID"], fatal["AEENDTC"], strict=True))


def test_adverse_events_use_meddra_terms_and_controlled_values(datasets):
    ae, _ = datasets["ae"]
    assert ae.height > 0
    for row in ae.iter_rows(named=True):
        assert MEDDRA_SOC[row["AEDECOD"]] == row["AEBODSYS"]
        assert row["AETERM"]
        assert row["AESEV"] in ("MILD", "MODERATE", "SEVERE")
        assert row["AESER"] in ("Y", "N")
        assert row["AEREL"] in ("NOT RELATED", "UNLIKELY RELATED", "POSSIBLY RELATED", "RELATED")
        assert row["AEACN"] in (
            "DOSE NOT CHANGED", "DRUG INTERRUPTED", "DRUG WITHDRAWN", "NOT APPLICABLE"
        )
        assert row["EPOCH"] in ("SCREENING", "TREATMENT", "FOLLOW-UP")
        if row["AEENDTC"]:
            assert row["AEENDTC"] >= row["AESTDTC"]
            assert row["AEOUT"] in ("RECOVERED/RESOLVED", "FATAL")
        else:
            assert row["AEOUT"] == "NOT RECOVERED/NOT RESOLVED"


def test_lab_results_are_consistent_in_original_and_standard_units(datasets):
    lb, _ = datasets["lb"]
    # Test code: (standard per original unit, half the standard unit's reporting step).
    factors = {
        "GLUC": (10 / 180.156, 0.05), "CREAT": (10_000 / 113.12, 0.5), "HGB": (10.0, 0.5),
        "CHOL": (10 / 386.654, 0.005),
    }
    for row in lb.iter_rows(named=True):
        value = row["LBSTRESN"]
        assert value == float(row["LBSTRESC"])
        if row["LBTESTCD"] in factors:
            factor, half_step = factors[row["LBTESTCD"]]
            assert abs(value - float(row["LBORRES"]) * factor) <= half_step + 1e-9
        low, high = row["LBSTNRLO"], row["LBSTNRHI"]
        expected = "HIGH" if high is not None and value > high else (
            "LOW" if low is not None and value < low else "NORMAL"
        )
        assert row["LBNRIND"] == expected
        assert row["LBCAT"] in ("CHEMISTRY", "HEMATOLOGY")
        assert re.match(r"^\d+-\d$", row["LBLOINC"])
    baseline = lb.filter(pl.col("LBBLFL") == "Y")
    assert set(baseline["VISIT"]) == {"BASELINE"}
    assert baseline.select("USUBJID", "LBTESTCD").is_unique().all()
    ranges = {
        "GLUC": (2.0, 26.0), "CREAT": (20.0, 360.0), "SODIUM": (120.0, 155.0),
        "K": (2.8, 6.5), "HBA1C": (3.9, 14.0), "HGB": (60.0, 200.0), "PLAT": (40.0, 700.0),
    }
    for testcd, (low, high) in ranges.items():
        values = lb.filter(pl.col("LBTESTCD") == testcd)["LBSTRESN"]
        assert values.len() > 0 and low <= values.min() and values.max() <= high, testcd


def test_biofedinib_lowers_hba1c_against_placebo(datasets):
    lb, _ = datasets["lb"]
    dm, _ = datasets["dm"]
    change = (
        lb.filter((pl.col("LBTESTCD") == "HBA1C") & pl.col("VISIT").is_in(["BASELINE", "WEEK 24"]))
        .pivot("VISIT", index="USUBJID", values="LBSTRESN")
        .drop_nulls()
        .join(dm.select("USUBJID", "ARMCD"), on="USUBJID")
        .group_by("ARMCD")
        .agg((pl.col("WEEK 24") - pl.col("BASELINE")).mean().alias("change"))
    )
    by_arm = dict(zip(change["ARMCD"], change["change"], strict=True))
    assert by_arm["BFD10"] < by_arm["PBO"] - 0.3


def test_exposure_covers_first_to_last_dose_in_the_randomised_arm(datasets):
    ex, _ = datasets["ex"]
    dm, _ = datasets["dm"]
    arms = dict(zip(dm["USUBJID"], dm["ARMCD"], strict=True))
    for (subject,), group in ex.group_by(["USUBJID"]):
        group = group.sort("EXSEQ")
        active = arms[subject] == "BFD10"
        assert set(group["EXTRT"]) == {"BIOFEDINIB" if active else "PLACEBO"}
        assert set(group["EXDOSE"]) == {10.0 if active else 0.0}
        row = dm.filter(pl.col("USUBJID") == subject).row(0, named=True)
        assert group["EXSTDTC"][0] == row["RFXSTDTC"]
        assert group["EXENDTC"][-1] == row["RFXENDTC"]
        starts, ends = group["EXSTDTC"].to_list(), group["EXENDTC"].to_list()
        for end, next_start in zip(ends, starts[1:], strict=False):
            gap = date.fromisoformat(next_start) - date.fromisoformat(end)
            assert gap == timedelta(days=1)


def test_medical_history_follows_the_ehr_conditions(datasets, people):
    mh, _ = datasets["mh"]
    by_subject = {p.trial_usubjid: p for p in people if p.trial_usubjid}
    counts = Counter(mh["USUBJID"])
    for subject, person in by_subject.items():
        assert counts.get(subject, 0) == len(chronic_conditions(person))
    assert set(mh["MHENRTPT"]) == {"ONGOING"}


def test_truth_matches_the_files(truth, datasets, people):
    assert truth.schema == pl.Schema(TRUTH_SCHEMA)
    dm, _ = datasets["dm"]
    assert truth["usubjid"].to_list() == dm["USUBJID"].to_list()
    arms = dict(zip(dm["USUBJID"], dm["ARMCD"], strict=True))
    assert dict(zip(truth["usubjid"], truth["armcd"], strict=True)) == arms
    for domain in DOMAINS:
        if domain == "dm":
            continue
        frame, _ = datasets[domain]
        counts = Counter(frame["USUBJID"])
        expected = dict(zip(truth["usubjid"], truth[f"n_{domain}"], strict=True))
        assert {s: counts.get(s, 0) for s in expected} == expected, domain
    by_index = {p.index: p for p in people}
    for row in truth.iter_rows(named=True):
        person = by_index[row["person_index"]]
        assert (row["usubjid"], row["mrn"], row["site"]) == (
            person.trial_usubjid, person.mrn, person.home_site
        )
    died = dict(zip(dm["USUBJID"], dm["DTHFL"] == "Y", strict=True))
    assert dict(zip(truth["usubjid"], truth["died"], strict=True)) == died


def test_an_empty_roster_writes_empty_datasets_with_every_variable(tmp_path):
    counts = write_trial([], tmp_path)
    assert set(counts.values()) == {0}
    folder: Path = tmp_path / "trials" / STUDY_ID
    for domain in DOMAINS:
        frame, meta = pyreadstat.read_xport(str(folder / f"{domain}.xpt"))
        assert frame.shape[0] == 0
        assert meta.column_names == [name for name, _, _ in VARIABLES[domain]]
    assert (folder.parent / "enrolment.csv").read_text() == ",".join(ENROLMENT_COLUMNS) + "\n"
    assert trial_truth([]).schema == pl.Schema(TRUTH_SCHEMA)
