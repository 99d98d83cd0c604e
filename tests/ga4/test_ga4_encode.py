"""tagserver.ga4.encode: event data back to GA4 parameters (what a ga4 tag forwards after a
transformation), and the forwarded hit under edits."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagserver.clients.ga4 import parse_ga4_request
from tagserver.ga4.encode import (
    NOT_FORWARDED,
    changed_keys,
    encode_for_google,
    encode_item,
    encode_key,
    encode_pair,
    format_number,
    is_contact_param,
    param_key,
)
from tagserver.ga4.event_data import build_event_data
from tagserver.ga4.forward import build_forward_payload
from tagserver.ga4.items import parse_item
from tests.ga4.test_ga4_properties import FAST, VALUES

#: Parameter names of every kind build_event_data knows (and some it only keeps).
NAMES = st.sampled_from(
    ["en", "dt", "dl", "dr", "uid", "sid", "sct", "seg", "ul", "sr", "cu", "_et", "_p", "_s",
     "_ss", "_fv", "gtm", "tfd", "ep.a", "ep.page_type", "epn.value", "epn.tax", "up.b", "upn.c",
     "pr1", "pr2", "pr3", "sst.x", "sst.tft", "uaa", "uab", "uafvl", "uamb", "uam", "uap", "uapv",
     "uaw", "gcs", "gcd", "npa", "ur", "ep.user_data.email_address", "ep.user_data.address.city",
     "epn.user_data.n", "ep.event_id", "ep.transaction_id", "weird", "x", "ep.user_data"]
)


def reencode(data: dict[str, object]) -> list[tuple[str, str]]:
    return [pair for key, value in data.items() for pair in encode_key(key, value)]


def pruned(value: object) -> object:
    """``value`` without empty objects (left by a user_data number that did not parse): no
    parameter carries an empty object."""
    if isinstance(value, dict):
        kept = {k: pruned(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v != {}}
    return value


@FAST
@given(pairs=st.lists(st.tuples(NAMES, VALUES), max_size=16))
def test_event_data_survives_a_round_trip(pairs: list[tuple[str, str]]) -> None:
    data, _ = build_event_data(pairs)
    again, problems = build_event_data(reencode(data))
    assert again == pruned(data)
    assert problems == []


@FAST
@given(pairs=st.lists(st.tuples(NAMES, VALUES), max_size=16))
def test_every_parameter_feeds_the_key_it_names(pairs: list[tuple[str, str]]) -> None:
    data, _ = build_event_data(pairs)
    for name, _value in pairs:
        key = param_key(name)
        assert key is not None
        alone, _ = build_event_data([(name, _value)])
        assert set(alone) <= {key, "event_location"}, (name, alone)


@pytest.mark.parametrize(
    ("name", "key"),
    [("en", "event_name"), ("dl", "page_location"), ("_et", "engagement_time_msec"),
     ("_ss", "x-ga-system_properties"), ("ep.user_data.email_address", "user_data"),
     ("ep.user_data.", "user_data."), ("epn.value", "value"), ("pr12", "items"),
     ("up.plan", "x-ga-mp2-user_properties"), ("sst.tft", "x-sst-system_properties"),
     ("uafvl", "client_hints"), ("gcs", "x-ga-gcs"), ("tid", "x-ga-measurement_id"),
     ("foo", "x-ga-mp2-foo"), ("richsstsse", None), ("_uip", None)],
)
def test_param_key(name: str, key: str | None) -> None:
    assert param_key(name) == key


def test_encode_key_forms() -> None:
    assert encode_key("page_title", "Tee | Shop") == [("dt", "Tee | Shop")]
    assert encode_key("value", 39.8) == [("epn.value", "39.8")]
    assert encode_key("value", 40.0) == [("epn.value", "40")]
    assert encode_key("page_type", "checkout") == [("ep.page_type", "checkout")]
    assert encode_key("logged_in", True) == [("ep.logged_in", "true")]
    assert encode_key("user_data", {"email_address": "a@b.c", "address": {"city": "Köln"}}) == [
        ("ep.user_data.email_address", "a@b.c"), ("ep.user_data.address.city", "Köln")]
    assert encode_key("x-ga-mp2-user_properties", {"plan": "pro", "n": 2}) == [
        ("up.plan", "pro"), ("upn.n", "2")]
    assert encode_key("items", [{"item_id": "A", "price": 9.5, "quantity": 2, "color": "red"}]) == [
        ("pr1", "idA~pr9.5~qt2~k0color~v0red")]
    assert encode_key("client_hints", {"mobile": False, "platform": "macOS"}) == [
        ("uamb", "0"), ("uap", "macOS")]
    # no GA4 parameter carries these, or the value is not one a parameter holds
    for key in NOT_FORWARDED:
        assert encode_key(key, "x") == []
    assert encode_key("nested", {"a": 1}) == [] and encode_key("listed", [1]) == []
    assert encode_key("gone", None) == []


def test_items_keep_their_fields() -> None:
    item = {"item_id": "SKU_1", "item_name": "Tee", "price": 10.01, "quantity": 3, "zz": "kept",
            "id": "custom id", "price_tier": "b"}
    text = encode_item(item)
    assert parse_item(text) == (item, [])
    assert encode_item({"item_name": "a~b"}) == ""  # a ~ cannot travel inside an item
    assert encode_item("not an item") == ""


def test_format_number_and_pair() -> None:
    assert [format_number(n) for n in (3, 10.0, 10.01, 1e-07, 1e21)] == [
        "3", "10", "10.01", "1e-07", "1e+21"]
    assert encode_pair("ep.page type", "a&b=c é") == "ep.page%20type=a%26b%3Dc%20%C3%A9"


def test_changed_keys() -> None:
    assert changed_keys({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 5, "d": 4}) == {"b", "c", "d"}


QUERY = "v=2&tid=G-1&cid=1.2&en=purchase&dt=Shop&uid=u-7&ep.user_data.email_address=a%40b.c"


def test_forward_with_edits_rewrites_only_the_changed_keys() -> None:
    (hit,) = parse_ga4_request(path="/g/collect", query=QUERY + "&richsstsse").hits
    payload = build_forward_payload(
        hit, client_ip="198.51.100.7",
        edits={"user_id": None, "user_data": None, "page_title": "Shop (DE)", "market": "de",
               "custom_data": {"value": 1}})
    assert payload["query"] == (
        "v=2&tid=G-1&cid=1.2&en=purchase&dt=Shop%20(DE)&ep.market=de&_uip=198.51.100.7")


def test_forward_edits_go_into_the_body_line() -> None:
    (hit,) = parse_ga4_request(path="/g/collect", query="v=2&tid=G-1&cid=1.2&dt=Q",
                               body=b"en=page_view&dt=Line&ep.x=1").hits
    payload = build_forward_payload(hit, client_ip=None,
                                    edits={"page_title": None, "client_id": "9.9"})
    assert payload["query"] == "v=2&tid=G-1&_uip=::"
    assert payload["body"] == "en=page_view&ep.x=1&cid=9.9"


def test_required_parameters_are_never_removed() -> None:
    (hit,) = parse_ga4_request(path="/g/collect", query=QUERY).hits
    payload = build_forward_payload(
        hit, client_ip=None, measurement_id="G-OTHER",
        edits={"event_name": None, "x-ga-protocol_version": None, "x-ga-measurement_id": "G-X"})
    assert payload["query"].startswith("v=2&tid=G-OTHER&cid=1.2&en=purchase&")
    renamed = build_forward_payload(hit, client_ip=None, edits={"event_name": "refund"})
    assert "en=refund" in renamed["query"] and "en=purchase" not in renamed["query"]
    json.dumps(payload)


@pytest.mark.parametrize(
    ("name", "contact"),
    [("ep.user_data.email_address", True), ("epn.user_data.x", True), ("up.user_data.a.b", True),
     ("upn.user_data.n", True), ("ep.user_data", True), ("Ep.User_Data.phone_number", True),
     ("ep.user_datax", False), ("ep.email", False), ("user_data.email", False),
     ("em", False), ("ep.event_id", False)],
)
def test_is_contact_param(name: str, contact: bool) -> None:
    assert is_contact_param(name) is contact


def test_encode_for_google_leaves_contact_data_out() -> None:
    assert encode_for_google("user_data", {"email_address": "a@b.c"}) == []
    assert encode_for_google("user_data", "text") == []
    assert encode_for_google("x-ga-mp2-user_properties", {"user_data": {"x": "y"}, "p": 1}) == [
        ("upn.p", "1")]
    assert encode_for_google("page_title", "T") == encode_key("page_title", "T")
