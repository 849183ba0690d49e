"""``write_cohort``: the synthetic linked cohort, written as the source systems would drop it."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from connectors.synth.cohort import Person, build_people
from connectors.synth.dicom import write_imaging
from connectors.synth.ehr import write_ehr
from connectors.synth.genomics import write_genomics
from connectors.synth.lab import write_lab
from connectors.synth.trial import write_trial

SiloWriter = Callable[[list[Person], Path], dict[str, int]]

SILO_WRITERS: dict[str, SiloWriter] = {
    "ehr": write_ehr,
    "genomics": write_genomics,
    "imaging": write_imaging,
    "lab": write_lab,
    "trials": write_trial,
}
"""Silo name to its writer; every writer describes the same roster."""

KNOWN_SILOS: tuple[str, ...] = tuple(SILO_WRITERS)


@dataclass(frozen=True)
class CohortSummary:
    """What ``write_cohort`` wrote.

    Attributes:
        patients: the number of people in the roster.
        files: path relative to ``out`` (``ehr/Patient.ndjson``, ``genomics/cohort.vcf.gz``,
            ``lab/hl7/SITE-A02-oru.hl7``, ``trials/BIOFED-01/dm.xpt`` ...) to its record count
            (data rows of a CSV file, messages of an HL7 file, records of a dataset); for a
            batch of DICOM files (``imaging/batch-001``, ``imaging/batch-002.zip``), the number
            of files in it.
        out: the output folder.
    """

    patients: int
    files: dict[str, int]
    out: Path


def write_cohort(
    out: str | Path,
    *,
    patients: int = 500,
    seed: int = 7,
    silos: Sequence[str] = ("ehr",),
) -> CohortSummary:
    """Write a deterministic synthetic cohort, one folder per silo, under ``out``.

    The same ``(patients, seed)`` gives byte-identical files; a person's records do not
    depend on the cohort size or on which other silos are written. Files of the silos
    written are replaced, each appearing under its final name only once complete.

    Args:
        out: the output folder (created if missing).
        patients: how many people (0 or more).
        seed: the cohort seed.
        silos: which silos to write: ``"ehr"`` (FHIR R4 bulk NDJSON, the default),
            ``"genomics"`` (a bgzipped, tabix-indexed cohort VCF and its sample manifest),
            ``"imaging"`` (DICOM studies in a folder batch and a zip batch, with the
            RIS order list that links them to EHR encounters), ``"lab"`` (two sites' LIS
            CSV exports, three sites' HL7 v2 ORU^R01 feeds and the labs' patient index) and
            ``"trials"`` (study BIOFED-01 as CDISC SDTM SAS XPORT datasets with the
            enrolment map from USUBJID to EHR MRN).

    Returns:
        The roster size, the files written with their record counts, and ``out``.

    Raises:
        ValueError: for an unknown silo name, a negative ``patients`` or a non-integer seed.
        OSError: if the output folder cannot be written.
    """
    names = [silos] if isinstance(silos, str) else list(silos)
    unknown = sorted({name for name in names if name not in SILO_WRITERS})
    if unknown:
        raise ValueError(
            f"unknown silo(s): {', '.join(map(repr, unknown))}; "
            f"known silos are: {', '.join(KNOWN_SILOS)}"
        )
    people = build_people(patients, seed)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, int] = {}
    for name in dict.fromkeys(names):
        files.update(SILO_WRITERS[name](people, root))
    return CohortSummary(patients=patients, files=files, out=root)
