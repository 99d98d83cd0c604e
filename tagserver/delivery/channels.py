"""How each destination's batches become HTTP requests and how its answers are read.

A channel is pure apart from what the sender hands it: it builds ``(url, body bytes)`` and
classifies ``(status, body, headers)``; the sender owns the network.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from tagserver.delivery.retry import classify_meta_response, parse_retry_after
from tagserver.exceptions import DeliveryError, DestinationRejected, DestinationUnavailable
from tagserver.ga4.forward import forward_request
from tagserver.tags.ga4 import GA4Destination
from tagserver.tags.http import HttpDestination
from tagserver.tags.meta import MetaDestination

#: Meta accepts at most 1,000 events per request (Conversions API "Batch requests").
META_MAX_BATCH = 1000


class Channel(Protocol):
    max_batch: int

    def label(self, destination: Any) -> str:
        """A log- and metric-safe name: no token, no personal data."""
        ...

    def build_request(
        self, destination: Any, payloads: Sequence[Mapping[str, Any]]
    ) -> tuple[str, bytes]:
        """``(url, JSON body)`` for one batch."""
        ...

    def classify(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> DeliveryError | None:
        """``None`` for success, else the error (transient or permanent)."""
        ...


def request_head(
    channel: Channel, destination: Any, payloads: Sequence[Mapping[str, Any]]
) -> tuple[str, dict[str, str]]:
    """``(method, headers)`` of a batch: the channel's own when it defines ``request_head``, else
    ``POST`` with a JSON body."""
    head = getattr(channel, "request_head", None)
    if head is not None:
        method, headers = head(destination, payloads)
        return str(method), dict(headers)
    return "POST", {"content-type": "application/json"}


class MetaChannel:
    """``POST {graph_url}/{version}/{pixel_id}/events`` with ``{"data": [...], "access_token": ...}``
    in the JSON body, never in the URL (REFERENCE §1)."""

    max_batch = META_MAX_BATCH

    def __init__(self, graph_url: str) -> None:
        self.graph_url = graph_url.rstrip("/")

    def label(self, destination: MetaDestination) -> str:
        return f"meta:{destination.pixel_id}"

    def build_request(
        self, destination: MetaDestination, payloads: Sequence[Mapping[str, Any]]
    ) -> tuple[str, bytes]:
        url = f"{self.graph_url}/{destination.api_version}/{destination.pixel_id}/events"
        body: dict[str, Any] = {
            "data": list(payloads),
            "access_token": destination.access_token.reveal(),
        }
        if destination.test_event_code:
            body["test_event_code"] = destination.test_event_code
        return url, json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def request_head(
        self, destination: MetaDestination, payloads: Sequence[Mapping[str, Any]]
    ) -> tuple[str, dict[str, str]]:
        return "POST", {"content-type": "application/json"}

    def classify(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> DeliveryError | None:
        return classify_meta_response(status, body, headers)


class HttpChannel:
    """The ``http`` tag's webhooks: one request per event (``max_batch = 1``), method, URL,
    headers and JSON body as the tag built them. 2xx is success; 429, 5xx and network errors are
    retried (``Retry-After`` honoured); any other status is permanent (redirects are not
    followed). Error texts carry the status only, never the URL (it may hold a secret).

    Header values are sent as UTF-8 bytes (``header_encoding``): a value built from event data may
    hold any text (``Jürgen``), which httpx would refuse to encode as ASCII. RFC 9110 §5.5 lets
    a recipient treat such octets as opaque; UTF-8 keeps them lossless for one that decodes it."""

    max_batch = 1
    header_encoding = "utf-8"

    def label(self, destination: HttpDestination) -> str:
        return f"http:{destination.tag}"

    def build_request(
        self, destination: HttpDestination, payloads: Sequence[Mapping[str, Any]]
    ) -> tuple[str, bytes]:
        (payload,) = payloads
        body = payload.get("body")
        content = b"" if body is None else json.dumps(
            body, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        return str(payload["url"]), content

    def request_head(
        self, destination: HttpDestination, payloads: Sequence[Mapping[str, Any]]
    ) -> tuple[str, dict[str, str]]:
        (payload,) = payloads
        return str(payload["method"]), dict(payload.get("headers") or {})

    def classify(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> DeliveryError | None:
        return classify_status(status, headers)


class GA4Channel:
    """``POST {ga4_url}/g/collect?<hit query>&_uip=..`` with the hit's body line and the visitor's
    User-Agent (REFERENCE §2), one request per hit. 2xx is success (Google answers 204); 5xx and
    429 are transient; any other answer is permanent. The hits of one batched body (same query)
    are chained: sent one after the other in the page's order, as gtag sent them in one request;
    different requests still go out concurrently."""

    max_batch = 1

    def chain_key(self, payload: Mapping[str, Any]) -> str | None:
        """Hits with the same forwarded query (shared parameters of one request, ``_s`` and
        ``_uip`` included) are sent in order; a query-only hit has no body line to chain."""
        return str(payload["query"]) if payload.get("body") else None

    def __init__(self, ga4_url: str) -> None:
        self.ga4_url = ga4_url.rstrip("/")

    def label(self, destination: GA4Destination) -> str:
        return f"ga4:{destination.measurement_id}"

    def build_request(
        self, destination: GA4Destination, payloads: Sequence[Mapping[str, Any]]
    ) -> tuple[str, bytes]:
        (payload,) = payloads
        url, body, _ = forward_request(self.ga4_url, payload)
        return url, body

    def request_head(
        self, destination: GA4Destination, payloads: Sequence[Mapping[str, Any]]
    ) -> tuple[str, dict[str, str]]:
        """``POST`` with ``content-type: text/plain`` and the visitor's ``user-agent``."""
        (payload,) = payloads
        return "POST", forward_request(self.ga4_url, payload)[2]

    def classify(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> DeliveryError | None:
        return classify_status(status, headers)


def classify_status(status: int, headers: Mapping[str, str]) -> DeliveryError | None:
    """By status alone: 2xx is success; 429 and 5xx are transient (``Retry-After`` honoured);
    anything else (redirects included) is permanent."""
    if 200 <= status < 300:
        return None
    if status == 429 or status >= 500:
        return DestinationUnavailable(
            f"HTTP {status}", status=status, retry_after=parse_retry_after(headers.get("retry-after"))
        )
    return DestinationRejected(f"HTTP {status}", status=status)
