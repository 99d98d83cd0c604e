"""GA4 hits through the container: one event data view, so triggers, variables and
transformations work on gtag.js hits, and every tag type (ga4, meta, http) takes them."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from itsdangerous import Signer

from tagserver.clients.ga4 import parse_ga4_request
from tagserver.consent import Consent
from tagserver.container.event_data import event_data_from_event
from tagserver.container.loader import Container
from tagserver.container.runtime import ContainerResult, run_container
from tagserver.event import Event
from tagserver.ga4.handler import build_ga4_events
from tagserver.identity import resolve_cookie_scope
from tests.containers import ENVIRON, NOW, PIXEL, compile_container, http_tag, meta_tag

IP = "198.51.100.7"
UA = "Mozilla/5.0 (Macintosh) Chrome/136.0"
SHARED = ("v=2&tid=G-SHOP1&cid=111.222&gcs=G111&dt=Tee%20%7C%20Shop&uid=u-42"
          "&dl=https%3A%2F%2Fwww.shop.example%2Fp%2Ftee%3Futm_source%3Dnewsletter")
PURCHASE = ("&en=purchase&cu=EUR&epn.value=39.8&ep.transaction_id=T-1001"
            "&pr1=idTEE-1~nmTee~pr19.9~qt2&ep.user_data.sha256_email_address="
            + hashlib.sha256(b"jane@example.com").hexdigest()
            + "&ep.user_data.address.first_name=Jane")


def ga4_events(query: str, body: bytes = b"", *, cookie: str = "",
               headers: dict[str, str] | None = None) -> list[Event]:
    batch = parse_ga4_request(path="/g/collect", query=query, body=body, ip_override=IP,
                              user_agent=UA)
    events, _ = build_ga4_events(
        batch.hits, cookie_header=cookie,
        cookies=dict(p.strip().split("=", 1) for p in cookie.split(";") if "=" in p),
        headers={"user-agent": UA, **(headers or {})}, referer=None,
        cookie_scope=resolve_cookie_scope("t.shop.example", ("www.shop.example",)),
        signer=Signer("k" * 32), client_ip=IP, user_agent=UA, now=NOW, max_age=3600)
    return events


def run(container: Container, event: Event) -> ContainerResult:
    return run_container(container, event, default_country=None, now=NOW)


def ga4_tag(name: str = "ga4", **keys: Any) -> dict[str, Any]:
    return {"name": name, "type": "ga4", **keys}


def forwarded(result: ContainerResult, tag: str = "ga4") -> list[tuple[str, str]]:
    (payload,) = [o.payload for o, t in zip(result.outbound, result.outbound_tags, strict=True)
                  if t == tag]
    return parse_qsl(payload["query"] + "&" + payload["body"], keep_blank_values=True)


def test_the_view_of_a_ga4_hit() -> None:
    (event,) = ga4_events(SHARED + PURCHASE, cookie="_fbp=fb.1.1700000000000.123456789")
    data = event_data_from_event(event)
    assert data["event_name"] == "purchase"
    assert data["event_id"] == "purchase-T-1001" and data["event_time"] == int(NOW)
    assert data["page_location"] == "https://www.shop.example/p/tee?utm_source=newsletter"
    assert data["client_id"] == "111.222" and data["user_id"] == "u-42"
    assert data["ip_override"] == IP and data["user_agent"] == UA
    assert data["x-fb-ck-fbp"] == "fb.1.1700000000000.123456789"
    assert data["value"] == 39.8 and data["currency"] == "EUR"
    assert data["transaction_id"] == "T-1001"
    assert data["items"] == [{"item_id": "TEE-1", "item_name": "Tee", "price": 19.9,
                              "quantity": 2}]
    # the Meta custom data, the same keys a POST /e purchase carries
    assert data["custom_data"] == {
        "value": 39.8, "currency": "EUR", "order_id": "T-1001", "content_ids": ["TEE-1"],
        "contents": [{"id": "TEE-1", "quantity": 2, "item_price": 19.9}], "num_items": 2,
        "content_type": "product"}
    assert data["user_data"]["address"] == {"first_name": "Jane"}
    assert data["x-ga-measurement_id"] == "G-SHOP1"


def test_triggers_variables_and_request_context_on_ga4_hits(tmp_path: Path) -> None:
    container = compile_container(tmp_path, {
        "variables": {
            "source": {"type": "query", "name": "utm_source"},
            "staff": {"type": "cookie", "name": "staff"},
        },
        "tags": [
            http_tag("big-orders", events=["Purchase"], conditions=[
                {"event": "custom_data.value", "op": "gt", "value": 30},
                {"var": "source", "op": "equals", "value": "newsletter"},
                {"header": "x-shop", "op": "equals", "value": "de"}],
                body={"order": "{{event.transaction_id}}", "title": "{{event.page_title}}",
                      "staff": "{{staff}}", "client": "{{event.client_id}}"}),
            ga4_tag(exceptions=[{"conditions": [{"cookie": "staff", "op": "exists"}]}]),
        ],
    })
    (event,) = ga4_events(SHARED + PURCHASE, headers={"x-shop": "de"})
    result = run(container, event)
    assert result.fired == ["big-orders", "ga4"]
    (hook,) = [o.payload for o in result.outbound if "body" in o.payload and "url" in o.payload]
    assert hook["body"] == {"order": "T-1001", "title": "Tee | Shop", "client": "111.222"}
    (staff,) = ga4_events(SHARED + PURCHASE, cookie="staff=jane", headers={"x-shop": "de"})
    assert run(container, staff).fired == ["big-orders"]
    (cheap,) = ga4_events(SHARED + PURCHASE.replace("epn.value=39.8", "epn.value=9"))
    assert run(container, cheap).fired == ["ga4"]


def test_transformations_change_what_the_ga4_tag_forwards(tmp_path: Path) -> None:
    container = compile_container(tmp_path, {
        "tags": [ga4_tag(), ga4_tag("ga4-minimal"), meta_tag()],
        "transformations": [
            {"name": "no-pii", "type": "exclude", "tag_types": ["ga4"],
             "parameters": ["user_id", "user_data"]},
            {"name": "market", "type": "augment", "tags": ["ga4"],
             "parameters": {"market": "de", "page_title": "Tee"}},
            {"name": "minimal", "type": "allow", "tags": ["ga4-minimal"],
             "parameters": ["page_location", "value"]},
        ],
    })
    (event,) = ga4_events(SHARED + PURCHASE)
    result = run(container, event)
    assert result.fired == ["ga4", "ga4-minimal", "meta"]
    full = forwarded(result)
    names = [n for n, _ in full]
    assert "uid" not in names and not any(n.startswith("ep.user_data.") for n in names)
    assert ("dt", "Tee") in full and ("ep.market", "de") in full
    assert ("pr1", "idTEE-1~nmTee~pr19.9~qt2") in full and ("_uip", IP) in full
    minimal = forwarded(result, "ga4-minimal")
    # allow keeps the listed keys' parameters, plus v, tid and en; no IP is not the server's IP
    assert minimal == [("v", "2"), ("tid", "G-SHOP1"),
                       ("dl", "https://www.shop.example/p/tee?utm_source=newsletter"),
                       ("en", "purchase"), ("epn.value", "39.8"), ("_uip", "::")]
    # the meta tag saw the untransformed event: hashed e-mail and first name reach Meta
    (capi,) = [o.payload for o, t in zip(result.outbound, result.outbound_tags, strict=True)
               if t == "meta"]
    assert capi["user_data"]["em"] == hashlib.sha256(b"jane@example.com").hexdigest()
    assert capi["user_data"]["fn"] == hashlib.sha256(b"jane").hexdigest()
    assert capi["event_name"] == "Purchase" and capi["event_id"] == "purchase-T-1001"


def test_meta_tag_on_ga4_events_follows_consent_and_parameters(tmp_path: Path) -> None:
    container = compile_container(tmp_path, {"tags": [
        meta_tag(events=["Purchase", "PageView"], browser_mode="img",
                 custom_data={"content_name": "{{event.page_title}}"}),
        ga4_tag(require_consent=["analytics_storage"]),
    ]})
    (event,) = ga4_events(SHARED + PURCHASE)
    result = run(container, event)
    (command,) = result.commands
    assert command["type"] == "img" and f"id={PIXEL}" in command["src"]
    assert "eid=purchase-T-1001" in command["src"]
    capi = result.outbound[0].payload
    assert capi["custom_data"]["content_name"] == "Tee | Shop"
    denied = SHARED.replace("gcs=G111", "gcs=G100")
    (refused,) = ga4_events(denied + PURCHASE)
    assert refused.consent == Consent(ad_storage=False, analytics_storage=False,
                                      ad_user_data=False, ad_personalization=False)
    assert run(container, refused).fired == []
    assert ENVIRON["META_PIXEL_ID"] == PIXEL
