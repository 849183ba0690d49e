"""Every real VCF file in shared/data loads, or is rejected for a stated reason.

Expected counts were taken from the files with zcat, grep and awk (data lines, ALT alleles,
sample columns), and for BCF from ``bcftools view``, not from this reader's output. Values
are cross-checked against pysam (htslib), an independent parser.
"""

import gzip
import math
import shutil
from pathlib import Path

import polars as pl
import pysam
import pytest
from polars.testing import assert_frame_equal

from connectors.errors import UnsupportedFormatError
from connectors.result import REJECT_SCHEMA
from connectors.vcf import genotypes_schema, read_vcf, variants_schema
from connectors.vcf.records import ALT_INVALID

A_COUNT = "INFO/AC does not hold one value per ALT allele (Number=A)"

# file -> (records, variants, genotypes, rejects as (locator, reason)) or the error raised.
EXPECTED: dict[str, tuple[int, int, int, list[tuple[str, str]]] | str] = {
    "1kg.vcf.gz": (381, 381, 381 * 629, []),
    "bcftools_atomize.split.1.vcf": (4, 12, 16, []),
    # line 60: ALT 'I' (a VCF 3.3 insertion code) is not a VCF 4 allele.
    "bcftools_norm.vcf": (24, 38, 46, [("line:60", ALT_INVALID)]),
    "bcftools_query.vcf": (13, 17, 26, []),
    "bcftools_roh.1.vcf.gz": (3124, 3129, 3124, []),
    "bcftools_roh.1.vcf.gz.csi": "does not start with '##fileformat=VCF'",
    # The #CHROM line is separated by spaces (and an INFO declares Number=-1).
    "example-4.1-bnd.vcf": "separate its columns with single tab characters",
    "example-4.1-sv.vcf": (6, 6, 6, []),
    "freebayes.vcf": (104, 109, 728, []),
    "htslib_formatmissing.vcf": (1, 1, 3, []),
    "htslib_vcf44_1.vcf": (28, 28, 56, []),
    # 15 records with 323 ALT alleles; line 38 (decoded text) has 305 ALTs and one AC value.
    "htslib_vcf_file.bcf": (15, 18, 28, [("line:38", A_COUNT)]),
    "issue-201.vcf.gz": (3, 3, 0, []),
    "issue-201.vcf.gz.tbi": "does not start with '##fileformat=VCF'",
    "tb.vcf.gz": (5, 7, 15, []),
    "tb.vcf.gz.tbi": "does not start with '##fileformat=VCF'",
    "uncalled_genotypes.vcf": (4, 6, 12, []),
}


@pytest.fixture(scope="module")
def vcf_folder(shared_data: Path) -> Path:
    return shared_data / "vcf"


def test_the_expected_outcomes_cover_every_shared_vcf_file(vcf_folder):
    assert {path.name for path in vcf_folder.iterdir() if path.is_file()} == EXPECTED.keys()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_shared_vcf_file_loads_or_is_rejected_for_a_stated_reason(vcf_folder, name):
    path = vcf_folder / name
    expected = EXPECTED[name]
    if isinstance(expected, str):
        with pytest.raises(UnsupportedFormatError, match=expected):
            read_vcf(path, on_error="quarantine")
        return

    records, variants, genotypes, rejects = expected
    result = read_vcf(path, on_error="quarantine")

    assert list(result.tables) == ["variants", "genotypes", "vcf_files"]
    header_schema = result.tables["variants"].schema
    assert result.tables["variants"].height == variants
    assert result.tables["genotypes"].height == genotypes
    assert_frame_equal(
        result.rejects,
        pl.DataFrame(
            [(str(path), locator, reason) for locator, reason in rejects],
            schema=REJECT_SCHEMA,
            orient="row",
        ),
    )
    files = result.tables["vcf_files"]
    assert files.select("records", "variants", "genotypes", "rejected").row(0) == (
        records,
        variants,
        genotypes,
        len(rejects),
    )
    assert files["size_bytes"][0] == path.stat().st_size
    assert "source_file" in header_schema


@pytest.mark.parametrize(
    ("name", "compression", "index"),
    [
        ("1kg.vcf.gz", "gzip", None),
        ("tb.vcf.gz", "bgzf", "tbi"),
        ("bcftools_roh.1.vcf.gz", "bgzf", "csi"),
        ("htslib_vcf_file.bcf", "bcf", None),
        ("freebayes.vcf", "none", None),
    ],
)
def test_the_file_row_records_compression_index_and_the_manifest_hash(
    vcf_folder, shared_data, name, compression, index
):
    files = read_vcf(vcf_folder / name, on_error="quarantine").tables["vcf_files"]

    manifest = (shared_data / "MANIFEST.md").read_text(encoding="utf-8")
    line = next(row for row in manifest.splitlines() if f"`vcf/{name}`" in row)
    assert files["sha256"][0][:12] in line
    assert files.select("compression", "index").row(0) == (compression, index)


def test_plain_gzip_with_629_samples_reads_every_genotype(vcf_folder):
    result = read_vcf(vcf_folder / "1kg.vcf.gz")
    files = result.tables["vcf_files"]
    genotypes = result.tables["genotypes"]

    assert len(files["samples"][0]) == 629
    assert genotypes["sample_id"].n_unique() == 629
    assert genotypes.group_by("record_index").len()["len"].unique().to_list() == [629]
    assert genotypes["fmt_GL"].dtype == pl.List(pl.Float64())


# --- Cross-check against pysam -----------------------------------------------------------


def normalise(value: object) -> object:
    """pysam gives tuples (with None for '.'); missing lists are None or all-None."""
    if isinstance(value, tuple | list):
        items = [normalise(item) for item in value]
        return None if all(item is None for item in items) else items
    if isinstance(value, float):
        return None if math.isnan(value) else float(f"{value:.6g}")
    return None if value == "." else value  # pysam shows a missing string as '.'


def pysam_frames(path: Path, header_variants: dict, header_genotypes: dict, every: int = 1):
    """Expected variants and genotypes (shared columns) from pysam, in our layout.

    ``every`` keeps every n-th sample only, to keep wide files quick.
    """
    # END is not an INFO value to htslib (it sets the record's length); Number=G is not valid
    # in INFO, and pysam refuses to read it.
    info_keys = {
        name[len("info_") :]: name
        for name in header_variants
        if name.startswith("info_") and name not in ("info_undeclared", "info_END")
    }
    format_keys = {
        name[len("fmt_") :]: name for name in header_genotypes if name.startswith("fmt_")
    }
    variant_rows, genotype_rows = [], []
    with pysam.VariantFile(str(path)) as vcf:
        numbers = {key: vcf.header.info[key].number for key in info_keys}
        info_keys = {key: column for key, column in info_keys.items() if numbers[key] != "G"}
        for record_index, record in enumerate(vcf):
            alts = record.alts or (None,)
            for offset, alt in enumerate(alts):
                allele_index = offset + 1 if record.alts else 0
                row = {
                    "record_index": record_index,
                    "chrom": record.chrom,
                    "pos": record.pos,
                    "end": record.stop,
                    "id": record.id,
                    "ref": record.ref,
                    "alt": alt,
                    "allele_index": allele_index,
                    "n_alleles": len(record.alleles),
                    "qual": normalise(record.qual),
                    "filters": list(record.filter.keys()) or None,
                }
                for key, column in info_keys.items():
                    value = record.info.get(key)
                    number = numbers.get(key)
                    if number == 0:
                        value = bool(value)
                    elif number == "A":
                        value = (
                            value[allele_index - 1]
                            if value and 0 < allele_index <= len(value)
                            else None
                        )
                    elif number == "R" and value is not None and len(value) > allele_index:
                        value = [value[0], value[allele_index] if allele_index else None]
                    row[column] = normalise(value)
                variant_rows.append(row)
            for sample_index, sample in enumerate(record.samples.values()):
                if sample_index % every:
                    continue
                row = {"record_index": record_index, "sample_index": sample_index}
                gt = sample.get("GT") if "GT" in sample else None
                row["alleles"] = list(gt) if gt is not None else None
                for key, column in format_keys.items():
                    row[column] = normalise(sample.get(key)) if key in sample else None
                genotype_rows.append(row)
    return variant_rows, genotype_rows


def ours(frame: pl.DataFrame, rows: list[dict]) -> list[dict]:
    columns = list(rows[0]) if rows else []
    return [
        {name: value if name == "alleles" else normalise(value) for name, value in row.items()}
        for row in frame.sort(
            [c for c in ("record_index", "allele_index", "sample_index") if c in frame.columns]
        )
        .select(columns)
        .to_dicts()
    ]


@pytest.mark.parametrize(
    "name",
    [
        "tb.vcf.gz",
        "freebayes.vcf",
        "bcftools_query.vcf",
        "bcftools_norm.vcf",
        "bcftools_atomize.split.1.vcf",
        "bcftools_roh.1.vcf.gz",
        "uncalled_genotypes.vcf",
        "example-4.1-sv.vcf",
        "issue-201.vcf.gz",
        "htslib_formatmissing.vcf",
        "htslib_vcf44_1.vcf",
        "htslib_vcf_file.bcf",
    ],
)
def test_values_match_pysam(vcf_folder, name):
    path = vcf_folder / name
    result = read_vcf(path, on_error="quarantine")
    variants, genotypes = result.tables["variants"], result.tables["genotypes"]

    expected_variants, expected_genotypes = pysam_frames(
        path, variants_schema_of(result), genotypes.schema
    )
    # pysam keeps the records this reader rejects; leave them out of the comparison.
    header_lines = result.tables["vcf_files"]["header_text"][0].count("\n")
    rejected = {
        int(locator.removeprefix("line:")) - header_lines - 1
        for locator in result.rejects["locator"]
    }
    expected_variants = [row for row in expected_variants if row["record_index"] not in rejected]
    expected_genotypes = [row for row in expected_genotypes if row["record_index"] not in rejected]

    assert ours(variants, expected_variants) == expected_variants
    assert ours(genotypes, expected_genotypes) == expected_genotypes


def test_values_of_plain_gzip_match_pysam_on_a_decompressed_copy(vcf_folder, tmp_path):
    # htslib cannot index or seek plain gzip; give it the same text uncompressed.
    copy = tmp_path / "1kg.vcf"
    with gzip.open(vcf_folder / "1kg.vcf.gz", "rb") as source, open(copy, "wb") as target:
        shutil.copyfileobj(source, target)
    result = read_vcf(vcf_folder / "1kg.vcf.gz")

    expected_variants, expected_genotypes = pysam_frames(
        copy, variants_schema_of(result), result.tables["genotypes"].schema, every=10
    )
    genotypes = result.tables["genotypes"].filter(pl.col("sample_index") % 10 == 0)

    assert ours(result.tables["variants"], expected_variants) == expected_variants
    assert ours(genotypes, expected_genotypes) == expected_genotypes


def variants_schema_of(result) -> dict:
    schema = dict(result.tables["variants"].schema)
    assert schema == variants_schema_from_file(result)
    return schema


def variants_schema_from_file(result) -> dict:
    from connectors.vcf.header import parse_header

    text = result.tables["vcf_files"]["header_text"][0]
    header = parse_header(text.splitlines(), "header")
    assert dict(result.tables["genotypes"].schema) == genotypes_schema(header)
    return variants_schema(header)
