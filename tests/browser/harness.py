"""What the browser tests run on: a throwaway TLS certificate, a shop web server (optionally a
path-mounting reverse proxy in front of tagserver), a recorder standing in for Meta's Pixel library
through Playwright routing, and one browser context per test with its console watched.

Chromium is Debian's ``/usr/bin/chromium`` driven by the Python ``playwright`` package; no browser
is downloaded. Host names ``www.shop.test``, ``t.shop.test`` and ``evil.test`` are mapped to
127.0.0.1 with ``--host-resolver-rules``; every other name fails to resolve, so nothing leaves
the machine (Meta's hosts are answered by routes before any lookup).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Route
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route as StarletteRoute

CHROMIUM = "/usr/bin/chromium"
SHOP_HOST = "www.shop.test"
TAG_HOST = "t.shop.test"
EVIL_HOST = "evil.test"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--ignore-certificate-errors",
    f"--host-resolver-rules=MAP {SHOP_HOST} 127.0.0.1, MAP {TAG_HOST} 127.0.0.1, "
    f"MAP {EVIL_HOST} 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
PIXEL_LIBRARY_URL = "https://connect.facebook.net/en_US/fbevents.js"
PIXEL_CALLS_URL = "https://connect.facebook.net/__recorded_calls"
#: Stands in for Meta's fbevents.js: takes over the fbq stub and reports each call.
FAKE_PIXEL_LIBRARY = """
(function () {
  var f = window.fbq, seq = 0;
  f.callMethod = function () {
    var body = JSON.stringify({seq: seq++, page: location.href, args: [].slice.call(arguments)});
    fetch('__CALLS_URL__', {method: 'POST', mode: 'no-cors', keepalive: true, body: body});
  };
  var queued = f.queue || [];
  f.queue = [];
  queued.forEach(function (args) { f.callMethod.apply(f, args); });
})();
""".replace("__CALLS_URL__", PIXEL_CALLS_URL)
GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed key and certificate (PEM) for the test host names; ``(key, cert)``."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    names = f"DNS:{SHOP_HOST},DNS:{TAG_HOST},DNS:{EVIL_HOST},DNS:localhost,IP:127.0.0.1"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={SHOP_HOST}",
         "-addext", f"subjectAltName={names}"],
        check=True, capture_output=True, timeout=60,
    )
    return key, cert


@dataclass
class PixelRecorder:
    """What the page asked of Meta: library loads, fbq calls (in call order per page), images."""

    loads: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    def install(self, context: BrowserContext) -> None:
        context.route("https://connect.facebook.net/**", self._connect)
        context.route("https://www.facebook.com/tr**", self._image)

    def _connect(self, route: Route) -> None:
        request = route.request
        if request.url == PIXEL_CALLS_URL:
            self.calls.append(json.loads(request.post_data or "{}"))
            route.fulfill(status=204)
        elif request.url == PIXEL_LIBRARY_URL:
            self.loads.append(request.url)
            route.fulfill(status=200, content_type="text/javascript", body=FAKE_PIXEL_LIBRARY)
        else:
            route.fulfill(status=404, body="")

    def _image(self, route: Route) -> None:
        self.images.append(route.request.url)
        route.fulfill(status=200, content_type="image/gif", body=GIF)

    def fbq_args(self, method: str | None = None) -> list[list[Any]]:
        """The recorded ``fbq(...)`` argument lists, in order, optionally of one method."""
        ordered = sorted(self.calls, key=lambda c: (c["page"], c["seq"]))
        return [c["args"] for c in ordered if method is None or c["args"][0] == method]

    def tracked(self) -> list[tuple[str, str]]:
        """``(event name, eventID)`` of every ``trackSingle``/``trackSingleCustom`` call."""
        return [
            (args[2], args[4]["eventID"])
            for args in self.fbq_args()
            if args[0] in ("trackSingle", "trackSingleCustom")
        ]


@dataclass
class BrowserSession:
    """One browser context (fresh cookie jar) with its pages' console errors collected."""

    context: BrowserContext
    pixel: PixelRecorder
    console_errors: list[str] = field(default_factory=list)

    def new_page(self) -> Page:
        page = self.context.new_page()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.console_errors.append(f"{message.text} ({page.url})")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.console_errors.append(f"uncaught: {exc}"))
        return page

    def cookies(self) -> dict[str, dict[str, Any]]:
        """The browser's cookie jar by name (names are unique in these tests)."""
        return {c["name"]: dict(c) for c in self.context.cookies()}

    def pump_until(
        self,
        page: Page,
        predicate: Callable[[], bool],
        *,
        what: str | Callable[[], str],
        timeout: float = 10,
    ) -> None:
        """Let the browser run (route handlers answer only then) until ``predicate()`` holds;
        ``what`` (or what it returns) describes the wait in the timeout's message."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                text = what() if callable(what) else what
                raise AssertionError(f"timed out after {timeout} s waiting for {text}")
            page.wait_for_timeout(25)


PageRenderer = Callable[["ShopServer", Request], str]


class ShopServer:
    """The shop's web server on 127.0.0.1 over https, in a thread.

    Serves ``pages`` (name → renderer returning HTML) at ``/<name>`` for any Host, so one server
    plays ``www.shop.test`` and ``evil.test``. With ``upstream`` it is also the site's load balancer:
    ``/ts/<path>`` is forwarded to tagserver at ``upstream`` (Host kept, ``X-Forwarded-For``
    added, every ``Set-Cookie`` passed back) — the path-mount deployment.
    """

    def __init__(
        self,
        *,
        tls: tuple[Path, Path],
        pages: Mapping[str, PageRenderer],
        upstream: str | None = None,
    ) -> None:
        self.pages = dict(pages)
        self.upstream = upstream
        self.script_url = ""
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        routes = [
            StarletteRoute("/ts/{path:path}", self._proxy, methods=["GET", "POST", "OPTIONS"]),
            StarletteRoute("/{name:str}", self._page, methods=["GET"]),
        ]
        app = Starlette(routes=routes)
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, ws="none", lifespan="off",
            ssl_keyfile=str(tls[0]), ssl_certfile=str(tls[1]),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def origin(self, host: str = SHOP_HOST) -> str:
        return f"https://{host}:{self.port}"

    def url(self, path: str, host: str = SHOP_HOST) -> str:
        return self.origin(host) + path

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def start(self) -> ShopServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the shop server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
        if self._thread.is_alive():
            raise RuntimeError("the shop server did not stop: a browser context still open?")

    def __enter__(self) -> ShopServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _page(self, request: Request) -> Response:
        render = self.pages.get(request.path_params["name"])
        if render is None:
            return Response("not found", status_code=404)
        return HTMLResponse(render(self, request), headers={"cache-control": "no-store"})

    async def _proxy(self, request: Request) -> Response:
        if self.upstream is None:
            return Response("not found", status_code=404)
        url = f"{self.upstream}/{request.path_params['path']}"
        if request.url.query:
            url += "?" + request.url.query
        hop = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "upgrade"}
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in hop]
        peer = request.client.host if request.client else "127.0.0.1"
        headers.append(("x-forwarded-for", peer))
        async with httpx.AsyncClient() as client:
            answer = await client.request(
                request.method, url, headers=headers, content=await request.body()
            )
        response = Response(answer.content, status_code=answer.status_code)
        response.raw_headers = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in answer.headers.multi_items()
            if k.lower() not in hop | {"content-encoding"}
        ] + [(b"content-length", str(len(answer.content)).encode())]
        return response

