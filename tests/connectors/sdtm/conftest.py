"""Builders of small SDTM transport files, written with pyreadstat (as SAS would lay them out).

``write_xpt`` takes columns as plain lists: a list of ``str``/``None`` is a Char variable
(None written as blanks), a list of numbers/``None`` a Num variable (None is SAS missing);
``char`` names the Char variables of a dataset without rows.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat


def write_xpt(
    path: Path,
    columns: dict[str, list],
    *,
    name: str | None = None,
    labels: dict[str, str] | None = None,
    label: str = "",
    version: int = 5,
    char: frozenset[str] = frozenset(),
) -> Path:
    """Write one dataset as a SAS XPORT file and return its path."""
    data = {}
    for column, values in columns.items():
        if column in char or any(isinstance(value, str) for value in values):
            data[column] = pd.Series(["" if v is None else v for v in values], dtype=object)
        else:
            data[column] = pd.Series(
                [np.nan if v is None else float(v) for v in values], dtype="float64"
            )
    frame = pd.DataFrame(data)
    pyreadstat.write_xport(
        frame,
        str(path),
        table_name=name or path.stem.upper(),
        file_label=label,
        column_labels=labels,
        file_format_version=version,
    )
    return path


def dm_columns(subjects: list[str], **extra: list) -> dict[str, list]:
    """DM columns with every Req variable populated, one row per subject id given."""
    n = len(subjects)
    columns = {
        "STUDYID": ["STUDY1"] * n,
        "DOMAIN": ["DM"] * n,
        "USUBJID": subjects,
        "SUBJID": [s[-3:] for s in subjects],
        "RFSTDTC": ["2020-01-02"] * n,
        "SITEID": ["001"] * n,
        "AGE": [50.0] * n,
        "SEX": ["F"] * n,
        "ARMCD": ["A"] * n,
        "ARM": ["Arm A"] * n,
        "ACTARMCD": ["A"] * n,
        "ACTARM": ["Arm A"] * n,
        "COUNTRY": ["USA"] * n,
    }
    columns.update(extra)
    return columns


def ae_columns(subjects: list[str], seqs: list[float], **extra: list) -> dict[str, list]:
    """AE columns with every Req variable populated."""
    n = len(subjects)
    columns = {
        "STUDYID": ["STUDY1"] * n,
        "DOMAIN": ["AE"] * n,
        "USUBJID": subjects,
        "AESEQ": seqs,
        "AETERM": ["HEADACHE"] * n,
        "AEDECOD": ["Headache"] * n,
        "AESTDTC": ["2020-01-05"] * n,
    }
    columns.update(extra)
    return columns


def lb_columns(subjects: list[str], seqs: list[float], **extra: list) -> dict[str, list]:
    """LB columns with every Req variable populated."""
    n = len(subjects)
    columns = {
        "STUDYID": ["STUDY1"] * n,
        "DOMAIN": ["LB"] * n,
        "USUBJID": subjects,
        "LBSEQ": seqs,
        "LBTESTCD": ["GLUC"] * n,
        "LBTEST": ["Glucose"] * n,
        "LBSTRESN": [5.5] * n,
        "LBDTC": ["2020-01-03T08:30"] * n,
    }
    columns.update(extra)
    return columns
