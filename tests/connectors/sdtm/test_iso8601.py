import pytest

from connectors.sdtm.iso8601 import is_sdtm_datetime

# SDTMIG 4.4: complete, shortened from the right, and '-' for unknown middle components.
VALID = [
    "2003-12-15T13:14:17",
    "2003-12-15T13:14",
    "2003-12-15T13",
    "2003-12-15",
    "2003-12",
    "2003",
    "2003---15",
    "--12-15",
    "-----T07:15",
    "2003-12-15T-:15",
    "2003-12-15T13:-:17",
    "2003---15T13:14:17",
    "2003-12-15T13:14:17.123",
    "2003-12-15T13:14:17Z",
    "2003-12-15T13:14-05:00",
    "2004-02-29",
    "--02-29",
    "2003-12-01/2003-12-10",
]
INVALID = [
    "",
    "15/12/2003",
    "20031215",
    "2003-12-15 13:14",
    "2003-13-01",
    "2003-00-10",
    "2003-02-29",
    "2003-04-31",
    "2003-12-32",
    "2003-12-15T24:00",
    "2003-12-15T13:60",
    "2003-12-15T13:14:60",
    "2003-12T10:00",
    "2003-",
    "2003--",
    "2003-12-",
    "-----",
    "2003-12-15T-",
    "2003-12-15T13:-",
    "03-12-15",
    "2003-1-5",
    "P3D",
    "2003-12-01/P3D",
    "2003-12-01/2003-12-10/2003-12-20",
    " 2003-12-15",
    "2003-12-15t13:14",
]


@pytest.mark.parametrize("text", VALID)
def test_sdtm_dates_and_times_are_accepted(text):
    assert is_sdtm_datetime(text)


@pytest.mark.parametrize("text", INVALID)
def test_other_text_is_not_an_sdtm_date_or_time(text):
    assert not is_sdtm_datetime(text)
