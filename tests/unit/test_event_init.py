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
