"""Lab silo: LIS CSV exports and HL7 v2 ORU feeds -> bronze results -> one conformed silver
table (LOINC codes, UCUM units) linked to ``person_key`` through each lab's patient index.

Landing layout (below ``landing/lab``):

* ``csv/<SITE>/*.csv``: a site's LIS exports, read with the site's profile
  (``csv/<SITE>/profile.yaml`` when present, else the built-in profile of that name);
* ``hl7/*.hl7``: ORU^R01 feeds of any site (the site is the message's sending facility);
* ``patient_index.csv``: each lab's patient index (``site, lab_patient_id, mrn``), which
  ties a lab's patient id to the EHR MRN, and so to a person through the crosswalk.

A file is read again only when its content changed; its rows in bronze are then replaced.
Silver keeps one row per result (``result_id``): a corrected or final result replaces the
preliminary one, whichever file brought it.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from connectors.errors import ConnectorError
from connectors.hl7v2 import MESSAGE_SCHEMA, read_hl7v2
from connectors.lab_csv import builtin_profiles, load_profile, read_lab_csv
from connectors.lab_schema import LAB_RESULT_SCHEMA
from connectors.result import ReadResult
from connectors.terminology import conform_lab_results, mapping_report
from pipelines.crosswalk_links import read_conflicts, with_crosswalk
from pipelines.ehr import FILE_LEDGER_SCHEMA, INGEST_COLUMNS, REJECTS_SCHEMA, BronzeBatch
from pipelines.lake import Lake, WriteOutcome
from pipelines.landing import LandingFile, files_with_suffixes, landing_file
from pipelines.linking import index_rules, link_through_index
from pipelines.manifests import read_manifest
from quality.report.lab_mapping import site_summary
from quality.valuesets import LAB_LINK_STATUS

RESULTS_PATH = "bronze/lab/results"
MESSAGES_PATH = "bronze/lab/messages"
FILES_PATH = "bronze/lab/files"
REJECTS_PATH = "_rejects/lab/results"
INDEX_PATH = "bronze/lab/patient_index"
INDEX_REJECTS_PATH = "_rejects/lab/patient_index"
SILVER_PATH = "silver/lab/lab_results"
REPORT_PATH = "silver/lab/mapping_report"

INDEX_NAME = "patient_index.csv"
CSV_FOLDER = "csv"
HL7_FOLDER = "hl7"
PROFILE_NAME = "profile.yaml"
CSV_SUFFIXES = (".csv",)
HL7_SUFFIXES = (".hl7", ".hl7v2")

_UTC = pl.Datetime("us", "UTC")

PROVENANCE_COLUMNS: dict[str, pl.DataType] = {"source_file": pl.String(), **INGEST_COLUMNS}
RESULT_TABLE_SCHEMA: dict[str, pl.DataType] = {**LAB_RESULT_SCHEMA, **PROVENANCE_COLUMNS}
MESSAGE_TABLE_SCHEMA: dict[str, pl.DataType] = {**MESSAGE_SCHEMA, **PROVENANCE_COLUMNS}

BRONZE_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    RESULTS_PATH: RESULT_TABLE_SCHEMA,
    MESSAGES_PATH: MESSAGE_TABLE_SCHEMA,
    REJECTS_PATH: REJECTS_SCHEMA,
    FILES_PATH: FILE_LEDGER_SCHEMA,
}
"""The bronze tables ``bronze_lab`` writes, with their schemas."""

INDEX_COLUMNS: dict[str, pl.DataType] = {
    "site": pl.String(),
    "lab_patient_id": pl.String(),
    "mrn": pl.String(),
}
"""A lab's patient index: which EHR MRN each lab patient id is, per site."""
INDEX_TABLE_COLUMNS: dict[str, pl.DataType] = {**INDEX_COLUMNS, **PROVENANCE_COLUMNS}
INDEX_KEY = ("site", "lab_patient_id")

LINK_STATUSES = LAB_LINK_STATUS
"""How a result was tied to a person (see ``quality.valuesets.LAB_LINK_STATUS``)."""

SILVER_COLUMNS: dict[str, pl.DataType] = {
    "result_id": pl.String(),
    "person_key": pl.String(),
    "link_status": pl.String(),
    "lab_patient_id": pl.String(),
    "site": pl.String(),
    "source_kind": pl.String(),
    "message_id": pl.String(),
    "accession": pl.String(),
    "panel_code": pl.String(),
    "panel_display": pl.String(),
    "specimen_type": pl.String(),
    "category": pl.String(),
    "collected_at": _UTC,
    "resulted_at": _UTC,
    "local_code": pl.String(),
    "local_system": pl.String(),
    "local_display": pl.String(),
    "source_loinc": pl.String(),
    "loinc": pl.String(),
    "loinc_display": pl.String(),
    "analyte": pl.String(),
    "mapping_status": pl.String(),
    "map_version": pl.String(),
    "value_type": pl.String(),
    "value_text": pl.String(),
    "value_original": pl.Float64(),
    "unit_original": pl.String(),
    "comparator": pl.String(),
    "value": pl.Float64(),
    "unit": pl.String(),
    "unit_status": pl.String(),
    "reference_low": pl.Float64(),
    "reference_high": pl.Float64(),
    "reference_text": pl.String(),
    "abnormal_flag": pl.String(),
    "result_status": pl.String(),
    "value_code": pl.String(),
    "value_system": pl.String(),
    "value_display": pl.String(),
    "source_file": pl.String(),
    "source_locator": pl.String(),
    "source_sha256": pl.String(),
    "ingested_at": _UTC,
}
"""``silver/lab/lab_results``: one row per result across every lab source."""

RESULT_ID_PARTS = (
    "site",
    "patient_id",
    "accession",
    "test_system",
    "test_code",
    "observation_sub_id",
    "collected_at",
)
"""What names one result: a corrected or final result has the same id as the preliminary
one it replaces, whichever file or message brought it."""


@dataclass(frozen=True)
class LabFile:
    """One landed lab file and how to read it."""

    landed: LandingFile
    kind: str
    """``csv`` or ``hl7v2``."""
    site: str | None
    """For a CSV export: the site folder it sits in (its profile's name); None for HL7."""


def scan_landing(folder: Path) -> list[LabFile]:
    """Every lab file below ``landing/lab``, with its hash, size and time, sorted by path."""
    files = []
    for path in files_with_suffixes(folder / CSV_FOLDER, CSV_SUFFIXES):
        parts = path.relative_to(folder / CSV_FOLDER).parts
        site = parts[0] if len(parts) > 1 else None
        files.append(LabFile(landing_file(path, folder), "csv", site))
    for path in files_with_suffixes(folder / HL7_FOLDER, HL7_SUFFIXES):
        files.append(LabFile(landing_file(path, folder), "hl7v2", None))
    return sorted(files, key=lambda f: f.landed.source_file)


def _read(file: LabFile, folder: Path) -> ReadResult:
    """Read one landed file in quarantine mode; a file that cannot be read at all becomes
    one reject (its reason from the connector, which never holds a patient value)."""
    path = file.landed.path
    try:
        if file.kind == "hl7v2":
            return read_hl7v2(path, on_error="quarantine")
        if file.site is None:
            return _file_reject(
                file,
                f"a CSV export directly in {CSV_FOLDER}/ has no site: move it to "
                f"{CSV_FOLDER}/<SITE>/, whose name picks the site profile",
            )
        own = folder / CSV_FOLDER / file.site / PROFILE_NAME
        if not own.is_file() and file.site not in builtin_profiles():
            return _file_reject(
                file,
                f"no site profile for {file.site}: put a {PROFILE_NAME} beside its exports "
                f"(connectors/lab_csv/sites/ holds examples), or name the folder after a "
                f"built-in profile ({', '.join(builtin_profiles())})",
            )
        profile = load_profile(own if own.is_file() else file.site)
        return read_lab_csv(path, site=profile, on_error="quarantine")
    except ConnectorError as exc:
        return _file_reject(file, str(exc))


def _file_reject(file: LabFile, reason: str) -> ReadResult:
    rejects = pl.DataFrame(
        {"source": [file.landed.source_file], "locator": ["file"], "reason": [reason]}
    )
    return ReadResult(tables={}, rejects=rejects)


def read_bronze(changed: list[LabFile], folder: Path, *, ingested_at: datetime) -> BronzeBatch:
    """Read changed lab files into bronze rows with provenance, quarantining bad records.

    Args:
        changed: the files whose content is not in the ledger yet.
        folder: ``landing/lab`` (where site profiles may sit beside the exports).
        ingested_at: the time recorded on every row.

    Returns:
        ``tables`` with ``results`` and ``messages``, the rejects and the ledger rows.
    """
    results, messages, rejects, ledger = [], [], [], []
    for file in changed:
        landed = file.landed
        read = _read(file, folder)
        provenance = [
            pl.lit(landed.source_file).alias("source_file"),
            pl.lit(landed.sha256).alias("source_sha256"),
            pl.lit(ingested_at).cast(_UTC).alias("ingested_at"),
        ]
        rows = read.tables.get("lab_results")
        if rows is not None:
            results.append(rows.with_columns(provenance).select(list(RESULT_TABLE_SCHEMA)))
        if read.tables.get("messages") is not None:
            messages.append(
                read.tables["messages"].with_columns(provenance).select(list(MESSAGE_TABLE_SCHEMA))
            )
        rejects.append(
            read.rejects.with_columns(
                pl.lit(landed.source_file).alias("source"), *provenance[1:]
            ).select(list(REJECTS_SCHEMA))
        )
        ledger.append(
            {
                "source_file": landed.source_file,
                "source_sha256": landed.sha256,
                "bytes": landed.bytes,
                "records": 0 if rows is None else rows.height,
                "rejects": read.rejects.height,
                "ingested_at": ingested_at,
                "source_modified_at": landed.modified_at,
            }
        )
    return BronzeBatch(
        tables={
            "results": _concat(results, RESULT_TABLE_SCHEMA),
            "messages": _concat(messages, MESSAGE_TABLE_SCHEMA),
        },
        rejects=_concat(rejects, REJECTS_SCHEMA),
        ledger=pl.DataFrame(ledger, schema=FILE_LEDGER_SCHEMA),
        changed_sources=[f.landed.source_file for f in changed],
    )


def _concat(frames: list[pl.DataFrame], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.concat(frames).cast(schema) if frames else pl.DataFrame(schema=schema)


def read_patient_index(path: Path, *, source_file: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A lab patient index (``site, lab_patient_id, mrn``), bad rows quarantined by line.

    A lab patient id listed for two MRNs at one site is quarantined on every line that lists
    it: which person it is cannot be decided, so none of its results link until the index is
    fixed. A line that repeats an earlier one exactly is set aside as a repeat.

    Raises:
        ManifestError: when the file is not a CSV with the index's columns.
    """
    return read_manifest(
        path,
        source_file=source_file,
        columns=INDEX_COLUMNS,
        parsed={},
        rules=index_rules(INDEX_COLUMNS, INDEX_KEY, "lab patient id"),
        what="lab patient index",
    )


def with_result_ids(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with ``result_id``: a hash of :data:`RESULT_ID_PARTS` (32 hex digits)."""
    parts = frame.select(
        pl.concat_str(
            [pl.col(c).cast(pl.String).fill_null("") for c in RESULT_ID_PARTS], separator="\x1f"
        ).alias("k")
    ).get_column("k")
    ids = [hashlib.sha256(k.encode()).hexdigest()[:32] for k in parts.to_list()]
    return frame.with_columns(pl.Series("result_id", ids, dtype=pl.String()))


def latest_results(conformed: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """One row per ``result_id``: the latest result time wins, then the later ingestion,
    file and locator. Returns the rows and how many were superseded."""
    ordered = conformed.sort(
        ["resulted_at", "ingested_at", "source_file", "source_locator"], nulls_last=False
    )
    latest = ordered.unique(subset=["result_id"], keep="last", maintain_order=True)
    return latest, conformed.height - latest.height


def index_links(
    results: pl.DataFrame, index: pl.DataFrame, crosswalk: pl.DataFrame
) -> pl.DataFrame:
    """``person_key`` and ``link_status`` of each result by the lab's rule alone: the site's
    patient index (lab patient id -> MRN) and the crosswalk's MRNs (MRN -> person).

    The rule the crosswalk links lab patient ids by (``lab_index_mrn``,
    :func:`pipelines.identity.lab_claims`); silver uses :func:`link_results`.
    """
    ids = index.rename({"lab_patient_id": "patient_id"})
    return link_through_index(
        results, ids, ["site", "patient_id"], crosswalk, not_indexed="unknown_patient"
    )


def link_results(
    results: pl.DataFrame,
    index: pl.DataFrame,
    crosswalk: pl.DataFrame,
    *,
    conflicts: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """``person_key`` and ``link_status`` (:data:`LINK_STATUSES`) of each result, as the
    crosswalk has them.

    A lab patient id the index lists and the crosswalk holds (``lab:<site>``,
    ``lab_patient_id``) is its crosswalk person, even when the index now names another MRN; one
    the crosswalk does not hold and the identity quarantine holds as undecided is linked to no
    one (``identity_conflict``); any other, and every id the index no longer lists
    (``unknown_patient``), is as :func:`index_links` has it. See
    :mod:`pipelines.crosswalk_links`.

    Args:
        results: rows with ``site`` and ``patient_id`` (the lab's patient id).
        index: the patient index rows (``site``, ``lab_patient_id``, ``mrn``).
        crosswalk: the person crosswalk.
        conflicts: the identity quarantine (``_rejects/identity/crosswalk``), or None.
    """
    return with_crosswalk(
        index_links(results, index, crosswalk),
        crosswalk,
        conflicts,
        source_system=pl.concat_str(pl.lit("lab:"), pl.col("site")),
        identifier_type="lab_patient_id",
        identifier="patient_id",
        unlisted="unknown_patient",
    )


@dataclass(frozen=True)
class SilverBuild:
    """What building the silver lab tables wrote and found."""

    results: WriteOutcome
    report: WriteOutcome
    rows: int
    superseded: int
    link_counts: dict[str, int]
    summary: pl.DataFrame
    """Per site: results, and counts by mapping and unit status (:func:`site_summary`)."""
    issues: pl.DataFrame
    """The mapping report: unmapped codes and unknown units with counts."""


def build_silver(
    lake: Lake, index: pl.DataFrame, crosswalk: pl.DataFrame, *, run_id: str
) -> SilverBuild:
    """Conform every bronze result, keep the latest per result, link it, and write
    ``silver/lab/lab_results`` (MERGEd on ``result_id``) and the mapping report (replaced).

    Results are linked by :func:`link_results`, with the identity quarantine read from the lake.

    Args:
        lake: the lake.
        index: the patient index rows (``site``, ``lab_patient_id``, ``mrn``).
        crosswalk: the person crosswalk (``identifier_type``, ``identifier``, ``person_key``).
        run_id: the Dagster run id recorded in the commits.
    """
    bronze = (
        lake.read(RESULTS_PATH)
        if lake.table(RESULTS_PATH) is not None
        else pl.DataFrame(schema=RESULT_TABLE_SCHEMA)
    )
    conformed = with_result_ids(conform_lab_results(bronze))
    latest, superseded = latest_results(conformed)
    linked = link_results(latest, index, crosswalk, conflicts=read_conflicts(lake))
    issues = mapping_report(linked)
    silver = (
        linked.rename({"patient_id": "lab_patient_id"})
        .select(list(SILVER_COLUMNS))
        .cast(SILVER_COLUMNS)
        .sort("result_id")
    )
    results = lake.merge(SILVER_PATH, silver, ["result_id"], run_id=run_id)
    report = lake.replace_table(REPORT_PATH, issues, run_id=run_id)
    counts = dict(silver.group_by("link_status").len().iter_rows())
    return SilverBuild(
        results=results,
        report=report,
        rows=silver.height,
        superseded=superseded,
        link_counts={s: counts.get(s, 0) for s in LINK_STATUSES},
        summary=site_summary(silver),
        issues=issues,
    )


def empty_index() -> pl.DataFrame:
    """A patient index without rows (a site without a lab feed)."""
    return pl.DataFrame(schema=INDEX_TABLE_COLUMNS)


def ensure_tables(lake: Lake, schemas: dict[str, dict[str, pl.DataType]], *, run_id: str) -> None:
    """Create each table that does not exist yet, empty, so that a site without a lab (or
    trial) feed still has the tables its checks and views read."""
    for path, schema in schemas.items():
        if lake.table(path) is None:
            lake.replace_table(path, pl.DataFrame(schema=schema), run_id=run_id)
