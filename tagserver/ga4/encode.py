"""Event data → GA4 hit parameters: the inverse of :mod:`tagserver.ga4.event_data`.

A ``ga4`` tag forwards the hit as it came; when transformations changed the event data the tag
sees, the parameters behind each changed top-level key are dropped and the new value is written
in their place. :func:`param_key` says which key a parameter feeds, :func:`encode_key` writes a
key's value back as parameters (GA4 measurement protocol names, REFERENCE §2):
``event_name`` → ``en``, a custom string ``<k>`` → ``ep.<k>``, a number → ``epn.<k>``, ``items``
→ ``pr1..prN``, ``user_data.<path>`` → ``ep.user_data.<path>``, ``x-ga-mp2-user_properties`` →
``up.``/``upn.``, ``x-ga-system_properties`` → ``_<k>``, ``x-sst-system_properties`` →
``sst.<k>``, ``client_hints`` → ``uaa``.. ``uaw``, ``x-ga-<field>`` → ``<field>``,
``x-ga-mp2-<name>`` → ``<name>``.

Contact data never goes to Google: :func:`is_contact_param` names the parameters of the
``user_data`` family (``ep.user_data.*``, ``epn.user_data.*``, ``up.user_data.*``,
``upn.user_data.*``), and :func:`encode_for_google` is :func:`encode_key` without them.

Keys that no parameter carries (``event_time``, ``custom_data``, ``x-fb-ck-*``,
``event_location``) are not forwarded; ``ip_override`` and ``user_agent`` travel as ``_uip`` and
the User-Agent header (see :mod:`tagserver.ga4.forward`). A value no parameter can hold (an
object or array where GA4 takes text, a ``~`` inside an item field) is left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from tagserver.ga4.event_data import CLIENT_HINTS, IGNORED, PROTOCOL_FIELDS, RENAMED
from tagserver.ga4.items import ITEM_NUMBER_KEYS, ITEM_PARAM_RE, ITEM_TEXT_KEYS, MAX_ITEMS

Pairs = list[tuple[str, str]]

#: Event data key → parameter, for the renamed ones (``page_location`` → ``dl``).
_PARAM_OF: dict[str, str] = {key: name for name, (key, _) in RENAMED.items()}
_HINT_PARAM: dict[str, str] = {key: name for name, key in CLIENT_HINTS.items()}
_ITEM_TEXT_CODE: dict[str, str] = {name: code for code, name in ITEM_TEXT_KEYS.items()}
_ITEM_NUMBER_CODE: dict[str, str] = {name: code for code, name in ITEM_NUMBER_KEYS.items()}
#: Keys of the view that no GA4 parameter carries.
NOT_FORWARDED = frozenset(
    {"event_time", "custom_data", "x-fb-ck-fbp", "x-fb-ck-fbc", "event_location", "ip_override",
     "user_agent", "x-ga-js_client_id"}
)
#: What ``encodeURIComponent`` leaves as it is, besides letters, digits and ``-_.~``.
_URI_SAFE = "!*'()"
#: Keys whose parameters (``en``, ``v``, ``tid``) a transformation may change but never remove:
#: without them Google drops the hit.
REQUIRED_KEYS = frozenset({"event_name", "x-ga-protocol_version", "x-ga-measurement_id"})


def param_key(name: str) -> str | None:
    """The top-level event data key the parameter ``name`` feeds (``dl`` → ``page_location``,
    ``ep.user_data.email_address`` → ``user_data``, ``pr3`` → ``items``); ``None`` for what never
    becomes event data (``richsstsse``, ``_uip``)."""
    if name in IGNORED:
        return None
    if name in RENAMED:
        return RENAMED[name][0]
    if ITEM_PARAM_RE.match(name):
        return "items"
    if name in PROTOCOL_FIELDS:
        return f"x-ga-{name}"
    if name in CLIENT_HINTS:
        return "client_hints"
    if name.startswith(("ep.", "epn.")):
        key = name.split(".", 1)[1]
        nested = key.startswith("user_data.") and len(key) > len("user_data.")
        return "user_data" if nested else key
    if name.startswith(("up.", "upn.")):
        return "x-ga-mp2-user_properties"
    if name.startswith("sst.") and len(name) > 4:
        return "x-sst-system_properties"
    if name.startswith("_") and len(name) > 1:
        return "x-ga-system_properties"
    return f"x-ga-mp2-{name}"


#: Parameter prefixes under which sGTM's ``user_data`` (raw or hashed contact data) travels.
_CONTACT_PREFIXES = ("ep.", "epn.", "up.", "upn.")


def is_contact_param(name: str) -> bool:
    """Whether the parameter ``name`` carries the visitor's contact data — ``ep.user_data``,
    ``ep.user_data.email_address``, ``epn.user_data.x``, ``up.user_data.phone_number``,
    ``upn.user_data.*`` (any case) — which tagserver never forwards to Google Analytics: the page
    meant it for ad platforms (Meta gets it hashed), and GA4's terms forbid sending personal data
    it could read."""
    lowered = name.lower()
    for prefix in _CONTACT_PREFIXES:
        if lowered.startswith(prefix):
            rest = lowered[len(prefix):]
            return rest == "user_data" or rest.startswith("user_data.")
    return False


def format_number(value: int | float) -> str:
    """``3`` → ``"3"``, ``10.0`` → ``"10"``, ``10.01`` → ``"10.01"`` (what ``parse_number`` reads
    back)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e18:
        return str(int(value))
    return str(value) if isinstance(value, int) else repr(value)


def _number(value: object) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def _text(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    number = _number(value)
    return None if number is None else format_number(number)


def encode_key(key: str, value: object) -> Pairs:
    """The parameters that carry ``value`` as event data key ``key`` (decoded ``(name, value)``
    pairs); ``[]`` for ``None``, a key in :data:`NOT_FORWARDED` or a value GA4 cannot hold."""
    if value is None or key in NOT_FORWARDED:
        return []
    if key in _PARAM_OF:
        text = _text(value)
        return [] if text is None else [(_PARAM_OF[key], text)]
    structured = _STRUCTURED.get(key)
    if structured is not None and isinstance(value, structured[0]):
        return structured[1](value)
    if key.startswith("x-ga-mp2-") and key != "x-ga-mp2-user_properties":
        text = _text(value)
        return [] if text is None else [(key[len("x-ga-mp2-"):], text)]
    if key.startswith("x-ga-") and key[len("x-ga-"):] in PROTOCOL_FIELDS:
        text = _text(value)
        return [] if text is None else [(key[len("x-ga-"):], text)]
    if isinstance(value, Mapping | list):
        return []  # an event parameter holds text or a number
    return _typed("ep.", "epn.", {key: value})


def encode_for_google(key: str, value: object) -> Pairs:
    """:func:`encode_key` minus the contact parameters (:func:`is_contact_param`): what a
    transformed hit may add when it is forwarded."""
    return [(name, text) for name, text in encode_key(key, value) if not is_contact_param(name)]


def _typed(text_prefix: str, number_prefix: str, value: object, path: str = "") -> Pairs:
    """``{"a": "x", "n": 2, "o": {"b": "y"}}`` → ``ep.a=x``, ``epn.n=2``, ``ep.o.b=y``."""
    if not isinstance(value, Mapping):
        return []
    pairs: Pairs = []
    for name, item in value.items():
        full = f"{path}{name}"
        if not isinstance(name, str) or not name:
            continue
        number = _number(item)
        if number is not None:
            pairs.append((number_prefix + full, format_number(number)))
        elif isinstance(item, Mapping):
            pairs.extend(_typed(text_prefix, number_prefix, item, full + "."))
        else:
            text = _text(item)
            if text is not None:
                pairs.append((text_prefix + full, text))
    return pairs


def _flat(prefix: str, value: object) -> Pairs:
    if not isinstance(value, Mapping):
        return []
    pairs: Pairs = []
    for name, item in value.items():
        text = _text(item)
        if isinstance(name, str) and name and text is not None:
            pairs.append((prefix + name, text))
    return pairs


def _client_hints(value: object) -> Pairs:
    if not isinstance(value, Mapping):
        return []
    pairs: Pairs = []
    for key, item in value.items():
        param = _HINT_PARAM.get(key)
        if param is None:
            continue
        if param in ("uamb", "uaw"):
            pairs.append((param, "1" if item is True else "0"))
        elif param == "uafvl" and isinstance(item, list):
            entries = [
                f"{quote(str(e['brand']), safe='')};{e['version']}"
                for e in item
                if isinstance(e, Mapping) and "brand" in e and "version" in e
            ]
            pairs.append((param, "|".join(entries)))
        else:
            text = _text(item)
            if text is not None:
                pairs.append((param, text))
    return pairs


def _items(value: object) -> Pairs:
    if not isinstance(value, list):
        return []
    pairs: Pairs = []
    for item in value[:MAX_ITEMS]:
        text = encode_item(item)
        if text:
            pairs.append((f"pr{len(pairs) + 1}", text))
    return pairs


def encode_item(item: object) -> str:
    """One ``items[]`` entry as a ``pr<n>`` value (``idSKU~nmTee~pr10.01~qt3``): GA4's two-letter
    keys, other parameters as ``k<n>``/``v<n>`` pairs (at most 10); ``""`` when nothing is left."""
    if not isinstance(item, Mapping):
        return ""
    fields: list[str] = []
    custom = 0
    for name, value in item.items():
        text = _text(value)
        if not isinstance(name, str) or text is None or "~" in text:
            continue
        if name in _ITEM_TEXT_CODE:
            fields.append(_ITEM_TEXT_CODE[name] + text)
        elif name in _ITEM_NUMBER_CODE and _number(value) is not None:
            fields.append(_ITEM_NUMBER_CODE[name] + text)
        elif len(name) == 2 and name not in ITEM_TEXT_KEYS and name not in ITEM_NUMBER_KEYS and not (
            name[0] in "kv" and name[1].isdigit()
        ):
            fields.append(name + text)  # an unknown two-letter key, kept as it came
        elif custom < 10 and "~" not in name:
            fields.append(f"k{custom}{name}~v{custom}{text}")
            custom += 1
    return "~".join(fields)


#: Keys whose value is a structure of several parameters: (the type it has, its encoder). A
#: value of another type came from an ``ep.<key>`` parameter and goes back as one.
_STRUCTURED: dict[str, tuple[type | tuple[type, ...], Callable[[Any], Pairs]]] = {
    "items": (list, _items),
    "user_data": (Mapping, lambda v: _typed("ep.user_data.", "epn.user_data.", v)),
    "x-ga-mp2-user_properties": (Mapping, lambda v: _typed("up.", "upn.", v)),
    "x-ga-system_properties": (Mapping, lambda v: _flat("_", v)),
    "x-sst-system_properties": (Mapping, lambda v: _flat("sst.", v)),
    "client_hints": (Mapping, _client_hints),
}


def encode_pair(name: str, value: str) -> str:
    """One raw ``name=value`` pair, both percent-encoded as gtag's ``encodeURIComponent``."""
    return f"{quote(name, safe=_URI_SAFE)}={quote(value, safe=_URI_SAFE)}"


def changed_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    """The top-level keys whose values differ (added, removed or changed)."""
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
