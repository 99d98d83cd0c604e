"""First-party identity cookies: Meta's ``_fbp``/``_fbc`` and the server's own visitor id.

Rules from REFERENCE §1 (fbc/fbp, after Meta's "fbp and fbc parameters" doc) and §3 (cookies):
cookie Domain is the registrable domain (eTLD+1, Public Suffix List with its private section) of a
configured site domain; ``subdomainIndex`` is that domain's label count minus one; every cookie is
``Secure; SameSite=Lax; Path=/``; ``_fbp``/``_fbc`` are readable by script, the visitor id is
HttpOnly and signed.
"""

from __future__ import annotations

import binascii
import collections
import functools
import hashlib
import hmac
import importlib
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit

from itsdangerous import BadSignature, Signer
from itsdangerous.encoding import base64_decode, base64_encode, want_bytes
from publicsuffixlist import PublicSuffixList

#: ``fb.<subdomainIndex>.<creation time>.<random>`` plus an optional Parameter Builder appendix.
FBP_RE = re.compile(r"^fb\.[0-9]\.[0-9]{10,13}\.[0-9]{1,20}(\.[A-Za-z0-9_-]{2,8})?\Z")
#: ``fb.<subdomainIndex>.<creation time>.<fbclid>`` plus an optional appendix.
FBC_RE = re.compile(r"^fb\.[0-9]\.[0-9]{10,13}\.[A-Za-z0-9_-]{1,500}(\.[A-Za-z0-9_-]{2,8})?\Z")
#: What Meta's click ids look like; anything else is not copied into a cookie.
FBCLID_RE = re.compile(r"^[A-Za-z0-9_-]{1,500}\Z")
_HOST_RE = re.compile(r"^[a-z0-9.-]{1,253}\Z")
_VISITOR_ID_RE = re.compile(r"^[0-9a-f]{32}\Z")

VISITOR_ID_SALT = "tagserver.visitor-id"


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


@dataclass(frozen=True)
class CookieScope:
    """Where identity cookies of one request live.

    ``domain`` is the ``Domain`` attribute (``None``: a host-only cookie, for ``localhost`` or a
    bare IP), ``subdomain_index`` the ``fb.<index>.`` value for cookies built here.
    """

    domain: str | None
    subdomain_index: int


class CookieSpec(NamedTuple):
    """One ``Set-Cookie`` to send: always ``Secure; SameSite=Lax; Path=/``; ``max_age`` in seconds.

    A named tuple, not a dataclass: built for every cookie of every hit (a frozen dataclass costs
    twice as much to make)."""

    name: str
    value: str
    max_age: int
    domain: str | None
    httponly: bool


class Identity(NamedTuple):
    """The identifiers of one hit and the cookies that (re)store them (a named tuple, as
    :class:`CookieSpec`)."""

    fbp: str | None
    fbc: str | None
    visitor_id: str | None
    cookies: tuple[CookieSpec, ...]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class _Hash(Protocol):
    """What :mod:`hashlib` gives: a running hash that can be copied."""

    def copy(self) -> _Hash: ...
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


def _builtin_sha1() -> Callable[[bytes], _Hash]:
    """CPython's own SHA-1 (the ``_sha1`` module) when the build has it, else ``hashlib.sha1``
    (OpenSSL's). The same digests; the built-in one's ``copy`` and ``digest`` are a copy of a
    small C struct, where OpenSSL's allocate and copy an ``EVP_MD_CTX`` each time: an HMAC from
    copied states costs about 5,700 instructions with it against 9,100 with OpenSSL's."""
    try:
        module = importlib.import_module("_sha1")
    except ImportError:  # a build without the built-in hashes
        return hashlib.sha1
    new: Callable[[bytes], _Hash] = module.sha1
    return new


#: What :class:`VisitorSigner` makes its HMAC states with (:func:`_builtin_sha1`).
_SHA1 = _builtin_sha1()

#: HMAC's block size for SHA-1 (RFC 2104: keys longer than this are hashed first).
_SHA1_BLOCK = 64
#: Standard base64 to its URL-safe alphabet, as ``base64.urlsafe_b64encode`` translates it.
_URLSAFE = bytes.maketrans(b"+/", b"-_")
#: Signed values :class:`VisitorSigner` remembers (about 200 bytes each) and the longest one.
_VERIFIED_SIZE = 4096
_VERIFIED_TEXT = 200


class VisitorSigner(Signer):
    """itsdangerous' :class:`~itsdangerous.Signer` that derives each key once, not on every
    ``sign``/``unsign`` (the derivation is a hash of salt and secret: the same bytes every time).
    Signatures are byte-for-byte those of ``Signer(secret_keys, salt=salt)`` (its defaults:
    django-concat key derivation, HMAC-SHA1). The HMAC (RFC 2104) starts from the key's inner and
    outer SHA-1 states, computed once per key: a hit costs four C calls, not the key setup of
    ``hmac.digest`` (itsdangerous' pure-Python HMAC path costs several times more).

    :meth:`sign_text` and :meth:`verify_text` are the str shortcuts of the per-hit visitor id."""

    def __init__(
        self, secret_keys: str | bytes | Iterable[str] | Iterable[bytes], *, salt: str
    ) -> None:
        super().__init__(secret_keys, salt=salt)
        self._derived: dict[bytes, bytes] = {}
        self._pads: dict[bytes, tuple[_Hash, _Hash]] = {}
        self._newest = self.secret_keys[-1]
        self._sep_text = self.sep.decode("ascii")
        #: ``sign_text(value)`` → ``value``, for the signed values given or verified lately
        #: (:data:`_VERIFIED_SIZE` at most, then forgotten all at once)
        self._verified: dict[str, str] = {}
        #: ``_pads_of(self._newest)``, once :meth:`sign_text` has needed it
        self._newest_pads: tuple[_Hash, _Hash] | None = None

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        """The derived key of ``secret_key`` (default: the newest key), computed once."""
        raw = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        key = self._derived.get(raw)
        if key is None:
            key = self._derived[raw] = super().derive_key(raw)
        return key

    def _pads_of(self, raw_key: bytes) -> tuple[_Hash, _Hash]:
        """The inner and outer SHA-1 states of HMAC under the derived key of ``raw_key``."""
        pads = self._pads.get(raw_key)
        if pads is None:
            key = self.derive_key(raw_key)
            if len(key) > _SHA1_BLOCK:
                key = hashlib.sha1(key).digest()
            key = key.ljust(_SHA1_BLOCK, b"\0")
            pads = self._pads[raw_key] = (
                _SHA1(bytes(b ^ 0x36 for b in key)),
                _SHA1(bytes(b ^ 0x5C for b in key)),
            )
        return pads

    def _mac(self, raw_key: bytes, data: bytes) -> bytes:
        """HMAC-SHA1 of ``data`` under the derived key of ``raw_key`` (a secret key), 20 bytes."""
        pads = self._pads.get(raw_key) or self._pads_of(raw_key)
        inner = pads[0].copy()
        inner.update(data)
        outer = pads[1].copy()
        outer.update(inner.digest())
        return outer.digest()

    def get_signature(self, value: str | bytes) -> bytes:
        """HMAC-SHA1 of ``value`` with the newest key, base64url: itsdangerous' default algorithm."""
        return base64_encode(self._mac(self._newest, want_bytes(value)))

    def verify_signature(self, value: str | bytes, sig: str | bytes) -> bool:
        """True when ``sig`` is the signature of ``value`` under any of the keys (newest first)."""
        try:
            expected = base64_decode(sig)
        except Exception:
            return False
        data = want_bytes(value)
        for key in reversed(self.secret_keys):
            if hmac.compare_digest(self._mac(key, data), expected):
                return True
        return False

    def _signature(self, data: bytes) -> bytes:
        """:meth:`get_signature` of bytes: itsdangerous' ``base64_encode`` (URL-safe base64
        without padding) of the HMAC with the newest key, written out."""
        encoded = binascii.b2a_base64(self._mac(self._newest, data), newline=False)
        return encoded.translate(_URLSAFE).rstrip(b"=")

    def sign_text(self, value: str) -> str:
        """``sign(value).decode("ascii")`` for an ASCII ``value``: ``<value>.<signature>``.
        The result is remembered, so that :meth:`verify_text` of it (the visitor's next hit)
        needs no HMAC.

        :meth:`_signature` and :meth:`_remember` written out (every new visitor's id is
        signed here), with the newest key's HMAC states kept in an attribute."""
        data = value.encode("ascii")
        pads = self._newest_pads
        if pads is None:
            pads = self._newest_pads = self._pads_of(self._newest)
        inner = pads[0].copy()
        inner.update(data)
        outer = pads[1].copy()
        outer.update(inner.digest())
        encoded = binascii.b2a_base64(outer.digest(), newline=False)
        signed = (data + self.sep + encoded.translate(_URLSAFE).rstrip(b"=")).decode("ascii")
        if len(signed) <= _VERIFIED_TEXT:
            verified = self._verified
            if len(verified) >= _VERIFIED_SIZE:
                verified.clear()
            verified[signed] = value
        return signed

    def verify_text(self, signed: str) -> str | None:
        """The value of ``signed`` when it is exactly what :meth:`sign_text` gives for it now
        (signed with the newest key, the signature in its canonical form); ``None`` otherwise,
        though :meth:`unsign` may still accept it (an older key, a non-canonical signature).
        Compared in constant time; a value this signer gave or verified lately (the same
        visitor's cookie on every hit) is found in a dict by its exact text, without HMAC (only
        texts that passed the check are there: a lookup tells nothing about a forged one)."""
        found = self._verified.get(signed)
        if found is not None:
            return found
        value, sep, sig = signed.rpartition(self._sep_text)
        if not sep or not signed.isascii():
            return None
        data = value.encode("ascii")
        if hmac.compare_digest(sig.encode("ascii"), self._signature(data)):
            self._remember(signed, value)
            return value
        return None

    def _remember(self, signed: str, value: str) -> None:
        """Keep ``signed`` (``sign_text(value)``) for :meth:`verify_text`; short texts only."""
        if len(signed) <= _VERIFIED_TEXT:
            verified = self._verified
            if len(verified) >= _VERIFIED_SIZE:
                verified.clear()
            verified[signed] = value


@functools.lru_cache(maxsize=4096)
def registrable_domain(host: str) -> str | None:
    """eTLD+1 of ``host`` by the Public Suffix List (``www.example.co.uk`` → ``example.co.uk``);
    ``None`` for a public suffix itself, ``localhost`` or an IP address."""
    host = host.lower().rstrip(".")
    if _is_ip(host):
        return None
    result = _psl().privatesuffix(host)
    return result if isinstance(result, str) else None


def is_public_suffix(host: str) -> bool:
    """True for a suffix under which anyone can register (``co.uk``, ``github.io``, ``com``);
    a bare single label such as ``localhost`` is not one."""
    host = host.lower().rstrip(".")
    return "." in host and not _is_ip(host) and registrable_domain(host) is None


def resolve_cookie_scope(host: str | None, site_domains: Sequence[str]) -> CookieScope | None:
    """The cookie scope for a request to ``host`` (the ``Host`` header, port allowed).

    The host must be one of ``site_domains`` or share its registrable domain with one; the Domain
    attribute is then that registrable domain taken from the configuration, never from the request.
    A host without a registrable domain (``localhost``, an IP) must equal a site domain and gets a
    host-only cookie. Anything else: ``None`` (no cookies are set).
    """
    if not host:
        return None
    found = _SCOPES.get(host)
    if found is not None and found[0] is site_domains:
        return found[1]  # asked before with these very site domains (a tuple: the same since)
    domains = tuple(site_domains)
    if len(host) > 260:  # not cached: a hostile Host header must not fill the cache
        return _resolve_cookie_scope(host, domains)
    scope = _cached_cookie_scope(host, domains)
    if type(site_domains) is tuple:
        if len(_SCOPES) >= 1024:
            _SCOPES.clear()
        _SCOPES[host] = (site_domains, scope)
    return scope


#: Host (at most 260 characters) → the tuple of site domains it was last resolved against and
#: :func:`resolve_cookie_scope`'s answer: found by the host alone and one identity check, without
#: hashing the site domains as the ``lru_cache`` key does (1,024 hosts, then all are forgotten).
_SCOPES: dict[str, tuple[tuple[str, ...], CookieScope | None]] = {}


@functools.lru_cache(maxsize=1024)
def _cached_cookie_scope(host: str, site_domains: tuple[str, ...]) -> CookieScope | None:
    """:func:`resolve_cookie_scope` for hosts of at most 260 characters, cached (a server sees a
    handful of hosts; the answer depends only on the two arguments)."""
    return _resolve_cookie_scope(host, site_domains)


def _resolve_cookie_scope(host: str, site_domains: tuple[str, ...]) -> CookieScope | None:
    host = host.lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    host = host.rstrip(".")
    if not host or not (_HOST_RE.match(host) or ":" in host):
        return None
    host_domain = registrable_domain(host)
    for site in site_domains:
        site_domain = registrable_domain(site)
        if site_domain is None:
            if host == site:
                # a bare IP has no labels to count: 1, as for a value built without a cookie
                index = 1 if _is_ip(host) else host.count(".")
                return CookieScope(domain=None, subdomain_index=index)
        elif host_domain == site_domain:
            return CookieScope(domain=site_domain, subdomain_index=site_domain.count("."))
    return None


def fbclid_from_url(url: str | None) -> str | None:
    """The ``fbclid`` query parameter of ``url``, byte-for-byte (no percent-decoding, no case change).

    Returns ``None`` when absent, empty or not shaped like a Meta click id.
    """
    if not url or "fbclid=" not in url:
        return None
    query = urlsplit(url).query
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name == "fbclid" and FBCLID_RE.match(value):
            return value
    return None


def fbclid_of_fbc(fbc: str) -> str:
    """The click id inside a valid ``fbc`` value: its 4th dot-segment (an appendix may follow)."""
    return fbc.split(".")[3]


#: Random 32-hex-digit texts (16 bytes of ``os.urandom`` each), drawn :data:`_RANDOM_BYTES` at a
#: time: one system call per 256 new visitors, not one each. A deque: ``popleft`` hands each text
#: out once, whatever thread asks; a forked child forgets its parent's (``register_at_fork``).
_RANDOM_HEX: collections.deque[str] = collections.deque()
_RANDOM_BYTES = 4096
os.register_at_fork(after_in_child=_RANDOM_HEX.clear)


def random_hex32() -> str:
    """``os.urandom(16).hex()``: 32 lower-case hex digits, 128 random bits (from a buffer of
    ``os.urandom`` output, :data:`_RANDOM_HEX`)."""
    try:
        return _RANDOM_HEX.popleft()
    except IndexError:
        return _refill_random_hex()


def _refill_random_hex() -> str:
    """:func:`random_hex32` when :data:`_RANDOM_HEX` is empty: fill it and take one."""
    for _ in range(3):  # another thread may empty a fresh buffer at once: try again, then ask
        text = os.urandom(_RANDOM_BYTES).hex()
        _RANDOM_HEX.extend([text[i : i + 32] for i in range(0, len(text), 32)])
        try:
            return _RANDOM_HEX.popleft()
        except IndexError:
            continue
    return os.urandom(16).hex()


def new_fbp(*, subdomain_index: int, now_ms: int) -> str:
    """A fresh ``_fbp``: ``fb.<index>.<now ms>.<random 0..2^31-1>`` (uniform: 31 of the bits of
    :func:`random_hex32`, as ``secrets.randbelow(2**31)`` draws them)."""
    return f"fb.{subdomain_index}.{now_ms}.{int(random_hex32()[:8], 16) >> 1}"


def build_fbc(fbclid: str, *, subdomain_index: int, now_ms: int) -> str:
    """``_fbc`` from a click id: ``fb.<index>.<now ms>.<fbclid>``; the time is in milliseconds."""
    return f"fb.{subdomain_index}.{now_ms}.{fbclid}"


def visitor_cookie_name(scope: CookieScope) -> str:
    """``__Host-tsid`` for a host-only cookie, ``__Secure-tsid`` when a Domain is set (RFC 6265bis)."""
    return "__Host-tsid" if scope.domain is None else "__Secure-tsid"


def parse_cookie_header(header: str) -> dict[str, list[str]]:
    """Every value of every cookie in a ``Cookie`` header, in order (``a=1; a=2`` → ``{"a": ["1",
    "2"]}``): browsers send duplicates when cookies of one name exist on several domains or
    paths, and the first valid one must win, not the last."""
    values: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            values.setdefault(name.strip(), []).append(value.strip().strip('"'))
    return values


def cookie_text(raw: Iterable[tuple[bytes, bytes]]) -> str:
    """Every ``Cookie`` header of the raw ASGI header pairs ``raw``, joined with ``"; "``, as
    latin-1 text (``""`` when there is none). One header is the usual case (RFC 6265 §5.4);
    several come from an intermediary that split them (HTTP/2 allows cookie crumbs, RFC 9113
    §8.2.3) and are read as one, as Starlette's ``request.cookies`` reads them."""
    # a loop, not a list comprehension: no list (nor comprehension call) for the usual one
    first: bytes | None = None
    more: list[bytes] | None = None
    for name, value in raw:
        if name == b"cookie":
            if first is None:
                first = value
            elif more is None:
                more = [first, value]
            else:
                more.append(value)
    if more is not None:
        return b"; ".join(more).decode("latin-1")
    return "" if first is None else first.decode("latin-1")


#: The cookies :func:`resolve_identity` reads.
IDENTITY_COOKIES = frozenset({"_fbp", "_fbc", "__Host-tsid", "__Secure-tsid"})


def identity_cookies(header: str) -> dict[str, list[str]]:
    """:func:`parse_cookie_header` of ``header`` with only the :data:`IDENTITY_COOKIES` in it:
    what :func:`resolve_identity` reads, without unquoting and keeping the values of the other
    cookies of the site (often a dozen or more)."""
    values: dict[str, list[str]] = {}
    if "_fb" not in header and "tsid" not in header:
        return values  # no name of IDENTITY_COOKIES is in the header
    for part in header.split(";"):
        if "_fb" in part or "tsid" in part:  # in every one of them: the others are skipped
            name, sep, value = part.partition("=")
            if sep:
                name = name.strip()
                if name in IDENTITY_COOKIES:
                    found = values.get(name)
                    if found is None:
                        values[name] = [value.strip().strip('"')]
                    else:
                        found.append(value.strip().strip('"'))
    return values


def resolve_identity(
    cookies: Mapping[str, str] | Mapping[str, list[str]],
    *,
    page_url: str | None,
    referrer_url: str | None,
    scope: CookieScope | None,
    ad_storage: bool,
    analytics_storage: bool,
    signer: Signer,
    now_ms: int,
    max_age: int,
) -> Identity:
    """Read, mint and refresh the identity of one hit.

    ``cookies`` maps a name to its value or to all its values (:func:`parse_cookie_header`); the
    first valid value wins.

    ``_fbp`` is kept when valid, minted when missing; ``_fbc`` is built from the ``fbclid`` of
    ``page_url`` (else ``referrer_url``) and replaced only when a different click id arrives; a
    malformed value is ignored and never written back. With ``ad_storage`` refused no Meta cookie is
    read or set; with ``analytics_storage`` refused no visitor id. With no ``scope`` (a host that is
    not ours) nothing is set and no ``_fbp`` is minted. ``now_ms`` is unix time in milliseconds,
    ``max_age`` the cookie lifetime in seconds. Never raises.
    """
    out: list[CookieSpec] = []
    fbp: str | None = None
    fbc: str | None = None
    domain = scope.domain if scope is not None else None

    if ad_storage:
        index = scope.subdomain_index if scope is not None else 1
        # the first value that matches FBP_RE (then FBC_RE), in the loop of this function (a
        # call fewer per hit)
        found = cookies.get("_fbp")
        if found is not None:
            for value in (found,) if isinstance(found, str) else found:
                if FBP_RE.match(value):
                    fbp = value
                    break
        if fbp is None and scope is not None:
            fbp = new_fbp(subdomain_index=index, now_ms=now_ms)
        found = cookies.get("_fbc")
        if found is not None:
            for value in (found,) if isinstance(found, str) else found:
                if FBC_RE.match(value):
                    fbc = value
                    break
        # fbclid_from_url(page_url) or fbclid_from_url(referrer_url), called only for a URL
        # that names one (most do not)
        fbclid = fbclid_from_url(page_url) if page_url and "fbclid=" in page_url else None
        if fbclid is None and referrer_url and "fbclid=" in referrer_url:
            fbclid = fbclid_from_url(referrer_url)
        if fbclid is not None and (fbc is None or fbclid_of_fbc(fbc) != fbclid):
            fbc = build_fbc(fbclid, subdomain_index=index, now_ms=now_ms)
        if scope is not None:
            if fbp is not None:
                out.append(_new_tuple(CookieSpec, ("_fbp", fbp, max_age, domain, False)))
            if fbc is not None:
                out.append(_new_tuple(CookieSpec, ("_fbc", fbc, max_age, domain, False)))

    visitor_id: str | None = None
    if analytics_storage and scope is not None:
        name = "__Host-tsid" if domain is None else "__Secure-tsid"  # visitor_cookie_name
        raw_ids = cookies.get(name)
        found = None
        if type(signer) is VisitorSigner:
            if raw_ids is None:
                # a new visitor: _visitor_id(signer, None), written out
                found = random_hex32()  # 32 hex digits, as _VISITOR_ID_RE wants
                signed = signer.sign_text(found)
            elif raw_ids:
                # a returning visitor whose first value this signer gave or verified lately
                # (most hits): _visitor_id's first step, its verify_text dict lookup inlined;
                # anything else (another value, an older key, no match) goes to _visitor_id
                signed = raw_ids if type(raw_ids) is str else raw_ids[0]
                found = signer._verified.get(signed)
                if found is not None and not _VISITOR_ID_RE.match(found):
                    found = None
        if found is None:
            found, signed = _visitor_id(signer, raw_ids)
        visitor_id = found
        out.append(_new_tuple(CookieSpec, (name, signed, max_age, domain, True)))
    return _new_tuple(Identity, (fbp, fbc, visitor_id, tuple(out)))


#: ``tuple.__new__``: a :class:`CookieSpec` or :class:`Identity` made from a tuple of its
#: fields in order, without the named tuple's Python-level ``__new__`` (half the cost, per
#: cookie of every hit).
_new_tuple = tuple.__new__


def _visitor_id(signer: Signer, raw_ids: str | Sequence[str] | None) -> tuple[str, str]:
    """The visitor id of the first correctly signed value of ``raw_ids`` (a new random one when
    none is) and its signed cookie value."""
    if raw_ids:
        fast = signer if isinstance(signer, VisitorSigner) else None
        for raw in (raw_ids,) if isinstance(raw_ids, str) else raw_ids:
            if not raw or len(raw) > 200:
                continue
            if fast is not None:
                # the common case: signed with the newest key, so signing again gives ``raw``
                value = fast.verify_text(raw)
                if value is not None and _VISITOR_ID_RE.match(value):
                    return value, raw
            value = _unsign_visitor_id(signer, raw)
            if value is not None:
                return value, _sign(signer, value)
    visitor_id = random_hex32()  # 32 hex digits, as _VISITOR_ID_RE wants
    if type(signer) is VisitorSigner:  # _sign(signer, visitor_id), one call fewer
        return visitor_id, signer.sign_text(visitor_id)
    return visitor_id, _sign(signer, visitor_id)


def _sign(signer: Signer, visitor_id: str) -> str:
    if isinstance(signer, VisitorSigner):
        return signer.sign_text(visitor_id)
    return signer.sign(visitor_id).decode("ascii")


def _unsign_visitor_id(signer: Signer, raw: str | None) -> str | None:
    if not raw or len(raw) > 200:
        return None
    try:
        value = signer.unsign(raw).decode("ascii", "replace")
    except BadSignature:
        return None
    return value if _VISITOR_ID_RE.match(value) else None
