"""Identity end to end: every silo's source identifiers reach the person crosswalk, silver
links agree with it, it is never served, and linkage conflicts in deliberately broken
manifests are quarantined with reasons, never guessed."""

import hashlib
import json
import shutil
import uuid
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from pipelines import ehr, genomics, identity, imaging, lab, trials
from pipelines.cli import materialize
from pipelines.lake import Lake
from pipelines.quality_record import QUALITY_RESULTS_PATH
from pipelines.research import CROSSWALK_PATH
from quality.report import collect_report_data
from quality.suites import suite_for

KEY = ["source_system", "identifier_type", "identifier"]


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _people(crosswalk: pl.DataFrame) -> dict[tuple[str, str, str], str]:
    return {(s, t, i): p for s, t, i, p in crosswalk.select(*KEY, "person_key").iter_rows()}


def _source_ids(lake: Lake) -> set[tuple[str, str, str]]:
    """Every source identifier the landed data names, from bronze."""
    patients = lake.read("bronze/ehr/patients")
    index = lake.read(lab.INDEX_PATH)
    samples = lake.read(genomics.SAMPLES_PATH)
    orders = lake.read(imaging.ORDERS_PATH)
    enrolment = lake.read(trials.ENROLMENT_PATH)
    return {
        *(("ehr", "fhir_patient_id", i) for i in patients.get_column("id").to_list()),
        *(("ehr", "mrn", m) for m in patients.get_column("mrn").drop_nulls().to_list()),
        *(
            (f"lab:{s}", "lab_patient_id", i)
            for s, i in index.select("site", "lab_patient_id").rows()
        ),
        *(("genomics", "vcf_sample_id", s) for s in samples.get_column("sample_id").to_list()),
        *(("imaging", "dicom_patient_id", p) for p in orders.get_column("patient_id").to_list()),
        *((f"trials:{s}", "usubjid", u) for s, u in enrolment.select("studyid", "usubjid").rows()),
    }


def test_every_silo_s_source_identifiers_are_linked_without_conflict(materialised_lake):
    lake = Lake(materialised_lake.root)
    crosswalk = lake.read(CROSSWALK_PATH)
    assert lake.read(identity.CONFLICTS_PATH).height == 0
    linked = set(_people(crosswalk))
    assert _source_ids(lake) == linked
    systems = {s.split(":")[0] for s, _, _ in linked}
    assert systems == {"ehr", "lab", "genomics", "imaging", "trials"}
    # Every person is an EHR person, reached through an MRN.
    ehr_people = set(crosswalk.filter(pl.col("source_system") == "ehr").get_column("person_key"))
    assert set(crosswalk.get_column("person_key")) == ehr_people
    rules = dict(crosswalk.group_by("identifier_type").agg(pl.col("link_rule").unique()).rows())
    assert {k: sorted(v) for k, v in rules.items()} == {
        "fhir_patient_id": ["ehr_patient"],
        "mrn": ["ehr_patient"],
        "lab_patient_id": ["lab_index_mrn"],
        "vcf_sample_id": ["sample_manifest_mrn"],
        "dicom_patient_id": ["ris_order_mrn"],
        "usubjid": ["enrolment_mrn"],
    }


def test_every_silver_person_key_is_the_crosswalk_s_person_for_its_source_id(materialised_lake):
    _assert_silver_agrees_with_the_crosswalk(Lake(materialised_lake.root))


def _assert_silver_agrees_with_the_crosswalk(lake: Lake) -> None:
    person = _people(lake.read(CROSSWALK_PATH))

    def check(frame: pl.DataFrame, system: pl.Expr, kind: str, column: str) -> int:
        rows = frame.select(system.alias("system"), pl.col(column), "person_key").unique()
        for source_system, identifier, person_key in rows.iter_rows():
            assert person_key == person.get((source_system, kind, identifier)), (
                f"a {kind} of {source_system} is linked otherwise in silver than in the crosswalk"
            )
        return rows.get_column("person_key").drop_nulls().n_unique()

    lab_rows = lake.read(lab.SILVER_PATH)
    site = pl.concat_str(pl.lit("lab:"), pl.col("site"))
    assert check(lab_rows, site, "lab_patient_id", "lab_patient_id") > 0
    for domain in trials.DOMAINS:
        subjects = lake.read(trials.silver_path(domain))
        study = pl.concat_str(pl.lit("trials:"), pl.col("studyid"))
        check(subjects, study, "usubjid", "usubjid")
    assert check(lake.read(trials.silver_path("dm")), study, "usubjid", "usubjid") > 0
    genotypes = lake.read(genomics.SILVER_GENOTYPES_PATH).select("sample_id", "person_key")
    assert check(genotypes, pl.lit("genomics"), "vcf_sample_id", "sample_id") > 0
    # An instance whose order is another PatientID's stays unlinked whatever its PatientID is.
    instances = lake.read(imaging.SILVER_INSTANCES_PATH).filter(
        pl.col("link_status") != "patient_mismatch"
    )
    assert check(instances, pl.lit("imaging"), "dicom_patient_id", "patient_id") > 0


def test_the_crosswalk_and_its_quarantine_are_never_served(materialised_lake):
    root = Path(materialised_lake.root)
    manifest = json.loads((root / "_catalog" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["datasets"]
    for dataset in manifest["datasets"]:
        for path in (dataset["path"], *(dataset.get("upstream") or [])):
            assert not path.startswith(("restricted/", "_rejects/")), dataset["name"]
    text = json.dumps(manifest)
    assert CROSSWALK_PATH not in text and identity.CONFLICTS_PATH not in text
    identifiers = Lake(root).read(CROSSWALK_PATH).get_column("identifier").to_list()
    assert not [i for i in identifiers if i in text]


@pytest.mark.anyio
async def test_no_mcp_resource_or_tool_of_any_role_names_the_crosswalk(materialised_lake, tmp_path):
    from mcp import Client

    from mcp_catalog.config import load_config
    from mcp_catalog.policy import load_policy
    from mcp_catalog.serve import open_service

    # The server writes its audit log into the lake: serve a copy.
    lake = tmp_path / "lake"
    shutil.copytree(materialised_lake.root, lake)
    service = open_service(lake, load_config())
    for role in load_policy().roles:
        async with Client(service.server_for(role)) as client:
            names = [r.uri for r in (await client.list_resources()).resources]
            templates = (await client.list_resource_templates()).resource_templates
            names += [t.uri_template for t in templates]
            names += [t.name for t in (await client.list_tools()).tools]
        assert names, role
        for name in names:
            assert "crosswalk" not in str(name) and "restricted" not in str(name), (role, name)


def test_the_report_counts_the_crosswalk_per_source_system(materialised_lake):
    data = collect_report_data(materialised_lake.root)
    crosswalk = Lake(materialised_lake.root).read(CROSSWALK_PATH)
    expected = dict(
        crosswalk.group_by("source_system", "identifier_type")
        .len()
        .select(pl.concat_str("source_system", "identifier_type", separator="/"), "len")
        .rows()
    )
    found = data.identity
    assert found is not None and found.conflicts == ()
    assert {f"{s.source_system}/{s.identifier_type}": s.linked for s in found.systems} == expected
    assert found.people == crosswalk.get_column("person_key").n_unique()


# --- Broken manifests -----------------------------------------------------------------------


def _edit_csv(path: Path, change) -> pl.DataFrame:
    frame = pl.read_csv(path, infer_schema=False)
    changed = change(frame)
    changed.write_csv(path)
    return frame


def _patient_line(resource: dict, patient_id: str, mrn: str) -> str:
    copy = json.loads(json.dumps(resource))
    copy["id"] = patient_id
    for identifier in copy["identifier"]:
        if any(c.get("code") == "MR" for c in identifier["type"]["coding"]):
            identifier["value"] = mrn
    return json.dumps(copy)


def _manifest_locator(column: str, value: str) -> str:
    return f"sha256({column}):{_digest(value)[:16]}"


def _rematerialise(lake: Path, landing: Path) -> None:
    bronze_ehr = [f"bronze/ehr/{t}" for t in (*ehr.BRONZE_TABLES, "files", "rejects")]
    selection = [
        *bronze_ehr,
        lab.INDEX_PATH,
        genomics.SAMPLES_PATH,
        imaging.ORDERS_PATH,
        trials.ENROLMENT_PATH,
        CROSSWALK_PATH,
    ]
    with dg.instance_for_test() as instance:
        result = materialize(str(lake), str(landing), ",".join(selection), instance=instance)
    assert result.success, "re-materialising the identity assets failed"


def test_linkage_conflicts_in_broken_manifests_are_quarantined_with_reasons(
    materialised_lake, tmp_path
):
    lake_root, landing = tmp_path / "lake", tmp_path / "landing"
    shutil.copytree(materialised_lake.root, lake_root)
    shutil.copytree(materialised_lake.landing, landing)
    lake = Lake(lake_root)
    before = lake.read(CROSSWALK_PATH)
    person = _people(before)
    mrn_person = {k[2]: p for k, p in person.items() if k[1] == "mrn"}
    patients = lake.read("bronze/ehr/patients").sort("source_locator")
    (a_id, a_mrn), (b_id, _), (_, c_mrn) = patients.select("id", "mrn").rows()[:3]
    unknown_mrn = next(f"MRN{n:08d}" for n in range(10**8) if f"MRN{n:08d}" not in mrn_person)

    def other_mrn(mrn: str) -> str:
        return a_mrn if mrn_person[mrn] != mrn_person[a_mrn] else c_mrn

    expected: set[tuple[str, str, str, str, str, str]] = set()

    # EHR: patient B re-delivered with A's MRN; a new patient delivered with A's and C's MRNs.
    resource = json.loads((landing / "ehr" / "Patient.ndjson").read_text().splitlines()[0])
    new_patient = str(uuid.UUID(int=11))
    lines = [
        _patient_line(resource, b_id, a_mrn),
        _patient_line(resource, new_patient, a_mrn),
        _patient_line(resource, new_patient, c_mrn),
    ]
    (landing / "ehr" / "Patient-update.ndjson").write_text("\n".join(lines) + "\n")
    update = "Patient-update.ndjson"
    expected.add(("ehr", "mrn", _digest(a_mrn), "mrn_shared_by_two_people", update, "line:1"))
    for line in ("line:2", "line:3"):
        expected.add(
            ("ehr", "fhir_patient_id", _digest(new_patient), "claimed_by_two_people", update, line)
        )

    # Lab: an index line pointing to an MRN no patient holds; a lab patient id moved to
    # another person.
    index = landing / "lab" / lab.INDEX_NAME
    site, moved_lab_id, moved_lab_mrn = pl.read_csv(index, infer_schema=False).row(0)
    _edit_csv(
        index,
        lambda f: pl.concat(
            [
                f.with_columns(
                    pl.when(pl.col("lab_patient_id") == moved_lab_id)
                    .then(pl.lit(other_mrn(moved_lab_mrn)))
                    .otherwise(pl.col("mrn"))
                    .alias("mrn")
                ),
                pl.DataFrame([[site, "LABZZ000001", unknown_mrn]], schema=f.columns, orient="row"),
            ]
        ),
    )
    for identifier, reason in (
        (moved_lab_id, "linked_to_another_person"),
        ("LABZZ000001", "unknown_mrn"),
    ):
        expected.add(
            (
                f"lab:{site}",
                "lab_patient_id",
                _digest(identifier),
                reason,
                lab.INDEX_NAME,
                _manifest_locator("lab_patient_id", identifier),
            )
        )

    # Genomics: a new sample id listed for two MRNs of two people; a sample moved to another
    # person.
    samples = landing / "genomics" / genomics.MANIFEST_NAME
    original = pl.read_csv(samples, infer_schema=False)
    moved_sample, moved_sample_mrn = original.row(0)[:2]
    twice = original.head(1).with_columns(pl.lit("BF01-S999999").alias("sample_id"))
    _edit_csv(
        samples,
        lambda f: pl.concat(
            [
                f.with_columns(
                    pl.when(pl.col("sample_id") == moved_sample)
                    .then(pl.lit(other_mrn(moved_sample_mrn)))
                    .otherwise(pl.col("mrn"))
                    .alias("mrn")
                ),
                twice.with_columns(pl.lit(a_mrn).alias("mrn")),
                twice.with_columns(pl.lit(c_mrn).alias("mrn")),
            ]
        ),
    )
    twice_lines = {f"line:{original.height + 2}", f"line:{original.height + 3}"}
    expected.add(
        (
            "genomics",
            "vcf_sample_id",
            _digest(moved_sample),
            "linked_to_another_person",
            genomics.MANIFEST_NAME,
            _manifest_locator("sample_id", moved_sample),
        )
    )

    # Imaging: an order naming another person for a linked PatientID; a new PatientID whose
    # two orders name two people.
    orders = landing / "imaging" / imaging.ORDERS_NAME
    current = pl.read_csv(orders, infer_schema=False)
    claimed = current.item(0, "patient_id")
    claimed_mrn = current.item(0, "mrn")
    extra = current.head(1).with_columns(
        pl.lit("ZZ9000000001").alias("accession_number"),
        pl.lit(other_mrn(claimed_mrn)).alias("mrn"),
    )
    fresh = pl.concat(
        [
            current.head(1).with_columns(
                pl.lit(accession).alias("accession_number"),
                pl.lit("NEW-0000001").alias("patient_id"),
                pl.lit(mrn).alias("mrn"),
            )
            for accession, mrn in (("ZZ9000000002", a_mrn), ("ZZ9000000003", c_mrn))
        ]
    )
    _edit_csv(orders, lambda f: pl.concat([f, extra, fresh]))
    claimed_orders = [
        *current.filter(pl.col("patient_id") == claimed).get_column("accession_number"),
        "ZZ9000000001",
    ]
    for patient_id, accessions in (
        (claimed, claimed_orders),
        ("NEW-0000001", ["ZZ9000000002", "ZZ9000000003"]),
    ):
        for accession in accessions:
            expected.add(
                (
                    "imaging",
                    "dicom_patient_id",
                    _digest(patient_id),
                    "claimed_by_two_people",
                    imaging.ORDERS_NAME,
                    _manifest_locator("accession_number", accession),
                )
            )

    # Trials: an enrolment row for another person than the subject's link; a new subject
    # whose MRN no patient holds.
    enrolment = landing / "trials" / trials.ENROLMENT_NAME
    study, moved_subject, subject_site, subject_mrn = pl.read_csv(
        enrolment, infer_schema=False
    ).row(0)
    _edit_csv(
        enrolment,
        lambda f: pl.concat(
            [
                f.with_columns(
                    pl.when(pl.col("usubjid") == moved_subject)
                    .then(pl.lit(other_mrn(subject_mrn)))
                    .otherwise(pl.col("mrn"))
                    .alias("mrn")
                ),
                pl.DataFrame(
                    [[study, f"{study}-Z99-0001", subject_site, unknown_mrn]],
                    schema=f.columns,
                    orient="row",
                ),
            ]
        ),
    )
    for identifier, reason in (
        (moved_subject, "linked_to_another_person"),
        (f"{study}-Z99-0001", "unknown_mrn"),
    ):
        expected.add(
            (
                f"trials:{study}",
                "usubjid",
                _digest(identifier),
                reason,
                trials.ENROLMENT_NAME,
                _manifest_locator("usubjid", identifier),
            )
        )

    _rematerialise(lake_root, landing)

    conflicts = lake.read(identity.CONFLICTS_PATH)
    found = set(
        conflicts.select(
            "source_system", "identifier_type", "identifier_sha256", "reason", "source", "locator"
        ).rows()
    )
    assert found == expected
    assert conflicts.get_column("source_sha256").null_count() == 0

    # Nothing was linked and nothing moved: the crosswalk is as it was.
    after = lake.read(CROSSWALK_PATH)
    assert after.sort(KEY).equals(before.sort(KEY))
    for not_linked in (
        ("ehr", "fhir_patient_id", new_patient),
        (f"lab:{site}", "lab_patient_id", "LABZZ000001"),
        ("genomics", "vcf_sample_id", "BF01-S999999"),
        ("imaging", "dicom_patient_id", "NEW-0000001"),
        (f"trials:{study}", "usubjid", f"{study}-Z99-0001"),
    ):
        assert not_linked not in _people(after)

    # The sample listed for two MRNs never reached bronze: the manifest's own quarantine
    # holds both of its lines.
    sample_rejects = lake.read(genomics.MANIFEST_REJECTS_PATH)
    assert set(sample_rejects.get_column("locator")) == twice_lines
    assert all("listed more than once" in r for r in sample_rejects.get_column("reason"))

    # The quarantine holds digests and locators, never a value.
    cells = " ".join(str(v) for row in conflicts.rows() for v in row)
    for value in (a_mrn, c_mrn, new_patient, moved_lab_id, moved_sample, claimed, moved_subject):
        assert value not in cells

    # The report counts the conflicts by reason.
    report = collect_report_data(lake_root).identity
    assert report is not None
    by_reason: dict[str, int] = {}
    for conflict in report.conflicts:
        by_reason[conflict.reason] = by_reason.get(conflict.reason, 0) + conflict.rows
    assert by_reason == {
        "mrn_shared_by_two_people": 1,
        "claimed_by_two_people": 2 + len(claimed_orders) + 2,
        "linked_to_another_person": 3,
        "unknown_mrn": 2,
    }


# --- Silver after a manifest moves identifiers -------------------------------------------------

SILVER_SELECTION = [
    lab.INDEX_PATH,
    genomics.SAMPLES_PATH,
    imaging.ORDERS_PATH,
    trials.ENROLMENT_PATH,
    *(f"bronze/imaging/{t}" for t in ("instances", "batches", "rejects")),
    CROSSWALK_PATH,
    "restricted/identity_conflicts",
    lab.SILVER_PATH,
    lab.REPORT_PATH,
    *(trials.silver_path(d) for d in trials.DOMAINS),
    genomics.SILVER_VARIANTS_PATH,
    genomics.SILVER_GENOTYPES_PATH,
    imaging.SILVER_INSTANCES_PATH,
    imaging.SILVER_SERIES_PATH,
    imaging.SILVER_STUDIES_PATH,
]
"""The manifests, the crosswalk and its quarantine, and every silo's silver tables."""


def _repoint(path: Path, column: str, value: str, mrn: str) -> None:
    _edit_csv(
        path,
        lambda f: f.with_columns(
            pl.when(pl.col(column) == value).then(pl.lit(mrn)).otherwise(pl.col("mrn")).alias("mrn")
        ),
    )


def _check_results(events: list) -> dict[tuple[str, str], bool]:
    """Whether each asset check of some runs passed, by asset path and check name."""
    return {
        (
            e.asset_check_evaluation_data.asset_key.to_user_string(),
            e.asset_check_evaluation_data.check_name,
        ): e.asset_check_evaluation_data.passed
        for e in events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }


def _one_person(frame: pl.DataFrame) -> tuple[str | None, ...]:
    return tuple(frame.get_column("person_key").unique().to_list())


def _land_instance(landing: Path, patient_id: str, accession: str) -> str:
    """A copy of a landed DICOM file in a new batch, as another PatientID's study under
    ``accession``; returns its SOP Instance UID."""
    import pydicom
    from pydicom.uid import generate_uid

    source = next(p for p in sorted((landing / "imaging").rglob("*.dcm")))
    dataset = pydicom.dcmread(source)
    uids = {
        tag: generate_uid(entropy_srcs=[f"identity-e2e-{tag}"])
        for tag in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
    }
    for tag, uid in uids.items():
        setattr(dataset, tag, uid)
    dataset.file_meta.MediaStorageSOPInstanceUID = uids["SOPInstanceUID"]
    dataset.PatientID = patient_id
    dataset.AccessionNumber = accession
    batch = landing / "imaging" / "batch-zz9"
    batch.mkdir()
    dataset.save_as(batch / "instance.dcm", enforce_file_format=True)
    return uids["SOPInstanceUID"]


def test_silver_keeps_the_crosswalk_s_person_when_a_manifest_moves_an_identifier(
    materialised_lake, tmp_path
):
    lake_root, landing = tmp_path / "lake", tmp_path / "landing"
    shutil.copytree(materialised_lake.root, lake_root)
    shutil.copytree(materialised_lake.landing, landing)
    lake = Lake(lake_root)
    before = lake.read(CROSSWALK_PATH)
    person = _people(before)
    mrns = dict(
        before.filter(pl.col("identifier_type") == "mrn").select("identifier", "person_key").rows()
    )
    a_mrn, c_mrn = sorted(mrns)[:2]

    def elsewhere(original: str) -> str:
        """An MRN of someone else than ``original``."""
        return next(m for m in sorted(mrns) if mrns[m] != original)

    # A linked lab patient id, sample, subject and RIS order, each with silver rows, moved by
    # its manifest to another person.
    lab_rows = lake.read(lab.SILVER_PATH).filter(pl.col("link_status") == "linked")
    site, lab_id = lab_rows.select("site", "lab_patient_id").sort("site", "lab_patient_id").row(0)
    lab_key = (f"lab:{site}", "lab_patient_id", lab_id)
    _repoint(landing / "lab" / lab.INDEX_NAME, "lab_patient_id", lab_id, elsewhere(person[lab_key]))

    genotypes = lake.read(genomics.SILVER_GENOTYPES_PATH)
    sample = genotypes.filter(pl.col("person_key").is_not_null()).get_column("sample_id").min()
    sample_key = ("genomics", "vcf_sample_id", sample)
    manifest = landing / "genomics" / genomics.MANIFEST_NAME
    _repoint(manifest, "sample_id", sample, elsewhere(person[sample_key]))

    dm = lake.read(trials.silver_path("dm")).filter(pl.col("link_status") == "linked")
    study, subject = dm.select("studyid", "usubjid").sort("usubjid").row(0)
    subject_key = (f"trials:{study}", "usubjid", subject)
    enrolment_map = landing / "trials" / trials.ENROLMENT_NAME
    _repoint(enrolment_map, "usubjid", subject, elsewhere(person[subject_key]))

    instances = lake.read(imaging.SILVER_INSTANCES_PATH)
    ordered = instances.filter(pl.col("link_status") == "linked").sort("sop_instance_uid")
    patient_id, accession, encounter = ordered.select(
        "patient_id", "accession_number", "encounter_id"
    ).row(0)
    patient_key = ("imaging", "dicom_patient_id", patient_id)
    orders = landing / "imaging" / imaging.ORDERS_NAME
    _repoint(orders, "accession_number", accession, elsewhere(person[patient_key]))

    # A new PatientID, imaged, whose two orders name two people: the crosswalk cannot link it.
    new_uid = _land_instance(landing, "NEW-0000009", "ZZ9000000012")
    template = pl.read_csv(orders, infer_schema=False).head(1)
    _edit_csv(
        orders,
        lambda f: pl.concat(
            [f]
            + [
                template.with_columns(
                    pl.lit(number).alias("accession_number"),
                    pl.lit("NEW-0000009").alias("patient_id"),
                    pl.lit(mrn).alias("mrn"),
                )
                for number, mrn in (("ZZ9000000012", a_mrn), ("ZZ9000000013", c_mrn))
            ]
        ),
    )
    assert mrns[a_mrn] != mrns[c_mrn]

    with dg.instance_for_test() as instance:
        result = materialize(
            str(lake_root), str(landing), ",".join(SILVER_SELECTION), instance=instance
        )
    assert result.success, "re-materialising the manifests, crosswalk and silver failed"
    checks = _check_results(result.all_events)
    assert checks[("restricted/identity_conflicts", "quality_suite")] is True
    assert checks[("silver/imaging/dicom_instances", "quality_suite")] is True

    # The crosswalk did not move, and quarantined every move.
    after = lake.read(CROSSWALK_PATH)
    assert after.sort(KEY).equals(before.sort(KEY))
    assert ("imaging", "dicom_patient_id", "NEW-0000009") not in _people(after)
    conflicts = lake.read(identity.CONFLICTS_PATH)
    reasons = {
        (s, t, d): r
        for s, t, d, r in conflicts.select(
            "source_system", "identifier_type", "identifier_sha256", "reason"
        ).rows()
    }
    for system, kind, identifier in (lab_key, sample_key, subject_key):
        assert reasons[(system, kind, _digest(identifier))] == "linked_to_another_person"
    assert reasons[("imaging", "dicom_patient_id", _digest(patient_id))] in {
        "claimed_by_two_people",
        "linked_to_another_person",
    }
    assert reasons[("imaging", "dicom_patient_id", _digest("NEW-0000009"))] == (
        "claimed_by_two_people"
    )

    # By the manifests alone, each moved identifier would now be another person ...
    index = lake.read(lab.INDEX_PATH)
    probe = pl.DataFrame({"site": [site], "patient_id": [lab_id]})
    assert lab.index_links(probe, index, after).item(0, "person_key") != person[lab_key]
    samples = lake.read(genomics.SAMPLES_PATH).filter(pl.col("sample_id") == sample)
    assert genomics.manifest_links(samples, after).item(0, "person_key") != person[sample_key]
    probe = pl.DataFrame({"studyid": [study], "usubjid": [subject]})
    enrolment = lake.read(trials.ENROLMENT_PATH)
    assert (
        trials.enrolment_links(probe, enrolment, after).item(0, "person_key")
        != (person[subject_key])
    )
    # ... but silver still shows the crosswalk's person for each.
    lab_silver = lake.read(lab.SILVER_PATH).filter(
        pl.col("site") == site, pl.col("lab_patient_id") == lab_id
    )
    assert lab_silver.height and _one_person(lab_silver) == (person[lab_key],)
    assert set(lab_silver.get_column("link_status")) == {"linked"}
    sample_silver = lake.read(genomics.SILVER_GENOTYPES_PATH).filter(pl.col("sample_id") == sample)
    assert sample_silver.height and _one_person(sample_silver) == (person[sample_key],)
    for domain in trials.DOMAINS:
        rows = lake.read(trials.silver_path(domain)).filter(
            pl.col("studyid") == study, pl.col("usubjid") == subject
        )
        assert _one_person(rows) in {(), (person[subject_key],)}, domain
        assert set(rows.get_column("link_status")) <= {"linked"}, domain
    images = lake.read(imaging.SILVER_INSTANCES_PATH)
    moved = images.filter(pl.col("accession_number") == accession)
    assert _one_person(moved) == (person[patient_key],)
    assert set(moved.select("link_status", "encounter_id").rows()) == {("linked", encounter)}
    # The PatientID two people claim is linked to no one, in its instance and study.
    new = images.filter(pl.col("sop_instance_uid") == new_uid)
    assert new.select("patient_id", "person_key", "encounter_id", "link_status").rows() == [
        ("NEW-0000009", None, None, "identity_conflict")
    ]
    study_row = lake.read(imaging.SILVER_STUDIES_PATH).filter(
        pl.col("study_instance_uid") == new.item(0, "study_instance_uid")
    )
    assert study_row.select("person_key", "link_status").rows() == [(None, "identity_conflict")]

    # Every silver row still agrees with the crosswalk.
    _assert_silver_agrees_with_the_crosswalk(lake)


def test_the_quarantine_s_suite_runs_in_the_pipeline_and_is_recorded(materialised_lake):
    events = materialised_lake.first_run.all_events
    checks = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.asset_check_evaluation_data.asset_key
        == dg.AssetKey(["restricted", "identity_conflicts"])
    }
    assert checks == {"quality_suite": True}
    materialised = {
        e.event_specific_data.materialization.asset_key.to_user_string()
        for e in events
        if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
    }
    assert {CROSSWALK_PATH, "restricted/identity_conflicts"} <= materialised
    results = Lake(materialised_lake.root).read(QUALITY_RESULTS_PATH)
    recorded = results.filter(pl.col("table") == identity.CONFLICTS_PATH)
    assert recorded.height >= 1 and recorded.get_column("success").all()
    assert set(recorded.get_column("suite")) == {suite_for("restricted/identity_conflicts").name}
