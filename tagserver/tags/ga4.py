"""The ``ga4`` tag type: forwards each GA4 hit to Google Analytics, as drop-in replacements do.

It fires only for events that came from a gtag.js hit (``event.ga4``) and re-sends that hit —
original query and body line, ``_uip`` and the visitor's User-Agent — through the outbox
(:mod:`tagserver.ga4.forward`). Consent does not stop it: a hit with ``analytics_storage``
denied is a cookieless ping that Google itself models, exactly what gtag would have sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tagserver.event import Event
from tagserver.ga4.forward import build_forward_payload
from tagserver.tags import Outbound, TagResult

#: GA4 measurement ids (the schema holds the same pattern).
MEASUREMENT_ID_RE = re.compile(r"G-[A-Za-z0-9]{1,30}")


@dataclass(frozen=True)
class GA4Destination:
    """The batch key of forwarded hits (one request per hit): the measurement id they go to."""

    measurement_id: str


@dataclass(frozen=True)
class GA4Tag:
    """A configured GA4 forwarder. ``measurement_id`` of ``None`` keeps each hit's own ``tid``;
    ``events`` of ``None`` forwards every GA4 event (names as gtag sends them)."""

    name: str
    measurement_id: str | None = None
    redact_ip: bool = False
    events: frozenset[str] | None = None

    @staticmethod
    def from_config(raw: Mapping[str, Any], *, environ: Mapping[str, str]) -> GA4Tag:
        """A tag from one schema-valid config object (``measurement_id`` may be
        ``{"env": NAME}``). Raises ``ValueError`` for a malformed id read from the environment."""
        measurement_id = raw.get("measurement_id")
        if isinstance(measurement_id, dict):
            measurement_id = environ[measurement_id["env"]].strip()
            if not MEASUREMENT_ID_RE.fullmatch(measurement_id):
                raise ValueError("measurement_id: expected G-XXXXXXX (check the variable)")
        events = raw.get("events", "*")
        return GA4Tag(
            name=raw["name"],
            measurement_id=measurement_id,
            redact_ip=bool(raw.get("redact_ip", False)),
            events=None if events == "*" else frozenset(events),
        )

    def fires(self, event: Event) -> bool:
        if event.ga4 is None:
            return False
        return self.events is None or event.ga4.event_name in self.events

    def build(self, event: Event, *, default_country: str | None, now: float) -> TagResult:
        """One outbound hit for ``event.ga4``; no browser command."""
        result = TagResult()
        hit = event.ga4
        if hit is None:
            return result
        client_id = hit.event_data.get("client_id")
        server_id = client_id if isinstance(client_id, str) and client_id != hit.param(
            "cid") else None
        payload = build_forward_payload(
            hit,
            client_ip=event.client_ip,
            redact_ip=self.redact_ip,
            user_agent=event.user_agent,
            measurement_id=self.measurement_id,
            client_id=server_id,
            event_id=event.event_id,
        )
        destination = GA4Destination(self.measurement_id or hit.measurement_id)
        result.outbound.append(Outbound(destination, dict(payload)))
        return result
