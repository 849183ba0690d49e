"""Site profiles: the built-in ones, YAML files, and the rules profiles must meet."""

from pathlib import Path

import pytest
import yaml

from connectors.errors import ConnectorError
from connectors.lab_csv import (
    ColumnMap,
    InvalidSiteProfileError,
    SiteProfile,
    UnknownSiteProfileError,
    builtin_profiles,
    load_profile,
)
from tests.connectors.lab_csv.exports import A01_HEADER, B07_HEADER

MINIMAL = {
    "site": "SITE-X09",
    "timezone": "Europe/Berlin",
    "code_system": "L",
    "columns": {"patient_id": "PID", "test_code": "CODE", "value": "RESULT"},
}


def test_the_builtin_profiles_are_listed():
    assert builtin_profiles() == ["SITE-A01", "SITE-B07", "SYNTHEA"]


def test_site_a01_is_the_comma_separated_utf8_new_york_export():
    profile = load_profile("SITE-A01")
    assert (profile.site, profile.delimiter, profile.encoding, profile.timezone) == (
        "SITE-A01", ",", "utf-8", "America/New_York"
    )
    assert profile.datetime_formats == ["%Y-%m-%d %H:%M"]
    assert profile.code_system == "L"
    assert {"f": "F", "p": "P", "c": "C"}.items() <= profile.statuses.items()
    # Every column of the export is read.
    assert set(profile.columns.mapped().values()) == set(A01_HEADER)


def test_site_b07_is_the_semicolon_separated_cp1252_denver_export():
    profile = load_profile("SITE-B07")
    assert (profile.site, profile.delimiter, profile.encoding, profile.timezone) == (
        "SITE-B07", ";", "cp1252", "America/Denver"
    )
    assert profile.datetime_formats == ["%m/%d/%Y %H:%M"]
    assert {"final": "F", "prelim": "P", "corrected": "C"}.items() <= profile.statuses.items()
    assert set(profile.columns.mapped().values()) == set(B07_HEADER)
    assert (profile.columns.reference_low, profile.columns.reference_high) == ("LowRef", "HighRef")


def test_synthea_reads_loinc_codes_and_one_date_for_both_times():
    profile = load_profile("SYNTHEA")
    assert profile.code_system == "LN"
    assert profile.columns.collected_at == profile.columns.resulted_at == "DATE"
    assert profile.columns.accession == "ENCOUNTER"
    assert profile.value_types == {"numeric": "NM", "text": "ST"}


def test_an_unknown_profile_name_lists_the_known_profiles():
    with pytest.raises(UnknownSiteProfileError) as raised:
        load_profile("SITE-Z99")
    assert isinstance(raised.value, ConnectorError)
    assert "SITE-A01, SITE-B07, SYNTHEA" in str(raised.value)


def write_profile(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_a_profile_is_loaded_from_a_yaml_path(tmp_path):
    profile = load_profile(write_profile(tmp_path, MINIMAL))
    assert profile == SiteProfile(
        site="SITE-X09",
        timezone="Europe/Berlin",
        code_system="L",
        columns=ColumnMap(patient_id="PID", test_code="CODE", value="RESULT"),
    )
    assert (profile.delimiter, profile.encoding, profile.decimal_separator) == ("auto", "auto", ".")
    assert load_profile(str(tmp_path / "profile.yaml")) == profile


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
        (
            {"columns": {"patient_id": "PID", "value": "RESULT"}},
            "columns.test_code: Field required",
        ),
        ({"columns": {**MINIMAL["columns"], "units": "U"}}, "columns.units: Extra inputs"),
        ({"timezone": "Mars/Olympus"}, "timezone: Value error, is not an IANA time zone"),
        ({"encoding": "klingon"}, "encoding: Value error, must be 'auto' or a Python codec"),
        ({"delimiter": ";;"}, "delimiter: Value error, must be 'auto' or one character"),
        (
            {"decimal_separator": ",", "delimiter": ","},
            "Value error, a decimal comma needs a delimiter other than ','",
        ),
        ({"datetime_formats": ["YYYY-MM-DD"]}, "datetime_formats: Value error, each format"),
        (
            {"statuses": {"Final": "Z"}, "columns": {**MINIMAL["columns"], "result_status": "S"}},
            "statuses: Value error, value of 'Final' must be an HL7 table 0085 code",
        ),
        (
            {"statuses": {"Final": "F", " final ": "F"},
             "columns": {**MINIMAL["columns"], "result_status": "S"}},
            "repeats another key",
        ),
        ({"statuses": {"Final": "F"}}, "statuses are given but columns.result_status"),
        (
            {"columns": {**MINIMAL["columns"], "result_status": "S"}},
            "columns.result_status is mapped but statuses is empty",
        ),
        (
            {"columns": {**MINIMAL["columns"], "reference_range": "R", "reference_low": "L",
                         "reference_high": "H"}},
            "map either reference_range or reference_low and reference_high",
        ),
        (
            {"columns": {**MINIMAL["columns"], "reference_low": "L"}},
            "reference_low and reference_high must be mapped together",
        ),
        ({"columns": {**MINIMAL["columns"], "unit": "  "}}, "a header name must not be blank"),
        ({"value_types": {"numeric": "NM"}}, "value_types are given but columns.value_type"),
        (
            {
                "value_types": {"numeric": "SN"},
                "columns": {**MINIMAL["columns"], "value_type": "T"},
            },
            "value of 'numeric' must be 'NM' or 'ST'",
        ),
    ],
)
def test_profiles_are_validated_strictly(tmp_path, change, message):
    path = write_profile(tmp_path, {**MINIMAL, **change})
    with pytest.raises(InvalidSiteProfileError) as raised:
        load_profile(path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_a_profile_file_that_is_not_a_mapping_is_invalid(tmp_path):
    path = tmp_path / "profile.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(InvalidSiteProfileError, match="must be a YAML mapping"):
        load_profile(path)


def test_a_profile_file_that_is_not_yaml_is_invalid(tmp_path):
    path = tmp_path / "profile.yaml"
    path.write_text("site: [unclosed\n", encoding="utf-8")
    with pytest.raises(InvalidSiteProfileError, match="is not valid YAML"):
        load_profile(path)


def test_a_missing_profile_file_is_an_unknown_profile(tmp_path):
    with pytest.raises(UnknownSiteProfileError, match="or pass the path of a YAML profile"):
        load_profile(tmp_path / "nowhere.yaml")


def test_status_and_value_type_keys_match_case_insensitively_trimmed():
    profile = SiteProfile.model_validate(
        {
            **MINIMAL,
            "statuses": {" Final ": "F"},
            "value_types": {"Numeric": "NM"},
            "columns": {**MINIMAL["columns"], "result_status": "S", "value_type": "T"},
        }
    )
    assert profile.statuses == {"final": "F"}
    assert profile.value_types == {"numeric": "NM"}
