"""Classifies destination answers and spaces retries.

Meta's classes (REFERENCE §1, from Meta "Handling errors" and the Graph API error codes): decide on
codes, never on the localised message. Transient: codes 1, 2, 4, 17, 32, 341, 613, 80003–80009,
``is_transient: true``, any 5xx, 429, network errors, timeouts and non-JSON (HTML) bodies.
Everything else in 4xx is permanent (100 with 2804xxx subcodes, 190, 102, 10, 200–299, 33).
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from tagserver.exceptions import DeliveryError, DestinationRejected, DestinationUnavailable

TRANSIENT_META_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, *range(80003, 80010)})
#: Longest ``Retry-After`` honoured, seconds; a larger one is cut to this.
MAX_RETRY_AFTER_S = 300.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date); ``None`` when
    absent or unparsable; never negative, at most :data:`MAX_RETRY_AFTER_S`."""
    if not value:
        return None
    value = value.strip()
    seconds: float
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def classify_meta_response(
    status: int, body: bytes, headers: Mapping[str, str]
) -> DeliveryError | None:
    """``None`` for a success, else the error to raise: :class:`DestinationUnavailable` (retry)
    or :class:`DestinationRejected` (permanent), with Meta's code, subcode and ``fbtrace_id``."""
    retry_after = parse_retry_after(headers.get("retry-after"))
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if 200 <= status < 300 and isinstance(data, dict) and "error" not in data:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        what = "a non-JSON body" if data is None else "no error object"
        return DestinationUnavailable(
            f"HTTP {status} with {what}", status=status, retry_after=retry_after
        )
    code = error.get("code") if isinstance(error.get("code"), int) else None
    subcode = error.get("error_subcode") if isinstance(error.get("error_subcode"), int) else None
    trace = error.get("fbtrace_id") if isinstance(error.get("fbtrace_id"), str) else None
    message = str(error.get("message", ""))[:200]
    text = f"HTTP {status} code {code} subcode {subcode}: {message}"
    transient = (
        status >= 500
        or status == 429
        or error.get("is_transient") is True
        or (code is not None and code in TRANSIENT_META_CODES)
    )
    cls = DestinationUnavailable if transient else DestinationRejected
    return cls(
        text, status=status, code=code, subcode=subcode, fbtrace_id=trace, retry_after=retry_after
    )


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; delays in seconds.

    Attempt ``n`` (1-based) waits ``min(max_delay, base * 2**(n-1))`` scaled by a random factor in
    ``[0.5, 1.0]``, or the server's ``Retry-After`` when that is longer. After ``max_attempts``
    attempts the event is a dead letter ``retries_exhausted``; ``None`` retries until the event is
    too old for its destination.
    """

    base_delay: float = 0.5
    max_delay: float = 60.0
    max_attempts: int | None = 8

    def delay(self, attempt: int, *, retry_after: float | None = None) -> float:
        exponent = min(max(attempt - 1, 0), 60)  # 2**60 s is past any cap; avoids overflow
        backoff = min(self.max_delay, self.base_delay * 2.0**exponent)
        backoff *= random.uniform(0.5, 1.0)
        return max(backoff, retry_after or 0.0)
