"""LOINC code format and check digit.

A LOINC term code is ``NNNNN-C``: one to seven digits (no leading zero) and a check digit
``C`` computed with the Mod 10 algorithm the LOINC Users' Guide publishes (appendix on
check digits): starting from the rightmost digit of the numeric part, every other digit is
doubled (a two-digit product contributes the sum of its digits), all are summed, and the
check digit is what brings the sum up to the next multiple of ten.

``quality.codes`` carries the same algorithm for the quality suites; connectors may not
import ``quality``, so this module has its own, and a test holds the two to agreement.
"""

import re

_CODE = re.compile(r"[1-9][0-9]{0,6}-[0-9]")


def loinc_check_digit(digits: str) -> int:
    """The Mod 10 check digit of the numeric part of a LOINC code.

    Args:
        digits: the part before the dash, e.g. ``"2345"`` (ASCII digits only).

    Returns:
        The check digit, e.g. ``7`` for ``"2345"`` (LOINC 2345-7).

    Raises:
        ValueError: when ``digits`` is empty or holds anything but ASCII digits.
    """
    if not isinstance(digits, str) or not digits.isascii() or not digits.isdigit():
        raise ValueError("the numeric part of a LOINC code must be ASCII digits, e.g. '2345'")
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (10 - total % 10) % 10


def is_valid_loinc(code: object) -> bool:
    """Whether ``code`` is a well-formed LOINC code with the right check digit.

    Args:
        code: a candidate such as ``"2345-7"``; surrounding spaces, a leading zero or a
            missing dash make it invalid.

    Returns:
        True for ``NNNNN-C`` whose ``C`` is the Mod 10 check digit of ``NNNNN``.
    """
    if not isinstance(code, str) or _CODE.fullmatch(code) is None:
        return False
    digits, check = code.split("-")
    return loinc_check_digit(digits) == int(check)
