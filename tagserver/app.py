"""The ASGI application: ``create_app(settings)`` wires routes, container, identity and delivery."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources

import httpx
from itsdangerous import Signer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tagserver.client_ip import is_public, resolve_client_ip
from tagserver.clients.collect import parse_collect_body
from tagserver.container.loader import Container, load_container
from tagserver.container.runtime import run_container
from tagserver.container.watch import ContainerReloader, loader_for
from tagserver.delivery.channels import HttpChannel, MetaChannel
from tagserver.delivery.drops import DropCounter
from tagserver.delivery.recorder import RecordingTransport
from tagserver.delivery.retry import RetryPolicy
from tagserver.delivery.sender import Sender
from tagserver.event import Event
from tagserver.exceptions import HitRejected, OriginNotAllowed
from tagserver.http import (
    check_body_type,
    cors_headers,
    error_response,
    origin_allowed,
    preflight_headers,
    read_body,
)
from tagserver.identity import VISITOR_ID_SALT, resolve_cookie_scope, resolve_identity
from tagserver.logs import AccessLogMiddleware
from tagserver.settings import Settings, load_settings
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
    sender: Sender | None = None
    reloader: ContainerReloader | None = None


def create_app(
    settings: Settings,
    *,
    container: Container | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    watch: bool | None = None,
) -> Starlette:
    """Build the application.

    ``container`` defaults to loading ``settings.tags_dir`` (raises
    :class:`~tagserver.exceptions.ConfigError`); ``transport`` replaces the network for outbound
    requests (tests); with ``settings.dry_run`` a :class:`RecordingTransport` records them instead.
    ``watch`` (default: when the container was loaded here) reloads ``settings.tags_dir`` live
    every ``settings.reload_interval_s`` seconds (0: never by polling) and on SIGHUP.
    """
    if watch is None:
        watch = container is None
    if container is None:
        container = load_container(settings.tags_dir, environ=os.environ)
    recorder = RecordingTransport() if settings.dry_run else None
    keys = [key.reveal() for key in reversed(settings.secret_keys)]  # itsdangerous: newest last
    state = AppState(
        settings=settings,
        container=container,
        drops=DropCounter(),
        signer=Signer(keys, salt=VISITOR_ID_SALT),
        recorder=recorder,
    )
    if settings.uses_dev_key:
        log.warning(
            "TAGSERVER_SECRET_KEY is not set: using the public development key; "
            "visitor ids can be forged. Set a random key in production."
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = httpx.AsyncClient(
            transport=recorder or transport,
            timeout=httpx.Timeout(settings.outbound_timeout_s),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        )
        policy = RetryPolicy(
            settings.retry_base_delay_s, settings.retry_max_delay_s, settings.retry_max_attempts
        )
        state.sender = Sender(
            client,
            channels={
                MetaDestination: MetaChannel(settings.meta_graph_url),
                HttpDestination: HttpChannel(),
            },
            drops=state.drops,
            policy=policy,
            flush_interval=settings.flush_interval_s,
        )
        await state.sender.start()
        if watch:
            state.reloader = ContainerReloader(
                settings.tags_dir,
                current=lambda: state.container,
                activate=lambda new: setattr(state, "container", new),
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
                "live_reload": state.reloader is not None,
            },
        )
        try:
            yield
        finally:
            if state.reloader is not None:
                await state.reloader.stop()
            await state.sender.stop(timeout=settings.drain_timeout_s)
            await client.aclose()
            log.info(
                "stopped",
                extra={"delivered": state.sender.delivered, "drops": state.drops.snapshot()},
            )

    script = _load_script()

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
        if request.headers.get("if-none-match") == script.etag:
            return Response(status_code=304, headers=headers)
        return Response(script.body, headers=headers)

    async def collect(request: Request) -> Response:
        return await handle_collect(request, state)

    routes = [
        Route("/healthy", healthy, methods=["GET"]),
        Route(settings.script_path, client_script, methods=["GET"]),
        Route(settings.collect_path, collect, methods=["POST", "OPTIONS"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.tagserver = state
    app.add_middleware(AccessLogMiddleware)
    return app


@dataclass(frozen=True)
class _Script:
    body: bytes
    etag: str


def _load_script() -> _Script:
    body = resources.files("tagserver.static").joinpath("t.js").read_bytes()
    return _Script(body, '"' + hashlib.sha256(body).hexdigest()[:16] + '"')


async def handle_collect(request: Request, state: AppState) -> Response:
    """``POST /e``: one event from the browser client → commands, cookies, outbound events."""
    settings = state.settings
    host = request.headers.get("host")
    origin = request.headers.get("origin")
    cors: dict[str, str] = {}
    try:
        if origin is not None:
            if not origin_allowed(origin, host=host, allowed=settings.allowed_origins):
                raise OriginNotAllowed(
                    "origin not allowed",
                    errors=[{"field": "origin", "message": "add it to TAGSERVER_ALLOWED_ORIGINS"}],
                )
            cors = cors_headers(origin)
        if request.method == "OPTIONS":
            if origin is None:
                return Response(status_code=204, headers=NO_STORE)
            return Response(status_code=204, headers=preflight_headers(origin))
        check_body_type(request)
        body = await read_body(request, limit=settings.max_body_bytes)
        now = time.time()
        hit = parse_collect_body(body, now=now)
    except HitRejected as exc:
        return error_response(exc, headers=cors)

    peer = request.client.host if request.client else None
    ip = resolve_client_ip(
        peer, request.headers.getlist("x-forwarded-for"), trusted_proxies=settings.trusted_proxies
    )
    scope = resolve_cookie_scope(host, settings.site_domains)
    page_url = hit.event_source_url or _referer(request)
    identity = resolve_identity(
        request.cookies,
        page_url=page_url,
        referrer_url=hit.referrer_url,
        scope=scope,
        ad_storage=hit.consent.ad_storage,
        analytics_storage=hit.consent.analytics_storage,
        signer=state.signer,
        now_ms=int(now * 1000),
        max_age=settings.cookie_max_age_s,
    )
    event = Event(
        event_name=hit.event_name,
        event_id=hit.event_id if hit.event_id is not None else str(uuid.uuid4()),
        event_time=hit.event_time,
        received_at=now,
        event_source_url=page_url,
        referrer_url=hit.referrer_url,
        custom_data=hit.custom_data,
        user_data=hit.user_data,
        consent=hit.consent,
        client_ip=str(ip) if ip is not None and is_public(ip) else None,
        user_agent=request.headers.get("user-agent") or None,
        fbp=identity.fbp,
        fbc=identity.fbc,
        visitor_id=identity.visitor_id,
        cookies=request.cookies,
        headers={k: v for k, v in request.headers.items() if k != "cookie"},
    )
    container = state.container  # one container for the whole event, even during a reload
    result = run_container(container, event, default_country=settings.default_country, now=now)
    for tag_name, reason, detail in result.drops:
        state.drops.count(tag_name, reason, f"event_id={event.event_id}: {detail}")
    assert state.sender is not None, "the lifespan has not run"
    for outbound in result.outbound:
        state.sender.submit(outbound)
    response = JSONResponse(
        {"event_id": event.event_id, "commands": result.commands}, headers={**NO_STORE, **cors}
    )
    for cookie in identity.cookies:
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


def _referer(request: Request) -> str | None:
    """The page URL from the ``Referer`` header, when the hit did not name it (an http(s) URL)."""
    referer = request.headers.get("referer")
    if referer and referer.startswith(("https://", "http://")) and len(referer) <= 4096:
        return referer
    return None


def app_from_environment() -> Starlette:
    """The uvicorn factory (``tagserver.app:app_from_environment``): settings from ``os.environ``."""
    from tagserver.logs import configure_logging

    settings = load_settings(os.environ)
    configure_logging(settings.log_level)
    return create_app(settings)
