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


def containers(value: Any) -> list[Any]:
    found: list[Any] = []
    if isinstance(value, dict | list):
        found.append(value)
        for item in value.values() if isinstance(value, dict) else value:
            found.extend(containers(item))
    return found


@settings(max_examples=300, deadline=None, database=None)
@given(customs)
def test_cleaned_custom_data_shares_no_container_with_its_input(raw: dict[str, Any]) -> None:
    """The typed keys are taken without a copy (their values are always replaced): nothing of
    the input is shared by the result all the same."""
    cleaned = clean_custom_data(raw).data
    originals = {id(c) for c in containers(raw)}
    assert not originals & {id(c) for c in containers(cleaned)}
