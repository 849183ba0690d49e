"""The fast paths of the parsers give exactly what their general paths give."""

import polars as pl
import pytest
from polars.testing import assert_series_equal

from connectors.vcf import read_vcf_header
from connectors.vcf.genotypes import _exact_parts, _listed_parts
from connectors.vcf.records import RecordParser
from connectors.vcf.values import distinct_codes, typed_list, via_distinct

ODD_INFO = [
    "DP=1;DP=2",  # a key twice
    "DP",  # a valued key without a value
    "DB=1;DP=3",  # a flag with a value
    "FOO=1;DP=4",  # an undeclared key
    "DP=1;;AF=2",  # an empty item
    "DPX=3;DP=1",  # a key that starts like a declared one
    "DP=;AF=1",  # an empty value
    "AD=1,2;DP=3;AF=0.1;DB;NOTE=x%3By",
    "NOTE=a=b;DP=5",
    "=1;DP=2",
    None,
]


def info_sources(write_vcf) -> RecordParser:
    return RecordParser(read_vcf_header(write_vcf()), "test.vcf")


@pytest.mark.parametrize(
    "common",
    [
        ["DP=7;AF=0.5;DB", "DP=8;AF=.;NOTE=n"],  # a field in some layouts only
        ["DP=7;AF=0.5", "AF=0.25;DP=9"],  # a field at a different position per layout
        ["DP=7;AF=0.5;AD=3,4", "DP=1;AF=0.1;AD=.;DB=1"],
        ["DB;DP=2", "DB"],
        ["DP", "DP=1;DP=2"],  # no layout can be read by position
    ],
)
@pytest.mark.parametrize("odd_share", [1, 30])
def test_info_read_by_layout_is_info_searched_key_by_key(write_vcf, common, odd_share):
    parser = info_sources(write_vcf)
    rows = []
    for index in range(600):
        rows.append(
            ODD_INFO[index % len(ODD_INFO)] if index % 50 < odd_share else common[index % 2]
        )
    info = pl.Series("info", rows, dtype=pl.String())

    found, extra = parser._info_items(info)
    expected, expected_extra = parser._search_items(info)

    assert found.keys() == expected.keys()
    for column in expected:
        assert_series_equal(found[column], expected[column], check_names=False)
    assert_series_equal(extra, expected_extra, check_names=False)


def test_sample_parts_split_exactly_are_the_listed_parts():
    values = pl.Series(
        ["0/1:5:3,4", "0/1:5", ".", "0/1:5:3,4:9", "0/1:5:3,4:", "::", ":", "", None, "0|1::"]
    )
    exact, exact_too_many = _exact_parts(values, 3)
    listed, listed_too_many = _listed_parts(values, 3)

    for position in range(3):
        assert_series_equal(exact(position), listed(position), check_names=False)
    # A null value is not too long either way.
    assert_series_equal(
        exact_too_many.fill_null(False), listed_too_many.fill_null(False), check_names=False
    )
    assert exact_too_many.to_list()[:5] == [False, False, False, True, True]


def test_distinct_codes_find_values_missing_from_the_sample():
    raw = pl.Series(["a", "b", None] * 3000 + ["rare", "b", "other"] * 3)

    distinct, codes = distinct_codes(raw, raw.head(10))

    assert sorted(distinct.to_list()) == ["a", "b", "other", "rare"]
    assert_series_equal(distinct.extend_constant(None, 1).gather(codes), raw, check_names=False)


def test_parsing_distinct_values_with_rare_ones_gives_what_parsing_every_value_gives():
    raw = pl.Series([str(index % 7) for index in range(9000)] + ["1,2", "x", None, "3,."])

    def parse(values: pl.Series) -> dict[str, pl.Series]:
        typed, failed = typed_list(values, pl.Int64())
        return {"typed": typed, "failed": failed}

    distinct = via_distinct(raw, parse)
    direct = parse(raw)
    for name in direct:
        assert_series_equal(distinct[name], direct[name], check_names=False)


def test_a_list_with_missing_elements_and_a_failure_is_marked_alone():
    typed, failed = typed_list(pl.Series(["1,.", "x,2", ".", "3,,4"]), pl.Int64())

    assert typed.to_list() == [[1, None], [None, 2], None, [3, None, 4]]
    assert failed.to_list() == [False, True, False, False]
