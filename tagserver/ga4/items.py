"""GA4 items: ``pr1..prN`` parameters → sGTM's ``items[]`` of event data.

One item is ``~``-separated fields, each a two-letter key followed by its value
(``idSKU_1~nmTee~pr10.01~qt3``); custom item parameters come as pairs ``k<n>``/``v<n>``
(REFERENCE §2). Keys are GA4's item parameter names (Google "GA4 recommended events: items").
Garbage never rejects a hit: a field that cannot be read is left out and reported as a problem,
so the hit is still forwarded untouched to Google, which applies its own rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from tagserver.ga4.numbers import parse_number

#: GA4 accepts at most 200 items per event.
MAX_ITEMS = 200
ITEM_PARAM_RE = re.compile(r"pr([0-9]{1,6})\Z")

#: Two-letter key → item parameter name (string values).
ITEM_TEXT_KEYS: dict[str, str] = {
    "id": "item_id",
    "nm": "item_name",
    "af": "affiliation",
    "cp": "coupon",
    "br": "item_brand",
    "ca": "item_category",
    "c2": "item_category2",
    "c3": "item_category3",
    "c4": "item_category4",
    "c5": "item_category5",
    "li": "item_list_id",
    "ln": "item_list_name",
    "va": "item_variant",
    "lo": "location_id",
    "cn": "creative_name",
    "cs": "creative_slot",
    "pi": "promotion_id",
    "pn": "promotion_name",
}
#: Two-letter key → item parameter name (numeric values).
ITEM_NUMBER_KEYS: dict[str, str] = {
    "pr": "price",
    "qt": "quantity",
    "ds": "discount",
    "lp": "index",
}
_CUSTOM_KEY_RE = re.compile(r"[kv][0-9]\Z")


def parse_item(text: str, *, where: str = "item") -> tuple[dict[str, Any], list[str]]:
    """One item from its ``pr<n>`` value: ``(item, problems)``.

    Known keys get their GA4 names (numbers for price, quantity, discount and index); ``k<n>`` /
    ``v<n>`` pairs become ``item[<k value>] = <v value>``; an unknown two-letter key is kept under
    that key. A field shorter than two characters, a number that does not parse, a ``k<n>``
    without its ``v<n>`` (or the reverse) is left out and described in ``problems``.
    """
    item: dict[str, Any] = {}
    problems: list[str] = []
    custom_names: dict[str, str] = {}
    custom_values: dict[str, str] = {}
    for part in text.split("~"):
        if not part:
            continue
        if len(part) < 2:
            problems.append(f"{where}: field {part!r} has no two-letter key")
            continue
        key, value = part[:2], part[2:]
        if key in ITEM_TEXT_KEYS:
            item.setdefault(ITEM_TEXT_KEYS[key], value)
        elif key in ITEM_NUMBER_KEYS:
            number = parse_number(value)
            if number is None:
                problems.append(f"{where}: {ITEM_NUMBER_KEYS[key]} {value[:40]!r} is not a number")
            else:
                item.setdefault(ITEM_NUMBER_KEYS[key], number)
        elif _CUSTOM_KEY_RE.match(key):
            (custom_names if key[0] == "k" else custom_values).setdefault(key[1], value)
        else:
            item.setdefault(key, value)
    for slot in sorted(set(custom_names) | set(custom_values)):
        name = custom_names.get(slot)
        if name is None or slot not in custom_values:
            problems.append(f"{where}: custom parameter k{slot}/v{slot} is incomplete")
        elif not name:
            problems.append(f"{where}: custom parameter k{slot} has an empty name")
        else:
            item.setdefault(name, custom_values[slot])
    return item, problems


def collect_items(params: Iterable[tuple[str, str]]) -> tuple[list[dict[str, Any]], list[str]]:
    """``items[]`` from every ``pr<n>`` of ``params`` (``(name, value)`` pairs), ordered by ``n``.

    ``n`` runs from 1 to :data:`MAX_ITEMS`; another index, an empty item and a repeated index are
    reported in the problems and left out. Non-``pr<n>`` parameters are ignored.
    """
    indexed: dict[int, str] = {}
    problems: list[str] = []
    for name, value in params:
        match = ITEM_PARAM_RE.match(name)
        if match is None:
            continue
        index = int(match.group(1))
        if not 1 <= index <= MAX_ITEMS:
            problems.append(f"{name}: item index outside 1..{MAX_ITEMS}")
        elif index in indexed:
            problems.append(f"{name}: repeated item index, the first is kept")
        else:
            indexed[index] = value
    items: list[dict[str, Any]] = []
    for index in sorted(indexed):
        item, item_problems = parse_item(indexed[index], where=f"pr{index}")
        problems.extend(item_problems)
        if item:
            items.append(item)
        else:
            problems.append(f"pr{index}: empty item")
    return items, problems
