"""Pure readers: source files in, Arrow/polars tables and quarantined rejects out.

No Dagster, no MCP: every reader is usable from a notebook or a test.
"""

from connectors.errors import (
    ConnectorError,
    MalformedRecordError,
    SourceNotFoundError,
    UnsupportedFormatError,
)
from connectors.result import REJECT_SCHEMA, ReadResult

__all__ = [
    "REJECT_SCHEMA",
    "ConnectorError",
    "MalformedRecordError",
    "ReadResult",
    "SourceNotFoundError",
    "UnsupportedFormatError",
]
