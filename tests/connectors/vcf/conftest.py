from collections.abc import Callable
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "data" / "vcf"

HEADER = """##fileformat=VCFv4.3
##contig=<ID=1,length=1000>
##INFO=<ID=DP,Number=1,Type=Integer,Description="Total depth">
##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency">
##INFO=<ID=AD,Number=R,Type=Integer,Description="Allele depths">
##INFO=<ID=DB,Number=0,Type=Flag,Description="dbSNP">
##INFO=<ID=NOTE,Number=1,Type=String,Description="Free text">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2
"""
"""A small header: 11 lines, so the first data line is line 12."""

WriteVcf = Callable[..., Path]


@pytest.fixture
def write_vcf(tmp_path: Path) -> WriteVcf:
    """Write a VCF from data lines (columns joined by tabs) under ``HEADER`` or another one."""

    def write(*lines: str, header: str = HEADER, name: str = "test.vcf") -> Path:
        path = tmp_path / name
        path.write_text(header + "".join(f"{line}\n" for line in lines), encoding="utf-8")
        return path

    return write
