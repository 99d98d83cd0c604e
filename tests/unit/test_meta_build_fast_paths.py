"""The Meta build's written-out steps give what the general ones give, key order included (the
CAPI payload's bytes depend on it): custom data topped up from the common event data keys, the
aliases of a ``POST /e`` event's data, and the copy made by ``clean_custom_data``."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tagserver.container.event_data import add_aliases, event_data_from_event
from tagserver.event import Event
from tagserver.meta.validate import clean_custom_data
from tagserver.tags.meta import _topped_up, common_custom_data
from tests.meta.test_validate_copy import containers

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(
    max_size=4
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=10,
)  # fmt: skip
#: GA4 items and Meta contents as pages send them: mostly objects with the usual keys.
items = st.lists(
    st.dictionaries(st.sampled_from(["item_id", "id", "quantity", "price", "item_price", "x"]),
                    scalars, max_size=4) | scalars,
    max_size=3,
)  # fmt: skip
custom_keys = st.sampled_from(
    ["value", "currency", "order_id", "contents", "content_ids", "content_type", "num_items", "x"]
)
customs = st.dictionaries(custom_keys, json_values | items, max_size=6)
common = st.fixed_dictionaries(
    {},
    optional={"value": scalars, "currency": scalars, "transaction_id": scalars,
              "items": items | scalars, "event_name": st.just("Purchase")},
)  # fmt: skip


@settings(max_examples=400, deadline=None, database=None)
@given(common, customs)
def test_topped_up_is_the_merge_with_the_common_keys(data: dict[str, Any], raw: dict[str, Any]
                                                      ) -> None:  # fmt: skip
    expected = {**common_custom_data(data), **raw}
    got = _topped_up(data, raw)
    assert got == expected and list(got) == list(expected)
    if not common_custom_data(data):
        assert got is raw


@settings(max_examples=300, deadline=None, database=None)
@given(customs)
def test_collect_event_data_aliases_as_add_aliases_makes_them(custom: dict[str, Any]) -> None:
    event = Event("Purchase", "e1", 1_760_000_000, 1_760_000_000.0, custom_data=custom)
    data = event_data_from_event(event)
    plain = {k: v for k, v in data.items() if k not in ("value", "currency", "transaction_id",
                                                           "items")}  # fmt: skip
    expected = add_aliases(plain)
    assert data == expected and list(data) == list(expected)


@settings(max_examples=300, deadline=None, database=None)
@given(customs)
def test_cleaned_custom_data_shares_no_container_with_its_input(raw: dict[str, Any]) -> None:
    """The typed keys are taken without a copy (their values are always replaced): nothing of
    the input is shared by the result all the same."""
    cleaned = clean_custom_data(raw).data
    originals = {id(c) for c in containers(raw)}
    assert not originals & {id(c) for c in containers(cleaned)}


def reference_clean(raw: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """clean_custom_fields as it was written before its one-pass form: a copy of everything,
    then each typed key checked in turn (the order its drops are reported in)."""
    from tagserver.meta.normalize import normalize_currency, parse_value
    from tagserver.meta.validate import (
        MAX_QUANTITY,
        STRING_KEYS,
        _clean_contents,
        _copy,
        _id_text,
        _text,
        count_of,
    )

    if not raw:
        return {}, []
    data = _copy(raw)
    dropped: list[tuple[str, str]] = []
    for key in ("value", "predicted_ltv"):
        if key in data:
            number = parse_value(data[key])
            if number is None:
                del data[key]
                dropped.append((key, "not a number (use a dot decimal, or set the tag's locale)"))
            else:
                data[key] = int(number) if number.is_integer() and isinstance(raw[key], int) else (
                    number)  # fmt: skip
    if "currency" in data:
        currency = normalize_currency(data["currency"])
        if currency is None:
            del data["currency"]
            dropped.append(("currency", "not an ISO 4217 currency code"))
        else:
            data["currency"] = currency
    if "content_ids" in data:
        ids = data["content_ids"]
        ids = ids if isinstance(ids, list) else [ids]
        kept = [i for i in (_id_text(item) for item in ids) if i is not None]
        if len(kept) < len(ids):
            dropped.append(("content_ids", f"{len(ids) - len(kept)} item(s) not a string id"))
        if kept:
            data["content_ids"] = kept
        else:
            del data["content_ids"]
    if "contents" in data:
        contents, problems = _clean_contents(data["contents"])
        dropped.extend(("contents", problem) for problem in problems)
        if contents:
            data["contents"] = contents
        else:
            del data["contents"]
    if "num_items" in data:
        num = count_of(data["num_items"])
        if num is None:
            del data["num_items"]
            dropped.append(("num_items", f"expected an integer from 0 to {MAX_QUANTITY}"))
        else:
            data["num_items"] = num
    for key in STRING_KEYS:
        if key in data and type(data[key]) is not str:
            text = _text(data[key])
            if text is None:
                del data[key]
                dropped.append((key, "expected a string"))
            else:
                data[key] = text
    return data, dropped


typed_values = (
    scalars
    | st.sampled_from(["19.90", " 7 ", "1,5", "eur", "EUR", "xx", "sku-1", " ", "3", "3.0", "-1"])
    | st.lists(scalars | st.sampled_from(["sku-1", " ", "a"]), max_size=3)
    | items
    | json_values
)
all_custom_keys = st.sampled_from(
    ["value", "predicted_ltv", "currency", "content_ids", "contents", "num_items", "order_id",
     "content_type", "content_name", "content_category", "search_string", "status",
     "delivery_category", "x", "y"]
)  # fmt: skip


@settings(max_examples=600, deadline=None, database=None)
@given(st.dictionaries(all_custom_keys, typed_values, max_size=8))
def test_one_pass_clean_gives_what_the_key_by_key_checks_gave(raw: dict[str, Any]) -> None:
    data, dropped = clean_custom_data(raw).data, clean_custom_data(raw).dropped
    expected_data, expected_dropped = reference_clean(raw)
    assert data == expected_data and list(data) == list(expected_data)
    assert repr(data) == repr(expected_data)  # 1 and 1.0 told apart
    assert dropped == expected_dropped


def test_values_nested_too_deep_for_the_plain_copy_are_deep_copied_then_cleaned() -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    raw = {"extra": deep, "value": "5", "currency": 7, "content_ids": [1, "a"], "status": 3}
    check = clean_custom_data(raw)
    assert check.data == reference_clean(raw)[0] and check.dropped == reference_clean(raw)[1]
    assert check.data["extra"] == deep and check.data["extra"] is not deep
