"""FHIR R4 connector: bulk-export NDJSON and Bundle JSON into typed polars tables."""

from connectors.fhir.reader import REJECTS, FhirBatch, iter_fhir_batches, read_fhir

__all__ = ["REJECTS", "FhirBatch", "iter_fhir_batches", "read_fhir"]
