"""Check-digit algorithms of the code systems the EHR silo carries.

A code with a wrong check digit is a typo or a corrupted value, never a real concept, so
these checks catch damage that a lookup-free pipeline would otherwise pass through.

- LOINC: ``NNNNN-C``; ``C`` is the Mod 10 check digit of the digits before the dash, as the
  LOINC Users' Guide publishes it (the same arithmetic as the Luhn algorithm).
- SNOMED CT: a Concept, Description or Relationship identifier (SCTID) is 6 to 18 digits;
  the last is a Verhoeff check digit over the others, the two before it are the partition
  identifier (``00``/``10``: concept, ``01``/``11``: description, ``02``/``12``:
  relationship), per the SNOMED CT Technical Implementation Guide.
"""

import re

_LOINC = re.compile(r"[1-9][0-9]{0,6}-[0-9]")
_SCTID = re.compile(r"[1-9][0-9]{5,17}")

# Multiplication table of the dihedral group D5, on which Verhoeff's check is built.
_D5 = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P1 = (1, 5, 7, 6, 2, 8, 3, 0, 9, 4)


def _powers(permutation: tuple[int, ...], count: int) -> tuple[tuple[int, ...], ...]:
    rows = [tuple(range(10))]
    for _ in range(count - 1):
        rows.append(tuple(rows[-1][permutation[d]] for d in range(10)))
    return tuple(rows)


# A digit at position i from the right (the check digit at 0) is permuted by _P1 applied
# i times; _P1 has order 8. Deriving the powers avoids a hand-typed table.
_PERMUTATION = _powers(_P1, 8)


def loinc_mod10(digits: str) -> int:
    """The LOINC Mod 10 check digit of the part of a LOINC code before the dash.

    Args:
        digits: the numeric part, e.g. ``"718"``.

    Returns:
        The check digit, e.g. ``7`` (LOINC 718-7).

    Raises:
        ValueError: when ``digits`` is not a non-empty string of ASCII digits.
    """
    if not digits.isascii() or not digits.isdigit():
        raise ValueError("a LOINC code's numeric part must be ASCII digits, e.g. '718'")
    total = 0
    # From the right: digits in odd positions are doubled (digit sums), even ones added.
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            value = value - 9 if value > 9 else value
        total += value
    return (10 - total % 10) % 10


def loinc_check_digit_ok(code: str) -> bool:
    """Whether a LOINC code is well formed and its check digit is right.

    Args:
        code: a LOINC term code such as ``"2339-0"`` (no surrounding spaces, no leading zero).

    Returns:
        True for a well-formed code whose last digit is the Mod 10 check digit of the rest.
    """
    if not isinstance(code, str) or _LOINC.fullmatch(code) is None:
        return False
    digits, check = code.split("-")
    return loinc_mod10(digits) == int(check)


def verhoeff_ok(digits: str) -> bool:
    """Whether a string of digits ends in its Verhoeff check digit.

    Args:
        digits: the number with its check digit last.

    Returns:
        True when the Verhoeff checksum over all digits is zero.
    """
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    check = 0
    for position, char in enumerate(reversed(digits)):
        check = _D5[check][_PERMUTATION[position % 8][int(char)]]
    return check == 0


def snomed_verhoeff_ok(code: str) -> bool:
    """Whether a SNOMED CT identifier is well formed and its Verhoeff check digit is right.

    Args:
        code: an SCTID such as ``"38341003"``: 6 to 18 digits, no leading zero.

    Returns:
        True for a well-formed SCTID whose last digit is its Verhoeff check digit.
    """
    if not isinstance(code, str) or _SCTID.fullmatch(code) is None:
        return False
    return verhoeff_ok(code)


def snomed_partition(code: str) -> str | None:
    """The partition identifier of an SCTID: the two digits before the check digit.

    Returns:
        ``"00"`` or ``"10"`` for a concept id (core or extension), other values for
        descriptions and relationships; None for a string that is not an SCTID.
    """
    if not isinstance(code, str) or _SCTID.fullmatch(code) is None:
        return None
    return code[-3:-1]


def snomed_concept_id_ok(code: str) -> bool:
    """Whether a code is a SNOMED CT concept id: a valid SCTID in a concept partition.

    A coding's ``code`` must name a concept; a description or relationship id with a valid
    check digit is still the wrong kind of identifier.
    """
    return snomed_verhoeff_ok(code) and snomed_partition(code) in ("00", "10")
