"""Identity: the restricted person crosswalk links every source identifier of every silo to one
person, by the same deterministic rules the silos link their rows with.

The EHR gives people: a FHIR Patient id and its MRNs (:func:`pipelines.ehr.crosswalk_update`).
Every other silo sends a manifest that names, for each of its identifiers, an EHR MRN: a lab's
patient index (site and lab patient id), the biobank's sample manifest (VCF sample id), the RIS
order export (DICOM PatientID, per order) and a trial's enrolment map (study and USUBJID). Each
manifest row is linked by its silo's own rule (``lab.index_links``, ``genomics.manifest_links``,
``imaging.order_links``, ``trials.enrolment_links``). Silver links its rows by the same rules,
but asks the crosswalk first (:mod:`pipelines.crosswalk_links`): an identifier the crosswalk
holds is its crosswalk person, and one quarantined as undecided is linked to no one, so a
silver row and the crosswalk name the same person even after a manifest changed.

Nothing is guessed. A row that cannot be linked is quarantined in ``_rejects/identity/crosswalk``
with a reason (:data:`pipelines.ehr.CONFLICT_REASONS`) and a locator, and its identifier is not
linked:

* ``unknown_mrn``: the row's MRN is held by no EHR patient (the row points to no one);
* ``claimed_by_two_people``: the identifier's rows name two different people (a DICOM
  PatientID whose orders name two people);
* ``linked_to_another_person``: the identifier is already linked, to another person than the
  row names. The crosswalk is append-only: a link never moves, so a later manifest that would
  move it is a conflict, not a change.

Bronze manifests keep no line numbers, so a manifest row's locator is the SHA-256 of the value
naming it (``sha256(accession_number):<16 hex>``); the quarantine never holds a value.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from pipelines import genomics, imaging, lab, trials
from pipelines.crosswalk_links import CONFLICTS_PATH as CONFLICTS_PATH
from pipelines.ehr import (
    CONFLICT_REASONS,
    CONFLICT_SCHEMA,
    CROSSWALK_KEY,
    CROSSWALK_SCHEMA,
    INGEST_COLUMNS,
    crosswalk_update,
    identifier_digests,
)

PATIENTS_PATH = "bronze/ehr/patients"

CLAIM_SCHEMA: dict[str, pl.DataType] = {
    "source_system": pl.String(),
    "identifier_type": pl.String(),
    "identifier": pl.String(),
    "person_key": pl.String(),
    "link_rule": pl.String(),
    "source": pl.String(),
    "locator": pl.String(),
    **INGEST_COLUMNS,
}
"""One manifest row's claim: this identifier is the person its silo's rule gives (null when
the rule gives none), with where the row is."""

RULE_OF_TYPE: dict[str, str] = {
    "fhir_patient_id": "ehr_patient",
    "mrn": "ehr_patient",
    "lab_patient_id": "lab_index_mrn",
    "vcf_sample_id": "sample_manifest_mrn",
    "dicom_patient_id": "ris_order_mrn",
    "usubjid": "enrolment_mrn",
}
"""The link rule of each identifier type (the EHR's ``ehr_mrn`` is set where it applies)."""

IDENTIFIER_TYPES: tuple[str, ...] = tuple(RULE_OF_TYPE)


def _claims(
    linked: pl.DataFrame,
    *,
    source_system: pl.Expr,
    identifier_type: str,
    identifier: str,
    locator: str,
    rule: str,
) -> pl.DataFrame:
    """Claim rows from a manifest linked by its silo's rule (``person_key`` set or null),
    located by the digest of the ``locator`` column."""
    digests = identifier_digests(linked.get_column(locator))
    return linked.select(
        source_system.alias("source_system"),
        pl.lit(identifier_type).alias("identifier_type"),
        pl.col(identifier).alias("identifier"),
        "person_key",
        pl.lit(rule).alias("link_rule"),
        pl.col("source_file").alias("source"),
        pl.format("sha256({}):{}", pl.lit(locator), digests.str.slice(0, 16)).alias("locator"),
        "source_sha256",
        "ingested_at",
    ).cast(CLAIM_SCHEMA)


_PROVENANCE = ("source_file", "source_sha256", "ingested_at")


def lab_claims(index: pl.DataFrame, crosswalk: pl.DataFrame) -> pl.DataFrame:
    """Each lab patient index row (``site, lab_patient_id, mrn``) as a claim of
    ``("lab:<site>", "lab_patient_id", id)``, linked by the lab's rule (``lab.index_links``)."""
    rows = index.select(
        "site", "lab_patient_id", pl.col("lab_patient_id").alias("patient_id"), *_PROVENANCE
    )
    return _claims(
        lab.index_links(rows, index, crosswalk),
        source_system=pl.concat_str(pl.lit("lab:"), pl.col("site")),
        identifier_type="lab_patient_id",
        identifier="lab_patient_id",
        locator="lab_patient_id",
        rule="lab_index_mrn",
    )


def sample_claims(samples: pl.DataFrame, crosswalk: pl.DataFrame) -> pl.DataFrame:
    """Each sample manifest row as a claim of ``("genomics", "vcf_sample_id", sample)``,
    linked by the genomics rule (``genomics.manifest_links``)."""
    # Row by row: a sample listed by two manifests is two claims, one per row.
    people = genomics.manifest_links(samples, crosswalk).get_column("person_key")
    rows = samples.select("sample_id", *_PROVENANCE).with_columns(people)
    return _claims(
        rows,
        source_system=pl.lit("genomics"),
        identifier_type="vcf_sample_id",
        identifier="sample_id",
        locator="sample_id",
        rule="sample_manifest_mrn",
    )


def order_claims(orders: pl.DataFrame, crosswalk: pl.DataFrame) -> pl.DataFrame:
    """Each RIS order as a claim of ``("imaging", "dicom_patient_id", PatientID)``: the person
    the RIS rule (``imaging.order_links``) gives an instance of the order's accession and
    PatientID.

    The orders do not name an archive (IssuerOfPatientID), and the imaging rule matches on
    PatientID alone, so PatientIDs are one ``imaging`` system. A PatientID whose orders name
    two people is a conflict (:func:`resolve_claims`), as the imaging rule leaves it unlinked.
    """
    probe = orders.select("patient_id", "accession_number")
    people = imaging.order_links(probe, orders, crosswalk).select("accession_number", "person_key")
    rows = orders.select("patient_id", "accession_number", *_PROVENANCE).join(
        people, on="accession_number", how="left", maintain_order="left"
    )
    return _claims(
        rows,
        source_system=pl.lit("imaging"),
        identifier_type="dicom_patient_id",
        identifier="patient_id",
        locator="accession_number",
        rule="ris_order_mrn",
    )


def enrolment_claims(enrolment: pl.DataFrame, crosswalk: pl.DataFrame) -> pl.DataFrame:
    """Each enrolment map row as a claim of ``("trials:<studyid>", "usubjid", usubjid)``,
    linked by the trials' rule (``trials.enrolment_links``)."""
    rows = enrolment.select("studyid", "usubjid", *_PROVENANCE)
    return _claims(
        trials.enrolment_links(rows, enrolment, crosswalk),
        source_system=pl.concat_str(pl.lit("trials:"), pl.col("studyid")),
        identifier_type="usubjid",
        identifier="usubjid",
        locator="usubjid",
        rule="enrolment_mrn",
    )


MANIFESTS: dict[str, Callable[[pl.DataFrame, pl.DataFrame], pl.DataFrame]] = {
    lab.INDEX_PATH: lab_claims,
    genomics.SAMPLES_PATH: sample_claims,
    imaging.ORDERS_PATH: order_claims,
    trials.ENROLMENT_PATH: enrolment_claims,
}
"""The bronze identity manifests of the silos, and how their rows become claims."""


def resolve_claims(
    claims: pl.DataFrame, crosswalk: pl.DataFrame, *, linked_at: datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """New crosswalk rows from claims, and the claims quarantined instead.

    Per identifier: a claim without a person is ``unknown_mrn``; claims naming two people are
    all ``claimed_by_two_people``; a claim naming another person than the identifier's
    existing link is ``linked_to_another_person``. An identifier not linked yet whose other
    claims name one person is linked to that person.

    Args:
        claims: rows with :data:`CLAIM_SCHEMA`.
        crosswalk: the crosswalk so far (with this run's EHR rows).
        linked_at: the time recorded on new rows.

    Returns:
        ``(rows, conflicts)`` with :data:`pipelines.ehr.CROSSWALK_SCHEMA` and
        :data:`pipelines.ehr.CONFLICT_SCHEMA`.
    """
    key = list(CROSSWALK_KEY)
    existing = crosswalk.select(*key, pl.col("person_key").alias("_linked"))
    people = (
        claims.filter(pl.col("person_key").is_not_null())
        .group_by(key)
        .agg(pl.col("person_key").n_unique().alias("_people"))
    )
    checked = (
        claims.join(existing, on=key, how="left", maintain_order="left")
        .join(people, on=key, how="left", maintain_order="left")
        .with_columns(
            pl.when(pl.col("person_key").is_null())
            .then(pl.lit("unknown_mrn"))
            .when(pl.col("_people") > 1)
            .then(pl.lit("claimed_by_two_people"))
            .when(pl.col("_linked").is_not_null() & (pl.col("_linked") != pl.col("person_key")))
            .then(pl.lit("linked_to_another_person"))
            .alias("reason")
        )
    )
    rows = (
        checked.filter(pl.col("reason").is_null() & pl.col("_linked").is_null())
        .unique(subset=key, keep="first", maintain_order=True)
        .select(
            *key,
            "person_key",
            pl.lit(linked_at).cast(CROSSWALK_SCHEMA["linked_at"]).alias("linked_at"),
            "link_rule",
        )
        .cast(CROSSWALK_SCHEMA)
    )
    quarantined = checked.filter(pl.col("reason").is_not_null())
    conflicts = quarantined.select(
        "source_system",
        "identifier_type",
        identifier_digests(quarantined.get_column("identifier")).alias("identifier_sha256"),
        "reason",
        "source",
        "locator",
        "source_sha256",
        "ingested_at",
    ).cast(CONFLICT_SCHEMA)
    return rows, conflicts


def with_link_rules(crosswalk: pl.DataFrame) -> pl.DataFrame:
    """The crosswalk with every row's ``link_rule``: a row written before link rules were
    recorded (a null rule, or no column at all) gets the rule of its identifier type.

    Raises:
        ValueError: a row of an identifier type without a rule.
    """
    if "link_rule" not in crosswalk.columns:
        crosswalk = crosswalk.with_columns(pl.lit(None, pl.String()).alias("link_rule"))
    filled = (
        crosswalk.select(list(CROSSWALK_SCHEMA))
        .cast(CROSSWALK_SCHEMA)
        .with_columns(
            pl.col("link_rule").fill_null(
                pl.col("identifier_type").replace_strict(RULE_OF_TYPE, default=None)
            )
        )
    )
    if filled.get_column("link_rule").null_count():
        raise ValueError(
            "the crosswalk holds identifier types without a link rule; known types: "
            + ", ".join(IDENTIFIER_TYPES)
        )
    return filled


@dataclass(frozen=True)
class CrosswalkBuild:
    """What one crosswalk run adds and quarantines."""

    rows: pl.DataFrame
    """New identities (:data:`pipelines.ehr.CROSSWALK_SCHEMA`), EHR rows first."""
    relabelled: pl.DataFrame
    """Existing rows whose link rule was null, given the rule of their identifier type (the
    person, identifier and time unchanged). A crosswalk without the column at all is
    rewritten whole with :func:`with_link_rules` instead."""
    conflicts: pl.DataFrame
    """Every quarantined row (:data:`pipelines.ehr.CONFLICT_SCHEMA`), sorted."""

    def conflict_counts(self) -> dict[str, int]:
        """Quarantined rows per reason, every reason listed."""
        counts = dict(self.conflicts.group_by("reason").len().iter_rows())
        return {reason: int(counts.get(reason, 0)) for reason in CONFLICT_REASONS}

    def new_by_system(self) -> dict[str, int]:
        """New identities per source system."""
        return dict(sorted(self.rows.group_by("source_system").len().iter_rows()))


def build_crosswalk(
    patients: pl.DataFrame,
    manifests: Mapping[str, pl.DataFrame],
    crosswalk: pl.DataFrame | None,
    *,
    linked_at: datetime,
) -> CrosswalkBuild:
    """Link the EHR's patients, then every manifest's identifiers, to people.

    Args:
        patients: bronze EHR patients (``id``, ``mrn`` and their provenance).
        manifests: bronze manifests by lake path (keys of :data:`MANIFESTS`); a silo whose
            manifest table does not exist yet is left out by the caller.
        crosswalk: the current crosswalk, or None before the first run.
        linked_at: the time recorded on new rows.

    Returns:
        The new rows, the relabelled ones and every conflict.

    Raises:
        ValueError: a manifest path that is not an identity manifest.
    """
    unknown = sorted(set(manifests) - set(MANIFESTS))
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)} are not identity manifests; pass some of {', '.join(MANIFESTS)}"
        )
    current = (
        pl.DataFrame(schema=CROSSWALK_SCHEMA) if crosswalk is None else with_link_rules(crosswalk)
    )
    unruled = (
        pl.Series("unruled", [False] * current.height, dtype=pl.Boolean())
        if crosswalk is None or "link_rule" not in crosswalk.columns
        else crosswalk.get_column("link_rule").is_null()
    )
    ehr_rows, ehr_conflicts = crosswalk_update(patients, current, linked_at=linked_at)
    working = pl.concat([current, ehr_rows])
    parts = [MANIFESTS[path](frame, working) for path, frame in sorted(manifests.items())]
    claims = pl.concat(parts) if parts else pl.DataFrame(schema=CLAIM_SCHEMA)
    rows, conflicts = resolve_claims(claims, working, linked_at=linked_at)
    return CrosswalkBuild(
        rows=pl.concat([ehr_rows, rows]),
        relabelled=current.filter(unruled),
        conflicts=pl.concat([ehr_conflicts, conflicts]).sort(
            "source_system", "identifier_type", "source", "locator", "reason"
        ),
    )
