"""The federation facts of a dataset: the silos it draws on, how their rows reach one person,
whose consent lets them in, and how many of its source rows linked.

The sentences live here, once, so that the data card the catalog serves and any report of the
lake say the same thing. They are catalog text shown to a model, so they describe and never
instruct (see :mod:`mcp_catalog.lint`).
"""

from collections.abc import Collection, Iterable
from dataclasses import dataclass

import polars as pl

from mcp_catalog.governance.views import ViewSpec
from mcp_catalog.manifest import DatasetFederation
from mcp_catalog.policy import DatasetPolicy

PERSON_KEY = "person_key"
"""The column of a silver table that names the person a row is linked to (null: unlinked)."""

LINKAGE_RULES: dict[str, str] = {
    "ehr": (
        "EHR records link by the FHIR Patient id and the MRN of their Patient resource: a "
        "Patient whose id or MRN is already linked joins that person, any other becomes a new "
        "person."
    ),
    "lab": (
        "Laboratory results link through their site's patient index (site and site patient id "
        "to MRN), then the MRN to the person; a result whose patient id the index lacks, or "
        "whose MRN no person holds, stays unlinked."
    ),
    "imaging": (
        "DICOM instances link through the RIS order of their accession number (accession "
        "number to MRN), then the MRN to the person, only when the order's PatientID matches "
        "the instance's; an instance without an order links through its PatientID's other "
        "orders when they name one person, and a PatientID that disagrees with its order stays "
        "unlinked."
    ),
    "genomics": (
        "VCF samples link through the sample manifest (sample id to MRN), then the MRN to the "
        "person; a sample whose MRN no person holds stays unlinked."
    ),
    "trials": (
        "Trial subjects link through their study's enrolment map (STUDYID and USUBJID to MRN), "
        "then the MRN to the person; a subject missing from the map, or whose MRN no person "
        "holds, stays unlinked."
    ),
}
"""How each silo's rows are matched to a person, one sentence per silo."""

CROSSWALK_RULE = (
    "Matching is exact and deterministic, through the restricted person crosswalk, which is "
    "never served; an identifier claimed by two people, or a manifest row naming no one, is "
    "quarantined with its reason, never guessed."
)
"""What every silo's linkage shares."""

AGGREGATE_RULE = (
    "The dataset is an aggregate: its rows are not people, so none of them is linked, and it "
    "is computed only over source rows linked to a consented person."
)
"""Said first of a dataset whose rows are not about one person each."""

SILVER = "silver"


class FederationError(ValueError):
    """A dataset's sources or counts cannot be described: a source outside the silver silos,
    a silo without a linkage rule, or a primary source without a ``person_key`` column."""


@dataclass(frozen=True)
class LinkCounts:
    """How many rows of a dataset's primary source carry a person, and how many it has."""

    linked_rows: int
    source_rows: int


def silos_of(sources: Iterable[str]) -> list[str]:
    """The silos a dataset's silver sources belong to.

    Args:
        sources: lake paths of the form ``silver/<silo>/<table>``.

    Returns:
        The silo names, once each, sorted.

    Raises:
        FederationError: when a path is not a silver table of a silo with a linkage rule.
    """
    silos = set()
    for source in sources:
        parts = source.split("/")
        if len(parts) < 3 or parts[0] != SILVER:
            raise FederationError(
                f"source {source!r} is not a silver table; sources are silver/<silo>/<table>"
            )
        if parts[1] not in LINKAGE_RULES:
            raise FederationError(
                f"silo {parts[1]!r} has no linkage rule; add one to LINKAGE_RULES "
                f"(known: {', '.join(sorted(LINKAGE_RULES))})"
            )
        silos.add(parts[1])
    if not silos:
        raise FederationError("a dataset needs at least one silver source")
    return sorted(silos)


def primary_source(spec: ViewSpec) -> str:
    """The silver table a view's rows are drawn from: the source of its first key column.

    ``imaging_series`` reads studies, series and instances but has one row per series, so its
    primary source is the silver series; ``variant_frequencies`` is keyed by position and
    alleles, so its primary source is the silver variants.

    Args:
        spec: the view.

    Returns:
        The lake path of the primary source.

    Raises:
        ValueError: when the view does not say which source a key column comes from.
    """
    return spec.column_lineage()[spec.key[0]][0][0]


def link_counts(frame: pl.LazyFrame | pl.DataFrame) -> LinkCounts:
    """The rows of a silver table with a ``person_key``, and all its rows.

    Args:
        frame: the table (a lazy scan reads only ``person_key``).

    Returns:
        The counts.

    Raises:
        FederationError: when the table has no ``person_key`` column.
    """
    lazy = frame.lazy()
    if PERSON_KEY not in lazy.collect_schema().names():
        raise FederationError(
            "the primary source has no person_key column, so its rows cannot be counted as "
            "linked; describe the dataset as an aggregate instead"
        )
    counts = lazy.select(
        pl.col(PERSON_KEY).is_not_null().sum().alias("linked"), pl.len().alias("rows")
    ).collect()
    return LinkCounts(linked_rows=int(counts["linked"][0]), source_rows=int(counts["rows"][0]))


def linkage_rule(silos: Iterable[str], *, aggregate: bool = False) -> str:
    """The linkage sentences of a dataset drawing on ``silos``.

    Args:
        silos: silo names (see :func:`silos_of`).
        aggregate: the dataset's rows are not people (:data:`AGGREGATE_RULE` comes first).

    Returns:
        The silos' rules in the order given, then :data:`CROSSWALK_RULE`.

    Raises:
        FederationError: when a silo has no linkage rule.
    """
    sentences = [AGGREGATE_RULE] if aggregate else []
    for silo in silos:
        if silo not in LINKAGE_RULES:
            raise FederationError(f"silo {silo!r} has no linkage rule; add one to LINKAGE_RULES")
        sentences.append(LINKAGE_RULES[silo])
    sentences.append(CROSSWALK_RULE)
    return " ".join(sentences)


def consent_rule(
    rules: DatasetPolicy,
    *,
    silos: Collection[str],
    aggregate: bool = False,
    unblinded_studies: Collection[str] = (),
) -> str:
    """The consent sentence of a dataset, from its policy.

    Args:
        rules: the dataset's policy.
        silos: the silos it draws on; trial datasets also hold to each study's own consent
            and to its blinding.
        aggregate: the dataset's rows are not people, so consent is applied when it is built
            (a withdrawal reaches it at the next build) rather than again at query time.
        unblinded_studies: the STUDYIDs the policy lists as unblinded
            (``Policy.unblinded_studies()``).

    Returns:
        One or more sentences.
    """
    if not rules.consent:
        purposes = ", ".join(rules.purposes)
        text = f"Not filtered by consent: the dataset serves only {purposes}"
        if any(access.break_glass_only for access in rules.access.values()):
            text += (
                ", and its rows are released only under an active break-glass grant, for the "
                "granted patient"
            )
        return text + "."
    scope = (
        f"the {rules.consent_scope} scope"
        if rules.consent_scope
        else "the scope of the purpose of use"
    )
    if aggregate:
        sentences = [
            f"Opt-in: computed only over people whose latest consent decision for {scope} "
            "permitted use when the dataset was built; its rows are aggregates, not people, so "
            "a withdrawal of consent reaches them at the next build."
        ]
    else:
        sentences = [
            f"Opt-in: a person's rows are included only while their latest consent decision for "
            f"{scope} permits use, so no consent record, a revocation or a deny provision leaves "
            "them out; checked when the dataset is built and again at every query against the "
            "latest decisions, for the consent scope of the purpose of use."
        ]
    if "trials" in silos:
        sentences.append(
            "Trial rows also need the subject's consent to their own study not to be withdrawn."
        )
        unblinded = sorted(unblinded_studies)
        sentences.append(
            "Treatment arms are shown only for studies the policy lists as unblinded "
            f"({', '.join(unblinded)}) and are empty for every other study."
            if unblinded
            else "Treatment arms are empty for every study, as the policy lists none as unblinded."
        )
    return " ".join(sentences)


def dataset_federation(
    sources: Iterable[str],
    rules: DatasetPolicy,
    *,
    counts: LinkCounts | None,
    unblinded_studies: Collection[str] = (),
) -> DatasetFederation:
    """The federation block of one dataset's catalog entry.

    Args:
        sources: the dataset's silver sources.
        rules: its policy.
        counts: linked and total rows of its primary source (:func:`link_counts`; zeros when
            the source does not exist yet), or None for an aggregate whose rows are not people.
        unblinded_studies: the STUDYIDs the policy lists as unblinded.

    Returns:
        The validated block; ``linked_share`` is None when no source row needs linking.

    Raises:
        FederationError: when a source is not a silver table of a known silo.
        pydantic.ValidationError: when the counts are inconsistent (more linked than rows).
    """
    silos = silos_of(sources)
    aggregate = counts is None
    counts = counts if counts is not None else LinkCounts(0, 0)
    share = counts.linked_rows / counts.source_rows if counts.source_rows else None
    return DatasetFederation(
        silos=silos,
        linkage_rule=linkage_rule(silos, aggregate=aggregate),
        consent_rule=consent_rule(
            rules, silos=silos, aggregate=aggregate, unblinded_studies=unblinded_studies
        ),
        linked_share=share,
        linked_rows=counts.linked_rows,
        source_rows=counts.source_rows,
    )
