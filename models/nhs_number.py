"""NHS number normalisation and Modulus 11 validation.

The check-digit arithmetic comes from the maintained `nhs-number` library
(`nhs_number.is_valid`, `nhs_number.standardise_format`) rather than being
re-implemented here: it is tested against NHS Data Dictionary examples and also
rejects CHI-range numbers whose first six digits are not a real date.
"""

from __future__ import annotations

import re

import nhs_number

__all__ = [
    "InvalidNHSNumber",
    "format_nhs_number",
    "is_valid_nhs_number",
    "normalise_nhs_number",
]

# People type NHS numbers as "943 476 5919", "943-476-5919" or with stray spacing;
# the library accepts only the three canonical layouts, so separators go first.
_SEPARATORS = re.compile(r"[\s\-]+")


class InvalidNHSNumber(ValueError):
    """Raised for a malformed or check-digit-failing NHS number.

    The message never repeats the number: exception text ends up in logs and
    problem+json bodies, and an NHS number is personal data.
    """

    def __init__(self, problem: str = "not a valid NHS number") -> None:
        super().__init__(problem)


def _digits(raw: object) -> str:
    if not isinstance(raw, str):
        # ints lose leading zeros and floats are never NHS numbers: insist on text.
        raise InvalidNHSNumber("an NHS number must be given as text")
    return _SEPARATORS.sub("", raw)


def normalise_nhs_number(raw: str) -> str:
    """Return the 10-digit form of a valid NHS number, or raise InvalidNHSNumber.

    Spaces and dashes are removed; the result must be ten digits and pass the
    Modulus 11 check, so anything this returns is safe to store or search by.
    """
    digits = _digits(raw)
    standard = nhs_number.standardise_format(digits)
    if not standard:
        raise InvalidNHSNumber("an NHS number has 10 digits")
    if not nhs_number.is_valid(standard):
        raise InvalidNHSNumber("NHS number check digit does not match")
    return standard


def is_valid_nhs_number(raw: object) -> bool:
    """True if `raw` (spaces and dashes allowed) is a Modulus 11 valid NHS number."""
    try:
        normalise_nhs_number(raw)  # type: ignore[arg-type]
    except InvalidNHSNumber:
        return False
    return True


def format_nhs_number(raw: str) -> str:
    """Display form, 3-3-4 digits: "9434765919" -> "943 476 5919"."""
    digits = normalise_nhs_number(raw)
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"
