"""Checks a server event against Meta's rules before it joins a batch.

One invalid event makes Meta reject the whole request (REFERENCE §1), so an event that would be
refused is held back here with a reason, and a bad field is dropped without losing the event.
Sources: Meta "Conversions API parameters" (event_time at most 7 days old; Purchase requires
value and currency) and "Custom data parameters" (value/predicted_ltv numbers; content_ids a
list of strings; contents a list of objects with id string, quantity integer, item_price
number; num_items integer; order_id, content_type, content_name, content_category,
search_string, status, delivery_category strings — the types of Meta's business SDKs'
``CustomData`` and ``Content``). A value of another type makes Meta refuse the event (error
100), so it is converted when the meaning is clear and dropped with a reason otherwise.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tagserver.meta.normalize import normalize_currency, parse_value

#: Meta refuses events older than this (seconds); physical_store events may be 62 days old.
MAX_EVENT_AGE_S = 7 * 24 * 3600
MAX_EVENT_AGE_PHYSICAL_STORE_S = 62 * 24 * 3600
#: Largest ``quantity`` of one content and ``num_items`` sent: a sanity bound, far above any
#: real order, that keeps a garbage number (1e22) out of the request.
MAX_QUANTITY = 1_000_000
#: custom_data keys Meta types as strings.
STRING_KEYS = (
    "order_id", "content_type", "content_name", "content_category", "search_string", "status",
    "delivery_category",
)  # fmt: skip
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


@dataclass(init=False)
class CustomDataCheck:
    """Result of :func:`clean_custom_data`: the data to send and the fields dropped, as
    ``(field, reason)`` pairs."""

    data: dict[str, Any]
    dropped: list[tuple[str, str]] = field(default_factory=list)

    def __init__(
        self, data: dict[str, Any], dropped: list[tuple[str, str]] | None = None
    ) -> None:
        """The dataclass's ``__init__`` (``None`` → a new empty list) without a factory call:
        one check per Meta event."""
        self.data = data
        self.dropped = [] if dropped is None else dropped


def clean_custom_data(
    raw: Mapping[str, Any], *, value_locale: str | None = None
) -> CustomDataCheck:
    """A faithful copy of ``custom_data`` with Meta's typed fields made valid.

    ``value`` becomes a JSON number (a dot-decimal string is converted; a locale-formatted one is
    refused unless ``value_locale`` names the locale); ``currency`` is upper-cased ISO 4217;
    ``content_ids`` stay strings exactly as sent (integers and whole floats become their decimal
    string; any other item is dropped alone); ``contents`` keeps its valid objects (``id`` a
    string, ``quantity`` an integer 0..:data:`MAX_QUANTITY`, ``item_price`` a number, other keys
    as sent); ``num_items`` an integer 0..:data:`MAX_QUANTITY`; the :data:`STRING_KEYS` strings
    (numbers become their decimal string). A field (or list item) that cannot be made valid is
    dropped and reported — never the event; everything else is copied unchanged.
    """
    data, dropped = clean_custom_fields(raw, value_locale)
    return CustomDataCheck(data, dropped)


def clean_custom_fields(
    raw: Mapping[str, Any], value_locale: str | None = None
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """:func:`clean_custom_data` as ``(data, dropped)``, without the result object (the Meta tag
    calls it once per event)."""
    if not raw:
        return {}, []
    try:
        return _clean_fields(raw, value_locale, True)
    except _TooDeep:  # deeper than the plain copy goes: copy.deepcopy's copy, cleaned
        return _clean_fields(copy.deepcopy(dict(raw)), value_locale, False)


#: How :func:`_clean_fields` checks each typed key (any other is copied as it is).
_NUMBER_FIELD, _CURRENCY_FIELD, _IDS_FIELD, _CONTENTS_FIELD, _COUNT_FIELD, _STRING_FIELD = range(6)
_FIELD_KINDS: dict[str, int] = {
    "value": _NUMBER_FIELD,
    "predicted_ltv": _NUMBER_FIELD,
    "currency": _CURRENCY_FIELD,
    "content_ids": _IDS_FIELD,
    "contents": _CONTENTS_FIELD,
    "num_items": _COUNT_FIELD,
    **dict.fromkeys(STRING_KEYS, _STRING_FIELD),
}
#: The order in which dropped fields are reported: the order of the checks (as they were made one
#: key after the other, before the checks became one pass over the data).
_DROP_ORDER: dict[str, int] = {
    key: rank
    for rank, key in enumerate(
        ("value", "predicted_ltv", "currency", "content_ids", "contents", "num_items", *STRING_KEYS)
    )
}


def _clean_fields(
    raw: Mapping[str, Any], value_locale: str | None, copy_values: bool
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """:func:`clean_custom_fields` in one pass over ``raw``, each key where ``raw`` has it. The
    typed keys are checked without a copy of their values, which are always replaced by new or
    immutable ones, or dropped (``contents`` excepted: its items keep their other keys, so it is
    copied first). The other values are copied by :func:`_copy_value` (``copy_values``) or
    taken as they are (``raw`` is a copy already). Raises :class:`_TooDeep` from a copy."""
    data: dict[str, Any] = {}
    dropped: list[tuple[str, str]] = []
    for key, value in raw.items():
        kind = _FIELD_KINDS.get(key)
        if kind is None:
            if copy_values and type(value) not in _SHARED:
                value = _copy_value(value, 1)
            data[key] = value
        elif kind == _STRING_FIELD:
            if type(value) is str:
                data[key] = value  # kept as sent
            else:
                text = _text(value)
                if text is None:
                    dropped.append((key, "expected a string"))
                else:
                    data[key] = text
        elif kind == _NUMBER_FIELD:
            number = parse_value(value, locale=value_locale)
            if number is None:
                dropped.append((key, "not a number (use a dot decimal, or set the tag's locale)"))
            else:
                data[key] = int(number) if number.is_integer() and isinstance(value, int) else number
        elif kind == _CURRENCY_FIELD:
            currency = normalize_currency(value)
            if currency is None:
                dropped.append(("currency", "not an ISO 4217 currency code"))
            else:
                data[key] = currency
        elif kind == _IDS_FIELD:
            ids = value if isinstance(value, list) else [value]
            # the usual ids (non-blank strings) are kept as they are; otherwise each is checked
            kept = []
            for item in ids:
                if type(item) is str and item.strip():
                    kept.append(item)
            if len(kept) < len(ids):
                kept = [i for i in (_id_text(item) for item in ids) if i is not None]
                if len(kept) < len(ids):
                    dropped.append(
                        ("content_ids", f"{len(ids) - len(kept)} item(s) not a string id")
                    )
            if kept:
                data[key] = kept
        elif kind == _CONTENTS_FIELD:
            if copy_values and type(value) not in _SHARED:
                value = _copy_value(value, 1)
            contents, problems = _clean_contents(value)
            dropped.extend(("contents", problem) for problem in problems)
            if contents:
                data[key] = contents
        else:  # _COUNT_FIELD
            num = count_of(value)
            if num is None:
                dropped.append(("num_items", f"expected an integer from 0 to {MAX_QUANTITY}"))
            else:
                data[key] = num
    if len(dropped) > 1:
        dropped.sort(key=_drop_rank)  # stable: the items of contents keep their order
    return data, dropped


def _drop_rank(entry: tuple[str, str]) -> int:
    return _DROP_ORDER[entry[0]]


#: Nesting past which :func:`_copy` hands the whole value to ``copy.deepcopy`` (which also
#: copes with cycles; decoded JSON has neither such depth nor cycles).
_MAX_COPY_DEPTH = 32


class _TooDeep(Exception):
    pass


def _copy(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``copy.deepcopy(dict(raw))`` made fast for JSON values: dicts and lists are copied, strings,
    numbers, booleans and ``None`` (immutable) are shared, anything else is deep-copied."""
    copied: dict[str, Any] = {}
    try:
        for key, value in raw.items():  # loops, not comprehensions: no frame per dict or list
            copied[key] = value if type(value) in _SHARED else _copy_value(value, 1)
    except _TooDeep:
        return copy.deepcopy(dict(raw))
    return copied


#: The immutable JSON types, shared by a copy.
_SHARED = frozenset({str, int, float, bool, type(None)})


def _copy_value(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind in _SHARED:
        return value
    if depth > _MAX_COPY_DEPTH:
        raise _TooDeep
    if kind is dict:
        copied: dict[Any, Any] = {}
        for key, item in value.items():
            copied[key] = item if type(item) in _SHARED else _copy_value(item, depth + 1)
        return copied
    if kind is list:
        items: list[Any] = []
        for item in value:
            items.append(item if type(item) in _SHARED else _copy_value(item, depth + 1))
        return items
    return copy.deepcopy(value)


def _id_text(value: object) -> str | None:
    """An id as Meta's string: strings as sent (non-empty), integers and whole floats as their
    decimal string; anything else ``None``."""
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return None


def _text(value: object) -> str | None:
    """A string field: strings as sent, finite numbers as their decimal string, else ``None``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return None
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def count_of(value: object) -> int | None:
    """A quantity as an integer 0..:data:`MAX_QUANTITY`: integers, whole floats and digit strings
    (``"3"``, ``"3.0"``); anything else (fractions, negatives, 1e22, bools) ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not _DECIMAL.fullmatch(text):
            return None
        value = float(text)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_QUANTITY:
        return value
    return None


def _price(value: object) -> float | int | None:
    """``item_price``: a finite number, or a dot-decimal string converted; else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < 2**53 else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        number = float(value.strip())
        return number if math.isfinite(number) else None
    return None


def _clean_contents(raw: object) -> tuple[list[dict[str, Any]], list[str]]:
    """``(valid contents, problems)``: each item an object with a string ``id``; ``quantity``
    and ``item_price`` converted or the item dropped; other keys kept."""
    if not isinstance(raw, list):
        return [], ["expected a list of objects"]
    kept: list[dict[str, Any]] = []
    problems: list[str] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            problems.append(f"item {index}: not an object")
            continue
        content = dict(item)
        content_id = _id_text(content.get("id"))
        if content_id is None:
            problems.append(f"item {index}: id missing or not a string")
            continue
        content["id"] = content_id
        if "quantity" in content:
            quantity = count_of(content["quantity"])
            if quantity is None:
                problems.append(f"item {index}: quantity not an integer 0..{MAX_QUANTITY}")
                continue
            content["quantity"] = quantity
        if "item_price" in content:
            price = _price(content["item_price"])
            if price is None:
                problems.append(f"item {index}: item_price not a number")
                continue
            content["item_price"] = price
        kept.append(content)
    return kept, problems


def check_event_time(event_time: int, *, now: float, action_source: str = "website") -> str | None:
    """``"too_old"`` when Meta would refuse ``event_time`` (unix seconds) as too old, else ``None``."""
    limit = MAX_EVENT_AGE_PHYSICAL_STORE_S if action_source == "physical_store" else MAX_EVENT_AGE_S
    return "too_old" if event_time < now - limit else None


def check_purchase(event_name: str, custom_data: Mapping[str, Any]) -> str | None:
    """A reason when a Purchase lacks a numeric ``value`` or an ISO 4217 ``currency`` (Meta error
    2804009 would reject the whole batch); never invents USD or 0."""
    if event_name != "Purchase":
        return None
    missing = [k for k in ("value", "currency") if k not in custom_data]
    return "Purchase without " + " and ".join(missing) if missing else None


def check_website_event(*, event_source_url: str | None, user_agent: str | None) -> str | None:
    """A reason when a website event lacks what Meta requires of it (``event_source_url`` and
    ``client_user_agent``, Meta "Conversions API parameters": website events), else ``None``."""
    if event_source_url and user_agent:
        return None
    missing = [name for name, value in (("event_source_url", event_source_url),
                                        ("client_user_agent", user_agent)) if not value]
    return "website event without " + " and ".join(missing) if missing else None
