"""Schemas of the SDTM reader's metadata tables, and the provenance of domain rows.

Domain tables have the columns of their files (``String`` for Char, ``Float64`` for Num),
so their schema comes from the data; these are the fixed ones, each column with the one
line that describes it.
"""

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class Column:
    """One typed column: its name, polars dtype and a one-line description."""

    name: str
    dtype: pl.DataType
    description: str


RULES = (
    "required_variable_missing",
    "required_value_missing",
    "usubjid_not_unique_in_dm",
    "seq_not_unique",
    "invalid_iso8601",
    "domain_mismatch",
    "subject_not_in_dm",
    "variable_type_mismatch",
)
"""Conformance rule ids, in the order findings are listed within a file."""

RULE = pl.Enum(RULES)
SEVERITY = pl.Enum(["error", "warning"])
FORMAT = pl.Enum(["xport5", "xport8", "csv"])
VARIABLE_TYPE = pl.Enum(["Char", "Num"])

PROVENANCE_COLUMNS: list[Column] = [
    Column("source_file", pl.String(), "The file the row came from, relative to the folder "
           "read (its name when a single file was read)."),
    Column("source_locator", pl.String(), "The row's position in its file: 'row:N', 1-based "
           "over the data rows (the CSV header is not counted)."),
    Column("dataset", pl.String(), "The dataset name: the XPORT member name (LBUR for a "
           "split LB dataset), or the CSV file name without suffix, upper case."),
]
PROVENANCE = [column.name for column in PROVENANCE_COLUMNS]

DATASET_COLUMNS: list[Column] = [
    Column("source_file", pl.String(), "The file, as in the domain tables."),
    Column("dataset", pl.String(), "The dataset name, as in the domain tables."),
    Column("domain", pl.String(), "The domain code the rows were filed under, upper case "
           "(the table key is its lower case)."),
    Column("label", pl.String(), "The dataset label from the XPORT member header; for a CSV "
           "the IG's domain label when the domain is a standard one, else null."),
    Column("records", pl.Int64(), "Rows loaded into the domain table (rejected rows of a "
           "CSV are not counted)."),
    Column("format", FORMAT, "'xport5' or 'xport8' (SAS transport version), or 'csv'."),
]

VARIABLE_COLUMNS: list[Column] = [
    Column("source_file", pl.String(), "The file, as in the domain tables."),
    Column("dataset", pl.String(), "The dataset name."),
    Column("domain", pl.String(), "The domain code, upper case."),
    Column("variable", pl.String(), "The variable name, upper case."),
    Column("label", pl.String(), "The variable label from the file; for a CSV the IG's label "
           "when the variable is a standard one, else null."),
    Column("type", VARIABLE_TYPE, "'Char' (String column) or 'Num' (Float64 column)."),
    Column("length", pl.Int64(), "Storage length in bytes from the XPORT header; null for "
           "CSV."),
    Column("position", pl.Int64(), "1-based position of the variable in the file."),
]

FINDING_COLUMNS: list[Column] = [
    Column("source_file", pl.String(), "The file the finding is about."),
    Column("dataset", pl.String(), "The dataset name."),
    Column("domain", pl.String(), "The domain code, upper case."),
    Column("rule", RULE, "The conformance rule that is not met (see RULES)."),
    Column("severity", SEVERITY, "'error' (the data breaks a rule the IG states as "
           "required) or 'warning'."),
    Column("variable", pl.String(), "The variable concerned, upper case."),
    Column("rows", pl.Int64(), "How many rows of the file break the rule (all rows of "
           "the file for a missing variable or a dataset-level mismatch)."),
    Column("first_locator", pl.String(), "The first such row ('row:N'), or 'file' when "
           "the finding is about the dataset as a whole."),
    Column("message", pl.String(), "A fixed sentence about the rule; never a value."),
]


def _schema(columns: list[Column]) -> dict[str, pl.DataType]:
    return {column.name: column.dtype for column in columns}


def dataset_schema() -> dict[str, pl.DataType]:
    """Column name -> dtype of the ``datasets`` table."""
    return _schema(DATASET_COLUMNS)


def variable_schema() -> dict[str, pl.DataType]:
    """Column name -> dtype of the ``variables`` table."""
    return _schema(VARIABLE_COLUMNS)


def finding_schema() -> dict[str, pl.DataType]:
    """Column name -> dtype of the ``findings`` table."""
    return _schema(FINDING_COLUMNS)
