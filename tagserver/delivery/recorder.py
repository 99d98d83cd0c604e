"""The dry-run destination: an httpx transport that records outbound requests instead of sending.

Used by ``TAGSERVER_DRY_RUN=1`` and ``tagserver demo``. Answers like the real services (Meta:
``{"events_received": N, ...}``; others: 204) so the whole delivery path runs. Recorded bodies
have their ``access_token`` and every known secret (:func:`tagserver.secret.redact_secrets`) masked.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any

import httpx

from tagserver.secret import MASK, redact_json, redact_secrets


class RecordingTransport(httpx.AsyncBaseTransport):
    """Keeps the last ``limit`` requests as ``{"time", "method", "url", "json"}`` dicts."""

    def __init__(self, limit: int = 1000) -> None:
        self._records: deque[dict[str, Any]] = deque(maxlen=limit)
        self._lock = threading.Lock()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        try:
            data: Any = json.loads(body) if body else None
        except ValueError:
            data = body.decode("utf-8", "replace")
        if isinstance(data, dict) and "access_token" in data:
            data["access_token"] = MASK
        record = {
            "time": time.time(),
            "method": request.method,
            "url": redact_secrets(str(request.url)),
            "json": redact_json(data),
        }
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
            return list(self._records)

