"""Linking a silo's rows to people through a source index (a lab's patient index, a trial's
enrolment map) that names each source identifier's EHR MRN, and the person crosswalk."""

from collections.abc import Sequence

import polars as pl

from pipelines.manifests import blank


def mrn_people(crosswalk: pl.DataFrame) -> pl.DataFrame:
    """``mrn`` -> ``person_key`` from the crosswalk; an MRN claimed by two people is left out
    (which person it is cannot be decided)."""
    return (
        crosswalk.filter(pl.col("identifier_type") == "mrn")
        .select(pl.col("identifier").alias("mrn"), "person_key")
        .unique(subset=["mrn"], keep="none")
    )


def link_through_index(
    frame: pl.DataFrame,
    index: pl.DataFrame,
    keys: Sequence[str],
    crosswalk: pl.DataFrame,
    *,
    not_indexed: str,
) -> pl.DataFrame:
    """``frame`` with ``person_key`` and ``link_status``: the index row of its ``keys`` gives an
    MRN, the crosswalk the person.

    ``link_status`` is ``linked``, ``not_indexed`` (no index row: the caller names it, such as
    ``unknown_patient``) or ``unknown_mrn`` (the index's MRN is no known person). Index rows
    listed twice for one key are left out.
    """
    ids = index.select(*keys, pl.col("mrn").alias("_mrn")).unique(subset=list(keys), keep="none")
    people = mrn_people(crosswalk).rename({"mrn": "_mrn"})
    linked = frame.join(ids, on=list(keys), how="left").join(people, on="_mrn", how="left")
    return linked.with_columns(
        pl.when(pl.col("_mrn").is_null())
        .then(pl.lit(not_indexed))
        .when(pl.col("person_key").is_null())
        .then(pl.lit("unknown_mrn"))
        .otherwise(pl.lit("linked"))
        .alias("link_status")
    ).drop("_mrn")


def index_rules(
    columns: Sequence[str], keys: Sequence[str], what: str
) -> list[tuple[pl.Expr, str]]:
    """The quarantine rules of an identity index read with ``read_manifest``: every column
    filled; a key listed for two MRNs quarantined on every line that lists it (which person it
    is cannot be decided); a line repeating an earlier one set aside.

    Args:
        columns: the index's columns (``mrn`` among them); all must be filled but ``site``
            columns the caller leaves out.
        keys: the columns naming a source identifier.
        what: the identifier, for the reason ("lab patient id", "subject").
    """
    return [
        *((blank(c), f"{c} is empty") for c in columns),
        (
            pl.col("mrn").n_unique().over(list(keys)) > 1,
            f"the {what} is listed for more than one MRN",
        ),
        (
            ~pl.struct([*keys, "mrn"]).is_first_distinct(),
            "the line repeats an earlier line of the index",
        ),
    ]
