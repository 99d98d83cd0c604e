"""The ``meta`` tag type: Meta Pixel command for the browser + Conversions API event, one event_id.

It reads the (transformed) event data: ``event_name``, ``event_id``, ``event_time``,
``action_source`` (Meta's; ``website`` when absent: only website events need a page URL and a
user agent; ``physical_store`` events may be 62 days old), ``page_location``, ``page_referrer``,
``user_agent``, ``ip_override``, ``x-fb-ck-fbp``, ``x-fb-ck-fbc``, ``custom_data`` and
``user_data`` (``lead_id`` passed as Meta's int64, never hashed); the tag's own
``custom_data`` and ``user_data`` mappings add to (and override) what the event carries.

Sources: Meta "Conversions API parameters", "Deduplicate Pixel and server events" (the browser's
``eventID`` equals the server ``event_id`` and the event names are the same string), "Customer
information parameters" (hashing, via :mod:`tagserver.meta.normalize`) and "Data Processing
Options for US Users" (Limited Data Use: ``data_processing_options`` with country and state on the
server, ``fbq('dataProcessingOptions', ['LDU'], country, state)`` or ``dpo``/``dpoco``/``dpost`` on
the image pixel in the browser).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast
from urllib.parse import urlencode

from tagserver.container.event_data import PURCHASE_TOKEN_KEY, SCALAR_ALIASES
from tagserver.container.values import CompileContext, Value, as_number, as_text, compile_value
from tagserver.meta.capi import ACTION_SOURCES, ActionSource, CapiEvent, CapiUserData
from tagserver.meta.events import GA4_TO_META, STANDARD_EVENTS, meta_event_name
from tagserver.meta.from_ga4 import USER_DATA_KEYS, ga4_custom_data, ga4_user_data
from tagserver.meta.normalize import hash_user_data
from tagserver.meta.validate import (
    MAX_EVENT_AGE_PHYSICAL_STORE_S,
    MAX_EVENT_AGE_S,
    check_event_time,
    check_purchase,
    check_website_event,
    clean_custom_fields,
)
from tagserver.secret import Secret
from tagserver.tags import Outbound, TagResult

if TYPE_CHECKING:
    from tagserver.consent import ConsentType
    from tagserver.container.scope import ClientName, Scope

BrowserMode = Literal["fbq", "img", "none"]
DEFAULT_API_VERSION = "v25.0"
PIXEL_ENDPOINT = "https://www.facebook.com/tr"
MAX_USER_AGENT_LENGTH = 512
PIXEL_ID_RE = re.compile(r"[0-9]{5,20}")
#: Meta's Lead Ads lead id: an int64 of 15 to 17 digits (Meta "Conversion Leads" payload spec).
LEAD_ID_RE = re.compile(r"[0-9]{15,17}")
#: Each of Meta's action sources, typed: one lookup checks and types an event's.
_ACTION_SOURCES: dict[str, ActionSource] = {
    source: cast(ActionSource, source) for source in ACTION_SOURCES
}
#: Integers below this (2**53) in magnitude are exact as floats: ``int(float(n)) == n``.
_EXACT_INT = 2**53
_MINUS_EXACT_INT = -_EXACT_INT  # a constant: ``-_EXACT_INT`` in a test is computed each time
#: ``object.__new__``: a result made without its class's ``__init__`` (see :meth:`MetaTag.build`).
_new_object = object.__new__


@dataclass(frozen=True)
class MetaDestination:
    """The batch key of CAPI events: events with equal keys share one request."""

    pixel_id: str
    api_version: str
    access_token: Secret
    test_event_code: str | None


@dataclass(frozen=True)
class LimitedDataUse:
    """Meta's Limited Data Use: ``always`` or only for requests with ``Sec-GPC: 1`` (Global
    Privacy Control). ``country`` 1 = US, ``state`` 1000 = California; 0/0 lets Meta geolocate."""

    mode: Literal["always", "gpc"]
    country: int = 0
    state: int = 0

    def applies(self, scope: Scope) -> bool:
        return self.mode == "always" or scope.headers.get("sec-gpc", "").strip() == "1"


def _resolve(value: object, environ: Mapping[str, str]) -> str:
    if isinstance(value, dict):
        return environ[value["env"]].strip()
    return str(value)


@dataclass(frozen=True)
class MetaTag:
    """A configured Meta pixel. ``event_name`` (a template) or ``event_name_map`` choose the name
    sent; otherwise GA4 names map to Meta's (``purchase`` → ``Purchase``) and others pass as they
    are. ``custom_data``/``user_data`` are ``(key, value)`` mappings added to the event's own."""

    name: str
    pixel_id: str
    access_token: Secret
    browser_mode: BrowserMode = "fbq"
    api_version: str = DEFAULT_API_VERSION
    test_event_code: str | None = None
    event_name: Value | None = None
    event_name_map: Mapping[str, str] = field(default_factory=dict)
    custom_data: tuple[tuple[str, Value], ...] = ()
    user_data: tuple[tuple[str, Value], ...] = ()
    limited_data_use: LimitedDataUse | None = None
    value_locale: str | None = None
    #: Send a Purchase only with a valid signed purchase token (:mod:`tagserver.purchase_token`).
    require_purchase_token: bool = False
    #: ``none``; ``truncate`` (IPv4 /24, IPv6 /48); ``drop`` (no IP to Meta).
    redact_ip: Literal["none", "truncate", "drop"] = "none"
    #: ``full``; ``trim`` (product tokens only, no comments). Meta requires a User-Agent for
    #: website events: it is never dropped.
    user_agent_mode: Literal["full", "trim"] = "full"

    default_consent: ClassVar[tuple[ConsentType, ...]] = ("ad_storage",)
    clients: ClassVar[tuple[ClientName, ...] | None] = None

    @staticmethod
    def from_config(
        raw: Mapping[str, Any], *, environ: Mapping[str, str], ctx: CompileContext, path: str
    ) -> MetaTag:
        """A tag from one schema-valid config object at JSON ``path``; ``{"env": NAME}`` values
        are read from ``environ`` (the loader has checked that they are set).

        Raises ``ValueError`` when a value read from the environment is malformed.
        """
        pixel_id = _resolve(raw["pixel_id"], environ)
        if not PIXEL_ID_RE.fullmatch(pixel_id):
            source = raw["pixel_id"]
            env = source["env"] if isinstance(source, dict) else None
            raise ValueError(f"pixel_id: the environment variable {env} is not 5 to 20 digits"
                             if env else "pixel_id: expected 5 to 20 digits")
        test_code = raw.get("test_event_code")
        mappings: dict[str, tuple[tuple[str, Value], ...]] = {}
        for key in ("custom_data", "user_data"):
            items = []
            for field_name, template in raw.get(key, {}).items():
                where = f"{path}.{key}.{field_name}"
                value = compile_value(template, ctx, path=where)
                if value.secret:
                    ctx.problem(where, "a secret may not be sent to Meta",
                                "secrets may be used in http tag url, headers and body only")
                items.append((field_name, value))
            mappings[key] = tuple(items)
        event_name = None
        if "event_name" in raw:
            event_name = compile_value(raw["event_name"], ctx, path=f"{path}.event_name")
            if event_name.secret:
                ctx.problem(f"{path}.event_name", "a secret may not be sent to Meta",
                            "secrets may be used in http tag url, headers and body only")
        # no setting: Limited Data Use for requests with Sec-GPC: 1 (CCPA regs §7025)
        ldu = raw.get("limited_data_use", {"mode": "gpc"})
        return MetaTag(
            name=raw["name"],
            pixel_id=pixel_id,
            access_token=Secret(_resolve(raw["access_token"], environ)),
            browser_mode=raw.get("browser_mode", "fbq"),
            api_version=raw.get("api_version", DEFAULT_API_VERSION),
            test_event_code=_resolve(test_code, environ) if test_code is not None else None,
            event_name=event_name,
            event_name_map=dict(raw.get("event_name_map", {})),
            custom_data=mappings["custom_data"],
            user_data=mappings["user_data"],
            limited_data_use=(
                LimitedDataUse(ldu["mode"], ldu.get("country", 0), ldu.get("state", 0))
                if ldu is not None and ldu["mode"] != "off"
                else None
            ),
            value_locale=raw.get("value_locale"),
            require_purchase_token=bool(raw.get("require_purchase_token", False)),
            redact_ip=raw.get("redact_ip", "none"),
            user_agent_mode=raw.get("user_agent", "full"),
        )

    #: The batch key of this tag's CAPI events, and whether the name sent is the incoming one
    #: mapped by :func:`meta_event_name` (no ``event_name`` template, no ``event_name_map``):
    #: made once by ``__post_init__`` (the tag is immutable). Plain instance attributes, not
    #: ``functools.cached_property``: the build reads both on every event, and a read through
    #: the class's descriptor cost about 1,400 instructions each.
    destination: MetaDestination = field(init=False, repr=False, compare=False)
    _names_as_sent: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "destination", MetaDestination(
            self.pixel_id, self.api_version, self.access_token, self.test_event_code
        ))  # fmt: skip
        object.__setattr__(
            self, "_names_as_sent", self.event_name is None and not self.event_name_map
        )

    def meta_name(self, scope: Scope) -> str:
        """The event name sent on both sides (see the class docstring)."""
        incoming = as_text(scope.data.get("event_name")) or ""
        if self.event_name is not None:
            chosen = as_text(self.event_name.resolve(scope))
            if chosen:
                return chosen
        mapped = self.event_name_map.get(incoming)
        return mapped if mapped is not None else meta_event_name(incoming)

    def build(self, scope: Scope, *, default_country: str | None, now: float) -> TagResult:
        """The Pixel command and the CAPI event for the event data of ``scope``.

        The CAPI event is held back (a drop with its reason) when Meta would reject it: too old, a
        Purchase without value and currency, a website event without page URL or user agent. The
        browser command goes out either way.
        """
        # One event per hit comes through here: values of the common types (strings, ints) are
        # taken as they are and the others go through the general helpers, with the same result.
        data = scope.data
        if self._names_as_sent:
            incoming = data.get("event_name")
            incoming = incoming if type(incoming) is str else (as_text(incoming) or "")
            name = GA4_TO_META.get(incoming, incoming)  # meta_event_name(incoming)
        else:
            name = self.meta_name(scope)
        event_id = data.get("event_id")
        if type(event_id) is not str:
            event_id = as_text(event_id)
        if not name or not event_id:
            return TagResult(drops=[("invalid_event", "event_name or event_id is missing")])
        drops: list[tuple[str, str]] = []
        if self.require_purchase_token and name == "Purchase":
            verdict = data.get(PURCHASE_TOKEN_KEY)
            if verdict != "valid":
                drops.append(("invalid_purchase_token", f"purchase token: {verdict or 'missing'}"))
                return TagResult(drops=drops)
        raw_custom = data.get("custom_data")
        custom_data: Mapping[str, Any]
        if type(raw_custom) is dict and not self.custom_data:  # what _custom_data gives:
            if (
                # any of the keys common_custom_data reads (four lookups; a set's isdisjoint
                # would walk every key of the event data)
                "value" in data
                or "currency" in data
                or "transaction_id" in data
                or "items" in data
            ):
                custom_data = _topped_up(data, raw_custom)
            else:
                custom_data = raw_custom
        else:
            custom_data = self._custom_data(scope)
        if "purchase_token" in custom_data:  # never forwarded
            custom_data = {k: v for k, v in custom_data.items() if k != "purchase_token"}
        if custom_data:
            cleaned, dropped = clean_custom_fields(custom_data, self.value_locale)
            for field_name, reason in dropped:
                drops.append(("invalid_field", f"custom_data.{field_name}: {reason}"))
        else:
            cleaned = {}
        ldu = self.limited_data_use
        # ldu.applies(scope), written out
        if ldu is not None and ldu.mode != "always" and (
            scope.headers.get("sec-gpc", "").strip() != "1"
        ):
            ldu = None
        if ldu is None and self.browser_mode == "fbq":  # browser_commands, the usual case
            method = "trackSingle" if name in STANDARD_EVENTS else "trackSingleCustom"
            commands = [{"type": "fbq", "args": [method, self.pixel_id, name,
                                                 dict(cleaned) if cleaned else {},
                                                 {"eventID": event_id}]}]
        else:
            commands = self.browser_commands(name, event_id, cleaned, ldu=ldu)
        # TagResult(commands, None, drops) without the type call and its __init__ (about 750
        # instructions of a hit's ~48,000 in the container): the three fields stored directly
        result: TagResult = _new_object(TagResult)
        result.commands = commands
        result.outbound = []
        result.drops = drops
        source = data.get("action_source")
        source = (source if type(source) is str else _text(source)) or "website"
        action_source = _ACTION_SOURCES.get(source)
        if action_source is None:
            drops.append(("invalid_event", f"action_source {source!r} is not Meta's"))
            return result
        raw_time = data.get("event_time")
        if type(raw_time) is int and _MINUS_EXACT_INT < raw_time < _EXACT_INT:
            event_time = raw_time  # int(as_number(raw_time)), exactly
        else:
            time_number = as_number(raw_time)
            event_time = int(time_number) if time_number is not None else int(now)
        if event_time < now - MAX_EVENT_AGE_S:  # else check_event_time finds nothing
            too_old = check_event_time(event_time, now=now, action_source=action_source)
        else:
            too_old = None
        if too_old is not None:
            days = (MAX_EVENT_AGE_PHYSICAL_STORE_S if action_source == "physical_store"
                    else MAX_EVENT_AGE_S) // 86400
            drops.append((too_old, f"event_time {event_time} is over {days} days old"))
            return result
        if name == "Purchase" and ("value" not in cleaned or "currency" not in cleaned):
            problem = check_purchase(name, cleaned)  # what is missing
            if problem is not None:
                drops.append(("missing_purchase_data", problem))
                return result
        page = data.get("page_location")
        page = (page or None) if type(page) is str else _text(page)
        user_agent = data.get("user_agent")
        user_agent = (user_agent or None) if type(user_agent) is str else _text(user_agent)
        if action_source == "website" and not (page and user_agent):
            problem = check_website_event(event_source_url=page, user_agent=user_agent)
            if problem is not None:
                drops.append(("invalid_event", problem))
                return result
        capi: CapiEvent = {
            "event_name": name,
            "event_time": event_time,
            "event_id": event_id,
            "action_source": action_source,
        }
        if page:
            capi["event_source_url"] = page
        referrer = data.get("page_referrer")
        if type(referrer) is not str and referrer is not None:
            referrer = _text(referrer)
        if referrer:  # _text(referrer), truthy
            capi["referrer_url"] = referrer
        if ldu is not None:
            capi["data_processing_options"] = ["LDU"]
            capi["data_processing_options_country"] = ldu.country
            capi["data_processing_options_state"] = ldu.state
        capi["user_data"] = self._capi_user_data(scope, user_agent, default_country)
        if cleaned:
            capi["custom_data"] = cleaned  # a copy already, used by nothing else
        # Outbound(self.destination, capi), its __init__ written out (one per event; the type
        # call costs about 500 instructions more)
        outbound: Outbound = _new_object(Outbound)
        fields = outbound.__dict__
        fields["destination"] = self.destination
        fields["payload"] = capi
        result.outbound.append(outbound)
        return result

    def _custom_data(self, scope: Scope) -> Mapping[str, Any]:
        """The event's ``custom_data`` (topped up from ``value``, ``currency``,
        ``transaction_id``, ``items``), or without one the Meta custom data made from sGTM's
        common event data as for a gtag.js hit; then the tag's own ``custom_data`` mapping."""
        data = scope.data
        raw = data.get("custom_data")
        if type(raw) is dict or isinstance(raw, Mapping):
            custom: Mapping[str, Any] = _topped_up(data, raw)
        else:
            custom = ga4_custom_data(data)
        if not self.custom_data:
            return custom
        merged = dict(custom)
        for key, value in self.custom_data:
            resolved = value.resolve(scope)
            if resolved is not None:
                merged[key] = resolved
        return merged

    def _capi_user_data(
        self, scope: Scope, user_agent: str | None, default_country: str | None
    ) -> CapiUserData:
        """IP, user agent, ``fbp``/``fbc`` (never hashed) and the hashed customer information,
        left out when ``ad_user_data`` is denied. (Positional: called once per event.)"""
        data = scope.data
        user: CapiUserData = {}
        # each value as _text gives it (absent keys skip the call); only a truthy one is sent
        ip = data.get("ip_override")
        if type(ip) is not str and ip is not None:
            ip = _text(ip)
        if ip and self.redact_ip != "none":
            ip = redact_ip(ip, self.redact_ip)
        if ip:
            user["client_ip_address"] = ip
        if self.user_agent_mode != "full":
            user_agent = trim_user_agent(user_agent, self.user_agent_mode)
        if user_agent:
            user["client_user_agent"] = user_agent[:MAX_USER_AGENT_LENGTH]
        fbp = data.get("x-fb-ck-fbp")
        if type(fbp) is not str and fbp is not None:
            fbp = _text(fbp)
        if fbp:
            user["fbp"] = fbp
        fbc = data.get("x-fb-ck-fbc")
        if type(fbc) is not str and fbc is not None:
            fbc = _text(fbc)
        if fbc:
            user["fbc"] = fbc
        if scope.consent.ad_user_data:
            raw = data.get("user_data")
            customer: dict[str, Any]
            if not raw:
                if not self.user_data:
                    return user  # no customer information: nothing to hash
                customer = {}
            elif type(raw) is dict and not self.user_data and _SGTM_USER_KEYS.isdisjoint(raw):
                customer = raw  # Meta keys only, nothing added: read as it is, never changed
            else:
                customer = common_user_data(raw)  # a new dict
            if "lead_id" in customer:
                lead_id = _text(customer["lead_id"])
                if lead_id and LEAD_ID_RE.fullmatch(lead_id):
                    user["lead_id"] = int(lead_id)  # never hashed (REFERENCE §1)
            if self.user_data:
                for key, value in self.user_data:
                    resolved = value.resolve(scope)
                    if resolved is not None:
                        customer[key] = resolved
            if customer:
                hashed = hash_user_data(customer, default_country=default_country)
                user.update(hashed)  # type: ignore[typeddict-item]
        return user

    def browser_commands(
        self,
        name: str,
        event_id: str,
        custom_data: Mapping[str, Any],
        *,
        ldu: LimitedDataUse | None = None,
    ) -> list[dict[str, Any]]:
        """DESIGN.md's command shapes: ``fbq`` → ``trackSingle``/``trackSingleCustom`` with
        ``{"eventID": event_id}`` (after a ``dataProcessingOptions`` command under LDU); ``img`` →
        a ``/tr`` image URL with ``eid``; ``none`` → no command."""
        mode = self.browser_mode
        if mode != "none" and mode != "img":  # fbq
            method = "trackSingle" if name in STANDARD_EVENTS else "trackSingleCustom"
            command = {
                "type": "fbq",
                "args": [method, self.pixel_id, name, dict(custom_data) if custom_data else {},
                         {"eventID": event_id}],
            }
            if ldu is None:
                return [command]
            return [
                {"type": "fbq", "args": ["dataProcessingOptions", ["LDU"], ldu.country,
                                         ldu.state]},
                command,
            ]
        if mode == "none":
            return []
        src = pixel_image_url(self.pixel_id, name, event_id, custom_data, ldu=ldu)
        return [{"type": "img", "src": src}]


def common_custom_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """Meta custom data from sGTM's common event data keys: ``value``, ``currency``,
    ``transaction_id`` → ``order_id``, ``items`` → ``contents`` (``item_id`` → ``id``,
    ``quantity``, ``price`` → ``item_price``). The event's ``custom_data`` object wins over these."""
    base: dict[str, Any] = {}
    for source, target in SCALAR_ALIASES:  # the event data aliases, the other way round
        found = data.get(source)
        if found is not None:
            base[target] = found
    items = data.get("items")
    if isinstance(items, list):
        contents = _contents(items)
        if contents:
            base["contents"] = contents
    return base


def _contents(items: list[Any]) -> list[dict[str, Any]]:
    """Meta ``contents`` from GA4 ``items`` (see :func:`common_custom_data`)."""
    contents = []
    for item in items:
        if isinstance(item, Mapping) and item.get("item_id") is not None:
            entry: dict[str, Any] = {"id": item["item_id"]}
            for key, meta_key in (("quantity", "quantity"), ("price", "item_price")):
                if item.get(key) is not None:
                    entry[meta_key] = item[key]
            contents.append(entry)
    return contents


def _topped_up(data: Mapping[str, Any], raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """``{**common_custom_data(data), **raw}``, or ``raw`` itself when the common keys give
    nothing: the event's ``custom_data`` topped up from ``value``, ``currency``,
    ``transaction_id`` and ``items``.

    Written out for the Meta build (one per event, and on ``POST /e`` hits these keys are
    aliases of ``raw``'s own): each key looked up once, and ``contents`` is not made from
    ``items`` when ``raw`` has its own, which replaces it (only where the key stands counts).
    """
    base: dict[str, Any] = {}
    for source, target in SCALAR_ALIASES:  # as common_custom_data
        found = data.get(source)
        if found is not None:
            base[target] = found
    items = data.get("items")
    if isinstance(items, list):
        if "contents" not in raw:
            contents = _contents(items)
            if contents:
                base["contents"] = contents
        elif any(isinstance(item, Mapping) and item.get("item_id") is not None for item in items):
            base["contents"] = None  # its place: raw's value goes there below
    if not base:
        return raw
    base.update(raw)
    return base


#: The sGTM user-provided data keys that :func:`common_user_data` maps (Meta keys map to
#: themselves), and ``address``.
_SGTM_USER_KEYS = frozenset(
    {key for key, meta_key in USER_DATA_KEYS.items() if key != meta_key} | {"address"}
)


def common_user_data(raw: object) -> dict[str, Any]:
    """Customer information with Meta keys (``em``, ``ph``, ...): Meta keys as sent, plus sGTM's
    user-provided data keys mapped as for a gtag.js hit (``email_address``, ``phone_number``,
    their ``sha256_`` forms, ``address`` — an object or a list, the first one counts — with
    ``first_name``, ``city``, ...; :func:`tagserver.meta.from_ga4.ga4_user_data`); a Meta key
    that is present wins."""
    if not (isinstance(raw, dict) or isinstance(raw, Mapping)):
        return {}
    customer = dict(raw)
    if _SGTM_USER_KEYS.isdisjoint(customer):  # Meta keys only: nothing to map
        return customer
    address = customer.get("address")
    if isinstance(address, list):
        address = address[0] if address else None
    source = {k: v for k, v in customer.items() if k != "address"}
    if isinstance(address, Mapping):
        source["address"] = address
    for key, value in ga4_user_data({"user_data": source}).items():
        customer.setdefault(key, value)
    customer.pop("address", None)
    return customer


def redact_ip(ip: str | None, mode: str) -> str | None:
    """``ip`` as ``mode`` allows: ``none`` as is, ``truncate`` to its network (IPv4 /24 →
    ``a.b.c.0``, IPv6 /48), ``drop`` → ``None``."""
    if ip is None or mode == "none":
        return ip
    if mode == "drop":
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


_UA_COMMENT = re.compile(r"\s*\([^)]*\)")


def trim_user_agent(user_agent: str | None, mode: str) -> str | None:
    """``full`` as is; ``trim`` without its comments (``(X11; Linux x86_64)``: device and OS
    details), product tokens kept."""
    if user_agent is None or mode == "full":
        return user_agent
    return _UA_COMMENT.sub("", user_agent).strip() or user_agent


_NUMBER = int | float  # made once: a union written in isinstance() is built per call


def _text(value: object) -> str | None:
    """A string, number or boolean as non-empty text, else ``None``."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, _NUMBER):
        return as_text(value) or None
    return None


def pixel_image_url(
    pixel_id: str,
    name: str,
    event_id: str,
    custom_data: Mapping[str, Any],
    *,
    ldu: LimitedDataUse | None = None,
) -> str:
    """Meta's image pixel: ``https://www.facebook.com/tr?id=..&ev=..&eid=..&noscript=1&cd[k]=v``
    (plus ``dpo=LDU&dpoco=..&dpost=..`` under LDU); lists and objects in custom data are
    JSON-encoded."""
    params: list[tuple[str, str]] = [
        ("id", pixel_id),
        ("ev", name),
        ("eid", event_id),
        ("noscript", "1"),
    ]
    if ldu is not None:
        params += [("dpo", "LDU"), ("dpoco", str(ldu.country)), ("dpost", str(ldu.state))]
    for key, value in custom_data.items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        params.append((f"cd[{key}]", text))
    return f"{PIXEL_ENDPOINT}?{urlencode(params)}"
