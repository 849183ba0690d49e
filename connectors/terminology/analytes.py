"""The analytes biofed conforms: ``analytes.csv``, one row per LOINC code.

Columns: ``loinc, display, analyte, canonical_loinc, canonical_unit,
molar_mass_g_per_mol, notes``. The codes of one analyte (glucose by mass 2345-7 and by
substance 14749-6, say) share ``analyte``, ``canonical_loinc`` and ``canonical_unit``;
the canonical code is itself a row of its analyte and its property fixes the unit. A row's
molar mass is that of the substance its code measures (urea 60.056 for 3091-6, urea
nitrogen 28.014 for 3094-0), so values convert through moles from one code to the
canonical one. An empty ``canonical_unit`` means the analyte has no unit to conform to.
Displays are LOINC long common names.

The loader checks every rule above and every check digit, so a bad edit fails loudly.
"""

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import polars as pl

from connectors.terminology.errors import AnalyteTableError, UnitParseError
from connectors.terminology.loinc import is_valid_loinc
from connectors.terminology.ucum import parse

ANALYTES_CSV = Path(__file__).with_name("analytes.csv")
"""The analyte table shipped with the package."""

ANALYTE_COLUMNS = (
    "loinc",
    "display",
    "analyte",
    "canonical_loinc",
    "canonical_unit",
    "molar_mass_g_per_mol",
    "notes",
)

ANALYTE_SCHEMA: dict[str, pl.DataType] = {
    "loinc": pl.String(),
    "display": pl.String(),
    "analyte": pl.String(),
    "canonical_loinc": pl.String(),
    "canonical_unit": pl.String(),
    "molar_mass_g_per_mol": pl.Float64(),
    "notes": pl.String(),
}


@dataclass(frozen=True)
class AnalyteCode:
    """One LOINC code of ``analytes.csv``.

    Attributes:
        loinc: the code, e.g. ``"14749-6"``.
        display: its LOINC long common name.
        analyte: the analyte name shared by all its codes, e.g. ``"glucose"``.
        canonical_loinc: the code results of this analyte are conformed to.
        canonical_unit: the UCUM unit values are converted to; None when there is none.
        molar_mass: g/mol of the substance the code measures, when conversions need it.
        notes: why the row is as it is (method merged, valence, ...).
    """

    loinc: str
    display: str
    analyte: str
    canonical_loinc: str
    canonical_unit: str | None
    molar_mass: float | None
    notes: str


def _fail(path: Path, line: int, why: str) -> AnalyteTableError:
    return AnalyteTableError(f"{path.name} line {line}: {why}. Fix the row and reload.")


def _read_rows(path: Path) -> list[AnalyteCode]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(header) != ANALYTE_COLUMNS:
            raise _fail(path, 1, f"the header must be {','.join(ANALYTE_COLUMNS)}")
        rows: list[AnalyteCode] = []
        for line, fields in enumerate(reader, start=2):
            if len(fields) != len(ANALYTE_COLUMNS):
                raise _fail(path, line, f"expected {len(ANALYTE_COLUMNS)} fields")
            record = dict(zip(ANALYTE_COLUMNS, (f.strip() for f in fields), strict=True))
            for key in ("loinc", "display", "analyte", "canonical_loinc"):
                if not record[key]:
                    raise _fail(path, line, f"{key} is empty")
            for key in ("loinc", "canonical_loinc"):
                if not is_valid_loinc(record[key]):
                    raise _fail(path, line, f"{key} is not a valid LOINC code (check digit)")
            unit = record["canonical_unit"] or None
            if unit is not None:
                try:
                    if parse(unit).code != unit:
                        raise _fail(path, line, "canonical_unit is not in preferred spelling")
                except UnitParseError as exc:
                    raise _fail(path, line, "canonical_unit is not UCUM") from exc
            molar_mass = None
            if record["molar_mass_g_per_mol"]:
                try:
                    molar_mass = float(record["molar_mass_g_per_mol"])
                except ValueError as exc:
                    raise _fail(path, line, "molar_mass_g_per_mol is not a number") from exc
                if not molar_mass > 0:
                    raise _fail(path, line, "molar_mass_g_per_mol must be positive")
            rows.append(
                AnalyteCode(
                    loinc=record["loinc"],
                    display=record["display"],
                    analyte=record["analyte"],
                    canonical_loinc=record["canonical_loinc"],
                    canonical_unit=unit,
                    molar_mass=molar_mass,
                    notes=record["notes"],
                )
            )
    return rows


def _check_consistency(path: Path, rows: list[AnalyteCode]) -> dict[str, AnalyteCode]:
    by_code: dict[str, AnalyteCode] = {}
    for row in rows:
        if row.loinc in by_code:
            raise AnalyteTableError(f"{path.name}: LOINC {row.loinc} is listed twice")
        by_code[row.loinc] = row
    canonical_of: dict[str, tuple[str, str | None]] = {}
    for row in rows:
        seen = canonical_of.setdefault(row.analyte, (row.canonical_loinc, row.canonical_unit))
        if seen != (row.canonical_loinc, row.canonical_unit):
            raise AnalyteTableError(
                f"{path.name}: the codes of analyte {row.analyte!r} disagree on "
                "canonical_loinc or canonical_unit; give them all the same"
            )
        canonical = by_code.get(row.canonical_loinc)
        if canonical is None or canonical.analyte != row.analyte:
            raise AnalyteTableError(
                f"{path.name}: canonical_loinc {row.canonical_loinc} of {row.loinc} must be "
                f"a row of analyte {row.analyte!r}"
            )
    return by_code


def read_analytes(path: Path = ANALYTES_CSV) -> dict[str, AnalyteCode]:
    """Read and check an analyte table.

    Args:
        path: the CSV file; the packaged ``analytes.csv`` by default.

    Returns:
        The rows keyed by LOINC code, in file order.

    Raises:
        AnalyteTableError: for a wrong header, an invalid LOINC, a duplicate code, a
            canonical code that is not a row of its analyte, codes of one analyte with
            different canonical code or unit, a unit that is not UCUM in preferred spelling,
            or a molar mass that is not a positive number.
    """
    return _check_consistency(path, _read_rows(path))


@lru_cache(maxsize=1)
def load_analytes() -> dict[str, AnalyteCode]:
    """The packaged analyte table, read and checked once.

    Returns:
        ``AnalyteCode`` rows keyed by LOINC code.

    Raises:
        AnalyteTableError: when the packaged table breaks a rule (see ``read_analytes``).
    """
    return read_analytes(ANALYTES_CSV)


def analytes_frame(analytes: dict[str, AnalyteCode] | None = None) -> pl.DataFrame:
    """The analyte table as a frame with ``ANALYTE_SCHEMA`` (the packaged one by default)."""
    rows = (analytes if analytes is not None else load_analytes()).values()
    return pl.DataFrame(
        {
            "loinc": [r.loinc for r in rows],
            "display": [r.display for r in rows],
            "analyte": [r.analyte for r in rows],
            "canonical_loinc": [r.canonical_loinc for r in rows],
            "canonical_unit": [r.canonical_unit for r in rows],
            "molar_mass_g_per_mol": [r.molar_mass for r in rows],
            "notes": [r.notes or None for r in rows],
        },
        schema=ANALYTE_SCHEMA,
    )
