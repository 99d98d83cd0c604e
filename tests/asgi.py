"""Requests to an ASGI app in-process, for routes that need no lifespan (the script, the demo
shop's pages): httpx's ASGI transport, one event loop per call."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx


def call_app(
    app: Any,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    content: bytes | str | None = None,
) -> httpx.Response:
    """One request to ``app`` on ``http://127.0.0.1``; the whole answer is read."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            response = await client.request(method, path, headers=headers, content=content)
            await response.aread()
            return response

    return asyncio.run(send())
