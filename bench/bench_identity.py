"""Benchmark: CPU time per ``POST /e`` hit of the request-context work around the container.

Run from the repository root::

    .venv/bin/python bench/bench_identity.py                  # 20,000 hits per run, 7 runs
    .venv/bin/python bench/bench_identity.py --hits 50000 --runs 9
    .venv/bin/python bench/bench_identity.py --profile out.prof   # cProfile of one run

What one hit costs here is what ``handle_collect`` (``tagserver/app.py``) does per hit besides
the body, the container and the outbox (``bench/bench_hot_path.py`` measures those): the trusted
client IP (``request_client_ip``), the rate-limit check (off, as in the harness), the cookie
scope of the ``Host``, ``identity_cookies`` + ``resolve_identity`` (``_fbp`` kept, visitor id
minted or verified and signed, the cookies to set), ``public_text``, the context cookies and
headers the event carries (``ContextCookies``, ``ContextHeaders``) and the ``Set-Cookie``
headers (``set_cookies``). Each hit is a fresh Starlette ``Request`` on a scope as uvicorn
builds it for ``bench/hits.lua``'s requests (peer 127.0.0.1, a trusted proxy by default, no
``X-Forwarded-For``), its headers read once into ``first_headers`` as ``handle_collect`` reads
them.

Cases: ``wrk``: the harness's requests (``_fbp`` and ``_ga`` cookies, no visitor id: one is
minted and signed on every hit); ``returning``: the same with a valid signed ``__Secure-tsid``
(verified, then signed again); ``fbclid``: a first visit from an ad click (no cookie, ``fbclid``
in the page URL: ``_fbp`` and ``_fbc`` minted); ``public``: ``wrk``'s requests straight from
200 visitors' public addresses (no proxy: the IP goes to the event). Figures: CPU microseconds
per hit (``time.process_time``), best and median of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_hot_path import ENVIRON, NOW, UA  # noqa: E402  (the same hits as the harness's)
from starlette.requests import Request  # noqa: E402

from tagserver.app import create_app  # noqa: E402
from tagserver.client_ip import public_text  # noqa: E402
from tagserver.clients.context import (  # noqa: E402
    ContextCookies,
    ContextHeaders,
    check_rate_limits,
    raw_headers,
    request_client_ip,
    set_cookies,
)
from tagserver.container.loader import load_container  # noqa: E402
from tagserver.http import JSONReply, first_headers  # noqa: E402
from tagserver.identity import (  # noqa: E402
    identity_cookies,
    resolve_cookie_scope,
    resolve_identity,
)
from tagserver.settings import load_settings  # noqa: E402

PAGE = "https://www.shop.example/products/item-7?utm_source=news"
AD_PAGE = "https://www.shop.example/products/item-7?fbclid=IwAR2xYzAbCdEf0123456789"
CASES = ("wrk", "returning", "fbclid", "public")


def cookie_header(i: int, case: str, tsid: str) -> str:
    """The ``Cookie`` header of hit ``i`` (``hits.lua``'s: one of 200 ``_fbp`` values)."""
    if case == "fbclid":
        return ""
    fbp = f"_fbp=fb.1.{NOW - 86400}000.{100000000 + (i % 200) * 7919}"
    extra = f"; __Secure-tsid={tsid}" if case == "returning" else ""
    return f"{fbp}; _ga=GA1.1.123456789.1700000000{extra}"


def make_scope(cookie: str, body_length: int = 180, peer: str = "127.0.0.1") -> dict[str, Any]:
    """An HTTP scope as uvicorn (httptools) gives it for one of ``hits.lua``'s requests."""
    headers = [
        (b"host", b"t.shop.example"),
        (b"origin", b"https://www.shop.example"),
        (b"content-type", b"text/plain;charset=UTF-8"),
        (b"user-agent", UA.encode()),
        (b"accept", b"*/*"),
        (b"content-length", str(body_length).encode()),
    ]
    if cookie:
        headers.insert(4, (b"cookie", cookie.encode("latin-1")))
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
        "server": ("127.0.0.1", 21000), "client": (peer, 40000 + 7), "scheme": "http",
        "method": "POST", "root_path": "", "path": "/e", "raw_path": b"/e", "query_string": b"",
        "headers": headers, "state": {},
    }  # fmt: skip


def make_group(state: Any, case: str) -> Callable[[Request, JSONReply], object]:
    """What ``handle_collect`` does around the container for one request, in its order."""
    settings = state.settings
    ad_page = case == "fbclid"

    def group(request: Request, response: JSONReply) -> object:
        raw = raw_headers(request)
        first = first_headers(raw)  # read before, as handle_collect reads Host and Origin
        found = first.get(b"host")
        host = found.decode("latin-1") if found is not None else None
        client_ip = request_client_ip(request, state, first)
        if state.limits.active:
            check_rate_limits(request, state, client_ip)
        scope = resolve_cookie_scope(host, settings.site_domains)
        cookie = first.get(b"cookie")
        identity = resolve_identity(
            identity_cookies(cookie.decode("latin-1")) if cookie is not None else {},
            page_url=AD_PAGE if ad_page else PAGE,
            referrer_url="https://www.shop.example/",
            scope=scope,
            ad_storage=True,
            analytics_storage=True,
            signer=state.signer,
            now_ms=NOW * 1000 + 250,
            max_age=settings.cookie_max_age_s,
        )
        cookies, headers = ContextCookies(raw, cookie), ContextHeaders(raw)
        # what every hit does with them later: event_from_hit's ``cookies or {}`` and
        # ``headers or {}``, apply_privacy's Sec-GPC
        context = (public_text(client_ip) if client_ip is not None else None,
                   cookies or {}, headers or {})  # fmt: skip
        headers.get("sec-gpc", "")
        set_cookies(response, identity.cookies)
        return identity, context

    return group


def inputs(n: int, case: str, tsid: str) -> tuple[list[Request], list[JSONReply]]:
    """``n`` fresh requests and answers to write cookies into."""
    requests = []
    for i in range(n):
        peer = f"198.51.100.{i % 200}" if case == "public" else "127.0.0.1"
        requests.append(Request(make_scope(cookie_header(i, case, tsid), peer=peer)))
    return requests, [JSONReply({"event_id": "x", "commands": []}, {}) for _ in range(n)]


def measure(group: Callable[[Request, JSONReply], object], n: int, case: str, tsid: str,
            runs: int) -> tuple[float, float]:
    """CPU µs per hit over ``runs`` runs of ``n`` hits: (best, median)."""
    figures = []
    for _ in range(runs):
        requests, answers = inputs(n, case, tsid)
        start = time.process_time()
        for request, answer in zip(requests, answers, strict=True):
            group(request, answer)
        figures.append((time.process_time() - start) / n * 1e6)
    return min(figures), statistics.median(figures)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hits", type=int, default=20000, help="hits per run (default 20000)")
    parser.add_argument("--runs", type=int, default=7, help="runs per figure (default 7)")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of one wrk run")
    args = parser.parse_args(argv)
    settings = load_settings({
        "TAGSERVER_SITE_DOMAINS": "www.shop.example",
        "TAGSERVER_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "TAGSERVER_RATE_LIMIT_IP": "0", "TAGSERVER_RATE_LIMIT_VISITOR": "0",
        "TAGSERVER_BLOCK_BOTS": "0", "TAGSERVER_RELOAD_INTERVAL": "0",
    })  # fmt: skip
    container = load_container(ROOT / "tags", environ=ENVIRON)
    app = create_app(settings, container=container, watch=False)
    state = app.state.tagserver
    tsid = state.signer.sign("0123456789abcdef0123456789abcdef").decode("ascii")

    # the answers must be the ones handle_collect gives
    requests, answers = inputs(1, "returning", tsid)
    found: Any = make_group(state, "returning")(requests[0], answers[0])
    assert found[0].visitor_id == "0123456789abcdef0123456789abcdef", found
    assert [k for k, _ in answers[0].raw_headers].count(b"set-cookie") == 2
    requests, answers = inputs(1, "fbclid", tsid)
    found = make_group(state, "fbclid")(requests[0], answers[0])
    assert found[0].fbc is not None and found[0].fbc.endswith(".IwAR2xYzAbCdEf0123456789")
    assert found[1] == (None, {}, {k: v for k, v in requests[0].headers.items()})
    assert found[1][2] == dict(requests[0].headers.items())

    if args.profile:
        import cProfile

        group = make_group(state, "wrk")
        requests, answers = inputs(args.hits, "wrk", tsid)
        cProfile.runctx("for r, a in zip(requests, answers): group(r, a)", globals(),
                        {"requests": requests, "answers": answers, "group": group},
                        args.profile)
        print(f"profile written to {args.profile}")
        return
    figures = {}
    for case in CASES:
        group = make_group(state, case)
        measure(group, 2000, case, tsid, 1)  # warm-up: caches of the first values
        figures[case] = measure(group, args.hits, case, tsid, args.runs)
    print(f"CPU µs per hit, {args.hits} hits per run, best / median of {args.runs} runs "
          "(client IP, rate limits, cookie scope, identity, context cookies/headers, "
          "Set-Cookie):")
    for name, (best, median) in figures.items():
        print(f"  {name:<10} {best:8.2f} best  {median:8.2f} median")


if __name__ == "__main__":
    main()
