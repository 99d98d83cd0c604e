"""Benchmark: the whole app's cost per ``POST /e`` hit, in process, without uvicorn or a socket.

Every hit goes through the ASGI application that ``tagserver serve`` runs (the front, limits,
``handle_collect``: identity, parse, container, outbox write, answer, access log, metrics) the way
uvicorn calls it, with the harness's bodies and headers (``bench/hits.lua``'s mix, built by
``bench_hot_path.body``; every hit has its own event id and contact data). What it leaves out is
uvicorn itself (HTTP parsing, the socket) and, by default, the disk: the outbox is ``memory``
(``--outbox sqlite`` uses a SQLite file in a temporary folder, as the server does by default). The
Graph API address is a closed local port, so the sender's retries cost next to nothing.

Two measures:

* default: **CPU µs per hit** (``time.process_time``, every thread), best and median of
  ``--runs`` runs of ``--hits`` hits. On a shared machine the figures move by several percent.
* ``--instructions``: **instructions per hit** counted by ``valgrind --tool=callgrind`` (about
  2 minutes): the difference between a run of ``--hits`` and one of ``3 × --hits`` hits (after the
  same warm-up), divided by the extra hits, so start-up cancels out. Instruction counts hardly
  depend on what else the machine runs: use them to compare two versions of the code. Repeated
  counts of one version moved by up to about 3 % at 1,000 hits (the sender's retries against the
  closed Graph port depend on timing): compare versions back to back, with ``--hits 2000`` or the
  mean of several counts, or add ``--repeatable`` (delivery a dry run, no claims during a run).

Run from the repository root::

    .venv/bin/python bench/bench_app.py                       # 20,000 hits per run, 7 runs
    .venv/bin/python bench/bench_app.py --outbox sqlite
    .venv/bin/python bench/bench_app.py --instructions        # needs valgrind
    .venv/bin/python bench/bench_app.py --instructions --repeatable
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_hot_path import NOW, UA, body, mix_kind  # noqa: E402

WARM_HITS = 300


def environment(outbox: str, tmp: str, *, repeatable: bool = False) -> dict[str, str]:
    """The server's settings for this benchmark (limits and bot blocking off, as in the harness:
    every hit comes from one address). ``repeatable``: delivery is a dry run (the Graph API
    requests are recorded, not sent, so no retry's timing enters the count) and the sender
    claims every 1,000 s (never during a run): what is left varies little between counts."""
    extra = {"TAGSERVER_DRY_RUN": "1", "TAGSERVER_FLUSH_INTERVAL": "1000"} if repeatable else {}
    return extra | {
        "TAGSERVER_SITE_DOMAINS": "www.shop.example",
        "TAGSERVER_META_GRAPH_URL": "http://127.0.0.1:9",
        "TAGSERVER_OUTBOX": "memory" if outbox == "memory" else f"{tmp}/outbox.sqlite3",
        "TAGSERVER_KEYS": f"{tmp}/keys.sqlite3",
        "TAGSERVER_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "TAGSERVER_RATE_LIMIT_IP": "0",
        "TAGSERVER_RATE_LIMIT_VISITOR": "0",
        "TAGSERVER_BLOCK_BOTS": "0",
        "TAGSERVER_RELOAD_INTERVAL": "0",
        "TAGSERVER_LOG_LEVEL": "error",
        "TAGSERVER_DRAIN_TIMEOUT": "0.1",
        "META_PIXEL_ID": "1234567890",
        "META_ACCESS_TOKEN": "EAAB-BENCH-TOKEN-123",
    }


async def run_hits(app: Any, bodies: list[bytes], runs: int, concurrency: int) -> list[float]:
    """Start the app's lifespan, send ``WARM_HITS`` hits, then ``runs`` times all ``bodies``, in
    waves of ``concurrency`` concurrent hits (each its own task, as uvicorn runs them); the CPU
    µs per hit of each run. Raises ``SystemExit`` when a hit is not answered 200."""
    now = int(time.time())
    cookie = f"_fbp=fb.1.{now - 86400}000.100007919; _ga=GA1.1.123456789.1700000000"
    headers = [(b"host", b"t.shop.example"), (b"origin", b"https://www.shop.example"),
               (b"content-type", b"text/plain;charset=UTF-8"), (b"user-agent", UA.encode()),
               (b"cookie", cookie.encode()), (b"accept", b"*/*")]  # fmt: skip
    lifespan_sent: list[dict[str, Any]] = []
    started = asyncio.Event()

    stop = asyncio.Event()

    async def lifespan_receive() -> dict[str, Any]:
        if not started.is_set():
            started.set()
            return {"type": "lifespan.startup"}
        await stop.wait()
        return {"type": "lifespan.shutdown"}

    async def lifespan_send(message: dict[str, Any]) -> None:
        lifespan_sent.append(message)

    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, lifespan_receive,
            lifespan_send)
    )  # fmt: skip
    for _ in range(500):
        if lifespan_sent:
            break
        await asyncio.sleep(0.01)
    if not lifespan_sent or lifespan_sent[0]["type"] != "lifespan.startup.complete":
        raise SystemExit(f"the app did not start: {lifespan_sent}")
    bad: list[int] = []

    async def one(data: bytes) -> None:
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                 "http_version": "1.1", "server": ("127.0.0.1", 8080),
                 "client": ("127.0.0.1", 50000), "scheme": "http", "method": "POST",
                 "root_path": "", "path": "/e", "raw_path": b"/e", "query_string": b"",
                 "headers": [*headers, (b"content-length", str(len(data)).encode())],
                 "state": {}}  # fmt: skip

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": data, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] != 200:
                bad.append(message["status"])

        await app(scope, receive, send)

    async def wave(some: list[bytes]) -> None:
        for i in range(0, len(some), concurrency):
            await asyncio.gather(*(one(data) for data in some[i:i + concurrency]))

    await wave(bodies[:WARM_HITS])
    results = []
    for _ in range(runs):
        start = time.process_time()
        await wave(bodies)
        results.append((time.process_time() - start) * 1e6 / len(bodies))
    if bad:
        raise SystemExit(f"{len(bad)} hits were not answered 200 (first: {bad[0]})")
    stop.set()
    await lifespan
    return results


def measure(
    hits: int, runs: int, outbox: str, concurrency: int, *, repeatable: bool = False
) -> list[float]:
    """CPU µs per hit of each run, in this process (``repeatable``: see :func:`environment`)."""
    import uvloop

    now = int(time.time())
    bodies = [body(i, mix_kind(i)).replace(str(NOW).encode(), str(now).encode())
              for i in range(hits)]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(environment(outbox, tmp, repeatable=repeatable))
        from tagserver.app import app_from_environment

        app = app_from_environment()
        return uvloop.run(run_hits(app, bodies, runs, concurrency))


def count_instructions(
    hits: int, outbox: str, concurrency: int, *, repeatable: bool = False
) -> float:
    """Instructions per hit under callgrind: (count of 3 × ``hits``) − (count of ``hits``), over
    2 × ``hits`` (``repeatable``: see :func:`environment`). Raises ``SystemExit`` when valgrind
    is missing or a run fails."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    counts = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (hits, 3 * hits):
            out = Path(tmp) / f"callgrind.{n}"
            run = subprocess.run(
                [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                 __file__, "--hits", str(n), "--runs", "1", "--outbox", outbox,
                 "--concurrency", str(concurrency), *(["--repeatable"] if repeatable else [])],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            collected = [line for line in run.stderr.splitlines() if "Collected :" in line]
            if run.returncode != 0 or not collected:
                raise SystemExit(f"callgrind run failed:\n{run.stdout}\n{run.stderr[-2000:]}")
            counts.append(int(collected[-1].rsplit(":", 1)[1]))
    return (counts[1] - counts[0]) / (2 * hits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hits", type=int, default=None,
                        help="hits per run (default 20,000; 1,000 with --instructions)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--outbox", choices=["memory", "sqlite"], default="memory")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="hits in flight together (wrk's connections in the harness)")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per hit with valgrind instead of timing")
    parser.add_argument("--repeatable", action="store_true",
                        help="dry-run delivery and no claims during a run: counts that move "
                             "less between runs, to compare two versions of the code")
    args = parser.parse_args()
    if args.instructions:
        hits = args.hits or 1000
        per_hit = count_instructions(hits, args.outbox, args.concurrency,
                                     repeatable=args.repeatable)
        kind = ", repeatable" if args.repeatable else ""
        print(f"instructions per hit ({args.outbox} outbox{kind}, callgrind, {hits} vs "
              f"{3 * hits} hits): {per_hit:,.0f}")
        return
    results = measure(args.hits or 20_000, args.runs, args.outbox, args.concurrency,
                      repeatable=args.repeatable)
    best, median = min(results), statistics.median(results)
    kind = ", repeatable" if args.repeatable else ""
    print(f"CPU µs per hit, whole app in process ({args.outbox} outbox{kind}, "
          f"{args.hits or 20_000} "
          f"hits per run, {args.concurrency} at a time): best {best:.1f}, median {median:.1f} "
          f"of {len(results)} runs")  # fmt: skip


if __name__ == "__main__":
    main()
