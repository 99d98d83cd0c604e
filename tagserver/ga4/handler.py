"""HTTP handling of gtag.js traffic: ``[<prefix>]/g/collect``, ``/_/service_worker/...``,
``/_/set_cookie``.

One request → :func:`~tagserver.clients.ga4.parse_ga4_request` → per hit an
:class:`~tagserver.event.Event` (Meta view by :mod:`tagserver.meta.from_ga4`) → the container →
outbound events queued → the answer: ``200`` with an empty body, or, when the hit carries
``richsstsse``, a ``text/event-stream`` whose ``send_pixel`` records carry the Meta image pixels.
A gtag page has no ``fbq``: a Meta tag's ``fbq`` command is delivered as the equivalent image
pixel (same pixel id, event name, ``eid`` and custom data), an ``img`` command as is.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from tagserver.client_ip import is_public, resolve_client_ip
from tagserver.clients.ga4 import GA4Hit, parse_ga4_request
from tagserver.container.runtime import run_container
from tagserver.event import Event
from tagserver.exceptions import HitRejected, OriginNotAllowed
from tagserver.ga4.client_id import FPID_COOKIE, resolve_server_client_id
from tagserver.ga4.sse import EVENT_STREAM, build_event_stream
from tagserver.http import (
    cors_headers,
    error_response,
    origin_allowed,
    preflight_headers,
    read_body,
)
from tagserver.identity import FBC_RE, FBP_RE, CookieSpec, resolve_cookie_scope, resolve_identity
from tagserver.meta.from_ga4 import MetaFromGA4, meta_from_ga4

if TYPE_CHECKING:
    from tagserver.app import AppState

log = logging.getLogger("tagserver.ga4")

NO_STORE = {"cache-control": "no-store"}
GA4_METHODS = "GET, POST, OPTIONS"
MAX_URL_LENGTH = 4096


def _cors(request: Request, state: AppState) -> dict[str, str]:
    """CORS headers for an allowed ``Origin`` (none without one); raises
    :class:`OriginNotAllowed` (403) for any other origin."""
    origin = request.headers.get("origin")
    if origin is None:
        return {}
    host = request.headers.get("host")
    if not origin_allowed(origin, host=host, allowed=state.settings.allowed_origins):
        raise OriginNotAllowed(
            "origin not allowed",
            errors=[{"field": "origin", "message": "add it to TAGSERVER_ALLOWED_ORIGINS"}],
        )
    return cors_headers(origin)


async def handle_ga4_collect(request: Request, state: AppState) -> Response:
    """``GET|POST|OPTIONS [<prefix>]/g/collect``: gtag hits → events, cookies, outbound hits."""
    settings = state.settings
    try:
        cors = _cors(request, state)
    except HitRejected as exc:
        return error_response(exc)
    if request.method == "OPTIONS":
        origin = request.headers.get("origin")
        headers = preflight_headers(origin, methods=GA4_METHODS) if origin and cors else NO_STORE
        return Response(status_code=204, headers=headers)
    peer = request.client.host if request.client else None
    ip = resolve_client_ip(
        peer, request.headers.getlist("x-forwarded-for"), trusted_proxies=settings.trusted_proxies
    )
    client_ip = str(ip) if ip is not None and is_public(ip) else None
    user_agent = request.headers.get("user-agent") or None
    try:
        body = b""
        if request.method == "POST":
            body = await read_body(request, limit=settings.max_body_bytes)
        batch = parse_ga4_request(
            path=request.scope["path"],
            query=request.scope.get("query_string", b""),
            body=body,
            ip_override=client_ip,
            user_agent=user_agent,
        )
    except HitRejected as exc:
        log.info("ga4 hit rejected", extra={"error": exc.error, "status": exc.status})
        return error_response(exc, headers=cors)
    for line in batch.rejected:
        log.info("ga4 line rejected", extra={"line": line.line, "error": line.error})

    now = time.time()
    hits = list(batch.hits)
    metas = [meta_from_ga4(h.event_data, event_id_param=settings.ga4_event_id_param)
             for h in hits]
    ad_storage = all(h.consent.ad_storage for h in hits)
    analytics_storage = all(h.consent.analytics_storage for h in hits)
    first = hits[0]
    page_url = _page_url(first) or _referer(request)
    scope = resolve_cookie_scope(request.headers.get("host"), settings.site_domains)
    identity = resolve_identity(
        _cookies_with_page_ids(request.cookies, metas[0]),
        page_url=page_url,
        referrer_url=_url(first.event_data.get("page_referrer")),
        scope=scope,
        ad_storage=ad_storage,
        analytics_storage=analytics_storage,
        signer=state.signer,
        now_ms=int(now * 1000),
        max_age=settings.cookie_max_age_s,
    )
    cookies = list(identity.cookies)
    server_client_id: str | None = None
    if settings.ga4_client_id == "server" and analytics_storage and scope is not None:
        server_id = resolve_server_client_id(
            request.cookies, js_client_id=first.param("cid"), now=now
        )
        server_client_id = server_id.client_id
        cookies.append(CookieSpec(FPID_COOKIE, server_id.cookie, settings.cookie_max_age_s,
                                  scope.domain, httponly=True))

    assert state.sender is not None, "the lifespan has not run"
    pixels: list[str] = []
    for hit, meta in zip(hits, metas, strict=True):
        if server_client_id is not None:
            hit = _with_client_id(hit, server_client_id)
        event = Event(
            event_name=hit.event_name,
            event_id=meta.event_id,
            event_time=int(now),
            received_at=now,
            event_source_url=_page_url(hit) or page_url,
            referrer_url=_url(hit.event_data.get("page_referrer")),
            custom_data=meta.custom_data,
            user_data=meta.user_data,
            consent=hit.consent,
            client_ip=client_ip,
            user_agent=user_agent,
            fbp=identity.fbp,
            fbc=identity.fbc,
            visitor_id=identity.visitor_id,
            ga4=hit,
        )
        result = run_container(
            state.container, event, default_country=settings.default_country, now=now
        )
        for tag_name, reason, detail in result.drops:
            state.drops.count(tag_name, reason, f"event_id={event.event_id}: {detail}")
        for outbound in result.outbound:
            state.sender.submit(outbound)
        pixels.extend(pixel_urls(result.commands))

    headers = {**NO_STORE, **cors}
    response: Response
    if batch.richsstsse:
        response = Response(build_event_stream(pixels), media_type=EVENT_STREAM, headers=headers)
    else:
        response = Response(b"", media_type="text/plain", headers=headers)
    for cookie in cookies:
        response.set_cookie(
            cookie.name,
            cookie.value,
            max_age=cookie.max_age,
            path="/",
            domain=cookie.domain,
            secure=True,
            httponly=cookie.httponly,
            samesite="lax",
        )
    return response


def pixel_urls(commands: Sequence[Mapping[str, Any]]) -> list[str]:
    """The image URLs a gtag page should load for these browser commands: an ``img`` command's
    ``src``; a ``fbq`` ``trackSingle``/``trackSingleCustom`` command as Meta's image pixel
    (``https://www.facebook.com/tr?id=..&ev=..&eid=..``). Other commands are skipped."""
    from tagserver.tags.meta import pixel_image_url

    urls = []
    for command in commands:
        if command.get("type") == "img" and isinstance(command.get("src"), str):
            urls.append(command["src"])
        elif command.get("type") == "fbq":
            args = command.get("args")
            if (
                isinstance(args, list) and len(args) == 5
                and args[0] in ("trackSingle", "trackSingleCustom")
                and isinstance(args[3], dict) and isinstance(args[4], dict)
            ):
                urls.append(pixel_image_url(str(args[1]), str(args[2]),
                                            str(args[4].get("eventID", "")), args[3]))
    return urls


def _with_client_id(hit: GA4Hit, client_id: str) -> GA4Hit:
    """``hit`` with the server-managed id as ``client_id`` and the page's as
    ``x-ga-js_client_id`` (sGTM's names); analytics-denied hits keep theirs."""
    if not hit.consent.analytics_storage:
        return hit
    data = {**hit.event_data, "client_id": client_id}
    js_id = hit.param("cid")
    if js_id:
        data["x-ga-js_client_id"] = js_id
    return dataclasses.replace(hit, event_data=data)


def _cookies_with_page_ids(cookies: Mapping[str, str], meta: MetaFromGA4) -> dict[str, str]:
    """The request's cookies, with the page's own ``ep.fbp``/``ep.fbc`` standing in for a
    missing or malformed cookie."""
    merged = dict(cookies)
    for name, value, pattern in (("_fbp", meta.fbp, FBP_RE), ("_fbc", meta.fbc, FBC_RE)):
        if value and not pattern.match(merged.get(name, "")):
            merged[name] = value
    return merged


def _url(value: object) -> str | None:
    if isinstance(value, str) and value.startswith(("https://", "http://")) and len(
        value
    ) <= MAX_URL_LENGTH:
        return value
    return None


def _page_url(hit: GA4Hit) -> str | None:
    return _url(hit.event_data.get("page_location"))


def _referer(request: Request) -> str | None:
    return _url(request.headers.get("referer"))


async def handle_service_worker(request: Request) -> Response:
    """``/_/service_worker/<version>/sw_iframe.html`` and ``sw.js``: not served (404, cached a
    day). gtag then sends its hits directly with fetch/sendBeacon, as it does on any browser
    without service workers; Google's service-worker code is not something to re-host."""
    return PlainTextResponse(
        "not served: gtag sends its hits directly",
        status_code=404,
        headers={"cache-control": "public, max-age=86400"},
    )


async def handle_set_cookie(request: Request, state: AppState) -> Response:
    """``/_/set_cookie``: 204 with no cookie. tagserver sets its cookies in the response to each
    hit already; a cookie value chosen by the caller is never written."""
    try:
        cors = _cors(request, state)
    except HitRejected as exc:
        return error_response(exc)
    if request.method == "OPTIONS" and cors:
        return Response(status_code=204, headers=preflight_headers(
            request.headers["origin"], methods=GA4_METHODS))
    return Response(status_code=204, headers={**NO_STORE, **cors})
