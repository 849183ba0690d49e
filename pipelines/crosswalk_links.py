"""The person of a silver row, read back from the restricted person crosswalk.

Each silo links its rows by its own rule: an index or manifest names an EHR MRN, and the MRN's
crosswalk row names the person. The crosswalk holds the silos' identifiers too, linked by those
same rules (:mod:`pipelines.identity`), but it is append-only: an identifier once linked keeps
its person, and a later manifest that would move it (to another person, or to an MRN no one
holds) is quarantined as a conflict, not applied. So for every identifier its silo's index or
manifest still lists, a silver step asks the crosswalk first:

* an identifier the crosswalk holds is the person of its own crosswalk row, whatever MRN the
  manifest names now;
* an identifier the crosswalk does not hold and that is quarantined in
  ``_rejects/identity/crosswalk`` for a reason other than ``unknown_mrn`` (two people claim it,
  its MRN is shared) is linked to no one: ``identity_conflict``. An identifier quarantined as
  ``unknown_mrn`` points to no one, which the silo's own status already says;
* any other identifier (one whose manifest row landed after the crosswalk was built) is linked
  by the silo's rule, as the next crosswalk run will link it.

An identifier its index no longer lists (its line removed, or quarantined when the index was
read: listed for two MRNs, an empty MRN) keeps the silo's own status (``unknown_patient``,
``not_enrolled``) and no person: the crosswalk never links a row its source no longer vouches
for. Either way, silver never names another person than the crosswalk's for an identifier the
crosswalk holds.

Conflicts are matched on ``(source_system, identifier_type, identifier_sha256)``, the digest
:func:`pipelines.ehr.identifier_digests` gives, since the quarantine never holds a value.
"""

import polars as pl

from pipelines.ehr import CONFLICT_REASONS, CONFLICT_SCHEMA, identifier_digests
from pipelines.lake import Lake

CONFLICTS_PATH = "_rejects/identity/crosswalk"
"""The quarantine of identities that could not be linked (:data:`pipelines.ehr.CONFLICT_SCHEMA`)."""

IDENTITY_CONFLICT = "identity_conflict"
"""The link status of a row whose identifier is in conflict and not in the crosswalk."""

UNDECIDED_REASONS: tuple[str, ...] = tuple(r for r in CONFLICT_REASONS if r != "unknown_mrn")
"""Conflict reasons that leave which person an identifier is undecided (``unknown_mrn`` says it
is no one, which the silos' ``unknown_mrn`` and ``unknown_patient`` statuses already say)."""

CROSSWALK_PERSON = "_crosswalk_person"
"""The column :func:`crosswalk_identity` adds: the person of the identifier's crosswalk row."""
IN_CONFLICT = "_identity_conflict"
"""The column :func:`crosswalk_identity` adds: the identifier is undecided and not linked."""


def read_conflicts(lake: Lake) -> pl.DataFrame:
    """The identity quarantine, or no rows before the crosswalk was first built."""
    if lake.table(CONFLICTS_PATH) is None:
        return pl.DataFrame(schema=CONFLICT_SCHEMA)
    return lake.read(CONFLICTS_PATH)


def crosswalk_identity(
    frame: pl.DataFrame,
    crosswalk: pl.DataFrame,
    conflicts: pl.DataFrame | None,
    *,
    source_system: pl.Expr,
    identifier_type: str,
    identifier: str,
) -> pl.DataFrame:
    """``frame`` with what the crosswalk says of each row's source identifier.

    Adds ``_crosswalk_person`` (the person of the identifier's own crosswalk row, or null) and
    ``_identity_conflict`` (true when the crosswalk has no row for it and the quarantine holds
    it for one of :data:`UNDECIDED_REASONS`). Rows keep their order.

    Args:
        frame: rows naming a source identifier.
        crosswalk: the person crosswalk. One that holds only MRNs (``identifier_type``,
            ``identifier``, ``person_key``, no ``source_system``) holds no silo identifier.
        conflicts: the identity quarantine, or None when there is none.
        source_system: the identifier's source system as the crosswalk writes it
            (``lab:<site>``, ``trials:<studyid>``, ``genomics``, ``imaging``).
        identifier_type: the crosswalk's identifier type (``lab_patient_id``, ...).
        identifier: the column of ``frame`` holding the identifier.
    """
    key = ["_system", identifier]
    keyed = frame.with_columns(source_system.cast(pl.String()).alias("_system"))
    ids = keyed.select(key).drop_nulls().unique(maintain_order=True)
    if "source_system" in crosswalk.columns:
        own = (
            crosswalk.filter(pl.col("identifier_type") == identifier_type)
            .select(
                pl.col("source_system").alias("_system"),
                pl.col("identifier").alias(identifier),
                pl.col("person_key").alias(CROSSWALK_PERSON),
            )
            # An identifier listed twice is not a crosswalk the suite passes: trust neither.
            .unique(subset=key, keep="none")
        )
    else:
        own = pl.DataFrame(schema={"_system": pl.String(), identifier: pl.String()})
        own = own.with_columns(pl.lit(None, pl.String()).alias(CROSSWALK_PERSON))
    quarantined = pl.DataFrame(schema=CONFLICT_SCHEMA) if conflicts is None else conflicts
    undecided = (
        quarantined.filter(
            pl.col("identifier_type") == identifier_type,
            pl.col("reason").is_in(UNDECIDED_REASONS),
        )
        .select(pl.col("source_system").alias("_system"), pl.col("identifier_sha256"))
        .unique()
        .with_columns(pl.lit(True).alias("_quarantined"))
    )
    found = (
        ids.with_columns(
            identifier_digests(ids.get_column(identifier).cast(pl.String())).alias(
                "identifier_sha256"
            )
        )
        .join(own, on=key, how="left", maintain_order="left")
        .join(undecided, on=["_system", "identifier_sha256"], how="left", maintain_order="left")
        .select(
            *key,
            CROSSWALK_PERSON,
            (pl.col(CROSSWALK_PERSON).is_null() & pl.col("_quarantined").fill_null(False)).alias(
                IN_CONFLICT
            ),
        )
    )
    return (
        keyed.join(found, on=key, how="left", maintain_order="left")
        .with_columns(pl.col(IN_CONFLICT).fill_null(False))
        .drop("_system")
    )


def with_crosswalk(
    linked: pl.DataFrame,
    crosswalk: pl.DataFrame,
    conflicts: pl.DataFrame | None,
    *,
    source_system: pl.Expr,
    identifier_type: str,
    identifier: str,
    unlisted: str | None,
) -> pl.DataFrame:
    """Rows linked by a silo's rule (``person_key``, ``link_status``), made to agree with the
    crosswalk: where the silo's index lists the identifier, the person of its crosswalk row
    (status ``linked``) where there is one, no one (status ``identity_conflict``) where the
    identifier is in conflict, and the rule's link otherwise. Columns and row order are kept.

    Args:
        linked: rows with ``person_key`` and ``link_status`` from the silo's rule.
        crosswalk: as :func:`crosswalk_identity`.
        conflicts: as :func:`crosswalk_identity`.
        source_system: as :func:`crosswalk_identity`.
        identifier_type: as :func:`crosswalk_identity`.
        identifier: as :func:`crosswalk_identity`.
        unlisted: the rule's status of a row whose identifier its index does not list
            (``unknown_patient``, ``not_enrolled``): such rows keep the rule's link. None when
            every row comes from the index itself.
    """
    found = crosswalk_identity(
        linked,
        crosswalk,
        conflicts,
        source_system=source_system,
        identifier_type=identifier_type,
        identifier=identifier,
    )
    listed = pl.lit(True) if unlisted is None else pl.col("link_status") != unlisted
    person = pl.when(listed).then(pl.col(CROSSWALK_PERSON))
    conflict = listed & pl.col(IN_CONFLICT)
    return found.with_columns(
        pl.when(person.is_not_null())
        .then(person)
        .when(conflict)
        .then(pl.lit(None, pl.String()))
        .otherwise(pl.col("person_key"))
        .alias("person_key"),
        pl.when(person.is_not_null())
        .then(pl.lit("linked"))
        .when(conflict)
        .then(pl.lit(IDENTITY_CONFLICT))
        .otherwise(pl.col("link_status"))
        .alias("link_status"),
    ).drop(CROSSWALK_PERSON, IN_CONFLICT)
