"""Benchmark: CPU time per ``POST /e`` hit of the bookkeeping around the hit (metrics, access log).

Run from the repository root::

    .venv/bin/python bench/bench_bookkeeping.py                  # 200,000 hits per run, 5 runs
    .venv/bin/python bench/bench_bookkeeping.py --hits 20000 --runs 3

Per hit, what ``Front`` (``tagserver/front.py``) and ``handle_collect``/``submit_results`` do
besides the hit itself: the request-duration histogram's ``observe`` (the route's child), the
``tagserver.access`` line (``AccessLog.write`` with the JSON handler of ``configure_logging``,
writing to ``/dev/null``), the accepted-hit counter, the events counter and one tag fired.
Runs inside a running event loop, as in the server (the deferred metrics and the access log
arm their timers there). Cases: ``all`` (the five together), then each alone. Figures: CPU
microseconds per hit (``time.process_time``), best and median of ``--runs`` runs, the empty
loop's time subtracted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tagserver.front import Front  # noqa: E402
from tagserver.limits import RequestLimits  # noqa: E402
from tagserver.logs import AccessLog, configure_logging, plain_access_paths  # noqa: E402
from tagserver.metrics import Metrics  # noqa: E402


def cases() -> dict[str, Callable[[float], None]]:
    """Each case: one hit's bookkeeping, given the request's elapsed seconds."""
    metrics = Metrics()
    log = AccessLog(plain_access_paths("/e", "/e/", "/t.js", "/healthy", "/metrics"))
    front = Front(
        None,  # type: ignore[arg-type]  # never called: only its timers are used
        limits=RequestLimits(max_header_bytes=1, max_query_bytes=1, max_concurrency=1),
        metrics=metrics,
        access_log=log,
        routes={"/e": "collect", "/e/": "collect"},
    )
    timers, routes = front._timers, front.routes
    accepted, events = metrics.hit_outcome["accepted"], metrics.event_count

    def everything(elapsed: float) -> None:
        timers.get(routes.get("/e", "other"), timers["other"]).observe(elapsed)
        log.write("POST", "/e", 200, elapsed)
        accepted.inc()
        events.inc()
        metrics.tag_fired("meta")

    return {
        "all": everything,
        "access_log": lambda elapsed: log.write("POST", "/e", 200, elapsed),
        "observe": timers["collect"].observe,
        "counter": lambda elapsed: accepted.inc(),
        "tag_fired": lambda elapsed: metrics.tag_fired("meta"),
    }


def run(case: Callable[[float], None] | None, hits: int) -> float:
    """CPU seconds for ``hits`` calls of ``case`` (``None``: the empty loop)."""
    start = time.process_time()
    if case is None:
        for i in range(hits):
            _elapsed = 0.000171 + (i % 97) * 1e-6
    else:
        for i in range(hits):
            case(0.000171 + (i % 97) * 1e-6)  # durations 0.171-0.267 ms
    return time.process_time() - start


async def main(hits: int, runs: int) -> None:
    empty = min(run(None, hits) for _ in range(runs))
    print(f"CPU us per hit, best / median of {runs} runs of {hits:,} hits (empty loop subtracted)")
    for name, case in cases().items():
        times = []
        for _ in range(runs):
            times.append(run(case, hits) - empty)
            await asyncio.sleep(0)  # let the timers fire between runs
        best, median = min(times) / hits * 1e6, statistics.median(times) / hits * 1e6
        print(f"  {name:<11} {best:6.3f} / {median:6.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sys.stderr.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # the access lines go to /dev/null
    configure_logging("info")
    asyncio.run(main(args.hits, args.runs))
