"""Governance transforms: pure polars functions that minimise and de-identify.

The pipeline materialises gold views with them; the server enforces at query time what
cannot be precomputed. Nothing here reads or writes the lake.
"""
