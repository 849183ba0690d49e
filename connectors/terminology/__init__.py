"""Terminology and unit normalisation for lab results.

- ``ucum``: a small UCUM engine (``parse``, ``convert``, ``normalise_spelling``).
- ``loinc``: LOINC format and Mod 10 check digit.
- ``analytes.csv`` (``load_analytes``): the LOINC codes biofed conforms, grouped by
  analyte, with canonical code, canonical unit and molar mass.
- ``maps/<SITE>.yaml`` (``load_site_map``): each lab's local codes -> LOINC, versioned.
- ``conform_lab_results`` / ``mapping_report``: the silver lab conformance step and its
  report of unmapped codes, invalid LOINC codes and unusable units.
"""

from connectors.terminology import ucum
from connectors.terminology.analytes import (
    ANALYTE_SCHEMA,
    ANALYTES_CSV,
    AnalyteCode,
    analytes_frame,
    load_analytes,
    read_analytes,
)
from connectors.terminology.conform import (
    CONFORMED_COLUMNS,
    LOINC_SYSTEMS,
    MAPPING_REPORT_COLUMNS,
    MAPPING_REPORT_SCHEMA,
    MAPPING_STATUSES,
    UNIT_STATUSES,
    conform_lab_results,
    mapping_report,
)
from connectors.terminology.errors import (
    AnalyteTableError,
    SiteMapError,
    TerminologyError,
    UnitConversionError,
    UnitError,
    UnitParseError,
)
from connectors.terminology.loinc import is_valid_loinc, loinc_check_digit
from connectors.terminology.maps import (
    MAPS_DIR,
    MappedCode,
    SiteMap,
    available_site_maps,
    load_site_map,
    read_site_map,
)
from connectors.terminology.ucum import (
    Dimension,
    Unit,
    conversion_coefficients,
    convert,
    normalise_spelling,
    parse,
)

__all__ = [
    "ANALYTES_CSV",
    "ANALYTE_SCHEMA",
    "CONFORMED_COLUMNS",
    "LOINC_SYSTEMS",
    "MAPPING_REPORT_COLUMNS",
    "MAPPING_REPORT_SCHEMA",
    "MAPPING_STATUSES",
    "MAPS_DIR",
    "UNIT_STATUSES",
    "AnalyteCode",
    "AnalyteTableError",
    "Dimension",
    "MappedCode",
    "SiteMap",
    "SiteMapError",
    "TerminologyError",
    "Unit",
    "UnitConversionError",
    "UnitError",
    "UnitParseError",
    "analytes_frame",
    "available_site_maps",
    "conform_lab_results",
    "conversion_coefficients",
    "convert",
    "is_valid_loinc",
    "load_analytes",
    "load_site_map",
    "loinc_check_digit",
    "mapping_report",
    "normalise_spelling",
    "parse",
    "read_analytes",
    "read_site_map",
    "ucum",
]
