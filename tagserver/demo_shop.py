"""The demo shop of ``tagserver demo``, served under ``/demo/`` by the demo app only.

A product page, a checkout and a thank-you page install the browser client with the real snippet;
a sandbox Pixel library (``/demo/pixel.js``) records each ``fbq`` call at ``POST /demo/pixel``
instead of sending it to Meta, and ``/demo/events`` (``/demo/events.json``) shows per event id the
browser's Pixel call next to the Conversions API event the server recorded — the shared
``eventID``/``event_id`` and event name are how Meta deduplicates the two ("Deduplicate Pixel and
server events").
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import escape
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from tagserver.delivery.recorder import RecordingTransport
from tagserver.snippet import build_snippet

PIXEL_LIBRARY_PATH = "/demo/pixel.js"
MAX_PIXEL_BODY_BYTES = 16 * 1024
_PAGES = {"": "index.html", "checkout": "checkout.html", "thanks": "thanks.html"}
_ASSETS = {
    "shop.js": "text/javascript; charset=utf-8",
    "pixel.js": "text/javascript; charset=utf-8",
    "shop.css": "text/css; charset=utf-8",
}
_TRACK_METHODS = ("trackSingle", "trackSingleCustom", "track", "trackCustom")


class PixelLog:
    """The sandbox Pixel's calls, newest last: ``{"time": unix s, "args": [...], "page": url}``."""

    def __init__(self, limit: int = 1000) -> None:
        self._calls: deque[dict[str, Any]] = deque(maxlen=limit)

    def add(self, args: list[Any], page: str) -> None:
        self._calls.append({"time": time.time(), "args": args, "page": page})

    def calls(self) -> list[dict[str, Any]]:
        return list(self._calls)


@dataclass
class EventPair:
    """One event id with what each side did: the browser's fbq argument lists, the CAPI events."""

    event_id: str
    first_seen: float
    browser: list[list[Any]] = field(default_factory=list)
    capi: list[dict[str, Any]] = field(default_factory=list)
    capi_url: str | None = None

    @property
    def names(self) -> set[str]:
        return {str(a[2]) for a in self.browser} | {str(e.get("event_name")) for e in self.capi}

    @property
    def status(self) -> str:
        """``paired`` (both sides, one name), ``mismatch``, ``browser only`` or ``server only``."""
        if self.browser and self.capi:
            return "paired" if len(self.names) == 1 else "mismatch"
        return "browser only" if self.browser else "server only"

    def as_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_names": sorted(self.names),
            "status": self.status,
            "browser": self.browser,
            "capi": self.capi,
            "capi_url": self.capi_url,
        }


def pair_events(
    pixel_calls: Iterable[Mapping[str, Any]], records: Iterable[Mapping[str, Any]]
) -> list[EventPair]:
    """Group the Pixel's track calls (by their ``eventID`` option) and the recorded CAPI events
    (by ``event_id``); newest event first."""
    pairs: dict[str, EventPair] = {}

    def pair(event_id: str, seen: float) -> EventPair:
        if event_id not in pairs:
            pairs[event_id] = EventPair(event_id, seen)
        return pairs[event_id]

    for call in pixel_calls:
        args = call.get("args")
        if not (isinstance(args, list) and len(args) >= 5 and args[0] in _TRACK_METHODS):
            continue
        options = args[-1]
        if isinstance(options, dict) and isinstance(options.get("eventID"), str):
            pair(options["eventID"], float(call["time"])).browser.append(args)
    for record in records:
        body = record.get("json")
        if not (isinstance(body, dict) and str(record.get("url", "")).endswith("/events")):
            continue
        for event in body.get("data") or []:
            if isinstance(event, dict) and isinstance(event.get("event_id"), str):
                found = pair(event["event_id"], float(record["time"]))
                found.capi.append(event)
                found.capi_url = str(record["url"])
    return sorted(pairs.values(), key=lambda p: p.first_seen, reverse=True)


def _compact_json(event: Mapping[str, Any]) -> str:
    """One top-level key per line, nested values on the same line (fits a table cell)."""
    lines = [
        f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False, separators=(', ', ': '))}"
        for k, v in event.items()
    ]
    return "{\n" + ",\n".join(lines) + "\n}"


def _fbq_call(args: list[Any]) -> str:
    return "fbq(" + ", ".join(json.dumps(a, ensure_ascii=False) for a in args) + ")"


_STATUS_TEXT = {
    "paired": '<span class="ok">✓ same event id and name: Meta counts it once</span>',
    "mismatch": '<span class="wait">✗ the names differ: Meta would count it twice</span>',
    "browser only": '<span class="wait">server event still in its batch: reload</span>',
    "server only": '<span class="wait">no Pixel call (not sent from a browser)</span>',
}


def render_events_page(pairs: list[EventPair]) -> str:
    """The ``/demo/events`` page: one row per event id, browser and server side by side."""
    rows = []
    for p in pairs:
        browser = "\n\n".join(_fbq_call(a) for a in p.browser) or "—"
        capi = "\n\n".join(_compact_json(e) for e in p.capi) or "—"
        where = f"POST {p.capi_url}  (access_token masked)\n" if p.capi_url else ""
        rows.append(
            f'<tr><td><div class="id">{escape(p.event_id)}</div>'
            f"<div>{escape(', '.join(sorted(p.names)))}</div>{_STATUS_TEXT[p.status]}</td>"
            f"<td><pre>{escape(browser)}</pre></td>"
            f"<td><pre>{escape(where + capi)}</pre></td></tr>"
        )
    body = "".join(rows) or '<tr><td colspan="3">No events yet: visit the shop.</td></tr>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<link rel="stylesheet" href="/demo/shop.css"><title>Events — tagserver demo shop</title></head>
<body><header><a href="/demo/">tagserver demo shop</a><a href="/demo/checkout">Cart</a>
<a href="/demo/events">Events</a></header>
<main class="wide"><h1>Events: browser and server, one event id</h1>
<p>Left, the Meta Pixel call the browser made (recorded by the demo's sandbox Pixel). Right, the
Conversions API event tagserver sent from the server (recorded by the sandbox destination:
nothing left this machine). <a href="/demo/events">Refresh</a> ·
<a href="/demo/events.json">JSON</a></p>
<table class="events"><colgroup><col style="width:16%"><col style="width:34%"><col></colgroup>
<thead><tr><th>event id</th><th>browser: Pixel command</th>
<th>server: Conversions API payload</th></tr></thead><tbody>{body}</tbody></table>
</main></body></html>
"""


def mount_demo_shop(
    app: Starlette, *, recorder: RecordingTransport, script_path: str
) -> PixelLog:
    """Add the ``/demo/`` routes to ``app``; returns the sandbox Pixel's log."""
    files = resources.files("tagserver.static").joinpath("demo")
    snippet = build_snippet(script_path, pixel_src=PIXEL_LIBRARY_PATH)
    pages = {
        name: files.joinpath(filename).read_text("utf-8").replace("<!--tagserver-->", snippet)
        for name, filename in _PAGES.items()
    }
    assets = {name: files.joinpath(name).read_bytes() for name in _ASSETS}
    log = PixelLog()
    no_store = {"cache-control": "no-store"}

    async def page(request: Request) -> Response:
        html = pages.get(request.path_params.get("name", ""))
        if html is None:
            return Response("not found", status_code=404)
        return HTMLResponse(html, headers=no_store)

    async def asset(request: Request) -> Response:
        name = request.url.path.rsplit("/", 1)[-1]
        return Response(assets[name], media_type=_ASSETS[name], headers=no_store)

    async def pixel(request: Request) -> Response:
        body = await request.body()
        try:
            data = json.loads(body) if len(body) <= MAX_PIXEL_BODY_BYTES else None
        except ValueError:
            data = None
        if not (isinstance(data, dict) and isinstance(data.get("args"), list)):
            return JSONResponse({"ok": False, "error": "expected {args, page}"}, 400)
        log.add(data["args"], str(data.get("page", "")))
        return Response(status_code=204)

    def current() -> list[EventPair]:
        return pair_events(log.calls(), recorder.records())

    async def events(request: Request) -> Response:
        return HTMLResponse(render_events_page(current()), headers=no_store)

    async def events_json(request: Request) -> Response:
        return JSONResponse([p.as_json() for p in current()], headers=no_store)

    async def to_shop(request: Request) -> Response:
        return RedirectResponse("/demo/")

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
        Route("/events.json", events_json, methods=["GET"]),
        Route("/pixel", pixel, methods=["POST"]),
        *(Route(f"/{name}", asset, methods=["GET"]) for name in _ASSETS),
        Route("/{name:str}", page, methods=["GET"]),
    ]
    app.router.routes.append(Route("/demo", to_shop, methods=["GET"]))
    app.router.routes.append(Mount("/demo", routes=routes))
    return log
