"""tagserver.clients.context: the request context the event carries, read from the raw headers,
is what Starlette's ``Request`` gives (repeated headers, several Cookie headers, quoting)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request

from tagserver.clients.context import (
    context_cookies,
    context_headers,
    cookie_is_safe,
    request_client_ip,
    set_cookie_header,
)
from tagserver.identity import CookieSpec
from tagserver.settings import Settings


def request(raw: list[tuple[bytes, bytes]], client: tuple[str, int] | None = ("127.0.0.1", 5)
            ) -> Request:  # fmt: skip
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/e", "headers": raw,
                             "query_string": b""}  # fmt: skip
    if client is not None:
        scope["client"] = client
    return Request(scope)


HEADER_LISTS = [
    pytest.param([], id="none"),
    pytest.param([(b"host", b"t.shop.example"), (b"cookie", b"_fbp=fb.1.1.2; _ga=GA1.1.1.1"),
                  (b"user-agent", b"UA")], id="browser"),
    pytest.param([(b"x-a", b"1"), (b"x-a", b"2"), (b"X-B", b"3")], id="repeated-last-wins"),
    pytest.param([(b"cookie", b"a=1; a=2"), (b"cookie", b"a=3; b=4")], id="two-cookie-headers"),
    pytest.param([(b"cookie", b'a="x\\073y"; b="plain"; c=" half')], id="quoted"),
    pytest.param([(b"cookie", b"noequals; =v; k=; ; x = y = z ;k2=\"\"")], id="odd-chunks"),
    pytest.param([(b"cookie", "n=caf\xe9".encode("latin-1")),
                  (b"referer", "https://x/\xe9".encode("latin-1"))], id="latin-1"),
    pytest.param([(b"cookie", b"  sp ace = v v ;\tt=\t1\t")], id="whitespace"),
]


@pytest.mark.parametrize("raw", HEADER_LISTS)
def test_context_headers_are_starlettes_items_without_cookie(
    raw: list[tuple[bytes, bytes]],
) -> None:
    expected = {k: v for k, v in request(raw).headers.items() if k != "cookie"}
    got = context_headers(request(raw))
    assert got == expected
    assert list(got) == list(expected)


@pytest.mark.parametrize("raw", HEADER_LISTS)
def test_context_cookies_are_starlettes_request_cookies(raw: list[tuple[bytes, bytes]]) -> None:
    expected = request(raw).cookies
    got = context_cookies(request(raw))
    assert got == expected
    assert list(got) == list(expected)


def test_request_client_ip_reads_every_forwarded_for_header() -> None:
    settings = Settings()
    state: Any = type("State", (), {"settings": settings})()
    raw = [(b"x-forwarded-for", b"203.0.113.7, 127.0.0.5"), (b"host", b"h"),
           (b"x-forwarded-for", b"127.0.0.9")]  # fmt: skip
    assert str(request_client_ip(request(raw), state)) == "203.0.113.7"
    assert str(request_client_ip(request(raw, ("198.51.100.2", 1)), state)) == "198.51.100.2"
    assert request_client_ip(request(raw, None), state) is None
    forwarded = [(b"forwarded", b"for=192.0.2.60;proto=https")]
    assert str(request_client_ip(request(forwarded), state)) == "192.0.2.60"


def test_remembered_cookie_parts_are_still_checked_each_time() -> None:
    good = CookieSpec("_fbp", "fb.1.1700000000000.1", 100, "shop.example", False)
    for _ in range(2):
        assert cookie_is_safe(good)
        assert cookie_is_safe(good._replace(value="a;b")) is False
        assert cookie_is_safe(good._replace(max_age=400 * 24 * 3600 + 1)) is False
        assert cookie_is_safe(good._replace(domain="shop.example; x")) is False
        assert cookie_is_safe(good._replace(name="_f bp")) is False
    assert set_cookie_header(good) == (
        b"_fbp=fb.1.1700000000000.1; Domain=shop.example; Max-Age=100; Path=/; SameSite=lax; Secure"
    )


def test_context_mappings_answer_as_dicts_before_and_after_they_are_decoded() -> None:
    raw = [(b"host", b"t.shop.example"), (b"cookie", b"a=1; b=2"), (b"x-a", b"1"),
           (b"sec-gpc", b"1"), (b"x-a", b"2"), (b"cookie", b"a=3")]  # fmt: skip
    expected_headers = {k: v for k, v in request(raw).headers.items() if k != "cookie"}
    expected_cookies = request(raw).cookies
    for name in ("x-a", "sec-gpc", "host", "cookie", "missing", "X-A", "é", ""):
        headers = context_headers(request(raw))  # get() before anything else: a scan
        assert headers.get(name) == expected_headers.get(name), name
        assert headers.get(name, "d") == expected_headers.get(name, "d"), name
        assert headers.get(name) == expected_headers.get(name), name  # now from the dict
        assert (name in context_headers(request(raw))) is (name in expected_headers)
        cookies = context_cookies(request(raw))
        assert cookies.get(name) == expected_cookies.get(name)
        assert (name in cookies) is (name in expected_cookies)
    headers, cookies = context_headers(request(raw)), context_cookies(request(raw))
    assert headers == expected_headers and cookies == expected_cookies
    assert dict(headers) == expected_headers and dict(cookies) == expected_cookies
    assert len(headers) == len(expected_headers) and len(cookies) == len(expected_cookies)
    assert headers["x-a"] == "2" and cookies["a"] == "3"
    with pytest.raises(KeyError):
        headers["cookie"]
    assert repr(cookies) == f"ContextCookies({expected_cookies!r})"


@pytest.mark.parametrize(
    "raw",
    [
        [],
        [(b"cookie", b"")],
        [(b"cookie", b"a=1")],
        [(b"host", b"h")],
        [(b"cookie", b"  ;  ; ")],
        [(b"cookie", b"=")],
        [(b"cookie", b" = ")],
        [(b"cookie", b"==")],
        [(b"cookie", b";x")],
        [(b"cookie", b"\xa0=\x85; \t")],
        [(b"cookie", b"\xa0=\x85; \tq")],
        [(b"cookie", b"; "), (b"cookie", b"=v")],
    ],
)
def test_context_mappings_are_empty_exactly_when_starlettes_are(
    raw: list[tuple[bytes, bytes]],
) -> None:
    expected_headers = {k: v for k, v in request(raw).headers.items() if k != "cookie"}
    assert bool(context_headers(request(raw))) is bool(expected_headers)
    assert bool(context_cookies(request(raw))) is bool(request(raw).cookies)


def test_context_cookies_emptiness_fuzzed() -> None:
    import random

    rng = random.Random(7)
    alphabet = [b" ", b"\t", b"=", b";", b'"', b"a", b"\xa0", b"\x85", b"\x1c", b"\r"]
    for _ in range(3000):
        value = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 8)))
        raw = [(b"cookie", value)]
        assert bool(context_cookies(request(raw))) is bool(request(raw).cookies), value
        assert dict(context_cookies(request(raw))) == request(raw).cookies, value


def test_raw_headers_are_the_scopes_pairs_whatever_their_container() -> None:
    from tagserver.clients.context import raw_headers

    pairs = [(b"host", b"h"), (b"x-a", b"1")]
    for given in (list(pairs), tuple(pairs), iter(pairs)):
        req = request(given)  # type: ignore[arg-type]
        assert list(raw_headers(req)) == pairs
        assert dict(context_headers(req)) == {"host": "h", "x-a": "1"}


def test_context_cookies_told_the_first_cookie_header_answer_as_without() -> None:
    # handle_collect passes the first Cookie header's value (None: no Cookie header), so that
    # ``cookies or {}`` mostly needs no walk through the headers
    import random

    from tagserver.clients.context import ContextCookies
    from tagserver.http import first_headers

    rng = random.Random(11)
    alphabet = [b" ", b"\t", b"=", b";", b"a", b"\xa0", b"\x85"]
    names = [b"cookie", b"cookie", b"host", b"x-a"]
    for _ in range(3000):
        raw = [(rng.choice(names),
                b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 6))))
               for _ in range(rng.randrange(0, 4))]  # fmt: skip
        told = ContextCookies(raw, first_headers(raw).get(b"cookie"))
        assert bool(told) is bool(request(raw).cookies), raw
        assert dict(told) == request(raw).cookies, raw


def test_request_client_ip_with_first_headers_is_the_same() -> None:
    from tagserver.http import first_headers

    settings = Settings()
    state: Any = type("State", (), {"settings": settings})()
    for raw in ([(b"x-forwarded-for", b"203.0.113.7, 127.0.0.5"), (b"host", b"h"),
                 (b"x-forwarded-for", b"127.0.0.9")],
                [(b"forwarded", b"for=192.0.2.60;proto=https")],
                [(b"host", b"h")], []):  # fmt: skip
        for client in (("127.0.0.1", 5), ("198.51.100.2", 1), None):
            assert request_client_ip(request(raw, client), state, first_headers(raw)) == (
                request_client_ip(request(raw, client), state)
            )


def test_set_cookies_writes_what_set_cookie_header_writes() -> None:
    # set_cookies remembers the attributes after the value; every cookie still gets checked
    from starlette.responses import Response

    from tagserver.clients.context import set_cookies

    good = CookieSpec("_fbp", "fb.1.1700000000000.1", 100, "shop.example", False)
    cookies = [
        good,
        good._replace(name="__Secure-tsid", value="a" * 32 + ".sig", httponly=True),
        good._replace(domain=None),
        good._replace(value="a;b"),  # not written
        good._replace(name="_f bp"),  # not written
        good._replace(max_age=400 * 24 * 3600 + 1),  # not written
        good._replace(domain="shop.example; x"),  # not written
        good._replace(max_age=True),  # type: ignore[arg-type]  # as set_cookie_header writes it
        good._replace(max_age=100.0),  # type: ignore[arg-type]
    ]
    for _ in range(3):  # the first time fills what is remembered
        response = Response()
        set_cookies(response, cookies)
        assert [v for k, v in response.raw_headers if k == b"set-cookie"] == [
            set_cookie_header(c) for c in cookies if cookie_is_safe(c)
        ]


def test_set_cookies_remembers_text_per_scope_and_name() -> None:
    # the text around a value is remembered per Domain and name: several scopes alternating,
    # an equal Max-Age of another int object, and more scopes than are remembered all write
    # set_cookie_header's bytes
    from starlette.responses import Response

    from tagserver.clients import context
    from tagserver.clients.context import set_cookies

    age = int("7776000")
    cookies = [
        CookieSpec(name, f"fb.1.1700000000000.{i}", age if i % 2 else int("7776000"),
                   domain, name == "__Secure-tsid")
        for i in range(3)
        for domain in [None, "shop.example", "shop.de", *(f"s{n}.example" for n in range(20))]
        for name in ("_fbp", "__Secure-tsid", *(f"c{n}" for n in range(20)))
    ]  # fmt: skip
    for _ in range(2):
        response = Response()
        set_cookies(response, cookies)
        assert [v for k, v in response.raw_headers if k == b"set-cookie"] == [
            set_cookie_header(c) for c in cookies
        ]
    assert 0 < len(context._COOKIE_TAILS) <= 16
    assert all(0 < len(names) <= 16 for names in context._COOKIE_TAILS.values())


def test_visitor_cookies_of_the_rate_limit_are_starlettes() -> None:
    # check_rate_limits parses only the chunks that can hold a visitor id cookie
    import random

    from tagserver.clients.context import _visitor_cookies

    rng = random.Random(5)
    atoms = [b"__Host-tsid", b"__Secure-tsid", b"tsid", b"_fbp", b"=", b";", b" ", b'"', b"\\",
             b"\\073", b"a", b"\xa0", b"\x85"]  # fmt: skip
    for _ in range(3000):
        raw = [(rng.choice([b"cookie", b"cookie", b"host"]),
                b"".join(rng.choice(atoms) for _ in range(rng.randrange(10))))
               for _ in range(rng.randrange(4))]  # fmt: skip
        expected = request(raw).cookies
        found = _visitor_cookies(raw)
        for name in ("__Host-tsid", "__Secure-tsid"):
            assert found.get(name) == expected.get(name), raw
