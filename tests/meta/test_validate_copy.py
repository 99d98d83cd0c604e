"""clean_custom_data copies its input (JSON values by a plain recursive copy): the result shares
no dict or list with it, equals what copy.deepcopy gives, and never changes the input."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tagserver.meta.validate import _copy, clean_custom_data

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=12,
)  # fmt: skip


def containers(value: Any) -> list[Any]:
    found: list[Any] = []
    if isinstance(value, dict | list):
        found.append(value)
        for item in value.values() if isinstance(value, dict) else value:
            found.extend(containers(item))
    return found


@settings(max_examples=200, deadline=None, database=None)
@given(st.dictionaries(st.text(max_size=4), json_values, max_size=5))
def test_copy_equals_deepcopy_and_shares_no_container(raw: dict[str, Any]) -> None:
    before = copy.deepcopy(raw)
    copied = _copy(raw)
    assert copied == copy.deepcopy(raw) and copied is not raw
    originals = {id(c) for c in containers(raw)}
    assert not originals & {id(c) for c in containers(copied)}
    clean_custom_data(raw)
    assert raw == before


def test_other_values_and_cycles_fall_back_to_deepcopy() -> None:
    class Box:
        def __init__(self) -> None:
            self.items = [1]

    box, inner = Box(), [2]
    copied = _copy({"box": box, "t": (1, inner)})
    assert copied["box"] is not box and copied["box"].items == [1]
    assert copied["t"] == (1, [2]) and copied["t"][1] is not inner
    cycle: list[Any] = []
    cycle.append(cycle)
    deep = _copy({"c": cycle})
    assert deep["c"] is not cycle and deep["c"][0] is deep["c"]
