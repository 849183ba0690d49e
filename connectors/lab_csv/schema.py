"""Typed columns of the ``files`` table ``read_lab_csv`` returns beside ``lab_results``.

``lab_results`` has the shared lab row shape, ``connectors.lab_schema.LAB_RESULT_COLUMNS``.
"""

import polars as pl

from connectors.lab_schema import Column

FILE_COLUMNS: list[Column] = [
    Column("source_file", pl.String(), "The CSV file read, as given to the reader."),
    Column("site", pl.String(), "Site code of the profile the file was read with."),
    Column("encoding", pl.String(), "Codec the file was decoded with (declared by the profile "
           "or detected: utf-8, utf-8-sig, utf-16, cp1252); null when it decoded with none."),
    Column("delimiter", pl.String(), "Field delimiter (declared or sniffed); null when the "
           "file could not be decoded."),
    Column("rows", pl.Int64(), "Records read into lab_results."),
    Column("rejected", pl.Int64(), "Records (or the whole file) quarantined."),
    Column("absent_columns", pl.String(), "Headers the profile maps to optional fields that "
           "the file lacks, comma-separated (those fields are null); null when none."),
]
"""Columns of ``files``: one row per file read."""

FILE_SCHEMA: dict[str, pl.DataType] = {c.name: c.dtype for c in FILE_COLUMNS}
