"""Hypothesis properties of tagserver.meta.normalize.

- every normaliser is idempotent: normalize(normalize(x)) == normalize(x) when the first is set;
- hash_user_data never sends sha256("") and only sends digests;
- a 64-hex value is never hashed again (output == input.strip().lower()).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable
from datetime import date

import phonenumbers
import pycountry  # type: ignore[import-untyped,unused-ignore]
from hypothesis import given, settings
from hypothesis import strategies as st

from tagserver.meta.normalize import (
    HASHED_KEYS,
    hash_user_data,
    is_prehashed,
    normalize_city,
    normalize_country,
    normalize_currency,
    normalize_date_of_birth,
    normalize_email,
    normalize_external_id,
    normalize_gender,
    normalize_name,
    normalize_phone,
    normalize_state,
    normalize_zip,
    parse_value,
    sha256_hex,
)

EMPTY_SHA256 = sha256_hex("")
#: ~200 examples per property keeps the suite fast; TAGSERVER_HYPOTHESIS_EXAMPLES=5000 to dig.
FAST = settings(
    max_examples=int(os.environ.get("TAGSERVER_HYPOTHESIS_EXAMPLES", "200")),
    deadline=None,
    database=None,
)

COUNTRIES = st.sampled_from(
    [None, "us", "US", "gb", "de", "fr", "it", "ca", "in", "br", "jp", "au", "nz", "sg", "Narnia"]
)
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)

# Phone-like text: formatted digits, explicit international forms, real example numbers.
phone_text = st.one_of(
    st.text(alphabet="0123456789 +-().", max_size=20),
    st.from_regex(r"\A(\+|00)?[1-9][0-9]{6,13}\Z"),
    st.builds(
        lambda region, fmt: phonenumbers.format_number(
            phonenumbers.example_number(region) or phonenumbers.PhoneNumber(), fmt
        ),
        st.sampled_from(REGIONS),
        st.sampled_from(
            [
                phonenumbers.PhoneNumberFormat.E164,
                phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                phonenumbers.PhoneNumberFormat.NATIONAL,
            ]
        ),
    ),
    st.text(max_size=20),
)

date_text = st.one_of(
    st.builds(
        lambda d, fmt: d.strftime(fmt),
        st.dates(min_value=date(1890, 1, 1), max_value=date(2100, 12, 31)),
        st.sampled_from(["%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y"]),
    ),
    st.from_regex(r"\A[0-9]{1,4}[-/.][0-9]{1,2}[-/.][0-9]{1,4}\Z"),
    st.text(max_size=12),
)

place_names = st.sampled_from(
    [str(c.name) for c in pycountry.countries]
    + [str(s.name) for s in pycountry.subdivisions.get(country_code="US")]  # type: ignore[no-untyped-call,unused-ignore]
    + [str(s.name) for s in pycountry.subdivisions.get(country_code="CA")]  # type: ignore[no-untyped-call,unused-ignore]
    + ["UK", "Deutschland", "España", "Québec", "N.Y.", "us-ca"]
)

gender_text = st.one_of(
    st.sampled_from(["F", "female", "Woman", "w", "Frau", "MALE", "Mann", "homme", "hombre"]),
    st.text(max_size=8),
)

email_text = st.one_of(st.emails(), st.text(max_size=30), st.from_regex(r"\A\s*\S+@\S+\s*\Z"))


def _check_idempotent(normalize: Callable[[str], str | None], value: str) -> None:
    once = normalize(value)
    if once is not None:
        assert once != ""
        assert normalize(once) == once


@FAST
@given(email_text)
def test_email_idempotent(value: str) -> None:
    _check_idempotent(normalize_email, value)


@FAST
@given(phone_text, COUNTRIES)
def test_phone_idempotent(value: str, country: str | None) -> None:
    # A normalised number normalises to itself without a country, with a "+", and with the
    # visitor's country when it is a valid number of that country. Bare digits are ambiguous
    # otherwise: a foreign or merely "possible" number can also be a valid national number of
    # the visitor's country (Germany's ranges accept almost any length), and national wins.
    once = normalize_phone(value, country=country)
    if once is not None:
        assert once.isdigit() and not once.startswith("0")
        assert normalize_phone(once, country=None) == once
        assert normalize_phone("+" + once, country=country) == once
        number = phonenumbers.parse("+" + once)
        own_region = phonenumbers.region_code_for_number(number)
        if country and own_region == country.upper() and phonenumbers.is_valid_number(number):
            assert normalize_phone(once, country=country) == once


@FAST
@given(st.sampled_from(REGIONS), st.sampled_from(["E164", "INTERNATIONAL", "NATIONAL"]))
def test_phone_example_numbers_round_trip(region: str, style: str) -> None:
    number = phonenumbers.example_number(region)
    if number is None:
        return
    text = phonenumbers.format_number(number, getattr(phonenumbers.PhoneNumberFormat, style))
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    assert normalize_phone(text, country=region) == e164
    assert normalize_phone(e164, country=region) == e164
    assert normalize_phone(e164, country=None) == e164


#: Text rich in what trips folding: combining, enclosing and spacing marks, variation selectors,
#: emoji, letters of scripts that need their marks.
marked_text = st.text(
    alphabet=st.one_of(
        st.characters(categories=["Mn", "Mc", "Me"]),
        st.sampled_from(list("\ufe0f\ufe0e\U000e0100\u20e3❤😀1aAé देवीกิตติمُحَمَّد\u1100\u1161-.")),
        st.characters(),
    ),
    max_size=30,
)


@FAST
@given(st.one_of(st.text(max_size=30), marked_text))
def test_name_and_city_idempotent(value: str) -> None:
    _check_idempotent(normalize_name, value)
    _check_idempotent(normalize_city, value)


@FAST
@given(marked_text)
def test_folded_text_never_starts_with_a_mark_nor_keeps_selectors(value: str) -> None:
    for normalize in (normalize_name, normalize_city):
        out = normalize(value)
        if out is None:
            continue
        assert unicodedata.category(out[0])[0] != "M", (value, out)
        assert not any(unicodedata.category(ch) == "Me" for ch in out)
        assert not any("\ufe00" <= ch <= "\ufe0f" or "\U000e0100" <= ch <= "\U000e01ef"
                       for ch in out)


@FAST
@given(st.one_of(place_names, st.text(max_size=20)), COUNTRIES)
def test_state_idempotent(value: str, country: str | None) -> None:
    _check_idempotent(lambda v: normalize_state(v, country=country), value)


@FAST
@given(st.one_of(st.text(alphabet="0123456789abcXYZ -\u2013", max_size=12), st.text()), COUNTRIES)
def test_zip_idempotent(value: str, country: str | None) -> None:
    _check_idempotent(lambda v: normalize_zip(v, country=country), value)


@FAST
@given(st.one_of(place_names, st.text(max_size=12)))
def test_country_idempotent(value: str) -> None:
    _check_idempotent(normalize_country, value)


@FAST
@given(date_text, st.sampled_from([None, True, False]))
def test_date_of_birth_idempotent(value: str, dayfirst: bool | None) -> None:
    once = normalize_date_of_birth(value, dayfirst=dayfirst)
    if once is not None:
        assert re.fullmatch(r"(19|20)[0-9]{6}", once)
        assert normalize_date_of_birth(once) == once


@FAST
@given(gender_text)
def test_gender_idempotent(value: str) -> None:
    _check_idempotent(normalize_gender, value)
    assert normalize_gender(value) in (None, "f", "m")


@FAST
@given(st.text(max_size=30))
def test_external_id_idempotent(value: str) -> None:
    _check_idempotent(normalize_external_id, value)


@FAST
@given(st.one_of(st.sampled_from(["eur", " usd", "Gbp", "XXX"]), st.text(max_size=5)))
def test_currency_idempotent(value: str) -> None:
    _check_idempotent(normalize_currency, value)


@FAST
@given(
    st.one_of(
        st.floats(),
        st.integers(),
        st.booleans(),
        st.text(alphabet="0123456789.,- '", max_size=15),
        st.text(max_size=10),
    ),
    st.sampled_from([None, "de", "de_DE", "fr", "en", "en_US", "de_CH", "xx"]),
)
def test_parse_value_is_finite_or_none(value: object, locale: str | None) -> None:
    number = parse_value(value, locale=locale)
    assert number is None or (isinstance(number, float) and abs(number) != float("inf"))
    assert number is None or number == number  # not NaN


def _any_value(key: str) -> st.SearchStrategy[object]:
    scalar = {
        "em": email_text,
        "ph": phone_text,
        "db": date_text,
        "ge": gender_text,
        "st": place_names,
        "country": place_names,
    }.get(key, st.text(max_size=20))
    item: st.SearchStrategy[object] = st.one_of(
        scalar, st.just(""), st.just("   "), st.integers(), st.none(), st.booleans()
    )
    return st.one_of(item, st.lists(item, max_size=4))


user_data_strategy = st.fixed_dictionaries(
    {}, optional={key: _any_value(key) for key in HASHED_KEYS}
)
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


@FAST
@given(user_data_strategy, st.sampled_from([None, "us", "DE", "gb"]))
def test_hash_user_data_never_sends_empty_hash(
    user_data: dict[str, object], default_country: str | None
) -> None:
    out = hash_user_data(user_data, default_country=default_country)
    assert set(out) <= set(user_data)
    for key, sent in out.items():
        values = sent if isinstance(sent, list) else [sent]
        assert values, key
        assert isinstance(sent, list) is isinstance(user_data[key], list)
        assert len(set(values)) == len(values)
        for value in values:
            assert value != EMPTY_SHA256
            assert HEX_DIGEST.fullmatch(value), value


hex_digest = st.from_regex(r"\A[0-9a-fA-F]{64}\Z")
padding = st.text(alphabet=" \t\n", max_size=3)


@FAST
@given(st.sampled_from(HASHED_KEYS), hex_digest, padding, padding)
def test_prehashed_is_never_hashed_again(key: str, digest: str, left: str, right: str) -> None:
    value = left + digest + right
    assert is_prehashed(value)
    assert hash_user_data({key: value}, default_country="us") == {key: value.strip().lower()}
    assert hash_user_data({key: [value]}) == {key: [value.strip().lower()]}


@FAST
@given(hex_digest, st.from_regex(r"\A[A-Za-z0-9_-]{2,8}\Z"))
def test_prehashed_appendix_is_kept(digest: str, appendix: str) -> None:
    value = f" {digest}.{appendix} "
    assert is_prehashed(value)
    assert hash_user_data({"em": value}) == {"em": f"{digest.lower()}.{appendix}"}
