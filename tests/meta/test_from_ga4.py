"""tagserver.meta.from_ga4: GA4 event data → Meta event name, id, custom and user data."""

from __future__ import annotations

import pytest

from tagserver.meta.events import GA4_TO_META
from tagserver.meta.from_ga4 import (
    ga4_custom_data,
    ga4_event_id,
    ga4_user_data,
    meta_from_ga4,
)
from tagserver.meta.normalize import hash_user_data, sha256_hex


def minted() -> str:
    return "minted-1"


@pytest.mark.parametrize(("ga4", "meta"), sorted(GA4_TO_META.items()))
def test_names_follow_the_standard_table(ga4: str, meta: str) -> None:
    assert meta_from_ga4({"event_name": ga4}).event_name == meta


def test_other_names_pass_unchanged() -> None:
    assert meta_from_ga4({"event_name": "scroll"}).event_name == "scroll"
    assert meta_from_ga4({"event_name": "Purchase"}).event_name == "Purchase"


def test_event_id_from_the_page_is_echoed() -> None:
    assert ga4_event_id({"event_name": "purchase", "event_id": " x-1", "transaction_id": "T"},
                        mint=minted) == (" x-1", "param")
    assert ga4_event_id({"event_id": 1234}, mint=minted) == ("1234", "param")


def test_event_id_parameter_is_configurable() -> None:
    data = {"event_name": "page_view", "event_id": "ignored", "eid": "mine"}
    assert ga4_event_id(data, event_id_param="eid", mint=minted) == ("mine", "param")


def test_purchase_without_id_derives_it_from_the_transaction() -> None:
    data = {"event_name": "purchase", "transaction_id": "T-1001"}
    assert ga4_event_id(data, mint=minted) == ("purchase-T-1001", "transaction")
    # a repeated purchase hit gets the same id: Meta counts it once
    assert ga4_event_id(dict(data), mint=minted) == ga4_event_id(data, mint=minted)


@pytest.mark.parametrize(
    "data",
    [
        {"event_name": "page_view"},
        {"event_name": "add_to_cart", "transaction_id": "T-1"},  # not a purchase
        {"event_name": "purchase", "transaction_id": "  "},
        {"event_name": "purchase", "event_id": "", "transaction_id": ""},
        {"event_name": "page_view", "event_id": "x" * 201},
        {"event_name": "page_view", "event_id": "a\nb"},
        {"event_name": "page_view", "event_id": True},
    ],
)
def test_otherwise_an_id_is_minted(data: dict[str, object]) -> None:
    assert ga4_event_id(data, mint=minted) == ("minted-1", "minted")


def test_minted_ids_are_fresh_by_default() -> None:
    first = meta_from_ga4({"event_name": "page_view"}).event_id
    assert first != meta_from_ga4({"event_name": "page_view"}).event_id


def test_custom_data_from_value_currency_and_items() -> None:
    data = {
        "event_name": "purchase", "value": 30.03, "currency": "USD", "transaction_id": "T-9",
        "items": [
            {"item_id": "04639", "price": 10.01, "quantity": 2},
            {"item_id": "B", "item_name": "no price"},
            {"item_name": "no id, left out"},
            "garbage",
        ],
    }
    assert ga4_custom_data(data) == {
        "value": 30.03,
        "currency": "USD",
        "content_ids": ["04639", "B"],
        "contents": [{"id": "04639", "quantity": 2, "item_price": 10.01},
                     {"id": "B", "quantity": 1}],
        "num_items": 3,
        "content_type": "product",
        "order_id": "T-9",
    }


def test_item_quantities_are_bounded_integers() -> None:
    """``pr1=idA~qt9999999999999999999999`` must not become a quantity of 1e+22."""
    from tagserver.ga4.items import parse_item

    huge, _ = parse_item("idA~qt9999999999999999999999")
    items = [huge, {"item_id": "B", "quantity": 2.0}, {"item_id": "C", "quantity": 1.5},
             {"item_id": "D", "quantity": -3}, {"item_id": "E", "quantity": 999_995}]
    custom = ga4_custom_data({"items": items})
    assert [c["quantity"] for c in custom["contents"]] == [1, 2, 1, 1, 999_995]
    assert all(type(c["quantity"]) is int for c in custom["contents"])
    assert custom["num_items"] == 1_000_000
    many = ga4_custom_data({"items": [{"item_id": "A", "quantity": 1_000_000}] * 2})
    assert "num_items" not in many  # above the bound: left out rather than sent absurd


def test_search_and_passthrough_fields() -> None:
    assert ga4_custom_data({"search_term": "shoes", "content_name": "Tee", "other": "x"}) == {
        "search_string": "shoes", "content_name": "Tee"}


def test_value_is_never_invented() -> None:
    assert ga4_custom_data({"event_name": "purchase", "items": []}) == {}
    assert ga4_custom_data({"value": True}) == {}


def test_user_data_keys_map_to_meta() -> None:
    data = {"user_data": {
        "email_address": "Jane@Example.com",
        "sha256_email_address": "A" * 64,
        "phone_number": "+1 650 555 1212",
        "address": {"first_name": "Jane", "last_name": "Doe", "city": "Paris",
                    "region": "IDF", "postal_code": 75001, "country": "FR", "street": "x"},
        "external_id": "cust-1",
        "unknown": "dropped",
    }}
    assert ga4_user_data(data) == {
        "em": ["Jane@Example.com", "A" * 64],
        "ph": "+1 650 555 1212",
        "fn": "Jane", "ln": "Doe", "ct": "Paris", "st": "IDF", "zp": "75001", "country": "FR",
        "external_id": "cust-1",
    }


def test_user_data_is_hashed_by_the_conformance_module() -> None:
    raw = ga4_user_data({"user_data": {"email": " Jane@Example.com "}})
    assert hash_user_data(raw) == {"em": sha256_hex("jane@example.com")}


def test_user_data_ignores_non_objects_and_empty_values() -> None:
    assert ga4_user_data({"user_data": "x"}) == {}
    assert ga4_user_data({"user_data": {"email": "  ", "phone_number": None}}) == {}


def test_page_fbp_and_fbc_are_taken_when_well_formed() -> None:
    good = meta_from_ga4({"event_name": "x", "fbp": "fb.1.1760043840841.1234567890123456789",
                          "fbc": "fb.1.1760043840841.IwAR_x"})
    assert good.fbp == "fb.1.1760043840841.1234567890123456789"
    assert good.fbc == "fb.1.1760043840841.IwAR_x"
    bad = meta_from_ga4({"event_name": "x", "fbp": "fb.1.1697698245670.", "fbc": "junk"})
    assert bad.fbp is None and bad.fbc is None
