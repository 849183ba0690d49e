"""The MCP catalog server: built from the lake's generated manifest, governed, audited.

Knows nothing of Dagster or of source formats.
"""
