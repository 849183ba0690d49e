"""CDISC SDTM datasets (SAS XPORT, CSV): one table per domain, metadata and conformance."""

from connectors.sdtm.conform import conform_domain, conformed_schema
from connectors.sdtm.reader import METADATA_TABLES, SdtmFileError, read_sdtm
from connectors.sdtm.schema import RULES, dataset_schema, finding_schema, variable_schema
from connectors.sdtm.standard import STANDARD_VARIABLES, StandardVariable

__all__ = [
    "METADATA_TABLES",
    "RULES",
    "STANDARD_VARIABLES",
    "SdtmFileError",
    "StandardVariable",
    "conform_domain",
    "conformed_schema",
    "dataset_schema",
    "finding_schema",
    "read_sdtm",
    "variable_schema",
]
