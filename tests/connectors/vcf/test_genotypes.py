import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.errors import MalformedRecordError
from connectors.result import REJECT_SCHEMA
from connectors.vcf import genotypes_schema, read_vcf, read_vcf_header
from connectors.vcf.genotypes import (
    GT_INVALID,
    GT_OUT_OF_RANGE,
    TOO_MANY_VALUES,
    _genotype,
    undeclared_format_warning,
)
from tests.connectors.vcf.conftest import DATA

SECRET = "7319"

CALL_SCHEMA = {
    "gt": pl.String(),
    "alleles": pl.List(pl.Int32()),
    "ploidy": pl.Int32(),
    "phased": pl.Boolean(),
    "called": pl.Boolean(),
}


def genotypes(path, *columns: str) -> pl.DataFrame:
    frame = read_vcf(path, on_error="quarantine").tables["genotypes"]
    return frame.sort("record_index", "sample_index").select(columns)


def calls(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=CALL_SCHEMA, orient="row")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("0/1", ([0, 1], 2, False, True, False, 1)),
        ("1|0", ([1, 0], 2, True, True, False, 1)),
        ("0", ([0], 1, False, True, False, 0)),
        ("|0", ([0], 1, True, True, False, 0)),
        ("/0|1", ([0, 1], 2, False, True, False, 1)),
        ("0|0|1", ([0, 0, 1], 3, True, True, False, 1)),
        (".", ([None], 1, False, False, False, -1)),
        ("./.", ([None, None], 2, False, False, False, -1)),
        ("./1", ([None, 1], 2, False, False, False, 1)),
        ("12/3", ([12, 3], 2, False, True, False, 12)),
        ("0/a", (None, 0, False, False, True, -1)),
        ("0//1", (None, 0, False, False, True, -1)),
        ("", (None, 0, False, False, True, -1)),
        ("0/1/", (None, 0, False, False, True, -1)),
        ("99999999999/0", (None, 2, False, True, False, 2**31)),
    ],
)
def test_a_gt_string_is_parsed_into_alleles_ploidy_phase_and_call(text, parsed):
    assert _genotype(text) == parsed


def test_vcf_4_4_leading_phase_indicators_haploid_and_partial_calls():
    frame = genotypes(DATA / "htslib_vcf44_1.vcf", *CALL_SCHEMA)

    expected = calls(
        [
            ("0|0|1", [0, 0, 1], 3, True, True),
            ("0/1", [0, 1], 2, False, True),
            ("0", [0], 1, False, True),
            ("/0|1", [0, 1], 2, False, True),
            ("/0", [0], 1, False, True),
            ("|0/1", [0, 1], 2, False, True),
            ("/0", [0], 1, False, True),
            ("/1", [1], 1, False, True),
            ("0", [0], 1, False, True),
            ("1", [1], 1, False, True),
            ("0", [0], 1, False, True),
            ("/1", [1], 1, False, True),
            ("0", [0], 1, False, True),
            ("|1", [1], 1, True, True),
            ("|0", [0], 1, True, True),
            ("1", [1], 1, False, True),
            ("|0", [0], 1, True, True),
            ("|1", [1], 1, True, True),
            ("|0", [0], 1, True, True),
            ("/1", [1], 1, False, True),
            ("/0", [0], 1, False, True),
            ("1", [1], 1, False, True),
            ("/0", [0], 1, False, True),
            ("|1", [1], 1, True, True),
            ("/0", [0], 1, False, True),
            ("/1", [1], 1, False, True),
            ("/0|0", [0, 0], 2, False, True),
            ("/1/0", [1, 0], 2, False, True),
            ("|0|0", [0, 0], 2, True, True),
            ("|1/0", [1, 0], 2, False, True),
            ("/0|0", [0, 0], 2, False, True),
            ("1/0", [1, 0], 2, False, True),
            ("0|0", [0, 0], 2, True, True),
            ("|1/0", [1, 0], 2, False, True),
            (".", [None], 1, False, False),
            (".", [None], 1, False, False),
            ("/.", [None], 1, False, False),
            ("|.", [None], 1, True, False),
            ("./1", [None, 1], 2, False, False),
            (".|1", [None, 1], 2, True, False),
            ("/./1", [None, 1], 2, False, False),
            ("|.|1", [None, 1], 2, True, False),
            ("|./1", [None, 1], 2, False, False),
            ("/.|1", [None, 1], 2, False, False),
            ("1/.", [1, None], 2, False, False),
            ("1|.", [1, None], 2, True, False),
            ("/1/.", [1, None], 2, False, False),
            ("/1|.", [1, None], 2, False, False),
            ("|1/.", [1, None], 2, False, False),
            ("|1|.", [1, None], 2, True, False),
            ("./.", [None, None], 2, False, False),
            (".|.", [None, None], 2, True, False),
            ("/./.", [None, None], 2, False, False),
            ("|.|.", [None, None], 2, True, False),
            ("|./.", [None, None], 2, False, False),
            ("/.|.", [None, None], 2, False, False),
        ]
    )
    assert_frame_equal(frame, expected)


def test_no_calls_are_null_alleles_distinct_from_ref_in_any_ploidy():
    frame = genotypes(DATA / "uncalled_genotypes.vcf", "sample_id", *CALL_SCHEMA)

    expected = calls(
        [
            ("0|0", [0, 0], 2, True, True),
            ("./.", [None, None], 2, False, False),
            ("1/1", [1, 1], 2, False, True),
            ("././.", [None, None, None], 3, False, False),
            ("0|1", [0, 1], 2, True, True),
            ("0/0", [0, 0], 2, False, True),
            ("0/1", [0, 1], 2, False, True),
            ("0/2", [0, 2], 2, False, True),
            (".", [None], 1, False, False),
            ("./1", [None, 1], 2, False, False),
            ("0/.", [0, None], 2, False, False),
            (".", [None], 1, False, False),
        ]
    )
    assert_frame_equal(frame.drop("sample_id"), expected)
    assert frame["sample_id"].to_list() == ["AB00001", "AB00002", "AB00003"] * 4


def test_haploid_calls_index_any_of_several_alts():
    frame = genotypes(DATA / "bcftools_atomize.split.1.vcf", "record_index", "gt", "alleles")

    assert frame.filter(pl.col("record_index") == 0).rows() == [
        (0, "1", [1]),
        (0, "2", [2]),
        (0, "3", [3]),
        (0, "4", [4]),
    ]


def test_a_format_column_of_dot_gives_genotype_rows_without_gt():
    result = read_vcf(DATA / "htslib_formatmissing.vcf")
    frame = result.tables["genotypes"]

    expected = pl.DataFrame(
        {
            "source_file": [str(DATA / "htslib_formatmissing.vcf")] * 3,
            "record_index": [0, 0, 0],
            "chrom": ["1", "1", "1"],
            "pos": [100, 100, 100],
            "sample_index": [0, 1, 2],
            "sample_id": ["S1", "S2", "S3"],
            "gt": [None, None, None],
            "alleles": [None, None, None],
            "ploidy": [0, 0, 0],
            "phased": [False, False, False],
            "called": [False, False, False],
            "n_alleles": [2, 2, 2],
            "fmt_S": [None, None, None],
        },
        schema=genotypes_schema(read_vcf_header(DATA / "htslib_formatmissing.vcf")),
    )
    assert_frame_equal(frame, expected)


def test_fields_missing_at_the_end_of_a_sample_are_null():
    frame = genotypes(
        DATA / "tb.vcf.gz", "record_index", "sample_id", "gt", "fmt_GQ", "fmt_DP", "fmt_HQ"
    )

    assert frame.filter(pl.col("record_index") == 1).rows() == [
        (1, "NA00001", "0|0", 49, 3, [58, 50]),
        (1, "NA00002", "0|1", 3, 5, [65, 3]),
        (1, "NA00003", "0/0", 41, 3, None),
    ]
    assert frame.filter(pl.col("record_index") == 0).row(2) == (
        0,
        "NA00003",
        "1/1",
        43,
        5,
        [None, None],
    )


def test_a_whole_sample_value_of_dot_is_a_no_call(write_vcf):
    path = write_vcf("1\t10\t.\tA\tG\t.\t.\t.\tGT:DP:AD\t.\t0/1:.:3,4")

    frame = genotypes(path, *CALL_SCHEMA, "fmt_DP", "fmt_AD")

    assert frame.rows() == [
        (".", [None], 1, False, False, None, None),
        ("0/1", [0, 1], 2, False, True, None, [3, 4]),
    ]


def test_format_layouts_that_differ_between_records_are_read_per_record():
    frame = genotypes(
        DATA / "bcftools_query.vcf", "record_index", "gt", "fmt_TT", "fmt_GQ", "fmt_DP", "fmt_GL"
    ).filter(pl.col("record_index") <= 3)

    assert frame.rows() == [
        (0, "0/1", None, 409, 35, [-20.0, -5.0, -20.0]),
        (0, "0/1", None, 109, 25, [-10.0, -5.0, -20.0]),
        (1, "0/1", [0, 1], 409, 35, [-20.0, -5.0, -20.0, -20.0, -5.0, -20.0]),
        (1, "0/2", [0, 1], 109, 35, [-10.0, -5.0, -20.0, -20.0, -5.0, -20.0]),
        (2, "0/1", None, 409, 35, [-20.0, -5.0, -20.0]),
        (2, "0/1", None, 109, 25, [-10.0, -5.0, -20.0]),
        (3, ".", None, 245, 32, None),
        (3, "./.", None, 145, 22, None),
    ]


def test_a_record_without_gt_in_its_format_has_no_gt(write_vcf):
    path = write_vcf("1\t10\t.\tA\tG\t.\t.\t.\tDP:AD\t5:1,2\t6")

    assert genotypes(path, "gt", "alleles", "ploidy", "fmt_DP", "fmt_AD").rows() == [
        (None, None, 0, 5, [1, 2]),
        (None, None, 0, 6, None),
    ]


def test_undeclared_format_keys_are_not_read_and_give_a_warning(write_vcf):
    path = write_vcf("1\t10\t.\tA\tG\t.\t.\t.\tGT:XX:DP\t0/1:a:5\t1/1:b:6")

    result = read_vcf(path)

    assert result.tables["genotypes"].select("gt", "fmt_DP").rows() == [("0/1", 5), ("1/1", 6)]
    assert result.tables["vcf_files"]["warnings"].to_list() == [[undeclared_format_warning("XX")]]
    assert undeclared_format_warning("XX") == (
        "FORMAT key XX is not declared in the header; its values are not read"
    )


def test_a_sites_only_file_gives_an_empty_genotypes_frame_with_the_schema():
    result = read_vcf(DATA / "issue-201.vcf.gz")

    header = read_vcf_header(DATA / "issue-201.vcf.gz")
    assert_frame_equal(result.tables["genotypes"], pl.DataFrame(schema=genotypes_schema(header)))
    assert result.tables["variants"].height == 3


def test_genotypes_are_one_row_per_record_and_sample_not_per_alt():
    result = read_vcf(DATA / "freebayes.vcf")

    assert result.tables["genotypes"].height == 104 * 7
    assert result.tables["variants"].height == 109
    multi = result.tables["genotypes"].filter(pl.col("pos") == 42523562)
    assert multi.select("sample_id", "gt", "n_alleles", "fmt_AO", "fmt_GQ").rows()[:2] == [
        ("BLANK", "1/2", 3, [1, 1], 9.38),
        ("NA12878", "0/1", 3, [911, 150], 6.99),
    ]


MALFORMED = [
    ("1\t10\t.\tA\tG\t.\t.\t.\tGT:DP\t0/2:7319\t0/0:1", GT_OUT_OF_RANGE),
    ("1\t10\t.\tA\t.\t.\t.\t.\tGT:DP\t0/1:7319\t0/0:1", GT_OUT_OF_RANGE),
    ("1\t10\t.\tA\tG\t.\t.\t.\tGT:DP\t0/x:7319\t0/0:1", GT_INVALID),
    (
        "1\t10\t.\tA\tG\t.\t.\t.\tGT:DP\t0/1:7319.5\t0/0:1",
        ("FORMAT/DP is not of Type=Integer as the header declares"),
    ),
    (
        "1\t10\t.\tA\tG\t.\t.\t.\tGT:AD\t0/1:1,x7319\t0/0:1,1",
        ("FORMAT/AD is not of Type=Integer as the header declares"),
    ),
    ("1\t10\t.\tA\tG\t.\t.\t.\tGT:DP\t0/1:7319:9\t0/0:1", TOO_MANY_VALUES),
]


@pytest.mark.parametrize(("line", "reason"), MALFORMED)
def test_a_bad_sample_value_quarantines_the_whole_record(write_vcf, line, reason):
    path = write_vcf("1\t5\t.\tC\tT\t50\tPASS\t.\tGT:DP\t0/1:3\t0/0:1", line)

    result = read_vcf(path, on_error="quarantine")

    assert_frame_equal(
        result.rejects,
        pl.DataFrame([(str(path), "line:13", reason)], schema=REJECT_SCHEMA, orient="row"),
    )
    assert result.tables["variants"]["record_index"].to_list() == [0]
    assert result.tables["genotypes"]["record_index"].to_list() == [0, 0]
    assert SECRET not in reason


@pytest.mark.parametrize(("line", "reason"), MALFORMED)
def test_a_bad_sample_value_raises_without_values_in_raise_mode(write_vcf, line, reason):
    path = write_vcf(line)

    with pytest.raises(MalformedRecordError) as raised:
        read_vcf(path)

    assert raised.value.reason == reason
    assert SECRET not in str(raised.value)
