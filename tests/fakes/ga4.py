"""A fake of Google Analytics' GA4 collection endpoint: a real HTTP server on 127.0.0.1.

It answers ``GET|POST /g/collect`` like ``region1.google-analytics.com`` does — ``204`` with an
empty body, whatever the hit holds — and records every request (raw query, decoded parameters,
body lines, headers), so end-to-end tests can assert what tagserver forwarded over the wire.
Other paths get ``404``. :meth:`FakeGA4.fail_next` queues failures (a 503 outage, a 429 with
``Retry-After``, a 400) to exercise retries.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["FakeGA4", "GA4Request"]


@dataclass(frozen=True)
class GA4Request:
    """One request the fake received, with the status it answered."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    status: int
    received_at: float

    @property
    def params(self) -> dict[str, str]:
        """The query's parameters decoded (a bare flag has ``""``; the first of a name wins)."""
        out: dict[str, str] = {}
        for name, value in parse_qsl(self.query, keep_blank_values=True):
            out.setdefault(name, value)
        return out

    @property
    def pairs(self) -> list[str]:
        """The query's raw ``name=value`` pairs, in order."""
        return [p for p in self.query.split("&") if p]

    @property
    def lines(self) -> list[dict[str, str]]:
        """Each non-blank body line, decoded."""
        text = self.body.decode("utf-8")
        return [dict(parse_qsl(line, keep_blank_values=True))
                for line in text.replace("\r\n", "\n").split("\n") if line.strip()]

    def hit(self) -> dict[str, str]:
        """What GA4 reads: the query's parameters overridden by the (single) body line's."""
        merged = self.params
        for line in self.lines[:1]:
            merged.update(line)
        return merged

    @property
    def user_agent(self) -> str | None:
        for name, value in self.headers.items():
            if name.lower() == "user-agent":
                return value
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests are recorded instead."""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers = self.server.fake._answer(self.command, self.path, dict(self.headers),
                                                   body)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    #: the stdlib's listen backlog of 5 drops connections when many arrive at once (the real
    #: service never does): concurrent senders then see resets that are the fake's fault
    request_queue_size = 128
    fake: FakeGA4


class FakeGA4:
    """GA4's collection endpoint on 127.0.0.1; use as a context manager. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[GA4Request] = []
        self._failures: deque[tuple[int, dict[str, str]]] = deque()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeGA4:
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def url(self) -> str:
        """Base URL (``http://127.0.0.1:<port>``), what ``TAGSERVER_GA4_URL`` points at."""
        if self._httpd is None:
            raise RuntimeError("FakeGA4 is not running: use it as a context manager")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_next(self, n: int = 1, status: int = 503, retry_after: str | None = None) -> None:
        """Answer the next ``n`` collection requests with ``status`` (recorded as such)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        with self._lock:
            self._failures.extend((status, headers) for _ in range(n))

    def _answer(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str]]:
        url = urlsplit(target)
        with self._lock:
            status, extra = 204, {}
            if url.path != "/g/collect":
                status = 404
            elif self._failures:
                status, extra = self._failures.popleft()
            self._requests.append(
                GA4Request(method, url.path, url.query, dict(headers), body, status, time.time())
            )
        # like Google: no body, CORS for the page's origin is not needed server to server
        return status, {"Cache-Control": "no-cache, no-store, must-revalidate", **extra}

    @property
    def requests(self) -> list[GA4Request]:
        with self._lock:
            return list(self._requests)

    @property
    def hits(self) -> list[GA4Request]:
        """Collection requests Google would have accepted (answered 2xx)."""
        return [r for r in self.requests if r.path == "/g/collect" and r.status < 300]

    def wait_for_hits(self, n: int, timeout: float = 10) -> list[GA4Request]:
        """Block until at least ``n`` accepted hits arrived; raises ``AssertionError`` with what
        did arrive after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = self.hits
            if len(hits) >= n:
                return hits
            time.sleep(0.02)
        raise AssertionError(
            f"expected {n} GA4 hits within {timeout}s, got {len(self.hits)}: "
            + "; ".join(f"{r.status} {r.query[:120]}" for r in self.requests)
        )

    def describe(self) -> str:
        return "\n".join(
            f"{r.method} {r.path}?{r.query} -> {r.status} body={r.body[:200]!r}"
            for r in self.requests
        ) or "(no requests)"
