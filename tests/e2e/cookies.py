"""Parse ``Set-Cookie`` headers the way a browser reads them (RFC 6265 §5.2), without a jar.

A cookie jar would drop the ``Secure`` cookies the tests receive over plain http, and it hides
the attributes the tests must check; so each raw header is parsed on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypedDict

__all__ = ["SetCookie", "parse_set_cookie", "parse_set_cookies", "cookies_by_name", "describe"]


class SetCookie(TypedDict):
    """One parsed ``Set-Cookie`` header; attribute names lowercased, flags as booleans."""

    name: str
    value: str
    domain: str | None
    path: str | None
    max_age: int | None
    expires: str | None
    secure: bool
    httponly: bool
    samesite: str | None
    raw: str
    attributes: dict[str, str | bool]


def parse_set_cookie(header: str) -> SetCookie:
    """Parse one ``Set-Cookie`` header value into name, value and attributes.

    The value is kept exactly as sent (quotes included, as browsers do). ``domain`` loses a
    leading dot (RFC 6265 §5.2.3) and is lowercased; ``samesite`` is lowercased; ``max_age`` is
    an int, or None when absent or not a number. Later attributes of the same name win.
    Raises ValueError when the header has no ``name=value`` pair.
    """
    pair, *parts = header.split(";")
    if "=" not in pair:
        raise ValueError(f"Set-Cookie without name=value: {header!r}")
    name, value = (s.strip() for s in pair.split("=", 1))
    if not name:
        raise ValueError(f"Set-Cookie with an empty name: {header!r}")
    attributes: dict[str, str | bool] = {}
    for part in parts:
        if not part.strip():
            continue
        key, sep, attr_value = part.partition("=")
        attributes[key.strip().lower()] = attr_value.strip() if sep else True

    def text(key: str) -> str | None:
        found = attributes.get(key)
        return found if isinstance(found, str) else None

    domain = text("domain")
    if domain is not None:
        domain = domain.removeprefix(".").lower()
    max_age_raw = text("max-age")
    max_age: int | None
    try:
        max_age = int(max_age_raw) if max_age_raw is not None else None
    except ValueError:
        max_age = None
    samesite = text("samesite")
    return SetCookie(
        name=name,
        value=value,
        domain=domain,
        path=text("path"),
        max_age=max_age,
        expires=text("expires"),
        secure="secure" in attributes,
        httponly="httponly" in attributes,
        samesite=samesite.lower() if samesite is not None else None,
        raw=header,
        attributes=attributes,
    )


def parse_set_cookies(headers: Iterable[str]) -> list[SetCookie]:
    """Parse every header of ``response.headers.get_list("set-cookie")``, in order."""
    return [parse_set_cookie(h) for h in headers]


def cookies_by_name(cookies: Iterable[SetCookie]) -> dict[str, list[SetCookie]]:
    """Group parsed cookies by name, keeping their order."""
    grouped: dict[str, list[SetCookie]] = {}
    for cookie in cookies:
        grouped.setdefault(cookie["name"], []).append(cookie)
    return grouped


def describe(cookies: Iterable[SetCookie] | Iterable[dict[str, Any]]) -> str:
    """The raw headers, one a line, for assertion messages."""
    return "\n".join(str(c.get("raw")) for c in cookies) or "(no Set-Cookie)"
