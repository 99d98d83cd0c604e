"""The visitor's IP address behind proxies (REFERENCE §5).

Walk ``X-Forwarded-For`` from the right while the hop is a trusted proxy; the first untrusted
address is the client. The leftmost entry is written by the client and never believed on its own.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Container, Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Addresses that can never be a visitor's public address. ``is_private`` is not used: in Python it
# also covers the documentation ranges (192.0.2.0/24, 203.0.113.0/24, 2001:db8::/32).
_NOT_PUBLIC: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)


def parse_ip(text: str) -> IPAddress | None:
    """Parse one address as proxies write it: ``1.2.3.4``, ``1.2.3.4:5678``, ``[2001:db8::1]:443``,
    ``2001:db8::1``, ``::ffff:1.2.3.4`` (unmapped to IPv4), with an optional ``%zone`` dropped.

    Returns ``None`` for anything else (``unknown``, garbage, empty). Results are cached (8,192
    most recent texts): a visitor sends many hits from one address.
    """
    text = text.strip().strip('"')
    if not text or len(text) > 64:
        return None
    return _parse_short(text)


@functools.lru_cache(maxsize=8192)
def _parse_short(text: str) -> IPAddress | None:
    """:func:`parse_ip` of a stripped text of at most 64 characters (so the cache stays small)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    text = text.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=8192)
def is_public(address: IPAddress) -> bool:
    """True when ``address`` can be a visitor's address on the internet (not loopback, RFC 1918,
    CGNAT, link-local, ULA, multicast or unspecified)."""
    return not any(
        address in network for network in _NOT_PUBLIC if address.version == network.version
    )


def public_text(address: IPAddress) -> str | None:
    """``str(address)`` when :func:`is_public`, else ``None``; remembered per address object
    (:func:`_texts`), so that a hit from a known address neither checks the ranges nor formats
    the address again."""
    entry = _TEXTS.get(id(address))
    if entry is not None and entry[0] is address:
        return entry[2]
    return _texts(address)[2]


def address_text(address: IPAddress) -> str:
    """``str(address)``, remembered per address object as :func:`public_text` is."""
    entry = _TEXTS.get(id(address))
    if entry is not None and entry[0] is address:
        return entry[1]
    return _texts(address)[1]


#: ``id(address)`` → ``(address, str(address), public_text(address))``.
_TEXTS: dict[int, tuple[IPAddress, str, str | None]] = {}


def _texts(address: IPAddress) -> tuple[IPAddress, str, str | None]:
    """The :data:`_TEXTS` entry of ``address``, made and kept (8,192 addresses, then all are
    forgotten at once). Keyed by ``id``, not by the address (whose ``__hash__`` is Python code):
    :func:`parse_ip` gives the same object for a known text, and the entry keeps the object
    alive, so its id names no other."""
    text = str(address)
    entry = (address, text, text if is_public(address) else None)
    if len(_TEXTS) >= 8192:
        _TEXTS.clear()
    _TEXTS[id(address)] = entry
    return entry


def _trusted(address: IPAddress, proxies: Sequence[IPNetwork]) -> bool:
    for network in proxies:
        if address.version == network.version and address in network:
            return True
    return False


#: Per tuple of trusted proxies (by identity; the tuple is kept so that its id stays unique):
#: address text → (:func:`parse_ip` of it, whether a trusted proxy has it).
_TRUST_TABLES: dict[int, tuple[tuple[IPNetwork, ...], dict[str, tuple[IPAddress | None, bool]]]] = {}
_TRUST_TABLE_SIZE = 8192


def _parse_trusted(text: str, proxies: Sequence[IPNetwork]) -> tuple[IPAddress | None, bool]:
    """``(parse_ip(text), trusted)``; remembered per text of at most 64 characters (8,192 per
    tuple of proxies, then forgotten all at once) when ``proxies`` is a tuple (a list could
    change under the cache): the peer of every hit is one of a few proxies, or a visitor who
    sends several hits."""
    if type(proxies) is not tuple or len(text) > 64:
        address = parse_ip(text)
        return address, address is not None and _trusted(address, proxies)
    entry = _TRUST_TABLES.get(id(proxies))
    if entry is None or entry[0] is not proxies:
        if len(_TRUST_TABLES) >= 16:
            _TRUST_TABLES.clear()
        entry = _TRUST_TABLES[id(proxies)] = (proxies, {})
    table = entry[1]
    found = table.get(text)
    if found is None:
        address = parse_ip(text)
        found = (address, address is not None and _trusted(address, proxies))
        if len(table) >= _TRUST_TABLE_SIZE:
            table.clear()
        table[text] = found
    return found


def forwarded_for_hops(forwarded: Iterable[str]) -> list[str]:
    """The ``for=`` nodes of RFC 7239 ``Forwarded`` header values, in order
    (``for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"`` → ``["192.0.2.60", "[2001:db8::1]:4711"]``).

    An element without ``for=`` yields ``"unknown"`` so that the walk stops there.
    """
    hops: list[str] = []
    for header in forwarded:
        for element in header.split(","):
            node = "unknown"
            for pair in element.split(";"):
                name, _, value = pair.strip().partition("=")
                if name.lower() == "for":
                    node = value.strip().strip('"')
            if element.strip():
                hops.append(node)
    return hops


def resolve_client_ip(
    peer: str | None,
    forwarded_for: Iterable[str],
    *,
    trusted_proxies: Sequence[IPNetwork],
    forwarded: Iterable[str] = (),
) -> IPAddress | None:
    """The client address of one request.

    ``peer`` is the socket peer's host, ``forwarded_for`` every ``X-Forwarded-For`` header value in
    order (several headers are joined); ``forwarded`` the RFC 7239 ``Forwarded`` header values, used
    only when there is no ``X-Forwarded-For``. When the peer is not a trusted proxy it is the client. Else
    the hops are walked from the right, skipping trusted proxies; the first untrusted valid hop is
    the client. An unparsable hop stops the walk (nothing to its left can be trusted): ``None``.
    When every hop is trusted, the leftmost is taken. Never raises.
    """
    if not peer:
        return None
    peer_ip, trusted = _parse_trusted(peer, trusted_proxies)
    if peer_ip is None or not trusted:
        return peer_ip
    return _walk_hops(peer_ip, forwarded_for, forwarded, trusted_proxies)


def client_ip_of_headers(
    peer: str | None,
    headers: Iterable[tuple[bytes, bytes]],
    *,
    trusted_proxies: Sequence[IPNetwork],
    first: Container[bytes] | None = None,
) -> IPAddress | None:
    """:func:`resolve_client_ip` of an ASGI request: ``headers`` are its raw ``(name, value)``
    pairs (lower-case names, latin-1 values), read in one pass and only when the peer is a
    trusted proxy. ``first``, when given, holds the name of every one of those headers (the
    request's :func:`~tagserver.http.first_headers`): without ``X-Forwarded-For`` and
    ``Forwarded`` in it, the pairs are not read."""
    if not peer:
        return None
    # _parse_trusted(peer, trusted_proxies), its table read here when it has the peer (every
    # hit from a known proxy or visitor): a call fewer
    entry = _TRUST_TABLES.get(id(trusted_proxies))
    found = entry[1].get(peer) if entry is not None and entry[0] is trusted_proxies else None
    peer_ip, trusted = found if found is not None else _parse_trusted(peer, trusted_proxies)
    if peer_ip is None or not trusted:
        return peer_ip
    if first is not None and b"x-forwarded-for" not in first and b"forwarded" not in first:
        return peer_ip  # a trusted proxy that names no client (a health check, a local test)
    forwarded_for: list[str] = []
    forwarded: list[str] = []
    for name, value in headers:
        if name == b"x-forwarded-for":
            forwarded_for.append(value.decode("latin-1"))
        elif name == b"forwarded":
            forwarded.append(value.decode("latin-1"))
    if not forwarded_for and not forwarded:
        return peer_ip  # a trusted proxy that names no client (a health check, a local test)
    return _walk_hops(peer_ip, forwarded_for, forwarded, trusted_proxies)


def _walk_hops(
    peer_ip: IPAddress,
    forwarded_for: Iterable[str],
    forwarded: Iterable[str],
    trusted_proxies: Sequence[IPNetwork],
) -> IPAddress | None:
    """The walk of :func:`resolve_client_ip` behind the trusted proxy ``peer_ip``."""
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    if not hops:
        hops = forwarded_for_hops(forwarded)
    client = peer_ip
    for hop in reversed(hops):
        address, trusted = _parse_trusted(hop, trusted_proxies)
        if address is None:
            return None
        client = address
        if not trusted:
            return address
    return client
