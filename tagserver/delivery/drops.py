"""Counts every event or field that did not reach its destination, by a reason from a closed list."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Literal, get_args

log = logging.getLogger("tagserver.delivery")

DropReason = Literal[
    "too_old",  # event_time over Meta's age limit: Meta would reject the batch
    "missing_purchase_data",  # Purchase without value or currency (Meta 2804009)
    "invalid_field",  # one field removed, the event still sent
    "invalid_event",  # a field Meta requires is missing (website: event_source_url, user agent)
    "rejected",  # the destination refused it permanently (bad payload, token, permissions)
    "retries_exhausted",  # transient failures until the attempt limit
    "queue_full",  # the in-memory queue was at its bound (kept for compatibility; unused)
    "shutdown",  # still undelivered when the drain timeout ended (only a non-durable outbox)
    "unknown_destination",  # an outbox entry whose destination no tag of the container sends to
    "tag_error",  # a tag raised while building: a bug, logged with the tag's name
    "internal_error",  # delivery itself raised: a bug, logged with its traceback
    "bot",  # a known crawler's User-Agent: kept away from ad destinations
    "gpc",  # Sec-GPC: 1 with TAGSERVER_GPC=suppress: no ad destination
    "invalid_purchase_token",  # a tag requires a signed purchase token; it was missing or bad
]
DROP_REASONS: tuple[str, ...] = get_args(DropReason)


class DropCounter:
    """Thread-safe counts of drops per ``(destination, reason)``; each drop is also logged.

    ``listener(destination, reason, n)`` is called for every count (the metrics use it).
    """

    def __init__(self, *, listener: Callable[[str, str, int], None] | None = None) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._listener = listener

    def count(self, destination: str, reason: DropReason | str, detail: str, n: int = 1) -> None:
        """Record ``n`` drops; ``detail`` is logged and must hold no raw personal data."""
        if reason not in DROP_REASONS:
            raise ValueError(f"unknown drop reason {reason!r}; expected one of {DROP_REASONS}")
        with self._lock:
            self._counts[(destination, reason)] += n
        if self._listener is not None:
            self._listener(destination, reason, n)
        log.warning(
            "dropped",
            extra={"destination": destination, "reason": reason, "detail": detail, "count": n},
        )

    def snapshot(self) -> dict[str, int]:
        """``{"<destination>/<reason>": count}``."""
        with self._lock:
            return {f"{d}/{r}": n for (d, r), n in sorted(self._counts.items())}
