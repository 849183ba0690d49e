import copy
import re
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pydicom
import pytest
from polars.testing import assert_series_equal

from mcp_catalog.governance.dicom_deid import (
    deidentify_header,
    excluded_expr,
    remap_uid,
    shift_da,
    shift_dt,
)
from quality.dicom_profile import profile_action
from quality.valuesets import MODALITY

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SHIFT = -10

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
PYDICOM_IMPLEMENTATION = "1.2.826.0.1.3680043.8.498.1"
STUDY = "1.2.826.0.1.3680043.2.1125.1.11608962641993666019702920539307840"
SERIES = "1.2.826.0.1.3680043.2.1125.1.36000366441154366124553567428355000"
SOP = "1.2.826.0.1.3680043.2.1125.1.19616861412188316212577695277886020"
OTHER_SOP = "1.2.826.0.1.3680043.2.1125.1.75064541463040.2005072610414630768"
FRAME_OF_REFERENCE = "1.2.826.0.1.3680043.2.1125.1.38381854871216336385978062044218957"
CONCATENATION_SOURCE = "1.3.6.1.4.1.9590.100.1.2.123456"
OBSERVATION = "1.3.6.1.4.1.9590.100.1.2.987654"
ACQUISITION = "1.3.6.1.4.1.9590.100.1.2.555"
ANON = "ANONYMIZED"


def _el(vr: str, *values) -> dict:
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


def _pn(name: str) -> dict:
    return {"vr": "PN", "Value": [{"Alphabetic": name}]}


def _sq(*items: dict) -> dict:
    return {"vr": "SQ", "Value": list(items)}


def _u(uid: str) -> str:
    return remap_uid(uid, KEY)


# One element per action, nested sequences, private tags, the file meta group.
HEADER = {
    "00020000": _el("UL", 200),
    "00020001": {"vr": "OB", "InlineBinary": "AAE="},
    "00020002": _el("UI", CT_IMAGE),
    "00020003": _el("UI", SOP),
    "00020010": _el("UI", EXPLICIT_LE),
    "00020012": _el("UI", PYDICOM_IMPLEMENTATION),
    "00020013": _el("SH", "PYDICOM 3.0.2"),
    "00020016": _el("AE", "HOSPITAL_CT1"),
    "00080012": _el("DA", "not a date"),  # X/D, but no date to move
    "00080016": _el("UI", CT_IMAGE),
    "00080017": _el("UI", ACQUISITION),  # U
    "00080018": _el("UI", SOP),  # U
    "00080020": _el("DA", "20230115"),  # Z, moved under the option
    "00080021": _el("DA", "20230116"),  # X/D, moved
    "00080022": _el("DA", "2023.01.17"),  # X/Z, ACR-NEMA form, moved
    "00080023": _el("DA", "20230118", "20230119"),  # Z/D, two values
    "0008002A": _el("DT", "20230115093000.123456+0100"),  # X/Z/D, date moved, time dropped
    "00080030": _el("TM", "093000"),  # Z
    "00080031": _el("TM", "093100"),  # X/D
    "00080033": _el("TM", "093200"),  # Z/D
    "00080050": _el("SH", "ACC123456"),  # Z
    "00080060": _el("CS", "CT"),
    "00080070": _el("LO", "ACME Medical"),
    "00080080": _el("LO", "St Elsewhere Hospital"),  # X/Z/D
    "00080090": _pn("Kildare^James"),  # Z
    "00080106": _el("DT", "20020904000000"),  # D, a DT: moved
    "00080201": _el("SH", "+0100"),  # X
    "00081010": _el("SH", "CTROOM7"),  # X/Z/D
    "00081030": _el("LO", "CT HEAD for Jane Doe"),  # X
    "00081115": _sq(  # not in the table: kept, its items de-identified
        {
            "0020000E": _el("UI", SERIES),
            "00081199": _sq({"00081150": _el("UI", CT_IMAGE), "00081155": _el("UI", OTHER_SOP)}),
            "00100010": _pn("Doe^Jane"),
            "00190010": _el("LO", "ACME private"),
            "00191001": _el("LO", "secret in an item"),
        }
    ),
    "00081140": _sq(  # X/Z/U*: removed whole
        {"00081150": _el("UI", CT_IMAGE), "00081155": _el("UI", OTHER_SOP)}
    ),
    "00090010": _el("LO", "ACME private"),
    "00091001": _el("LO", "secret"),
    "00091002": _sq({"00100010": _pn("Doe^Jane")}),
    "00100010": _pn("Doe^Jane"),  # Z
    "00100020": _el("LO", "MRN0042"),  # Z/D
    "00100030": _el("DA", "19700403"),  # Z, not moved: emptied
    "00100040": _el("CS", "F"),  # Z
    "00101002": _sq({"00100020": _el("LO", "OTHER-ID-9")}),  # X
    "00101010": _el("AS", "052Y"),  # X
    "00120010": _el("LO", "Sponsor Inc"),  # D
    "00120063": _el("LO", "an earlier method"),
    "00140102": _el("DA", "20230201"),  # not in the table: kept, moved
    "00180010": _el("LO", "Iohexol"),  # Z/D
    "00181000": _el("LO", "SN-998877"),  # X/Z/D
    "00181012": _el("DA", "20230115"),  # X, moved
    "00181030": _el("LO", "Head routine"),  # X/D
    "0020000D": _el("UI", STUDY),  # U
    "0020000E": _el("UI", SERIES),  # U
    "00200052": _el("UI", FRAME_OF_REFERENCE),  # U
    "00200242": _el("UI", CONCATENATION_SOURCE),  # not in the table: a UID, remapped
    "00280010": _el("US", 512),
    "00280301": _el("CS", "NO"),
    "0040A730": _sq(  # D: a structural dummy
        {
            "0040A010": _el("CS", "CONTAINS"),
            "0040A040": _el("CS", "PNAME"),
            "0040A123": _pn("Observer^Olga"),  # D
            "0040A121": _el("DA", "20230120"),  # D, moved
            "0040A122": _el("TM", "101500"),  # D
            "0040A124": _el("UI", OBSERVATION),  # U
            "0040A730": _sq(
                {
                    "0040A040": _el("CS", "TEXT"),
                    "0040A160": _el("UT", "Jane Doe called about her scan"),
                    "0040A30A": _el("DS", 12.5),
                }
            ),
        }
    ),
    "0008041F": _el("DT", "202301"),  # not in the table, month only: cannot be moved
    "50000010": _el("US", 2),  # curve: X
    "60003000": {"vr": "OW", "InlineBinary": "AAAA"},  # overlay data: X
    "60000010": _el("US", 512),  # overlay rows: not in the table
    "7FE00010": {"vr": "OB", "BulkDataURI": "file:///archive/jane/1.dcm"},
}

METHOD = {
    "00120062": _el("CS", "YES"),
    "00120063": _el(
        "LO",
        "DICOM PS3.15 Basic Application Confidentiality Profile",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    "00120064": _sq(
        {
            "00080100": _el("SH", "113100"),
            "00080102": _el("SH", "DCM"),
            "00080104": _el("LO", "Basic Application Confidentiality Profile"),
        },
        {
            "00080100": _el("SH", "113107"),
            "00080102": _el("SH", "DCM"),
            "00080104": _el("LO", "Retain Longitudinal Temporal Information Modified Dates Option"),
        },
    ),
    "00280303": _el("CS", "MODIFIED"),
}

EXPECTED = {
    "00020001": {"vr": "OB", "InlineBinary": "AAE="},
    "00020002": _el("UI", CT_IMAGE),
    "00020003": _el("UI", _u(SOP)),
    "00020010": _el("UI", EXPLICIT_LE),
    "00020012": _el("UI", PYDICOM_IMPLEMENTATION),
    "00020013": _el("SH", "PYDICOM 3.0.2"),
    "00080012": _el("DA"),
    "00080016": _el("UI", CT_IMAGE),
    "00080017": _el("UI", _u(ACQUISITION)),
    "00080018": _el("UI", _u(SOP)),
    "00080020": _el("DA", "20230105"),
    "00080021": _el("DA", "20230106"),
    "00080022": _el("DA", "20230107"),
    "00080023": _el("DA", "20230108", "20230109"),
    "0008002A": _el("DT", "20230105"),
    "00080030": _el("TM"),
    "00080033": _el("TM"),
    "0008041F": _el("DT"),
    "00080050": _el("SH"),
    "00080060": _el("CS", "CT"),
    "00080070": _el("LO", "ACME Medical"),
    "00080090": _el("PN"),
    "00080106": _el("DT", "20020825"),
    "00081115": _sq(
        {
            "00081199": _sq(
                {"00081150": _el("UI", CT_IMAGE), "00081155": _el("UI", _u(OTHER_SOP))}
            ),
            "0020000E": _el("UI", _u(SERIES)),
            "00100010": _el("PN"),
        }
    ),
    "00100010": _el("PN"),
    "00100020": _el("LO"),
    "00100030": _el("DA"),
    "00100040": _el("CS"),
    "00120010": _el("LO", ANON),
    "00140102": _el("DA", "20230122"),
    "00180010": _el("LO"),
    "00181012": _el("DA", "20230105"),
    "0020000D": _el("UI", _u(STUDY)),
    "0020000E": _el("UI", _u(SERIES)),
    "00200052": _el("UI", _u(FRAME_OF_REFERENCE)),
    "00200242": _el("UI", _u(CONCATENATION_SOURCE)),
    "00280010": _el("US", 512),
    "00280301": _el("CS", "NO"),
    "0040A730": _sq(
        {
            "0040A010": _el("CS", "CONTAINS"),
            "0040A040": _el("CS", "PNAME"),
            "0040A121": _el("DA", "20230110"),
            "0040A122": _el("TM", "000000"),
            "0040A123": {"vr": "PN", "Value": [{"Alphabetic": ANON}]},
            "0040A124": _el("UI", _u(OBSERVATION)),
            "0040A730": _sq(
                {
                    "0040A040": _el("CS", "TEXT"),
                    "0040A160": _el("UT", ANON),
                    "0040A30A": _el("DS", 12.5),
                }
            ),
        }
    ),
    "60000010": _el("US", 512),
    "7FE00010": {"vr": "OB"},
    **METHOD,
}


def test_every_action_of_the_profile_is_applied_as_documented():
    assert deidentify_header(HEADER, shift_days=SHIFT, uid_key=KEY) == EXPECTED


def test_the_header_keeps_tag_order_and_the_input_is_untouched():
    before = copy.deepcopy(HEADER)
    out = deidentify_header(HEADER, shift_days=SHIFT, uid_key=KEY)
    assert list(out) == sorted(out)
    assert before == HEADER
    assert out == deidentify_header(HEADER, shift_days=SHIFT, uid_key=KEY)


def test_lower_case_tags_are_read_as_their_upper_case_form():
    lower = {"0020000d": _el("UI", STUDY), "00100010": _pn("Doe^Jane")}
    out = deidentify_header(lower, shift_days=SHIFT, uid_key=KEY)
    assert out["0020000D"] == _el("UI", _u(STUDY)) and out["00100010"] == _el("PN")


@pytest.mark.parametrize("shift", [-365, -1, 1, 31, 365])
def test_dates_move_by_exactly_the_shift_and_uids_do_not_depend_on_it(shift):
    header = {
        "00080020": _el("DA", "20240228"),
        "0008002A": _el("DT", "20231231235959"),
        "0020000D": _el("UI", STUDY),
    }
    out = deidentify_header(header, shift_days=shift, uid_key=KEY)
    from datetime import date, timedelta

    study = date(2024, 2, 28) + timedelta(days=shift)
    acquisition = date(2023, 12, 31) + timedelta(days=shift)
    assert out["00080020"]["Value"] == [study.strftime("%Y%m%d")]
    assert out["0008002A"]["Value"] == [acquisition.strftime("%Y%m%d")]
    assert out["0020000D"]["Value"] == [_u(STUDY)]


def test_a_uid_and_its_references_remap_to_the_same_value_everywhere():
    out = deidentify_header(HEADER, shift_days=SHIFT, uid_key=KEY)
    assert out["00020003"] == out["00080018"]
    assert out["00081115"]["Value"][0]["0020000E"] == out["0020000E"]
    again = deidentify_header(HEADER, shift_days=SHIFT + 3, uid_key=KEY)
    assert again["0020000D"] == out["0020000D"]
    other = deidentify_header(HEADER, shift_days=SHIFT, uid_key=OTHER_KEY)
    assert other["0020000D"] != out["0020000D"]


def test_no_private_attribute_survives_at_any_depth():
    out = deidentify_header(HEADER, shift_days=SHIFT, uid_key=KEY)
    assert not [tag for tag in _tags(out) if int(tag[:4], 16) % 2]
    assert "secret" not in str(out) and "ACME private" not in str(out)


def test_an_earlier_method_description_is_replaced_by_this_one():
    out = deidentify_header(HEADER, shift_days=SHIFT, uid_key=KEY)
    assert {tag: out[tag] for tag in METHOD} == METHOD


def test_remapped_uids_are_uuid_derived_bounded_stable_and_keyed():
    uid = remap_uid(STUDY, KEY)
    assert re.fullmatch(r"2\.25\.(0|[1-9][0-9]*)", uid) and len(uid) <= 64
    assert uuid.UUID(int=int(uid[5:])).version == 8
    assert remap_uid(STUDY, KEY) == uid == remap_uid(STUDY + "\x00", KEY)
    assert remap_uid(STUDY, OTHER_KEY) != uid
    assert remap_uid(SERIES, KEY) != uid
    assert len({remap_uid(f"1.2.3.{i}", KEY) for i in range(2000)}) == 2000


def test_an_empty_uid_key_is_refused():
    with pytest.raises(ValueError, match="non-empty key"):
        remap_uid(STUDY, b"")
    with pytest.raises(ValueError, match="non-empty key"):
        deidentify_header(HEADER, shift_days=SHIFT, uid_key=b"")


@pytest.mark.parametrize(
    "header",
    [
        {"(0010,0010)": _pn("Doe^Jane")},
        {"00100010": {"Value": [{"Alphabetic": "Doe^Jane"}]}},
        {"00081115": {"vr": "SQ", "Value": {"00100010": _pn("Doe^Jane")}}},
        {"00081115": _sq(["not", "an", "item"])},  # type: ignore[arg-type]
    ],
)
def test_a_header_that_is_not_dicom_json_is_refused_without_its_values(header):
    with pytest.raises(ValueError) as error:
        deidentify_header(header, shift_days=SHIFT, uid_key=KEY)
    assert "Doe" not in str(error.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20240229", "20240219"),
        ("2024.02.29", "20240219"),
        ("20240229 ", "20240219"),
        ("2024", None),
        ("202402", None),
        ("20240230", None),
        ("00010105", None),
        ("", None),
    ],
)
def test_a_da_value_moves_only_when_it_is_a_full_date(value, expected):
    assert shift_da(value, SHIFT) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20240229", "20240219"),
        ("2024022913", "20240219"),
        ("20240229130509.5-0500", "20240219"),
        ("2024+0100", None),
        ("202402", None),
        ("20240229T1300", None),
    ],
)
def test_a_dt_value_keeps_only_its_moved_date(value, expected):
    assert shift_dt(value, SHIFT) == expected


def test_the_burned_in_rule_trusts_the_file_and_presumes_for_capture_modalities():
    cases = pl.DataFrame(
        [
            ("YES", "CT", CT_IMAGE, True),
            (" yes ", "CT", CT_IMAGE, True),
            ("NO", "US", "1.2.840.10008.5.1.4.1.1.6.1", False),
            (None, "US", "1.2.840.10008.5.1.4.1.1.6.1", True),
            ("", "US", "1.2.840.10008.5.1.4.1.1.6.1", True),
            (None, "ES", "1.2.840.10008.5.1.4.1.1.77.1.1.1", True),
            (None, "XC", "1.2.840.10008.5.1.4.1.1.77.1.4", True),
            (None, "OT", "1.2.840.10008.5.1.4.1.1.7", True),
            (None, "CT", "1.2.840.10008.5.1.4.1.1.7", True),
            (None, "DOC", "1.2.840.10008.5.1.4.1.1.104.1", True),
            (None, "CT", CT_IMAGE, False),
            (None, "SR", "1.2.840.10008.5.1.4.1.1.88.34", False),
            (None, "sr", "1.2.840.10008.5.1.4.1.1.88.34", False),
            (None, None, CT_IMAGE, True),
            ("MAYBE", "CT", CT_IMAGE, True),
        ],
        schema={
            "burned_in_annotation": pl.String,
            "modality": pl.String,
            "sop_class_uid": pl.String,
            "expected": pl.Boolean,
        },
        orient="row",
    )
    got = cases.select(excluded_expr()).to_series()
    assert_series_equal(got, cases.get_column("expected"), check_names=False)


# --- the real files of shared/data ------------------------------------------------------

TEXT_KEYS = ("Alphabetic", "Ideographic", "Phonetic")


def _tags(dataset: dict) -> Iterator[str]:
    for tag, element in dataset.items():
        yield tag
        if element.get("vr") == "SQ":
            for item in element.get("Value") or []:
                yield from _tags(item)


def _leaves(element: dict) -> Iterator[str]:
    """Every value of an element as a string, nested sequence items included."""
    if "InlineBinary" in element:
        yield element["InlineBinary"]
    for value in element.get("Value") or []:
        if isinstance(value, dict) and element.get("vr") == "SQ":
            for nested in value.values():
                yield from _leaves(nested)
        elif isinstance(value, dict):
            yield from (str(value[k]) for k in TEXT_KEYS if value.get(k))
        elif value is not None:
            yield str(value)


def _split(dataset: dict, protected: set[str], kept: set[str]) -> None:
    """Sort the values of a source header: under attributes the profile acts on (or private
    ones), or under attributes it keeps. A sequence that is removed or emptied protects all
    it holds; the items of a kept or replaced (D) sequence are judged attribute by
    attribute."""
    for tag, element in dataset.items():
        private = int(tag[:4], 16) % 2 == 1
        action = None if private else profile_action(tag)
        is_sequence = element.get("vr") == "SQ"
        if is_sequence and not private and action in (None, "D"):
            for item in element.get("Value") or []:
                _split(item, protected, kept)
        elif private or action is not None:
            protected.update(_leaves(element))
        else:
            kept.update(_leaves(element))


def _json_header(path: Path) -> dict:
    # pydicom warns about the malformed parts of these public test files; those warnings
    # are about the files, not about this code, and would fail the test under -W error.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = pydicom.dcmread(path, force=True, stop_before_pixels=True)
        header = dataset.file_meta.to_json_dict(
            bulk_data_threshold=1024, bulk_data_element_handler=lambda e: ""
        )
        header.update(
            dataset.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=lambda e: "")
        )
    return header


def _dicom_files(shared_data: Path) -> list[Path]:
    files = sorted((shared_data / "dicom").glob("*.dcm"))
    if not files:
        pytest.skip("shared/data/dicom holds no DICOM files")
    return files


def test_nothing_the_profile_protects_survives_in_the_real_files(shared_data: Path):
    for path in _dicom_files(shared_data):
        header = _json_header(path)
        out = deidentify_header(header, shift_days=SHIFT, uid_key=KEY)
        protected: set[str] = set()
        kept: set[str] = set()
        _split(header, protected, kept)
        watched = {v for v in protected - kept if len(v) >= 4}
        published = set()
        for element in out.values():
            published.update(_leaves(element))
        assert not watched & published, path.name
        text = str(out)
        assert not [v for v in watched if len(v) >= 12 and v in text], path.name
        assert not [tag for tag in _tags(out) if int(tag[:4], 16) % 2], path.name
        assert out["00120062"] == _el("CS", "YES"), path.name
        if "00080018" in header:
            assert out["00080018"] == _el("UI", _u(header["00080018"]["Value"][0])), path.name
        if "00020003" in header:
            assert out["00020003"] == _el("UI", _u(header["00020003"]["Value"][0])), path.name


def test_the_real_files_keep_their_clinical_description(shared_data: Path):
    for path in _dicom_files(shared_data):
        header = _json_header(path)
        out = deidentify_header(header, shift_days=SHIFT, uid_key=KEY)
        for tag in ("00080016", "00080060", "00280010", "00280011", "00180015"):
            if tag in header:
                assert out[tag] == header[tag], (path.name, tag)
        if "00080060" in header:
            assert header["00080060"]["Value"][0] in MODALITY, path.name
        if "00080020" in header and header["00080020"].get("Value"):
            original = header["00080020"]["Value"][0]
            assert out["00080020"]["Value"] == [shift_da(original, SHIFT)], path.name
