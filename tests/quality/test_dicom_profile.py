from collections import Counter
from pathlib import Path

import pytest
from pydicom.datadict import dictionary_has_tag, keyword_for_tag

from quality.dicom_profile import (
    PROFILE_PATH,
    basic_profile,
    profile_action,
    profile_rows,
)
from quality.valuesets import MODALITY


@pytest.mark.parametrize(
    ("keyword", "tag", "action"),
    [
        # Well-known rows of PS3.15 Table E.1-1 (2026c), Basic Profile column.
        ("PatientName", "00100010", "Z"),
        ("PatientID", "00100020", "Z/D"),
        ("PatientBirthDate", "00100030", "Z"),
        ("PatientSex", "00100040", "Z"),
        ("PatientAge", "00101010", "X"),
        ("AccessionNumber", "00080050", "Z"),
        ("StudyID", "00200010", "Z"),
        ("StudyDate", "00080020", "Z"),
        ("SeriesDate", "00080021", "X/D"),
        ("AcquisitionDate", "00080022", "X/Z"),
        ("ContentDate", "00080023", "Z/D"),
        ("AcquisitionDateTime", "0008002A", "X/Z/D"),
        ("InstitutionName", "00080080", "X/Z/D"),
        ("ReferringPhysicianName", "00080090", "Z"),
        ("StationName", "00081010", "X/Z/D"),
        ("StudyDescription", "00081030", "X"),
        ("ProtocolName", "00181030", "X/D"),
        ("ContrastBolusAgent", "00180010", "Z/D"),
        ("StudyInstanceUID", "0020000D", "U"),
        ("SeriesInstanceUID", "0020000E", "U"),
        ("SOPInstanceUID", "00080018", "U"),
        ("MediaStorageSOPInstanceUID", "00020003", "U"),
        ("FrameOfReferenceUID", "00200052", "U"),
        ("ReferencedImageSequence", "00081140", "X/Z/U*"),
        ("SourceImageSequence", "00082112", "X/Z/U*"),
        ("ContentSequence", "0040A730", "D"),
        ("OtherPatientIDsSequence", "00101002", "X"),
    ],
)
def test_the_profile_gives_the_standard_action_for_well_known_attributes(keyword, tag, action):
    assert keyword_for_tag(int(tag, 16)) == keyword
    assert basic_profile()[tag] == action
    assert profile_action(tag) == action
    assert profile_action(tag.lower()) == action


@pytest.mark.parametrize(
    "keyword",
    ["Modality", "SOPClassUID", "Manufacturer", "BodyPartExamined", "Rows", "PixelData"],
)
def test_attributes_the_table_does_not_list_have_no_action(keyword):
    from pydicom.datadict import tag_for_keyword

    assert profile_action(f"{tag_for_keyword(keyword):08X}") is None


def test_the_table_holds_655_rows_with_these_actions():
    counts = Counter(row.action for row in profile_rows())
    assert counts == {
        "X": 415,
        "D": 93,
        "U": 55,
        "Z": 42,
        "X/D": 23,
        "X/Z": 11,
        "X/Z/D": 8,
        "Z/D": 6,
        "X/Z/U*": 2,
    }
    assert len(basic_profile()) == 655


def test_keywords_are_pydicoms_and_empty_only_where_pydicom_has_none():
    for row in profile_rows():
        if "x" in row.tag:
            continue
        tag = int(row.tag, 16)
        if row.keyword:
            assert keyword_for_tag(tag) == row.keyword, row.tag
        else:
            assert not dictionary_has_tag(tag), row.tag


@pytest.mark.parametrize(
    ("tag", "action"),
    [
        ("60003000", "X"),
        ("601E3000", "X"),
        ("60024000", "X"),
        ("50000010", "X"),
        ("501E3000", "X"),
        # odd groups are private, not overlays or curves
        ("60013000", None),
        ("50010010", None),
        # beyond the repeating range
        ("60203000", None),
        ("50200010", None),
        # other overlay elements are not rows of the table
        ("60000010", None),
    ],
)
def test_repeating_groups_match_even_groups_of_their_range_only(tag, action):
    assert profile_action(tag) == action


def test_the_mapping_is_read_only_and_read_once():
    profile = basic_profile()
    assert profile is basic_profile()
    with pytest.raises(TypeError):
        profile["00100010"] = "X"  # type: ignore[index]


@pytest.mark.parametrize("tag", ["0010001", "(0010,0010)", "0010001G", ""])
def test_a_tag_that_is_not_eight_hex_digits_is_refused(tag):
    with pytest.raises(ValueError, match="eight hex digits"):
        profile_action(tag)


def _table(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "profile.csv"
    path.write_text("# a comment\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (("tag,keyword,action", "00100010,PatientName,Z"), "header row"),
        (("tag,keyword,name,action", "00100010,PatientName,Patient's Name,Q"), "action code"),
        (("tag,keyword,name,action", "0010001,PatientName,Patient's Name,Z"), "malformed tag"),
        (("tag,keyword,name,action", "60XX3000,OverlayData,Overlay Data,X"), "malformed tag"),
        (
            (
                "tag,keyword,name,action",
                "00100010,PatientName,Patient's Name,Z",
                "00100010,PatientName,Patient's Name,X",
            ),
            "repeats a tag",
        ),
        (("tag,keyword,name,action", "00100010,PatientName,Z"), "four fields"),
    ],
)
def test_a_malformed_table_file_is_refused(tmp_path, lines, message):
    with pytest.raises(ValueError, match=message):
        profile_rows(_table(tmp_path, *lines))


def test_the_shipped_table_names_its_source_edition_and_licence():
    head = PROFILE_PATH.read_text(encoding="utf-8").split("\ntag,")[0]
    for words in ("Table E.1-1", "2026c", "dicom-anonymizer 2.1.0", "BSD-3-Clause", "pydicom"):
        assert words in head


def test_modality_holds_the_defined_terms_once_and_no_retired_or_private_term():
    assert len(MODALITY) == len(set(MODALITY)) == 79
    assert {"CT", "MR", "US", "SR", "SEG", "SM", "DX", "OT", "DOC", "XC", "KO", "PR"} <= set(
        MODALITY
    )
    assert not {"SC", "CD", "DD", "ST", "DS", "MA", "MS", "OPR", "VF"} & set(MODALITY)
