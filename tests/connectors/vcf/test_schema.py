import polars as pl
import pytest

from connectors.vcf import VCF_FILES_SCHEMA, genotypes_schema, read_vcf_header, variants_schema
from connectors.vcf.header import parse_header
from connectors.vcf.schema import (
    GENOTYPE_COLUMNS,
    VARIANT_COLUMNS,
    genotypes_columns,
    variants_columns,
)
from tests.connectors.vcf.conftest import DATA


def declared(kind: str, number: str, value_type: str):
    header = parse_header(
        [
            "##fileformat=VCFv4.3",
            f'##{kind}=<ID=X,Number={number},Type={value_type},Description="x">',
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1",
        ],
        "test.vcf",
    )
    if kind == "INFO":
        return variants_schema(header)["info_X"]
    return genotypes_schema(header)["fmt_X"]


@pytest.mark.parametrize(
    ("number", "value_type", "dtype"),
    [
        ("1", "Integer", pl.Int64()),
        ("1", "Float", pl.Float64()),
        ("1", "String", pl.String()),
        ("1", "Character", pl.String()),
        ("0", "Flag", pl.Boolean()),
        ("0", "Integer", pl.Boolean()),
        ("A", "Float", pl.Float64()),
        ("A", "String", pl.String()),
        ("R", "Integer", pl.List(pl.Int64())),
        ("G", "Float", pl.List(pl.Float64())),
        (".", "String", pl.List(pl.String())),
        ("4", "Integer", pl.List(pl.Int64())),
        ("-1", "Integer", pl.List(pl.Int64())),
    ],
)
def test_info_columns_are_typed_by_number_and_type(number, value_type, dtype):
    assert declared("INFO", number, value_type) == dtype


@pytest.mark.parametrize(
    ("number", "value_type", "dtype"),
    [
        ("1", "Integer", pl.Int64()),
        ("1", "Float", pl.Float64()),
        ("1", "String", pl.String()),
        ("A", "Integer", pl.List(pl.Int64())),
        ("R", "Integer", pl.List(pl.Int64())),
        ("G", "Float", pl.List(pl.Float64())),
        (".", "String", pl.List(pl.String())),
        ("2", "Integer", pl.List(pl.Int64())),
    ],
)
def test_format_columns_are_scalar_for_number_1_and_lists_otherwise(number, value_type, dtype):
    assert declared("FORMAT", number, value_type) == dtype


def test_variants_have_the_fixed_columns_then_info_columns_in_header_order():
    header = read_vcf_header(DATA / "tb.vcf.gz")

    assert list(variants_schema(header).items()) == [
        ("source_file", pl.String()),
        ("record_index", pl.Int64()),
        ("line", pl.Int64()),
        ("chrom", pl.String()),
        ("pos", pl.Int64()),
        ("end", pl.Int64()),
        ("id", pl.String()),
        ("ref", pl.String()),
        ("alt", pl.String()),
        ("allele_index", pl.Int32()),
        ("n_alleles", pl.Int32()),
        ("multiallelic", pl.Boolean()),
        ("qual", pl.Float64()),
        ("filters", pl.List(pl.String())),
        ("info_undeclared", pl.String()),
        ("info_NS", pl.Int64()),
        ("info_DP", pl.Int64()),
        ("info_AF", pl.List(pl.Float64())),
        ("info_AA", pl.String()),
        ("info_DB", pl.Boolean()),
        ("info_H2", pl.Boolean()),
        ("info_AC", pl.Int64()),
    ]


def test_genotypes_have_the_fixed_columns_then_format_columns_without_gt():
    header = read_vcf_header(DATA / "tb.vcf.gz")

    assert list(genotypes_schema(header).items()) == [
        ("source_file", pl.String()),
        ("record_index", pl.Int64()),
        ("chrom", pl.String()),
        ("pos", pl.Int64()),
        ("sample_index", pl.Int32()),
        ("sample_id", pl.String()),
        ("gt", pl.String()),
        ("alleles", pl.List(pl.Int32())),
        ("ploidy", pl.Int32()),
        ("phased", pl.Boolean()),
        ("called", pl.Boolean()),
        ("n_alleles", pl.Int32()),
        ("fmt_GQ", pl.Int64()),
        ("fmt_DP", pl.Int64()),
        ("fmt_HQ", pl.List(pl.Int64())),
    ]


def test_every_column_has_a_description_and_field_columns_quote_the_header():
    header = read_vcf_header(DATA / "tb.vcf.gz")
    columns = variants_columns(header) + genotypes_columns(header)

    assert all(column.description for column in columns)
    described = {column.name: column.description for column in columns}
    assert described["info_AC"] == (
        "INFO/AC (Number=A, Type=Integer), the value of this row's ALT: Total number of "
        "alternate alleles in called genotypes"
    )
    assert described["fmt_HQ"] == "FORMAT/HQ (Number=2, Type=Integer): Haplotype Quality"
    assert len(VARIANT_COLUMNS) == 15
    assert len(GENOTYPE_COLUMNS) == 12


def test_vcf_files_schema_is_the_contracts():
    assert list(VCF_FILES_SCHEMA.items()) == [
        ("source_file", pl.String()),
        ("sha256", pl.String()),
        ("size_bytes", pl.Int64()),
        ("compression", pl.String()),
        ("index", pl.String()),
        ("fileformat", pl.String()),
        ("reference", pl.String()),
        ("contigs", pl.List(pl.Struct({"id": pl.String(), "length": pl.Int64()}))),
        ("samples", pl.List(pl.String())),
        ("info_fields", pl.List(pl.String())),
        ("format_fields", pl.List(pl.String())),
        ("header_text", pl.String()),
        ("records", pl.Int64()),
        ("variants", pl.Int64()),
        ("genotypes", pl.Int64()),
        ("rejected", pl.Int64()),
        ("warnings", pl.List(pl.String())),
    ]
