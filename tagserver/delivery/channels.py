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

    def classify(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> DeliveryError | None:
        return classify_meta_response(status, body, headers)


class GA4Channel:
    """``POST {ga4_url}/g/collect?<hit query>&_uip=..`` with the hit's body line and the visitor's
    User-Agent (REFERENCE §2), one request per hit. 2xx is success (Google answers 204); 5xx and
    429 are transient; any other answer is permanent."""

    max_batch = 1

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

    def request_headers(
        self, destination: GA4Destination, payloads: Sequence[Mapping[str, Any]]
    ) -> dict[str, str]:
        """``content-type: text/plain`` and the visitor's ``user-agent``."""
        (payload,) = payloads
        return forward_request(self.ga4_url, payload)[2]

    def classify(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> DeliveryError | None:
        if 200 <= status < 300:
            return None
        retry_after = parse_retry_after(headers.get("retry-after"))
        if status >= 500 or status == 429:
            return DestinationUnavailable(f"HTTP {status}", status=status, retry_after=retry_after)
        return DestinationRejected(f"HTTP {status}", status=status)
