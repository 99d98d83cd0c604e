"""An event_time integer too large for a float is a time far ahead, not a crash."""

from __future__ import annotations

import pytest

from tagserver.clients.collect import parse_collect_body, parse_event_time
from tagserver.exceptions import HitRejected

NOW = 1_760_000_000.0


@pytest.mark.parametrize("raw", [b"1" + b"0" * 400, b'"1' + b"0" * 400 + b'"', b"1" + b"0" * 20])
def test_an_event_time_too_large_for_a_float_is_the_receive_time(raw: bytes) -> None:
    # was an OverflowError (a 500); the rule for any time over 60 s ahead applies
    hit = parse_collect_body(b'{"event_name": "A", "event_time": ' + raw + b"}", now=NOW)
    assert hit.event_time == int(NOW)


def test_a_hugely_negative_event_time_is_refused() -> None:
    with pytest.raises(HitRejected) as info:
        parse_collect_body(b'{"event_name": "A", "event_time": -1' + b"0" * 400 + b"}", now=NOW)
    assert [e["field"] for e in info.value.errors] == ["event_time"]


@pytest.mark.parametrize("raw", [2**1000, 2**1000 - 1, 2**1023, 10**308])
def test_the_largest_floatable_integers_follow_the_same_rule(raw: int) -> None:
    assert parse_event_time(raw, now=NOW) == int(NOW)
