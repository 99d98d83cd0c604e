"""``apply_privacy`` checks the purchase token of the events whose Meta name is ``Purchase``
(``meta_event_name``, inlined there): ``Purchase`` and GA4's ``purchase``, no other name."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tagserver.clients.context import apply_privacy
from tagserver.delivery.drops import DropCounter
from tagserver.event import Event
from tagserver.meta.events import meta_event_name
from tagserver.purchase_token import PurchaseReplayGuard
from tagserver.settings import load_settings


@pytest.mark.parametrize(
    "name", ["Purchase", "purchase", "PURCHASE", "PageView", "page_view", "add_to_cart", "x"]
)
def test_purchase_check_follows_meta_event_name(name: str) -> None:
    state: Any = SimpleNamespace(
        settings=load_settings({}), drops=DropCounter(), purchase_guard=PurchaseReplayGuard()
    )
    event = Event(name, "e-1", 1_760_000_000, 1_760_000_000.0, custom_data={"order_id": "A-1"})
    out = apply_privacy(state, event, now=1_760_000_000.0)
    if meta_event_name(name) == "Purchase":
        assert out.purchase_token == "missing"
    else:
        assert out is event and out.purchase_token is None
