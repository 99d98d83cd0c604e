"""Benchmark: what evaluating a 20-tag container costs per event.

Run from the repository root::

    .venv/bin/python bench/bench_container.py            # default: 20000 events per figure
    .venv/bin/python bench/bench_container.py --events 50000

The container (written to a temporary folder and loaded like ``tags/``) has 20 tags: 4 ``meta``
tags and 16 ``http`` tags, with named and inline triggers, conditions on event data, cookies,
headers and the query, blocking exceptions, consent requirements, 6 variables (query, cookie,
header, lookup, regex, url) and 3 transformations. The events cycle through 8 realistic hits
(page views, product views, add-to-carts, purchases with customer data, staff traffic).

Figures (microseconds per event; the best and the median of 5 runs):

* ``evaluate``: the container language alone — event data, triggers, exceptions, consent,
  transformations and every firing tag's parameter templates — with tags that build nothing;
* ``full``: ``run_container`` as the server calls it, including what the tags themselves do
  (Meta's normalisation and SHA-256 hashing of customer data, the webhook bodies).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tagserver.consent import Consent  # noqa: E402
from tagserver.container.loader import Container, ContainerTag, load_container  # noqa: E402
from tagserver.container.runtime import run_container  # noqa: E402
from tagserver.container.scope import Scope  # noqa: E402
from tagserver.container.transformations import apply_transformations  # noqa: E402
from tagserver.event import Event  # noqa: E402
from tagserver.tags import TagResult  # noqa: E402
from tagserver.tags.http import HttpTag, render_url  # noqa: E402
from tagserver.tags.meta import MetaTag  # noqa: E402

ENVIRON = {"META_PIXEL_ID": "1111111111", "META_ACCESS_TOKEN": "EAAbench-token-0001",
           "CRM_TOKEN": "crm-bench-token-0001"}
STANDARD = ["PageView", "ViewContent", "AddToCart", "InitiateCheckout", "Purchase", "Lead"]


def container_files() -> list[dict[str, Any]]:
    variables = {
        "token": {"type": "secret", "env": "CRM_TOKEN"},
        "source": {"type": "query", "name": "utm_source", "default": "(direct)"},
        "customer": {"type": "cookie", "name": "customer_id"},
        "country": {"type": "header", "name": "cf-ipcountry", "default": "XX"},
        "channel": {"type": "lookup", "input": "{{source}}", "ignore_case": True,
                    "table": {"facebook": "paid_social", "google": "paid_search"},
                    "default": "other"},
        "market": {"type": "regex", "input": "{{event.page_location}}",
                   "pattern": "^https://www\\.shop\\.example/([a-z]{2})/", "default": "de"},
        "path": {"type": "url", "part": "path"},
    }
    triggers = {
        "purchase": {"events": ["Purchase"]},
        "big_order": {"events": ["Purchase"], "conditions": [
            {"event": "value", "op": "gte", "value": 100},
            {"event": "currency", "op": "in", "value": ["EUR", "CHF"], "ignore_case": True}]},
        "internal": {"conditions": {"any": [
            {"cookie": "internal", "op": "equals", "value": "1"},
            {"header": "x-shop-staff", "op": "exists"},
            {"event": "user_data.em", "op": "ends_with", "value": "@shop.example"}]}},
        "paid": {"conditions": [{"query": "utm_medium", "op": "in",
                                 "value": ["cpc", "paid_social"]}]},
    }
    transformations = [
        {"name": "no-pii-webhooks", "type": "exclude", "tag_types": ["http"],
         "parameters": ["user_data.em", "user_data.ph", "ip_override"]},
        {"name": "market", "type": "augment", "tags": ["crm-orders", "erp"],
         "parameters": {"market": "{{market}}"}},
        {"name": "minimal-alerts", "type": "allow", "tags": ["alert-big", "alert-slack"],
         "parameters": ["value", "currency", "transaction_id"]},
    ]
    tags: list[dict[str, Any]] = []
    for i, (events, mode) in enumerate([(STANDARD, "fbq"), (["Purchase"], "none"),
                                        (["PageView", "ViewContent"], "img"),
                                        (["AddToCart", "Purchase"], "none")]):
        tags.append({"name": f"meta-{i}", "type": "meta", "pixel_id": str(1111111111 + i),
                     "access_token": {"env": "META_ACCESS_TOKEN"}, "events": events,
                     "browser_mode": mode, "exceptions": ["internal"],
                     "custom_data": {"traffic_source": "{{source}}"}})
    body = {"order": "{{event.transaction_id}}", "value": "{{event.value}}",
            "currency": "{{event.currency}}", "source": "{{source}}", "channel": "{{channel}}",
            "country": "{{country}}", "customer": "{{customer}}", "path": "{{path}}"}
    hooks = [
        ("crm-orders", {"triggers": ["purchase"]}),
        ("erp", {"triggers": ["purchase"], "require_consent": ["analytics_storage"]}),
        ("alert-big", {"triggers": ["big_order"]}),
        ("alert-slack", {"triggers": ["big_order"], "exceptions": ["internal"]}),
        ("paid-clicks", {"triggers": ["paid"]}),
        ("leads", {"events": ["Lead", "CompleteRegistration"]}),
        ("carts", {"events": ["AddToCart"], "conditions": [
            {"event": "value", "op": "gt", "value": 50}]}),
        ("checkout", {"events": ["InitiateCheckout"]}),
        ("search", {"events": ["Search"], "conditions": [
            {"event": "custom_data.search_string", "op": "exists"}]}),
        ("pdf", {"conditions": [{"event": "page_location", "op": "regex", "value": "\\.pdf$"}]}),
        ("bots", {"conditions": [{"header": "user-agent", "op": "contains", "value": "bot",
                                  "ignore_case": True}]}),
        ("ch-market", {"events": ["Purchase"], "conditions": [
            {"var": "market", "op": "equals", "value": "ch"}]}),
        ("vip", {"conditions": [{"cookie": "vip", "op": "equals", "value": "1"}]}),
        ("newsletter", {"events": ["Subscribe"]}),
        ("refunds", {"events": ["refund"]}),
        ("audit", {"events": ["Purchase"], "exceptions": ["internal"],
                   "conditions": {"any": [{"event": "value", "op": "lt", "value": 0},
                                          {"event": "currency", "op": "not_in",
                                           "value": ["EUR", "CHF", "USD"]}]}}),
    ]
    for name, keys in hooks:
        tags.append({"name": name, "type": "http", "url": f"https://hooks.example.com/{name}",
                     "headers": {"Authorization": "Bearer {{token}}"}, "body": body, **keys})
    assert len(tags) == 20
    return [{"variables": variables, "triggers": triggers,
             "transformations": transformations}, {"tags": tags}]


def events() -> list[Event]:
    base: dict[str, Any] = {"event_time": 1_760_000_000, "received_at": 1_760_000_000.0,
                            "client_ip": "203.0.113.7", "fbp": "fb.1.1759999000000.1234567890",
                            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
                            "headers": {"cf-ipcountry": "DE", "accept-language": "de"},
                            "cookies": {"_fbp": "fb.1.1759999000000.1234567890"}}
    page = "https://www.shop.example/de/p/shoe-1?utm_source=facebook&utm_medium=paid_social"
    hits = [
        {"event_name": "PageView", "event_source_url": page},
        {"event_name": "ViewContent", "event_source_url": page,
         "custom_data": {"content_ids": ["04639"], "content_type": "product", "value": 59.9,
                         "currency": "EUR"}},
        {"event_name": "AddToCart", "event_source_url": page,
         "custom_data": {"content_ids": ["04639"], "value": 59.9, "currency": "EUR"}},
        {"event_name": "PageView", "event_source_url": "https://www.shop.example/ch/"},
        {"event_name": "InitiateCheckout", "event_source_url": "https://www.shop.example/de/co"},
        {"event_name": "Purchase", "event_source_url": "https://www.shop.example/de/thanks",
         "custom_data": {"value": 159.9, "currency": "EUR", "order_id": "1001",
                         "contents": [{"id": "04639", "quantity": 2, "item_price": 79.95}]},
         "user_data": {"em": "jane@example.com", "ph": "+49 170 1234567", "fn": "Jane",
                       "country": "DE"}},
        {"event_name": "Lead", "event_source_url": "https://www.shop.example/de/contact",
         "user_data": {"em": "max@example.com"}},
        {"event_name": "Purchase", "event_source_url": "https://www.shop.example/de/thanks",
         "custom_data": {"value": 20, "currency": "EUR", "order_id": "1002"},
         "cookies": {"internal": "1"}, "consent": Consent(analytics_storage=False)},
    ]
    out = []
    for i, hit in enumerate(hits):
        fields = {**base, **hit, "event_id": f"e-{i}"}
        out.append(Event(**fields))
    return out


class NoBuild:
    """A tag that builds nothing but resolves its parameter templates like the real one."""

    def __init__(self, tag: Any) -> None:
        self.tag = tag
        self.name = tag.name

    def build(self, scope: Scope, *, default_country: str | None, now: float) -> TagResult:
        tag = self.tag
        if isinstance(tag, HttpTag):
            render_url(tag.url, scope)
            for _, value in tag.headers:
                value.resolve(scope)
            if tag.body is not None:
                tag.body.resolve(scope)
        elif isinstance(tag, MetaTag):
            tag.meta_name(scope)
            for _, value in tag.custom_data:
                value.resolve(scope)
        return TagResult()


def evaluation_only(container: Container) -> Container:
    tags = tuple(
        ContainerTag(t.name, t.type, NoBuild(t.tag), t.triggers, t.exceptions,
                     t.require_consent, t.transformations)
        for t in container.tags
    )
    return Container(tags=tags, version=container.version)


def measure(container: Container, sample: list[Event], count: int) -> tuple[float, float]:
    """Microseconds per event over 5 runs of ``count`` events: (best run, median run). The
    best run is the figure least disturbed by other processes on a shared machine."""
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for i in range(count):
            run_container(container, sample[i % len(sample)], default_country="DE",
                          now=1_760_000_100.0)
        runs.append((time.perf_counter() - start) / count * 1e6)
    return min(runs), statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i, data in enumerate(container_files()):
            (folder / f"{i}.json").write_text(json.dumps(data), "utf-8")
        container = load_container(folder, environ=ENVIRON)
    sample = events()
    fired = [len(run_container(container, e, default_country="DE", now=1_760_000_100.0).fired)
             for e in sample]
    lean = evaluation_only(container)
    # the transformations run inside run_container; make sure they are exercised
    assert any(t.transformations for t in container.tags)
    assert apply_transformations is not None
    measure(lean, sample, 2000)  # warm-up
    evaluate = measure(lean, sample, args.events)
    full = measure(container, sample, args.events)
    print(f"tags: {len(container.tags)}, events: {len(sample)} kinds, "
          f"tags fired per event: {fired} (mean {statistics.mean(fired):.1f})")
    print(f"evaluate: {evaluate[0]:.1f} us/event best, {evaluate[1]:.1f} median  (container "
          "language: triggers, exceptions, consent, transformations, templates)")
    print(f"full:     {full[0]:.1f} us/event best, {full[1]:.1f} median  (run_container with "
          "Meta hashing and webhook bodies)")
    verdict = "OK" if evaluate[0] < 50 else "OVER"
    print(f"budget:   50 us/event for evaluate (best run) -> {verdict}")


if __name__ == "__main__":
    main()
