"""The ``collect`` client: parses a ``POST /e`` body of the browser client into a :class:`CollectHit`.

The body follows Meta's server event (DESIGN.md "Public contract"). Every problem is reported at
once in a :class:`~tagserver.exceptions.HitRejected` (answered 400 with the JSON error shape).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tagserver.consent import GRANTED, Consent, parse_consent
from tagserver.event import Event
from tagserver.exceptions import HitRejected
from tagserver.json_codec import loads_fast, too_deep

MAX_NAME_LENGTH = 100
MAX_ID_LENGTH = 200
MAX_URL_LENGTH = 4096
#: Clocks more than this far ahead (seconds) are not believed: the receive time is used instead.
MAX_FUTURE_S = 60
#: A timestamp at or above this is in milliseconds (13 digits), below it in seconds.
MS_THRESHOLD = 10**12


@dataclass(frozen=True, init=False)
class CollectHit:
    """A parsed hit. ``event_id`` is ``None`` when the page sent none (the server mints one);
    ``event_time`` is unix seconds, already corrected for milliseconds and fast clocks."""

    event_name: str
    event_id: str | None
    event_time: int
    event_source_url: str | None = None
    referrer_url: str | None = None
    custom_data: dict[str, Any] = field(default_factory=dict)
    user_data: dict[str, Any] = field(default_factory=dict)
    consent: Consent = GRANTED

    def __init__(
        self,
        event_name: str,
        event_id: str | None,
        event_time: int,
        event_source_url: str | None = None,
        referrer_url: str | None = None,
        custom_data: dict[str, Any] | None = None,
        user_data: dict[str, Any] | None = None,
        consent: Consent = GRANTED,
    ) -> None:
        """The dataclass's ``__init__``, written out: the instance dict is given whole, in field
        order (a frozen dataclass's sets each field with ``object.__setattr__``), as
        :func:`parse_collect_object` does; ``None`` mappings become new empty dicts."""
        _set_attribute(
            self,
            "__dict__",
            {
                "event_name": event_name,
                "event_id": event_id,
                "event_time": event_time,
                "event_source_url": event_source_url,
                "referrer_url": referrer_url,
                "custom_data": {} if custom_data is None else custom_data,
                "user_data": {} if user_data is None else user_data,
                "consent": consent,
            },
        )


# Reading a hit's fields: CPython 3.11 specializes ``hit.event_id`` (about 80 instructions instead
# of 325) only when the instance dict is an ordinary dict and the class attribute of that name, if
# any, is of an immutable type. So the instance dict is given whole (``self.__dict__`` would make
# a split dict from the instance's inline values, whose reads are never specialized), and the
# class attribute ``consent`` (the default ``GRANTED``, a ``Consent``: a mutable type) is removed;
# the dataclass keeps that default in its field and ``__init__`` (tests/unit/test_event_init.py).
del CollectHit.consent
_new_object = object.__new__
_set_attribute = object.__setattr__


#: Deepest nesting accepted in a body (the body object itself is level 1).
MAX_DEPTH = 16
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: Types for ``isinstance``, made once (a ``str | int`` written in the call is built anew every
#: time).
_CONTAINER = (dict, list)
_TIME_TYPES = int | float | str
_ID_TYPES = str | int
_SCALAR = str | int | float
_URL_SCHEMES = ("https://", "http://")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class _NonFiniteNumber(ValueError):
    """A number literal too large for a float (``1e400``): the body takes the slow path."""


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _NonFiniteNumber(text)
    return number


#: Decodes most bodies in one pass: ``NaN``/``Infinity`` are refused as by :func:`_decode`, a
#: number that overflows to infinity stops the decoding (the body is then decoded again by
#: :func:`_decode` and :func:`_check_tree` names the field). One shared instance: a
#: ``JSONDecoder`` holds no per-call state.
_FAST_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
#: The only way a lone surrogate reaches a decoded string: a ``\uD800``..``\uDFFF`` escape (strict
#: UTF-8 decoding refuses encoded surrogates). A match may be a valid pair or an escaped
#: backslash: it only sends the body through the full :func:`_check_tree`.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_tree(value: object, path: str, depth: int, errors: list[dict[str, str]]) -> None:
    """Collect what JSON allows but a UTF-8 JSON request to Meta cannot carry: lone surrogates,
    non-finite numbers, and nesting deeper than :data:`MAX_DEPTH`."""
    if len(errors) >= 10:
        return
    if isinstance(value, str):
        if not value.isascii() and any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            errors.append({"field": path, "message": "contains a lone UTF-16 surrogate"})
    elif isinstance(value, float):
        if not math.isfinite(value):
            errors.append({"field": path, "message": "number out of range"})
    elif isinstance(value, _CONTAINER):
        if depth > MAX_DEPTH:
            errors.append({"field": path, "message": f"nested deeper than {MAX_DEPTH} levels"})
            return
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if (
                isinstance(key, str)
                and not key.isascii()
                and any(0xD800 <= ord(ch) <= 0xDFFF for ch in key)
            ):
                errors.append({"field": path, "message": "a key contains a lone UTF-16 surrogate"})
            _check_tree(item, f"{path}.{key}" if path else str(key), depth + 1, errors)


def _decode(text: str, decoder: json.JSONDecoder | None) -> Any:
    """``text`` decoded by ``decoder`` (``None``: ``json.loads`` refusing ``NaN``/``Infinity``),
    every failure as :class:`HitRejected`; :class:`_NonFiniteNumber` passes through."""
    try:
        if decoder is None:
            return json.loads(text, parse_constant=_reject_constant)
        return decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise HitRejected(
            "body is not valid JSON",
            errors=[
                {"field": "body", "message": f"{exc.msg} at line {exc.lineno} column {exc.colno}"}
            ],
        ) from None
    except RecursionError:
        raise HitRejected(
            "body is nested too deeply", errors=[{"field": "body", "message": "too deep"}]
        ) from None
    except _NonFiniteNumber:
        raise
    except ValueError as exc:  # NaN/Infinity, integers over Python's digit limit
        message = str(exc) if "is not a JSON number" in str(exc) else "a number has too many digits"
        raise HitRejected(
            "body holds a number JSON cannot carry",
            errors=[{"field": "body", "message": message}],
        ) from None


def decode_json_body(body: bytes) -> dict[str, Any]:
    """UTF-8 JSON object from ``body``.

    Raises :class:`HitRejected` for invalid UTF-8, malformed JSON (with line and column), a value
    that is not an object, ``NaN``/``Infinity`` or numbers out of range, integers too long to
    convert, lone UTF-16 surrogates (``"\\ud800"``: no UTF-8 request can carry them) and nesting
    deeper than :data:`MAX_DEPTH`.

    Most bodies are decoded by orjson (:func:`~tagserver.json_codec.loads_fast`: stdlib's object
    or ``MISS``); an object from it has none of these problems (orjson refuses them, and
    ``loads_fast`` leaves long digit runs and nesting past :data:`MAX_DEPTH` to stdlib). Any other
    body is decoded by stdlib ``json``, checked while it is decoded (:data:`_FAST_DECODER`) and
    by two scans of the text (surrogate escapes, brackets); only a body that might hold a problem
    is walked by :func:`_check_tree`, which names every problem's field.
    """
    fast = loads_fast(body, max_depth=MAX_DEPTH)
    if type(fast) is dict:
        return fast
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HitRejected(
            "body is not valid UTF-8",
            errors=[{"field": "body", "message": f"invalid byte at offset {exc.start}"}],
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    suspect = False
    try:
        # json.loads refuses a second BOM with its own message: that body takes the slow path
        data = _decode(text, None if text.startswith("\ufeff") else _FAST_DECODER)
    except _NonFiniteNumber:
        data = _decode(text, None)
        suspect = True
    if not isinstance(data, dict):
        raise HitRejected(
            "body must be a JSON object",
            errors=[{"field": "body", "message": f"expected an object, got {type(data).__name__}"}],
        )
    if not suspect and "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None:
        suspect = True
    if not suspect and text.count("{") + text.count("[") > MAX_DEPTH:
        suspect = too_deep(data, MAX_DEPTH)
    if suspect:
        errors: list[dict[str, str]] = []
        _check_tree(data, "", 1, errors)
        if errors:
            raise HitRejected("body holds values that cannot be sent on", errors=errors)
    return data


def parse_event_time(raw: object, *, now: float) -> int:
    """Unix seconds from ``raw`` (seconds, or milliseconds when 13 digits; int, float or digit
    string); ``None`` → ``now``; more than 60 s ahead → ``now``. Raises ``ValueError`` otherwise."""
    if raw is None:
        return int(now)
    if type(raw) is int and 0 < raw < MS_THRESHOLD:  # the usual case: whole seconds
        return int(now) if raw > now + MAX_FUTURE_S else raw
    if isinstance(raw, bool) or not isinstance(raw, _TIME_TYPES):
        raise ValueError("expected unix seconds as a number")
    if isinstance(raw, str):
        if not (raw.strip().isascii() and raw.strip().isdigit()):
            raise ValueError("expected unix seconds as a number")
        raw = int(raw.strip())
    if isinstance(raw, int) and raw.bit_length() > 1000:
        # beyond what a float holds (math.isfinite would raise OverflowError): far ahead is the
        # receive time, as for any time over 60 s ahead; far behind is not positive
        if raw < 0:
            raise ValueError("expected a positive unix time")
        return int(now)
    if not math.isfinite(raw) or raw <= 0:
        raise ValueError("expected a positive unix time")
    seconds = raw / 1000 if raw >= MS_THRESHOLD else raw
    if seconds > now + MAX_FUTURE_S:
        return int(now)
    return int(seconds)


def parse_collect_body(body: bytes, *, now: float | None = None) -> CollectHit:
    """Parse and check one hit body; ``now`` (unix seconds) defaults to the current time.

    Raises :class:`HitRejected` with every field error (``{"field", "message"}``).
    """
    # decode_json_body's first step; both calls positional (a keyword costs ~175 instructions)
    data = loads_fast(body, MAX_DEPTH)
    if type(data) is not dict:
        data = decode_json_body(body)  # it decides (and tries orjson once more: a rare body)
    return parse_collect_object(data, now)


def parse_collect_object(data: dict[str, Any], now: float | None = None) -> CollectHit:
    """:func:`parse_collect_body` for an already decoded JSON object (one event of a
    ``POST /api/events`` batch too). Raises :class:`HitRejected` with every field error.

    A hit whose every field has its usual shape (a printable ASCII name and id, whole seconds,
    http(s) URLs, objects, string contact data) is taken as it is; any other goes through
    every check (:func:`_parse_checked`), which gives the same hit or the errors."""
    if now is None:
        now = time.time()
    name = data.get("event_name")
    if type(name) is not str or len(name) > MAX_NAME_LENGTH or not name.isascii():
        return _parse_checked(data, now)
    stripped = name.strip()
    if not stripped or not name.isprintable():
        return _parse_checked(data, now)
    event_id = data.get("event_id")
    if event_id is not None and (
        type(event_id) is not str
        or not 0 < len(event_id) <= MAX_ID_LENGTH
        or not event_id.isascii()
        or not event_id.isprintable()
    ):
        return _parse_checked(data, now)
    event_time = data.get("event_time")
    if event_time is None:
        event_time = int(now)
    elif type(event_time) is int and 0 < event_time < MS_THRESHOLD:  # parse_event_time
        if event_time > now + MAX_FUTURE_S:
            event_time = int(now)
    else:
        return _parse_checked(data, now)
    # each URL absent or an http(s) URL of at most MAX_URL_LENGTH characters
    page_url = data.get("event_source_url")
    if page_url is not None and (
        type(page_url) is not str
        or len(page_url) > MAX_URL_LENGTH
        or not page_url.startswith(_URL_SCHEMES)
    ):
        return _parse_checked(data, now)
    referrer_url = data.get("referrer_url")
    if referrer_url is not None and (
        type(referrer_url) is not str
        or len(referrer_url) > MAX_URL_LENGTH
        or not referrer_url.startswith(_URL_SCHEMES)
    ):
        return _parse_checked(data, now)
    custom_data = data.get("custom_data")
    if custom_data is None:
        custom_data = {}
    elif type(custom_data) is not dict:
        return _parse_checked(data, now)
    user_data = data.get("user_data")
    if user_data is None:
        user_data = {}
    elif type(user_data) is not dict:
        return _parse_checked(data, now)
    else:
        for value in user_data.values():
            if type(value) is not str and not _is_user_value(value):
                return _parse_checked(data, now)
    consent = GRANTED
    raw_consent = data.get("consent")
    if raw_consent is not None:
        try:
            consent = parse_consent(raw_consent)
        except HitRejected:
            return _parse_checked(data, now)
    hit = _new_object(CollectHit)  # CollectHit(...) without the call of its __init__
    _set_attribute(
        hit,
        "__dict__",
        {
            "event_name": stripped,
            "event_id": event_id,
            "event_time": event_time,
            "event_source_url": page_url,
            "referrer_url": referrer_url,
            "custom_data": custom_data,
            "user_data": user_data,
            "consent": consent,
        },
    )
    return hit


def _parse_checked(data: dict[str, Any], now: float) -> CollectHit:
    """:func:`parse_collect_object` with every check, each problem reported."""
    errors: list[dict[str, str]] = []

    def bad(name: str, message: str) -> None:
        errors.append({"field": name, "message": message})

    name = data.get("event_name")
    if not isinstance(name, str) or not name.strip():
        bad("event_name", 'required: a non-empty string such as "Purchase" or "page_view"')
    elif len(name) > MAX_NAME_LENGTH or (
        not (name.isascii() and name.isprintable()) and _CONTROL.search(name) is not None
    ):  # printable ASCII holds no control character: the regex only for the others
        bad("event_name", f"at most {MAX_NAME_LENGTH} characters, no control characters")

    raw_id = data.get("event_id")
    event_id: str | None = None
    if raw_id is None:
        pass
    elif type(raw_id) is not str and (
        isinstance(raw_id, bool) or not isinstance(raw_id, _ID_TYPES)
    ):
        bad("event_id", "expected a string (or an integer), kept exactly as sent")
    else:
        event_id = raw_id if isinstance(raw_id, str) else str(raw_id)
        if not event_id or len(event_id) > MAX_ID_LENGTH or (
            not (event_id.isascii() and event_id.isprintable())
            and _CONTROL.search(event_id) is not None
        ):
            bad("event_id", f"1 to {MAX_ID_LENGTH} characters, no control characters")

    event_time = int(now)
    try:
        event_time = parse_event_time(data.get("event_time"), now=now)
    except ValueError as exc:
        bad("event_time", str(exc))

    page_url = _url(data.get("event_source_url"), "event_source_url", bad)
    referrer_url = _url(data.get("referrer_url"), "referrer_url", bad)

    custom_data = data.get("custom_data")
    if custom_data is None:
        custom_data = {}
    elif not isinstance(custom_data, dict):
        bad("custom_data", "expected an object")
    user_data = data.get("user_data")
    if user_data is None:
        user_data = {}
    elif not isinstance(user_data, dict):
        bad("user_data", "expected an object")
    else:
        for key, value in user_data.items():
            if type(value) is not str and not _is_user_value(value):
                bad(f"user_data.{key}", "expected a string, a number or a list of them")

    consent = GRANTED
    raw_consent = data.get("consent")
    if raw_consent is not None:  # parse_consent(None) is GRANTED
        try:
            consent = parse_consent(raw_consent)
        except HitRejected as exc:
            errors.extend(exc.errors)

    if errors:
        raise HitRejected("invalid event", errors=errors)
    assert isinstance(name, str)
    return CollectHit(
        name.strip(), event_id, event_time, page_url, referrer_url, custom_data, user_data, consent
    )


def _url(value: object, key: str, bad: Callable[[str, str], None]) -> str | None:
    """An absolute http(s) URL of at most :data:`MAX_URL_LENGTH` characters, or ``None`` when
    absent or empty; anything else is reported to ``bad`` (and gives ``None``)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH:
        bad(key, f"expected a URL string of at most {MAX_URL_LENGTH} characters")
    elif not value.startswith(_URL_SCHEMES):
        bad(key, "expected an absolute http(s) URL")
    else:
        return value
    return None


def _is_user_value(value: object) -> bool:
    if type(value) is str or value is None:
        return True
    if isinstance(value, list):
        return len(value) <= 20 and all(_is_scalar(item) for item in value)
    return _is_scalar(value)


def _is_scalar(value: object) -> bool:
    return isinstance(value, _SCALAR) and not isinstance(value, bool)


def event_from_hit(
    hit: CollectHit,
    *,
    event_id: str,
    received_at: float,
    page_url: str | None,
    client_ip: str | None,
    user_agent: str | None,
    fbp: str | None = None,
    fbc: str | None = None,
    visitor_id: str | None = None,
    cookies: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    action_source: str = "website",
) -> Event:
    """The :class:`Event` of one parsed hit and its context: ``/e``, ``tagserver check`` and
    ``POST /api/events`` build it alike. ``event_id`` is the hit's own or a minted one;
    ``page_url`` the hit's ``event_source_url`` (or, on ``/e``, the Referer); ``received_at`` unix
    seconds; ``fbp``/``fbc``/``visitor_id`` already validated."""
    # a copy of a dict with every field of Event, in its order, filled in by key: about a third
    # cheaper than a dict display of 19 entries, which CPython 3.11 builds one MAP_ADD at a
    # time, growing the dict twice on the way
    event = _EVENT_FIELDS.copy()
    event["event_name"] = hit.event_name
    event["event_id"] = event_id
    event["event_time"] = hit.event_time
    event["received_at"] = received_at
    event["event_source_url"] = page_url
    referrer_url = hit.referrer_url
    if referrer_url is not None:  # the copied dict holds None: a store costs ~250 instructions
        event["referrer_url"] = referrer_url
    event["custom_data"] = hit.custom_data
    event["user_data"] = hit.user_data
    event["consent"] = hit.consent
    event["client_ip"] = client_ip
    event["user_agent"] = user_agent
    event["fbp"] = fbp
    if fbc is not None:  # most visitors have no click id
        event["fbc"] = fbc
    event["visitor_id"] = visitor_id
    # None → {} (not ``cookies or {}``: the truth of the request's lazy mappings is a Python
    # call each; an empty one is an empty mapping either way)
    event["cookies"] = {} if cookies is None else cookies
    event["headers"] = {} if headers is None else headers
    if action_source != "website":  # the copied dict holds "website"
        event["action_source"] = action_source
    # "ga4" and "purchase_token" stay None, as in the copied dict; Event.from_fields(event)
    # written out (no bound method made and called per hit)
    made = _new_object(Event)
    _set_attribute(made, "__dict__", event)
    return made


#: Every field of :class:`Event`, in its order, each ``None`` but ``action_source``
#: (``"website"``): what :func:`event_from_hit` copies and fills in (its ``ga4`` and
#: ``purchase_token`` stay ``None``).
_EVENT_FIELDS: dict[str, object] = dict.fromkeys(item.name for item in dataclasses.fields(Event))
_EVENT_FIELDS["action_source"] = "website"
