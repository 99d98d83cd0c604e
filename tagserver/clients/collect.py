"""The ``collect`` client: parses a ``POST /e`` body of the browser client into a :class:`CollectHit`.

The body follows Meta's server event (DESIGN.md "Public contract"). Every problem is reported at
once in a :class:`~tagserver.exceptions.HitRejected` (answered 400 with the JSON error shape).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tagserver.consent import GRANTED, Consent, parse_consent
from tagserver.event import Event
from tagserver.exceptions import HitRejected

MAX_NAME_LENGTH = 100
MAX_ID_LENGTH = 200
MAX_URL_LENGTH = 4096
#: Clocks more than this far ahead (seconds) are not believed: the receive time is used instead.
MAX_FUTURE_S = 60
#: A timestamp at or above this is in milliseconds (13 digits), below it in seconds.
MS_THRESHOLD = 10**12


@dataclass(frozen=True)
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


#: Deepest nesting accepted in a body (the body object itself is level 1).
MAX_DEPTH = 16
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_tree(value: object, path: str, depth: int, errors: list[dict[str, str]]) -> None:
    """Collect what JSON allows but a UTF-8 JSON request to Meta cannot carry: lone surrogates,
    non-finite numbers, and nesting deeper than :data:`MAX_DEPTH`."""
    if len(errors) >= 10:
        return
    if isinstance(value, str):
        if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            errors.append({"field": path, "message": "contains a lone UTF-16 surrogate"})
    elif isinstance(value, float):
        if not math.isfinite(value):
            errors.append({"field": path, "message": "number out of range"})
    elif isinstance(value, dict | list):
        if depth > MAX_DEPTH:
            errors.append({"field": path, "message": f"nested deeper than {MAX_DEPTH} levels"})
            return
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and any(0xD800 <= ord(ch) <= 0xDFFF for ch in key):
                errors.append({"field": path, "message": "a key contains a lone UTF-16 surrogate"})
            _check_tree(item, f"{path}.{key}" if path else str(key), depth + 1, errors)


def decode_json_body(body: bytes) -> dict[str, Any]:
    """UTF-8 JSON object from ``body``.

    Raises :class:`HitRejected` for invalid UTF-8, malformed JSON (with line and column), a value
    that is not an object, ``NaN``/``Infinity`` or numbers out of range, integers too long to
    convert, lone UTF-16 surrogates (``"\\ud800"``: no UTF-8 request can carry them) and nesting
    deeper than :data:`MAX_DEPTH`.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HitRejected(
            "body is not valid UTF-8",
            errors=[{"field": "body", "message": f"invalid byte at offset {exc.start}"}],
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        data = json.loads(text, parse_constant=_reject_constant)
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
    except ValueError as exc:  # NaN/Infinity, integers over Python's digit limit
        message = str(exc) if "is not a JSON number" in str(exc) else "a number has too many digits"
        raise HitRejected(
            "body holds a number JSON cannot carry",
            errors=[{"field": "body", "message": message}],
        ) from None
    if not isinstance(data, dict):
        raise HitRejected(
            "body must be a JSON object",
            errors=[{"field": "body", "message": f"expected an object, got {type(data).__name__}"}],
        )
    errors: list[dict[str, str]] = []
    _check_tree(data, "", 1, errors)
    if errors:
        raise HitRejected("body holds values that cannot be sent on", errors=errors)
    return data


def _is_clean_text(value: str) -> bool:
    """No control characters (C0, DEL, C1): everything else is kept byte-for-byte."""
    return _CONTROL.search(value) is None


def parse_event_time(raw: object, *, now: float) -> int:
    """Unix seconds from ``raw`` (seconds, or milliseconds when 13 digits; int, float or digit
    string); ``None`` → ``now``; more than 60 s ahead → ``now``. Raises ``ValueError`` otherwise."""
    if raw is None:
        return int(now)
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError("expected unix seconds as a number")
    if isinstance(raw, str):
        if not (raw.strip().isascii() and raw.strip().isdigit()):
            raise ValueError("expected unix seconds as a number")
        raw = int(raw.strip())
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
    return parse_collect_object(decode_json_body(body), now=now)


def parse_collect_object(data: dict[str, Any], *, now: float | None = None) -> CollectHit:
    """:func:`parse_collect_body` for an already decoded JSON object (one event of a
    ``POST /api/events`` batch too). Raises :class:`HitRejected` with every field error."""
    now = time.time() if now is None else now
    errors: list[dict[str, str]] = []

    def bad(name: str, message: str) -> None:
        errors.append({"field": name, "message": message})

    name = data.get("event_name")
    if not isinstance(name, str) or not name.strip():
        bad("event_name", 'required: a non-empty string such as "Purchase" or "page_view"')
    elif len(name) > MAX_NAME_LENGTH or not _is_clean_text(name):
        bad("event_name", f"at most {MAX_NAME_LENGTH} characters, no control characters")

    raw_id = data.get("event_id")
    event_id: str | None = None
    if raw_id is None:
        pass
    elif isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        bad("event_id", "expected a string (or an integer), kept exactly as sent")
    else:
        event_id = raw_id if isinstance(raw_id, str) else str(raw_id)
        if not event_id or len(event_id) > MAX_ID_LENGTH or not _is_clean_text(event_id):
            bad("event_id", f"1 to {MAX_ID_LENGTH} characters, no control characters")

    event_time = int(now)
    try:
        event_time = parse_event_time(data.get("event_time"), now=now)
    except ValueError as exc:
        bad("event_time", str(exc))

    urls: dict[str, str | None] = {}
    for key in ("event_source_url", "referrer_url"):
        value = data.get(key)
        if value is None or value == "":
            urls[key] = None
        elif not isinstance(value, str) or len(value) > MAX_URL_LENGTH:
            bad(key, f"expected a URL string of at most {MAX_URL_LENGTH} characters")
        elif not value.startswith(("https://", "http://")):
            bad(key, "expected an absolute http(s) URL")
        else:
            urls[key] = value

    objects: dict[str, dict[str, Any]] = {}
    for key in ("custom_data", "user_data"):
        value = data.get(key)
        if value is None:
            objects[key] = {}
        elif not isinstance(value, dict):
            bad(key, "expected an object")
        else:
            objects[key] = value
    for key, value in objects.get("user_data", {}).items():
        if not _is_user_value(value):
            bad(f"user_data.{key}", "expected a string, a number or a list of them")

    consent = GRANTED
    try:
        consent = parse_consent(data.get("consent"))
    except HitRejected as exc:
        errors.extend(exc.errors)

    if errors:
        raise HitRejected("invalid event", errors=errors)
    assert isinstance(name, str)
    return CollectHit(
        event_name=name.strip(),
        event_id=event_id,
        event_time=event_time,
        event_source_url=urls.get("event_source_url"),
        referrer_url=urls.get("referrer_url"),
        custom_data=objects["custom_data"],
        user_data=objects["user_data"],
        consent=consent,
    )


def _is_user_value(value: object) -> bool:
    if isinstance(value, list):
        return len(value) <= 20 and all(_is_scalar(item) for item in value)
    return _is_scalar(value) or value is None


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


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
    return Event(
        event_name=hit.event_name,
        event_id=event_id,
        event_time=hit.event_time,
        received_at=received_at,
        event_source_url=page_url,
        referrer_url=hit.referrer_url,
        custom_data=hit.custom_data,
        user_data=hit.user_data,
        consent=hit.consent,
        client_ip=client_ip,
        user_agent=user_agent,
        fbp=fbp,
        fbc=fbc,
        visitor_id=visitor_id,
        cookies=cookies or {},
        headers=headers or {},
        action_source=action_source,
    )
