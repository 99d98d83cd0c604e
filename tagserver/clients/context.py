"""What both clients (``POST /e`` and ``/g/collect``) do around the container, done one way.

The visitor's public IP (trusted proxies, ``X-Forwarded-For`` or RFC 7239 ``Forwarded``), the
request context triggers and variables read (cookies, headers without ``Cookie``), one container
run per event with its drops counted, its outbound events stored in the durable outbox before the
answer (:func:`submit_results`; 503 when the outbox cannot store them), and the identity cookies
written into the response.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from starlette.requests import Request, cookie_parser
from starlette.responses import JSONResponse, Response

from tagserver.bots import is_bot
from tagserver.client_ip import IPAddress, address_text, client_ip_of_headers, public_text
from tagserver.container.model import Container
from tagserver.container.runtime import ContainerResult, run_container
from tagserver.event import Event
from tagserver.exceptions import OutboxError
from tagserver.identity import CookieSpec, VisitorSigner
from tagserver.meta.events import meta_event_name
from tagserver.purchase_token import verify_purchase

if TYPE_CHECKING:
    from tagserver.app import AppState
    from tagserver.tags import Outbound

log = logging.getLogger("tagserver.app")


def request_client_ip(
    request: Request, state: AppState, first: Mapping[bytes, bytes] | None = None
) -> IPAddress | None:
    """The client address of ``request`` through the trusted proxies
    (:func:`~tagserver.client_ip.resolve_client_ip`, on the raw headers), private addresses
    included; ``None`` when unknown. Resolve it once per request and pass it to
    :func:`public_ip` and :func:`check_rate_limits`. ``first`` is the request's
    :func:`~tagserver.http.first_headers` when the caller has them: a request with neither
    ``X-Forwarded-For`` nor ``Forwarded`` then skips the walk through its headers."""
    scope = request.scope
    client = scope.get("client")  # request.client, without building an Address
    headers = scope["headers"]
    return client_ip_of_headers(
        client[0] if client is not None else None,
        headers if type(headers) is list else request.headers.raw,  # raw_headers(request)
        trusted_proxies=state.settings.trusted_proxies,
        first=first,
    )


def raw_headers(request: Request) -> list[tuple[bytes, bytes]]:
    """The ``(name, value)`` header pairs of ``request`` as ``request.headers.raw`` has them: the
    scope's own list (Starlette's ``Headers`` keeps the scope's list, copied into a new list the
    first time, so both hold the same pairs), without the two property lookups."""
    raw = request.scope["headers"]
    return raw if type(raw) is list else request.headers.raw


def public_ip(ip: IPAddress | None) -> str | None:
    """``ip`` as text when it can be a visitor's address on the internet, else ``None`` (unknown,
    private or loopback): what goes to destinations as the visitor's IP."""
    return public_text(ip) if ip is not None else None


def check_rate_limits(request: Request, state: AppState, ip: IPAddress | None) -> None:
    """Count one hit against the limits of its trusted client IP ``ip`` (from
    :func:`request_client_ip`; private addresses included, the socket peer when unknown) and of
    its visitor id (only a correctly signed one: a forged id is no key); raises
    :class:`~tagserver.exceptions.RateLimited` (429). Does nothing while both limits are off."""
    limits = state.limits
    if not limits.active:
        return
    visitor: str | None = None
    if limits.visitor.per_minute > 0:
        cookies = _visitor_cookies(raw_headers(request))
        if cookies:
            signer = state.signer
            fast = signer if isinstance(signer, VisitorSigner) else None
            for name in ("__Host-tsid", "__Secure-tsid"):
                raw = cookies.get(name)
                if raw and len(raw) <= 200 and (
                    # verify_text (remembered ids, the newest key) accepts only what validate
                    # accepts; validate decides the rest (older keys, other encodings)
                    (fast is not None and fast.verify_text(raw) is not None)
                    or signer.validate(raw)
                ):
                    visitor = raw
                    break
    key: str | None
    if ip is not None:
        key = address_text(ip)  # str(ip)
    else:
        key = request.client.host if request.client else None
    limits.check(ip=key, visitor_id=visitor)


def _visitor_cookies(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The visitor id cookies of ``request.cookies`` (Starlette's parse of every ``Cookie``
    header, the last value of a name winning), among others maybe: only the ``;``-separated
    chunks that hold ``tsid`` are parsed (every visitor cookie name does)."""
    cookies: dict[str, str] = {}
    for name, value in raw:
        if name == b"cookie" and b"tsid" in value:
            for chunk in value.decode("latin-1").split(";"):
                if "tsid" in chunk:
                    cookies.update(cookie_parser(chunk))
    return cookies


def context_headers(request: Request) -> Mapping[str, str]:
    """The request headers triggers and variables may read: names lower case, ``Cookie`` left
    out (cookies are read one by one). A repeated header: its last value, as
    ``dict(request.headers.items())`` has it. Decoded when read (:class:`ContextHeaders`)."""
    return ContextHeaders(raw_headers(request))


def context_cookies(request: Request) -> Mapping[str, str]:
    """The request cookies triggers and variables may read: exactly Starlette's
    ``request.cookies`` (every ``Cookie`` header, a repeated name keeps its last value, quoted
    values unquoted as Python's ``http.cookies`` does), parsed when first read
    (:class:`ContextCookies`)."""
    return ContextCookies(raw_headers(request))


class _RawHeaderMapping(Mapping[str, str]):
    """A read-only mapping made from an ASGI request's raw ``(name, value)`` header pairs (names
    lower case, values latin-1) the first time it is read: most hits never read it."""

    __slots__ = ("_raw", "_dict")

    def __init__(self, raw: Sequence[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._dict: dict[str, str] | None = None

    def _build(self) -> dict[str, str]:
        raise NotImplementedError

    def _items(self) -> dict[str, str]:
        found = self._dict
        if found is None:
            found = self._dict = self._build()
        return found

    def __getitem__(self, key: str) -> str:
        return self._items()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __contains__(self, key: object) -> bool:
        return key in self._items()

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._items().get(key, default)

    def __bool__(self) -> bool:
        return bool(self._items())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items()!r})"


class ContextHeaders(_RawHeaderMapping):
    """``{name: value}`` of every header but ``Cookie`` (the last value of a repeated one).
    :meth:`get` of one name before anything else reads the raw pairs without decoding the rest
    (the privacy policy reads ``Sec-GPC`` on every hit)."""

    __slots__ = ()

    def _build(self) -> dict[str, str]:
        return {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in self._raw
            if name != b"cookie"
        }

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        if self._dict is not None:
            return self._dict.get(key, default)
        wanted = _HEADER_NAMES.get(key)  # key.encode("ascii"), for a name read before
        if wanted is None:
            if not isinstance(key, str) or not key.isascii():
                return self._items().get(key, default)
            if key == "cookie":
                return default
            wanted = key.encode("ascii")
            if len(_HEADER_NAMES) < 64:
                _HEADER_NAMES[key] = wanted
        found: bytes | None = None
        for name, value in self._raw:
            if name == wanted:
                found = value
        return default if found is None else found.decode("latin-1")

    def __bool__(self) -> bool:
        """Whether any header but ``Cookie`` is there (``headers or {}`` does not decode them)."""
        if self._dict is not None:
            return bool(self._dict)
        for name, _ in self._raw:
            if name != b"cookie":
                return True
        return False


#: ``name.encode("ascii")`` of the header names :meth:`ContextHeaders.get` was asked for (the
#: code's and the container's: a handful; 64 at most), ``"cookie"`` never among them.
_HEADER_NAMES: dict[str, bytes] = {}


class ContextCookies(_RawHeaderMapping):
    """``{name: value}`` of the request cookies, as Starlette's ``request.cookies``. ``first``,
    when the caller knows it, is the value of the first ``Cookie`` header of ``raw``, ``None``
    when it has none (``False``: not known): :meth:`__bool__` then mostly needs no walk
    through the headers."""

    __slots__ = ("_first",)

    def __init__(
        self, raw: Sequence[tuple[bytes, bytes]], first: bytes | None | Literal[False] = False
    ) -> None:
        self._raw = raw
        self._dict = None
        self._first = first

    def _build(self) -> dict[str, str]:
        cookies: dict[str, str] = {}
        for name, raw in self._raw:
            if name == b"cookie":
                cookies.update(cookie_parser(raw.decode("latin-1")))
        return cookies

    def __bool__(self) -> bool:
        """Whether any cookie is there, without parsing them all (``cookies or {}``): Starlette
        keeps a ``;``-separated chunk when, its first ``=`` taken out, anything but white
        space is left."""
        if self._dict is not None:
            return bool(self._dict)
        first = self._first
        if first is None:
            return False  # no Cookie header
        if first and first[0] not in _NO_COOKIE_START:
            return True  # as the walk finds at the first Cookie header
        for name, raw in self._raw:
            if name == b"cookie":
                if raw and raw[0] not in _NO_COOKIE_START:
                    return True  # the first chunk has a non-blank first character
                for chunk in raw.decode("latin-1").split(";"):
                    if chunk.replace("=", "", 1).strip():
                        return True
        return False


#: The bytes that, first in a Cookie header, do not show alone that it holds a cookie: ``;``,
#: ``=`` and what ``str.strip`` removes once decoded from latin-1.
_NO_COOKIE_START = frozenset(c for c in range(256) if c in b";=" or chr(c).isspace())


def run_event(
    state: AppState, container: Container, event: Event, *, now: float
) -> ContainerResult:
    """Run ``container`` on ``event`` (``now`` in unix seconds) after :func:`apply_privacy` and
    count its drops. Never raises for a tag's problem. Its outbound events are not stored yet:
    pass the results of a request to :func:`submit_results` before answering it."""
    event = apply_privacy(state, event, now=now)
    result = run_container(
        container, event, default_country=state.settings.default_country, now=now
    )
    for tag_name, reason, detail in result.drops:
        state.drops.count(tag_name, reason, f"event_id={event.event_id}: {detail}")
    return result


async def submit_results(state: AppState, results: Sequence[ContainerResult]) -> None:
    """Store the outbound events of ``results`` in the outbox in one write (durable when this
    returns) and count the events and fired tags. Raises
    :class:`~tagserver.exceptions.OutboxError` when the outbox cannot store them (logged here)."""
    assert state.sender is not None, "the lifespan has not run"
    # one result per hit of /e: its own list (submit only reads it), no list made
    outbound: Sequence[Outbound] = (
        results[0].outbound
        if len(results) == 1
        else [item for result in results for item in result.outbound]
    )
    try:
        await state.sender.submit(outbound)
    except OutboxError as exc:
        log.error("outbox write failed: hit refused", extra={"error": str(exc)})
        raise
    metrics = state.metrics
    for result in results:
        metrics.event_count.inc()
        for tag_name in result.fired:
            metrics.tag_fired(tag_name)


def outbox_unavailable(*, headers: Mapping[str, str] | None = None) -> Response:
    """503 in DESIGN.md's error shape, ``Retry-After: 1``: the events could not be stored."""
    return JSONResponse(
        {"ok": False, "error": "the event could not be stored; retry later",
         "errors": [], "status": 503},
        status_code=503,
        headers={"cache-control": "no-store", **(headers or {}), "retry-after": "1"},
    )  # fmt: skip


#: RFC 6265 cookie-name (a token) and cookie-octets; a Domain is a lower-case host name.
_COOKIE_NAME_RE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}\Z")
_COOKIE_VALUE_RE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{0,4000}\Z")
_COOKIE_DOMAIN_RE = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?\Z")


def cookie_is_safe(cookie: CookieSpec) -> bool:
    """True when every part of ``cookie`` that reaches the ``Set-Cookie`` header is well formed
    (RFC 6265 name and value octets, a host-name Domain, a lifetime in range): no CR/LF, ``;``
    or space can split the header, whatever a bug upstream lets through."""
    return bool(
        _well_formed(cookie.name, _COOKIE_NAME_RE, _GOOD_NAMES)
        and _COOKIE_VALUE_RE.match(cookie.value)
        and (cookie.domain is None or _well_formed(cookie.domain, _COOKIE_DOMAIN_RE, _GOOD_DOMAINS))
        and 0 <= cookie.max_age <= 400 * 24 * 3600
    )


#: Cookie names and Domains already checked: a handful, from the code and the settings.
_GOOD_NAMES: set[str] = set()
_GOOD_DOMAINS: set[str] = set()


def _well_formed(text: str, pattern: re.Pattern[str], known: set[str]) -> bool:
    """``pattern`` matches ``text``; a good text is remembered in ``known`` (64 at most)."""
    if text in known:
        return True
    if not pattern.match(text):
        return False
    if len(known) < 64:
        known.add(text)
    return True


#: What an ad destination is: a tag that needs ``ad_storage`` (Meta tags by default).
AD_CONSENT_OFF = {"ad_storage": False, "ad_user_data": False, "ad_personalization": False}


def apply_privacy(state: AppState, event: Event, *, now: float) -> Event:
    """The event as the container may see it (docs/SECURITY.md, policy table).

    A known crawler (``TAGSERVER_BLOCK_BOTS``) or ``Sec-GPC: 1`` under ``TAGSERVER_GPC=suppress``
    turns the ad consent types off, so no ad tag fires (counted once per event as ``bot`` /
    ``gpc``); ``TAGSERVER_GPC=off`` hides the header from tags (no Limited Data Use on it). A
    Purchase's ``purchase_token`` is checked (``Event.purchase_token``) and removed from the
    custom data: it is never forwarded.
    """
    settings = state.settings
    changes: dict[str, object] = {}
    # the header is read only when the setting acts on it (not under the default "ldu", where
    # the Meta tag reads it itself)
    gpc_mode = settings.gpc
    gpc = (gpc_mode == "suppress" or gpc_mode == "off") and (
        event.headers.get("sec-gpc", "").strip() == "1"
    )
    reason: str | None = None
    if settings.block_bots and event.user_agent and is_bot(event.user_agent):
        reason = "bot"
    elif gpc and gpc_mode == "suppress":
        reason = "gpc"
    if reason is not None and event.consent.ad_storage:
        changes["consent"] = dataclasses.replace(event.consent, **AD_CONSENT_OFF)
        state.drops.count("ad destinations", reason, f"event_id={event.event_id}")
    if gpc and gpc_mode == "off":
        changes["headers"] = {k: v for k, v in event.headers.items() if k != "sec-gpc"}
    if meta_event_name(event.event_name) == "Purchase":
        token = event.custom_data.get("purchase_token")
        if token is None and event.ga4 is not None:
            token = event.ga4.event_data.get("purchase_token")
        # without a token the verdict is "missing" whatever the keys: none revealed for it
        keys = [key.reveal() for key in settings.purchase_token_keys] if token else []
        verdict = verify_purchase(token, event.custom_data, keys=keys, now=now)
        if verdict is None and not state.purchase_guard.claim(
            str(event.custom_data.get("order_id")), event.event_id, now=now
        ):
            verdict = "already used by another event"
        changes["purchase_token"] = verdict or "valid"
    if "purchase_token" in event.custom_data:
        changes["custom_data"] = {
            k: v for k, v in event.custom_data.items() if k != "purchase_token"
        }
    return event.replace(**changes) if changes else event


def set_cookie_header(cookie: CookieSpec) -> bytes:
    """The ``Set-Cookie`` value of ``cookie`` (attributes as Starlette orders them): ``name=value;
    [Domain=d; ][HttpOnly; ]Max-Age=n; Path=/; SameSite=lax; Secure``. The value is written as it
    is, unquoted: :func:`cookie_is_safe` has checked it holds only RFC 6265 cookie-octets."""
    domain = f"; Domain={cookie.domain}" if cookie.domain is not None else ""
    httponly = "; HttpOnly" if cookie.httponly else ""
    return (
        f"{cookie.name}={cookie.value}{domain}{httponly}; Max-Age={cookie.max_age}; "
        "Path=/; SameSite=lax; Secure"
    ).encode("ascii")


def set_cookies(response: Response, cookies: Iterable[CookieSpec]) -> None:
    """Write each cookie: ``Secure; SameSite=Lax; Path=/`` always (REFERENCE §3). A cookie that
    fails :func:`cookie_is_safe` is not written (and logged by name only).

    The same headers as :func:`set_cookie_header` of each :func:`cookie_is_safe` cookie, made
    in fewer steps: the name and the attributes after the value (Domain, HttpOnly, Max-Age)
    come from the code and the settings, so they are checked and their text written once per
    cookie scope and name (:data:`_COOKIE_TAILS`); the value is checked on every cookie."""
    headers = response.raw_headers
    for cookie in cookies:
        name, value, max_age, domain, httponly = cookie
        try:
            known = _COOKIE_TAILS[domain][name]
        except KeyError:
            known = None
        if (
            known is not None
            # the very int remembered (True or 1.0 would equal 1 but are written otherwise;
            # another int object of the same value only takes the longer way)
            and known[0] is max_age
            and known[1] is httponly
            and _COOKIE_VALUE_RE.match(value)
        ):
            headers.append((b"set-cookie", f"{known[2]}{value}{known[3]}".encode()))
        elif cookie_is_safe(cookie):
            headers.append((b"set-cookie", set_cookie_header(cookie)))
            if type(max_age) is int and type(httponly) is bool:
                _remember_tail(cookie)
        else:
            log.error("cookie not set: malformed", extra={"cookie": cookie.name[:64]})


#: Cookie scope (the Domain; ``None``: host-only) → cookie name → ``(max_age, httponly,
#: "name=", tail)`` of the last cookie of that Domain and name that passed
#: :func:`cookie_is_safe`: what :func:`set_cookies` writes around a value (ASCII; ``tail`` is
#: :func:`_cookie_tail`). Real traffic has a handful of scopes and names: 16 of each at most.
_COOKIE_TAILS: dict[str | None, dict[str, tuple[int, bool, str, str]]] = {}


def _remember_tail(cookie: CookieSpec) -> None:
    """Keep the text around ``cookie``'s value (it passed :func:`cookie_is_safe`; an int
    ``max_age``, a bool ``httponly``) in :data:`_COOKIE_TAILS`."""
    tails = _COOKIE_TAILS.get(cookie.domain)
    if tails is None:
        if len(_COOKIE_TAILS) >= 16:
            return
        tails = _COOKIE_TAILS[cookie.domain] = {}
    if cookie.name in tails or len(tails) < 16:
        tails[cookie.name] = (cookie.max_age, cookie.httponly, f"{cookie.name}=", _cookie_tail(cookie))


def _cookie_tail(cookie: CookieSpec) -> str:
    """:func:`set_cookie_header` of ``cookie`` after ``name=value``, as text."""
    domain = f"; Domain={cookie.domain}" if cookie.domain is not None else ""
    httponly = "; HttpOnly" if cookie.httponly else ""
    return f"{domain}{httponly}; Max-Age={cookie.max_age}; Path=/; SameSite=lax; Secure"
