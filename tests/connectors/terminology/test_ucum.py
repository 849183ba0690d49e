"""The UCUM engine: parsing, dimensions, conversions and the spellings labs send."""

import csv
import re
from fractions import Fraction
from pathlib import Path

import pytest

from connectors.terminology import ucum
from connectors.terminology.errors import UnitConversionError, UnitParseError
from connectors.terminology.ucum import convert, normalise_spelling, parse

GLUCOSE = 180.156
CREATININE = 113.12
CHOLESTEROL = 386.654
TRIGLYCERIDE = 885.7
CALCIUM = 40.078


# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "factor", "dimension"),
    [
        ("g", Fraction(1), "g"),
        ("mg/dL", Fraction(10), "m-3.g"),  # 1e-3 g / 1e-4 m3
        ("mmol/L", Fraction(1), "m-3.mol"),
        ("umol/L", Fraction(1, 1000), "m-3.mol"),
        ("\u00b5mol/L", Fraction(1, 1000), "m-3.mol"),
        ("meq/L", Fraction(1), "m-3.eq"),
        ("10*3/uL", Fraction(10) ** 12, "m-3"),
        ("10^9/L", Fraction(10) ** 12, "m-3"),
        ("10*-3", Fraction(1, 1000), "1"),
        ("{cells}/uL", Fraction(10) ** 9, "m-3"),
        ("%", Fraction(1, 100), "1"),
        ("[ppth]", Fraction(1, 1000), "1"),
        ("1", Fraction(1), "1"),
        ("{score}", Fraction(1), "1"),
        ("mg/g", Fraction(1, 1000), "1"),
        ("kg/m2", Fraction(1000), "m-2.g"),
        ("/min", Fraction(1, 60), "s-1"),
        ("mL/min/{1.73_m2}", Fraction(1, 60_000_000), "m3.s-1"),
        ("h", Fraction(3600), "s"),
        ("d", Fraction(86400), "s"),
        ("wk", Fraction(604800), "s"),
        ("a", Fraction(31557600), "s"),  # mean Julian year
        ("mo", Fraction(2629800), "s"),  # a twelfth of it
        ("Pa", Fraction(1000), "m-1.s-2.g"),  # kg/(m.s2) in grams
        ("mm[Hg]", Fraction(133322), "m-1.s-2.g"),
        ("U/L", Fraction(1, 60_000), "m-3.s-1.mol"),  # umol/min per litre
        ("m[IU]/mL", Fraction(1000), "m-3.[IU]"),
        ("fL", Fraction(1, 10**18), "m3"),
        ("pg/{cell}", Fraction(1, 10**12), "g"),
        ("/[HPF]", Fraction(1), "1"),
        ("/100{WBCs}", Fraction(1, 100), "1"),
        ("(mg/dL)/h", Fraction(10, 3600), "m-3.s-1.g"),
        ("g/kg.d", Fraction(86400, 1000), "s"),  # UCUM reads left to right: (g/kg).d
        ("m2", Fraction(1), "m2"),
        ("s-1", Fraction(1), "s-1"),
        ("m+2", Fraction(1), "m2"),
    ],
)
def test_parse_gives_exact_magnitude_and_dimension(text, factor, dimension):
    unit = parse(text)
    assert unit.factor == factor
    assert str(unit.dimension) == dimension


@pytest.mark.parametrize(
    ("text", "preferred"),
    [
        ("mg/dl", "mg/dL"),
        ("\u00b5mol/l", "umol/L"),
        ("\u03bcg/L", "ug/L"),
        ("10^9/L", "10*9/L"),
        ("mL/min/{1.73_m2}", "mL/min/{1.73_m2}"),
        ("/min", "/min"),
        ("(mg/dl)/h", "(mg/dL)/h"),
    ],
)
def test_parse_writes_the_preferred_spelling(text, preferred):
    assert parse(text).code == preferred


def test_parse_distinguishes_case():
    assert str(parse("mg").dimension) == "g"
    assert parse("Mg").factor == 10**6  # megagram
    with pytest.raises(UnitParseError):
        parse("MG")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("mg /dL", "no spaces"),
        ("% Hb", "no spaces"),
        ("mEq/L", "'mEq' is not a known unit"),
        ("mval/l", "'mval' is not a known unit"),
        ("mg%", "'mg%' is not a known unit"),
        ("IU/L", "'IU' is not a known unit"),
        ("m%", "not a metric unit"),
        ("kmin", "not a metric unit"),
        ("mg/", "missing at the end"),
        ("mg//dL", "missing at position"),
        ("(mg/dL", "not closed"),
        ("mg)", "unexpected ')'"),
        ("{cells/uL", "not closed"),
        ("{a b}/uL", "printable ASCII"),
        ("m[Hg", "not closed"),
        ("10*", "needs an exponent"),
        ("m-", "sign must be followed"),
        ("mCel", "takes no prefix"),
        ("Cel2", "takes no prefix and no exponent"),
        ("Cel/min", "special unit"),
        ("/[pH]", "special unit"),
    ],
)
def test_parse_errors_say_what_is_wrong(text, message):
    with pytest.raises(UnitParseError, match=re.escape(message)):
        parse(text)


def test_parse_refuses_non_strings():
    with pytest.raises(UnitParseError, match="must be a string"):
        parse(None)  # type: ignore[arg-type]


def test_arbitrary_units_carry_a_marker():
    assert parse("[IU]/L").dimension.arbitrary == (("[IU]", 1),)
    assert parse("[iU]/L").dimension == parse("[IU]/L").dimension
    assert not parse("[IU]").dimension.is_dimensionless
    assert parse("%").dimension.is_dimensionless


# --- conversions with known clinical factors ----------------------------------------------


@pytest.mark.parametrize(
    ("value", "source", "target", "molar_mass", "expected"),
    [
        (100, "mg/dL", "mmol/L", GLUCOSE, 5.551),  # glucose: 1 mmol/L = 18.02 mg/dL
        (1, "mg/dL", "umol/L", CREATININE, 88.4),  # creatinine
        (200, "mg/dL", "mmol/L", CHOLESTEROL, 5.172),  # cholesterol: factor 0.02586
        (150, "mg/dL", "mmol/L", TRIGLYCERIDE, 1.694),  # triglycerides: factor 0.01129
        (10, "mg/dL", "mmol/L", CALCIUM, 2.495),  # calcium: factor 0.2495
        (88.4, "umol/L", "mg/dL", CREATININE, 1.0),
        (5.551, "mmol/L", "mg/dL", GLUCOSE, 100.0),
    ],
)
def test_mass_and_substance_concentrations_convert_with_a_molar_mass(
    value, source, target, molar_mass, expected
):
    # The expected values are the published ones, to their four significant digits.
    assert convert(value, source, target, molar_mass=molar_mass) == pytest.approx(
        expected, rel=5e-4
    )


@pytest.mark.parametrize(
    ("value", "source", "target", "expected"),
    [
        (135, "g/L", "g/dL", 13.5),  # haemoglobin
        (13.5, "g/dL", "g/L", 135.0),
        (7.2, "10*9/L", "10*3/uL", 7.2),  # WBC: 10^9/L is 10^3/uL
        (4.5, "10*12/L", "10*6/uL", 4.5),  # RBC
        (105600, "{cells}/uL", "10*3/uL", 105.6),
        (250, "10*3/mm3", "10*9/L", 250.0),
        (1, "mm[Hg]", "kPa", 0.133322),
        (1, "wk", "d", 7.0),
        (2, "h", "min", 120.0),
        (5, "m[IU]/mL", "[IU]/L", 5.0),
        (1, "mL/min", "mL/min/{1.73_m2}", 1.0),  # annotations are arithmetically 1
        (1, "[LPF]", "[HPF]", 100.0),
    ],
)
def test_commensurable_units_convert_by_their_ratio(value, source, target, expected):
    assert convert(value, source, target) == pytest.approx(expected, rel=1e-12)


def test_ten_to_the_nine_per_litre_is_exactly_thousands_per_microlitre():
    assert ucum.conversion_coefficients("10*9/L", "10*3/uL") == (1.0, 0.0)
    assert convert(7.2, "10^9/L", "10*3/uL") == 7.2


@pytest.mark.parametrize("analyte", ["sodium", "potassium", "chloride"])
def test_milliequivalents_of_a_monovalent_ion_are_millimoles(analyte):
    assert convert(140, "meq/L", "mmol/L", analyte=analyte) == 140.0
    assert convert(140, "mmol/L", "meq/L", analyte=analyte) == 140.0


def test_calcium_is_divalent():
    assert convert(5, "meq/L", "mmol/L", analyte="calcium") == 2.5
    assert convert(5, "meq/L", "mmol/L", valence=2) == 2.5
    # mass to equivalents needs both: 10 mg/dL = 2.495 mmol/L = 4.99 meq/L
    assert convert(10, "mg/dL", "meq/L", molar_mass=CALCIUM, analyte="calcium") == (
        pytest.approx(4.990, abs=1e-3)
    )


def test_valence_parameter_wins_over_the_analyte():
    assert convert(4, "meq/L", "mmol/L", analyte="sodium", valence=2) == 2.0


def test_hba1c_ifcc_and_ngsp_follow_the_master_equation():
    assert convert(53, "mmol/mol", "%", analyte="hba1c") == pytest.approx(7.0, abs=0.01)
    assert convert(53, "mmol/mol", "%", analyte="hba1c") == pytest.approx(
        0.09148 * 53 + 2.152, rel=1e-12
    )
    assert convert(7.0, "%", "mmol/mol", analyte="hba1c") == pytest.approx(53.0, abs=0.1)
    assert convert(0.053, "mol/mol", "%", analyte="hba1c") == pytest.approx(7.00044, rel=1e-12)
    assert convert(7.0, "%", "%", analyte="hba1c") == 7.0


def test_without_the_analyte_a_fraction_is_a_plain_fraction():
    # UCUM arithmetic alone: 53 mmol/mol is 5.3 % — exactly why conform passes the analyte.
    assert convert(53, "mmol/mol", "%") == pytest.approx(5.3, rel=1e-12)


def test_urea_converts_to_urea_nitrogen_through_moles():
    # 60.056 mg of urea carry 28.014 mg of nitrogen: BUN = urea x 0.4665
    assert convert(60.056, "mg/dL", "mg/dL", molar_mass=60.056, to_molar_mass=28.014) == (
        pytest.approx(28.014, rel=1e-12)
    )
    assert convert(5, "mmol/L", "mg/dL", molar_mass=60.056, to_molar_mass=28.014) == (
        pytest.approx(14.007, rel=1e-12)
    )


@pytest.mark.parametrize(
    ("value", "source", "target", "expected"),
    [
        (37, "Cel", "K", 310.15),
        (37, "Cel", "[degF]", 98.6),
        (98.6, "[degF]", "Cel", 37.0),
        (0, "Cel", "[degF]", 32.0),
        (7.4, "[pH]", "[pH]", 7.4),
    ],
)
def test_temperature_scales_are_affine_and_ph_stays_ph(value, source, target, expected):
    assert convert(value, source, target) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("value", "source", "target", "kwargs"),
    [
        (100, "mg/dL", "mmol/L", {"molar_mass": GLUCOSE}),
        (88.4, "umol/L", "mg/dL", {"molar_mass": CREATININE}),
        (140, "meq/L", "mmol/L", {"analyte": "sodium"}),
        (2.4, "mmol/L", "meq/L", {"analyte": "calcium"}),
        (53, "mmol/mol", "%", {"analyte": "hba1c"}),
        (6.5, "%", "mmol/mol", {"analyte": "hba1c"}),
        (37.2, "Cel", "[degF]", {}),
        (135, "g/L", "g/dL", {}),
        (7.25, "10*9/L", "10*3/uL", {}),
        (12.5, "m[IU]/mL", "u[IU]/L", {}),
        (9.1, "mg/dL", "mg/dL", {"molar_mass": 60.056, "to_molar_mass": 28.014}),
    ],
)
def test_conversions_round_trip(value, source, target, kwargs):
    back = {k: v for k, v in kwargs.items() if k != "to_molar_mass"}
    if "to_molar_mass" in kwargs:
        back = {"molar_mass": kwargs["to_molar_mass"], "to_molar_mass": kwargs["molar_mass"]}
    there = convert(value, source, target, **kwargs)
    assert convert(there, target, source, **back) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("source", "target", "kwargs", "message"),
    [
        ("[IU]/L", "U/L", {}, "is not"),
        ("[IU]/L", "mmol/L", {"molar_mass": GLUCOSE}, "is not"),
        ("[arb'U]/mL", "[IU]/mL", {}, "is not"),
        ("mg/dL", "mmol/L", {}, "give molar_mass"),
        ("meq/L", "mmol/L", {}, "give valence"),
        ("meq/L", "mmol/L", {"analyte": "glucose"}, "give valence"),
        ("g/dL", "%", {}, "is not"),
        ("g/L-1", "g/dL", {}, "is not"),
        ("[pH]", "mmol/L", {}, "pH scale"),
        ("Cel", "g", {}, "is not"),
        ("mg/dL", "mmol/L", {"molar_mass": 0}, "positive"),
        ("mg/dL", "mmol/L", {"molar_mass": -5.0}, "positive"),
    ],
)
def test_incommensurable_units_raise_a_conversion_error(source, target, kwargs, message):
    with pytest.raises(UnitConversionError, match=message):
        convert(1.0, source, target, **kwargs)


def test_conversion_error_names_both_units():
    with pytest.raises(UnitConversionError, match=r"'\[IU\]/L' to 'U/L'"):
        convert(1.0, "[IU]/L", "U/L")


def test_unparseable_units_raise_a_parse_error_on_convert():
    with pytest.raises(UnitParseError):
        convert(1.0, "mEq/L", "mmol/L", analyte="sodium")


def test_conversion_errors_are_connector_errors():
    from connectors.errors import ConnectorError

    assert issubclass(UnitConversionError, ConnectorError)
    assert issubclass(UnitParseError, ConnectorError)


# --- spellings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mg/dl", "mg/dL"),
        ("MG/DL", "mg/dL"),
        ("mg/dL", "mg/dL"),
        ("mEq/L", "meq/L"),
        ("meq/l", "meq/L"),
        ("MEQ/L", "meq/L"),
        ("\u00b5mol/L", "umol/L"),
        ("umol/l", "umol/L"),
        ("mmol/l", "mmol/L"),
        ("g/l", "g/L"),
        ("GM/DL", "g/dL"),
        ("10^9/L", "10*9/L"),
        ("x10^9/L", "10*9/L"),
        ("x10E9/L", "10*9/L"),
        ("X10*3/\u00b5L", "10*3/uL"),
        ("x 10^9/L", "10*9/L"),
        ("10E3/uL", "10*3/uL"),
        ("10*3/ul", "10*3/uL"),
        ("K/uL", "10*3/uL"),
        ("K/\u00b5L", "10*3/uL"),
        ("M/uL", "10*6/uL"),
        ("/uL", "/uL"),
        ("/mm3", "/mm3"),
        ("giga.l-1", "10*9/L"),
        ("tera.l-1", "10*12/L"),
        ("G/L", "10*9/L"),
        ("T/L", "10*12/L"),
        ("IU/L", "[IU]/L"),
        ("mIU/mL", "m[IU]/mL"),
        ("\u00b5IU/mL", "u[IU]/mL"),
        ("mU/L", "mU/L"),
        ("u/l", "U/L"),
        ("ng/ml", "ng/mL"),
        ("pg/mL", "pg/mL"),
        ("%", "%"),
        ("mm Hg", "mm[Hg]"),
        ("mmHg", "mm[Hg]"),
        ("bpm", "/min"),
        ("beats/min", "/min"),
        ("kg/m2", "kg/m2"),
        ("mOsm/kg", "mosm/kg"),
        ("pH", "[pH]"),
        ("\u00b0C", "Cel"),
        ("mL/min/1.73 m2", "mL/min/{1.73_m2}"),
        ("cells/uL", "{cells}/uL"),
        ("/hpf", "/[HPF]"),
        ("  mg/dL  ", "mg/dL"),
    ],
)
def test_lab_spellings_normalise_to_ucum(text, expected):
    assert normalise_spelling(text) == expected


@pytest.mark.parametrize(
    "text",
    ["% Hb", "mval/l", "mg%", "", "   ", None, "10 9/L", "per litre", "mg/dL/", "K / uL x"],
)
def test_unrecognisable_spellings_give_none(text):
    assert normalise_spelling(text) is None


def test_case_matters_where_ucum_and_labs_disagree():
    # UCUM: g is gram, K kelvin. Labs: G/L is 10^9/L, K/uL thousands per microlitre.
    assert normalise_spelling("g/L") == "g/L"
    assert normalise_spelling("G/L") == "10*9/L"
    assert normalise_spelling("K") == "K"


def test_every_normalised_spelling_parses_to_itself():
    tables = {**ucum._EXACT_SPELLINGS, **ucum._FOLDED_SPELLINGS}
    for spelling in tables.values():
        assert parse(spelling).code == spelling
        assert normalise_spelling(spelling) == spelling


# --- real unit strings --------------------------------------------------------------------


def _hl7_units(folder: Path) -> set[str]:
    units = set()
    for path in folder.glob("*.hl7"):
        text = path.read_bytes().decode("utf-8", "replace").replace("\r", "\n")
        for line in text.split("\n"):
            fields = line.lstrip("\x0b\ufeff").split("|")
            if fields[0] == "OBX" and len(fields) > 6 and fields[6]:
                units.add(fields[6].split("^")[0])
    return units


def _synthea_units(path: Path) -> set[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return {row["UNITS"] for row in csv.DictReader(handle) if row["UNITS"]}


def test_every_unit_of_the_real_lab_files_is_recognised(shared_data):
    lab = shared_data / "lab"
    units = _hl7_units(lab / "hl7v2") | _synthea_units(lab / "csv" / "synthea_observations.csv")
    assert {u: normalise_spelling(u) for u in units if normalise_spelling(u) is None} == {}
    expected = {
        "tera.l-1": "10*12/L",
        "giga.l-1": "10*9/L",
        "mg/dl": "mg/dL",
        "beats/min": "/min",
        "{cells}/uL": "{cells}/uL",
        "pg/{cell}": "pg/{cell}",
        "mL/min/{1.73_m2}": "mL/min/{1.73_m2}",
        "/[HPF]": "/[HPF]",
        "pH": "[pH]",
        "Cel": "Cel",
        "mm[Hg]": "mm[Hg]",
        "{copies}/mL": "{copies}/mL",
        # Valid UCUM, literally gram-litre: conform reports it as unconvertible for Hb.
        "g/l-1": "g/L-1",
    }
    assert {u: normalise_spelling(u) for u in expected} == expected
    assert set(expected) <= units
