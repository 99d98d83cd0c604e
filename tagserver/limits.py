"""Abuse limits of the public endpoints (REFERENCE §5): rate limits per trusted client IP and per
visitor id, header and query-string length, requests in flight.

Each limit is a setting (``TAGSERVER_RATE_LIMIT_IP``, ``TAGSERVER_RATE_LIMIT_VISITOR``,
``TAGSERVER_MAX_HEADER_BYTES``, ``TAGSERVER_MAX_QUERY_BYTES``, ``TAGSERVER_MAX_CONCURRENCY``); an
answer over a limit has DESIGN.md's JSON error shape (429 and 503 with ``Retry-After``).
Rate limits live in this process's memory: with several instances each counts its own share
(a Redis-backed limiter is not done yet, see docs/SECURITY.md).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import Scope

from tagserver.exceptions import HitRejected, Overloaded, RateLimited, RequestTooLarge

#: Keys remembered per limiter; the least recently seen key is forgotten past it (memory bound).
MAX_KEYS = 100_000


class RateLimiter:
    """A token bucket per key: at most ``per_minute`` hits in a burst, refilled continuously at
    ``per_minute / 60`` hits per second. ``per_minute`` 0 switches the limiter off.

    ``clock`` returns seconds (monotonic); ``max_keys`` bounds memory (LRU). Not thread-safe: one
    event loop per process uses it.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def __len__(self) -> int:
        return len(self._buckets)

    def hit(self, key: str) -> int | None:
        """Take one token for ``key``: ``None`` when allowed, else the seconds (≥ 1, whole) until
        the next token."""
        if self.per_minute <= 0:
            return None
        now = self.clock()
        rate = self.per_minute / 60.0
        tokens, at = self._buckets.pop(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - at) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = None
        else:
            self._buckets[key] = (tokens, now)
            wait = max(1, math.ceil((1.0 - tokens) / rate))
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


class RateLimits:
    """The two limiters of a process: per trusted client IP and per (verified) visitor id."""

    def __init__(self, *, per_ip: int, per_visitor: int) -> None:
        self.ip = RateLimiter(per_ip)
        self.visitor = RateLimiter(per_visitor)
        self.limited = {"ip": 0, "visitor": 0}  # hits answered 429, per key kind
        #: True when either limit is on (read every hit: a plain attribute, set here, as the
        #: limits are fixed once made)
        self.active = per_ip > 0 or per_visitor > 0

    def check(self, *, ip: str | None, visitor_id: str | None) -> None:
        """Count one hit; raises :class:`RateLimited` (429) when either key is over its limit."""
        for kind, limiter, key in (("ip", self.ip, ip), ("visitor", self.visitor, visitor_id)):
            if key is None:
                continue
            wait = limiter.hit(key)
            if wait is not None:
                self.limited[kind] += 1
                raise RateLimited(
                    "too many requests",
                    retry_after=wait,
                    errors=[{"field": kind, "message": f"rate limit reached; retry in {wait} s"}],
                )


class RequestLimits:
    """The per-request limits of REFERENCE §5 that need no body: header bytes, query bytes and
    requests in flight. ``in_flight`` counts the requests admitted and not yet answered."""

    def __init__(
        self, *, max_header_bytes: int, max_query_bytes: int, max_concurrency: int
    ) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_query_bytes = max_query_bytes
        self.max_concurrency = max_concurrency
        self.in_flight = 0

    def refuse(self, scope: Scope) -> HitRejected | None:
        """The error to answer ``scope`` with (431, 414 or 503), or ``None`` to admit it."""
        size = 0
        for name, value in scope.get("headers", ()):
            size += len(name) + len(value) + 4
        if size > self.max_header_bytes:
            return RequestTooLarge(
                "request headers too large",
                status=431,
                errors=[{"field": "headers", "message": f"at most {self.max_header_bytes} bytes"}],
            )
        if len(scope.get("query_string", b"")) > self.max_query_bytes:
            return RequestTooLarge(
                "query string too long",
                status=414,
                errors=[{"field": "query", "message": f"at most {self.max_query_bytes} bytes"}],
            )
        if self.in_flight >= self.max_concurrency:
            return Overloaded(
                "too many requests in flight",
                errors=[{"field": "server", "message": "busy; retry in a second"}],
            )
        return None
