import pytest

from connectors.errors import SourceNotFoundError, UnsupportedFormatError
from connectors.vcf import Contig, FieldDef, read_vcf_header
from connectors.vcf.header import parse_header
from tests.connectors.vcf.conftest import DATA

COLUMNS = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"


def header(*lines: str, columns: str = COLUMNS + "\tFORMAT\tS1"):
    return parse_header(["##fileformat=VCFv4.2", *lines, columns], "test.vcf")


def test_quoted_descriptions_keep_their_commas_and_escaped_quotes():
    parsed = read_vcf_header(DATA / "bcftools_query.vcf")

    assert parsed.format_field("TT") == FieldDef(
        id="TT",
        number="A",
        type="Integer",
        description='Testing Tag, with commas and "escapes" and escaped escapes combined with '
        '\\"quotes\\\\"',
        column="fmt_TT",
    )
    assert parsed.info_field("DP4").description == (
        "# high-quality ref-forward bases, ref-reverse, alt-forward and alt-reverse bases"
    )


def test_a_header_declares_contigs_reference_samples_and_fields_in_order():
    parsed = read_vcf_header(DATA / "bcftools_query.vcf")

    assert parsed.fileformat == "VCFv4.1"
    assert parsed.reference == (
        "file:///lustre/scratch105/projects/g1k/ref/main_project/human_g1k_v37.fasta"
    )
    assert parsed.contigs == (
        Contig("1", 249250621),
        Contig("3", 198022430),
        Contig("4", 191154276),
        Contig("2", 249250621),
    )
    assert [f.id for f in parsed.info] == ["TEST", "DP4", "AC", "AN"]
    assert [f.id for f in parsed.formats] == ["TT", "GT", "GQ", "DP", "GL"]
    assert parsed.filters == ("q10", "test")
    assert parsed.samples == ("C", "D")
    assert parsed.has_format_column
    assert parsed.n_columns == 11
    assert parsed.lines[0] == "##fileformat=VCFv4.1"
    assert parsed.lines[-1].startswith("#CHROM\tPOS")
    assert parsed.text == "".join(f"{line}\n" for line in parsed.lines)
    assert len(parsed.lines) == 20


def test_a_sites_only_header_has_no_samples_and_eight_columns():
    parsed = read_vcf_header(DATA / "issue-201.vcf.gz")

    assert parsed.samples == ()
    assert not parsed.has_format_column
    assert parsed.n_columns == 8


def test_the_header_of_a_bcf_file_is_read_through_bcftools():
    parsed = read_vcf_header(DATA / "htslib_vcf_file.bcf")

    assert parsed.samples == ("A", "B")
    assert [f.id for f in parsed.info] == ["TEST", "DP4", "AC", "AN", "INDEL", "STR"]


def test_column_names_replace_unsafe_characters_and_number_collisions():
    parsed = header(
        '##INFO=<ID=GERP++_RS,Number=1,Type=Float,Description="x">',
        '##INFO=<ID=GERP___RS,Number=1,Type=Float,Description="x">',
        '##INFO=<ID=dp,Number=1,Type=Integer,Description="x">',
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="x">',
        '##INFO=<ID=undeclared,Number=0,Type=Flag,Description="x">',
        '##FORMAT=<ID=1000G.AF,Number=1,Type=Float,Description="x">',
    )

    assert [f.column for f in parsed.info] == [
        "info_GERP___RS",
        "info_GERP___RS_2",
        "info_dp",
        "info_DP_2",  # Delta Lake column names are case-insensitive
        "info_undeclared_2",
    ]
    assert [f.column for f in parsed.formats] == ["fmt_1000G_AF"]


def test_a_field_declared_twice_keeps_the_first_declaration_with_a_warning():
    parsed = header(
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="first">',
        '##INFO=<ID=DP,Number=1,Type=Float,Description="second">',
    )

    assert [(f.id, f.type) for f in parsed.info] == [("DP", "Integer")]
    assert parsed.warnings == ("INFO DP is declared more than once; the first declaration is used",)


def test_lines_the_connector_does_not_interpret_are_kept_verbatim():
    parsed = header(
        "##SAMPLE=<SampleName=<GermlineS>,Genomes=<Germline>>",
        '##failue="test file"',
        '##FILTER=<ID=q10,Description="Quality below 10">',
    )

    assert parsed.lines[1:3] == (
        "##SAMPLE=<SampleName=<GermlineS>,Genomes=<Germline>>",
        '##failue="test file"',
    )
    assert parsed.filters == ("q10",)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('##INFO=<ID=DP,Number=1,Type=Int,Description="x">', "its Type is missing"),
        ('##INFO=<ID=DP,Number=-2,Type=Integer,Description="x">', "its Number is missing"),
        ('##INFO=<Number=1,Type=Integer,Description="x">', "it has no ID"),
        ('##INFO=<ID=DP,Number=1,Type=Integer,Description="open>', "not a list of KEY=VALUE"),
        ("##INFO=ID=DP,Number=1,Type=Integer", "not enclosed in '<' and '>'"),
        ('##FORMAT=<ID=FT,Number=0,Type=Flag,Description="x">', "FORMAT fields cannot be flags"),
        ("##contig=<ID=1,length=ten>", "the contig length is not a whole number"),
    ],
)
def test_an_unreadable_declaration_names_its_line_and_how_to_fix_it(line, problem):
    with pytest.raises(UnsupportedFormatError) as raised:
        header(line)

    message = str(raised.value)
    assert "test.vcf header line 2 cannot be read" in message
    assert problem in message
    assert "Fix the declaration" in message


def test_a_column_line_separated_by_spaces_is_not_a_vcf_header():
    with pytest.raises(UnsupportedFormatError, match="separate its columns with single tab"):
        read_vcf_header(DATA / "example-4.1-bnd.vcf").samples  # noqa: B018


@pytest.mark.parametrize(
    ("columns", "problem"),
    [
        (COLUMNS + "\tFORMAT\tS1\tS1", "names a sample twice"),
        (COLUMNS + "\tS1", "not FORMAT"),
        ("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER", "does not name the columns"),
    ],
)
def test_a_malformed_column_line_is_not_a_vcf_header(columns, problem):
    with pytest.raises(UnsupportedFormatError, match=problem):
        header(columns=columns)


def test_a_file_without_fileformat_first_is_not_a_vcf_file():
    with pytest.raises(UnsupportedFormatError, match="not a VCF file"):
        parse_header(["##source=x", COLUMNS], "test.vcf")


def test_a_header_without_a_column_line_is_not_a_vcf_header():
    with pytest.raises(UnsupportedFormatError, match="has no '#CHROM' header line"):
        parse_header(["##fileformat=VCFv4.2", "##source=x"], "test.vcf")


def test_data_before_the_column_line_is_not_a_vcf_header():
    with pytest.raises(UnsupportedFormatError, match="line 2 is neither"):
        parse_header(["##fileformat=VCFv4.2", "1\t100\t.\tA\tG\t.\t.\t."], "test.vcf")


def test_reading_the_header_of_a_missing_file_says_it_does_not_exist(tmp_path):
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        read_vcf_header(tmp_path / "absent.vcf")


def test_reading_the_header_of_a_text_file_says_it_is_not_a_vcf(tmp_path):
    path = tmp_path / "notes.vcf"
    path.write_text("patient notes\n", encoding="utf-8")

    with pytest.raises(UnsupportedFormatError, match="does not start with '##fileformat=VCF'"):
        read_vcf_header(path)
