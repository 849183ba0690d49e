import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.errors import MalformedRecordError
from connectors.result import REJECT_SCHEMA
from connectors.vcf import read_vcf
from connectors.vcf.records import (
    ALT_INVALID,
    CHROM_EMPTY,
    POS_INVALID,
    QUAL_INVALID,
    REF_INVALID,
    undeclared_info_warning,
)
from tests.connectors.vcf.conftest import DATA

# A value in the malformed records below; no reject reason or error message may carry it.
SECRET = "7319"


def variants(path, *columns: str) -> pl.DataFrame:
    # bcftools_norm.vcf has one record with an invalid ALT ('I'); it is set aside.
    return read_vcf(path, on_error="quarantine").tables["variants"].select(columns)


def rejects(path, rows: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(str(path), locator, reason) for locator, reason in rows],
        schema=REJECT_SCHEMA,
        orient="row",
    )


def test_a_multiallelic_record_gives_one_row_per_alt_with_its_number_a_values():
    frame = variants(
        DATA / "tb.vcf.gz",
        "record_index",
        "line",
        "alt",
        "allele_index",
        "n_alleles",
        "multiallelic",
        "info_AF",
        "info_DP",
    ).filter(pl.col("record_index") == 2)

    expected = pl.DataFrame(
        {
            "record_index": [2, 2],
            "line": [22, 22],
            "alt": ["G", "T"],
            "allele_index": [1, 2],
            "n_alleles": [3, 3],
            "multiallelic": [True, True],
            "info_AF": [[0.333, 0.667], [0.333, 0.667]],  # Number=. stays whole
            "info_DP": [10, 10],
        },
        schema_overrides={"allele_index": pl.Int32(), "n_alleles": pl.Int32()},
    )
    assert_frame_equal(frame, expected)


def test_freebayes_number_a_values_follow_their_alt_allele():
    frame = variants(
        DATA / "freebayes.vcf",
        "pos",
        "ref",
        "alt",
        "info_AC",
        "info_AF",
        "info_CIGAR",
        "info_TYPE",
        "info_NUMALT",
        "info_BVAR",
    ).filter(pl.col("pos") == 42525952)

    expected = pl.DataFrame(
        {
            "pos": [42525952, 42525952],
            "ref": ["C", "C"],
            "alt": ["A", "CA"],
            "info_AC": [6, 2],
            "info_AF": [0.428571, 0.142857],
            "info_CIGAR": ["1X", "1M1I"],
            "info_TYPE": ["snp", "ins"],
            "info_NUMALT": [2, 2],
            "info_BVAR": [True, True],
        }
    )
    assert_frame_equal(frame, expected)


def test_number_r_values_pair_the_ref_value_with_this_alts_value():
    frame = variants(
        DATA / "bcftools_norm.vcf",
        "pos",
        "alt",
        "info_XRF",
        "info_XRI",
        "info_XRS",
        "info_XAF",
        "info_XGF",
        "info_XGI",
    ).filter(pl.col("pos") == 105)

    expected = pl.DataFrame(
        {
            "pos": [105, 105],
            "alt": ["TAA", "TAACCCTAAA"],
            "info_XRF": [[1e6, 2e6], [1e6, 500000.0]],  # scientific notation
            "info_XRI": [[1111, 2222], [1111, 5555]],
            "info_XRS": [["AAA", "BBB"], ["AAA", "DDD"]],
            "info_XAF": [1e6, 500000.0],
            "info_XGF": [[1e6, 2e6, 3e6, 500000.0, None, 9e9]] * 2,  # Number=G stays whole
            "info_XGI": [[1111, 2222, 3333, 5555, None, 9999]] * 2,
        }
    )
    assert_frame_equal(frame, expected)


def test_end_comes_from_info_end_when_present_else_from_the_ref_length():
    frame = variants(DATA / "bcftools_norm.vcf", "chrom", "pos", "ref", "end").filter(
        pl.col("chrom") == "2"
    )

    assert frame.select("pos", "end").rows() == [
        (1, 192),  # END=192 on a 186-base REF
        (101, 114),
        (114, 115),
        (114, 115),
        (115, 115),  # no END: pos + len(REF) - 1
    ]


def test_symbolic_alleles_keep_their_angle_brackets_and_end_from_info():
    frame = variants(
        DATA / "example-4.1-sv.vcf",
        "pos",
        "ref",
        "alt",
        "end",
        "info_SVTYPE",
        "info_SVLEN",
        "info_CIPOS",
        "info_IMPRECISE",
        "info_MEINFO",
    )

    expected = pl.DataFrame(
        {
            "pos": [2827693, 321682, 14477084, 9425916, 12665100, 18665128],
            "ref": [
                "CCGTGGATGCGGGGACCCGCATCCCCTCTCCCTTCACAGCTGAGTGACCCACATCCCCTCTCCCCTCGCA",
                "T",
                "C",
                "C",
                "A",
                "T",
            ],
            "alt": ["C", "<DEL>", "<DEL:ME:ALU>", "<INS:ME:L1>", "<DUP>", "<DUP:TANDEM>"],
            # The first END (2827680) lies before POS: ignored, as htslib does.
            "end": [2827762, 321887, 14477381, 9425916, 12686200, 18665204],
            "info_SVTYPE": ["DEL", "DEL", "DEL", "INS", "DUP", "DUP"],
            "info_SVLEN": [[-66], [-105], [-297], [6027], [21100], [76]],
            "info_CIPOS": [None, [-56, 20], [-22, 18], [-16, 22], [-500, 500], [-10, 10]],
            "info_IMPRECISE": [False, True, True, True, True, True],
            "info_MEINFO": [None, None, ["AluYa5", "5", "307", "+"], None, None, None],
        }
    )
    assert_frame_equal(frame, expected)


def test_undeclared_info_items_are_kept_verbatim_with_a_warning():
    result = read_vcf(DATA / "example-4.1-sv.vcf")

    assert result.tables["variants"]["info_undeclared"].to_list() == [
        None,
        None,
        None,
        "MIINFO=L1HS,1,6025,-",
        None,
        None,
    ]
    assert result.tables["vcf_files"]["warnings"].to_list() == [[undeclared_info_warning("MIINFO")]]


def test_breakend_and_single_breakend_alleles_are_valid(write_vcf):
    path = write_vcf(
        "1\t2\tbnd1\tT\tT[2:3[\t40\tPASS\t.\tGT\t0|1\t0|0",
        "1\t3\tbnd2\tA\t]2:2]A\t40\tPASS\t.\tGT\t0|1\t0|0",
        "1\t4\tbnd3\tG\t[<ctg1>:7[G,G]13:5]\t40\tPASS\t.\tGT\t1|2\t0|0",
        "1\t5\tsbnd\tG\tG.,.G\t40\tPASS\t.\tGT\t1|2\t0|0",
        "1\t6\tdel\tGA\tG,*\t40\tPASS\t.\tGT\t1|2\t0|0",
    )

    assert variants(path, "alt")["alt"].to_list() == [
        "T[2:3[",
        "]2:2]A",
        "[<ctg1>:7[G",
        "G]13:5]",
        "G.",
        ".G",
        "G",
        "*",
    ]


def test_missing_fixed_values_are_null_and_no_alt_gives_allele_index_0(write_vcf):
    path = write_vcf("1\t10\t.\tA\t.\t.\t.\tAF=.;AD=5\tGT\t0/0\t0/0")

    frame = variants(
        path,
        "id",
        "alt",
        "allele_index",
        "n_alleles",
        "multiallelic",
        "qual",
        "filters",
        "info_AF",
        "info_AD",
        "end",
    )
    expected = pl.DataFrame(
        {
            "id": [None],
            "alt": [None],
            "allele_index": [0],
            "n_alleles": [1],
            "multiallelic": [False],
            "qual": [None],
            "filters": [None],
            "info_AF": [None],
            "info_AD": [[5, None]],
            "end": [10],
        },
        schema={
            "id": pl.String(),
            "alt": pl.String(),
            "allele_index": pl.Int32(),
            "n_alleles": pl.Int32(),
            "multiallelic": pl.Boolean(),
            "qual": pl.Float64(),
            "filters": pl.List(pl.String()),
            "info_AF": pl.Float64(),
            "info_AD": pl.List(pl.Int64()),
            "end": pl.Int64(),
        },
    )
    assert_frame_equal(frame, expected)


def test_filters_split_on_semicolons_and_position_zero_is_a_telomere(write_vcf):
    path = write_vcf("1\t0\trs1;rs2\tN\t<DEL>\t1e2\tq10;s50\t.\tGT\t0/1\t0/0")

    frame = variants(path, "pos", "id", "qual", "filters")

    assert frame.rows() == [(0, "rs1;rs2", 100.0, ["q10", "s50"])]


def test_flags_are_false_when_absent_and_true_when_present_even_with_a_value(write_vcf):
    path = write_vcf(
        "1\t1\t.\tA\tG\t.\t.\tDB\tGT\t0/1\t0/0",
        "1\t2\t.\tA\tG\t.\t.\tDP=3\tGT\t0/1\t0/0",
        "1\t3\t.\tA\tG\t.\t.\tDP=3;DB=1\tGT\t0/1\t0/0",
        "1\t4\t.\tA\tG\t.\t.\tDBX=1\tGT\t0/1\t0/0",
    )

    frame = variants(path, "info_DB", "info_DP", "info_undeclared")

    assert frame.rows() == [
        (True, None, None),
        (False, 3, None),
        (True, 3, None),
        (False, None, "DBX=1"),
    ]


def test_percent_encoded_string_values_are_decoded(write_vcf):
    path = write_vcf("1\t1\t.\tA\tG\t.\t.\tNOTE=a%3Bb%3Dc%2Cd%25\tGT\t0/1\t0/0")

    assert variants(path, "info_NOTE")["info_NOTE"].to_list() == ["a;b=c,d%"]


def test_an_empty_info_value_is_missing():
    frame = variants(DATA / "bcftools_norm.vcf", "pos", "info_AC", "info_AN").filter(
        pl.col("pos") == 274
    )

    assert frame.rows() == [(274, None, 0)]  # AC= (empty)


def test_values_at_the_edges_of_the_info_column_are_found(write_vcf):
    path = write_vcf(
        "1\t1\t.\tA\tG,T\t.\t.\tAF=0.1,0.2;DP=7;AD=1,2,3;NOTE=x\tGT\t0/1\t0/0",
        "1\t2\t.\tA\tG\t.\t.\tNOTE=y;AD=4,5;DP=8;AF=0.3\tGT\t0/1\t0/0",
    )

    frame = variants(path, "pos", "info_AF", "info_DP", "info_AD", "info_NOTE")

    assert frame.rows() == [
        (1, 0.1, 7, [1, 2], "x"),
        (1, 0.2, 7, [1, 3], "x"),
        (2, 0.3, 8, [4, 5], "y"),
    ]


MALFORMED = [
    ("1\tpos7319\t.\tA\tG\t50\tPASS\tDP=5\tGT\t0/1\t0/0", POS_INVALID),
    ("1\t-7319\t.\tA\tG\t50\tPASS\tDP=5\tGT\t0/1\t0/0", POS_INVALID),
    ("\t7319\t.\tA\tG\t50\tPASS\tDP=5\tGT\t0/1\t0/0", CHROM_EMPTY),
    ("1\t7319\t.\tAXZ\tG\t50\tPASS\tDP=5\tGT\t0/1\t0/0", REF_INVALID),
    ("1\t7319\t.\tA\tG7319\t50\tPASS\tDP=5\tGT\t0/1\t0/0", ALT_INVALID),
    ("1\t7319\t.\tA\tG,,T\t50\tPASS\tDP=5\tGT\t0/1\t0/0", ALT_INVALID),
    ("1\t7319\t.\tA\tI\t50\tPASS\tDP=5\tGT\t0/1\t0/0", ALT_INVALID),
    ("1\t7319\t.\tA\tG\tq7319\tPASS\tDP=5\tGT\t0/1\t0/0", QUAL_INVALID),
    (
        "1\t10\t.\tA\tG\t50\tPASS\tDP=7319x\tGT\t0/1\t0/0",
        "INFO/DP is not of Type=Integer as the header declares",
    ),
    (
        "1\t10\t.\tA\tG\t50\tPASS\tDP=7319.5\tGT\t0/1\t0/0",
        "INFO/DP is not of Type=Integer as the header declares",
    ),
    (
        "1\t10\t.\tA\tG,T\t50\tPASS\tAF=0.7319,high\tGT\t0/1\t0/0",
        "INFO/AF is not of Type=Float as the header declares",
    ),
    (
        "1\t10\t.\tA\tG,T\t50\tPASS\tAF=0.7319\tGT\t0/1\t0/0",
        "INFO/AF does not hold one value per ALT allele (Number=A)",
    ),
    (
        "1\t10\t.\tA\tG\t50\tPASS\tAD=7319\tGT\t0/1\t0/0",
        "INFO/AD does not hold one value per allele, REF included (Number=R)",
    ),
]


@pytest.mark.parametrize(("line", "reason"), MALFORMED)
def test_a_malformed_record_is_quarantined_whole_with_its_line(write_vcf, line, reason):
    path = write_vcf(
        "1\t5\t.\tC\tT\t50\tPASS\tDP=1\tGT\t0/1\t0/0",
        line,
        "1\t20\t.\tC\tT\t50\tPASS\tDP=2\tGT\t1/1\t0/0",
    )

    result = read_vcf(path, on_error="quarantine")

    assert_frame_equal(result.rejects, rejects(path, [("line:13", reason)]))
    assert result.tables["variants"]["record_index"].to_list() == [0, 2]
    assert sorted(result.tables["genotypes"]["record_index"].to_list()) == [0, 0, 2, 2]
    files = result.tables["vcf_files"]
    assert files.select("records", "variants", "genotypes", "rejected").row(0) == (3, 2, 4, 1)
    assert SECRET not in reason


@pytest.mark.parametrize(("line", "reason"), MALFORMED)
def test_a_malformed_record_raises_without_its_values_in_raise_mode(write_vcf, line, reason):
    path = write_vcf("1\t5\t.\tC\tT\t50\tPASS\tDP=1\tGT\t0/1\t0/0", line)

    with pytest.raises(MalformedRecordError) as raised:
        read_vcf(path)

    assert (raised.value.locator, raised.value.reason) == ("line:13", reason)
    assert SECRET not in str(raised.value)
