"""Issue 3 end to end: messy contact data through ``POST /e`` reaches the fake Graph API hashed by
Meta's rules, and one bad event in a batch does not lose the others."""

from __future__ import annotations

import hashlib
import time

from tests.conftest import StartServer
from tests.fakes.graph import FakeGraphAPI

HEADERS = {
    "Origin": "https://www.shop.example",
    "User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15",
    "Content-Type": "text/plain;charset=UTF-8",
}
EMPTY_SHA = hashlib.sha256(b"").hexdigest()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_messy_contact_data_is_normalised_and_hashed(
    start_server: StartServer, fake_graph: FakeGraphAPI
) -> None:
    server = start_server()
    hits = [
        ("messy-1", {"em": ["  Jane.Doe@Example.COM ", "JANE.DOE@example.com", ""],
                     "ph": "0044 7700 900123", "fn": " Valéry ", "ln": "O'Connor-Smith",
                     "ct": "New York", "st": "California", "zp": "94043-1234",
                     "country": "United States", "db": "2/16/1997", "ge": "Female",
                     "external_id": " Cust-42 "}),
        ("messy-2", {"ph": "07700 900123", "country": "gb", "em": "   "}),
        ("messy-3", {"ph": "+49 30 1234567", "country": "Deutschland"}),
        ("messy-4", {"ph": "(650) 555-1212", "country": "Narnia"}),  # national, country unknown
        ("messy-5", {"em": sha("x@example.com").upper() + "  ", "zp": "SW1A 1AA", "country": "UK"}),
    ]
    for event_id, user_data in hits:
        response = server.post("/e", headers=HEADERS, json={
            "event_name": "Lead", "event_id": event_id,
            "event_source_url": "https://www.shop.example/contact", "user_data": user_data})
        assert response.status_code == 200, response.text
    events = {e["event_id"]: e["user_data"] for e in fake_graph.wait_for_events(len(hits))}

    first = events["messy-1"]
    assert first["em"] == [sha("jane.doe@example.com")]
    assert first["ph"] == sha("447700900123")
    assert first["fn"] == sha("valéry")
    assert first["ln"] == sha("oconnorsmith")
    assert first["ct"] == sha("newyork")
    assert first["st"] == sha("ca")
    assert first["zp"] == sha("94043")
    assert first["country"] == sha("us")
    assert first["db"] == sha("19970216")
    assert first["ge"] == sha("f")
    assert first["external_id"] == sha("Cust-42")

    assert events["messy-2"]["ph"] == sha("447700900123")
    assert "em" not in events["messy-2"]
    assert events["messy-3"]["ph"] == sha("49301234567")
    assert events["messy-3"]["country"] == sha("de")
    assert "ph" not in events["messy-4"] and "country" not in events["messy-4"]
    assert events["messy-5"]["em"] == sha("x@example.com")
    assert events["messy-5"]["zp"] == sha("sw1a1aa")
    assert events["messy-5"]["country"] == sha("gb")
    for user_data in events.values():
        for value in user_data.values():
            assert EMPTY_SHA not in (value if isinstance(value, list) else [value])


def test_one_bad_event_in_a_batch_does_not_lose_the_others(
    start_server: StartServer, fake_graph: FakeGraphAPI
) -> None:
    server = start_server(env={"TAGSERVER_FLUSH_INTERVAL": "1.0"})  # the hits share one batch
    fake_graph.reject_event_ids({"batch-bad"}, subcode=2804001)
    ids = ["batch-1", "batch-2", "batch-bad", "batch-3", "batch-4"]
    for event_id in ids:
        response = server.post("/e", headers=HEADERS, json={
            "event_name": "AddToCart", "event_id": event_id,
            "event_source_url": "https://www.shop.example/p/1",
            "custom_data": {"value": "9.90", "currency": "usd"}})
        assert response.status_code == 200
        assert response.json()["event_id"] == event_id
    fake_graph.wait_for(
        lambda fake: sorted(e["event_id"] for e in fake.accepted_events())
        == ["batch-1", "batch-2", "batch-3", "batch-4"],
        what="the four good events accepted",
    )
    first_request = fake_graph.requests[0]
    assert [e["event_id"] for e in first_request.events] == ids  # one batch, rejected whole
    assert first_request.status == 400
    time.sleep(0.5)
    accepted = [e["event_id"] for e in fake_graph.accepted_events()]
    assert sorted(accepted) == ["batch-1", "batch-2", "batch-3", "batch-4"]  # each exactly once
    assert all(e["custom_data"]["value"] == 9.9 for e in fake_graph.accepted_events())
    assert all(e["custom_data"]["currency"] == "USD" for e in fake_graph.accepted_events())
    output = server.output()
    assert '"reason": "rejected"' in output and "batch-bad" in output


def test_purchase_without_currency_fires_the_pixel_but_sends_no_capi_event(
    tag_server: object, fake_graph: FakeGraphAPI
) -> None:
    response = tag_server.post("/e", headers=HEADERS, json={  # type: ignore[attr-defined]
        "event_name": "Purchase", "event_id": "nocur-1",
        "event_source_url": "https://www.shop.example/thanks", "custom_data": {"value": 10}})
    assert response.status_code == 200
    assert response.json()["commands"][0]["args"][4] == {"eventID": "nocur-1"}
    tag_server.post("/e", headers=HEADERS, json={  # type: ignore[attr-defined]
        "event_name": "PageView", "event_id": "after-1",
        "event_source_url": "https://www.shop.example/"})
    fake_graph.wait_for_events(1)
    time.sleep(0.3)
    assert [e["event_id"] for e in fake_graph.events_seen()] == ["after-1"]
    assert '"reason": "missing_purchase_data"' in tag_server.output()  # type: ignore[attr-defined]


def test_event_older_than_seven_days_is_not_sent(
    tag_server: object, fake_graph: FakeGraphAPI
) -> None:
    old = int(time.time()) - 8 * 24 * 3600
    response = tag_server.post("/e", headers=HEADERS, json={  # type: ignore[attr-defined]
        "event_name": "ViewContent", "event_id": "old-1", "event_time": old,
        "event_source_url": "https://www.shop.example/p"})
    assert response.status_code == 200
    tag_server.post("/e", headers=HEADERS, json={  # type: ignore[attr-defined]
        "event_name": "ViewContent", "event_id": "new-1",
        "event_source_url": "https://www.shop.example/p"})
    fake_graph.wait_for_events(1)
    time.sleep(0.3)
    assert [e["event_id"] for e in fake_graph.events_seen()] == ["new-1"]
    assert '"reason": "too_old"' in tag_server.output()  # type: ignore[attr-defined]


def test_default_country_completes_national_numbers(
    start_server: StartServer, fake_graph: FakeGraphAPI
) -> None:
    server = start_server(env={"TAGSERVER_DEFAULT_COUNTRY": "GB"})
    server.post("/e", headers=HEADERS, json={
        "event_name": "Lead", "event_id": "national-1",
        "event_source_url": "https://www.shop.example/contact",
        "user_data": {"ph": "07700 900123"}})
    (event,) = fake_graph.wait_for_events(1)
    assert event["user_data"]["ph"] == sha("447700900123")
