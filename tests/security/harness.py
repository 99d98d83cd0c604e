"""The app in-process on its own event loop, for the security tables and the fuzz suite.

:class:`AppHarness` builds ``create_app`` from settings read out of an environment dict, runs its
lifespan on a private event loop, answers :meth:`AppHarness.request` synchronously (one loop for
thousands of requests: hypothesis examples stay cheap) and records every outbound request
instead of sending it (``httpx.MockTransport``): nothing leaves the process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tagserver.app import create_app
from tagserver.container.loader import load_container
from tagserver.settings import load_settings
from tests.e2e.server import SHIPPED_TAGS_DIR

PIXEL = "1234567890"
TOKEN = "EAAB-harness-token-0123456789"
ENVIRON = {"META_PIXEL_ID": PIXEL, "META_ACCESS_TOKEN": TOKEN}
BASE_ENV = {
    "TAGSERVER_SITE_DOMAINS": "www.shop.example",
    "TAGSERVER_SECRET_KEY": "harness-secret-key-0123456789",
    "TAGSERVER_FLUSH_INTERVAL": "0.01",
    "TAGSERVER_RETRY_MAX_ATTEMPTS": "1",
    "TAGSERVER_GA4_URL": "https://ga4.invalid",
    "TAGSERVER_META_GRAPH_URL": "https://graph.invalid",
}
#: A browser's request headers on the shop's tagging subdomain.
BROWSER = {
    "host": "t.shop.example",
    "origin": "https://www.shop.example",
    "user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
    "content-type": "text/plain",
}


class AppHarness:
    """``with AppHarness(env={...}) as app: app.request("POST", "/e", ...)``.

    ``env`` adds to (``None`` removes from) :data:`BASE_ENV`; ``peer`` is the socket peer's
    address; ``tags_dir`` the container (default: the shipped one). ``outbound`` holds every
    request the sender made (complete after the ``with`` block: the lifespan drains).
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str | None] | None = None,
        peer: str = "203.0.113.9",
        tags_dir: Path = SHIPPED_TAGS_DIR,
        environ: Mapping[str, str] = ENVIRON,
    ) -> None:
        merged: dict[str, str] = dict(BASE_ENV)
        for key, value in (env or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        self.settings = load_settings(merged)
        self.outbound: list[httpx.Request] = []
        self.app = create_app(
            self.settings,
            container=load_container(tags_dir, environ=environ),
            transport=httpx.MockTransport(self._destination),
        )
        self.peer = peer
        self._loop = asyncio.new_event_loop()
        self._stack = contextlib.AsyncExitStack()
        self._client: httpx.AsyncClient | None = None

    def _destination(self, request: httpx.Request) -> httpx.Response:
        self.outbound.append(request)
        if request.url.path.endswith("/events"):
            return httpx.Response(200, json={"events_received": 1, "messages": []})
        return httpx.Response(204)

    @property
    def state(self) -> Any:
        return self.app.state.tagserver

    def __enter__(self) -> AppHarness:
        async def start() -> None:
            await self._stack.enter_async_context(self.app.router.lifespan_context(self.app))
            transport = httpx.ASGITransport(app=self.app, client=(self.peer, 50000))
            self._client = await self._stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://t.shop.example")
            )

        self._loop.run_until_complete(start())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._loop.run_until_complete(self._stack.aclose())
        finally:
            pending = asyncio.all_tasks(self._loop)
            for task in pending:  # the sender cancels its flush loop without awaiting it
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Any = None,
        content: bytes | str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request; the whole answer is read. ``headers`` as a list keeps duplicates."""
        assert self._client is not None, "use the harness as a context manager"
        client = self._client

        async def send() -> httpx.Response:
            response = await client.request(
                method, path, headers=headers, content=content, **kwargs
            )
            await response.aread()
            return response

        return self._loop.run_until_complete(send())

    def settle(self, seconds: float = 0.05) -> None:
        """Let the sender's background tasks run for ``seconds``."""
        self._loop.run_until_complete(asyncio.sleep(seconds))
