"""The collect handler reads the ASGI scope itself (no Starlette ``Request`` on the hot route):
headers that are not a list, as the ASGI spec allows any iterable, and rate limits that need a
``Request`` made on demand."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.security.harness import BROWSER, AppHarness


def _call(app: AppHarness, headers: Any, body: bytes) -> list[dict[str, Any]]:
    """The messages the app sends for ``POST /e`` with ``headers`` as the scope has them."""
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/e", "raw_path": b"/e",
             "query_string": b"", "root_path": "", "headers": headers,
             "client": ("203.0.113.9", 50000), "server": ("t.shop.example", 80)}  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    app._loop.run_until_complete(app.app(scope, receive, send))
    return sent


def _body(event_id: str) -> bytes:
    return json.dumps({"event_name": "PageView", "event_id": event_id,
                       "event_time": int(time.time()),
                       "event_source_url": "https://www.shop.example/p"}).encode()  # fmt: skip


def test_headers_given_as_a_tuple_are_read_like_a_list() -> None:
    pairs = tuple((k.encode(), v.encode()) for k, v in BROWSER.items())
    with AppHarness() as app:
        sent = _call(app, pairs, _body("tuple-1"))
    start, body = sent
    assert start["status"] == 200
    assert json.loads(body["body"])["event_id"] == "tuple-1"
    names = [name for name, _ in start["headers"]]
    assert b"access-control-allow-origin" in names and b"set-cookie" in names


def test_the_rate_limits_still_apply_on_the_hot_route() -> None:
    pairs = tuple((k.encode(), v.encode()) for k, v in BROWSER.items())
    with AppHarness(env={"TAGSERVER_RATE_LIMIT_IP": "1"}) as app:
        first = _call(app, pairs, _body("limit-1"))
        second = _call(app, list(pairs), _body("limit-2"))
    assert first[0]["status"] == 200
    assert second[0]["status"] == 429
    assert json.loads(second[1]["body"])["errors"][0]["field"] == "ip"
