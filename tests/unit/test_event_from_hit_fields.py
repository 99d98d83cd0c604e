"""``event_from_hit`` fills every field of :class:`Event` from a copied template dict: the event
must equal the one ``Event(...)`` builds from the same values, with its fields in order."""

from __future__ import annotations

import dataclasses

from tagserver.clients.collect import CollectHit, event_from_hit
from tagserver.consent import Consent
from tagserver.event import Event


def test_event_from_hit_equals_the_event_init_builds() -> None:
    consent = Consent(ad_storage=False)
    hit = CollectHit(
        "Purchase", "e-1", 1_760_000_000, "https://a.example/p", "https://r.example/",
        {"value": 1}, {"em": "x"}, consent,
    )  # fmt: skip
    cookies, headers = {"a": "1"}, {"user-agent": "UA"}
    event = event_from_hit(
        hit, event_id="e-1", received_at=1_760_000_000.5, page_url="https://a.example/p",
        client_ip="198.51.100.7", user_agent="UA", fbp="fb.1.1.2", fbc="fb.1.1.c",
        visitor_id="v", cookies=cookies, headers=headers, action_source="system_generated",
    )  # fmt: skip
    expected = Event(
        "Purchase", "e-1", 1_760_000_000, 1_760_000_000.5, "https://a.example/p",
        "https://r.example/", {"value": 1}, {"em": "x"}, consent, "198.51.100.7", "UA",
        "fb.1.1.2", "fb.1.1.c", "v", cookies, headers, None, "system_generated", None,
    )  # fmt: skip
    assert event == expected
    assert list(vars(event)) == [f.name for f in dataclasses.fields(Event)]
    assert event.cookies is cookies and event.headers is headers


def test_event_from_hit_defaults_and_separate_dicts() -> None:
    hit = CollectHit("PageView", None, 1_760_000_000)
    first = event_from_hit(
        hit, event_id="a", received_at=1.0, page_url=None, client_ip=None, user_agent=None
    )
    second = event_from_hit(
        hit, event_id="b", received_at=2.0, page_url=None, client_ip=None, user_agent=None
    )
    assert first.cookies == {} and first.headers == {}
    assert first.ga4 is None and first.purchase_token is None and first.action_source == "website"
    assert vars(first) is not vars(second) and first.event_id == "a" and second.event_id == "b"
