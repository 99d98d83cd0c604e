"""Fixes from the review of issues 8 and 10: replayed purchase tokens, signing checks, server
events Meta cannot match, an import file without a header row."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from tagserver.exceptions import HitRejected
from tagserver.purchase_token import PurchaseReplayGuard, sign_purchase
from tagserver.server_events.importer import run_import
from tagserver.server_events.parse import parse_server_event

KEYS = ["k" * 32]


def test_a_lowercase_currency_is_signed_upper_case() -> None:
    assert sign_purchase(KEYS, order_id="A-1", value="59.90", currency="eur", expires_in=60)


def test_a_token_vouches_for_one_event_only() -> None:
    guard = PurchaseReplayGuard(ttl_s=100, max_entries=10)
    assert guard.claim("A-1", "evt-1", now=0)
    assert guard.claim("A-1", "evt-1", now=1)  # a retry or reload of the same event
    assert not guard.claim("A-1", "evt-2", now=2)  # the same token on another event
    assert guard.claim("A-2", "evt-2", now=3)
    assert guard.claim("A-1", "evt-3", now=200)  # after the window it is forgotten


def test_the_replay_record_is_bounded() -> None:
    guard = PurchaseReplayGuard(ttl_s=1000, max_entries=3)
    for i in range(5):
        assert guard.claim(f"order-{i}", f"e{i}", now=i)
    assert guard.claim("order-0", "other", now=10)  # evicted first: no longer remembered
    assert not guard.claim("order-4", "other", now=10)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"expires_in": -10}, "positive"),
        ({"expires_in": 0}, "positive"),
        ({"order_id": "A\r\nx"}, "order id"),
        ({"currency": "ABC"}, "ISO 4217"),
        ({"value": "12,5"}, "amount"),
    ],
)
def test_signing_refuses_what_could_never_verify(kwargs: dict[str, object], fragment: str) -> None:
    args: dict[str, object] = {"order_id": "A-1", "value": "59.90", "currency": "EUR",
                               "expires_in": 60, **kwargs}
    with pytest.raises(ValueError, match=fragment):
        sign_purchase(KEYS, **args)  # type: ignore[arg-type]


def _event(**user: object) -> dict[str, object]:
    return {"event_name": "Purchase", "event_id": "p-1", "event_time": int(time.time()) - 60,
            "action_source": "email", "custom_data": {"value": 1, "currency": "EUR"},
            "user_data": user}


@pytest.mark.parametrize(
    "user",
    [{}, {"fn": "Jane", "ln": "Doe"}, {"em": "not-an-email"}, {"ph": "030 1234567"}],
)
def test_a_server_event_without_matchable_customer_data_is_refused(user: dict[str, object]) -> None:
    with pytest.raises(HitRejected) as info:
        parse_server_event(_event(**user), now=time.time())
    assert [e["field"] for e in info.value.errors] == ["user_data"]


@pytest.mark.parametrize("lead_id", ["abc", "123", True, 1.5])
def test_a_malformed_lead_id_is_refused_not_dropped(lead_id: object) -> None:
    with pytest.raises(HitRejected) as info:
        parse_server_event(_event(lead_id=lead_id), now=time.time())
    assert {e["field"] for e in info.value.errors} == {"user_data.lead_id"}


@pytest.mark.parametrize(
    "user",
    [{"em": "jane@example.com"}, {"ph": "+49 30 1234567"}, {"external_id": "c-1"},
     {"lead_id": "123456789012345"}, {"ph": "030 1234567", "country": "DE"}],
)
def test_matchable_server_events_pass(user: dict[str, object]) -> None:
    assert parse_server_event(_event(**user), now=time.time()).action_source == "email"


def test_national_phone_with_the_default_country_passes() -> None:
    event = _event(ph="030 1234567")
    assert parse_server_event(event, now=time.time(), default_country="DE")


def test_import_of_a_file_without_a_header_row_is_a_failure(tmp_path: Path) -> None:
    csv = tmp_path / "rows.csv"
    csv.write_text("a@b.com,1\nc@d.com,2\n", encoding="utf-8")
    err = io.StringIO()
    status = run_import(csv, action_source="physical_store", dry_run=True,
                        out=io.StringIO(), err=err, progress=False)
    assert status == 2
    assert "no recognised column" in err.getvalue()


@pytest.mark.parametrize("event_time", [10**400, "9" * 5000, -(10**400), 1e308 * 10])
def test_an_absurd_event_time_is_a_field_error_not_a_crash(event_time: object) -> None:
    event = _event(em="jane@example.com")
    event["event_time"] = event_time
    with pytest.raises(HitRejected) as info:
        parse_server_event(event, now=time.time())
    assert {e["field"] for e in info.value.errors} == {"event_time"}
