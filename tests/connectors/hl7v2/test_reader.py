from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.errors import ConnectorError, MalformedRecordError, SourceNotFoundError
from connectors.hl7v2 import Hl7MessageError, read_hl7v2, reader
from connectors.hl7v2.reader import (
    BAD_SEGMENT_ID,
    BAD_SET_ID,
    LEADING_SEGMENTS,
    NO_MESSAGE,
    NO_PATIENT_ID,
    NO_PID,
    NO_TEST_CODE,
    NOT_ORU_R01,
    OBX_WITHOUT_OBR,
    OBX_WITHOUT_PID,
    not_a_timestamp,
)
from connectors.hl7v2.schema import MESSAGE_SCHEMA
from connectors.hl7v2.values import MISSING_VALUE_TYPE, NOT_A_NUMBER, UNKNOWN_SN_COMPARATOR
from connectors.lab_schema import LAB_RESULT_SCHEMA
from connectors.result import REJECT_SCHEMA
from tests.connectors.hl7v2.conftest import (
    GLUCOSE,
    MRN,
    OBR,
    ORC,
    PATIENT_VALUES,
    PID,
    WriteHl7,
    message,
    msh,
    obx,
    segment,
    utc,
)

BASE = {
    "source_kind": "hl7v2",
    "site": "SITE-A02",
    "message_id": "MSG-1",
    "patient_id": MRN,
    "patient_id_authority": "SITE-A02-LIS",
    "accession": "ACC-1",
    "placer_order": "PLC-1",
    "panel_code": "24323-8",
    "panel_system": "LN",
    "panel_display": "Comprehensive metabolic panel",
    "collected_at": utc(2024, 3, 5, 7, 30),
}


def expected(*rows: dict[str, object]) -> pl.DataFrame:
    return pl.DataFrame(
        {name: [{**BASE, **row}.get(name) for row in rows] for name in LAB_RESULT_SCHEMA},
        schema=LAB_RESULT_SCHEMA,
    )


def rejects(result) -> list[tuple[str, str]]:
    return result.rejects.select("locator", "reason").rows()


def column(result, name: str) -> list:
    return result.tables["lab_results"][name].to_list()


def test_each_obx_becomes_one_row_with_its_order_group_context(write_hl7: WriteHl7):
    spm = segment("SPM", {1: "1", 4: "119297000^Blood^SCT", 17: "20240305080000+0100"})
    cwe = obx(
        2,
        "CWE",
        "260415000^not detected^SCT",
        code="30400-6^Hypochromia^LN",
        flags="N",
        status="P",
        analysed="20240305120000+0100",
    )
    path = write_hl7(message(ORC, OBR, GLUCOSE, cwe, spm))
    result = read_hl7v2(path)
    glucose = {
        "source_locator": "MSH-10:MSG-1/OBX:1",
        "observation_seq": 1,
        "test_code": "2345-7",
        "test_system": "LN",
        "test_display": "Glucose",
        "alt_code": "GLU",
        "alt_system": "L",
        "alt_display": "Glucose local",
        "value_type": "NM",
        "value_text": "98",
        "value_number": 98.0,
        "unit": "mg/dL",
        "unit_system": "UCUM",
        "reference_range": "70-99",
        "reference_low": 70.0,
        "reference_high": 99.0,
        "abnormal_flag": "N",
        "result_status": "F",
        "specimen_type": "119297000",
    }
    hypochromia = {
        "source_locator": "MSH-10:MSG-1/OBX:2",
        "observation_seq": 2,
        "test_code": "30400-6",
        "test_system": "LN",
        "test_display": "Hypochromia",
        "value_type": "CWE",
        "value_text": "260415000^not detected^SCT",
        "value_code": "260415000",
        "value_system": "SCT",
        "value_display": "not detected",
        "abnormal_flag": "N",
        "result_status": "P",
        "specimen_type": "119297000",
        "resulted_at": utc(2024, 3, 5, 11),
    }
    assert_frame_equal(result.tables["lab_results"], expected(glucose, hypochromia))
    assert result.rejects.height == 0
    assert result.rejects.schema == REJECT_SCHEMA


def test_the_messages_table_has_one_row_per_message(write_hl7: WriteHl7):
    path = write_hl7(message(OBR, GLUCOSE))
    messages = read_hl7v2(path).tables["messages"]
    assert messages.schema == MESSAGE_SCHEMA
    assert messages.rows(named=True) == [
        {
            "source_locator": "MSH-10:MSG-1",
            "message_id": "MSG-1",
            "message_type": "ORU^R01",
            "trigger": "R01",
            "version": "2.5.1",
            "sending_application": "LABAPP",
            "sending_facility": "SITE-A02",
            "message_datetime": utc(2024, 3, 5, 9, 15),
            "patient_id": MRN,
            "encoding": "utf-8",
            "segments": 4,
            "results": 1,
            "rejected_results": 0,
        }
    ]


def test_results_frames_have_exactly_the_shared_schema_even_when_empty(write_hl7: WriteHl7):
    full = read_hl7v2(write_hl7(message(OBR, GLUCOSE)))
    empty = read_hl7v2(write_hl7(message(OBR), name="no-results.hl7"))
    assert full.tables["lab_results"].schema == LAB_RESULT_SCHEMA
    assert empty.tables["lab_results"].schema == LAB_RESULT_SCHEMA
    assert empty.tables["lab_results"].height == 0
    assert list(full.tables) == ["lab_results", "messages"]


@pytest.mark.parametrize("separator", ["\r", "\n", "\r\n"])
def test_cr_lf_and_crlf_feeds_read_alike(write_hl7: WriteHl7, separator):
    first = message(OBR, GLUCOSE, header=msh("A"))
    second = message(OBR, GLUCOSE, obx(2, "NM", "5.1"), header=msh("B"))
    reference = read_hl7v2(write_hl7(first, second, name="reference.hl7"))
    result = read_hl7v2(write_hl7(first, second, separator=separator))
    assert_frame_equal(result.tables["lab_results"], reference.tables["lab_results"])
    assert column(result, "source_locator") == [
        "MSH-10:A/OBX:1",
        "MSH-10:B/OBX:1",
        "MSH-10:B/OBX:2",
    ]


def test_an_mllp_framed_feed_with_a_byte_order_mark_reads_like_a_plain_one(
    write_hl7: WriteHl7, tmp_path: Path
):
    messages = [message(OBR, GLUCOSE, header=msh(f"M{n}")) for n in range(3)]
    plain = read_hl7v2(write_hl7(*messages))
    framed = tmp_path / "framed.hl7"
    framed.write_bytes(
        b"\xef\xbb\xbf" + b"".join(b"\x0b" + "\r".join(m).encode() + b"\r\x1c\r" for m in messages)
    )
    result = read_hl7v2(framed)
    assert_frame_equal(result.tables["lab_results"], plain.tables["lab_results"])
    assert result.tables["messages"]["segments"].to_list() == [4, 4, 4]


def test_delimiters_are_read_from_each_message(write_hl7: WriteHl7):
    custom = [
        "MSH#$*!%#LABAPP#SITE-C03###20240305101500+0100##ORU$R01#MSG-9#P#2.5.1",
        f"PID###{MRN}$$$SITE-C03-LIS$MR",
        "OBR#1#PLC-9#ACC-9#24323-8$Panel$LN###20240305083000+0100",
        "OBX#1#TX#11156-7$Morphology!T!more$LN##one!F!two!S!three!.br!four*second##",
        "OBX#2#CWE#30400-6$Hypo$LN##A$Alpha$L*B$Beta$L###H*A",
    ]
    result = read_hl7v2(write_hl7(message(OBR, GLUCOSE), custom))
    rows = result.tables["lab_results"].filter(pl.col("message_id") == "MSG-9")
    assert rows.select(
        "site", "accession", "test_display", "value_text", "value_code", "abnormal_flag"
    ).rows() == [
        ("SITE-C03", "ACC-9", "Morphology%more", "one#two$three\nfour~second", None, None),
        ("SITE-C03", "ACC-9", "Hypo", "A$Alpha$L~B$Beta$L", "A~B", "H~A"),
    ]


def test_timestamps_without_offset_are_read_in_the_default_timezone(write_hl7: WriteHl7):
    obr = segment("OBR", {1: "1", 3: "ACC", 4: "X^Y^L", 7: "202401151030", 22: "2024071508"})
    path = write_hl7(message(obr, obx(1, "NM", "1"), obx(2, "NM", "2", analysed="2024")))
    result = read_hl7v2(path, default_timezone="America/Denver")
    assert column(result, "collected_at") == [utc(2024, 1, 15, 17, 30)] * 2
    assert column(result, "resulted_at") == [utc(2024, 7, 15, 14), utc(2024, 1, 1, 7)]
    in_utc = read_hl7v2(path)
    assert column(in_utc, "collected_at") == [utc(2024, 1, 15, 10, 30)] * 2


def test_collection_time_falls_back_from_obr7_to_spm17_to_obx14(write_hl7: WriteHl7):
    no_time = segment("OBR", {1: "1", 3: "ACC-2", 4: "X^Y^L"})
    spm = segment("SPM", {1: "1", 4: "BLD", 17: "20240301+0000^20240302+0000"})
    path = write_hl7(
        message(
            OBR,
            obx(1, "NM", "1", observed="20240101+0000"),
            no_time,
            obx(2, "NM", "2", observed="20240102+0000"),
            spm,
            obx(3, "NM", "3", observed="20240103+0000"),
            no_time,
            obx(4, "NM", "4", observed="20240104+0000"),
        )
    )
    assert column(read_hl7v2(path), "collected_at") == [
        utc(2024, 3, 5, 7, 30),
        utc(2024, 3, 1),
        utc(2024, 3, 1),
        utc(2024, 1, 4),
    ]


def test_result_time_falls_back_from_obx19_to_obr22(write_hl7: WriteHl7):
    obr = segment("OBR", {1: "1", 3: "A", 4: "X^Y^L", 7: "2024+0000", 22: "20240202+0000"})
    path = write_hl7(message(obr, obx(1, "NM", "1", analysed="20240303+0000"), obx(2, "NM", "2")))
    assert column(read_hl7v2(path), "resulted_at") == [utc(2024, 3, 3), utc(2024, 2, 2)]


def test_specimen_type_comes_from_the_groups_spm_else_obr15(write_hl7: WriteHl7):
    with_source = segment("OBR", {1: "2", 3: "ACC-2", 4: "X^Y^L", 15: "UR&Urine&HL70070^^"})
    path = write_hl7(
        message(
            OBR,
            obx(1, "NM", "1"),
            segment("SPM", {1: "1", 4: "SER^Serum^HL70487"}),
            obx(2, "NM", "2"),
            segment("SPM", {1: "2", 4: "PLAS^Plasma^HL70487"}),
            obx(3, "NM", "3"),
            with_source,
            obx(4, "NM", "4"),
        )
    )
    assert column(read_hl7v2(path), "specimen_type") == ["SER", "SER", "PLAS", "UR"]


def test_accession_and_placer_order_fall_back_through_obr_and_orc(write_hl7: WriteHl7):
    only_placer = segment("OBR", {1: "2", 2: "PLC-2^EHR", 4: "X^Y^L"})
    orc = segment("ORC", {1: "RE", 2: "PLC-3", 3: "ACC-3^LAB"})
    bare = segment("OBR", {1: "3", 4: "X^Y^L"})
    path = write_hl7(
        message(
            ORC,
            OBR,
            obx(1, "NM", "1"),
            only_placer,
            obx(2, "NM", "2"),
            orc,
            bare,
            obx(3, "NM", "3"),
        )
    )
    result = read_hl7v2(path)
    assert column(result, "accession") == ["ACC-1", "PLC-2", "ACC-3"]
    assert column(result, "placer_order") == ["PLC-1", "PLC-2", "PLC-3"]


@pytest.mark.parametrize(
    ("pid3", "patient_id", "authority"),
    [
        (f"SSN1^^^SSA^SS~{MRN}^^^LIS&1.2.3&ISO^MR", MRN, "LIS"),
        (f"{MRN}^^^LIS^PI~OTHER^^^X^PI", MRN, "LIS"),
        (f"^^^LIS^MR~{MRN}", MRN, None),
        (MRN, MRN, None),
    ],
)
def test_patient_id_is_the_mr_repetition_else_the_first(
    write_hl7: WriteHl7, pid3, patient_id, authority
):
    pid = segment("PID", {1: "1", 3: pid3})
    result = read_hl7v2(write_hl7(message(OBR, GLUCOSE, pid=pid)))
    assert column(result, "patient_id") == [patient_id]
    assert column(result, "patient_id_authority") == [authority]
    assert result.tables["messages"]["patient_id"].to_list() == [patient_id]


def test_site_is_msh4_else_msh3(write_hl7: WriteHl7):
    header = "MSH|^~\\&|LABAPP^1.2.3^ISO||||20240101||ORU^R01|NO-FACILITY|P|2.5.1"
    result = read_hl7v2(write_hl7(message(OBR, GLUCOSE, header=header)))
    assert column(result, "site") == ["LABAPP"]
    assert result.tables["messages"]["sending_facility"].to_list() == [None]


def test_sn_comparators_and_ranges_reach_the_row(write_hl7: WriteHl7):
    path = write_hl7(
        message(
            OBR,
            obx(1, "SN", "<^5"),
            obx(2, "SN", ">=^10"),
            obx(3, "SN", "^10^-^20"),
            obx(4, "SN", "^1^:^128"),
        )
    )
    result = read_hl7v2(path)
    values = result.tables["lab_results"].select("value_text", "value_number", "comparator")
    assert values.rows() == [
        ("<^5", 5.0, "<"),
        (">=^10", 10.0, ">="),
        ("^10^-^20", 10.0, None),
        ("^1^:^128", None, None),
    ]


def test_a_pending_obx_without_value_is_a_row_with_null_values(write_hl7: WriteHl7):
    result = read_hl7v2(write_hl7(message(OBR, obx(1, "NM", "", status="I"))))
    row = result.tables["lab_results"].row(0, named=True)
    assert (row["value_text"], row["value_number"], row["result_status"]) == (None, None, "I")


def test_a_message_without_msh10_is_located_by_its_position(write_hl7: WriteHl7):
    path = write_hl7(message(OBR, GLUCOSE), message(OBR, GLUCOSE, header=msh("")))
    result = read_hl7v2(path)
    assert column(result, "source_locator") == ["MSH-10:MSG-1/OBX:1", "message:2/OBX:1"]
    assert column(result, "message_id") == ["MSG-1", None]
    assert result.tables["messages"]["source_locator"].to_list() == ["MSH-10:MSG-1", "message:2"]


def test_a_message_of_another_type_is_rejected_and_the_feed_goes_on(write_hl7: WriteHl7):
    adt = message(segment("PV1", {1: "1", 2: "I"}), header=msh("ADT-1", "ADT^A01^ADT_A01"))
    orm = message(OBR, GLUCOSE, header=msh("ORM-1", "ORM^O01"))
    path = write_hl7(adt, message(OBR, GLUCOSE, header=msh("ORU-1")), orm)
    result = read_hl7v2(path, on_error="quarantine")
    assert rejects(result) == [
        ("MSH-10:ADT-1", "message type ADT^A01 is not ORU^R01"),
        ("MSH-10:ORM-1", "message type ORM^O01 is not ORU^R01"),
    ]
    assert column(result, "source_locator") == ["MSH-10:ORU-1/OBX:1"]
    messages = result.tables["messages"]
    assert messages.select("message_type", "results", "rejected_results").rows() == [
        ("ADT^A01", 0, 0),
        ("ORU^R01", 1, 0),
        ("ORM^O01", 0, 1),
    ]


@pytest.mark.parametrize("message_type", ["", "ORU", "oru^r01", "Lab results for Smith^R01"])
def test_a_message_type_that_is_no_code_is_not_repeated_in_the_reason(
    write_hl7: WriteHl7, message_type
):
    path = write_hl7(message(OBR, GLUCOSE, header=msh("X", message_type)))
    result = read_hl7v2(path, on_error="quarantine")
    expected_reason = "message type ORU is not ORU^R01" if message_type == "ORU" else NOT_ORU_R01
    assert rejects(result) == [("MSH-10:X", expected_reason)]


def test_a_message_without_pid_is_rejected(write_hl7: WriteHl7):
    result = read_hl7v2(write_hl7(message(OBR, GLUCOSE, pid=None)), on_error="quarantine")
    assert rejects(result) == [("MSH-10:MSG-1", NO_PID)]
    assert result.tables["lab_results"].height == 0
    assert result.tables["messages"].select("patient_id", "results", "rejected_results").rows() == [
        (None, 0, 1)
    ]


def test_an_obx_before_any_obr_is_rejected_and_later_ones_keep_their_positions(
    write_hl7: WriteHl7,
):
    path = write_hl7(message(obx(1, "NM", "1"), ORC, obx(2, "NM", "2"), OBR, obx(3, "NM", "3")))
    result = read_hl7v2(path, on_error="quarantine")
    assert rejects(result) == [
        ("MSH-10:MSG-1/OBX:1", OBX_WITHOUT_OBR),
        ("MSH-10:MSG-1/OBX:2", OBX_WITHOUT_OBR),
    ]
    assert column(result, "source_locator") == ["MSH-10:MSG-1/OBX:3"]
    assert result.tables["messages"].select("results", "rejected_results").row(0) == (1, 2)


def test_a_second_pid_starts_a_new_patient_and_closes_the_order_group(write_hl7: WriteHl7):
    second = segment("PID", {1: "2", 3: "MRN2^^^LIS^MR"})
    path = write_hl7(
        message(OBR, obx(1, "NM", "1"), second, obx(2, "NM", "2"), OBR, obx(3, "NM", "3"))
    )
    result = read_hl7v2(path, on_error="quarantine")
    assert rejects(result) == [("MSH-10:MSG-1/OBX:2", OBX_WITHOUT_OBR)]
    assert column(result, "patient_id") == [MRN, "MRN2"]
    assert result.tables["messages"]["patient_id"].to_list() == [MRN]


def test_an_order_group_before_the_first_pid_has_no_patient(write_hl7: WriteHl7):
    path = write_hl7([msh("P"), OBR, obx(1, "NM", "1"), PID, OBR, obx(2, "NM", "2")])
    result = read_hl7v2(path, on_error="quarantine")
    assert rejects(result) == [("MSH-10:P/OBX:1", OBX_WITHOUT_PID)]
    assert column(result, "source_locator") == ["MSH-10:P/OBX:2"]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (obx(1, "NM", "12.3x"), NOT_A_NUMBER),
        (obx(1, "", "98"), MISSING_VALUE_TYPE),
        (obx(1, "NM", "98", code="^Glucose^LN"), NO_TEST_CODE),
        ("OBX|A1|NM|2345-7^Glucose^LN||98", BAD_SET_ID),
        (obx(1, "SN", "<>^5"), UNKNOWN_SN_COMPARATOR),
        (obx(1, "NM", "98", observed="2024-03-05"), not_a_timestamp("OBX-14")),
        (obx(1, "NM", "98", analysed="20241345"), not_a_timestamp("OBX-19")),
    ],
)
def test_an_obx_that_cannot_be_read_is_rejected_alone(write_hl7: WriteHl7, bad, reason):
    no_time = segment("OBR", {1: "1", 3: "ACC-1", 4: "X^Y^L"})
    path = write_hl7(message(no_time, bad, GLUCOSE.replace("OBX|1|", "OBX|2|")))
    result = read_hl7v2(path, on_error="quarantine")
    assert rejects(result) == [("MSH-10:MSG-1/OBX:1", reason)]
    assert column(result, "source_locator") == ["MSH-10:MSG-1/OBX:2"]


@pytest.mark.parametrize(
    ("obr_fields", "spm", "reason"),
    [
        ({7: "5 March"}, None, not_a_timestamp("OBR-7")),
        ({22: "2024030599"}, None, not_a_timestamp("OBR-22")),
        ({}, segment("SPM", {1: "1", 17: "yesterday"}), not_a_timestamp("SPM-17")),
    ],
)
def test_an_order_time_that_is_no_timestamp_rejects_each_obx_that_needs_it(
    write_hl7: WriteHl7, obr_fields, spm, reason
):
    obr = segment("OBR", {1: "1", 3: "ACC-1", 4: "X^Y^L", **obr_fields})
    group = [obr, obx(1, "NM", "1"), obx(2, "NM", "2")] + ([spm] if spm else [])
    result = read_hl7v2(write_hl7(message(*group)), on_error="quarantine")
    assert rejects(result) == [
        ("MSH-10:MSG-1/OBX:1", reason),
        ("MSH-10:MSG-1/OBX:2", reason),
    ]
    assert result.tables["messages"].select("results", "rejected_results").row(0) == (0, 2)


def test_a_message_whose_msh7_is_no_timestamp_is_rejected(write_hl7: WriteHl7):
    header = msh("T").replace("20240305101500+0100", "March 5")
    result = read_hl7v2(write_hl7(message(OBR, GLUCOSE, header=header)), on_error="quarantine")
    assert rejects(result) == [("MSH-10:T", not_a_timestamp("MSH-7"))]
    assert result.tables["messages"]["message_datetime"].to_list() == [None]


def test_a_segment_without_a_segment_id_is_rejected_and_the_message_read(write_hl7: WriteHl7):
    path = write_hl7(message(OBR, GLUCOSE, "continued free text from a broken line", "NT|1"))
    result = read_hl7v2(path, on_error="quarantine")
    assert rejects(result) == [
        ("MSH-10:MSG-1/segment:5", BAD_SEGMENT_ID),
        ("MSH-10:MSG-1/segment:6", BAD_SEGMENT_ID),
    ]
    assert result.tables["lab_results"].height == 1
    assert result.tables["messages"]["segments"].to_list() == [6]


def test_a_message_with_unreadable_delimiters_is_rejected(write_hl7: WriteHl7):
    path = write_hl7(message(OBR, GLUCOSE), ["MSH|^^^^|X", PID, OBR, GLUCOSE])
    result = read_hl7v2(path, on_error="quarantine")
    reason = "MSH-2 encoding characters are not distinct punctuation"
    assert rejects(result) == [("message:2", reason)]
    messages = result.tables["messages"]
    assert messages.select("source_locator", "segments", "rejected_results").rows() == [
        ("MSH-10:MSG-1", 4, 0),
        ("message:2", 4, 1),
    ]


def test_a_file_without_msh_is_rejected_whole(write_hl7: WriteHl7):
    result = read_hl7v2(write_hl7([PID, OBR, GLUCOSE]), on_error="quarantine")
    assert rejects(result) == [("file", NO_MESSAGE)]
    assert result.tables["messages"].height == 0
    assert result.tables["lab_results"].schema == LAB_RESULT_SCHEMA


def test_segments_before_the_first_msh_are_rejected_and_the_messages_read(write_hl7: WriteHl7):
    result = read_hl7v2(write_hl7([PID, OBR], message(OBR, GLUCOSE)), on_error="quarantine")
    assert rejects(result) == [("file", LEADING_SEGMENTS)]
    assert result.tables["lab_results"].height == 1


def test_a_pid_without_identifier_rejects_its_results(write_hl7: WriteHl7):
    pid = segment("PID", {1: "1", 3: "^^^LIS^MR", 5: "Quillfeather^Ottoline"})
    result = read_hl7v2(write_hl7(message(OBR, GLUCOSE, pid=pid)), on_error="quarantine")
    assert rejects(result) == [("MSH-10:MSG-1/OBX:1", NO_PATIENT_ID)]


def test_raise_mode_stops_at_the_first_problem_with_an_hl7_message_error(write_hl7: WriteHl7):
    path = write_hl7(message(OBR, GLUCOSE), message(obx(1, "NM", "1"), header=msh("BAD")))
    with pytest.raises(Hl7MessageError) as caught:
        read_hl7v2(path)
    error = caught.value
    assert isinstance(error, MalformedRecordError)
    assert isinstance(error, ConnectorError)
    assert (error.source, error.locator, error.reason) == (
        str(path),
        "MSH-10:BAD/OBX:1",
        OBX_WITHOUT_OBR,
    )
    assert "on_error='quarantine'" in str(error)


def test_raise_mode_reports_a_file_without_messages(write_hl7: WriteHl7):
    with pytest.raises(Hl7MessageError) as caught:
        read_hl7v2(write_hl7(["just some text"]))
    assert (caught.value.locator, caught.value.reason) == ("file", NO_MESSAGE)


def test_no_reject_reason_or_error_message_holds_a_patient_value(write_hl7: WriteHl7):
    secret_pid = segment(
        "PID", {1: "1", 3: f"{MRN}^^^LIS^MR", 5: "Quillfeather^Ottoline", 7: "19800101"}
    )
    no_id_pid = segment("PID", {1: "1", 3: "^^^LIS^MR", 5: "Quillfeather^Ottoline"})
    untimed = segment("OBR", {1: "1", 3: "ACC-1", 4: "X^Y^L"})
    sensitive = (*PATIENT_VALUES, "Quillfeather^Ottoline", "12.3x", "March 5", "Smith")
    bad_messages = [
        message(obx(1, "NM", "1"), header=msh("A"), pid=secret_pid),
        message(OBR, obx(1, "NM", "12.3x"), header=msh("B"), pid=secret_pid),
        message(OBR, obx(1, "SN", "Quillfeather^5"), header=msh("C"), pid=secret_pid),
        message(OBR, GLUCOSE, header=msh("D", "Smith^R01"), pid=secret_pid),
        message(OBR, GLUCOSE, header=msh("E"), pid=None),
        message(OBR, GLUCOSE, f"{MRN} Quillfeather", header=msh("F"), pid=secret_pid),
        message(
            OBR, GLUCOSE, header=msh("G").replace("20240305101500+0100", "March 5"), pid=secret_pid
        ),
        message(untimed, obx(1, "NM", "1", observed="March 5"), header=msh("H"), pid=secret_pid),
        message(OBR, GLUCOSE, header=msh("I"), pid=no_id_pid),
        message(OBR, obx(1, "", "Quillfeather"), header=msh("J"), pid=secret_pid),
        ["MSH|^^^|Quillfeather", secret_pid, OBR, GLUCOSE],
    ]
    path = write_hl7(*bad_messages)
    result = read_hl7v2(path, on_error="quarantine")
    assert result.rejects.height == len(bad_messages), result.rejects.rows()
    assert result.tables["lab_results"].height == 1  # message F's glucose
    for reason in result.rejects["reason"]:
        assert not any(value in reason for value in sensitive), reason
    for number, bad in enumerate(bad_messages):
        with pytest.raises(Hl7MessageError) as caught:
            read_hl7v2(write_hl7(bad, name=f"one/{number}.hl7"))
        assert not any(value in str(caught.value) for value in sensitive), str(caught.value)


def test_every_obx_is_a_result_or_a_rejected_result(write_hl7: WriteHl7):
    path = write_hl7(
        message(obx(1, "NM", "1"), OBR, GLUCOSE, obx(2, "NM", "x"), header=msh("A")),
        message(OBR, GLUCOSE, header=msh("B", "ADT^A08")),
        message(OBR, GLUCOSE, obx(2, "ST", "text"), header=msh("C")),
    )
    result = read_hl7v2(path, on_error="quarantine")
    messages = result.tables["messages"]
    assert messages.select("results", "rejected_results").rows() == [(1, 2), (0, 1), (2, 0)]
    assert messages["results"].sum() == result.tables["lab_results"].height
    assert messages["rejected_results"].sum() == 3
    assert result.rejects.height == 3  # the ADT message is one reject for its one OBX


def test_a_latin1_message_is_decoded_and_says_so(write_hl7: WriteHl7):
    header = msh("L") + "||||||8859/1"
    unit_obx = obx(1, "NM", "88", units="µmol/L")
    result = read_hl7v2(write_hl7(message(OBR, unit_obx, header=header), encoding="latin-1"))
    assert column(result, "unit") == ["µmol/L"]
    assert result.tables["messages"]["encoding"].to_list() == ["latin-1"]


def test_bytes_that_are_not_utf8_fall_back_to_latin1(write_hl7: WriteHl7):
    unit_obx = obx(1, "NM", "88", units="µmol/L")
    path = write_hl7(message(OBR, unit_obx), encoding="latin-1")
    result = read_hl7v2(path)
    assert column(result, "unit") == ["µmol/L"]
    assert result.tables["messages"]["encoding"].to_list() == ["latin-1"]


def test_a_folder_is_read_in_sorted_order_skipping_hidden_and_other_files(write_hl7: WriteHl7):
    write_hl7(message(OBR, GLUCOSE, header=msh("B")), name="feed/b.HL7")
    write_hl7(message(OBR, GLUCOSE, header=msh("A")), name="feed/a/1.txt")
    write_hl7(message(OBR, GLUCOSE, header=msh("C")), name="feed/c.hl7v2")
    write_hl7(message(OBR, GLUCOSE, header=msh("H")), name="feed/.hidden.hl7")
    write_hl7(message(OBR, GLUCOSE, header=msh("D")), name="feed/.cache/d.hl7")
    last = write_hl7(message(OBR, GLUCOSE, header=msh("X")), name="feed/notes.csv")
    result = read_hl7v2(last.parent)
    assert column(result, "message_id") == ["A", "B", "C"]


def test_a_file_is_read_whatever_its_name(write_hl7: WriteHl7):
    result = read_hl7v2(write_hl7(message(OBR, GLUCOSE), name="feed.dat"))
    assert result.tables["lab_results"].height == 1


def test_a_missing_path_or_a_folder_without_hl7_files_is_source_not_found(tmp_path: Path):
    with pytest.raises(SourceNotFoundError):
        read_hl7v2(tmp_path / "missing.hl7")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("no feed here")
    with pytest.raises(SourceNotFoundError):
        read_hl7v2(tmp_path / "empty")


def test_options_are_checked(write_hl7: WriteHl7):
    path = write_hl7(message(OBR, GLUCOSE))
    with pytest.raises(ValueError, match="default_timezone"):
        read_hl7v2(path, default_timezone="Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="on_error"):
        read_hl7v2(path, on_error="ignore")  # type: ignore[arg-type]


def test_rows_gathered_in_several_frames_equal_rows_gathered_in_one(
    write_hl7: WriteHl7, monkeypatch: pytest.MonkeyPatch
):
    messages = [message(OBR, GLUCOSE, obx(2, "NM", str(n)), header=msh(f"M{n}")) for n in range(3)]
    path = write_hl7(*messages)
    whole = read_hl7v2(path)
    monkeypatch.setattr(reader, "_ROWS_PER_FRAME", 2)
    batched = read_hl7v2(path)
    assert_frame_equal(batched.tables["lab_results"], whole.tables["lab_results"])
    assert batched.tables["lab_results"].height == 6
