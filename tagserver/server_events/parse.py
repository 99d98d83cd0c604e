"""One event of a ``POST /api/events`` batch: the ``/e`` fields plus what a backend knows.

On top of :func:`tagserver.clients.collect.parse_collect_object` (event name, id, URLs, custom
and user data, consent) a server event needs ``action_source`` and ``event_time``, which must
be at most 7 days old (62 for ``physical_store``) and not in the future; a Purchase needs
``custom_data.value`` and ``currency``. Sources: Meta "Conversions API parameters" (server event:
``action_source``, ``event_time``; website events need ``event_source_url`` and
``client_user_agent``), "Offline events via the Conversions API" (the 62-day window), REFERENCE §1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from tagserver.client_ip import is_public, parse_ip
from tagserver.clients.collect import MAX_FUTURE_S, MS_THRESHOLD, CollectHit, parse_collect_object
from tagserver.exceptions import HitRejected
from tagserver.identity import FBC_RE, FBP_RE
from tagserver.meta.events import meta_event_name
from tagserver.meta.normalize import hash_user_data
from tagserver.meta.validate import (
    MAX_EVENT_AGE_PHYSICAL_STORE_S,
    MAX_EVENT_AGE_S,
    check_purchase,
    clean_custom_data,
)
from tagserver.tags.meta import LEAD_ID_RE

#: The ``action_source`` values ``POST /api/events`` takes (Meta's, without ``app`` and
#: ``business_messaging``, which need fields this API does not carry).
ServerActionSource = Literal[
    "system_generated", "physical_store", "phone_call", "email", "chat", "other", "website"
]
SERVER_ACTION_SOURCES: tuple[str, ...] = get_args(ServerActionSource)
MAX_USER_AGENT_LENGTH = 512


@dataclass(frozen=True)
class ServerEvent:
    """A checked server event: the parsed hit, its ``action_source`` and the request context the
    backend passed in ``user_data`` (the customer's IP and user agent, ``fbp``/``fbc``), each
    ``None`` when absent or malformed (a bad one is left out, not the event)."""

    hit: CollectHit
    action_source: str
    client_ip: str | None = None
    user_agent: str | None = None
    fbp: str | None = None
    fbc: str | None = None


def max_age_s(action_source: str) -> int:
    """How old (seconds) Meta lets an event of ``action_source`` be."""
    return MAX_EVENT_AGE_PHYSICAL_STORE_S if action_source == "physical_store" else MAX_EVENT_AGE_S


def _event_seconds(raw: object) -> float | None:
    """Unix seconds from a number or digit string (13 digits: milliseconds), else ``None``."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit():
        if len(raw.strip()) > 20:  # no time has that many digits; int() of thousands would fail
            return None
        raw = int(raw.strip())
    if isinstance(raw, int) and not 0 < raw <= 10**20:  # huge ones would not fit a float
        return None
    if not isinstance(raw, int | float) or not math.isfinite(raw) or raw <= 0:
        return None
    return raw / 1000 if raw >= MS_THRESHOLD else float(raw)


def parse_server_event(
    raw: object, *, now: float, default_country: str | None = None
) -> ServerEvent:
    """Check one event of a batch (``now`` in unix seconds).

    Raises :class:`HitRejected` listing every problem (``{"field", "message"}``); the message of
    a too-old event is ``"too old: ..."``.
    """
    if not isinstance(raw, dict):
        raise HitRejected("invalid event", errors=[
            {"field": "event", "message": f"expected an object, got {type(raw).__name__}"}])
    errors: list[dict[str, str]] = []
    source = raw.get("action_source")
    if source not in SERVER_ACTION_SOURCES:
        errors.append({"field": "action_source",
                       "message": "required: one of " + ", ".join(SERVER_ACTION_SOURCES)})
        source = None
    seconds = _event_seconds(raw.get("event_time"))
    if raw.get("event_time") is None:
        errors.append({"field": "event_time", "message": "required here: unix seconds"})
    elif seconds is None:
        errors.append({"field": "event_time", "message": "expected unix seconds as a number"})
    elif seconds > now + MAX_FUTURE_S:
        errors.append({"field": "event_time",
                       "message": f"in the future by {int(seconds - now)} s (milliseconds?)"})
    elif source is not None and seconds < now - max_age_s(source):
        days = max_age_s(source) // 86400
        errors.append({"field": "event_time", "message": f"too old: more than {days} days ago "
                       f"for {source} events (Meta refuses it)"})
    hit: CollectHit | None = None
    try:
        hit = parse_collect_object(raw, now=now)
    except HitRejected as exc:
        errors.extend(e for e in exc.errors if e["field"] != "event_time")
    user = raw.get("user_data") if isinstance(raw.get("user_data"), dict) else {}
    assert isinstance(user, dict)
    user_agent = _text(user.get("client_user_agent"))
    name, custom = raw.get("event_name"), raw.get("custom_data")
    if isinstance(name, str) and meta_event_name(name.strip()) == "Purchase":
        problem = check_purchase(
            "Purchase", clean_custom_data(custom if isinstance(custom, dict) else {}).data)
        if problem is not None:
            errors.append({"field": "custom_data",
                           "message": problem + " (a number and an ISO 4217 code)"})
    lead_id = user.get("lead_id")
    if lead_id is not None and not (
        isinstance(lead_id, int | str) and not isinstance(lead_id, bool)
        and LEAD_ID_RE.fullmatch(str(lead_id).strip())
    ):
        errors.append({"field": "user_data.lead_id",
                       "message": "expected Meta's Lead Ads id: 15 to 17 digits"})
    elif source is not None and source != "website" and not _can_match(user, lead_id, default_country):
        errors.append({"field": "user_data", "message": "no customer information Meta can match "
                       "on: a valid em, ph (with country code or user_data.country), "
                       "external_id, lead_id, fbc or fbp"})
    if hit is not None:
        if source == "website" and not (hit.event_source_url and user_agent):
            errors.append({"field": "action_source", "message": "website events need "
                           "event_source_url and user_data.client_user_agent"})
    if errors or hit is None or source is None:
        raise HitRejected("invalid event", errors=errors)
    return ServerEvent(
        hit=hit,
        action_source=source,
        client_ip=_public_ip(user.get("client_ip_address")),
        user_agent=user_agent[:MAX_USER_AGENT_LENGTH] if user_agent else None,
        fbp=_matching(user.get("fbp"), FBP_RE.fullmatch),
        fbc=_matching(user.get("fbc"), FBC_RE.fullmatch),
    )


#: Hashed keys that identify a person on their own (Meta "customer information parameters").
MATCH_KEYS = ("em", "ph", "external_id")


def _can_match(user: dict[str, Any], lead_id: object, default_country: str | None) -> bool:
    """True when ``user`` holds something Meta can match a non-website event on."""
    if lead_id is not None:
        return True
    if _matching(user.get("fbc"), FBC_RE.fullmatch) or _matching(user.get("fbp"), FBP_RE.fullmatch):
        return True
    hashed = hash_user_data(user, default_country=default_country)
    return any(key in hashed for key in MATCH_KEYS)


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _public_ip(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    address = parse_ip(value)
    return str(address) if address is not None and is_public(address) else None


def _matching(value: object, match: Any) -> str | None:
    return value if isinstance(value, str) and match(value) else None
