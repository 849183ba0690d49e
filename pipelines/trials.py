"""Trials silo: SDTM datasets of each study -> bronze per domain (conformed to the SDTMIG
variables, every original variable kept as JSON) -> silver per domain linked to person_key
through the enrolment map.

Landing layout (below ``landing/trials``):

* ``<STUDY>/*.xpt`` or ``*.csv``: one folder per study transfer, read together, so that
  cross-dataset conformance rules (subjects missing from DM) see the whole study;
* ``enrolment.csv``: the enrolment map (``studyid, usubjid, site, mrn``) from the trial
  management system, tying each subject to an EHR MRN and so to a person.

A study folder is read again when any of its files changed; its rows are then replaced.
"""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson
import polars as pl

from connectors.errors import ConnectorError
from connectors.sdtm import conform_domain, finding_schema, read_sdtm, variable_schema
from pipelines.crosswalk_links import read_conflicts, with_crosswalk
from pipelines.ehr import FILE_LEDGER_SCHEMA, INGEST_COLUMNS, REJECTS_SCHEMA
from pipelines.lake import Lake, WriteOutcome
from pipelines.landing import LandingFile, files_with_suffixes, landing_file
from pipelines.linking import index_rules, link_through_index
from pipelines.manifests import read_manifest

DOMAINS: tuple[str, ...] = ("dm", "ae", "lb", "vs", "ex", "ds", "cm", "mh")
"""The SDTM domains biofed stores typed, one bronze and one silver table each."""

SUFFIXES = (".xpt", ".XPT", ".csv", ".CSV")
ENROLMENT_NAME = "enrolment.csv"

FILES_PATH = "bronze/trials/files"
FINDINGS_PATH = "bronze/trials/findings"
VARIABLES_PATH = "bronze/trials/variables"
OTHER_PATH = "bronze/trials/other_domains"
REJECTS_PATH = "_rejects/trials/sdtm"
ENROLMENT_PATH = "bronze/trials/enrolment"
ENROLMENT_REJECTS_PATH = "_rejects/trials/enrolment"

_UTC = pl.Datetime("us", "UTC")
PROVENANCE: dict[str, pl.DataType] = {"source_file": pl.String(), **INGEST_COLUMNS}

ENROLMENT_COLUMNS: dict[str, pl.DataType] = {
    "studyid": pl.String(),
    "usubjid": pl.String(),
    "site": pl.String(),
    "mrn": pl.String(),
}
"""The enrolment map: which EHR MRN (at which site) each study subject is."""
ENROLMENT_TABLE_COLUMNS: dict[str, pl.DataType] = {**ENROLMENT_COLUMNS, **PROVENANCE}
ENROLMENT_KEY = ("studyid", "usubjid")

LINK_STATUSES: tuple[str, ...] = ("linked", "not_enrolled", "unknown_mrn", "identity_conflict")
"""How a subject was tied to a person: ``linked`` (the map lists the subject; the person
crosswalk's row for the study's subject gives the person, or for a subject it does not hold
yet, the map's MRN the crosswalk knows),
``not_enrolled`` (the map does not list the subject: data from a study without a map, such as
a public dataset), ``unknown_mrn`` (the map's MRN is no known person), ``identity_conflict``
(the crosswalk does not hold the subject because the identity quarantine holds it as
undecided: its enrolment rows name two people, say)."""

OTHER_COLUMNS: dict[str, pl.DataType] = {
    "domain": pl.String(),
    "usubjid": pl.String(),
    "record_json": pl.String(),
    "source_locator": pl.String(),
    "dataset": pl.String(),
    **PROVENANCE,
}
"""``bronze/trials/other_domains``: rows of domains without a typed table (TS, SUPPQUAL,
...), each whole as JSON, so nothing landed is dropped."""


FINDINGS_TABLE_SCHEMA: dict[str, pl.DataType] = {**finding_schema(), **INGEST_COLUMNS}
VARIABLES_TABLE_SCHEMA: dict[str, pl.DataType] = {**variable_schema(), **INGEST_COLUMNS}


def bronze_path(domain: str) -> str:
    return f"bronze/trials/{domain}"


def silver_path(domain: str) -> str:
    return f"silver/trials/{domain}"


def domain_key(domain: str) -> list[str]:
    """The natural key of a domain's rows: the subject, and the sequence number but in DM."""
    return ["studyid", "usubjid"] if domain == "dm" else ["studyid", "usubjid", f"{domain}seq"]


def bronze_schema(domain: str) -> dict[str, pl.DataType]:
    """The bronze table of a domain: its conformed columns and the ingest columns."""
    empty = pl.DataFrame(
        schema={"source_file": pl.String(), "source_locator": pl.String(), "dataset": pl.String()}
    )
    return {**conform_domain(empty, domain).schema, **INGEST_COLUMNS}


def silver_schema(domain: str) -> dict[str, pl.DataType]:
    """The silver table of a domain: bronze's columns but record_json, with the link."""
    bronze = {k: v for k, v in bronze_schema(domain).items() if k != "record_json"}
    return {"person_key": pl.String(), "link_status": pl.String(), **bronze}


def bronze_schemas() -> dict[str, dict[str, pl.DataType]]:
    """Every bronze table ``bronze_trials`` writes, with its schema."""
    return {
        **{bronze_path(d): bronze_schema(d) for d in DOMAINS},
        OTHER_PATH: OTHER_COLUMNS,
        FINDINGS_PATH: FINDINGS_TABLE_SCHEMA,
        VARIABLES_PATH: VARIABLES_TABLE_SCHEMA,
        FILES_PATH: FILE_LEDGER_SCHEMA,
        REJECTS_PATH: REJECTS_SCHEMA,
    }


def gone_sources(ledger: pl.DataFrame | None, studies: list["StudyFolder"]) -> set[str]:
    """Files the ledger lists that are no longer landed: a dataset removed from its study
    folder, or a whole study folder removed or renamed. Their rows leave bronze."""
    if ledger is None:
        return set()
    landed = {f.source_file for study in studies for f in study.files}
    return set(ledger.get_column("source_file").to_list()) - landed


def ledger_after(
    ledger: pl.DataFrame | None, read: pl.DataFrame, replaced: list[str]
) -> pl.DataFrame:
    """The whole ledger after a run: rows of the replaced files (read again, or gone) give
    way to the rows just read."""
    if ledger is None:
        return read
    kept = ledger.filter(~pl.col("source_file").is_in(replaced)).select(list(FILE_LEDGER_SCHEMA))
    return pl.concat([kept.cast(FILE_LEDGER_SCHEMA), read]).sort("source_file")


@dataclass(frozen=True)
class StudyFolder:
    """One landed study transfer: its folder and dataset files."""

    name: str
    files: list[LandingFile]


def scan_landing(folder: Path) -> list[StudyFolder]:
    """The study folders below ``landing/trials`` with their dataset files (hash, size,
    time), sorted; a folder without datasets is not listed."""
    studies = []
    if not folder.is_dir():
        return studies
    for study in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        paths = [p for p in files_with_suffixes(study, SUFFIXES) if p.parent == study]
        if paths:
            studies.append(StudyFolder(study.name, [landing_file(p, folder) for p in paths]))
    return studies


def changed_studies(studies: list[StudyFolder], ledger: pl.DataFrame | None) -> list[StudyFolder]:
    """Study folders with a file whose content (path and sha256) the ledger does not hold,
    or whose ledger lists a file that is gone."""
    if ledger is None:
        return studies
    known = set(ledger.select("source_file", "source_sha256").iter_rows())
    listed = set(ledger.get_column("source_file").to_list())
    changed = []
    for study in studies:
        current = {(f.source_file, f.sha256) for f in study.files}
        names = {f.source_file for f in study.files}
        gone = {s for s in listed if s.startswith(f"{study.name}/") and s not in names}
        if not current <= known or gone:
            changed.append(study)
    return changed


@dataclass
class BronzeRead:
    """What reading changed study folders produced, per bronze table."""

    domains: dict[str, pl.DataFrame]
    other: pl.DataFrame
    findings: pl.DataFrame
    variables: pl.DataFrame
    rejects: pl.DataFrame
    ledger: pl.DataFrame
    changed_sources: list[str]


def read_bronze(studies: list[StudyFolder], *, ingested_at: datetime) -> BronzeRead:
    """Read each study folder whole (quarantine mode) into bronze rows with provenance.

    Args:
        studies: the changed study folders.
        ingested_at: the time recorded on every row.
    """
    parts: dict[str, list[pl.DataFrame]] = {d: [] for d in DOMAINS}
    other, findings, variables, rejects, ledger = [], [], [], [], []
    for study in studies:
        by_name = {f.path.name: f for f in study.files}
        hashes = {f.source_file: f.sha256 for f in study.files}
        try:
            read = read_sdtm(study.files[0].path.parent, on_error="quarantine")
        except ConnectorError as exc:
            read = None
            failure = str(exc)
        rename = _source_names(by_name)
        stamp = [
            pl.col("source_file").replace_strict(hashes, default=None).alias("source_sha256"),
            pl.lit(ingested_at).cast(_UTC).alias("ingested_at"),
        ]
        if read is None:
            study_rejects = pl.DataFrame(
                {
                    "source": [f.source_file for f in study.files],
                    "locator": ["file"] * len(study.files),
                    "reason": [failure] * len(study.files),
                }
            )
            tables: dict[str, pl.DataFrame] = {}
        else:
            tables = {
                k: v.with_columns(rename("source_file")) if "source_file" in v.columns else v
                for k, v in read.tables.items()
            }
            study_rejects = read.rejects.with_columns(rename("source"))
        rejects.append(
            study_rejects.with_columns(
                pl.col("source").replace_strict(hashes, default=None).alias("source_sha256"),
                pl.lit(ingested_at).cast(_UTC).alias("ingested_at"),
            ).select(list(REJECTS_SCHEMA))
        )
        for name, frame in tables.items():
            if name in ("datasets", "variables", "findings"):
                continue
            if name in DOMAINS:
                parts[name].append(conform_domain(frame, name).with_columns(stamp))
            else:
                other.append(_other_rows(frame, name).with_columns(stamp))
        if "findings" in tables:
            findings.append(tables["findings"].with_columns(stamp))
        if "variables" in tables:
            variables.append(tables["variables"].with_columns(stamp))
        rows = _rows_per_file(tables)
        rejected = set(study_rejects.get_column("source").to_list())
        for landed in study.files:
            ledger.append(
                {
                    "source_file": landed.source_file,
                    "source_sha256": landed.sha256,
                    "bytes": landed.bytes,
                    "records": rows.get(landed.source_file, 0),
                    "rejects": int(landed.source_file in rejected),
                    "ingested_at": ingested_at,
                    "source_modified_at": landed.modified_at,
                }
            )
    return BronzeRead(
        domains={d: _concat(parts[d], bronze_schema(d)) for d in DOMAINS},
        other=_concat(other, OTHER_COLUMNS),
        findings=_concat(findings, FINDINGS_TABLE_SCHEMA),
        variables=_concat(variables, VARIABLES_TABLE_SCHEMA),
        rejects=_concat(rejects, REJECTS_SCHEMA),
        ledger=pl.DataFrame(ledger, schema=FILE_LEDGER_SCHEMA),
        changed_sources=[f.source_file for s in studies for f in s.files],
    )


def _source_names(by_name: dict[str, LandingFile]):
    """An expression renaming a connector's source file (a path) to the landing-relative
    name the ledger and provenance columns use."""
    mapping = {}
    for name, landed in by_name.items():
        mapping[name] = landed.source_file
        mapping[str(landed.path)] = landed.source_file
        mapping[str(landed.path.resolve())] = landed.source_file

    def rename(column: str) -> pl.Expr:
        return pl.col(column).replace(mapping).alias(column)

    return rename


def _other_rows(frame: pl.DataFrame, domain: str) -> pl.DataFrame:
    variables = [
        c for c in frame.columns if c not in ("source_file", "source_locator", "dataset")
    ]
    records = [
        orjson.dumps({k: v for k, v in row.items() if v is not None}).decode()
        for row in frame.select(variables).iter_rows(named=True)
    ]
    usubjid = (
        frame.get_column("USUBJID").cast(pl.String)
        if "USUBJID" in frame.columns
        else pl.Series([None] * frame.height, dtype=pl.String)
    )
    return pl.DataFrame(
        {
            "domain": [domain.upper()] * frame.height,
            "usubjid": usubjid,
            "record_json": records,
            "source_locator": frame.get_column("source_locator"),
            "dataset": frame.get_column("dataset"),
            "source_file": frame.get_column("source_file"),
        },
        schema={k: OTHER_COLUMNS[k] for k in (
            "domain", "usubjid", "record_json", "source_locator", "dataset", "source_file"
        )},
    )


def _rows_per_file(tables: dict[str, pl.DataFrame]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, frame in tables.items():
        if name in ("datasets", "variables", "findings") or "source_file" not in frame.columns:
            continue
        for source, n in frame.group_by("source_file").len().iter_rows():
            counts[source] = counts.get(source, 0) + n
    return counts


def _concat(frames: list[pl.DataFrame], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    if not frames:
        return pl.DataFrame(schema=schema)
    return pl.concat([f.select(list(schema)).cast(schema) for f in frames])


def read_enrolment(path: Path, *, source_file: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The enrolment map (``studyid, usubjid, site, mrn``), bad rows quarantined by line.

    A subject listed for two MRNs is quarantined on every line that lists it: which person
    it is cannot be decided. A line that repeats an earlier one exactly is set aside.

    Raises:
        ManifestError: when the file is not a CSV with the map's columns.
    """
    return read_manifest(
        path,
        source_file=source_file,
        columns=ENROLMENT_COLUMNS,
        parsed={},
        rules=index_rules(
            [c for c in ENROLMENT_COLUMNS if c != "site"], ENROLMENT_KEY, "subject"
        ),
        what="enrolment map",
    )


def enrolment_links(
    frame: pl.DataFrame, enrolment: pl.DataFrame, crosswalk: pl.DataFrame
) -> pl.DataFrame:
    """``person_key`` and ``link_status`` of each row by the trials' rule alone: the enrolment
    map (study and subject -> MRN) and the crosswalk's MRNs (MRN -> person).

    The rule the crosswalk links subjects by (``enrolment_mrn``,
    :func:`pipelines.identity.enrolment_claims`); silver uses :func:`link_subjects`.
    """
    return link_through_index(
        frame, enrolment, ENROLMENT_KEY, crosswalk, not_indexed="not_enrolled"
    )


def link_subjects(
    frame: pl.DataFrame,
    enrolment: pl.DataFrame,
    crosswalk: pl.DataFrame,
    *,
    conflicts: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """``person_key`` and ``link_status`` (:data:`LINK_STATUSES`) of each row, as the
    crosswalk has them.

    A subject the enrolment map lists and the crosswalk holds (``trials:<studyid>``,
    ``usubjid``) is its crosswalk person, even when the map now names another MRN; one the
    crosswalk does not hold and the identity quarantine holds as undecided is linked to no one
    (``identity_conflict``); any other, and every subject the map no longer lists
    (``not_enrolled``), is as :func:`enrolment_links` has it. See
    :mod:`pipelines.crosswalk_links`.

    Args:
        frame: rows with ``studyid`` and ``usubjid``.
        enrolment: the enrolment map (``studyid``, ``usubjid``, ``mrn``).
        crosswalk: the person crosswalk.
        conflicts: the identity quarantine (``_rejects/identity/crosswalk``), or None.
    """
    return with_crosswalk(
        enrolment_links(frame, enrolment, crosswalk),
        crosswalk,
        conflicts,
        source_system=pl.concat_str(pl.lit("trials:"), pl.col("studyid")),
        identifier_type="usubjid",
        identifier="usubjid",
        unlisted="not_enrolled",
    )


@dataclass(frozen=True)
class DomainBuild:
    """What building one silver domain table wrote and found."""

    outcome: WriteOutcome
    rows: int
    superseded: int
    without_key: int
    link_counts: dict[str, int]


def build_silver_domain(
    lake: Lake,
    domain: str,
    enrolment: pl.DataFrame,
    crosswalk: pl.DataFrame,
    *,
    run_id: str,
) -> DomainBuild:
    """One row per key of the domain (a later ingestion, then the later file and row wins),
    linked to its person (:func:`link_subjects`, with the identity quarantine read from the
    lake), MERGEd into ``silver/trials/<domain>``.

    Rows whose key is incomplete (no subject or no sequence number, which the conformance
    findings report) cannot be told apart: they stay in bronze and are counted here.
    """
    path = bronze_path(domain)
    bronze = (
        lake.read(path)
        if lake.table(path) is not None
        else pl.DataFrame(schema=bronze_schema(domain))
    )
    keys = domain_key(domain)
    complete = bronze.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in keys))
    latest = complete.sort("ingested_at", "source_file", "source_locator").unique(
        subset=keys, keep="last", maintain_order=True
    )
    schema = silver_schema(domain)
    silver = (
        link_subjects(
            latest.drop("record_json"), enrolment, crosswalk, conflicts=read_conflicts(lake)
        )
        .select(list(schema))
        .cast(schema)
        .sort(keys)
    )
    outcome = lake.merge(silver_path(domain), silver, keys, run_id=run_id)
    counts = dict(silver.group_by("link_status").len().iter_rows())
    return DomainBuild(
        outcome=outcome,
        rows=silver.height,
        superseded=complete.height - latest.height,
        without_key=bronze.height - complete.height,
        link_counts={s: counts.get(s, 0) for s in LINK_STATUSES},
    )


def empty_enrolment() -> pl.DataFrame:
    """An enrolment map without rows (no study with a map has landed)."""
    return pl.DataFrame(schema=ENROLMENT_TABLE_COLUMNS)
