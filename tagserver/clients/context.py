"""What both clients (``POST /e`` and ``/g/collect``) do around the container, done one way.

The visitor's public IP (trusted proxies, ``X-Forwarded-For`` or RFC 7239 ``Forwarded``), the
request context triggers and variables read (cookies, headers without ``Cookie``), one container
run per event with its drops counted, its outbound events stored in the durable outbox before the
answer (:func:`submit_results`; 503 when the outbox cannot store them), and the identity cookies
written into the response.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tagserver.bots import is_bot
from tagserver.client_ip import IPAddress, is_public, resolve_client_ip
from tagserver.container.model import Container
from tagserver.container.runtime import ContainerResult, run_container
from tagserver.event import Event
from tagserver.identity import CookieSpec
from tagserver.meta.events import GA4_TO_META
from tagserver.purchase_token import verify_purchase

if TYPE_CHECKING:
    from tagserver.app import AppState

log = logging.getLogger("tagserver.app")


def request_client_ip(request: Request, state: AppState) -> IPAddress | None:
    """The client address of ``request`` through the trusted proxies
    (:func:`~tagserver.client_ip.resolve_client_ip`), private addresses included; ``None`` when
    unknown. Resolve it once per request and pass it to :func:`public_ip` and
    :func:`check_rate_limits`."""
    peer = request.client.host if request.client else None
    return resolve_client_ip(
        peer,
        request.headers.getlist("x-forwarded-for"),
        trusted_proxies=state.settings.trusted_proxies,
        forwarded=request.headers.getlist("forwarded"),
    )


def public_ip(ip: IPAddress | None) -> str | None:
    """``ip`` as text when it can be a visitor's address on the internet, else ``None`` (unknown,
    private or loopback): what goes to destinations as the visitor's IP."""
    return str(ip) if ip is not None and is_public(ip) else None


def check_rate_limits(request: Request, state: AppState, ip: IPAddress | None) -> None:
    """Count one hit against the limits of its trusted client IP ``ip`` (from
    :func:`request_client_ip`; private addresses included, the socket peer when unknown) and of
    its visitor id (only a correctly signed one: a forged id is no key); raises
    :class:`~tagserver.exceptions.RateLimited` (429). Does nothing while both limits are off."""
    limits = state.limits
    if not limits.active:
        return
    peer = request.client.host if request.client else None
    visitor: str | None = None
    if limits.visitor.per_minute > 0:
        for name in ("__Host-tsid", "__Secure-tsid"):
            raw = request.cookies.get(name)
            if raw and len(raw) <= 200 and state.signer.validate(raw):
                visitor = raw
                break
    limits.check(ip=str(ip) if ip is not None else peer, visitor_id=visitor)


def context_headers(request: Request) -> dict[str, str]:
    """The request headers triggers and variables may read: names lower case, ``Cookie`` left
    out (cookies are read one by one)."""
    return {k: v for k, v in request.headers.items() if k != "cookie"}


def context_cookies(request: Request) -> Mapping[str, str]:
    """The request cookies triggers and variables may read."""
    return request.cookies


def run_event(
    state: AppState, container: Container, event: Event, *, now: float
) -> ContainerResult:
    """Run ``container`` on ``event`` (``now`` in unix seconds) after :func:`apply_privacy` and
    count its drops. Never raises for a tag's problem. Its outbound events are not stored yet:
    pass the results of a request to :func:`submit_results` before answering it."""
    event = apply_privacy(state, event, now=now)
    result = run_container(
        container, event, default_country=state.settings.default_country, now=now
    )
    for tag_name, reason, detail in result.drops:
        state.drops.count(tag_name, reason, f"event_id={event.event_id}: {detail}")
    return result


async def submit_results(state: AppState, results: Sequence[ContainerResult]) -> None:
    """Store the outbound events of ``results`` in the outbox in one write (durable when this
    returns) and count the events and fired tags. Raises
    :class:`~tagserver.exceptions.OutboxError` when the outbox cannot store them (logged here)."""
    from tagserver.exceptions import OutboxError

    assert state.sender is not None, "the lifespan has not run"
    outbound = [item for result in results for item in result.outbound]
    try:
        await state.sender.submit(outbound)
    except OutboxError as exc:
        log.error("outbox write failed: hit refused", extra={"error": str(exc)})
        raise
    for result in results:
        state.metrics.events.inc()
        for tag_name in result.fired:
            state.metrics.tag_fired(tag_name)


def outbox_unavailable(*, headers: Mapping[str, str] | None = None) -> Response:
    """503 in DESIGN.md's error shape, ``Retry-After: 1``: the events could not be stored."""
    return JSONResponse(
        {"ok": False, "error": "the event could not be stored; retry later",
         "errors": [], "status": 503},
        status_code=503,
        headers={"cache-control": "no-store", **(headers or {}), "retry-after": "1"},
    )  # fmt: skip


#: RFC 6265 cookie-name (a token) and cookie-octets; a Domain is a lower-case host name.
_COOKIE_NAME_RE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}\Z")
_COOKIE_VALUE_RE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{0,4000}\Z")
_COOKIE_DOMAIN_RE = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?\Z")


def cookie_is_safe(cookie: CookieSpec) -> bool:
    """True when every part of ``cookie`` that reaches the ``Set-Cookie`` header is well formed
    (RFC 6265 name and value octets, a host-name Domain, a lifetime in range): no CR/LF, ``;``
    or space can split the header, whatever a bug upstream lets through."""
    return bool(
        _COOKIE_NAME_RE.match(cookie.name)
        and _COOKIE_VALUE_RE.match(cookie.value)
        and (cookie.domain is None or _COOKIE_DOMAIN_RE.match(cookie.domain))
        and 0 <= cookie.max_age <= 400 * 24 * 3600
    )


#: What an ad destination is: a tag that needs ``ad_storage`` (Meta tags by default).
AD_CONSENT_OFF = {"ad_storage": False, "ad_user_data": False, "ad_personalization": False}


def apply_privacy(state: AppState, event: Event, *, now: float) -> Event:
    """The event as the container may see it (docs/SECURITY.md, policy table).

    A known crawler (``TAGSERVER_BLOCK_BOTS``) or ``Sec-GPC: 1`` under ``TAGSERVER_GPC=suppress``
    turns the ad consent types off, so no ad tag fires (counted once per event as ``bot`` /
    ``gpc``); ``TAGSERVER_GPC=off`` hides the header from tags (no Limited Data Use on it). A
    Purchase's ``purchase_token`` is checked (``Event.purchase_token``) and removed from the
    custom data: it is never forwarded.
    """
    settings = state.settings
    changes: dict[str, object] = {}
    gpc = event.headers.get("sec-gpc", "").strip() == "1"
    reason: str | None = None
    if settings.block_bots and event.user_agent and is_bot(event.user_agent):
        reason = "bot"
    elif gpc and settings.gpc == "suppress":
        reason = "gpc"
    if reason is not None and event.consent.ad_storage:
        changes["consent"] = dataclasses.replace(event.consent, **AD_CONSENT_OFF)
        state.drops.count("ad destinations", reason, f"event_id={event.event_id}")
    if gpc and settings.gpc == "off":
        changes["headers"] = {k: v for k, v in event.headers.items() if k != "sec-gpc"}
    name = event.event_name
    if GA4_TO_META.get(name, name) == "Purchase":  # meta_event_name
        token = event.custom_data.get("purchase_token")
        if token is None and event.ga4 is not None:
            token = event.ga4.event_data.get("purchase_token")
        # without a token the verdict is "missing" whatever the keys: none revealed for it
        keys = [key.reveal() for key in settings.purchase_token_keys] if token else []
        verdict = verify_purchase(token, event.custom_data, keys=keys, now=now)
        if verdict is None and not state.purchase_guard.claim(
            str(event.custom_data.get("order_id")), event.event_id, now=now
        ):
            verdict = "already used by another event"
        changes["purchase_token"] = verdict or "valid"
    if "purchase_token" in event.custom_data:
        changes["custom_data"] = {
            k: v for k, v in event.custom_data.items() if k != "purchase_token"
        }
    return event.replace(**changes) if changes else event


def set_cookie_header(cookie: CookieSpec) -> bytes:
    """The ``Set-Cookie`` value of ``cookie`` (attributes as Starlette orders them): ``name=value;
    [Domain=d; ][HttpOnly; ]Max-Age=n; Path=/; SameSite=lax; Secure``. The value is written as it
    is, unquoted: :func:`cookie_is_safe` has checked it holds only RFC 6265 cookie-octets."""
    domain = f"; Domain={cookie.domain}" if cookie.domain is not None else ""
    httponly = "; HttpOnly" if cookie.httponly else ""
    return (
        f"{cookie.name}={cookie.value}{domain}{httponly}; Max-Age={cookie.max_age}; "
        "Path=/; SameSite=lax; Secure"
    ).encode("ascii")


def set_cookies(response: Response, cookies: Iterable[CookieSpec]) -> None:
    """Write each cookie: ``Secure; SameSite=Lax; Path=/`` always (REFERENCE §3). A cookie that
    fails :func:`cookie_is_safe` is not written (and logged by name only)."""
    for cookie in cookies:
        if not cookie_is_safe(cookie):
            log.error("cookie not set: malformed", extra={"cookie": cookie.name[:64]})
            continue
        response.raw_headers.append((b"set-cookie", set_cookie_header(cookie)))
