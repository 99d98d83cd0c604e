"""tagserver.tags.meta for server events: action_source, the 62-day store window, lead_id."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tagserver.container.loader import load_container
from tagserver.container.runtime import run_container
from tagserver.container.scope import Scope
from tagserver.event import Event
from tagserver.secret import Secret
from tagserver.tags.meta import MetaTag

NOW = 1_760_000_000.0
DAY = 86400


def build(event: Event) -> Any:
    meta = MetaTag(name="meta", pixel_id="1234567890", access_token=Secret("EAAG-token"))
    return meta.build(Scope.from_event(event), default_country=None, now=NOW)


def server_event(**overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "event_name": "Purchase",
        "event_id": "store-1",
        "event_time": int(NOW) - 3 * DAY,
        "received_at": NOW,
        "custom_data": {"value": 10, "currency": "EUR"},
        "user_data": {"em": "jane@example.com"},
        "action_source": "physical_store",
    }
    fields.update(overrides)
    return Event(**fields)


def test_store_event_needs_no_page_or_user_agent_and_keeps_its_time() -> None:
    result = build(server_event())
    assert result.drops == []
    capi = result.outbound[0].payload
    assert capi["action_source"] == "physical_store"
    assert capi["event_time"] == int(NOW) - 3 * DAY
    assert "event_source_url" not in capi
    assert capi["user_data"] == {"em": hashlib.sha256(b"jane@example.com").hexdigest()}


def test_store_event_may_be_62_days_old_but_not_more() -> None:
    assert build(server_event(event_time=int(NOW) - 61 * DAY)).outbound
    old = build(server_event(event_time=int(NOW) - 63 * DAY))
    assert old.outbound == []
    assert old.drops == [("too_old", f"event_time {int(NOW) - 63 * DAY} is over 62 days old")]


def test_crm_event_keeps_the_7_day_limit() -> None:
    old = build(server_event(action_source="system_generated", event_time=int(NOW) - 8 * DAY))
    assert old.outbound == []
    assert old.drops[0][0] == "too_old"
    assert "over 7 days old" in old.drops[0][1]


def test_lead_id_is_sent_as_meta_int64_never_hashed() -> None:
    result = build(server_event(event_name="Lead", custom_data={}, action_source="system_generated",
                                user_data={"lead_id": "123456789012345", "em": "a@b.example"}))
    user = result.outbound[0].payload["user_data"]
    assert user["lead_id"] == 123456789012345
    assert len(user["em"]) == 64


def test_malformed_lead_id_is_left_out() -> None:
    result = build(server_event(user_data={"lead_id": "lead-7", "em": "a@b.example"}))
    assert "lead_id" not in result.outbound[0].payload["user_data"]


def test_website_is_the_default_and_still_needs_page_and_user_agent() -> None:
    result = build(server_event(action_source="website", event_time=int(NOW)))
    assert result.outbound == []
    assert result.drops == [("invalid_event",
                             "website event without event_source_url and client_user_agent")]


def test_action_source_is_event_data_for_triggers() -> None:
    assert Scope.from_event(server_event()).data["action_source"] == "physical_store"
    assert Scope.from_event(server_event(action_source="website")).data["action_source"] == \
        "website"


def test_a_trigger_selects_on_action_source(tmp_path: Path) -> None:
    (tmp_path / "store.json").write_text(json.dumps({"tags": [
        {"name": "store", "type": "meta", "pixel_id": "2222222222", "access_token": {"env": "TOKEN"},
         "events": ["Purchase"],
         "conditions": [{"event": "action_source", "op": "equals", "value": "physical_store"}]},
        {"name": "web", "type": "meta", "pixel_id": "3333333333", "access_token": {"env": "TOKEN"},
         "conditions": [{"event": "action_source", "op": "equals", "value": "website"}]},
    ]}))
    container = load_container(tmp_path, environ={"TOKEN": "EAAG-t"})
    store = run_container(container, server_event(), default_country=None, now=NOW)
    assert store.fired == ["store"]
    assert [o.destination.pixel_id for o in store.outbound] == ["2222222222"]
    web = run_container(container, server_event(action_source="website"), default_country=None,
                        now=NOW)
    assert web.fired == ["web"]
