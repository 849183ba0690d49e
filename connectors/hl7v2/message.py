"""Delimiters, escape sequences, segments and field access of one HL7 v2 message.

Each message declares its own delimiters in its MSH segment: MSH-1 is the field separator
(the character right after ``MSH``) and MSH-2 the encoding characters, in the order
component, repetition, escape, subcomponent and, from v2.7, truncation. Values are split on
those characters first and escape sequences decoded last, so an escaped delimiter (``\\S\\``
for the component separator, ...) stays inside its value.

Field numbering follows the standard: ``segment.field(n)`` is field n, and for MSH field 1
is the field separator itself and field 2 the encoding characters, so ``MSH-10`` is
``msh.field(10)`` like any other segment's tenth field.

Escape sequences decoded: ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`` (the delimiters), ``\\Xhh...\\``
(bytes in the message's character set), ``\\.br\\`` (a line break); the highlighting
markers ``\\H\\`` and ``\\N\\`` are dropped. Any other sequence (character-set switches,
other formatting commands, site escapes ``\\Z...\\``) is kept as written. The HL7 null
``""`` (two double quotes, "delete this value") reads as an empty value.
"""

import re
from dataclasses import dataclass

from connectors.hl7v2.errors import FieldError

HL7_NULL = '""'
"""A field or component holding exactly two double quotes: an explicit null."""

COMPONENTS = 9
"""``Decoder.components`` returns at least this many values (CWE.9 is the last one read)."""

_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
# Bounds of a decoder's cache of split fields: long fields (free text, encapsulated data)
# rarely repeat, and the cache is dropped whole when full rather than tracking use.
_CACHED_FIELD_LENGTH = 200
_CACHE_ENTRIES = 50_000


@dataclass(frozen=True)
class Delimiters:
    """The delimiters one message declares in MSH-1 and MSH-2.

    Attributes:
        field: MSH-1, the field separator.
        component: the first encoding character.
        repetition: the second encoding character.
        escape: the third encoding character; None when MSH-2 declares none (then no
            escape sequence is decoded).
        subcomponent: the fourth encoding character, None when not declared.
        truncation: the fifth encoding character (HL7 v2.7 and later), None when not
            declared. It is only tolerated: a truncated value is read as it was sent.
    """

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str | None = "\\"
    subcomponent: str | None = "&"
    truncation: str | None = None

    @classmethod
    def from_msh(cls, msh: str) -> "Delimiters":
        """Read the delimiters of the MSH segment ``msh`` (its text, from ``MSH``).

        Args:
            msh: the MSH segment as decoded text.

        Returns:
            The declared delimiters.

        Raises:
            FieldError: MSH-1 is a letter, digit or blank, or MSH-2 does not hold two to
                five distinct punctuation characters that differ from MSH-1.
        """
        if len(msh) < 4 or not msh.startswith("MSH"):
            raise FieldError("MSH segment does not declare its field separator")
        separator = msh[3]
        if separator.isalnum() or separator.isspace():
            raise FieldError("MSH-1 is not a valid field separator")
        characters = msh[4:].split(separator, 1)[0]
        if not 2 <= len(characters) <= 5:
            raise FieldError("MSH-2 does not hold the encoding characters")
        declared = separator + characters
        if len(set(declared)) != len(declared) or any(
            c.isalnum() or c.isspace() for c in characters
        ):
            raise FieldError("MSH-2 encoding characters are not distinct punctuation")
        padded = [*characters, *([None] * (5 - len(characters)))]
        return cls(separator, padded[0], padded[1], padded[2], padded[3], padded[4])


class Decoder:
    """Splits values on one message's delimiters and decodes their escape sequences.

    Every accessor returns None for an empty value, a value of blanks and delimiters only,
    or the HL7 null ``""``. ``component`` strips surrounding blanks (codes, identifiers, times);
    ``text`` and ``repetition_texts`` keep the value as sent.

    Args:
        delimiters: the message's delimiters.
        charset: ``"utf-8"`` or ``"latin-1"``, the message's character set, used to decode
            ``\\Xhh\\`` escapes.
    """

    def __init__(self, delimiters: Delimiters, charset: str = "utf-8") -> None:
        self.delimiters = delimiters
        self.charset = charset
        self._component = delimiters.component
        self._repetition = delimiters.repetition
        self._subcomponent = delimiters.subcomponent
        self._escape = delimiters.escape
        self._cache: dict[str, tuple[str | None, ...]] = {}
        # Characters that carry no content: a field of only these is empty ('^^', '~').
        structural = (delimiters.component, delimiters.repetition, delimiters.subcomponent)
        self._structure = "".join(c for c in structural if c) + " \t"
        self._named = {
            "F": delimiters.field,
            "S": delimiters.component,
            "T": delimiters.subcomponent or "&",
            "R": delimiters.repetition,
            "E": delimiters.escape or "\\",
            "H": "",
            "N": "",
            ".br": "\n",
        }
        if self._escape is None:
            self._pattern = None
        else:
            escape = re.escape(self._escape)
            self._pattern = re.compile(f"{escape}([^{escape}]*){escape}")

    def unescape(self, raw: str) -> str:
        """Decode the escape sequences of a value that is already split to its level.

        Args:
            raw: one field, repetition, component or subcomponent as written.

        Returns:
            The value with known escape sequences decoded and others kept as written.
        """
        if self._pattern is None or self._escape not in raw:
            return raw
        return self._pattern.sub(self._replace, raw)

    def _replace(self, match: re.Match[str]) -> str:
        code = match.group(1)
        named = self._named.get(code)
        if named is not None:
            return named
        if code[:1] == "X" and len(code) > 1 and len(code) % 2 == 1:
            try:
                data = bytes.fromhex(code[1:])
            except ValueError:
                return match.group(0)
            try:
                return data.decode(self.charset)
            except UnicodeDecodeError:
                return data.decode("latin-1")
        return match.group(0)

    def repetitions(self, field: str) -> list[str]:
        """The repetitions of a field, as written (not decoded); none for an empty field."""
        if not field or field == HL7_NULL:
            return []
        if self._repetition not in field:
            return [field]
        return field.split(self._repetition)

    def components(self, field: str) -> tuple[str | None, ...]:
        """Every component of a field's first repetition, decoded and stripped.

        A component with subcomponents gives its first subcomponent (the identifier of an
        HD such as PID-3.4, the code of a CWE inside OBR-15.1, the time of a TS). Results
        are cached per field text: codes, units, ranges and times repeat across a feed.

        Args:
            field: a field (or one repetition of it) as written.

        Returns:
            At least ``COMPONENTS`` values, None where a component is absent, blank or
            ``""``; ``components(field)[n - 1]`` is component n.
        """
        cached = self._cache.get(field)
        if cached is not None:
            return cached
        first = field.split(self._repetition, 1)[0] if self._repetition in field else field
        values = [self._clean(value) for value in first.split(self._component)]
        if len(values) < COMPONENTS:
            values.extend([None] * (COMPONENTS - len(values)))
        result = tuple(values)
        if len(field) <= _CACHED_FIELD_LENGTH:
            if len(self._cache) >= _CACHE_ENTRIES:
                self._cache.clear()
            self._cache[field] = result
        return result

    def _clean(self, value: str) -> str | None:
        subcomponent = self._subcomponent
        if subcomponent is not None and subcomponent in value:
            value = value.split(subcomponent, 1)[0]
        escape = self._escape
        if escape is not None and escape in value:
            value = self.unescape(value)
        value = value.strip()
        if not value or value == HL7_NULL:
            return None
        return value

    def component(self, field: str, n: int = 1) -> str | None:
        """Component ``n`` (1-based) of a field's first repetition, decoded and stripped.

        Args:
            field: the field (or one repetition of it) as written.
            n: the component's 1-based position.

        Returns:
            The decoded value, or None when it is absent, blank or ``""``.
        """
        if not field:
            return None
        values = self.components(field)
        return values[n - 1] if n <= len(values) else None

    part = component
    """Component ``n`` of one repetition (as returned by ``repetitions``)."""

    def is_empty(self, field: str) -> bool:
        """Whether a field holds nothing but blanks and delimiters, or is ``""``."""
        return not field.strip(self._structure) or field.strip() == HL7_NULL

    def repetition_texts(self, field: str) -> list[str]:
        """Every repetition of a field, each decoded as a whole (delimiters inside kept).

        Returns:
            The decoded repetitions; none when the field is empty (``is_empty``).
        """
        if self.is_empty(field):
            return []
        return [self.unescape(repetition) for repetition in field.split(self._repetition)]

    def text(self, field: str) -> str | None:
        """A whole field decoded as sent, repetitions joined by ``~``.

        Args:
            field: the field as written.

        Returns:
            The decoded text, or None when the field is empty (``is_empty``).
        """
        texts = self.repetition_texts(field)
        return "~".join(texts) if texts else None


class Segment:
    """One segment split into fields.

    Attributes:
        id: the segment id (``OBX``), or None when the segment does not start with a
            three-character id (an upper-case letter, then upper-case letters or digits)
            followed by the field separator or the end of the segment.
        fields: the fields as written; ``fields[n]`` is field n (for MSH, ``fields[1]`` is
            the field separator and ``fields[2]`` the encoding characters).
        position: the segment's 1-based position in its message.
    """

    __slots__ = ("fields", "id", "position")

    def __init__(self, text: str, separator: str, position: int) -> None:
        fields = text.split(separator)
        head = fields[0]
        if head == "MSH":
            fields = ["MSH", separator, *fields[1:]]
        self.id = head if len(head) == 3 and _SEGMENT_ID.fullmatch(head) else None
        self.fields = fields
        self.position = position

    def field(self, n: int) -> str:
        """Field ``n`` as written, or ``""`` when the segment is shorter."""
        fields = self.fields
        return fields[n] if n < len(fields) else ""


@dataclass(frozen=True)
class Message:
    """One HL7 v2 message: its segments split on its own delimiters.

    Attributes:
        number: the message's 1-based position in its file.
        encoding: ``"utf-8"`` or ``"latin-1"``, how its bytes were decoded.
        decoder: splits and decodes values with the message's delimiters.
        segments: every non-blank segment, MSH first.
    """

    number: int
    encoding: str
    decoder: Decoder
    segments: list[Segment]

    @classmethod
    def parse(
        cls,
        number: int,
        texts: list[str],
        encoding: str,
        decoders: dict[tuple[Delimiters, str], Decoder] | None = None,
    ) -> "Message":
        """Split decoded segment texts (MSH first) on the delimiters their MSH declares.

        Args:
            number: the message's 1-based position in its file.
            texts: the message's segments as text, MSH first, blank ones left out.
            encoding: how the text was decoded (``"utf-8"`` or ``"latin-1"``).
            decoders: decoders to share between the messages of one read, by delimiters
                and character set (feeds rarely vary them, and each decoder caches the
                components it splits); a new decoder is made when None.

        Returns:
            The message.

        Raises:
            FieldError: the MSH segment does not declare valid delimiters.
        """
        delimiters = Delimiters.from_msh(texts[0])
        separator = delimiters.field
        segments = [Segment(text, separator, i) for i, text in enumerate(texts, 1)]
        if decoders is None:
            decoder = Decoder(delimiters, encoding)
        else:
            decoder = decoders.get((delimiters, encoding))
            if decoder is None:
                decoder = decoders[delimiters, encoding] = Decoder(delimiters, encoding)
        return cls(number, encoding, decoder, segments)

    @property
    def msh(self) -> Segment:
        """The MSH segment."""
        return self.segments[0]

    def first(self, segment_id: str) -> Segment | None:
        """The first segment with this id, or None."""
        for segment in self.segments:
            if segment.id == segment_id:
                return segment
        return None
