"""Plain, Dagster-free steps of the imaging silo: landed DICOM batches to bronze, bronze to
silver instances, series and studies linked to people and EHR encounters.

A PACS export lands as batches: each direct child of ``landing/imaging`` that is a folder or
a zip archive. The RIS's order export (``orders.csv``) says which patient (MRN) and which
EHR encounter each accession number belongs to.
"""

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa

from connectors.dicom import instance_schema, iter_dicom_batches
from connectors.result import empty_rejects
from mcp_catalog.governance.dicom_deid import excluded_expr
from mcp_catalog.governance.imaging import NON_PRIMARY_MODALITIES
from pipelines.crosswalk_links import (
    CROSSWALK_PERSON,
    IDENTITY_CONFLICT,
    IN_CONFLICT,
    crosswalk_identity,
    read_conflicts,
)
from pipelines.ehr import INGEST_COLUMNS, REJECTS_SCHEMA
from pipelines.lake import Lake, WriteOutcome
from pipelines.manifests import blank, read_manifest, unparsed

ORDERS_NAME = "orders.csv"

BATCHES_PATH = "bronze/imaging/batches"
INSTANCES_PATH = "bronze/imaging/instances"
ORDERS_PATH = "bronze/imaging/orders"
REJECTS_PATH = "_rejects/imaging/dicom"
ORDERS_REJECTS_PATH = "_rejects/imaging/orders"
SILVER_INSTANCES_PATH = "silver/imaging/dicom_instances"
SILVER_SERIES_PATH = "silver/imaging/dicom_series"
SILVER_STUDIES_PATH = "silver/imaging/dicom_studies"
ENCOUNTERS_PATH = "silver/ehr/encounters"

_UTC = pl.Datetime("us", "UTC")

INSTANCE_TABLE_COLUMNS: dict[str, pl.DataType] = {
    **instance_schema(),
    "batch": pl.String(),
    "ingested_at": _UTC,
}
"""``bronze/imaging/instances``: the connector's columns, the batch and when it was read."""

BATCH_LEDGER_COLUMNS: dict[str, pl.DataType] = {
    "batch": pl.String(),
    "stamp": pl.String(),
    "content_sha256": pl.String(),
    "files": pl.Int64(),
    "bytes": pl.Int64(),
    "instances": pl.Int64(),
    "rejected": pl.Int64(),
    "source_modified_at": _UTC,
    "ingested_at": _UTC,
}
"""``bronze/imaging/batches``: one row per landed batch. ``stamp`` digests the names, sizes
and modification times of its files (cheap to recompute: an unchanged stamp is not read
again); ``content_sha256`` digests every file's sha256."""

ORDER_COLUMNS: dict[str, pl.DataType] = {
    "accession_number": pl.String(),
    "patient_id": pl.String(),
    "mrn": pl.String(),
    "encounter_id": pl.String(),
    "modality": pl.String(),
    "procedure_code": pl.String(),
    "procedure_display": pl.String(),
    "ordered_at": _UTC,
}
"""The RIS order export: which patient and EHR encounter each accession number is."""

ORDERS_TABLE_COLUMNS: dict[str, pl.DataType] = {
    **ORDER_COLUMNS,
    "source_file": pl.String(),
    **INGEST_COLUMNS,
}
"""``bronze/imaging/orders``: the export's rows with their provenance."""

LINK_STATUSES: tuple[str, ...] = (
    "linked",
    "no_order",
    "unknown_patient",
    "patient_mismatch",
    "identity_conflict",
)
"""How an instance was tied to a person: ``linked`` (its accession is an order of the same
PatientID; the person is the crosswalk's for the PatientID, or for a PatientID it does not hold
yet, the order MRN's), ``no_order`` (no order has its accession; the person is the
crosswalk's for the PatientID its other orders name, or the one those orders name, and no
encounter is known), ``unknown_patient`` (no order names its PatientID, or its orders name no
known MRN and the crosswalk does not hold it),
``patient_mismatch`` (its accession is an order of another PatientID: which person it is
cannot be decided), ``identity_conflict`` (the crosswalk does not hold its PatientID because
the identity quarantine holds it as undecided: its orders name two people, say)."""

SILVER_ONLY = ("person_key", "encounter_id", "link_status")


def scan_batches(folder: Path) -> list[Path]:
    """The batches of the imaging landing folder: its direct child folders and zip archives
    (hidden entries skipped), sorted by name. ``orders.csv`` is not a batch."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if not p.name.startswith(".")
        and (p.is_dir() or (p.is_file() and p.name.lower().endswith(".zip")))
    )


@dataclass(frozen=True)
class BatchStamp:
    """What a batch looks like on disk now, without reading its content."""

    stamp: str
    files: int
    bytes: int
    modified_at: datetime


def _batch_files(folder: str, prefix: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """A folder's files below it (hidden names skipped) with their stat, as relative names.

    Strings and one scandir per folder: a PACS export can hold thousands of one-file folders,
    and this runs beside the reader's workers on the same cores.
    """
    with os.scandir(folder) as entries:
        listed = sorted(entries, key=lambda entry: entry.name)
    for entry in listed:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _batch_files(entry.path, f"{prefix}{entry.name}/")
        elif entry.is_file():
            yield prefix + entry.name, entry.stat()


def batch_stamp(path: Path) -> BatchStamp:
    """Names, sizes and modification times of a batch's files, digested.

    Raises:
        FileNotFoundError: when the batch is not there.
    """
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    files = [(path.name, path.stat())] if path.is_file() else list(_batch_files(str(path)))
    digest = hashlib.sha256()
    for name, stat in files:
        digest.update(f"{name}\x00{stat.st_size}\x00{stat.st_mtime_ns}\n".encode())
    size = sum(stat.st_size for _, stat in files)
    newest = max((stat.st_mtime_ns for _, stat in files), default=0)
    return BatchStamp(
        digest.hexdigest(), len(files), size, datetime.fromtimestamp(newest / 1e9, tz=UTC)
    )


def already_ingested(lake: Lake, batch: str, stamp: BatchStamp) -> bool:
    """True when the ledger holds this batch with the same files, sizes and times."""
    if lake.table(BATCHES_PATH) is None:
        return False
    row = lake.read(BATCHES_PATH).filter(pl.col("batch") == batch)
    return row.height == 1 and row.item(0, "stamp") == stamp.stamp


@dataclass(frozen=True)
class BatchIngest:
    """What reading one batch into bronze wrote."""

    instances: WriteOutcome
    rejects: WriteOutcome
    ledger: WriteOutcome
    files: int
    instances_read: int
    rejected: int


def ingest_batch(
    lake: Lake,
    path: Path,
    batch: str,
    *,
    run_id: str,
    ingested_at: datetime,
    workers: int | None = None,
) -> BatchIngest:
    """Read one landed batch (a folder or a zip of DICOM files) into bronze.

    Instances stream into one commit that replaces the batch's earlier rows; a read that
    fails commits nothing. Files that are not readable DICOM are quarantined with a reason.

    Args:
        lake: the lake.
        path: the batch folder or zip.
        batch: the batch name (the folder's or zip's name below the landing folder).
        run_id: the Dagster run id recorded in every commit.
        ingested_at: the time recorded on every row.
        workers: reader processes (the connector's default when None).

    Returns:
        The outcome of every write and the counts read.

    Raises:
        ConnectorError: when the batch cannot be read at all.
        FileNotFoundError: when the batch is not there.
    """
    stamp = batch_stamp(path)
    schema = pl.DataFrame(schema=INSTANCE_TABLE_COLUMNS).to_arrow().schema
    rejects: list[pl.DataFrame] = []
    hashes: list[pl.DataFrame] = []
    files = 0
    # A folder's files are named below the folder; a zip's members already carry its name.
    prefix = "" if path.is_file() else f"{batch}/"

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal files
        for part in iter_dicom_batches(path, on_error="quarantine", workers=workers):
            files += part.files
            if part.rejects.height:
                rejects.append(
                    part.rejects.with_columns((pl.lit(prefix) + pl.col("source")).alias("source"))
                )
            if not part.instances.height:
                continue
            frame = part.instances.with_columns(
                (pl.lit(prefix) + pl.col("source_file")).alias("source_file"),
                pl.lit(batch).alias("batch"),
                pl.lit(ingested_at, _UTC).alias("ingested_at"),
            ).select(list(INSTANCE_TABLE_COLUMNS))
            hashes.append(frame.select("source_file", "sha256"))
            yield from frame.to_arrow().cast(schema).to_batches()

    outcome = lake.stream_source(
        INSTANCES_PATH, batches(), schema, batch, run_id=run_id, source_column="batch"
    )
    quarantined = pl.concat(rejects) if rejects else empty_rejects()
    reject_rows = quarantined.with_columns(
        # Set aside files carry no content hash (the reader hashes what it parses); the
        # batch column, not a hash, says which landing they came from.
        pl.lit(None, pl.String()).alias("source_sha256"),
        pl.lit(ingested_at, _UTC).alias("ingested_at"),
        pl.lit(batch).alias("batch"),
    ).select(*REJECTS_SCHEMA, "batch")
    reject_outcome = lake.replace_sources(
        REJECTS_PATH, reject_rows, [batch], run_id=run_id, source_column="batch"
    )
    content = hashlib.sha256()
    if hashes:
        for name, sha in pl.concat(hashes).sort("source_file").iter_rows():
            content.update(f"{name}\x00{sha}\n".encode())
    ledger_row = pl.DataFrame(
        [
            {
                "batch": batch,
                "stamp": stamp.stamp,
                "content_sha256": content.hexdigest(),
                "files": files,
                "bytes": stamp.bytes,
                "instances": outcome.rows_written,
                "rejected": reject_rows.height,
                "source_modified_at": stamp.modified_at,
                "ingested_at": ingested_at,
            }
        ],
        schema=BATCH_LEDGER_COLUMNS,
    )
    ledger = lake.merge(BATCHES_PATH, ledger_row, ["batch"], run_id=run_id, delete_missing=False)
    return BatchIngest(
        outcome, reject_outcome, ledger, files, outcome.rows_written, reject_rows.height
    )


def read_orders(path: Path, *, source_file: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The RIS order export's rows, and its quarantined rows.

    A row without an accession number, PatientID or MRN, with an order time that is not ISO 8601
    with an offset, or whose accession number is listed more than once (which patient the
    study is cannot be decided) is quarantined with its line number.

    Args:
        path: the CSV file.
        source_file: the name recorded in the reject rows.

    Returns:
        ``(rows, rejects)``: rows with :data:`ORDER_COLUMNS`, rejects with the shared reject
        columns.

    Raises:
        ManifestError: when the file is not a CSV with the export's columns.
    """
    ordered_at = (
        pl.col("ordered_at")
        .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_unit="us")
        .dt.convert_time_zone("UTC")
    )
    return read_manifest(
        path,
        source_file=source_file,
        columns=ORDER_COLUMNS,
        parsed={"ordered_at": ordered_at},
        rules=(
            (blank("accession_number"), "the accession number is empty"),
            (blank("patient_id"), "the PatientID is empty"),
            (blank("mrn"), "the MRN is empty, so the study cannot be linked to a person"),
            (
                unparsed("ordered_at"),
                "ordered_at is not an ISO 8601 date-time with an offset "
                "(YYYY-MM-DDThh:mm:ss+hh:mm)",
            ),
            (
                pl.col("accession_number").is_duplicated(),
                "the accession number is listed more than once; keep one row per order",
            ),
        ),
        what="RIS order export",
    )


def _order_rule(
    instances: pl.DataFrame, orders: pl.DataFrame, crosswalk: pl.DataFrame
) -> pl.DataFrame:
    """Instances with the RIS rule's ``link_status`` and ``person_key``, whether an order has
    their accession (``_has_order``) and its encounter (``_order_encounter``), and whether any
    order names their PatientID (``_listed``)."""
    mrns = crosswalk.filter(pl.col("identifier_type") == "mrn").select(
        pl.col("identifier").alias("mrn"), "person_key"
    )
    order_people = orders.join(mrns, on="mrn", how="left")
    by_accession = order_people.select(
        "accession_number",
        pl.col("patient_id").alias("_order_patient"),
        pl.col("person_key").alias("_order_person"),
        pl.col("encounter_id").alias("_order_encounter"),
    )
    # A PatientID whose orders name one known person; PatientIDs naming two are left unlinked.
    by_patient = (
        order_people.filter(pl.col("person_key").is_not_null())
        .group_by("patient_id")
        .agg(pl.col("person_key").unique().alias("_people"))
        .filter(pl.col("_people").list.len() == 1)
        .select("patient_id", pl.col("_people").list.first().alias("_patient_person"))
    )
    listed = orders.select("patient_id").unique().with_columns(pl.lit(True).alias("_listed"))
    joined = (
        instances.join(by_accession, on="accession_number", how="left", maintain_order="left")
        .join(by_patient, on="patient_id", how="left", maintain_order="left")
        .join(listed, on="patient_id", how="left", maintain_order="left")
    )
    has_order = pl.col("_order_patient").is_not_null()
    same_patient = pl.col("_order_patient") == pl.col("patient_id")
    status = (
        pl.when(has_order & ~same_patient)
        .then(pl.lit("patient_mismatch"))
        .when(has_order & pl.col("_order_person").is_not_null())
        .then(pl.lit("linked"))
        .when(~has_order & pl.col("_patient_person").is_not_null())
        .then(pl.lit("no_order"))
        .otherwise(pl.lit("unknown_patient"))
    )
    return (
        joined.with_columns(
            status.alias("link_status"),
            has_order.alias("_has_order"),
            pl.col("_listed").fill_null(False),
        )
        .with_columns(
            pl.when(pl.col("link_status") == "linked")
            .then(pl.col("_order_person"))
            .when(pl.col("link_status") == "no_order")
            .then(pl.col("_patient_person"))
            .alias("person_key"),
        )
        .select(
            *instances.columns,
            "person_key",
            "link_status",
            "_has_order",
            "_order_encounter",
            "_listed",
        )
    )


def order_links(
    instances: pl.DataFrame, orders: pl.DataFrame, crosswalk: pl.DataFrame
) -> pl.DataFrame:
    """Each instance with ``person_key`` and ``link_status`` by the RIS rule alone: the order
    with its accession (for the same PatientID) names the MRN, else the PatientID's other
    orders name one person; the crosswalk's MRNs give the person.

    The rule the crosswalk links DICOM PatientIDs by (``ris_order_mrn``,
    :func:`pipelines.identity.order_claims`); silver uses :func:`link_instances`.
    """
    return _order_rule(instances, orders, crosswalk).select(
        *instances.columns, "person_key", "link_status"
    )


def link_instances(
    instances: pl.DataFrame,
    orders: pl.DataFrame,
    crosswalk: pl.DataFrame,
    encounters: pl.DataFrame | None,
    *,
    conflicts: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Each instance with ``person_key``, ``encounter_id`` and ``link_status``, as the
    crosswalk has them.

    The order with the instance's accession number names the patient (MRN) and the EHR
    encounter; the order must be for the same PatientID. Without an order, the PatientID's
    other orders still name the person, but no encounter (:func:`order_links`). A PatientID
    the orders name and the crosswalk holds (``imaging``, ``dicom_patient_id``) is its
    crosswalk person instead, even when its orders now name another MRN; one the crosswalk does
    not hold and the identity quarantine holds as undecided is linked to no one
    (``identity_conflict``). A PatientID no order names any more, and an instance whose order
    is another PatientID's, keep the RIS rule's status. An encounter is kept only when the EHR
    has it for the same person. See :data:`LINK_STATUSES` and :mod:`pipelines.crosswalk_links`.

    Args:
        instances: one row per instance with ``patient_id`` and ``accession_number``.
        orders: the RIS orders (``accession_number``, ``patient_id``, ``mrn``,
            ``encounter_id``).
        crosswalk: the person crosswalk (``identifier_type``, ``identifier``, ``person_key``;
            ``source_system`` for its PatientID rows).
        encounters: silver EHR encounters (``id``, ``person_key``), or None before the EHR
            feed exists.
        conflicts: the identity quarantine (``_rejects/identity/crosswalk``), or None.
    """
    ruled = crosswalk_identity(
        _order_rule(instances, orders, crosswalk),
        crosswalk,
        conflicts,
        source_system=pl.lit("imaging"),
        identifier_type="dicom_patient_id",
        identifier="patient_id",
    )
    status, person = pl.col("link_status"), pl.col(CROSSWALK_PERSON)
    # The crosswalk speaks for PatientIDs the orders still name; an instance whose order is
    # another PatientID's stays undecided.
    vouched = pl.col("_listed") & (status != "patient_mismatch")
    settled = ruled.with_columns(
        pl.when(vouched & person.is_not_null())
        .then(pl.when(pl.col("_has_order")).then(pl.lit("linked")).otherwise(pl.lit("no_order")))
        .when(vouched & pl.col(IN_CONFLICT))
        .then(pl.lit(IDENTITY_CONFLICT))
        .otherwise(status)
        .alias("link_status"),
        pl.when(vouched).then(person).alias(CROSSWALK_PERSON),
    )
    linked = settled.with_columns(
        pl.when(status.is_in(["linked", "no_order"]))
        .then(pl.coalesce(person, pl.col("person_key")))
        .alias("person_key"),
        pl.when(status == "linked").then(pl.col("_order_encounter")).alias("_encounter"),
    )
    if encounters is None:
        known = pl.DataFrame(schema={"_encounter": pl.String(), "_encounter_person": pl.String()})
    else:
        known = encounters.select(
            pl.col("id").alias("_encounter"), pl.col("person_key").alias("_encounter_person")
        )
    linked = linked.join(known, on="_encounter", how="left", maintain_order="left")
    return linked.with_columns(
        pl.when(pl.col("_encounter_person") == pl.col("person_key"))
        .then(pl.col("_encounter"))
        .alias("encounter_id")
    ).select(*instances.columns, *SILVER_ONLY)


def latest_instances(bronze: pl.DataFrame) -> pl.DataFrame:
    """One row per SOP Instance UID: a later ingestion wins, then the later batch and file."""
    return bronze.sort("ingested_at", "batch", "source_file").unique(
        subset=["sop_instance_uid"], keep="last", maintain_order=True
    )


def _most_common(column: str) -> pl.Expr:
    """The most frequent non-null value (ties: the smallest), or null."""
    values = pl.col(column).drop_nulls()
    return (
        pl.when(values.len() > 0)
        .then(values.sort().mode().sort().first())
        .otherwise(pl.lit(None, pl.String()))
    )


def series_table(instances: pl.DataFrame) -> pl.DataFrame:
    """``silver/imaging/dicom_series``: one row per series of the silver instances."""
    excluded = excluded_expr()
    modalities = pl.col("modality").drop_nulls().unique().sort()
    return (
        instances.group_by("series_instance_uid")
        .agg(
            pl.col("study_instance_uid").sort().first(),
            pl.col("person_key").drop_nulls().sort().first(),
            pl.when(modalities.len() == 1).then(modalities.first()).alias("modality"),
            modalities.alias("modalities"),
            modalities.len().cast(pl.Int64()).alias("n_modalities"),
            _most_common("body_part_examined").alias("body_part_examined"),
            _most_common("laterality").alias("laterality"),
            pl.col("series_number").drop_nulls().min().alias("series_number"),
            _most_common("series_description").alias("series_description"),
            pl.col("series_date").drop_nulls().min().alias("series_date"),
            _most_common("manufacturer").alias("manufacturer"),
            _most_common("manufacturer_model_name").alias("manufacturer_model_name"),
            _most_common("sop_class_uid").alias("sop_class_uid"),
            _most_common("sop_class_name").alias("sop_class_name"),
            pl.col("rows").drop_nulls().max().alias("rows"),
            pl.col("columns").drop_nulls().max().alias("columns"),
            pl.col("pixel_spacing").drop_nulls().first().alias("pixel_spacing"),
            pl.col("slice_thickness").drop_nulls().median().alias("slice_thickness"),
            _most_common("contrast_bolus_agent").alias("contrast_bolus_agent"),
            pl.len().cast(pl.Int64()).alias("n_instances"),
            pl.col("number_of_frames").fill_null(1).sum().cast(pl.Int64()).alias("n_frames"),
            (pl.col("burned_in_annotation") == "YES").sum().cast(pl.Int64()).alias("n_burned_in"),
            excluded.sum().cast(pl.Int64()).alias("n_excluded"),
            pl.col("has_pixels").any().alias("has_pixels"),
        )
        .sort("series_instance_uid")
    )


def _primary_modality() -> pl.Expr:
    images = pl.col("modality").filter(~pl.col("modality").is_in(NON_PRIMARY_MODALITIES))
    image_mode = images.drop_nulls().sort().mode().sort().first()
    any_mode = pl.col("modality").drop_nulls().sort().mode().sort().first()
    return (
        pl.when(images.drop_nulls().len() > 0)
        .then(image_mode)
        .otherwise(any_mode)
        .alias("primary_modality")
    )


def studies_table(instances: pl.DataFrame) -> pl.DataFrame:
    """``silver/imaging/dicom_studies``: one row per study of the silver instances."""
    return (
        instances.group_by("study_instance_uid")
        .agg(
            pl.col("person_key").drop_nulls().sort().first(),
            pl.col("encounter_id").drop_nulls().sort().first(),
            _most_common("link_status").alias("link_status"),
            _most_common("patient_id").alias("patient_id"),
            _most_common("accession_number").alias("accession_number"),
            pl.col("study_date").drop_nulls().min().alias("study_date"),
            _most_common("study_time").alias("study_time"),
            _most_common("study_description").alias("study_description"),
            pl.col("modality").drop_nulls().unique().sort().alias("modalities"),
            _primary_modality(),
            _most_common("body_part_examined").alias("body_part_examined"),
            pl.col("series_instance_uid").n_unique().cast(pl.Int64()).alias("n_series"),
            pl.len().cast(pl.Int64()).alias("n_instances"),
            pl.col("patient_id").drop_nulls().n_unique().cast(pl.Int64()).alias("n_patient_ids"),
            pl.col("person_key").drop_nulls().n_unique().cast(pl.Int64()).alias("n_persons"),
        )
        .sort("study_instance_uid")
    )


@dataclass(frozen=True)
class SilverBuild:
    """What rebuilding the imaging silver tables did."""

    instances: WriteOutcome
    series: WriteOutcome
    studies: WriteOutcome
    instance_rows: int
    duplicates: int
    status_counts: dict[str, int]


def build_silver(lake: Lake, crosswalk: pl.DataFrame, *, run_id: str) -> SilverBuild:
    """Rebuild the silver instances, series and studies from every ingested batch.

    Every table is MERGEd on its key against the full current state, so a rerun on unchanged
    bronze, orders and crosswalk commits nothing, and instances of a withdrawn batch leave.
    Before any batch is ingested (a site without an imaging feed) the tables are empty.
    Instances are linked by :func:`link_instances`, with the identity quarantine read from the
    lake.

    Args:
        lake: the lake.
        crosswalk: the person crosswalk (``identifier_type``, ``identifier``, ``person_key``).
        run_id: the Dagster run id recorded in every commit.

    Returns:
        The outcome of every write, with link counts.
    """
    bronze = (
        lake.read(INSTANCES_PATH)
        if lake.table(INSTANCES_PATH) is not None
        else pl.DataFrame(schema=INSTANCE_TABLE_COLUMNS)
    )
    latest = latest_instances(bronze).drop("ingested_at")
    orders = (
        lake.read(ORDERS_PATH)
        if lake.table(ORDERS_PATH) is not None
        else pl.DataFrame(schema=ORDERS_TABLE_COLUMNS)
    )
    encounters = lake.read(ENCOUNTERS_PATH) if lake.table(ENCOUNTERS_PATH) is not None else None
    instances = link_instances(
        latest, orders, crosswalk, encounters, conflicts=read_conflicts(lake)
    ).sort("sop_instance_uid")
    series = series_table(instances)
    studies = studies_table(instances)
    counts = dict(instances.group_by("link_status").len().iter_rows())
    return SilverBuild(
        lake.merge(SILVER_INSTANCES_PATH, instances, ["sop_instance_uid"], run_id=run_id),
        lake.merge(SILVER_SERIES_PATH, series, ["series_instance_uid"], run_id=run_id),
        lake.merge(SILVER_STUDIES_PATH, studies, ["study_instance_uid"], run_id=run_id),
        instances.height,
        bronze.height - latest.height,
        {status: int(counts.get(status, 0)) for status in LINK_STATUSES},
    )
