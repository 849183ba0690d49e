"""HL7 v2 connector: ORU^R01 lab result messages into the shared ``lab_results`` table.

``read_hl7v2`` reads a file or a folder of HL7 v2 files (MLLP-framed or not, CR, LF or CRLF
between segments) into ``lab_results`` (``connectors.lab_schema``) and ``messages``
(``connectors.hl7v2.schema``); see ``connectors.hl7v2.reader`` for what is rejected and why.
"""

from connectors.hl7v2.errors import Hl7MessageError
from connectors.hl7v2.reader import SOURCE_KIND, read_hl7v2
from connectors.hl7v2.schema import (
    LAB_RESULTS,
    MESSAGE_COLUMNS,
    MESSAGE_SCHEMA,
    MESSAGES,
    empty_messages,
    table_schema,
)
from connectors.hl7v2.timestamps import parse_timestamp

__all__ = [
    "LAB_RESULTS",
    "MESSAGES",
    "MESSAGE_COLUMNS",
    "MESSAGE_SCHEMA",
    "SOURCE_KIND",
    "Hl7MessageError",
    "empty_messages",
    "parse_timestamp",
    "read_hl7v2",
    "table_schema",
]
