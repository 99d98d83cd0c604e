"""The event data a container sees: a flat dict with server-side GTM's common event data keys.

Triggers, variables, transformations and tag parameters read paths of it (``custom_data.value``,
``user_data.em``, ``items.0.item_id``). Every client produces the same shape; the ``collect``
client's :class:`~tagserver.event.Event` becomes:

==================== =========================================================================
key                  from
==================== =========================================================================
``event_name``       the hit's name as sent (``Purchase``, ``purchase``, ``newsletter_signup``)
``event_id``         the hit's id (or the minted one)
``event_time``       unix seconds
``page_location``    ``event_source_url`` (or the Referer header)
``page_referrer``    ``referrer_url``
``client_id``        the signed first-party visitor id (absent when analytics_storage is denied)
``user_agent``       the request's User-Agent
``ip_override``      the visitor's public IP
``x-fb-ck-fbp``      the ``_fbp`` cookie value (read or minted)
``x-fb-ck-fbc``      the ``_fbc`` cookie value (read or built from ``fbclid``)
``custom_data``      the hit's custom data object, as sent
``user_data``        the hit's customer information (Meta keys ``em``, ``ph``, ...), as sent
``value``            alias of ``custom_data.value``
``currency``         alias of ``custom_data.currency``
``transaction_id``   alias of ``custom_data.order_id``
``items``            ``custom_data.contents`` in GA4 item form (``item_id``, ``quantity``, ``price``)
==================== =========================================================================

Keys with no value are left out. Source of the key names: server-side GTM "Common event data".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tagserver.event import Event

#: Aliases: a top-level convenience key and the nested key it mirrors. Transformations keep, drop
#: or set both together, so excluding ``value`` also removes ``custom_data.value``.
ALIASES: dict[str, tuple[str, str]] = {
    "value": ("custom_data", "value"),
    "currency": ("custom_data", "currency"),
    "transaction_id": ("custom_data", "order_id"),
    "items": ("custom_data", "contents"),
}

#: Keys an allow-list transformation always keeps: they identify the event, they are not personal.
PROTECTED_KEYS = frozenset({"event_name", "event_id", "event_time"})

Path = tuple[str | int, ...]


def event_data_from_event(event: Event) -> dict[str, Any]:
    """The event data of one ``collect`` event (see the module table); a new dict every call.

    ``custom_data`` and ``user_data`` are shallow copies; nested values are shared and must not be
    mutated (transformations copy what they change).
    """
    data: dict[str, Any] = {
        "event_name": event.event_name,
        "event_id": event.event_id,
        "event_time": event.event_time,
    }
    optional = (
        ("page_location", event.event_source_url),
        ("page_referrer", event.referrer_url),
        ("client_id", event.visitor_id),
        ("user_agent", event.user_agent),
        ("ip_override", event.client_ip),
        ("x-fb-ck-fbp", event.fbp),
        ("x-fb-ck-fbc", event.fbc),
    )
    for key, value in optional:
        if value is not None:
            data[key] = value
    data["custom_data"] = dict(event.custom_data)
    data["user_data"] = dict(event.user_data)
    return add_aliases(data)


def add_aliases(data: dict[str, Any]) -> dict[str, Any]:
    """Fill the missing aliases of ``data`` from ``custom_data`` (``value``, ``currency``,
    ``transaction_id``, ``items``) in place; returns ``data``. Aliases already present win."""
    custom = data.get("custom_data")
    if not isinstance(custom, Mapping):
        return data
    for alias in ("value", "currency", "transaction_id"):
        source = ALIASES[alias][1]
        if alias not in data and custom.get(source) is not None:
            data[alias] = custom[source]
    contents = custom.get("contents")
    if "items" not in data and isinstance(contents, list):
        data["items"] = [_item(entry) for entry in contents]
    return data


def _item(entry: object) -> object:
    """A Meta ``contents`` entry (``id``, ``quantity``, ``item_price``) as a GA4 item."""
    if not isinstance(entry, Mapping):
        return entry
    item: dict[str, Any] = {}
    for source, target in (("id", "item_id"), ("quantity", "quantity"), ("item_price", "price")):
        if source in entry:
            item[target] = entry[source]
    for key, value in entry.items():
        if key not in ("id", "quantity", "item_price"):
            item[key] = value
    return item


def parse_path(text: str) -> Path:
    """``"items.0.item_id"`` → ``("items", 0, "item_id")``; an empty string is the whole data.

    Raises ``ValueError`` for an empty segment (``"a..b"``, ``".a"``).
    """
    if text == "":
        return ()
    parts: list[str | int] = []
    for segment in text.split("."):
        if segment == "":
            raise ValueError(f"empty segment in path {text!r}")
        parts.append(int(segment) if segment.isdigit() else segment)
    return tuple(parts)


def lookup(data: Any, path: Path) -> Any:
    """The value at ``path`` (dict keys, list indexes), or ``None`` when any step is missing."""
    node = data
    for part in path:
        if isinstance(node, dict):  # the common case first: a plain dict is no ABC check
            node = node.get(part if isinstance(part, str) else str(part))
        elif isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                return None
            node = node[part]
        elif isinstance(node, Mapping):
            node = node.get(part if isinstance(part, str) else str(part))
        else:
            return None
        if node is None:
            return None
    return node
