"""The benchmark's other servers: the ceiling, the hand-written alternative, the floor and a fake
Graph API.

Run one per process, under the same uvicorn settings as ``tagserver serve`` (one worker, uvicorn's
default loop and HTTP parser, no access log, no server header, no proxy headers)::

    python bench/targets.py ceiling     --port 9001
    python bench/targets.py alternative --port 9002 --graph-url http://127.0.0.1:9003
    python bench/targets.py floor       --port 9004
    python bench/targets.py graph       --port 9003 --latency 0.08

* ``ceiling``: ``POST /e`` parses the JSON body and answers a small JSON reply; the most one
  worker does on this machine.
* ``alternative``: ``POST /e`` parses the body, builds one Conversions API event (SHA-256 of the
  e-mail, the ``_fbp`` cookie, IP and User-Agent) and awaits its POST to the Graph API before it
  answers, as a typical custom CAPI integration does (one shared httpx client, its default limits).
* ``floor``: the ceiling plus only the per-hit work no implementation of tagserver's contract
  can skip, written flat in the endpoint with the fastest tools at hand (orjson, one HMAC):
  read the ``_fbp`` and visitor-id cookies, mint and sign a visitor id when there is none, build
  the Pixel command and the Conversions API event (SHA-256 of the contact fields, the phone's
  digits), serialise the event and keep it in memory (no disk, no delivery), and answer with the
  commands, the CORS headers and both cookies. It checks nothing tagserver checks (Meta's field
  rules, consent, limits, cookie scope, origins beyond one) and writes no log or metric: it is a
  measuring stick, not a competitor. What tagserver costs beyond it is the price of its checks,
  its generality (the container) and its durability.
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
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
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


def floor_app() -> Starlette:
    key = hashlib.sha1(b"tagserver.visitor" + b"signer" + b"bench-secret-key").digest()
    origin_ok = "https://www.shop.example"
    tail = "; Domain=shop.example; Max-Age=7776000; Path=/; SameSite=lax; Secure"
    kept: list[bytes] = []
    contact = ("em", "fn", "ln", "ct", "zp", "country", "external_id")

    def sha256(text: str) -> str:
        return hashlib.sha256(text.strip().lower().encode()).hexdigest()

    async def collect(request: Request) -> Response:
        body = orjson.loads(await request.body())
        if not isinstance(body, dict):
            return JSONResponse({"error": "not an object"}, status_code=400)
        origin = request.headers.get("origin")
        if origin != origin_ok:
            return JSONResponse({"error": "origin not allowed"}, status_code=403)
        cookies = request.cookies
        now = time.time()
        fbp = cookies.get("_fbp") or f"fb.1.{int(now * 1000)}.{secrets.randbelow(2**31)}"
        visitor = cookies.get("__Secure-tsid")
        if visitor is None:
            raw = secrets.token_hex(16)
            mac = hmac.new(key, raw.encode(), "sha1").digest()
            visitor = f"{raw}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
        name = body.get("event_name")
        event_id = body.get("event_id")
        custom = dict(body.get("custom_data") or {})
        if "value" in custom:
            custom["value"] = float(custom["value"])
        if "currency" in custom:
            custom["currency"] = str(custom["currency"]).upper()
        user: dict[str, Any] = {
            "client_ip_address": request.client.host if request.client else None,
            "client_user_agent": request.headers.get("user-agent"),
            "fbp": fbp,
            "external_id": [sha256(visitor.partition(".")[0])],
        }
        given = body.get("user_data") or {}
        for field in contact:
            if field in given:
                user[field] = [sha256(str(given[field]))]
        if "ph" in given:
            user["ph"] = [sha256("".join(c for c in str(given["ph"]) if c.isdigit()))]
        event: dict[str, Any] = {
            "event_name": name, "event_time": body.get("event_time") or int(now),
            "event_id": event_id, "action_source": "website",
            "event_source_url": body.get("event_source_url"), "user_data": user,
        }
        if custom:
            event["custom_data"] = custom
        kept.append(orjson.dumps(event))
        if len(kept) >= 1000:
            kept.clear()
        command = {"type": "fbq",
                   "args": ["trackSingle", PIXEL_ID, name, custom, {"eventID": event_id}]}
        response = Response(
            orjson.dumps({"event_id": event_id, "commands": [command]}),
            media_type="application/json",
            headers={"cache-control": "no-store", "access-control-allow-origin": origin,
                     "access-control-allow-credentials": "true", "vary": "Origin"},
        )
        response.raw_headers.append((b"set-cookie", f"_fbp={fbp}{tail}".encode()))
        response.raw_headers.append(
            (b"set-cookie", f"__Secure-tsid={visitor}{tail}; HttpOnly".encode())
        )
        return response

    return Starlette(routes=[Route("/e", collect, methods=["POST"])])


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
    parser.add_argument("target", choices=["ceiling", "alternative", "floor", "graph"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--graph-url", default="http://127.0.0.1:9003")
    parser.add_argument("--latency", type=float, default=0.08, help="seconds, graph only")
    args = parser.parse_args()
    if args.target == "ceiling":
        run(ceiling_app(), args.port)
    elif args.target == "alternative":
        run(alternative_app(args.graph_url), args.port)
    elif args.target == "floor":
        run(floor_app(), args.port)
    else:
        run(graph_app(args.latency), args.port)


if __name__ == "__main__":
    main()
