"""``tagserver demo`` in real Chromium: the shop flow from an ad click to a repeated purchase, the
events page pairing each Pixel call with its Conversions API payload, and the README's screenshot
of that page (written to docs/demo-events.png)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser

from tests.browser.harness import BrowserSession, PixelRecorder
from tests.e2e.server import REPO_ROOT, free_port

pytestmark = pytest.mark.browser

#: The README's picture; the suite rewrites it only when asked (TAGSERVER_UPDATE_DOCS=1), so that a
#: test run leaves the work tree clean.
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "demo-events.png"
FBCLID = "IwAR-demo_Click1d"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    """``tagserver demo`` running on a free port; yields its origin."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAGSERVER_", "META_"))}
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    output = (tmp_path / "demo.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tagserver", "demo", "--port", str(port)],
        cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, (tmp_path / "demo.log").read_text()
            try:
                if httpx.get(f"{origin}/demo/events.json").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the demo did not start"
            time.sleep(0.1)
        yield origin
    finally:
        process.terminate()
        process.wait(timeout=15)
        output.close()


def events_json(origin: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{origin}/demo/events.json")
    assert answer.status_code == 200
    result: list[dict[str, Any]] = answer.json()
    return result


def wait_for_pairs(origin: str, want: dict[str, int], timeout: float = 10) -> list[dict[str, Any]]:
    """Poll until, per event name, that many events have both their Pixel call and CAPI event."""
    deadline = time.monotonic() + timeout
    while True:
        pairs = events_json(origin)
        counts: dict[str, int] = {}
        for p in pairs:
            if p["status"] == "paired":
                for name in p["event_names"]:
                    counts[name] = counts.get(name, 0) + 1
        if all(counts.get(name, 0) >= n for name, n in want.items()):
            return pairs
        assert time.monotonic() < deadline, f"waiting for {want}; have {pairs}"
        time.sleep(0.1)


def test_demo_shop_flow_and_events_page(chromium: Browser, demo: str, tmp_path: Path) -> None:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    session = BrowserSession(context=context, pixel=PixelRecorder())  # no route: nothing leaves
    urls: list[str] = []
    context.on("request", lambda r: urls.append(r.url))
    page = session.new_page()
    try:
        page.goto(f"{demo}/demo/?fbclid={FBCLID}")
        page.wait_for_function("window.tagserver && window.tagserver.loaded")
        page.click("#add")
        page.click("#added a")
        page.wait_for_url("**/demo/checkout")
        page.click("#place")
        page.wait_for_url("**/demo/thanks?order=*")
        order = page.text_content("#order")
        assert order
        wait_for_pairs(demo, {"Purchase": 1})
        page.reload()  # the same order again: same event id
        pairs = wait_for_pairs(demo, {"PageView": 4, "ViewContent": 1, "AddToCart": 1,
                                      "InitiateCheckout": 1, "Purchase": 1})
        purchase = next(p for p in pairs if p["event_id"] == f"purchase-{order}")
        deadline = time.monotonic() + 10
        while len(purchase["capi"]) < 2 or len(purchase["browser"]) < 2:
            assert time.monotonic() < deadline, purchase
            time.sleep(0.1)
            purchase = next(p for p in events_json(demo) if p["event_id"] == f"purchase-{order}")
        assert purchase["status"] == "paired"
        for args in purchase["browser"]:
            assert args[0] == "trackSingle" and args[2] == "Purchase"
            assert args[4] == {"eventID": f"purchase-{order}"}
        capi = purchase["capi"][0]
        assert capi["custom_data"]["order_id"] == order
        assert capi["custom_data"]["value"] == 24.9 and capi["custom_data"]["currency"] == "EUR"
        assert capi["user_data"]["em"] == hashlib.sha256(b"jane.doe@example.com").hexdigest()
        assert capi["user_data"]["fbc"].endswith(f".{FBCLID}")
        assert capi["user_data"]["fbp"] == session.cookies()["_fbp"]["value"]
        browser_pairs = [p for p in events_json(demo) if p["browser"]]
        assert browser_pairs and all(p["status"] == "paired" for p in browser_pairs)

        page.goto(f"{demo}/demo/events")
        html = page.content()
        assert f"purchase-{order}" in html and "Meta counts it once" in html
        screenshot = (
            DOCS_SCREENSHOT if os.environ.get("TAGSERVER_UPDATE_DOCS") == "1"
            else tmp_path / "demo-events.png"
        )
        screenshot.parent.mkdir(exist_ok=True)
        page.set_viewport_size({"width": 1280, "height": 1700})
        page.screenshot(path=str(screenshot))  # the newest rows: the purchase and its repeat
        assert screenshot.stat().st_size > 10_000
        assert all(u.startswith(demo) or u.startswith("data:") for u in urls), urls
        assert session.console_errors == []
    finally:
        context.close()
