"""The genomics suites on hand-built frames (from the VCF contract): clean frames pass, and a
frame with one defect fails exactly the expectation that names it."""

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from mcp_catalog.governance.genomics import GENOMIC_VIEWS
from quality.rejects import REJECT_THRESHOLDS
from quality.suite_tables import GENOMICS_SUITE_TABLES
from quality.suites import SUITE_TABLES, references_for, suite_for
from quality.suites.genomics import (
    ALT_ALLELE,
    GENOMICS_GOLD_VIEWS,
    GENOMICS_SUITES,
    GENOTYPE_DTYPES,
    REF_ALLELE,
    VARIANT_DTYPES,
    VCF_FILES_DTYPES,
)
from quality.suites.gold import FORBIDDEN_COLUMNS
from tests.quality.frames import (
    assert_only_these_fail,
    defect_params,
    failed,
    set_row,
    validator,
)

VCF_FILES = "bronze/genomics/vcf_files"
BRONZE_VARIANTS = "bronze/genomics/variants"
SILVER_VARIANTS = "silver/genomics/variants"
BRONZE_GENOTYPES = "bronze/genomics/genotypes"
SILVER_GENOTYPES = "silver/genomics/genotypes"
SAMPLES = "bronze/genomics/samples"
FREQUENCIES = "gold/research/variant_frequencies"
GOLD_GENOTYPES = "gold/research/genotypes"
GOLD_PATIENTS = "gold/research/patients"

COHORT, SITES = "landing/genomics/cohort.vcf.gz", "landing/genomics/sites.vcf"
SHA_COHORT = hashlib.sha256(b"cohort").hexdigest()
SHA_SITES = hashlib.sha256(b"sites").hexdigest()
SHA_MANIFEST = hashlib.sha256(b"samples.csv").hexdigest()
INGESTED = datetime(2026, 11, 1, 12, tzinfo=UTC)
WRITTEN = datetime(2026, 10, 31, 18, tzinfo=UTC)
S1, S2 = "BF01-S000101", "BF01-S000102"
PERSON_1 = hashlib.md5(b"person 1").hexdigest()
PERSON_2 = hashlib.md5(b"person 2").hexdigest()
P1, P2 = "P-" + "a1" * 10, "P-" + "b2" * 10

UTC_TIME = pl.Datetime("us", "UTC")
INGEST = {"source_sha256": pl.String(), "ingested_at": UTC_TIME}

# --- good frames, written from the contract (sections 1, 3 and 4) ---------------------------


def vcf_files() -> pl.DataFrame:
    cohort_header = (
        "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=248956422>\n"
        f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{S1}\t{S2}"
    )
    sites_header = "##fileformat=VCFv4.3\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"
    schema = {
        "source_file": pl.String(),
        "sha256": pl.String(),
        "size_bytes": pl.Int64(),
        "compression": pl.String(),
        "index": pl.String(),
        "fileformat": pl.String(),
        "reference": pl.String(),
        "contigs": pl.List(pl.Struct({"id": pl.String(), "length": pl.Int64()})),
        "samples": pl.List(pl.String()),
        "info_fields": pl.List(pl.String()),
        "format_fields": pl.List(pl.String()),
        "header_text": pl.String(),
        "records": pl.Int64(),
        "variants": pl.Int64(),
        "genotypes": pl.Int64(),
        "rejected": pl.Int64(),
        "warnings": pl.List(pl.String()),
        "source_sha256": pl.String(),
        "source_modified_at": UTC_TIME,
        "ingested_at": UTC_TIME,
    }
    rows = [
        (
            COHORT,
            SHA_COHORT,
            4096,
            "bgzf",
            "tbi",
            "VCFv4.2",
            "GRCh38",
            [{"id": "chr1", "length": 248956422}],
            [S1, S2],
            ["DP", "END"],
            ["GT", "DP", "GQ", "AD"],
            cohort_header,
            4,
            5,
            8,
            0,
            [],
            SHA_COHORT,
            WRITTEN,
            INGESTED,
        ),
        (
            SITES,
            SHA_SITES,
            512,
            "none",
            None,
            "VCFv4.3",
            None,
            [],
            [],
            [],
            [],
            sites_header,
            2,
            1,
            0,
            1,
            [],
            SHA_SITES,
            WRITTEN,
            INGESTED,
        ),
    ]
    return pl.DataFrame(rows, schema=schema, orient="row")


VARIANT_SCHEMA = {
    "source_file": pl.String(),
    "record_index": pl.Int64(),
    "line": pl.Int64(),
    "chrom": pl.String(),
    "pos": pl.Int64(),
    "end": pl.Int64(),
    "id": pl.String(),
    "ref": pl.String(),
    "alt": pl.String(),
    "allele_index": pl.Int32(),
    "n_alleles": pl.Int32(),
    "multiallelic": pl.Boolean(),
    "qual": pl.Float64(),
    "filters": pl.List(pl.String()),
    "info_undeclared": pl.String(),
    "info_DP": pl.Int64(),
    "info_END": pl.Int64(),
    **INGEST,
}


def variants() -> pl.DataFrame:
    """Four cohort records (one split into two rows, one without ALT) and one breakend of a
    sites-only file whose first record was rejected."""
    rows = [
        (COHORT, 0, 4, "chr1", 100, 100, "rs1", "A", "G", 1, 2, False, 50.0, ["PASS"], None),
        (COHORT, 1, 5, "chr1", 200, 300, None, "C", "T", 1, 3, True, 20.5, ["q10"], None),
        (COHORT, 1, 5, "chr1", 200, 300, None, "C", "<DEL>", 2, 3, True, 20.5, ["q10"], None),
        (COHORT, 2, 6, "chr1", 400, 400, None, "g", None, 0, 1, False, None, None, "XX=1"),
        (COHORT, 3, 7, "chr1", 500, 503, None, "ACGT", "A", 1, 2, False, 99.0, ["PASS"], None),
        (SITES, 1, 4, "chr2", 1000, 1000, None, "T", "T]chr2:5000]", 1, 2, False, 6.0, None, None),
    ]
    # info_DP, info_END
    extra = [(30, None), (22, 300), (22, 300), (None, None), (41, None), (None, None)]
    shas = [SHA_COHORT] * 5 + [SHA_SITES]
    return pl.DataFrame(
        [(*r, *e, sha, INGESTED) for r, e, sha in zip(rows, extra, shas, strict=True)],
        schema=VARIANT_SCHEMA,
        orient="row",
    )


GENOTYPE_SCHEMA = {
    "source_file": pl.String(),
    "record_index": pl.Int64(),
    "chrom": pl.String(),
    "pos": pl.Int64(),
    "sample_index": pl.Int32(),
    "sample_id": pl.String(),
    "gt": pl.String(),
    "alleles": pl.List(pl.Int32()),
    "ploidy": pl.Int32(),
    "phased": pl.Boolean(),
    "called": pl.Boolean(),
    "n_alleles": pl.Int32(),
    "fmt_DP": pl.Int64(),
    "fmt_GQ": pl.Int64(),
    "fmt_AD": pl.List(pl.Int64()),
    **INGEST,
}


def genotypes() -> pl.DataFrame:
    """Every cohort record for both samples: het, hom-alt phased, multi-allelic het, a
    half call, hom-ref, a whole no-call, GT absent and a haploid call."""
    calls = [
        (0, 100, 0, S1, "0/1", [0, 1], 2, False, True, 2, 30, 99, [15, 15]),
        (0, 100, 1, S2, "1|1", [1, 1], 2, True, True, 2, 25, 60, [0, 25]),
        (1, 200, 0, S1, "1/2", [1, 2], 2, False, True, 3, 18, 45, [0, 9, 9]),
        (1, 200, 1, S2, "0/.", [0, None], 2, False, False, 3, None, None, None),
        (2, 400, 0, S1, "0/0", [0, 0], 2, False, True, 1, 40, 80, [40]),
        (2, 400, 1, S2, "./.", [None, None], 2, False, False, 1, 12, 30, None),
        (3, 500, 0, S1, None, None, 0, False, False, 2, None, None, None),
        (3, 500, 1, S2, "1", [1], 1, False, True, 2, 9, 20, [0, 9]),
    ]
    return pl.DataFrame(
        [
            (COHORT, record, "chr1", pos, *rest, SHA_COHORT, INGESTED)
            for record, pos, *rest in calls
        ],
        schema=GENOTYPE_SCHEMA,
        orient="row",
    )


def silver_genotypes() -> pl.DataFrame:
    people = {S1: PERSON_1, S2: PERSON_2}
    frame = genotypes()
    keys = pl.Series("person_key", [people[s] for s in frame["sample_id"]], dtype=pl.String())
    return frame.with_columns(keys)


def samples() -> pl.DataFrame:
    schema = {
        "sample_id": pl.String(),
        "mrn": pl.String(),
        "specimen_type": pl.String(),
        "collection_date": pl.Date(),
        "sequencing_platform": pl.String(),
        "vcf_file": pl.String(),
        "source_file": pl.String(),
        **INGEST,
    }
    manifest = "landing/genomics/samples.csv"
    platform = "Illumina NovaSeq 6000"
    rows = [
        (S1, "MRN00000101", "blood", date(2025, 3, 1), platform, "cohort.vcf.gz", manifest),
        (S2, "MRN00000102", "saliva", date(2025, 4, 2), platform, "cohort.vcf.gz", manifest),
    ]
    return pl.DataFrame([(*r, SHA_MANIFEST, INGESTED) for r in rows], schema=schema, orient="row")


def variant_frequencies() -> pl.DataFrame:
    schema = {
        "chrom": pl.String(),
        "pos": pl.Int64(),
        "end": pl.Int64(),
        "ref": pl.String(),
        "alt": pl.String(),
        "allele_count": pl.Int64(),
        "allele_number": pl.Int64(),
        "allele_frequency": pl.Float64(),
        "carriers": pl.Int64(),
        "homozygous_alt": pl.Int64(),
        "filter_pass": pl.Boolean(),
    }
    rows = [
        ("chr1", 100, 100, "A", "G", 3, 8, 3 / 8, 2, 1, True),
        ("chr1", 200, 300, "C", "T", 1, 8, 1 / 8, 1, 0, False),
        ("chr1", 200, 300, "C", "<DEL>", 1, 8, 1 / 8, 1, 0, False),
        ("chr2", 1000, 1000, "T", "T]chr2:5000]", 2, 6, 2 / 6, 2, 0, True),
    ]
    return pl.DataFrame(rows, schema=schema, orient="row")


def research_genotypes() -> pl.DataFrame:
    schema = {
        "person_pseudonym": pl.String(),
        "chrom": pl.String(),
        "pos": pl.Int64(),
        "end": pl.Int64(),
        "ref": pl.String(),
        "alt": pl.String(),
        "genotype": pl.String(),
        "alt_allele_copies": pl.Int64(),
        "zygosity": pl.String(),
        "phased": pl.Boolean(),
        "depth": pl.Int64(),
        "genotype_quality": pl.Int64(),
    }
    rows = [
        (P1, "chr1", 100, 100, "A", "G", "0/1", 1, "het", False, 30, 99),
        (P2, "chr1", 100, 100, "A", "G", "1|1", 2, "hom_alt", True, 25, 60),
        (P1, "chr1", 200, 300, "C", "T", "1/2", 1, "het", False, 18, 45),
        (P2, "chr1", 200, 300, "C", "T", "0/.", None, "partial", False, None, None),
        (P2, "chr1", 500, 503, "ACGT", "A", "1", 1, "hemizygous", False, 9, 20),
    ]
    return pl.DataFrame(rows, schema=schema, orient="row")


def gold_patients() -> pl.DataFrame:
    return pl.DataFrame({"person_pseudonym": [P1, P2]})


GOOD: dict[str, Callable[[], pl.DataFrame]] = {
    VCF_FILES: vcf_files,
    BRONZE_VARIANTS: variants,
    SILVER_VARIANTS: variants,
    BRONZE_GENOTYPES: genotypes,
    SILVER_GENOTYPES: silver_genotypes,
    SAMPLES: samples,
    FREQUENCIES: variant_frequencies,
    GOLD_GENOTYPES: research_genotypes,
}
REFERENCES: dict[str, Callable[[], pl.DataFrame]] = {
    SAMPLES: samples,
    GOLD_PATIENTS: gold_patients,
}


_validate = validator(GOOD, REFERENCES)


# --- registration --------------------------------------------------------------------------


def test_every_genomics_table_is_registered_with_its_suite():
    assert set(GENOMICS_SUITE_TABLES) == set(GENOMICS_SUITES) == set(GOOD)
    assert set(GENOMICS_SUITE_TABLES) <= set(SUITE_TABLES)
    assert len(SUITE_TABLES) == len(set(SUITE_TABLES))
    assert [suite_for(t).table for t in GENOMICS_SUITE_TABLES] == list(GENOMICS_SUITE_TABLES)


def test_genotype_suites_read_the_manifest_and_the_research_genotypes_read_patients():
    assert {t: references_for(t) for t in GENOMICS_SUITE_TABLES} == {
        VCF_FILES: (),
        BRONZE_VARIANTS: (),
        BRONZE_GENOTYPES: (SAMPLES,),
        SAMPLES: (),
        SILVER_VARIANTS: (),
        SILVER_GENOTYPES: (SAMPLES,),
        FREQUENCIES: (),
        GOLD_GENOTYPES: (GOLD_PATIENTS,),
    }


@pytest.mark.parametrize("table", GENOMICS_SUITE_TABLES)
def test_each_genomics_suite_checks_its_columns_first_and_describes_every_check_once(table):
    suite = suite_for(table)
    assert suite.checks[0].expectation == "expect_table_columns_to_match_set"
    descriptions = [c.description for c in suite.checks]
    assert len(descriptions) == len(set(descriptions))
    assert set(suite.gx_columns()) <= set(suite.columns)


def test_the_suites_columns_are_the_contract_columns():
    assert suite_for(VCF_FILES).columns == tuple(vcf_files().columns)
    fixed_variants = [c for c in variants().columns if c not in ("info_DP", "info_END")]
    assert suite_for(BRONZE_VARIANTS).columns == tuple(fixed_variants)
    assert suite_for(SILVER_VARIANTS).columns == tuple(fixed_variants)
    fixed_genotypes = [c for c in genotypes().columns if not c.startswith("fmt_")]
    assert suite_for(BRONZE_GENOTYPES).columns == tuple(fixed_genotypes)
    assert suite_for(SILVER_GENOTYPES).columns == (*fixed_genotypes, "person_key")
    assert suite_for(SAMPLES).columns == tuple(samples().columns)
    assert suite_for(FREQUENCIES).columns == tuple(variant_frequencies().columns)
    assert suite_for(GOLD_GENOTYPES).columns == tuple(research_genotypes().columns)


def test_the_vcf_ledger_has_a_reject_threshold_stricter_than_the_fhir_feed():
    vcf, fhir = REJECT_THRESHOLDS[VCF_FILES], REJECT_THRESHOLDS["bronze/ehr/files"]
    assert 0 < vcf.warn_ratio < vcf.fail_ratio < 1
    assert (vcf.warn_ratio, vcf.fail_ratio) < (fhir.warn_ratio, fhir.fail_ratio)


def test_research_views_carry_no_identifier_columns():
    identifiers = {*FORBIDDEN_COLUMNS, "sample_id", "sample_index", "record_index", "line"}
    for view in GENOMICS_GOLD_VIEWS:
        assert not set(view.columns) & identifiers, view.name


def test_genomics_research_suites_match_the_catalog_views():
    specs = {spec.path: spec for spec in GENOMIC_VIEWS}
    assert sorted(specs) == sorted(f"gold/research/{v.name}" for v in GENOMICS_GOLD_VIEWS)
    for view in GENOMICS_GOLD_VIEWS:
        spec = specs[f"gold/research/{view.name}"]
        assert view.columns == tuple(c.name for c in spec.columns), view.name


def test_fixed_columns_match_the_vcf_connector(tmp_path):
    vcf = pytest.importorskip("connectors.vcf")
    path = tmp_path / "tiny.vcf"
    path.write_text(
        "##fileformat=VCFv4.2\n"
        "##contig=<ID=chr1,length=1000>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
    )
    header = vcf.read_vcf_header(path)
    assert dict(vcf.variants_schema(header)) == VARIANT_DTYPES
    assert dict(vcf.genotypes_schema(header)) == GENOTYPE_DTYPES
    assert dict(vcf.VCF_FILES_SCHEMA) == VCF_FILES_DTYPES


# --- allele alphabets ----------------------------------------------------------------------

VALID_ALTS = (
    "G",
    "acgtn",
    "*",
    "<DEL>",
    "<DUP:TANDEM>",
    "<*>",
    "<NON_REF>",
    "G]chr2:5000]",
    "G[chr2:5000[",
    "]chr2:5000]G",
    "[chr2:5000[G",
    "A[<ctg1>:7[",
    "CAGT[HLA-A*01:01:01:01:12[",
    ".A",
    "A.",
)
INVALID_ALTS = ("R", "A,G", "<DEL", "G]chr2:5000[", ".", "", "G]chr2]", "A C", "<A B>")


@pytest.mark.parametrize("alt", VALID_ALTS)
def test_valid_alt_alleles_match(alt):
    assert re.search(ALT_ALLELE, alt)


@pytest.mark.parametrize("alt", INVALID_ALTS)
def test_invalid_alt_alleles_do_not_match(alt):
    assert not re.search(ALT_ALLELE, alt)


@pytest.mark.parametrize(("ref", "ok"), [("A", True), ("acgtN", True), ("R", False), ("", False)])
def test_ref_is_bases(ref, ok):
    assert bool(re.search(REF_ALLELE, ref)) is ok


def _alt_rows(alts: tuple[str, ...]) -> pl.DataFrame:
    one = variants().head(1)
    return pl.concat([one] * len(alts)).with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("record_index"),
        pl.Series("alt", alts, dtype=pl.String()),
    )


def test_every_valid_alt_form_passes_in_great_expectations():
    assert failed(_validate(BRONZE_VARIANTS, _alt_rows(VALID_ALTS))) == {}


def test_invalid_alt_alleles_fail_in_great_expectations():
    result = _validate(BRONZE_VARIANTS, _alt_rows(INVALID_ALTS))
    assert failed(result) == {
        "alt is bases, *, a symbolic <ID> or a breakend (VCF 4.3 ALT)": len(INVALID_ALTS)
    }


# --- clean frames pass ---------------------------------------------------------------------


@pytest.mark.parametrize("table", GENOMICS_SUITE_TABLES)
def test_each_genomics_suite_passes_on_a_good_frame(table):
    frame = GOOD[table]()
    result = _validate(table, frame)
    assert failed(result) == {}
    assert result.success and result.rows == frame.height
    assert [o.description for o in result.outcomes] == [
        c.description for c in suite_for(table).checks
    ]


def test_genotypes_without_dp_or_gq_columns_pass():
    frame = genotypes().drop("fmt_DP", "fmt_GQ", "fmt_AD")
    assert failed(_validate(BRONZE_GENOTYPES, frame)) == {}


def test_a_sites_only_file_gives_empty_genotypes_that_pass():
    assert failed(_validate(BRONZE_GENOTYPES, genotypes().clear())) == {}


# --- one defect, one failed expectation ----------------------------------------------------


def _dup_first(frame: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([frame, frame.head(1)])


Mutation = Callable[[pl.DataFrame], pl.DataFrame]

DEFECTS: list[tuple[str, str, Mutation, dict[str, int | None]]] = [
    # vcf_files
    (
        VCF_FILES,
        "a file listed twice",
        _dup_first,
        {
            "source_file is unique": 2,
            "no two files have the same bytes (a copy would double every variant)": 2,
        },
    ),
    (
        VCF_FILES,
        "an upper-case hash",
        lambda f: set_row(f, 0, sha256=SHA_COHORT.upper(), source_sha256=SHA_COHORT.upper()),
        {
            "sha256 is 64 lowercase hex characters": 1,
            "source_sha256 is 64 lowercase hex characters": 1,
        },
    ),
    (
        VCF_FILES,
        "a hash of other bytes",
        lambda f: set_row(f, 0, sha256=SHA_SITES),
        {
            "sha256 equals source_sha256 (both hash the file as landed)": 1,
            "no two files have the same bytes (a copy would double every variant)": 2,
        },
    ),
    (
        VCF_FILES,
        "a VCF 3.3 file",
        lambda f: set_row(f, 0, fileformat="VCFv3.3"),
        {"fileformat is VCFv4.x": 1},
    ),
    (
        VCF_FILES,
        "a header without its fileformat line",
        lambda f: f.with_columns(pl.col("header_text").str.replace("##fileformat=VCFv4.2\n", "")),
        {"header_text starts with the ##fileformat=VCFv4.x line": 1},
    ),
    (
        VCF_FILES,
        "a header cut before #CHROM",
        lambda f: f.with_columns(pl.col("header_text").str.replace("#CHROM", "CHROM")),
        {"header_text holds the #CHROM line": 2},
    ),
    (
        VCF_FILES,
        "an unknown compression",
        lambda f: set_row(f, 1, compression="zip"),
        {"compression holds only VCF compression codes": 1},
    ),
    (
        VCF_FILES,
        "a BAM index",
        lambda f: set_row(f, 0, index="bai"),
        {"index holds only tabix or CSI index codes": 1},
    ),
    (
        VCF_FILES,
        "a negative size",
        lambda f: set_row(f, 0, size_bytes=-1),
        {"size_bytes is a count (not negative)": 1},
    ),
    (
        VCF_FILES,
        "more rejects than records",
        lambda f: set_row(f, 1, rejected=3),
        {"rejected is at most records (records counts rejects)": 1},
    ),
    (
        VCF_FILES,
        "fewer variant rows than accepted records",
        lambda f: set_row(f, 0, variants=3),
        {"every accepted record gave at least one variant row": 1},
    ),
    (
        VCF_FILES,
        "a genotype row lost",
        lambda f: set_row(f, 0, genotypes=7),
        {"genotypes is accepted records times samples": 1},
    ),
    (
        VCF_FILES,
        "a count stored as text",
        lambda f: f.with_columns(pl.col("records").cast(pl.String())),
        {
            "the columns of the VCF file ledger have their contract dtypes": 2,
            # Text cannot be compared with numbers: GX records a metric error, no count.
            "records is a count (not negative)": None,
            "rejected is at most records (records counts rejects)": None,
            "every accepted record gave at least one variant row": 2,
            "genotypes is accepted records times samples": 2,
        },
    ),
    (
        VCF_FILES,
        "a reader warning (only a warning)",
        lambda f: set_row(f, 1, warnings=["INFO key XX is not declared in the header"]),
        {"every file was read without reader warnings (e.g. undeclared INFO keys)": 1},
    ),
    # variants (bronze; silver shares the checks)
    (
        BRONZE_VARIANTS,
        "position 0",
        lambda f: set_row(f, 0, pos=0),
        {"pos is at least 1 (VCF positions are 1-based)": 1},
    ),
    (
        BRONZE_VARIANTS,
        "a float position",
        lambda f: f.with_columns(pl.col("pos").cast(pl.Float64())),
        {
            "the columns of bronze variants have their contract dtypes (positions and allele "
            "indices are integers)": 6
        },
    ),
    (
        BRONZE_VARIANTS,
        "an end before the position",
        lambda f: set_row(f, 0, end=99),
        {"pos is not after end": 1},
    ),
    (
        BRONZE_VARIANTS,
        "an IUPAC code in REF",
        lambda f: set_row(f, 0, ref="R"),
        {"ref is bases A, C, G, T or N": 1},
    ),
    (
        BRONZE_VARIANTS,
        "an unsplit ALT list",
        lambda f: set_row(f, 0, alt="G,T"),
        {"alt is bases, *, a symbolic <ID> or a breakend (VCF 4.3 ALT)": 1},
    ),
    (
        BRONZE_VARIANTS,
        "an allele index past the last allele",
        lambda f: set_row(f, 0, allele_index=2),
        {"allele_index is between 0 and n_alleles - 1": 1},
    ),
    (
        BRONZE_VARIANTS,
        "allele index 0 on an ALT allele",
        lambda f: set_row(f, 4, allele_index=0),
        {"allele_index is 0 exactly where alt is empty (ALT '.')": 1},
    ),
    (
        BRONZE_VARIANTS,
        "a split row listed twice",
        _dup_first,
        {"(source_file, record_index, allele_index) is unique": 2},
    ),
    (
        BRONZE_VARIANTS,
        "no chromosome",
        lambda f: set_row(f, 0, chrom=None),
        {"chrom is set on every row": 1},
    ),
    (
        BRONZE_VARIANTS,
        "a negative QUAL",
        lambda f: set_row(f, 0, qual=-1.0),
        {"qual is not negative where present (phred-scaled)": 1},
    ),
    (
        BRONZE_VARIANTS,
        "a biallelic record flagged multiallelic",
        lambda f: set_row(f, 0, multiallelic=True),
        {"multiallelic is set exactly when n_alleles is over 2": 1},
    ),
    (
        BRONZE_VARIANTS,
        "a column that is no INFO field",
        lambda f: f.with_columns(pl.lit("x").alias("patient_name")),
        {"every other column of bronze variants is a info_<KEY> column of the VCF header": 6},
    ),
    (
        BRONZE_VARIANTS,
        "a malformed source hash",
        lambda f: set_row(f, 0, source_sha256="abc"),
        {"source_sha256 is 64 lowercase hex characters": 1},
    ),
    (
        SILVER_VARIANTS,
        "an IUPAC code in REF in silver",
        lambda f: set_row(f, 2, ref="Y"),
        {"ref is bases A, C, G, T or N": 1},
    ),
    # genotypes
    (
        BRONZE_GENOTYPES,
        "an allele index past the record's alleles",
        lambda f: set_row(f, 0, alleles=[0, 2]),
        {"every called allele index is between 0 and n_alleles - 1": 1},
    ),
    (
        BRONZE_GENOTYPES,
        "a negative allele index",
        lambda f: set_row(f, 3, alleles=[-1, None]),
        {"every called allele index is between 0 and n_alleles - 1": 1},
    ),
    (
        BRONZE_GENOTYPES,
        "a ploidy that is not the allele count",
        lambda f: set_row(f, 7, ploidy=2),
        {"ploidy is the number of alleles in GT": 1},
    ),
    (
        BRONZE_GENOTYPES,
        "a half call flagged called",
        lambda f: set_row(f, 3, called=True),
        {"called is set exactly when no allele of GT is a no-call": 1},
    ),
    (
        BRONZE_GENOTYPES,
        "a full call flagged not called",
        lambda f: set_row(f, 0, called=False),
        {"called is set exactly when no allele of GT is a no-call": 1},
    ),
    (
        BRONZE_GENOTYPES,
        "a sample listed twice for one record",
        _dup_first,
        {"(source_file, record_index, sample_index) is unique": 2},
    ),
    (
        BRONZE_GENOTYPES,
        "a negative depth",
        lambda f: set_row(f, 1, fmt_DP=-3),
        {"fmt_DP is not negative where the header declares it": 1},
    ),
    (
        BRONZE_GENOTYPES,
        "a negative depth in a per-allele DP",
        lambda f: f.with_columns(
            pl.when(pl.int_range(pl.len()) == 2)
            .then(pl.lit([5, -1], dtype=pl.List(pl.Int64())))
            .otherwise(pl.concat_list(pl.col("fmt_DP")))
            .alias("fmt_DP")
        ),
        {"fmt_DP is not negative where the header declares it": 1},
    ),
    (
        BRONZE_GENOTYPES,
        "a negative genotype quality",
        lambda f: set_row(f, 0, fmt_GQ=-1),
        {"fmt_GQ is not negative where the header declares it": 1},
    ),
    (
        BRONZE_GENOTYPES,
        "no sample id",
        lambda f: set_row(f, 0, sample_id=None),
        {"sample_id is set on every row": 1},
    ),
    (
        BRONZE_GENOTYPES,
        "a column that is no FORMAT field",
        lambda f: f.with_columns(pl.lit("x").alias("mrn")),
        {"every other column of bronze genotypes is a fmt_<KEY> column of the VCF header": 8},
    ),
    (
        BRONZE_GENOTYPES,
        "a sample missing from the manifest (only a warning in bronze)",
        lambda f: f.with_columns(pl.col("sample_id").replace(S2, "BF01-S999999")),
        {"every sample_id is the sample_id of a row of bronze/genomics/samples": 4},
    ),
    (
        SILVER_GENOTYPES,
        "a sample missing from the manifest (an error in silver)",
        lambda f: f.with_columns(pl.col("sample_id").replace(S2, "BF01-S999999")),
        {"every sample_id is the sample_id of a row of bronze/genomics/samples": 4},
    ),
    (
        SILVER_GENOTYPES,
        "unlinked genotypes (a warning with their share)",
        lambda f: f.with_columns(
            pl.when(pl.col("sample_id") == S2)
            .then(None)
            .otherwise("person_key")
            .alias("person_key")
        ),
        {"at least 99% of genotype rows are linked to a person_key": 4},
    ),
    (
        SILVER_GENOTYPES,
        "a person_key not minted by the crosswalk",
        lambda f: f.with_columns(pl.col("person_key").replace(PERSON_1, "person-1")),
        {"person_key is a 32-hex random key": 4},
    ),
    (
        SILVER_GENOTYPES,
        "one sample linked to two people",
        lambda f: set_row(f, 0, person_key=PERSON_2),
        {"every row of a sample_id has the same person_key (or none)": 4},
    ),
    (
        SILVER_GENOTYPES,
        "a ploidy mismatch in silver",
        lambda f: set_row(f, 6, ploidy=2),
        {"ploidy is the number of alleles in GT": 1},
    ),
    # sample manifest
    (
        SAMPLES,
        "a sample listed twice",
        _dup_first,
        {"sample_id is unique": 2},
    ),
    (
        SAMPLES,
        "no sample id",
        lambda f: set_row(f, 1, sample_id=None),
        {"sample_id is set on every row": 1},
    ),
    (
        SAMPLES,
        "no MRN",
        lambda f: set_row(f, 1, mrn=None),
        {"mrn is set on every row": 1},
    ),
    (
        SAMPLES,
        "a lab MRN (only a warning)",
        lambda f: set_row(f, 0, mrn="LAB00000101"),
        {"mrn has the EHR's MRN shape (else the sample links to nobody)": 1},
    ),
    (
        SAMPLES,
        "a collection date in the future (only a warning)",
        lambda f: set_row(f, 0, collection_date=date.today() + timedelta(days=30)),
        {"collection_date is not in the future": 1},
    ),
    (
        SAMPLES,
        "a collection date kept as text",
        lambda f: f.with_columns(pl.col("collection_date").cast(pl.String())),
        {
            "the columns of the sample manifest have their contract dtypes": 2,
            # A derived check on a column of another dtype fails instead of raising.
            "collection_date is not in the future": 2,
        },
    ),
    (
        SAMPLES,
        "an extra column",
        lambda f: f.with_columns(pl.lit("Doe").alias("family_name")),
        {"the columns are exactly those of the sample manifest": 1},
    ),
    # gold variant frequencies
    (
        FREQUENCIES,
        "more alleles counted than called",
        lambda f: set_row(f, 0, allele_count=9, allele_frequency=9 / 8),
        {
            "allele_count is at most allele_number": 1,
            "allele_frequency is between 0 and 1": 1,
        },
    ),
    (
        FREQUENCIES,
        "a frequency that is not count over number",
        lambda f: set_row(f, 0, allele_frequency=0.5),
        {"allele_frequency is allele_count / allele_number": 1},
    ),
    (
        FREQUENCIES,
        "more carriers than alleles",
        lambda f: set_row(f, 1, carriers=2),
        {"carriers is at most allele_count": 1},
    ),
    (
        FREQUENCIES,
        "more homozygotes than carriers",
        lambda f: set_row(f, 0, homozygous_alt=3),
        {"homozygous_alt is at most carriers": 1},
    ),
    (
        FREQUENCIES,
        "a variant listed twice",
        _dup_first,
        {"(chrom, pos, ref, alt) is unique": 2},
    ),
    (
        FREQUENCIES,
        "an end before the position",
        lambda f: set_row(f, 3, end=999),
        {"pos is not after end": 1},
    ),
    (
        FREQUENCIES,
        "a sample id column",
        lambda f: f.with_columns(pl.lit(S1).alias("sample_id")),
        {
            "the columns are exactly those of the research view variant_frequencies (no "
            "identifiers)": 1
        },
    ),
    (
        FREQUENCIES,
        "an MRN in a text column",
        lambda f: set_row(f, 0, alt="MRN00000101"),
        {"no text value looks like an MRN": 1},
    ),
    (
        FREQUENCIES,
        "a negative count",
        lambda f: set_row(f, 1, homozygous_alt=-1),
        {"homozygous_alt is a count (not negative)": 1},
    ),
    # gold genotypes
    (
        GOLD_GENOTYPES,
        "a pseudonym of the wrong shape",
        lambda f: set_row(f, 0, person_pseudonym="P-XYZ"),
        {
            "person_pseudonym is a keyed pseudonym (P- and 20 hex characters)": 1,
            "every person_pseudonym is the person_pseudonym of a row of gold/research/patients": 1,
        },
    ),
    (
        GOLD_GENOTYPES,
        "a person outside the patients view",
        lambda f: set_row(f, 0, person_pseudonym="P-" + "c3" * 10),
        {"every person_pseudonym is the person_pseudonym of a row of gold/research/patients": 1},
    ),
    (
        GOLD_GENOTYPES,
        "an unknown zygosity",
        lambda f: set_row(f, 2, zygosity="compound_het"),
        {"zygosity holds only genotype zygosity codes": 1},
    ),
    (
        GOLD_GENOTYPES,
        "five copies of an allele",
        lambda f: set_row(f, 1, alt_allele_copies=5),
        {"alt_allele_copies is between 0 and 4 where called": 1},
    ),
    (
        GOLD_GENOTYPES,
        "negative allele copies",
        lambda f: set_row(f, 0, alt_allele_copies=-1),
        {"alt_allele_copies is between 0 and 4 where called": 1},
    ),
    (
        GOLD_GENOTYPES,
        "a person and variant listed twice",
        _dup_first,
        {"(person_pseudonym, chrom, pos, ref, alt) is unique": 2},
    ),
    (
        GOLD_GENOTYPES,
        "the person_key column",
        lambda f: f.with_columns(pl.lit(PERSON_1).alias("person_key")),
        {"the columns are exactly those of the research view genotypes (no identifiers)": 1},
    ),
    (
        GOLD_GENOTYPES,
        "a FHIR id in the genotype column",
        lambda f: set_row(f, 0, genotype="8c7e1f3a-0b1d-4c55-9a3e-2f0c8d9b7a61"),
        {"no text value looks like a UUID (a FHIR id of the EHR)": 1},
    ),
    (
        GOLD_GENOTYPES,
        "a negative depth",
        lambda f: set_row(f, 0, depth=-2),
        {"depth is not negative where present": 1},
    ),
    (
        GOLD_GENOTYPES,
        "position 0",
        lambda f: set_row(f, 0, pos=0),
        {"pos is at least 1 (VCF positions are 1-based)": 1},
    ),
]


@pytest.mark.parametrize(("table", "mutate", "expected"), defect_params(DEFECTS))
def test_a_single_defect_fails_the_expectation_that_names_it(table, mutate, expected):
    assert_only_these_fail(_validate(table, mutate(GOOD[table]())), expected)


@pytest.mark.parametrize(
    ("table", "description", "severity"),
    [
        (
            BRONZE_GENOTYPES,
            "every sample_id is the sample_id of a row of bronze/genomics/samples",
            "warning",
        ),
        (
            SILVER_GENOTYPES,
            "every sample_id is the sample_id of a row of bronze/genomics/samples",
            "error",
        ),
        (SILVER_GENOTYPES, "at least 99% of genotype rows are linked to a person_key", "warning"),
        (SAMPLES, "collection_date is not in the future", "warning"),
        (
            VCF_FILES,
            "no two files have the same bytes (a copy would double every variant)",
            "warning",
        ),
    ],
)
def test_linkage_and_plausibility_are_warnings_where_bronze_keeps_what_it_read(
    table, description, severity
):
    (check,) = [c for c in suite_for(table).checks if c.description == description]
    assert check.severity == severity


def test_a_missing_fixed_column_fails_the_column_set_instead_of_raising():
    result = _validate(BRONZE_VARIANTS, variants().drop("qual"))
    assert set(failed(result)) == {
        "the columns include every fixed column of bronze variants",
        "qual is not negative where present (phred-scaled)",
    }
    assert failed(result)["qual is not negative where present (phred-scaled)"] is None


def test_a_few_unlinked_genotypes_pass_and_report_their_share():
    linked = pl.concat([silver_genotypes()] * 25).with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).floordiv(2).alias("record_index")
    )
    unlinked = set_row(linked.head(1), 0, sample_index=2, sample_id="BF01-S000103", person_key=None)
    manifest = pl.concat([samples(), set_row(samples().head(1), 0, sample_id="BF01-S000103")])
    frame = pl.concat([linked, unlinked])
    result = _validate(SILVER_GENOTYPES, frame, samples=manifest)
    assert failed(result) == {}
    (share,) = [o for o in result.outcomes if o.column == "person_key" and "99%" in o.description]
    assert (share.success, share.unexpected_count, share.unexpected_percent) == (
        True,
        1,
        100 / frame.height,
    )


def test_a_manifest_without_the_sample_fails_silver_and_warns_in_bronze():
    manifest = samples().head(1)
    bronze = _validate(BRONZE_GENOTYPES, samples=manifest)
    silver = _validate(SILVER_GENOTYPES, samples=manifest)
    description = "every sample_id is the sample_id of a row of bronze/genomics/samples"
    assert bronze.success and failed(bronze) == {description: 4}
    assert not silver.success and failed(silver) == {description: 4}
