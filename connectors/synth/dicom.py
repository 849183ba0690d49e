"""The imaging silo: the PACS export of the cohort's studies and the RIS order list.

Studies are ordered in the EHR encounters ``write_ehr`` writes: emergency visits bring chest
radiographs and CT of the head or abdomen, inpatient stays portable chest films and CT or
MR, and a few outpatient visits a knee radiograph or an MR; older people are imaged more.
Each study lies inside its encounter, carries the person's PACS PatientID
(``Person.dicom_patient_id``) and an accession number that ``orders.csv`` ties to the
FHIR Encounter id. A person's studies depend only on ``person.rng("imaging")`` (and the
``imaging/...`` streams) and their encounters, never on the size of the cohort.

A few studies are there to be found by the pipeline's linking:

- the first three adults (in roster order) whose first study is CT or MR bring a prior from
  an outside center (InstitutionName ``Riverside Imaging Center``, accession ``RIC...``):
  their PatientID is the person's, their accession is in no order;
- one study from a merged practice's archive (InstitutionName ``Lakeside Radiology
  Associates``, PatientID ``LRA...``) names nobody in the roster and has no order.

The first CT study in roster order carries the cohort's one SR report (Basic Text SR,
deflated); the first three CT studies carry the scanner's dose screen as a Secondary Capture
with ``BurnedInAnnotation`` ``YES``. MR studies at ``SITE-A01`` write their first series as
one Enhanced MR multi-frame object.
"""

import csv
import io
import os
import random
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from types import TracebackType

from pydicom.uid import ExplicitVRBigEndian

from connectors.synth import codes as c
from connectors.synth import demographics as demo
from connectors.synth.clock import fhir_datetime, utc_offset
from connectors.synth.cohort import AS_OF, Person
from connectors.synth.dicom_catalog import (
    CT_ABDOMEN_PELVIS,
    CT_CHEST,
    CT_HEAD,
    DEPARTMENTS,
    LEGACY,
    MR_BRAIN,
    MR_KNEE,
    MR_LUMBAR_SPINE,
    OUTSIDE,
    XR_CHEST_1V,
    XR_CHEST_2V,
    XR_KNEE_3V,
    Procedure,
    staff,
)
from connectors.synth.dicom_files import Patient, RenderedFile, StudyPlan, render_study
from connectors.synth.ehr import EncounterSummary, encounter_summaries
from connectors.synth.files import AtomicFolder

FOLDER = "imaging"
ORDERS_NAME = "orders.csv"
ORDER_COLUMNS: tuple[str, ...] = (
    "accession_number",
    "patient_id",
    "mrn",
    "encounter_id",
    "modality",
    "procedure_code",
    "procedure_display",
    "ordered_at",
)
"""The columns of ``orders.csv``, in order."""

FOLDER_BATCH = "batch-001"
"""The batch delivered as a folder: studies done before ``BATCH_SPLIT``."""
ZIP_BATCH = "batch-002.zip"
"""The batch delivered as a zip: studies from ``BATCH_SPLIT`` on, and the merged archive's."""
BATCH_SPLIT = date(2021, 1, 1)
ZIP_MEMBER_FOLDER = "export"
"""The folder inside the zip that holds its files."""

OUTSIDE_STUDIES = 3
DOSE_CAPTURES = 3
REPORTS = 1

_FILE_NAME = re.compile(r"[0-9A-F]{16}\.dcm")
_ZIP_TIME = (AS_OF.year, AS_OF.month, AS_OF.day, 0, 0, 0)

_SEX = {"male": "M", "female": "F", "other": "O", "unknown": ""}
_RESPIRATORY = frozenset({c.PNEUMONIA, c.ACUTE_BRONCHITIS})
_AIRWAYS = frozenset({c.PNEUMONIA, c.ACUTE_BRONCHITIS, c.COPD, c.ASTHMA})
_CARDIAC = frozenset({c.ATRIAL_FIBRILLATION, c.ISCHEMIC_HEART_DISEASE})
_OFFICE_KINDS = frozenset({"symptom", "problem", "followup", "general"})

_Choice = tuple[float, tuple[Procedure, ...], tuple[float, ...]]
_NONE: _Choice = (0.0, (), ())


def _indication(encounter: EncounterSummary, age: int) -> _Choice:
    """How likely the encounter is to order imaging, and what (before the age factor)."""
    kind, reason = encounter.kind, encounter.reason
    if kind == "emer":
        if reason in _RESPIRATORY:
            return 0.75, (XR_CHEST_2V, XR_CHEST_1V, CT_CHEST), (0.7, 0.2, 0.1)
        if reason is not None:
            return 0.05, (XR_CHEST_2V,), (1.0,)
        if age < 18:
            return 0.4, (XR_CHEST_2V, CT_HEAD, CT_ABDOMEN_PELVIS), (0.7, 0.15, 0.15)
        return 0.5, (XR_CHEST_2V, CT_HEAD, CT_ABDOMEN_PELVIS, CT_CHEST, XR_CHEST_1V), (
            0.35, 0.25, 0.25, 0.10, 0.05,
        )
    if kind == "imp":
        if reason in _AIRWAYS:
            return 0.95, (XR_CHEST_1V, XR_CHEST_2V, CT_CHEST), (0.6, 0.25, 0.15)
        if reason in _CARDIAC:
            return 0.85, (XR_CHEST_1V, CT_HEAD, MR_BRAIN), (0.7, 0.15, 0.15)
        if reason is c.DIABETES_T2:
            return 0.5, (XR_CHEST_1V, CT_ABDOMEN_PELVIS), (0.6, 0.4)
        return 0.6, (XR_CHEST_1V, CT_ABDOMEN_PELVIS, CT_HEAD, MR_BRAIN, CT_CHEST), (
            0.35, 0.30, 0.15, 0.10, 0.10,
        )
    if kind in _OFFICE_KINDS:
        if reason is c.OSTEOARTHRITIS_KNEE:
            return 0.35, (XR_KNEE_3V, MR_KNEE), (0.6, 0.4)
        if reason in _RESPIRATORY:
            return 0.4, (XR_CHEST_2V,), (1.0,)
        if reason in (c.COPD, *_CARDIAC):
            return 0.12, (XR_CHEST_2V, CT_CHEST), (0.6, 0.4)
        if age < 18:
            return 0.015, (XR_CHEST_2V,), (1.0,)
        if age < 40:
            return 0.02, (XR_CHEST_2V, MR_LUMBAR_SPINE, MR_BRAIN), (0.5, 0.3, 0.2)
        return 0.03, (XR_CHEST_2V, XR_KNEE_3V, MR_LUMBAR_SPINE, MR_BRAIN, MR_KNEE), (
            0.30, 0.15, 0.25, 0.15, 0.15,
        )
    if kind == "checkup" and age >= 18:
        return 0.01, (XR_CHEST_2V,), (1.0,)
    return _NONE


def _age_factor(age: int) -> float:
    if age < 18:
        return 0.6
    if age < 45:
        return 0.85
    if age < 65:
        return 1.0
    return 1.25


@dataclass(frozen=True)
class _Order:
    """A study ordered in an encounter, before rendering."""

    encounter: EncounterSummary
    procedure: Procedure
    ordered_at: datetime
    start: datetime
    location: str
    referring: str


def _minutes(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(minutes=int(rng.uniform(low, max(low, high))))


def _place(
    rng: random.Random, encounter: EncounterSummary, procedure: Procedure, later: bool
) -> tuple[datetime, datetime]:
    """When the order is placed and the study starts, both inside the encounter."""
    span = (encounter.end - encounter.start).total_seconds() / 60
    if encounter.kind == "imp" and later:
        ordered = encounter.start + _minutes(rng, 0.2 * span, 0.8 * span)
    else:
        ordered = encounter.start + _minutes(rng, min(2, span / 4), min(45, span / 3))
    left = (encounter.end - ordered).total_seconds() / 60
    if procedure.family == "MR" and encounter.kind != "imp":
        # An outpatient MR is booked into the visit's own slot: it starts at once.
        return ordered, ordered + _minutes(rng, 0, left / 4)
    low, high = {"EMER": (15, 75), "IMP": (30, 240)}.get(encounter.encounter_class, (3, 20))
    return ordered, ordered + _minutes(rng, min(low, left / 4), min(high, left / 2))


def _person_orders(person: Person, encounters: list[EncounterSummary]) -> list[_Order]:
    rng = person.rng("imaging")
    people = staff(person.home_site)
    orders: list[_Order] = []
    for encounter in encounters:
        age = person.age_on(encounter.start.date())
        chance, options, weights = _indication(encounter, age)
        if not options or rng.random() >= min(chance * _age_factor(age), 0.97):
            continue
        chosen = [rng.choices(options, weights=weights)[0]]
        if encounter.kind == "imp" and len(options) > 1 and rng.random() < 0.3:
            rest = [(p, w) for p, w in zip(options, weights, strict=True) if p is not chosen[0]]
            chosen.append(rng.choices([p for p, _ in rest], weights=[w for _, w in rest])[0])
        klass = encounter.encounter_class
        pool, location = {
            "EMER": (people.emergency, "ED"),
            "IMP": (people.hospitalists, "INPATIENT"),
        }.get(klass, (people.primary_care, "OUTPATIENT"))
        referring = rng.choice(pool)
        for number, procedure in enumerate(chosen):
            ordered, start = _place(rng, encounter, procedure, later=number > 0)
            orders.append(_Order(encounter, procedure, ordered, start, location, referring))
    return orders


def _person_name(person: Person) -> str:
    return "^".join((person.family_name, *person.given_names[:2]))


def _offset(site: demo.Site, moment: datetime) -> str:
    return utc_offset(site, moment).replace(":", "")


def _with_offset(site: demo.Site, moment: datetime) -> datetime:
    """A local time at a site as an aware datetime carrying the site's offset of the day."""
    text = utc_offset(site, moment)
    sign = -1 if text.startswith("-") else 1
    offset = timedelta(hours=int(text[1:3]), minutes=int(text[4:6]))
    return moment.replace(tzinfo=timezone(sign * offset))


@dataclass
class _Roster:
    """Roster-wide state, filled in roster order so that every roster is a prefix."""

    seed: int | None = None
    accessions: set[str] = field(default_factory=set)
    outside_left: int = OUTSIDE_STUDIES
    dose_left: int = DOSE_CAPTURES
    reports_left: int = REPORTS

    def accession(self, draw: random.Random, prefix: str) -> str:
        while True:
            value = f"{prefix}{draw.randrange(10**7):07d}"
            if value not in self.accessions:
                self.accessions.add(value)
                return value


def _person_plans(person: Person, roster: _Roster) -> list[tuple[StudyPlan, list[str] | None]]:
    encounters = encounter_summaries(person)
    orders = _person_orders(person, encounters)
    draw = person.rng("imaging/accession")
    site = person.site
    people = staff(person.home_site)
    department = DEPARTMENTS[person.home_site]
    patient = Patient(
        patient_id=person.dicom_patient_id,
        issuer=person.home_site,
        name=_person_name(person),
        birth_date=person.birth_date,
        sex=_SEX[person.gender],
        mrn=person.mrn,
    )
    details = person.rng("imaging/details")
    planned: list[tuple[StudyPlan, list[str] | None]] = []
    for number, order in enumerate(orders, start=1):
        procedure = order.procedure
        accession = roster.accession(draw, f"{site.short}{order.start.year % 100:02d}")
        is_ct = procedure.family == "CT"
        report = is_ct and roster.reports_left > 0
        dose = is_ct and roster.dose_left > 0
        roster.reports_left -= report
        roster.dose_left -= dose
        plan = StudyPlan(
            seed=person.seed,
            key=(person.index, number),
            draws=details.getrandbits(64),
            patient=patient,
            department=department,
            procedure=procedure,
            accession=accession,
            start=order.start,
            finish=order.encounter.end,
            utc_offset=_offset(site, order.start),
            referring=order.referring,
            operator=details.choice(people.technologists),
            radiologist=details.choice(people.radiologists),
            location=order.location,
            ordered_at=_with_offset(site, order.ordered_at),
            laterality=details.choice("RL") if procedure.paired else "",
            report=report,
            dose_capture=dose,
        )
        row = [
            accession,
            person.dicom_patient_id,
            person.mrn,
            order.encounter.id,
            department.devices[procedure.family].modality,
            procedure.code,
            procedure.display,
            fhir_datetime(site, order.ordered_at),
        ]
        planned.append((plan, row))
    outside = _outside_prior(person, orders, roster)
    if outside is not None:
        planned.insert(0, (outside, None))
    return planned


def _outside_prior(person: Person, orders: list[_Order], roster: _Roster) -> StudyPlan | None:
    """A prior of the person's first CT or MR, done elsewhere and imported from a disc."""
    if roster.outside_left <= 0 or not orders or orders[0].procedure.family not in ("CT", "MR"):
        return None
    first = orders[0]
    if person.age_on(first.start.date()) < 18:
        return None
    rng = person.rng("imaging/outside")
    day = first.start.date() - timedelta(days=rng.randint(30, 400))
    start = datetime.combine(day, time(rng.randint(8, 16), rng.choice((0, 15, 30, 45))))
    roster.outside_left -= 1
    people = staff("RIVERSIDE")
    return StudyPlan(
        seed=person.seed,
        key=(person.index, "outside"),
        draws=rng.getrandbits(64),
        patient=Patient(
            patient_id=person.dicom_patient_id,
            issuer=person.home_site,
            name=_person_name(person),
            birth_date=person.birth_date,
            sex=_SEX[person.gender],
            mrn=None,
        ),
        department=OUTSIDE,
        procedure=first.procedure,
        accession=roster.accession(rng, "RIC"),
        start=start,
        finish=start + timedelta(hours=1),
        utc_offset=_offset(person.site, start),
        referring=rng.choice(staff(person.home_site).primary_care),
        operator=rng.choice(people.technologists),
        radiologist=rng.choice(people.radiologists),
        location="OUTSIDE",
        ordered_at=None,
        laterality=rng.choice("RL") if first.procedure.paired else "",
    )


def _legacy_study(seed: int, roster: _Roster) -> StudyPlan:
    """A chest film from a merged practice's archive, of someone not in the roster."""
    rng = random.Random(f"biofed/{seed}/imaging/legacy")
    gender = rng.choice(("male", "female"))
    given = rng.choice(demo.GIVEN_MALE if gender == "male" else demo.GIVEN_FEMALE)
    birth = date(rng.randint(1935, 1985), rng.randint(1, 12), rng.randint(1, 28))
    start = datetime(2016, rng.randint(1, 12), rng.randint(1, 28), rng.randint(8, 17),
                     rng.choice((0, 20, 40)))
    people = staff("LAKESIDE")
    return StudyPlan(
        seed=seed,
        key=("legacy", 1),
        draws=rng.getrandbits(64),
        patient=Patient(
            patient_id=f"LRA{rng.randrange(10**6):06d}",
            issuer="LAKESIDE RADIOLOGY",
            name=f"{rng.choice(demo.FAMILY)}^{given}",
            birth_date=birth,
            sex=_SEX[gender],
            mrn=None,
        ),
        department=LEGACY,
        procedure=XR_CHEST_1V,
        accession=roster.accession(rng, "LR"),
        start=start,
        finish=start + timedelta(minutes=30),
        utc_offset="-0500",
        referring=rng.choice(people.primary_care),
        operator=rng.choice(people.technologists),
        radiologist=rng.choice(people.radiologists),
        location="ARCHIVE",
        ordered_at=None,
        syntax=ExplicitVRBigEndian,
    )


def _studies(people: Iterable[Person]) -> Iterator[tuple[StudyPlan, list[str] | None]]:
    """Every study, planned, with its ``orders.csv`` row when it was ordered here.

    In roster order; the merged archive's study comes last when the roster is not empty.
    """
    roster = _Roster()
    for person in people:
        roster.seed = person.seed
        yield from _person_plans(person, roster)
    if roster.seed is not None:
        yield _legacy_study(roster.seed, roster), None


class _StagedFolder:
    """Files of one folder that appear under their final names only when all are complete.

    Like ``AtomicFolder``, but each file is closed as soon as it is written: a batch holds
    more files than a process may keep open. On a clean exit, files of this writer's
    naming pattern that were not written this time are removed, so a smaller cohort does
    not leave the files of a larger one behind.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._staged: dict[str, Path] = {}

    def __enter__(self) -> "_StagedFolder":
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    def write(self, name: str, data: bytes) -> None:
        if name in self._staged:
            raise ValueError(f"{name} is already being written")
        temporary = self.folder / f".{name}.{os.getpid()}.tmp"
        self._staged[name] = temporary
        temporary.write_bytes(data)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                # One flush of everything instead of an fsync per file: a thousand fsyncs
                # take seconds, and the renames must still only follow durable contents.
                os.sync()
                for name, temporary in self._staged.items():
                    os.replace(temporary, self.folder / name)
                for path in self.folder.iterdir():
                    if _FILE_NAME.fullmatch(path.name) and path.name not in self._staged:
                        path.unlink()
        finally:
            for temporary in self._staged.values():
                temporary.unlink(missing_ok=True)


def _zip_entry(archive: zipfile.ZipFile, file: RenderedFile) -> None:
    info = zipfile.ZipInfo(f"{ZIP_MEMBER_FOLDER}/{file.name}", date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = 0o644 << 16
    archive.writestr(info, file.data)


def write_imaging(people: Iterable[Person], out: Path) -> dict[str, int]:
    """Write the imaging silo: two batches of DICOM files and the RIS order list.

    Writes under ``out/imaging/``: ``batch-001/`` (a folder of Part-10 files, the studies
    done before 2021), ``batch-002.zip`` (the later studies and the merged archive's, under
    ``export/`` in the zip) and ``orders.csv`` (one row per ordered study, columns
    ``ORDER_COLUMNS``, in order time). File names are opaque. Files of those names are
    replaced and nothing carries a final name until every file is complete; files of an
    earlier run left in ``batch-001/`` are removed. The same roster gives byte-identical
    files.

    Args:
        people: the roster, in index order.
        out: the cohort's output folder.

    Returns:
        ``imaging/orders.csv`` to its number of rows, and ``imaging/batch-001`` and
        ``imaging/batch-002.zip`` to the number of DICOM files in each.

    Raises:
        OSError: if the folder cannot be created or written.
    """
    root = Path(out) / FOLDER
    rows: list[list[str]] = []
    in_folder = in_zip = 0
    with AtomicFolder(root) as atomic, _StagedFolder(root / FOLDER_BATCH) as staged:
        with zipfile.ZipFile(atomic.open(ZIP_BATCH), "w") as archive:
            for plan, row in _studies(people):
                if row is not None:
                    rows.append(row)
                legacy = plan.department is LEGACY
                for file in render_study(plan):
                    if plan.start.date() < BATCH_SPLIT and not legacy:
                        staged.write(file.name, file.data)
                        in_folder += 1
                    else:
                        _zip_entry(archive, file)
                        in_zip += 1
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(ORDER_COLUMNS)
        writer.writerows(sorted(rows, key=_order_time))
        atomic.open(ORDERS_NAME).write(text.getvalue().encode("utf-8"))
    return {
        f"{FOLDER}/{ORDERS_NAME}": len(rows),
        f"{FOLDER}/{FOLDER_BATCH}": in_folder,
        f"{FOLDER}/{ZIP_BATCH}": in_zip,
    }


def _order_time(row: list[str]) -> tuple[datetime, str]:
    """The instant an order was placed (its offset taken into account), then its accession."""
    return datetime.fromisoformat(row[-1]), row[0]
