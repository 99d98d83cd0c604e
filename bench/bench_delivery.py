"""CPU cost per event of the delivery path, in-process: submit → outbox → claim → encode → send → ack.

The delivery path runs in the server's process and event loop, so every microsecond it spends per
event is taken from the HTTP side at saturation. This measures it alone, without HTTP or tags:

- ``N`` Conversions API events (realistic payloads: hashed user data, IP, User-Agent, ``_fbp``,
  custom data; built before the clock starts) are submitted with :meth:`Sender.submit`, one event
  per call as a hit does, in groups of concurrent calls (sizes drawn from 1..``--max-group``) that
  share one group commit; each group is awaited (durable) before the next starts;
- the real :class:`~tagserver.delivery.sender.Sender` claims, batches (up to 1,000 per request),
  encodes, "posts" to a recording httpx transport that answers like the Graph API
  (``{"events_received": N}``), and acknowledges, all concurrently with the submits;
- the clock stops when every event is acknowledged.

Reported per backend: **CPU µs/event** (``time.process_time``: every thread of the process, the
SQLite committer included, user + system), best and median of ``--runs``, and the wall time of
the best run. After each run the recorded request bodies are parsed (outside the clock) to check
that every event arrived exactly once, byte-identical to its stored payload's JSON.

Backends: ``memory``, ``sqlite`` (a real file in a temporary folder, ``synchronous=FULL``) and,
with ``--backends ...,redis`` and ``--redis-port``, ``redis`` (a ``redis-server`` started by this
script on 127.0.0.1; its own CPU is not counted). Run from the project root:

    .venv/bin/python bench/bench_delivery.py                      # 20,000 events, 5 runs
    .venv/bin/python bench/bench_delivery.py --events 5000 --runs 3 --json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import importlib.util
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from redis_proc import start_redis  # noqa: E402

from tagserver.delivery.channels import MetaChannel  # noqa: E402
from tagserver.delivery.drops import DropCounter  # noqa: E402
from tagserver.delivery.outbox import MemoryOutbox, Outbox  # noqa: E402
from tagserver.delivery.retry import RetryPolicy  # noqa: E402
from tagserver.delivery.sender import Sender  # noqa: E402
from tagserver.secret import Secret  # noqa: E402
from tagserver.tags import Outbound  # noqa: E402
from tagserver.tags.meta import MetaDestination  # noqa: E402

GRAPH = "https://graph.bench"
DESTINATION = MetaDestination("1234567890", "v25.0", Secret("EAAB-BENCH-TOKEN"), None)
#: Every run gives up waiting for deliveries after this many seconds (a bug, not a slow machine).
DELIVERY_DEADLINE_S = 60.0


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def meta_event(i: int, now: int) -> dict[str, Any]:
    """One CAPI event as the Meta tag builds it for a /e hit (about 800 bytes of JSON)."""
    event: dict[str, Any] = {
        "event_name": ("PageView", "AddToCart", "Purchase")[i % 3],
        "event_time": now - i % 60,
        "event_id": f"bench-{i:08d}-{sha(str(i))[:8]}",
        "action_source": "website",
        "event_source_url": f"https://www.shop.example/p/{i % 500}?utm_source=news",
        "referrer_url": "https://www.google.com/",
        "user_data": {
            "client_ip_address": f"203.0.113.{i % 250}",
            "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
            "fbp": f"fb.1.1700000000000.{1000000000 + i}",
            "em": [sha(f"user{i}@example.com")],
            "ph": [sha(f"4915112345{i:04d}")],
            "external_id": [sha(f"visitor-{i}")],
            "ct": [sha("berlin")],
            "country": [sha("de")],
        },
    }
    if i % 3:
        event["custom_data"] = {
            "currency": "EUR",
            "value": round(10 + (i % 97) * 1.25, 2),
            "content_ids": [f"sku-{i % 300}", f"sku-{(i + 7) % 300}"],
            "content_type": "product",
            "contents": [{"id": f"sku-{i % 300}", "quantity": 1, "item_price": 19.99}],
        }
    return event


class GraphTransport(httpx.AsyncBaseTransport):
    """Answers every request like the Graph API (``{"events_received": N, ...}``), keeping the
    bodies for the check after the clock stops. Counting events costs one ``bytes.count``: the
    transport stands in for the network and should cost next to nothing itself."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.received = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        count = body.count(b'"event_id":')
        self.bodies.append(body)
        self.received += count
        content = b'{"events_received":%d,"messages":[],"fbtrace_id":"bench"}' % count
        return httpx.Response(200, content=content, headers={"content-type": "application/json"})


@dataclass
class Run:
    backend: str
    events: int
    cpu_s: float
    wall_s: float
    requests: int

    @property
    def cpu_us_per_event(self) -> float:
        return 1e6 * self.cpu_s / self.events


def group_sizes(n: int, max_group: int, seed: int) -> list[int]:
    """Sizes in 1..``max_group`` summing to ``n`` (the concurrent hits of one loop turn)."""
    rng = random.Random(seed)
    sizes: list[int] = []
    left = n
    while left:
        size = min(left, rng.randint(1, max_group))
        sizes.append(size)
        left -= size
    return sizes


def make_outbox(backend: str, workdir: Path, redis_url: str | None, run: int) -> Outbox:
    if backend == "memory":
        return MemoryOutbox()
    if backend == "sqlite":
        from tagserver.delivery.outbox_sqlite import SqliteOutbox

        return SqliteOutbox(workdir / f"delivery-{run}.sqlite3")
    assert redis_url is not None
    from tagserver.delivery.outbox_redis import RedisOutbox

    return RedisOutbox(redis_url, prefix=f"bench{run}-{time.time_ns()}")


async def one_run(
    backend: str, *, events: int, max_group: int, seed: int, workdir: Path,
    redis_url: str | None, run: int,
) -> Run:  # fmt: skip
    now = int(time.time())
    outbound = [Outbound(DESTINATION, meta_event(i, now)) for i in range(events)]
    sizes = group_sizes(events, max_group, seed)
    outbox = make_outbox(backend, workdir, redis_url, run)
    await outbox.open()
    transport = GraphTransport()
    client = httpx.AsyncClient(transport=transport)
    sender = Sender(
        client, outbox=outbox, channels={MetaDestination: MetaChannel(GRAPH)},
        drops=DropCounter(), policy=RetryPolicy(), destinations=[DESTINATION],
        flush_interval=1.0,  # the server's default (TAGSERVER_FLUSH_INTERVAL)
    )  # fmt: skip
    await sender.start()
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    submit = sender.submit
    position = 0
    for size in sizes:
        group = outbound[position : position + size]
        position += size
        await asyncio.gather(*[submit([item]) for item in group])
    deadline = wall0 + DELIVERY_DEADLINE_S
    while sender.delivered < events and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)
    cpu1, wall1 = time.process_time(), time.perf_counter()
    await sender.stop(timeout=5)
    await client.aclose()
    await outbox.close()
    check(outbound, transport, sender.delivered)
    return Run(backend, events, cpu1 - cpu0, wall1 - wall0, len(transport.bodies))


def check(outbound: list[Outbound], transport: GraphTransport, delivered: int) -> None:
    """Every event arrived exactly once, as the JSON it was submitted as; RuntimeError if not."""
    if delivered != len(outbound):
        raise RuntimeError(f"delivered {delivered} of {len(outbound)} events")
    seen: dict[str, Any] = {}
    for body in transport.bodies:
        data = json.loads(body)
        if data.get("access_token") != DESTINATION.access_token.reveal():
            raise RuntimeError("a request without the destination's access_token")
        for event in data["data"]:
            if event["event_id"] in seen:
                raise RuntimeError(f"event {event['event_id']} was sent twice")
            seen[event["event_id"]] = event
    for item in outbound:
        if seen.get(item.payload["event_id"]) != item.payload:
            raise RuntimeError(f"event {item.payload['event_id']} missing or changed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per backend (in turn)")
    parser.add_argument("--max-group", type=int, default=64, help="largest group of submits")
    parser.add_argument("--backends", default="memory,sqlite")
    parser.add_argument("--redis-port", type=int, default=None,
                        help="loopback port for the redis-server this script starts")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto",
                        help="event loop; auto: uvloop when installed, as uvicorn picks")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    unknown = set(backends) - {"memory", "sqlite", "redis"}
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}")
    if "redis" in backends and args.redis_port is None:
        parser.error("the redis backend needs --redis-port")
    loop = args.loop
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    runner: Any = asyncio.run
    if loop == "uvloop":
        import uvloop

        runner = uvloop.run
    runs: dict[str, list[Run]] = {b: [] for b in backends}
    redis_proc = None
    with tempfile.TemporaryDirectory(prefix="tagserver-bench-delivery-") as tmp:
        workdir = Path(tmp)
        try:
            redis_url = None
            if "redis" in backends:
                redis_proc, redis_url = start_redis(workdir, args.redis_port)
            for number in range(args.runs):
                for backend in backends:  # in turn: a busy moment of the machine hits all
                    runs[backend].append(runner(one_run(
                        backend, events=args.events, max_group=args.max_group,
                        seed=args.seed + number, workdir=workdir, redis_url=redis_url,
                        run=number,
                    )))  # fmt: skip
        finally:
            if redis_proc is not None:
                redis_proc.terminate()
                redis_proc.wait(timeout=10)
    rows = []
    for backend, results in runs.items():
        best = min(results, key=lambda r: r.cpu_us_per_event)
        rows.append({
            "backend": backend, "events": args.events, "runs": len(results),
            "cpu_us_per_event_best": round(best.cpu_us_per_event, 2),
            "cpu_us_per_event_median": round(
                statistics.median(r.cpu_us_per_event for r in results), 2),
            "wall_s_best_run": round(best.wall_s, 3),
            "requests_best_run": best.requests,
        })  # fmt: skip
    if args.json:
        print(json.dumps({"events": args.events, "runs": args.runs, "max_group": args.max_group,
                          "loop": loop, "results": rows}))  # fmt: skip
        return 0
    print(f"{args.events} events per run, groups of 1..{args.max_group} submits, "
          f"{args.runs} run(s) per backend, {loop} event loop")  # fmt: skip
    print(f"{'backend':8} {'CPU µs/event best':>18} {'median':>8} {'wall s':>7} {'requests':>9}")
    for row in rows:
        print(f"{row['backend']:8} {row['cpu_us_per_event_best']:>18} "
              f"{row['cpu_us_per_event_median']:>8} {row['wall_s_best_run']:>7} "
              f"{row['requests_best_run']:>9}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
