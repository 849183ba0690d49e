"""The research views of the genomics silo: cohort allele frequencies and per-person genotypes.

Both read the silver variants (one row per site and ALT allele) and the silver genotypes (one
row per VCF record and sample, linked to ``person_key``), keep consented people only, and
speak of variants by position and alleles, never by file or sample. They are stored sorted
by chromosome and position so that region queries read only the row groups they need.
"""

import polars as pl

from mcp_catalog.governance.deid import PERSON_PREFIX
from mcp_catalog.governance.views import ViewColumn, ViewContext, ViewSpec
from quality.valuesets import ZYGOSITY

VARIANTS = "silver/genomics/variants"
GENOTYPES = "silver/genomics/genotypes"


_SITE = ("source_file", "record_index")


def _position_columns() -> tuple[ViewColumn, ...]:
    return (
        ViewColumn("chrom", "string", "Chromosome (contig name as in the VCF).", "clinical"),
        ViewColumn("pos", "integer", "1-based position of the first REF base.", "clinical"),
        ViewColumn(
            "end",
            "integer",
            "1-based position of the last REF base (INFO END for symbolic alleles).",
            "clinical",
        ),
        ViewColumn("ref", "string", "Reference allele.", "clinical"),
        ViewColumn(
            "alt",
            "string",
            "Alternate allele (one per row; multi-allelic sites are split).",
            "clinical",
        ),
    )


def _split_genotypes(silver: dict[str, pl.DataFrame], ctx: ViewContext) -> pl.DataFrame:
    """Consented people's genotypes, one row per person and split variant, with the copies of
    that row's ALT allele and the number of called alleles."""
    variants = silver[VARIANTS].filter(pl.col("alt").is_not_null())
    genotypes = silver[GENOTYPES].filter(pl.col("person_key").is_in(ctx.consented.implode()))
    widest = int(variants.get_column("n_alleles").max() or 1)
    alleles = pl.col("alleles")
    joined = variants.select(
        *_SITE, "chrom", "pos", "end", "ref", "alt", "allele_index", "filters"
    ).join(
        genotypes.select(
            *_SITE, "person_key", "gt", "alleles", "ploidy", "phased", *_format(genotypes)
        ),
        on=list(_SITE),
        how="inner",
    )
    # Copies of every allele index, then the one of this row's ALT: polars cannot compare a
    # list's elements with another column of the same row directly.
    per_index = pl.concat_list([alleles.list.count_matches(k) for k in range(widest)])
    return joined.with_columns(
        per_index.list.get(pl.col("allele_index"), null_on_oob=True).alias("copies"),
        (pl.col("ploidy") - alleles.list.count_matches(None)).alias("called_alleles"),
    )


def _format(genotypes: pl.DataFrame) -> list[pl.Expr]:
    """Depth and genotype quality when the files declare them, else nulls."""
    return [
        (pl.col(source) if source in genotypes.columns else pl.lit(None, pl.Int64)).alias(alias)
        for source, alias in (("fmt_DP", "depth"), ("fmt_GQ", "genotype_quality"))
    ]


def _zygosity() -> pl.Expr:
    """hom_ref: every allele REF; het: some copies of this ALT among others; hom_alt: only
    this ALT (two or more alleles); hemizygous: one allele, this ALT; other_alt: no copy of
    this ALT but another ALT; partial: some alleles not called; no_call: none called."""
    copies, called, ploidy = pl.col("copies"), pl.col("called_alleles"), pl.col("ploidy")
    refs = pl.col("alleles").list.count_matches(0)
    return (
        pl.when(called == 0)
        .then(pl.lit("no_call"))
        .when(called < ploidy)
        .then(pl.lit("partial"))
        .when((copies == 1) & (ploidy == 1))
        .then(pl.lit("hemizygous"))
        .when(copies == ploidy)
        .then(pl.lit("hom_alt"))
        .when(copies > 0)
        .then(pl.lit("het"))
        .when(refs == ploidy)
        .then(pl.lit("hom_ref"))
        .otherwise(pl.lit("other_alt"))
    )


def _build_frequencies(silver: dict[str, pl.DataFrame], ctx: ViewContext) -> pl.DataFrame:
    split = _split_genotypes(silver, ctx)
    # A person sequenced twice counts once per variant: the first file in name order wins.
    split = split.sort("source_file").unique(
        ["person_key", "chrom", "pos", "ref", "alt"], keep="first", maintain_order=True
    )
    passed = pl.col("filters").list.len().eq(1) & pl.col("filters").list.first().eq("PASS")
    return (
        split.group_by("chrom", "pos", "end", "ref", "alt")
        .agg(
            pl.col("copies").sum().cast(pl.Int64).alias("allele_count"),
            pl.col("called_alleles").sum().cast(pl.Int64).alias("allele_number"),
            (pl.col("copies") > 0).sum().cast(pl.Int64).alias("carriers"),
            ((pl.col("copies") == pl.col("ploidy")) & (pl.col("ploidy") >= 2))
            .sum()
            .cast(pl.Int64)
            .alias("homozygous_alt"),
            passed.fill_null(False).all().alias("filter_pass"),
        )
        .with_columns(
            pl.when(pl.col("allele_number") > 0)
            .then(pl.col("allele_count") / pl.col("allele_number"))
            .alias("allele_frequency")
        )
        .filter(pl.col("allele_count") > 0)
    )


def _build_genotypes(silver: dict[str, pl.DataFrame], ctx: ViewContext) -> pl.DataFrame:
    split = _split_genotypes(silver, ctx)
    split = split.sort("source_file").unique(
        ["person_key", "chrom", "pos", "ref", "alt"], keep="first", maintain_order=True
    )
    split = split.with_columns(
        _zygosity().alias("zygosity"),
        pl.when(pl.col("called_alleles") == pl.col("ploidy"))
        .then(pl.col("copies"))
        .cast(pl.Int64)
        .alias("alt_allele_copies"),
        pl.col("gt").alias("genotype"),
    )
    return ctx.pseudonyms.apply(split, "person_key", prefix=PERSON_PREFIX, alias="person_pseudonym")


_REGION = ("chrom", "pos", "end")
_SOURCE_OF = (
    *((c, VARIANTS) for c in ("chrom", "pos", "end", "ref", "alt", "allele_index", "filters")),
    *(
        (c, GENOTYPES)
        for c in ("person_key", "gt", "alleles", "ploidy", "phased", "fmt_DP", "fmt_GQ")
    ),
)

GENOMIC_VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec(
        name="variant_frequencies",
        audience="research",
        title="Variant allele frequencies (cohort)",
        description="One row per variant (site and ALT allele) seen in consented, sequenced "
        "people: allele count, allele number, frequency, carriers and homozygotes. Variants "
        "carried fewer times than the policy's minimum are not listed.",
        sources=(VARIANTS, GENOTYPES),
        key=("chrom", "pos", "ref", "alt"),
        columns=(
            *_position_columns(),
            ViewColumn(
                "allele_count",
                "integer",
                "Copies of the ALT allele among consented people's called genotypes (AC).",
                "clinical",
                derived_from=("alleles", "allele_index"),
            ),
            ViewColumn(
                "allele_number",
                "integer",
                "Called alleles at the site among consented people (AN).",
                "clinical",
                derived_from=("alleles",),
            ),
            ViewColumn(
                "allele_frequency",
                "number",
                "allele_count / allele_number (AF); empty when no allele was called.",
                "clinical",
                derived_from=("alleles", "allele_index"),
            ),
            ViewColumn(
                "carriers",
                "integer",
                "People with at least one copy of the ALT allele.",
                "clinical",
                derived_from=("alleles", "allele_index"),
            ),
            ViewColumn(
                "homozygous_alt",
                "integer",
                "People homozygous for the ALT allele.",
                "clinical",
                derived_from=("alleles", "allele_index", "ploidy"),
            ),
            ViewColumn(
                "filter_pass",
                "boolean",
                "True when every file calling the site marks it PASS.",
                "clinical",
                derived_from=("filters",),
            ),
        ),
        build=_build_frequencies,
        region=_REGION,
        source_of=_SOURCE_OF,
    ),
    ViewSpec(
        name="genotypes",
        audience="research",
        title="Genotypes (de-identified)",
        description="One row per consented, sequenced person and variant they were genotyped "
        "at: genotype, copies of the ALT allele, zygosity, depth and quality.",
        sources=(VARIANTS, GENOTYPES),
        key=("person_pseudonym", "chrom", "pos", "ref", "alt"),
        columns=(
            ViewColumn(
                "person_pseudonym",
                "string",
                "Pseudonym of the person, stable within this audience only.",
                "pseudonym",
                derived_from=("person_key",),
            ),
            *_position_columns(),
            ViewColumn(
                "genotype",
                "string",
                "Genotype as called (allele indices of the VCF record: 0 is REF, '.' no call; "
                "'|' phased, '/' unphased).",
                "sensitive",
                derived_from=("gt",),
            ),
            ViewColumn(
                "alt_allele_copies",
                "integer",
                "Copies of this row's ALT allele; empty when an allele was not called.",
                "sensitive",
                derived_from=("alleles", "allele_index"),
            ),
            ViewColumn(
                "zygosity",
                "string",
                "hom_ref, het, hom_alt, hemizygous (one allele), other_alt (carries another "
                "ALT of the site), partial or no_call.",
                "sensitive",
                ZYGOSITY,
                derived_from=("alleles", "allele_index", "ploidy"),
            ),
            ViewColumn("phased", "boolean", "True when the genotype is phased.", "clinical"),
            ViewColumn(
                "depth",
                "integer",
                "Read depth at the site for this person (FORMAT DP).",
                "clinical",
                derived_from=("fmt_DP",),
            ),
            ViewColumn(
                "genotype_quality",
                "integer",
                "Genotype quality, phred-scaled (FORMAT GQ).",
                "clinical",
                derived_from=("fmt_GQ",),
            ),
        ),
        build=_build_genotypes,
        region=_REGION,
        source_of=_SOURCE_OF,
    ),
)
"""The research audience's views of the genomics silo."""
