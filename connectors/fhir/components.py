"""Observation components as observations of their own.

FHIR carries the values of a panel such as blood pressure (LOINC 85354-9) in
``Observation.component`` (systolic 8480-6, diastolic 8462-4), not in ``value[x]``. Analyses
want one row per measured value, so each component becomes a row of the observations table.
"""

from typing import Literal

import orjson
import polars as pl

from connectors.fhir.extract import EXTRACTORS
from connectors.fhir.fields import InvalidFieldError
from connectors.fhir.reader import _frame
from connectors.fhir.schema import table_schema
from connectors.result import ReadResult, RejectCollector

_VALUE_KEYS = (
    "valueQuantity",
    "valueCodeableConcept",
    "valueString",
    "valueBoolean",
    "valueInteger",
    "valueRange",
    "valueRatio",
    "valueSampledData",
    "valueTime",
    "valueDateTime",
    "valuePeriod",
)
_extract = EXTRACTORS["Observation"]


def observation_components(
    observations: pl.DataFrame, *, on_error: Literal["raise", "quarantine"] = "raise"
) -> ReadResult:
    """One observations-table row per component of the panels in ``observations``.

    A component row has id ``<panel id>.<n>`` (n counts from 1, a valid FHIR id for ids up to
    62 characters), the panel's subject, encounter, status, category and effective time, and
    the component's code, value and interpretation. ``source_locator`` gains
    ``/component:<n>``; ``resource_json`` stays the panel's.

    Args:
        observations: rows of the connector's observations table (with ``resource_json``).
        on_error: raise on a malformed component, or quarantine it with its locator.

    Returns:
        ``tables["observations"]`` with the component rows (possibly none) and the rejects.

    Raises:
        MalformedRecordError: for a malformed component when ``on_error="raise"``.
    """
    rejects = RejectCollector(on_error)
    rows: list[tuple] = []
    panels = observations.filter(pl.col("resource_json").str.contains('"component"', literal=True))
    for source, locator, text in panels.select(
        "source_file", "source_locator", "resource_json"
    ).iter_rows():
        panel = orjson.loads(text)
        components = panel.get("component")
        if not isinstance(components, list):
            continue
        base = {k: v for k, v in panel.items() if k not in ("component", *_VALUE_KEYS)}
        for n, component in enumerate(components, start=1):
            where = f"{locator}/component:{n}"
            if not isinstance(component, dict):
                rejects.reject(source, where, "Observation.component is not an object")
                continue
            derived = {
                **base,
                "id": f"{panel['id']}.{n}",
                "code": component.get("code"),
                "interpretation": component.get("interpretation"),
            }
            derived.update({k: component[k] for k in _VALUE_KEYS if k in component})
            try:
                values = _extract(derived)
            except InvalidFieldError as exc:
                rejects.reject(source, where, f"Observation.component.{exc.path} {exc.problem}")
                continue
            rows.append((*values, source, where, text.encode()))
    frame = (
        _frame("observations", rows) if rows else pl.DataFrame(schema=table_schema("observations"))
    )
    return ReadResult(tables={"observations": frame}, rejects=rejects.frame())
