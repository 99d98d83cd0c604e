"""The Set-Cookie parser used by the end-to-end tests."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.cookies import cookies_by_name, parse_set_cookie, parse_set_cookies


def test_full_header() -> None:
    cookie = parse_set_cookie(
        "_fbc=fb.1.1697698245670.IwAR2xYz-_AbC; Domain=shop.example; Path=/; "
        "Max-Age=7776000; Expires=Tue, 27 Feb 2024 10:00:00 GMT; Secure; SameSite=Lax"
    )
    assert cookie["name"] == "_fbc"
    assert cookie["value"] == "fb.1.1697698245670.IwAR2xYz-_AbC"
    assert cookie["domain"] == "shop.example"
    assert cookie["path"] == "/"
    assert cookie["max_age"] == 7776000
    assert cookie["expires"] == "Tue, 27 Feb 2024 10:00:00 GMT"
    assert cookie["secure"] is True
    assert cookie["httponly"] is False
    assert cookie["samesite"] == "lax"


def test_attribute_names_are_case_insensitive_and_flags_detected() -> None:
    cookie = parse_set_cookie("sid=abc; HTTPONLY; secure; samesite=Strict; DOMAIN=.Shop.Example")
    assert cookie["httponly"] is True
    assert cookie["secure"] is True
    assert cookie["samesite"] == "strict"
    assert cookie["domain"] == "shop.example"
    assert cookie["path"] is None
    assert cookie["max_age"] is None


def test_missing_attributes_are_none_or_false() -> None:
    cookie = parse_set_cookie("a=b")
    assert (cookie["domain"], cookie["path"], cookie["samesite"]) == (None, None, None)
    assert (cookie["secure"], cookie["httponly"]) == (False, False)


def test_value_kept_byte_for_byte_with_equals_and_quotes() -> None:
    assert parse_set_cookie("t=a=b==; Path=/")["value"] == "a=b=="
    assert parse_set_cookie('q="quoted value"')["value"] == '"quoted value"'
    assert parse_set_cookie("e=; Max-Age=0")["value"] == ""
    assert parse_set_cookie("e=; Max-Age=0")["max_age"] == 0


def test_non_numeric_max_age_is_none() -> None:
    assert parse_set_cookie("a=b; Max-Age=soon")["max_age"] is None


@pytest.mark.parametrize("header", ["novalue", "=value", "; Path=/"])
def test_header_without_a_pair_is_an_error(header: str) -> None:
    with pytest.raises(ValueError):
        parse_set_cookie(header)


def test_parses_every_header_of_a_response() -> None:
    response = httpx.Response(
        200,
        headers=[
            ("set-cookie", "_fbp=fb.1.1.2; Path=/"),
            ("set-cookie", "_fbc=fb.1.1.x; Path=/"),
            ("set-cookie", "_fbp=fb.1.1.3; Path=/"),
        ],
    )
    cookies = parse_set_cookies(response.headers.get_list("set-cookie"))
    assert [c["name"] for c in cookies] == ["_fbp", "_fbc", "_fbp"]
    grouped = cookies_by_name(cookies)
    assert [c["value"] for c in grouped["_fbp"]] == ["fb.1.1.2", "fb.1.1.3"]
