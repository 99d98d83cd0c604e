"""The browser client in real Chromium, over https, in both deployments: cookies as the browser
stores them, CORS as it enforces it, and the Pixel fired with the event id that reached CAPI."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, Request

from tests.browser.conftest import Deployment, start_deployment
from tests.browser.harness import EVIL_HOST, BrowserSession
from tests.conftest import StartServer
from tests.e2e.server import PIXEL_ID
from tests.fakes.graph import FakeGraphAPI

pytestmark = pytest.mark.browser

NINETY_DAYS_S = 90 * 24 * 3600
FBCLID = "IwAR2_Ab-c9"  # letters, digits, '_' and '-': copied byte for byte
BEACON_SPY = """
(function () {
  var send = navigator.sendBeacon.bind(navigator);
  navigator.sendBeacon = function (url, body) {
    var seen = JSON.parse(sessionStorage.getItem('beacons') || '[]');
    seen.push({url: url, body: String(body)});
    sessionStorage.setItem('beacons', JSON.stringify(seen));
    return send(url, body);
  };
})();
"""
FBC_RE = re.compile(r"^fb\.1\.(\d{13})\.(.+)$")
FBP_RE = re.compile(r"^fb\.1\.(\d{13})\.(\d+)$")


def capi_events(fake: FakeGraphAPI, name: str | None = None) -> list[dict[str, Any]]:
    return [e for e in fake.accepted_events() if name is None or e["event_name"] == name]


def wait_for_capi(
    session: BrowserSession, page: Page, fake: FakeGraphAPI, count: int, name: str | None = None
) -> list[dict[str, Any]]:
    session.pump_until(
        page,
        lambda: len(capi_events(fake, name)) >= count,
        what=lambda: f"{count} {name or ''} CAPI event(s); got {fake.describe()}",
    )
    return capi_events(fake, name)


def test_fbclid_landing_sets_first_party_cookies(
    deployment: Deployment, session: BrowserSession, fake_graph: FakeGraphAPI
) -> None:
    page = session.new_page()
    before_ms = int(time.time() * 1000)
    page.goto(deployment.url(f"/landing?utm_source=fb&fbclid={FBCLID}"))
    wait_for_capi(session, page, fake_graph, 1, "PageView")
    after_ms = int(time.time() * 1000)
    now = time.time()

    jar = session.cookies()
    fbc, fbp = jar["_fbc"], jar["_fbp"]
    match = FBC_RE.match(fbc["value"])
    assert match, fbc["value"]
    assert match.group(2) == FBCLID  # the click id exactly as it was in the URL
    assert before_ms <= int(match.group(1)) <= after_ms  # creation time in milliseconds
    fbp_match = FBP_RE.match(fbp["value"])
    assert fbp_match and before_ms <= int(fbp_match.group(1)) <= after_ms
    for cookie in (fbc, fbp):
        assert cookie["domain"] == ".shop.test"  # eTLD+1 of www.shop.test, shared with t.
        assert cookie["path"] == "/"
        assert cookie["secure"] is True
        assert cookie["sameSite"] == "Lax"
        assert cookie["httpOnly"] is False  # the Pixel's script must read them
        assert abs(cookie["expires"] - (now + NINETY_DAYS_S)) < 120
    visitor = jar["__Secure-tsid"]
    assert visitor["httpOnly"] is True and visitor["secure"] is True
    # the page's script sees them as the Pixel would
    visible = page.evaluate("document.cookie")
    assert f"_fbp={fbp['value']}" in visible and f"_fbc={fbc['value']}" in visible

    for path in ("/product", "/thanks?order=A-1", "/landing"):
        page.goto(deployment.url(path))
    events = wait_for_capi(session, page, fake_graph, 5)
    jar = session.cookies()
    assert jar["_fbp"]["value"] == fbp["value"]  # unchanged across later pages
    assert jar["_fbc"]["value"] == fbc["value"]  # no new click id: kept
    assert {e["user_data"]["fbp"] for e in events} == {fbp["value"]}
    assert {e["user_data"]["fbc"] for e in events} == {fbc["value"]}
    assert session.console_errors == []


def test_purchase_fires_pixel_with_the_capi_event_id(
    deployment: Deployment, session: BrowserSession, fake_graph: FakeGraphAPI
) -> None:
    page = session.new_page()
    page.goto(deployment.url("/thanks?order=A-1001"))
    wait_for_capi(session, page, fake_graph, 1, "Purchase")
    session.pump_until(page, lambda: len(session.pixel.tracked()) >= 2, what="two Pixel calls")

    (purchase,) = capi_events(fake_graph, "Purchase")
    assert purchase["event_id"] == "purchase-A-1001"
    assert purchase["custom_data"]["order_id"] == "A-1001"
    assert "em" in purchase["user_data"]  # advanced matching reached the server (hashed there)
    (page_view,) = capi_events(fake_graph, "PageView")
    tracked = session.pixel.tracked()
    assert ("Purchase", "purchase-A-1001") in tracked
    assert ("PageView", page_view["event_id"]) in tracked  # a minted id, returned and fired
    (fbq_purchase,) = [a for a in session.pixel.fbq_args("trackSingle") if a[2] == "Purchase"]
    assert fbq_purchase[1] == PIXEL_ID
    assert fbq_purchase[3] == {"value": 99.99, "currency": "USD", "order_id": "A-1001",
                               "content_ids": ["04639"]}
    assert "em" not in str(session.pixel.fbq_args())  # contact data never goes to the Pixel
    assert session.pixel.fbq_args("init") == [["init", PIXEL_ID]]
    assert len(session.pixel.loads) == 1

    page.reload()  # a second purchase with the same order id keeps its id
    wait_for_capi(session, page, fake_graph, 4)  # two page views, two purchases
    session.pump_until(page, lambda: len(session.pixel.tracked()) >= 4, what="four Pixel calls")
    assert [e["event_id"] for e in capi_events(fake_graph, "Purchase")] == ["purchase-A-1001"] * 2
    assert [t for t in session.pixel.tracked() if t[0] == "Purchase"] == [
        ("Purchase", "purchase-A-1001")
    ] * 2
    # every browser event and every server event pair up by (name, id)
    assert sorted(session.pixel.tracked()) == sorted(
        (e["event_name"], e["event_id"]) for e in capi_events(fake_graph)
    )
    assert session.console_errors == []


def test_image_pixel_command_loads_the_image_with_the_event_id(
    start_server: StartServer,
    tls_files: tuple[Path, Path],
    tmp_path: Path,
    session: BrowserSession,
    fake_graph: FakeGraphAPI,
) -> None:
    tags = tmp_path / "tags"
    tags.mkdir()
    (tags / "pixels.json").write_text(json.dumps({"tags": [
        {"name": "shop", "type": "meta", "pixel_id": "11111", "access_token": {"env": "TOKEN"}},
        {"name": "agency", "type": "meta", "pixel_id": "22222", "access_token": {"env": "TOKEN"},
         "events": ["Purchase"], "browser_mode": "img"},
    ]}))
    shop, _ = start_deployment("subdomain", start_server=start_server, tls=tls_files,
                               tags_dir=tags, env={"TOKEN": "EAAB-TOKEN-1234567890"})
    try:
        page = session.new_page()
        page.goto(shop.url("/thanks?order=B-7"))
        wait_for_capi(session, page, fake_graph, 3)  # PageView + Purchase for 11111, Purchase 22222
        session.pump_until(page, lambda: len(session.pixel.images) >= 1, what="the image pixel")
    finally:
        session.context.close()  # its keep-alive connections first: the shop then stops at once
        shop.stop()
    (image,) = session.pixel.images
    query = parse_qs(urlsplit(image).query)
    assert (query["id"], query["ev"], query["eid"]) == (["22222"], ["Purchase"], ["purchase-B-7"])
    assert session.pixel.fbq_args("init") == [["init", "11111"]]  # the image pixel needs no fbq
    purchases = capi_events(fake_graph, "Purchase")
    assert [e["event_id"] for e in purchases] == ["purchase-B-7"] * 2
    assert session.console_errors == []


def test_limited_data_use_runs_before_the_pixel_is_initialised(
    start_server: StartServer,
    tls_files: tuple[Path, Path],
    tmp_path: Path,
    session: BrowserSession,
    fake_graph: FakeGraphAPI,
) -> None:
    """Meta "Data Processing Options for US Users": ``fbq('dataProcessingOptions', ['LDU'],
    country, state)`` before ``init``; the client inits a pixel on its first ``trackSingle*``
    only (a ``dataProcessingOptions`` command names no pixel)."""
    tags = tmp_path / "tags"
    tags.mkdir()
    (tags / "ldu.json").write_text(json.dumps({"tags": [
        {"name": "shop", "type": "meta", "pixel_id": "11111", "access_token": {"env": "TOKEN"},
         "limited_data_use": {"mode": "always", "country": 1, "state": 1000}},
    ]}))
    shop, _ = start_deployment("subdomain", start_server=start_server, tls=tls_files,
                               tags_dir=tags, env={"TOKEN": "EAAB-TOKEN-1234567890"})
    try:
        page = session.new_page()
        page.goto(shop.url("/thanks?order=L-1"))
        wait_for_capi(session, page, fake_graph, 2)  # PageView + Purchase
        session.pump_until(page, lambda: len(session.pixel.tracked()) >= 2,
                           what="two trackSingle calls")
    finally:
        session.context.close()
        shop.stop()
    calls = [args[0] for args in session.pixel.fbq_args()]
    assert calls[:3] == ["dataProcessingOptions", "init", "trackSingle"]
    assert calls.count("init") == 1
    assert session.pixel.fbq_args("dataProcessingOptions")[0] == [
        "dataProcessingOptions", ["LDU"], 1, 1000]
    for event in capi_events(fake_graph):
        assert event["data_processing_options"] == ["LDU"]
        assert event["data_processing_options_country"] == 1
        assert event["data_processing_options_state"] == 1000
    assert session.console_errors == []


def test_first_hit_goes_alone_so_concurrent_events_share_one_fbp(
    deployment: Deployment, session: BrowserSession, fake_graph: FakeGraphAPI
) -> None:
    page = session.new_page()
    page.goto(deployment.url("/burst"))
    events = wait_for_capi(session, page, fake_graph, 4)
    session.pump_until(page, lambda: len(session.pixel.tracked()) >= 4, what="four Pixel calls")
    fbp = session.cookies()["_fbp"]["value"]
    assert {e["user_data"]["fbp"] for e in events} == {fbp}
    assert sorted(e["event_name"] for e in events) == [
        "AddToCart", "PageView", "ViewContent", "WishlistShared"]
    assert sorted(session.pixel.tracked()) == sorted(
        (e["event_name"], e["event_id"]) for e in events
    )
    custom = [a for a in session.pixel.fbq_args() if a[0] == "trackSingleCustom"]
    assert custom and custom[0][2] == "WishlistShared"
    assert len(session.pixel.loads) == 1  # the library is loaded once ...
    assert session.pixel.fbq_args("init") == [["init", PIXEL_ID]]  # ... and the pixel inited once
    assert session.console_errors == []


def test_page_on_another_origin_gets_no_cors_access_and_no_cookies(
    subdomain: Deployment, session: BrowserSession, fake_graph: FakeGraphAPI
) -> None:
    page = session.new_page()
    failed: list[Request] = []
    page.on("requestfailed", lambda r: failed.append(r) if r.url.endswith("/e") else None)
    page.goto(subdomain.url(f"/landing?fbclid={FBCLID}", host=EVIL_HOST))
    session.pump_until(page, lambda: len(failed) >= 1, what="the page view to fail")
    assert failed[0].failure == "net::ERR_FAILED" and failed[0].response() is None
    # what the server answered that request (the browser keeps it from the page and from us)
    def hits() -> list[int]:  # the access log line is written once the answer has gone
        log = [json.loads(line) for line in subdomain.server.output().splitlines()[1:]]
        return [e["status"] for e in log
                if e.get("logger") == "tagserver.access" and e["path"] == "/e"]

    session.pump_until(page, lambda: len(hits()) >= 1, what="the access log line of the hit")
    assert hits() == [403]
    replay = subdomain.server.post("/e", content=failed[0].post_data, headers={
        **failed[0].headers, "Host": f"t.shop.test:{subdomain.server.port}"})
    assert replay.status_code == 403
    assert "access-control-allow-origin" not in replay.headers
    assert "set-cookie" not in replay.headers
    reading = page.evaluate(
        """url => fetch(url, {method: 'POST', credentials: 'include', body: '{}'})
                   .then(() => 'readable', e => e.name)""",
        subdomain.collect_url,
    )
    assert reading == "TypeError"  # the browser withholds the answer
    assert session.context.cookies() == []
    assert session.pixel.loads == [] and session.pixel.calls == []
    assert fake_graph.requests == []  # refused before anything was queued
    # the only console errors are the browser's own CORS reports
    assert session.console_errors
    assert all("CORS policy" in e or "net::ERR_FAILED" in e for e in session.console_errors)


def test_event_fired_while_leaving_goes_by_send_beacon(
    deployment: Deployment, session: BrowserSession, fake_graph: FakeGraphAPI
) -> None:
    # note each sendBeacon call in sessionStorage, which outlives the page within the tab
    session.context.add_init_script(BEACON_SPY)
    page = session.new_page()
    fetched: list[Request] = []
    session.context.on("request", lambda r: fetched.append(r) if r.url.endswith("/e") else None)
    page.goto(deployment.url("/leave"))
    page.wait_for_function("window.tagserver && window.tagserver.loaded")
    page.click("#away")
    page.wait_for_url("**/product")
    (lead,) = wait_for_capi(session, page, fake_graph, 1, "Lead")
    assert lead["event_id"] == "lead-on-unload"
    assert lead["event_source_url"].endswith("/leave")
    beacons = page.evaluate("JSON.parse(sessionStorage.getItem('beacons') || '[]')")
    assert [b["url"] for b in beacons] == [deployment.collect_url]
    assert json.loads(beacons[0]["body"])["event_id"] == "lead-on-unload"
    # the only fetch was /product's page view: the Lead went by beacon alone
    assert [json.loads(r.post_data or "{}")["event_name"] for r in fetched] == ["PageView"]
    (view,) = wait_for_capi(session, page, fake_graph, 1, "PageView")
    assert view["event_source_url"].endswith("/product")
    assert session.console_errors == []


def test_consent_denied_sets_no_meta_cookie_loads_no_pixel_sends_nothing(
    deployment: Deployment, session: BrowserSession, fake_graph: FakeGraphAPI
) -> None:
    page = session.new_page()
    answers: list[dict[str, Any]] = []
    page.on("response", lambda r: answers.append(r.json()) if r.url.endswith("/e") else None)
    page.goto(deployment.url(f"/denied?fbclid={FBCLID}"))
    session.pump_until(page, lambda: len(answers) >= 2, what="answers to the two hits")
    assert [a["commands"] for a in answers] == [[], []]
    jar = session.cookies()
    assert not {"_fbp", "_fbc"} & set(jar)
    assert "fbp" not in page.evaluate("document.cookie")
    assert session.pixel.loads == [] and session.pixel.calls == []
    # a later page with consent: its event arrives, the refused ones never did
    page.goto(deployment.url("/marker"))
    # the refused hits were answered before this one was sent: anything they queued came first
    wait_for_capi(session, page, fake_graph, 1)
    assert [e["event_id"] for e in capi_events(fake_graph)] == ["marker"]
    assert session.console_errors == []


def test_history_changes_send_page_views(
    subdomain: Deployment, session: BrowserSession, fake_graph: FakeGraphAPI
) -> None:
    page = session.new_page()
    page.goto(subdomain.url("/spa"))
    page.wait_for_function("window.tagserver && window.tagserver.loaded")
    page.evaluate("go('/spa/step-2')")
    page.evaluate("go('/spa/step-2#details')")  # same page: no new view
    page.evaluate("go('/spa/step-3')")
    page.go_back()
    views = wait_for_capi(session, page, fake_graph, 4, "PageView")
    time.sleep(0.2)
    views = capi_events(fake_graph, "PageView")
    urls = [urlsplit(v["event_source_url"]) for v in views]
    assert sorted(u.path + (f"#{u.fragment}" if u.fragment else "") for u in urls) == [
        "/spa", "/spa/step-2", "/spa/step-2#details", "/spa/step-3"]
    step3 = next(v for v in views if v["event_source_url"].endswith("/spa/step-3"))
    assert step3["referrer_url"] == subdomain.url("/spa/step-2")
    assert session.console_errors == []
