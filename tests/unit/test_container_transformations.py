"""Transformations: allow, augment and exclude, scoped to tags, in sGTM's order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.containers import compile_container, http_tag, make_scope, meta_tag, run

EVENT = {
    "value": 59.9,
    "currency": "EUR",
    "transaction_id": "1001",
    "ip_override": "203.0.113.7",
    "custom_data": {"value": 59.9, "currency": "EUR", "order_id": "1001", "coupon": "X"},
    "user_data": {"em": "jane@example.com", "ph": "+4917012345678", "country": "DE"},
}


def bodies(tmp_path: Path, transformations: list[dict[str, Any]], **scope: Any) -> dict[str, Any]:
    """Each http tag's body (the whole event data it sees), by tag name."""
    container = compile_container(
        tmp_path,
        {
            "transformations": transformations,
            "tags": [http_tag("crm", body="{{event}}"), http_tag("alerts", body="{{event}}")],
        },
    )
    result = run(container, make_scope({**EVENT, **scope.pop("data", {})}, **scope))
    return {tag: o.payload["body"] for tag, o in zip(result.outbound_tags, result.outbound,
                                                     strict=True)}


def test_exclude_removes_paths_for_the_named_tags_only(tmp_path: Path) -> None:
    seen = bodies(tmp_path, [{"name": "no-pii", "type": "exclude", "tags": ["crm"],
                              "parameters": ["user_data.em", "user_data.ph", "ip_override"]}])
    assert seen["crm"]["user_data"] == {"country": "DE"}
    assert "ip_override" not in seen["crm"]
    assert seen["alerts"]["user_data"]["em"] == "jane@example.com"
    assert seen["alerts"]["ip_override"] == "203.0.113.7"


def test_exclude_of_an_alias_removes_its_source_and_back(tmp_path: Path) -> None:
    seen = bodies(tmp_path, [{"name": "no-value", "type": "exclude",
                              "parameters": ["value", "custom_data.order_id"]}])
    crm = seen["crm"]
    assert "value" not in crm and "value" not in crm["custom_data"]
    assert "transaction_id" not in crm and "order_id" not in crm["custom_data"]
    assert crm["currency"] == "EUR" and crm["custom_data"]["coupon"] == "X"


def test_allow_keeps_only_the_listed_parameters_and_the_event_identity(tmp_path: Path) -> None:
    seen = bodies(tmp_path, [{"name": "minimal", "type": "allow", "tags": ["alerts"],
                              "parameters": ["value", "user_data.country"]}])
    assert seen["alerts"] == {
        "event_name": "Purchase",
        "event_id": "evt-1",
        "event_time": seen["alerts"]["event_time"],
        "value": 59.9,
        "custom_data": {"value": 59.9},
        "user_data": {"country": "DE"},
    }
    assert seen["crm"]["user_data"]["em"] == "jane@example.com"


def test_augment_sets_values_and_templates(tmp_path: Path) -> None:
    seen = bodies(
        tmp_path,
        [{"name": "add", "type": "augment", "tags": ["crm"],
          "parameters": {"shop": "de-main", "custom_data.source": "{{event.page_location}}",
                         "value": 10, "user_data.em": "{{event.nothing}}"}}],
    )
    crm = seen["crm"]
    assert crm["shop"] == "de-main"
    assert crm["custom_data"]["source"].startswith("https://www.shop.example/")
    assert crm["value"] == 10 and crm["custom_data"]["value"] == 10  # alias mirrored
    assert "em" not in crm["user_data"]  # a value resolving to nothing removes the key
    assert "shop" not in seen["alerts"]


def test_order_is_allow_then_augment_then_exclude(tmp_path: Path) -> None:
    # written in the reverse order on purpose
    seen = bodies(
        tmp_path,
        [
            {"name": "3", "type": "exclude", "parameters": ["custom_data.coupon"]},
            {"name": "2", "type": "augment", "parameters": {"custom_data.coupon": "NEW",
                                                           "added": "yes"}},
            {"name": "1", "type": "allow", "parameters": ["custom_data"]},
        ],
    )
    crm = seen["crm"]
    assert crm["added"] == "yes"  # the augment ran after the allow-list
    assert "coupon" not in crm["custom_data"]  # the exclude ran last
    assert "user_data" not in crm


def test_conditions_and_tag_types(tmp_path: Path) -> None:
    container = compile_container(
        tmp_path,
        {
            "transformations": [
                {"name": "big-only", "type": "exclude", "tag_types": ["meta"],
                 "conditions": [{"event": "value", "op": "gte", "value": 100}],
                 "parameters": ["user_data"]},
            ],
            "tags": [meta_tag(), http_tag("crm", body={"em": "{{event.user_data.em}}"})],
        },
    )
    small = run(container, make_scope(EVENT))
    big = run(container, make_scope({**EVENT, "value": 150}))
    assert "em" in small.outbound[0].payload["user_data"]
    assert "em" not in big.outbound[0].payload["user_data"]  # meta: user_data excluded
    assert big.outbound[1].payload["body"] == {"em": "jane@example.com"}  # http untouched


def test_triggers_see_the_untransformed_event(tmp_path: Path) -> None:
    container = compile_container(
        tmp_path,
        {
            "transformations": [{"name": "drop-value", "type": "exclude", "parameters": ["value"]}],
            "tags": [http_tag(conditions=[{"event": "value", "op": "gt", "value": 0}],
                              body={"value": "{{event.value}}"})],
        },
    )
    result = run(container, make_scope(EVENT))
    assert result.fired == ["hook"]
    assert result.outbound[0].payload["body"] == {}


def test_transformations_never_change_the_shared_event_data(tmp_path: Path) -> None:
    scope = make_scope(EVENT)
    before = repr(scope.data)
    container = compile_container(
        tmp_path,
        {
            "transformations": [
                {"name": "x", "type": "exclude", "parameters": ["user_data.em"]},
                {"name": "y", "type": "augment", "parameters": {"custom_data.extra": 1}},
            ],
            "tags": [http_tag(body="{{event}}")],
        },
    )
    run(container, scope)
    assert repr(scope.data) == before
