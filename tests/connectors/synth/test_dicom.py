import csv
import hashlib
import io
import re
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import orjson
import pytest
from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    BasicTextSRStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    EnhancedMRImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    SecondaryCaptureImageStorage,
)

from connectors.synth import KNOWN_SILOS, build_people, write_cohort, write_imaging
from connectors.synth.dicom import ORDER_COLUMNS
from connectors.synth.dicom_files import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION,
    PRIVATE_CREATOR,
    Layer,
    encode_part10,
    patient_age,
    uid,
)
from connectors.synth.ehr import RESOURCE_TYPES, encounter_summaries, write_ehr

PATIENTS = 120
SEED = 7
OUTSIDE = "Riverside Imaging Center"
LEGACY = "Lakeside Radiology Associates"
FILE_NAME = re.compile(r"[0-9A-F]{16}\.dcm")


@dataclass(frozen=True)
class Written:
    """One DICOM file of the imaging silo, with where it was found and its parsed header."""

    batch: str
    path: str
    data: bytes
    ds: Dataset


def _files(out: Path) -> list[tuple[str, str, bytes]]:
    root = out / "imaging"
    found = [
        ("batch-001", path.name, path.read_bytes())
        for path in sorted((root / "batch-001").iterdir())
    ]
    with zipfile.ZipFile(root / "batch-002.zip") as archive:
        found += [("batch-002.zip", name, archive.read(name)) for name in archive.namelist()]
    return found


def _orders(out: Path) -> list[dict[str, str]]:
    with (out / "imaging" / "orders.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _local(text: str) -> datetime:
    """A FHIR dateTime as local wall-clock time (DICOM times are local, without offset)."""
    return datetime.fromisoformat(text).replace(tzinfo=None)


def _study_start(ds: Dataset) -> datetime:
    return datetime.strptime(ds.StudyDate + ds.StudyTime[:6], "%Y%m%d%H%M%S")


@pytest.fixture(scope="module")
def people():
    return build_people(PATIENTS, SEED)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    summary = write_cohort(out, patients=PATIENTS, seed=SEED, silos=("ehr", "imaging"))
    return out, summary


@pytest.fixture(scope="module")
def written(cohort) -> list[Written]:
    out, _ = cohort
    return [Written(b, p, d, dcmread(io.BytesIO(d))) for b, p, d in _files(out)]


@pytest.fixture(scope="module")
def orders(cohort) -> list[dict[str, str]]:
    return _orders(cohort[0])


@pytest.fixture(scope="module")
def encounters(cohort) -> dict[str, dict]:
    lines = (cohort[0] / "ehr" / "Encounter.ndjson").read_bytes().splitlines()
    return {resource["id"]: resource for resource in map(orjson.loads, lines)}


@pytest.fixture(scope="module")
def studies(written) -> dict[str, list[Written]]:
    by_study = defaultdict(list)
    for file in written:
        by_study[file.ds.StudyInstanceUID].append(file)
    return by_study


# --- the files -------------------------------------------------------------------------


def test_summary_lists_the_orders_and_both_batches_with_their_counts(cohort, written, orders):
    _, summary = cohort
    imaging = {k: v for k, v in summary.files.items() if k.startswith("imaging/")}
    counts = Counter(file.batch for file in written)
    assert imaging == {
        "imaging/orders.csv": len(orders),
        "imaging/batch-001": counts["batch-001"],
        "imaging/batch-002.zip": counts["batch-002.zip"],
    }
    assert counts["batch-001"] > 0 and counts["batch-002.zip"] > 0
    assert "imaging" in KNOWN_SILOS


def test_every_file_is_part_10_and_its_pixels_match_the_header(written):
    for file in written:
        ds = file.ds
        assert file.data[128:132] == b"DICM"
        meta = ds.file_meta
        assert meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
        assert meta.ImplementationVersionName == IMPLEMENTATION_VERSION
        if "PixelData" not in ds:
            assert ds.SOPClassUID == BasicTextSRStorage
            continue
        pixels = ds.pixel_array
        frames = int(ds.get("NumberOfFrames", 1))
        shape = (ds.Rows, ds.Columns) if frames == 1 else (frames, ds.Rows, ds.Columns)
        assert pixels.shape == shape, file.path
        assert pixels.dtype.kind == "u" and pixels.dtype.itemsize * 8 == ds.BitsAllocated
        # Values past BitsStored would mean a wrong byte order or a broken encoder.
        assert int(pixels.max()) < 2**ds.BitsStored
        assert int(pixels.max()) > int(pixels.min())


def test_files_come_in_the_expected_sop_classes_modalities_and_transfer_syntaxes(written):
    classes = Counter(str(file.ds.SOPClassUID) for file in written)
    modalities = Counter(str(file.ds.Modality) for file in written)
    syntaxes = Counter(str(file.ds.file_meta.TransferSyntaxUID) for file in written)
    assert classes[CTImageStorage] > 0 and classes[MRImageStorage] > 0
    assert modalities["CR"] + modalities["DX"] > 0
    assert classes[BasicTextSRStorage] == 1
    assert classes[SecondaryCaptureImageStorage] == 3
    multi = [f.ds for f in written if f.ds.SOPClassUID == EnhancedMRImageStorage]
    assert multi and all(int(ds.NumberOfFrames) > 1 for ds in multi)
    assert syntaxes[ExplicitVRLittleEndian] > syntaxes[ImplicitVRLittleEndian] > 0
    assert syntaxes[DeflatedExplicitVRLittleEndian] == 1
    assert syntaxes[ExplicitVRBigEndian] == 1


def test_only_the_dose_screens_carry_burned_in_annotation(written):
    burned = [f.ds for f in written if f.ds.get("BurnedInAnnotation") == "YES"]
    assert len(burned) == 3
    assert {ds.SOPClassUID for ds in burned} == {SecondaryCaptureImageStorage}
    assert {ds.SeriesDescription for ds in burned} == {"Dose Report"}


def test_uids_are_unique_2_25_uids_and_series_belong_to_one_study(written):
    sop_uids = [str(f.ds.SOPInstanceUID) for f in written]
    assert len(set(sop_uids)) == len(sop_uids)
    study_of_series: dict[str, set[str]] = defaultdict(set)
    for file in written:
        ds = file.ds
        for value in (ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID):
            assert value.startswith("2.25.") and UID(value).is_valid
        study_of_series[ds.SeriesInstanceUID].add(ds.StudyInstanceUID)
    assert all(len(studies) == 1 for studies in study_of_series.values())


def test_uids_depend_on_the_seed_and_the_place_only():
    assert uid(7, 3, 1, "study") == uid(7, 3, 1, "study")
    assert len({uid(7, 3, 1, "study"), uid(8, 3, 1, "study"), uid(7, 3, 2, "study")}) == 3
    assert len(uid(2**62, "legacy", 1, "series", 998, 1)) <= 64


def test_file_names_are_opaque(cohort, written, orders):
    identifiers = set()
    for file in written:
        ds = file.ds
        identifiers |= {ds.PatientID, ds.AccessionNumber, ds.SOPInstanceUID, ds.StudyInstanceUID}
    identifiers |= {row["mrn"] for row in orders}
    for file in written:
        name = file.path.removeprefix("export/")
        assert FILE_NAME.fullmatch(name), file.path
        assert not any(value and value in file.path for value in identifiers)
    assert all(f.path.startswith("export/") for f in written if f.batch == "batch-002.zip")


def test_studies_before_2021_are_in_the_folder_and_later_ones_in_the_zip(written):
    for file in written:
        before = file.ds.StudyDate < "20210101"
        legacy = file.ds.InstitutionName == LEGACY
        assert file.batch == ("batch-001" if before and not legacy else "batch-002.zip")


# --- the people ------------------------------------------------------------------------


def test_headers_describe_the_person_the_pacs_id_belongs_to(written, people):
    by_pacs_id = {p.dicom_patient_id: p for p in people}
    sex = {"male": "M", "female": "F", "other": "O", "unknown": ""}
    for file in written:
        ds = file.ds
        person = by_pacs_id.get(ds.PatientID)
        if person is None:
            assert ds.InstitutionName == LEGACY
            continue
        assert ds.PatientName.family_name == person.family_name
        assert ds.PatientName.given_name == person.given_names[0]
        assert ds.PatientBirthDate == person.birth_date.strftime("%Y%m%d")
        assert ds.PatientSex == sex[person.gender]
        study_day = datetime.strptime(ds.StudyDate, "%Y%m%d").date()
        assert ds.PatientAge == patient_age(person.birth_date, study_day)
        assert person.birth_date <= study_day <= person.end_date
        assert ds.IssuerOfPatientID == person.home_site


def _private_text(ds: Dataset, element: int) -> str:
    value = ds.private_block(0x0009, PRIVATE_CREATOR)[element].value
    # Implicit VR files carry no VR, so an unknown private element reads back as UN bytes.
    return value.decode().rstrip() if isinstance(value, bytes) else str(value)


def test_local_files_carry_the_private_block_with_the_mrn(written, people, orders):
    mrn = {p.dicom_patient_id: p.mrn for p in people}
    ordered_at = {row["accession_number"]: row["ordered_at"] for row in orders}
    local = [f.ds for f in written if f.ds.InstitutionName not in (OUTSIDE, LEGACY)]
    for ds in local:
        assert _private_text(ds, 0x01) == mrn[ds.PatientID]
        assert _private_text(ds, 0x02) in ("ED", "INPATIENT", "OUTPATIENT")
        order_time = datetime.strptime(_private_text(ds, 0x03), "%Y%m%d%H%M%S%z")
        assert order_time == datetime.fromisoformat(ordered_at[ds.AccessionNumber])
    outside = [f.ds for f in written if f.ds.InstitutionName in (OUTSIDE, LEGACY)]
    assert outside and all(0x00090010 not in ds for ds in outside)


def test_patient_age_uses_days_months_and_years():
    born = date(2020, 1, 15)
    assert patient_age(born, date(2020, 1, 30)) == "015D"
    assert patient_age(born, date(2021, 3, 14)) == "013M"
    assert patient_age(born, date(2022, 1, 15)) == "002Y"
    assert patient_age(date(1950, 6, 30), date(2025, 6, 29)) == "074Y"


# --- linking to the EHR ----------------------------------------------------------------


def test_orders_csv_has_the_contract_columns_and_is_in_order_time(cohort, orders):
    header = (cohort[0] / "imaging" / "orders.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.split(",") == list(ORDER_COLUMNS)
    times = [datetime.fromisoformat(row["ordered_at"]) for row in orders]
    assert all(t.tzinfo is not None for t in times)
    assert times == sorted(times)
    accessions = [row["accession_number"] for row in orders]
    assert len(set(accessions)) == len(accessions)


def test_every_order_has_one_study_in_an_encounter_of_the_same_person(
    orders, studies, encounters, people
):
    by_pacs_id = {p.dicom_patient_id: p for p in people}
    by_accession = defaultdict(set)
    for study_uid, files in studies.items():
        for file in files:
            by_accession[file.ds.AccessionNumber].add(study_uid)
    for row in orders:
        person = by_pacs_id[row["patient_id"]]
        assert row["mrn"] == person.mrn
        (study_uid,) = by_accession[row["accession_number"]]
        files = studies[study_uid]
        assert {f.ds.PatientID for f in files} == {row["patient_id"]}
        assert row["modality"] in {f.ds.Modality for f in files}
        assert {f.ds.ProcedureCodeSequence[0].CodeValue for f in files} == {
            row["procedure_code"]
        }
        encounter = encounters[row["encounter_id"]]
        assert encounter["subject"] == {"reference": f"Patient/{person.patient_id}"}
        start, end = (_local(encounter["period"][k]) for k in ("start", "end"))
        ordered = _local(row["ordered_at"])
        assert start <= ordered <= _study_start(files[0].ds) <= end
        for file in files:
            if file.ds.Modality != "SR":
                series = datetime.strptime(
                    file.ds.SeriesDate + file.ds.SeriesTime, "%Y%m%d%H%M%S"
                )
                assert start <= series <= end


def test_imaging_follows_emergency_and_inpatient_visits_more_than_office_visits(
    orders, encounters
):
    imaged = Counter(encounters[row["encounter_id"]]["class"]["code"] for row in orders)
    visits = Counter(resource["class"]["code"] for resource in encounters.values())
    rate = {klass: imaged[klass] / visits[klass] for klass in visits}
    assert rate["EMER"] > 5 * rate["AMB"] and rate["IMP"] > 5 * rate["AMB"]


def test_only_outside_priors_and_the_merged_archive_study_have_no_order(
    orders, studies, people
):
    ordered = {row["accession_number"] for row in orders}
    roster_ids = {p.dicom_patient_id for p in people}
    unordered = {
        uid: files[0].ds for uid, files in studies.items()
        if files[0].ds.AccessionNumber not in ordered
    }
    institutions = Counter(ds.InstitutionName for ds in unordered.values())
    assert institutions == {OUTSIDE: 3, LEGACY: 1}
    for ds in unordered.values():
        assert ds.AccessionNumber
        known = ds.PatientID in roster_ids
        assert known == (ds.InstitutionName == OUTSIDE)
    assert all(ds.InstitutionName != OUTSIDE or ds.AccessionNumber.startswith("RIC")
               for ds in unordered.values())


def test_the_one_report_is_a_basic_text_sr_about_its_own_study(written, studies):
    (report,) = [f.ds for f in written if f.ds.Modality == "SR"]
    assert report.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert report.CompletionFlag == "COMPLETE" and report.VerificationFlag == "VERIFIED"
    texts = [
        item.TextValue for section in report.ContentSequence for item in section.ContentSequence
    ]
    assert len(texts) == 2 and all(texts)
    (evidence,) = report.CurrentRequestedProcedureEvidenceSequence
    assert evidence.StudyInstanceUID == report.StudyInstanceUID
    referenced = {
        sop.ReferencedSOPInstanceUID
        for series in evidence.ReferencedSeriesSequence
        for sop in series.ReferencedSOPSequence
    }
    images = {
        f.ds.SOPInstanceUID for f in studies[report.StudyInstanceUID] if f.ds.Modality != "SR"
    }
    assert referenced == images


def test_enhanced_mr_frames_have_their_own_positions(written):
    for ds in (f.ds for f in written if f.ds.SOPClassUID == EnhancedMRImageStorage):
        frames = ds.PerFrameFunctionalGroupsSequence
        assert len(frames) == int(ds.NumberOfFrames)
        positions = {tuple(f.PlanePositionSequence[0].ImagePositionPatient) for f in frames}
        assert len(positions) == len(frames)
        shared = ds.SharedFunctionalGroupsSequence[0]
        assert len(shared.PixelMeasuresSequence[0].PixelSpacing) == 2


# --- the EHR accessor ------------------------------------------------------------------


def test_encounter_summaries_are_the_encounters_write_ehr_writes(people, encounters):
    by_subject = defaultdict(list)
    for resource in encounters.values():
        by_subject[resource["subject"]["reference"]].append(resource)
    for person in people[:40]:
        summaries = encounter_summaries(person)
        written_ids = [r["id"] for r in by_subject[f"Patient/{person.patient_id}"]]
        assert [s.id for s in summaries] == written_ids
        for summary in summaries:
            resource = encounters[summary.id]
            assert resource["class"]["code"] == summary.encounter_class
            assert resource["type"][0]["coding"][0]["code"] == summary.type.code
            assert resource["period"] == {"start": summary.start_text, "end": summary.end_text}
            assert _local(summary.start_text) == summary.start
            reason = resource.get("reasonCode")
            assert (reason[0]["coding"][0]["code"] if reason else None) == (
                summary.reason.code if summary.reason else None
            )


def test_ehr_output_is_what_it_was_before_the_accessor_was_added(tmp_path):
    # Pinned from the EHR writer as it was before encounter_summaries was split out of it.
    write_ehr(build_people(25, 7), tmp_path)
    digest = hashlib.sha256()
    for rtype in RESOURCE_TYPES:
        digest.update((tmp_path / "ehr" / f"{rtype}.ndjson").read_bytes())
    assert digest.hexdigest() == (
        "2ac6fe55bc0d2982a9319a1f953778a1cc80532b6753a82978efa0c2a923490e"
    )


def test_writing_imaging_leaves_the_ehr_files_unchanged(tmp_path):
    write_cohort(tmp_path / "ehr_only", patients=30, seed=SEED, silos=("ehr",))
    write_cohort(tmp_path / "both", patients=30, seed=SEED, silos=("ehr", "imaging"))
    for rtype in RESOURCE_TYPES:
        name = Path("ehr") / f"{rtype}.ndjson"
        alone, together = tmp_path / "ehr_only" / name, tmp_path / "both" / name
        assert alone.read_bytes() == together.read_bytes()


# --- determinism -----------------------------------------------------------------------


def _snapshot(out: Path) -> dict[str, bytes]:
    root = out / "imaging"
    files = {f"batch-001/{p.name}": p.read_bytes() for p in (root / "batch-001").iterdir()}
    files["batch-002.zip"] = (root / "batch-002.zip").read_bytes()
    files["orders.csv"] = (root / "orders.csv").read_bytes()
    return files


def test_same_seed_gives_byte_identical_files(tmp_path):
    people = build_people(40, SEED)
    write_imaging(people, tmp_path / "a")
    write_imaging(people, tmp_path / "b")
    assert _snapshot(tmp_path / "a") == _snapshot(tmp_path / "b")
    write_imaging(build_people(40, SEED + 1), tmp_path / "c")
    assert _snapshot(tmp_path / "c")["orders.csv"] != _snapshot(tmp_path / "a")["orders.csv"]


def test_a_persons_studies_do_not_depend_on_the_cohort_size(tmp_path):
    write_imaging(build_people(10, SEED), tmp_path / "small")
    write_imaging(build_people(30, SEED), tmp_path / "large")
    first = {p.dicom_patient_id for p in build_people(10, SEED)}

    def of_first(out: Path) -> tuple[dict[str, bytes], list[dict[str, str]]]:
        files = {
            name: data for _, name, data in _files(out)
            if dcmread(io.BytesIO(data), stop_before_pixels=True).PatientID in first
        }
        return files, [row for row in _orders(out) if row["patient_id"] in first]

    small, large = of_first(tmp_path / "small"), of_first(tmp_path / "large")
    assert small[0] and small[1]
    assert small == large
    assert len(_files(tmp_path / "large")) > len(_files(tmp_path / "small"))


def test_writing_a_smaller_cohort_replaces_the_files_of_a_larger_one(tmp_path):
    write_imaging(build_people(30, SEED), tmp_path / "out")
    write_imaging(build_people(8, SEED), tmp_path / "out")
    write_imaging(build_people(8, SEED), tmp_path / "fresh")
    assert _snapshot(tmp_path / "out") == _snapshot(tmp_path / "fresh")
    leftovers = [p.name for p in (tmp_path / "out" / "imaging").rglob(".*")]
    assert leftovers == []


def test_an_empty_roster_writes_empty_batches_and_a_header_only_order_list(tmp_path):
    counts = write_imaging([], tmp_path)
    assert counts == {
        "imaging/orders.csv": 0, "imaging/batch-001": 0, "imaging/batch-002.zip": 0,
    }
    assert _files(tmp_path) == []
    assert (tmp_path / "imaging" / "orders.csv").read_text() == ",".join(ORDER_COLUMNS) + "\n"


# --- the encoder -----------------------------------------------------------------------


def _layers() -> tuple[Dataset, Dataset]:
    shared = Dataset()
    shared.SpecificCharacterSet = "ISO_IR 100"
    shared.SOPClassUID = CTImageStorage
    shared.PatientName = "Núñez^Zoë"
    shared.Rows = 2
    shared.Columns = 3
    shared.PixelSpacing = ["0.5", "0.75"]
    item = Dataset()
    item.CodeValue = "30799-1"
    item.CodingSchemeDesignator = "LN"
    item.CodeMeaning = "CT Head WO contrast"
    shared.ProcedureCodeSequence = DicomSequence([item])
    shared.private_block(0x0009, PRIVATE_CREATOR, create=True).add_new(0x01, "LO", "MRN1")
    series = Dataset()
    series.SeriesNumber = 2
    series.PatientName = "Peña^José"
    series.CTDIvol = 12.5
    return shared, series


@pytest.mark.parametrize(
    "syntax",
    [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
     ExplicitVRBigEndian],
)
def test_encoder_writes_what_pydicom_dcmwrite_writes(syntax):
    shared, series = _layers()
    pixels = np.arange(6, dtype=np.uint16)
    order = ">" if syntax == ExplicitVRBigEndian else "<"
    own = [
        (0x00080018, "UI", "2.25.1234"),
        (0x00200013, "IS", "7"),
        (0x00200032, "DS", "-120\\-120.5\\30"),
        (0x7FE00010, "OW", pixels.astype(f"{order}u2").tobytes()),
    ]
    ours = encode_part10((Layer(shared), Layer(series)), own, syntax, CTImageStorage)

    merged = Dataset()
    merged.update(shared)
    merged.update(series)
    merged.SOPInstanceUID = "2.25.1234"
    merged.InstanceNumber = 7
    merged.ImagePositionPatient = ["-120", "-120.5", "30"]
    merged.add_new(0x7FE00010, "OW", own[-1][2])
    merged.file_meta = FileMetaDataset()
    merged.file_meta.TransferSyntaxUID = syntax
    merged.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    merged.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    reference = io.BytesIO()
    dcmwrite(reference, merged, enforce_file_format=True)
    assert ours == reference.getvalue()
    assert dcmread(io.BytesIO(ours)).PatientName.family_name == "Peña"
