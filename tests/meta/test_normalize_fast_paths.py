"""The shortcuts of tagserver.meta.normalize give what the general rules give.

ASCII e-mails and zips skip Unicode normalisation and the per-character category loop; the
phone digits come from one regex; hash_user_data caches one value's hash. Each is checked here
against the general rule it stands for.
"""

from __future__ import annotations

import os
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from tagserver.meta import normalize
from tagserver.meta.normalize import (
    _TRIM,
    _hash_item,
    _normalize_email_text,
    _zip_text,
    hash_user_data,
    normalize_email,
    normalize_zip,
)

FAST = settings(
    max_examples=int(os.environ.get("TAGSERVER_HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    database=None,
)
ASCII = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=30)
EMAILISH = st.text(alphabet=string.ascii_letters + string.digits + "@.-_+ \t\x00\x7f", max_size=30)


@FAST
@given(st.one_of(ASCII, EMAILISH, st.text(max_size=20)))
def test_email_shortcut_matches_the_unicode_rule(value: str) -> None:
    assert normalize_email(value) == _normalize_email_text(value.strip(_TRIM))


@FAST
@given(st.one_of(ASCII, st.text(alphabet="0123456789 -ABCabc\t\x7f", max_size=12)))
def test_zip_shortcut_matches_the_unicode_rule(value: str) -> None:
    assert normalize._ASCII_ZIP_DROP.sub("", value.lower()) == _zip_text(value)
    assert normalize_zip(value, country=None) == normalize_zip(value + "\u00a0", country=None)


@FAST
@given(st.text(max_size=30))
def test_phone_digits_are_the_decimal_characters(value: str) -> None:
    assert normalize._NOT_DECIMAL.sub("", value) == "".join(ch for ch in value if ch.isdecimal())


@FAST
@given(st.dictionaries(
    st.sampled_from(normalize.HASHED_KEYS),
    st.one_of(st.text(max_size=20), st.lists(st.text(max_size=12), max_size=3),
              st.integers(), st.sampled_from(["Jane", "+44 7700 900123", "94025", "us", "e@x.io"])),
    max_size=6,
), st.sampled_from([None, "us", "de"]))  # fmt: skip
def test_cached_hashes_are_the_computed_ones(user_data: dict[str, object], default: str | None) -> None:
    first = hash_user_data(user_data, default_country=default)
    second = hash_user_data(user_data, default_country=default)  # from the cache
    assert first == second
    country = normalize._first_country(user_data.get("country"))
    if country is None and default:
        country = normalize.normalize_country(default)
    for key, out in first.items():
        raw = user_data[key]
        items = raw if isinstance(raw, list) else [raw]
        expected = []
        for item in items:
            text = normalize._as_text(key, item)
            if text is None or len(text) > normalize.MAX_VALUE_LENGTH:
                continue
            digest = _hash_item(key, text, country)
            if digest is not None and digest not in expected:
                expected.append(digest)
        assert out == (expected if isinstance(raw, list) else expected[0])


def test_the_cache_is_bounded() -> None:
    info = normalize._cached_hash_item.cache_info()
    assert info.maxsize is not None and info.maxsize <= 4096


class _Text(str):
    """A str subclass: takes the general branches that the shortcuts for ``str`` skip."""


NUMBERISH = st.text(alphabet="0123456789.,+- \u00a0eE", max_size=12)


@FAST
@given(st.one_of(NUMBERISH, st.text(max_size=12)))
def test_value_shortcut_matches_the_general_rule(value: str) -> None:
    assert normalize.parse_value(value) == normalize.parse_value(_Text(value))


@FAST
@given(st.one_of(st.text(alphabet="eurEURusdXTSxx \t\u00a0", max_size=12), st.text(max_size=10)))
def test_cached_currency_codes_match_the_rule(value: str) -> None:
    assert normalize.normalize_currency(value) == normalize._currency_code.__wrapped__(value)
    padded = " " * 10 + value  # over 8 characters: not cached, same rule
    assert normalize.normalize_currency(padded) == normalize.normalize_currency(value.lstrip(" "))


@FAST
@given(st.dictionaries(
    st.sampled_from([*normalize.HASHED_KEYS, "fbp", "lead_id"]),
    st.one_of(st.text(max_size=20), st.none(), st.integers(), st.lists(st.text(max_size=8), max_size=2),
              st.sampled_from(["Jane", "+44 7700 900123", "94025", "us", "e@x.io", "a" * 600,
                               "0" * 64])),
    max_size=8,
), st.sampled_from([None, "us", "de"]))  # fmt: skip
def test_string_values_shortcut_matches_the_general_branch(
    user_data: dict[str, object], default: str | None
) -> None:
    """hash_user_data and _first_country take a plain string without the general branch (which
    a str subclass still takes): same result, same key order."""
    general = {k: _Text(v) if type(v) is str else v for k, v in user_data.items()}
    fast = hash_user_data(user_data, default_country=default)
    slow = hash_user_data(general, default_country=default)
    assert fast == slow and list(fast) == list(slow)
    for value in user_data.values():
        if type(value) is str:
            assert normalize._first_country(value) == normalize._first_country(_Text(value))
