"""The genomics silo: a joint-called cohort VCF and the biobank's sample manifest.

The sequencing lab delivers one bgzipped, tabix-indexed VCF 4.2 on GRCh38 with a sample
column per sequenced person (``Person.vcf_sample_id``), and a ``samples.csv`` manifest that
ties each sample to the person's EHR MRN.

The variant sites (positions, alleles, population frequencies, QUAL, FILTER, annotations)
depend only on the cohort seed, so every cohort drawn from one seed is genotyped at the same
1,500 sites, a few of them real, well-known variants such as rs7903146 in TCF7L2. A person's
genotypes come from ``person.rng("genomics")`` alone: Hardy-Weinberg draws from the site
frequencies, reads drawn for the genotype, and the call (GT, AD, DP, GQ, PL) made from the
reads, so the person's column is the same whatever the cohort size. INFO AC, AN, AF and DP
summarise the genotypes written, and so do depend on who is in the cohort. Karyotype follows
the recorded gender: males are XY and called haploid on chrX and chrY (the sites avoid the
pseudo-autosomal regions); everybody else is XX, diploid on chrX and uncalled (``.``) on chrY.
"""

import csv
import io
import math
import random
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pysam

from connectors.synth.cohort import AS_OF, Person
from connectors.synth.files import AtomicFolder

FOLDER = "genomics"
VCF_NAME = "cohort.vcf.gz"
MANIFEST_NAME = "samples.csv"
MANIFEST_COLUMNS: tuple[str, ...] = (
    "sample_id",
    "mrn",
    "specimen_type",
    "collection_date",
    "sequencing_platform",
    "vcf_file",
)
"""The columns of ``samples.csv``, in order."""

SITE_COUNT = 1500
"""How many variant sites the cohort VCF holds, the known variants included."""

GRCH38_CONTIGS: tuple[tuple[str, int], ...] = (
    ("chr1", 248_956_422),
    ("chr2", 242_193_529),
    ("chr3", 198_295_559),
    ("chr4", 190_214_555),
    ("chr5", 181_538_259),
    ("chr6", 170_805_979),
    ("chr7", 159_345_973),
    ("chr8", 145_138_636),
    ("chr9", 138_394_717),
    ("chr10", 133_797_422),
    ("chr11", 135_086_622),
    ("chr12", 133_275_309),
    ("chr13", 114_364_328),
    ("chr14", 107_043_718),
    ("chr15", 101_991_189),
    ("chr16", 90_338_345),
    ("chr17", 83_257_441),
    ("chr18", 80_373_285),
    ("chr19", 58_617_616),
    ("chr20", 64_444_167),
    ("chr21", 46_709_983),
    ("chr22", 50_818_468),
    ("chrX", 156_040_895),
    ("chrY", 57_227_415),
)
"""The primary GRCh38 assembly contigs with their lengths, in the VCF's contig order."""

# Where sites are drawn (1-based, inclusive): off the telomeres, past the unplaced short arms
# of the acrocentric chromosomes, and outside the X/Y pseudo-autosomal regions, where a
# caller would treat males as diploid.
_CALLABLE: dict[str, tuple[int, int]] = {
    "chr13": (18_500_000, 114_344_328),
    "chr14": (18_300_000, 107_023_718),
    "chr15": (19_800_000, 101_971_189),
    "chr21": (14_000_000, 46_689_983),
    "chr22": (16_000_000, 50_798_468),
    "chrX": (2_781_480, 155_701_382),
    "chrY": (2_781_480, 26_600_000),
}
_TELOMERE = 10_000
_CHRY_WEIGHT = 0.15
"""chrY carries far fewer callable variants per megabase than the other chromosomes."""


def _callable_span(chrom: str) -> tuple[int, int]:
    length = dict(GRCH38_CONTIGS)[chrom]
    return _CALLABLE.get(chrom, (_TELOMERE + 1, length - _TELOMERE))


@dataclass(frozen=True)
class _Gene:
    name: str
    chrom: str
    start: int
    end: int


# A few genes per chromosome with their GRCh38 spans; about a quarter of the sites fall in
# them and carry an ANN annotation.
_GENES: tuple[_Gene, ...] = (
    _Gene("MTHFR", "chr1", 11_785_723, 11_806_455),
    _Gene("PCSK9", "chr1", 55_039_548, 55_064_852),
    _Gene("F5", "chr1", 169_511_951, 169_586_481),
    _Gene("APOB", "chr2", 21_001_429, 21_044_073),
    _Gene("UGT1A1", "chr2", 233_760_498, 233_773_300),
    _Gene("MLH1", "chr3", 36_993_332, 37_050_918),
    _Gene("HTT", "chr4", 3_074_681, 3_243_960),
    _Gene("APC", "chr5", 112_707_498, 112_846_239),
    _Gene("HFE", "chr6", 26_087_281, 26_098_343),
    _Gene("LPA", "chr6", 160_531_483, 160_664_275),
    _Gene("EGFR", "chr7", 55_019_017, 55_211_628),
    _Gene("CFTR", "chr7", 117_480_025, 117_668_665),
    _Gene("NAT2", "chr8", 18_391_245, 18_401_218),
    _Gene("CDKN2A", "chr9", 21_967_752, 21_995_301),
    _Gene("PTEN", "chr10", 87_863_113, 87_971_930),
    _Gene("CYP2C19", "chr10", 94_762_681, 94_855_547),
    _Gene("TCF7L2", "chr10", 112_950_247, 113_167_678),
    _Gene("HBB", "chr11", 5_225_464, 5_229_395),
    _Gene("ATM", "chr11", 108_223_067, 108_369_102),
    _Gene("SLCO1B1", "chr12", 21_128_193, 21_239_796),
    _Gene("KRAS", "chr12", 25_205_246, 25_250_929),
    _Gene("BRCA2", "chr13", 32_315_474, 32_400_266),
    _Gene("RB1", "chr13", 48_303_747, 48_481_890),
    _Gene("SERPINA1", "chr14", 94_376_747, 94_390_692),
    _Gene("FBN1", "chr15", 48_408_313, 48_645_709),
    _Gene("FTO", "chr16", 53_737_875, 54_155_853),
    _Gene("TP53", "chr17", 7_661_779, 7_687_550),
    _Gene("BRCA1", "chr17", 43_044_295, 43_125_483),
    _Gene("TTR", "chr18", 31_591_726, 31_599_021),
    _Gene("LDLR", "chr19", 11_089_462, 11_133_820),
    _Gene("APOE", "chr19", 44_905_796, 44_909_393),
    _Gene("PRNP", "chr20", 4_686_236, 4_701_588),
    _Gene("APP", "chr21", 25_880_550, 26_171_128),
    _Gene("CYP2D6", "chr22", 42_126_499, 42_130_881),
    _Gene("DMD", "chrX", 31_097_677, 33_339_441),
    _Gene("G6PD", "chrX", 154_531_390, 154_547_572),
    _Gene("SRY", "chrY", 2_786_855, 2_787_699),
)
_GENE_SHARE = 0.25

# Consequence, impact and weight of an annotated SNV; indels in genes are frameshifts or
# intronic.
_SNV_CONSEQUENCES: tuple[tuple[str, str, float], ...] = (
    ("intron_variant", "MODIFIER", 0.60),
    ("missense_variant", "MODERATE", 0.15),
    ("synonymous_variant", "LOW", 0.12),
    ("3_prime_UTR_variant", "MODIFIER", 0.06),
    ("5_prime_UTR_variant", "MODIFIER", 0.03),
    ("splice_region_variant", "LOW", 0.02),
    ("stop_gained", "HIGH", 0.02),
)


@dataclass(frozen=True)
class KnownVariant:
    """A real, well-studied variant the synthetic cohort carries at a typical frequency."""

    rsid: str
    chrom: str
    pos: int
    ref: str
    alt: str
    frequency: float
    gene: str
    consequence: str
    impact: str


KNOWN_VARIANTS: tuple[KnownVariant, ...] = (
    KnownVariant(
        "rs6025", "chr1", 169_549_811, "C", "T", 0.02, "F5", "missense_variant", "MODERATE"
    ),
    KnownVariant(
        "rs1801133", "chr1", 11_796_321, "G", "A", 0.33, "MTHFR", "missense_variant", "MODERATE"
    ),
    KnownVariant(
        "rs1800562", "chr6", 26_092_913, "G", "A", 0.05, "HFE", "missense_variant", "MODERATE"
    ),
    KnownVariant(
        "rs7903146", "chr10", 112_998_590, "C", "T", 0.30, "TCF7L2", "intron_variant", "MODIFIER"
    ),
    KnownVariant(
        "rs4149056", "chr12", 21_178_615, "T", "C", 0.16, "SLCO1B1", "missense_variant", "MODERATE"
    ),
    KnownVariant(
        "rs9939609", "chr16", 53_786_615, "T", "A", 0.40, "FTO", "intron_variant", "MODIFIER"
    ),
    KnownVariant(
        "rs429358", "chr19", 44_908_684, "T", "C", 0.15, "APOE", "missense_variant", "MODERATE"
    ),
    KnownVariant(
        "rs7412", "chr19", 44_908_822, "C", "T", 0.08, "APOE", "missense_variant", "MODERATE"
    ),
)
"""Real GRCh38 variants placed among the synthetic sites, with their rs ids and genes."""


@dataclass(frozen=True)
class Site:
    """One variant site of the cohort VCF, as it is before anyone is genotyped.

    Attributes:
        chrom: contig name (``chr1`` ... ``chrY``).
        pos: 1-based position.
        rsid: dbSNP-style id, or None (written as ``.``).
        ref: reference allele.
        alts: alternate alleles (one, or two for a multi-allelic site).
        frequencies: population frequency of each ALT allele.
        qual: the site's QUAL.
        filters: ``("PASS",)``, ``("LowQual",)`` or ``("LowQual", "q10")``.
        mapping_quality: INFO MQ.
        strand_bias: INFO FS.
        quality_by_depth: INFO QD.
        mean_depth: mean read depth of a diploid sample at the site.
        annotation: INFO ANN value, or None.
    """

    chrom: str
    pos: int
    rsid: str | None
    ref: str
    alts: tuple[str, ...]
    frequencies: tuple[float, ...]
    qual: float
    filters: tuple[str, ...]
    mapping_quality: float
    strand_bias: float
    quality_by_depth: float
    mean_depth: float
    annotation: str | None


_BASES = "ACGT"
_TRANSITION = {"A": "G", "G": "A", "C": "T", "T": "C"}


def _alt_base(rng: random.Random, ref: str, exclude: str = "") -> str:
    # Transitions outnumber transversions about 2:1 in human variation.
    if not exclude and rng.random() < 2 / 3:
        return _TRANSITION[ref]
    return rng.choice([b for b in _BASES if b != ref and b not in exclude])


def _frequency(rng: random.Random) -> float:
    # Most variant sites are rare; the rest spread over common frequencies.
    if rng.random() < 0.45:
        return math.exp(rng.uniform(math.log(0.002), math.log(0.02)))
    return min(max(rng.betavariate(0.6, 1.6), 0.02), 0.95)


def _alleles(rng: random.Random) -> tuple[str, tuple[str, ...], tuple[float, ...]]:
    first = rng.choice(_BASES)
    kind = rng.random()
    if kind < 0.05:
        frequency = _frequency(rng)
        second = min(frequency * rng.uniform(0.1, 0.6), 0.97 - frequency)
        if rng.random() < 0.75:
            alt = _alt_base(rng, first)
            return first, (alt, _alt_base(rng, first, exclude=alt)), (frequency, second)
        # Deletions of two lengths at one anchor base.
        ref = first + "".join(rng.choices(_BASES, k=rng.randint(2, 4)))
        return ref, (first, ref[:-1]), (frequency, second)
    if kind < 0.16:
        extra = "".join(rng.choices(_BASES, k=rng.randint(1, 4)))
        if rng.random() < 0.5:
            return first + extra, (first,), (_frequency(rng),)
        return first, (first + extra,), (_frequency(rng),)
    return first, (_alt_base(rng, first),), (_frequency(rng),)


def _annotation(rng: random.Random, gene: str, ref: str, alts: Sequence[str]) -> str:
    items = []
    for alt in alts:
        if len(ref) == len(alt):
            names, impacts, weights = zip(*_SNV_CONSEQUENCES, strict=True)
            index = rng.choices(range(len(names)), weights=weights)[0]
            consequence, impact = names[index], impacts[index]
        elif rng.random() < 0.7:
            consequence, impact = "intron_variant", "MODIFIER"
        else:
            consequence, impact = "frameshift_variant", "HIGH"
        items.append(f"{alt}|{consequence}|{impact}|{gene}|transcript|protein_coding")
    return ",".join(items)


def _quality(rng: random.Random, frequency: float) -> tuple[float, tuple[str, ...]]:
    draw = rng.random()
    if draw < 0.01:
        return round(rng.uniform(2, 10), 2), ("LowQual", "q10")
    if draw < 0.04:
        return round(rng.uniform(10, 30), 2), ("LowQual",)
    return round(rng.uniform(50, 200) + 20_000 * frequency * rng.uniform(0.5, 1.5), 2), ("PASS",)


def cohort_sites(seed: int) -> list[Site]:
    """The variant sites of a cohort's VCF, sorted by contig order and position.

    Args:
        seed: the cohort seed (``Person.seed``).

    Returns:
        ``SITE_COUNT`` sites, the ``KNOWN_VARIANTS`` among them; the same for the same seed.
    """
    rng = random.Random(f"biofed-genomics-sites/{seed}")
    names = [name for name, _ in GRCH38_CONTIGS]
    spans = {name: _callable_span(name) for name in names}
    weights = [(spans[n][1] - spans[n][0]) * (_CHRY_WEIGHT if n == "chrY" else 1.0) for n in names]
    taken = {(k.chrom, k.pos) for k in KNOWN_VARIANTS}
    sites = [
        Site(
            chrom=k.chrom,
            pos=k.pos,
            rsid=k.rsid,
            ref=k.ref,
            alts=(k.alt,),
            frequencies=(k.frequency,),
            qual=round(rng.uniform(50, 200) + 20_000 * k.frequency, 2),
            filters=("PASS",),
            mapping_quality=60.0,
            strand_bias=round(rng.uniform(0, 3), 3),
            quality_by_depth=round(rng.uniform(15, 30), 2),
            mean_depth=round(30 * rng.lognormvariate(0, 0.2), 2),
            annotation=f"{k.alt}|{k.consequence}|{k.impact}|{k.gene}|transcript|protein_coding",
        )
        for k in KNOWN_VARIANTS
    ]
    rsids = {k.rsid for k in KNOWN_VARIANTS}
    while len(sites) < SITE_COUNT:
        gene = None
        if rng.random() < _GENE_SHARE:
            gene = rng.choice(_GENES)
            chrom, pos = gene.chrom, rng.randint(gene.start, gene.end)
        else:
            chrom = rng.choices(names, weights=weights)[0]
            pos = rng.randint(*spans[chrom])
        ref, alts, frequencies = _alleles(rng)
        qual, filters = _quality(rng, frequencies[0])
        rsid = None
        if rng.random() < 0.35 + 0.5 * min(frequencies[0] * 10, 1):
            rsid = f"rs{rng.randrange(1_000, 1_500_000_000)}"
        mapping_quality = 60.0 if rng.random() < 0.8 else round(rng.uniform(35, 60), 2)
        strand_bias = round(rng.expovariate(1 / 3) if "PASS" in filters else rng.uniform(5, 60), 3)
        if "PASS" in filters:
            quality_by_depth = round(min(max(rng.gauss(18, 6), 2.5), 40), 2)
        else:
            quality_by_depth = round(rng.uniform(0.3, 3), 2)
        mean_depth = round(30 * rng.lognormvariate(0, 0.2), 2)
        annotation = _annotation(rng, gene.name, ref, alts) if gene else None
        if (chrom, pos) in taken or rsid in rsids:
            continue
        taken.add((chrom, pos))
        if rsid:
            rsids.add(rsid)
        sites.append(
            Site(
                chrom,
                pos,
                rsid,
                ref,
                alts,
                frequencies,
                qual,
                filters,
                mapping_quality,
                strand_bias,
                quality_by_depth,
                mean_depth,
                annotation,
            )
        )
    order = {name: i for i, name in enumerate(names)}
    return sorted(sites, key=lambda s: (order[s.chrom], s.pos))


# --- genotypes --------------------------------------------------------------------------

_MISSING_RATE = 0.02
_PHASED_RATE = 0.03
_READ_ERROR = 0.01
_GQ_CAP = 99

# Allele copies of every genotype in VCF PL order: diploid (j, k) with j <= k at index
# k * (k + 1) / 2 + j, haploid allele a at index a.
_DIPLOID = np.array([[2, 0, 0], [1, 1, 0], [0, 2, 0], [1, 0, 1], [0, 1, 1], [0, 0, 2]])
_DIPLOID_ALLELES = np.array([[0, 0], [0, 1], [1, 1], [0, 2], [1, 2], [2, 2]])
_HAPLOID = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]])


class _SiteTable:
    """The sites as arrays, for drawing every site of a person at once."""

    def __init__(self, sites: Sequence[Site]) -> None:
        self.sites = list(sites)
        self.n_alleles = np.array([1 + len(s.alts) for s in sites], dtype=np.int64)
        frequencies = np.zeros((len(sites), 2))
        for i, site in enumerate(sites):
            frequencies[i, : len(site.frequencies)] = site.frequencies
        reference = 1.0 - frequencies.sum(axis=1)
        # Cumulative bounds of one allele draw; exactly 1.0 past a biallelic site's ALT.
        second = np.where(self.n_alleles == 3, reference + frequencies[:, 0], 1.0)
        self.bounds = np.stack([reference, second], axis=1)
        self.mean_depth = np.array([s.mean_depth for s in sites])
        self.on_x = np.array([s.chrom == "chrX" for s in sites], dtype=bool)
        self.on_y = np.array([s.chrom == "chrY" for s in sites], dtype=bool)
        self.valid_allele = np.arange(3)[None, :] < self.n_alleles[:, None]


@dataclass(frozen=True)
class _Calls:
    """One person's calls at every site.

    ``alleles`` holds the called allele indices (-1 for a no-call; a haploid call repeats its
    allele) and ``gt_code`` the index of the GT text in ``_GT_TEXT``.
    """

    ploidy: np.ndarray
    alleles: np.ndarray
    gt_code: np.ndarray
    depth: np.ndarray
    allele_depths: np.ndarray
    genotype_quality: np.ndarray
    likelihoods: np.ndarray
    n_genotypes: np.ndarray


# GT text by code: unphased diploid calls in PL order (0-5), phased a|b (6 + 3a + b),
# haploid a (15 + a), then the diploid and haploid no-calls.
_GT_TEXT: tuple[str, ...] = (
    *("0/0", "0/1", "1/1", "0/2", "1/2", "2/2"),
    *(f"{a}|{b}" for a in range(3) for b in range(3)),
    *("0", "1", "2"),
    *("./.", "."),
)
_NO_CALL_DIPLOID = 18
_NO_CALL_HAPLOID = 19


def _person_calls(rng: np.random.Generator, male: bool, table: _SiteTable) -> _Calls:
    n = len(table.sites)
    # Every draw is made for every site whatever the person's sex, so a person's stream is
    # consumed the same way at every site.
    true_alleles = (rng.random((n, 2))[:, :, None] >= table.bounds[:, None, :]).sum(axis=2)
    no_call = rng.random(n) < _MISSING_RATE
    phase_draw = rng.random(n)
    flip_draw = rng.random(n)

    ploidy = np.full(n, 2)
    if male:
        ploidy[table.on_x | table.on_y] = 1
    else:
        ploidy[table.on_y] = 0
    no_call |= ploidy == 0
    haploid = ploidy == 1

    allele = np.arange(3)[None, :]
    copies = (true_alleles[:, :1] == allele) + ((true_alleles[:, 1:] == allele) & ~haploid[:, None])
    depth = np.maximum(rng.poisson(table.mean_depth * np.where(haploid, 0.5, 1.0)), 3)
    error = np.where(table.valid_allele, _READ_ERROR / table.n_alleles[:, None], 0.0)
    read_share = copies / np.maximum(ploidy, 1)[:, None] * (1 - _READ_ERROR) + error
    read_share /= read_share.sum(axis=1, keepdims=True)
    allele_depths = rng.multinomial(depth, read_share)

    # Likelihood of every genotype given the reads; the call is the likeliest genotype.
    genotype_copies = np.where(haploid[:, None, None], _HAPLOID, _DIPLOID)
    share = genotype_copies / np.where(haploid, 1, 2)[:, None, None] * (1 - _READ_ERROR)
    share = share + error[:, None, :]
    log_share = np.log10(np.where(table.valid_allele[:, None, :], share, 1.0))
    log_likelihood = (allele_depths[:, None, :] * log_share).sum(axis=2)
    n_genotypes = np.where(haploid, table.n_alleles, table.n_alleles * (table.n_alleles + 1) // 2)
    in_range = np.arange(6)[None, :] < n_genotypes[:, None]
    phred = np.where(in_range, np.rint(-10 * log_likelihood), np.inf)
    best = phred.argmin(axis=1)
    likelihoods = phred - phred.min(axis=1, keepdims=True)
    genotype_quality = np.minimum(np.sort(likelihoods, axis=1)[:, 1], _GQ_CAP)

    alleles = np.where(haploid[:, None], best[:, None], _DIPLOID_ALLELES[best])
    het = ~haploid & (alleles[:, 0] != alleles[:, 1]) & ~no_call
    phased = het & (phase_draw < _PHASED_RATE)
    flip = phased & (flip_draw < 0.5)
    alleles[flip] = alleles[flip][:, ::-1]
    gt_code = np.where(haploid, 15 + best, best)
    gt_code = np.where(phased, 6 + 3 * alleles[:, 0] + alleles[:, 1], gt_code)
    gt_code = np.where(no_call, np.where(ploidy == 2, _NO_CALL_DIPLOID, _NO_CALL_HAPLOID), gt_code)
    alleles[no_call] = -1
    depth[no_call] = 0
    return _Calls(
        ploidy=ploidy,
        alleles=alleles,
        gt_code=gt_code,
        depth=depth,
        allele_depths=allele_depths,
        genotype_quality=genotype_quality.astype(np.int64),
        likelihoods=np.where(in_range, likelihoods, 0).astype(np.int64),
        n_genotypes=n_genotypes,
    )


def _joined(columns: Sequence[str]) -> pl.Expr:
    return pl.concat_str([pl.col(c) for c in columns], separator=",")


def _sample_columns(calls: Sequence[_Calls], table: _SiteTable) -> list[pl.Series]:
    """Each person's ``GT:AD:DP:GQ:PL`` text at every site, one Series per person."""
    n_sites = len(table.sites)
    if not calls:
        return []
    frame = pl.DataFrame(
        {
            "code": np.concatenate([c.gt_code for c in calls]),
            "n_alleles": np.tile(table.n_alleles, len(calls)),
            "n_genotypes": np.concatenate([c.n_genotypes for c in calls]),
            "dp": np.concatenate([c.depth for c in calls]),
            "gq": np.concatenate([c.genotype_quality for c in calls]),
            **{f"ad{k}": np.concatenate([c.allele_depths[:, k] for c in calls]) for k in range(3)},
            **{f"pl{k}": np.concatenate([c.likelihoods[:, k] for c in calls]) for k in range(6)},
        }
    )
    gt = pl.col("code").replace_strict(
        list(range(len(_GT_TEXT))), list(_GT_TEXT), return_dtype=pl.String
    )
    ad = (
        pl.when(pl.col("n_alleles") == 3)
        .then(_joined(["ad0", "ad1", "ad2"]))
        .otherwise(_joined(["ad0", "ad1"]))
    )
    likelihoods = (
        pl.when(pl.col("n_genotypes") == 2)
        .then(_joined(["pl0", "pl1"]))
        .when(pl.col("n_genotypes") == 3)
        .then(_joined(["pl0", "pl1", "pl2"]))
        .otherwise(_joined([f"pl{k}" for k in range(6)]))
    )
    field = (
        pl.when(pl.col("code") < _NO_CALL_DIPLOID)
        .then(pl.concat_str([gt, ad, pl.col("dp"), pl.col("gq"), likelihoods], separator=":"))
        .otherwise(pl.concat_str([gt, pl.lit(":.:.:.:.")]))
    )
    text = frame.select(field.alias("field")).to_series()
    return [text.slice(i * n_sites, n_sites) for i in range(len(calls))]


# --- the files --------------------------------------------------------------------------

_INFO_HEADER = (
    '##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count in genotypes, for each ALT'
    ' allele, in the same order as listed">',
    '##INFO=<ID=AF,Number=A,Type=Float,Description="Allele Frequency, for each ALT allele, in'
    ' the same order as listed">',
    '##INFO=<ID=AN,Number=1,Type=Integer,Description="Total number of alleles in called'
    ' genotypes">',
    "##INFO=<ID=ANN,Number=.,Type=String,Description=\"Functional annotations: 'Allele |"
    " Annotation | Annotation_Impact | Gene_Name | Feature_Type | Transcript_BioType'\">",
    '##INFO=<ID=DB,Number=0,Type=Flag,Description="dbSNP Membership">',
    '##INFO=<ID=DP,Number=1,Type=Integer,Description="Approximate read depth; some reads may'
    ' have been filtered">',
    "##INFO=<ID=FS,Number=1,Type=Float,Description=\"Phred-scaled p-value using Fisher's exact"
    ' test to detect strand bias">',
    '##INFO=<ID=MQ,Number=1,Type=Float,Description="RMS Mapping Quality">',
    '##INFO=<ID=QD,Number=1,Type=Float,Description="Variant Confidence/Quality by Depth">',
)
_FORMAT_HEADER = (
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
    '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths for the ref and alt'
    ' alleles in the order listed">',
    '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Approximate read depth (reads with'
    ' MQ=255 or with bad mates are filtered)">',
    '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype Quality">',
    '##FORMAT=<ID=PL,Number=G,Type=Integer,Description="Normalized, Phred-scaled likelihoods'
    ' for genotypes as defined in the VCF specification">',
)


_FIXED_COLUMNS = ("#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")


def vcf_header(samples: Sequence[str]) -> str:
    """The cohort VCF's header, ``#CHROM`` line included, newline-terminated.

    Without samples the ``#CHROM`` line ends at INFO, as the VCF specification requires.

    Args:
        samples: the sample column names, in order.

    Returns:
        The header text.
    """
    lines = [
        "##fileformat=VCFv4.2",
        f"##fileDate={AS_OF:%Y%m%d}",
        "##source=biofed-synth",
        "##reference=GRCh38",
        *(f"##contig=<ID={name},length={length}>" for name, length in GRCH38_CONTIGS),
        '##FILTER=<ID=PASS,Description="All filters passed">',
        '##FILTER=<ID=LowQual,Description="Low quality">',
        '##FILTER=<ID=q10,Description="Quality below 10">',
        *_INFO_HEADER,
        *_FORMAT_HEADER,
        "\t".join(_FIXED_COLUMNS + (("FORMAT", *samples) if samples else ())),
    ]
    return "\n".join(lines) + "\n"


def _info(site: Site, counts: Sequence[int], number: int, depth: int) -> str:
    ac = ",".join(map(str, counts))
    af = ",".join(f"{c / number:.6g}" if number else "." for c in counts)
    items = [f"AC={ac}", f"AF={af}", f"AN={number}"]
    if site.annotation:
        items.append(f"ANN={site.annotation}")
    if site.rsid:
        items.append("DB")
    items += [
        f"DP={depth}",
        f"FS={site.strand_bias:.3f}",
        f"MQ={site.mapping_quality:.2f}",
        f"QD={site.quality_by_depth:.2f}",
    ]
    return ";".join(items)


_PEOPLE_PER_BATCH = 256
"""People whose calls are drawn and formatted together: bounds memory for large cohorts."""


class _SiteSummary:
    """INFO AN, AC and DP of every site, summed over the calls added."""

    def __init__(self, n_sites: int) -> None:
        self.number = np.zeros(n_sites, dtype=np.int64)
        self.counts = np.zeros((3, n_sites), dtype=np.int64)
        self.depth = np.zeros(n_sites, dtype=np.int64)

    def add(self, calls: _Calls) -> None:
        # A haploid call repeats its allele in the second slot; count it once.
        present = (calls.alleles >= 0) & (np.arange(2) < calls.ploidy[:, None])
        self.number += present.sum(axis=1)
        for k in (1, 2):
            self.counts[k] += ((calls.alleles == k) & present).sum(axis=1)
        self.depth += calls.depth


def _vcf_body(table: _SiteTable, summary: _SiteSummary, samples: Sequence[pl.Series]) -> str:
    """The VCF's data lines: the site columns, INFO from ``summary``, then the samples."""
    number, counts, depth = summary.number, summary.counts, summary.depth
    fixed = []
    for i, site in enumerate(table.sites):
        ac = [int(counts[k, i]) for k in range(1, len(site.alts) + 1)]
        info = _info(site, ac, int(number[i]), int(depth[i]))
        fixed.append(
            "\t".join(
                (
                    site.chrom,
                    str(site.pos),
                    site.rsid or ".",
                    site.ref,
                    ",".join(site.alts),
                    f"{site.qual:.2f}",
                    ";".join(site.filters),
                    info,
                    "GT:AD:DP:GQ:PL",
                )
            )
        )
    lines = pl.select(pl.concat_str([pl.Series(fixed), *samples], separator="\t")).to_series()
    return "\n".join(lines.to_list()) + "\n"


def _manifest_row(person: Person, rng: random.Random) -> list[str]:
    last = min(person.end_date, person.consent_revoked_date or person.end_date)
    span = max((last - person.consent_date).days, 0)
    collected = person.consent_date + timedelta(days=rng.randint(0, min(span, 365)))
    specimen = "blood" if rng.random() < 0.8 else "saliva"
    if collected < date(2019, 1, 1):
        platform = "Illumina HiSeq X Ten"
    elif collected < date(2023, 1, 1) or rng.random() < 0.4:
        platform = "Illumina NovaSeq 6000"
    else:
        platform = "Illumina NovaSeq X Plus"
    return [
        person.vcf_sample_id or "",
        person.mrn,
        specimen,
        collected.isoformat(),
        platform,
        VCF_NAME,
    ]


def write_genomics(people: Iterable[Person], out: Path) -> dict[str, int]:
    """Write the genomics silo: a cohort VCF with its tabix index, and the sample manifest.

    Writes ``out/genomics/cohort.vcf.gz`` (BGZF, VCF 4.2, GRCh38), ``cohort.vcf.gz.tbi`` and
    ``samples.csv``, replacing files of those names; nothing carries a final name until every
    file is complete. The sample columns, and the manifest rows, are the sequenced people
    (``vcf_sample_id`` set) in roster order. A roster with nobody sequenced gives a VCF with
    the full header, no sample columns and no records (a lab delivers no calls without
    samples, and an empty sites-only file could not carry AC/AN), and a manifest holding
    only its header.

    Args:
        people: the roster, in index order.
        out: the cohort's output folder.

    Returns:
        ``genomics/cohort.vcf.gz`` to its number of VCF records and ``genomics/samples.csv``
        to its number of rows (the index is written alongside and not listed).

    Raises:
        OSError: if the folder cannot be created or written.
    """
    sequenced = [p for p in people if p.vcf_sample_id is not None]
    manifest = io.StringIO()
    writer = csv.writer(manifest, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    table = _SiteTable(cohort_sites(sequenced[0].seed) if sequenced else [])
    summary = _SiteSummary(len(table.sites))
    samples: list[pl.Series] = []
    batch: list[_Calls] = []
    for count, person in enumerate(sequenced, start=1):
        rng = person.rng("genomics")
        calls = _person_calls(
            np.random.default_rng(rng.getrandbits(128)), person.gender == "male", table
        )
        summary.add(calls)
        batch.append(calls)
        if len(batch) == _PEOPLE_PER_BATCH or count == len(sequenced):
            samples += _sample_columns(batch, table)
            batch = []
        writer.writerow(_manifest_row(person, rng))
    header = vcf_header([p.vcf_sample_id or "" for p in sequenced])
    with AtomicFolder(Path(out) / FOLDER) as folder, tempfile.TemporaryDirectory() as scratch:
        plain = Path(scratch) / "cohort.vcf"
        with plain.open("w", encoding="ascii", newline="\n") as handle:
            handle.write(header)
            if samples:
                handle.write(_vcf_body(table, summary, samples))
        compressed = Path(scratch) / VCF_NAME
        pysam.tabix_compress(str(plain), str(compressed), force=True)
        pysam.tabix_index(str(compressed), preset="vcf", force=True)
        for name in (VCF_NAME, f"{VCF_NAME}.tbi"):
            with (Path(scratch) / name).open("rb") as source:
                shutil.copyfileobj(source, folder.open(name))
        folder.open(MANIFEST_NAME).write(manifest.getvalue().encode("utf-8"))
    records = len(table.sites) if samples else 0
    return {f"{FOLDER}/{VCF_NAME}": records, f"{FOLDER}/{MANIFEST_NAME}": len(sequenced)}
