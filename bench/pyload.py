"""A Python load generator, used by the harness only when ``wrk`` is missing.

``run_load`` keeps ``connections`` HTTP/1.1 keep-alive connections busy for ``duration_s`` seconds
with pre-built requests (the same hits as ``hits.lua``), each connection optionally pausing
``delay_ms`` between requests, and returns the dict that ``hits.lua`` prints: ``requests``, ``ok``
(200 answers), ``other``, ``socket_errors``, ``duration_us`` and latency ``mean_us``/``p50_us``/``p90_us``/
``p99_us``/``max_us`` in microseconds. It is far slower than wrk: its ceiling is its own.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/130.0 Safari/537.36")


def build_requests(count: int = 200, prefix: str = "py") -> list[bytes]:
    """The hit mix of ``hits.lua``: 60 % PageView, 30 % AddToCart, 10 % Purchase with contact data."""
    now = int(time.time())
    out = []
    for i in range(1, count + 1):
        url = f"https://www.shop.example/products/item-{i % 97}?utm_source=news"
        body: dict[str, Any] = {"event_name": "PageView", "event_id": f"{prefix}-{now}-{i:06d}",
                                "event_time": now, "event_source_url": url}
        if i % 10 >= 6:
            body["event_name"] = "AddToCart"
            body["custom_data"] = {"value": "19.90", "currency": "eur",
                                   "content_ids": [f"sku-{i % 97}"], "content_type": "product"}
        if i % 10 == 9:
            body["event_name"] = "Purchase"
            body["custom_data"] = {"value": f"{10 + i % 90}.50", "currency": "EUR",
                                   "order_id": f"A-{i}"}
            body["user_data"] = {"em": f" Buyer{i}@Example.com", "ph": f"+1 (650) 555-{i:04d}",
                                 "fn": "Jane", "external_id": f"cust-{i}"}
        raw = json.dumps(body).encode()
        head = (f"POST /e HTTP/1.1\r\nHost: t.shop.example\r\nOrigin: https://www.shop.example\r\n"
                f"Content-Type: text/plain;charset=UTF-8\r\nUser-Agent: {UA}\r\n"
                f"Cookie: _fbp=fb.1.{(now - 86400) * 1000}.{100000000 + i * 7919}\r\n"
                f"Content-Length: {len(raw)}\r\n\r\n")
        out.append(head.encode() + raw)
    return out


async def _connection(host: str, port: int, reqs: list[bytes], offset: int, stop_at: float,
                      delay_s: float, lat: list[float], counts: dict[str, int]) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        counts["socket_errors"] += 1
        return
    i = offset
    try:
        while time.monotonic() < stop_at:
            start = time.monotonic()
            writer.write(reqs[i % len(reqs)])
            i += 1
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            lat.append(time.monotonic() - start)
            counts["requests"] += 1
            counts["ok" if status_line.split(b" ")[1:2] == [b"200"] else "other"] += 1
            if delay_s:
                await asyncio.sleep(delay_s)
    except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
        counts["socket_errors"] += 1
    finally:
        writer.close()


async def _run(host: str, port: int, connections: int, duration_s: float,
               delay_ms: float, prefix: str) -> dict[str, int]:
    reqs = build_requests(prefix=prefix)
    lat: list[float] = []
    counts = {"requests": 0, "ok": 0, "other": 0, "socket_errors": 0}
    started = time.monotonic()
    stop_at = started + duration_s
    await asyncio.gather(*(
        _connection(host, port, reqs, n * 7, stop_at, delay_ms / 1000, lat, counts)
        for n in range(connections)))
    elapsed = time.monotonic() - started
    lat.sort()

    def pct(p: float) -> int:
        return int(lat[min(len(lat) - 1, int(len(lat) * p / 100))] * 1e6) if lat else 0

    return {**counts, "duration_us": int(elapsed * 1e6), "p50_us": pct(50), "p90_us": pct(90),
            "p99_us": pct(99), "max_us": int(lat[-1] * 1e6) if lat else 0,
            "mean_us": int(sum(lat) / len(lat) * 1e6) if lat else 0}


def run_load(host: str, port: int, *, connections: int, duration_s: float,
             delay_ms: float = 0.0, prefix: str = "py") -> dict[str, int]:
    """Load ``host:port`` as described in the module docstring; returns the counts. Event ids
    start with ``prefix-``. Every request sent is answered and counted before it stops."""
    return asyncio.run(_run(host, port, connections, duration_s, delay_ms, prefix))
