"""Forwarding a GA4 hit to Google Analytics the way drop-in replacements do (REFERENCE §2).

The hit is re-sent as it came — the original query pairs and, for a batched POST, its own body
line — to ``{GA4_URL}/g/collect``, with the visitor's User-Agent header and ``_uip=<visitor
ip>`` appended (``_uip=::`` redacts the address). ``richsstsse``, any ``_uip`` the browser sent
and every contact parameter (``ep.user_data.*``, ``epn.``/``up.``/``upn.user_data.*``: e-mail,
phone, name, address — :func:`~tagserver.ga4.encode.is_contact_param`) are removed; ``tid`` and
``cid`` are replaced only when the tag (measurement id) or the server-managed client id asks for
it; when transformations changed event data keys for the tag (``edits``), the parameters behind
those keys are replaced by the new values (:mod:`tagserver.ga4.encode`). Everything else keeps
its bytes.

The payload is a JSON-serialisable :class:`GA4ForwardPayload`, so it can wait in the durable
outbox; :func:`forward_request` turns it into the HTTP request when it is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict
from urllib.parse import quote

from tagserver.clients.ga4 import GA4Hit
from tagserver.exceptions import HitRejected
from tagserver.ga4.encode import (
    REQUIRED_KEYS,
    encode_for_google,
    encode_pair,
    is_contact_param,
    param_key,
)
from tagserver.ga4.query import decode_component

#: Parameters never forwarded: the response-format flag and a client-supplied IP.
DROPPED = frozenset({"richsstsse", "_uip"})
REDACTED_IP = "::"
COLLECT_PATH = "/g/collect"


class GA4ForwardPayload(TypedDict):
    """One hit to forward: ``query`` (raw, without ``?``) and ``body`` (a raw line or ``""``)
    exactly as sent; ``user_agent`` the visitor's (``""`` when unknown); ``event_id`` and
    ``event_name`` for logs only."""

    query: str
    body: str
    user_agent: str
    event_id: str
    event_name: str


def _rewrite(
    raw_pairs: Iterable[str], replace: Mapping[str, str], drop: frozenset[str] = frozenset()
) -> list[str]:
    out = []
    for raw in raw_pairs:
        raw_name = raw.partition("=")[0]
        try:
            name = decode_component(raw_name, where="forward")
        except HitRejected:  # validated by the client already; keep what cannot be read as is
            name = raw_name
        if name in DROPPED or is_contact_param(name) or (drop and param_key(name) in drop):
            continue
        if name in replace:
            out.append(f"{name}={quote(replace[name], safe='')}")
        else:
            out.append(raw)
    return out


def build_forward_payload(
    hit: GA4Hit,
    *,
    client_ip: str | None,
    redact_ip: bool = False,
    user_agent: str | None = None,
    measurement_id: str | None = None,
    client_id: str | None = None,
    event_id: str = "",
    edits: Mapping[str, Any] | None = None,
) -> GA4ForwardPayload:
    """The forwarded form of ``hit``.

    ``client_ip`` is the visitor's resolved address (``None`` or ``redact_ip`` → ``_uip=::``, so
    Google never geolocates tagserver's own address); ``measurement_id`` replaces ``tid`` and
    ``client_id`` replaces ``cid`` (server-managed id) when given. ``edits`` maps changed top-level
    event data keys to their new values (``None``: removed); the parameters behind them are
    dropped and the new values appended to the body line (the query for a query-only hit).
    ``en``, ``v`` and ``tid`` are changed but never removed. Contact parameters are never
    forwarded, as sent or as edited.
    """
    replace: dict[str, str] = {}
    if measurement_id:
        replace["tid"] = measurement_id
    if client_id:
        replace["cid"] = client_id
    drop: set[str] = set()
    added: list[str] = []
    for key, value in (edits or {}).items():
        if key == "x-ga-measurement_id" and measurement_id:
            continue
        pairs = encode_for_google(key, value)
        if not pairs and key in REQUIRED_KEYS:
            continue
        drop.add(key)
        added.extend(encode_pair(name, text) for name, text in pairs)
    dropped = frozenset(drop)
    query = _rewrite(hit.raw_query, replace, dropped)
    line = _rewrite(hit.raw_line.split("&"), replace, dropped) if hit.raw_line else []
    (line if hit.raw_line else query).extend(added)
    ip = REDACTED_IP if redact_ip or not client_ip else client_ip
    query.append(f"_uip={quote(ip, safe=':')}")
    body = "&".join(line)
    return GA4ForwardPayload(
        query="&".join(query),
        body=body,
        user_agent=user_agent or "",
        event_id=event_id,
        event_name=hit.event_name,
    )


def forward_request(
    ga4_url: str, payload: Mapping[str, str]
) -> tuple[str, bytes, dict[str, str]]:
    """``(url, body, headers)`` of the ``POST {ga4_url}/g/collect?...`` for one payload; the
    body is the hit's line as UTF-8 (empty for a query-only hit)."""
    url = f"{ga4_url.rstrip('/')}{COLLECT_PATH}?{payload['query']}"
    headers = {"content-type": "text/plain;charset=UTF-8"}
    if payload.get("user_agent"):
        headers["user-agent"] = payload["user_agent"]
    return url, payload.get("body", "").encode("utf-8"), headers
