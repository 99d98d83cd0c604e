"""How each destination's batches become HTTP requests and how its answers are read.

A channel is pure apart from what the sender hands it: it names a destination with a key that
holds no secret (stored in the outbox), builds ``(url, body bytes)`` from the stored payload bytes
(or, for previews such as ``tagserver check``, from payload mappings), gives the request's method
and headers (``request_head``), and classifies ``(status, body, headers)``; the sender owns the
network. Tokens come from the destination (the current container's), never from a payload; a
channel whose payloads may hold secret variable values (``seals_secrets``) has them sealed before
they are stored (:mod:`tagserver.delivery.sealed`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

from tagserver.delivery.retry import classify_meta_response, parse_retry_after
from tagserver.exceptions import DeliveryError, DestinationRejected, DestinationUnavailable
from tagserver.ga4.forward import forward_request
from tagserver.json_codec import dumps, loads
from tagserver.tags.ga4 import GA4Destination
from tagserver.tags.http import HttpDestination
from tagserver.tags.meta import MetaDestination

#: Meta accepts at most 1,000 events per request (Conversions API "Batch requests").
META_MAX_BATCH = 1000


#: Meta refuses events whose event_time is over 7 days old (code 100, subcode 2804003).
META_MAX_AGE_S = 7 * 24 * 3600
#: ... except ``physical_store`` events, accepted for 62 days (REFERENCE §1).
META_MAX_AGE_PHYSICAL_STORE_S = 62 * 24 * 3600
#: GA4 processes hits at most 72 hours after they happened (Measurement Protocol docs).
GA4_MAX_AGE_S = 72 * 3600
#: Webhooks have no documented limit: the outbox's own horizon of 7 days.
HTTP_MAX_AGE_S = 7 * 24 * 3600

#: A payload as the sender hands it (stored JSON bytes) or as a preview builds it (a mapping).
Payload = bytes | Mapping[str, Any]


#: ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)`` without its per-call set-up:
#: ``json.dumps`` with options builds a :class:`json.JSONEncoder`, whose ``encode`` builds a C
#: encoder (``json.encoder.c_make_encoder``) and a ``check_circular`` dict each time. The C
#: encoder made once here writes the same bytes (about 6.3 instead of 9 µs for an 800-byte CAPI
#: event); without ``check_circular`` a circular value fails at the recursion limit instead,
#: turned into the same ``ValueError`` below. ``JSONEncoder`` where the C module is missing.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


_make_c_encoder = getattr(json.encoder, "c_make_encoder", None)
_c_encoder: Callable[[Any, int], Sequence[str]] | None = (
    _make_c_encoder(
        None, _not_json, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )  # markers, default, str encoder, indent, separators, sort_keys, skipkeys, allow_nan
    if _make_c_encoder is not None
    else None
)


def compact_json(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON (no spaces, non-ASCII kept as UTF-8), byte for byte what
    ``json.dumps(value, separators=(",", ":"), ensure_ascii=False)`` gives, encoded; written by
    orjson (:func:`tagserver.json_codec.dumps`) unless it would differ. Raises ``TypeError`` for
    a value JSON cannot hold, ``ValueError`` for a lone surrogate (from the UTF-8 encoding), a
    circular or a too deeply nested value."""
    return dumps(value, _stdlib_compact_json)


def _stdlib_compact_json(value: Any) -> bytes:
    """:func:`compact_json` by stdlib ``json`` alone."""
    try:
        if _c_encoder is not None:
            return "".join(_c_encoder(value, 0)).encode("utf-8")
        return _COMPACT.encode(value).encode("utf-8")
    except RecursionError as exc:
        raise ValueError("circular or too deeply nested for JSON") from exc


def payload_bytes(payload: Payload) -> bytes:
    """``payload`` as compact UTF-8 JSON bytes (stored bytes are used unchanged)."""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return compact_json(payload)


def payload_mapping(payload: Payload) -> Mapping[str, Any]:
    """``payload`` as a mapping (stored bytes are decoded). Raises ``ValueError`` for bytes that
    are not a JSON object."""
    if isinstance(payload, bytes | bytearray):
        value = loads(payload)
        if not isinstance(value, dict):
            raise ValueError("the stored payload is not a JSON object")
        return cast(dict[str, Any], value)
    return payload


class Channel(Protocol):
    max_batch: int
    #: Events older than this (seconds, from their ``event_time``) can no longer be delivered.
    #: A channel may also define ``max_age_for(payload) -> float`` for a longer limit of some
    #: events (Meta's ``physical_store``); it is only asked about events older than ``max_age_s``
    #: and never shortens it.
    max_age_s: float

    def key(self, destination: Any) -> str:
        """The outbox's name for ``destination``: stable across restarts, without the token."""
        ...

    def label(self, destination: Any) -> str:
        """A log- and metric-safe name: no token, no personal data."""
        ...

    def build_request(self, destination: Any, payloads: Sequence[Payload]) -> tuple[str, bytes]:
        """``(url, body)`` for one batch; ``payloads`` are the stored JSON events, used
        byte for byte (or mappings, encoded here). Raises ``TypeError``/``ValueError`` for a
        payload that cannot be encoded."""
        ...

    def classify(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> DeliveryError | None:
        """``None`` for success, else the error (transient or permanent)."""
        ...


def request_head(
    channel: Channel, destination: Any, payloads: Sequence[Payload]
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
    max_age_s = float(META_MAX_AGE_S)

    def __init__(self, graph_url: str) -> None:
        self.graph_url = graph_url.rstrip("/")

    def label(self, destination: MetaDestination) -> str:
        return f"meta:{destination.pixel_id}"

    def key(self, destination: MetaDestination) -> str:
        """``meta:<pixel id>:<api version>[:<test event code>]``."""
        key = f"meta:{destination.pixel_id}:{destination.api_version}"
        return f"{key}:{destination.test_event_code}" if destination.test_event_code else key

    def max_age_for(self, payload: bytes) -> float:
        """7 days, 62 for a ``physical_store`` event (its stored compact JSON names it)."""
        if b'"action_source":"physical_store"' in payload:
            return float(META_MAX_AGE_PHYSICAL_STORE_S)
        return self.max_age_s

    def build_request(
        self, destination: MetaDestination, payloads: Sequence[Payload]
    ) -> tuple[str, bytes]:
        url = f"{self.graph_url}/{destination.api_version}/{destination.pixel_id}/events"
        rest: dict[str, Any] = {"access_token": destination.access_token.reveal()}
        if destination.test_event_code:
            rest["test_event_code"] = destination.test_event_code
        tail = compact_json(rest)
        data = b",".join([p if type(p) is bytes else payload_bytes(p) for p in payloads])
        return url, b'{"data":[' + data + b"]," + tail[1:]

    def request_head(
        self, destination: MetaDestination, payloads: Sequence[Payload]
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
    max_age_s = float(HTTP_MAX_AGE_S)
    header_encoding = "utf-8"
    #: URL, headers and body may hold secret variable values: sealed in the outbox.
    seals_secrets = True

    def label(self, destination: HttpDestination) -> str:
        return f"http:{destination.tag}"

    def key(self, destination: HttpDestination) -> str:
        """``http:<tag name>``: resolved to the current container's tag of that name."""
        return f"http:{destination.tag}"

    def build_request(
        self, destination: HttpDestination, payloads: Sequence[Payload]
    ) -> tuple[str, bytes]:
        (raw,) = payloads
        payload = payload_mapping(raw)
        body = payload.get("body")
        content = b"" if body is None else compact_json(body)
        return str(payload["url"]), content

    def request_head(
        self, destination: HttpDestination, payloads: Sequence[Payload]
    ) -> tuple[str, dict[str, str]]:
        (raw,) = payloads
        payload = payload_mapping(raw)
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
    max_age_s = float(GA4_MAX_AGE_S)
    #: The visitor's User-Agent is forwarded as it came: Starlette decodes request headers as
    #: Latin-1, so encoding them back as Latin-1 sends the very bytes the browser sent (httpx's
    #: default ASCII would refuse a non-ASCII User-Agent and the hit would never leave).
    header_encoding = "latin-1"

    def chain_key(self, payload: Mapping[str, Any]) -> str | None:
        """Hits with the same forwarded query (shared parameters of one request, ``_s`` and
        ``_uip`` included) are sent in order; a query-only hit has no body line to chain."""
        return str(payload["query"]) if payload.get("body") else None

    def __init__(self, ga4_url: str) -> None:
        self.ga4_url = ga4_url.rstrip("/")

    def label(self, destination: GA4Destination) -> str:
        return f"ga4:{destination.measurement_id}"

    def key(self, destination: GA4Destination) -> str:
        """``ga4:<measurement id>`` (no secret: the hit itself is the payload)."""
        return f"ga4:{destination.measurement_id}"

    def build_request(
        self, destination: GA4Destination, payloads: Sequence[Payload]
    ) -> tuple[str, bytes]:
        (payload,) = payloads
        url, body, _ = forward_request(self.ga4_url, payload_mapping(payload))
        return url, body

    def request_head(
        self, destination: GA4Destination, payloads: Sequence[Payload]
    ) -> tuple[str, dict[str, str]]:
        """``POST`` with ``content-type: text/plain`` and the visitor's ``user-agent``."""
        (payload,) = payloads
        return "POST", forward_request(self.ga4_url, payload_mapping(payload))[2]

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
