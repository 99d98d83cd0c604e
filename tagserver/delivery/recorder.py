"""The dry-run destination: an httpx transport that records outbound requests instead of sending.

Used by ``TAGSERVER_DRY_RUN=1`` and ``tagserver demo``. Answers like the real services (Meta:
``{"events_received": N, ...}``; others: 204) so the whole delivery path runs. Recorded bodies
have their ``access_token`` and every known secret (:func:`tagserver.secret.redact_secrets`) masked.

Masking walks every string of a body (a batch of 1,000 CAPI events), so it is done when the
records are read, once per record, not for every request sent: a dry-run server under load
(the outbox benchmark) spent more time masking bodies nobody read than delivering them. The
``access_token`` is masked at once; secrets are masked with every value known at reading time
(the known values only ever grow).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any

import httpx

from tagserver.secret import MASK, redact_json, redact_secrets


class _Record:
    """One request as sent (``json`` already parsed, its ``access_token`` masked); ``masked``
    is the dict :meth:`RecordingTransport.records` returns, built on the first read."""

    __slots__ = ("time", "method", "url", "json", "masked")

    def __init__(self, when: float, method: str, url: str, data: Any) -> None:
        self.time = when
        self.method = method
        self.url = url
        self.json = data
        self.masked: dict[str, Any] | None = None

    def read(self) -> dict[str, Any]:
        if self.masked is None:
            self.masked = {
                "time": self.time,
                "method": self.method,
                "url": redact_secrets(self.url),
                "json": redact_json(self.json),
            }
            self.url, self.json = "", None  # only the masked copy is kept
        return self.masked


class RecordingTransport(httpx.AsyncBaseTransport):
    """Keeps the last ``limit`` requests as ``{"time", "method", "url", "json"}`` dicts."""

    def __init__(self, limit: int = 1000) -> None:
        self._records: deque[_Record] = deque(maxlen=limit)
        self._lock = threading.Lock()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        try:
            data: Any = json.loads(body) if body else None
        except ValueError:
            data = body.decode("utf-8", "replace")
        if isinstance(data, dict) and "access_token" in data:
            data["access_token"] = MASK
        record = _Record(time.time(), request.method, str(request.url), data)
        with self._lock:
            self._records.append(record)
        if request.url.path.endswith("/events") and isinstance(data, dict):
            count = len(data.get("data") or [])
            answer = {"events_received": count, "messages": [], "fbtrace_id": "dry-run"}
            return httpx.Response(200, json=answer)
        return httpx.Response(204)

    def records(self) -> list[dict[str, Any]]:
        """A copy of what was recorded, oldest first."""
        with self._lock:
            return [record.read() for record in self._records]
