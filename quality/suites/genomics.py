"""Genomics suites: VCF files, variants, genotypes, the sample manifest and research views.

Severities follow the EHR suites: keys, VCF format rules (REF and ALT alphabets, allele
indices, END not before POS), counts and privacy are errors; "not in the future", a
manifest MRN of an unexpected shape and files or samples that will not link are warnings.
A genotype whose sample is not in the manifest is a warning in bronze (bronze keeps what the
file says) and an error in silver, where it would be a genotype of nobody.

The VCF connector was written alongside these suites, so its columns (``connectors.vcf``)
are restated here, as are the research views' (``quality`` may not import ``mcp_catalog``);
tests hold both equal to the originals.

Variants and genotypes carry one column per header INFO and FORMAT field (``info_<KEY>``,
``fmt_<KEY>``), so their column-set check requires every fixed column without forbidding
others, and a second check allows only ``info_``/``fmt_`` columns besides. FORMAT checks
(``fmt_DP``, ``fmt_GQ``) apply where the header declared the field.
"""

from collections.abc import Callable, Iterable, Mapping
from functools import partial

import polars as pl

from connectors.vcf.schema import GENOTYPE_COLUMNS, VARIANT_COLUMNS, VCF_FILES_SCHEMA
from quality.results import Severity
from quality.suites._checks import (
    SHA256_HEX,
    compound_unique,
    derived_true,
    exact_columns,
    in_set,
    matches,
    not_null,
    ordered,
    references,
    sha256_hex,
    unique,
)
from quality.suites._model import Check, DeriveContext, Suite
from quality.suites.bronze import INGEST_COLUMNS, PERSON_KEY
from quality.suites.gold import AUDIENCE, GoldView, _privacy, _pseudonym_format
from quality.valuesets import ZYGOSITY

BRONZE = "bronze/genomics"
SILVER = "silver/genomics"
SAMPLES = f"{BRONZE}/samples"
GOLD_PATIENTS = f"gold/{AUDIENCE}/patients"

_UTC = pl.Datetime("us", "UTC")
_INGEST_DTYPES: dict[str, pl.DataType] = {"source_sha256": pl.String(), "ingested_at": _UTC}

VCF_FILES_DTYPES: dict[str, pl.DataType] = dict(VCF_FILES_SCHEMA)
"""``connectors.vcf.VCF_FILES_SCHEMA``."""
VCF_LEDGER_DTYPES: dict[str, pl.DataType] = {
    "source_sha256": pl.String(),
    "source_modified_at": _UTC,
    "ingested_at": _UTC,
}
"""What the pipeline adds to each file's row in ``bronze/genomics/vcf_files``
(``pipelines.genomics.FILE_LEDGER_COLUMNS``): the landed file's hash, when it was written
(freshness is measured from it) and when it was ingested."""
VARIANT_DTYPES: dict[str, pl.DataType] = {c.name: c.dtype for c in VARIANT_COLUMNS}
"""The fixed columns of ``connectors.vcf.variants_schema`` (``info_<KEY>`` columns follow)."""
GENOTYPE_DTYPES: dict[str, pl.DataType] = {c.name: c.dtype for c in GENOTYPE_COLUMNS}
"""The fixed columns of ``connectors.vcf.genotypes_schema`` (``fmt_<KEY>`` columns follow)."""
SAMPLES_DTYPES: dict[str, pl.DataType] = {
    "sample_id": pl.String(),
    "mrn": pl.String(),
    "specimen_type": pl.String(),
    "collection_date": pl.Date(),
    "sequencing_platform": pl.String(),
    "vcf_file": pl.String(),
    "source_file": pl.String(),
}
"""The sample manifest (``landing/genomics/samples.csv``) as the pipeline lands it."""

COMPRESSIONS = ("bgzf", "gzip", "none", "bcf")
INDEX_KINDS = ("tbi", "csi")
MAX_PLOIDY = 4
"""Upper bound of ``alt_allele_copies``: tetraploid calls are the most a germline VCF holds."""
FREQUENCY_TOLERANCE = 1e-9
"""How far ``allele_frequency`` may be from ``allele_count / allele_number`` (float noise)."""
LINKED_GENOTYPES_MOSTLY = 0.99
"""Share of silver genotype rows that must have a ``person_key`` before a warning."""

_BASES = "[ACGTNacgtn]+"
REF_ALLELE = rf"^{_BASES}$"
"""VCF 4.3 §1.6.1 REF: A, C, G, T, N, case-insensitive."""
_MATE = r"[^\[\],\s]+:[0-9]+"
ALT_ALLELE = (
    rf"^(?:{_BASES}"
    r"|\*"
    r"|<[^<>,\s]+>"
    rf"|{_BASES}\[{_MATE}\[|{_BASES}\]{_MATE}\]|\]{_MATE}\]{_BASES}|\[{_MATE}\[{_BASES}"
    rf"|\.{_BASES}|{_BASES}\.)$"
)
"""One VCF 4.3 ALT allele: bases, ``*`` (overlapping deletion), a symbolic ``<ID>``, a
breakend (``t[p[``, ``t]p]``, ``]p]t``, ``[p[t``) or a single breakend (``.t``, ``t.``)."""
FILEFORMAT = r"^VCFv4\.[0-9]+$"
EHR_MRN = r"^MRN[0-9]{8}$"
"""A whole value shaped like the EHR's MRNs (:data:`~quality.suites._checks.MRN_LIKE`)."""

GENOMICS_GOLD_VIEWS: tuple[GoldView, ...] = (
    GoldView(
        "variant_frequencies",
        (
            "chrom",
            "pos",
            "end",
            "ref",
            "alt",
            "allele_count",
            "allele_number",
            "allele_frequency",
            "carriers",
            "homozygous_alt",
            "filter_pass",
        ),
        None,
    ),
    GoldView(
        "genotypes",
        (
            "person_pseudonym",
            "chrom",
            "pos",
            "end",
            "ref",
            "alt",
            "genotype",
            "alt_allele_copies",
            "zygosity",
            "phased",
            "depth",
            "genotype_quality",
        ),
        None,
    ),
)
"""The research views of the genomics silo (contract section 4)."""


# --- shared builders -----------------------------------------------------------------------


def _not_negative(column: str, *, what: str = "a count (not negative)") -> Check:
    return Check(
        "expect_column_values_to_be_between",
        {"column": column, "min_value": 0},
        f"{column} is {what}",
        "error",
        column,
    )


def _at_most(smaller: str, larger: str, description: str) -> Check:
    """``smaller <= larger`` where both are set."""
    return Check(
        "expect_column_pair_values_a_to_be_greater_than_b",
        {
            "column_A": larger,
            "column_B": smaller,
            "or_equal": True,
            "ignore_row_if": "either_value_is_missing",
        },
        description,
        "error",
        f"{smaller},{larger}",
    )


def _dtype_ok(actual: pl.DataType, expected: pl.DataType) -> bool:
    if isinstance(expected, pl.Datetime):
        # Any time unit: Delta stores microseconds, a frame fresh from the connector may not.
        return isinstance(actual, pl.Datetime) and actual.time_zone == expected.time_zone
    return actual == expected


def _typed(dtypes: Mapping[str, pl.DataType], what: str, note: str = "") -> Check:
    """The fixed columns that are present have their contract dtypes (a missing column is
    the column-set check's finding)."""

    def expression(context: DeriveContext) -> pl.Expr:
        wrong = [
            name
            for name, dtype in dtypes.items()
            if name in context.schema and not _dtype_ok(context.schema[name], dtype)
        ]
        return pl.lit(not wrong)

    return derived_true(
        "fixed_columns_typed",
        (),
        expression,
        f"the columns of {what} have their contract dtypes{note}",
        column=None,
    )


_INTEGERS = " (positions and allele indices are integers)"


def _on_contract_dtypes(dtypes: Mapping[str, pl.DataType]) -> Callable[..., Check]:
    """``derived_true`` for a table with contract dtypes: where an input column has another
    dtype the check fails on every row instead of raising (the dtype check says why)."""

    def checked(
        name: str,
        inputs: Iterable[str],
        expression: Callable[[DeriveContext], pl.Expr],
        description: str,
        *,
        severity: Severity = "error",
        column: str | None = None,
    ) -> Check:
        names = tuple(inputs)

        def guarded(context: DeriveContext) -> pl.Expr:
            for input_name in names:
                actual = context.schema.get(input_name)
                if actual is not None and not _dtype_ok(actual, dtypes[input_name]):
                    return pl.lit(False)
            return expression(context)

        return derived_true(name, names, guarded, description, severity=severity, column=column)

    return checked


def _columns_with_header_fields(columns: tuple[str, ...], prefix: str, what: str) -> list[Check]:
    """Every fixed column is present; any other column is a header field's ``<prefix>KEY``."""

    def only_header_fields(context: DeriveContext) -> pl.Expr:
        fixed = set(columns)
        others = [c for c in context.schema if c not in fixed and not c.startswith(prefix)]
        return pl.lit(not others)

    return [
        Check(
            "expect_table_columns_to_match_set",
            {"column_set": list(columns), "exact_match": False},
            f"the columns include every fixed column of {what}",
            "error",
            None,
        ),
        derived_true(
            f"only_{prefix}columns_besides",
            (),
            only_header_fields,
            f"every other column of {what} is a {prefix}<KEY> column of the VCF header",
            column=None,
        ),
    ]


def _provenance() -> list[Check]:
    return [not_null("source_file"), *sha256_hex(), not_null("ingested_at")]


# --- bronze/genomics/vcf_files -------------------------------------------------------------


def vcf_files_suite() -> Suite:
    """The ledger of ingested VCF files: one row per file, with its header and counts."""
    dtypes = {**VCF_FILES_DTYPES, **VCF_LEDGER_DTYPES}
    columns = tuple(dtypes)
    checked = _on_contract_dtypes(dtypes)
    accepted = pl.col("records") - pl.col("rejected")
    checks = [
        exact_columns(columns, "the VCF file ledger"),
        _typed(dtypes, "the VCF file ledger"),
        not_null("source_file"),
        unique("source_file"),
        not_null("sha256"),
        matches("sha256", SHA256_HEX, "sha256 is 64 lowercase hex characters"),
        checked(
            "sha256_is_source_sha256",
            ("sha256", "source_sha256"),
            lambda _: pl.when(
                pl.col("sha256").is_not_null() & pl.col("source_sha256").is_not_null()
            ).then(pl.col("sha256") == pl.col("source_sha256")),
            "sha256 equals source_sha256 (both hash the file as landed)",
            column="sha256",
        ),
        Check(
            "expect_column_values_to_be_unique",
            {"column": "sha256"},
            "no two files have the same bytes (a copy would double every variant)",
            "warning",
            "sha256",
        ),
        in_set("compression", COMPRESSIONS, what="VCF compression"),
        in_set("index", INDEX_KINDS, what="tabix or CSI index"),
        not_null("fileformat"),
        matches("fileformat", FILEFORMAT, "fileformat is VCFv4.x"),
        not_null("header_text"),
        matches(
            "header_text",
            r"^##fileformat=VCFv4\.[0-9]+",
            "header_text starts with the ##fileformat=VCFv4.x line",
        ),
        matches("header_text", r"(?m)^#CHROM\t", "header_text holds the #CHROM line"),
        *[_not_negative(c) for c in ("size_bytes", "records", "variants", "genotypes", "rejected")],
        _at_most("rejected", "records", "rejected is at most records (records counts rejects)"),
        checked(
            "variants_cover_records",
            ("records", "rejected", "variants"),
            lambda _: pl.col("variants") >= accepted,
            "every accepted record gave at least one variant row",
            column="variants",
        ),
        checked(
            "genotypes_are_records_times_samples",
            ("records", "rejected", "genotypes", "samples"),
            lambda _: pl.col("genotypes") == accepted * pl.col("samples").list.len(),
            "genotypes is accepted records times samples",
            column="genotypes",
        ),
        checked(
            "read_without_warnings",
            ("warnings",),
            lambda _: pl.col("warnings").list.len() == 0,
            "every file was read without reader warnings (e.g. undeclared INFO keys)",
            severity="warning",
            column="warnings",
        ),
        *sha256_hex(),
        not_null("source_modified_at"),
        not_null("ingested_at"),
    ]
    return Suite(f"{BRONZE}/vcf_files", columns, tuple(checks))


# --- variants ------------------------------------------------------------------------------


def variants_suite(layer: str) -> Suite:
    """Variants, one row per site and ALT allele, in bronze (as read) or silver.

    Args:
        layer: ``bronze`` or ``silver`` (silver keeps bronze's columns).

    Returns:
        The suite of ``<layer>/genomics/variants``.
    """
    columns = (*VARIANT_DTYPES, *INGEST_COLUMNS)
    checked = _on_contract_dtypes({**VARIANT_DTYPES, **_INGEST_DTYPES})
    what = f"{layer} variants"
    index, n_alleles = pl.col("allele_index"), pl.col("n_alleles")
    checks = [
        *_columns_with_header_fields(columns, "info_", what),
        _typed({**VARIANT_DTYPES, **_INGEST_DTYPES}, what, _INTEGERS),
        *[
            not_null(c)
            for c in ("record_index", "line", "chrom", "pos", "end", "ref", "allele_index")
        ],
        *[not_null(c) for c in ("n_alleles", "multiallelic")],
        compound_unique(("source_file", "record_index", "allele_index")),
        Check(
            "expect_column_values_to_be_between",
            {"column": "pos", "min_value": 1},
            "pos is at least 1 (VCF positions are 1-based)",
            "error",
            "pos",
        ),
        ordered("pos", "end"),
        matches("ref", REF_ALLELE, "ref is bases A, C, G, T or N"),
        matches(
            "alt",
            ALT_ALLELE,
            "alt is bases, *, a symbolic <ID> or a breakend (VCF 4.3 ALT)",
        ),
        checked(
            "allele_index_in_range",
            ("allele_index", "n_alleles"),
            lambda _: index.is_between(0, n_alleles - 1),
            "allele_index is between 0 and n_alleles - 1",
            column="allele_index",
        ),
        checked(
            "no_alt_means_allele_0",
            ("alt", "allele_index"),
            lambda _: pl.when(index.is_not_null()).then(pl.col("alt").is_null() == (index == 0)),
            "allele_index is 0 exactly where alt is empty (ALT '.')",
            column="allele_index",
        ),
        checked(
            "multiallelic_means_over_two_alleles",
            ("multiallelic", "n_alleles"),
            lambda _: pl.col("multiallelic") == (n_alleles > 2),
            "multiallelic is set exactly when n_alleles is over 2",
            column="multiallelic",
        ),
        _not_negative("qual", what="not negative where present (phred-scaled)"),
        *_provenance(),
    ]
    return Suite(f"{layer}/genomics/variants", columns, tuple(checks))


# --- genotypes -----------------------------------------------------------------------------


def _fmt_not_negative(key: str) -> Check:
    """``fmt_<key>`` is not negative where the header declared it (scalar or per-allele)."""
    column = f"fmt_{key}"

    def expression(context: DeriveContext) -> pl.Expr:
        dtype = context.schema.get(column)
        value = pl.col(column)
        if isinstance(dtype, pl.List) and dtype.inner.is_numeric():
            value = value.list.min()
        elif dtype is None or not dtype.is_numeric():
            # Not declared (or declared as text): nothing to compare.
            return pl.lit(None, dtype=pl.Boolean)
        return pl.when(value.is_not_null()).then(value >= 0)

    return derived_true(
        f"{column}_not_negative",
        (),
        expression,
        f"{column} is not negative where the header declares it",
        column=column,
    )


def genotypes_suite(layer: str) -> Suite:
    """Genotypes, one row per VCF record and sample, in bronze (as read) or silver.

    Args:
        layer: ``bronze`` or ``silver`` (silver adds ``person_key``).

    Returns:
        The suite of ``<layer>/genomics/genotypes``; it reads the sample manifest.
    """
    silver = layer == "silver"
    # Silver appends person_key after bronze's columns (pipelines.genomics.build_silver).
    dtypes = {**GENOTYPE_DTYPES, **_INGEST_DTYPES}
    if silver:
        dtypes["person_key"] = pl.String()
    columns = tuple(dtypes)
    checked = _on_contract_dtypes(dtypes)
    what = f"{layer} genotypes"
    alleles = pl.col("alleles")
    called_alleles = alleles.list.drop_nulls()
    checks = [
        *_columns_with_header_fields(columns, "fmt_", what),
        _typed(dtypes, what, _INTEGERS),
        *[not_null(c) for c in ("record_index", "chrom", "pos", "sample_index", "sample_id")],
        *[not_null(c) for c in ("ploidy", "n_alleles")],
        compound_unique(("source_file", "record_index", "sample_index")),
        checked(
            "alleles_in_range",
            ("alleles", "n_alleles"),
            # Null elements are no-calls; list min and max skip them.
            lambda _: pl.when(called_alleles.list.len() > 0).then(
                (alleles.list.min() >= 0) & (alleles.list.max() < pl.col("n_alleles"))
            ),
            "every called allele index is between 0 and n_alleles - 1",
            column="alleles",
        ),
        checked(
            "ploidy_is_allele_count",
            ("ploidy", "alleles"),
            lambda _: pl.col("ploidy") == alleles.list.len().fill_null(0),
            "ploidy is the number of alleles in GT",
            column="ploidy",
        ),
        checked(
            "called_means_no_missing_allele",
            ("called", "alleles"),
            lambda _: pl.when(alleles.list.len() > 0).then(
                pl.col("called") == (called_alleles.list.len() == alleles.list.len())
            ),
            "called is set exactly when no allele of GT is a no-call",
            column="called",
        ),
        _fmt_not_negative("DP"),
        _fmt_not_negative("GQ"),
        references("sample_id", SAMPLES, "sample_id", severity="error" if silver else "warning"),
    ]
    if silver:
        checks += [
            Check(
                "expect_column_values_to_not_be_null",
                {"column": "person_key", "mostly": LINKED_GENOTYPES_MOSTLY},
                f"at least {LINKED_GENOTYPES_MOSTLY:.0%} of genotype rows are linked to a "
                "person_key",
                "warning",
                "person_key",
            ),
            matches("person_key", PERSON_KEY, "person_key is a 32-hex random key"),
            checked(
                "sample_has_one_person",
                ("sample_id", "person_key"),
                lambda _: pl.when(pl.col("sample_id").is_not_null()).then(
                    pl.col("person_key").n_unique().over("sample_id") == 1
                ),
                "every row of a sample_id has the same person_key (or none)",
                column="sample_id,person_key",
            ),
        ]
    checks += _provenance()
    return Suite(f"{layer}/genomics/genotypes", columns, tuple(checks), (SAMPLES,))


# --- bronze/genomics/samples ---------------------------------------------------------------


def samples_suite() -> Suite:
    """The sample manifest: which DNA sample belongs to which MRN."""
    columns = (*SAMPLES_DTYPES, *INGEST_COLUMNS)
    checked = _on_contract_dtypes({**SAMPLES_DTYPES, **_INGEST_DTYPES})
    date = pl.col("collection_date")
    checks = [
        exact_columns(columns, "the sample manifest"),
        _typed({**SAMPLES_DTYPES, **_INGEST_DTYPES}, "the sample manifest"),
        not_null("sample_id"),
        unique("sample_id"),
        not_null("mrn"),
        matches(
            "mrn",
            EHR_MRN,
            "mrn has the EHR's MRN shape (else the sample links to nobody)",
            severity="warning",
        ),
        checked(
            "collection_date_not_in_future",
            ("collection_date",),
            lambda context: pl.when(date.is_not_null()).then(date <= pl.lit(context.now.date())),
            "collection_date is not in the future",
            severity="warning",
            column="collection_date",
        ),
        *_provenance(),
    ]
    return Suite(SAMPLES, columns, tuple(checks))


# --- gold research views -------------------------------------------------------------------


def _gold_view(name: str) -> GoldView:
    return next(v for v in GENOMICS_GOLD_VIEWS if v.name == name)


def _region() -> list[Check]:
    return [
        not_null("chrom"),
        not_null("pos"),
        Check(
            "expect_column_values_to_be_between",
            {"column": "pos", "min_value": 1},
            "pos is at least 1 (VCF positions are 1-based)",
            "error",
            "pos",
        ),
        ordered("pos", "end"),
    ]


def variant_frequencies_suite() -> Suite:
    """Allele counts and frequencies per variant over consented, linked people."""
    view = _gold_view("variant_frequencies")
    count, number = pl.col("allele_count"), pl.col("allele_number")
    frequency = pl.col("allele_frequency")

    def frequency_is_ratio(_: DeriveContext) -> pl.Expr:
        applies = count.is_not_null() & (number > 0) & frequency.is_not_null()
        return pl.when(applies).then((frequency - count / number).abs() <= FREQUENCY_TOLERANCE)

    checks = [
        *_privacy(view),
        *_region(),
        not_null("ref"),
        not_null("alt"),
        compound_unique(("chrom", "pos", "ref", "alt")),
        *[_not_negative(c) for c in ("allele_count", "allele_number", "carriers")],
        _not_negative("homozygous_alt"),
        _at_most("allele_count", "allele_number", "allele_count is at most allele_number"),
        Check(
            "expect_column_values_to_be_between",
            {"column": "allele_frequency", "min_value": 0, "max_value": 1},
            "allele_frequency is between 0 and 1",
            "error",
            "allele_frequency",
        ),
        derived_true(
            "allele_frequency_is_count_over_number",
            ("allele_frequency", "allele_count", "allele_number"),
            frequency_is_ratio,
            "allele_frequency is allele_count / allele_number",
            column="allele_frequency",
        ),
        _at_most("carriers", "allele_count", "carriers is at most allele_count"),
        _at_most("homozygous_alt", "carriers", "homozygous_alt is at most carriers"),
    ]
    return Suite(f"gold/{AUDIENCE}/{view.name}", view.columns, tuple(checks))


def research_genotypes_suite() -> Suite:
    """Genotypes of consented people under their research pseudonym, one row per variant."""
    view = _gold_view("genotypes")
    checks = [
        *_privacy(view),
        not_null("person_pseudonym"),
        _pseudonym_format("person_pseudonym", "P"),
        references("person_pseudonym", GOLD_PATIENTS, "person_pseudonym"),
        *_region(),
        compound_unique(("person_pseudonym", "chrom", "pos", "ref", "alt")),
        in_set("zygosity", ZYGOSITY, what="genotype zygosity"),
        Check(
            "expect_column_values_to_be_between",
            {"column": "alt_allele_copies", "min_value": 0, "max_value": MAX_PLOIDY},
            f"alt_allele_copies is between 0 and {MAX_PLOIDY} where called",
            "error",
            "alt_allele_copies",
        ),
        _not_negative("depth", what="not negative where present"),
        _not_negative("genotype_quality", what="not negative where present (phred-scaled)"),
    ]
    return Suite(f"gold/{AUDIENCE}/{view.name}", view.columns, tuple(checks), (GOLD_PATIENTS,))


GENOMICS_SUITES: dict[str, Callable[[], Suite]] = {
    f"{BRONZE}/vcf_files": vcf_files_suite,
    f"{BRONZE}/variants": partial(variants_suite, "bronze"),
    f"{BRONZE}/genotypes": partial(genotypes_suite, "bronze"),
    SAMPLES: samples_suite,
    f"{SILVER}/variants": partial(variants_suite, "silver"),
    f"{SILVER}/genotypes": partial(genotypes_suite, "silver"),
    f"gold/{AUDIENCE}/variant_frequencies": variant_frequencies_suite,
    f"gold/{AUDIENCE}/genotypes": research_genotypes_suite,
}
"""Every genomics table path to its suite's builder (``quality.suites.suite_for`` calls it)."""
