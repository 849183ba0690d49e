"""From the bytes of an HL7 v2 file to the segments of each message.

A file may hold one message or a feed of many, framed with MLLP (``0x0B`` before a message,
``0x1C 0x0D`` after it) or not, with CR, LF or CRLF between segments and a UTF-8 byte order
mark at its start (or at the start of any message, as concatenated exports have). Framing
bytes are dropped, blank segments skipped, and a new message starts at each MSH segment.

Batch envelope segments (FHS, BHS, BTS, FTS) hold no results and belong to no message:
they are left out of the messages and counted in ``FileSegments.envelope``.

Each message is decoded on its own: as Latin-1 when its MSH-18 (character set) says
``8859/1``, else as UTF-8, falling back to Latin-1 when the bytes are not valid UTF-8.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass

MLLP_START = b"\x0b"
MLLP_END = b"\x1c"
BOM = b"\xef\xbb\xbf"
UTF8 = "utf-8"
LATIN1 = "latin-1"

_SEGMENT = re.compile(rb"[^\r\n]+")
_ENVELOPE = frozenset({b"FHS", b"BHS", b"BTS", b"FTS"})
_LATIN1_CHARSETS = frozenset({b"8859/1"})


@dataclass(frozen=True)
class FileSegments:
    """The segments of one file, grouped into messages.

    Attributes:
        messages: each message's segments as bytes, MSH first, blank ones left out.
        leading: how many segments came before the first MSH (batch envelope not
            counted); they belong to no message.
        envelope: how many batch envelope segments (FHS, BHS, BTS, FTS) the file holds.
    """

    messages: list[list[bytes]]
    leading: int
    envelope: int


class MessageSplitter:
    """Iterates over a file's messages one at a time, so a feed is never held as segments.

    ``leading`` is final once the first message has been yielded (or the iteration has
    ended); ``envelope`` once the iteration has ended.

    Args:
        data: the whole file.
    """

    def __init__(self, data: bytes) -> None:
        if MLLP_START in data or MLLP_END in data:
            data = data.translate(None, MLLP_START + MLLP_END)
        self._data = data
        self.leading = 0
        self.envelope = 0

    def __iter__(self) -> Iterator[list[bytes]]:
        current: list[bytes] | None = None
        for match in _SEGMENT.finditer(self._data):
            segment = match.group()
            if segment.startswith(BOM):
                segment = segment[3:]
            if not segment or segment.isspace():
                continue
            head = segment[:3]
            if head == b"MSH" and len(segment) > 3 and not segment[3:4].isalnum():
                if current is not None:
                    yield current
                current = [segment]
            elif head in _ENVELOPE and not segment[3:4].isalnum():
                # FHS and BHS declare their own separator like MSH; BTS and FTS use the file's.
                self.envelope += 1
            elif current is None:
                self.leading += 1
            else:
                current.append(segment)
        if current is not None:
            yield current


def split_messages(data: bytes) -> FileSegments:
    """Split a file's bytes into messages of segments, all at once.

    Args:
        data: the whole file.

    Returns:
        The messages in file order, and counts of what belongs to no message.
    """
    splitter = MessageSplitter(data)
    messages = list(splitter)
    return FileSegments(messages, splitter.leading, splitter.envelope)


def message_charset(msh: bytes) -> str:
    """The character set a message's MSH-18 asks for: ``"latin-1"`` for ``8859/1``.

    Args:
        msh: the message's MSH segment as bytes.

    Returns:
        ``"latin-1"`` when the first repetition of MSH-18 is ``8859/1``, else ``"utf-8"``.
    """
    separator = msh[3:4]
    fields = msh.split(separator, 18)
    if len(fields) < 18:
        return UTF8
    repetition = fields[1][1:2] or b"~"
    charset = fields[17].split(repetition, 1)[0].strip().upper()
    return LATIN1 if charset in _LATIN1_CHARSETS else UTF8


def decode_segments(segments: list[bytes]) -> tuple[list[str], str]:
    """Decode one message's segments as its MSH-18 says, or UTF-8 falling back to Latin-1.

    Args:
        segments: the message's segments as bytes, MSH first.

    Returns:
        The segments as text, and ``"utf-8"`` or ``"latin-1"``: how they were decoded.
    """
    data = b"\r".join(segments)
    charset = message_charset(segments[0])
    if charset == UTF8:
        try:
            return data.decode(UTF8).split("\r"), UTF8
        except UnicodeDecodeError:
            charset = LATIN1
    return data.decode(LATIN1).split("\r"), LATIN1
