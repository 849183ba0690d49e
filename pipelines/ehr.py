"""Plain, Dagster-free transforms of the EHR silo: landing files to bronze, bronze to silver."""

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from connectors.fhir import read_fhir
from connectors.fhir.components import observation_components
from connectors.fhir.schema import OTHER_TABLE, TABLE_NAMES, table_schema
from pipelines.landing import LandingFile, files_with_suffixes, scan_files

BRONZE_TABLES: tuple[str, ...] = (*TABLE_NAMES.values(), OTHER_TABLE)
SILVER_TABLES: tuple[str, ...] = tuple(TABLE_NAMES.values())
FHIR_SUFFIXES = (".ndjson", ".ndjson.gz", ".json")

INGEST_COLUMNS: dict[str, pl.DataType] = {
    "source_sha256": pl.String(),
    "ingested_at": pl.Datetime("us", "UTC"),
}
FILE_LEDGER_SCHEMA: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "source_sha256": pl.String(),
    "bytes": pl.Int64(),
    "records": pl.Int64(),
    "rejects": pl.Int64(),
    "ingested_at": pl.Datetime("us", "UTC"),
    "source_modified_at": pl.Datetime("us", "UTC"),
}
REJECTS_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "locator": pl.String(),
    "reason": pl.String(),
    "source_sha256": pl.String(),
    "ingested_at": pl.Datetime("us", "UTC"),
}
CROSSWALK_SCHEMA: dict[str, pl.DataType] = {
    "source_system": pl.String(),
    "identifier_type": pl.String(),
    "identifier": pl.String(),
    "person_key": pl.String(),
    "linked_at": pl.Datetime("us", "UTC"),
    "link_rule": pl.String(),
}
"""``restricted/person_crosswalk``: one row per source identifier (``source_system``,
``identifier_type``, ``identifier``), the person it is, when and by which rule it was linked.
Rows are only ever added: an identifier keeps its person."""
CROSSWALK_KEY = ("source_system", "identifier_type", "identifier")

LINK_RULES: dict[str, str] = {
    "ehr_patient": "an EHR Patient resource: its FHIR id and MRN, as a new person or as the "
    "person its FHIR id already is",
    "ehr_mrn": "a new FHIR Patient id whose MRN is already linked joins that MRN's person",
    "lab_index_mrn": "a lab patient id, through its site's patient index MRN",
    "sample_manifest_mrn": "a VCF sample id, through the sample manifest's MRN",
    "ris_order_mrn": "a DICOM PatientID, through the MRN of its RIS orders (all naming one person)",
    "enrolment_mrn": "a trial subject (USUBJID of a study), through the enrolment map's MRN",
}
"""How a crosswalk row was linked: the ``link_rule`` codes."""

CONFLICT_REASONS: dict[str, str] = {
    "unknown_mrn": "the row's MRN is held by no EHR patient: it points to no one",
    "claimed_by_two_people": "the identifier's rows name two different people",
    "linked_to_another_person": "the identifier is already linked to another person; a link "
    "never moves",
    "mrn_shared_by_two_people": "the MRN is already linked to another person than this FHIR "
    "patient's",
}
"""Why an identity was quarantined instead of linked: the ``reason`` codes of
``_rejects/identity/crosswalk``."""

CONFLICT_SCHEMA: dict[str, pl.DataType] = {
    "source_system": pl.String(),
    "identifier_type": pl.String(),
    "identifier_sha256": pl.String(),
    "reason": pl.String(),
    "source": pl.String(),
    "locator": pl.String(),
    "source_sha256": pl.String(),
    "ingested_at": pl.Datetime("us", "UTC"),
}
"""``_rejects/identity/crosswalk``: one row per source row whose identity was quarantined.
The identifier itself is never stored, only its SHA-256 (hex); ``source`` and ``locator``
say where the row is (a FHIR file and line, or a manifest and its row's key digest)."""


def landing_files(folder: Path) -> list[Path]:
    """FHIR files (NDJSON, gzipped NDJSON, Bundle JSON) below a landing folder, sorted."""
    return files_with_suffixes(folder, FHIR_SUFFIXES)


def scan_landing(folder: Path) -> list[LandingFile]:
    """Every FHIR file below a landing folder with its hash, size and modification time."""
    return scan_files(folder, FHIR_SUFFIXES)


@dataclass
class BronzeBatch:
    """What reading a set of changed landing files produced."""

    tables: dict[str, pl.DataFrame]
    rejects: pl.DataFrame
    ledger: pl.DataFrame
    changed_sources: list[str]


def changed_files(files: Iterable[LandingFile], ledger: pl.DataFrame | None) -> list[LandingFile]:
    """Landing files whose content (path and sha256) is not in the ledger yet."""
    known: set[tuple[str, str]] = set()
    if ledger is not None:
        known = set(ledger.select("source_file", "source_sha256").iter_rows())
    return [f for f in files if (f.source_file, f.sha256) not in known]


def read_bronze(changed: list[LandingFile], *, ingested_at: datetime) -> BronzeBatch:
    """Read changed landing files into bronze rows with provenance, quarantining bad records.

    Args:
        changed: output of :func:`changed_files`.
        ingested_at: the time recorded on every row.

    Returns:
        Rows per bronze table (every table present, possibly empty), rejects and ledger rows.
    """
    parts: dict[str, list[pl.DataFrame]] = {t: [] for t in BRONZE_TABLES}
    rejects, ledger = [], []
    stamp = pl.lit(ingested_at).cast(pl.Datetime("us", "UTC")).alias("ingested_at")
    for landed in changed:
        result = read_fhir(landed.path, on_error="quarantine")
        provenance = [
            pl.lit(landed.source_file).alias("source_file"),
            pl.lit(landed.sha256).alias("source_sha256"),
            stamp,
        ]
        records = 0
        for table, frame in result.tables.items():
            parts[table].append(frame.with_columns(provenance))
            records += frame.height
        rejects.append(
            result.rejects.with_columns(
                pl.lit(landed.source_file).alias("source"),
                pl.lit(landed.sha256).alias("source_sha256"),
                stamp,
            )
        )
        ledger.append(
            {
                "source_file": landed.source_file,
                "source_sha256": landed.sha256,
                "bytes": landed.bytes,
                "records": records,
                "rejects": result.rejects.height,
                "ingested_at": ingested_at,
                "source_modified_at": landed.modified_at,
            }
        )
    tables = {
        t: pl.concat(frames)
        if frames
        else pl.DataFrame(schema={**table_schema(t), **INGEST_COLUMNS})
        for t, frames in parts.items()
    }
    return BronzeBatch(
        tables=tables,
        rejects=pl.concat(rejects).select(REJECTS_SCHEMA.keys())
        if rejects
        else pl.DataFrame(schema=REJECTS_SCHEMA),
        ledger=pl.DataFrame(ledger, schema=FILE_LEDGER_SCHEMA),
        changed_sources=[f.source_file for f in changed],
    )


def ledger_update(
    files: list[LandingFile], ledger: pl.DataFrame | None, batch: BronzeBatch
) -> pl.DataFrame:
    """The ledger rows to MERGE: re-read files in full, and for unchanged files their current
    modification time (a source re-delivering the same content is still a fresh delivery)."""
    if ledger is None:
        return batch.ledger
    modified = pl.DataFrame(
        {
            "source_file": [f.source_file for f in files],
            "source_modified_at": [f.modified_at for f in files],
        },
        schema={"source_file": pl.String(), "source_modified_at": pl.Datetime("us", "UTC")},
    )
    unchanged = (
        ledger.drop("source_modified_at", strict=False)
        .join(modified, on="source_file", how="inner")
        .filter(~pl.col("source_file").is_in(batch.changed_sources))
        .select(FILE_LEDGER_SCHEMA.keys())
    )
    return pl.concat([batch.ledger, unchanged.cast(FILE_LEDGER_SCHEMA)])


def identifier_digests(values: pl.Series) -> pl.Series:
    """The SHA-256 (64 lowercase hex) of each identifier: what the identity quarantine keeps
    instead of the value. Null stays null."""
    digests = [
        None if v is None else hashlib.sha256(v.encode()).hexdigest() for v in values.to_list()
    ]
    return pl.Series(values.name, digests, dtype=pl.String())


EHR_PROVENANCE: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "source_locator": pl.String(),
    **INGEST_COLUMNS,
}


def crosswalk_update(
    patients: pl.DataFrame, crosswalk: pl.DataFrame | None, *, linked_at: datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The EHR identities of bronze patients the crosswalk does not hold yet, and the
    conflicts that keep others out.

    Each FHIR Patient id is taken with every MRN its bronze rows carry. An id already linked
    keeps its person; a new id whose MRNs are linked to one person joins that person
    (``ehr_mrn``); a new id without a linked MRN becomes a new random ``person_key``
    (``ehr_patient``). An MRN not linked yet joins the id's person. Never guessed:

    * a new id whose MRNs are linked to two people is not linked
      (``claimed_by_two_people``, on every row of the id);
    * an MRN already linked to another person than the id's stays with that person
      (``mrn_shared_by_two_people``, on every row pairing the id with that MRN): two FHIR
      patients that are different people hold it.

    Args:
        patients: bronze patients with ``id`` and ``mrn``; their provenance (``source_file``,
            ``source_locator``, ``source_sha256``, ``ingested_at``) locates conflicts when
            present. Rows are taken in ingestion order, so a rerun decides the same way.
        crosswalk: the current crosswalk, or None before the first run.
        linked_at: the time recorded on new rows.

    Returns:
        ``(rows, conflicts)``: new crosswalk rows with :data:`CROSSWALK_SCHEMA` and conflict
        rows with :data:`CONFLICT_SCHEMA`.
    """
    known: dict[tuple[str, str], str] = {}
    if crosswalk is not None:
        ehr_rows = crosswalk.filter(pl.col("source_system") == "ehr")
        for kind, value, person in ehr_rows.select(
            "identifier_type", "identifier", "person_key"
        ).iter_rows():
            known[(kind, value)] = person
    frame = patients.filter(pl.col("id").is_not_null()).with_columns(
        pl.lit(None, dtype).alias(name)
        for name, dtype in EHR_PROVENANCE.items()
        if name not in patients.columns
    )
    order = [c for c in ("ingested_at", "source_file", "source_locator") if c in patients.columns]
    if order:
        frame = frame.sort(order, nulls_last=False, maintain_order=True)
    entries: dict[str, list[dict]] = {}
    for row in frame.select("id", "mrn", *EHR_PROVENANCE).iter_rows(named=True):
        entries.setdefault(row["id"], []).append(row)
    rows: list[tuple] = []
    conflicts: list[dict] = []

    def quarantine(kind: str, value: str, reason: str, located: list[dict]) -> None:
        conflicts.extend(
            {"identifier_type": kind, "identifier": value, "reason": reason, **e} for e in located
        )

    def link(kind: str, value: str, person: str, rule: str) -> None:
        known[(kind, value)] = person
        rows.append(("ehr", kind, value, person, linked_at, rule))

    for patient_id, located in entries.items():
        mrns = list(dict.fromkeys(e["mrn"] for e in located if e["mrn"]))
        person = known.get(("fhir_patient_id", patient_id))
        if person is None:
            owners = {known[("mrn", m)] for m in mrns if ("mrn", m) in known}
            if len(owners) > 1:
                quarantine("fhir_patient_id", patient_id, "claimed_by_two_people", located)
                continue
            if owners:
                person, rule = owners.pop(), "ehr_mrn"
            else:
                person, rule = uuid.uuid4().hex, "ehr_patient"
            link("fhir_patient_id", patient_id, person, rule)
        for mrn in mrns:
            holder = known.get(("mrn", mrn))
            if holder is None:
                link("mrn", mrn, person, "ehr_patient")
            elif holder != person:
                pairs = [e for e in located if e["mrn"] == mrn]
                quarantine("mrn", mrn, "mrn_shared_by_two_people", pairs)
    return (
        pl.DataFrame(rows, schema=CROSSWALK_SCHEMA, orient="row"),
        _ehr_conflicts(conflicts),
    )


def _ehr_conflicts(conflicts: list[dict]) -> pl.DataFrame:
    """Conflict rows located at their bronze FHIR row (file and line), the value digested."""
    if not conflicts:
        return pl.DataFrame(schema=CONFLICT_SCHEMA)
    frame = pl.DataFrame(
        conflicts,
        schema={
            "identifier_type": pl.String(),
            "identifier": pl.String(),
            "reason": pl.String(),
            "id": pl.String(),
            "mrn": pl.String(),
            **EHR_PROVENANCE,
        },
    )
    return frame.select(
        pl.lit("ehr").alias("source_system"),
        "identifier_type",
        identifier_digests(frame.get_column("identifier")).alias("identifier_sha256"),
        "reason",
        pl.col("source_file").alias("source"),
        pl.col("source_locator").alias("locator"),
        "source_sha256",
        "ingested_at",
    ).cast(CONFLICT_SCHEMA)


def new_crosswalk_rows(
    patients: pl.DataFrame, crosswalk: pl.DataFrame | None, *, linked_at: datetime
) -> pl.DataFrame:
    """The new crosswalk rows of :func:`crosswalk_update`, without its conflicts.

    Args:
        patients: bronze patients with ``id`` and ``mrn``.
        crosswalk: the current crosswalk, or None before the first run.
        linked_at: the time recorded on new rows.

    Returns:
        New crosswalk rows (possibly none) with :data:`CROSSWALK_SCHEMA`.
    """
    return crosswalk_update(patients, crosswalk, linked_at=linked_at)[0]


def latest_per_id(bronze: pl.DataFrame) -> pl.DataFrame:
    """One bronze row per FHIR id: the latest ingestion wins, then the later file and locator."""
    return bronze.sort("ingested_at", "source_file", "source_locator").unique(
        subset=["id"], keep="last", maintain_order=True
    )


def with_components(latest: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Observations (one per id, see :func:`latest_per_id`) plus a row per panel component.

    A blood-pressure panel carries systolic and diastolic values in components; each becomes an
    observation row (``<panel id>.<n>``) with the panel's provenance, so the values reach silver
    and the research views. Malformed components are quarantined, not dropped silently.

    Returns:
        The rows with components added, and the quarantined components (source, locator, reason).
    """
    parts = observation_components(
        latest.select(table_schema("observations").keys()), on_error="quarantine"
    )
    provenance = latest.select(pl.col("id").alias("_panel"), "source_sha256", "ingested_at")
    components = (
        parts.tables["observations"]
        .with_columns(pl.col("id").str.replace(r"\.\d+$", "").alias("_panel"))
        .join(provenance, on="_panel", how="left")
        .select(latest.columns)
    )
    return pl.concat([latest, components]), parts.rejects


def silver_frame(latest: pl.DataFrame, crosswalk: pl.DataFrame, table: str) -> pl.DataFrame:
    """Bronze rows of one resource type, one per FHIR id, linked to ``person_key``.

    Args:
        latest: the bronze table reduced to one row per id (:func:`latest_per_id`).
        crosswalk: the person crosswalk.
        table: the silver table name (``patients``, ``encounters``, ...).

    Returns:
        Typed columns, ``person_key`` and provenance, sorted by id.
    """
    typed = [c for c in table_schema(table) if c != "resource_json"]
    ids = crosswalk.filter(pl.col("identifier_type") == "fhir_patient_id").select(
        pl.col("identifier").alias("_pid"), "person_key"
    )
    join_on = "id" if table == "patients" else "patient_id"
    linked = latest.select(*typed, "source_sha256", "ingested_at").join(
        ids, left_on=join_on, right_on="_pid", how="left", maintain_order="left"
    )
    first = ["id", "person_key"]
    return linked.select(*first, *[c for c in linked.columns if c not in first]).sort("id")
