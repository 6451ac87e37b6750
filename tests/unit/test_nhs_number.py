"""NHS number rules: normalise, validate (Modulus 11 via the nhs-number library), format."""

import nhs_number
import pytest

from models.nhs_number import (
    InvalidNHSNumber,
    format_nhs_number,
    is_valid_nhs_number,
    normalise_nhs_number,
)

VALID = "9434765919"  # the NHS Data Dictionary's worked example
WRONG_CHECK_DIGIT = "9434765918"


@pytest.mark.parametrize(
    "raw",
    ["9434765919", "943 476 5919", "943-476-5919", " 943 476 5919 ", "943-476 5919", "9434 765 919"],
)
def test_normalise_strips_spaces_and_dashes(raw):
    assert normalise_nhs_number(raw) == VALID


def test_valid_number_is_valid():
    assert is_valid_nhs_number(VALID)
    assert is_valid_nhs_number("943 476 5919")


@pytest.mark.parametrize(
    "raw",
    [WRONG_CHECK_DIGIT, "943476591", "94347659190", "94347659l9", "", "   ", "943/476/5919"],
)
def test_invalid_numbers_are_rejected(raw):
    assert not is_valid_nhs_number(raw)
    with pytest.raises(InvalidNHSNumber):
        normalise_nhs_number(raw)


def test_check_digit_of_ten_is_never_valid():
    # 123456789 weights to a remainder of 1, so its check digit would be 10: no such number.
    assert nhs_number.calculate_checksum("123456789") == 10
    assert not any(is_valid_nhs_number(f"123456789{d}") for d in range(10))


def test_non_text_input_is_rejected_not_coerced():
    assert not is_valid_nhs_number(9434765919)
    assert not is_valid_nhs_number(None)
    with pytest.raises(InvalidNHSNumber):
        normalise_nhs_number(9434765919)  # type: ignore[arg-type]


def test_error_message_never_contains_the_number():
    for raw in (WRONG_CHECK_DIGIT, "943 476 591", "943-476-5918"):
        with pytest.raises(InvalidNHSNumber) as caught:
            normalise_nhs_number(raw)
        message = str(caught.value)
        assert "943" not in message and "5918" not in message and "591" not in message


def test_invalid_nhs_number_is_a_value_error():
    assert issubclass(InvalidNHSNumber, ValueError)


def test_format_groups_three_three_four():
    assert format_nhs_number("9434765919") == "943 476 5919"
    assert format_nhs_number("943-476-5919") == "943 476 5919"


def test_format_refuses_invalid_numbers():
    with pytest.raises(InvalidNHSNumber):
        format_nhs_number(WRONG_CHECK_DIGIT)


def test_agrees_with_library_on_generated_numbers():
    # Synthetic test-range numbers only; real NHS numbers are never generated locally.
    for number in nhs_number.generate(valid=True, quantity=50):
        assert is_valid_nhs_number(number)
    for number in nhs_number.generate(valid=False, quantity=50):
        assert not is_valid_nhs_number(number)
