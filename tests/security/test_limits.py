"""Limits: body (413), headers (431), query (414), rate per IP and per visitor (429 with
Retry-After), requests in flight (503); each answer in DESIGN.md's JSON error shape."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tagserver.front import Front
from tagserver.limits import RateLimiter, RateLimits, RequestLimits
from tagserver.settings import Settings
from tests.security.harness import BROWSER, AppHarness

HIT = json.dumps({"event_name": "PageView", "event_source_url": "https://www.shop.example/"})


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["ok"] is False and body["status"] == status and body["errors"]
    assert response.headers["cache-control"] == "no-store"
    return body  # type: ignore[no-any-return]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("per_minute", "hits", "advance", "expected"),
    [
        (3, 3, 0.0, [None, None, None]),  # a burst up to the limit is allowed
        (3, 4, 0.0, [None, None, None, 20]),  # the 4th waits for one token: 60/3 s
        (60, 61, 0.0, [None] * 60 + [1]),  # 1 token a second: Retry-After is at least 1
        (3, 5, 20.0, [None, None, None, None, None]),  # 20 s refill one token per hit
        (0, 100, 0.0, [None] * 100),  # 0 = off
    ],
)
def test_rate_limiter_table(
    per_minute: int, hits: int, advance: float, expected: list[int | None]
) -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute, clock=clock)
    answers = []
    for _ in range(hits):
        answers.append(limiter.hit("198.51.100.7"))
        clock.now += advance
    assert answers == expected


def test_rate_limiter_keys_are_independent_and_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(1, max_keys=3, clock=clock)
    assert [limiter.hit(k) for k in ("a", "b", "c")] == [None, None, None]
    assert limiter.hit("a") == 60
    limiter.hit("d")  # evicts the least recently seen key ("b")
    assert len(limiter) == 3
    assert limiter.hit("b") is None  # forgotten: a fresh bucket


def test_default_limits_are_set() -> None:
    settings = Settings()
    assert settings.max_body_bytes == 32 * 1024
    assert settings.rate_limit_ip > 0 and settings.rate_limit_visitor > 0
    assert settings.max_header_bytes and settings.max_query_bytes and settings.max_concurrency


@pytest.mark.parametrize("size", [32 * 1024 + 1, 200_000])
def test_body_over_limit_is_413(size: int) -> None:
    body = '{"event_name": "PageView", "pad": "' + "x" * size + '"}'
    with AppHarness() as app:
        assert_error(app.request("POST", "/e", headers=BROWSER, content=body), 413)
        ok = app.request("POST", "/e", headers=BROWSER, content=HIT)
        assert ok.status_code == 200
    assert app.state.sender.delivered >= 0


def test_headers_and_query_over_limit() -> None:
    env = {"TAGSERVER_MAX_HEADER_BYTES": "2048", "TAGSERVER_MAX_QUERY_BYTES": "512"}
    with AppHarness(env=env) as app:
        big = {**BROWSER, "x-pad": "a" * 3000}
        assert_error(app.request("POST", "/e", headers=big, content=HIT), 431)
        query = "v=2&tid=G-ABC123&en=page_view&cid=1.2&dl=" + "a" * 600
        assert_error(app.request("GET", "/g/collect?" + query, headers=BROWSER), 414)
        assert app.request("GET", "/healthy", headers=big).status_code == 200


@pytest.mark.parametrize(
    ("case", "env", "peers_and_xff", "expected"),
    [
        # per trusted client IP: the 3rd hit from one visitor IP is refused
        ("ip", {"TAGSERVER_RATE_LIMIT_IP": "2"}, [("203.0.113.9", None)] * 3, [200, 200, 429]),
        # behind a trusted proxy the limit keys on the walked client IP, not on the proxy
        (
            "proxy",
            {"TAGSERVER_RATE_LIMIT_IP": "1", "TAGSERVER_TRUSTED_PROXIES": "10.0.0.0/8"},
            [("10.0.0.2", "198.51.100.1"), ("10.0.0.2", "198.51.100.2"),
             ("10.0.0.3", "198.51.100.1")],
            [200, 200, 429],
        ),
        # a spoofed leftmost entry does not give a fresh bucket
        (
            "spoof",
            {"TAGSERVER_RATE_LIMIT_IP": "1", "TAGSERVER_TRUSTED_PROXIES": "10.0.0.0/8"},
            [("10.0.0.2", "1.1.1.1, 198.51.100.1"), ("10.0.0.2", "8.8.8.8, 198.51.100.1")],
            [200, 429],
        ),
    ],
)
def test_rate_limit_per_ip(
    case: str, env: dict[str, str], peers_and_xff: list[tuple[str, str | None]],
    expected: list[int],
) -> None:
    statuses = []
    first = AppHarness(env={**env, "TAGSERVER_RATE_LIMIT_VISITOR": "0"})
    with first:
        for peer, xff in peers_and_xff:
            transport = httpx.ASGITransport(app=first.app, client=(peer, 4000))
            headers = {**BROWSER, **({"x-forwarded-for": xff} if xff else {})}
            response = _send(first, transport, headers)
            statuses.append(response.status_code)
            if response.status_code == 429:
                body = assert_error(response, 429)
                assert body["errors"][0]["field"] == "ip"
                assert int(response.headers["retry-after"]) >= 1
                assert response.headers["access-control-allow-origin"] == BROWSER["origin"]
    assert statuses == expected, case


def _send(app: AppHarness, transport: httpx.ASGITransport, headers: dict[str, str]) -> Any:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/e", headers=headers, content=HIT)

    return app._loop.run_until_complete(go())


def test_rate_limit_per_visitor_id() -> None:
    env = {"TAGSERVER_RATE_LIMIT_VISITOR": "2", "TAGSERVER_RATE_LIMIT_IP": "0"}
    with AppHarness(env=env) as app:
        first = app.request("POST", "/e", headers=BROWSER, content=HIT)
        cookie = first.cookies.get("__Secure-tsid")
        assert cookie
        with_id = {**BROWSER, "cookie": f"__Secure-tsid={cookie}"}
        assert app.request("POST", "/e", headers=with_id, content=HIT).status_code == 200
        assert app.request("POST", "/e", headers=with_id, content=HIT).status_code == 200
        body = assert_error(app.request("POST", "/e", headers=with_id, content=HIT), 429)
        assert body["errors"][0]["field"] == "visitor"
        # a forged id is no key (and gets no fresh bucket): it is simply not counted per visitor
        forged = {**BROWSER, "cookie": "__Secure-tsid=" + "0" * 32 + ".forged"}
        assert app.request("POST", "/e", headers=forged, content=HIT).status_code == 200
        # GA4 hits count against the same limits
        ga4 = app.request("GET", "/g/collect?v=2&tid=G-ABC123&en=page_view&cid=1.2",
                          headers=with_id)
        assert_error(ga4, 429)
        assert app.state.limits.limited["visitor"] == 2


def test_concurrency_limit_is_503() -> None:
    release = asyncio.Event()
    entered = 0

    async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal entered
        entered += 1
        await release.wait()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guarded = Front(slow_app, limits=RequestLimits(max_header_bytes=10_000, max_query_bytes=1000,
                                                   max_concurrency=2))

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=guarded)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = [asyncio.create_task(client.get("/e")) for _ in range(2)]
            while entered < 2:
                await asyncio.sleep(0.001)
            third = await client.get("/e")
            assert third.headers["retry-after"] == "1"
            assert third.json()["status"] == 503
            release.set()
            return [third.status_code] + [(await t).status_code for t in first]

    assert asyncio.run(scenario()) == [503, 204, 204]
    assert guarded.in_flight == 0


def test_rate_limits_are_active_when_either_limit_is_on() -> None:
    assert not RateLimits(per_ip=0, per_visitor=0).active
    assert not RateLimits(per_ip=-1, per_visitor=0).active
    assert RateLimits(per_ip=5, per_visitor=0).active
    assert RateLimits(per_ip=0, per_visitor=5).active
