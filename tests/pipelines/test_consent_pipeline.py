"""Consent everywhere, end to end: FHIR Consent and SDTM disposition records -> the consent
table -> every research view of every silo and the research consent table the server re-reads.

Expectations come from the generator (who consented, who withdrew from the study), from the
landed files read directly and from the lake's own keys. The tests that land a revocation
work on a copy of the session lake and landing folder and materialise everything again, as
the next scheduled run would.
"""

import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pyreadstat
import pytest

from connectors.synth import build_people, trial_truth
from connectors.synth.trial import DATASET_LABELS, STUDY_ID, VARIABLES
from mcp_catalog.governance.consent import withdrawn_from_studies
from mcp_catalog.governance.deid import PERSON_PREFIX
from pipelines.cli import materialize
from pipelines.consent import CONSENTS_PATH, SOURCE_PATHS
from pipelines.definitions import build_definitions
from pipelines.defs.catalog.assets import SERVED_VIEWS
from pipelines.defs.ehr.assets import CONSENT_STATUS_PATH
from pipelines.lake import Lake
from pipelines.research import CROSSWALK_PATH, pseudonyms_for
from pipelines.resources import LakeResource
from tests.pipelines.conftest import PATIENTS, SEED

TRIAL_VIEWS = ("trial_subjects", "trial_adverse_events", "trial_lab_results")
DS_FILE = Path("trials") / STUDY_ID / "ds.xpt"
REVOCATION_FILE = Path("ehr") / "Consent-revocation.ndjson"


# -- helpers ----------------------------------------------------------------------------------


def _pseudonym(root: Path, person_key: str) -> str:
    """The person's research pseudonym, computed from the lake's keys as the views are."""
    store = Lake(str(root))
    scheme = pseudonyms_for(store, LakeResource(root=str(root)), "research")
    frame = pl.DataFrame({"person_key": [person_key]})
    return scheme.apply(frame, "person_key", prefix=PERSON_PREFIX, alias="p").item()


def _research_views(root: Path) -> dict[str, pl.DataFrame]:
    """Every table below gold/research with a person_pseudonym column, by name."""
    store = Lake(str(root))
    views = {}
    for log in sorted((root / "gold" / "research").glob("*/_delta_log")):
        name = log.parent.name
        if name.startswith("_"):
            continue
        frame = store.read(f"gold/research/{name}")
        if "person_pseudonym" in frame.columns:
            views[name] = frame
    return views


def _rows_of(views: dict[str, pl.DataFrame], pseudonym: str) -> dict[str, int]:
    return {
        name: frame.filter(pl.col("person_pseudonym") == pseudonym).height
        for name, frame in views.items()
    }


def _linked_people(store: Lake, path: str) -> set[str]:
    frame = store.read(path)
    if "link_status" in frame.columns:
        frame = frame.filter(pl.col("link_status") == "linked")
    return set(frame.get_column("person_key").drop_nulls())


def _consent_rows(root: Path, pseudonym: str) -> dict[str, bool]:
    status = Lake(str(root)).read(CONSENT_STATUS_PATH)
    rows = status.filter(pl.col("person_pseudonym") == pseudonym)
    return dict(rows.select("scope", "permitted").iter_rows())


def _land_revocation(landing: Path, patient_id: str, when: datetime) -> None:
    """A later FHIR Consent for the patient that denies research, as the EHR would export it:
    the patient's own research consent with a new id, date and a deny provision."""
    lines = (landing / "ehr" / "Consent.ndjson").read_text().splitlines()
    original = next(
        json.loads(line)
        for line in lines
        if json.loads(line)["patient"]["reference"] == f"Patient/{patient_id}"
    )
    stamp = when.isoformat(timespec="seconds")
    revocation = {
        **original,
        "id": str(uuid.uuid4()),
        "dateTime": stamp,
        "provision": {**original["provision"], "type": "deny", "period": {"start": stamp}},
    }
    (landing / REVOCATION_FILE).write_text(json.dumps(revocation) + "\n")


def _land_withdrawal(landing: Path, usubjid: str, on: date) -> None:
    """A new transfer of the study's DS in which the subject withdrew consent."""
    path = landing / DS_FILE
    frame, _ = pyreadstat.read_xport(str(path))
    ds = pl.from_pandas(frame)
    last = ds.filter(pl.col("USUBJID") == usubjid).sort("DSSEQ").tail(1)
    withdrawal = last.with_columns(
        pl.lit(last.item(0, "DSSEQ") + 1).alias("DSSEQ"),
        pl.lit("Subject withdrew consent").alias("DSTERM"),
        pl.lit("WITHDRAWAL BY SUBJECT").alias("DSDECOD"),
        pl.lit("DISPOSITION EVENT").alias("DSCAT"),
        pl.lit("FOLLOW-UP").alias("EPOCH"),
        pl.lit(on.isoformat()).alias("DSSTDTC"),
        pl.lit(None, pl.Float64()).alias("DSSTDY"),
    )
    pyreadstat.write_xport(
        pl.concat([ds, withdrawal]),
        str(path),
        file_label=DATASET_LABELS["ds"],
        column_labels=[label for _, label, _ in VARIABLES["ds"]],
        table_name="DS",
        file_format_version=5,
    )


# -- the changed lake --------------------------------------------------------------------------


@dataclass
class ChangedLake:
    before: Path
    root: Path
    revoked: str
    """person_key of the person whose research consent was revoked (present in every silo)."""
    withdrawn: str
    """person_key of the trial subject who withdrew consent from the study."""
    run: object


@pytest.fixture(scope="module")
def changed_lake(materialised_lake, tmp_path_factory) -> ChangedLake:
    base = tmp_path_factory.mktemp("consent")
    landing, root = base / "landing", base / "lake"
    shutil.copytree(materialised_lake.landing, landing)
    shutil.copytree(materialised_lake.root, root)
    store = Lake(str(root))
    now = datetime.now(UTC)
    consents = store.read(CONSENTS_PATH)
    research = set(
        store.read(CONSENT_STATUS_PATH).filter(pl.col("scope") == "research", "permitted")[
            "person_pseudonym"
        ]
    )
    withdrawn_before = {p for p, _ in withdrawn_from_studies(consents, as_of=now)}
    crosswalk = store.read(CROSSWALK_PATH)
    people = set(crosswalk.get_column("person_key"))
    consented = {p for p in people if _pseudonym(root, p) in research} - withdrawn_before
    lab = _linked_people(store, "silver/lab/lab_results")
    imaging = _linked_people(store, "silver/imaging/dicom_studies")
    genomics = _linked_people(store, "silver/genomics/genotypes")
    trials = _linked_people(store, "silver/trials/dm")
    everywhere = sorted(consented & lab & imaging & genomics & trials)
    assert everywhere, "the cohort should hold a consented person present in every silo"
    revoked = everywhere[0]
    subjects = sorted((consented & trials) - {revoked})
    assert subjects, "the cohort should hold another consented trial subject"
    withdrawn = subjects[0]

    patient_ids = crosswalk.filter(pl.col("identifier_type") == "fhir_patient_id")
    patient_id = patient_ids.filter(pl.col("person_key") == revoked)["identifier"].item()
    _land_revocation(landing, patient_id, now - timedelta(minutes=5))
    dm = store.read("silver/trials/dm").filter(pl.col("person_key") == withdrawn)
    _land_withdrawal(landing, dm["usubjid"].item(), now.date() - timedelta(days=1))

    with dg.instance_for_test() as instance:
        run = materialize(str(root), str(landing), instance=instance, log_level="WARNING")
    assert run.success, "the run after the consent changes failed"
    return ChangedLake(materialised_lake.root, root, revoked, withdrawn, run)


# -- acceptance --------------------------------------------------------------------------------


def test_a_revoked_research_consent_removes_the_person_from_every_view_of_every_silo(
    changed_lake,
):
    pseudonym = _pseudonym(changed_lake.root, changed_lake.revoked)
    assert pseudonym == _pseudonym(changed_lake.before, changed_lake.revoked)
    before = _rows_of(_research_views(changed_lake.before), pseudonym)
    after_views = _research_views(changed_lake.root)
    after = _rows_of(after_views, pseudonym)
    # Every silo's views are among those checked, and the person was in each silo's.
    assert {"patients", "lab_results", "imaging_studies", "genotypes", *TRIAL_VIEWS} <= set(before)
    for name in ("patients", "conditions", "lab_results", "imaging_studies", "genotypes"):
        assert before[name] > 0, name
    assert before["trial_subjects"] == 1
    assert set(after) == set(before)
    assert after == dict.fromkeys(after, 0)
    # Nobody else left the patients view.
    gone = set(_research_views(changed_lake.before)["patients"]["person_pseudonym"]) - set(
        after_views["patients"]["person_pseudonym"]
    )
    assert gone == {pseudonym}
    # The table the server re-reads on every call no longer permits the person anywhere.
    assert _consent_rows(changed_lake.before, pseudonym)["research"] is True
    rows = _consent_rows(changed_lake.root, pseudonym)
    assert rows["research"] is False
    assert not any(rows.values())


def test_the_revocation_is_a_denial_from_the_landed_file_in_the_consent_table(changed_lake):
    consents = Lake(str(changed_lake.root)).read(CONSENTS_PATH)
    mine = consents.filter(
        pl.col("person_key") == changed_lake.revoked, pl.col("study_id").is_null()
    )
    latest = mine.sort("recorded_at").tail(1)
    assert latest["source_file"].item() == REVOCATION_FILE.name
    assert latest["source_locator"].item() == "line:1"
    assert (latest["decision"].item(), latest["status"].item()) == ("deny", "active")
    assert mine.height == 2


def test_a_study_consent_withdrawal_removes_the_subject_from_that_studys_views_only(
    changed_lake,
):
    pseudonym = _pseudonym(changed_lake.root, changed_lake.withdrawn)
    before = _rows_of(_research_views(changed_lake.before), pseudonym)
    after = _rows_of(_research_views(changed_lake.root), pseudonym)
    assert before["trial_subjects"] == 1
    assert before["trial_adverse_events"] + before["trial_lab_results"] > 0
    for name in TRIAL_VIEWS:
        assert after[name] == 0, name
    # Everything else the person's research consent allows stays, row for row.
    others = {n: c for n, c in before.items() if n not in TRIAL_VIEWS}
    assert others["patients"] == 1
    assert {n: after[n] for n in others} == others
    rows = _consent_rows(changed_lake.root, pseudonym)
    assert rows == {"research": True, f"trial:{STUDY_ID}": False}
    assert _consent_rows(changed_lake.before, pseudonym) == {
        "research": True,
        f"trial:{STUDY_ID}": True,
    }


def test_the_run_after_the_changes_passes_the_consent_checks(changed_lake):
    evaluations = {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for event in changed_lake.run.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
        for e in [event.event_specific_data]
    }
    assert evaluations[(CONSENTS_PATH, "quality_suite")] is True
    assert evaluations[(CONSENTS_PATH, "ds_withdrawals")] is True


# -- the session lake against the generator -------------------------------------------------------


def test_the_consent_table_holds_every_fhir_consent_and_trial_consent_record(materialised_lake):
    store = Lake(str(materialised_lake.root))
    consents = store.read(CONSENTS_PATH)
    fhir_lines = (materialised_lake.landing / "ehr" / "Consent.ndjson").read_text().splitlines()
    ds, _ = pyreadstat.read_xport(str(materialised_lake.landing / DS_FILE))
    ds = pl.from_pandas(ds)
    milestones = ds.filter(pl.col("DSDECOD") == "INFORMED CONSENT OBTAINED").height
    truth = trial_truth(build_people(PATIENTS, SEED))
    withdrew = truth.filter(pl.col("disposition") == "WITHDRAWAL BY SUBJECT").height
    assert withdrew > 0, "the cohort should hold a subject who withdrew consent"
    counts = dict(consents.group_by("basis").len().iter_rows())
    assert counts == {
        "fhir_consent": len(fhir_lines),
        "informed_consent_obtained": milestones,
        "consent_withdrawn": withdrew,
    }
    assert milestones == truth.height


def test_research_consent_and_study_withdrawals_match_the_generator(materialised_lake):
    root = materialised_lake.root
    store = Lake(str(root))
    people = build_people(PATIENTS, SEED)
    keys = dict(
        store.read(CROSSWALK_PATH)
        .filter(pl.col("identifier_type") == "mrn")
        .select("identifier", "person_key")
        .iter_rows()
    )
    permitted = {_pseudonym(root, keys[p.mrn]) for p in people if p.research_consent == "permit"}
    status = store.read(CONSENT_STATUS_PATH)
    research = status.filter(pl.col("scope") == "research")
    assert set(research.filter("permitted")["person_pseudonym"]) == permitted
    assert research.height == len(people)
    truth = trial_truth(people)
    withdrew = {
        _pseudonym(root, keys[m])
        for m in truth.filter(pl.col("disposition") == "WITHDRAWAL BY SUBJECT")["mrn"]
    }
    refused = {
        _pseudonym(root, keys[p.mrn])
        for p in people
        if p.trial_usubjid is not None and p.research_consent != "permit"
    }
    study = status.filter(pl.col("scope") == f"trial:{STUDY_ID}")
    assert study.height == truth.height
    assert withdrew and refused and not withdrew & refused
    assert set(study.filter(~pl.col("permitted"))["person_pseudonym"]) == withdrew | refused
    subjects = set(store.read("gold/research/trial_subjects")["person_pseudonym"])
    assert subjects and not subjects & withdrew


def test_every_research_view_and_the_consent_status_are_built_from_the_consent_table():
    graph = build_definitions().resolve_asset_graph()

    def parents(path: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(dg.AssetKey(path.split("/"))).parent_keys}

    assert parents(CONSENTS_PATH) == set(SOURCE_PATHS)
    assert CONSENTS_PATH in parents(CONSENT_STATUS_PATH)
    for spec in SERVED_VIEWS:
        assert CONSENTS_PATH in parents(spec.path), spec.path
        assert "silver/ehr/consents" not in parents(spec.path), spec.path


# -- the withdrawal review check ----------------------------------------------------------------


def _silver_ds(rows) -> pl.DataFrame:
    """(usubjid, seq, term, decod, category) rows of linked subjects of one study."""
    return pl.DataFrame(
        [
            {
                "studyid": "S-1",
                "usubjid": usubjid,
                "person_key": usubjid.encode().hex().ljust(32, "0"),
                "link_status": "linked",
                "dsseq": seq,
                "dsterm": term,
                "dsdecod": decod,
                "dscat": category,
                "dsstdtc": "2024-05-01",
                "dsdtc": None,
                "source_file": "S-1/ds.xpt",
                "source_locator": f"row:{n}",
            }
            for n, (usubjid, seq, term, decod, category) in enumerate(rows, 1)
        ],
        schema_overrides={"dsseq": pl.Float64(), "dsdtc": pl.String()},
    )


def _check(tmp_path: Path, ds: pl.DataFrame, consents_from: pl.DataFrame) -> dg.AssetCheckResult:
    from pipelines.consent import TRIAL_DS_PATH, build_consents
    from pipelines.defs.consent.checks import ds_withdrawals

    store = Lake(str(tmp_path / "lake"))
    store.replace_table(TRIAL_DS_PATH, ds, run_id="test")
    store.replace_table(CONSENTS_PATH, build_consents(None, consents_from).table, run_id="test")
    return ds_withdrawals(lake=LakeResource(root=str(tmp_path / "lake")))


def test_the_withdrawal_check_fails_when_a_withdrawal_is_not_applied_and_warns_on_doubt(
    tmp_path,
):
    withdrew = ("U1", 2.0, "Subject withdrew consent", "WITHDRAWAL BY SUBJECT", "DISPOSITION EVENT")
    consented = ("U1", 1.0, "INFORMED CONSENT OBTAINED", "INFORMED CONSENT OBTAINED",
                 "PROTOCOL MILESTONE")  # fmt: skip
    left = ("U2", 1.0, "Moved to another city", "WITHDRAWAL BY SUBJECT", "DISPOSITION EVENT")
    applied = _check(
        tmp_path / "a", _silver_ds([consented, withdrew]), _silver_ds([consented, withdrew])
    )
    assert applied.passed
    assert applied.metadata["consent_withdrawals"].value == 1
    stale = _check(tmp_path / "b", _silver_ds([consented, withdrew]), _silver_ds([consented]))
    assert not stale.passed and stale.severity == dg.AssetCheckSeverity.ERROR
    assert stale.metadata["not_applied"].value == 1
    doubt = _check(tmp_path / "c", _silver_ds([consented, left]), _silver_ds([consented, left]))
    assert not doubt.passed and doubt.severity == dg.AssetCheckSeverity.WARN
    assert doubt.metadata["left_study_without_consent_withdrawal"].value == 1
