"""Checks a server event against Meta's rules before it joins a batch.

One invalid event makes Meta reject the whole request (REFERENCE §1), so an event that would be
refused is held back here with a reason, and a bad field is dropped without losing the event.
Sources: Meta "Conversions API parameters" (event_time at most 7 days old; Purchase requires
value and currency) and "Custom data parameters".
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tagserver.meta.normalize import normalize_currency, parse_value

#: Meta refuses events older than this (seconds); physical_store events may be 62 days old.
MAX_EVENT_AGE_S = 7 * 24 * 3600
MAX_EVENT_AGE_PHYSICAL_STORE_S = 62 * 24 * 3600


@dataclass
class CustomDataCheck:
    """Result of :func:`clean_custom_data`: the data to send and the fields dropped, as
    ``(field, reason)`` pairs."""

    data: dict[str, Any]
    dropped: list[tuple[str, str]] = field(default_factory=list)


def clean_custom_data(
    raw: Mapping[str, Any], *, value_locale: str | None = None
) -> CustomDataCheck:
    """A faithful copy of ``custom_data`` with Meta's typed fields made valid.

    ``value`` becomes a JSON number (a dot-decimal string is converted; a locale-formatted one is
    refused unless ``value_locale`` names the locale); ``currency`` is upper-cased ISO 4217;
    ``content_ids`` stay strings exactly as sent (numbers become their decimal string). A field that
    cannot be made valid is dropped and reported; everything else is copied unchanged.
    """
    data = copy.deepcopy(dict(raw))
    dropped: list[tuple[str, str]] = []
    for key in ("value", "predicted_ltv"):
        if key in data:
            number = parse_value(data[key], locale=value_locale)
            if number is None:
                del data[key]
                dropped.append((key, "not a number (use a dot decimal, or set the tag's locale)"))
            else:
                data[key] = (
                    int(number) if number.is_integer() and isinstance(raw[key], int) else number
                )
    if "currency" in data:
        currency = normalize_currency(data["currency"])
        if currency is None:
            del data["currency"]
            dropped.append(("currency", "not an ISO 4217 currency code"))
        else:
            data["currency"] = currency
    if "content_ids" in data:
        ids = data["content_ids"]
        if isinstance(ids, str | int) and not isinstance(ids, bool):
            ids = [ids]
        if isinstance(ids, list) and all(
            isinstance(i, str | int) and not isinstance(i, bool) for i in ids
        ):
            data["content_ids"] = [i if isinstance(i, str) else str(i) for i in ids]
        else:
            del data["content_ids"]
            dropped.append(("content_ids", "expected a list of strings"))
    if "num_items" in data:
        num = data["num_items"]
        if isinstance(num, bool) or not isinstance(num, int | float) or not math.isfinite(num):
            del data["num_items"]
            dropped.append(("num_items", "expected a number"))
    return CustomDataCheck(data=data, dropped=dropped)


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
    missing = [name for name, value in (("event_source_url", event_source_url),
                                        ("client_user_agent", user_agent)) if not value]
    return "website event without " + " and ".join(missing) if missing else None
