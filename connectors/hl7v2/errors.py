"""Errors of the HL7 v2 connector.

``Hl7MessageError`` is what ``read_hl7v2(..., on_error="raise")`` raises; ``FieldError`` is
raised inside the connector by the parsing helpers and becomes a reject reason (it never
leaves ``read_hl7v2``). Both carry fixed sentences that name a field, never its value.
"""

from connectors.errors import MalformedRecordError


class Hl7MessageError(MalformedRecordError):
    """A message, segment or OBX of an HL7 v2 file could not be read as a lab result.

    Raised in ``on_error="raise"`` mode at the first problem. ``locator`` is ``file``,
    ``MSH-10:<id>`` (or ``message:<n>`` when MSH-10 is empty), ``<message>/OBX:<n>`` or
    ``<message>/segment:<n>``; ``reason`` is a fixed sentence without patient values.
    """


class FieldError(ValueError):
    """A field does not follow HL7 v2 syntax or the rules of an ORU^R01 result.

    ``str(error)`` is a fixed sentence naming the field (``"OBR-7 is not an HL7
    timestamp"``), never its value, so it can serve as a reject reason as it is.
    """
