"""Every real HL7 v2 file in shared/data/lab/hl7v2 loads, or is rejected for a stated reason.

Expected values were read from the files by hand (fields counted with ``str.split('|')``
in Python, independently of this reader) and from the MANIFEST's 'lab' section.

Facts about the files that shape the expectations:

- LAB-ORU-1/2 leave MSH-4 empty, so ``site`` is MSH-3 (``SomeSystem``). Their OBR-7 and
  OBR-22 are empty (the time sits in OBR-23), so ``collected_at`` is SPM-17 and
  ``resulted_at`` is null.
- The LRI CBC message flags its results N, L, HH and A (no plain H).
- ORU-R01-01 has two OBX segments before its first OBR (one after an ORC): both are
  quarantined. Its only ``\\T\\`` escapes sit in an NTE and a PV1, which ``lab_results`` does
  not carry; they are checked on the parsed message.
"""

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.hl7v2 import read_hl7v2
from connectors.hl7v2.framing import decode_segments, split_messages
from connectors.hl7v2.message import Message
from connectors.hl7v2.reader import OBX_WITHOUT_OBR
from connectors.hl7v2.schema import MESSAGE_SCHEMA
from connectors.hl7v2.values import observation_value
from connectors.lab_schema import LAB_RESULT_SCHEMA
from tests.connectors.hl7v2.conftest import utc

ORU_01_ID = "2.16.840.1.114222.4.3.3.5.1.2-20120314235954.325"

# file -> (lab_results rows, messages (results, rejected_results, segments), rejects)
EXPECTED: dict[str, tuple[int, tuple[int, int, int], list[tuple[str, str]]]] = {
    "LAB-ORU-1.hl7": (10, (10, 0, 16), []),
    "LAB-ORU-2.hl7": (10, (10, 0, 16), []),
    "LRI_2.0-NG_CBC_Typ_Message.hl7": (28, (28, 0, 33), []),
    "ORU-R01-01.hl7": (
        3,
        (3, 2, 29),
        [
            (f"MSH-10:{ORU_01_ID}/OBX:1", OBX_WITHOUT_OBR),
            (f"MSH-10:{ORU_01_ID}/OBX:2", OBX_WITHOUT_OBR),
        ],
    ),
    "ORU-R01-RMGEAD.hl7": (1, (1, 0, 4), []),
}


@pytest.fixture(scope="module")
def hl7_folder(shared_data: Path) -> Path:
    folder = shared_data / "lab" / "hl7v2"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found: the shared data predates the lab files")
    return folder


def lab_results(path: Path, **options: str) -> pl.DataFrame:
    return read_hl7v2(path, on_error="quarantine", **options).tables["lab_results"]


def parsed(path: Path) -> Message:
    (segments,) = split_messages(path.read_bytes()).messages
    texts, encoding = decode_segments(segments)
    return Message.parse(1, texts, encoding)


def test_the_expected_outcomes_cover_every_shared_hl7_file(hl7_folder):
    assert {p.name for p in hl7_folder.iterdir() if p.is_file()} == EXPECTED.keys()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_shared_hl7_file_loads_or_is_rejected_for_a_stated_reason(hl7_folder, name):
    rows, (results, rejected, segments), rejects = EXPECTED[name]
    path = hl7_folder / name
    result = read_hl7v2(path, on_error="quarantine")
    assert result.tables["lab_results"].schema == LAB_RESULT_SCHEMA
    assert result.tables["lab_results"].height == rows
    messages = result.tables["messages"]
    assert messages.schema == MESSAGE_SCHEMA
    assert messages.select("results", "rejected_results", "segments").rows() == [
        (results, rejected, segments)
    ]
    assert messages.select("message_type", "encoding").rows() == [("ORU^R01", "utf-8")]
    assert result.rejects.select("locator", "reason").rows() == rejects
    assert set(result.rejects["source"]) <= {str(path)}


def test_lab_oru_1_has_two_order_groups_and_pending_results(hl7_folder):
    rows = lab_results(hl7_folder / "LAB-ORU-1.hl7")
    assert rows["source_locator"].to_list() == [f"MSH-10:182/OBX:{n}" for n in range(1, 11)]
    assert rows["accession"].to_list() == ["82503246"] * 5 + ["890775544"] * 5
    assert rows["placer_order"].to_list() == ["88502218"] * 5 + ["855238581"] * 5
    assert rows["panel_code"].to_list() == ["24317-0"] * 5 + ["26464-8"] * 5
    assert rows["observation_seq"].to_list() == [1, 2, 3, 4, 5, 1, 2, 3, 4, 5]
    assert rows["result_status"].to_list() == ["I", "P", "I", "P", "F"] + ["P"] * 5
    pending = rows.filter(pl.col("result_status") == "I")
    assert pending.select("test_code", "value_type", "value_text", "value_number").rows() == [
        ("11156-7", "NM", None, None),
        ("20509-6", "NM", None, None),
    ]
    erythrocytes = rows.row(1, named=True)
    assert (erythrocytes["value_number"], erythrocytes["unit"]) == (4.06, "tera.l-1")
    assert rows["site"].unique().to_list() == ["SomeSystem"]
    assert rows["patient_id"].unique().to_list() == ["10006579"]
    assert rows["patient_id_authority"].unique().to_list() == ["1"]
    assert rows["specimen_type"].unique().to_list() == ["BLD"]
    assert rows["collected_at"].unique().to_list() == [utc(2014, 10, 5, 22, 35)]
    assert rows["resulted_at"].null_count() == 10


def test_lab_oru_2_finalises_the_same_results_in_non_ucum_units(hl7_folder):
    final = lab_results(hl7_folder / "LAB-ORU-2.hl7")
    preliminary = lab_results(hl7_folder / "LAB-ORU-1.hl7")
    assert final["result_status"].unique().to_list() == ["F"]
    key = ["accession", "test_code"]
    assert final.select(key).sort(key).equals(preliminary.select(key).sort(key))
    giga = final.filter(pl.col("unit") == "giga.l-1")
    assert giga.select("test_code", "value_number").rows() == [
        ("11156-7", 8.2),
        ("11125-2", 220.0),
    ]
    assert set(final["unit"]) == {"%", "g/l-1", "giga.l-1", "tera.l-1"}
    assert final["message_id"].unique().to_list() == ["ControlID"]


def test_the_lri_cbc_message_has_28_coded_and_flagged_results(hl7_folder):
    rows = lab_results(hl7_folder / "LRI_2.0-NG_CBC_Typ_Message.hl7")
    assert rows["value_type"].value_counts(sort=True).rows() == [
        ("NM", 19),
        ("CWE", 6),
        ("TX", 3),
    ]
    assert set(rows["abnormal_flag"]) == {"N", "L", "HH", "A"}
    flagged = rows.filter(pl.col("abnormal_flag") != "N")
    assert flagged.select("observation_seq", "abnormal_flag").rows() == [
        (2, "L"),
        (4, "HH"),
        (14, "HH"),
        (16, "HH"),
        (18, "HH"),
        (20, "A"),
        (26, "A"),
        (27, "A"),
        (28, "A"),
    ]
    assert rows.row(0, named=True) == {
        "source_locator": "MSH-10:NIST-LRI-NG-002.00/OBX:1",
        "source_kind": "hl7v2",
        "site": "NIST Lab Facility",
        "message_id": "NIST-LRI-NG-002.00",
        "patient_id": "PATID1234",
        "patient_id_authority": "NIST MPI",
        "accession": "R-991133",
        "placer_order": "ORD666555",
        "panel_code": "57021-8",
        "panel_system": "LN",
        "panel_display": "CBC W Auto Differential panel in Blood",
        "observation_seq": 1,
        "observation_sub_id": None,
        "test_code": "26453-1",
        "test_system": "LN",
        "test_display": "Erythrocytes [#/volume] in Blood",
        "alt_code": None,
        "alt_system": None,
        "alt_display": None,
        "category": None,
        "value_type": "NM",
        "value_text": "4.41",
        "value_number": 4.41,
        "comparator": None,
        "value_code": None,
        "value_system": None,
        "value_display": None,
        "unit": "10*6/uL",
        "unit_system": "UCUM",
        "reference_range": "4.3 to 6.2",
        "reference_low": 4.3,
        "reference_high": 6.2,
        "abnormal_flag": "N",
        "result_status": "F",
        "specimen_type": "119297000",
        "collected_at": utc(2011, 1, 3, 22, 34, 28),
        "resulted_at": utc(2011, 1, 4, 0, 34, 28),
    }
    anisocytosis = rows.row(19, named=True)
    assert (
        anisocytosis["value_code"],
        anisocytosis["value_display"],
        anisocytosis["value_system"],
    ) == ("260348001", "Present ++ out of ++++", "SCT")
    assert rows.row(25, named=True)["value_text"] == "Many spherocytes present."
    numeric = rows.filter(pl.col("value_type") == "NM")
    assert numeric["unit_system"].unique().to_list() == ["UCUM"]
    assert numeric["reference_low"].null_count() == 0
    assert rows["specimen_type"].unique().to_list() == ["119297000"]


def test_oru_r01_01_quarantines_obx_before_obr_and_keeps_rp_and_repeated_values(hl7_folder):
    path = hl7_folder / "ORU-R01-01.hl7"
    rows = lab_results(path)
    assert rows.select(
        "source_locator", "value_type", "value_text", "value_number", "result_status"
    ).rows() == [
        (
            f"MSH-10:{ORU_01_ID}/OBX:3",
            "CWE",
            "27268008^Salmonella^SCT^^^^^^Salmonella species",
            None,
            "P",
        ),
        (f"MSH-10:{ORU_01_ID}/OBX:4", "RP", "https://testurl.com^^image^PICT", None, "O"),
        (f"MSH-10:{ORU_01_ID}/OBX:5", "NM", "27~25", None, "I"),
    ]
    salmonella = rows.row(0, named=True)
    assert {
        name: salmonella[name]
        for name in (
            "value_code",
            "value_system",
            "value_display",
            "unit",
            "unit_system",
            "reference_low",
            "reference_high",
            "abnormal_flag",
            "observation_sub_id",
        )
    } == {
        "value_code": "27268008",
        "value_system": "SCT",
        "value_display": "Salmonella",
        "unit": "beats/min",
        "unit_system": "ISO",
        "reference_low": 70.0,
        "reference_high": 80.0,
        "abnormal_flag": "A",
        "observation_sub_id": "1",
    }
    assert rows["site"].unique().to_list() == ["IA Public Health Lab"]
    assert rows["patient_id"].unique().to_list() == ["14"]
    assert rows["patient_id_authority"].unique().to_list() == ["IA PHIMS Stage"]
    assert rows["accession"].unique().to_list() == ["986"]
    assert rows["placer_order"].unique().to_list() == ["845439"]
    # The SPM comes after the first OBX of the group and still gives its specimen type.
    assert rows["specimen_type"].to_list() == ["ASERU"] * 3
    assert rows["collected_at"].unique().to_list() == [utc(2002, 2, 15, 5, 15)]
    # OBX-19 of the first result has no offset: read in default_timezone.
    assert (
        rows["resulted_at"].to_list() == [utc(2012, 3, 14, 9, 57)] + [utc(2002, 3, 15, 5, 15)] * 2
    )
    in_chicago = lab_results(path, default_timezone="America/Chicago")
    assert in_chicago["resulted_at"][0] == utc(2012, 3, 14, 14, 57)


def test_oru_r01_01_escapes_and_ed_value_decode_on_the_parsed_message(hl7_folder):
    message = parsed(hl7_folder / "ORU-R01-01.hl7")
    decoder = message.decoder
    notes = [decoder.text(s.field(3)) for s in message.segments if s.id == "NTE"]
    assert "E.coli O157:H7 & other STECs, and Aeromonas" in notes[0]
    pv1 = message.first("PV1")
    assert pv1 is not None
    assert decoder.text(pv1.field(14)) == "NHS Provider-General (inc.A&E-this Hosp)"
    (ed,) = [s for s in message.segments if s.id == "OBX" and s.field(2) == "ED"]
    assert observation_value("ED", ed.field(5), decoder).text == "App5^NS^Octet-stream^Base64"


def test_rmgead_reads_its_structured_numeric_glucose(hl7_folder):
    path = hl7_folder / "ORU-R01-RMGEAD.hl7"
    result = read_hl7v2(path)
    expected = {name: None for name in LAB_RESULT_SCHEMA} | {
        "source_locator": "MSH-10:CNTRL-3456/OBX:1",
        "source_kind": "hl7v2",
        "site": "ELAB-3",
        "message_id": "CNTRL-3456",
        "patient_id": "555-44-4444",
        "accession": "1045813",
        "placer_order": "845439",
        "panel_code": "15545",
        "panel_display": "GLUCOSE",
        "observation_seq": 1,
        "test_code": "1554-5",
        "test_system": "POST 12H CFST:MCNC:PT:SER/PLAS:QN",
        "test_display": "GLUCOSE",
        "value_type": "SN",
        "value_text": "^182",
        "value_number": 182.0,
        "unit": "mg/dl",
        "reference_range": "70_105",
        "reference_low": 70.0,
        "reference_high": 105.0,
        "abnormal_flag": "H",
        "result_status": "F",
        "collected_at": utc(2002, 2, 15, 1, 30),
    }
    assert_frame_equal(
        result.tables["lab_results"],
        pl.DataFrame([expected], schema=LAB_RESULT_SCHEMA),
    )
    assert result.tables["messages"].select("version", "message_datetime").rows() == [
        ("2.4", utc(2002, 2, 15, 3, 30))
    ]


def test_the_shared_folder_equals_its_files_concatenated(hl7_folder):
    whole = read_hl7v2(hl7_folder, on_error="quarantine")
    parts = [read_hl7v2(path, on_error="quarantine") for path in sorted(hl7_folder.iterdir())]
    for table in ("lab_results", "messages"):
        assert_frame_equal(whole.tables[table], pl.concat([p.tables[table] for p in parts]))
    assert_frame_equal(whole.rejects, pl.concat([p.rejects for p in parts]))
