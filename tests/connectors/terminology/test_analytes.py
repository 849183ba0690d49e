"""analytes.csv: coverage of the contract and the real files, and the loader's rules."""

import csv
from pathlib import Path

import polars as pl
import pytest

from connectors.terminology.analytes import (
    ANALYTE_COLUMNS,
    ANALYTE_SCHEMA,
    ANALYTES_CSV,
    analytes_frame,
    load_analytes,
    read_analytes,
)
from connectors.terminology.errors import AnalyteTableError
from connectors.terminology.loinc import is_valid_loinc
from connectors.terminology.ucum import ANALYTE_VALENCE, HBA1C_ANALYTES, convert
from quality.codes import loinc_check_digit_ok

# The contract's synthetic analytes: canonical LOINC, canonical unit, every code sent.
SYNTHETIC = {
    "2345-7": ("mg/dL", {"2345-7", "14749-6"}),
    "2160-0": ("mg/dL", {"2160-0", "14682-9"}),
    "2093-3": ("mg/dL", {"2093-3", "14647-2"}),
    "2085-9": ("mg/dL", {"2085-9", "14646-4"}),
    "2571-8": ("mg/dL", {"2571-8", "14927-8"}),
    "718-7": ("g/dL", {"718-7"}),
    "4548-4": ("%", {"4548-4", "59261-8"}),
    "2951-2": ("mmol/L", {"2951-2"}),
    "2823-3": ("mmol/L", {"2823-3"}),
    "6690-2": ("10*3/uL", {"6690-2"}),
    "777-3": ("10*3/uL", {"777-3"}),
    "1742-6": ("U/L", {"1742-6"}),
}

# Numeric lab codes of the real files that are deliberately not listed.
NOT_LISTED = {
    "11273-0": "sent as ERYTHROCYTES by LAB-ORU-1/2; its LOINC meaning could not be confirmed",
    "8867-4": "heart rate: a vital sign, not a lab analyte",
}


def test_the_packaged_table_loads_with_every_code_valid():
    analytes = load_analytes()
    assert len(analytes) >= 60
    for code, row in analytes.items():
        assert code == row.loinc
        assert is_valid_loinc(code) and loinc_check_digit_ok(code), code
        assert is_valid_loinc(row.canonical_loinc), code


def test_the_synthetic_analytes_share_their_canonical_code_and_unit():
    analytes = load_analytes()
    for canonical, (unit, codes) in SYNTHETIC.items():
        for code in codes:
            row = analytes[code]
            assert (row.canonical_loinc, row.canonical_unit) == (canonical, unit), code
            assert row.analyte == analytes[canonical].analyte


def test_the_contract_analytes_are_covered():
    analytes = {row.analyte for row in load_analytes().values()}
    required = {
        "glucose", "creatinine", "cholesterol", "hdl_cholesterol", "ldl_cholesterol",
        "triglycerides", "haemoglobin", "hba1c", "sodium", "potassium", "chloride",
        "urea_nitrogen", "calcium", "albumin", "alt", "ast", "wbc", "platelets", "rbc",
        "haematocrit",
    }
    assert required <= analytes


def test_valence_and_hba1c_names_are_analytes_of_the_table():
    analytes = {row.analyte for row in load_analytes().values()}
    assert set(ANALYTE_VALENCE) <= analytes
    assert analytes >= HBA1C_ANALYTES


def test_every_code_converts_from_its_own_property_to_the_canonical_unit():
    # A Moles/volume code sends mmol/L; a Mass/volume code of a molar analyte mg/dL.
    for row in load_analytes().values():
        canonical = load_analytes()[row.canonical_loinc]
        if row.canonical_unit is None or row.analyte == "hba1c":
            continue
        if "[Moles/volume]" in row.display:
            value = convert(
                1.0, "mmol/L", row.canonical_unit,
                molar_mass=row.molar_mass, to_molar_mass=canonical.molar_mass,
            )
            assert value > 0, row.loinc
        if row.molar_mass is not None:
            assert canonical.molar_mass is not None, row.loinc


def test_urea_codes_conform_to_urea_nitrogen():
    analytes = load_analytes()
    urea = analytes["3091-6"]
    bun = analytes[urea.canonical_loinc]
    assert bun.loinc == "3094-0"
    value = convert(
        60.056, "mg/dL", bun.canonical_unit,
        molar_mass=urea.molar_mass, to_molar_mass=bun.molar_mass,
    )
    assert value == pytest.approx(28.014, rel=1e-12)


def test_the_frame_has_the_declared_schema():
    frame = analytes_frame()
    assert frame.schema == pl.Schema(ANALYTE_SCHEMA)
    assert frame.height == len(load_analytes())
    assert frame.filter(pl.col("loinc") == "14749-6").row(0, named=True) == {
        "loinc": "14749-6",
        "display": "Glucose [Moles/volume] in Serum or Plasma",
        "analyte": "glucose",
        "canonical_loinc": "2345-7",
        "canonical_unit": "mg/dL",
        "molar_mass_g_per_mol": 180.156,
        "notes": "substance concentration of the canonical code's analyte",
    }


def _numeric_lab_loincs(lab: Path) -> set[str]:
    codes = set()
    for path in (lab / "hl7v2").glob("*.hl7"):
        text = path.read_bytes().decode("utf-8", "replace").replace("\r", "\n")
        for line in text.split("\n"):
            fields = line.lstrip("\x0b\ufeff").split("|")
            if fields[0] == "OBX" and len(fields) > 3 and fields[2] in ("NM", "SN"):
                identifier = fields[3].split("^")
                if len(identifier) > 2 and identifier[2] == "LN":
                    codes.add(identifier[0])
    with (lab / "csv" / "synthea_observations.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["CATEGORY"] == "laboratory" and row["TYPE"] == "numeric":
                codes.add(row["CODE"])
    return codes


def test_every_numeric_lab_loinc_of_the_real_files_is_listed(shared_data):
    codes = _numeric_lab_loincs(shared_data / "lab")
    missing = sorted(codes - set(load_analytes()) - set(NOT_LISTED))
    assert missing == []
    assert set(NOT_LISTED) <= codes


# --- the loader's rules -------------------------------------------------------------------

GOOD = [
    ["2345-7", "Glucose [Mass/volume] in Serum or Plasma", "glucose", "2345-7", "mg/dL",
     "180.156", ""],
    ["14749-6", "Glucose [Moles/volume] in Serum or Plasma", "glucose", "2345-7", "mg/dL",
     "180.156", ""],
]


def _write(tmp_path: Path, rows, header=ANALYTE_COLUMNS) -> Path:
    path = tmp_path / "analytes.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_a_good_table_reads(tmp_path):
    table = read_analytes(_write(tmp_path, GOOD))
    assert list(table) == ["2345-7", "14749-6"]
    assert table["14749-6"].molar_mass == 180.156


def _with(index: int, column: int, value: str) -> list[list[str]]:
    rows = [list(r) for r in GOOD]
    rows[index][column] = value
    return rows


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (_with(1, 0, "14749-7"), "not a valid LOINC code"),
        (_with(1, 3, "2345-8"), "not a valid LOINC code"),
        (_with(1, 0, "2345-7"), "listed twice"),
        (_with(1, 4, "mmol/L"), "disagree on canonical_loinc or canonical_unit"),
        (_with(1, 3, "14749-6"), "disagree on canonical_loinc or canonical_unit"),
        (_with(0, 2, "glucose_serum"), "must be a row of analyte"),
        (_with(0, 4, "mg/dl"), "not in preferred spelling"),
        (_with(0, 4, "mg%"), "not UCUM"),
        (_with(0, 5, "heavy"), "not a number"),
        (_with(0, 5, "-1"), "must be positive"),
        (_with(0, 2, ""), "analyte is empty"),
        ([GOOD[0][:5]], "expected 7 fields"),
    ],
)
def test_a_broken_table_is_refused(tmp_path, rows, message):
    with pytest.raises(AnalyteTableError, match=message):
        read_analytes(_write(tmp_path, rows))


def test_a_table_with_another_header_is_refused(tmp_path):
    path = _write(tmp_path, GOOD, header=("code", *ANALYTE_COLUMNS[1:]))
    with pytest.raises(AnalyteTableError, match="the header must be"):
        read_analytes(path)


def test_the_packaged_file_sits_beside_the_module():
    assert ANALYTES_CSV.name == "analytes.csv" and ANALYTES_CSV.is_file()
