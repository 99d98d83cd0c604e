"""HTTP handling of gtag.js traffic: ``[<prefix>]/g/collect``, ``/_/service_worker/...``,
``/_/set_cookie``.

One request → :func:`~tagserver.clients.ga4.parse_ga4_request` → per hit an
:class:`~tagserver.event.Event` (:func:`build_ga4_events`; its event data is the hit's, see
:mod:`tagserver.container.event_data`) → the container, run as for ``POST /e``
(:mod:`tagserver.clients.context`) → outbound events queued → the answer: ``200`` with an empty
body, or, when the hit carries ``richsstsse``, a ``text/event-stream`` whose ``send_pixel``
records carry the Meta image pixels.
A gtag page has no ``fbq``: a Meta tag's ``fbq`` command is delivered as the equivalent image
pixel (same pixel id, event name, ``eid`` and custom data), an ``img`` command as is.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from itsdangerous import Signer
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from tagserver.clients.context import (
    check_rate_limits,
    context_cookies,
    context_headers,
    outbox_unavailable,
    public_ip,
    request_client_ip,
    run_event,
    set_cookies,
    submit_results,
)
from tagserver.clients.ga4 import GA4Hit, parse_ga4_request
from tagserver.event import Event
from tagserver.exceptions import HitRejected, OriginNotAllowed, OutboxError
from tagserver.ga4.client_id import FPID_COOKIE, resolve_server_client_id
from tagserver.ga4.sse import EVENT_STREAM, build_event_stream
from tagserver.http import (
    cors_headers,
    error_response,
    origin_allowed,
    preflight_headers,
    read_body,
)
from tagserver.identity import (
    FBC_RE,
    FBP_RE,
    CookieScope,
    CookieSpec,
    parse_cookie_header,
    resolve_cookie_scope,
    resolve_identity,
)
from tagserver.meta.from_ga4 import (
    DEFAULT_EVENT_ID_PARAM,
    MetaFromGA4,
    meta_from_ga4,
    mint_event_id,
)

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
    """``GET|POST|OPTIONS [<prefix>]/g/collect``: gtag hits → events, cookies, outbound hits.
    ``HEAD`` (which Starlette routes wherever ``GET`` goes: monitors, link checkers) is ``200``
    with no body and no side effect — no event, no forwarded hit, no cookie."""
    settings = state.settings
    if request.method == "HEAD":
        return Response(status_code=200, headers=NO_STORE)
    try:
        cors = _cors(request, state)
    except HitRejected as exc:
        return error_response(exc)
    if request.method == "OPTIONS":
        origin = request.headers.get("origin")
        headers = preflight_headers(origin, methods=GA4_METHODS) if origin and cors else NO_STORE
        return Response(status_code=204, headers=headers)
    trusted_ip = request_client_ip(request, state)
    client_ip = public_ip(trusted_ip)
    user_agent = request.headers.get("user-agent") or None
    try:
        check_rate_limits(request, state, trusted_ip)
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
    events, cookies = build_ga4_events(
        batch.hits,
        cookie_header=request.headers.get("cookie", ""),
        cookies=context_cookies(request),
        headers=context_headers(request),
        referer=_referer(request),
        cookie_scope=resolve_cookie_scope(request.headers.get("host"), settings.site_domains),
        signer=state.signer,
        client_ip=client_ip,
        user_agent=user_agent,
        now=now,
        event_id_param=settings.ga4_event_id_param,
        server_client_id=settings.ga4_client_id == "server",
        max_age=settings.cookie_max_age_s,
    )
    container = state.container  # one container for every hit, even during a reload
    pixels: list[str] = []
    results = []
    for event in events:
        result = run_event(state, container, event, now=now)
        results.append(result)
        pixels.extend(pixel_urls(result.commands))
    try:
        await submit_results(state, results)  # durable before the answer
    except OutboxError:
        return outbox_unavailable(headers=cors)

    headers = {**NO_STORE, **cors}
    response: Response
    if batch.richsstsse:
        response = Response(build_event_stream(pixels), media_type=EVENT_STREAM, headers=headers)
    else:
        response = Response(b"", media_type="text/plain", headers=headers)
    set_cookies(response, cookies)
    return response


def build_ga4_events(
    hits: Sequence[GA4Hit],
    *,
    cookie_header: str,
    cookies: Mapping[str, str],
    headers: Mapping[str, str],
    referer: str | None,
    cookie_scope: CookieScope | None,
    signer: Signer,
    client_ip: str | None,
    user_agent: str | None,
    now: float,
    event_id_param: str = DEFAULT_EVENT_ID_PARAM,
    server_client_id: bool = False,
    max_age: int,
    mint: Callable[[], str] = mint_event_id,
) -> tuple[list[Event], list[CookieSpec]]:
    """The events of one request's hits, and the cookies to set (``now`` in unix seconds).

    One identity for the request: Meta cookies only when every hit grants ``ad_storage``, the
    visitor id and the ``FPID`` (``server_client_id``) only when every hit grants
    ``analytics_storage``; the page's ``ep.fbp``/``ep.fbc`` stand in for a missing or malformed
    cookie (the first valid of duplicate cookies wins). Each event carries the Meta view of its
    hit (:func:`~tagserver.meta.from_ga4.meta_from_ga4`: name, event id, custom and user data)
    and the hit itself (``Event.ga4``), whose event data the container reads. ``mint`` makes an
    event id when the hit brings none (default: a UUID).
    """
    metas = [meta_from_ga4(h.event_data, event_id_param=event_id_param, mint=mint) for h in hits]
    ad_storage = all(h.consent.ad_storage for h in hits)
    analytics_storage = all(h.consent.analytics_storage for h in hits)
    first = hits[0]
    page_url = _page_url(first) or referer
    identity = resolve_identity(
        _cookies_with_page_ids(parse_cookie_header(cookie_header), metas[0]),
        page_url=page_url,
        referrer_url=_url(first.event_data.get("page_referrer")),
        scope=cookie_scope,
        ad_storage=ad_storage,
        analytics_storage=analytics_storage,
        signer=signer,
        now_ms=int(now * 1000),
        max_age=max_age,
    )
    to_set = list(identity.cookies)
    server_id: str | None = None
    if server_client_id and analytics_storage and cookie_scope is not None:
        resolved = resolve_server_client_id(cookies, js_client_id=first.param("cid"), now=now)
        server_id = resolved.client_id
        to_set.append(CookieSpec(FPID_COOKIE, resolved.cookie, max_age,
                                      cookie_scope.domain, httponly=True))
    events = []
    for hit, meta in zip(hits, metas, strict=True):
        if server_id is not None:
            hit = _with_client_id(hit, server_id)
        events.append(Event(
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
            cookies=cookies,
            headers=headers,
            ga4=hit,
        ))
    return events, to_set


def pixel_urls(commands: Sequence[Mapping[str, Any]]) -> list[str]:
    """The image URLs a gtag page should load for these browser commands: an ``img`` command's
    ``src``; a ``fbq`` ``trackSingle``/``trackSingleCustom`` command as Meta's image pixel
    (``https://www.facebook.com/tr?id=..&ev=..&eid=..``), with ``dpo=LDU&dpoco=..&dpost=..`` when
    a ``dataProcessingOptions`` command (Limited Data Use) came right before it. Other commands
    are skipped."""
    from tagserver.tags.meta import LimitedDataUse, pixel_image_url

    urls = []
    ldu: LimitedDataUse | None = None
    for command in commands:
        args = command.get("args")
        if command.get("type") == "img" and isinstance(command.get("src"), str):
            urls.append(command["src"])
        elif command.get("type") == "fbq" and isinstance(args, list) and args:
            if args[0] == "dataProcessingOptions" and len(args) == 4:
                ldu = LimitedDataUse("always", _int(args[2]), _int(args[3]))
                continue
            if (
                len(args) == 5
                and args[0] in ("trackSingle", "trackSingleCustom")
                and isinstance(args[3], dict) and isinstance(args[4], dict)
            ):
                urls.append(pixel_image_url(str(args[1]), str(args[2]),
                                            str(args[4].get("eventID", "")), args[3], ldu=ldu))
        ldu = None
    return urls


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


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


def _cookies_with_page_ids(
    cookies: Mapping[str, list[str]], meta: MetaFromGA4
) -> dict[str, list[str]]:
    """Every value of the request's cookies (:func:`~tagserver.identity.parse_cookie_header`),
    with the page's own ``ep.fbp``/``ep.fbc`` standing in when no value is well-formed."""
    merged = dict(cookies)
    for name, value, pattern in (("_fbp", meta.fbp, FBP_RE), ("_fbc", meta.fbc, FBC_RE)):
        if value and not any(pattern.match(v) for v in merged.get(name, [])):
            merged[name] = [value]
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
