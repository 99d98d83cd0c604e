"""tagserver.ga4.query and tagserver.ga4.numbers: strict decoding of GA4 parameter strings."""

from __future__ import annotations

import pytest

from tagserver.exceptions import HitRejected
from tagserver.ga4.numbers import parse_number
from tagserver.ga4.query import (
    MAX_NAME_LENGTH,
    MAX_PARAMS,
    MAX_VALUE_LENGTH,
    Param,
    decode_component,
    split_params,
)


def test_pairs_are_decoded_in_order_and_keep_their_raw_text() -> None:
    params = split_params("v=2&dt=Food%20Shop&ep.x=a+b&richsstsse", where="query")
    assert params == [
        Param("v", "2", "v=2"),
        Param("dt", "Food Shop", "dt=Food%20Shop"),
        Param("ep.x", "a b", "ep.x=a+b"),
        Param("richsstsse", "", "richsstsse"),
    ]


def test_empty_pairs_are_skipped_and_empty_values_kept() -> None:
    assert split_params("&&uam=&&v=2&", where="query") == [
        Param("uam", "", "uam="),
        Param("v", "2", "v=2"),
    ]


def test_only_the_first_equals_sign_splits() -> None:
    (param,) = split_params("dl=https%3A%2F%2Fx.example%2F%3Fa%3Db=c", where="q")
    assert param.value == "https://x.example/?a=b=c"


def test_value_decoded_once_only() -> None:
    # gtag encodes uafvl brands twice: one level stays for the client hints parser
    (param,) = split_params("uafvl=Not(A%253ABrand%3B24", where="q")
    assert param.value == "Not(A%3ABrand;24"


def test_utf8_escapes_are_decoded() -> None:
    assert decode_component("Caf%C3%A9%20%E2%82%AC", where="q") == "Café €"


@pytest.mark.parametrize("text", ["dt=%", "dt=%4", "dt=%zz", "dt=100%", "d%t=1", "dt=%%41"])
def test_broken_percent_encoding_is_a_400(text: str) -> None:
    with pytest.raises(HitRejected) as info:
        split_params(text, where="query")
    assert info.value.status == 400
    assert "percent" in info.value.error


@pytest.mark.parametrize("text", ["dt=%E9", "dt=%C3", "dt=%ED%A0%80", "dt=%FF%FE"])
def test_escapes_that_are_not_utf8_are_a_400(text: str) -> None:
    with pytest.raises(HitRejected) as info:
        split_params(text, where="query")
    assert "UTF-8" in info.value.error


@pytest.mark.parametrize("text", ["dt=a b", "dt=a\tb", "dt=a\x00", "dt=\x7f", "v=2\r"])
def test_raw_spaces_and_control_characters_are_refused(text: str) -> None:
    with pytest.raises(HitRejected) as info:
        split_params(text, where="body line 1")
    assert info.value.errors[0]["field"] == "body line 1"


def test_a_pair_without_a_name_is_refused() -> None:
    with pytest.raises(HitRejected, match="without a name"):
        split_params("v=2&=x", where="query")


def test_length_and_count_limits() -> None:
    split_params("n=" + "x" * MAX_VALUE_LENGTH, where="q")
    with pytest.raises(HitRejected, match="value too long"):
        split_params("n=" + "x" * (MAX_VALUE_LENGTH + 1), where="q")
    # the limit is on the decoded value: %41 counts as one character
    split_params("n=" + "%41" * MAX_VALUE_LENGTH, where="q")
    with pytest.raises(HitRejected, match="name"):
        split_params("n" * (MAX_NAME_LENGTH + 1) + "=1", where="q")
    split_params("&".join(f"p{i}=1" for i in range(MAX_PARAMS)), where="q")
    with pytest.raises(HitRejected, match="too many"):
        split_params("&".join(f"p{i}=1" for i in range(MAX_PARAMS + 1)), where="q")


def test_non_ascii_raw_text_is_allowed_in_a_line() -> None:
    (param,) = split_params("dt=Café", where="body line 1")
    assert param.value == "Café"


@pytest.mark.parametrize(
    ("text", "number"),
    [("3", 3), ("-4", -4), ("0", 0), ("10.01", 10.01), ("1e3", 1000.0), (".5", 0.5),
     ("30.", 30.0), ("007", 7)],
)
def test_numbers(text: str, number: float) -> None:
    parsed = parse_number(text)
    assert parsed == number
    assert type(parsed) is type(number)


@pytest.mark.parametrize(
    "text", ["", " 3", "3 ", "1,5", "NaN", "nan", "inf", "Infinity", "0x10", "1e999", "1_000",
             "--1", "+", "1.2.3", "٣"],
)
def test_not_numbers(text: str) -> None:
    assert parse_number(text) is None
