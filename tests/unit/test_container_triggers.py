"""Triggers: every operator, every condition source, groups, event names, exceptions, consent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tagserver.consent import Consent
from tagserver.container.triggers import OPERATORS
from tests.containers import compile_container, http_tag, make_scope, meta_tag, run

MISSING = object()

# (operator, value written in the condition, actual event data value or MISSING, ignore_case, fires)
OPERATOR_CASES: list[tuple[str, Any, Any, bool, bool]] = [
    ("equals", "abc", "abc", False, True),
    ("equals", "abc", "ABC", False, False),
    ("equals", "abc", "ABC", True, True),
    ("equals", 100, "100.0", False, True),
    ("equals", 100, 100.5, False, False),
    ("equals", True, True, False, True),
    ("equals", "true", True, False, True),
    ("equals", "abc", ["x", "abc"], False, True),
    ("equals", "abc", MISSING, False, False),
    ("not_equals", "abc", "abd", False, True),
    ("not_equals", "abc", "abc", False, False),
    ("not_equals", "abc", "ABC", True, False),
    ("not_equals", "abc", MISSING, False, True),
    ("contains", "lo w", "hello world", False, True),
    ("contains", "ELL", "hello", False, False),
    ("contains", "ELL", "hello", True, True),
    ("contains", "234", 12345, False, True),
    ("contains", "046", ["04639", "1"], False, True),
    ("contains", "x", MISSING, False, False),
    ("not_contains", "bot", "Mozilla/5.0", False, True),
    ("not_contains", "bot", "Googlebot/2.1", False, False),
    ("not_contains", "BOT", "Googlebot/2.1", True, False),
    ("not_contains", "bot", MISSING, False, True),
    ("starts_with", "https://", "https://shop.example", False, True),
    ("starts_with", "HTTPS://", "https://shop.example", False, False),
    ("starts_with", "HTTPS://", "https://shop.example", True, True),
    ("starts_with", "x", MISSING, False, False),
    ("not_starts_with", "/admin", "/checkout", False, True),
    ("not_starts_with", "/admin", "/admin/users", False, False),
    ("ends_with", ".pdf", "/files/a.pdf", False, True),
    ("ends_with", ".PDF", "/files/a.pdf", True, True),
    ("ends_with", ".pdf", "/files/a.pdf?x", False, False),
    ("not_ends_with", ".pdf", "/files/a.html", False, True),
    ("not_ends_with", ".pdf", "/files/a.pdf", False, False),
    ("regex", r"^/checkout/step-[0-9]$", "/checkout/step-2", False, True),
    ("regex", r"^/checkout/", "/CHECKOUT/step-2", False, False),
    ("regex", r"^/checkout/", "/CHECKOUT/step-2", True, True),
    ("regex", r"step", "my-step-here", False, True),  # search, not a full match
    ("regex", r"^A-[0-9]+$", ["B-1", "A-22"], False, True),
    ("regex", r".*", MISSING, False, False),
    ("not_regex", r"^test-", "order-1", False, True),
    ("not_regex", r"^test-", "test-1", False, False),
    ("not_regex", r".*", MISSING, False, True),
    ("exists", None, "x", False, True),
    ("exists", None, 0, False, True),
    ("exists", None, False, False, True),
    ("exists", None, "", False, False),
    ("exists", None, [], False, False),
    ("exists", None, MISSING, False, False),
    ("not_exists", None, MISSING, False, True),
    ("not_exists", None, "", False, True),
    ("not_exists", None, "x", False, False),
    ("in", ["DE", "AT", "CH"], "AT", False, True),
    ("in", ["DE", "AT", "CH"], "at", False, False),
    ("in", ["DE", "AT", "CH"], "at", True, True),
    ("in", [5, 6], 5, False, True),
    ("in", [5, 6], "6", False, True),
    ("in", ["DE"], ["FR", "DE"], False, True),
    ("in", ["DE"], MISSING, False, False),
    ("not_in", ["DE", "AT"], "FR", False, True),
    ("not_in", ["DE", "AT"], "DE", False, False),
    ("not_in", ["DE", "AT"], MISSING, False, True),
    ("gt", 100, 100.01, False, True),
    ("gt", 100, 100, False, False),
    ("gt", 100, "250.50", False, True),
    ("gt", 100, "abc", False, False),
    ("gt", 100, True, False, False),
    ("gt", 100, [5, 500], False, True),
    ("gt", 100, MISSING, False, False),
    ("gte", 100, 100, False, True),
    ("gte", 100, 99.99, False, False),
    ("lt", 0, -1, False, True),
    ("lt", 0, 0, False, False),
    ("lt", 10, " 9.5 ", False, True),
    ("lte", 10, 10, False, True),
    ("lte", 10, 10.5, False, False),
]


def test_the_cases_cover_every_operator() -> None:
    assert {case[0] for case in OPERATOR_CASES} == set(OPERATORS)


@pytest.mark.parametrize(("op", "value", "actual", "ignore_case", "fires"), OPERATOR_CASES)
def test_operator(
    tmp_path: Path, op: str, value: Any, actual: Any, ignore_case: bool, fires: bool
) -> None:
    condition: dict[str, Any] = {"event": "custom_data.x", "op": op}
    if value is not None:
        condition["value"] = value
    if ignore_case:
        condition["ignore_case"] = True
    container = compile_container(tmp_path, {"tags": [http_tag(conditions=[condition])]})
    custom = {} if actual is MISSING else {"x": actual}
    result = run(container, make_scope({"custom_data": custom}))
    assert (result.fired == ["hook"]) is fires, (op, value, actual, result.not_fired)


# ---------------------------------------------------------------------------------------------
# sources


def fires(tmp_path: Path, condition: Any, **scope: Any) -> bool:
    container = compile_container(
        tmp_path,
        {
            "variables": {"tier": {"type": "constant", "value": "gold"}},
            "tags": [http_tag(conditions=condition)],
        },
    )
    return run(container, make_scope(**scope)).fired == ["hook"]


def test_cookie_source(tmp_path: Path) -> None:
    condition = {"cookie": "internal", "op": "equals", "value": "1"}
    assert fires(tmp_path, condition, cookies={"internal": "1"})
    assert not fires(tmp_path, condition, cookies={"internal": "0"})
    assert not fires(tmp_path, condition)


def test_header_source_is_case_insensitive(tmp_path: Path) -> None:
    condition = {"header": "X-Shop-Staff", "op": "exists"}
    assert fires(tmp_path, condition, headers={"x-shop-staff": "jane"})
    assert not fires(tmp_path, condition, headers={"x-other": "1"})


def test_query_source_reads_page_location(tmp_path: Path) -> None:
    assert fires(tmp_path, {"query": "utm_source", "op": "equals", "value": "facebook"})
    assert fires(tmp_path, {"query": "ref", "op": "equals", "value": "a b"})  # decoded
    assert not fires(tmp_path, {"query": "gclid", "op": "exists"})
    page = {"page_location": "https://shop.example/?gclid=abc"}
    assert fires(tmp_path, {"query": "gclid", "op": "exists"}, data=page)


def test_var_source(tmp_path: Path) -> None:
    assert fires(tmp_path, {"var": "tier", "op": "in", "value": ["gold", "silver"]})
    assert not fires(tmp_path, {"var": "tier", "op": "equals", "value": "silver"})


def test_consent_source(tmp_path: Path) -> None:
    condition = {"consent": "analytics_storage", "op": "equals", "value": "denied"}
    assert fires(tmp_path, condition, consent=Consent(analytics_storage=False))
    assert not fires(tmp_path, condition)


def test_event_source_reads_nested_paths_and_list_indexes(tmp_path: Path) -> None:
    data = {"items": [{"item_id": "A-1"}, {"item_id": "B-2"}]}
    assert fires(tmp_path, {"event": "items.1.item_id", "op": "equals", "value": "B-2"},
                 data=data)
    assert not fires(tmp_path, {"event": "items.5.item_id", "op": "exists"}, data=data)


# ---------------------------------------------------------------------------------------------
# groups


def test_all_any_and_nesting(tmp_path: Path) -> None:
    big = {"event": "value", "op": "gte", "value": 100}
    eur = {"event": "currency", "op": "equals", "value": "EUR"}
    staff = {"cookie": "internal", "op": "exists"}
    nested = {"all": [big, {"any": [eur, staff]}]}
    assert fires(tmp_path, nested, data={"value": 150, "currency": "EUR"})
    assert fires(tmp_path, nested, data={"value": 150, "currency": "USD"},
                 cookies={"internal": "1"})
    assert not fires(tmp_path, nested, data={"value": 150, "currency": "USD"})
    assert not fires(tmp_path, nested, data={"value": 50, "currency": "EUR"})
    assert fires(tmp_path, [big, eur], data={"value": 100, "currency": "EUR"})  # list = all
    assert not fires(tmp_path, [big, eur], data={"value": 100, "currency": "CHF"})
    assert fires(tmp_path, {"any": [big, eur]}, data={"value": 1, "currency": "EUR"})


# ---------------------------------------------------------------------------------------------
# event names, triggers, exceptions, consent


@pytest.mark.parametrize(
    ("events", "event_name", "expected"),
    [
        (["Purchase"], "purchase", True),
        (["purchase"], "Purchase", True),
        (["page_view"], "PageView", True),
        (["Purchase"], "PageView", False),
        (["newsletter_signup"], "newsletter_signup", True),
        (["newsletter_signup"], "Newsletter_Signup", False),
        ("*", "anything_at_all", True),
    ],
)
def test_event_name_lists_match_meta_and_ga4_names(
    tmp_path: Path, events: Any, event_name: str, expected: bool
) -> None:
    container = compile_container(tmp_path, {"tags": [http_tag(events=events)]})
    assert (run(container, make_scope({"event_name": event_name})).fired == ["hook"]) is expected


def test_named_and_inline_triggers_fire_on_any_match(tmp_path: Path) -> None:
    container = compile_container(
        tmp_path,
        {
            "triggers": {"purchase": {"events": ["Purchase"]}},
            "tags": [
                http_tag(
                    triggers=[
                        "purchase",
                        {"events": ["Lead"], "conditions": [{"event": "value", "op": "gt",
                                                             "value": 0}]},
                    ]
                )
            ],
        },
    )
    assert run(container, make_scope({"event_name": "Purchase"})).fired == ["hook"]
    assert run(container, make_scope({"event_name": "Lead", "value": 5})).fired == ["hook"]
    result = run(container, make_scope({"event_name": "Lead"}))
    assert result.fired == []
    assert result.not_fired == [("hook", "no trigger matched")]


def test_exceptions_block_the_tag(tmp_path: Path) -> None:
    container = compile_container(
        tmp_path,
        {
            "triggers": {
                "internal": {"conditions": {"cookie": "internal", "op": "equals", "value": "1"}}
            },
            "tags": [
                http_tag(
                    events=["Purchase"],
                    exceptions=["internal", {"conditions": [{"header": "x-test", "op": "exists"}]}],
                )
            ],
        },
    )
    assert run(container, make_scope()).fired == ["hook"]
    blocked = run(container, make_scope(cookies={"internal": "1"}))
    assert blocked.fired == []
    assert blocked.not_fired == [("hook", "blocked by exception 'internal'")]
    assert run(container, make_scope(headers={"x-test": "1"})).fired == []


def test_consent_requirements_per_tag(tmp_path: Path) -> None:
    container = compile_container(
        tmp_path,
        {
            "tags": [
                meta_tag(),
                http_tag("crm"),
                http_tag("analytics", require_consent=["analytics_storage"]),
                meta_tag("meta-no-consent", require_consent=[]),
            ]
        },
    )
    denied = make_scope(consent=Consent(ad_storage=False, analytics_storage=False))
    result = run(container, denied)
    assert result.fired == ["crm", "meta-no-consent"]
    assert ("meta", "consent ad_storage denied") in result.not_fired
    assert ("analytics", "consent analytics_storage denied") in result.not_fired
    assert run(container, make_scope()).fired == ["meta", "crm", "analytics", "meta-no-consent"]


def test_a_tag_without_trigger_fires_for_every_event(tmp_path: Path) -> None:
    container = compile_container(tmp_path, {"tags": [http_tag()]})
    for name in ("Purchase", "page_view", "custom_thing"):
        assert run(container, make_scope({"event_name": name})).fired == ["hook"]
