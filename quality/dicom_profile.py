"""The DICOM Basic Application Level Confidentiality Profile, as data.

``dicom_basic_profile.csv`` beside this module is the Basic Profile column of DICOM PS3.15
Table E.1-1 (Application Level Confidentiality Profile Attributes), edition 2026c: one row
per attribute with its tag, pydicom keyword, the table's name and the action code. It was
converted once, by a script parsing the lists of KitwareMedical dicom-anonymizer 2.1.0
(BSD-3-Clause, Copyright 2020 Kitware Europe), ``dicom_anonymization_databases/
dicomfields_2026c.py``, a transcription of that edition's table; keywords come from
pydicom 3.0.2's data dictionary. The CSV's header comment says the same.

Action codes, as the standard defines them (PS3.15 E.1.1):

* ``X``: remove the attribute.
* ``Z``: replace with a zero-length value (or a non-zero dummy consistent with the VR).
* ``D``: replace with a non-zero-length dummy value consistent with the VR.
* ``U``: replace with a non-zero-length UID, internally consistent within a set of instances.
* ``Z/D``, ``X/Z``, ``X/D``, ``X/Z/D``: the weakest of the listed actions that keeps the
  instance conformant to its IOD.
* ``X/Z/U*``: X unless Z is needed for IOD conformance, or U for the UIDs of a sequence.

Three rows are repeating groups (PS3.5 7.6), written as in the standard with a lower-case
``x`` for a wildcard digit: Curve Data ``(50xx,xxxx)`` and Overlay Data / Overlay Comments
``(60xx,3000)`` / ``(60xx,4000)``. They match the even groups 5000-501E and 6000-601E only
(an odd group is private, never a repeating group). Private attributes (odd groups) are not
rows of the table file; whoever applies the profile removes them by rule.
"""

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Literal, cast, get_args

ProfileAction = Literal["X", "Z", "D", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"]
"""An action code of the Basic Profile column of PS3.15 Table E.1-1."""

PROFILE_PATH = Path(__file__).with_name("dicom_basic_profile.csv")
PROFILE_EDITION = "2026c"
"""The DICOM edition the table file transcribes."""

_ACTIONS = frozenset(get_args(ProfileAction))
_HEADER = ["tag", "keyword", "name", "action"]
_EXACT = re.compile(r"[0-9A-F]{8}")
_REPEATING = {
    # pattern: (first group, last group) of the repeating group, even groups only
    "50xxxxxx": (0x5000, 0x501E),
    "60xx3000": (0x6000, 0x601E),
    "60xx4000": (0x6000, 0x601E),
}


@dataclass(frozen=True)
class ProfileRow:
    """One attribute of the Basic Profile."""

    tag: str
    """Eight upper-case hex digits, or a repeating-group pattern such as ``60xx3000``."""
    keyword: str
    """pydicom's keyword; empty where its dictionary has none."""
    name: str
    """The attribute name as the table gives it."""
    action: ProfileAction


@cache
def profile_rows(path: Path = PROFILE_PATH) -> tuple[ProfileRow, ...]:
    """Every row of the Basic Profile table file, in file order.

    Args:
        path: the table file; the shipped ``dicom_basic_profile.csv`` by default.

    Returns:
        The rows.

    Raises:
        ValueError: when the file's header, a tag or an action code is not as described in
            the module docstring, or a tag appears twice.
    """
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(line for line in handle if not line.startswith("#"))
        header = next(reader, None)
        if header != _HEADER:
            raise ValueError(f"{path.name}: the header row must be {','.join(_HEADER)}")
        rows: list[ProfileRow] = []
        seen: set[str] = set()
        for number, record in enumerate(reader, start=2):
            if len(record) != len(_HEADER):
                raise ValueError(f"{path.name}: data row {number} does not have four fields")
            tag, keyword, name, action = record
            if not (_EXACT.fullmatch(tag) or tag in _REPEATING):
                raise ValueError(f"{path.name}: data row {number} has a malformed tag")
            if action not in _ACTIONS:
                raise ValueError(f"{path.name}: data row {number} has an unknown action code")
            if tag in seen:
                raise ValueError(f"{path.name}: data row {number} repeats a tag")
            seen.add(tag)
            rows.append(ProfileRow(tag, keyword, name, cast(ProfileAction, action)))
    return tuple(rows)


@cache
def basic_profile() -> Mapping[str, ProfileAction]:
    """The Basic Profile: tag -> action code, read once from the shipped table file.

    Keys are eight upper-case hex digits, plus the three repeating-group patterns
    (``50xxxxxx``, ``60xx3000``, ``60xx4000``); :func:`profile_action` resolves a concrete
    tag against both.

    Returns:
        A read-only mapping.

    Raises:
        ValueError: when the table file is malformed (see :func:`profile_rows`).
    """
    return MappingProxyType({row.tag: row.action for row in profile_rows()})


def profile_action(tag: str) -> ProfileAction | None:
    """The Basic Profile action for one concrete tag.

    Args:
        tag: eight hex digits (either case), as the keys of the DICOM JSON model.

    Returns:
        The action code, or None when the table does not list the attribute (it is kept).
        Private tags (odd groups) return None too: they are not rows of the table.

    Raises:
        ValueError: when ``tag`` is not eight hex digits.
    """
    upper = tag.upper()
    if not _EXACT.fullmatch(upper):
        raise ValueError("a tag must be eight hex digits")
    profile = basic_profile()
    action = profile.get(upper)
    if action is not None:
        return action
    group = int(upper[:4], 16)
    for pattern, (first, last) in _REPEATING.items():
        if first <= group <= last and group % 2 == 0 and _element_matches(pattern, upper):
            return profile.get(pattern)
    return None


def _element_matches(pattern: str, tag: str) -> bool:
    return all(p == "x" or p == t for p, t in zip(pattern[4:], tag[4:], strict=True))
