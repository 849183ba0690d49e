"""Conformance findings over the datasets of one ``read_sdtm`` call.

A finding names a rule, a file and a variable, and counts the rows that break the rule with
the first of them as a locator; it never carries a value. Rules (ids as in
``connectors.sdtm.schema.RULES``):

- ``required_variable_missing`` (error; warning for DM's ACTARMCD/ACTARM): a Req variable
  of ``connectors.sdtm.standard.required_variables`` is not in the file. When DOMAIN is the
  missing one, the rows were filed under the dataset name's first two letters.
- ``required_value_missing`` (as above): a Req variable is null on a row (DM arm variables
  not when ARMNRS gives the reason).
- ``usubjid_not_unique_in_dm`` (error): a DM row repeats an earlier DM row's USUBJID, in
  the same or an earlier DM file.
- ``seq_not_unique`` (error): a row repeats an earlier (USUBJID, --SEQ) of its domain, over
  all files of the domain (a split dataset and its siblings count as one domain).
- ``invalid_iso8601`` (warning): a value of a ``*DTC`` variable is not SDTM ISO 8601 (see
  ``connectors.sdtm.iso8601``).
- ``domain_mismatch`` (error): DOMAIN differs between rows of a file, or the file's domain
  differs from the first two letters of its dataset name (not for relationship datasets).
- ``subject_not_in_dm`` (warning): the USUBJID of a non-DM row is absent from every DM
  dataset of the call; only checked when the call read a DM dataset.
- ``variable_type_mismatch`` (warning): a variable of a standard domain is Char where the
  IG says Num or the other way round; ``rows`` counts the rows holding a value, which
  ``conform_domain`` casts (a Char value that is not a number becomes null).

Rows and ``first_locator`` count the rows of the file named; ``first_locator`` is
``file`` for a finding about the dataset as a whole.
"""

from dataclasses import dataclass

import polars as pl

from connectors.sdtm.files import LoadedDataset
from connectors.sdtm.iso8601 import is_sdtm_datetime
from connectors.sdtm.schema import RULES, finding_schema
from connectors.sdtm.standard import (
    STANDARD_VARIABLES,
    arm_variables,
    is_relationship_dataset,
    required_variables,
    standard_type,
)

WHOLE_FILE = "file"

MESSAGES = {
    "required_variable_missing": "A variable the SDTMIG marks Required is not in the dataset.",
    "domain_variable_missing": (
        "The DOMAIN variable is missing or null on every row; the rows were filed under the "
        "domain named by the first two letters of the dataset name."
    ),
    "required_value_missing": "A variable the SDTMIG marks Required is null on these rows.",
    "usubjid_not_unique_in_dm": (
        "USUBJID repeats a subject already in DM; DM must hold one record per subject."
    ),
    "seq_not_unique": (
        "The sequence number repeats an earlier record of the same subject in this domain; "
        "--SEQ must be unique per USUBJID within a domain."
    ),
    "invalid_iso8601": (
        "The value is not an ISO 8601 date/time as SDTM allows it (YYYY-MM-DDThh:mm:ss, "
        "shortened from the right, '-' for an unknown component)."
    ),
    "domain_values_differ": "DOMAIN holds another domain's code on these rows.",
    "domain_name_differs": (
        "The dataset's domain differs from the first two letters of the dataset name."
    ),
    "subject_not_in_dm": "The subject (USUBJID) has no record in the DM data read with it.",
    "variable_type_mismatch": (
        "The variable's type differs from the SDTMIG type; conform_domain casts it, and a "
        "value that is not a number becomes null in a Num variable."
    ),
}


@dataclass(frozen=True)
class _Finding:
    file_index: int
    source_file: str
    dataset: str
    domain: str
    rule: str
    severity: str
    variable: str | None
    rows: int
    first_locator: str
    message: str


def conformance_findings(datasets: list[LoadedDataset]) -> pl.DataFrame:
    """All findings over the datasets read in one call.

    Args:
        datasets: the loaded datasets, in reading order.

    Returns:
        The ``findings`` table (``finding_schema()``), ordered by file (reading order), then
        rule (``RULES`` order); a rule's findings in one file follow the order of the
        variables checked (identifiers first for the Req rules, file order otherwise).
    """
    findings: list[_Finding] = []
    for index, loaded in enumerate(datasets):
        findings.extend(_file_findings(index, loaded))
    findings.extend(_dm_duplicates(datasets))
    findings.extend(_seq_duplicates(datasets))
    findings.extend(_subjects_not_in_dm(datasets))
    findings.sort(key=lambda finding: (finding.file_index, RULES.index(finding.rule)))
    return pl.DataFrame(
        [
            (
                f.source_file, f.dataset, f.domain, f.rule, f.severity, f.variable, f.rows,
                f.first_locator, f.message,
            )
            for f in findings
        ],
        schema=finding_schema(),
        orient="row",
    )


def _located(loaded: LoadedDataset, mask: pl.Expr) -> pl.Series:
    return loaded.frame.select(pl.col("source_locator").filter(mask)).to_series()


def _finding(
    index: int,
    loaded: LoadedDataset,
    rule: str,
    severity: str,
    variable: str | None,
    located: pl.Series | None,
    message_key: str | None = None,
) -> list[_Finding]:
    """One finding about ``located`` rows (none when empty), or the whole file when None."""
    if located is None:
        rows, first = loaded.frame.height, WHOLE_FILE
    elif located.len() == 0:
        return []
    else:
        rows, first = located.len(), located[0]
    return [
        _Finding(
            index, loaded.source_file, loaded.dataset, loaded.domain, rule, severity, variable,
            rows, first, MESSAGES[message_key or rule],
        )
    ]


def _file_findings(index: int, loaded: LoadedDataset) -> list[_Finding]:
    columns = set(loaded.frame.columns)
    out: list[_Finding] = []
    required = required_variables(loaded.domain, loaded.dataset)
    for variable, severity in required.items():
        if variable not in columns:
            key = "domain_variable_missing" if variable == "DOMAIN" else None
            out += _finding(
                index, loaded, "required_variable_missing", severity, variable, None, key
            )
            continue
        missing = pl.col(variable).is_null()
        if variable in arm_variables() and "ARMNRS" in columns:
            missing = missing & pl.col("ARMNRS").is_null()
        out += _finding(
            index, loaded, "required_value_missing", severity, variable,
            _located(loaded, missing),
        )
    for variable in loaded.variables:
        if variable.name.endswith("DTC"):
            dates = loaded.frame.get_column(variable.name)
            out += _finding(
                index, loaded, "invalid_iso8601", "warning", variable.name,
                _located(loaded, _invalid_dtc(dates)),
            )
    out += _domain_mismatches(index, loaded)
    if loaded.domain in STANDARD_VARIABLES:
        for variable in loaded.variables:
            expected = standard_type(loaded.domain, variable.name)
            if expected is not None and expected != variable.type:
                held = _located(loaded, pl.col(variable.name).is_not_null())
                out += [
                    _Finding(
                        index, loaded.source_file, loaded.dataset, loaded.domain,
                        "variable_type_mismatch", "warning", variable.name, held.len(),
                        held[0] if held.len() else WHOLE_FILE,
                        MESSAGES["variable_type_mismatch"],
                    )
                ]
    return out


def _invalid_dtc(values: pl.Series) -> pl.Expr:
    text = values if values.dtype == pl.String else values.cast(pl.String)
    invalid = [value for value in text.drop_nulls().unique() if not is_sdtm_datetime(value)]
    return pl.col(values.name).cast(pl.String).is_in(pl.Series(invalid, dtype=pl.String).implode())


def _domain_mismatches(index: int, loaded: LoadedDataset) -> list[_Finding]:
    out: list[_Finding] = []
    if "DOMAIN" in loaded.frame.columns and not loaded.domain_from_name:
        other = pl.col("DOMAIN").is_not_null() & (
            pl.col("DOMAIN").str.to_uppercase() != loaded.domain
        )
        out += _finding(
            index, loaded, "domain_mismatch", "error", "DOMAIN", _located(loaded, other),
            "domain_values_differ",
        )
    if not is_relationship_dataset(loaded.dataset) and loaded.domain != loaded.dataset[:2]:
        out += _finding(
            index, loaded, "domain_mismatch", "error", "DOMAIN", None, "domain_name_differs"
        )
    return out


def _repeats(
    members: list[tuple[int, LoadedDataset]], keys: list[str]
) -> list[tuple[int, LoadedDataset, pl.Series]]:
    """Per file, the rows repeating an earlier row's ``keys`` (all non-null), over files."""
    usable = [
        (index, loaded)
        for index, loaded in members
        if all(key in loaded.frame.columns for key in keys)
    ]
    if not usable:
        return []
    stacked = pl.concat(
        [
            loaded.frame.select(
                *(pl.col(key).cast(pl.String) for key in keys),
                pl.lit(index, pl.Int64()).alias("__file"),
                "source_locator",
            )
            for index, loaded in usable
        ]
    )
    complete = stacked.filter(pl.all_horizontal(pl.col(key).is_not_null() for key in keys))
    repeated = complete.filter(~pl.struct(keys).is_first_distinct())
    return [
        (index, loaded, repeated.filter(pl.col("__file") == index).get_column("source_locator"))
        for index, loaded in usable
    ]


def _dm_duplicates(datasets: list[LoadedDataset]) -> list[_Finding]:
    dm = [(index, loaded) for index, loaded in enumerate(datasets) if loaded.domain == "DM"]
    out: list[_Finding] = []
    for index, loaded, located in _repeats(dm, ["USUBJID"]):
        out += _finding(index, loaded, "usubjid_not_unique_in_dm", "error", "USUBJID", located)
    return out


def _seq_duplicates(datasets: list[LoadedDataset]) -> list[_Finding]:
    out: list[_Finding] = []
    domains = dict.fromkeys(loaded.domain for loaded in datasets if len(loaded.domain) == 2)
    for domain in domains:
        members = [(i, loaded) for i, loaded in enumerate(datasets) if loaded.domain == domain]
        seq = f"{domain}SEQ"
        for index, loaded, located in _repeats(members, ["USUBJID", seq]):
            out += _finding(index, loaded, "seq_not_unique", "error", seq, located)
    return out


def _subjects_not_in_dm(datasets: list[LoadedDataset]) -> list[_Finding]:
    dm = [
        loaded
        for loaded in datasets
        if loaded.domain == "DM" and "USUBJID" in loaded.frame.columns
    ]
    if not dm:
        return []
    subjects = pl.concat([loaded.frame.get_column("USUBJID").drop_nulls() for loaded in dm])
    out: list[_Finding] = []
    for index, loaded in enumerate(datasets):
        if loaded.domain == "DM" or "USUBJID" not in loaded.frame.columns:
            continue
        absent = pl.col("USUBJID").is_not_null() & ~pl.col("USUBJID").is_in(subjects.implode())
        out += _finding(
            index, loaded, "subject_not_in_dm", "warning", "USUBJID", _located(loaded, absent)
        )
    return out
