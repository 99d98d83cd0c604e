"""tagserver.client_ip: the visitor's address behind proxies (REFERENCE §5)."""

from __future__ import annotations

import ipaddress

import pytest

from tagserver.client_ip import is_public, parse_ip, resolve_client_ip

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
WITH_PRIVATE = (*LOOPBACK, ipaddress.ip_network("10.0.0.0/8"))


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


# ---------------------------------------------------------------------------------------------
# parse_ip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("  203.0.113.7  ", "203.0.113.7"),
        ("203.0.113.7:54321", "203.0.113.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("[::ffff:203.0.113.7]:8080", "203.0.113.7"),
        ("fe80::1%eth0", "fe80::1"),
        ('"203.0.113.7"', "203.0.113.7"),
        ("::1", "::1"),
    ],
)
def test_parse_ip_accepts_proxy_forms(text: str, expected: str) -> None:
    assert parse_ip(text) == ip(expected)


def test_parse_ip_unmaps_ipv4_mapped_ipv6_to_an_ipv4_address() -> None:
    address = parse_ip("::ffff:203.0.113.7")
    assert isinstance(address, ipaddress.IPv4Address)
    assert str(address) == "203.0.113.7"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "unknown",
        "garbage",
        "203.0.113",
        "203.0.113.256",
        "203.0.113.7.1",
        "[2001:db8::1",
        "2001:db8:::1",
        "example.com",
        "example.com:443",
        "1" * 100,
        "_hidden",
    ],
)
def test_parse_ip_refuses_garbage(text: str) -> None:
    assert parse_ip(text) is None


# ---------------------------------------------------------------------------------------------
# resolve_client_ip


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "proxies", "expected"),
    [
        pytest.param(
            "127.0.0.1",
            ["192.0.2.66, 203.0.113.7"],
            LOOPBACK,
            "203.0.113.7",
            id="spoofed-leftmost-ignored",
        ),
        pytest.param(
            "127.0.0.1",
            ["203.0.113.7"],
            LOOPBACK,
            "203.0.113.7",
            id="one-hop",
        ),
        pytest.param(
            "10.0.0.5",
            ["192.0.2.66, 203.0.113.7, 10.1.2.3, 10.0.0.9"],
            WITH_PRIVATE,
            "203.0.113.7",
            id="several-trusted-hops-skipped",
        ),
        pytest.param(
            "127.0.0.1",
            ["198.51.100.20, 10.1.2.3"],
            WITH_PRIVATE,
            "198.51.100.20",
            id="trusted-cidr-hop-skipped",
        ),
        pytest.param(
            "198.51.100.9",
            ["203.0.113.7"],
            LOOPBACK,
            "198.51.100.9",
            id="untrusted-peer-wins-over-xff",
        ),
        pytest.param(
            "198.51.100.9",
            ["garbage, 127.0.0.1"],
            LOOPBACK,
            "198.51.100.9",
            id="untrusted-peer-with-garbage-xff",
        ),
        pytest.param(
            "127.0.0.1",
            ["203.0.113.7:54321"],
            LOOPBACK,
            "203.0.113.7",
            id="port-stripped",
        ),
        pytest.param(
            "127.0.0.1",
            ["[2001:db8::1]:443"],
            LOOPBACK,
            "2001:db8::1",
            id="bracketed-ipv6-with-port",
        ),
        pytest.param(
            "127.0.0.1",
            ["2001:db8::1"],
            LOOPBACK,
            "2001:db8::1",
            id="bare-ipv6",
        ),
        pytest.param(
            "127.0.0.1",
            ["::ffff:203.0.113.7"],
            LOOPBACK,
            "203.0.113.7",
            id="ipv4-mapped",
        ),
        pytest.param(
            "::1",
            ["203.0.113.7"],
            LOOPBACK,
            "203.0.113.7",
            id="ipv6-loopback-peer",
        ),
        pytest.param(
            "127.0.0.1",
            ["192.0.2.66", "203.0.113.7, 10.1.2.3"],
            WITH_PRIVATE,
            "203.0.113.7",
            id="multiple-headers-joined-in-order",
        ),
        pytest.param(
            "127.0.0.1",
            ["203.0.113.7", "198.51.100.20"],
            LOOPBACK,
            "198.51.100.20",
            id="later-header-is-nearer",
        ),
        pytest.param(
            "127.0.0.1",
            ["10.9.9.9, 10.1.2.3"],
            WITH_PRIVATE,
            "10.9.9.9",
            id="all-hops-trusted-leftmost",
        ),
        pytest.param("127.0.0.1", [], LOOPBACK, "127.0.0.1", id="no-xff-trusted-peer"),
        pytest.param(
            "127.0.0.1",
            ["", " , "],
            LOOPBACK,
            "127.0.0.1",
            id="empty-xff-values",
        ),
        pytest.param(
            "127.0.0.1",
            ["203.0.113.7, , 198.51.100.20"],
            LOOPBACK,
            "198.51.100.20",
            id="empty-hop-skipped",
        ),
        pytest.param(
            "203.0.113.7:1234",
            ["192.0.2.66"],
            LOOPBACK,
            "203.0.113.7",
            id="peer-with-port",
        ),
    ],
)
def test_resolve_client_ip(
    peer: str,
    forwarded_for: list[str],
    proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
    expected: str,
) -> None:
    assert resolve_client_ip(peer, forwarded_for, trusted_proxies=proxies) == ip(expected)


@pytest.mark.parametrize(
    ("peer", "forwarded_for"),
    [
        pytest.param("127.0.0.1", ["203.0.113.7, garbage"], id="garbage-rightmost-hop"),
        pytest.param("127.0.0.1", ["203.0.113.7, unknown, 10.0.0.1"], id="garbage-middle-hop"),
        pytest.param("127.0.0.1", ["garbage"], id="only-garbage"),
        pytest.param(None, ["203.0.113.7"], id="no-peer"),
        pytest.param("", ["203.0.113.7"], id="empty-peer"),
        pytest.param("not-an-ip", ["203.0.113.7"], id="garbage-peer"),
    ],
)
def test_resolve_client_ip_gives_none_when_nothing_can_be_trusted(
    peer: str | None, forwarded_for: list[str]
) -> None:
    assert resolve_client_ip(peer, forwarded_for, trusted_proxies=WITH_PRIVATE) is None


def test_resolve_client_ip_leftmost_garbage_behind_a_real_client_is_ignored() -> None:
    # the garbage is to the left of the first untrusted hop: never reached
    result = resolve_client_ip("127.0.0.1", ["garbage, 203.0.113.7"], trusted_proxies=LOOPBACK)
    assert result == ip("203.0.113.7")


def test_resolve_client_ip_with_no_trusted_proxies_is_the_peer() -> None:
    assert resolve_client_ip("127.0.0.1", ["203.0.113.7"], trusted_proxies=()) == ip("127.0.0.1")


def test_resolve_client_ip_accepts_a_generator() -> None:
    headers = (h for h in ["192.0.2.66, 203.0.113.7"])
    assert resolve_client_ip("127.0.0.1", headers, trusted_proxies=LOOPBACK) == ip("203.0.113.7")


# ---------------------------------------------------------------------------------------------
# is_public


@pytest.mark.parametrize(
    "text",
    [
        "203.0.113.7",  # TEST-NET-3, documentation: treated as public
        "192.0.2.1",  # TEST-NET-1
        "198.51.100.20",  # TEST-NET-2
        "8.8.8.8",
        "2001:db8::1",  # IPv6 documentation
        "2a03:2880:f12f:83:face:b00c::25de",
        "100.63.255.255",  # just below CGNAT
        "100.128.0.0",  # just above CGNAT
        "172.15.255.255",
        "172.32.0.0",
    ],
)
def test_is_public_true(text: str) -> None:
    assert is_public(ip(text)) is True


@pytest.mark.parametrize(
    "text",
    [
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "127.0.0.1",
        "127.255.0.1",
        "169.254.10.10",
        "100.64.0.1",  # CGNAT
        "100.127.255.255",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456:789a::1",  # ULA
        "ff02::1",
    ],
)
def test_is_public_false(text: str) -> None:
    assert is_public(ip(text)) is False


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (['for=203.0.113.9;proto=https'], "203.0.113.9"),
        (['for=192.0.2.66, for="[2001:db8::7]:4711"'], "2001:db8::7"),
        (['for=192.0.2.66', 'for=127.0.0.1;by=10.0.0.1'], "192.0.2.66"),
        (['for="_hidden", for=203.0.113.9'], "203.0.113.9"),
        (['for=203.0.113.9, for="_hidden"'], None),
        (['proto=https'], None),
    ],
)
def test_forwarded_header_is_walked_like_x_forwarded_for(
    headers: list[str], expected: str | None
) -> None:
    got = resolve_client_ip("127.0.0.1", [], trusted_proxies=LOOPBACK, forwarded=headers)
    assert (str(got) if got is not None else None) == expected


def test_x_forwarded_for_wins_over_forwarded() -> None:
    got = resolve_client_ip(
        "127.0.0.1", ["198.51.100.1"], trusted_proxies=LOOPBACK, forwarded=["for=203.0.113.9"]
    )
    assert str(got) == "198.51.100.1"


# ---------------------------------------------------------------------------------------------
# client_ip_of_headers: the same answers from an ASGI request's raw headers


RAW_CASES = [
    pytest.param("127.0.0.1", [], id="no-proxy-headers"),
    pytest.param("127.0.0.1", [(b"x-forwarded-for", b"203.0.113.7")], id="one-xff"),
    pytest.param("127.0.0.1", [(b"x-forwarded-for", b"198.51.100.1, 127.0.0.2"),
                               (b"host", b"t.shop.example"),
                               (b"x-forwarded-for", b"203.0.113.7, 10.0.0.1")],
                 id="two-xff-headers-joined"),
    pytest.param("127.0.0.1", [(b"forwarded", b"for=203.0.113.9"),
                               (b"forwarded", b'for="[2001:db8::7]:4711"')], id="forwarded"),
    pytest.param("127.0.0.1", [(b"forwarded", b"for=203.0.113.9"),
                               (b"x-forwarded-for", b"198.51.100.1")], id="xff-wins"),
    pytest.param("127.0.0.1", [(b"x-forwarded-for", b" , ")], id="empty-hops"),
    pytest.param("127.0.0.1", [(b"x-forwarded-for", b"garbage")], id="garbage"),
    pytest.param("127.0.0.1", [(b"x-forwarded-for", "198.51.100.1, é".encode("latin-1"))],
                 id="latin-1"),
    pytest.param("203.0.113.5", [(b"x-forwarded-for", b"198.51.100.1")], id="untrusted-peer"),
    pytest.param("10.0.0.3", [(b"x-forwarded-for", b"198.51.100.1")], id="private-peer"),
    pytest.param(None, [(b"x-forwarded-for", b"198.51.100.1")], id="no-peer"),
    pytest.param("nonsense", [(b"x-forwarded-for", b"198.51.100.1")], id="bad-peer"),
    pytest.param(" 127.0.0.1 ", [(b"x-forwarded-for", b"198.51.100.1")], id="spaced-peer"),
]


@pytest.mark.parametrize(("peer", "raw"), RAW_CASES)
@pytest.mark.parametrize("proxies", [LOOPBACK, WITH_PRIVATE, list(WITH_PRIVATE), ()],
                         ids=["loopback", "private", "list", "none"])
def test_client_ip_of_headers_is_resolve_client_ip_of_getlist(
    peer: str | None,
    raw: list[tuple[bytes, bytes]],
    proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
) -> None:
    from starlette.datastructures import Headers

    from tagserver.client_ip import client_ip_of_headers

    headers = Headers(raw=raw)
    expected = resolve_client_ip(peer, headers.getlist("x-forwarded-for"),
                                 trusted_proxies=proxies,
                                 forwarded=headers.getlist("forwarded"))  # fmt: skip
    for _ in range(2):  # the second time from the remembered peer and hops
        assert client_ip_of_headers(peer, raw, trusted_proxies=proxies) == expected


def test_remembered_trust_is_per_tuple_of_proxies() -> None:
    narrow = (ipaddress.ip_network("10.0.0.0/24"),)
    wide = (ipaddress.ip_network("10.0.0.0/8"),)
    xff = ["203.0.113.7, 10.1.0.1"]
    for _ in range(2):
        assert resolve_client_ip("10.0.0.2", xff, trusted_proxies=narrow) == ip("10.1.0.1")
        assert resolve_client_ip("10.0.0.2", xff, trusted_proxies=wide) == ip("203.0.113.7")
        assert resolve_client_ip("10.1.0.2", xff, trusted_proxies=narrow) == ip("10.1.0.2")


def test_a_list_of_proxies_is_read_as_it_is_now() -> None:
    proxies = [ipaddress.ip_network("10.0.0.0/24")]
    assert resolve_client_ip("10.0.0.2", ["203.0.113.7"], trusted_proxies=proxies) == ip(
        "203.0.113.7"
    )
    proxies.clear()
    assert resolve_client_ip("10.0.0.2", ["203.0.113.7"], trusted_proxies=proxies) == ip(
        "10.0.0.2"
    )


def test_many_peers_do_not_grow_the_trust_table_without_bound() -> None:
    from tagserver import client_ip

    for n in range(client_ip._TRUST_TABLE_SIZE + 10):
        peer = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
        assert resolve_client_ip(peer, [], trusted_proxies=WITH_PRIVATE) == ip(peer)
    tables = [table for proxies, table in client_ip._TRUST_TABLES.values()
              if proxies is WITH_PRIVATE]  # fmt: skip
    assert tables and len(tables[0]) <= client_ip._TRUST_TABLE_SIZE


@pytest.mark.parametrize("text", ["203.0.113.7", "2001:db8::1", "10.0.0.1", "::1", "127.0.0.1"])
def test_public_text_is_the_address_when_public(text: str) -> None:
    from tagserver.client_ip import public_text

    for _ in range(2):
        assert public_text(ip(text)) == (str(ip(text)) if is_public(ip(text)) else None)
