"""Errors of the terminology package, all under ``connectors.errors.ConnectorError``.

Messages name the unit string, the code or the file that is wrong and say how to fix it;
they never carry a result value or a patient identifier.
"""

from connectors.errors import ConnectorError


class TerminologyError(ConnectorError):
    """Base class of every error the terminology package raises."""


class UnitError(TerminologyError):
    """A unit expression cannot be used."""


class UnitParseError(UnitError):
    """A string is not a UCUM expression this engine understands."""


class UnitConversionError(UnitError):
    """Two units are not commensurable, or the conversion needs a molar mass or a valence
    that was not given."""


class AnalyteTableError(TerminologyError):
    """``analytes.csv`` breaks one of its rules (bad LOINC, inconsistent canonical code)."""


class SiteMapError(TerminologyError):
    """A site map file is malformed (missing key, bad version, invalid LOINC)."""
