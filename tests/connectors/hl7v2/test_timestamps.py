from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from connectors.hl7v2.timestamps import epoch_microseconds, parse_timestamp

NEW_YORK = ZoneInfo("America/New_York")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20141006092900+0700", utc(2014, 10, 6, 2, 29)),
        ("20110103143428-0800", utc(2011, 1, 3, 22, 34, 28)),
        ("201203141259-0215", utc(2012, 3, 14, 15, 14)),
        ("20240305101500+0000", utc(2024, 3, 5, 10, 15)),
        ("20240305101500.1234+0100", utc(2024, 3, 5, 9, 15, 0, 123400)),
        ("20240305101500.1234567-0000", utc(2024, 3, 5, 10, 15, 0, 123456)),
        ("2024030510+0530", utc(2024, 3, 5, 4, 30)),
        (" 20240305+0000 ", utc(2024, 3, 5)),
    ],
)
def test_timestamps_with_an_offset_become_utc(text, expected):
    assert parse_timestamp(text, NEW_YORK) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024", utc(2024, 1, 1)),
        ("202403", utc(2024, 3, 1)),
        ("20240305", utc(2024, 3, 5)),
        ("2024030510", utc(2024, 3, 5, 10)),
        ("202403051015", utc(2024, 3, 5, 10, 15)),
        ("20240305101530", utc(2024, 3, 5, 10, 15, 30)),
        ("20240305101530.5", utc(2024, 3, 5, 10, 15, 30, 500000)),
    ],
)
def test_partial_precision_reads_as_the_start_of_the_period(text, expected):
    assert parse_timestamp(text, UTC) == expected


def test_timestamps_without_an_offset_are_read_in_the_default_zone():
    # EST in January (UTC-5), EDT in July (UTC-4).
    assert parse_timestamp("20240115083000", NEW_YORK) == utc(2024, 1, 15, 13, 30)
    assert parse_timestamp("20240715083000", NEW_YORK) == utc(2024, 7, 15, 12, 30)
    assert parse_timestamp("20240715", ZoneInfo("Asia/Tokyo")) == utc(2024, 7, 14, 15)


def test_an_ambiguous_local_time_reads_with_the_offset_before_the_change():
    # 2024-11-03 01:30 happens twice in New York; fold=0 is the first (EDT, UTC-4).
    assert parse_timestamp("202411030130", NEW_YORK) == utc(2024, 11, 3, 5, 30)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "24",
        "2024-03-05",
        "20240305T1015",
        "2024030",
        "20241305",
        "20240431",
        "20240305241500",
        "20240305106000",
        "20240305101500+2400",
        "20240305101500+0160",
        "20240305101500+01",
        "20240305101500.",
        "2024030510.5",
        "yesterday",
    ],
)
def test_text_that_is_not_an_hl7_timestamp_is_a_value_error(text):
    with pytest.raises(ValueError) as caught:
        parse_timestamp(text, UTC)
    assert text.strip() == "" or text not in str(caught.value)


def test_epoch_microseconds_counts_from_1970_utc():
    assert epoch_microseconds("19700101000001.5+0000", UTC) == 1_500_000
    assert epoch_microseconds("19700101010000+0100", UTC) == 0
