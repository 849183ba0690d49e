import pytest

from connectors.hl7v2.errors import FieldError
from connectors.hl7v2.message import Decoder, Delimiters, Message, Segment

STANDARD = Delimiters()


def test_the_standard_delimiters_are_read_from_msh_1_and_msh_2():
    assert Delimiters.from_msh("MSH|^~\\&|APP") == STANDARD


def test_alternate_delimiters_are_read_from_the_message_itself():
    assert Delimiters.from_msh("MSH#$*!%#APP") == Delimiters("#", "$", "*", "!", "%", None)


def test_the_v27_truncation_character_is_tolerated():
    assert Delimiters.from_msh("MSH|^~\\&#|APP").truncation == "#"


def test_msh_2_without_escape_or_subcomponent_characters_is_accepted():
    assert Delimiters.from_msh("MSH|^~|APP") == Delimiters("|", "^", "~", None, None, None)


@pytest.mark.parametrize(
    ("msh", "reason"),
    [
        ("MSH", "MSH segment does not declare its field separator"),
        ("MSHA^~\\&A", "MSH-1 is not a valid field separator"),
        ("MSH ^~\\& ", "MSH-1 is not a valid field separator"),
        ("MSH|^|APP", "MSH-2 does not hold the encoding characters"),
        ("MSH||APP", "MSH-2 does not hold the encoding characters"),
        ("MSH|^~\\&#@|APP", "MSH-2 does not hold the encoding characters"),
        ("MSH|^^\\&|APP", "MSH-2 encoding characters are not distinct punctuation"),
        ("MSH|^~a&|APP", "MSH-2 encoding characters are not distinct punctuation"),
    ],
)
def test_invalid_delimiter_declarations_are_field_errors(msh, reason):
    with pytest.raises(FieldError) as caught:
        Delimiters.from_msh(msh)
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("a\\F\\b", "a|b"),
        ("a\\S\\b", "a^b"),
        ("E.coli O157:H7 \\T\\ other STECs", "E.coli O157:H7 & other STECs"),
        ("a\\R\\b", "a~b"),
        ("C:\\E\\temp", "C:\\temp"),
        ("line one\\.br\\line two", "line one\nline two"),
        ("\\H\\important\\N\\ note", "important note"),
        ("caf\\XC3A9\\", "café"),
        ("\\X41424344\\", "ABCD"),
        # Not UTF-8: the bytes read as Latin-1.
        ("\\XE9\\", "é"),
        # Unknown, odd-length and non-hex sequences stay as written.
        ("\\Zlocal\\", "\\Zlocal\\"),
        ("\\XABC\\", "\\XABC\\"),
        ("\\XGG\\", "\\XGG\\"),
        ("a lone \\ backslash", "a lone \\ backslash"),
        ("no escapes", "no escapes"),
    ],
)
def test_every_escape_sequence_is_decoded(raw, decoded):
    assert Decoder(STANDARD).unescape(raw) == decoded


def test_hex_escapes_follow_the_message_character_set():
    assert Decoder(STANDARD, "latin-1").unescape("\\XC3A9\\") == "Ã©"


def test_escapes_use_the_escape_character_the_message_declares():
    decoder = Decoder(Delimiters("#", "$", "*", "!", "%"))
    assert decoder.unescape("a!T!b!S!c!F!d!.br!e") == "a%b$c#d\ne"
    assert decoder.unescape("a\\T\\b") == "a\\T\\b"


def test_without_an_escape_character_nothing_is_decoded():
    assert Decoder(Delimiters("|", "^", "~", None, None)).unescape("a\\T\\b") == "a\\T\\b"


def test_an_escaped_delimiter_stays_inside_its_component():
    decoder = Decoder(STANDARD)
    assert decoder.component("A\\S\\B^second", 1) == "A^B"
    assert decoder.component("A\\S\\B^second", 2) == "second"


def test_component_access_takes_the_first_repetition_and_first_subcomponent():
    decoder = Decoder(STANDARD)
    field = "14^^^IA PHIMS&2.16.840&ISO^PI~99^^^OTHER^MR"
    assert decoder.component(field, 1) == "14"
    assert decoder.component(field, 4) == "IA PHIMS"
    assert decoder.component(field, 5) == "PI"
    assert decoder.component(field, 9) is None
    assert [decoder.part(r, 1) for r in decoder.repetitions(field)] == ["14", "99"]


@pytest.mark.parametrize("field", ["", "   ", '""', "^^", "~"])
def test_empty_blank_and_hl7_null_values_read_as_none(field):
    decoder = Decoder(STANDARD)
    assert decoder.component(field, 1) is None
    assert decoder.text(field) is None


def test_text_keeps_the_value_as_sent_and_joins_repetitions_with_a_tilde():
    decoder = Decoder(Delimiters("|", "^", "*", "\\", "&"))
    assert decoder.text(" 27*25 ") == " 27~25 "
    assert decoder.text("https://x^^image^PICT") == "https://x^^image^PICT"


def test_msh_fields_are_numbered_from_the_field_separator():
    msh = Segment("MSH|^~\\&|APP|FAC|||20240101||ORU^R01|ID7|P|2.5", "|", 1)
    assert msh.id == "MSH"
    assert msh.field(1) == "|"
    assert msh.field(2) == "^~\\&"
    assert msh.field(3) == "APP"
    assert msh.field(9) == "ORU^R01"
    assert msh.field(10) == "ID7"
    assert msh.field(12) == "2.5"
    assert msh.field(40) == ""


def test_other_segments_number_fields_after_their_id():
    obx = Segment("OBX|1|NM|2345-7^Glucose^LN||98", "|", 4)
    assert (obx.id, obx.field(1), obx.field(5), obx.position) == ("OBX", "1", "98", 4)


@pytest.mark.parametrize("text", ["OB|1", "OBXX|1", "obx|1", "1BX|1", " continued text", "ÄBC|1"])
def test_a_segment_without_a_three_character_id_has_no_id(text):
    assert Segment(text, "|", 2).id is None


def test_z_segments_and_bare_ids_are_segments():
    assert Segment("ZP1|x", "|", 2).id == "ZP1"
    assert Segment("NTE", "|", 2).id == "NTE"


def test_a_message_splits_every_segment_on_its_own_delimiters():
    parsed = Message.parse(3, ["MSH#$*!%#APP#FAC", "PID###ID1$$$AUTH$MR"], "utf-8")
    assert parsed.number == 3
    assert parsed.decoder.delimiters.field == "#"
    pid = parsed.first("PID")
    assert pid is not None
    assert parsed.decoder.component(pid.field(3), 4) == "AUTH"
    assert parsed.first("OBR") is None


def test_messages_of_one_read_share_a_decoder_per_delimiters_and_charset():
    decoders: dict = {}
    first = Message.parse(1, ["MSH|^~\\&|A"], "utf-8", decoders)
    second = Message.parse(2, ["MSH|^~\\&|B"], "utf-8", decoders)
    latin = Message.parse(3, ["MSH|^~\\&|C"], "latin-1", decoders)
    assert first.decoder is second.decoder
    assert latin.decoder is not first.decoder
    assert len(decoders) == 2
