"""End-to-end: gtag.js hits on ``/g/collect`` against the real server process.

A hit in → the fake GA4 endpoint receives the same hit with ``_uip`` and the visitor's
User-Agent → the fake Graph API receives the mapped Meta event → the ``richsstsse`` answer
carries the Meta image pixel with the same ``eid``. Plus batching, consent, identity cookies,
the server-managed client id, retries and bad input.
"""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from tagserver.ga4.sse import parse_event_stream
from tagserver.meta.normalize import sha256_hex
from tests.cases import find_case_file
from tests.conftest import StartServer
from tests.e2e.cookies import parse_set_cookie
from tests.e2e.server import PIXEL_ID
from tests.fakes.ga4 import FakeGA4
from tests.fakes.graph import FakeGraphAPI

ORIGIN = "https://www.shop.example"
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/136.0.0.0"
VISITOR_IP = "198.51.100.23"
HEADERS = {"Origin": ORIGIN, "User-Agent": UA, "X-Forwarded-For": VISITOR_IP}
SHARED = ("v=2&tid=G-SHOP1&gtm=45je5bi1&_p=1764340309313&gcs=G111&gcd=13t3t3t3t5l1"
          "&cid=1234567890.1760043792&ul=en-us&sr=1920x1080&sid=1764340309&sct=5&seg=1"
          "&dl=https%3A%2F%2Fwww.shop.example%2Fp%2Ftee&dt=Tee%20%7C%20Shop")


def case(case_id: str) -> dict[str, Any]:
    cases: list[dict[str, Any]] = json.loads(find_case_file("ga4_hits.json").read_text("utf-8"))
    (found,) = [c for c in cases if c["id"] == case_id]
    return found


def cookies_of(response: httpx.Response) -> dict[str, dict[str, object]]:
    parsed = [parse_set_cookie(h) for h in response.headers.get_list("set-cookie")]
    return {str(c["name"]): c for c in parsed}


def pixel_params(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://www.facebook.com/tr"
    return {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}


def test_round_trip_of_a_real_hit(
    start_server: StartServer, fake_ga4: FakeGA4, fake_graph: FakeGraphAPI
) -> None:
    """Case G04 (add_to_cart with one item, richsstsse) through the shipped container."""
    hit = case("G04")
    server = start_server()
    response = server.get("/metrics" + hit["path"], headers={
        **hit["headers"], "Origin": ORIGIN, "X-Forwarded-For": VISITOR_IP})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["cache-control"] == "no-store"
    records = parse_event_stream(response.text)
    assert records[-1] == {"response": {"status_code": 200, "body": ""}}
    (pixel_record,) = records[:-1]
    (pixel_url,) = pixel_record["send_pixel"]
    pixel = pixel_params(pixel_url)
    assert pixel["id"] == PIXEL_ID and pixel["ev"] == "AddToCart"
    assert pixel["cd[value]"] == "30.03" and pixel["cd[currency]"] == "USD"
    assert json.loads(pixel["cd[content_ids]"]) == ["SKU_12345"]

    # Google gets the hit as sent, minus richsstsse, plus the visitor's IP and User-Agent
    (forwarded,) = fake_ga4.wait_for_hits(1)
    sent_query = urlsplit(hit["path"]).query
    assert forwarded.method == "POST" and forwarded.path == "/g/collect"
    assert forwarded.pairs == [p for p in sent_query.split("&") if p != "richsstsse"] + [
        f"_uip={VISITOR_IP}"]
    assert forwarded.user_agent == hit["headers"]["User-Agent"]
    assert forwarded.body == b""

    # Meta gets the mapped event, with the pixel's event id
    (event,) = fake_graph.wait_for_events(1)
    assert event["event_name"] == "AddToCart"
    assert event["event_id"] == pixel["eid"]
    assert event["event_source_url"].startswith("https://www.demo.example/?utm_source=google")
    assert event["custom_data"] == {
        "value": 30.03, "currency": "USD", "content_ids": ["SKU_12345"],
        "contents": [{"id": "SKU_12345", "quantity": 3, "item_price": 10.01}],
        "num_items": 3, "content_type": "product",
    }
    assert event["user_data"]["client_ip_address"] == VISITOR_IP
    assert event["user_data"]["client_user_agent"] == hit["headers"]["User-Agent"]
    assert event["user_data"]["fbp"] == cookies_of(response)["_fbp"]["value"]


def test_case_g05_page_event_id_and_fbp_reach_meta(
    start_server: StartServer, fake_ga4: FakeGA4, fake_graph: FakeGraphAPI
) -> None:
    hit = case("G05")
    server = start_server(env={"TAGSERVER_ALLOWED_ORIGINS": "https://www.example.com"})
    headers = {**hit["headers"], "X-Forwarded-For": VISITOR_IP}
    response = server.get(hit["path"], headers=headers)
    assert response.status_code == 200
    (record, _) = parse_event_stream(response.text)
    assert pixel_params(record["send_pixel"][0])["eid"] == "1760044298197_17643404997032"
    (event,) = fake_graph.wait_for_events(1)
    expected = hit["expect"]["meta"]
    assert event["event_name"] == expected["event_name"]
    assert event["event_id"] == expected["event_id"]
    assert event["user_data"]["fbp"] == expected["user_data"]["fbp"]
    (forwarded,) = fake_ga4.wait_for_hits(1)
    assert forwarded.params["ep.event_id"] == "1760044298197_17643404997032"


def test_a_batched_body_of_four_events(
    start_server: StartServer, fake_ga4: FakeGA4, fake_graph: FakeGraphAPI
) -> None:
    server = start_server()
    lines = [
        "en=page_view&_et=1",
        "en=view_item&cu=EUR&epn.value=19.9&pr1=idTEE-1~nmTee~pr19.9~qt1",
        "en=add_to_cart&cu=EUR&epn.value=39.8&pr1=idTEE-1~pr19.9~qt2&ep.event_id=atc-42",
        "en=purchase&cu=EUR&epn.value=39.8&ep.transaction_id=T-1001&pr1=idTEE-1~pr19.9~qt2",
    ]
    response = server.post(f"/g/collect?{SHARED}&richsstsse", content="\r\n".join(lines),
                           headers={**HEADERS, "Content-Type": "text/plain;charset=UTF-8"})
    assert response.status_code == 200
    pixels = [pixel_params(r["send_pixel"][0]) for r in parse_event_stream(response.text)[:-1]]
    assert [p["ev"] for p in pixels] == ["PageView", "ViewContent", "AddToCart", "Purchase"]
    assert pixels[2]["eid"] == "atc-42" and pixels[3]["eid"] == "purchase-T-1001"

    forwarded = fake_ga4.wait_for_hits(4)
    assert [r.body.decode() for r in forwarded] == lines  # one after the other, in page order
    for request in forwarded:
        assert request.pairs == [*SHARED.split("&"), f"_uip={VISITOR_IP}"]
        assert request.user_agent == UA

    events = fake_graph.wait_for_events(4)
    by_name = {e["event_name"]: e for e in events}
    assert sorted(by_name) == ["AddToCart", "PageView", "Purchase", "ViewContent"]
    assert [by_name[p["ev"]]["event_id"] for p in pixels] == [p["eid"] for p in pixels]
    assert by_name["Purchase"]["custom_data"]["order_id"] == "T-1001"
    assert by_name["ViewContent"]["event_source_url"] == "https://www.shop.example/p/tee"


def test_a_repeated_purchase_keeps_its_event_id(
    start_server: StartServer, fake_graph: FakeGraphAPI
) -> None:
    server = start_server()
    query = f"{SHARED}&en=purchase&cu=EUR&epn.value=10&ep.transaction_id=T-77"
    for _ in range(2):
        assert server.post(f"/g/collect?{query}", headers=HEADERS).status_code == 200
    events = fake_graph.wait_for_events(2)
    assert [e["event_id"] for e in events] == ["purchase-T-77", "purchase-T-77"]


def test_a_bad_line_does_not_lose_its_neighbours(
    start_server: StartServer, fake_ga4: FakeGA4
) -> None:
    server = start_server()
    body = "en=first\nen=%zz\nen=third&pr1=~~x~prNaN"
    response = server.post(f"/g/collect?{SHARED}", content=body, headers=HEADERS)
    assert response.status_code == 200 and response.text == ""
    forwarded = fake_ga4.wait_for_hits(2)
    assert sorted(r.body.decode() for r in forwarded) == ["en=first", "en=third&pr1=~~x~prNaN"]


def test_bad_requests_are_400s_never_500s(start_server: StartServer, fake_ga4: FakeGA4) -> None:
    server = start_server()
    for path in [
        "/g/collect?tid=G-1&en=page_view",          # no v=2
        "/g/collect?v=2&en=page_view",              # no tid
        "/g/collect?v=2&tid=G-1&en=x&dt=%E9t%C3",   # not UTF-8
        "/g/collect?v=2&tid=G-1&en=x&dt=100%",      # broken percent-encoding
        "/g/collect?v=2&tid=G-1&en=x&ep.pad=" + "a" * 17000,
    ]:
        response = server.post(path, headers=HEADERS)
        assert response.status_code == 400, path
        body = response.json()
        assert body["ok"] is False and body["status"] == 400 and body["errors"]
        assert response.headers["access-control-allow-origin"] == ORIGIN
    too_many = "\n".join(["en=x"] * 101)
    assert server.post(f"/g/collect?{SHARED}", content=too_many,
                       headers=HEADERS).status_code == 400
    huge = "en=x&ep.pad=" + "a" * 70000
    assert server.post(f"/g/collect?{SHARED}", content=huge, headers=HEADERS).status_code == 413
    time.sleep(0.2)
    assert fake_ga4.requests == []


def test_consent_ad_storage_denied(
    start_server: StartServer, fake_ga4: FakeGA4, fake_graph: FakeGraphAPI
) -> None:
    server = start_server()
    denied = SHARED.replace("gcs=G111", "gcs=G101").replace("gcd=13t3t3t3t5l1", "gcd=13p3t3p3p5l1")
    response = server.get(
        f"/g/collect?{denied}&en=page_view&dl=https%3A%2F%2Fwww.shop.example%2F%3Ffbclid%3DIwAR1"
        "&ep.event_id=denied-1&richsstsse", headers=HEADERS)
    assert response.status_code == 200
    assert parse_event_stream(response.text) == [{"response": {"status_code": 200, "body": ""}}]
    assert not {"_fbp", "_fbc"} & set(cookies_of(response))
    assert "__Secure-tsid" in cookies_of(response)  # analytics is granted
    server.get(f"/g/collect?{SHARED}&en=page_view&ep.event_id=granted-1", headers=HEADERS)
    fake_graph.wait_for_events(1)
    fake_ga4.wait_for_hits(2)  # the denied hit still goes to Google, which applies gcs itself
    time.sleep(0.3)
    assert [e["event_id"] for e in fake_graph.events_seen()] == ["granted-1"]


def test_consent_analytics_denied_sets_no_analytics_id_but_forwards(
    start_server: StartServer, fake_ga4: FakeGA4
) -> None:
    server = start_server(env={"TAGSERVER_GA4_CLIENT_ID": "server"})
    query = SHARED.replace("gcs=G111", "gcs=G110") + "&en=page_view"
    response = server.get(f"/g/collect?{query}", headers={**HEADERS, "Cookie": "_ga=GA1.1.5.1700000000"})
    assert response.status_code == 200
    cookies = cookies_of(response)
    assert "FPID" not in cookies and "__Secure-tsid" not in cookies
    assert "_fbp" in cookies
    (forwarded,) = fake_ga4.wait_for_hits(1)
    assert forwarded.params["cid"] == "1234567890.1760043792"
    assert forwarded.params["gcs"] == "G110"


def test_consent_ad_user_data_denied_sends_no_hashed_contact_data(
    start_server: StartServer, fake_graph: FakeGraphAPI
) -> None:
    server = start_server()
    contact = "&ep.user_data.email_address=Jane%40Example.com&ep.user_data.phone_number=%2B16505551212"
    denied = SHARED.replace("gcd=13t3t3t3t5l1", "gcd=13t3t3p3t5l1")
    server.get(f"/g/collect?{denied}&en=generate_lead&ep.event_id=l-1{contact}", headers=HEADERS)
    server.get(f"/g/collect?{SHARED}&en=generate_lead&ep.event_id=l-2{contact}", headers=HEADERS)
    events = {e["event_id"]: e for e in fake_graph.wait_for_events(2)}
    assert events["l-1"]["event_name"] == "Lead"
    assert not {"em", "ph"} & set(events["l-1"]["user_data"])
    assert events["l-2"]["user_data"]["em"] == sha256_hex("jane@example.com")
    assert events["l-2"]["user_data"]["ph"] == sha256_hex("16505551212")


def test_contact_data_is_hashed_for_meta_and_never_sent_to_google(
    start_server: StartServer, fake_ga4: FakeGA4, fake_graph: FakeGraphAPI
) -> None:
    server = start_server()
    contact = ("ep.user_data.email_address=Jane.Doe%40Example.com"
               "&ep.user_data.phone_number=%2B447700900123&ep.user_data.address.first_name=Jane"
               "&ep.user_data.address.city=Leeds&epn.user_data.address.postal_code=12345"
               "&up.user_data.email_address=Jane.Doe%40Example.com")
    server.get(f"/g/collect?{SHARED}&en=generate_lead&ep.event_id=c-1&{contact}",
               headers=HEADERS)
    server.post(f"/g/collect?{SHARED}&{contact}",
                content=f"en=sign_up&ep.event_id=c-2&{contact}\nen=purchase&ep.event_id=c-3"
                        f"&ep.transaction_id=T-9&cu=EUR&epn.value=5&{contact}",
                headers={**HEADERS, "Content-Type": "text/plain;charset=UTF-8"})
    events = {e["event_id"]: e for e in fake_graph.wait_for_events(3)}
    assert sorted(events) == ["c-1", "c-2", "c-3"]
    for event in events.values():
        assert event["user_data"]["em"] == sha256_hex("jane.doe@example.com")
        assert event["user_data"]["ph"] == sha256_hex("447700900123")
        assert event["user_data"]["fn"] == sha256_hex("jane")
        assert event["user_data"]["ct"] == sha256_hex("leeds")
    forwarded = fake_ga4.wait_for_hits(3)
    assert len(forwarded) == 3
    for request in forwarded:
        wire = (request.query + "&" + request.body.decode()).lower()
        assert "user_data" not in unquote(wire), wire
        assert "jane" not in unquote(wire) and "447700900123" not in wire and "leeds" not in wire
        assert request.params["tid"] == "G-SHOP1" and request.hit()["en"]


def test_fbclid_in_dl_becomes_fbc(start_server: StartServer, fake_graph: FakeGraphAPI) -> None:
    server = start_server()
    query = SHARED.replace("dl=https%3A%2F%2Fwww.shop.example%2Fp%2Ftee",
                           "dl=https%3A%2F%2Fwww.shop.example%2F%3Ffbclid%3DIwAR_Z-9")
    response = server.get(f"/g/collect?{query}&en=page_view", headers=HEADERS)
    fbc = cookies_of(response)["_fbc"]
    assert str(fbc["value"]).startswith("fb.1.") and str(fbc["value"]).endswith(".IwAR_Z-9")
    assert fbc["domain"] == "shop.example" and not fbc.get("httponly")
    (event,) = fake_graph.wait_for_events(1)
    assert event["user_data"]["fbc"] == fbc["value"]


def test_server_managed_client_id_migrates_ga_and_sticks(
    start_server: StartServer, fake_ga4: FakeGA4
) -> None:
    server = start_server(env={"TAGSERVER_GA4_CLIENT_ID": "server"})
    first = server.get(f"/g/collect?{SHARED}&en=page_view",
                       headers={**HEADERS, "Cookie": "_ga=GA1.1.1234567890.1700000000"})
    fpid = cookies_of(first)["FPID"]
    value = str(fpid["value"])  # sGTM's form: the base64 part percent-encoded
    assert re.fullmatch(r"FPID2\.2\.[A-Za-z0-9%]{44,60}\.1700000000", value)  # _ga's timestamp
    assert fpid["httponly"] and fpid["secure"] and fpid["domain"] == "shop.example"
    client_id = unquote(value.removeprefix("FPID2.2."))
    assert len(base64.b64decode(client_id.split(".")[0])) == 32
    second = server.get(f"/g/collect?{SHARED}&en=scroll",
                        headers={**HEADERS, "Cookie": f"FPID={value}"})
    assert cookies_of(second)["FPID"]["value"] == value
    forwarded = fake_ga4.wait_for_hits(2)
    assert [r.params["cid"] for r in forwarded] == [client_id, client_id]


def test_ga4_tag_options_measurement_id_and_redacted_ip(
    start_server: StartServer, fake_ga4: FakeGA4, fake_graph: FakeGraphAPI, tmp_path: Path
) -> None:
    tags = tmp_path / "tags"
    tags.mkdir()
    (tags / "c.json").write_text(json.dumps({"tags": [
        {"name": "ga4-eu", "type": "ga4", "measurement_id": {"env": "GA4_ID"},
         "redact_ip": True, "events": ["purchase"]},
        {"name": "meta", "type": "meta", "pixel_id": "1234567890",
         "access_token": {"env": "META_ACCESS_TOKEN"}, "browser_mode": "img"},
    ]}))
    server = start_server(tags_dir=tags, env={"GA4_ID": "G-OTHER9"})
    server.get(f"/g/collect?{SHARED}&en=page_view", headers=HEADERS)
    response = server.get(
        f"/g/collect?{SHARED}&en=purchase&cu=EUR&epn.value=5&ep.transaction_id=9&richsstsse",
        headers=HEADERS)
    (record, _) = parse_event_stream(response.text)
    assert pixel_params(record["send_pixel"][0])["eid"] == "purchase-9"
    (forwarded,) = fake_ga4.wait_for_hits(1)
    assert forwarded.params["tid"] == "G-OTHER9" and forwarded.params["en"] == "purchase"
    assert forwarded.pairs[-1] == "_uip=::"
    fake_graph.wait_for_events(2)  # Meta still gets both events, with the IP
    assert {e["user_data"]["client_ip_address"] for e in fake_graph.events_seen()} == {VISITOR_IP}


def test_transient_google_errors_are_retried_permanent_ones_not(
    start_server: StartServer, fake_ga4: FakeGA4
) -> None:
    server = start_server()
    fake_ga4.fail_next(2, status=503)
    server.get(f"/g/collect?{SHARED}&en=page_view&ep.n=1", headers=HEADERS)
    (delivered,) = fake_ga4.wait_for_hits(1)
    assert [r.status for r in fake_ga4.requests] == [503, 503, 204]
    fake_ga4.fail_next(1, status=400)
    server.get(f"/g/collect?{SHARED}&en=page_view&ep.n=2", headers=HEADERS)
    deadline = time.monotonic() + 5
    while len(fake_ga4.requests) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    assert [r.status for r in fake_ga4.requests] == [503, 503, 204, 400]
    assert "rejected" in server.output()


def test_path_prefix_preflight_and_gtag_side_paths(start_server: StartServer) -> None:
    server = start_server()
    preflight = server.options("/metrics/g/collect", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "GET" in preflight.headers["access-control-allow-methods"]
    plain = server.post(f"/metrics/g/collect?{SHARED}&en=page_view", headers=HEADERS)
    assert plain.status_code == 200 and plain.text == ""
    stranger = server.post(f"/g/collect?{SHARED}&en=page_view",
                           headers={**HEADERS, "Origin": "https://evil.example"})
    assert stranger.status_code == 403
    for path in ["/_/service_worker/5bb0/sw_iframe.html", "/metrics/_/service_worker/5bb0/sw.js"]:
        answer = server.get(path)
        assert answer.status_code == 404 and "max-age" in answer.headers["cache-control"]
    set_cookie = server.get("/_/set_cookie?val=x&path=%2F", headers={"Origin": ORIGIN})
    assert set_cookie.status_code == 204 and "set-cookie" not in set_cookie.headers
    assert set_cookie.headers["access-control-allow-origin"] == ORIGIN


def test_head_is_answered_without_any_side_effect(
    start_server: StartServer, fake_ga4: FakeGA4, fake_graph: FakeGraphAPI
) -> None:
    """Starlette routes HEAD wherever GET goes: a monitor's HEAD must not become a hit."""
    server = start_server()
    for path in (f"/g/collect?{SHARED}&en=page_view&ep.event_id=head-1",
                 f"/metrics/g/collect?{SHARED}&en=purchase&cu=EUR&epn.value=5",
                 f"/g/collect/?{SHARED}&en=page_view", "/g/collect"):
        response = server.request("HEAD", path, headers=HEADERS)
        assert response.status_code == 200, path
        assert response.content == b"" and "set-cookie" not in response.headers
    server.get(f"/g/collect?{SHARED}&en=page_view&ep.event_id=get-1", headers=HEADERS)
    (event,) = fake_graph.wait_for_events(1)  # the GET after the HEADs: only it arrives
    assert event["event_id"] == "get-1"
    (hit,) = fake_ga4.wait_for_hits(1)
    assert hit.params["ep.event_id"] == "get-1"
    time.sleep(1.5)  # a flush interval: nothing else trickles in
    assert len(fake_ga4.requests) == 1 and len(fake_graph.events_seen()) == 1


def test_trailing_slash_is_the_same_endpoint_without_a_redirect(
    start_server: StartServer, fake_ga4: FakeGA4, fake_graph: FakeGraphAPI
) -> None:
    server = start_server()
    get = server.get(f"/g/collect/?{SHARED}&en=page_view&ep.event_id=slash-1&richsstsse",
                     headers=HEADERS)
    assert get.status_code == 200 and "location" not in get.headers
    assert get.headers["content-type"].startswith("text/event-stream")
    post = server.post(f"/metrics/g/collect/?{SHARED}", content="en=page_view&ep.event_id=slash-2",
                       headers=HEADERS)
    assert post.status_code == 200 and post.text == ""
    preflight = server.options("/g/collect/", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    forwarded = fake_ga4.wait_for_hits(2)
    assert sorted(r.hit()["ep.event_id"] for r in forwarded) == ["slash-1", "slash-2"]
    assert all(r.path == "/g/collect" for r in forwarded)
    assert {e["event_id"] for e in fake_graph.wait_for_events(2)} == {"slash-1", "slash-2"}


def test_event_id_parameter_is_configurable(
    start_server: StartServer, fake_graph: FakeGraphAPI
) -> None:
    server = start_server(env={"TAGSERVER_GA4_EVENT_ID_PARAM": "meta_eid"})
    response = server.get(
        f"/g/collect?{SHARED}&en=page_view&ep.event_id=not-this&ep.meta_eid=pv-7&richsstsse",
        headers=HEADERS)
    (record, _) = parse_event_stream(response.text)
    assert pixel_params(record["send_pixel"][0])["eid"] == "pv-7"
    (event,) = fake_graph.wait_for_events(1)
    assert event["event_id"] == "pv-7"
