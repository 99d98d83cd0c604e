"""The ``ga4`` tag type: forwards each GA4 hit to Google Analytics, as drop-in replacements do.

It takes events of the ``ga4`` client only (``clients``: it needs the gtag.js hit to forward) and
re-sends that hit — original query and body line, ``_uip`` and the visitor's User-Agent — through
the outbox (:mod:`tagserver.ga4.forward`), never with its contact data (``ep.user_data.*`` and the
rest of that family stay with the ad tags, which hash them). Which hits it forwards is the
container's business: its triggers (event names as gtag sends them or Meta's, conditions) and
consent. By default consent does not stop it (``default_consent`` is empty): a hit with
``analytics_storage`` denied is a cookieless ping that Google itself models, exactly what gtag
would have sent; ``"require_consent": ["analytics_storage"]`` forwards only consented hits.

Transformations apply: the parameters behind every event data key a transformation changed for
this tag are rewritten from the new value (:mod:`tagserver.ga4.encode`); ``ip_override`` is sent
as ``_uip`` (absent: ``_uip=::``) and ``user_agent`` as the User-Agent header.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from tagserver.container.values import CompileContext, as_text
from tagserver.ga4.encode import changed_keys
from tagserver.ga4.forward import build_forward_payload
from tagserver.tags import Outbound, TagResult

if TYPE_CHECKING:
    from tagserver.consent import ConsentType
    from tagserver.container.scope import ClientName, Scope

#: GA4 measurement ids (the schema holds the same pattern).
MEASUREMENT_ID_RE = re.compile(r"G-[A-Za-z0-9]{1,30}")


@dataclass(frozen=True)
class GA4Destination:
    """The batch key of forwarded hits (one request per hit): the measurement id they go to."""

    measurement_id: str


@dataclass(frozen=True)
class GA4Tag:
    """A configured GA4 forwarder. ``measurement_id`` of ``None`` keeps each hit's own ``tid``;
    ``redact_ip`` sends ``_uip=::``."""

    name: str
    measurement_id: str | None = None
    redact_ip: bool = False

    default_consent: ClassVar[tuple[ConsentType, ...]] = ()
    clients: ClassVar[tuple[ClientName, ...] | None] = ("ga4",)

    @staticmethod
    def from_config(
        raw: Mapping[str, Any], *, environ: Mapping[str, str], ctx: CompileContext, path: str
    ) -> GA4Tag:
        """A tag from one schema-valid config object (``measurement_id`` may be
        ``{"env": NAME}``). Raises ``ValueError`` for a malformed id read from the environment."""
        measurement_id = raw.get("measurement_id")
        if isinstance(measurement_id, dict):
            measurement_id = environ[measurement_id["env"]].strip()
            if not MEASUREMENT_ID_RE.fullmatch(measurement_id):
                raise ValueError("measurement_id: expected G-XXXXXXX (check the variable)")
        return GA4Tag(
            name=raw["name"],
            measurement_id=measurement_id,
            redact_ip=bool(raw.get("redact_ip", False)),
        )

    def build(self, scope: Scope, *, default_country: str | None, now: float) -> TagResult:
        """One outbound hit for the gtag.js hit of ``scope``; no browser command. An event of
        another client (the container does not fire the tag for one) is dropped as
        ``invalid_event``."""
        result = TagResult()
        hit = scope.ga4
        if hit is None:
            result.drops.append(("invalid_event", "not a gtag.js hit: nothing to forward"))
            return result
        data = scope.data
        root = scope.root.data
        edits: dict[str, Any] = {}
        if data is not root:  # transformations changed what this tag sees
            edits = {key: data.get(key) for key in changed_keys(root, data)}
        client_id = as_text(root.get("client_id"))
        server_id = client_id if client_id and client_id != hit.param("cid") else None
        payload = build_forward_payload(
            hit,
            client_ip=as_text(data.get("ip_override")),
            redact_ip=self.redact_ip,
            user_agent=as_text(data.get("user_agent")),
            measurement_id=self.measurement_id,
            client_id=server_id,
            event_id=as_text(data.get("event_id")) or "",
            edits=edits,
        )
        destination = GA4Destination(self.measurement_id or hit.measurement_id)
        result.outbound.append(Outbound(destination, dict(payload)))
        return result
