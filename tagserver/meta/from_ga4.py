"""GA4 event data → the Meta side of one event: name, event id, custom data, user data.

Rules (issue "GA4 drop-in", REFERENCE §1 deduplication): the name maps by
:data:`tagserver.meta.events.GA4_TO_META` (other names pass unchanged); ``event_id`` is the
page's own id (``ep.event_id``, or the configured parameter) echoed as sent, else
``purchase-<transaction_id>`` for a purchase (a repeated purchase hit is then idempotent), else
a fresh one. ``items`` become ``content_ids``, ``contents`` (``id``, ``quantity``,
``item_price``; a quantity that is not an integer 1..1,000,000 counts as 1, as GA4 reads a
missing one), ``num_items`` and ``content_type: product`` (Meta "Custom data parameters").
``user_data`` takes sGTM's user-provided data (``ep.user_data.*``: ``email``, ``phone_number``,
``address.first_name``, ... and their ``sha256_`` forms) under Meta's keys, raw: hashing and
normalisation are the Meta tag's job (:mod:`tagserver.meta.normalize`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tagserver.identity import FBC_RE, FBP_RE
from tagserver.meta.events import meta_event_name
from tagserver.meta.validate import MAX_QUANTITY, count_of

EventIdSource = Literal["param", "transaction", "minted"]
DEFAULT_EVENT_ID_PARAM = "event_id"
MAX_EVENT_ID_LENGTH = 200

#: sGTM user-provided data key → Meta ``user_data`` key; Meta's own keys map to themselves.
USER_DATA_KEYS: dict[str, str] = {
    "email": "em",
    "email_address": "em",
    "sha256_email_address": "em",
    "phone_number": "ph",
    "sha256_phone_number": "ph",
    "first_name": "fn",
    "sha256_first_name": "fn",
    "last_name": "ln",
    "sha256_last_name": "ln",
    "city": "ct",
    "region": "st",
    "postal_code": "zp",
    "country": "country",
    **{key: key for key in ("em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country",
                            "external_id")},
}
#: Event data keys copied into ``custom_data`` under the same name.
CUSTOM_DATA_PASSTHROUGH = ("content_name", "content_category", "predicted_ltv", "status",
                           "delivery_category")


@dataclass(frozen=True)
class MetaFromGA4:
    """The Meta view of one GA4 event. ``user_data`` is raw (unhashed) under Meta's keys;
    ``fbp``/``fbc`` are the page's own values (``ep.fbp``/``ep.fbc``) when well-formed."""

    event_name: str
    event_id: str
    event_id_source: EventIdSource
    custom_data: dict[str, Any] = field(default_factory=dict)
    user_data: dict[str, Any] = field(default_factory=dict)
    fbp: str | None = None
    fbc: str | None = None


def mint_event_id() -> str:
    """A fresh event id (a random UUID)."""
    return str(uuid.uuid4())


def ga4_event_id(
    event_data: Mapping[str, Any],
    *,
    event_id_param: str = DEFAULT_EVENT_ID_PARAM,
    mint: Callable[[], str] = mint_event_id,
) -> tuple[str, EventIdSource]:
    """``(event_id, source)`` by the module's rule. ``event_id_param`` is the event data key (the
    name after ``ep.``); an id that is empty, over 200 characters or not printable is ignored."""
    own = event_data.get(event_id_param)
    if isinstance(own, int | float) and not isinstance(own, bool):
        own = str(own)
    if isinstance(own, str) and 0 < len(own) <= MAX_EVENT_ID_LENGTH and own.isprintable():
        return own, "param"
    transaction = event_data.get("transaction_id")
    if (
        event_data.get("event_name") == "purchase"
        and isinstance(transaction, str)
        and transaction.strip()
        and len(transaction) <= MAX_EVENT_ID_LENGTH - len("purchase-")
        and transaction.isprintable()
    ):
        return f"purchase-{transaction.strip()}", "transaction"
    return mint(), "minted"


def ga4_custom_data(event_data: Mapping[str, Any]) -> dict[str, Any]:
    """Meta ``custom_data`` from GA4 event data (values are checked later by
    :func:`tagserver.meta.validate.clean_custom_data`)."""
    custom: dict[str, Any] = {}
    value = event_data.get("value")
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        custom["value"] = value
    currency = event_data.get("currency")
    if isinstance(currency, str) and currency:
        custom["currency"] = currency
    items = event_data.get("items")
    if isinstance(items, list):
        custom.update(_from_items(items))
    transaction = event_data.get("transaction_id")
    if isinstance(transaction, str) and transaction:
        custom["order_id"] = transaction
    search = event_data.get("search_term")
    if isinstance(search, str) and search:
        custom["search_string"] = search
    for key in CUSTOM_DATA_PASSTHROUGH:
        if key in event_data and isinstance(event_data[key], str | int | float):
            custom[key] = event_data[key]
    return custom


def _from_items(items: list[Any]) -> dict[str, Any]:
    ids: list[str] = []
    contents: list[dict[str, Any]] = []
    total = 0
    for item in items:  # quantities: integers 1..MAX_QUANTITY, as validate.count_of reads them
        if not isinstance(item, Mapping):
            continue
        item_id = item.get("item_id")
        if not isinstance(item_id, str) or not item_id:
            continue
        # GA4 counts an item without a usable quantity as one; Meta's is an integer
        quantity = count_of(item.get("quantity", 1)) or 1
        content: dict[str, Any] = {"id": item_id, "quantity": quantity}
        price = item.get("price")
        if isinstance(price, int | float) and not isinstance(price, bool):
            content["item_price"] = price
        ids.append(item_id)
        contents.append(content)
        total += quantity
    if not contents:
        return {}
    custom: dict[str, Any] = {"content_ids": ids, "contents": contents}
    if total <= MAX_QUANTITY:
        custom["num_items"] = total
    custom["content_type"] = "product"
    return custom


def ga4_user_data(event_data: Mapping[str, Any]) -> dict[str, Any]:
    """Raw Meta ``user_data`` from the event's ``user_data`` object (top level and ``address``);
    several sources of one Meta key give a list. Non-text values are left out."""
    source = event_data.get("user_data")
    if not isinstance(source, Mapping):
        return {}
    out: dict[str, list[str]] = {}
    address = source.get("address")
    for node in (source, address if isinstance(address, Mapping) else {}):
        for key, value in node.items():
            meta_key = USER_DATA_KEYS.get(key)
            if meta_key is None:
                continue
            values = value if isinstance(value, list) else [value]
            for item in values:
                if isinstance(item, str | int | float) and not isinstance(item, bool):
                    text = str(item)
                    if text.strip() and text not in out.setdefault(meta_key, []):
                        out[meta_key].append(text)
    return {k: v[0] if len(v) == 1 else v for k, v in out.items() if v}


def meta_from_ga4(
    event_data: Mapping[str, Any],
    *,
    event_id_param: str = DEFAULT_EVENT_ID_PARAM,
    mint: Callable[[], str] = mint_event_id,
) -> MetaFromGA4:
    """The Meta view of one GA4 event (see the module docstring)."""
    event_id, source = ga4_event_id(event_data, event_id_param=event_id_param, mint=mint)
    fbp = event_data.get("fbp")
    fbc = event_data.get("fbc")
    return MetaFromGA4(
        event_name=meta_event_name(str(event_data.get("event_name", ""))),
        event_id=event_id,
        event_id_source=source,
        custom_data=ga4_custom_data(event_data),
        user_data=ga4_user_data(event_data),
        fbp=fbp if isinstance(fbp, str) and FBP_RE.match(fbp) else None,
        fbc=fbc if isinstance(fbc, str) and FBC_RE.match(fbc) else None,
    )
