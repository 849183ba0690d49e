import polars as pl
import pytest
from polars.testing import assert_series_equal

from connectors.vcf.values import percent_decode, typed_list, typed_scalar, via_distinct


def test_scalars_are_cast_with_dot_and_empty_as_null():
    typed, failed = typed_scalar(pl.Series(["5", ".", "", None, "-3"]), pl.Int64())

    assert typed.to_list() == [5, None, None, None, -3]
    assert failed is None


def test_floats_accept_scientific_notation_and_special_values():
    typed, failed = typed_scalar(
        pl.Series(["1e+06", "9e+09", "-0.5", "NaN", "Inf", "-inf", "."]), pl.Float64()
    )

    values = typed.to_list()
    assert values[:3] == [1e6, 9e9, -0.5]
    assert values[3] != values[3]  # NaN
    assert values[4:] == [float("inf"), float("-inf"), None]
    assert failed is None


def test_values_that_are_not_of_the_type_are_marked():
    typed, failed = typed_scalar(pl.Series(["5", "1.5", "x", "."]), pl.Int64())

    assert typed.to_list() == [5, None, None, None]
    assert failed.to_list() == [False, True, True, False]


def test_lists_split_on_commas_with_dot_elements_null_and_a_dot_value_null():
    typed, failed = typed_list(pl.Series(["1,2,3", "1,.,3", ".", None, "7"]), pl.Int64())

    assert typed.to_list() == [[1, 2, 3], [1, None, 3], None, None, [7]]
    assert typed.dtype == pl.List(pl.Int64())
    assert failed is None


def test_a_list_with_an_element_not_of_the_type_is_marked():
    _, failed = typed_list(pl.Series(["1,2", "1,x", "1.5", "."]), pl.Int64())

    assert failed.to_list() == [False, True, True, False]


def test_string_lists_keep_text_and_null_dot_elements():
    typed, failed = typed_list(pl.Series(["A,B", "A,.,C", "."]), pl.String())

    assert typed.to_list() == [["A", "B"], ["A", None, "C"], None]
    assert failed is None


@pytest.mark.parametrize(
    ("written", "decoded"),
    [
        ("a%3Bb%3Dc%3Ad%2Ce", "a;b=c:d,e"),
        ("100%25", "100%"),
        ("%253A", "%3A"),
        ("tab%09cr%0Dlf%0A", "tab\tcr\rlf\n"),
        ("plain", "plain"),
    ],
)
def test_percent_encoded_characters_are_decoded(written, decoded):
    assert percent_decode(pl.Series([written])).to_list() == [decoded]


def test_percent_encoded_commas_stay_inside_one_list_element():
    typed, _ = typed_list(pl.Series(["x%2Cy,z"]), pl.String())

    assert typed.to_list() == [["x,y", "z"]]


def test_parsing_distinct_values_gives_what_parsing_every_value_gives():
    raw = pl.Series(["0/1:5", "1/1:7", None, "0/1:5", "./.:."] * 2000)

    def parse(values: pl.Series) -> dict[str, pl.Series]:
        return {
            "gt": values.str.split(":").list.get(0, null_on_oob=True),
            "missing": values.is_null(),
        }

    distinct = via_distinct(raw, parse)
    direct = parse(raw)
    assert distinct.keys() == direct.keys()
    for name in direct:
        assert_series_equal(distinct[name], direct[name], check_names=False)
