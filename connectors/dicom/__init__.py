"""DICOM connector: folders, zip archives and files of DICOM objects into an instances table.

Headers are read up to the pixel data (never decoded) into typed columns and the whole
header as PS3.18 DICOM JSON; see ``connectors.dicom.reader``.

The names below load on first use: pool workers import ``connectors.dicom.pool`` and
must not pay for the reader's polars and pyarrow frames on every fork server start.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.dicom.reader import DicomBatch, iter_dicom_batches, read_dicom
    from connectors.dicom.schema import INSTANCE_COLUMNS, Column, instance_schema

__all__ = [
    "INSTANCE_COLUMNS",
    "Column",
    "DicomBatch",
    "instance_schema",
    "iter_dicom_batches",
    "read_dicom",
]

_HOMES = {
    "DicomBatch": "connectors.dicom.reader",
    "iter_dicom_batches": "connectors.dicom.reader",
    "read_dicom": "connectors.dicom.reader",
    "INSTANCE_COLUMNS": "connectors.dicom.schema",
    "Column": "connectors.dicom.schema",
    "instance_schema": "connectors.dicom.schema",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'connectors.dicom' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(home), name)
