"""A bounded load of browser hits against real tagserver processes on loopback.

``HitLoad`` posts one ``ViewContent`` hit per event id from a pool of threads (one httpx client
each), spreading them round-robin over the given servers, and records each hit's HTTP status (0
for a connection error, e.g. after the server was killed). It runs in a background thread so a
test can act (kill a server) while hits are in flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.e2e.server import DEFAULT_HOST, TagServerProcess

ORIGIN = "https://www.shop.example"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130 Safari/537.36"
HEADERS = {"Origin": ORIGIN, "User-Agent": UA, "Host": DEFAULT_HOST}


def hit(event_id: str) -> dict[str, object]:
    return {
        "event_name": "ViewContent",
        "event_id": event_id,
        "event_source_url": "https://www.shop.example/p/1",
        "custom_data": {"content_ids": ["sku-1"], "value": 3.5, "currency": "EUR"},
    }


class HitLoad:
    """Send a hit for every id of ``event_ids`` with ``threads`` workers to ``path`` of each
    server; ``start()`` returns at once, ``join()`` waits (bounded by ``timeout`` seconds per hit
    and the id count)."""

    def __init__(
        self,
        servers: Sequence[TagServerProcess],
        event_ids: Sequence[str],
        *,
        threads: int = 16,
        timeout: float = 10.0,
        path: str = "/e",
    ) -> None:
        self.urls = [server.url for server in servers]
        self.path = path  # the collect path (TAGSERVER_COLLECT_PATH)
        self.event_ids = list(event_ids)
        self.threads = threads
        self.timeout = timeout
        self.statuses: dict[str, int] = {}
        self.answered_at: dict[str, float] = {}  # unix seconds
        self._lock = threading.Lock()
        self._accepted = 0
        self._thread: threading.Thread | None = None

    @property
    def accepted_count(self) -> int:
        with self._lock:
            return self._accepted

    def accepted(self) -> set[str]:
        """Event ids whose hit was answered 2xx."""
        with self._lock:
            return {eid for eid, status in self.statuses.items() if 200 <= status < 300}

    def _work(self, worker: int) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            for index in range(worker, len(self.event_ids), self.threads):
                event_id = self.event_ids[index]
                url = self.urls[index % len(self.urls)] + self.path
                try:
                    status = client.post(url, json=hit(event_id), headers=HEADERS).status_code
                except httpx.HTTPError:
                    status = 0
                with self._lock:
                    self.statuses[event_id] = status
                    self.answered_at[event_id] = time.time()
                    if 200 <= status < 300:
                        self._accepted += 1

    def _run(self) -> None:
        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(self._work, range(self.threads)))

    def start(self) -> HitLoad:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float = 120.0) -> HitLoad:
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the load did not finish within {timeout} s")
        return self

    def run(self) -> HitLoad:
        return self.start().join()
