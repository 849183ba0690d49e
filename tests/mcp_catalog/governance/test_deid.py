import re
from datetime import UTC, date, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mcp_catalog.governance.deid import (
    MAX_SHIFT_DAYS,
    birth_year_and_cap,
    date_shifts,
    keyed_hash,
    pseudonymise,
    restricted_zip3,
    shift_dates,
    zip3,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))


def test_pseudonyms_are_stable_for_one_key_and_differ_across_keys():
    ids = ["p1", "p2", None]
    assert keyed_hash(KEY_A, ids, prefix="P") == keyed_hash(KEY_A, ids, prefix="P")
    a, b = keyed_hash(KEY_A, ids, prefix="P"), keyed_hash(KEY_B, ids, prefix="P")
    assert a[2] is None and b[2] is None
    assert a[0] != b[0] and a[0] != a[1]
    assert all(p.startswith("P-") and len(p) == 22 for p in a[:2])


def test_pseudonymise_replaces_the_identifier_column_in_place():
    frame = pl.DataFrame({"x": [1, 2], "person_key": ["p1", "p2"], "y": ["a", "b"]})
    out = pseudonymise(frame, "person_key", key=KEY_A, prefix="P", alias="person_pseudonym")
    assert out.columns == ["x", "person_pseudonym", "y"]
    assert "p1" not in out.get_column("person_pseudonym").to_list()


def test_date_shifts_are_nonzero_bounded_and_stable():
    people = [f"person-{i}" for i in range(500)]
    shifts = date_shifts(people, key=KEY_A)
    days = shifts.get_column("shift_days")
    assert days.abs().min() >= 1 and days.abs().max() <= MAX_SHIFT_DAYS
    assert (days > 0).any() and (days < 0).any()
    assert_frame_equal(shifts, date_shifts(reversed(people), key=KEY_A))
    assert not shifts.equals(date_shifts(people, key=KEY_B))


def test_shift_dates_moves_every_date_of_a_person_by_the_same_offset():
    shifts = pl.DataFrame(
        {"person_key": ["a", "b"], "shift_days": [10, -3]},
        schema={"person_key": pl.String(), "shift_days": pl.Int32()},
    )
    frame = pl.DataFrame(
        {
            "person_key": ["a", "a", "b"],
            "start": [datetime(2020, 1, 1, 8, tzinfo=UTC), datetime(2020, 2, 1, tzinfo=UTC), None],
            "day": [date(2020, 1, 5), date(2020, 2, 3), date(2021, 1, 1)],
        }
    )
    out = shift_dates(frame, ("start", "day"), shifts)
    expected = pl.DataFrame(
        {
            "person_key": ["a", "a", "b"],
            "start": [
                datetime(2020, 1, 11, 8, tzinfo=UTC),
                datetime(2020, 2, 11, tzinfo=UTC),
                None,
            ],
            "day": [date(2020, 1, 15), date(2020, 2, 13), date(2020, 12, 29)],
        }
    )
    assert_frame_equal(out, expected)


def test_shift_dates_refuses_people_without_a_shift():
    shifts = pl.DataFrame(
        {"person_key": ["a"], "shift_days": [1]},
        schema={"person_key": pl.String(), "shift_days": pl.Int32()},
    )
    frame = pl.DataFrame({"person_key": ["a", "z"], "day": [date(2020, 1, 1)] * 2})
    with pytest.raises(ValueError, match="missing"):
        shift_dates(frame, ("day",), shifts)


def test_birth_dates_become_years_and_people_aged_90_or_more_are_grouped():
    frame = pl.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "birth_date": [
                date(1936, 3, 2),  # 90 on 2026-03-02: grouped
                date(1936, 3, 3),  # still 89 on the reference date: keeps the year
                date(1990, 7, 1),
                None,
            ],
        }
    )
    out = birth_year_and_cap(frame, reference=date(2026, 3, 2))
    expected = pl.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "birth_year": [None, 1936, 1990, None],
            "age_90_plus": [True, False, False, None],
        },
        schema_overrides={"birth_year": pl.Int32()},
    )
    assert_frame_equal(out, expected)


def test_zip_codes_keep_three_digits_and_restricted_prefixes_become_000():
    version, restricted = restricted_zip3()
    assert version and {"036", "059", "102", "893"} <= restricted
    frame = pl.DataFrame({"postal_code": ["03601", "10201-1234", "10001", "A1B 2C3", None]})
    assert zip3(frame).get_column("zip3").to_list() == ["000", "000", "100", None, None]


def test_new_surrogates_are_random_per_identifier_and_never_reissued():
    from mcp_catalog.governance.deid import SURROGATE_SCHEMA, new_surrogates

    wanted = pl.DataFrame(
        {"prefix": ["P", "P", "E", "P", None], "identifier": ["a", "b", "a", "a", "x"]}
    )
    first = new_surrogates(wanted, pl.DataFrame(schema=SURROGATE_SCHEMA))
    assert first.select("prefix", "identifier").rows() == [("E", "a"), ("P", "a"), ("P", "b")]
    assert all(re.fullmatch(r"[EP]-[0-9a-f]{20}", s) for s in first["surrogate"])
    assert first["surrogate"].n_unique() == 3
    again = new_surrogates(
        wanted.vstack(pl.DataFrame({"prefix": ["P"], "identifier": ["c"]})), first
    )
    assert again.select("prefix", "identifier").rows() == [("P", "c")]
    assert again["surrogate"].item() not in set(first["surrogate"])


def test_surrogate_pseudonyms_replace_identifiers_from_the_mapping_and_refuse_unmapped_ones():
    from mcp_catalog.governance.deid import Pseudonyms

    mapping = pl.DataFrame(
        {
            "prefix": ["P", "P", "E"],
            "identifier": ["a", "b", "a"],
            "surrogate": ["P-1", "P-2", "E-9"],
        }
    )
    frame = pl.DataFrame({"id": ["r1", "r2", "r3"], "person_key": ["b", None, "a"]})
    out = Pseudonyms(surrogates=mapping).apply(
        frame, "person_key", prefix="P", alias="person_pseudonym"
    )
    assert out.columns == ["id", "person_pseudonym"]
    assert out["person_pseudonym"].to_list() == ["P-2", None, "P-1"]
    with pytest.raises(ValueError, match="no surrogate yet"):
        Pseudonyms(surrogates=mapping).apply(
            pl.DataFrame({"person_key": ["zzz"]}), "person_key", prefix="P", alias="p"
        )
    with pytest.raises(ValueError, match="needs a key"):
        Pseudonyms().apply(frame, "person_key", prefix="P", alias="p")
