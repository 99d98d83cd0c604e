"""The container runtime: several tags per event, independent failures; the meta tag's
parameters (event name map, custom_data/user_data mappings, Limited Data Use)."""

from __future__ import annotations

import gc
import hashlib
import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tagserver.container.loader import Container, ContainerTag
from tagserver.container.runtime import run_scope
from tagserver.container.scope import Scope
from tagserver.container.triggers import Trigger
from tagserver.tags import TagResult
from tests.containers import NOW, PIXEL, compile_container, http_tag, make_scope, meta_tag, run


class ExplodingTag:
    name = "broken"

    def build(self, scope: Scope, *, default_country: str | None, now: float) -> TagResult:
        raise ZeroDivisionError("a bug in a tag")


def exploding_condition(scope: Scope) -> bool:
    raise KeyError("a bug in a trigger")


def test_one_failing_tag_does_not_stop_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = compile_container(tmp_path, {"tags": [meta_tag(), http_tag()]})
    meta, hook = good.tags
    container = Container(
        tags=(
            meta,
            ContainerTag("broken", "http", ExplodingTag()),
            ContainerTag("bad-trigger", "http", hook.tag,
                         triggers=(Trigger("t", None, exploding_condition),)),
            hook,
        ),
        version="test",
    )
    with caplog.at_level(logging.ERROR, logger="tagserver.container"):
        result = run(container, make_scope({"custom_data": {"value": 1, "currency": "EUR"}}))
    assert result.fired == ["meta", "hook"]
    assert len(result.outbound) == 2
    assert result.outbound_tags == ["meta", "hook"]
    errors = [(t, r, d) for t, r, d in result.drops if r == "tag_error"]
    assert errors == [("broken", "tag_error", "ZeroDivisionError"),
                      ("bad-trigger", "tag_error", "KeyError")]
    logged = [r for r in caplog.records if r.getMessage() == "tag failed"]
    assert [r.__dict__["tag"] for r in logged] == ["broken", "bad-trigger"]


def test_several_tags_fire_in_container_order_across_files(tmp_path: Path) -> None:
    container = compile_container(
        tmp_path,
        {"tags": [http_tag("b-first"), meta_tag("a-second")]},
        {"tags": [http_tag("c-third", events=["Purchase"])]},
    )
    result = run(container, make_scope({"custom_data": {"value": 1, "currency": "EUR"}}))
    assert result.fired == ["b-first", "a-second", "c-third"]
    assert result.outbound_tags == ["b-first", "a-second", "c-third"]


# ---------------------------------------------------------------------------------------------
# meta tag parameters


def capi(result_outbound: list[object]) -> dict[str, object]:
    (outbound,) = result_outbound
    return dict(outbound.payload)  # type: ignore[attr-defined]


def test_event_name_map_and_default_mapping(tmp_path: Path) -> None:
    container = compile_container(
        tmp_path,
        {"tags": [meta_tag(event_name_map={"checkout_completed": "Purchase",
                                           "newsletter": "Subscribe"})]},
    )
    for incoming, sent in (("checkout_completed", "Purchase"), ("newsletter", "Subscribe"),
                           ("add_to_cart", "AddToCart"), ("my_custom", "my_custom")):
        result = run(container, make_scope({"event_name": incoming,
                                            "custom_data": {"value": 1, "currency": "EUR"}}))
        assert result.commands[-1]["args"][2] == sent
        assert capi(result.outbound)["event_name"] == sent


def test_event_name_from_a_variable(tmp_path: Path) -> None:
    container = compile_container(
        tmp_path,
        {
            "variables": {"name": {"type": "lookup", "input": "{{event.custom_data.step}}",
                                   "table": {"3": "AddPaymentInfo"}}},
            "tags": [meta_tag(event_name="{{name}}")],
        },
    )
    result = run(container, make_scope({"event_name": "checkout_step",
                                        "custom_data": {"step": 3}}))
    assert result.commands[0]["args"][:3] == ["trackSingle", PIXEL, "AddPaymentInfo"]
    # the lookup misses: the event's own name is used
    result = run(container, make_scope({"event_name": "checkout_step",
                                        "custom_data": {"step": 1}}))
    assert result.commands[0]["args"][:3] == ["trackSingleCustom", PIXEL, "checkout_step"]


def test_custom_data_and_user_data_mappings(tmp_path: Path) -> None:
    container = compile_container(
        tmp_path,
        {
            "variables": {"customer": {"type": "cookie", "name": "customer_id"}},
            "tags": [meta_tag(
                custom_data={"content_type": "product", "order_id": "{{event.transaction_id}}",
                             "absent": "{{event.nothing}}"},
                user_data={"external_id": "{{customer}}", "country": "de"},
            )],
        },
    )
    scope = make_scope(
        {"transaction_id": "1001", "custom_data": {"value": 5, "currency": "EUR"},
         "user_data": {"em": "jane@example.com"}},
        cookies={"customer_id": "C-77"},
    )
    result = run(container, scope)
    event = capi(result.outbound)
    assert event["custom_data"] == {"value": 5, "currency": "EUR", "content_type": "product",
                                    "order_id": "1001"}
    user = event["user_data"]
    assert isinstance(user, dict)
    assert user["external_id"] == hashlib.sha256(b"C-77").hexdigest()
    assert user["country"] == hashlib.sha256(b"de").hexdigest()
    assert user["em"] == hashlib.sha256(b"jane@example.com").hexdigest()
    assert result.commands[0]["args"][3]["order_id"] == "1001"


def test_limited_data_use_always(tmp_path: Path) -> None:
    container = compile_container(
        tmp_path, {"tags": [meta_tag(limited_data_use={"mode": "always", "country": 1,
                                                       "state": 1000})]}
    )
    result = run(container, make_scope({"custom_data": {"value": 1, "currency": "EUR"}}))
    assert result.commands[0] == {"type": "fbq",
                                  "args": ["dataProcessingOptions", ["LDU"], 1, 1000]}
    assert result.commands[1]["args"][0] == "trackSingle"
    event = capi(result.outbound)
    assert event["data_processing_options"] == ["LDU"]
    assert event["data_processing_options_country"] == 1
    assert event["data_processing_options_state"] == 1000


def test_limited_data_use_on_global_privacy_control_only(tmp_path: Path) -> None:
    container = compile_container(
        tmp_path,
        {"tags": [meta_tag(browser_mode="img", limited_data_use={"mode": "gpc"})]},
    )
    plain = run(container, make_scope({"custom_data": {"value": 1, "currency": "EUR"}}))
    assert "data_processing_options" not in capi(plain.outbound)
    assert "dpo" not in parse_qs(urlsplit(plain.commands[0]["src"]).query)
    gpc = run(container, make_scope({"custom_data": {"value": 1, "currency": "EUR"}},
                                    headers={"sec-gpc": "1"}))
    assert capi(gpc.outbound)["data_processing_options"] == ["LDU"]
    query = parse_qs(urlsplit(gpc.commands[0]["src"]).query)
    assert query["dpo"] == ["LDU"] and query["dpoco"] == ["0"] and query["dpost"] == ["0"]


def test_limited_data_use_off_is_the_default(tmp_path: Path) -> None:
    container = compile_container(tmp_path, {"tags": [meta_tag(limited_data_use={"mode": "off"})]})
    result = run(container, make_scope({"custom_data": {"value": 1, "currency": "EUR"}},
                                       headers={"sec-gpc": "1"}))
    assert "data_processing_options" not in capi(result.outbound)


def test_meta_reads_sgtm_common_event_data(tmp_path: Path) -> None:
    # event data as the GA4 client produces it: common keys at the top, sGTM user_data keys
    container = compile_container(tmp_path, {"tags": [meta_tag()]})
    scope = make_scope({
        "event_name": "purchase",
        "value": 30,
        "currency": "EUR",
        "transaction_id": "T-1",
        "items": [{"item_id": "04639", "quantity": 2, "price": 15, "item_name": "Shoe"}],
        "user_data": {"email_address": "Jane@Example.com",
                      "address": [{"first_name": "Jane", "country": "DE"}]},
    })
    result = run(container, scope)
    event = capi(result.outbound)
    assert event["event_name"] == "Purchase"
    # the same Meta custom data a gtag.js hit with these parameters gets
    assert event["custom_data"] == {"value": 30, "currency": "EUR", "order_id": "T-1",
                                    "content_ids": ["04639"], "num_items": 2,
                                    "content_type": "product",
                                    "contents": [{"id": "04639", "quantity": 2,
                                                  "item_price": 15}]}
    user = event["user_data"]
    assert isinstance(user, dict)
    assert user["em"] == hashlib.sha256(b"jane@example.com").hexdigest()
    assert user["fn"] == hashlib.sha256(b"jane").hexdigest()
    assert user["country"] == hashlib.sha256(b"de").hexdigest()


def test_candidates_skip_tags_whose_event_lists_cannot_match(tmp_path: Path) -> None:
    from tagserver.container.model import MAX_CACHED_EVENT_NAMES

    container = compile_container(
        tmp_path,
        {"tags": [http_tag("purchases", events=["purchase"]), http_tag("all"),
                  http_tag("leads", triggers=[{"events": ["Lead"]},
                                              {"conditions": [{"cookie": "x", "op": "exists"}]}])]},
    )
    assert [t.name for t in container.candidates("Purchase")] == ["purchases", "all", "leads"]
    assert [t.name for t in container.candidates("PageView")] == ["all", "leads"]
    for i in range(MAX_CACHED_EVENT_NAMES + 50):  # event names come from the outside
        container.candidates(f"custom_{i}")
    assert len(container._candidates) == MAX_CACHED_EVENT_NAMES
    assert [t.name for t in container.candidates("custom_x")] == ["all", "leads"]


def test_running_events_leaves_no_reference_cycles(tmp_path: Path) -> None:
    """Reference counting frees an event's scope and all it holds: a scope that referred to
    itself (its own root) left about five objects per hit to the cyclic garbage collector,
    about 5 µs per hit in the server."""
    container = compile_container(tmp_path, {"tags": [meta_tag(), http_tag()]})
    events = 40
    gc.collect()
    gc.disable()
    try:
        for i in range(events):
            scope = make_scope({"event_id": f"evt-{i}",
                                "custom_data": {"value": 1, "currency": "EUR"}})
            result = run_scope(container, scope, default_country=None, now=NOW)
            assert result.fired == ["meta", "hook"]
            derived = scope.derive({**scope.data, "event_name": "Lead"})
            assert derived.root is scope and scope.root is scope
            del scope, derived, result
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable < events  # 80 with the self-referring scope
