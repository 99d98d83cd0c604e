"""Pins the behaviour of the fake Graph API: a wrong fake makes every end-to-end test lie."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.fakes.graph import FakeGraphAPI, event_ids

TOKEN = "EAAB-FAKE-TOKEN"
PATH = "/v25.0/1234567890/events"
ERROR_KEYS = {"message", "type", "code", "is_transient", "fbtrace_id"}


@pytest.fixture
def fake() -> Iterator[FakeGraphAPI]:
    with FakeGraphAPI() as graph:
        yield graph


def make_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_name": "PageView",
        "event_time": int(time.time()),
        "event_id": "ev-1",
        "action_source": "website",
        "event_source_url": "https://www.shop.example/p/1",
        "user_data": {"client_user_agent": "Mozilla/5.0", "client_ip_address": "203.0.113.7"},
    }
    event.update(overrides)
    return event


def post(
    fake: FakeGraphAPI,
    events: Any = None,
    *,
    path: str = PATH,
    token: str | None = TOKEN,
    body: dict[str, Any] | None = None,
) -> httpx.Response:
    if body is None:
        body = {"data": [make_event()] if events is None else events}
        if token is not None:
            body["access_token"] = token
    return httpx.post(fake.url + path, json=body, timeout=10)


def error_of(response: httpx.Response) -> dict[str, Any]:
    payload = response.json()
    assert set(payload) == {"error"}, payload
    error: dict[str, Any] = payload["error"]
    assert ERROR_KEYS <= set(error), error
    assert error["type"] == "OAuthException"
    assert isinstance(error["fbtrace_id"], str) and error["fbtrace_id"]
    return error


def assert_rejected(response: httpx.Response, *, code: int, subcode: int | None) -> None:
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == code, error
    assert error.get("error_subcode") == subcode, error
    assert error["is_transient"] is False


# --- success and recording ----------------------------------------------------------------


def test_url_is_loopback_base_url(fake: FakeGraphAPI) -> None:
    assert fake.url.startswith("http://127.0.0.1:")
    assert not fake.url.endswith("/")
    assert int(fake.url.rsplit(":", 1)[1]) > 0


def test_valid_request_is_answered_like_meta(fake: FakeGraphAPI) -> None:
    events = [make_event(event_id="a"), make_event(event_id="b")]
    response = post(fake, events)
    assert response.status_code == 200
    payload = response.json()
    assert payload["events_received"] == 2
    assert payload["messages"] == []
    assert isinstance(payload["fbtrace_id"], str) and payload["fbtrace_id"]
    assert event_ids(fake.accepted_events()) == ["a", "b"]
    assert event_ids(fake.events_seen()) == ["a", "b"]


def test_request_is_recorded_in_full(fake: FakeGraphAPI) -> None:
    body = {"data": [make_event()], "access_token": TOKEN}
    raw = json.dumps(body).encode()
    httpx.post(
        fake.url + PATH + "?appsecret_proof=x",
        content=raw,
        headers={"Content-Type": "application/json", "X-Probe": "1"},
    )
    (recorded,) = fake.requests
    assert recorded.method == "POST"
    assert recorded.path == PATH
    assert recorded.query == "appsecret_proof=x"
    assert recorded.headers["x-probe"] == "1"
    assert recorded.raw_body == raw
    assert recorded.body == body
    assert recorded.events == tuple(body["data"])
    assert recorded.access_token == TOKEN
    assert recorded.token_in_url is False
    assert recorded.status == 200
    assert recorded.response_json["events_received"] == 1


def test_fbtrace_ids_are_random(fake: FakeGraphAPI) -> None:
    first, second = post(fake).json(), post(fake).json()
    assert first["fbtrace_id"] != second["fbtrace_id"]


def test_form_encoded_body_with_json_data_is_accepted(fake: FakeGraphAPI) -> None:
    form = urlencode({"data": json.dumps([make_event(event_id="f1")]), "access_token": TOKEN})
    response = httpx.post(
        fake.url + PATH,
        content=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert event_ids(fake.accepted_events()) == ["f1"]


def test_gzip_body_is_accepted(fake: FakeGraphAPI) -> None:
    raw = gzip.compress(json.dumps({"data": [make_event()], "access_token": TOKEN}).encode())
    response = httpx.post(
        fake.url + PATH,
        content=raw,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text


def test_unparseable_body_is_400(fake: FakeGraphAPI) -> None:
    response = httpx.post(
        fake.url + PATH, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_rejected(response, code=100, subcode=None)


# --- path and token -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/25.0/1234567890/events", "/v25/1234567890/events", "/v25.0/events", "/events"]
)
def test_bad_path_or_version_is_rejected(fake: FakeGraphAPI, path: str) -> None:
    response = post(fake, path=path)
    assert response.status_code == 400
    assert error_of(response)["code"] == 2500
    assert fake.accepted_events() == []


def test_get_is_not_supported(fake: FakeGraphAPI) -> None:
    response = httpx.get(fake.url + PATH)
    assert response.status_code == 400
    assert error_of(response)["code"] == 100


@pytest.mark.parametrize("token", [None, ""])
def test_missing_token_is_190(fake: FakeGraphAPI, token: str | None) -> None:
    response = post(fake, token=token)
    assert_rejected(response, code=190, subcode=None)
    assert "Invalid OAuth access token" in error_of(response)["message"]
    assert fake.accepted_events() == []
    assert len(fake.events_seen()) == 1


def test_unknown_token_is_190_when_tokens_are_configured(fake: FakeGraphAPI) -> None:
    fake.valid_tokens = {"EAAB-THE-RIGHT-ONE"}
    assert_rejected(post(fake, token=TOKEN), code=190, subcode=None)
    assert post(fake, token="EAAB-THE-RIGHT-ONE").status_code == 200


def test_any_token_is_valid_by_default(fake: FakeGraphAPI) -> None:
    assert fake.valid_tokens is None
    assert post(fake, token="anything").status_code == 200


def test_error_body_does_not_echo_the_token(fake: FakeGraphAPI) -> None:
    fake.valid_tokens = {"other"}
    response = post(fake, token=TOKEN)
    assert TOKEN not in response.text


def test_token_in_url_is_accepted_but_recorded(fake: FakeGraphAPI) -> None:
    response = httpx.post(fake.url + PATH + "?access_token=" + TOKEN, json={"data": [make_event()]})
    assert response.status_code == 200, response.text
    (recorded,) = fake.requests
    assert recorded.token_in_url is True
    assert recorded.access_token == TOKEN
    post(fake)
    assert fake.requests[1].token_in_url is False


def test_bearer_header_token_is_accepted(fake: FakeGraphAPI) -> None:
    response = httpx.post(
        fake.url + PATH,
        json={"data": [make_event()]},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 200
    assert fake.requests[0].access_token == TOKEN


# --- data ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": TOKEN},
        {"access_token": TOKEN, "data": []},
        {"access_token": TOKEN, "data": {"event_name": "PageView"}},
        {"access_token": TOKEN, "data": "[]"},
    ],
)
def test_data_missing_or_not_a_list_is_code_100(fake: FakeGraphAPI, body: dict[str, Any]) -> None:
    assert_rejected(post(fake, body=body), code=100, subcode=None)


def test_at_most_1000_events(fake: FakeGraphAPI) -> None:
    events = [make_event(event_id=f"e{i}") for i in range(1001)]
    assert_rejected(post(fake, events), code=100, subcode=None)
    assert fake.accepted_events() == []
    assert post(fake, events[:1000]).json()["events_received"] == 1000
    assert len(fake.accepted_events()) == 1000


# --- event validation: one bad event rejects the whole request ------------------------------


def test_one_old_event_rejects_the_whole_request(fake: FakeGraphAPI) -> None:
    old = make_event(event_id="old", event_time=int(time.time()) - 8 * 24 * 3600)
    response = post(fake, [make_event(event_id="good"), old])
    assert_rejected(response, code=100, subcode=2804003)
    error = error_of(response)
    assert error["error_user_title"] == "Event Timestamp Too Old"
    assert "data[1]" in error["error_user_msg"]
    assert fake.accepted_events() == []
    assert event_ids(fake.events_seen()) == ["good", "old"]


def test_event_six_days_old_is_accepted(fake: FakeGraphAPI) -> None:
    event = make_event(event_time=int(time.time()) - 6 * 24 * 3600)
    assert post(fake, [event]).status_code == 200


@pytest.mark.parametrize(
    "event_time", [int(time.time() * 1000), time.time(), str(int(time.time())), True]
)
def test_event_time_must_be_integer_seconds(fake: FakeGraphAPI, event_time: Any) -> None:
    response = post(fake, [make_event(event_time=event_time)])
    assert response.status_code == 400
    assert error_of(response)["error_subcode"] in (2804001, 2804004)


@pytest.mark.parametrize(
    "custom_data",
    [{}, {"value": 10}, {"currency": "USD"}, {"value": "10", "currency": "USD"}, None],
)
def test_purchase_needs_value_and_currency(
    fake: FakeGraphAPI, custom_data: dict[str, Any] | None
) -> None:
    event = make_event(event_name="Purchase")
    if custom_data is not None:
        event["custom_data"] = custom_data
    response = post(fake, [event])
    assert_rejected(response, code=100, subcode=2804009)
    assert error_of(response)["error_user_title"] == "Invalid purchase value"


def test_purchase_with_value_and_currency_is_accepted(fake: FakeGraphAPI) -> None:
    event = make_event(event_name="Purchase", custom_data={"value": 0, "currency": "EUR"})
    assert post(fake, [event]).status_code == 200


@pytest.mark.parametrize(
    "fbc",
    [
        "fb.1.1697698245670.",
        "fb.1.1697698245670",
        "fb.1.abc.IwAR2xYz",
        "fb.12.1697698245670.IwAR2xYz",
        "fbc.1.1697698245670.IwAR2xYz",
        "fb.1.1697698245670.IwAR.x.y",
        "",
        123,
    ],
)
def test_malformed_fbc_is_2804001(fake: FakeGraphAPI, fbc: Any) -> None:
    event = make_event()
    event["user_data"]["fbc"] = fbc
    assert_rejected(post(fake, [event]), code=100, subcode=2804001)


@pytest.mark.parametrize(
    "fbc",
    [
        "fb.1.1697698245670.IwAR2xYz-_AbC",
        "fb.1.1657051589577.IwZXh0bgNhZW0CMTAAAR-uK_5w",
        "fb.2.1697698245670.IwAR2xYz.AQ",
        "fb.1.1697698245670.IwAR2xYz.AQEAAQMB",
    ],
)
def test_wellformed_fbc_is_accepted(fake: FakeGraphAPI, fbc: str) -> None:
    event = make_event()
    event["user_data"]["fbc"] = fbc
    assert post(fake, [event]).status_code == 200


def test_malformed_fbp_is_2804001(fake: FakeGraphAPI) -> None:
    good, bad = make_event(), make_event()
    good["user_data"]["fbp"] = "fb.1.1657051589577.1088522659.AQEAAQMB"
    bad["user_data"]["fbp"] = "fb.1.1657051589577."
    assert post(fake, [good]).status_code == 200
    assert_rejected(post(fake, [bad]), code=100, subcode=2804001)


@pytest.mark.parametrize("missing", ["event_name", "event_time", "action_source"])
def test_missing_required_field_is_2804050(fake: FakeGraphAPI, missing: str) -> None:
    event = make_event()
    del event[missing]
    response = post(fake, [event])
    assert_rejected(response, code=100, subcode=2804050)
    assert missing in error_of(response)["error_user_msg"]


def test_unknown_action_source_is_rejected(fake: FakeGraphAPI) -> None:
    assert_rejected(post(fake, [make_event(action_source="web")]), code=100, subcode=2804001)


def test_website_event_needs_client_user_agent(fake: FakeGraphAPI) -> None:
    event = make_event()
    del event["user_data"]["client_user_agent"]
    response = post(fake, [event])
    assert_rejected(response, code=100, subcode=2804050)
    assert "client_user_agent" in error_of(response)["error_user_msg"]
    # not needed outside the website
    assert post(fake, [make_event(action_source="system_generated", user_data={})]).is_success


def test_website_event_needs_event_source_url(fake: FakeGraphAPI) -> None:
    event = make_event()
    del event["event_source_url"]
    assert_rejected(post(fake, [event]), code=100, subcode=2804050)


def test_first_bad_event_decides_the_subcode(fake: FakeGraphAPI) -> None:
    purchase = make_event(event_name="Purchase")
    old = make_event(event_time=int(time.time()) - 30 * 24 * 3600)
    assert_rejected(post(fake, [make_event(), purchase, old]), code=100, subcode=2804009)
    assert_rejected(post(fake, [old, purchase]), code=100, subcode=2804003)


@pytest.mark.parametrize(
    "custom_data",
    [{"contents": [{"id": "A", "quantity": 1e22}]}, {"contents": [{"id": "A", "quantity": "2"}]},
     {"contents": [{"id": "A", "quantity": -1}]}, {"contents": [{"id": 7, "quantity": 1}]},
     {"contents": [{"quantity": 1}]}, {"contents": ["A"]}, {"contents": {"id": "A"}},
     {"contents": [{"id": "A", "item_price": "9.90"}]}, {"num_items": 1.5},
     {"num_items": "3"}, {"num_items": True}, {"order_id": 1001}, {"content_type": None},
     {"content_name": {"x": 1}}, {"search_string": ["a"]}, {"status": True},
     {"delivery_category": 1}, {"content_category": 2.5}, {"content_ids": [1, "A"]},
     {"content_ids": "A"}, {"value": "10"}],
)
def test_custom_data_of_the_wrong_type_is_rejected(
    fake: FakeGraphAPI, custom_data: dict[str, Any]
) -> None:
    response = post(fake, [make_event(), make_event(custom_data=custom_data)])
    assert_rejected(response, code=100, subcode=2804001)
    error = error_of(response)
    assert error["error_user_title"] == "Invalid parameter"
    assert "custom_data." in error["error_user_msg"]


def test_custom_data_of_metas_types_is_accepted(fake: FakeGraphAPI) -> None:
    custom_data = {
        "value": 19.9, "currency": "EUR", "content_ids": ["A", "7"], "num_items": 3,
        "contents": [{"id": "A", "quantity": 2, "item_price": 9.95, "title": "Tee"},
                     {"id": "7", "quantity": 0}, {"id": "B"}],
        "order_id": "1001", "content_type": "product", "content_name": "Tee",
        "content_category": "Shirts", "search_string": "tee", "status": "done",
        "delivery_category": "home_delivery", "custom_key": {"anything": [1, None]},
    }
    assert post(fake, [make_event(custom_data=custom_data)]).status_code == 200


def test_error_body_has_metas_shape(fake: FakeGraphAPI) -> None:
    response = post(fake, [make_event(event_name="Purchase")])
    assert response.headers["content-type"].startswith("application/json")
    error = error_of(response)
    assert set(error) == {
        "message",
        "type",
        "code",
        "error_subcode",
        "is_transient",
        "error_user_title",
        "error_user_msg",
        "fbtrace_id",
    }


# --- configurable behaviour ---------------------------------------------------------------


def test_fail_next_default_is_transient_503_then_normal(fake: FakeGraphAPI) -> None:
    fake.fail_next(1)
    first = post(fake, [make_event(event_id="x")])
    assert first.status_code == 503
    error = error_of(first)
    assert error["code"] == 2
    assert error["is_transient"] is True
    second = post(fake, [make_event(event_id="x")])
    assert second.status_code == 200
    assert event_ids(fake.events_seen()) == ["x", "x"]
    assert event_ids(fake.accepted_events()) == ["x"]
    assert [r.status for r in fake.requests] == [503, 200]


def test_fail_next_counts_requests(fake: FakeGraphAPI) -> None:
    fake.fail_next(2, status=500, error_code=1)
    assert [post(fake).status_code for _ in range(3)] == [500, 500, 200]


def test_fail_next_applies_even_to_invalid_requests(fake: FakeGraphAPI) -> None:
    fake.fail_next(1)
    assert post(fake, token=None).status_code == 503
    assert post(fake, token=None).status_code == 400


def test_fail_next_permanent_error(fake: FakeGraphAPI) -> None:
    fake.fail_next(1, status=400, error_code=100, is_transient=False, error_subcode=2804001)
    assert_rejected(post(fake), code=100, subcode=2804001)


def test_fail_next_html_like_a_proxy(fake: FakeGraphAPI) -> None:
    fake.fail_next(1, status=502, html=True)
    response = post(fake)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.lstrip().startswith("<html")
    assert fake.requests[0].response_json is None


def test_fail_next_429_with_retry_after(fake: FakeGraphAPI) -> None:
    fake.fail_next(1, status=429, error_code=17, retry_after=2)
    response = post(fake)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert error_of(response)["code"] == 17
    assert "retry-after" not in post(fake).headers


def test_set_latency(fake: FakeGraphAPI) -> None:
    fake.set_latency(0.3)
    started = time.monotonic()
    assert post(fake).status_code == 200
    assert time.monotonic() - started >= 0.3
    fake.set_latency(0)
    started = time.monotonic()
    post(fake)
    assert time.monotonic() - started < 0.3


def test_reject_event_ids_rejects_the_whole_request(fake: FakeGraphAPI) -> None:
    fake.reject_event_ids({"bad-1"})
    response = post(fake, [make_event(event_id="ok-1"), make_event(event_id="bad-1")])
    assert_rejected(response, code=100, subcode=2804001)
    assert fake.accepted_events() == []
    assert post(fake, [make_event(event_id="ok-1")]).status_code == 200
    assert event_ids(fake.accepted_events()) == ["ok-1"]


def test_reject_event_ids_with_subcode(fake: FakeGraphAPI) -> None:
    fake.reject_event_ids(["bad-2"], subcode=2804003)
    assert_rejected(post(fake, [make_event(event_id="bad-2")]), code=100, subcode=2804003)


def test_reset_forgets_requests_and_configuration(fake: FakeGraphAPI) -> None:
    fake.fail_next(3)
    fake.reject_event_ids({"ev-1"})
    fake.valid_tokens = {"x"}
    post(fake)
    fake.reset()
    assert fake.requests == []
    assert post(fake).status_code == 200


# --- waiting and threads ------------------------------------------------------------------


def test_wait_for_events_returns_when_they_arrive(fake: FakeGraphAPI) -> None:
    def later() -> None:
        time.sleep(0.2)
        post(fake, [make_event(event_id="late")])

    thread = threading.Thread(target=later)
    thread.start()
    try:
        events = fake.wait_for_events(1, timeout=5)
    finally:
        thread.join()
    assert event_ids(events) == ["late"]


def test_wait_for_events_times_out_with_what_it_has(fake: FakeGraphAPI) -> None:
    fake.fail_next(1)
    post(fake, [make_event(event_id="failed-one")])
    with pytest.raises(AssertionError, match="failed-one") as excinfo:
        fake.wait_for_events(1, timeout=0.2)
    assert "503" in str(excinfo.value)


def test_wait_for_requests(fake: FakeGraphAPI) -> None:
    post(fake, token=None)
    assert len(fake.wait_for_requests(1, timeout=1)) == 1
    with pytest.raises(AssertionError):
        fake.wait_for_requests(2, timeout=0.1)


def test_concurrent_requests_are_all_recorded(fake: FakeGraphAPI) -> None:
    fake.set_latency(0.05)
    errors: list[BaseException] = []

    def send(i: int) -> None:
        try:
            assert post(fake, [make_event(event_id=f"c{i}")]).status_code == 200
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(event_ids(fake.accepted_events())) == sorted(f"c{i}" for i in range(20))
    assert len(fake.requests) == 20


def test_keep_alive_connection_is_reused(fake: FakeGraphAPI) -> None:
    with httpx.Client(base_url=fake.url) as client:
        for i in range(3):
            body = {"data": [make_event(event_id=f"k{i}")], "access_token": TOKEN}
            assert client.post(PATH, json=body).status_code == 200
    assert event_ids(fake.accepted_events()) == ["k0", "k1", "k2"]


def test_stopped_fake_refuses_connections() -> None:
    with FakeGraphAPI() as graph:
        url = graph.url
    with pytest.raises(httpx.ConnectError):
        httpx.post(url + PATH, json={}, timeout=2)
    with pytest.raises(RuntimeError):
        _ = graph.url
