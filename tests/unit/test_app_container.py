"""The app and the container together: request cookies and headers reach triggers and
variables, several tags answer one hit, webhooks are delivered, secrets never reach a log line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path
from typing import Any

import httpx

from tagserver.app import create_app
from tagserver.container.loader import load_container
from tagserver.logs import JsonFormatter
from tagserver.settings import load_settings
from tests.containers import ENVIRON, PIXEL, http_tag, meta_tag, write_container


def run_app(
    folder: Path, send: Any, *, peer: str = "203.0.113.9"
) -> tuple[list[httpx.Response], list[httpx.Request], str]:
    """Serve ``folder``'s container in-process (requests come from ``peer``); outbound requests
    go to a recorder."""
    outbound: list[httpx.Request] = []

    def destination(request: httpx.Request) -> httpx.Response:
        outbound.append(request)
        if request.url.path.endswith("/events"):
            return httpx.Response(200, json={"events_received": 1, "messages": []})
        return httpx.Response(500 if "fail" in str(request.url) else 204)

    settings = load_settings({"TAGSERVER_SITE_DOMAINS": "www.shop.example",
                              "TAGSERVER_FLUSH_INTERVAL": "0.01",
                              "TAGSERVER_RETRY_BASE_DELAY": "0.01",
                              "TAGSERVER_RETRY_MAX_ATTEMPTS": "2"})
    app = create_app(settings, container=load_container(folder, environ=ENVIRON),
                     transport=httpx.MockTransport(destination))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("tagserver")
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.DEBUG)

    async def scenario() -> list[httpx.Response]:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(peer, 5000)),
            base_url="http://t.shop.example",
        ) as client:
            return [await send(client)]

    try:
        replies = asyncio.run(scenario())
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    return replies, outbound, stream.getvalue()


def test_cookies_and_headers_reach_triggers_and_variables(tmp_path: Path) -> None:
    folder = write_container(
        tmp_path / "tags",
        {
            "variables": {
                "token": {"type": "secret", "env": "CRM_TOKEN"},
                "country": {"type": "header", "name": "CF-IPCountry", "default": "XX"},
                "customer": {"type": "cookie", "name": "customer_id"},
            },
            "tags": [
                meta_tag(exceptions=[{"conditions": [{"cookie": "internal", "op": "exists"}]}]),
                http_tag("crm", url="https://crm.example/orders",
                         conditions=[{"header": "x-shop", "op": "equals", "value": "de"}],
                         headers={"Authorization": "Bearer {{token}}"},
                         body={"country": "{{country}}", "customer": "{{customer}}",
                               "value": "{{event.value}}"}),
                http_tag("failing", url="https://fail.example/x"),
            ],
        },
    )

    async def send(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(
            "/e",
            json={"event_name": "Purchase", "event_id": "p-1",
                  "event_source_url": "https://www.shop.example/thanks",
                  "custom_data": {"value": 12, "currency": "EUR"}},
            headers={"Origin": "https://www.shop.example", "User-Agent": "UA/1",
                     "X-Shop": "de", "CF-IPCountry": "AT",
                     "Cookie": "customer_id=C-9; internal=1"},
        )

    (reply,), outbound, logs = run_app(folder, send)
    assert reply.status_code == 200
    assert reply.json()["commands"] == []  # meta blocked by the internal cookie
    for header in ("authorization", "x-shop", "cf-ipcountry"):
        assert header not in reply.headers
    crm = [r for r in outbound if r.url.host == "crm.example"]
    assert len(crm) == 1
    assert crm[0].headers["authorization"] == f"Bearer {ENVIRON['CRM_TOKEN']}"
    assert json.loads(crm[0].content) == {"country": "AT", "customer": "C-9", "value": 12}
    assert len([r for r in outbound if r.url.host == "fail.example"]) == 2  # retried once
    assert ENVIRON["CRM_TOKEN"] not in logs
    assert '"destination": "http:failing"' in logs and "retries_exhausted" in logs


def test_several_tags_answer_one_hit(tmp_path: Path) -> None:
    folder = write_container(
        tmp_path / "tags",
        {"tags": [meta_tag("one"), meta_tag("two", browser_mode="img"),
                  http_tag("hook", events=["Purchase"])]},
    )

    async def send(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(
            "/e",
            json={"event_name": "Purchase", "event_source_url": "https://www.shop.example/t",
                  "custom_data": {"value": 1, "currency": "EUR"}},
            headers={"Origin": "https://www.shop.example", "User-Agent": "UA/1"},
        )

    (reply,), outbound, _ = run_app(folder, send)
    commands = reply.json()["commands"]
    assert [c["type"] for c in commands] == ["fbq", "img"]
    assert commands[0]["args"][1] == PIXEL
    graph = [r for r in outbound if r.url.path.endswith("/events")]
    assert sum(len(json.loads(r.content)["data"]) for r in graph) == 2
    assert len([r for r in outbound if r.url.host == "hooks.example.com"]) == 1


def test_ga4_hits_run_the_container_as_collect_hits_do(tmp_path: Path) -> None:
    folder = write_container(
        tmp_path / "tags",
        {
            "variables": {"fbp": {"type": "event_data", "path": "x-fb-ck-fbp"}},
            "tags": [
                http_tag("crm", url="https://crm.example/ga4",
                         conditions=[{"header": "x-shop", "op": "equals", "value": "de"}],
                         body={"name": "{{event.event_name}}", "ip": "{{event.ip_override}}",
                               "fbp": "{{fbp}}", "title": "{{event.page_title}}"}),
                {"name": "ga4", "type": "ga4", "events": ["page_view", "Purchase"]},
            ],
            "transformations": [{"name": "no-title", "type": "exclude", "tag_types": ["ga4"],
                                 "parameters": ["page_title"]}],
        },
    )

    async def send(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(
            "/g/collect?v=2&tid=G-SHOP1&cid=1.2&dt=Shop&dl=https%3A%2F%2Fwww.shop.example%2F",
            content="en=page_view\nen=scroll&epn.percent_scrolled=90\n"
                    "en=purchase&cu=EUR&epn.value=5&ep.transaction_id=T-9",
            headers={"Origin": "https://www.shop.example", "User-Agent": "UA/1", "X-Shop": "de",
                     "Forwarded": 'for="[2001:db8:cafe::17]:4711"',  # RFC 7239, via loopback
                     "Cookie": "_fbp=fb.1.x; _fbp=fb.1.1700000000000.42; _fbp=fb.1.1.1"},
        )

    (reply,), outbound, _ = run_app(folder, send, peer="127.0.0.1")
    assert reply.status_code == 200
    crm = [json.loads(r.content) for r in outbound if r.url.host == "crm.example"]
    assert sorted(c["name"] for c in crm) == ["page_view", "purchase", "scroll"]
    assert {c["ip"] for c in crm} == {"2001:db8:cafe::17"}
    assert {c["fbp"] for c in crm} == {"fb.1.1700000000000.42"}  # the first valid duplicate
    assert {c["title"] for c in crm} == {"Shop"}
    google = [r for r in outbound if r.url.host == "region1.google-analytics.com"]
    assert sorted(r.content.decode() for r in google) == [
        "en=page_view", "en=purchase&cu=EUR&epn.value=5&ep.transaction_id=T-9"]
    for request in google:  # page_title excluded for the ga4 tag: dt is gone from the query
        assert str(request.url.query, "ascii") == (
            "v=2&tid=G-SHOP1&cid=1.2&dl=https%3A%2F%2Fwww.shop.example%2F&_uip=2001:db8:cafe::17")
        assert request.headers["user-agent"] == "UA/1"
