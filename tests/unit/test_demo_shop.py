"""tagserver.demo_shop: pairing Pixel calls with CAPI events by event id, the events page, and the
shop's routes (in-process; the browser suite drives the whole shop in Chromium)."""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette

from tagserver.delivery.recorder import RecordingTransport
from tagserver.demo_shop import mount_demo_shop, pair_events, render_events_page
from tagserver.snippet import QUEUE_STUB
from tests.asgi import call_app

URL = "https://graph.facebook.com/v25.0/123456/events"


def fbq(name: str, event_id: str, method: str = "trackSingle") -> list[Any]:
    return [method, "123456", name, {"value": 1}, {"eventID": event_id}]


def record(*events: dict[str, Any], at: float, url: str = URL) -> dict[str, Any]:
    return {"time": at, "method": "POST", "url": url,
            "json": {"data": list(events), "access_token": "***"}}


def test_pairs_by_event_id_newest_first() -> None:
    calls = [
        {"time": 1.0, "args": ["init", "123456"], "page": "p"},
        {"time": 2.0, "args": fbq("PageView", "a"), "page": "p"},
        {"time": 3.0, "args": fbq("Purchase", "b"), "page": "p"},
        {"time": 4.0, "args": fbq("Lead", "c", "trackSingleCustom"), "page": "p"},
    ]
    records = [
        record({"event_name": "PageView", "event_id": "a"}, at=2.1),
        record({"event_name": "Lead", "event_id": "b"}, at=3.1),  # the name differs
        record({"event_name": "Purchase", "event_id": "s"}, at=0.5),
        record({"event_name": "X", "event_id": "z"}, at=5.0, url="https://ga.example/g/collect"),
    ]
    pairs = pair_events(calls, records)
    assert [(p.event_id, p.status) for p in pairs] == [
        ("c", "browser only"), ("b", "mismatch"), ("a", "paired"), ("s", "server only")]
    paired = pairs[2]
    assert paired.browser == [fbq("PageView", "a")]
    assert paired.capi == [{"event_name": "PageView", "event_id": "a"}]
    assert paired.capi_url == URL
    assert paired.as_json()["event_names"] == ["PageView"]


def test_malformed_calls_and_records_are_skipped() -> None:
    calls = [{"time": 1.0, "args": "nope"}, {"time": 1.0, "args": ["trackSingle", "1", "X", {}, 7]}]
    records = [{"time": 1.0, "url": URL, "json": "text"}, record({"event_id": 5}, at=1.0)]
    assert pair_events(calls, records) == []


def test_events_page_escapes_what_it_shows() -> None:
    pairs = pair_events(
        [{"time": 1.0, "args": fbq("<b>Evil</b>", "<script>x</script>"), "page": "p"}], []
    )
    html = render_events_page(pairs)
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "<b>Evil</b>" not in html
    assert "No events yet" in render_events_page([])


def demo_app() -> tuple[Starlette, RecordingTransport]:
    app = Starlette()
    recorder = RecordingTransport()
    mount_demo_shop(app, recorder=recorder, script_path="/t.js")
    return app, recorder


def test_shop_pages_install_the_client_with_the_sandbox_pixel() -> None:
    app, _ = demo_app()
    for path in ("/demo/", "/demo/checkout", "/demo/thanks?order=1"):
        page = call_app(app, "GET", path)
        assert page.status_code == 200, path
        assert f"<script>{QUEUE_STUB}</script>" in page.text
        assert '<script async src="/t.js" data-pixel-src="/demo/pixel.js"></script>' in page.text
        assert page.headers["cache-control"] == "no-store"
    assert call_app(app, "GET", "/demo/nope").status_code == 404
    redirect = call_app(app, "GET", "/demo")
    assert redirect.status_code == 307 and redirect.headers["location"] == "/demo/"
    assert call_app(app, "GET", "/demo/pixel.js").headers["content-type"].startswith(
        "text/javascript")
    assert call_app(app, "GET", "/demo/shop.css").headers["content-type"].startswith("text/css")


def test_sandbox_pixel_calls_reach_the_events_page() -> None:
    app, recorder = demo_app()
    for bad in ("not json", json.dumps({"page": "x"}), json.dumps({"args": [1] * 10_000})):
        answer = call_app(app, "POST", "/demo/pixel", content=bad)
        assert answer.status_code == 400
        assert answer.json()["ok"] is False
    sent = call_app(app, "POST", "/demo/pixel",
                    content=json.dumps({"args": fbq("Purchase", "purchase-7"), "page": "p"}))
    assert sent.status_code == 204
    (pair,) = call_app(app, "GET", "/demo/events.json").json()
    assert pair["event_id"] == "purchase-7" and pair["status"] == "browser only"
    page = call_app(app, "GET", "/demo/events")
    assert "purchase-7" in page.text and "fbq(&quot;trackSingle&quot;" in page.text
    assert recorder.records() == []
