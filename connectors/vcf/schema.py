"""Typed columns of the VCF tables, with their descriptions.

One source of truth: the descriptions flow to Dagster column metadata, the catalog and the
MCP tool descriptions. ``variants`` and ``genotypes`` have fixed leading columns followed by
one column per INFO (``info_*``) or FORMAT (``fmt_*``) declaration of the file's header, so
their schemas are functions of a ``VcfHeader``; ``vcf_files`` is the same for every file.
"""

from dataclasses import dataclass

import polars as pl

from connectors.vcf.header import FieldDef, VcfHeader


@dataclass(frozen=True)
class Column:
    """One typed column: its name, polars dtype and a one-line description."""

    name: str
    dtype: pl.DataType
    description: str


VARIANT_COLUMNS: list[Column] = [
    Column("source_file", pl.String(), "Label of the VCF file the record was read from."),
    Column(
        "record_index",
        pl.Int64(),
        "0-based index of the data line among the file's data lines; joins genotypes.",
    ),
    Column("line", pl.Int64(), "1-based line number of the record in the (decompressed) file."),
    Column("chrom", pl.String(), "Chromosome or contig (CHROM)."),
    Column("pos", pl.Int64(), "1-based position of the first REF base (POS)."),
    Column(
        "end",
        pl.Int64(),
        "1-based last position covered: INFO/END when declared and present (and not before "
        "pos), else pos + len(ref) - 1.",
    ),
    Column("id", pl.String(), "Variant identifiers (ID), null when '.'."),
    Column("ref", pl.String(), "Reference allele (REF)."),
    Column(
        "alt",
        pl.String(),
        "This row's alternate allele; multi-allelic records give one row per ALT. Null when "
        "ALT is '.'.",
    ),
    Column(
        "allele_index",
        pl.Int32(),
        "1-based index of alt in the record's ALT list (0 when the record has no ALT).",
    ),
    Column("n_alleles", pl.Int32(), "Number of alleles in the record (REF plus ALTs)."),
    Column("multiallelic", pl.Boolean(), "The record listed more than one ALT allele."),
    Column("qual", pl.Float64(), "Phred-scaled quality (QUAL), null when '.'."),
    Column(
        "filters",
        pl.List(pl.String()),
        "Filters the record failed, or ['PASS'] (FILTER split on ';'); null when '.'.",
    ),
    Column(
        "info_undeclared",
        pl.String(),
        "INFO items whose key the header does not declare, verbatim and joined with ';'; "
        "null when there are none.",
    ),
]
"""The leading columns of ``variants``; ``info_*`` columns follow in header order."""

GENOTYPE_COLUMNS: list[Column] = [
    Column("source_file", pl.String(), "Label of the VCF file the genotype was read from."),
    Column(
        "record_index",
        pl.Int64(),
        "Index of the record among the file's data lines; joins every variants row of it.",
    ),
    Column("chrom", pl.String(), "Chromosome or contig of the record."),
    Column("pos", pl.Int64(), "1-based position of the record."),
    Column("sample_index", pl.Int32(), "0-based position of the sample among the samples."),
    Column("sample_id", pl.String(), "Sample name from the #CHROM header line."),
    Column("gt", pl.String(), "Genotype (GT) as written; null when the record has no GT."),
    Column(
        "alleles",
        pl.List(pl.Int32()),
        "Allele indices of GT into the record's alleles (0 = REF, 1 = first ALT); a no-call "
        "'.' is a null element. Null when GT is absent.",
    ),
    Column("ploidy", pl.Int32(), "Number of alleles in GT (0 when GT is absent)."),
    Column(
        "phased",
        pl.Boolean(),
        "Every phase separator written in GT is '|' (VCF 4.4 allows a leading '|' on "
        "haploid calls); false for unphased, mixed or haploid calls without one.",
    ),
    Column("called", pl.Boolean(), "Every allele of GT is called (no '.'); false without GT."),
    Column("n_alleles", pl.Int32(), "Number of alleles of the record (REF plus ALTs)."),
]
"""The leading columns of ``genotypes``; ``fmt_*`` columns follow in header order."""

VCF_FILE_COLUMNS: list[Column] = [
    Column("source_file", pl.String(), "Label of the VCF file."),
    Column("sha256", pl.String(), "SHA-256 of the file's bytes as stored (hex)."),
    Column("size_bytes", pl.Int64(), "Size of the file as stored, in bytes."),
    Column("compression", pl.String(), "How the file is stored: bgzf, gzip, none or bcf."),
    Column("index", pl.String(), "Index beside the file: tbi, csi, or null when none."),
    Column("fileformat", pl.String(), "VCF version from ##fileformat (VCFv4.2, ...)."),
    Column("reference", pl.String(), "The ##reference header value, null when absent."),
    Column(
        "contigs",
        pl.List(pl.Struct({"id": pl.String(), "length": pl.Int64()})),
        "Contigs declared in the header, with their lengths when declared.",
    ),
    Column("samples", pl.List(pl.String()), "Sample names in column order."),
    Column("info_fields", pl.List(pl.String()), "INFO keys declared in the header, in order."),
    Column("format_fields", pl.List(pl.String()), "FORMAT keys declared in the header, in order."),
    Column("header_text", pl.String(), "Every header line verbatim, the #CHROM line included."),
    Column("records", pl.Int64(), "Data lines read, rejected records included."),
    Column("variants", pl.Int64(), "Rows written to variants (one per record and ALT)."),
    Column("genotypes", pl.Int64(), "Rows written to genotypes (one per record and sample)."),
    Column("rejected", pl.Int64(), "Records set aside as malformed."),
    Column(
        "warnings",
        pl.List(pl.String()),
        "Fixed sentences about what was read differently from the header's declarations.",
    ),
]
"""One row per file read."""

VCF_FILES_SCHEMA: dict[str, pl.DataType] = {c.name: c.dtype for c in VCF_FILE_COLUMNS}
"""The schema of the one-row ``vcf_files`` frame of each file."""

_ELEMENT_DTYPES: dict[str, pl.DataType] = {
    "Integer": pl.Int64(),
    "Float": pl.Float64(),
    "Character": pl.String(),
    "String": pl.String(),
}


def element_dtype(field: FieldDef) -> pl.DataType:
    """The dtype of one value of an INFO or FORMAT field.

    Args:
        field: a declaration whose Type is not Flag.

    Returns:
        Int64 for Integer, Float64 for Float, String for String and Character.

    Raises:
        KeyError: for Type=Flag.
    """
    return _ELEMENT_DTYPES[field.type]


def is_flag(field: FieldDef) -> bool:
    """Whether an INFO field is a flag (Type=Flag or Number=0): present or absent.

    Args:
        field: an INFO declaration.

    Returns:
        True for a flag.
    """
    return field.type == "Flag" or field.number == "0"


def info_dtype(field: FieldDef) -> pl.DataType:
    """The ``variants`` dtype of an INFO field.

    Flags are Boolean; Number=1 and Number=A (the value of the row's ALT) are scalars;
    Number=R is a list of [REF value, this ALT's value]; every other Number is a list of
    all values.

    Args:
        field: an INFO declaration.

    Returns:
        The column's dtype.
    """
    if is_flag(field):
        return pl.Boolean()
    if field.number in ("1", "A"):
        return element_dtype(field)
    return pl.List(element_dtype(field))


def format_dtype(field: FieldDef) -> pl.DataType:
    """The ``genotypes`` dtype of a FORMAT field: a scalar for Number=1, else a list.

    Args:
        field: a FORMAT declaration other than GT.

    Returns:
        The column's dtype.
    """
    if field.number == "1":
        return element_dtype(field)
    return pl.List(element_dtype(field))


def variants_columns(header: VcfHeader) -> list[Column]:
    """The columns of ``variants`` for a file with this header, with descriptions.

    Args:
        header: the file's parsed header.

    Returns:
        The columns in output order; INFO columns quote the header's Description.
    """
    return [
        *VARIANT_COLUMNS,
        *(Column(f.column, info_dtype(f), _describe("INFO", f)) for f in header.info),
    ]


def genotypes_columns(header: VcfHeader) -> list[Column]:
    """The columns of ``genotypes`` for a file with this header, with descriptions.

    Args:
        header: the file's parsed header.

    Returns:
        The columns in output order; FORMAT columns quote the header's Description.
    """
    return [
        *GENOTYPE_COLUMNS,
        *(
            Column(f.column, format_dtype(f), _describe("FORMAT", f))
            for f in header.formats
            if f.id != "GT"
        ),
    ]


def variants_schema(header: VcfHeader) -> dict[str, pl.DataType]:
    """The polars schema of every ``variants`` frame read from a file with this header.

    Args:
        header: the file's parsed header.

    Returns:
        Column name to dtype, in output order: the fixed columns, then one ``info_*`` column
        per INFO declaration in header order.
    """
    return {c.name: c.dtype for c in variants_columns(header)}


def genotypes_schema(header: VcfHeader) -> dict[str, pl.DataType]:
    """The polars schema of every ``genotypes`` frame read from a file with this header.

    Args:
        header: the file's parsed header.

    Returns:
        Column name to dtype, in output order: the fixed columns, then one ``fmt_*`` column
        per FORMAT declaration other than GT, in header order.
    """
    return {c.name: c.dtype for c in genotypes_columns(header)}


def _describe(kind: str, field: FieldDef) -> str:
    what = f"{kind}/{field.id} (Number={field.number}, Type={field.type})"
    if kind == "INFO" and field.number == "A":
        what += ", the value of this row's ALT"
    elif kind == "INFO" and field.number == "R":
        what += ", [REF value, this row's ALT value]"
    description = (field.description or "").strip()
    return f"{what}: {description}" if description else f"{what}."
