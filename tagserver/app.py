"""The ASGI application: ``create_app(settings)`` wires routes, container, identity and delivery."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import hashlib
import hmac
import logging
import os
import posixpath
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import httpx
from itsdangerous import Signer
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope

from tagserver.bots import is_bot
from tagserver.client_ip import client_ip_of_headers, public_text
from tagserver.clients.collect import event_from_hit, parse_collect_body
from tagserver.clients.context import (
    ContextCookies,
    ContextHeaders,
    check_rate_limits,
    outbox_unavailable,
    run_event,
    set_cookies,
    submit_results,
)
from tagserver.container.loader import Container, load_container
from tagserver.container.variables import SecretVariable
from tagserver.container.watch import ContainerReloader, loader_for
from tagserver.delivery.channels import Channel, GA4Channel, HttpChannel, MetaChannel
from tagserver.delivery.drops import DropCounter
from tagserver.delivery.outbox import Outbox, describe_outbox, open_outbox
from tagserver.delivery.recorder import RecordingTransport
from tagserver.delivery.retry import RetryPolicy
from tagserver.delivery.sender import Sender
from tagserver.exceptions import HitRejected, OriginNotAllowed, OutboxError
from tagserver.front import Front, FrontedStarlette
from tagserver.ga4.handler import handle_ga4_collect, handle_service_worker, handle_set_cookie
from tagserver.gc_tuning import configure_gc, gc_frozen, settle_heap
from tagserver.http import (
    JSONReply,
    answer_headers,
    check_raw_content_type,
    cors_headers,
    error_response,
    origin_allowed,
    preflight_headers,
    receive_body,
)
from tagserver.identity import (
    VISITOR_ID_SALT,
    VisitorSigner,
    cookie_text,
    identity_cookies,
    resolve_cookie_scope,
    resolve_identity,
)
from tagserver.limits import RateLimits, RequestLimits
from tagserver.logs import AccessLog, plain_access_paths
from tagserver.metrics import CONTENT_TYPE, Metrics
from tagserver.purchase_token import PurchaseReplayGuard
from tagserver.server_events.api import handle_api_events
from tagserver.server_events.store import ServerEventStore
from tagserver.settings import Settings, load_settings
from tagserver.tags.ga4 import GA4Destination, GA4Tag
from tagserver.tags.http import HttpDestination
from tagserver.tags.meta import MetaDestination

log = logging.getLogger("tagserver.app")

NO_STORE = {"cache-control": "no-store"}
#: Response header of ``GET /healthy`` naming the active container's version (content hash).
VERSION_HEADER = "x-container-version"


@dataclass
class AppState:
    """What the routes share: settings, the active container, the sender and its counters."""

    settings: Settings
    container: Container
    drops: DropCounter
    signer: Signer
    recorder: RecordingTransport | None
    metrics: Metrics
    sender: Sender | None = None
    outbox: Outbox | None = None
    reloader: ContainerReloader | None = None
    api_store: ServerEventStore | None = None
    limits: RateLimits = field(default_factory=lambda: RateLimits(per_ip=0, per_visitor=0))
    purchase_guard: PurchaseReplayGuard = field(default_factory=PurchaseReplayGuard)
    #: The event loop serving the app, from its lifespan start to its end (``None`` outside):
    #: handed to :func:`receive_body`, as ``asyncio.get_running_loop()`` costs a system call.
    loop: asyncio.AbstractEventLoop | None = None


def create_app(
    settings: Settings,
    *,
    container: Container | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    outbox: Outbox | None = None,
    watch: bool | None = None,
) -> Starlette:
    """Build the application.

    ``container`` defaults to loading ``settings.tags_dir`` (raises
    :class:`~tagserver.exceptions.ConfigError`); ``transport`` replaces the network for outbound
    requests (tests); with ``settings.dry_run`` a :class:`RecordingTransport` records them instead.
    ``outbox`` defaults to the backend named by ``settings.outbox``, opened by the lifespan
    (which fails the start-up with :class:`~tagserver.exceptions.OutboxError` when it cannot).
    ``watch`` (default: when the container was loaded here) reloads ``settings.tags_dir`` live
    every ``settings.reload_interval_s`` seconds (0: never by polling) and on SIGHUP; each
    reloaded container's destinations and secrets are handed to the sender.
    """
    if watch is None:
        watch = container is None
    if container is None:
        container = load_container(settings.tags_dir, environ=os.environ)
    recorder = RecordingTransport() if settings.dry_run else None
    keys = [key.reveal() for key in reversed(settings.secret_keys)]  # itsdangerous: newest last
    metrics = Metrics()
    state = AppState(
        settings=settings,
        container=container,
        drops=DropCounter(listener=metrics.count_drop),
        signer=VisitorSigner(keys, salt=VISITOR_ID_SALT),
        recorder=recorder,
        metrics=metrics,
        api_store=ServerEventStore(settings.keys_path),
        limits=RateLimits(per_ip=settings.rate_limit_ip, per_visitor=settings.rate_limit_visitor),
    )
    if settings.block_bots:
        is_bot("")  # compiles the crawler patterns now, not on the first hit
    if settings.uses_dev_key:
        log.warning(
            "TAGSERVER_SECRET_KEY is not set: using the public development key; "
            "visitor ids can be forged. Set a random key in production."
        )

    # the collect endpoint also with a trailing slash: the same endpoint, no redirect (a POST
    # answered 307 is lost by sendBeacon), as /g/collect/
    collect_paths = (settings.collect_path, settings.collect_path.rstrip("/") + "/")
    access_log = AccessLog(
        plain_access_paths(
            *collect_paths, settings.script_path, "/healthy", "/metrics", "/api/events"
        )
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = httpx.AsyncClient(
            transport=recorder or transport,
            timeout=httpx.Timeout(settings.outbound_timeout_s),
            limits=httpx.Limits(
                max_connections=settings.outbound_max_connections,
                max_keepalive_connections=max(1, settings.outbound_max_connections // 2),
            ),
        )
        policy = RetryPolicy(
            settings.retry_base_delay_s, settings.retry_max_delay_s, settings.retry_max_attempts
        )
        store = outbox or open_outbox(settings.outbox, lease_s=settings.outbox_lease_s)
        try:
            await store.open()
        except OutboxError:
            await client.aclose()
            raise
        state.outbox = store
        state.loop = asyncio.get_running_loop()
        channels: dict[type, Channel] = {
            MetaDestination: MetaChannel(settings.meta_graph_url),
            HttpDestination: HttpChannel(),
            GA4Destination: GA4Channel(settings.ga4_url),
        }
        state.sender = Sender(
            client,
            outbox=store,
            channels=channels,
            drops=state.drops,
            policy=policy,
            metrics=metrics,
            flush_interval=settings.flush_interval_s,
        )
        use_container(state.sender, state.container, channels)
        await state.sender.start()
        gauges = asyncio.create_task(_refresh_outbox_gauges(state, every=5.0))
        if watch:

            def activate(new: Container) -> None:
                state.container = new
                assert state.sender is not None
                use_container(state.sender, new, channels)
                if gc_frozen():
                    settle_heap()  # the old container's objects can be collected

            state.reloader = ContainerReloader(
                settings.tags_dir,
                current=lambda: state.container,
                activate=activate,
                load=loader_for(os.environ),
                interval=settings.reload_interval_s,
            )
            await state.reloader.start()
        log.info(
            "started",
            extra={
                "container_version": state.container.version,
                "tags": [t.name for t in state.container.tags],
                "dry_run": settings.dry_run,
                "outbox": describe_outbox(settings.outbox) if outbox is None else "given",
                "live_reload": state.reloader is not None,
            },
        )
        try:
            yield
        finally:
            state.loop = None
            gauges.cancel()
            if state.reloader is not None:
                await state.reloader.stop()
            await state.sender.stop(timeout=settings.drain_timeout_s)
            await store.close()
            await client.aclose()
            if state.api_store is not None:
                state.api_store.close()
            access_log.flush()
            metrics.fold()
            log.info(
                "stopped",
                extra={"delivered": state.sender.delivered, "drops": state.drops.snapshot()},
            )

    script = load_script(script_path=settings.script_path, collect_path=settings.collect_path)

    async def healthy(request: Request) -> Response:
        return PlainTextResponse(
            "ok", headers={**NO_STORE, VERSION_HEADER: state.container.version}
        )

    async def client_script(request: Request) -> Response:
        headers = {
            "etag": script.etag,
            "cache-control": "public, max-age=3600",
            "content-type": "text/javascript; charset=utf-8",
        }
        headers["vary"] = "Accept-Encoding"
        if etag_matches(request.headers.get("if-none-match"), script.etag):
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", "").lower():
            return Response(script.gzipped, headers={**headers, "content-encoding": "gzip"})
        return Response(script.body, headers=headers)

    async def collect(request: Request) -> Response:  # the front answers POST/OPTIONS itself
        return await handle_collect(state, request.scope, request.receive)

    async def metrics_endpoint(request: Request) -> Response:
        return await handle_metrics(request, state)

    async def ga4_collect(request: Request) -> Response:
        return await handle_ga4_collect(request, state)

    async def ga4_set_cookie(request: Request) -> Response:
        return await handle_set_cookie(request, state)

    async def api_events(request: Request) -> Response:
        assert state.api_store is not None
        return await handle_api_events(request, state, state.api_store)

    routes = [
        Route("/healthy", healthy, methods=["GET"]),
        Route(settings.script_path, client_script, methods=["GET"]),
        *(Route(path, collect, methods=["POST", "OPTIONS"]) for path in set(collect_paths)),
        Route("/api/events", api_events, methods=["POST"]),  # server-to-server, API keys
        # gtag.js, as to a server-side GTM container: the site's server_container_url may
        # carry a path prefix (REFERENCE §2)
        *(
            Route(prefix + path, endpoint, methods=methods)
            for prefix in ("", "/{prefix:path}")
            for path, endpoint, methods in (
                ("/g/collect", ga4_collect, ["GET", "POST", "OPTIONS"]),
                # the same endpoint: no redirect (Starlette's would say http:// behind TLS)
                ("/g/collect/", ga4_collect, ["GET", "POST", "OPTIONS"]),
                ("/_/service_worker/{rest:path}", handle_service_worker, ["GET"]),
                ("/_/set_cookie", ga4_set_cookie, ["GET", "POST", "OPTIONS"]),
            )
        ),
    ]
    if settings.metrics_token is not None:
        routes.append(Route("/metrics", metrics_endpoint, methods=["GET"]))
    front_parts: dict[str, Any] = {}
    app = FrontedStarlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
        front=lambda stack: Front(stack, **front_parts),
    )
    app.state.tagserver = state

    front_parts.update(
        limits=RequestLimits(
            max_header_bytes=settings.max_header_bytes,
            max_query_bytes=settings.max_query_bytes,
            max_concurrency=settings.max_concurrency,
        ),
        metrics=metrics,
        access_log=access_log,
        routes={
            **dict.fromkeys(collect_paths, "collect"),
            settings.script_path: "script",
            "/healthy": "healthy",
            "/metrics": "metrics",
        },
        # the hot route skips all of Starlette's layers (the front answers its unexpected errors)
        # (functools.partial: the front calls handle_collect itself, no coroutine in between)
        fast={(method, path): functools.partial(handle_collect, state)
              for method in ("POST", "OPTIONS") for path in collect_paths},
    )  # fmt: skip
    return app


def use_container(sender: Sender, container: Container, channels: Mapping[type, Channel]) -> None:
    """Point ``sender`` at ``container``: the destinations its tags send to (with their current
    tokens), GA4 keys of its forwarders that keep each hit's own measurement id, and its secret
    variables, so that entries stored earlier (or replayed) are sent with the current values."""
    found = [getattr(entry.tag, "destination", None) for entry in container.tags]
    destinations = [d for d in found if type(d) in channels]
    any_ga4 = any(isinstance(e.tag, GA4Tag) and e.tag.measurement_id is None
                  for e in container.tags)  # fmt: skip

    def resolve(key: str) -> object | None:
        if any_ga4 and key.startswith("ga4:G-"):
            return GA4Destination(key.removeprefix("ga4:"))
        return None

    secrets = {name: v.value for name, v in container.variables.items()
               if isinstance(v, SecretVariable)}  # fmt: skip
    sender.use_destinations(destinations, resolve=resolve, secrets=secrets)


async def _refresh_outbox_gauges(state: AppState, *, every: float) -> None:
    """Keep the outbox gauges current (every ``every`` seconds; errors are logged, not raised)."""
    while True:
        await update_outbox_gauges(state)
        await asyncio.sleep(every)


async def update_outbox_gauges(state: AppState) -> None:
    """Set depth, oldest age and dead-letter gauges from the outbox's counts."""
    if state.outbox is None:
        return
    try:
        stats = await state.outbox.stats()
    except OutboxError as exc:
        log.error("outbox stats failed", extra={"error": str(exc)})
        return
    state.metrics.outbox_depth.set(stats.depth)
    state.metrics.outbox_oldest_age.set(stats.oldest_age_s or 0.0)
    state.metrics.outbox_dead.set(stats.dead)


async def handle_metrics(request: Request, state: AppState) -> Response:
    """``GET /metrics`` on the main port: the Prometheus text, with ``Authorization: Bearer``."""
    token = state.settings.metrics_token
    sent = request.headers.get("authorization", "")
    expected = f"Bearer {token.reveal()}" if token is not None else None
    if expected is None or not hmac.compare_digest(sent.encode(), expected.encode()):
        return JSONResponse(
            {"ok": False, "error": "metrics need a bearer token",
             "errors": [{"field": "authorization",
                         "message": "send Authorization: Bearer <TAGSERVER_METRICS_TOKEN>"}],
             "status": 401},
            status_code=401,
            headers={**NO_STORE, "www-authenticate": "Bearer"},
        )  # fmt: skip
    await update_outbox_gauges(state)
    return Response(state.metrics.render(), headers={**NO_STORE, "content-type": CONTENT_TYPE})


async def _http_error(request: Request, exc: Exception) -> Response:
    """404/405 and other routing errors in DESIGN.md's JSON error shape."""
    assert isinstance(exc, HTTPException)
    rejected = HitRejected(str(exc.detail), errors=[{"field": "path", "message": str(exc.detail)}])
    rejected.status = exc.status_code
    return error_response(rejected, headers=dict(exc.headers or {}))


@dataclass(frozen=True)
class _Script:
    body: bytes
    etag: str
    gzipped: bytes


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison for ``If-None-Match``: a list, ``W/`` prefixes and ``*``."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return etag in tags


#: In t.js the collect path follows this marker, relative to the script's own URL.
COLLECT_MARKER = b"/*collect*/'e'"


def load_script(*, script_path: str, collect_path: str) -> _Script:
    """The browser client with ``collect_path`` written in relative to ``script_path``, so that a
    load balancer that mounts both under a prefix (``/metrics/t.js`` → ``/t.js``) still works."""
    body = resources.files("tagserver.static").joinpath("t.js").read_bytes()
    relative = posixpath.relpath(collect_path, posixpath.dirname(script_path))
    # settings allow only [A-Za-z0-9._~/-] in paths: nothing to escape inside the quotes
    body = body.replace(COLLECT_MARKER, b"/*collect*/'" + relative.encode("ascii") + b"'")
    etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
    return _Script(body, etag, gzip.compress(body, compresslevel=9, mtime=0))


async def handle_collect(state: AppState, scope: Scope, receive: Receive) -> Response:
    """``POST /e``: one event from the browser client → commands, cookies, outbound events.

    Called with the request's ASGI ``scope`` and ``receive`` (the front's hot route, see
    :class:`~tagserver.front.Front`), without a Starlette ``Request``: a ``Request`` is made only
    while the rate limits are on (:func:`check_rate_limits` takes one)."""
    settings = state.settings
    raw = scope["headers"]  # raw_headers(request): Starlette's Headers makes a non-list a list
    if type(raw) is not list:
        raw = scope["headers"] = list(raw)
    headers = dict(reversed(raw))  # first_headers(raw) of a list, inline: a call less per hit
    found = headers.get(b"host")  # header values as Starlette gives them: latin-1
    host = found.decode("latin-1") if found is not None else None
    found = headers.get(b"origin")
    origin = found.decode("latin-1") if found is not None else None
    allowed_origin: str | None = None  # once allowed: error answers carry its CORS headers
    try:
        if origin is not None:
            allowed = settings.allowed_origins  # listed: allowed without origin_allowed's call
            if origin not in allowed and not origin_allowed(origin, host=host, allowed=allowed):
                raise OriginNotAllowed(
                    "origin not allowed",
                    errors=[{"field": "origin", "message": "add it to TAGSERVER_ALLOWED_ORIGINS"}],
                )
            allowed_origin = origin
        if scope["method"] == "OPTIONS":
            if origin is None:
                return Response(status_code=204, headers=NO_STORE)
            return Response(status_code=204, headers=preflight_headers(origin))
        # request_client_ip(request, state, headers), on the scope
        peer = scope.get("client")
        client_ip = client_ip_of_headers(
            peer[0] if peer is not None else None,
            raw,
            trusted_proxies=settings.trusted_proxies,
            first=headers,
        )
        if state.limits.active:
            check_rate_limits(Request(scope, receive), state, client_ip)
        check_raw_content_type(headers.get(b"content-type", b""))
        body = await receive_body(
            receive,
            limit=settings.max_body_bytes,
            content_length=headers.get(b"content-length", b"").decode("latin-1"),
            loop=state.loop,
        )
        now = time.time()
        hit = parse_collect_body(body, now=now)
    except HitRejected as exc:
        state.metrics.hit_outcome["rejected"].inc()
        cors = cors_headers(allowed_origin) if allowed_origin is not None else {}
        return error_response(exc, headers=cors)

    cookie_scope = resolve_cookie_scope(host, settings.site_domains)
    page_url = hit.event_source_url or _referer(headers.get(b"referer"))
    cookie = headers.get(b"cookie")
    identity = resolve_identity(
        identity_cookies(cookie_text(raw)) if cookie is not None else {},
        page_url=page_url,
        referrer_url=hit.referrer_url,
        scope=cookie_scope,
        ad_storage=hit.consent.ad_storage,
        analytics_storage=hit.consent.analytics_storage,
        signer=state.signer,
        now_ms=int(now * 1000),
        max_age=settings.cookie_max_age_s,
    )
    user_agent = headers.get(b"user-agent")
    event = event_from_hit(
        hit,
        event_id=hit.event_id if hit.event_id is not None else str(uuid.uuid4()),
        received_at=now,
        page_url=page_url,
        fbp=identity.fbp,
        fbc=identity.fbc,
        visitor_id=identity.visitor_id,
        client_ip=public_text(client_ip) if client_ip is not None else None,  # public_ip
        user_agent=user_agent.decode("latin-1") if user_agent else None,
        cookies=ContextCookies(raw, cookie),  # context_cookies(request)
        headers=ContextHeaders(raw),  # context_headers(request)
    )
    container = state.container  # one container for the whole event, even during a reload
    result = run_event(state, container, event, now=now)
    try:
        await submit_results(state, [result])  # durable before the answer
    except OutboxError:
        state.metrics.hit_outcome["unavailable"].inc()
        cors = cors_headers(allowed_origin) if allowed_origin is not None else {}
        return outbox_unavailable(headers=cors)
    state.metrics.hit_outcome["accepted"].inc()
    response = JSONReply(
        {"event_id": event.event_id, "commands": result.commands}, answer_headers(origin)
    )
    set_cookies(response, identity.cookies)
    return response


def _referer(referer: bytes | None) -> str | None:
    """The page URL from the raw ``Referer`` header ``referer``, when the hit did not name it
    (an http(s) URL)."""
    if referer and referer.startswith((b"https://", b"http://")) and len(referer) <= 4096:
        return referer.decode("latin-1")
    return None


def app_from_environment() -> Starlette:
    """The uvicorn factory (``tagserver.app:app_from_environment``): settings from ``os.environ``."""
    from tagserver.logs import configure_logging

    settings = load_settings(os.environ)
    configure_logging(settings.log_level)
    app = create_app(settings)
    configure_gc()
    settle_heap()  # what was loaded for the process's lifetime is never walked by the GC again
    return app
