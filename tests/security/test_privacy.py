"""Consent and privacy signals against the policy table of docs/SECURITY.md (``/e`` consent,
GA4 ``gcs``/``gcd``, ``Sec-GPC``, TCF pass-through), bots, signed purchase tokens, the browser's
``test_event_code``, per-tag IP and User-Agent options, cookie header safety."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tagserver.clients.context import cookie_is_safe
from tagserver.identity import CookieSpec
from tagserver.purchase_token import sign_purchase, verify_purchase
from tagserver.tags.meta import redact_ip, trim_user_agent
from tests.containers import write_container
from tests.security.harness import BROWSER, ENVIRON, AppHarness

PAGE = "https://www.shop.example/p?fbclid=IwAR_click"
USER = {"em": "jane.doe@example.com", "ph": "+44 7700 900123", "fn": "Jane"}
PURCHASE = {"value": 59.9, "currency": "EUR", "order_id": "A-1001"}
KEYS = ["purchase-key-new-0123456789", "purchase-key-old-0123456789"]


def collect(app: AppHarness, consent: dict[str, str] | None = None, *, name: str = "Purchase",
            headers: dict[str, str] | None = None, custom: dict[str, Any] | None = None,
            extra: dict[str, Any] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"event_name": name, "event_source_url": PAGE, "user_data": USER,
                            "custom_data": custom if custom is not None else PURCHASE}
    if consent is not None:
        body["consent"] = consent
    body.update(extra or {})
    return app.request("POST", "/e", headers={**BROWSER, **(headers or {})},
                       content=json.dumps(body))


def capi(app: AppHarness) -> list[dict[str, Any]]:
    return [e for r in app.outbound if r.url.path.endswith("/events")
            for e in json.loads(r.content)["data"]]


def cookie_names(response: httpx.Response) -> set[str]:
    return {h.split("=", 1)[0] for h in response.headers.get_list("set-cookie")}


# (consent sent, cookies set, Meta CAPI sent, hashed PII sent) — the /e rows of the policy table
POLICY = [
    (None, {"_fbp", "_fbc", "__Secure-tsid"}, True, True),
    ({}, {"_fbp", "_fbc", "__Secure-tsid"}, True, True),
    ({"ad_storage": "denied"}, {"__Secure-tsid"}, False, False),
    ({"analytics_storage": "denied"}, {"_fbp", "_fbc"}, True, True),
    ({"ad_user_data": "denied"}, {"_fbp", "_fbc", "__Secure-tsid"}, True, False),
    ({"ad_personalization": "denied"}, {"_fbp", "_fbc", "__Secure-tsid"}, True, True),
    ({"ad_storage": "denied", "analytics_storage": "denied"}, set(), False, False),
    ({"ad_storage": "granted", "analytics_storage": "denied", "ad_user_data": "denied"},
     {"_fbp", "_fbc"}, True, False),
    ({k: "denied" for k in ("ad_storage", "analytics_storage", "ad_user_data",
                            "ad_personalization")}, set(), False, False),
]


@pytest.mark.parametrize(("consent", "cookies", "meta", "pii"), POLICY)
def test_collect_consent_policy_table(
    consent: dict[str, str] | None, cookies: set[str], meta: bool, pii: bool
) -> None:
    with AppHarness() as app:
        response = collect(app, consent)
        assert response.status_code == 200
    assert cookie_names(response) == cookies
    commands = response.json()["commands"]
    assert bool(commands) is meta  # no Pixel command when the Meta tag may not fire
    events = capi(app)
    assert len(events) == (1 if meta else 0)
    if events:
        user = events[0]["user_data"]
        assert ("em" in user and "ph" in user and "fn" in user) is pii
        assert ("fbc" in user) is True  # fbclid → _fbc only with ad_storage (meta implies it)


def test_refused_identifiers_are_not_read_either() -> None:
    """ad_storage denied: an existing _fbp/_fbc cookie is neither read nor forwarded."""
    cookie = "_fbp=fb.1.1700000000000.123456; _fbc=fb.1.1700000000000.IwAR_old"
    with AppHarness(env={"TAGSERVER_GA4_URL": "https://ga4.invalid"}) as app:
        response = collect(app, {"ad_storage": "denied"}, headers={"cookie": cookie})
        hit = ("/g/collect?v=2&tid=G-ABC123&cid=111.222&en=page_view&gcs=G100"
               "&dl=https%3A%2F%2Fwww.shop.example%2F%3Ffbclid%3DIwAR_x")
        ga4 = app.request("GET", hit, headers={**BROWSER, "cookie": cookie})
    assert not response.headers.get_list("set-cookie") or cookie_names(response) == {
        "__Secure-tsid"}
    assert not cookie_names(ga4) & {"_fbp", "_fbc"}
    assert capi(app) == []
    forwarded = [r for r in app.outbound if r.url.path.endswith("/g/collect")]
    assert forwarded and all(b"fb.1." not in str(r.url).encode() for r in forwarded)


@pytest.mark.parametrize(
    ("gcs", "gcd", "ad_cookies", "meta"),
    [
        (None, None, True, True),
        ("G111", None, True, True),
        ("G100", None, False, False),  # ad_storage and analytics_storage denied
        ("G101", None, False, False),  # ad_storage denied
        ("G110", None, True, True),  # analytics_storage denied only
        (None, "13p3p3p2p5l1", False, False),  # gcd: every type denied
        (None, "13t3t3t2t5l1", True, True),  # gcd: every type granted
        ("G111", "13p3t3t2t5l1", False, False),  # gcd's denial wins over gcs
        ("garbage", "x", True, True),  # malformed signals set nothing
    ],
)
def test_ga4_consent_signals(gcs: str | None, gcd: str | None, ad_cookies: bool,
                             meta: bool) -> None:
    query = "v=2&tid=G-ABC123&cid=111.222&en=page_view&dl=https%3A%2F%2Fwww.shop.example%2F"
    query += f"&gcs={gcs}" if gcs else ""
    query += f"&gcd={gcd}" if gcd else ""
    with AppHarness() as app:
        response = app.request("GET", "/g/collect?" + query, headers=BROWSER)
        assert response.status_code == 200
    assert bool(cookie_names(response) & {"_fbp"}) is ad_cookies
    assert bool(capi(app)) is meta
    forwarded = [r for r in app.outbound if r.url.path.endswith("/g/collect")]
    assert len(forwarded) == 1  # GA4 itself always receives the hit, with its own signals
    params = parse_qs(urlsplit(str(forwarded[0].url)).query)
    if gcs:
        assert params["gcs"] == [gcs]


def test_tcf_parameters_pass_through_unchanged() -> None:
    tc = "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"
    query = f"v=2&tid=G-ABC123&cid=111.222&en=page_view&gdpr=1&gdpr_consent={tc}"
    with AppHarness() as app:
        assert app.request("GET", "/g/collect?" + query, headers=BROWSER).status_code == 200
    (hit,) = [r for r in app.outbound if r.url.path.endswith("/g/collect")]
    params = parse_qs(urlsplit(str(hit.url)).query)
    assert params["gdpr"] == ["1"] and params["gdpr_consent"] == [tc]


@pytest.mark.parametrize(
    ("mode", "gpc", "meta", "ldu"),
    [
        ("ldu", True, True, True),
        ("ldu", False, True, False),
        ("suppress", True, False, False),
        ("suppress", False, True, False),
        ("off", True, True, False),
    ],
)
def test_gpc_setting(mode: str, gpc: bool, meta: bool, ldu: bool) -> None:
    headers = {"sec-gpc": "1"} if gpc else {}
    with AppHarness(env={"TAGSERVER_GPC": mode}) as app:
        response = collect(app, headers=headers)
        drops = app.state.drops.snapshot()
    events = capi(app)
    assert bool(events) is meta
    commands = response.json()["commands"]
    assert any(c["args"][0] == "dataProcessingOptions" for c in commands) is ldu
    if events:
        assert (events[0].get("data_processing_options") == ["LDU"]) is ldu
    assert ("ad destinations/gpc" in drops) is (mode == "suppress" and gpc)


@pytest.mark.parametrize(
    ("user_agent", "blocked"),
    [
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", True),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", True),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "HeadlessChrome/120.0.0.0 Safari/537.36", True),
        ("curl/8.5.0", True),
        (BROWSER["user-agent"], False),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
         "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1", False),
    ],
)
def test_bots_are_kept_away_from_ad_destinations(user_agent: str, blocked: bool) -> None:
    with AppHarness() as app:
        collect(app, headers={"user-agent": user_agent})
        drops = app.state.drops.snapshot()
    assert bool(capi(app)) is not blocked
    assert drops.get("ad destinations/bot", 0) == (1 if blocked else 0)


def test_bot_blocking_can_be_switched_off() -> None:
    with AppHarness(env={"TAGSERVER_BLOCK_BOTS": "0"}) as app:
        collect(app, headers={"user-agent": "curl/8.5.0"})
    assert len(capi(app)) == 1


def test_test_event_code_from_the_browser_is_ignored() -> None:
    with AppHarness() as app:
        collect(app, extra={"test_event_code": "TEST123"},
                custom={**PURCHASE, "test_event_code": "TEST123"})
        query = "v=2&tid=G-ABC123&cid=1.2&en=purchase&ep.test_event_code=TEST9&cu=EUR&epn.value=1"
        app.request("GET", "/g/collect?" + query, headers=BROWSER)
    for request in app.outbound:
        if request.url.path.endswith("/events"):
            assert "test_event_code" not in json.loads(request.content)


# -- signed purchase tokens ---------------------------------------------------------------


def test_purchase_token_sign_and_verify_table() -> None:
    now = 1_760_000_000.0
    token = sign_purchase(KEYS, order_id="A-1001", value="59.90", currency="eur", now=now)
    old_key_token = sign_purchase(KEYS[1:], order_id="A-1001", value=59.9, currency="EUR",
                                  now=now)
    other_salt = sign_purchase(["another-purpose-key-012345"], order_id="A-1001", value=59.9,
                               currency="EUR", now=now)
    table = [
        (token, PURCHASE, now, None),
        (old_key_token, PURCHASE, now, None),  # rotation: an older key still verifies
        (token, {**PURCHASE, "value": 599}, now, "mismatch"),
        (token, {**PURCHASE, "order_id": "A-1002"}, now, "mismatch"),
        (token, {**PURCHASE, "currency": "USD"}, now, "mismatch"),
        (token, PURCHASE, now + 3601, "expired"),
        (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), PURCHASE, now,
         "bad signature"),
        (other_salt, PURCHASE, now, "bad signature"),
        (None, PURCHASE, now, "missing"),
        ("x" * 5000, PURCHASE, now, "malformed"),
    ]
    for candidate, custom, at, expected in table:
        assert verify_purchase(candidate, custom, keys=KEYS, now=at) == expected


def _token_container(tmp_path: Path) -> Path:
    return write_container(tmp_path / "tags", {"tags": [{
        "name": "meta", "type": "meta", "pixel_id": {"env": "META_PIXEL_ID"},
        "access_token": {"env": "META_ACCESS_TOKEN"}, "events": ["Purchase", "PageView"],
        "require_purchase_token": True}]})


@pytest.mark.parametrize("token_kind", ["valid", "missing", "forged", "other-order"])
def test_a_tag_can_require_a_signed_purchase_token(tmp_path: Path, token_kind: str) -> None:
    custom: dict[str, Any] = dict(PURCHASE)
    if token_kind == "valid":
        custom["purchase_token"] = sign_purchase(KEYS, order_id="A-1001", value=59.9,
                                                 currency="EUR")
    elif token_kind == "forged":
        custom["purchase_token"] = sign_purchase(["attacker-key-0123456789abc"],
                                                 order_id="A-1001", value=59.9, currency="EUR")
    elif token_kind == "other-order":
        custom["purchase_token"] = sign_purchase(KEYS, order_id="A-1", value=59.9,
                                                 currency="EUR")
    env = {"TAGSERVER_PURCHASE_TOKEN_KEYS": ",".join(KEYS)}
    with AppHarness(env=env, tags_dir=_token_container(tmp_path), environ=ENVIRON) as app:
        collect(app, custom=custom)
        collect(app, name="PageView", custom={})  # other events need no token
        drops = app.state.drops.snapshot()
    names = [e["event_name"] for e in capi(app)]
    if token_kind == "valid":
        assert names == ["Purchase", "PageView"]
        assert "purchase_token" not in capi(app)[0]["custom_data"]  # never forwarded
    else:
        assert names == ["PageView"]
        assert drops["meta/invalid_purchase_token"] == 1


# -- per-tag IP and User-Agent options, cookie safety ---------------------------------------


@pytest.mark.parametrize(
    ("ip", "mode", "expected"),
    [("198.51.100.77", "none", "198.51.100.77"), ("198.51.100.77", "truncate", "198.51.100.0"),
     ("2001:4860:1234:5678::9", "truncate", "2001:4860:1234::"), ("198.51.100.77", "drop", None),
     (None, "truncate", None)],
)
def test_redact_ip(ip: str | None, mode: str, expected: str | None) -> None:
    assert redact_ip(ip, mode) == expected


def test_trim_user_agent() -> None:
    ua = BROWSER["user-agent"]
    assert trim_user_agent(ua, "full") == ua
    assert trim_user_agent(ua, "trim") == "Mozilla/5.0 Gecko/20100101 Firefox/140.0"


def test_meta_tag_ip_and_user_agent_options(tmp_path: Path) -> None:
    folder = write_container(tmp_path / "tags", {"tags": [{
        "name": "meta", "type": "meta", "pixel_id": {"env": "META_PIXEL_ID"},
        "access_token": {"env": "META_ACCESS_TOKEN"}, "events": ["Purchase"],
        "redact_ip": "truncate", "user_agent": "trim"}]})
    with AppHarness(tags_dir=folder, peer="198.51.100.77") as app:
        collect(app)
    (event,) = capi(app)
    assert event["user_data"]["client_ip_address"] == "198.51.100.0"
    assert event["user_data"]["client_user_agent"] == "Mozilla/5.0 Gecko/20100101 Firefox/140.0"


@pytest.mark.parametrize(
    ("cookie", "safe"),
    [
        (CookieSpec("_fbp", "fb.1.1700000000000.1", 100, "shop.example", False), True),
        (CookieSpec("_fbp", "fb.1\r\nSet-Cookie: x=1", 100, None, False), False),
        (CookieSpec("_fbp", "a;Domain=evil.example", 100, None, False), False),
        (CookieSpec("_fbp", "a b", 100, None, False), False),
        (CookieSpec("_fbp", "ok", 100, "shop.example\r\nX: y", False), False),
        (CookieSpec("_fbp", "ok", 100, "shop.example; Path=/x", False), False),
        (CookieSpec("bad name", "ok", 100, None, False), False),
        (CookieSpec("_fbp", "ok", -1, None, False), False),
        (CookieSpec("_fbp", "é", 100, None, False), False),
    ],
)
def test_cookie_safety_table(cookie: CookieSpec, safe: bool) -> None:
    assert cookie_is_safe(cookie) is safe


def test_tagserver_sign_prints_a_token_the_server_accepts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tagserver.cli import main

    monkeypatch.setenv("TAGSERVER_PURCHASE_TOKEN_KEYS", ",".join(KEYS))
    assert main(["sign", "--order-id", "A-1001", "--value", "59.90", "--currency", "EUR"]) == 0
    token = capsys.readouterr().out.strip()
    assert verify_purchase(token, PURCHASE, keys=KEYS[1:] + KEYS[:1], now=0) is None
    monkeypatch.delenv("TAGSERVER_PURCHASE_TOKEN_KEYS")
    assert main(["sign", "--order-id", "A", "--value", "1", "--currency", "EUR"]) == 1
    assert "TAGSERVER_PURCHASE_TOKEN_KEYS" in capsys.readouterr().err
