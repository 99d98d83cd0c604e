"""tagserver.meta.validate.clean_custom_data: Meta's typed custom_data fields (Meta "Custom data
parameters"); a bad field or list item is dropped with a reason, never the event."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagserver.meta.validate import MAX_QUANTITY, clean_custom_data, count_of
from tests.fakes.graph import custom_data_problem
from tests.ga4.test_ga4_properties import FAST


def test_contents_are_made_valid_item_by_item() -> None:
    check = clean_custom_data({"contents": [
        {"id": "A", "quantity": 2, "item_price": 9.95, "title": "Tee"},
        {"id": 42, "quantity": 3.0, "item_price": "19.90"},      # converted
        {"id": 7.0, "quantity": "4"},                            # converted
        {"id": "B", "quantity": 1e22},                           # out of bounds: dropped
        {"id": "C", "quantity": 1.5},                            # not an integer: dropped
        {"id": "D", "quantity": -1},                             # negative: dropped
        {"id": "E", "item_price": "9,90"},                       # not a dot decimal: dropped
        {"id": {"x": 1}}, {"quantity": 1}, "F", None,            # no string id: dropped
        {"id": "G", "quantity": 0, "item_price": 0},
    ]})
    assert check.data["contents"] == [
        {"id": "A", "quantity": 2, "item_price": 9.95, "title": "Tee"},
        {"id": "42", "quantity": 3, "item_price": 19.9},
        {"id": "7", "quantity": 4},
        {"id": "G", "quantity": 0, "item_price": 0},
    ]
    assert [field for field, _ in check.dropped] == ["contents"] * 8
    assert "item 3: quantity" in check.dropped[0][1]


@pytest.mark.parametrize("contents", [[{"id": "A", "quantity": 1e22}], "A", {"id": "A"}, 5])
def test_contents_with_nothing_valid_left_is_dropped(contents: object) -> None:
    check = clean_custom_data({"contents": contents, "value": 1})
    assert check.data == {"value": 1}
    assert len(check.dropped) == 1 and check.dropped[0][0] == "contents"
    assert clean_custom_data({"contents": []}).data == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("T-1", "T-1"), (1001, "1001"), (12.5, "12.5"), (12.0, "12"), ("", "")],
)
def test_string_fields_take_numbers_as_decimal_strings(raw: object, expected: str) -> None:
    for key in ("order_id", "content_type", "content_name", "content_category", "search_string",
                "status", "delivery_category"):
        assert clean_custom_data({key: raw}).data == {key: expected}


@pytest.mark.parametrize("raw", [None, True, {"a": 1}, ["a"], float("nan"), float("inf")])
def test_string_fields_of_other_types_are_dropped(raw: object) -> None:
    check = clean_custom_data({"order_id": raw, "value": 5, "currency": "EUR"})
    assert check.data == {"value": 5, "currency": "EUR"}
    assert check.dropped == [("order_id", "expected a string")]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(3, 3), (3.0, 3), ("3", 3), (0, 0), (MAX_QUANTITY, MAX_QUANTITY), (1.5, None), (-1, None),
     (MAX_QUANTITY + 1, None), (1e22, None), (True, None), ("x", None), (None, None),
     (float("nan"), None)],
)
def test_num_items_is_a_bounded_integer(raw: object, expected: int | None) -> None:
    check = clean_custom_data({"num_items": raw})
    assert check.data == ({} if expected is None else {"num_items": expected})
    assert count_of(raw) == expected


def test_content_ids_drop_only_their_bad_items() -> None:
    check = clean_custom_data({"content_ids": ["A", 7, 8.0, 8.5, None, True, {"x": 1}, ""]})
    assert check.data == {"content_ids": ["A", "7", "8"]}
    assert check.dropped == [("content_ids", "5 item(s) not a string id")]
    assert clean_custom_data({"content_ids": "A"}).data == {"content_ids": ["A"]}
    assert clean_custom_data({"content_ids": [None]}).data == {}


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "quantity", "item_price", "title", "x"]), inner, max_size=4),
    max_leaves=12,
)
KEYS = st.sampled_from(["value", "currency", "content_ids", "contents", "num_items", "order_id",
                        "content_type", "content_name", "search_string", "status",
                        "delivery_category", "content_category", "custom"])


@FAST
@given(st.dictionaries(KEYS, JSONISH, max_size=8))
def test_whatever_comes_in_meta_accepts_what_goes_out(raw: dict[str, Any]) -> None:
    """The fake Graph API's type rules hold for every cleaned custom_data."""
    data = clean_custom_data(raw).data
    assert custom_data_problem(data) is None, data
