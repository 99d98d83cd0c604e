"""CORS against the allow-list (allowed, disallowed, ``null``, preflight, same origin) and the
visitor IP in outbound data for both clients (trusted-proxy walk; private results left out)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.security.harness import BROWSER, AppHarness

HIT = json.dumps({"event_name": "Purchase", "event_source_url": "https://www.shop.example/t",
                  "custom_data": {"value": 10, "currency": "EUR"}})
GA4_QUERY = ("/g/collect?v=2&tid=G-ABC123&gtm=45je&cid=111.222&en=page_view"
             "&dl=https%3A%2F%2Fwww.shop.example%2F")
CORS_NAMES = ("access-control-allow-origin", "access-control-allow-credentials",
              "access-control-allow-methods", "access-control-allow-headers")


def capi_events(outbound: list[httpx.Request]) -> list[dict[str, object]]:
    return [e for r in outbound if r.url.path.endswith("/events")
            for e in json.loads(r.content)["data"]]


def ga4_hits(outbound: list[httpx.Request]) -> list[httpx.Request]:
    return [r for r in outbound if r.url.path.endswith("/g/collect")]


@pytest.mark.parametrize(
    ("case", "origin", "host", "allowed"),
    [
        ("allowed", "https://www.shop.example", "t.shop.example", True),
        ("same-origin-path-mount", "https://www.shop.example", "www.shop.example", True),
        ("same-origin-http-behind-tls-proxy", "http://t.shop.example", "t.shop.example", True),
        ("other-site", "https://evil.example", "t.shop.example", False),
        ("null", "null", "t.shop.example", False),
        ("suffix-trick", "https://www.shop.example.evil.example", "t.shop.example", False),
        ("scheme-downgrade", "http://www.shop.example", "t.shop.example", False),
        ("userinfo", "https://www.shop.example@evil.example", "t.shop.example", False),
        ("port", "https://www.shop.example:8443", "t.shop.example", False),
        ("case-insensitive-host-only", "HTTPS://WWW.SHOP.EXAMPLE", "t.shop.example", False),
    ],
)
@pytest.mark.parametrize("path", ["/e", GA4_QUERY])
def test_cors_table(case: str, origin: str, host: str, allowed: bool, path: str) -> None:
    headers = {**BROWSER, "origin": origin, "host": host}
    with AppHarness() as app:
        response = app.request("POST", path, headers=headers, content=HIT if path == "/e" else b"")
        preflight = app.request("OPTIONS", path, headers={
            "origin": origin, "host": host, "access-control-request-method": "POST",
            "access-control-request-headers": "content-type"})
    if allowed:
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == origin  # exact echo, never *
        assert response.headers["access-control-allow-credentials"] == "true"
        assert "Origin" in response.headers["vary"]
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert response.headers.get_list("set-cookie")
    else:
        assert response.status_code == 403, response.text
        assert response.json()["status"] == 403
        for name in CORS_NAMES:
            assert name not in response.headers and name not in preflight.headers
        assert not response.headers.get_list("set-cookie")
        assert preflight.status_code == 403
        assert not preflight.headers.get_list("set-cookie")
        assert app.outbound == []  # no outbound request for a refused origin


def test_no_origin_no_cors_headers() -> None:
    """Same-origin requests without ``Origin`` (and server-side callers) need no CORS at all."""
    headers = {k: v for k, v in BROWSER.items() if k != "origin"}
    with AppHarness() as app:
        response = app.request("POST", "/e", headers=headers, content=HIT)
        preflight = app.request("OPTIONS", "/e", headers={"host": "t.shop.example"})
    assert response.status_code == 200
    for name in CORS_NAMES:
        assert name not in response.headers and name not in preflight.headers


@pytest.mark.parametrize(
    ("case", "peer", "xff", "forwarded", "proxies", "expected"),
    [
        ("direct-public-peer", "203.0.113.9", None, None, None, "203.0.113.9"),
        ("direct-peer-spoofs-xff", "203.0.113.9", "198.51.100.66", None, None, "203.0.113.9"),
        ("proxy-spoofed-leftmost", "10.0.0.2", "6.6.6.6, 198.51.100.7", None, "10.0.0.0/8",
         "198.51.100.7"),
        ("proxy-chain", "10.0.0.2", "198.51.100.7, 10.0.0.9", None, "10.0.0.0/8", "198.51.100.7"),
        ("proxy-port", "10.0.0.2", "198.51.100.7:61000", None, "10.0.0.0/8", "198.51.100.7"),
        ("proxy-ipv6-bracket", "10.0.0.2", "[2001:4860::8]:443", None, "10.0.0.0/8",
         "2001:4860::8"),
        ("proxy-mapped", "10.0.0.2", "::ffff:198.51.100.7", None, "10.0.0.0/8", "198.51.100.7"),
        ("forwarded-header", "10.0.0.2", None, 'for="[2001:4860::8]:4711";proto=https',
         "10.0.0.0/8", "2001:4860::8"),
        ("untrusted-peer-private", "192.168.1.5", "198.51.100.7", None, "10.0.0.0/8", None),
        ("private-client", "10.0.0.2", "192.168.1.20", None, "10.0.0.0/8", None),
        ("garbage-hop", "10.0.0.2", "198.51.100.7, nonsense", None, "10.0.0.0/8", None),
        ("loopback-peer-default-trust", "127.0.0.1", "198.51.100.7", None, None, "198.51.100.7"),
    ],
)
def test_visitor_ip_in_outbound_data(
    case: str, peer: str, xff: str | None, forwarded: str | None, proxies: str | None,
    expected: str | None,
) -> None:
    env = {"TAGSERVER_TRUSTED_PROXIES": proxies} if proxies else {}
    headers = {**BROWSER}
    if xff:
        headers["x-forwarded-for"] = xff
    if forwarded:
        headers["forwarded"] = forwarded
    with AppHarness(env=env, peer=peer) as app:
        assert app.request("POST", "/e", headers=headers, content=HIT).status_code == 200
        assert app.request("GET", GA4_QUERY, headers=headers).status_code == 200
    capi = capi_events(app.outbound)
    assert len(capi) == 2  # the Purchase of /e and the PageView made from the GA4 page_view
    for event in capi:
        user_data = event["user_data"]
        assert isinstance(user_data, dict)
        assert user_data.get("client_ip_address") == expected, case
    (ga4,) = ga4_hits(app.outbound)
    uip = parse_qs(urlsplit(str(ga4.url)).query).get("_uip")
    assert uip == [expected or "::"], case
