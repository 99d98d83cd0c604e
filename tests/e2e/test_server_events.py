"""End to end: ``POST /api/events`` and ``tagserver import`` against the real server process and
the fake Graph API — keys, scope, idempotency, refusals, and the exact CAPI events Meta gets."""

from __future__ import annotations

import calendar
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tagserver.server_events.keys import create_key, revoke_key
from tests.conftest import StartServer
from tests.e2e.server import PIXEL_ID, REPO_ROOT, TagServerProcess
from tests.fakes.graph import FakeGraphAPI

DAY = 86400


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return tmp_path / "keys.sqlite3"


@pytest.fixture
def server(start_server: StartServer, keys_file: Path) -> TagServerProcess:
    return start_server(env={"TAGSERVER_KEYS": str(keys_file)})


def post(server: TagServerProcess, key: str | None, events: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return server.post("/api/events", json={"data": events}, headers=headers)


def test_batch_good_duplicate_too_old_and_malformed(
    server: TagServerProcess, fake_graph: FakeGraphAPI, keys_file: Path
) -> None:
    _, key = create_key(keys_file, "crm", tags=("meta",))
    now = int(time.time())
    store = {
        "event_name": "Purchase", "event_id": "store-1", "event_time": now - 30 * DAY,
        "action_source": "physical_store",
        "custom_data": {"value": "49.90", "currency": "eur", "order_id": "S-1"},
        "user_data": {"em": " Jane@Example.com", "ph": "+44 7700 900123", "fn": "Jane",
                      "ln": "Doe", "ct": "London", "zp": "SW1A 1AA", "country": "GB",
                      "external_id": "cust-42"},
    }
    lead = {
        "event_name": "Lead", "event_id": "lead-won-7", "event_time": now - 2 * DAY,
        "action_source": "system_generated",
        "custom_data": {"lead_event_source": "HubSpot", "event_source": "crm"},
        "user_data": {"lead_id": "123456789012345", "em": "bob@example.com",
                      "client_ip_address": "198.51.100.7", "client_user_agent": "CRM/1.0"},
    }
    response = post(server, key, [
        store,
        lead,
        dict(store),  # the same event_id again in the same batch
        {**store, "event_id": "store-old", "event_time": now - 70 * DAY},
        {**lead, "event_id": "crm-old", "event_time": now - 8 * DAY},
        {"event_name": "Purchase", "event_id": "bad-1", "event_time": "yesterday",
         "custom_data": {"currency": "EUR"}},
        "not an event",
    ])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers
    body = response.json()
    assert (body["received"], body["accepted"], body["duplicates"], body["rejected"]) == \
        (7, 2, 1, 4)
    statuses = [(e["event_id"], e["status"]) for e in body["events"]]
    assert statuses == [("store-1", "accepted"), ("lead-won-7", "accepted"),
                        ("store-1", "duplicate"), ("store-old", "rejected"),
                        ("crm-old", "rejected"), ("bad-1", "rejected"), (None, "rejected")]
    assert body["events"][0]["tags"] == ["meta"]
    assert "commands" not in body
    errors = {e["event_id"]: e["errors"] for e in body["events"] if e["status"] == "rejected"}
    assert errors["store-old"] == [{"field": "event_time", "message":
        "too old: more than 62 days ago for physical_store events (Meta refuses it)"}]
    assert errors["crm-old"][0]["message"].startswith("too old: more than 7 days ago")
    assert {e["field"] for e in errors["bad-1"]} == {"action_source", "event_time", "custom_data"}
    assert errors[None] == [{"field": "event", "message": "expected an object, got str"}]

    events = sorted(fake_graph.wait_for_events(2), key=lambda e: e["event_id"])
    assert events == [
        {
            "event_name": "Lead", "event_time": now - 2 * DAY, "event_id": "lead-won-7",
            "action_source": "system_generated",
            "user_data": {"client_ip_address": "198.51.100.7", "client_user_agent": "CRM/1.0",
                          "lead_id": 123456789012345, "em": sha("bob@example.com")},
            "custom_data": {"lead_event_source": "HubSpot", "event_source": "crm"},
        },
        {
            "event_name": "Purchase", "event_time": now - 30 * DAY, "event_id": "store-1",
            "action_source": "physical_store",
            "user_data": {"em": sha("jane@example.com"), "ph": sha("447700900123"),
                          "fn": sha("jane"), "ln": sha("doe"), "ct": sha("london"),
                          "zp": sha("sw1a1aa"), "country": sha("gb"),
                          "external_id": sha("cust-42")},
            "custom_data": {"value": 49.9, "currency": "EUR", "order_id": "S-1"},
        },
    ]
    [request] = fake_graph.requests
    assert request.path == f"/v25.0/{PIXEL_ID}/events"

    # a CRM retry of the whole batch: the accepted ids are duplicates now, nothing is resent;
    # a corrected resend of a rejected id goes through
    again = post(server, key, [store, lead, {**store, "event_id": "store-old",
                                             "event_time": now - 60 * DAY}]).json()
    assert [e["status"] for e in again["events"]] == ["duplicate", "duplicate", "accepted"]
    fake_graph.wait_for_events(3)
    assert [e["event_id"] for e in fake_graph.accepted_events()][2:] == ["store-old"]


def test_keys_authenticate_scope_and_revoke(
    server: TagServerProcess, fake_graph: FakeGraphAPI, keys_file: Path
) -> None:
    now = int(time.time())
    event = {"event_name": "Lead", "event_id": "l-1", "event_time": now - 60,
             "action_source": "phone_call", "user_data": {"ph": "+16505551212"}}
    _, good = create_key(keys_file, "shop", pixels=(PIXEL_ID,))
    _, other = create_key(keys_file, "agency", pixels=("99999999",))
    _, gone = create_key(keys_file, "old", all_tags=True)
    revoke_key(keys_file, "old")

    for key in (None, "tsk_nothing", good[:-2] + "xx", gone):
        response = post(server, key, [event])
        assert response.status_code == 401, key
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["ok"] is False
    response = server.post("/api/events", content=b"{}", headers={"Authorization": good})
    assert response.status_code == 401  # no Bearer scheme

    scoped = post(server, other, [event]).json()
    assert scoped["events"][0]["status"] == "rejected"
    assert "no tag this key may feed" in scoped["events"][0]["errors"][0]["message"]

    accepted = post(server, good, [event]).json()
    assert accepted["events"][0] == {"index": 0, "event_id": "l-1", "status": "accepted",
                                     "tags": ["meta"]}
    # idempotency is per key: the agency key's rejection did not claim the id
    [sent] = fake_graph.wait_for_events(1)
    assert sent["action_source"] == "phone_call" and sent["user_data"] == {
        "ph": sha("16505551212")}
    time.sleep(0.3)  # one flush interval more: nothing else arrives
    assert len(fake_graph.accepted_events()) == 1


def test_bad_requests_get_the_json_error_shape(server: TagServerProcess, keys_file: Path) -> None:
    _, key = create_key(keys_file, "crm", all_tags=True)
    auth = {"Authorization": f"Bearer {key}"}
    for content, status in ((b"not json", 400), (b'{"data": []}', 400), (b"[1]", 400),
                            (b'{"data": {}}', 400)):
        response = server.post("/api/events", content=content,
                               headers={**auth, "Content-Type": "application/json"})
        assert response.status_code == status, content
        assert set(response.json()) == {"ok", "error", "errors", "status"}
    too_many = post(server, key, [{"event_name": "Lead"}] * 1001)
    assert too_many.status_code == 413
    wrong_type = server.post("/api/events", content=b"a=1", headers={
        **auth, "Content-Type": "application/x-www-form-urlencoded"})
    assert wrong_type.status_code == 415


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tagserver", *args], cwd=REPO_ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def test_import_csv_through_the_server_then_again(
    server: TagServerProcess, fake_graph: FakeGraphAPI, keys_file: Path, tmp_path: Path
) -> None:
    env = {"TAGSERVER_KEYS": str(keys_file)}
    created = run_cli("keys", "create", "store-import", "--tags", "meta", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 20 * DAY))
    csv = tmp_path / "store.csv"
    csv.write_bytes((
        "\ufeffEmail;Phone;First Name;Amount;Currency;Order ID;Date\r\n"
        f'jane@example.com;+44 7700 900123;Jane;"12,50";EUR;S-1;{day} 10:00:00\r\n'
        "\r\n"
        f"bob@example.com;;Bob;7;EUR;S-2;{day}T11:00:00+01:00\r\n"
        f";;;5;EUR;S-3;{day}\r\n"
    ).encode())
    mapping = tmp_path / "map.json"
    mapping.write_text('{"value_locale": "de"}')
    args = ("import", str(csv), "--action-source", "physical_store", "--map", str(mapping),
            "--url", server.url)
    first = run_cli(*args, env={**env, "TAGSERVER_API_KEY": key})
    assert first.returncode == 1, first.stderr  # one row refused
    assert "line 5: refused: no customer information" in first.stderr
    assert "3 rows: 2 accepted, 0 duplicates, 1 refused" in first.stderr
    events = sorted(fake_graph.wait_for_events(2), key=lambda e: e["event_id"])
    assert [(e["event_id"], e["action_source"], e["custom_data"]) for e in events] == [
        ("purchase-S-1", "physical_store", {"value": 12.5, "currency": "EUR", "order_id": "S-1"}),
        ("purchase-S-2", "physical_store", {"value": 7, "currency": "EUR", "order_id": "S-2"}),
    ]
    assert events[0]["user_data"]["em"] == sha("jane@example.com")
    # 11:00 at +01:00 is 10:00 UTC, as the first row's time without an offset
    assert events[1]["event_time"] == events[0]["event_time"] == calendar.timegm(
        time.strptime(f"{day} 10:00:00", "%Y-%m-%d %H:%M:%S"))

    again = run_cli(*args, "--key", key, env=env)
    assert "3 rows: 0 accepted, 2 duplicates, 1 refused" in again.stderr
    dry = run_cli(*args, "--dry-run", env={})
    assert dry.returncode == 1 and len(dry.stdout.splitlines()) == 2
    no_key = run_cli(*args, env={})
    assert no_key.returncode == 2 and "API key is needed" in no_key.stderr
    time.sleep(0.3)
    assert len(fake_graph.accepted_events()) == 2
