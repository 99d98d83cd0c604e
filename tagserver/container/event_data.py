"""The event data a container sees: a flat dict with server-side GTM's common event data keys.

Triggers, variables, transformations and tag parameters read paths of it (``custom_data.value``,
``user_data.em``, ``items.0.item_id``). Both clients produce this one view, so a trigger, variable
or transformation works the same on ``POST /e`` hits and on gtag.js hits:

==================== ================================== =======================================
key                  ``collect`` client (``POST /e``)    ``ga4`` client (``/g/collect``)
==================== ================================== =======================================
``event_name``       the hit's name as sent              ``en`` as sent (``purchase``)
``event_id``         the hit's id (or the minted one)    ``ep.event_id`` (or the configured
                                                         parameter), ``purchase-<transaction
                                                         id>``, or a minted one
``event_time``       unix seconds                        the receive time, unix seconds
``action_source``    ``website`` (``POST /api/events``:  ``website``
                     the backend's, e.g. ``physical_store``)
``page_location``    ``event_source_url`` (or Referer)   ``dl`` (or the batch's, or Referer)
``page_referrer``    ``referrer_url``                    ``dr``
``client_id``        the signed first-party visitor id   ``cid`` (or the server-managed ``FPID``
                     (absent: analytics_storage denied)  id, ``cid`` then in
                                                         ``x-ga-js_client_id``)
``user_agent``       the request's User-Agent            the request's User-Agent
``ip_override``      the visitor's public IP             the visitor's public IP
``x-fb-ck-fbp``      the ``_fbp`` cookie (read/minted)   the same (``ep.fbp`` stands in)
``x-fb-ck-fbc``      the ``_fbc`` cookie (or ``fbclid``) the same (``ep.fbc`` stands in)
``custom_data``      the hit's custom data, as sent      Meta custom data made from ``value``,
                                                         ``currency``, ``items``,
                                                         ``transaction_id``, ``search_term``
                                                         (:func:`tagserver.meta.from_ga4.
                                                         ga4_custom_data`)
``user_data``        Meta keys (``em``, ``ph``, ...)     sGTM's keys (``email_address``,
                     as sent                             ``phone_number``, ``address.*``) as sent
``value``            alias of ``custom_data.value``      ``epn.value``
``currency``         alias of ``custom_data.currency``   ``cu``
``transaction_id``   alias of ``custom_data.order_id``   ``ep.transaction_id``
``items``            ``custom_data.contents`` as GA4     ``pr1..prN``
                     items (``item_id``, ``quantity``,
                     ``price``)
everything else      —                                   as :mod:`tagserver.ga4.event_data` names
                                                         it (``page_title``, ``ep.<k>`` → ``<k>``,
                                                         ``x-ga-*``, ``client_hints``, ...)
==================== ================================== =======================================

Keys with no value are left out. Source of the key names: server-side GTM "Common event data".
The Meta tag reads both forms of ``user_data``.
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

#: ``(alias, custom_data key)`` of the aliases that copy a value.
SCALAR_ALIASES = tuple(
    (alias, ALIASES[alias][1]) for alias in ("value", "currency", "transaction_id")
)

#: The purchase token check of the event (``valid`` or why not); see :mod:`tagserver.purchase_token`.
PURCHASE_TOKEN_KEY = "x-ts-purchase-token"

#: Keys an allow-list transformation always keeps: they identify the event, they are not personal.
PROTECTED_KEYS = frozenset({"event_name", "event_id", "event_time", "action_source"})

Path = tuple[str | int, ...]


def event_data_from_event(event: Event) -> dict[str, Any]:
    """The event data of one event of either client (see the module table); a new dict every
    call.

    ``custom_data`` and ``user_data`` are shallow copies; nested values are shared and must not be
    mutated (transformations copy what they change).
    """
    if event.ga4 is not None:
        return _ga4_event_data(event, event.ga4.event_data)
    data: dict[str, Any] = {
        "event_name": event.event_name,
        "event_id": event.event_id,
        "event_time": event.event_time,
        "action_source": event.action_source,
    }
    # written out, key by key in this order: one event per hit comes through here
    if event.event_source_url is not None:
        data["page_location"] = event.event_source_url
    if event.referrer_url is not None:
        data["page_referrer"] = event.referrer_url
    if event.visitor_id is not None:
        data["client_id"] = event.visitor_id
    if event.user_agent is not None:
        data["user_agent"] = event.user_agent
    if event.client_ip is not None:
        data["ip_override"] = event.client_ip
    if event.fbp is not None:
        data["x-fb-ck-fbp"] = event.fbp
    if event.fbc is not None:
        data["x-fb-ck-fbc"] = event.fbc
    # shallow copies ({} for an empty one: most hits carry no custom or user data)
    custom = data["custom_data"] = dict(event.custom_data) if event.custom_data else {}
    data["user_data"] = dict(event.user_data) if event.user_data else {}
    if event.purchase_token is not None:
        data[PURCHASE_TOKEN_KEY] = event.purchase_token
    if not custom:  # no alias to fill
        return data
    # add_aliases(data), written out for this data: none of the aliases is there yet and
    # custom_data is a dict
    for alias, source in SCALAR_ALIASES:
        found = custom.get(source)
        if found is not None:
            data[alias] = found
    contents = custom.get("contents")
    if isinstance(contents, list):
        data["items"] = [_item(entry) for entry in contents]
    return data


def _ga4_event_data(event: Event, hit_data: Mapping[str, Any]) -> dict[str, Any]:
    """The event data of an event of the ``ga4`` client: the hit's own (sGTM's GA4 client keys),
    with what the server resolved for the event: id, time, checked page and referrer URLs, the
    visitor's IP and User-Agent, Meta cookies and the Meta custom data (``event.custom_data``)."""
    data = dict(hit_data)
    data["event_id"] = event.event_id
    data["event_time"] = event.event_time
    data["action_source"] = event.action_source
    for key, value in (("page_location", event.event_source_url),
                       ("page_referrer", event.referrer_url),
                       ("ip_override", event.client_ip),
                       ("user_agent", event.user_agent)):
        if value is None:
            data.pop(key, None)  # e.g. not an http(s) URL: no page to report
        else:
            data[key] = value
    for key, value in (("x-fb-ck-fbp", event.fbp), ("x-fb-ck-fbc", event.fbc)):
        if value is not None:
            data[key] = value
    user_data = data.get("user_data")
    if isinstance(user_data, dict):
        data["user_data"] = dict(user_data)
    data["custom_data"] = dict(event.custom_data)
    data.pop("purchase_token", None)
    if event.purchase_token is not None:
        data[PURCHASE_TOKEN_KEY] = event.purchase_token
    return data


def add_aliases(data: dict[str, Any]) -> dict[str, Any]:
    """Fill the missing aliases of ``data`` from ``custom_data`` (``value``, ``currency``,
    ``transaction_id``, ``items``) in place; returns ``data``. Aliases already present win."""
    custom = data.get("custom_data")
    if not (isinstance(custom, dict) or isinstance(custom, Mapping)):
        return data
    for alias, source in SCALAR_ALIASES:
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
