"""Imaging (DICOM) suites: instances as read, RIS orders, the batch ledger, the silver
instances, series and studies, and the research views.

Severities follow the genomics suites. Keys, UID syntax (PS3.5 §9.1), counts, linkage rules
and privacy are errors. A modality outside the DICOM defined terms is a warning in bronze
(bronze keeps what the file says) and an error from silver on, where it feeds the research
views' modality filter. Dates in the future, reader warnings and an instance received twice
are warnings.

The issue's identity rules are errors in silver: a series has one modality
(``dicom_series.n_modalities`` is 1), and a StudyInstanceUID belongs to one patient
(``dicom_studies.n_patient_ids`` is 1 and ``n_persons`` at most 1): a study UID shared by two
patients would file one patient's images under the other's study.

Instance columns come from the DICOM connector's schema (``connectors.dicom.schema``). The
pipeline's imaging tables and the research views were written alongside these suites, so
their columns are restated here from the imaging contract (``quality`` may not import
``pipelines`` or ``mcp_catalog``); a test holds the views' equal to ``IMAGING_VIEWS``.

The research views' ``header_json`` is checked in polars against the PS3.15 Basic Profile of
:mod:`quality.dicom_profile` (see :data:`NO_VALUE_ACTIONS`), and every UID the views show is a
``2.25.`` UID that is none of the silver originals. Only booleans reach Great Expectations.
"""

import json
import re
from collections.abc import Callable, Iterable, Mapping

import polars as pl

from connectors.dicom.schema import INSTANCE_COLUMNS
from quality.dicom_profile import profile_action
from quality.results import Severity
from quality.suites._checks import (
    FHIR_ID,
    SHA256_HEX,
    derived_true,
    exact_columns,
    in_set,
    matches,
    not_null,
    references,
    sha256_hex,
    unique,
)
from quality.suites._model import Check, DeriveContext, Suite
from quality.suites.bronze import PERSON_KEY
from quality.suites.genomics import EHR_MRN, _at_most, _on_contract_dtypes, _typed
from quality.suites.gold import AUDIENCE, GoldView, _privacy, _pseudonym_format
from quality.valuesets import MODALITY

BRONZE = "bronze/imaging"
SILVER = "silver/imaging"
INSTANCES = f"{BRONZE}/instances"
ORDERS = f"{BRONZE}/orders"
BATCHES = f"{BRONZE}/batches"
SILVER_INSTANCES = f"{SILVER}/dicom_instances"
SILVER_SERIES = f"{SILVER}/dicom_series"
SILVER_STUDIES = f"{SILVER}/dicom_studies"
EHR_ENCOUNTERS = "silver/ehr/encounters"
GOLD_PATIENTS = f"gold/{AUDIENCE}/patients"
GOLD_ENCOUNTERS = f"gold/{AUDIENCE}/encounters"
GOLD_STUDIES = f"gold/{AUDIENCE}/imaging_studies"
GOLD_SERIES = f"gold/{AUDIENCE}/imaging_series"
GOLD_INSTANCES = f"gold/{AUDIENCE}/imaging_instances"

_UTC = pl.Datetime("us", "UTC")
_FLOATS = pl.List(pl.Float64())

INSTANCE_DTYPES: dict[str, pl.DataType] = {c.name: c.dtype for c in INSTANCE_COLUMNS}
"""``connectors.dicom.instance_schema()``: the connector's columns, in its order."""
BRONZE_INSTANCE_DTYPES: dict[str, pl.DataType] = {
    **INSTANCE_DTYPES,
    "batch": pl.String(),
    "ingested_at": _UTC,
}
"""``bronze/imaging/instances``: the connector's columns, then the batch (the landing child's
name, which prefixes ``source_file``) and the ingestion time."""
SILVER_INSTANCE_DTYPES: dict[str, pl.DataType] = {
    **{name: dtype for name, dtype in BRONZE_INSTANCE_DTYPES.items() if name != "ingested_at"},
    "person_key": pl.String(),
    "encounter_id": pl.String(),
    "link_status": pl.String(),
}
"""``silver/imaging/dicom_instances``: bronze's columns but the ingestion time (silver is
rebuilt from every batch, and reading an unchanged file again must not change it), then the
linkage."""
ORDER_DTYPES: dict[str, pl.DataType] = {
    "accession_number": pl.String(),
    "patient_id": pl.String(),
    "mrn": pl.String(),
    "encounter_id": pl.String(),
    "modality": pl.String(),
    "procedure_code": pl.String(),
    "procedure_display": pl.String(),
    "ordered_at": _UTC,
    "source_file": pl.String(),
    "source_sha256": pl.String(),
    "ingested_at": _UTC,
}
"""``bronze/imaging/orders``: the RIS export ``orders.csv``, typed, with its provenance."""
BATCH_LEDGER_DTYPES: dict[str, pl.DataType] = {
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
"""``bronze/imaging/batches``: one row per landed batch (a folder or a zip below
``landing/imaging/``): a digest of its files' names, sizes and times, a digest of their
content, when it was written (freshness is measured from it), files read, bytes, instances
written, files quarantined, and when it was ingested."""
SERIES_DTYPES: dict[str, pl.DataType] = {
    "series_instance_uid": pl.String(),
    "study_instance_uid": pl.String(),
    "person_key": pl.String(),
    "modality": pl.String(),
    "modalities": pl.List(pl.String()),
    "n_modalities": pl.Int64(),
    "body_part_examined": pl.String(),
    "laterality": pl.String(),
    "series_number": pl.Int64(),
    "series_description": pl.String(),
    "series_date": pl.Date(),
    "manufacturer": pl.String(),
    "manufacturer_model_name": pl.String(),
    "sop_class_uid": pl.String(),
    "sop_class_name": pl.String(),
    "rows": pl.Int64(),
    "columns": pl.Int64(),
    "pixel_spacing": _FLOATS,
    "slice_thickness": pl.Float64(),
    "contrast_bolus_agent": pl.String(),
    "n_instances": pl.Int64(),
    "n_frames": pl.Int64(),
    "n_burned_in": pl.Int64(),
    "n_excluded": pl.Int64(),
    "has_pixels": pl.Boolean(),
}
"""``silver/imaging/dicom_series`` (contract section 3)."""
STUDY_DTYPES: dict[str, pl.DataType] = {
    "study_instance_uid": pl.String(),
    "person_key": pl.String(),
    "encounter_id": pl.String(),
    "link_status": pl.String(),
    "patient_id": pl.String(),
    "accession_number": pl.String(),
    "study_date": pl.Date(),
    "study_time": pl.String(),
    "study_description": pl.String(),
    "modalities": pl.List(pl.String()),
    "primary_modality": pl.String(),
    "body_part_examined": pl.String(),
    "n_series": pl.Int64(),
    "n_instances": pl.Int64(),
    "n_patient_ids": pl.Int64(),
    "n_persons": pl.Int64(),
}
"""``silver/imaging/dicom_studies`` (contract section 3)."""

LINK_STATUS: tuple[str, ...] = (
    "linked",
    "no_order",
    "unknown_patient",
    "patient_mismatch",
    "identity_conflict",
)
"""How a silver instance or study was linked: to a person and the order's encounter; not
ordered (no RIS order with its accession number); a PatientID the RIS does not know; an
order whose patient is not the image's; a PatientID the person crosswalk does not hold
because its identity is in conflict (``pipelines.imaging.LINK_STATUSES``)."""
BURNED_IN_ANNOTATION: tuple[str, ...] = ("YES", "NO")
"""DICOM Burned In Annotation (0028,0301) enumerated values."""

UID_COLUMNS: tuple[str, ...] = (
    "transfer_syntax_uid",
    "sop_class_uid",
    "sop_instance_uid",
    "study_instance_uid",
    "series_instance_uid",
    "frame_of_reference_uid",
)
"""The UID columns of an instance row."""
IDENTIFYING_UID_COLUMNS: tuple[str, ...] = (
    "sop_instance_uid",
    "study_instance_uid",
    "series_instance_uid",
    "frame_of_reference_uid",
)
"""The UIDs that name one patient's instance, series, study or frame of reference (the
others name a kind of thing, shared by everyone, and are kept by de-identification)."""
DICOM_UID = r"^(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))+$"
"""PS3.5 §9.1: an org root and a suffix, dot-separated numeric components, no component with
a leading zero (but "0" itself); the 64-character limit is checked apart (no look-ahead in
the Rust or RE2 regex engines)."""
UID_MAX_LENGTH = 64
_TAG = re.compile(r"[0-9A-F]{8}")
REMAPPED_UID = r"^2\.25\.(?:0|[1-9][0-9]*)$"
"""PS3.5 §B.2: the ``2.25`` root and one integer, as ``remap_uid`` mints them."""

NO_VALUE_ACTIONS: frozenset[str] = frozenset({"X", "Z", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"})
"""Basic Profile actions after which an attribute carries no value in a research header.
A compound action lets a de-identifier pick D (a dummy) or U only to keep an instance
conformant to its IOD; research headers need not stay conformant, so the views take the
removing or emptying branch (``mcp_catalog.governance.dicom_deid``). D keeps a dummy value
and U a remapped UID; UIDs are checked apart."""
SHIFTED_VRS: frozenset[str] = frozenset({"DA", "DT"})
"""The Retain Longitudinal Temporal Information with Modified Dates option (PS3.15 E.3.6)
keeps dates and date-times, shifted per person, whatever their Basic Profile action; times
(TM) follow the profile, as a whole-day shift leaves them unchanged."""
NEVER_SHIFTED: frozenset[str] = frozenset({"00100030"})
"""Patient's Birth Date: outside that option, so it stays empty (Z)."""
_HEADER_UIDS: dict[str, str] = {
    "00080018": "sop_uid",
    "0020000D": "study_uid",
    "0020000E": "series_uid",
}
"""SOP Instance, Study Instance and Series Instance UID: the row's remapped UIDs."""


# --- shared builders -----------------------------------------------------------------------


def _positive(column: str) -> Check:
    return Check(
        "expect_column_values_to_be_between",
        {"column": column, "min_value": 1},
        f"{column} is positive where present",
        "error",
        column,
    )


def _not_negative(column: str) -> Check:
    return Check(
        "expect_column_values_to_be_between",
        {"column": column, "min_value": 0},
        f"{column} is a count (not negative)",
        "error",
        column,
    )


def _above_zero(column: str, what: str) -> Check:
    return Check(
        "expect_column_values_to_be_between",
        {"column": column, "min_value": 0, "strict_min": True},
        f"{column} is above zero where present ({what})",
        "error",
        column,
    )


def _exactly(column: str, value: int, description: str) -> Check:
    return Check(
        "expect_column_values_to_be_between",
        {"column": column, "min_value": value, "max_value": value},
        description,
        "error",
        column,
    )


def _valid_uid(expression: pl.Expr) -> pl.Expr:
    return expression.str.contains(DICOM_UID) & (expression.str.len_bytes() <= UID_MAX_LENGTH)


def uid_syntax(
    column: str, derive: Callable[..., Check] = derived_true, *, severity: Severity = "error"
) -> Check:
    """``column`` holds DICOM UIDs (PS3.5 §9.1) wherever it is set.

    Args:
        column: a UID column.
        derive: the derived-check builder (a dtype-guarded one for typed tables).
        severity: ``warning`` where the UIDs are the sources' own: archives hold objects
            whose UIDs break the syntax (hex digits, leading zeros), and they still identify
            the object, so bronze and silver keep them and the research views remap them.

    Returns:
        A derived check (UIDs stay in polars: they identify a patient's study).
    """
    return derive(
        f"{column}_uid_syntax",
        (column,),
        lambda _: pl.when(pl.col(column).is_not_null()).then(_valid_uid(pl.col(column))),
        f"{column} is a DICOM UID (digits and dots, no leading zeros, at most "
        f"{UID_MAX_LENGTH} characters)",
        severity=severity,
        column=column,
    )


def _date_not_in_future(column: str, derive: Callable[..., Check]) -> Check:
    return derive(
        f"{column}_not_in_future",
        (column,),
        lambda context: pl.when(pl.col(column).is_not_null()).then(
            pl.col(column) <= pl.lit(context.now.date())
        ),
        f"{column} is not in the future",
        severity="warning",
        column=column,
    )


def _modality(column: str, severity: Severity) -> Check:
    return in_set(column, MODALITY, severity=severity, what="DICOM modality")


def _linkage(derive: Callable[..., Check]) -> list[Check]:
    """Link status and the person and encounter it implies (silver instances and studies)."""
    status, person = pl.col("link_status"), pl.col("person_key")
    return [
        not_null("link_status"),
        in_set("link_status", LINK_STATUS, what="imaging link status"),
        matches("person_key", PERSON_KEY, "person_key is a 32-hex random key"),
        derive(
            "person_key_set_when_linked",
            ("link_status", "person_key"),
            lambda _: pl.when(status == "linked").then(person.is_not_null()),
            "person_key is set wherever link_status is linked",
            column="person_key",
        ),
        derive(
            "unknown_patient_has_no_person",
            ("link_status", "person_key"),
            lambda _: pl.when(status == "unknown_patient").then(person.is_null()),
            "person_key is empty where the PatientID is unknown (unknown_patient)",
            column="person_key",
        ),
        derive(
            "identity_conflict_has_no_person",
            ("link_status", "person_key"),
            lambda _: pl.when(status == "identity_conflict").then(person.is_null()),
            "person_key is empty where the PatientID's identity is in conflict (identity_conflict)",
            column="person_key",
        ),
        derive(
            "encounter_id_only_when_linked",
            ("link_status", "encounter_id"),
            lambda _: pl.when(pl.col("encounter_id").is_not_null()).then(status == "linked"),
            "encounter_id is set only where link_status is linked",
            column="encounter_id",
        ),
        references("encounter_id", EHR_ENCOUNTERS, "id"),
    ]


# --- bronze/imaging/instances --------------------------------------------------------------


def _instance_checks(dtypes: Mapping[str, pl.DataType], layer: str) -> list[Check]:
    """What holds of an instance row in bronze and silver alike."""
    checked = _on_contract_dtypes(dtypes)
    what = f"{layer} DICOM instances"
    return [
        exact_columns(tuple(dtypes), what),
        _typed(dtypes, what),
        not_null("source_file"),
        unique("source_file"),
        not_null("sha256"),
        matches("sha256", SHA256_HEX, "sha256 is 64 lowercase hex characters"),
        Check(
            "expect_column_values_to_be_between",
            {"column": "size_bytes", "min_value": 1},
            "size_bytes is positive (no empty file is an instance)",
            "error",
            "size_bytes",
        ),
        *[not_null(c) for c in ("sop_instance_uid", "study_instance_uid", "series_instance_uid")],
        *[uid_syntax(c, checked, severity="warning") for c in UID_COLUMNS],
        *[_positive(c) for c in ("rows", "columns", "number_of_frames")],
        _at_most("bits_stored", "bits_allocated", "bits_stored is at most bits_allocated"),
        in_set(
            "burned_in_annotation",
            BURNED_IN_ANNOTATION,
            what="Burned In Annotation (YES or NO)",
        ),
        not_null("has_pixels"),
        _not_negative("n_private_elements"),
        not_null("header_json"),
        _date_not_in_future("study_date", checked),
        checked(
            "read_without_warnings",
            ("warnings",),
            lambda _: pl.col("warnings").list.len() == 0,
            "every file was read without reader warnings (e.g. a value that does not parse)",
            severity="warning",
            column="warnings",
        ),
        not_null("batch"),
        checked(
            "source_file_in_batch",
            ("source_file", "batch"),
            lambda _: pl.when(pl.col("batch").is_not_null()).then(
                pl.any_horizontal(
                    pl.col("source_file").str.starts_with(pl.col("batch") + suffix)
                    for suffix in ("/", "!", ".zip!")
                )
            ),
            "source_file lies in its batch (starts with the batch's folder or zip name)",
            column="source_file,batch",
        ),
        *([not_null("ingested_at")] if "ingested_at" in dtypes else []),
    ]


def bronze_instances_suite() -> Suite:
    """DICOM instances as read: one row per file (or zip member) of every landed batch."""
    checks = _instance_checks(BRONZE_INSTANCE_DTYPES, "bronze")
    checks += [
        _modality("modality", "warning"),
        Check(
            "expect_column_values_to_be_unique",
            {"column": "sop_instance_uid"},
            "no SOP instance arrives twice (silver keeps one row per sop_instance_uid)",
            "warning",
            "sop_instance_uid",
        ),
    ]
    return Suite(INSTANCES, tuple(BRONZE_INSTANCE_DTYPES), tuple(checks))


# --- bronze/imaging/orders and batches -----------------------------------------------------


def orders_suite() -> Suite:
    """The RIS orders: which accession number was ordered for whom, in which encounter."""
    columns = tuple(ORDER_DTYPES)
    checked = _on_contract_dtypes(ORDER_DTYPES)
    ordered_at = pl.col("ordered_at")
    checks = [
        exact_columns(columns, "the RIS orders"),
        _typed(ORDER_DTYPES, "the RIS orders"),
        not_null("accession_number"),
        unique("accession_number"),
        not_null("patient_id"),
        not_null("mrn"),
        matches(
            "mrn",
            EHR_MRN,
            "mrn has the EHR's MRN shape (else the order links to nobody)",
            severity="warning",
        ),
        # Orders placed outside an encounter (a referral, an outside reading) are real: the
        # study then links to the person only.
        not_null(
            "encounter_id",
            severity="warning",
            description="encounter_id is set on every row (else the study links to no visit)",
        ),
        matches("encounter_id", FHIR_ID, "encounter_id is a FHIR id (1-64 of A-Z a-z 0-9 - .)"),
        _modality("modality", "warning"),
        not_null("ordered_at"),
        checked(
            "ordered_at_not_in_future",
            ("ordered_at",),
            lambda context: pl.when(ordered_at.is_not_null()).then(
                ordered_at <= pl.lit(context.now).cast(_UTC)
            ),
            "ordered_at is not in the future",
            severity="warning",
            column="ordered_at",
        ),
        not_null("source_file"),
        *sha256_hex(),
        not_null("ingested_at"),
    ]
    return Suite(ORDERS, columns, tuple(checks))


def batches_suite() -> Suite:
    """The ledger of landed DICOM batches: one row per folder or zip."""
    columns = tuple(BATCH_LEDGER_DTYPES)
    checked = _on_contract_dtypes(BATCH_LEDGER_DTYPES)
    checks = [
        exact_columns(columns, "the DICOM batch ledger"),
        _typed(BATCH_LEDGER_DTYPES, "the DICOM batch ledger"),
        not_null("batch"),
        unique("batch"),
        *sha256_hex("stamp"),
        *sha256_hex("content_sha256"),
        *[_not_negative(c) for c in ("files", "bytes", "instances", "rejected")],
        checked(
            "every_file_accounted_for",
            ("files", "instances", "rejected"),
            # A Part 10 file holds one SOP instance: each file read is one row or one reject.
            lambda _: pl.col("instances") + pl.col("rejected") == pl.col("files"),
            "files is instances plus rejected (each file is one instance or one reject)",
            column="files",
        ),
        not_null("source_modified_at"),
        not_null("ingested_at"),
    ]
    return Suite(BATCHES, columns, tuple(checks))


# --- silver --------------------------------------------------------------------------------


def silver_instances_suite() -> Suite:
    """One row per SOP instance, linked to a person and, through its order, an encounter."""
    checked = _on_contract_dtypes(SILVER_INSTANCE_DTYPES)
    checks = _instance_checks(SILVER_INSTANCE_DTYPES, "silver")
    checks += [
        unique("sop_instance_uid"),
        _modality("modality", "error"),
        *_linkage(checked),
    ]
    return Suite(SILVER_INSTANCES, tuple(SILVER_INSTANCE_DTYPES), tuple(checks), (EHR_ENCOUNTERS,))


def silver_series_suite() -> Suite:
    """One row per series, summarised over its instances."""
    columns = tuple(SERIES_DTYPES)
    checked = _on_contract_dtypes(SERIES_DTYPES)
    checks = [
        exact_columns(columns, "silver DICOM series"),
        _typed(SERIES_DTYPES, "silver DICOM series"),
        not_null("series_instance_uid"),
        unique("series_instance_uid"),
        not_null("study_instance_uid"),
        *[
            uid_syntax(c, checked, severity="warning")
            for c in ("series_instance_uid", "study_instance_uid", "sop_class_uid")
        ],
        references("study_instance_uid", SILVER_STUDIES, "study_instance_uid"),
        matches("person_key", PERSON_KEY, "person_key is a 32-hex random key"),
        not_null("n_modalities"),
        _exactly(
            "n_modalities",
            1,
            "every series has one modality (n_modalities is 1: its instances agree)",
        ),
        _modality("modality", "error"),
        not_null("n_instances"),
        _positive("n_instances"),
        *[_not_negative(c) for c in ("n_frames", "n_burned_in", "n_excluded")],
        _at_most("n_excluded", "n_instances", "n_excluded is at most n_instances"),
        _at_most(
            "n_burned_in",
            "n_excluded",
            "n_burned_in is at most n_excluded (burned-in instances are left out)",
        ),
        *[_positive(c) for c in ("rows", "columns")],
        _date_not_in_future("series_date", checked),
    ]
    return Suite(SILVER_SERIES, columns, tuple(checks), (SILVER_STUDIES,))


def silver_studies_suite() -> Suite:
    """One row per study: its patient, person, order and what it holds."""
    columns = tuple(STUDY_DTYPES)
    checked = _on_contract_dtypes(STUDY_DTYPES)
    primary, modalities = pl.col("primary_modality"), pl.col("modalities")
    checks = [
        exact_columns(columns, "silver DICOM studies"),
        _typed(STUDY_DTYPES, "silver DICOM studies"),
        not_null("study_instance_uid"),
        unique("study_instance_uid"),
        uid_syntax("study_instance_uid", checked, severity="warning"),
        not_null("n_patient_ids"),
        Check(
            "expect_column_values_to_be_between",
            {"column": "n_patient_ids", "max_value": 1},
            "no study names two PatientIDs (n_patient_ids is at most 1: no StudyInstanceUID "
            "is shared across patients)",
            "error",
            "n_patient_ids",
        ),
        # Files without a PatientID exist (anonymised teaching files, phantoms): their
        # studies cannot be linked to anybody, which the linkage counts say; not an error.
        Check(
            "expect_column_values_to_be_between",
            {"column": "n_patient_ids", "min_value": 1},
            "every study names a PatientID (else it cannot be linked to a person)",
            "warning",
            "n_patient_ids",
        ),
        Check(
            "expect_column_values_to_be_between",
            {"column": "n_persons", "min_value": 0, "max_value": 1},
            "every study belongs to at most one person (n_persons is 0 or 1)",
            "error",
            "n_persons",
        ),
        not_null("n_persons"),
        *_linkage(checked),
        _modality("primary_modality", "error"),
        checked(
            "primary_modality_among_modalities",
            ("primary_modality", "modalities"),
            lambda _: pl.when(primary.is_not_null()).then(
                modalities.list.contains(primary).fill_null(False)
            ),
            "primary_modality is one of the study's modalities",
            column="primary_modality",
        ),
        _positive("n_series"),
        _at_most("n_series", "n_instances", "n_series is at most n_instances"),
        _date_not_in_future("study_date", checked),
    ]
    return Suite(SILVER_STUDIES, columns, tuple(checks), (EHR_ENCOUNTERS,))


# --- gold research views -------------------------------------------------------------------

IMAGING_GOLD_VIEWS: tuple[GoldView, ...] = (
    GoldView(
        "imaging_studies",
        (
            "study_uid",
            "person_pseudonym",
            "encounter_key",
            "study_date",
            "primary_modality",
            "modalities",
            "body_part",
            "n_series",
            "n_instances",
        ),
        None,
    ),
    GoldView(
        "imaging_series",
        (
            "series_uid",
            "study_uid",
            "person_pseudonym",
            "series_date",
            "modality",
            "body_part",
            "laterality",
            "series_number",
            "manufacturer",
            "manufacturer_model_name",
            "sop_class_name",
            "rows",
            "columns",
            "pixel_spacing_mm",
            "slice_thickness_mm",
            "contrast",
            "n_instances",
            "n_frames",
        ),
        None,
    ),
    GoldView(
        "imaging_instances",
        (
            "sop_uid",
            "series_uid",
            "study_uid",
            "person_pseudonym",
            "sop_class_name",
            "modality",
            "instance_number",
            "number_of_frames",
            "rows",
            "columns",
            "content_date",
            "transfer_syntax_uid",
            "has_pixels",
            "header_json",
        ),
        None,
    ),
)
"""The imaging research views (contract section 4b), in ``IMAGING_VIEWS`` order."""


def _gold_view(name: str) -> GoldView:
    return next(v for v in IMAGING_GOLD_VIEWS if v.name == name)


def _remapped_uid(column: str, silver: str, originals: Iterable[str]) -> list[Check]:
    """``column`` is a ``2.25.`` UID (valid, at most 64 characters) and none of the original
    UIDs of ``silver`` (a UID that survived de-identification links back to the PACS)."""
    names = tuple(originals)

    def not_original(context: DeriveContext) -> pl.Expr:
        source = context.references[silver]
        present = [n for n in names if n in source.columns]
        if len(present) < len(names):
            # The silver table lost a UID column: nothing can be shown to be remapped.
            return pl.when(pl.col(column).is_not_null()).then(pl.lit(False))
        uids = pl.concat([source.get_column(n).drop_nulls() for n in names]).unique()
        return pl.when(pl.col(column).is_not_null()).then(~pl.col(column).is_in(uids.implode()))

    value = pl.col(column)
    return [
        not_null(column),
        derived_true(
            f"{column}_remapped",
            (column,),
            lambda _: pl.when(value.is_not_null()).then(
                value.str.contains(REMAPPED_UID) & _valid_uid(value)
            ),
            f"{column} is a remapped UID (2.25. and an integer, a valid UID)",
            column=column,
        ),
        derived_true(
            f"{column}_not_original",
            (column,),
            not_original,
            f"no {column} is an original UID of {silver}",
            column=column,
        ),
    ]


def _person() -> list[Check]:
    return [
        not_null("person_pseudonym"),
        _pseudonym_format("person_pseudonym", "P"),
        references("person_pseudonym", GOLD_PATIENTS, "person_pseudonym"),
    ]


def _modality_list_ok(value: str | None) -> bool | None:
    if value is None:
        return None
    codes = value.split(",")
    return codes == sorted(set(codes)) and set(codes) <= set(MODALITY)


def imaging_studies_suite() -> Suite:
    """Studies of consented, linked people: pseudonyms, remapped UIDs, shifted dates."""
    view = _gold_view("imaging_studies")
    modalities = pl.col("modalities")
    checks = [
        *_privacy(view),
        unique("study_uid"),
        *_remapped_uid("study_uid", SILVER_STUDIES, ("study_instance_uid",)),
        *_person(),
        _pseudonym_format("encounter_key", "E"),
        references("encounter_key", GOLD_ENCOUNTERS, "record_key", severity="warning"),
        _modality("primary_modality", "error"),
        derived_true(
            "modalities_sorted_codes",
            ("modalities",),
            lambda _: modalities.map_elements(_modality_list_ok, return_dtype=pl.Boolean),
            "modalities lists distinct DICOM modality codes, sorted, comma-separated",
            column="modalities",
        ),
        derived_true(
            "primary_modality_among_modalities",
            ("primary_modality", "modalities"),
            lambda _: pl.when(pl.col("primary_modality").is_not_null()).then(
                modalities.str.split(",").list.contains(pl.col("primary_modality")).fill_null(False)
            ),
            "primary_modality is one of the study's modalities",
            column="primary_modality",
        ),
        not_null("n_series"),
        _positive("n_series"),
        _at_most("n_series", "n_instances", "n_series is at most n_instances"),
    ]
    refs = (GOLD_PATIENTS, GOLD_ENCOUNTERS, SILVER_STUDIES)
    return Suite(f"gold/{AUDIENCE}/{view.name}", view.columns, tuple(checks), refs)


def imaging_series_suite() -> Suite:
    """Series of the research studies, with acquisition parameters and counts."""
    view = _gold_view("imaging_series")
    originals = ("series_instance_uid", "study_instance_uid")
    checks = [
        *_privacy(view),
        unique("series_uid"),
        *_remapped_uid("series_uid", SILVER_SERIES, originals),
        *_remapped_uid("study_uid", SILVER_SERIES, originals),
        references("study_uid", GOLD_STUDIES, "study_uid"),
        *_person(),
        _modality("modality", "error"),
        *[_positive(c) for c in ("rows", "columns")],
        _above_zero("pixel_spacing_mm", "a row spacing in mm"),
        _above_zero("slice_thickness_mm", "a thickness in mm"),
        not_null("n_instances"),
        _positive("n_instances"),
        _not_negative("n_frames"),
    ]
    refs = (GOLD_PATIENTS, GOLD_STUDIES, SILVER_SERIES)
    return Suite(f"gold/{AUDIENCE}/{view.name}", view.columns, tuple(checks), refs)


# --- header_json of the research instances -------------------------------------------------


def _loses_value(tag: str, vr: object) -> bool:
    """Whether the research views' de-identification leaves ``tag`` without a value."""
    if vr in SHIFTED_VRS and tag not in NEVER_SHIFTED:
        return False
    return profile_action(tag) in NO_VALUE_ACTIONS


def _has_value(element: object) -> bool:
    """Whether a DICOM JSON element carries a value (inline binary counts)."""
    if not isinstance(element, dict):
        return True
    if "InlineBinary" in element:
        return True
    values = element.get("Value") or []
    if element.get("vr") == "PN":
        # A person name is a dict of components; one with only empty components is empty.
        return any(not isinstance(v, dict) or any(v.values()) for v in values if v is not None)
    return any(v not in (None, "", {}) for v in values)


def _elements(dataset: object) -> Iterable[tuple[str, dict[str, object]]]:
    """Every ``(tag, element)`` of a DICOM JSON dataset, sequence items included; a
    malformed element yields ``("", {})``."""
    if not isinstance(dataset, dict):
        yield "", {}
        return
    for tag, element in dataset.items():
        if not isinstance(element, dict):
            yield "", {}
            continue
        yield str(tag).upper(), element
        if element.get("vr") == "SQ":
            for item in element.get("Value") or []:
                yield from _elements(item)


def _parse(text: str) -> dict[str, object] | None:
    try:
        header = json.loads(text)
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


def header_deidentified(text: str) -> bool:
    """Whether a DICOM JSON header keeps nothing the Basic Profile takes out.

    Args:
        text: a header in the PS3.18 DICOM JSON model.

    Returns:
        False for a private tag (odd group), a ``BulkDataURI`` (it can name a storage
        location), a value on an attribute the views' de-identification empties or removes
        (:data:`NO_VALUE_ACTIONS`; dates are kept shifted, see :data:`SHIFTED_VRS`), or text
        that is not a DICOM JSON object; True otherwise.
    """
    header = _parse(text)
    if header is None:
        return False
    for tag, element in _elements(header):
        if not _TAG.fullmatch(tag) or int(tag[:4], 16) % 2 or "BulkDataURI" in element:
            return False
        if _has_value(element) and _loses_value(tag, element.get("vr")):
            return False
    return True


def _header_uids(header: Mapping[str, object]) -> set[str]:
    uids: set[str] = set()
    for _, element in _elements(header):
        values = element.get("Value")
        if element.get("vr") == "UI" and isinstance(values, list):
            uids.update(str(v) for v in values if v)
    return uids


def _per_row(
    columns: tuple[str, ...], verdict: Callable[..., bool | None]
) -> Callable[[DeriveContext], pl.Expr]:
    """A derived expression calling ``verdict`` with one row's ``columns`` (None skips a
    row whose header is empty)."""

    def expression(_: DeriveContext) -> pl.Expr:
        def run(rows: pl.Series) -> pl.Series:
            return pl.Series(
                [
                    None if row[columns[0]] is None else verdict(*(row[c] for c in columns))
                    for row in rows
                ],
                dtype=pl.Boolean,
            )

        return pl.struct(columns).map_batches(run, return_dtype=pl.Boolean)

    return expression


def _header_checks() -> list[Check]:
    def uids_are_rows(text: str, sop: str | None, series: str | None, study: str | None) -> bool:
        header = _parse(text)
        if header is None:
            return False
        expected = dict(zip(_HEADER_UIDS, (sop, study, series), strict=True))
        for tag, uid in expected.items():
            element = header.get(tag)
            values = element.get("Value") if isinstance(element, dict) else None
            if values != [uid]:
                return False
        return True

    def no_original_uid(context: DeriveContext) -> pl.Expr:
        source = context.references[SILVER_INSTANCES]
        if not set(IDENTIFYING_UID_COLUMNS) <= set(source.columns):
            # The silver table lost a UID column: nothing can be shown to be remapped.
            return pl.when(pl.col("header_json").is_not_null()).then(pl.lit(False))
        originals = frozenset(
            pl.concat([source.get_column(c).drop_nulls() for c in IDENTIFYING_UID_COLUMNS])
            .unique()
            .to_list()
        )

        def verdict(text: str) -> bool:
            header = _parse(text)
            return header is not None and not originals.intersection(_header_uids(header))

        return _per_row(("header_json",), verdict)(context)

    return [
        not_null("header_json"),
        derived_true(
            "header_json_deidentified",
            ("header_json",),
            _per_row(("header_json",), header_deidentified),
            "header_json has no private tag and no value for an attribute the Basic Profile "
            "removes or empties (every action but D and U; dates kept shifted)",
            column="header_json",
        ),
        derived_true(
            "header_json_uids_are_the_rows",
            ("header_json", "sop_uid", "series_uid", "study_uid"),
            _per_row(("header_json", "sop_uid", "series_uid", "study_uid"), uids_are_rows),
            "header_json's SOP instance, series and study UIDs are the row's remapped UIDs",
            column="header_json",
        ),
        derived_true(
            "header_json_no_original_uid",
            ("header_json",),
            no_original_uid,
            f"header_json holds no original UID of {SILVER_INSTANCES}",
            column="header_json",
        ),
    ]


def imaging_instances_suite() -> Suite:
    """Instances of the research series, with their de-identified headers."""
    view = _gold_view("imaging_instances")
    originals = IDENTIFYING_UID_COLUMNS
    checks = [
        *_privacy(view),
        unique("sop_uid"),
        *_remapped_uid("sop_uid", SILVER_INSTANCES, originals),
        *_remapped_uid("series_uid", SILVER_INSTANCES, originals),
        *_remapped_uid("study_uid", SILVER_INSTANCES, originals),
        references("series_uid", GOLD_SERIES, "series_uid"),
        *_person(),
        _modality("modality", "error"),
        *[_positive(c) for c in ("number_of_frames", "rows", "columns")],
        uid_syntax("transfer_syntax_uid"),
        not_null("has_pixels"),
        *_header_checks(),
    ]
    refs = (GOLD_PATIENTS, GOLD_SERIES, SILVER_INSTANCES)
    return Suite(f"gold/{AUDIENCE}/{view.name}", view.columns, tuple(checks), refs)


IMAGING_SUITES: dict[str, Callable[[], Suite]] = {
    INSTANCES: bronze_instances_suite,
    ORDERS: orders_suite,
    BATCHES: batches_suite,
    SILVER_INSTANCES: silver_instances_suite,
    SILVER_SERIES: silver_series_suite,
    SILVER_STUDIES: silver_studies_suite,
    GOLD_STUDIES: imaging_studies_suite,
    GOLD_SERIES: imaging_series_suite,
    GOLD_INSTANCES: imaging_instances_suite,
}
"""Every imaging table path to its suite's builder (``quality.suites.suite_for`` calls it)."""
