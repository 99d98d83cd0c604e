"""Benchmark: GA4 hit parsing (gtag query + body → sGTM event data + Meta view), hits per second.

Target: parsing must stay far below the cost of a request. Google sizes a server container at
17-35 requests/s per vCPU (REFERENCE §5); the pure parsing of one real hit must allow at least
``--target`` (default 1,000) hits/s on one loaded core, so it is never what limits an instance.

Usage: ``python bench/bench_ga4_parse.py [--seconds 2] [--target 2000]``; exits 1 under target.
Uses the real hits of ``shared/cases/ga4_hits.json`` and a batched POST of four events.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tagserver.clients.ga4 import parse_ga4_request  # noqa: E402
from tagserver.ga4.forward import build_forward_payload  # noqa: E402
from tagserver.meta.from_ga4 import meta_from_ga4  # noqa: E402
from tests.cases import find_case_file  # noqa: E402


def load_requests() -> list[tuple[str, str, bytes]]:
    cases = json.loads(find_case_file("ga4_hits.json").read_text("utf-8"))
    requests = []
    for case in cases:
        url = urlsplit(case["path"])
        requests.append((url.path, url.query, case["body"].encode()))
    shared = urlsplit(cases[0]["path"]).query
    batch = "\r\n".join(
        ["en=page_view", "en=view_item&pr1=idA~pr9.5~qt1", "en=add_to_cart&pr1=idA~pr9.5~qt2",
         "en=purchase&ep.transaction_id=T-1&epn.value=19&cu=EUR&pr1=idA~pr9.5~qt2"]
    )
    requests.append(("/g/collect", shared, batch.encode()))
    return requests


def run(seconds: float) -> tuple[int, float]:
    requests = load_requests()
    hits = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for path, query, body in requests:
            batch = parse_ga4_request(path=path, query=query, body=body,
                                      ip_override="198.51.100.7", user_agent="Mozilla/5.0")
            for hit in batch.hits:
                meta_from_ga4(hit.event_data)
                build_forward_payload(hit, client_ip="198.51.100.7", user_agent="Mozilla/5.0")
                hits += 1
    return hits, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--target", type=float, default=1000.0, help="minimum hits/s")
    args = parser.parse_args()
    hits, elapsed = run(args.seconds)
    rate = hits / elapsed
    print(f"ga4 parse+map+forward: {hits} hits in {elapsed:.2f} s = {rate:,.0f} hits/s "
          f"({1e6 / rate:.0f} µs/hit; target ≥ {args.target:,.0f} hits/s)")
    return 0 if rate >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
