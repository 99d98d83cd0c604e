"""The one exception hierarchy of tagserver, split by who has to react.

::

    TagserverError
    ├── ConfigError              the operator: bad settings or container (every issue, with its path)
    ├── HitRejected              the browser: a 4xx answer with the JSON error shape of DESIGN.md
    │   ├── PayloadTooLarge      413
    │   ├── Unauthorized         401: no valid API key (POST /api/events)
    │   ├── RequestTooLarge      414/431: query string or headers over their limit
    │   ├── RateLimited          429 with Retry-After
    │   └── Overloaded           503 with Retry-After: too many requests in flight
    ├── DeliveryError            the sender: an outbound request did not succeed
    │   ├── DestinationRejected  permanent (bad payload, token, permissions): never retried
    │   └── DestinationUnavailable  transient (5xx, throttling, network): retried with backoff
    └── OutboxError              the operator: the outbox (SQLite file, Redis) cannot be used;
                                 a hit that cannot be stored is answered 503
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class TagserverError(Exception):
    """Base of every error tagserver raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in settings or a container file.

    ``where`` is the file (or ``environment``), ``path`` the JSON path inside it (``$.tags[0].type``)
    or the variable name, ``message`` says what is wrong and what was expected, ``hint`` how to fix.
    """

    where: str
    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.where}: {self.path}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class ConfigError(TagserverError):
    """Settings or a container are invalid; ``issues`` holds every problem found, not just the first."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class HitRejected(TagserverError):
    """An incoming hit is refused; answered with ``status`` (4xx) and the JSON error shape.

    ``errors`` lists every problem as ``{"field": ..., "message": ...}``.
    """

    status = 400

    def __init__(self, error: str, *, errors: Sequence[dict[str, str]] = ()) -> None:
        self.error = error
        self.errors = list(errors)
        super().__init__(error)


class PayloadTooLarge(HitRejected):
    """The request body is over the configured limit (bytes)."""

    status = 413


class DeliveryError(TagserverError):
    """An outbound request failed.

    ``status`` is the HTTP status (0 for a network error or timeout), ``code``/``subcode`` Meta's error
    codes when the body had them, ``fbtrace_id`` Meta's trace id for support requests.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: int | None = None,
        subcode: int | None = None,
        fbtrace_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.subcode = subcode
        self.fbtrace_id = fbtrace_id
        self.retry_after = retry_after
        super().__init__(message)


class DestinationRejected(DeliveryError):
    """A permanent failure: resending the same request cannot succeed (Meta code 100/2804xxx, 190, ...)."""


class DestinationUnavailable(DeliveryError):
    """A transient failure: the same request may succeed later (5xx, 429, codes 1, 2, 4, 17, 32, ...).

    ``retry_after`` is the server's ``Retry-After`` in seconds when it sent one.
    """


class UnsupportedMediaType(HitRejected):
    """The body's Content-Type is neither JSON nor text/plain."""

    status = 415


class BodyTimeout(HitRejected):
    """The request body did not arrive in time (a slow or stalled client): 408."""

    status = 408


class OriginNotAllowed(HitRejected):
    """A browser request from an origin outside ``TAGSERVER_ALLOWED_ORIGINS``."""

    status = 403


class Unauthorized(HitRejected):
    """A server-to-server request without a valid, unrevoked API key (``Authorization: Bearer``)."""

    status = 401


class RequestTooLarge(HitRejected):
    """The query string (414) or the request headers (431) are over their configured limit."""

    def __init__(self, error: str, *, status: int, errors: Sequence[dict[str, str]] = ()) -> None:
        super().__init__(error, errors=errors)
        self.status = status


class RateLimited(HitRejected):
    """Too many hits from one client IP or visitor id; ``retry_after`` in whole seconds."""

    status = 429

    def __init__(
        self, error: str, *, retry_after: int, errors: Sequence[dict[str, str]] = ()
    ) -> None:
        super().__init__(error, errors=errors)
        self.retry_after = retry_after


class Overloaded(HitRejected):
    """More requests in flight than ``TAGSERVER_MAX_CONCURRENCY``; ``retry_after`` in seconds."""

    status = 503
    retry_after = 1


class OutboxError(TagserverError):
    """The outbox cannot be opened, read or written (a locked or unwritable SQLite file, Redis
    unreachable). The message names the backend (never a password) and the operation."""
