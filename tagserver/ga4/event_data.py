"""GA4 hit parameters → server-side GTM's *common event data* (the GA4 client's output).

Names follow what sGTM's GA4 client produces (REFERENCE §2, and event data dumps of sGTM
containers): ``en`` → ``event_name``, ``cid`` → ``client_id``, ``dl``/``dr``/``dt`` →
``page_location``/``page_referrer``/``page_title``, ``ep.<k>`` → ``<k>`` as a string,
``epn.<k>`` → ``<k>`` as a number, ``up.``/``upn.`` → ``x-ga-mp2-user_properties``,
``pr<n>`` → ``items``, ``_<k>`` → ``x-ga-system_properties.<k>``, ``sst.<k>`` →
``x-sst-system_properties.<k>``, client hints → ``client_hints``, protocol fields →
``x-ga-<name>``, anything else → ``x-ga-mp2-<name>``. ``ep.user_data.<path>`` builds the nested
``user_data`` object. ``ip_override`` and ``user_agent`` come from the request, never from the
hit (``_uip`` is client-controlled and ignored).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from tagserver.ga4.items import ITEM_PARAM_RE, collect_items
from tagserver.ga4.numbers import parse_number

#: Parameter → (event data key, numeric?).
RENAMED: dict[str, tuple[str, bool]] = {
    "en": ("event_name", False),
    "cid": ("client_id", False),
    "uid": ("user_id", False),
    "dl": ("page_location", False),
    "dr": ("page_referrer", False),
    "dt": ("page_title", False),
    "ul": ("language", False),
    "sr": ("screen_resolution", False),
    "cu": ("currency", False),
    "sid": ("ga_session_id", False),
    "sct": ("ga_session_number", True),
    "seg": ("x-ga-mp2-seg", False),
    "_et": ("engagement_time_msec", True),
    "v": ("x-ga-protocol_version", False),
    "tid": ("x-ga-measurement_id", False),
    "gtm": ("x-ga-gtm_version", False),
    "_p": ("x-ga-page_id", True),
    "_s": ("x-ga-request_count", True),
    "tfd": ("x-ga-tfd", True),
}
#: Protocol fields kept as ``x-ga-<name>`` strings.
PROTOCOL_FIELDS = frozenset(
    {"gcs", "gcd", "gcu", "gcut", "npa", "dma", "dma_cps", "ecid", "are", "pscdl", "ur",
     "gdpr", "gdpr_consent", "us_privacy", "ir"}
)
#: Client hints parameter → ``client_hints`` key (``uafvl`` and the booleans are decoded apart).
CLIENT_HINTS: dict[str, str] = {
    "uaa": "architecture",
    "uab": "bitness",
    "uafvl": "full_version_list",
    "uamb": "mobile",
    "uam": "model",
    "uap": "platform",
    "uapv": "platform_version",
    "uaw": "wow64",
}
#: Transport flags and client-controlled values that never become event data.
IGNORED = frozenset({"richsstsse", "_uip"})


def build_event_data(
    params: Sequence[tuple[str, str]],
    *,
    ip_override: str | None = None,
    user_agent: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """``(event data, problems)`` for one hit's merged, decoded parameters (in order; the first
    of a repeated name wins).

    ``problems`` lists what was left out (a number that does not parse, a broken item field) —
    the hit itself stays valid. Never raises.
    """
    data: dict[str, Any] = {}
    problems: list[str] = []
    seen: set[str] = set()
    system: dict[str, str] = {}
    sst: dict[str, str] = {}
    user_properties: dict[str, Any] = {}
    hints: dict[str, Any] = {}
    for name, value in params:
        if name in seen or name in IGNORED or ITEM_PARAM_RE.match(name):
            continue
        seen.add(name)
        if name in RENAMED:
            key, numeric = RENAMED[name]
            _put(data, key, value, numeric=numeric, problems=problems, source=name)
        elif name in PROTOCOL_FIELDS:
            data[f"x-ga-{name}"] = value
        elif name in CLIENT_HINTS:
            hints[CLIENT_HINTS[name]] = _client_hint(name, value)
        elif name.startswith(("ep.", "epn.")):
            key = name.split(".", 1)[1]
            if not key:
                problems.append(f"{name}: empty parameter name")
            elif key.startswith("user_data.") and len(key) > len("user_data."):
                _put_user_data(data, key[len("user_data."):], value,
                               numeric=name.startswith("epn."), problems=problems, source=name)
            else:
                _put(data, key, value, numeric=name.startswith("epn."), problems=problems,
                     source=name)
        elif name.startswith(("up.", "upn.")):
            key = name.split(".", 1)[1]
            if key:
                _put(user_properties, key, value, numeric=name.startswith("upn."),
                     problems=problems, source=name)
        elif name.startswith("sst.") and len(name) > 4:
            sst[name[4:]] = value
        elif name.startswith("_") and len(name) > 1:
            system[name[1:]] = value
        else:
            data[f"x-ga-mp2-{name}"] = value
    items, item_problems = collect_items(params)
    problems.extend(item_problems)
    if items:
        data["items"] = items
    if user_properties:
        data["x-ga-mp2-user_properties"] = user_properties
    if system:
        data["x-ga-system_properties"] = system
    if sst:
        data["x-sst-system_properties"] = sst
    if hints:
        data["client_hints"] = hints
    location = _event_location(data.get("x-ga-ur"))
    if location:
        data["event_location"] = location
    if ip_override:
        data["ip_override"] = ip_override
    if user_agent:
        data["user_agent"] = user_agent
    return data, problems


def _put(
    target: dict[str, Any], key: str, value: str, *, numeric: bool, problems: list[str],
    source: str,
) -> None:
    if not numeric:
        target[key] = value
        return
    number = parse_number(value)
    if number is None:
        problems.append(f"{source}: {value[:40]!r} is not a number")
    else:
        target[key] = number


def _put_user_data(
    data: dict[str, Any], path: str, value: str, *, numeric: bool, problems: list[str],
    source: str,
) -> None:
    """``user_data.address.city`` → ``data["user_data"]["address"]["city"]``; a path that runs
    into a value already set as text is reported and skipped."""
    *parents, leaf = path.split(".")
    if not all(parents) or not leaf:
        problems.append(f"{source}: empty name in the user_data path")
        return
    node = data.setdefault("user_data", {})
    if not isinstance(node, dict):
        problems.append(f"{source}: user_data is already a value")
        return
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            problems.append(f"{source}: conflicting user_data path")
            return
        node = child
    if isinstance(node.get(leaf), dict):
        problems.append(f"{source}: conflicting user_data path")
        return
    _put(node, leaf, value, numeric=numeric, problems=problems, source=source)


def _client_hint(name: str, value: str) -> Any:
    if name in ("uamb", "uaw"):
        return value == "1"
    if name == "uafvl":
        return parse_full_version_list(value)
    return value


def parse_full_version_list(value: str) -> list[dict[str, str]]:
    """``uafvl``: ``brand;version`` entries joined by ``|``, each brand percent-encoded once more
    (``Not(A%3ABrand;24.0.0.0|Chromium;122.0.6261.171``) → ``[{"brand", "version"}]``."""
    entries = []
    for part in value.split("|")[:20]:
        brand, sep, version = part.rpartition(";")
        if sep and brand:
            entries.append({"brand": unquote(brand), "version": version})
    return entries


def _event_location(ur: object) -> dict[str, str]:
    """``ur`` (user region, ``DE`` or ``BR-SP``) → ``{"country", "region"}``."""
    if not isinstance(ur, str) or not ur:
        return {}
    country, _, region = ur.partition("-")
    location = {"country": country}
    if region:
        location["region"] = region
    return location
