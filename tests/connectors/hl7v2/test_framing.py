import pytest

from connectors.hl7v2.framing import decode_segments, message_charset, split_messages

FIRST = [b"MSH|^~\\&|A|F1|||20240101||ORU^R01|1|P|2.5.1", b"PID|1||X^^^L^MR", b"OBX|1|NM"]
SECOND = [b"MSH|^~\\&|A|F1|||20240101||ORU^R01|2|P|2.5.1", b"PID|1||Y^^^L^MR"]


@pytest.mark.parametrize("separator", [b"\r", b"\n", b"\r\n"])
def test_cr_lf_and_crlf_separate_segments(separator):
    data = separator.join(FIRST + SECOND) + separator
    assert split_messages(data).messages == [FIRST, SECOND]


def test_mixed_separators_and_blank_lines_are_tolerated():
    data = FIRST[0] + b"\r\n\r\n" + FIRST[1] + b"\n  \n" + FIRST[2] + b"\r\r" + SECOND[0]
    assert split_messages(data).messages == [FIRST, SECOND[:1]]


def test_mllp_framing_bytes_are_dropped():
    framed = b"".join(b"\x0b" + b"\r".join(m) + b"\r\x1c\r" for m in (FIRST, SECOND))
    split = split_messages(framed)
    assert split.messages == [FIRST, SECOND]
    assert (split.leading, split.envelope) == (0, 0)


def test_a_byte_order_mark_is_dropped_at_the_start_and_before_any_message():
    data = b"\xef\xbb\xbf" + b"\n".join(FIRST) + b"\n\xef\xbb\xbf" + b"\n".join(SECOND)
    assert split_messages(data).messages == [FIRST, SECOND]


def test_mllp_framing_around_a_byte_order_mark_is_dropped():
    data = b"\x0b\xef\xbb\xbf" + b"\r".join(FIRST) + b"\x1c\r"
    assert split_messages(data).messages == [FIRST]


def test_segments_before_the_first_msh_are_counted_not_kept():
    split = split_messages(b"junk line\rPID|1\r" + b"\r".join(FIRST))
    assert split.messages == [FIRST]
    assert split.leading == 2


def test_batch_envelope_segments_belong_to_no_message():
    data = b"\r".join([b"FHS|^~\\&|A", b"BHS|^~\\&|A", *FIRST, *SECOND, b"BTS|2", b"FTS|1"])
    split = split_messages(data)
    assert split.messages == [FIRST, SECOND]
    assert (split.leading, split.envelope) == (0, 4)


def test_a_file_without_msh_has_no_message():
    split = split_messages(b"PID|1||X\rOBX|1|NM||5")
    assert split.messages == []
    assert split.leading == 2


def test_mshx_does_not_start_a_message():
    assert split_messages(b"MSHX|1").messages == []


@pytest.mark.parametrize(
    ("msh", "charset"),
    [
        (b"MSH|^~\\&|A|F|||20240101||ORU^R01|1|P|2.5.1||||||8859/1", "latin-1"),
        (b"MSH|^~\\&|A|F|||20240101||ORU^R01|1|P|2.5.1|||||| 8859/1 ~UNICODE UTF-8", "latin-1"),
        (b"MSH|^~\\&|A|F|||20240101||ORU^R01|1|P|2.5.1||||||UNICODE UTF-8", "utf-8"),
        (b"MSH|^~\\&|A|F|||20240101||ORU^R01|1|P|2.5.1||||||ASCII|EN", "utf-8"),
        (b"MSH|^~\\&|A|F|||20240101||ORU^R01|1|P|2.5.1", "utf-8"),
        (b"MSH#^*\\&#A#F###20240101##ORU^R01#1#P#2.5.1######8859/1*ASCII", "latin-1"),
    ],
)
def test_msh_18_names_the_character_set(msh, charset):
    assert message_charset(msh) == charset


def test_utf8_is_decoded_as_utf8():
    segments = [FIRST[0], "OBX|1|ST|X^Y^L||Müller µmol".encode()]
    texts, encoding = decode_segments(segments)
    assert encoding == "utf-8"
    assert texts[1] == "OBX|1|ST|X^Y^L||Müller µmol"


def test_bytes_that_are_not_utf8_fall_back_to_latin1():
    segments = [FIRST[0], "OBX|1|ST|X^Y^L||Müller µmol".encode("latin-1")]
    texts, encoding = decode_segments(segments)
    assert encoding == "latin-1"
    assert texts[1] == "OBX|1|ST|X^Y^L||Müller µmol"


def test_msh_18_8859_1_decodes_latin1_even_when_the_bytes_are_valid_utf8():
    msh = b"MSH|^~\\&|A|F|||20240101||ORU^R01|1|P|2.5.1||||||8859/1"
    texts, encoding = decode_segments([msh, "OBX|1|ST|X||é".encode()])
    assert encoding == "latin-1"
    assert texts[1] == "OBX|1|ST|X||Ã©"
