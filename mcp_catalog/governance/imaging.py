"""The research views of the imaging silo: DICOM studies, series and instances.

All three read the silver instances, series and studies and start from the same set of
instances, so that a UID, a count or a person is the same in every view:

* the person is known and the link is trusted (``person_key`` set, ``link_status``
  ``linked`` or ``no_order``; a PatientID that disagrees with the order is left out),
  and consented to research;
* the instance is not left out by the burned-in annotation rule
  (:func:`mcp_catalog.governance.dicom_deid.excluded_expr`);
* its study holds one PatientID and one person, and its series and study rows name the
  same person.

Counts (instances, series, frames) and the study's modalities are computed over these
instances only; a series or study with none left is not listed. Dates move by the person's
secret shift (the same as in the EHR views), UIDs are remapped with the audience's UID key
(``2.25.`` UIDs, the same in the three views and inside ``header_json``), people and
encounters get the audience's pseudonyms (encounters with the ``E`` tag, so they join the
encounters view). Modality values outside the DICOM defined terms are withheld.
"""

import orjson
import polars as pl

from mcp_catalog.governance.deid import PERSON_PREFIX
from mcp_catalog.governance.dicom_deid import deidentify_header, excluded_expr, remap_uid
from mcp_catalog.governance.views import (
    ENCOUNTER_PREFIX,
    ViewColumn,
    ViewContext,
    ViewSpec,
)
from mcp_catalog.manifest import ColumnType
from quality.valuesets import MODALITY

INSTANCES = "silver/imaging/dicom_instances"
SERIES = "silver/imaging/dicom_series"
STUDIES = "silver/imaging/dicom_studies"
SOURCES = (STUDIES, SERIES, INSTANCES)

TRUSTED_LINKS = ("linked", "no_order")
"""Link statuses whose person is certain: matched to a person, with or without an order."""

NON_PRIMARY_MODALITIES = ("DOC", "KO", "PR", "REG", "RTSTRUCT", "SEG", "SR")
"""Modalities of derived objects, which never make a study's primary modality unless the
study holds nothing else."""


def _kept_instances(silver: dict[str, pl.DataFrame], ctx: ViewContext) -> pl.DataFrame:
    """The instances every imaging view is built from (see the module docstring)."""
    if not ctx.uid_key:
        # Checked up front so that a view with nothing to remap fails as loudly as one with.
        raise ValueError("remapping UIDs needs a non-empty key; set the audience's UID key")
    studies = silver[STUDIES].filter((pl.col("n_persons") == 1) & (pl.col("n_patient_ids") == 1))
    return (
        silver[INSTANCES]
        .filter(
            pl.col("person_key").is_not_null()
            & pl.col("link_status").is_in(list(TRUSTED_LINKS))
            & pl.col("person_key").is_in(ctx.consented.implode())
            & ~excluded_expr()
        )
        .join(
            studies.select("study_instance_uid", "person_key"),
            on=["study_instance_uid", "person_key"],
            how="semi",
        )
        .join(
            silver[SERIES].select("series_instance_uid", "study_instance_uid", "person_key"),
            on=["series_instance_uid", "study_instance_uid", "person_key"],
            how="semi",
        )
        .with_columns(_standard_modality("modality"))
    )


def _standard_modality(column: str) -> pl.Expr:
    value = pl.col(column).str.strip_chars().str.to_uppercase()
    return pl.when(value.is_in(list(MODALITY))).then(value).alias(column)


def _with_shift(frame: pl.DataFrame, ctx: ViewContext) -> pl.DataFrame:
    joined = frame.join(ctx.shifts, on="person_key", how="left", maintain_order="left")
    if joined.get_column("shift_days").null_count() > 0:
        raise ValueError("date shifts are missing for some people; compute them for every person")
    return joined


def _shift(*columns: str) -> list[pl.Expr]:
    return [pl.col(c) + pl.duration(days=pl.col("shift_days")) for c in columns]


def _remap(frame: pl.DataFrame, column: str, alias: str, key: bytes) -> pl.DataFrame:
    """Replace a UID column by its remapped value under a new name."""
    mapping: dict[str, str] = {}
    values = []
    for uid in frame.get_column(column).to_list():
        if uid is None:
            values.append(None)
            continue
        if uid not in mapping:
            mapping[uid] = remap_uid(uid, key)
        values.append(mapping[uid])
    position = frame.columns.index(column)
    return frame.drop(column).insert_column(position, pl.Series(alias, values, pl.String()))


def _person(frame: pl.DataFrame, ctx: ViewContext) -> pl.DataFrame:
    return ctx.pseudonyms.apply(frame, "person_key", prefix=PERSON_PREFIX, alias="person_pseudonym")


def _frames() -> pl.Expr:
    """Frames of an instance: NumberOfFrames, one for a single-frame image, none without
    pixels."""
    return (
        pl.when(pl.col("has_pixels").fill_null(False))
        .then(pl.col("number_of_frames").fill_null(1))
        .otherwise(0)
    )


def _build_studies(silver: dict[str, pl.DataFrame], ctx: ViewContext) -> pl.DataFrame:
    kept = _kept_instances(silver, ctx)
    counts = kept.group_by("study_instance_uid").agg(
        pl.col("series_instance_uid").n_unique().cast(pl.Int64).alias("n_series"),
        pl.len().cast(pl.Int64).alias("n_instances"),
        pl.col("modality").drop_nulls().unique().sort().str.join(",").alias("modalities"),
    )
    primary = (
        kept.filter(pl.col("modality").is_not_null())
        .group_by("study_instance_uid", "modality")
        .agg(pl.len().alias("n"))
        .with_columns(pl.col("modality").is_in(list(NON_PRIMARY_MODALITIES)).alias("derived"))
        .sort(
            ["study_instance_uid", "derived", "n", "modality"],
            descending=[False, False, True, False],
        )
        .unique("study_instance_uid", keep="first", maintain_order=True)
        .select("study_instance_uid", pl.col("modality").alias("primary_modality"))
    )
    frame = (
        silver[STUDIES]
        .select(
            "study_instance_uid", "person_key", "encounter_id", "study_date", "body_part_examined"
        )
        .join(counts, on="study_instance_uid", how="inner")
        .join(primary, on="study_instance_uid", how="left")
        .with_columns(
            pl.when(pl.col("modalities").str.len_chars() > 0).then(pl.col("modalities")),
            pl.col("body_part_examined").alias("body_part"),
        )
    )
    frame = _with_shift(frame, ctx).with_columns(_shift("study_date")).drop("shift_days")
    frame = _remap(frame, "study_instance_uid", "study_uid", ctx.uid_key)
    frame = ctx.pseudonyms.apply(
        frame, "encounter_id", prefix=ENCOUNTER_PREFIX, alias="encounter_key"
    )
    return _person(frame, ctx)


def _build_series(silver: dict[str, pl.DataFrame], ctx: ViewContext) -> pl.DataFrame:
    kept = _kept_instances(silver, ctx)
    counts = kept.group_by("series_instance_uid").agg(
        pl.len().cast(pl.Int64).alias("n_instances"),
        _frames().sum().cast(pl.Int64).alias("n_frames"),
    )
    frame = (
        silver[SERIES]
        .drop("n_instances", "n_frames", strict=False)
        .join(counts, on="series_instance_uid", how="inner")
        .with_columns(
            _standard_modality("modality"),
            pl.col("body_part_examined").alias("body_part"),
            pl.col("pixel_spacing").list.get(0, null_on_oob=True).alias("pixel_spacing_mm"),
            pl.col("slice_thickness").alias("slice_thickness_mm"),
            pl.col("contrast_bolus_agent")
            .str.strip_chars()
            .str.len_chars()
            .gt(0)
            .fill_null(False)
            .alias("contrast"),
        )
    )
    frame = _with_shift(frame, ctx).with_columns(_shift("series_date")).drop("shift_days")
    frame = _remap(frame, "series_instance_uid", "series_uid", ctx.uid_key)
    frame = _remap(frame, "study_instance_uid", "study_uid", ctx.uid_key)
    return _person(frame, ctx)


def _build_instances(silver: dict[str, pl.DataFrame], ctx: ViewContext) -> pl.DataFrame:
    frame = _with_shift(_kept_instances(silver, ctx), ctx)
    headers = [
        None
        if text is None
        else orjson.dumps(
            deidentify_header(_header(text), shift_days=shift, uid_key=ctx.uid_key),
            option=orjson.OPT_SORT_KEYS,
        ).decode()
        for text, shift in zip(
            frame.get_column("header_json").to_list(),
            frame.get_column("shift_days").to_list(),
            strict=True,
        )
    ]
    frame = frame.with_columns(
        pl.Series("header_json", headers, pl.String()), *_shift("content_date")
    ).drop("shift_days")
    for column, alias in (
        ("sop_instance_uid", "sop_uid"),
        ("series_instance_uid", "series_uid"),
        ("study_instance_uid", "study_uid"),
    ):
        frame = _remap(frame, column, alias, ctx.uid_key)
    return _person(frame, ctx)


def _header(text: str) -> dict:
    try:
        header = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError("a silver DICOM header is not valid JSON") from exc
    if not isinstance(header, dict):
        raise ValueError("a silver DICOM header is not a JSON object")
    return header


def _uid(name: str, what: str, source: str) -> ViewColumn:
    return ViewColumn(
        name,
        "string",
        f"{what}, remapped to a 2.25 UID under this audience's key: the same value in every "
        "imaging view of this audience and inside header_json, unrelated to the original.",
        "pseudonym",
        derived_from=(source,),
    )


def _person_column() -> ViewColumn:
    return ViewColumn(
        "person_pseudonym",
        "string",
        "Pseudonym of the person, stable within this audience only.",
        "pseudonym",
        derived_from=("person_key",),
    )


def _shifted(name: str, what: str) -> ViewColumn:
    return ViewColumn(
        name,
        "date",
        f"{what}, shifted by the person's secret date offset (the same offset as in the EHR "
        "views, so intervals within a person are kept).",
        "sensitive",
    )


def _modality(description: str) -> ViewColumn:
    return ViewColumn("modality", "string", description, "clinical", MODALITY)


def _clinical(
    name: str, kind: ColumnType, description: str, source: str | None = None
) -> ViewColumn:
    return ViewColumn(
        name, kind, description, "clinical", derived_from=(source,) if source else None
    )


_INSTANCE_COLUMNS = (
    "sop_instance_uid",
    "series_instance_uid",
    "study_instance_uid",
    "person_key",
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
)

_COUNTED_FROM_INSTANCES = ("sop_instance_uid", "series_instance_uid", "number_of_frames")

IMAGING_VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec(
        name="imaging_studies",
        audience="research",
        title="Imaging studies (de-identified)",
        description="One row per DICOM study of a consented person: modalities, body part "
        "and counts of series and instances, with remapped UIDs and a shifted date. "
        "Instances that may show burned-in identifying text are not counted.",
        sources=SOURCES,
        key=("study_uid",),
        columns=(
            _uid("study_uid", "Study Instance UID", "study_instance_uid"),
            _person_column(),
            ViewColumn(
                "encounter_key",
                "string",
                "Pseudonym of the encounter the study was ordered in (the record_key of the "
                "encounters view); empty when no order links it to an encounter.",
                "pseudonym",
                derived_from=("encounter_id",),
            ),
            _shifted("study_date", "Date the study started"),
            ViewColumn(
                "primary_modality",
                "string",
                "The study's most common modality (DICOM defined term), not counting derived "
                "objects (SR, SEG, PR, KO, REG, RTSTRUCT, DOC) unless it holds nothing else; "
                "ties go to the first in alphabetical order.",
                "clinical",
                MODALITY,
                derived_from=("modality",),
            ),
            _clinical(
                "modalities",
                "string",
                "Every modality in the study (DICOM defined terms), sorted, comma-separated.",
                "modality",
            ),
            _clinical(
                "body_part",
                "string",
                "Body Part Examined (0018,0015) of the study.",
                "body_part_examined",
            ),
            _clinical("n_series", "integer", "Series in the study.", "series_instance_uid"),
            _clinical(
                "n_instances",
                "integer",
                "Instances (images, objects) in the study.",
                "sop_instance_uid",
            ),
        ),
        build=_build_studies,
        source_of=(
            *(
                (c, STUDIES)
                for c in (
                    "study_instance_uid",
                    "person_key",
                    "encounter_id",
                    "study_date",
                    "body_part_examined",
                )
            ),
            *((c, INSTANCES) for c in ("modality", *_COUNTED_FROM_INSTANCES)),
        ),
    ),
    ViewSpec(
        name="imaging_series",
        audience="research",
        title="Imaging series (de-identified)",
        description="One row per DICOM series of a consented person: modality, body part, "
        "equipment, geometry, contrast and counts of instances and frames, with remapped "
        "UIDs and a shifted date. Instances that may show burned-in identifying text are "
        "not counted.",
        sources=SOURCES,
        key=("series_uid",),
        columns=(
            _uid("series_uid", "Series Instance UID", "series_instance_uid"),
            _uid("study_uid", "Study Instance UID of the series' study", "study_instance_uid"),
            _person_column(),
            _shifted("series_date", "Date the series started"),
            _modality(
                "Modality of the series (DICOM defined term); empty when its instances disagree."
            ),
            _clinical(
                "body_part",
                "string",
                "Body Part Examined (0018,0015) of the series.",
                "body_part_examined",
            ),
            _clinical("laterality", "string", "Laterality of the paired body part (R, L)."),
            _clinical("series_number", "integer", "Series Number within the study."),
            _clinical("manufacturer", "string", "Manufacturer of the equipment."),
            _clinical(
                "manufacturer_model_name", "string", "Manufacturer's model name of the equipment."
            ),
            _clinical("sop_class_name", "string", "Storage SOP class of most of its instances."),
            _clinical("rows", "integer", "Rows of the images."),
            _clinical("columns", "integer", "Columns of the images."),
            _clinical(
                "pixel_spacing_mm",
                "number",
                "Distance between the centres of adjacent rows, in mm (first value of Pixel "
                "Spacing).",
                "pixel_spacing",
            ),
            _clinical(
                "slice_thickness_mm", "number", "Nominal slice thickness, in mm.", "slice_thickness"
            ),
            _clinical(
                "contrast",
                "boolean",
                "True when a contrast or bolus agent is recorded for the series.",
                "contrast_bolus_agent",
            ),
            _clinical("n_instances", "integer", "Instances in the series.", "sop_instance_uid"),
            ViewColumn(
                "n_frames",
                "integer",
                "Frames in the series: Number of Frames of each image, one for a single-frame "
                "image, none for an instance without pixels.",
                "clinical",
                derived_from=("number_of_frames", "has_pixels"),
            ),
        ),
        build=_build_series,
        source_of=(
            *(
                (c, SERIES)
                for c in (
                    "series_instance_uid",
                    "study_instance_uid",
                    "person_key",
                    "series_date",
                    "modality",
                    "body_part_examined",
                    "laterality",
                    "series_number",
                    "manufacturer",
                    "manufacturer_model_name",
                    "sop_class_name",
                    "rows",
                    "columns",
                    "pixel_spacing",
                    "slice_thickness",
                    "contrast_bolus_agent",
                )
            ),
            *((c, INSTANCES) for c in ("sop_instance_uid", "number_of_frames", "has_pixels")),
        ),
    ),
    ViewSpec(
        name="imaging_instances",
        audience="research",
        title="Imaging instances (de-identified)",
        description="One row per DICOM instance of a consented person, with its header "
        "de-identified under the DICOM Basic Application Confidentiality Profile with "
        "modified dates. Instances that may show burned-in identifying text are left out.",
        sources=SOURCES,
        key=("sop_uid",),
        columns=(
            _uid("sop_uid", "SOP Instance UID", "sop_instance_uid"),
            _uid(
                "series_uid", "Series Instance UID of the instance's series", "series_instance_uid"
            ),
            _uid("study_uid", "Study Instance UID of the instance's study", "study_instance_uid"),
            _person_column(),
            _clinical("sop_class_name", "string", "Storage SOP class of the instance."),
            _modality("Modality of the instance (DICOM defined term)."),
            _clinical("instance_number", "integer", "Instance Number within the series."),
            _clinical(
                "number_of_frames", "integer", "Number of Frames; empty for single-frame objects."
            ),
            _clinical("rows", "integer", "Rows of the image."),
            _clinical("columns", "integer", "Columns of the image."),
            _shifted("content_date", "Date the content (image, document) was created"),
            _clinical(
                "transfer_syntax_uid",
                "string",
                "Transfer syntax the instance was stored in (a DICOM-defined UID).",
            ),
            _clinical("has_pixels", "boolean", "True when the instance holds pixel data."),
            _clinical(
                "header_json",
                "string",
                "The instance's DICOM header in the DICOM JSON model (PS3.18), after the "
                "PS3.15 Basic Application Confidentiality Profile with the Retain "
                "Longitudinal Temporal Information with Modified Dates Option: private "
                "attributes and identifying attributes removed or emptied, UIDs remapped "
                "as in the UID columns, dates shifted by the person's offset, bulk data "
                "left out.",
            ),
        ),
        build=_build_instances,
        source_of=tuple((c, INSTANCES) for c in _INSTANCE_COLUMNS),
    ),
)
"""The research audience's views of the imaging silo."""
