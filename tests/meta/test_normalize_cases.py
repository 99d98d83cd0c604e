"""Every vector of the shared cases file ``normalize.json`` as its own test (README: cases/).

``normalized`` is the string that is hashed and ``sha256`` what is sent (``null``: the key is left
out). Each vector is checked through its single normaliser and through ``hash_user_data``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tagserver.meta.normalize import (
    hash_user_data,
    is_prehashed,
    normalize_city,
    normalize_country,
    normalize_date_of_birth,
    normalize_email,
    normalize_external_id,
    normalize_gender,
    normalize_name,
    normalize_phone,
    normalize_state,
    normalize_zip,
    sha256_hex,
)
from tests.cases import find_case_file


def _load_cases() -> list[Any]:
    path = find_case_file("normalize.json")
    cases: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return [pytest.param(case, id=f"{case['field']}+{case['input']!r}") for case in cases]


CASES = _load_cases()


def _normalize(field: str, value: str, country: str | None) -> str | None:
    if field == "ph":
        return normalize_phone(value, country=country)
    if field == "st":
        return normalize_state(value, country=country)
    if field == "zp":
        return normalize_zip(value, country=country)
    single: dict[str, Callable[[str], str | None]] = {
        "em": normalize_email,
        "fn": normalize_name,
        "ln": normalize_name,
        "ct": normalize_city,
        "country": normalize_country,
        "db": normalize_date_of_birth,
        "ge": normalize_gender,
        "external_id": normalize_external_id,
    }
    return single[field](value)


@pytest.mark.parametrize("case", CASES)
def test_normalize_case(case: dict[str, Any]) -> None:
    field, value = case["field"], case["input"]
    country = case.get("country")
    expected_normalized, expected_sha = case["normalized"], case["sha256"]

    # The single normaliser (a pre-hashed value is never normalised: it passes through).
    if is_prehashed(value):
        assert expected_normalized == value.strip().lower()
        assert expected_sha == expected_normalized
    else:
        assert _normalize(field, value, country) == expected_normalized
        if expected_normalized is not None:
            assert sha256_hex(expected_normalized) == expected_sha

    # The whole mapping, as a browser or backend sends it.
    user_data: dict[str, object] = {field: value}
    if country is not None and field != "country":
        user_data["country"] = country
    out = hash_user_data(user_data)
    if expected_sha is None:
        assert field not in out
    else:
        assert out[field] == expected_sha
        assert hash_user_data({**user_data, field: [value, value]})[field] == [expected_sha]
