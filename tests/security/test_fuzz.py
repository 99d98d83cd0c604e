"""Hypothesis fuzz suite: hostile ``/e`` bodies, GA4 query strings, headers and cookies.

In-process (:class:`~tests.security.harness.AppHarness`, one app for every example) the
properties below send 3,000 + 3,000 + 2,500 + 2,000 = 10,500 generated requests per run (each
test asserts its own count); a smaller run of 200 goes to the real server process. Every answer
must be below 500, carry no header with CR or LF, and set only cookies whose name, value and
attributes passed validation (never a raw value the request brought).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagserver.ga4.client_id import FPID_RE
from tagserver.identity import FBC_RE, FBP_RE
from tests.e2e.server import DEFAULT_HOST, TagServerProcess
from tests.security.harness import BROWSER, AppHarness

COLLECT_EXAMPLES = 3000
GA4_EXAMPLES = 3000
HEADER_EXAMPLES = 2500
COOKIE_EXAMPLES = 2000
PROCESS_EXAMPLES = 200
IN_PROCESS_TOTAL = COLLECT_EXAMPLES + GA4_EXAMPLES + HEADER_EXAMPLES + COOKIE_EXAMPLES

VISITOR_RE = re.compile(r"[0-9a-f]{32}\.[A-Za-z0-9_-]{20,}\Z")
COOKIE_RULES = {"_fbp": FBP_RE, "_fbc": FBC_RE, "__Secure-tsid": VISITOR_RE,
                "__Host-tsid": VISITOR_RE}
GA4_KEYS = ["v", "tid", "gtm", "cid", "en", "dl", "dr", "dt", "sid", "sct", "seg", "_p", "gcs",
            "gcd", "npa", "_et", "ep.event_id", "ep.fbp", "ep.fbc", "epn.value", "ep.currency",
            "cu", "pr1", "pr2", "up.email", "em", "richsstsse", "_uip", "uip", "tfd", "_s",
            "gdpr", "gdpr_consent", "ep.test_event_code", "_dbg", "ul", "sr", "uid"]
EVENT_NAMES = ["PageView", "Purchase", "page_view", "purchase", "add_to_cart", "Lead", "",
               "x" * 101, "Pur\x00chase", "\u202eesahcruP"]


def _fuzz_settings(examples: int) -> Any:
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])


def check_response(response: httpx.Response) -> None:
    """The invariants every fuzzed answer must hold."""
    assert response.status_code < 500, response.text[:500]
    for name, value in response.headers.multi_items():
        assert "\r" not in value and "\n" not in value, (name, value)
        assert "\r" not in name and "\n" not in name
    for header in response.headers.get_list("set-cookie"):
        check_set_cookie(header)


def check_set_cookie(header: str) -> None:
    """Name known, value valid for that name, attributes exactly the safe ones."""
    pair, *attributes = [part.strip() for part in header.split(";")]
    name, _, value = pair.partition("=")
    if name == "FPID":
        from urllib.parse import unquote

        assert FPID_RE.match(unquote(value)), header
    else:
        assert name in COOKIE_RULES, header
        assert COOKIE_RULES[name].match(value), header
    lowered = {a.split("=", 1)[0].lower(): a.partition("=")[2] for a in attributes}
    assert lowered.get("path") == "/", header
    assert "secure" in lowered and lowered.get("samesite", "").lower() == "lax", header
    assert lowered.get("domain", "shop.example") == "shop.example", header
    assert 0 < int(lowered["max-age"]) <= 400 * 24 * 3600, header


@pytest.fixture(scope="module")
def app() -> Iterator[AppHarness]:
    env = {"TAGSERVER_RATE_LIMIT_IP": "0", "TAGSERVER_RATE_LIMIT_VISITOR": "0",
           "TAGSERVER_TRUSTED_PROXIES": "203.0.113.0/24", "TAGSERVER_GA4_CLIENT_ID": "server"}
    with AppHarness(env=env) as harness:
        yield harness


# -- strategies ---------------------------------------------------------------------------

texts = st.text(max_size=40) | st.sampled_from(
    ["", "a@b.co", "+1 650 555 1212", "null", "[]", "\ud800", "\x00", "../", "%0d%0a", "1e999",
     "fb.1.1700000000000.123", "GA1.1.1.1700000000", "<script>", "\r\nSet-Cookie: x=1"])
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | texts
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
consent_values = st.dictionaries(
    st.sampled_from(["ad_storage", "analytics_storage", "ad_user_data", "ad_personalization",
                     "other"]),
    st.sampled_from(["granted", "denied", "GRANTED", "", None, 1]),
    max_size=5,
)
hit_bodies = st.fixed_dictionaries(
    {"event_name": st.sampled_from(EVENT_NAMES) | json_scalars},
    optional={
        "event_id": texts | st.integers(),
        "event_time": st.integers() | st.floats() | texts,
        "event_source_url": st.sampled_from(["https://www.shop.example/?fbclid=AbC_1-2",
                                              "javascript:alert(1)", "https://x/" + "y" * 5000])
        | texts,
        "referrer_url": texts,
        "custom_data": st.dictionaries(
            st.sampled_from(["value", "currency", "order_id", "contents", "content_ids",
                             "purchase_token", "x"]), json_values, max_size=5) | json_values,
        "user_data": st.dictionaries(
            st.sampled_from(["em", "ph", "fn", "ln", "ct", "zp", "country", "db", "ge",
                             "external_id", "client_ip_address", "fbp"]),
            json_values, max_size=6) | json_values,
        "consent": consent_values | json_values,
        "test_event_code": texts,
    },
)
bodies = (
    hit_bodies.map(lambda d: json.dumps(d).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=200)
    | hit_bodies.map(lambda d: json.dumps(d, ensure_ascii=False).encode("utf-8", "surrogatepass"))
)
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=80,
)


@st.composite
def ga4_queries(draw: st.DrawFn) -> str:
    pairs = draw(st.lists(st.tuples(st.sampled_from(GA4_KEYS) | st.text(max_size=8),
                                    texts | header_text), max_size=12))
    raw = draw(st.booleans())  # raw: characters as drawn (bad escapes included), else encoded
    parts = []
    for key, value in pairs:
        if raw:
            parts.append(f"{key}={value}".encode("utf-8", "surrogatepass").decode("latin-1"))
        else:
            parts.append(quote(key, safe="") + "=" + quote(value.encode("utf-8",
                                                                        "surrogatepass")))
    return "&".join(parts)


def as_sent(query: str) -> str:
    """The query as a browser puts it on the wire: what may not appear raw in a URL (controls,
    space, ``#``, non-ASCII) percent-encoded; everything else, bad escapes included, as drawn."""
    return quote(query.encode("utf-8", "surrogatepass"), safe="!$&'()*+,;=:@/?%[]~-._")


# -- in-process properties ------------------------------------------------------------------


def test_fuzz_collect_bodies_3000(app: AppHarness) -> None:
    sent = 0

    @_fuzz_settings(COLLECT_EXAMPLES)
    @given(body=bodies, content_type=st.sampled_from(["text/plain", "application/json",
                                                      "text/plain;charset=UTF-8", "image/png"]))
    def run(body: bytes, content_type: str) -> None:
        nonlocal sent
        sent += 1
        response = app.request("POST", "/e", headers={**BROWSER, "content-type": content_type},
                               content=body)
        check_response(response)
        if response.status_code == 200:
            assert set(response.json()) == {"event_id", "commands"}

    run()
    assert sent >= COLLECT_EXAMPLES


def test_fuzz_ga4_query_strings_3000(app: AppHarness) -> None:
    sent = 0

    @_fuzz_settings(GA4_EXAMPLES)
    @given(query=ga4_queries(), method=st.sampled_from(["GET", "POST"]),
           prefix=st.sampled_from(["", "/metrics", "/a/b"]), body=st.none() | ga4_queries())
    def run(query: str, method: str, prefix: str, body: str | None) -> None:
        nonlocal sent
        sent += 1
        content = body.encode("latin-1", "replace") if (body and method == "POST") else None
        # the query goes to the app as drawn: httpx would re-encode a params dict
        path = f"{prefix}/g/collect?{as_sent(query)}"
        check_response(app.request(method, path, headers=BROWSER, content=content))

    run()
    assert sent >= GA4_EXAMPLES


def test_fuzz_headers_2500(app: AppHarness) -> None:
    sent = 0
    names = ["origin", "host", "x-forwarded-for", "forwarded", "user-agent", "sec-gpc", "referer",
             "content-type", "content-length", "x-real-ip", "accept-language"]

    @_fuzz_settings(HEADER_EXAMPLES)
    @given(headers=st.lists(st.tuples(st.sampled_from(names), header_text), max_size=8),
           path=st.sampled_from(["/e", "/g/collect?v=2&tid=G-ABC123&en=page_view&cid=1.2"]),
           method=st.sampled_from(["POST", "OPTIONS", "GET"]))
    def run(headers: list[tuple[str, str]], path: str, method: str) -> None:
        nonlocal sent
        sent += 1
        merged = [(k, v.encode()) for k, v in BROWSER.items() if k not in {n for n, _ in headers}]
        merged += [(k, v.encode("latin-1")) for k, v in headers if k != "content-length"]
        body = b'{"event_name":"Purchase","custom_data":{"value":1,"currency":"EUR"}}'
        try:
            response = app.request(method, path, headers=merged,
                                   content=body if method == "POST" else None)
        except httpx.LocalProtocolError:
            return  # httpx itself refuses the header (h11 would too): not a server question
        check_response(response)

    run()
    assert sent >= HEADER_EXAMPLES


cookie_values = texts | st.sampled_from(
    ["fb.1.1700000000000.123456", "fb.1.1700000000000.AbC", "fb.9.1700000000000.1;Domain=x",
     "0" * 32 + ".sig", "FPID2.2.x.1", '"quoted"', "a=b=c"]) | header_text


def test_fuzz_cookies_2000(app: AppHarness) -> None:
    sent = 0
    names = ["_fbp", "_fbc", "__Secure-tsid", "__Host-tsid", "FPID", "_ga", "_ga_ABC123", "x"]

    @_fuzz_settings(COOKIE_EXAMPLES)
    @given(cookies=st.lists(st.tuples(st.sampled_from(names) | header_text, cookie_values),
                            max_size=6),
           path=st.sampled_from(["/e", "/g/collect?v=2&tid=G-ABC123&en=page_view&cid=1.2",
                                 "/_/set_cookie?val=abc&path=/"]),
           separator=st.sampled_from(["; ", ";", ","]))
    def run(cookies: list[tuple[str, str]], path: str, separator: str) -> None:
        nonlocal sent
        sent += 1
        header = separator.join(f"{k}={v}" for k, v in cookies)
        body = b'{"event_name":"PageView","event_source_url":"https://www.shop.example/?fbclid=Zz9"}'
        raw = header.encode("utf-8", "surrogatepass")  # browsers send cookie bytes as stored
        headers = [(k, v.encode()) for k, v in BROWSER.items()] + [("cookie", raw)]
        try:
            response = app.request("POST", path, headers=headers, content=body)
        except httpx.LocalProtocolError:
            return
        check_response(response)
        sent_values = {v for _, v in cookies}
        for set_cookie in response.headers.get_list("set-cookie"):
            name, _, value = set_cookie.split(";")[0].partition("=")
            if value in sent_values:  # only a value that passed validation comes back
                assert COOKIE_RULES[name].match(value), set_cookie

    run()
    assert sent >= COOKIE_EXAMPLES


def test_fuzz_in_process_total_is_at_least_10000() -> None:
    assert IN_PROCESS_TOTAL >= 10_000


# -- against the real server process --------------------------------------------------------


@pytest.mark.slow
def test_fuzz_real_server_200(tag_server: TagServerProcess) -> None:
    sent = 0
    base = str(tag_server.url)

    @_fuzz_settings(PROCESS_EXAMPLES)
    @given(body=bodies, cookie=cookie_values, xff=header_text, query=ga4_queries())
    def run(body: bytes, cookie: str, xff: str, query: str) -> None:
        nonlocal sent
        sent += 1
        headers = [(k, v.encode()) for k, v in BROWSER.items() if k != "host"] + [
            ("host", DEFAULT_HOST.encode()),
            ("cookie", f"_fbp={cookie}".encode("utf-8", "surrogatepass")),
            ("x-forwarded-for", xff.encode("latin-1"))]
        with httpx.Client(base_url=base, timeout=10) as client:
            try:
                check_response(client.post("/e", headers=headers, content=body))
                check_response(client.get("/g/collect?" + as_sent(query), headers=headers))
            except httpx.LocalProtocolError:
                return

    run()
    assert sent >= PROCESS_EXAMPLES
    assert tag_server.get("/healthy", headers={"host": DEFAULT_HOST}).status_code == 200
