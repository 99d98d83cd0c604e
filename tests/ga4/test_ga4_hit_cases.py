"""Golden tests: every real gtag.js hit of the shared ``ga4_hits.json`` (README: cases/).

``expect.events`` lists, in order, event data fields the ga4 client must produce (sGTM common event
data names); ``expect.meta`` the Meta event the shipped container derives; ``richsstsse`` whether
the hit asks for the command stream. Expected fields are a subset: the client produces more
(``x-ga-*`` protocol fields), which other tests pin.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from tagserver.clients.ga4 import parse_ga4_request
from tagserver.meta.from_ga4 import meta_from_ga4
from tagserver.meta.validate import clean_custom_data
from tests.cases import find_case_file


def _load_cases() -> list[Any]:
    cases: list[dict[str, Any]] = json.loads(
        find_case_file("ga4_hits.json").read_text(encoding="utf-8")
    )
    return [pytest.param(case, id=case["id"]) for case in cases]


CASES = _load_cases()


def assert_contains(actual: Any, expected: Any, path: str = "$") -> None:
    """``expected`` is part of ``actual``: dict keys recursively, lists item by item and of
    equal length, scalars equal with their JSON type (``1`` is not ``"1"``)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} is missing; have {sorted(actual)}"
            assert_contains(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), f"{path}: {len(actual)} items, expected {len(expected)}"
        for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
            assert_contains(got, want, f"{path}[{index}]")
    else:
        assert type(actual) is type(expected) and actual == expected, (
            f"{path}: got {actual!r}, expected {expected!r}"
        )


def parse_case(case: dict[str, Any]) -> Any:
    url = urlsplit(case["path"])
    return parse_ga4_request(
        path=url.path,
        query=url.query,
        body=case["body"].encode("utf-8"),
        ip_override="198.51.100.7",
        user_agent=case["headers"].get("User-Agent"),
    )


@pytest.mark.parametrize("case", CASES)
def test_hit_parses_into_the_described_event_data(case: dict[str, Any]) -> None:
    batch = parse_case(case)
    expect = case["expect"]
    assert batch.rejected == ()
    assert batch.richsstsse is bool(expect.get("richsstsse", False))
    assert len(batch.hits) == len(expect["events"])
    for hit, wanted in zip(batch.hits, expect["events"], strict=True):
        assert_contains(hit.event_data, wanted)
        assert hit.problems == ()
        # the request context is the visitor's, never taken from the hit
        assert hit.event_data["ip_override"] == "198.51.100.7"
        assert hit.event_data["user_agent"] == case["headers"]["User-Agent"]


@pytest.mark.parametrize(
    "case", [c for c in CASES if "meta" in c.values[0]["expect"]]
)
def test_hit_maps_to_the_described_meta_event(case: dict[str, Any]) -> None:
    (hit,) = parse_case(case).hits
    meta = meta_from_ga4(hit.event_data)
    custom = clean_custom_data(meta.custom_data)
    assert custom.dropped == []
    user_data = dict(meta.user_data)
    for key in ("fbp", "fbc"):
        if getattr(meta, key):
            user_data[key] = getattr(meta, key)
    view = {
        "event_name": meta.event_name,
        "event_id": meta.event_id,
        "custom_data": custom.data,
        "user_data": user_data,
    }
    assert_contains(view, case["expect"]["meta"])
    if "event_id" in case["expect"]["meta"]:
        assert meta.event_id_source == "param"


def test_the_cases_cover_the_protocol_shapes() -> None:
    """The file keeps its variety: GET and POST, with and without richsstsse, items, consent."""
    cases = [p.values[0] for p in CASES]
    assert {c["method"] for c in cases} == {"GET", "POST"}
    assert any(c["expect"].get("richsstsse") for c in cases)
    assert any(not c["expect"].get("richsstsse") for c in cases)
    assert any("items" in e for c in cases for e in c["expect"]["events"])
    assert any("meta" in c["expect"] for c in cases)
