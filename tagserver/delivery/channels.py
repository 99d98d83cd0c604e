"""How each destination's batches become HTTP requests and how its answers are read.

A channel is pure apart from what the sender hands it: it names a destination with a key that
holds no secret (stored in the outbox), builds ``(url, body bytes)`` from the stored payload bytes,
and classifies ``(status, body, headers)``; the sender owns the network.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from tagserver.delivery.retry import classify_meta_response
from tagserver.exceptions import DeliveryError
from tagserver.tags.meta import MetaDestination

#: Meta accepts at most 1,000 events per request (Conversions API "Batch requests").
META_MAX_BATCH = 1000


#: Meta refuses events whose event_time is over 7 days old (code 100, subcode 2804003).
META_MAX_AGE_S = 7 * 24 * 3600


class Channel(Protocol):
    max_batch: int
    #: Events older than this (seconds, from their ``event_time``) can no longer be delivered.
    max_age_s: float

    def key(self, destination: Any) -> str:
        """The outbox's name for ``destination``: stable across restarts, without the token."""
        ...

    def label(self, destination: Any) -> str:
        """A log- and metric-safe name: no token, no personal data."""
        ...

    def build_request(self, destination: Any, payloads: Sequence[bytes]) -> tuple[str, bytes]:
        """``(url, JSON body)`` for one batch; ``payloads`` are the stored JSON events, used
        byte for byte."""
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
    max_age_s = float(META_MAX_AGE_S)

    def __init__(self, graph_url: str) -> None:
        self.graph_url = graph_url.rstrip("/")

    def label(self, destination: MetaDestination) -> str:
        return f"meta:{destination.pixel_id}"

    def key(self, destination: MetaDestination) -> str:
        """``meta:<pixel id>:<api version>[:<test event code>]``."""
        key = f"meta:{destination.pixel_id}:{destination.api_version}"
        return f"{key}:{destination.test_event_code}" if destination.test_event_code else key

    def build_request(
        self, destination: MetaDestination, payloads: Sequence[bytes]
    ) -> tuple[str, bytes]:
        url = f"{self.graph_url}/{destination.api_version}/{destination.pixel_id}/events"
        rest: dict[str, Any] = {"access_token": destination.access_token.reveal()}
        if destination.test_event_code:
            rest["test_event_code"] = destination.test_event_code
        tail = json.dumps(rest, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return url, b'{"data":[' + b",".join(payloads) + b"]," + tail[1:]

    def classify(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> DeliveryError | None:
        return classify_meta_response(status, body, headers)
