"""``tagserver demo``: the one-command tour on a fresh machine, no Meta account needed.

Serves the example container on 127.0.0.1 in dry-run mode (outbound requests are recorded, not
sent), sends one sample Purchase hit to itself, and prints the browser response next to the exact
Conversions API request it would have sent (token masked). It also serves a small shop at
``/demo/`` (see :mod:`tagserver.demo_shop`) whose ``/demo/events`` page shows, per event id, the
browser's Pixel call next to the Conversions API payload.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tagserver.app import create_app
from tagserver.container.loader import load_container
from tagserver.delivery.recorder import RecordingTransport
from tagserver.demo_shop import mount_demo_shop
from tagserver.exceptions import ConfigError
from tagserver.logs import configure_logging
from tagserver.settings import load_settings

DEMO_PIXEL_ID = "1234567890123456"
DEMO_TOKEN = "demo-token-not-sent-anywhere"

SAMPLE_HIT: dict[str, Any] = {
    "event_name": "Purchase",
    "event_id": "purchase-order-1001",
    "event_source_url": "https://www.shop.example/thanks?order=1001&fbclid=IwAR-demo_Click1d",
    "custom_data": {
        "value": 59.9,
        "currency": "EUR",
        "content_ids": ["04639", "4638"],
        "content_type": "product",
        "order_id": "1001",
    },
    "user_data": {
        "em": " Jane.Doe@Example.COM ",
        "ph": "+44 7700 900123",
        "fn": "Jane",
        "country": "GB",
    },
}


def example_tags_dir() -> Path:
    """``./tags`` when it holds container files, else the example shipped in the package."""
    local = Path("tags")
    if local.is_dir() and any(local.glob("*.json")):
        return local
    return Path(str(resources.files("tagserver.examples")))


def run_demo(*, host: str, port: int, once: bool) -> int:
    """Run the demo until Ctrl-C (or right after the sample hit with ``once``); exit status."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # the tour shows up at once, even in a file
    environ = dict(os.environ)
    environ.setdefault("META_PIXEL_ID", DEMO_PIXEL_ID)
    environ.setdefault("META_ACCESS_TOKEN", DEMO_TOKEN)
    os.environ.update({k: environ[k] for k in ("META_PIXEL_ID", "META_ACCESS_TOKEN")})
    origin = f"http://{host}:{port}"
    environ.update(
        {
            "TAGSERVER_DRY_RUN": "1",
            "TAGSERVER_SITE_DOMAINS": environ.get("TAGSERVER_SITE_DOMAINS", f"{host},localhost"),
            "TAGSERVER_ALLOWED_ORIGINS": environ.get(
                "TAGSERVER_ALLOWED_ORIGINS", f"{origin},http://localhost:{port}"
            ),
            "TAGSERVER_FLUSH_INTERVAL": "0.2",
            "TAGSERVER_OUTBOX": "memory",  # the tour keeps nothing on disk
            # a recording sandbox: a headless browser touring it is no crawler to keep away
            "TAGSERVER_BLOCK_BOTS": environ.get("TAGSERVER_BLOCK_BOTS", "0"),
            "TAGSERVER_LOG_LEVEL": environ.get("TAGSERVER_LOG_LEVEL", "warning"),
        }
    )
    try:
        settings = load_settings(environ, tags_dir=example_tags_dir())
        container = load_container(settings.tags_dir, environ=environ)
    except ConfigError as exc:
        print(f"tagserver demo: {exc}", file=sys.stderr)
        return 1
    configure_logging(settings.log_level)
    app = create_app(settings, container=container)
    recorder = app.state.tagserver.recorder
    assert isinstance(recorder, RecordingTransport)
    mount_demo_shop(app, recorder=recorder, script_path=settings.script_path)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, server_header=False
        )
    )
    return asyncio.run(
        _tour(server, recorder, origin=origin, once=once, tags_dir=settings.tags_dir)
    )


async def _tour(
    server: uvicorn.Server, recorder: RecordingTransport, *, origin: str, once: bool, tags_dir: Path
) -> int:
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            return 1
        await asyncio.sleep(0.05)
    print(
        f"tagserver demo: serving {tags_dir} on {origin} (dry run: nothing leaves this machine)\n"
    )
    async with httpx.AsyncClient(base_url=origin) as client:
        reply = await client.post(
            "/e",
            json=SAMPLE_HIT,
            headers={
                "Origin": origin,
                "User-Agent": "Mozilla/5.0 (tagserver demo)",
                "X-Forwarded-For": "203.0.113.7",
            },
        )
    for _ in range(50):
        if recorder.records():
            break
        await asyncio.sleep(0.1)
    print("1. The page sent one hit:  POST /e")
    print(_indent(json.dumps(SAMPLE_HIT, indent=2, ensure_ascii=False)))
    print(f"\n2. The browser got {reply.status_code} with the Pixel commands to fire:")
    print(_indent(json.dumps(reply.json(), indent=2, ensure_ascii=False)))
    print("   and first-party cookies:")
    for cookie in reply.headers.get_list("set-cookie"):
        print(f"     Set-Cookie: {cookie}")
    print("\n3. The server sent (recorded, not sent) this Conversions API request:")
    for record in recorder.records():
        print(f"   {record['method']} {record['url']}")
        print(_indent(json.dumps(record["json"], indent=2, ensure_ascii=False)))
    print("\nBoth sides carry one event_id, so Meta counts the purchase once.")
    if once:
        server.should_exit = True
    else:
        print(f"\nStill serving on {origin}: POST {origin}/e, GET {origin}/t.js.")
        print(f"Open the demo shop at {origin}/demo/ and watch {origin}/demo/events. Ctrl-C stops.")
    await serving
    return 0


def _indent(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())
