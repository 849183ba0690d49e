"""VCF connector: VCF (plain, BGZF, gzip) and BCF files into typed polars tables."""

from connectors.vcf.header import Contig, FieldDef, VcfHeader
from connectors.vcf.reader import (
    VcfBatch,
    VcfReader,
    iter_vcf_batches,
    read_vcf,
    read_vcf_header,
)
from connectors.vcf.schema import VCF_FILES_SCHEMA, genotypes_schema, variants_schema

__all__ = [
    "VCF_FILES_SCHEMA",
    "Contig",
    "FieldDef",
    "VcfBatch",
    "VcfHeader",
    "VcfReader",
    "genotypes_schema",
    "iter_vcf_batches",
    "read_vcf",
    "read_vcf_header",
    "variants_schema",
]
