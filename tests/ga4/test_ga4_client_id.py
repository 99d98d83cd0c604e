"""tagserver.ga4.client_id: the server-managed ``FPID`` client id and its migration."""

from __future__ import annotations

import base64
from urllib.parse import quote, unquote

import pytest

from tagserver.ga4.client_id import FPID_RE, new_fpid, resolve_server_client_id

NOW = 1_760_000_000.0


def test_new_fpid_shape() -> None:
    value = new_fpid(1_700_000_000)
    match = FPID_RE.match(value)
    assert match is not None
    token, timestamp = match.group(1).rsplit(".", 1)
    assert len(base64.b64decode(token)) == 32 and timestamp == "1700000000"
    assert new_fpid(1) != new_fpid(1)


def test_existing_cookie_is_kept() -> None:
    fpid = new_fpid(1_600_000_000)
    for stored in (quote(fpid, safe="."), fpid):  # sGTM's encoded form, or raw
        result = resolve_server_client_id({"FPID": stored}, js_client_id="1.2", now=NOW)
        assert result.origin == "fpid"
        assert result.client_id == fpid.removeprefix("FPID2.2.")
        assert unquote(result.cookie) == fpid
        assert "/" not in result.cookie and "=" not in result.cookie and "+" not in result.cookie


def test_migration_keeps_the_ga_timestamp() -> None:
    result = resolve_server_client_id(
        {"_ga": "GA1.1.1234567890.1700000000"}, js_client_id="999.1650000000", now=NOW)
    assert result.origin == "_ga" and result.client_id.endswith(".1700000000")


def test_migration_from_cid_then_new() -> None:
    from_cid = resolve_server_client_id({}, js_client_id="999.1650000000", now=NOW)
    assert from_cid.origin == "cid" and from_cid.client_id.endswith(".1650000000")
    new = resolve_server_client_id({}, js_client_id=None, now=NOW)
    assert new.origin == "new" and new.client_id.endswith(f".{int(NOW)}")


@pytest.mark.parametrize(
    "cookies",
    [
        {"FPID": "FPID2.2.short.1700000000"},
        {"FPID": "FPID2.2." + "A" * 43 + "=.170000000000000"},
        {"FPID": "junk\r\nSet-Cookie: x=1"},
        {"_ga": "GA1.1.1.99999999999"},  # a timestamp far in the future is not believed
        {"_ga": "GA2.1.1.1700000000"},
    ],
)
def test_malformed_values_are_replaced_never_echoed(cookies: dict[str, str]) -> None:
    result = resolve_server_client_id(cookies, js_client_id=None, now=NOW)
    assert result.origin == "new"
    assert FPID_RE.match(unquote(result.cookie))
