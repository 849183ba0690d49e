"""One exception hierarchy for every connector.

Messages say what went wrong and how to get unstuck, name the file and the locator (line,
entry, message id), and never carry a patient value.
"""


class ConnectorError(Exception):
    """Base class of every error a connector raises."""


class SourceNotFoundError(ConnectorError):
    """The path given to a reader does not exist or holds no readable file."""


class UnsupportedFormatError(ConnectorError):
    """The file is not in a format this reader understands."""


class MalformedRecordError(ConnectorError):
    """A record could not be parsed or does not meet the format's rules.

    Attributes:
        source: the file the record came from.
        locator: where in the file (``line:12``, ``entry:3``, an MSH-10 id, ...).
        reason: a fixed sentence without patient values.
    """

    def __init__(self, source: str, locator: str, reason: str) -> None:
        self.source = source
        self.locator = locator
        self.reason = reason
        super().__init__(
            f"{source} at {locator}: {reason}. Fix the record at the source, or read with "
            "on_error='quarantine' to set it aside with this reason."
        )


class DicomFileError(MalformedRecordError):
    """A file of a DICOM source is not a readable instance.

    Raised in ``on_error="raise"`` mode for files that are not DICOM, empty, truncated,
    corrupt, a DICOMDIR index, or without a SOP Instance UID; ``locator`` is ``file`` or
    ``element:(gggg,eeee)`` and ``reason`` a fixed sentence without values.
    """
