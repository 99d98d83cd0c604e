"""The ``meta`` tag type: Meta Pixel command for the browser + Conversions API event, one event_id.

Sources: Meta "Conversions API parameters", "Deduplicate Pixel and server events" (the browser's
``eventID`` equals the server ``event_id`` and the event names are the same string), and
"Customer information parameters" (hashing, via :mod:`tagserver.meta.normalize`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from tagserver.consent import ConsentType
from tagserver.event import Event
from tagserver.meta.capi import CapiEvent, CapiUserData
from tagserver.meta.events import is_standard_event, meta_event_name
from tagserver.meta.normalize import hash_user_data
from tagserver.meta.validate import (
    check_event_time,
    check_purchase,
    check_website_event,
    clean_custom_data,
)
from tagserver.secret import Secret
from tagserver.tags import Outbound, TagResult

BrowserMode = Literal["fbq", "img", "none"]
DEFAULT_API_VERSION = "v25.0"
PIXEL_ENDPOINT = "https://www.facebook.com/tr"
MAX_USER_AGENT_LENGTH = 512
PIXEL_ID_RE = re.compile(r"[0-9]{5,20}")


@dataclass(frozen=True)
class MetaDestination:
    """The batch key of CAPI events: events with equal keys share one request."""

    pixel_id: str
    api_version: str
    access_token: Secret
    test_event_code: str | None


def _resolve(value: object, environ: Mapping[str, str]) -> str:
    if isinstance(value, dict):
        return environ[value["env"]].strip()
    return str(value)


@dataclass(frozen=True)
class MetaTag:
    """A configured Meta pixel. ``events`` of ``None`` fires for every event; names in it are
    matched after GA4 names are mapped to Meta's (``purchase`` → ``Purchase``)."""

    name: str
    pixel_id: str
    access_token: Secret
    events: frozenset[str] | None = None
    browser_mode: BrowserMode = "fbq"
    api_version: str = DEFAULT_API_VERSION
    test_event_code: str | None = None
    require_consent: tuple[ConsentType, ...] = ("ad_storage",)

    @staticmethod
    def from_config(raw: Mapping[str, Any], *, environ: Mapping[str, str]) -> MetaTag:
        """A tag from one schema-valid config object; ``{"env": NAME}`` values are read from
        ``environ`` (the loader has checked that they are set).

        Raises ``ValueError`` when a value read from the environment is malformed.
        """
        pixel_id = _resolve(raw["pixel_id"], environ)
        if not PIXEL_ID_RE.fullmatch(pixel_id):
            raise ValueError("pixel_id: expected 5 to 20 digits (check the environment variable)")
        events = raw.get("events", "*")
        test_code = raw.get("test_event_code")
        return MetaTag(
            name=raw["name"],
            pixel_id=pixel_id,
            access_token=Secret(_resolve(raw["access_token"], environ)),
            events=None if events == "*" else frozenset(meta_event_name(e) for e in events),
            browser_mode=raw.get("browser_mode", "fbq"),
            api_version=raw.get("api_version", DEFAULT_API_VERSION),
            test_event_code=_resolve(test_code, environ) if test_code is not None else None,
            require_consent=tuple(raw.get("require_consent", ("ad_storage",))),
        )

    @property
    def destination(self) -> MetaDestination:
        return MetaDestination(
            self.pixel_id, self.api_version, self.access_token, self.test_event_code
        )

    def fires(self, event: Event) -> bool:
        if not all(event.consent.granted(kind) for kind in self.require_consent):
            return False
        return self.events is None or meta_event_name(event.event_name) in self.events

    def build(self, event: Event, *, default_country: str | None, now: float) -> TagResult:
        """The Pixel command and the CAPI event for ``event``.

        The CAPI event is held back (a drop with its reason) when Meta would reject it: too old, or
        a Purchase without value and currency. The browser command goes out either way.
        """
        result = TagResult()
        name = meta_event_name(event.event_name)
        check = clean_custom_data(event.custom_data)
        for field_name, reason in check.dropped:
            result.drops.append(("invalid_field", f"custom_data.{field_name}: {reason}"))
        command = self.browser_command(name, event.event_id, check.data)
        if command is not None:
            result.commands.append(command)
        too_old = check_event_time(event.event_time, now=now)
        if too_old is not None:
            result.drops.append((too_old, f"event_time {event.event_time} is over 7 days old"))
            return result
        problem = check_purchase(name, check.data)
        if problem is not None:
            result.drops.append(("missing_purchase_data", problem))
            return result
        problem = check_website_event(event_source_url=event.event_source_url,
                                      user_agent=event.user_agent)
        if problem is not None:
            result.drops.append(("invalid_event", problem))
            return result
        capi = build_capi_event(
            event, name=name, custom_data=check.data, default_country=default_country
        )
        result.outbound.append(Outbound(self.destination, capi))
        return result

    def browser_command(
        self, name: str, event_id: str, custom_data: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """DESIGN.md's command shapes: ``fbq`` → ``trackSingle``/``trackSingleCustom`` with
        ``{"eventID": event_id}``; ``img`` → a ``/tr`` image URL with ``eid``; ``none`` → ``None``."""
        if self.browser_mode == "none":
            return None
        if self.browser_mode == "img":
            return {
                "type": "img",
                "src": pixel_image_url(self.pixel_id, name, event_id, custom_data),
            }
        method = "trackSingle" if is_standard_event(name) else "trackSingleCustom"
        return {
            "type": "fbq",
            "args": [method, self.pixel_id, name, dict(custom_data), {"eventID": event_id}],
        }


def pixel_image_url(pixel_id: str, name: str, event_id: str, custom_data: Mapping[str, Any]) -> str:
    """Meta's image pixel: ``https://www.facebook.com/tr?id=..&ev=..&eid=..&noscript=1&cd[k]=v``;
    lists and objects in custom data are JSON-encoded."""
    import json

    params: list[tuple[str, str]] = [
        ("id", pixel_id),
        ("ev", name),
        ("eid", event_id),
        ("noscript", "1"),
    ]
    for key, value in custom_data.items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        params.append((f"cd[{key}]", text))
    return f"{PIXEL_ENDPOINT}?{urlencode(params)}"


def build_capi_event(
    event: Event, *, name: str, custom_data: Mapping[str, Any], default_country: str | None
) -> CapiEvent:
    """The CAPI server event for ``event`` (``action_source: "website"``).

    ``user_data`` carries the IP, user agent, ``fbp``/``fbc`` (never hashed) and the hashed customer
    information, left out when ``ad_user_data`` is denied.
    """
    user: CapiUserData = {}
    if event.client_ip:
        user["client_ip_address"] = event.client_ip
    if event.user_agent:
        user["client_user_agent"] = event.user_agent[:MAX_USER_AGENT_LENGTH]
    if event.fbp:
        user["fbp"] = event.fbp
    if event.fbc:
        user["fbc"] = event.fbc
    if event.consent.ad_user_data and event.user_data:
        user.update(hash_user_data(event.user_data, default_country=default_country))  # type: ignore[typeddict-item]
    capi: CapiEvent = {
        "event_name": name,
        "event_time": event.event_time,
        "event_id": event.event_id,
        "action_source": "website",
    }
    if event.event_source_url:
        capi["event_source_url"] = event.event_source_url
    if event.referrer_url:
        capi["referrer_url"] = event.referrer_url
    capi["user_data"] = user
    if custom_data:
        capi["custom_data"] = dict(custom_data)
    return capi
