"""LIS CSV export connector: a lab's CSV export, read with its site profile, into lab rows."""

from connectors.lab_csv.profile import (
    ColumnMap,
    InvalidSiteProfileError,
    SiteProfile,
    UnknownSiteProfileError,
    builtin_profiles,
    load_profile,
)
from connectors.lab_csv.reader import read_lab_csv
from connectors.lab_csv.schema import FILE_COLUMNS, FILE_SCHEMA

__all__ = [
    "FILE_COLUMNS",
    "FILE_SCHEMA",
    "ColumnMap",
    "InvalidSiteProfileError",
    "SiteProfile",
    "UnknownSiteProfileError",
    "builtin_profiles",
    "load_profile",
    "read_lab_csv",
]
