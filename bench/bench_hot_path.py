"""Benchmark: CPU time per ``POST /e`` hit from body bytes to the container result, in process.

Run from the repository root::

    .venv/bin/python bench/bench_hot_path.py                  # 20,000 hits per run, 7 runs
    .venv/bin/python bench/bench_hot_path.py --hits 50000 --runs 9
    .venv/bin/python bench/bench_hot_path.py --profile out.prof   # cProfile of one mix run

What one hit costs here is the work of the collect client and the container that
``handle_collect`` (``tagserver/app.py``) does per hit, with no server, no network and no
outbox: ``parse_collect_body(body)`` → ``event_from_hit(...)`` with the context the server passes
(the hit's event id, the page URL, the ``_fbp`` and signed visitor id that
``resolve_identity`` gives, a public client IP, the User-Agent, the request cookies and the
headers without ``Cookie``) → ``run_event`` (``apply_privacy``, then ``run_container``, drops
counted) with the shipped container of ``tags/`` loaded as the server loads it
(``META_PIXEL_ID``/``META_ACCESS_TOKEN`` set) and the server's default settings. Left out, because
other modules own them: rate limits, identity resolution (``bench/bench_identity.py``) and the
outbox. ``--no-privacy`` calls ``run_container`` directly instead of ``run_event``, as this
benchmark did before.

The bodies are those of ``bench/hits.lua`` (the harness's wrk load): 60 % PageView, 30 %
AddToCart (``custom_data`` value, currency, content_ids, content_type), 10 % Purchase with e-mail,
phone, first and last name, city, zip, country and external id. Unlike wrk's 200 recycled
requests every hit here has its own number ``i`` (event id, e-mail, phone, order id), so a cache
of normalised contact data only helps where values really repeat (country, names, city, zip).

Figures: CPU microseconds per hit (``time.process_time``) for the mix and for each kind alone,
the best and the median of ``--runs`` runs (the best run is the one least disturbed by other
processes on a shared machine).

``--json-parts`` measures instead the JSON work ``handle_collect`` and ``Sender.submit`` do per
hit of the mix, each part alone: ``decode_json_body(body)``, the reply ``JSONReply({"event_id",
"commands"}, headers)`` and ``compact_json(payload)`` of each outbound event (what is stored in the
outbox; the Meta batch body is these bytes joined). The same script run against an older tree
(``PYTHONPATH=<tree> python bench/bench_hot_path.py --json-parts`` from that tree) gives the
figures before a change.
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

from itsdangerous import Signer  # noqa: E402

from tagserver.clients.collect import event_from_hit, parse_collect_body  # noqa: E402
from tagserver.clients.context import run_event  # noqa: E402
from tagserver.container.loader import Container, load_container  # noqa: E402
from tagserver.container.runtime import ContainerResult, run_container  # noqa: E402
from tagserver.delivery.drops import DropCounter  # noqa: E402
from tagserver.identity import (  # noqa: E402
    VISITOR_ID_SALT,
    parse_cookie_header,
    resolve_cookie_scope,
    resolve_identity,
)
from tagserver.purchase_token import PurchaseReplayGuard  # noqa: E402
from tagserver.settings import load_settings  # noqa: E402

ENVIRON = {"META_PIXEL_ID": "1234567890123", "META_ACCESS_TOKEN": "EAAbench-token-0001"}
NOW = 1_760_000_000
UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/130.0 Safari/537.36")
FBP = f"fb.1.{NOW - 86400}000.100007919"
COOKIE_HEADER = f"_fbp={FBP}; _ga=GA1.1.123456789.1700000000"
#: The request headers as Starlette lists them (lower case); ``Cookie`` is left out, as
#: ``context_headers`` does.
HEADERS = {
    "host": "t.shop.example",
    "origin": "https://www.shop.example",
    "content-type": "text/plain;charset=UTF-8",
    "user-agent": UA,
    "accept": "*/*",
}
COOKIES = {"_fbp": FBP, "_ga": "GA1.1.123456789.1700000000"}
CLIENT_IP = "203.0.113.7"
KINDS = ("PageView", "AddToCart", "Purchase")


def body(i: int, kind: str) -> bytes:
    """The body ``hits.lua`` sends for hit number ``i`` of ``kind``."""
    eid = f"1-{NOW}-{i:06d}"
    url = f"https://www.shop.example/products/item-{i % 97}?utm_source=news"
    if kind == "PageView":
        text = (f'{{"event_name":"PageView","event_id":"{eid}","event_time":{NOW},'
                f'"event_source_url":"{url}","referrer_url":"https://www.shop.example/"}}')
    elif kind == "AddToCart":
        text = (f'{{"event_name":"AddToCart","event_id":"{eid}","event_time":{NOW},'
                f'"event_source_url":"{url}","custom_data":{{"value":"19.90","currency":"eur",'
                f'"content_ids":["sku-{i % 97}"],"content_type":"product"}}}}')
    else:
        text = (f'{{"event_name":"Purchase","event_id":"{eid}","event_time":{NOW},'
                f'"event_source_url":"https://www.shop.example/thanks?o={i}",'
                f'"custom_data":{{"value":"{10 + i % 90}.50","currency":"EUR",'
                f'"content_ids":["sku-{i % 97}","sku-3"],"order_id":"A-{i}"}},'
                f'"user_data":{{"em":" Buyer{i}@Example.com","ph":"+1 (650) 555-{i % 10000:04d}",'
                f'"fn":"Jane","ln":"Doe","ct":"Menlo Park","zp":"94025","country":"us",'
                f'"external_id":"cust-{i}"}}}}')
    return text.encode("utf-8")


def mix_kind(i: int) -> str:
    """``hits.lua``'s mix: 6 of 10 PageView, 3 AddToCart, 1 Purchase."""
    r = i % 10
    return "PageView" if r < 6 else "AddToCart" if r < 9 else "Purchase"


def identity() -> tuple[str | None, str | None]:
    """``(fbp, visitor_id)`` as ``resolve_identity`` gives them for the harness's cookies."""
    found = resolve_identity(
        parse_cookie_header(COOKIE_HEADER),
        page_url="https://www.shop.example/",
        referrer_url=None,
        scope=resolve_cookie_scope("t.shop.example", ()),
        ad_storage=True,
        analytics_storage=True,
        signer=Signer(b"bench-secret-key-0123456789abcdef", salt=VISITOR_ID_SALT),
        now_ms=NOW * 1000,
        max_age=400 * 86400,
    )
    return found.fbp, found.visitor_id


class PrivacyState:
    """The parts of the server's ``AppState`` that ``run_event`` reads: settings (the server's
    defaults), the drop counter and the purchase replay guard."""

    def __init__(self) -> None:
        self.settings = load_settings({})
        self.drops = DropCounter()
        self.purchase_guard = PurchaseReplayGuard()


def make_hit(container: Container, fbp: str | None, visitor: str | None, *,
             privacy: bool = True) -> Callable[[bytes], ContainerResult]:
    """What ``handle_collect`` does with one body, the parts this benchmark covers."""
    state: Any = PrivacyState()

    def hit(data: bytes) -> ContainerResult:
        now = NOW + 0.25
        parsed = parse_collect_body(data, now=now)
        event = event_from_hit(
            parsed,
            event_id=parsed.event_id or "minted",
            received_at=now,
            page_url=parsed.event_source_url,
            fbp=fbp,
            fbc=None,
            visitor_id=visitor,
            client_ip=CLIENT_IP,
            user_agent=UA,
            cookies=COOKIES,
            headers=dict(HEADERS),  # context_headers builds a new dict per request
        )
        if privacy:
            return run_event(state, container, event, now=now)
        return run_container(container, event, default_country=None, now=now)

    return hit


def measure(hit: Callable[[bytes], ContainerResult], bodies: Sequence[bytes],
            runs: int) -> tuple[float, float]:
    """CPU µs per hit over ``runs`` runs of every body once: (best, median)."""
    figures = []
    for _ in range(runs):
        start = time.process_time()
        for data in bodies:
            hit(data)
        figures.append((time.process_time() - start) / len(bodies) * 1e6)
    return min(figures), statistics.median(figures)


def check(hit: Callable[[bytes], ContainerResult], kind: str) -> dict[str, Any]:
    """One hit of ``kind`` must fire the Meta tag with one CAPI event and no drop."""
    result = hit(body(1, kind))
    assert result.fired == ["meta"] and not result.drops, (result.fired, result.drops)
    assert len(result.outbound) == 1
    return dict(result.outbound[0].payload)


def json_parts(hit: Callable[[bytes], ContainerResult], mix: Sequence[bytes],
               runs: int) -> dict[str, tuple[float, float]]:
    """CPU µs per hit of the mix for each JSON part alone: (best, median) of ``runs`` runs."""
    from tagserver.clients.collect import decode_json_body
    from tagserver.delivery.channels import compact_json
    from tagserver.http import JSONReply

    replies = []
    payloads = []
    for data in mix:
        result = hit(data)
        event_id = parse_collect_body(data, now=NOW).event_id
        replies.append({"event_id": event_id, "commands": result.commands})
        payloads.append([item.payload for item in result.outbound])
    try:  # the answer's headers as handle_collect passes them (encoded once per origin)
        from tagserver.http import answer_headers
    except ImportError:  # a tree from before answer_headers: a dict, encoded per reply
        headers: Any = {"cache-control": "no-store", "access-control-allow-origin":
                        HEADERS["origin"], "access-control-allow-credentials": "true",
                        "vary": "Origin"}  # fmt: skip
    else:
        headers = answer_headers(HEADERS["origin"])

    def decode() -> None:
        for data in mix:
            decode_json_body(data)

    def reply() -> None:
        for content in replies:
            JSONReply(content, headers=headers)

    def store() -> None:
        for outbound in payloads:
            for payload in outbound:
                compact_json(payload)

    parts: dict[str, tuple[float, float]] = {}
    for name, work in (("decode_json_body", decode), ("JSONReply", reply),
                       ("compact_json", store)):
        work()  # warm-up
        figures = []
        for _ in range(runs):
            start = time.process_time()
            work()
            figures.append((time.process_time() - start) / len(mix) * 1e6)
        parts[name] = min(figures), statistics.median(figures)
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hits", type=int, default=20000, help="hits per run (default 20000)")
    parser.add_argument("--runs", type=int, default=7, help="runs per figure (default 7)")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of one mix run")
    parser.add_argument("--json-parts", action="store_true",
                        help="CPU µs per hit of each JSON part of the hot path instead")
    parser.add_argument("--no-privacy", action="store_true",
                        help="run_container without apply_privacy (the figure before run_event)")
    args = parser.parse_args()
    container = load_container(ROOT / "tags", environ=ENVIRON)
    fbp, visitor = identity()
    hit = make_hit(container, fbp, visitor, privacy=not args.no_privacy)
    purchase = check(hit, "Purchase")
    assert "em" in purchase["user_data"] and "ph" in purchase["user_data"]
    check(hit, "PageView")
    check(hit, "AddToCart")

    mix = [body(i, mix_kind(i)) for i in range(args.hits)]
    if args.profile:
        import cProfile

        cProfile.runctx("for b in mix: hit(b)", globals(), {"mix": mix, "hit": hit},
                        args.profile)
        print(f"profile written to {args.profile}")
        return
    if args.json_parts:
        parts = json_parts(hit, mix, args.runs)
        print(f"CPU µs per hit of the mix, {args.hits} hits per run, best / median of "
              f"{args.runs} runs (JSON parts of handle_collect and Sender.submit):")
        for name, (best, median) in parts.items():
            print(f"  {name:<17} {best:8.2f} best  {median:8.2f} median")
        total = sum(best for best, _ in parts.values())
        print(f"  {'sum of bests':<17} {total:8.2f}")
        return
    measure(hit, mix[:2000], 1)  # warm-up: lazy tables, caches of the first values
    figures = {"mix": measure(hit, mix, args.runs)}
    for kind in KINDS:
        bodies = [body(i, kind) for i in range(args.hits)]
        figures[kind] = measure(hit, bodies, args.runs)
    print(f"CPU µs per hit, {args.hits} hits per run, best / median of {args.runs} runs "
          f"(parse_collect_body → event_from_hit → "
          f"{'run_container' if args.no_privacy else 'run_event'}, shipped tags/):")
    for name, (best, median) in figures.items():
        print(f"  {name:<10} {best:8.1f} best  {median:8.1f} median")


if __name__ == "__main__":
    main()
