import base64
import json
import struct
import zlib

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from connectors.dicom import parse, values
from connectors.dicom.parse import HeaderError, parse_header
from tests.connectors.dicom.conftest import (
    DEFLATED,
    EXPLICIT_BE,
    IMPLICIT_LE,
    element,
    identity,
    item,
    part10,
    text,
    undefined,
    us,
)
from tests.connectors.dicom.reference import pydicom_model, shape


def model(data: bytes) -> dict:
    return json.loads(parse_header(data).header_json)


def test_explicit_little_endian_header_matches_pydicom(write_file):
    dataset = _sorted_elements(
        text(0x00080005, "CS", "ISO_IR 100")
        + identity()
        + text(0x00100010, "PN", "Müller^Hans")
        + text(0x00181020, "LO", "v1 \\v2")
        + element(0x00200032, "DS", b"-1.5\\2\\3e1")
        + us(0x00280010, 512)
        + element(0x00280030, "DS", b"0.5\\0.5")
        + element(0x00181310, "US", struct.pack("<4H", 0, 256, 256, 0))
        + element(0x00189087, "FD", struct.pack("<d", 1.25))
        + element(0x00189089, "FD", struct.pack("<3d", 1.0, 0.0, -2.5))
        + element(0x00281052, "DS", b"-1024")
        + element(0x7FE00010, "OW", b"\x00" * 16)
    )
    path = write_file(part10(dataset))
    found = model(path.read_bytes())
    assert found["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Müller^Hans"}]}
    assert found["00200032"] == {"vr": "DS", "Value": [-1.5, 2.0, 30.0]}
    assert shape(found) == pydicom_model(path)


def _sorted_elements(data: bytes) -> bytes:
    # Test datasets are written out of order for readability; DICOM wants ascending tags.
    elements = []
    pos = 0
    while pos < len(data):
        group, elem = struct.unpack_from("<HH", data, pos)
        vr = data[pos + 4 : pos + 6].decode()
        if vr in ("OB", "OW", "SQ", "UN", "UT", "UC", "UR", "OF", "OD", "OL", "OV", "SV", "UV"):
            length = struct.unpack_from("<L", data, pos + 8)[0] + 12
        else:
            length = struct.unpack_from("<H", data, pos + 6)[0] + 8
        elements.append(((group << 16) | elem, data[pos : pos + length]))
        pos += length
    return b"".join(chunk for _, chunk in sorted(elements))


def test_person_names_at_and_multi_values_follow_the_json_model(write_file):
    dataset = _sorted_elements(
        identity()
        + element(0x00080005, "CS", b"ISO_IR 192")
        + element(0x00100010, "PN", "Yamada^Tarou=山田^太郎=やまだ^たろう".encode())
        + element(0x00100020, "LO", b"ID-1")
        + element(0x00200013, "IS", b" 7 ")
        + element(0x00209165, "AT", struct.pack("<HHHH", 0x0020, 0x0032, 0x0018, 0x0050))
        + element(0x00080008, "CS", b"ORIGINAL\\PRIMARY\\\\AXIAL")
    )
    path = write_file(part10(dataset))
    found = model(path.read_bytes())
    assert found["00100010"] == {
        "vr": "PN",
        "Value": [
            {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}
        ],
    }
    assert found["00209165"] == {"vr": "AT", "Value": ["00200032", "00180050"]}
    assert found["00200013"] == {"vr": "IS", "Value": [7]}
    assert found["00080008"] == {"vr": "CS", "Value": ["ORIGINAL", "PRIMARY", None, "AXIAL"]}
    assert shape(found) == pydicom_model(path)


def test_implicit_vr_takes_vrs_from_the_dictionaries_as_pydicom_does(write_file):
    kw = {"implicit": True}
    dataset = (
        text(0x00080008, "CS", "DERIVED\\PRIMARY", **kw)
        + identity(implicit=True)
        + text(0x00190010, "LO", "SIEMENS MR HEADER", **kw)
        + element(0x0019100B, "DS", b"12.5", **kw)  # SIEMENS MR HEADER (0019,xx0B) DS
        + element(0x00191099, "UN", b"\x01\x02", **kw)  # unknown private element: UN
        + us(0x00280010, 64, implicit=True)
        + us(0x00280103, 1, implicit=True)
        + element(0x00280106, "SS", struct.pack("<h", -5), **kw)  # 'US or SS' -> SS
        + element(0x00291000, "UN", b"\x00\x00", **kw)  # private without creator: UN
    )
    path = write_file(part10(dataset, transfer_syntax=IMPLICIT_LE))
    found = model(path.read_bytes())
    assert found["0019100B"] == {"vr": "DS", "Value": [12.5]}
    assert found["00280106"] == {"vr": "SS", "Value": [-5]}
    assert found["00191099"]["vr"] == "UN"
    assert shape(found) == pydicom_model(path)


def test_explicit_big_endian_is_read_and_binary_values_are_swapped(write_file):
    kw = {"little": False}
    dataset = (
        identity(little=False)
        + us(0x00280010, 64, little=False)
        + element(0x00281201, "OW", b"\x12\x34\x56\x78", **kw)
        + element(0x00189087, "FD", struct.pack(">d", 1.25), **kw)
    )
    path = write_file(part10(dataset, transfer_syntax=EXPLICIT_BE))
    found = model(path.read_bytes())
    assert found["00280010"] == {"vr": "US", "Value": [64]}
    assert found["00281201"] == {"vr": "OW", "InlineBinary": "NBJ4Vg=="}  # 0x3412, 0x7856 LE
    assert found["00189087"] == {"vr": "FD", "Value": [1.25]}
    assert parse_header(path.read_bytes()).transfer_syntax_uid == EXPLICIT_BE


def test_deflated_dataset_is_inflated_and_pixels_are_found_inside(write_file):
    dataset = identity() + us(0x00280010, 8) + element(0x7FE00010, "OB", b"\x01" * 64)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflater.compress(dataset) + deflater.flush()
    path = write_file(part10(body, transfer_syntax=DEFLATED))
    header = parse_header(path.read_bytes())
    assert header.transfer_syntax_uid == DEFLATED
    assert header.has_pixels is True
    assert shape(json.loads(header.header_json)) == pydicom_model(path)


def test_a_deflated_file_written_by_pydicom_matches_pydicom(tmp_path):
    dataset = Dataset()
    dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    dataset.SOPInstanceUID = "1.2.826.0.1.3680043.10.1.9"
    dataset.Modality = "OT"
    dataset.PatientName = "Doe^Jane"
    dataset.Rows = 2
    dataset.Columns = 2
    dataset.BitsAllocated = 8
    dataset.PixelData = b"\x00\x01\x02\x03"
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = tmp_path / "deflated.dcm"
    dataset.save_as(path, enforce_file_format=True)
    header = parse_header(path.read_bytes())
    assert header.has_pixels is True
    assert shape(json.loads(header.header_json)) == pydicom_model(path)


def test_big_endian_file_written_by_pydicom_matches_pydicom(tmp_path):
    dataset = Dataset()
    dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    dataset.SOPInstanceUID = "1.2.826.0.1.3680043.10.1.8"
    dataset.Modality = "MR"
    dataset.Rows = 2
    dataset.EchoTime = "2.5"
    dataset.ReferencedImageSequence = [Dataset()]
    dataset.ReferencedImageSequence[0].ReferencedSOPInstanceUID = "1.2.3"
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    path = tmp_path / "big.dcm"
    dataset.save_as(path, enforce_file_format=True)
    assert shape(model(path.read_bytes())) == pydicom_model(path)


def test_sequences_of_every_length_encoding_nest_as_lists_of_objects(write_file):
    code = text(0x00080100, "SH", "T-D0050") + text(0x00080102, "SH", "SRT")
    dataset = _sorted_elements(identity())
    dataset += undefined(0x00082218, "SQ", item(code, defined=False) + item(code))
    dataset += element(0x00082228, "SQ", item(code) + item(b""))
    path = write_file(part10(dataset))
    found = model(path.read_bytes())
    first = {
        "00080100": {"vr": "SH", "Value": ["T-D0050"]},
        "00080102": {"vr": "SH", "Value": ["SRT"]},
    }
    assert found["00082218"] == {"vr": "SQ", "Value": [first, first]}
    assert found["00082228"] == {"vr": "SQ", "Value": [first, {}]}
    assert shape(found) == pydicom_model(path)


def test_implicit_vr_item_inside_explicit_file_is_read_with_a_warning(write_file):
    implicit_code = text(0x00080100, "SH", "X", implicit=True)
    dataset = identity() + element(0x00082218, "SQ", item(implicit_code))
    header = parse_header(part10(dataset))
    assert json.loads(header.header_json)["00082218"]["Value"] == [
        {"00080100": {"vr": "SH", "Value": ["X"]}}
    ]
    assert parse.W_IMPLICIT_ITEM in header.warnings


def test_un_of_undefined_length_is_a_sequence_in_implicit_little_endian(write_file):
    implicit_code = text(0x00080100, "SH", "X", implicit=True)
    dataset = identity() + undefined(0x00082218, "UN", item(implicit_code, defined=False))
    path = write_file(part10(dataset))
    found = model(path.read_bytes())
    assert found["00082218"] == {"vr": "SQ", "Value": [{"00080100": {"vr": "SH", "Value": ["X"]}}]}
    assert shape(found) == pydicom_model(path)


def test_known_attribute_written_as_un_takes_its_dictionary_vr_with_a_warning(write_file):
    dataset = identity() + element(0x00180050, "UN", b"2.5 ")
    path = write_file(part10(dataset))
    header = parse_header(path.read_bytes())
    assert json.loads(header.header_json)["00180050"] == {"vr": "DS", "Value": [2.5]}
    assert parse.W_UN_KNOWN in header.warnings
    assert shape(json.loads(header.header_json)) == pydicom_model(path)


def test_binary_values_over_1_kib_keep_only_their_vr():
    dataset = identity() + element(0x00291010, "OB", b"\x01" * 1024)
    dataset += element(0x00291020, "OB", b"\x01" * 1026)
    found = model(part10(dataset))
    assert base64.b64decode(found["00291010"]["InlineBinary"]) == b"\x01" * 1024
    assert found["00291020"] == {"vr": "OB"}


@pytest.mark.parametrize(
    ("tag", "vr"),
    [(0x7FE00010, "OB"), (0x7FE00008, "OF"), (0x7FE00009, "OD")],
)
def test_each_pixel_data_element_sets_has_pixels_and_is_left_out(tag, vr):
    header = parse_header(part10(identity() + element(tag, vr, b"\x00" * 8)))
    assert header.has_pixels is True
    assert f"{tag:08X}" not in json.loads(header.header_json)


def test_a_file_without_pixel_data_has_no_pixels():
    assert parse_header(part10(identity())).has_pixels is False


def test_encapsulated_pixel_data_is_skipped_fragment_by_fragment():
    fragments = item(b"") + item(b"\xff\xd8" + b"\x00" * 30)
    header = parse_header(part10(identity() + undefined(0x7FE00010, "OB", fragments)))
    assert header.has_pixels is True


def test_pixel_data_cut_short_is_a_truncated_file():
    whole = part10(identity() + element(0x7FE00010, "OB", b"\x00" * 64))
    with pytest.raises(HeaderError) as raised:
        parse_header(whole[:-10])
    assert raised.value.reason == parse.TRUNCATED
    assert raised.value.tag == 0x7FE00010


def test_encapsulated_pixel_data_without_its_delimiter_is_truncated():
    fragments = item(b"") + item(b"\xff\xd8" + b"\x00" * 30)
    whole = part10(identity() + undefined(0x7FE00010, "OB", fragments))
    with pytest.raises(HeaderError, match="truncated"):
        parse_header(whole[:-8])


@pytest.mark.parametrize("cut", [1, 3, 7, 20])
def test_a_header_cut_anywhere_is_truncated(cut):
    whole = part10(identity() + text(0x00081030, "LO", "A study description"))
    with pytest.raises(HeaderError) as raised:
        parse_header(whole[:-cut])
    assert raised.value.reason == parse.TRUNCATED


def test_zero_padding_after_the_last_element_is_tolerated():
    header = parse_header(part10(identity()) + b"\x00\x00\x00\x00")
    assert json.loads(header.header_json)["00080060"] == {"vr": "CS", "Value": ["CT"]}


def test_an_item_longer_than_its_sequence_is_corrupt():
    code = text(0x00080100, "SH", "T-D0050")
    bad_item = struct.pack("<HHL", 0xFFFE, 0xE000, len(code) - 2) + code
    dataset = identity() + element(0x00082218, "SQ", bad_item)
    with pytest.raises(HeaderError) as raised:
        parse_header(part10(dataset))
    assert raised.value.reason == parse.ITEM_OVERRUN


def test_a_sequence_holding_something_else_than_items_is_corrupt():
    dataset = identity() + element(0x00082218, "SQ", text(0x00080100, "SH", "X"))
    with pytest.raises(HeaderError) as raised:
        parse_header(part10(dataset))
    assert raised.value.reason == parse.BAD_ITEM


def test_bare_dataset_without_preamble_or_meta_is_read_and_its_encoding_inferred():
    for data, syntax in [
        (identity(implicit=True), IMPLICIT_LE),
        (identity(), "1.2.840.10008.1.2.1"),
        (identity(little=False), EXPLICIT_BE),
    ]:
        header = parse_header(data)
        assert (header.has_preamble, header.has_file_meta) == (False, False)
        assert header.transfer_syntax_uid == syntax
        assert json.loads(header.header_json)["00080060"] == {"vr": "CS", "Value": ["CT"]}
        assert parse.W_NO_META in header.warnings


def test_file_meta_without_preamble_is_read():
    header = parse_header(part10(identity(), preamble=False))
    assert (header.has_preamble, header.has_file_meta) == (False, True)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", parse.EMPTY),
        (b"Hello, this is a text file that is not DICOM at all.\n", parse.NOT_DICOM),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, parse.NOT_DICOM),
    ],
)
def test_files_that_are_not_dicom_are_refused(data, reason):
    with pytest.raises(HeaderError) as raised:
        parse_header(data)
    assert raised.value.reason == reason


def test_a_deflated_stream_cut_short_is_refused():
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflater.compress(identity() * 20) + deflater.flush()
    with pytest.raises(HeaderError) as raised:
        parse_header(part10(body[: len(body) // 2], transfer_syntax=DEFLATED))
    assert raised.value.reason == parse.BAD_DEFLATE


def test_wanted_tags_are_captured_with_first_items_of_wanted_sequences():
    measures = element(0x00280030, "DS", b"0.5\\0.6")
    shared = element(0x00289110, "SQ", item(measures))
    dataset = identity() + element(0x52009229, "SQ", item(shared) + item(shared))
    header = parse_header(
        part10(dataset), frozenset({0x00080060, 0x52009229, 0x00289110, 0x00280030})
    )
    assert header.values == {
        0x00080060: ["CT"],
        0x52009229: {0x00289110: {0x00280030: [0.5, 0.6]}},
    }


def test_private_elements_are_counted_at_any_depth():
    private = text(0x00090010, "LO", "ACME") + text(0x00091001, "LO", "x")
    dataset = _sorted_elements(identity() + private + element(0x00082218, "SQ", item(private)))
    assert parse_header(part10(dataset)).n_private == 4


def test_the_header_json_is_one_json_object_with_meta_first():
    header = parse_header(part10(identity()))
    keys = list(json.loads(header.header_json))
    assert keys[:4] == ["00020000", "00020001", "00020002", "00020003"]
    assert pydicom.uid.UID(header.transfer_syntax_uid).is_transfer_syntax


def test_reading_the_same_bytes_again_gives_the_same_header_and_warnings():
    measures = element(0x00289110, "SQ", item(element(0x00280030, "DS", b"0.5\\0.6")))
    dataset = _sorted_elements(
        identity()
        + text(0x00081030, "LO", "Head")
        + element(0x00181310, "US", struct.pack("<4H", 0, 256, 256, 0))
        + element(0x00180050, "DS", b"thick")  # not a number: warns every time
        + element(0x52009229, "SQ", item(measures))
    )
    wanted = frozenset({0x00080060, 0x52009229, 0x00289110, 0x00280030})
    first = parse_header(part10(dataset), wanted)
    again = parse_header(part10(dataset), wanted)
    assert again == first
    assert again.warnings == {values.W_NUMBER}
    assert again.values[0x52009229] == {0x00289110: {0x00280030: [0.5, 0.6]}}


def test_a_character_set_change_is_not_served_from_another_set_s_readings():
    name = "Ærøskøbing".encode("latin-1")
    latin = parse_header(part10(identity() + element(0x00081030, "LO", name)))
    utf8 = parse_header(
        part10(
            _sorted_elements(
                identity()
                + element(0x00080005, "CS", b"ISO_IR 192")
                + element(0x00081030, "LO", name)
            )
        )
    )
    assert json.loads(latin.header_json)["00081030"]["Value"] == ["Ærøskøbing"]
    assert json.loads(utf8.header_json)["00081030"]["Value"] == ["\ufffd" + "r\ufffdsk\ufffdbing"]
    assert values.W_UNDECODABLE in utf8.warnings
