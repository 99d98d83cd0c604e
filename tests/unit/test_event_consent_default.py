"""``Event`` has no class attribute ``consent`` (so that CPython specializes reads of
``event.consent``), and stays the dataclass it was: the declared default, ``__init__``'s default,
``replace`` and equality."""

from __future__ import annotations

import dataclasses

from tagserver.consent import GRANTED, Consent
from tagserver.event import Event


def test_consent_default_is_kept_without_a_class_attribute() -> None:
    assert "consent" not in vars(Event)
    (consent,) = [f for f in dataclasses.fields(Event) if f.name == "consent"]
    assert consent.default is GRANTED
    event = Event("PageView", "e1", 1, 1.0)
    assert event.consent is GRANTED
    denied = Consent(ad_storage=False)
    assert Event("PageView", "e1", 1, 1.0, consent=denied).consent is denied
    assert event.replace(consent=denied).consent is denied
    assert dataclasses.replace(event, consent=denied) == event.replace(consent=denied)


def test_an_event_without_consent_in_its_dict_has_no_fallback() -> None:
    """Every way of making an event stores ``consent`` in the instance: nothing relied on the
    class attribute."""
    event = Event("PageView", "e1", 1, 1.0)
    assert "consent" in vars(event)
