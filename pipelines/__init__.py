"""Dagster definitions, the lake resource and the ``biofed`` command line: the composition root."""
