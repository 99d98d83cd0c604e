"""A :class:`CollectHit` keeps its fields in an ordinary instance dict and ``CollectHit`` has no
class attribute ``consent`` (so that CPython specializes the reads of a hit's fields): the hit
stays the dataclass it was, with the declared default."""

from __future__ import annotations

import dataclasses

import pytest

from tagserver.clients.collect import CollectHit, parse_collect_body, parse_collect_object
from tagserver.consent import GRANTED, Consent

FIELDS = [f.name for f in dataclasses.fields(CollectHit)]


def test_consent_default_is_kept_without_a_class_attribute() -> None:
    assert "consent" not in vars(CollectHit)
    (consent,) = [f for f in dataclasses.fields(CollectHit) if f.name == "consent"]
    assert consent.default is GRANTED
    assert CollectHit("A", None, 1).consent is GRANTED
    assert CollectHit("A", None, 1, consent=Consent(ad_storage=False)).consent.ad_storage is False


@pytest.mark.parametrize(
    "hit",
    [
        CollectHit("A", None, 1),
        parse_collect_object({"event_name": "A", "event_time": 1}, now=10.0),
        parse_collect_body(b'{"event_name":"A","event_id":"e","event_time":1,'
                           b'"consent":{"ad_storage":"denied"}}', now=10.0),
        parse_collect_object({"event_name": "A", "event_id": 7, "event_time": 1}, now=10.0),
    ],
)
def test_every_hit_has_a_plain_dict_of_its_fields_in_order(hit: CollectHit) -> None:
    assert type(vars(hit)) is dict and list(vars(hit)) == FIELDS
    assert dataclasses.replace(hit) == hit
    with pytest.raises(dataclasses.FrozenInstanceError):
        hit.consent = GRANTED  # type: ignore[misc]


def test_parsed_hit_equals_the_one_init_builds() -> None:
    hit = parse_collect_body(b'{"event_name":" Lead ","event_id":"e1","event_time":5,'
                             b'"event_source_url":"https://a.example/","custom_data":{"v":1},'
                             b'"consent":{"ad_storage":"denied"}}', now=10.0)
    assert hit == CollectHit("Lead", "e1", 5, "https://a.example/", None, {"v": 1}, {},
                             Consent(ad_storage=False))
    assert hit.consent == Consent(ad_storage=False) and hit.user_data == {}
