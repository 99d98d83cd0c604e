"""End-to-end flows of ``POST /e`` beyond the field cases: exact CAPI bodies, several pixels,
consent, graceful stop and the demo command."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import StartServer
from tests.e2e.cookies import parse_set_cookie
from tests.e2e.server import ACCESS_TOKEN, PIXEL_ID, REPO_ROOT, free_port
from tests.fakes.graph import FakeGraphAPI

ORIGIN = "https://www.shop.example"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130 Safari/537.36"
HEADERS = {"Origin": ORIGIN, "User-Agent": UA, "Content-Type": "application/json"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def cookies_of(response: object) -> dict[str, dict[str, object]]:
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    parsed = [parse_set_cookie(h) for h in headers]
    return {c["name"]: c for c in parsed}


def test_exact_capi_body_and_cookies(start_server: StartServer, fake_graph: FakeGraphAPI) -> None:
    server = start_server()
    event_time = int(time.time()) - 30
    hit = {
        "event_name": "Purchase",
        "event_id": "000001",
        "event_time": event_time,
        "event_source_url": "https://www.shop.example/thanks?o=1&fbclid=IwAR_Z-9",
        "referrer_url": "https://www.shop.example/cart",
        "custom_data": {"value": "12.50", "currency": "eur", "content_ids": ["04639"],
                        "order_id": "A-1", "shipping": "express"},
        "user_data": {"em": " Jane@Example.com", "ph": "+1 (650) 555-1212", "fn": "Jane",
                      "external_id": "cust-42"},
        "test_event_code": "TEST-FROM-BROWSER",
    }
    cookie = "_fbp=fb.1.1700000000000.123456789"
    response = server.post("/e", json=hit, headers={
        **HEADERS, "Cookie": cookie, "X-Forwarded-For": "198.51.100.23"})
    assert response.status_code == 200
    body = response.json()
    assert body["event_id"] == "000001"
    fbc_cookie = cookies_of(response)["_fbc"]
    assert str(fbc_cookie["value"]).endswith(".IwAR_Z-9")
    expected_custom = {"value": 12.5, "currency": "EUR", "content_ids": ["04639"],
                       "order_id": "A-1", "shipping": "express"}
    assert body["commands"] == [{"type": "fbq", "args": [
        "trackSingle", PIXEL_ID, "Purchase", expected_custom, {"eventID": "000001"}]}]

    (event,) = fake_graph.wait_for_events(1)
    assert event == {
        "event_name": "Purchase",
        "event_time": event_time,
        "event_id": "000001",
        "action_source": "website",
        "event_source_url": "https://www.shop.example/thanks?o=1&fbclid=IwAR_Z-9",
        "referrer_url": "https://www.shop.example/cart",
        "user_data": {
            "client_ip_address": "198.51.100.23",
            "client_user_agent": UA,
            "fbp": "fb.1.1700000000000.123456789",
            "fbc": fbc_cookie["value"],
            "em": sha("jane@example.com"),
            "ph": sha("16505551212"),
            "fn": sha("jane"),
            "external_id": sha("cust-42"),
        },
        "custom_data": expected_custom,
    }
    (request,) = fake_graph.requests
    assert request.path == f"/v25.0/{PIXEL_ID}/events"
    assert request.body["access_token"] == ACCESS_TOKEN
    assert "test_event_code" not in request.body  # a browser never sets it
    assert not request.token_in_url


def test_two_pixels_each_get_a_command_and_a_request(
    start_server: StartServer, fake_graph: FakeGraphAPI, tmp_path: Path
) -> None:
    tags = tmp_path / "tags"
    tags.mkdir()
    config = {"tags": [
        {"name": "shop", "type": "meta", "pixel_id": "11111", "access_token": {"env": "TOKEN_A"}},
        {"name": "agency", "type": "meta", "pixel_id": "22222", "access_token": {"env": "TOKEN_B"},
         "events": ["purchase"], "browser_mode": "img", "api_version": "v26.0",
         "test_event_code": "TEST123"},
    ]}
    (tags / "pixels.json").write_text(json.dumps(config))
    server = start_server(tags_dir=tags, env={"TOKEN_A": "EAAB-A-1234567890",
                                              "TOKEN_B": "EAAB-B-1234567890"})
    response = server.post("/e", headers=HEADERS, json={
        "event_name": "purchase", "event_id": "p-1",
        "event_source_url": "https://www.shop.example/thanks",
        "custom_data": {"value": 5, "currency": "USD"}})
    commands = response.json()["commands"]
    assert commands[0]["args"][:3] == ["trackSingle", "11111", "Purchase"]
    assert commands[1]["type"] == "img"
    assert commands[1]["src"].startswith("https://www.facebook.com/tr?id=22222&ev=Purchase&eid=p-1")
    fake_graph.wait_for_events(2)
    by_path = {r.path: r for r in fake_graph.requests}
    assert set(by_path) == {"/v25.0/11111/events", "/v26.0/22222/events"}
    assert by_path["/v26.0/22222/events"].body["test_event_code"] == "TEST123"
    assert by_path["/v25.0/11111/events"].body["access_token"] == "EAAB-A-1234567890"
    # a page view fires only the first pixel
    server.post("/e", headers=HEADERS, json={
        "event_name": "PageView", "event_source_url": "https://www.shop.example/"})
    fake_graph.wait_for_events(3)
    time.sleep(0.3)
    assert [r.path for r in fake_graph.requests].count("/v26.0/22222/events") == 1


def test_ad_storage_denied_sets_no_meta_cookie_and_sends_nothing(
    tag_server: object, fake_graph: FakeGraphAPI
) -> None:
    server = tag_server
    response = server.post("/e", headers=HEADERS, json={  # type: ignore[attr-defined]
        "event_name": "PageView", "event_id": "denied-1",
        "event_source_url": "https://www.shop.example/?fbclid=IwAR1",
        "consent": {"ad_storage": "denied"}})
    assert response.status_code == 200
    assert response.json()["commands"] == []
    assert not {"_fbp", "_fbc"} & set(cookies_of(response))
    allowed = server.post("/e", headers=HEADERS, json={  # type: ignore[attr-defined]
        "event_name": "PageView", "event_id": "granted-1",
        "event_source_url": "https://www.shop.example/"})
    assert allowed.status_code == 200
    fake_graph.wait_for_events(1)
    time.sleep(0.3)
    assert [e["event_id"] for e in fake_graph.events_seen()] == ["granted-1"]


def test_ad_user_data_denied_sends_no_hashed_contact_data(
    tag_server: object, fake_graph: FakeGraphAPI
) -> None:
    tag_server.post("/e", headers=HEADERS, json={  # type: ignore[attr-defined]
        "event_name": "Lead", "event_id": "l-1",
        "event_source_url": "https://www.shop.example/",
        "user_data": {"em": "jane@example.com", "ph": "+16505551212"},
        "consent": {"ad_user_data": "denied"}})
    (event,) = fake_graph.wait_for_events(1)
    assert not {"em", "ph"} & set(event["user_data"])
    assert event["user_data"]["client_user_agent"] == UA


def test_delivery_failure_never_changes_the_browser_answer(
    tag_server: object, fake_graph: FakeGraphAPI
) -> None:
    fake_graph.valid_tokens = {"some-other-token"}  # every request fails with code 190
    response = tag_server.post("/e", headers=HEADERS, json={  # type: ignore[attr-defined]
        "event_name": "AddToCart", "event_id": "atc-9",
        "event_source_url": "https://www.shop.example/p"})
    assert response.status_code == 200
    assert response.json()["commands"][0]["args"][4] == {"eventID": "atc-9"}
    fake_graph.wait_for_requests(1)
    time.sleep(0.3)
    assert len(fake_graph.requests) == 1  # a token error is permanent: not retried


def test_sigterm_delivers_every_accepted_event(
    start_server: StartServer, fake_graph: FakeGraphAPI
) -> None:
    server = start_server(env={"TAGSERVER_FLUSH_INTERVAL": "30"})  # nothing flushes by itself
    fake_graph.set_latency(0.3)
    ids = [f"stop-{i}" for i in range(40)]
    for event_id in ids:
        response = server.post("/e", headers=HEADERS, json={
            "event_name": "ViewContent", "event_id": event_id,
            "event_source_url": "https://www.shop.example/p"})
        assert response.status_code == 200
    assert fake_graph.requests == []
    assert server.stop() in (0, -15)  # uvicorn re-raises SIGTERM after a graceful stop
    assert sorted(e["event_id"] for e in fake_graph.accepted_events()) == sorted(ids)


def test_demo_runs_and_shows_both_sides() -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TAGSERVER_", "META_"))}
    result = subprocess.run(
        [sys.executable, "-m", "tagserver", "demo", "--once", "--port", str(free_port())],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count('"purchase-order-1001"') >= 3  # the hit, the browser answer, the CAPI event
    assert '"eventID": "purchase-order-1001"' in out
    assert "/v25.0/1234567890123456/events" in out
    assert '"em": "' + sha("jane.doe@example.com") + '"' in out
    assert "demo-token-not-sent-anywhere" not in out + result.stderr
    assert "Set-Cookie: _fbc=fb.1." in out


def test_routing_errors_use_the_json_error_shape(tag_server: object) -> None:
    for method, path, status in (("GET", "/e", 405), ("GET", "/nope", 404)):
        response = tag_server.request(method, path)  # type: ignore[attr-defined]
        assert response.status_code == status
        body = response.json()
        assert body["ok"] is False and body["status"] == status and body["errors"]


def test_unsendable_values_are_refused_and_neighbours_delivered(
    tag_server: object, fake_graph: FakeGraphAPI
) -> None:
    poisoned = [
        b'{"event_name": "PageView", "event_source_url": "https://www.shop.example/\\udcff"}',
        b'{"event_name": "Purchase", "custom_data": {"value": NaN, "currency": "EUR"}}',
        b'{"event_name": "PageView", "custom_data": ' + b"[" * 30 + b"]" * 30 + b"}",
    ]
    for index, body in enumerate(poisoned):
        good = tag_server.post("/e", headers=HEADERS, json={  # type: ignore[attr-defined]
            "event_name": "ViewContent", "event_id": f"good-{index}",
            "event_source_url": "https://www.shop.example/p"})
        assert good.status_code == 200
        bad = tag_server.post("/e", headers=HEADERS, content=body)  # type: ignore[attr-defined]
        assert bad.status_code == 400
        assert bad.json()["ok"] is False
    fake_graph.wait_for_events(3)
    time.sleep(0.3)
    assert sorted(e["event_id"] for e in fake_graph.accepted_events()) == [
        "good-0", "good-1", "good-2"]
    assert "Traceback" not in tag_server.output()  # type: ignore[attr-defined]


def test_badly_typed_custom_data_loses_the_field_never_the_event(
    start_server: StartServer, fake_graph: FakeGraphAPI
) -> None:
    """Meta refuses a wrongly typed field with code 100 (the fake does too); the event must
    still arrive, without the bad field, next to a good one."""
    server = start_server()
    bad = {"order_id": {"nested": 1}, "num_items": 2.5, "content_type": None,
           "content_ids": ["A", 7, None], "value": "10.5", "currency": "EUR",
           "contents": [{"id": 7, "quantity": 1e22}, {"id": "A", "quantity": "2",
                                                       "item_price": "5.25"}]}
    for event_id, custom in (("typed-bad", bad), ("typed-good", {"value": 1, "currency": "EUR"})):
        response = server.post("/e", headers=HEADERS, json={
            "event_name": "Purchase", "event_id": event_id,
            "event_source_url": "https://www.shop.example/thanks", "custom_data": custom})
        assert response.status_code == 200
    events = {e["event_id"]: e for e in fake_graph.wait_for_events(2)}
    assert events["typed-bad"]["custom_data"] == {
        "value": 10.5, "currency": "EUR", "content_ids": ["A", "7"],
        "contents": [{"id": "A", "quantity": 2, "item_price": 5.25}]}
    assert all(r.status == 200 for r in fake_graph.requests)


def test_cookies_split_over_two_cookie_headers_are_read(
    start_server: StartServer, fake_graph: FakeGraphAPI
) -> None:
    """An intermediary may pass HTTP/2 cookie crumbs on as several Cookie headers (RFC 9113
    §8.2.3): a visitor's _fbp and signed visitor id in the second one are kept, not minted anew."""
    server = start_server()
    hit = {"event_name": "PageView", "event_source_url": "https://www.shop.example/"}
    first = server.post("/e", json=hit, headers=HEADERS)
    assert first.status_code == 200
    given = {name: str(c["value"]) for name, c in cookies_of(first).items()}
    visitor = next(name for name in given if name.endswith("-tsid"))
    headers = [*HEADERS.items(), ("Host", "t.shop.example"), ("Cookie", "theme=dark"),
               ("Cookie", f"_fbp={given['_fbp']}; {visitor}={given[visitor]}")]  # fmt: skip
    # two Cookie headers on the wire (the server helper's request() keeps one value per name)
    again = httpx.post(f"{server.url}/e", json=hit, headers=headers, timeout=10.0)
    assert [v for k, v in again.request.headers.raw if k.lower() == b"cookie"][0] == b"theme=dark"
    assert again.status_code == 200
    kept = {name: str(c["value"]) for name, c in cookies_of(again).items()}
    assert kept["_fbp"] == given["_fbp"]
    assert kept[visitor] == given[visitor]
