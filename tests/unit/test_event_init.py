"""Event and CollectHit write their own __init__ (one __dict__ update): it must stay the
dataclass's — every field, in order, with its declared default — and the instances frozen."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from tagserver.clients.collect import CollectHit
from tagserver.consent import Consent
from tagserver.event import Event

REQUIRED = {
    Event: {"event_name": "A", "event_id": "e1", "event_time": 1, "received_at": 1.5},
    CollectHit: {"event_name": "A", "event_id": None, "event_time": 1},
}


@pytest.mark.parametrize("cls", [Event, CollectHit])
def test_init_takes_every_field_in_order(cls: type) -> None:
    parameters = list(inspect.signature(cls.__init__).parameters)[1:]
    assert parameters == [f.name for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("cls", [Event, CollectHit])
def test_defaults_are_the_declared_ones(cls: type) -> None:
    instance = cls(**REQUIRED[cls])
    other = cls(**REQUIRED[cls])
    for f in dataclasses.fields(cls):
        value = getattr(instance, f.name)
        if f.name in REQUIRED[cls]:
            assert value == REQUIRED[cls][f.name]
        elif f.default_factory is not dataclasses.MISSING:
            assert value == f.default_factory()
            assert value is not getattr(other, f.name), "a fresh mapping per instance"
        else:
            assert value == f.default


@pytest.mark.parametrize("cls", [Event, CollectHit])
def test_instances_stay_frozen_and_replaceable(cls: type) -> None:
    instance = cls(**REQUIRED[cls])
    with pytest.raises(dataclasses.FrozenInstanceError):
        instance.event_name = "B"
    changed = dataclasses.replace(instance, event_name="B", consent=Consent(ad_storage=False))
    assert changed.event_name == "B" and not changed.consent.ad_storage
    assert changed != instance and dataclasses.replace(changed, event_name="A",
                                                       consent=instance.consent) == instance
    assert repr(instance).startswith(cls.__name__ + "(event_name='A'")


def test_every_value_given_is_kept() -> None:
    values = {f.name: object() for f in dataclasses.fields(Event)}
    event = Event(**values)  # type: ignore[arg-type]
    assert all(getattr(event, name) is value for name, value in values.items())


def test_replace_is_dataclasses_replace() -> None:
    event = Event(**REQUIRED[Event], custom_data={"value": 1}, headers={"sec-gpc": "1"})
    for changes in ({"purchase_token": "missing"},
                    {"consent": Consent(ad_storage=False), "headers": {}},
                    {"custom_data": {"order_id": "A-1"}, "purchase_token": "valid"},
                    {"user_data": None, "cookies": None}, {}):
        replaced = event.replace(**changes)
        assert replaced == dataclasses.replace(event, **changes)  # type: ignore[arg-type]
        assert type(replaced) is Event and replaced is not event
        assert list(replaced.__dict__) == [f.name for f in dataclasses.fields(Event)]
    assert event.replace(user_data=None).user_data == {}
    assert event.custom_data == {"value": 1} and event.purchase_token is None  # unchanged
    with pytest.raises(TypeError, match="no field 'nope'"):
        event.replace(nope=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.replace(event_id="x").event_id = "y"  # type: ignore[misc]


def test_events_and_hits_built_from_one_dict_have_every_field_in_order() -> None:
    from tagserver.clients.collect import event_from_hit, parse_collect_object

    hit = parse_collect_object({"event_name": " Purchase ", "event_id": "e1", "event_time": 5,
                                "custom_data": {"value": 1}, "user_data": {"em": "a@b.co"}},
                               now=100.0)
    assert list(hit.__dict__) == [f.name for f in dataclasses.fields(CollectHit)]
    assert hit == CollectHit("Purchase", "e1", 5, None, None, {"value": 1}, {"em": "a@b.co"})
    event = event_from_hit(hit, event_id="e1", received_at=100.0, page_url="https://x.example/",
                           client_ip="203.0.113.7", user_agent="UA", fbp="fb.1.1.1",
                           cookies={"a": "1"}, headers=None)
    assert list(event.__dict__) == [f.name for f in dataclasses.fields(Event)]
    assert event == Event("Purchase", "e1", 5, 100.0, "https://x.example/", None, {"value": 1},
                          {"em": "a@b.co"}, client_ip="203.0.113.7", user_agent="UA",
                          fbp="fb.1.1.1", cookies={"a": "1"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.event_name = "B"  # type: ignore[misc]
