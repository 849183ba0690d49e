"""The real public lab and trial files of ../shared/data landed beside a small synthetic EHR
cohort and materialised end to end.

Lab: the five HL7 v2 files and Synthea's CSV export (observations, and the patients table
that is not a lab export), with a patient index mapping every real patient id to a
consenting synthetic person. Trials: both SDTM study folders, with an enrolment map that
enrols a few CDISCPILOT01 subjects (one per planned/actual arm pair, and one more for a person
who did not consent). Every expectation comes from reading the files directly (the
connectors, pyreadstat) or from the synthetic roster, never from what the pipeline wrote
alone. The files are copied into a temporary landing folder, never into the repository; the
module does no work at import (a spawned worker may import it again).
"""

import csv
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pyreadstat
import pytest
from polars.testing import assert_frame_equal

from connectors.hl7v2 import read_hl7v2
from connectors.lab_csv import read_lab_csv
from connectors.lab_schema import LAB_RESULT_SCHEMA
from connectors.result import ReadResult
from connectors.sdtm import read_sdtm
from connectors.synth import build_people, write_cohort
from connectors.terminology import conform_lab_results, mapping_report
from mcp_catalog.governance.deid import date_shifts, keyed_hash
from mcp_catalog.governance.keys import load_keys
from mcp_catalog.governance.trials import LB_PREFIX
from mcp_catalog.policy import load_policy
from pipelines import lab, trials
from pipelines.cli import materialize
from pipelines.defs.trials.checks import KEY_RULES
from pipelines.lake import Lake
from pipelines.research import CROSSWALK_PATH

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
PEOPLE, SEED = 30, 5

HL7_FOLDER = "hl7v2"
SYNTHEA = "SYNTHEA"
OBSERVATIONS = "synthea_observations.csv"
PATIENTS = "synthea_patients.csv"
PILOT = "CDISCPILOT01"
STUDIES = {PILOT: "sdtm_cdiscpilot01", "CRE-TESTSUITE": "sdtm_cre_testsuite"}
"""Landing folder name -> shared folder name."""
TRIAL_VIEWS = ("trial_subjects", "trial_adverse_events", "trial_lab_results")

pytestmark = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"the shared real test files are not at {SHARED} (clone the shared data beside "
    "the repo)",
)


@dataclass
class RealLake:
    root: Path
    landing: Path
    run: object
    lab_index: dict[tuple[str, str], str]
    """(site, lab patient id) -> MRN of the person it is mapped to."""
    enrolled: dict[str, str]
    """USUBJID -> MRN, consenting people."""
    not_consented: dict[str, str]
    """USUBJID -> MRN, a person without research consent."""


# -- the files read directly -------------------------------------------------------------


def _hl7_files() -> list[Path]:
    return sorted((SHARED / "lab" / HL7_FOLDER).glob("*.hl7"))


def _direct_lab() -> dict[str, ReadResult]:
    """Landing-relative source file -> what the connector reads from the shared file."""
    reads = {f"hl7/{p.name}": read_hl7v2(p, on_error="quarantine") for p in _hl7_files()}
    for name in (OBSERVATIONS, PATIENTS):
        reads[f"csv/{SYNTHEA}/{name}"] = read_lab_csv(
            SHARED / "lab" / "csv" / name, site=SYNTHEA, on_error="quarantine"
        )
    return reads


def _direct_results() -> pl.DataFrame:
    frames = [
        read.tables["lab_results"].with_columns(pl.lit(source).alias("source_file"))
        for source, read in _direct_lab().items()
    ]
    return pl.concat(frames)


def _latest(results: pl.DataFrame) -> pl.DataFrame:
    """One row per result: of rows naming the same result (site, patient, accession, test,
    sub-id, collection time), the one resulted last (a final result replaces the
    preliminary one)."""
    names = [
        "site",
        "patient_id",
        "accession",
        "test_system",
        "test_code",
        "observation_sub_id",
        "collected_at",
    ]
    return results.sort("resulted_at", "source_file", nulls_last=False).unique(
        subset=names, keep="last", maintain_order=True
    )


def _xpt(study: str, name: str) -> pl.DataFrame:
    frame, _ = pyreadstat.read_xport(
        SHARED / "trials" / STUDIES[study] / name, output_format="polars"
    )
    # SAS blanks are empty strings here; the lake holds them as nulls.
    return frame.with_columns(pl.col(pl.String).replace("", None))


def _person_keys(lake: Lake) -> dict[str, str]:
    crosswalk = lake.read(CROSSWALK_PATH).filter(pl.col("identifier_type") == "mrn")
    return dict(crosswalk.select("identifier", "person_key").iter_rows())


def _pseudonyms(root: Path, person_keys: list[str]) -> dict[str, str]:
    key = load_keys(root / "restricted" / "keys.json").for_audience("research")
    return dict(zip(person_keys, keyed_hash(key, person_keys, prefix="P"), strict=True))


# -- the landed lake ---------------------------------------------------------------------


def _land_lab(landing: Path, consenting: list) -> dict[tuple[str, str], str]:
    hl7 = landing / "lab" / "hl7"
    synthea = landing / "lab" / "csv" / SYNTHEA
    hl7.mkdir(parents=True)
    synthea.mkdir(parents=True)
    for path in _hl7_files():
        shutil.copy(path, hl7 / path.name)
    for name in (OBSERVATIONS, PATIENTS):
        shutil.copy(SHARED / "lab" / "csv" / name, synthea / name)
    ids = sorted(set(_direct_results().select("site", "patient_id").drop_nulls().rows()))
    assert len(ids) <= len(consenting), "the cohort has too few consenting people"
    index = {pair: person.mrn for pair, person in zip(ids, consenting, strict=False)}
    with (landing / "lab" / lab.INDEX_NAME).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(lab.INDEX_COLUMNS)
        writer.writerows([site, patient, mrn] for (site, patient), mrn in index.items())
    return index


def _land_trials(landing: Path, consenting: list, refusing) -> tuple[dict, dict]:
    for study, shared in STUDIES.items():
        shutil.copytree(SHARED / "trials" / shared, landing / "trials" / study)
    dm = _xpt(PILOT, "dm.xpt")
    firsts = dm.unique(["ARM", "ACTARM"], keep="first", maintain_order=True)
    chosen = firsts.get_column("USUBJID").to_list()
    enrolled = {u: p.mrn for u, p in zip(chosen, consenting, strict=False)}
    assert len(enrolled) == len(chosen), "the cohort has too few consenting people"
    spare = dm.filter(~pl.col("USUBJID").is_in(chosen)).get_column("USUBJID")[0]
    not_consented = {spare: refusing.mrn}
    sites = {p.mrn: p.home_site for p in [*consenting, refusing]}
    with (landing / "trials" / trials.ENROLMENT_NAME).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(trials.ENROLMENT_COLUMNS)
        for usubjid, mrn in {**enrolled, **not_consented}.items():
            writer.writerow([PILOT, usubjid, sites[mrn], mrn])
    return enrolled, not_consented


@pytest.fixture(scope="module")
def real_lake(tmp_path_factory):
    base = tmp_path_factory.mktemp("real-lab-trials")
    landing, root = base / "landing", base / "lake"
    write_cohort(landing, patients=PEOPLE, seed=SEED, silos=("ehr",))
    people = build_people(PEOPLE, SEED)
    consenting = [p for p in people if p.research_consent == "permit"]
    refusing = next(p for p in people if p.research_consent != "permit")
    lab_index = _land_lab(landing, consenting)
    enrolled, not_consented = _land_trials(landing, consenting[len(lab_index) :], refusing)
    with dg.instance_for_test() as instance:
        run = materialize(str(root), str(landing), instance=instance)
        assert run.success, "materialising the real lab and trial files failed"
        yield RealLake(root, landing, run, lab_index, enrolled, not_consented)


# -- lab ---------------------------------------------------------------------------------


def test_every_real_lab_file_is_in_the_ledger_as_the_connectors_read_it(real_lake):
    lake = Lake(real_lake.root)
    direct = _direct_lab()
    ledger = lake.read(lab.FILES_PATH)
    assert sorted(ledger.get_column("source_file")) == sorted(direct)
    assert len([s for s in direct if s.startswith("hl7/")]) == 5
    bronze = lake.read(lab.RESULTS_PATH)
    rejects = lake.read(lab.REJECTS_PATH)
    for source, read in direct.items():
        landed = real_lake.landing / "lab" / source
        row = ledger.filter(pl.col("source_file") == source).row(0, named=True)
        assert row["source_sha256"] == hashlib.sha256(landed.read_bytes()).hexdigest()
        assert row["bytes"] == landed.stat().st_size
        expected = read.tables["lab_results"]
        assert (row["records"], row["rejects"]) == (expected.height, read.rejects.height), source
        stored = bronze.filter(pl.col("source_file") == source).select(list(LAB_RESULT_SCHEMA))
        assert_frame_equal(
            stored.sort("source_locator"), expected.sort("source_locator"), check_dtypes=True
        )
        quarantined = rejects.filter(pl.col("source") == source).select("locator", "reason")
        assert sorted(quarantined.rows()) == sorted(read.rejects.select("locator", "reason").rows())


def test_the_synthea_patient_table_is_rejected_whole_and_early_obx_quarantined(real_lake):
    lake = Lake(real_lake.root)
    direct = _direct_lab()
    rejects = lake.read(lab.REJECTS_PATH)
    patients = f"csv/{SYNTHEA}/{PATIENTS}"
    whole = rejects.filter(pl.col("source") == patients).select("locator", "reason").rows()
    assert len(whole) == 1 and whole[0][0] == "file" and whole[0][1], whole
    assert whole == direct[patients].rejects.select("locator", "reason").rows()
    assert lake.read(lab.RESULTS_PATH).filter(pl.col("source_file") == patients).is_empty()

    oru = "hl7/ORU-R01-01.hl7"
    early = rejects.filter(pl.col("source") == oru)
    assert early.height == 2
    assert set(early.get_column("reason")) == {"OBX is not preceded by an OBR in its order group"}
    message_id = direct[oru].tables["messages"].get_column("message_id").item()
    assert all(loc.startswith(f"MSH-10:{message_id}/OBX:") for loc in early["locator"])
    # Reasons are fixed sentences: no lab patient id is in any of them.
    reasons = "\n".join(rejects.get_column("reason"))
    assert not [p for _, p in real_lake.lab_index if len(p) >= 4 and p in reasons]


def test_real_lab_results_link_to_the_mapped_people_and_reach_the_view(real_lake):
    lake = Lake(real_lake.root)
    keys = _person_keys(lake)
    silver = lake.read(lab.SILVER_PATH)
    expected = _latest(_direct_results())
    assert sorted(silver.select("source_file", "source_locator").rows()) == sorted(
        expected.select("source_file", "source_locator").rows()
    )
    # LAB-ORU-2 brings the final results of LAB-ORU-1's preliminary order.
    assert silver.height < _direct_results().height
    assert silver.get_column("link_status").unique().to_list() == ["linked"]
    links = silver.select("site", "lab_patient_id", "person_key").unique().rows()
    assert {(s, p) for s, p, _ in links} == set(real_lake.lab_index)
    assert all(keys[real_lake.lab_index[(s, p)]] == person for s, p, person in links)
    gold = lake.read("gold/research/lab_results")
    assert gold.height == silver.height
    people = sorted({person for _, _, person in links})
    assert set(gold.get_column("person_pseudonym")) == set(
        _pseudonyms(real_lake.root, people).values()
    )
    cells = [str(v) for c in gold.columns for v in gold.get_column(c).drop_nulls().to_list()]
    blob, whole = "\n".join(cells), set(cells)
    for _, patient in real_lake.lab_index:
        leaked = patient in blob if len(patient) >= 8 else patient in whole
        assert not leaked, "a lab patient id reached the research view"


def test_the_mapping_report_lists_what_the_real_files_could_not_map(real_lake):
    lake = Lake(real_lake.root)
    report = lake.read(lab.REPORT_PATH)
    expected = mapping_report(
        conform_lab_results(_latest(_direct_results()).select(list(LAB_RESULT_SCHEMA)))
    )
    assert_frame_equal(
        report.sort(report.columns, nulls_last=True),
        expected.sort(expected.columns, nulls_last=True),
    )
    rmgead = _direct_lab()["hl7/ORU-R01-RMGEAD.hl7"].tables["lab_results"].row(0, named=True)
    issues = report.select("site", "issue", "code", "code_system", "unit").rows()
    assert (rmgead["site"], "unmapped_code", rmgead["test_code"], rmgead["test_system"]) in {
        row[:4] for row in issues
    }
    assert ("unconvertible_unit", "g/l-1") in {(row[1], row[4]) for row in issues}


# -- trials ------------------------------------------------------------------------------


def test_both_real_studies_land_in_bronze_per_domain(real_lake):
    lake = Lake(real_lake.root)
    dm = lake.read(trials.bronze_path("dm")).group_by("source_file").len()
    assert dict(dm.rows()) == {
        f"{PILOT}/dm.xpt": _xpt(PILOT, "dm.xpt").height,
        "CRE-TESTSUITE/DM.xpt": _xpt("CRE-TESTSUITE", "DM.xpt").height,
    }
    assert sorted(dict(dm.rows()).values()) == [18, 306]
    lb = lake.read(trials.bronze_path("lb"))
    lbur = lb.filter(pl.col("source_file") == f"{PILOT}/lbur.xpt")
    assert lbur.height == _xpt(PILOT, "lbur.xpt").height == 4913
    assert lbur.get_column("dataset").unique().to_list() == ["LBUR"]
    assert lb.filter(pl.col("source_file") == "CRE-TESTSUITE/LB.xpt").height == 3488

    ex = lake.read(trials.bronze_path("ex"))
    assert ex.columns == list(trials.bronze_schema("ex"))
    for study, name in ((PILOT, "ex.xpt"), ("CRE-TESTSUITE", "EX.xpt")):
        file = _xpt(study, name)
        rows = ex.filter(pl.col("source_file") == f"{study}/{name}").sort(
            pl.col("source_locator").str.extract(r"(\d+)").cast(pl.Int64)
        )
        assert (
            rows.select("usubjid", "exseq", "extrt", "exdose").rows()
            == file.select("USUBJID", "EXSEQ", "EXTRT", "EXDOSE").rows()
        ), name
        spdevid = file.get_column("SPDEVID") if "SPDEVID" in file.columns else None
        kept = [("SPDEVID" in json.loads(r)) for r in rows.get_column("record_json")]
        assert all(kept) if spdevid is not None else not any(kept), name
        if spdevid is not None:
            assert rows.get_column("spdevid").to_list() == spdevid.to_list()
        else:
            assert rows.get_column("spdevid").null_count() == rows.height

    findings = lake.read(trials.FINDINGS_PATH).drop("source_sha256", "ingested_at")
    for study, shared in STUDIES.items():
        direct = read_sdtm(SHARED / "trials" / shared).tables["findings"]
        expected = direct.with_columns(
            (pl.lit(f"{study}/") + pl.col("source_file")).alias("source_file"),
            pl.col("rule").cast(pl.String),
            pl.col("severity").cast(pl.String),
        )
        stored = findings.filter(pl.col("source_file").str.starts_with(f"{study}/"))
        stored = stored.with_columns(pl.col("rule", "severity").cast(pl.String))
        assert_frame_equal(
            stored.sort(stored.columns, nulls_last=True),
            expected.sort(expected.columns, nulls_last=True),
        )
    aedecod = findings.filter(
        pl.col("source_file") == "CRE-TESTSUITE/AE.xpt", pl.col("variable") == "AEDECOD"
    )
    assert aedecod.select("rule", "severity", "rows").rows() == [
        ("required_value_missing", "error", _xpt("CRE-TESTSUITE", "AE.xpt").height)
    ]


def test_a_missing_required_value_fails_its_check_but_does_not_block_silver(real_lake):
    evaluations = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in real_lake.run.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.asset_check_evaluation_data.asset_key.to_user_string() == trials.FINDINGS_PATH
    }
    missing = evaluations["sdtm_required_value_missing"]
    assert not missing.passed
    assert missing.severity == dg.AssetCheckSeverity.ERROR
    assert "required_value_missing" not in KEY_RULES
    assert all(evaluations[f"sdtm_{rule}"].passed for rule in KEY_RULES)
    # The run went on: silver holds the rows of the datasets with the finding.
    lake = Lake(real_lake.root)
    ae = lake.read(trials.silver_path("ae"))
    assert ae.height == _xpt("CRE-TESTSUITE", "AE.xpt").height
    assert (
        ae.get_column("aedecod").null_count()
        == _xpt("CRE-TESTSUITE", "AE.xpt")["AEDECOD"].null_count()
    )
    dm = lake.read(trials.silver_path("dm"))
    assert dm.height == _xpt(PILOT, "dm.xpt").height + _xpt("CRE-TESTSUITE", "DM.xpt").height
    assert lake.table("gold/research/trial_subjects") is not None


def test_enrolled_pilot_subjects_are_linked_and_shown_with_their_arm(real_lake):
    assert PILOT in load_policy().unblinded_studies()
    lake = Lake(real_lake.root)
    keys = _person_keys(lake)
    mapped = {**real_lake.enrolled, **real_lake.not_consented}
    dm = lake.read(trials.silver_path("dm"))
    linked = dm.filter(pl.col("link_status") == "linked")
    assert dict(linked.select("usubjid", "person_key").rows()) == {
        u: keys[m] for u, m in mapped.items()
    }
    assert linked.get_column("studyid").unique().to_list() == [PILOT]

    file = _xpt(PILOT, "dm.xpt").filter(pl.col("USUBJID").is_in(list(real_lake.enrolled)))
    person_of = {u: keys[m] for u, m in real_lake.enrolled.items()}
    pseudonym = _pseudonyms(real_lake.root, list(person_of.values()))
    date_key = load_keys(real_lake.root / "restricted" / "keys.json").date_shift
    shifts = dict(date_shifts(list(person_of.values()), key=date_key).rows())
    shift = pl.col("USUBJID").replace_strict(
        {u: shifts[p] for u, p in person_of.items()}, return_dtype=pl.Int64
    )
    rfstdtc = pl.col("RFSTDTC").str.to_date("%Y-%m-%d", strict=False)
    expected = file.select(
        pl.col("USUBJID")
        .replace_strict({u: pseudonym[p] for u, p in person_of.items()})
        .alias("person_pseudonym"),
        pl.lit(PILOT).alias("study_id"),
        pl.col("ARM").alias("arm"),
        pl.col("ARMCD").alias("arm_code"),
        pl.col("ACTARM").alias("actual_arm"),
        pl.lit("unblinded").alias("arm_status"),
        (rfstdtc + pl.duration(days=shift)).alias("reference_start"),
    )
    gold = lake.read("gold/research/trial_subjects").select(expected.columns)
    assert_frame_equal(gold.sort("person_pseudonym"), expected.sort("person_pseudonym"))
    assert gold.get_column("arm").n_unique() >= 4, "one subject per planned arm expected"
    assert (gold.get_column("arm") != gold.get_column("actual_arm")).any()


def test_unenrolled_and_unconsented_subjects_never_reach_the_views(real_lake):
    lake = Lake(real_lake.root)
    mapped = {**real_lake.enrolled, **real_lake.not_consented}
    for domain in trials.DOMAINS:
        silver = lake.read(trials.silver_path(domain))
        others = silver.filter(~pl.col("usubjid").is_in(list(mapped)))
        assert set(others.get_column("link_status")) <= {"not_enrolled"}, domain
        assert others.get_column("person_key").null_count() == others.height, domain
    keys = _person_keys(lake)
    person_of = {u: keys[m] for u, m in real_lake.enrolled.items()}
    allowed = set(_pseudonyms(real_lake.root, list(person_of.values())).values())
    for name in TRIAL_VIEWS:
        people = set(lake.read(f"gold/research/{name}").get_column("person_pseudonym"))
        assert people <= allowed, name
    # No AE dataset holds an enrolled subject: the view is empty.
    assert lake.read("gold/research/trial_adverse_events").is_empty()
    lbur = _xpt(PILOT, "lbur.xpt").filter(pl.col("USUBJID").is_in(list(real_lake.enrolled)))
    research = load_keys(real_lake.root / "restricted" / "keys.json").for_audience("research")
    record_keys = keyed_hash(
        research,
        [f"{PILOT}|{u}|{int(s)}" for u, s in lbur.select("USUBJID", "LBSEQ").rows()],
        prefix=LB_PREFIX,
    )
    expected = set(zip(record_keys, lbur.get_column("LBSTRESN").to_list(), strict=True))
    gold = lake.read("gold/research/trial_lab_results")
    assert gold.height == lbur.height > 0
    assert set(gold.select("record_key", "result").rows()) == expected
    # No subject identifier of either study reaches a view.
    usubjids = {
        *_xpt(PILOT, "dm.xpt").get_column("USUBJID"),
        *_xpt("CRE-TESTSUITE", "DM.xpt").get_column("USUBJID"),
    }
    cells = []
    for name in TRIAL_VIEWS:
        frame = lake.read(f"gold/research/{name}")
        cells += [str(v) for c in frame.columns for v in frame.get_column(c).drop_nulls()]
    blob = "\n".join(cells)
    assert not [u for u in usubjids if u in blob], "a USUBJID reached a trial view"
