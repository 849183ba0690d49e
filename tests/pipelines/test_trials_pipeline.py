"""End to end: the synthetic study BIOFED-01 (SDTM XPORT datasets and the enrolment map)
-> bronze per domain -> silver linked to person_key -> research views, in a real lake.

Expectations come from the generator (``trial_truth``, ``trial_records``), from the landed
files read directly (pyreadstat, the csv module) and from the lake's own keys, never from
what the pipeline wrote alone. Tests that materialise again work on a copy of the session
lake and landing folder in ``tmp_path`` (the session lake stays as it was), and materialise
only the trial assets: the rest of the lake is unchanged by what they do.
"""

import csv
import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pyreadstat
import pytest

from connectors.sdtm import RULES
from connectors.synth import build_people, trial_truth
from connectors.synth.trial import ARMS, STUDY_ID, VARIABLES, trial_records
from mcp_catalog.governance.deid import date_shifts, keyed_hash
from mcp_catalog.governance.keys import load_keys
from mcp_catalog.governance.trials import AE_PREFIX, LB_PREFIX, TRIAL_VIEWS
from mcp_catalog.governance.views import build_view
from mcp_catalog.policy import load_policy
from pipelines import trials
from pipelines.cli import materialize
from pipelines.lake import Lake
from pipelines.research import CROSSWALK_PATH, research_context
from pipelines.resources import LakeResource
from tests.pipelines.conftest import PATIENTS, SEED, call_tool

DOMAINS = trials.DOMAINS
VIEWS = {spec.name: spec for spec in TRIAL_VIEWS}
ARM_COLUMNS = {
    "trial_subjects": ("arm", "arm_code", "actual_arm"),
    "trial_adverse_events": ("arm",),
    "trial_lab_results": ("arm",),
}
ENROLMENT = Path("trials") / trials.ENROLMENT_NAME

TRIAL_BRONZE = ",".join(
    [
        *(f"bronze/trials/{name}" for name in (*DOMAINS, "other_domains", "findings")),
        *(f"bronze/trials/{name}" for name in ("variables", "files", "rejects", "enrolment")),
    ]
)
"""The trials silo's bronze assets (the ledger among them)."""
TRIAL_SILO = ",".join([TRIAL_BRONZE, *(f"silver/trials/{d}" for d in DOMAINS)])
"""The trials silo's bronze and silver assets."""
TRIAL_ASSETS = ",".join([TRIAL_SILO, *(f"gold/research/{name}" for name in VIEWS)])
"""Every asset of the trials silo and its research views: what the reruns materialise when
they look at the views. A rerun that only looks at bronze (or bronze and silver) runs only
those: nothing upstream of them is affected by the views (their checks run with them)."""


# -- expectations ------------------------------------------------------------------------


def _people():
    return build_people(PATIENTS, SEED)


def _truth() -> pl.DataFrame:
    return trial_truth(_people())


def _consent_by_mrn() -> dict[str, str]:
    return {p.mrn: p.research_consent for p in _people()}


def _enrolment_rows(landing: Path) -> list[dict[str, str]]:
    with (landing / ENROLMENT).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _person_keys(lake: Lake) -> dict[str, str]:
    """MRN -> person_key, as the crosswalk gives it."""
    crosswalk = lake.read(CROSSWALK_PATH).filter(pl.col("identifier_type") == "mrn")
    return dict(crosswalk.select("identifier", "person_key").iter_rows())


def _research_key(root: Path) -> bytes:
    return load_keys(root / "restricted" / "keys.json").for_audience("research")


def _person_pseudonyms(root: Path, person_keys: list[str]) -> dict[str, str]:
    """person_key -> research pseudonym, recomputed with the lake's key."""
    return dict(
        zip(person_keys, keyed_hash(_research_key(root), person_keys, prefix="P"), strict=True)
    )


def _record_key(root: Path, prefix: str, usubjid: str, seq: float) -> str:
    return keyed_hash(_research_key(root), [f"{STUDY_ID}|{usubjid}|{int(seq)}"], prefix=prefix)[0]


def _subjects(lake: Lake, root: Path) -> pl.DataFrame:
    """One row per subject: usubjid, mrn, arm, armcd, record counts, last disposition,
    research consent, person_key, pseudonym."""
    truth = _truth()
    keys = _person_keys(lake)
    mrns = truth.get_column("mrn").to_list()
    pseudonyms = _person_pseudonyms(root, [keys[m] for m in mrns])
    consent = _consent_by_mrn()
    return truth.select(
        "usubjid", "mrn", "arm", "armcd", "n_ae", "n_lb", "disposition"
    ).with_columns(
        pl.Series("consent", [consent[m] for m in mrns]),
        pl.Series("person_key", [keys[m] for m in mrns]),
        pl.Series("person_pseudonym", [pseudonyms[keys[m]] for m in mrns]),
    )


def _in_views(subjects: pl.DataFrame) -> pl.DataFrame:
    """The subjects the trial views hold: research consent, and no withdrawal of consent from
    the study (the generator's WITHDRAWAL BY SUBJECT records say "Subject withdrew consent")."""
    return subjects.filter(
        pl.col("consent") == "permit",
        pl.col("disposition").ne_missing("WITHDRAWAL BY SUBJECT"),
    )


def _trial_tables(root: Path) -> list[str]:
    found = sorted(p.parent.relative_to(root).as_posix() for p in root.rglob("_delta_log"))
    return [
        p
        for p in found
        if p.startswith(("bronze/trials/", "silver/trials/", "_rejects/trials/"))
        or p in {f"gold/research/{name}" for name in VIEWS}
    ]


def _copy(materialised_lake, tmp_path: Path) -> tuple[Path, Path]:
    landing, root = tmp_path / "landing", tmp_path / "lake"
    shutil.copytree(materialised_lake.landing, landing)
    shutil.copytree(materialised_lake.root, root)
    return landing, root


def _materialise_trials(root: Path, landing: Path, selection: str = TRIAL_ASSETS) -> None:
    with dg.instance_for_test() as instance:
        result = materialize(str(root), str(landing), selection, instance=instance)
    assert result.success, "materialising the trial assets failed"


def _iso_date(column: str) -> pl.Expr:
    return pl.col(column).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)


# -- 1. linking and counts ---------------------------------------------------------------


def test_every_subject_is_linked_to_the_person_the_generator_enrolled(materialised_lake):
    lake = Lake(materialised_lake.root)
    truth = _truth()
    assert truth.height > 0
    enrolment = {
        (row["studyid"], row["usubjid"]): row["mrn"]
        for row in _enrolment_rows(materialised_lake.landing)
    }
    expected_mrns = {(STUDY_ID, u): m for u, m in truth.select("usubjid", "mrn").iter_rows()}
    assert enrolment == expected_mrns, "the landed enrolment map is not the generator's roster"
    # The crosswalk's MRN -> person_key, cross-checked with the EHR's own patients table.
    keys = _person_keys(lake)
    patients = dict(lake.read("silver/ehr/patients").select("mrn", "person_key").iter_rows())
    expected = {usubjid: keys[mrn] for (_, usubjid), mrn in expected_mrns.items()}
    assert all(patients[m] == keys[m] for m in truth.get_column("mrn"))
    dm = lake.read(trials.silver_path("dm"))
    assert dm.get_column("link_status").unique().to_list() == ["linked"]
    assert dict(dm.select("usubjid", "person_key").iter_rows()) == expected
    for domain in DOMAINS:
        silver = lake.read(trials.silver_path(domain))
        linked = silver.select("usubjid", "person_key", "link_status").unique()
        assert set(linked.get_column("link_status")) <= {"linked"}, domain
        assert all(expected[u] == p for u, p, _ in linked.iter_rows()), domain


def test_silver_holds_each_generated_record_once_per_key(materialised_lake):
    lake = Lake(materialised_lake.root)
    records = trial_records(_people())
    truth = _truth()
    for domain in DOMAINS:
        silver = lake.read(trials.silver_path(domain))
        keys = trials.domain_key(domain)
        generated = records[domain]
        assert silver.height == generated.height, domain
        if domain != "dm":
            assert generated.height == truth.get_column(f"n_{domain}").sum(), domain
        assert not silver.select(keys).is_duplicated().any(), f"{domain} keys repeat"
        assert silver.select(keys).null_count().row(0) == (0,) * len(keys), domain
        expected = generated.select([pl.col(k.upper()).alias(k) for k in keys])
        assert sorted(silver.select(keys).rows()) == sorted(expected.rows()), domain
    dm = lake.read(trials.silver_path("dm"))
    assert sorted(dm.get_column("usubjid")) == sorted(truth.get_column("usubjid"))


# -- 2. blinding -------------------------------------------------------------------------


def test_the_shipped_policy_keeps_biofed_01_blinded_in_every_trial_view(materialised_lake):
    assert STUDY_ID not in load_policy().unblinded_studies()
    lake = Lake(materialised_lake.root)
    for name, arms in ARM_COLUMNS.items():
        view = lake.read(f"gold/research/{name}")
        assert view.height > 0, name
        assert view.get_column("study_id").unique().to_list() == [STUDY_ID], name
        assert view.get_column("arm_status").unique().to_list() == ["blinded"], name
        for column in arms:
            assert view.get_column(column).null_count() == view.height, f"{name}.{column}"


def test_unblinding_biofed_01_shows_the_arms_the_generator_randomised(materialised_lake):
    root = materialised_lake.root
    lake = Lake(root)
    subjects = _subjects(lake, root)
    arm_of = {p: (a, c) for p, a, c in subjects.select("person_pseudonym", "arm", "armcd").rows()}
    assert {a for a, _ in arm_of.values()} == {arm for _, arm in ARMS}, "both arms expected"
    shipped = research_context(lake, LakeResource(root=str(root)), "research")
    assert STUDY_ID not in shipped.unblinded_studies
    unblinded = dataclasses.replace(shipped, unblinded_studies=frozenset({STUDY_ID}))
    for name, arms in ARM_COLUMNS.items():
        spec = VIEWS[name]
        sources = {s: lake.read(s) for s in spec.sources}
        view = build_view(spec, sources, unblinded)
        gold = lake.read(spec.path).sort(list(spec.key))
        assert view.height == gold.height > 0, name
        assert view.get_column("arm_status").unique().to_list() == ["unblinded"], name
        # Unblinding changes the arm columns only.
        kept = [c for c in gold.columns if c not in (*arms, "arm_status")]
        assert view.sort(list(spec.key)).select(kept).equals(gold.select(kept)), name
        shown = view.select("person_pseudonym", "arm").rows()
        assert all(arm == arm_of[person][0] for person, arm in shown), name
        if name == "trial_subjects":
            codes = view.select("person_pseudonym", "arm_code", "actual_arm").rows()
            assert all(code == arm_of[p][1] for p, code, _ in codes)
            assert all(actual == arm_of[p][0] for p, _, actual in codes)


@pytest.mark.anyio
async def test_no_arm_value_leaves_the_mcp_server_while_blinded(materialised_lake):
    root = materialised_lake.root
    truth = _truth()
    secrets = {*truth.get_column("arm"), *truth.get_column("armcd")}
    gold = Lake(root).read("gold/research/trial_subjects")
    served = []
    tools, counts = await call_tool(
        root, "researcher", "research", "aggregate_trial_adverse_events", {"group_by": ["arm"]}
    )
    assert "aggregate_trial_adverse_events" in tools
    assert counts is not None and not counts.is_error, counts
    cells = counts.structured_content["cells"]
    assert cells and all(cell["arm"] is None for cell in cells)
    served.append(json.dumps(counts.structured_content))
    _, rows = await call_tool(
        root, "researcher", "research", "query_trial_subjects", {"limit": 100}
    )
    assert rows is not None and not rows.is_error, rows
    page = rows.structured_content["rows"]
    assert len(page) == gold.height > 0
    assert all(r["arm"] is None and r["arm_code"] is None and r["actual_arm"] is None for r in page)
    assert {r["arm_status"] for r in page} == {"blinded"}
    served.append(json.dumps(rows.structured_content))
    # Filtering on an arm must not reveal who is in it either.
    for arm in sorted(set(truth.get_column("arm"))):
        _, probe = await call_tool(
            root, "researcher", "research", "query_trial_subjects",
            {"limit": 100, "filters": {"arm": {"eq": arm}}},
        )  # fmt: skip
        assert probe is not None and not probe.is_error, probe
        assert probe.structured_content["rows"] == []
    for result in (counts, rows):
        served += [getattr(block, "text", "") for block in result.content]
    text = "\n".join(served)
    assert not [s for s in secrets if s in text], "an arm value reached MCP output"


# -- 3. consent, identifiers, dates ------------------------------------------------------


def test_the_trial_views_hold_exactly_the_consented_subjects(materialised_lake):
    root = materialised_lake.root
    lake = Lake(root)
    subjects = _subjects(lake, root)
    research = subjects.filter(pl.col("consent") == "permit")
    consented = _in_views(subjects)
    assert 0 < research.height < subjects.height, "the cohort should have both kinds"
    assert 0 < consented.height < research.height, "a subject should have withdrawn consent"
    allowed = set(consented.get_column("person_pseudonym"))
    view = lake.read("gold/research/trial_subjects")
    assert sorted(view.get_column("person_pseudonym")) == sorted(allowed)
    ae = lake.read("gold/research/trial_adverse_events")
    lb = lake.read("gold/research/trial_lab_results")
    assert set(ae.get_column("person_pseudonym")) <= allowed
    assert set(lb.get_column("person_pseudonym")) <= allowed
    assert ae.height == consented.get_column("n_ae").sum() > 0
    assert lb.height == consented.get_column("n_lb").sum() > 0


def test_no_subject_identifier_or_verbatim_term_reaches_the_trial_views(materialised_lake):
    records = trial_records(_people())
    truth = _truth()
    identifiers = {
        "USUBJID": set(records["dm"].get_column("USUBJID")),
        "SUBJID": set(records["dm"].get_column("SUBJID")),
        "MRN": set(truth.get_column("mrn")),
        # A verbatim term spelled exactly as its dictionary term says nothing more.
        "AETERM": set(records["ae"].get_column("AETERM")) - set(records["ae"]["AEDECOD"]),
    }
    assert all(identifiers.values())
    lake = Lake(materialised_lake.root)
    cells: list[str] = []
    for name in VIEWS:
        frame = lake.read(f"gold/research/{name}")
        for column in frame.columns:
            cells += [str(v) for v in frame.get_column(column).drop_nulls().to_list()]
    blob, whole = "\n".join(cells), set(cells)
    for kind, values in identifiers.items():
        for value in values:
            leaked = value in blob if len(value) >= 8 else value in whole
            assert not leaked, f"a {kind} value appears in a gold trial view"


def test_trial_view_dates_move_by_each_persons_shift(materialised_lake):
    root = materialised_lake.root
    lake = Lake(root)
    keys = load_keys(root / "restricted" / "keys.json")
    subjects = _subjects(lake, root)
    shifts = date_shifts(subjects.get_column("person_key").to_list(), key=keys.date_shift)
    people = subjects.select("usubjid", "person_pseudonym", "person_key").join(
        shifts, on="person_key"
    )
    assert (people.get_column("shift_days") != 0).all()
    plus_shift = pl.duration(days=pl.col("shift_days"))

    dm = lake.read(trials.silver_path("dm")).join(people, on="usubjid")
    gold = lake.read("gold/research/trial_subjects").join(
        dm, on="person_pseudonym", how="left", suffix="_silver"
    )
    assert gold.get_column("usubjid").null_count() == 0 and gold.height > 0
    for view_column, source in (
        ("informed_consent_date", "rficdtc"),
        ("reference_start", "rfstdtc"),
        ("reference_end", "rfendtc"),
    ):
        expected = gold.select((_iso_date(source) + plus_shift).alias("e")).get_column("e")
        assert gold.get_column(view_column).equals(expected, check_names=False), view_column
    assert gold.get_column("informed_consent_date").null_count() == 0

    ae_dates = (("start_date", "aestdtc"), ("end_date", "aeendtc"))
    lb_dates = (("date", "lbdtc"),)
    for name, domain, prefix, columns in (
        ("trial_adverse_events", "ae", AE_PREFIX, ae_dates),
        ("trial_lab_results", "lb", LB_PREFIX, lb_dates),
    ):
        silver = lake.read(trials.silver_path(domain)).join(people, on="usubjid")
        silver = silver.with_columns(
            pl.Series(
                "record_key",
                [
                    _record_key(root, prefix, u, s)
                    for u, s in silver.select("usubjid", f"{domain}seq").iter_rows()
                ],
            )
        )
        view = lake.read(f"gold/research/{name}").join(
            silver, on="record_key", how="left", suffix="_silver"
        )
        assert view.height > 0 and view.get_column("usubjid").null_count() == 0, name
        assert (view.get_column("person_pseudonym") == view["person_pseudonym_silver"]).all()
        for view_column, source in columns:
            expected = view.select((_iso_date(source) + plus_shift).alias("e")).get_column("e")
            assert view.get_column(view_column).equals(expected, check_names=False), view_column
            moved = view.filter(pl.col(view_column).is_not_null())
            assert moved.height > 0
            assert moved.select((pl.col(view_column) != _iso_date(source)).all()).item()


# -- 4. conformance ----------------------------------------------------------------------


def test_the_synthetic_study_passes_every_conformance_check(materialised_lake):
    lake = Lake(materialised_lake.root)
    findings = lake.read(trials.FINDINGS_PATH)
    assert findings.filter(pl.col("severity").cast(pl.String) == "error").is_empty()
    evaluations = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in materialised_lake.first_run.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.asset_check_evaluation_data.asset_key.to_user_string() == trials.FINDINGS_PATH
    }
    assert set(evaluations) == {f"sdtm_{rule}" for rule in RULES}
    failed = [name for name, data in evaluations.items() if not data.passed]
    assert not failed, f"conformance checks failed on the synthetic study: {failed}"


def test_bronze_variables_are_the_landed_files_variables_and_labels(materialised_lake):
    lake = Lake(materialised_lake.root)
    variables = lake.read(trials.VARIABLES_PATH)
    study = materialised_lake.landing / "trials" / STUDY_ID
    files = sorted(study.glob("*.xpt"))
    assert [f.stem for f in files] == sorted(DOMAINS)
    assert set(variables.get_column("source_file")) == {f"{STUDY_ID}/{f.name}" for f in files}
    kinds = {"string": "Char", "double": "Num"}
    for path in files:
        _, meta = pyreadstat.read_xport(path, metadataonly=True)
        expected = [
            (
                meta.table_name,
                path.stem.upper(),
                name,
                label,
                kinds[meta.readstat_variable_types[name]],
                meta.variable_storage_width[name],
                position,
            )
            for position, (name, label) in enumerate(
                zip(meta.column_names, meta.column_labels, strict=True), start=1
            )
        ]
        stored = (
            variables.filter(pl.col("source_file") == f"{STUDY_ID}/{path.name}")
            .sort("position")
            .select(
                "dataset",
                "domain",
                "variable",
                "label",
                pl.col("type").cast(pl.String),
                "length",
                "position",
            )
            .rows()
        )
        assert stored == expected, path.name
        # The generator's declared variables and labels, as a second, independent source.
        declared = [(n, lab, k) for n, lab, k in VARIABLES[path.stem]]
        assert [(r[2], r[3], r[4]) for r in stored] == declared, path.name


# -- 5. reruns and changed landings ------------------------------------------------------


def test_reruns_follow_the_landing_unchanged_changed_and_removed(materialised_lake, tmp_path):
    landing, root = _copy(materialised_lake, tmp_path)
    lake = Lake(root)
    tables = _trial_tables(root)
    assert len(tables) > 20
    before = {p: lake.version(p) for p in tables}
    _materialise_trials(root, landing)
    assert {p: lake.version(p) for p in tables} == before, "an unchanged landing committed"

    # One adverse event of a consented subject disappears from ae.xpt.
    subjects = _subjects(lake, root)
    consented = set(_in_views(subjects).get_column("usubjid"))
    study = landing / "trials" / STUDY_ID
    ae, meta = pyreadstat.read_xport(study / "ae.xpt", output_format="polars")
    victim = ae.filter(pl.col("USUBJID").is_in(list(consented))).row(0, named=True)
    gone = (pl.col("USUBJID") == victim["USUBJID"]) & (pl.col("AESEQ") == victim["AESEQ"])
    pyreadstat.write_xport(
        ae.filter(~gone),
        str(study / "ae.xpt"),
        file_label=meta.file_label,
        column_labels=meta.column_labels,
        table_name=meta.table_name,
        file_format_version=5,
    )
    victim_key = _record_key(root, AE_PREFIX, victim["USUBJID"], victim["AESEQ"])
    gold_ae = lake.read("gold/research/trial_adverse_events")
    assert victim_key in set(gold_ae.get_column("record_key"))
    silver_before = lake.read(trials.silver_path("ae")).height
    read_before = lake.read(trials.FILES_PATH).get_column("ingested_at").max()
    _materialise_trials(root, landing, f"{TRIAL_SILO},gold/research/trial_adverse_events")

    ledger = lake.read(trials.FILES_PATH)
    new_sha = hashlib.sha256((study / "ae.xpt").read_bytes()).hexdigest()
    landed = ledger.filter(pl.col("source_file") == f"{STUDY_ID}/ae.xpt")
    assert landed.get_column("source_sha256").to_list() == [new_sha]
    # The study is re-read whole: every dataset of the folder carries the new ingestion.
    assert (ledger.get_column("ingested_at") > read_before).all()
    silver_ae = lake.read(trials.silver_path("ae"))
    assert silver_ae.height == silver_before - 1
    assert silver_ae.filter(
        (pl.col("usubjid") == victim["USUBJID"]) & (pl.col("aeseq") == victim["AESEQ"])
    ).is_empty()
    assert lake.read(trials.bronze_path("ae")).height == ae.height - 1
    after = lake.read("gold/research/trial_adverse_events")
    assert victim_key not in set(after.get_column("record_key"))
    assert after.height == gold_ae.height - 1

    # A dataset file leaves the study folder: its rows leave bronze (and silver).
    cm_rows = lake.read(trials.bronze_path("cm")).height
    assert cm_rows == trial_records(_people())["cm"].height > 0
    (study / "cm.xpt").unlink()
    _materialise_trials(root, landing, TRIAL_SILO)
    assert lake.read(trials.bronze_path("cm")).is_empty()
    assert lake.read(trials.silver_path("cm")).is_empty()
    ledger = lake.read(trials.FILES_PATH)
    assert f"{STUDY_ID}/cm.xpt" not in set(ledger.get_column("source_file"))
    assert lake.read(trials.bronze_path("dm")).height == _truth().height


# -- 6. a broken enrolment map -----------------------------------------------------------


def test_a_broken_enrolment_map_is_quarantined_by_line(materialised_lake, tmp_path):
    landing, root = _copy(materialised_lake, tmp_path)
    lake = Lake(root)
    subjects = _subjects(lake, root)
    consented = _in_views(subjects).sort("usubjid")
    twice, blank = consented.get_column("usubjid").to_list()[:2]
    gone_people = set(consented.filter(pl.col("usubjid").is_in([twice, blank]))["person_pseudonym"])
    stranger = next(p.mrn for p in _people() if p.trial_usubjid is None)
    rows = _enrolment_rows(landing)
    lines = {row["usubjid"]: number for number, row in enumerate(rows, start=2)}
    for row in rows:
        if row["usubjid"] == blank:
            row["mrn"] = ""
    rows.append({**next(r for r in rows if r["usubjid"] == twice), "mrn": stranger})
    with (landing / ENROLMENT).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["studyid", "usubjid", "site", "mrn"])
        writer.writeheader()
        writer.writerows(rows)
    _materialise_trials(root, landing)

    rejects = lake.read(trials.ENROLMENT_REJECTS_PATH).select("source", "locator", "reason")
    two_mrns = "the subject is listed for more than one MRN"
    assert sorted(rejects.rows()) == sorted(
        [
            (trials.ENROLMENT_NAME, f"line:{lines[twice]}", two_mrns),
            (trials.ENROLMENT_NAME, f"line:{len(rows) + 1}", two_mrns),
            (trials.ENROLMENT_NAME, f"line:{lines[blank]}", "mrn is empty"),
        ]
    )
    enrolment = lake.read(trials.ENROLMENT_PATH)
    assert set(enrolment.get_column("usubjid")) == set(subjects["usubjid"]) - {twice, blank}
    for domain in DOMAINS:
        silver = lake.read(trials.silver_path(domain))
        broken = silver.filter(pl.col("usubjid").is_in([twice, blank]))
        assert set(broken.get_column("link_status")) <= {"not_enrolled"}, domain
        assert broken.get_column("person_key").null_count() == broken.height, domain
        others = silver.filter(~pl.col("usubjid").is_in([twice, blank]))
        assert set(others.get_column("link_status")) <= {"linked"}, domain
    assert (
        lake.read(trials.silver_path("dm")).filter(pl.col("link_status") == "not_enrolled").height
        == 2
    )
    for name in VIEWS:
        people = set(lake.read(f"gold/research/{name}").get_column("person_pseudonym"))
        assert not people & gone_people, f"{name} still holds an unlinked subject"
    assert lake.read("gold/research/trial_subjects").height == consented.height - 2


# -- a bug: a removed study folder ------------------------------------------------------


def test_a_removed_study_folder_leaves_bronze_like_a_removed_dataset(materialised_lake, tmp_path):
    # BUG (pipelines/trials.py:159 scan_landing, :164 changed_studies, :118 gone_sources;
    # pipelines/defs/trials/assets.py:110-113): a study folder with no dataset left is not
    # listed by scan_landing, so it is never "changed" and gone_sources only looks inside
    # changed folders. Removing one dataset deletes its rows, but removing (or renaming) the
    # whole folder keeps every row in bronze, silver, the ledger and the research views.
    landing, root = _copy(materialised_lake, tmp_path)
    lake = Lake(root)
    shutil.rmtree(landing / "trials" / STUDY_ID)
    _materialise_trials(root, landing, TRIAL_BRONZE)
    left = {
        d: lake.read(trials.bronze_path(d))
        .filter(pl.col("source_file").str.starts_with(f"{STUDY_ID}/"))
        .height
        for d in DOMAINS
    }
    ledger = lake.read(trials.FILES_PATH).get_column("source_file").to_list()
    assert not any(left.values()) and not ledger, (
        f"the rows of the removed study folder {STUDY_ID} stay in bronze ({left}) and its "
        f"files in the ledger ({len(ledger)}): a folder without datasets is never seen as "
        "changed (pipelines/trials.py scan_landing/changed_studies/gone_sources)"
    )


@pytest.fixture
def anyio_backend():
    return "asyncio"
