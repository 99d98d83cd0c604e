"""tagserver.identity: cookie scope (PSL), fbclid, and the _fbp/_fbc/visitor id cookies."""

from __future__ import annotations

import re

import pytest
from itsdangerous import Signer

from tagserver.identity import (
    VISITOR_ID_SALT,
    CookieScope,
    CookieSpec,
    Identity,
    fbclid_from_url,
    resolve_cookie_scope,
    resolve_identity,
)

NOW_MS = 1_760_000_000_123
OLD_MS = 1_697_698_245_670
MAX_AGE = 90 * 24 * 3600
SHOP = CookieScope(domain="shop.example", subdomain_index=1)
HOST_ONLY = CookieScope(domain=None, subdomain_index=0)
NEW_FBP_RE = re.compile(r"^fb\.1\.\d{13}\.\d{1,10}$")
FBCLID = "IwAR2F4-Ab_cD3fG"
PAGE = "https://www.shop.example/product?id=1"


def signer(key: str = "unit-test-signing-key-0123456789") -> Signer:
    return Signer(key, salt=VISITOR_ID_SALT)


def identify(
    cookies: dict[str, str] | None = None,
    *,
    page_url: str | None = PAGE,
    referrer_url: str | None = None,
    scope: CookieScope | None = SHOP,
    ad_storage: bool = True,
    analytics_storage: bool = True,
    sign: Signer | None = None,
    now_ms: int = NOW_MS,
    max_age: int = MAX_AGE,
) -> Identity:
    return resolve_identity(
        cookies or {},
        page_url=page_url,
        referrer_url=referrer_url,
        scope=scope,
        ad_storage=ad_storage,
        analytics_storage=analytics_storage,
        signer=sign or signer(),
        now_ms=now_ms,
        max_age=max_age,
    )


def by_name(identity: Identity) -> dict[str, CookieSpec]:
    names = [c.name for c in identity.cookies]
    assert len(names) == len(set(names)), f"a cookie is set twice: {names}"
    return {c.name: c for c in identity.cookies}


# ---------------------------------------------------------------------------------------------
# resolve_cookie_scope


@pytest.mark.parametrize(
    ("host", "sites", "expected"),
    [
        pytest.param(
            "t.shop.example",
            ["www.shop.example"],
            CookieScope("shop.example", 1),
            id="tracking-subdomain",
        ),
        pytest.param(
            "shop.example",
            ["www.shop.example"],
            CookieScope("shop.example", 1),
            id="apex",
        ),
        pytest.param(
            "www.example.co.uk",
            ["www.example.co.uk"],
            CookieScope("example.co.uk", 2),
            id="co-uk",
        ),
        pytest.param(
            "t.example.co.uk",
            ["example.co.uk"],
            CookieScope("example.co.uk", 2),
            id="co-uk-subdomain",
        ),
        pytest.param(
            "foo.github.io",
            ["foo.github.io"],
            CookieScope("foo.github.io", 2),
            id="psl-private-section",
        ),
        pytest.param(
            "t.shop.example:8443",
            ["www.shop.example"],
            CookieScope("shop.example", 1),
            id="host-with-port",
        ),
        pytest.param(
            "T.Shop.EXAMPLE",
            ["www.shop.example"],
            CookieScope("shop.example", 1),
            id="uppercase-host",
        ),
        pytest.param(
            "t.shop.example.",
            ["www.shop.example"],
            CookieScope("shop.example", 1),
            id="trailing-dot",
        ),
        pytest.param(
            "t.other.example",
            ["www.other.example", "www.shop.example"],
            CookieScope("other.example", 1),
            id="second-site-matches",
        ),
        pytest.param(
            "localhost",
            ["localhost"],
            CookieScope(None, 0),
            id="localhost-host-only",
        ),
        pytest.param(
            "localhost:8080",
            ["localhost"],
            CookieScope(None, 0),
            id="localhost-with-port",
        ),
        pytest.param(
            "127.0.0.1",
            ["127.0.0.1"],
            CookieScope(None, 1),
            id="ip-host-only",
        ),
        pytest.param(
            "127.0.0.1:8080",
            ["127.0.0.1"],
            CookieScope(None, 1),
            id="ip-with-port",
        ),
    ],
)
def test_resolve_cookie_scope(host: str, sites: list[str], expected: CookieScope) -> None:
    assert resolve_cookie_scope(host, sites) == expected


@pytest.mark.parametrize(
    ("host", "sites"),
    [
        pytest.param("evil.example", ["www.shop.example"], id="unrelated-host"),
        pytest.param("shop.example.evil.example", ["www.shop.example"], id="suffix-trick"),
        pytest.param("bar.github.io", ["foo.github.io"], id="other-github-pages-site"),
        pytest.param("other.co.uk", ["www.example.co.uk"], id="other-co-uk-site"),
        pytest.param("co.uk", ["www.example.co.uk"], id="public-suffix-host"),
        pytest.param("localhost", ["www.shop.example"], id="localhost-not-configured"),
        pytest.param("127.0.0.1", ["www.shop.example"], id="ip-not-configured"),
        pytest.param("127.0.0.2", ["127.0.0.1"], id="other-ip"),
        pytest.param(None, ["www.shop.example"], id="no-host"),
        pytest.param("", ["www.shop.example"], id="empty-host"),
        pytest.param("t.shop.example", [], id="no-sites"),
        pytest.param("t.shop.example\r\nSet-Cookie: x=1", ["www.shop.example"], id="crlf"),
        pytest.param("t.shop.example;x", ["www.shop.example"], id="semicolon"),
    ],
)
def test_resolve_cookie_scope_refuses(host: str | None, sites: list[str]) -> None:
    assert resolve_cookie_scope(host, sites) is None


def test_cookie_domain_is_never_the_public_suffix() -> None:
    scope = resolve_cookie_scope("www.example.co.uk", ["www.example.co.uk"])
    assert scope is not None
    assert scope.domain == "example.co.uk"
    assert scope.domain != "co.uk"


def test_cookie_domain_comes_from_configuration_not_the_host_header() -> None:
    scope = resolve_cookie_scope("deep.t.shop.example", ["www.shop.example"])
    assert scope == CookieScope("shop.example", 1)


def test_resolve_cookie_scope_answers_for_the_site_domains_of_each_call() -> None:
    shop, other = ("www.shop.example",), ("www.other.example",)
    expected = CookieScope("shop.example", 1)
    for _ in range(2):  # the second time from what was remembered
        assert resolve_cookie_scope("t.shop.example", shop) == expected
        assert resolve_cookie_scope("t.shop.example", other) is None
        assert resolve_cookie_scope("t.shop.example", ("www.shop.example",)) == expected
    sites = ["www.shop.example"]  # a list can change between calls
    assert resolve_cookie_scope("t.shop.example", sites) == expected
    sites[0] = "www.other.example"
    assert resolve_cookie_scope("t.shop.example", sites) is None
    assert resolve_cookie_scope("t.other.example", sites) == CookieScope("other.example", 1)


# ---------------------------------------------------------------------------------------------
# fbclid_from_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://shop.example/?fbclid=IwAR2F4-Ab_cD3fG", "IwAR2F4-Ab_cD3fG"),
        ("https://shop.example/p?a=1&fbclid=AbCdEf&b=2", "AbCdEf"),
        ("https://shop.example/p?fbclid=abcdef", "abcdef"),  # case kept, never upper-cased
        ("https://shop.example/p?fbclid=ABCDEF", "ABCDEF"),  # case kept, never lower-cased
        ("https://shop.example/p?fbclid=a-b_c--__", "a-b_c--__"),
        ("https://shop.example/p?fbclid=IwAR123#section", "IwAR123"),
        ("https://shop.example/p?fbclid=" + "a" * 500, "a" * 500),
    ],
)
def test_fbclid_from_url_byte_for_byte(url: str, expected: str) -> None:
    assert fbclid_from_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        "https://shop.example/",
        "https://shop.example/?gclid=abc",
        "https://shop.example/?fbclid=",
        "https://shop.example/?fbclid=IwAR%2F123",  # percent-encoded: refused, never decoded
        "https://shop.example/?fbclid=IwAR+123",
        "https://shop.example/?fbclid=Iw.AR",
        "https://shop.example/?fbclid=Iw%20AR",
        "https://shop.example/?fbclid=<script>",
        "https://shop.example/?fbclid=abc;def",
        "https://shop.example/?xfbclid=abc",
        "https://shop.example/?FBCLID=abc",
        "https://shop.example/#fbclid=abc",
        "https://shop.example/?fbclid=" + "a" * 501,
    ],
)
def test_fbclid_from_url_refuses(url: str | None) -> None:
    assert fbclid_from_url(url) is None


# ---------------------------------------------------------------------------------------------
# resolve_identity: _fbp / _fbc


def test_new_visitor_gets_a_fresh_fbp_cookie() -> None:
    identity = identify()
    assert identity.fbp is not None
    assert NEW_FBP_RE.match(identity.fbp), identity.fbp
    assert identity.fbp.split(".")[2] == str(NOW_MS)
    assert 0 <= int(identity.fbp.split(".")[3]) < 2**31
    assert identity.fbc is None
    cookies = by_name(identity)
    assert cookies["_fbp"].value == identity.fbp
    assert "_fbc" not in cookies


def test_new_visitor_with_fbclid_gets_fbc_with_millisecond_time() -> None:
    identity = identify(page_url=f"https://www.shop.example/?fbclid={FBCLID}")
    assert identity.fbc == f"fb.1.{NOW_MS}.{FBCLID}"
    assert re.fullmatch(r"fb\.1\.\d{13}\." + re.escape(FBCLID), identity.fbc)
    assert by_name(identity)["_fbc"].value == identity.fbc


def test_fbp_and_fbc_use_the_scope_subdomain_index() -> None:
    scope = CookieScope(domain="example.co.uk", subdomain_index=2)
    identity = identify(page_url=f"https://www.example.co.uk/?fbclid={FBCLID}", scope=scope)
    assert identity.fbp is not None and identity.fbp.startswith("fb.2.")
    assert identity.fbc == f"fb.2.{NOW_MS}.{FBCLID}"


def test_fbp_is_random_per_new_visitor() -> None:
    values = {identify().fbp for _ in range(20)}
    assert len(values) > 1


@pytest.mark.parametrize(
    ("fbp", "fbc"),
    [
        ("fb.1.1697698245670.1234567890", "fb.1.1697698245670.IwAR2F4-Ab_cD3fG"),
        ("fb.1.1697698245670.1234567890.AQ", "fb.1.1697698245670.IwAR2F4-Ab_cD3fG.AQ"),
        ("fb.2.1697698245670.99.Ab-cD_12", "fb.2.1697698245670.IwAR2F4-Ab_cD3fG.Ab-cD_12"),
    ],
)
def test_valid_cookies_are_kept_byte_for_byte(fbp: str, fbc: str) -> None:
    identity = identify({"_fbp": fbp, "_fbc": fbc})
    assert identity.fbp == fbp
    assert identity.fbc == fbc
    cookies = by_name(identity)
    assert cookies["_fbp"].value == fbp  # refreshed for a rolling expiry, value unchanged
    assert cookies["_fbc"].value == fbc


@pytest.mark.parametrize(
    "old_fbc",
    [
        f"fb.1.{OLD_MS}.{FBCLID}",
        f"fb.1.{OLD_MS}.{FBCLID}.AQ",  # the appendix must not hide the click id
    ],
)
def test_same_fbclid_again_keeps_the_old_fbc(old_fbc: str) -> None:
    identity = identify({"_fbc": old_fbc}, page_url=f"https://www.shop.example/?fbclid={FBCLID}")
    assert identity.fbc == old_fbc
    assert str(OLD_MS) in identity.fbc
    assert by_name(identity)["_fbc"].value == old_fbc


def test_different_fbclid_replaces_the_fbc() -> None:
    identity = identify(
        {"_fbc": f"fb.1.{OLD_MS}.{FBCLID}.AQ"},
        page_url="https://www.shop.example/?fbclid=NewClick_42",
    )
    assert identity.fbc == f"fb.1.{NOW_MS}.NewClick_42"
    assert by_name(identity)["_fbc"].value == identity.fbc


def test_fbclid_differing_only_in_case_is_a_different_click() -> None:
    identity = identify(
        {"_fbc": f"fb.1.{OLD_MS}.abcdef"}, page_url="https://www.shop.example/?fbclid=ABCDEF"
    )
    assert identity.fbc == f"fb.1.{NOW_MS}.ABCDEF"


@pytest.mark.parametrize(
    "bad",
    [
        "fb.1.1697698245670.",
        "fb.1.1697698245670",
        "fb.1..123",
        "fb.1.1697698245670.abc def",
        "fb.1.1697698245670.IwAR;x=1",
        "xx.1.1697698245670.123",
        "fb.1.1697698245670.123\r\nSet-Cookie: a=b",
        "fb.1.1697698245670.123\n",  # a trailing newline must not slip past the pattern
        "",
    ],
)
def test_malformed_cookies_are_neither_returned_nor_written_back(bad: str) -> None:
    identity = identify({"_fbp": bad, "_fbc": bad})
    assert identity.fbc is None
    assert identity.fbp != bad
    cookies = by_name(identity)
    assert "_fbc" not in cookies
    assert all(cookie.value != bad for cookie in identity.cookies)
    # a fresh _fbp replaces the broken one
    assert identity.fbp is not None and NEW_FBP_RE.match(identity.fbp)
    assert cookies["_fbp"].value == identity.fbp


def test_fbclid_is_taken_from_the_referrer_when_the_page_has_none() -> None:
    identity = identify(
        page_url="https://www.shop.example/checkout",
        referrer_url=f"https://www.shop.example/landing?fbclid={FBCLID}",
    )
    assert identity.fbc == f"fb.1.{NOW_MS}.{FBCLID}"


def test_page_fbclid_wins_over_referrer_fbclid() -> None:
    identity = identify(
        page_url="https://www.shop.example/?fbclid=FromPage",
        referrer_url="https://www.shop.example/?fbclid=FromReferrer",
    )
    assert identity.fbc == f"fb.1.{NOW_MS}.FromPage"


def test_ad_storage_denied_reads_and_sets_no_meta_cookie() -> None:
    identity = identify(
        {"_fbp": "fb.1.1697698245670.1234567890", "_fbc": f"fb.1.{OLD_MS}.{FBCLID}"},
        page_url="https://www.shop.example/?fbclid=NewClick",
        ad_storage=False,
    )
    assert identity.fbp is None
    assert identity.fbc is None
    names = {c.name for c in identity.cookies}
    assert "_fbp" not in names and "_fbc" not in names
    assert all("NewClick" not in c.value for c in identity.cookies)
    # analytics is still granted: the visitor id is unaffected
    assert identity.visitor_id is not None


def test_analytics_storage_denied_sets_no_visitor_id() -> None:
    identity = identify(analytics_storage=False)
    assert identity.visitor_id is None
    names = {c.name for c in identity.cookies}
    assert not any(name.endswith("tsid") for name in names)
    assert "_fbp" in names  # ad storage still granted


def test_no_scope_sets_no_cookies_and_mints_no_fbp() -> None:
    identity = identify(page_url=f"https://www.shop.example/?fbclid={FBCLID}", scope=None)
    assert identity.cookies == ()
    assert identity.fbp is None
    assert identity.visitor_id is None
    # a value built without a cookie uses subdomain index 1
    assert identity.fbc == f"fb.1.{NOW_MS}.{FBCLID}"


def test_no_scope_still_reads_valid_cookies_without_writing_them() -> None:
    fbp = "fb.1.1697698245670.1234567890"
    identity = identify({"_fbp": fbp}, scope=None)
    assert identity.fbp == fbp
    assert identity.cookies == ()


def test_meta_cookies_are_script_readable_with_the_given_max_age_and_domain() -> None:
    identity = identify(page_url=f"https://www.shop.example/?fbclid={FBCLID}", max_age=12345)
    cookies = by_name(identity)
    for name in ("_fbp", "_fbc"):
        assert cookies[name].httponly is False
        assert cookies[name].max_age == 12345
        assert cookies[name].domain == "shop.example"


# ---------------------------------------------------------------------------------------------
# resolve_identity: the signed visitor id


def test_visitor_id_cookie_with_domain_is_secure_prefixed_and_httponly() -> None:
    identity = identify(max_age=777)
    cookie = by_name(identity)["__Secure-tsid"]
    assert cookie.httponly is True
    assert cookie.domain == "shop.example"
    assert cookie.max_age == 777
    assert identity.visitor_id is not None
    assert re.fullmatch(r"[0-9a-f]{32}", identity.visitor_id)
    assert signer().unsign(cookie.value).decode() == identity.visitor_id
    assert "__Host-tsid" not in by_name(identity)


def test_visitor_id_cookie_host_only_is_host_prefixed() -> None:
    identity = identify(scope=HOST_ONLY)
    cookies = by_name(identity)
    assert "__Secure-tsid" not in cookies
    cookie = cookies["__Host-tsid"]
    assert cookie.domain is None
    assert cookie.httponly is True
    assert signer().unsign(cookie.value).decode() == identity.visitor_id
    # meta cookies are host-only too, with index 0 for localhost
    assert cookies["_fbp"].domain is None
    assert identity.fbp is not None and identity.fbp.startswith("fb.0.")


def test_good_visitor_id_signature_is_kept() -> None:
    first = identify()
    cookie = by_name(first)["__Secure-tsid"]
    again = identify({"__Secure-tsid": cookie.value})
    assert again.visitor_id == first.visitor_id
    assert by_name(again)["__Secure-tsid"].value == cookie.value


def test_visitor_id_is_new_for_each_new_visitor() -> None:
    assert identify().visitor_id != identify().visitor_id


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda good, vid: vid, id="unsigned"),
        # a character inside the signature: the last base64 character carries unused low bits
        pytest.param(
            lambda good, vid: good[:-5] + ("A" if good[-5] != "A" else "Q") + good[-4:],
            id="bad-sig",
        ),
        pytest.param(lambda good, vid: "0" * 32 + good[32:], id="swapped-id"),
        pytest.param(
            lambda good, vid: (
                Signer("another-key-0123456789abcdef", salt=VISITOR_ID_SALT).sign(vid).decode()
            ),
            id="other-key",
        ),
        pytest.param(lambda good, vid: signer().sign("not-hex-id").decode(), id="bad-id-shape"),
        pytest.param(lambda good, vid: "x" * 300, id="too-long"),
        pytest.param(lambda good, vid: "", id="empty"),
    ],
)
def test_forged_or_bad_visitor_id_is_replaced_by_a_new_one(forge) -> None:  # type: ignore[no-untyped-def]
    first = identify()
    good = by_name(first)["__Secure-tsid"].value
    assert first.visitor_id is not None
    forged = forge(good, first.visitor_id)
    identity = identify({"__Secure-tsid": forged})
    assert identity.visitor_id is not None
    assert re.fullmatch(r"[0-9a-f]{32}", identity.visitor_id)
    assert identity.visitor_id != first.visitor_id
    cookie = by_name(identity)["__Secure-tsid"]
    assert cookie.value != forged
    assert signer().unsign(cookie.value).decode() == identity.visitor_id


def test_visitor_id_from_the_other_prefix_is_not_read() -> None:
    first = identify(scope=HOST_ONLY)
    host_cookie = by_name(first)["__Host-tsid"].value
    identity = identify({"__Host-tsid": host_cookie}, scope=SHOP)
    assert identity.visitor_id != first.visitor_id


def test_duplicate_cookies_keep_the_first_valid_value() -> None:
    from tagserver.identity import parse_cookie_header

    cookies = parse_cookie_header(
        "_fbp=garbage; _fbp=fb.1.1657051589577.1088522659; _fbp=fb.1.1657051589577.42"
    )
    identity = resolve_identity(
        cookies,
        page_url=None,
        referrer_url=None,
        scope=CookieScope(domain="shop.example", subdomain_index=1),
        ad_storage=True,
        analytics_storage=False,
        signer=Signer("k" * 32, salt="t"),
        now_ms=1_700_000_000_000,
        max_age=100,
    )
    assert identity.fbp == "fb.1.1657051589577.1088522659"


def test_visitor_signer_signs_like_itsdangerous_and_keeps_rotation() -> None:
    from itsdangerous import Signer

    from tagserver.identity import VISITOR_ID_SALT, VisitorSigner

    old, new = "old-key-0123456789abcdef", "new-key-0123456789abcdef"
    plain = Signer([old, new], salt=VISITOR_ID_SALT)
    cached = VisitorSigner([old, new], salt=VISITOR_ID_SALT)
    for value in ("a" * 32, "b" * 32):
        assert cached.sign(value) == plain.sign(value)
        assert cached.sign(value) == plain.sign(value)  # second call: the cached key
    signed_with_old = Signer(old, salt=VISITOR_ID_SALT).sign("c" * 32)
    assert cached.unsign(signed_with_old) == b"c" * 32  # an older key still verifies
    assert not VisitorSigner(new, salt=VISITOR_ID_SALT).validate(signed_with_old)
    assert not cached.validate(signed_with_old[:-1] + b"x")


# ---------------------------------------------------------------------------------------------
# VisitorSigner's fast paths give what the plain Signer gives


def test_visitor_signer_sign_text_and_verify_text_match_itsdangerous() -> None:
    from tagserver.identity import VisitorSigner

    for key in ("k", "unit-test-signing-key-0123456789", "x" * 200, ["old-key", "new-key"]):
        plain = Signer(key, salt=VISITOR_ID_SALT)
        fast = VisitorSigner(key, salt=VISITOR_ID_SALT)
        for value in ("0" * 32, "0123456789abcdef0123456789abcdef", "", "a.b"):
            signed = plain.sign(value).decode()
            assert fast.sign_text(value) == signed
            assert fast.sign(value).decode() == signed
            assert fast.verify_text(signed) == value
            assert fast.unsign(signed).decode() == value
            assert fast.verify_text(signed + "=") is None  # not canonical: unsign decides
            assert fast.verify_text(signed[:-1] + ("A" if signed[-1] != "A" else "B")) is None
            assert fast.verify_text(value) is None or "." in value
    assert VisitorSigner("k", salt=VISITOR_ID_SALT).verify_text("é" * 32 + ".abc") is None


def test_visitor_signer_signs_alike_with_either_sha1(monkeypatch: pytest.MonkeyPatch) -> None:
    # the HMAC states come from CPython's built-in SHA-1 when the build has it, else OpenSSL's
    # hashlib.sha1: the same signatures (those of itsdangerous' Signer) either way
    import hashlib

    from tagserver import identity

    for sha1 in (identity._SHA1, hashlib.sha1):
        monkeypatch.setattr(identity, "_SHA1", sha1)
        for key in ("k", "x" * 200, ["old-key", "new-key"]):
            plain = Signer(key, salt=VISITOR_ID_SALT)
            fast = identity.VisitorSigner(key, salt=VISITOR_ID_SALT)
            for value in ("0" * 32, "0123456789abcdef0123456789abcdef", ""):
                assert fast.sign_text(value) == plain.sign(value).decode()
                assert fast.get_signature(value) == plain.get_signature(value)
                assert fast.verify_signature(value, plain.get_signature(value))


def visitor_signer(key: str = "unit-test-signing-key-0123456789") -> Signer:
    from tagserver.identity import VisitorSigner

    return VisitorSigner(key, salt=VISITOR_ID_SALT)


def test_returning_visitor_with_visitor_signer_keeps_id_and_cookie() -> None:
    first = identify(sign=visitor_signer())
    cookie = by_name(first)["__Secure-tsid"].value
    assert signer().unsign(cookie).decode() == first.visitor_id
    again = identify({"__Secure-tsid": cookie}, sign=visitor_signer())
    assert again.visitor_id == first.visitor_id
    assert by_name(again)["__Secure-tsid"].value == cookie


def test_visitor_signer_non_canonical_signature_is_kept_and_reissued_canonical() -> None:
    # base64_decode accepts the padding itsdangerous strips: the id verifies, the cookie set
    # again is the canonical one (as with the plain Signer)
    first = identify(sign=visitor_signer())
    cookie = by_name(first)["__Secure-tsid"].value
    for sign in (signer(), visitor_signer()):
        again = identify({"__Secure-tsid": cookie + "="}, sign=sign)
        assert again.visitor_id == first.visitor_id
        assert by_name(again)["__Secure-tsid"].value == cookie


def test_visitor_signer_older_key_is_read_and_resigned_with_the_newest() -> None:
    from tagserver.identity import VisitorSigner

    old = Signer("old-key-0123456789abcdef", salt=VISITOR_ID_SALT).sign("c" * 32).decode()
    rotated = VisitorSigner(["old-key-0123456789abcdef", "new-key-0123456789abcdef"],
                            salt=VISITOR_ID_SALT)  # fmt: skip
    identity = identify({"__Secure-tsid": old}, sign=rotated)
    assert identity.visitor_id == "c" * 32
    new = Signer("new-key-0123456789abcdef", salt=VISITOR_ID_SALT).sign("c" * 32).decode()
    assert by_name(identity)["__Secure-tsid"].value == new


def test_visitor_signer_first_valid_of_duplicate_visitor_cookies_wins() -> None:
    sign = visitor_signer()
    good_a = sign.sign("a" * 32).decode()
    good_b = sign.sign("b" * 32).decode()
    cookies = {"__Secure-tsid": ["garbage", "", "x" * 300, good_b, good_a]}
    for chosen in (sign, signer()):
        identity = resolve_identity(cookies, page_url=None, referrer_url=None, scope=SHOP,
                                    ad_storage=False, analytics_storage=True, signer=chosen,
                                    now_ms=NOW_MS, max_age=MAX_AGE)  # fmt: skip
        assert identity.visitor_id == "b" * 32
        assert identity.cookies == (CookieSpec("__Secure-tsid", good_b, MAX_AGE, "shop.example",
                                               True),)  # fmt: skip


@pytest.mark.parametrize(
    "forge",
    [
        lambda good, vid: vid,
        lambda good, vid: good[:-5] + ("A" if good[-5] != "A" else "Q") + good[-4:],
        lambda good, vid: "0" * 32 + good[32:],
        lambda good, vid: visitor_signer("another-key-0123456789abcdef").sign(vid).decode(),
        lambda good, vid: visitor_signer().sign("not-hex-id").decode(),
        lambda good, vid: visitor_signer().sign("A" * 32).decode(),  # upper-case hex
        lambda good, vid: "x" * 300,
    ],
    ids=["unsigned", "bad-sig", "swapped-id", "other-key", "bad-id-shape", "upper-hex",
         "too-long"],
)
def test_visitor_signer_forged_visitor_id_is_replaced(forge) -> None:  # type: ignore[no-untyped-def]
    first = identify(sign=visitor_signer())
    good = by_name(first)["__Secure-tsid"].value
    forged = forge(good, first.visitor_id)
    identity = identify({"__Secure-tsid": forged}, sign=visitor_signer())
    assert identity.visitor_id is not None and identity.visitor_id != first.visitor_id
    assert re.fullmatch(r"[0-9a-f]{32}", identity.visitor_id)
    cookie = by_name(identity)["__Secure-tsid"]
    assert cookie.value != forged
    assert signer().unsign(cookie.value).decode() == identity.visitor_id


def test_single_string_cookie_values_are_checked_like_lists() -> None:
    fbp = "fb.1.1657051589577.1088522659"
    assert identify({"_fbp": fbp}).fbp == fbp
    assert identify({"_fbp": "garbage"}).fbp != "garbage"


@pytest.mark.parametrize(
    "variant",
    [
        lambda good: good,
        lambda good: good + "=",
        lambda good: good + "é",  # itsdangerous drops non-ASCII from a signature: accepted
        lambda good: good[:-1],
        lambda good: good.replace(".", ". "),
        lambda good: " " + good,
        lambda good: good.upper(),
        lambda good: good + ".x",
    ],
    ids=["as-is", "padded", "non-ascii-tail", "cut", "space-in-sig", "space-before", "upper",
         "second-dot"],
)
def test_visitor_signer_reads_what_the_plain_signer_reads(variant) -> None:  # type: ignore[no-untyped-def]
    good = visitor_signer().sign("0123456789abcdef0123456789abcdef").decode()
    cookie = variant(good)
    plain = identify({"__Secure-tsid": cookie}, sign=signer())
    fast = identify({"__Secure-tsid": cookie}, sign=visitor_signer())
    kept = plain.visitor_id == "0123456789abcdef0123456789abcdef"
    assert (fast.visitor_id == "0123456789abcdef0123456789abcdef") is kept
    if kept:
        assert by_name(fast)["__Secure-tsid"] == by_name(plain)["__Secure-tsid"]
        assert by_name(fast)["__Secure-tsid"].value == good


def test_identity_cookies_are_parse_cookie_headers_identity_values() -> None:
    import random

    from tagserver.identity import IDENTITY_COOKIES, identity_cookies, parse_cookie_header

    rng = random.Random(3)
    atoms = ["_fbp", "_fbc", "__Host-tsid", "__Secure-tsid", "_fb", "tsid", "x_fbp", "_ga", "=",
             ";", " ", "\t", '"', "\x85", "a", "fb.1.2.3"]  # fmt: skip
    for _ in range(5000):
        header = "".join(rng.choice(atoms) for _ in range(rng.randrange(12)))
        expected = {k: v for k, v in parse_cookie_header(header).items() if k in IDENTITY_COOKIES}
        assert identity_cookies(header) == expected, header


def test_random_hex32_is_32_hex_digits_never_repeated() -> None:
    from tagserver.identity import random_hex32

    drawn = [random_hex32() for _ in range(1000)]  # several buffers
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in drawn)
    assert len(set(drawn)) == len(drawn)


def test_visitor_signer_remembers_only_what_it_signed_or_verified() -> None:
    from tagserver.identity import VisitorSigner

    sign = VisitorSigner("unit-test-signing-key-0123456789", salt=VISITOR_ID_SALT)
    other = VisitorSigner("another-key-0123456789abcdef", salt=VISITOR_ID_SALT)
    signed = sign.sign_text("a" * 32)
    assert sign.verify_text(signed) == "a" * 32  # remembered
    assert other.verify_text(signed) is None  # another key's signer never saw it
    assert other.verify_text(signed) is None
    forged = signed[:-1] + ("A" if signed[-1] != "A" else "B")
    assert sign.verify_text(forged) is None
    assert sign.verify_text(forged) is None
    fresh = VisitorSigner("unit-test-signing-key-0123456789", salt=VISITOR_ID_SALT)
    assert fresh.verify_text(signed) == "a" * 32  # checked, then remembered
    assert fresh.verify_text(signed) == "a" * 32


def test_cookie_text_joins_every_cookie_header() -> None:
    from tagserver.identity import cookie_text

    assert cookie_text([(b"host", b"x"), (b"cookie", b"a=1")]) == "a=1"
    assert cookie_text([(b"cookie", b"a=1"), (b"accept", b"*/*"), (b"cookie", b"b=\xe9")]) == (
        "a=1; b=\u00e9"
    )
    assert cookie_text([(b"accept", b"*/*")]) == ""
    three = [(b"cookie", b"a=1"), (b"cookie", b""), (b"x", b"y"), (b"cookie", b"c=3")]
    assert cookie_text(three) == "a=1; ; c=3"
    assert cookie_text(iter(three)) == "a=1; ; c=3"  # read in one pass
    assert cookie_text([(b"cookie", b"")]) == ""
