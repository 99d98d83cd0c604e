"""normalize_phone's shortcuts give what the plain ``phonenumbers`` calls give.

- a plain international text (``+``, ASCII digits, spaces, ``().-``) parses as ``+`` and its
  digits do, failures included;
- ``_e164_digits`` is ``format_number(E164)`` without its ``+``;
- ``normalize_phone`` equals the rule written with the library's plain calls (the code before the
  shortcuts), on phone-like text of every kind.
"""

from __future__ import annotations

import os

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st

from tagserver.meta.normalize import (
    _DIGITS,
    _NOT_DECIMAL,
    _PLAIN_INTERNATIONAL,
    _TRIM,
    _e164_digits,
    _phone_region,
    normalize_phone,
)

FAST = settings(
    max_examples=int(os.environ.get("TAGSERVER_HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    database=None,
)
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
CALLING_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
TYPES = [
    value
    for name, value in vars(phonenumbers.PhoneNumberType).items()
    if name.isupper() and isinstance(value, int)
]


def _parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def reference_normalize_phone(value: str, *, country: str | None) -> str | None:
    """normalize_phone as written with the library's plain calls (the oracle)."""
    text = value.strip(_TRIM)
    digits = _NOT_DECIMAL.sub("", text)
    if not digits:
        return None
    readings: list[phonenumbers.PhoneNumber | None]
    if text.startswith("+"):
        readings = [_parse(text, None)]
    else:
        region = _phone_region(country)
        national = _parse(text, region) if region else None
        if digits.startswith("00"):
            readings = [national, _parse("+" + digits[2:], None)]
        elif _DIGITS.fullmatch(text) and not digits.startswith("0"):
            implicit = _parse("+" + digits, None)
            nanp = region is not None and phonenumbers.country_code_for_region(region) == 1
            readings = [national, implicit] if nanp and len(digits) == 10 else [implicit, national]
        else:
            readings = [national]
    for number in readings:
        if number is not None and phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    possible = phonenumbers.ValidationResult.IS_POSSIBLE
    for number in readings:
        if (
            number is not None
            and not number.italian_leading_zero
            and len(str(number.national_number)) >= 6
            and phonenumbers.is_possible_number_with_reason(number) == possible
        ):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    return None


def _example_numbers() -> list[phonenumbers.PhoneNumber]:
    found = []
    for region in REGIONS:
        for kind in TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.append(number)
    for code in CALLING_CODES:
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            found.append(number)
    return found


EXAMPLES = _example_numbers()


def test_e164_digits_on_every_example_number() -> None:
    assert len(EXAMPLES) > 1000
    for number in EXAMPLES:
        assert (
            _e164_digits(number)
            == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
        )


@FAST
@given(st.sampled_from(CALLING_CODES), st.from_regex(r"\A[0-9]{2,17}\Z"))
def test_e164_digits_on_random_numbers(code: int, national: str) -> None:
    number = _parse(f"+{code}{national}", None)
    if number is not None:
        assert (
            _e164_digits(number)
            == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
        )


def _outcome(text: str) -> phonenumbers.PhoneNumber | int:
    """The parsed number, or the error type of the parse."""
    try:
        return phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        return exc.error_type


@FAST
@given(
    st.one_of(
        st.text(alphabet="0123456789 ().-", max_size=40),
        st.from_regex(r"\A[0-9]{1,3}[ .-]?\(?[0-9]{2,4}\)?[ .-]?[0-9]{2,4}[ .-]?[0-9]{0,5}\Z"),
    )
)
def test_plain_international_text_parses_as_its_digits(rest: str) -> None:
    text = "+" + rest
    assert _PLAIN_INTERNATIONAL.fullmatch(text)
    compact = "+" + _NOT_DECIMAL.sub("", text)
    assert _outcome(text) == _outcome(compact)


COUNTRIES = st.sampled_from(
    [None, "us", "US", "gb", "de", "fr", "it", "ca", "in", "br", "jp", "au", "ru", "kz", "Narnia"]
)
phone_text = st.one_of(
    st.text(alphabet="0123456789 +-().", max_size=24),
    st.builds(lambda rest: "+" + rest, st.text(alphabet="0123456789 -().", max_size=24)),
    st.from_regex(r"\A(\+|00)?[1-9][0-9]{6,13}\Z"),
    st.builds(
        lambda number, fmt: phonenumbers.format_number(number, fmt),
        st.sampled_from(EXAMPLES),
        st.sampled_from(
            [
                phonenumbers.PhoneNumberFormat.E164,
                phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                phonenumbers.PhoneNumberFormat.NATIONAL,
                phonenumbers.PhoneNumberFormat.RFC3966,
            ]
        ),
    ),
    st.text(max_size=24),
)


@FAST
@given(phone_text, COUNTRIES)
def test_normalize_phone_equals_the_plain_library_calls(value: str, country: str | None) -> None:
    assert normalize_phone(value, country=country) == reference_normalize_phone(
        value, country=country
    )


def test_normalize_phone_on_every_example_number_in_every_format() -> None:
    for number in EXAMPLES:
        region = phonenumbers.region_code_for_number(number)
        for fmt in (
            phonenumbers.PhoneNumberFormat.E164,
            phonenumbers.PhoneNumberFormat.INTERNATIONAL,
            phonenumbers.PhoneNumberFormat.NATIONAL,
        ):
            text = phonenumbers.format_number(number, fmt)
            for country in (None, region):
                assert normalize_phone(text, country=country) == reference_normalize_phone(
                    text, country=country
                ), (text, country)


def test_one_reading_valid_or_possible_in_either_order() -> None:
    """A single reading is sent when it is possible or valid: the cheap test first changes
    nothing for numbers that are only one of the two (valid with under 6 national digits or a
    leading zero; possible but not valid) or neither."""
    cases = {
        ("+683 4002", None): "6834002",  # valid, 4 national digits: not "possible" here
        ("+39 06 6982 0000", None): "390669820000",  # valid, Italian leading zero
        ("066982000", "IT"): "39066982000",  # the same, national
        ("+1 555 555 5555", None): "15555555555",  # possible, not valid
        ("+1 650 555 1234", None): "16505551234",  # both
        ("+49 30 1", None): None,  # neither
        ("+1 1234", None): None,
    }
    for (text, country), expected in cases.items():
        assert normalize_phone(text, country=country) == expected, text
        assert reference_normalize_phone(text, country=country) == expected, text
