"""pydicom's reading of a file in the PS3.18 JSON model, shaped like the connector's.

pydicom is the independent reference: the connector's ``header_json`` must equal this for
every file pydicom reads. The shaping covers only conventions the two may differ on, not
values: an element without a value keeps only its ``vr`` (pydicom writes ``"Value": []``
for an empty sequence and ``""`` for an empty text value), binary values over 1 KiB keep
only their ``vr``, and reading stops before top-level pixel data.
"""

import base64
import warnings
from pathlib import Path
from typing import Any

import pydicom

BULK = 1024
PIXEL_KEYS = {"7FE00010", "7FE00008", "7FE00009"}


def _shape(model: dict[str, Any]) -> dict[str, Any]:
    shaped: dict[str, Any] = {}
    for key, entry in model.items():
        entry = dict(entry)
        entry.pop("BulkDataURI", None)
        if "InlineBinary" in entry and len(base64.b64decode(entry["InlineBinary"])) > BULK:
            del entry["InlineBinary"]
        values = entry.get("Value")
        if values is not None:
            if entry["vr"] == "SQ":
                values = [_shape(item) for item in values]
            else:
                values = [_empty_to_none(x) for x in values]
            if all(x is None for x in values):
                del entry["Value"]
            else:
                entry["Value"] = values
        shaped[key] = entry
    return shaped


def _empty_to_none(value: Any) -> Any:
    if value == "" or value == {}:
        return None
    if isinstance(value, dict):  # PN: empty component groups left out
        return {k: g for k, g in value.items() if g} or None
    return value


def shape(model: dict[str, Any]) -> dict[str, Any]:
    """The connector's JSON model with the same shaping as ``pydicom_model`` (a no-op for a
    correct model, kept so that a comparison fails on values, not conventions)."""
    return _shape(model)


def pydicom_model(path: Path) -> dict[str, Any]:
    """The file's header as pydicom reads it (file meta first), shaped as described above.

    Args:
        path: a DICOM file.

    Returns:
        The JSON model as a dict.
    """
    # pydicom warns about values that break their VR (the invalid UIDs of bad_sequence.dcm,
    # for one); the connector reports those itself, so they are not this reference's concern.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        handler = lambda element: "bulk"  # noqa: E731
        model = dataset.to_json_dict(
            bulk_data_threshold=BULK * 2, bulk_data_element_handler=handler
        )
        meta = (
            dataset.file_meta.to_json_dict(
                bulk_data_threshold=BULK * 2, bulk_data_element_handler=handler
            )
            if dataset.file_meta
            else {}
        )
    for key in PIXEL_KEYS:
        model.pop(key, None)
    return _shape({**meta, **model})


def pydicom_identity(path: Path) -> dict[str, Any]:
    """The attributes the row cross-checks, as pydicom reads them.

    Args:
        path: a DICOM file.

    Returns:
        SOP class and instance, study and series UIDs, modality, rows and columns.
    """
    keywords = (
        "SOPClassUID",
        "SOPInstanceUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "Modality",
        "Rows",
        "Columns",
    )
    # As above: pydicom's own warnings about values that break their VR are not checked here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        return {keyword: dataset.get(keyword) for keyword in keywords}
