"""A small UCUM engine for laboratory units: parse, compare and convert.

UCUM (the Unified Code for Units of Measure, case-sensitive ``c/s`` codes) builds every
unit from atoms (``g``, ``L``, ``mol``, ``[IU]``, ``mm[Hg]`` ...), metric prefixes
(``m``, ``u``, ``k`` ...), integer exponents (``m2``, ``s-1``), the operators ``.`` and
``/`` read left to right, parentheses, integer factors (``10*3``, ``100``) and
annotations in braces (``{cells}``), which mean nothing to the arithmetic. ``parse`` turns
an expression into a ``Unit``: an exact magnitude (a ``Fraction`` of the base units) and a
``Dimension``. Units with the same dimension are commensurable and convert by the ratio of
their magnitudes.

Three deliberate departures from plain UCUM make clinical conversions safe:

- Amount of substance (``mol``) is a dimension of its own, not a dimensionless count, so a
  mass concentration converts to a substance concentration only when a molar mass is given
  (``mg/dL`` <-> ``mmol/L``), never silently.
- Equivalents (``eq``) are a dimension of their own as well: ``1 eq = 1/z mol`` for an ion
  of charge number ``z``, given as ``valence`` or taken from the analyte (sodium,
  potassium, chloride, bicarbonate 1; calcium 2).
- HbA1c has two scales that UCUM would call commensurable but that are not proportional:
  NGSP ``%`` = 0.09148 x IFCC ``mmol/mol`` + 2.152. ``convert(..., analyte="hba1c")``
  applies that master equation in both directions.

Arbitrary units (``[IU]``, ``[arb'U]``, ``[CFU]``) carry a marker in the dimension, so
they convert only to themselves with another prefix. ``Cel`` and ``[degF]`` are affine
(an offset from kelvin); ``[pH]`` is a logarithmic scale that converts only to itself.

``normalise_spelling`` maps the spellings lab systems actually send (``mg/dl``,
``mEq/L``, ``µmol/L``, ``x10E9/L``, ``K/uL``, ``giga.l-1``, ``IU/L`` ...) to a UCUM
expression, or gives None when it cannot recognise the text.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import cache, lru_cache

from connectors.terminology.errors import UnitConversionError, UnitParseError

BASE_DIMENSIONS: tuple[str, ...] = (
    "length",
    "time",
    "mass",
    "temperature",
    "charge",
    "amount",
    "equivalents",
)
"""Names of the base dimensions, in the order of ``Dimension.exponents``."""

_BASE_SYMBOLS = ("m", "s", "g", "K", "C", "mol", "eq")
_MASS = BASE_DIMENSIONS.index("mass")
_AMOUNT = BASE_DIMENSIONS.index("amount")
_EQUIVALENTS = BASE_DIMENSIONS.index("equivalents")

ANALYTE_VALENCE: dict[str, int] = {
    "sodium": 1,
    "sodium_blood": 1,
    "potassium": 1,
    "potassium_blood": 1,
    "chloride": 1,
    "chloride_blood": 1,
    "carbon_dioxide": 1,
    "carbon_dioxide_blood": 1,
    "calcium": 2,
    "calcium_blood": 2,
}
"""Charge number (absolute) of the ion an analyte of ``analytes.csv`` measures, for
``eq`` <-> ``mol``. Total CO2 is reported as bicarbonate, a monovalent anion."""

HBA1C_ANALYTES: frozenset[str] = frozenset({"hba1c"})
"""Analytes whose ``%`` (NGSP/DCCT) and ``mmol/mol`` (IFCC) scales are related by the
IFCC-NGSP master equation rather than a factor."""

HBA1C_NGSP_SLOPE = Fraction("0.09148")
HBA1C_NGSP_INTERCEPT = Fraction("2.152")
"""NGSP % = HBA1C_NGSP_SLOPE x IFCC mmol/mol + HBA1C_NGSP_INTERCEPT."""


@dataclass(frozen=True)
class Dimension:
    """Exponents of the base dimensions, plus arbitrary-unit markers.

    Attributes:
        exponents: one integer per name of ``BASE_DIMENSIONS`` (length, time, mass,
            temperature, charge, amount, equivalents).
        arbitrary: sorted ``(marker, exponent)`` pairs of arbitrary units such as
            ``("[IU]", 1)``; two units with different markers never convert.
    """

    exponents: tuple[int, ...] = (0,) * len(BASE_DIMENSIONS)
    arbitrary: tuple[tuple[str, int], ...] = ()

    def __mul__(self, other: "Dimension") -> "Dimension":
        exponents = tuple(a + b for a, b in zip(self.exponents, other.exponents, strict=True))
        markers = dict(self.arbitrary)
        for name, power in other.arbitrary:
            markers[name] = markers.get(name, 0) + power
        return Dimension(exponents, tuple(sorted((k, v) for k, v in markers.items() if v)))

    def __pow__(self, power: int) -> "Dimension":
        return Dimension(
            tuple(e * power for e in self.exponents),
            tuple((k, v * power) for k, v in self.arbitrary if v * power),
        )

    def __truediv__(self, other: "Dimension") -> "Dimension":
        return self * other**-1

    def __getitem__(self, name: str) -> int:
        return self.exponents[BASE_DIMENSIONS.index(name)]

    @property
    def is_dimensionless(self) -> bool:
        """True for pure numbers (``1``, ``%``, ``mg/g``, ``{cells}``), without markers."""
        return not any(self.exponents) and not self.arbitrary

    def __str__(self) -> str:
        parts = [
            f"{symbol}{exponent if exponent != 1 else ''}"
            for symbol, exponent in zip(_BASE_SYMBOLS, self.exponents, strict=True)
            if exponent
        ]
        parts += [f"{name}{power if power != 1 else ''}" for name, power in self.arbitrary]
        return ".".join(parts) or "1"


_ONE = Dimension()


def _base(index: int) -> Dimension:
    exponents = [0] * len(BASE_DIMENSIONS)
    exponents[index] = 1
    return Dimension(tuple(exponents))


@dataclass(frozen=True)
class Unit:
    """A parsed UCUM expression.

    Attributes:
        code: the expression in preferred spelling (litre as ``L``, micro as ``u``,
            ``10*`` for ``10^``); otherwise as given.
        factor: exact magnitude of one unit in the base units (m, s, g, K, C, mol, eq).
        dimension: what the unit measures.
        offset: for ``Cel`` and ``[degF]``, kelvin = value x factor + offset; else 0.
        special: ``"[pH]"`` for the logarithmic pH scale, which converts only to itself.
        atoms: the unit atoms used, without prefixes (``{"mol"}`` for ``mmol/mol``).
    """

    code: str
    factor: Fraction
    dimension: Dimension
    offset: Fraction = Fraction(0)
    special: str | None = None
    atoms: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Atom:
    metric: bool
    definition: str | None = None
    value: Fraction = Fraction(1)
    base: int | None = None
    arbitrary: str | None = None
    offset: Fraction = Fraction(0)
    special: bool = False


_ATOMS: dict[str, _Atom] = {
    # Base units (UCUM's, plus mol and eq as dimensions of their own; see module docstring).
    "m": _Atom(True, base=0),
    "s": _Atom(True, base=1),
    "g": _Atom(True, base=2),
    "K": _Atom(True, base=3),
    "C": _Atom(True, base=4),
    "mol": _Atom(True, base=5),
    "eq": _Atom(True, base=6),
    # Volume and time.
    "L": _Atom(True, "dm3"),
    "l": _Atom(True, "dm3"),
    "min": _Atom(False, "s", Fraction(60)),
    "h": _Atom(False, "min", Fraction(60)),
    "d": _Atom(False, "h", Fraction(24)),
    "wk": _Atom(False, "d", Fraction(7)),
    "a": _Atom(False, "d", Fraction("365.25")),  # mean Julian year
    "mo": _Atom(False, "a", Fraction(1, 12)),  # mean Julian month
    "Hz": _Atom(True, "s-1"),
    # Force and pressure.
    "N": _Atom(True, "kg.m/s2"),
    "Pa": _Atom(True, "N/m2"),
    "bar": _Atom(True, "Pa", Fraction(100000)),
    "m[Hg]": _Atom(True, "kPa", Fraction("133.3220")),
    "m[H2O]": _Atom(True, "kPa", Fraction("9.80665")),
    # Catalytic activity and osmoles.
    "U": _Atom(True, "umol/min"),
    "kat": _Atom(True, "mol/s"),
    "osm": _Atom(True, "mol"),
    # Pure numbers.
    "%": _Atom(False, "10*-2"),
    "[ppth]": _Atom(False, "10*-3"),
    "[ppm]": _Atom(False, "10*-6"),
    "[ppb]": _Atom(False, "10*-9"),
    "[HPF]": _Atom(False, "1"),
    "[LPF]": _Atom(False, "1", Fraction(100)),
    # Customary units that vital signs use.
    "[in_i]": _Atom(False, "cm", Fraction("2.54")),
    "[ft_i]": _Atom(False, "[in_i]", Fraction(12)),
    "[lb_av]": _Atom(False, "g", Fraction("453.59237")),
    "[oz_av]": _Atom(False, "[lb_av]", Fraction(1, 16)),
    # Arbitrary units: commensurable only with themselves.
    "[IU]": _Atom(True, arbitrary="[IU]"),
    "[iU]": _Atom(True, arbitrary="[IU]"),
    "[arb'U]": _Atom(False, arbitrary="[arb'U]"),
    "[CFU]": _Atom(True, arbitrary="[CFU]"),
    # Special (non-ratio) scales.
    "Cel": _Atom(True, base=3, offset=Fraction("273.15"), special=True),
    "[degF]": _Atom(
        False, base=3, value=Fraction(5, 9), offset=Fraction("459.67") * Fraction(5, 9),
        special=True,
    ),
    "[pH]": _Atom(False, special=True),
}

_PREFIXES: dict[str, int] = {
    "Y": 24, "Z": 21, "E": 18, "P": 15, "T": 12, "G": 9, "M": 6, "k": 3, "h": 2, "da": 1,
    "d": -1, "c": -2, "m": -3, "u": -6, "n": -9, "p": -12, "f": -15, "a": -18, "z": -21,
    "y": -24,
}
# Micro is 'u' in UCUM c/s; the micro sign and the Greek letter are accepted and written 'u'.
_MICRO_SIGNS = ("\u00b5", "\u03bc")
_PREFIX_ORDER = sorted([*_PREFIXES, *_MICRO_SIGNS], key=len, reverse=True)

_EXPONENT = re.compile(r"[+-]?\d+")
_DIGITS = re.compile(r"\d+")


@dataclass
class _Term:
    """A partly parsed expression: magnitude, dimension, atoms and rendering."""

    factor: Fraction
    dimension: Dimension
    atoms: frozenset[str]
    special: str | None
    components: int
    text: str

    def combine(self, other: "_Term", operator: str) -> "_Term":
        if operator == "/":
            factor, dimension = self.factor / other.factor, self.dimension / other.dimension
        else:
            factor, dimension = self.factor * other.factor, self.dimension * other.dimension
        return _Term(
            factor,
            dimension,
            self.atoms | other.atoms,
            self.special or other.special,
            self.components + other.components,
            f"{self.text}{operator}{other.text}",
        )


def _unity(text: str = "") -> _Term:
    return _Term(Fraction(1), _ONE, frozenset(), None, 0, text)


class _Parser:
    """Recursive descent over one UCUM expression (UCUM 'Syntax Rules', section 2)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, why: str) -> UnitParseError:
        return UnitParseError(
            f"{self.text!r} is not a UCUM unit this engine understands: {why}. Use UCUM "
            "case-sensitive codes (e.g. 'mg/dL', 'mmol/L', '10*9/L'), or pass the text "
            "through normalise_spelling() first."
        )

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> _Term:
        if not self.text:
            raise self.fail("it is empty")
        if self.peek() == "/":
            self.pos += 1
            term = _unity().combine(self.term(), "/")
        else:
            term = self.term()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.peek()!r} at position {self.pos + 1}")
        return term

    def term(self) -> _Term:
        term = self.component()
        while self.peek() in (".", "/"):
            operator = self.peek()
            self.pos += 1
            term = term.combine(self.component(), operator)
        return term

    def component(self) -> _Term:
        char = self.peek()
        if not char:
            raise self.fail("a unit is missing at the end")
        if char == "(":
            self.pos += 1
            inner = self.term()
            if self.peek() != ")":
                raise self.fail("a parenthesis is not closed")
            self.pos += 1
            return _Term(
                inner.factor, inner.dimension, inner.atoms, inner.special, inner.components,
                f"({inner.text})",
            )
        if char == "{":
            return self.annotated(_unity())
        if self.text.startswith(("10*", "10^"), self.pos):
            self.pos += 3
            match = _EXPONENT.match(self.text, self.pos)
            if match is None:
                raise self.fail("'10*' needs an exponent, as in '10*3'")
            self.pos = match.end()
            power = int(match.group())
            term = _Term(Fraction(10) ** power, _ONE, frozenset(), None, 1, f"10*{match.group()}")
            return self.annotated(term)
        if char.isdigit():
            match = _DIGITS.match(self.text, self.pos)
            assert match is not None
            self.pos = match.end()
            term = _Term(Fraction(int(match.group())), _ONE, frozenset(), None, 1, match.group())
            return self.annotated(term)
        return self.annotated(self.simple_unit())

    def annotated(self, term: _Term) -> _Term:
        if self.peek() != "{":
            return term
        end = self.text.find("}", self.pos)
        if end < 0:
            raise self.fail("an annotation '{' is not closed")
        body = self.text[self.pos + 1 : end]
        if any(not 33 <= ord(c) <= 126 or c == "{" for c in body):
            raise self.fail("annotations may hold only printable ASCII without spaces")
        self.pos = end + 1
        return _Term(
            term.factor, term.dimension, term.atoms, term.special, term.components,
            f"{term.text}{{{body}}}",
        )

    def simple_unit(self) -> _Term:
        start = self.pos
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "[":
                end = self.text.find("]", self.pos)
                if end < 0:
                    raise self.fail("a '[' is not closed")
                self.pos = end + 1
                continue
            if char in "./(){}+-" or char.isdigit():
                break
            if char.isspace():
                raise self.fail("UCUM expressions contain no spaces")
            self.pos += 1
        symbol = self.text[start : self.pos]
        if not symbol:
            raise self.fail(f"a unit is missing at position {start + 1}")
        prefix, atom_code = _split_symbol(symbol, self)
        exponent = 1
        exponent_text = ""
        match = _EXPONENT.match(self.text, self.pos)
        if match is not None:
            exponent_text = match.group()
            exponent = int(exponent_text)
            self.pos = match.end()
        elif self.peek() in ("+", "-"):
            raise self.fail("a sign must be followed by the exponent's digits")
        atom = _ATOMS[atom_code]
        if atom.special and (prefix or exponent != 1):
            raise self.fail(f"'{atom_code}' takes no prefix and no exponent")
        magnitude, dimension, atoms = _atom_value(atom_code)
        if prefix:
            magnitude *= Fraction(10) ** _PREFIXES["u" if prefix in _MICRO_SIGNS else prefix]
        rendered_prefix = "u" if prefix in _MICRO_SIGNS else prefix
        rendered_atom = "L" if atom_code == "l" else atom_code
        return _Term(
            magnitude**exponent,
            dimension**exponent,
            atoms | {atom_code},
            atom_code if atom.special else None,
            1,
            f"{rendered_prefix}{rendered_atom}{exponent_text}",
        )


def _split_symbol(symbol: str, parser: _Parser) -> tuple[str, str]:
    """A symbol as (prefix, atom): the atom itself first, else a prefix on a metric atom."""
    if symbol in _ATOMS:
        return "", symbol
    for prefix in _PREFIX_ORDER:
        rest = symbol[len(prefix) :]
        if symbol.startswith(prefix) and rest in _ATOMS:
            if not _ATOMS[rest].metric:
                raise parser.fail(f"'{rest}' is not a metric unit and takes no prefix")
            return prefix, rest
    raise parser.fail(f"'{symbol}' is not a known unit")


@cache
def _atom_value(code: str) -> tuple[Fraction, Dimension, frozenset[str]]:
    """Magnitude and dimension of one atom, from its definition (itself UCUM)."""
    atom = _ATOMS[code]
    if atom.arbitrary is not None:
        return atom.value, Dimension(arbitrary=((atom.arbitrary, 1),)), frozenset()
    if atom.base is not None:
        return atom.value, _base(atom.base), frozenset()
    if atom.definition is None:  # [pH]: a logarithmic scale over amount per volume
        return Fraction(1), _base(_AMOUNT) / _base(0) ** 3, frozenset()
    inner = _Parser(atom.definition).parse()
    return atom.value * inner.factor, inner.dimension, frozenset()


@lru_cache(maxsize=4096)
def parse(unit: str) -> Unit:
    """Parse a UCUM case-sensitive expression.

    Args:
        unit: e.g. ``"mg/dL"``, ``"10*3/uL"``, ``"mL/min/{1.73_m2}"``, ``"m[IU]/mL"``.
            The micro sign (``µmol/L``) is accepted for the ``u`` prefix.

    Returns:
        The ``Unit`` with its exact magnitude, dimension and preferred spelling.

    Raises:
        UnitParseError: for anything that is not such an expression: unknown atoms, a
            prefix on a non-metric unit, spaces, unbalanced brackets, a special unit
            (``Cel``, ``[degF]``, ``[pH]``) combined with others.
    """
    if not isinstance(unit, str):
        raise UnitParseError("a unit must be a string such as 'mg/dL'")
    term = _Parser(unit).parse()
    offset = Fraction(0)
    if term.special is not None:
        if term.components != 1 or term.text != term.special:
            raise UnitParseError(
                f"{unit!r} combines the special unit '{term.special}' with others; "
                "special units stand alone."
            )
        offset = _ATOMS[term.special].offset
    return Unit(
        code=term.text,
        factor=term.factor,
        dimension=term.dimension,
        offset=offset,
        special=term.special if term.special == "[pH]" else None,
        atoms=term.atoms,
    )


def _as_unit(unit: "str | Unit") -> Unit:
    return unit if isinstance(unit, Unit) else parse(unit)


def _fraction(number: float | int | Fraction, name: str) -> Fraction:
    if isinstance(number, bool) or not isinstance(number, int | float | Fraction):
        raise UnitConversionError(f"{name} must be a positive number")
    value = Fraction(str(number)) if isinstance(number, float) else Fraction(number)
    if value <= 0:
        raise UnitConversionError(f"{name} must be a positive number")
    return value


def _hba1c_scale(unit: Unit) -> str | None:
    """'ifcc' for a substance fraction (mmol/mol), 'ngsp' for another pure number (%)."""
    if not unit.dimension.is_dimensionless or unit.offset or unit.special:
        return None
    return "ifcc" if "mol" in unit.atoms else "ngsp"


def _hba1c_coefficients(source: Unit, target: Unit) -> tuple[Fraction, Fraction]:
    per_mmol_mol = Fraction(1, 1000)
    per_percent = Fraction(1, 100)
    if _hba1c_scale(source) == "ifcc":
        to_ifcc = source.factor / per_mmol_mol
        from_percent = per_percent / target.factor
        return (
            to_ifcc * HBA1C_NGSP_SLOPE * from_percent,
            HBA1C_NGSP_INTERCEPT * from_percent,
        )
    to_percent = source.factor / per_percent
    from_ifcc = per_mmol_mol / target.factor
    return (
        to_percent / HBA1C_NGSP_SLOPE * from_ifcc,
        -HBA1C_NGSP_INTERCEPT / HBA1C_NGSP_SLOPE * from_ifcc,
    )


def _rewrite(factor: Fraction, dimension: Dimension, index: int, per_mole: Fraction):
    """Express ``dimension``'s power of mass or equivalents in moles: 1 g = 1/M mol,
    1 eq = 1/z mol, where ``per_mole`` is M or z."""
    power = dimension.exponents[index]
    if not power:
        return factor, dimension
    exponents = list(dimension.exponents)
    exponents[index] = 0
    exponents[_AMOUNT] += power
    return factor / per_mole**power, Dimension(tuple(exponents), dimension.arbitrary)


def _coefficients(
    source: Unit,
    target: Unit,
    molar_mass: float | None,
    to_molar_mass: float | None,
    valence: int | None,
    analyte: str | None,
) -> tuple[Fraction, Fraction]:
    def refuse(why: str) -> UnitConversionError:
        return UnitConversionError(f"cannot convert {source.code!r} to {target.code!r}: {why}")

    if source.special or target.special:
        if source.special == target.special:
            return Fraction(1), Fraction(0)
        raise refuse("the pH scale converts only to itself")
    if analyte in HBA1C_ANALYTES:
        scales = (_hba1c_scale(source), _hba1c_scale(target))
        if None not in scales and scales[0] != scales[1]:
            return _hba1c_coefficients(source, target)
    if source.offset or target.offset:
        if source.dimension != target.dimension:
            raise refuse(f"{source.dimension} is not {target.dimension}")
        scale = source.factor / target.factor
        return scale, (source.offset - target.offset) / target.factor
    f_source, d_source = source.factor, source.dimension
    f_target, d_target = target.factor, target.dimension
    if d_source.exponents[_EQUIVALENTS] != d_target.exponents[_EQUIVALENTS]:
        charge = valence if valence is not None else ANALYTE_VALENCE.get(analyte or "")
        if charge is None:
            raise refuse(
                "equivalents and moles differ by the ion's charge; give valence= or an "
                "analyte with a known valence"
            )
        z = _fraction(charge, "valence")
        f_source, d_source = _rewrite(f_source, d_source, _EQUIVALENTS, z)
        f_target, d_target = _rewrite(f_target, d_target, _EQUIVALENTS, z)
    mass_source = molar_mass
    mass_target = to_molar_mass if to_molar_mass is not None else molar_mass
    different_substances = (
        mass_source is not None and mass_target is not None and mass_source != mass_target
    )
    if d_source.exponents[_MASS] != d_target.exponents[_MASS] or different_substances:
        if mass_source is None or mass_target is None:
            raise refuse(
                f"{d_source} is not {d_target}; give molar_mass to convert between mass "
                "and substance"
            )
        f_source, d_source = _rewrite(
            f_source, d_source, _MASS, _fraction(mass_source, "molar_mass")
        )
        f_target, d_target = _rewrite(
            f_target, d_target, _MASS, _fraction(mass_target, "to_molar_mass")
        )
    if d_source != d_target:
        raise refuse(f"{d_source} is not {d_target}")
    return f_source / f_target, Fraction(0)


def conversion_coefficients(
    from_unit: "str | Unit",
    to_unit: "str | Unit",
    *,
    molar_mass: float | None = None,
    to_molar_mass: float | None = None,
    valence: int | None = None,
    analyte: str | None = None,
) -> tuple[float, float]:
    """The affine map between two units: ``to = from x scale + offset``.

    Every conversion this engine knows is affine (most with offset 0), so a column of values
    converts with one multiplication and one addition.

    Args:
        from_unit: the unit values are in (UCUM string or ``Unit``).
        to_unit: the unit wanted.
        molar_mass: g/mol of the substance measured; needed between mass and substance.
        to_molar_mass: g/mol of the target quantity when it is another substance (urea
            ``60.056`` -> urea nitrogen ``28.014``); defaults to ``molar_mass``.
        valence: charge number of the ion, for ``eq`` <-> ``mol``; defaults to the
            analyte's (``ANALYTE_VALENCE``).
        analyte: analyte name of ``analytes.csv``; selects the valence and the HbA1c
            master equation.

    Returns:
        ``(scale, offset)`` as floats, each the correctly rounded exact value.

    Raises:
        UnitParseError: when a unit does not parse.
        UnitConversionError: when the units are not commensurable, or a molar mass or
            valence the conversion needs is missing.
    """
    scale, offset = _coefficients(
        _as_unit(from_unit), _as_unit(to_unit), molar_mass, to_molar_mass, valence, analyte
    )
    return float(scale), float(offset)


def convert(
    value: float,
    from_unit: "str | Unit",
    to_unit: "str | Unit",
    *,
    molar_mass: float | None = None,
    to_molar_mass: float | None = None,
    valence: int | None = None,
    analyte: str | None = None,
) -> float:
    """Convert one value between commensurable units.

    Args:
        value: the number in ``from_unit``.
        from_unit: e.g. ``"mg/dL"``.
        to_unit: e.g. ``"mmol/L"``.
        molar_mass: g/mol, for mass <-> substance (glucose 180.156).
        to_molar_mass: g/mol of the target substance when it differs (see
            ``conversion_coefficients``).
        valence: charge number for ``eq`` <-> ``mol`` (calcium 2).
        analyte: analyte name; gives the valence and, for ``"hba1c"``, the affine
            NGSP % <-> IFCC mmol/mol equation.

    Returns:
        The value in ``to_unit``, unrounded.

    Raises:
        UnitParseError: when a unit does not parse.
        UnitConversionError: when the units are not commensurable (``[IU]/L`` to ``U/L``,
            ``g/L`` to ``mmol/L`` without a molar mass, ...).
    """
    scale, offset = conversion_coefficients(
        from_unit,
        to_unit,
        molar_mass=molar_mass,
        to_molar_mass=to_molar_mass,
        valence=valence,
        analyte=analyte,
    )
    return value * scale + offset


# --- spellings lab systems send ---------------------------------------------------------

# Case matters here: 'K' is kelvin, 'G' gauss and 'T' tesla in UCUM, but a lab's 'K/uL'
# means thousands and 'G/L' (French "giga par litre") 10^9 per litre.
_EXACT_SPELLINGS: dict[str, str] = {
    "K/uL": "10*3/uL",
    "K/\u00b5L": "10*3/uL",
    "K/\u03bcL": "10*3/uL",
    "K/ul": "10*3/uL",
    "K/mm3": "10*3/uL",
    "M/uL": "10*6/uL",
    "M/\u00b5L": "10*6/uL",
    "M/\u03bcL": "10*6/uL",
    "M/ul": "10*6/uL",
    "M/mm3": "10*6/uL",
    "G/L": "10*9/L",
    "G/l": "10*9/L",
    "T/L": "10*12/L",
    "T/l": "10*12/L",
}

# Looked up after lower-casing, dropping spaces and writing micro as 'u'.
_FOLDED_SPELLINGS: dict[str, str] = {
    "iu/l": "[IU]/L",
    "iu/ml": "[IU]/mL",
    "miu/l": "m[IU]/L",
    "miu/ml": "m[IU]/mL",
    "uiu/l": "u[IU]/L",
    "uiu/ml": "u[IU]/mL",
    "u/l": "U/L",
    "u/ml": "U/mL",
    "mu/l": "mU/L",
    "mu/ml": "mU/mL",
    "ku/l": "kU/L",
    "giga.l-1": "10*9/L",
    "giga/l": "10*9/L",
    "tera.l-1": "10*12/L",
    "tera/l": "10*12/L",
    "thou/ul": "10*3/uL",
    "thou/mm3": "10*3/uL",
    "mill/ul": "10*6/uL",
    "mil/ul": "10*6/uL",
    "mill/mm3": "10*6/uL",
    "cells/ul": "{cells}/uL",
    "cells/mm3": "{cells}/uL",
    "copies/ml": "{copies}/mL",
    "gm/dl": "g/dL",
    "mmhg": "mm[Hg]",
    "cmh2o": "cm[H2O]",
    "bpm": "/min",
    "beats/min": "/min",
    "breaths/min": "/min",
    "/hpf": "/[HPF]",
    "/lpf": "/[LPF]",
    "ph": "[pH]",
    "\u00b0c": "Cel",
    "degc": "Cel",
    "\u00b0f": "[degF]",
    "degf": "[degF]",
    "sec": "s",
    "hr": "h",
    "hrs": "h",
    "ml/min/1.73m2": "mL/min/{1.73_m2}",
    "ml/min/1.73m^2": "mL/min/{1.73_m2}",
    "ml/min/1.73sqm": "mL/min/{1.73_m2}",
    "kg/m^2": "kg/m2",
}

_COUNT_PER_VOLUME = re.compile(r"x?10(?:\^|e|\*\*|\*)\(?(\d+)\)?/(l|ul|ml|nl|mm3)")
_VOLUMES = {"l": "L", "ul": "uL", "ml": "mL", "nl": "nL", "mm3": "mm3"}


def _micro_as_u(text: str) -> str:
    for sign in _MICRO_SIGNS:
        text = text.replace(sign, "u")
    return text


def _preferred(text: str) -> str | None:
    try:
        return parse(text).code
    except UnitParseError:
        return None


def _candidates(text: str) -> Iterator[str | None]:
    yield _EXACT_SPELLINGS.get(text)
    yield _preferred(text)
    folded = _micro_as_u("".join(text.split()).lower())
    yield _FOLDED_SPELLINGS.get(folded)
    match = _COUNT_PER_VOLUME.fullmatch(folded)
    if match is not None:
        yield f"10*{int(match.group(1))}/{_VOLUMES[match.group(2)]}"
    # 'MG/DL', 'mEq/L', 'mOsm/kg': UCUM once lower-cased (spaces are not dropped here, so
    # '% Hb' stays unrecognised).
    yield _preferred(_micro_as_u(text.lower()))


def normalise_spelling(text: str | None) -> str | None:
    """The UCUM expression for a unit string as lab systems send it.

    Valid UCUM passes through in preferred spelling (``mg/dl`` -> ``mg/dL``, ``µmol/L`` ->
    ``umol/L``, ``10^9/L`` -> ``10*9/L``); common non-UCUM spellings are mapped
    (``mEq/L`` -> ``meq/L``, ``IU/L`` -> ``[IU]/L``, ``mIU/mL`` -> ``m[IU]/mL``,
    ``x10E9/L`` -> ``10*9/L``, ``K/uL`` -> ``10*3/uL``, ``giga.l-1`` -> ``10*9/L``,
    ``G/L`` -> ``10*9/L``, ``mm Hg`` -> ``mm[Hg]``, ``bpm`` -> ``/min``).

    Args:
        text: the unit as sent; surrounding spaces are ignored.

    Returns:
        A UCUM expression that ``parse`` accepts, or None for empty or unrecognisable text
        (``% Hb``, ``mval/l``, ``mg%``).
    """
    if text is None:
        return None
    stripped = text.strip()
    if not stripped:
        return None
    for candidate in _candidates(stripped):
        if candidate is not None:
            return candidate
    return None
