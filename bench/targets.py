"""The benchmark's other servers: the ceiling, the hand-written alternative and a fake Graph API.

Run one per process, under the same uvicorn settings as ``tagserver serve`` (one worker, uvicorn's
default loop and HTTP parser, no access log, no server header, no proxy headers)::

    python bench/targets.py ceiling     --port 9001
    python bench/targets.py alternative --port 9002 --graph-url http://127.0.0.1:9003
    python bench/targets.py graph       --port 9003 --latency 0.08

* ``ceiling``: ``POST /e`` parses the JSON body and answers a small JSON reply; the most one
  worker does on this machine.
* ``alternative``: ``POST /e`` parses the body, builds one Conversions API event (SHA-256 of the
  e-mail, the ``_fbp`` cookie, IP and User-Agent) and awaits its POST to the Graph API before it
  answers, as a typical custom CAPI integration does (one shared httpx client, its default limits).
* ``graph``: a fake Graph API. ``POST /{version}/{pixel}/events`` answers after ``--latency``
  seconds (default 0.08) with ``{"events_received": N}``; ``GET /stats`` gives
  ``{"requests": R, "events": E, "by_prefix": {P: n}}`` counted since start, where P is
  the part of each event id before its first ``-`` (the harness's exact accounting run uses
  ``acct-``). It checks nothing else: the field rules
  are tests/fakes/graph.py's job, this one only has to be fast and count.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PIXEL_ID = "1234567890"
ACCESS_TOKEN = "EAAB-BENCH-TOKEN-123"


def ceiling_app() -> Starlette:
    async def collect(request: Request) -> Response:
        body = json.loads(await request.body())
        if not isinstance(body, dict):
            return JSONResponse({"error": "not an object"}, status_code=400)
        return JSONResponse({"ok": True, "event_id": body.get("event_id")})

    return Starlette(routes=[Route("/e", collect, methods=["POST"])])


def alternative_app(graph_url: str) -> Starlette:
    state: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=5.0) as client:
            state["client"] = client
            yield

    async def collect(request: Request) -> Response:
        body = json.loads(await request.body())
        if not isinstance(body, dict):
            return JSONResponse({"error": "not an object"}, status_code=400)
        user: dict[str, Any] = {
            "client_ip_address": request.client.host if request.client else None,
            "client_user_agent": request.headers.get("user-agent"),
            "fbp": request.cookies.get("_fbp"),
        }
        for key, value in (body.get("user_data") or {}).items():
            user[key] = hashlib.sha256(str(value).strip().lower().encode()).hexdigest()
        event = {
            "event_name": body.get("event_name"),
            "event_id": body.get("event_id"),
            "event_time": body.get("event_time"),
            "action_source": "website",
            "event_source_url": body.get("event_source_url"),
            "user_data": user,
            "custom_data": body.get("custom_data") or {},
        }
        url = f"{graph_url}/v25.0/{PIXEL_ID}/events"
        reply = await state["client"].post(
            url, json={"data": [event], "access_token": ACCESS_TOKEN}
        )
        return JSONResponse({"ok": reply.status_code == 200, "event_id": body.get("event_id")})

    return Starlette(routes=[Route("/e", collect, methods=["POST"])], lifespan=lifespan)


def graph_app(latency_s: float) -> Starlette:
    counts: dict[str, Any] = {"requests": 0, "events": 0, "by_prefix": {}}

    async def events(request: Request) -> Response:
        body = json.loads(await request.body())
        data = body.get("data") or []
        n = len(data)
        counts["requests"] += 1
        counts["events"] += n
        by_prefix = counts["by_prefix"]
        for event in data:
            prefix = str(event.get("event_id", "")).split("-", 1)[0]
            by_prefix[prefix] = by_prefix.get(prefix, 0) + 1
        await asyncio.sleep(latency_s)
        return JSONResponse({"events_received": n, "messages": [], "fbtrace_id": "bench"})

    async def stats(request: Request) -> Response:
        return JSONResponse(counts)

    return Starlette(routes=[
        Route("/{version}/{pixel}/events", events, methods=["POST"]),
        Route("/stats", stats, methods=["GET"]),
    ])


def run(app: Starlette, port: int) -> None:
    """Serve ``app`` on 127.0.0.1 with the uvicorn settings of ``tagserver serve``."""
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_config=None, access_log=False,
                proxy_headers=False, server_header=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("target", choices=["ceiling", "alternative", "graph"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--graph-url", default="http://127.0.0.1:9003")
    parser.add_argument("--latency", type=float, default=0.08, help="seconds, graph only")
    args = parser.parse_args()
    if args.target == "ceiling":
        run(ceiling_app(), args.port)
    elif args.target == "alternative":
        run(alternative_app(args.graph_url), args.port)
    else:
        run(graph_app(args.latency), args.port)


if __name__ == "__main__":
    main()
