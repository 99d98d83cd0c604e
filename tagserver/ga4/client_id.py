"""The server-managed GA4 client id: an HttpOnly ``FPID`` cookie, as sGTM's GA4 client sets it.

Format (REFERENCE §2): ``FPID2.2.<base64 of 32 random bytes>.<unix seconds>``, the base64 part
percent-encoded in the cookie as sGTM writes it (``/``, ``+``, ``=`` are not cookie-safe); the
client id is the last two fields, decoded. On a visitor's first hit a JavaScript-managed id is
migrated: the new id keeps the timestamp of the ``_ga`` cookie (``GA1.<n>.<random>.<unix s>``),
else of the hit's ``cid`` (``<random>.<unix s>``), so first-visit dates survive the switch. The
page's own ``cid`` is kept as ``x-ga-js_client_id``. The cookie is HttpOnly: scripts cannot read
or overwrite it, and Safari's caps on script-set cookies do not apply.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote

FPID_COOKIE = "FPID"
FPID_RE = re.compile(r"FPID2\.2\.([A-Za-z0-9+/]{43}=\.[0-9]{9,11})\Z")
GA_COOKIE_RE = re.compile(r"GA1\.[0-9]{1,2}\.[0-9]{1,20}\.([0-9]{9,11})\Z")
JS_CLIENT_ID_RE = re.compile(r"[0-9]{1,20}\.([0-9]{9,11})\Z")

Origin = Literal["fpid", "_ga", "cid", "new"]


@dataclass(frozen=True)
class ServerClientId:
    """``cookie`` is the ``FPID`` value to (re)store (percent-encoded), ``client_id`` the id GA4
    receives (``<base64>.<unix s>``),
    ``origin`` where its timestamp came from (``fpid``: the cookie was already there)."""

    cookie: str
    client_id: str
    origin: Origin


def new_fpid(timestamp: int) -> str:
    """A fresh ``FPID2.2.<base64 32 bytes>.<timestamp>`` (unix seconds), decoded form."""
    token = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    return f"FPID2.2.{token}.{timestamp}"


def resolve_server_client_id(
    cookies: Mapping[str, str], *, js_client_id: str | None, now: float
) -> ServerClientId:
    """The server-managed id for one request: the valid ``FPID`` cookie, else a new one migrated
    from ``_ga`` or ``js_client_id`` (``now``, unix seconds, when neither has a timestamp).
    A malformed cookie is replaced, never echoed. Never raises."""
    existing = unquote(cookies.get(FPID_COOKIE, "")[:200])
    match = FPID_RE.match(existing)
    if match is not None:
        return ServerClientId(quote(existing, safe="."), match.group(1), "fpid")
    origin: Origin = "new"
    timestamp = int(now)
    for source, pattern, text in (
        ("_ga", GA_COOKIE_RE, cookies.get("_ga", "")),
        ("cid", JS_CLIENT_ID_RE, js_client_id or ""),
    ):
        found = pattern.match(text)
        if found is not None and int(found.group(1)) <= now + 60:
            origin, timestamp = source, int(found.group(1))  # type: ignore[assignment]
            break
    fpid = new_fpid(timestamp)
    return ServerClientId(quote(fpid, safe="."), fpid.removeprefix("FPID2.2."), origin)
