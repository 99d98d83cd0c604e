"""What both clients (``POST /e`` and ``/g/collect``) do around the container, done one way.

The visitor's public IP (trusted proxies, ``X-Forwarded-For`` or RFC 7239 ``Forwarded``), the
request context triggers and variables read (cookies, headers without ``Cookie``), one container
run per event with its drops counted and its outbound events queued, and the identity cookies
written into the response.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from tagserver.client_ip import is_public, resolve_client_ip
from tagserver.container.model import Container
from tagserver.container.runtime import ContainerResult, run_container
from tagserver.event import Event
from tagserver.identity import CookieSpec

if TYPE_CHECKING:
    from tagserver.app import AppState


def visitor_ip(request: Request, state: AppState) -> str | None:
    """The visitor's public address as text, or ``None`` (unknown, private or loopback)."""
    peer = request.client.host if request.client else None
    ip = resolve_client_ip(
        peer,
        request.headers.getlist("x-forwarded-for"),
        trusted_proxies=state.settings.trusted_proxies,
        forwarded=request.headers.getlist("forwarded"),
    )
    return str(ip) if ip is not None and is_public(ip) else None


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
    """Run ``container`` on ``event`` (``now`` in unix seconds), count its drops and queue its
    outbound events. Never raises for a tag's problem; outbound failures happen later."""
    result = run_container(
        container, event, default_country=state.settings.default_country, now=now
    )
    for tag_name, reason, detail in result.drops:
        state.drops.count(tag_name, reason, f"event_id={event.event_id}: {detail}")
    assert state.sender is not None, "the lifespan has not run"
    for outbound in result.outbound:
        state.sender.submit(outbound)
    return result


def set_cookies(response: Response, cookies: Iterable[CookieSpec]) -> None:
    """Write each cookie: ``Secure; SameSite=Lax; Path=/`` always (REFERENCE §3)."""
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
