from datetime import UTC, datetime

import pytest

from connectors.fhir.fields import InvalidFieldError, datetime_micros, reference_id


def micros(*parts: int) -> int:
    moment = datetime(*parts, tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Patient/abc", "abc"),
        ("urn:uuid:0b1e5e0a-0000-4000-8000-000000000001", "0b1e5e0a-0000-4000-8000-000000000001"),
        ("https://fhir.example.org/r4/Patient/abc", "abc"),
        ("Patient/abc/_history/2", "abc"),
        ("Patient?identifier=urn:example:mrn|123", None),
        ("#contained-patient", None),
        ("Group/abc", None),
        ("Patient/", None),
        ("abc", None),
        ("urn:oid:1.2.3", None),
    ],
)
def test_a_reference_gives_the_patient_id_only_when_it_names_one(text, expected):
    assert reference_id(text, "Patient") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-03-04T09:00:00-05:00", micros(2019, 3, 4, 14, 0)),
        ("2019-03-04T09:00:00Z", micros(2019, 3, 4, 9, 0)),
        ("2019-03-04T09:00:00+14:00", micros(2019, 3, 3, 19, 0)),
        ("2019-03-04T09:00:00", micros(2019, 3, 4, 9, 0)),
        ("2019-03-04T09:00:00.123456789Z", micros(2019, 3, 4, 9, 0, 0, 123456)),
        ("2019-03-04T09:00Z", micros(2019, 3, 4, 9, 0)),
        ("2016-12-31T23:59:60Z", micros(2017, 1, 1)),
        ("1901-05-06T07:08:09+01:00", micros(1901, 5, 6, 6, 8, 9)),
        ("2019-03-04", micros(2019, 3, 4)),
        ("2019-03", micros(2019, 3, 1)),
        ("2019", micros(2019, 1, 1)),
    ],
)
def test_fhir_date_times_become_utc_microseconds(text, expected):
    assert datetime_micros({"when": text}, "when") == expected


@pytest.mark.parametrize(
    "text",
    [
        "2019-02-30",
        "2019-13",
        "2019-03-04 09:00:00Z",
        "20190304T090000Z",
        "2019-W10-1",
        "2019-03-04T25:00:00Z",
        "04/03/2019",
        "",
        "２０１９",
    ],
)
def test_a_malformed_date_time_names_the_field_and_not_the_value(text):
    with pytest.raises(InvalidFieldError) as caught:
        datetime_micros({"when": text}, "when", "period.start")
    assert str(caught.value) == "period.start is not a valid date-time"
