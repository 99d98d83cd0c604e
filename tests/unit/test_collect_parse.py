"""tagserver.clients.collect: parsing one ``POST /e`` body."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagserver.clients.collect import CollectHit, parse_collect_body
from tagserver.consent import GRANTED, Consent
from tagserver.exceptions import HitRejected

NOW = 1_760_000_000.0


def body(**fields: Any) -> bytes:
    data: dict[str, Any] = {"event_name": "Purchase", **fields}
    return json.dumps(data).encode("utf-8")


def parse(raw: bytes) -> CollectHit:
    return parse_collect_body(raw, now=NOW)


def rejected(raw: bytes) -> HitRejected:
    with pytest.raises(HitRejected) as info:
        parse(raw)
    assert info.value.status == 400
    return info.value


def fields_of(exc: HitRejected) -> list[str]:
    return [error["field"] for error in exc.errors]


# ---------------------------------------------------------------------------------------------
# a good hit


def test_full_body_is_parsed() -> None:
    hit = parse(
        body(
            event_name="  Purchase ",
            event_id="evt-1",
            event_time=1_759_999_000,
            event_source_url="https://www.shop.example/thanks?order=1&fbclid=AbC",
            referrer_url="https://www.shop.example/checkout",
            custom_data={"value": 29.9, "currency": "EUR", "content_ids": ["04639"]},
            user_data={"em": "jane@example.com", "ph": ["+33 6 12 34 56 78"], "zp": 75001},
            consent={"ad_storage": "granted", "ad_user_data": "denied"},
        )
    )
    assert hit.event_name == "Purchase"
    assert hit.event_id == "evt-1"
    assert hit.event_time == 1_759_999_000
    assert hit.event_source_url == "https://www.shop.example/thanks?order=1&fbclid=AbC"
    assert hit.referrer_url == "https://www.shop.example/checkout"
    assert hit.custom_data == {"value": 29.9, "currency": "EUR", "content_ids": ["04639"]}
    assert hit.user_data == {"em": "jane@example.com", "ph": ["+33 6 12 34 56 78"], "zp": 75001}
    assert hit.consent == Consent(ad_user_data=False)


def test_minimal_body_gets_defaults() -> None:
    hit = parse(b'{"event_name": "PageView"}')
    assert hit.event_name == "PageView"
    assert hit.event_id is None
    assert hit.event_time == int(NOW)
    assert hit.event_source_url is None
    assert hit.referrer_url is None
    assert hit.custom_data == {}
    assert hit.user_data == {}
    assert hit.consent == GRANTED


@pytest.mark.parametrize("name", [None, "", "   ", 5, ["Purchase"], "a" * 101, "Pur\nchase"])
def test_bad_event_name_is_refused(name: object) -> None:
    exc = rejected(body(event_name=name))
    assert fields_of(exc) == ["event_name"]


# ---------------------------------------------------------------------------------------------
# event_id


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("000001", "000001"),
        ("evt-1", "evt-1"),
        ("purchase-ORDER-42", "purchase-ORDER-42"),
        (" padded ", " padded "),
        ("Ünïcødé-id", "Ünïcødé-id"),
        (42, "42"),
        (0, "0"),
        (12345678901234567890, "12345678901234567890"),
        ("x" * 200, "x" * 200),
    ],
)
def test_event_id_is_kept_byte_for_byte(raw: object, expected: str) -> None:
    hit = parse(body(event_id=raw))
    assert hit.event_id == expected
    assert isinstance(hit.event_id, str)


@pytest.mark.parametrize("raw", [1.5, 1.0, True, False, ["a"], {"id": "a"}, "", "x" * 201, "a\nb"])
def test_bad_event_id_is_refused(raw: object) -> None:
    exc = rejected(body(event_id=raw))
    assert fields_of(exc) == ["event_id"]


def test_event_id_null_means_none() -> None:
    assert parse(body(event_id=None)).event_id is None


# ---------------------------------------------------------------------------------------------
# event_time


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1_759_999_000, 1_759_999_000),
        (1_759_999_000_123, 1_759_999_000),  # 13 digits: milliseconds
        (1_759_999_000.9, 1_759_999_000),
        ("1759999000", 1_759_999_000),
        ("1759999000123", 1_759_999_000),
        (int(NOW) + 60, int(NOW) + 60),  # 60 s ahead is still believed
        (int(NOW) + 61, int(NOW)),  # further ahead: the receive time
        (int(NOW) + 86_400, int(NOW)),
        ((int(NOW) + 3600) * 1000, int(NOW)),  # future in milliseconds too
        (None, int(NOW)),
    ],
)
def test_event_time(raw: object, expected: int) -> None:
    hit = parse(body(event_time=raw))
    assert hit.event_time == expected
    assert isinstance(hit.event_time, int)


@pytest.mark.parametrize(
    "raw", [-1, -1_759_999_000, 0, "-5", "soon", "", "12a", "1.5e9", True, [1], {"t": 1}]
)
def test_bad_event_time_is_refused(raw: object) -> None:
    exc = rejected(body(event_time=raw))
    assert fields_of(exc) == ["event_time"]


def test_event_time_nan_is_refused() -> None:
    # Python's json module accepts the NaN literal: the body is refused before it can become a time
    exc = rejected(b'{"event_name": "Purchase", "event_time": NaN}')
    assert fields_of(exc) == ["body"]
    assert "NaN" in exc.errors[0]["message"]


# ---------------------------------------------------------------------------------------------
# the body itself


@pytest.mark.parametrize(
    ("raw", "location"),
    [
        (b'{"event_name": "Purchase",}', "line 1 column 27"),
        (b'{\n  "event_name": "Purchase"\n  "event_id": "x"\n}', "line 3 column 3"),
        (b"", "line 1 column 1"),
        (b"{", "line 1 column 2"),
    ],
)
def test_malformed_json_is_a_400_with_line_and_column(raw: bytes, location: str) -> None:
    exc = rejected(raw)
    assert exc.error == "body is not valid JSON"
    assert fields_of(exc) == ["body"]
    assert location in exc.errors[0]["message"]


@pytest.mark.parametrize("raw", [b"[]", b'"Purchase"', b"42", b"null", b"true", b'[{"a": 1}]'])
def test_non_object_body_is_refused(raw: bytes) -> None:
    exc = rejected(raw)
    assert fields_of(exc) == ["body"]
    assert "object" in exc.error


@pytest.mark.parametrize(
    "raw", [b'{"event_name": "Caf\xe9"}', b"\xff\xfe{}", b'{"event_name": "\xc3"}']
)
def test_invalid_utf8_is_refused(raw: bytes) -> None:
    exc = rejected(raw)
    assert exc.error == "body is not valid UTF-8"
    assert fields_of(exc) == ["body"]


def test_utf8_bom_is_tolerated() -> None:
    hit = parse(b"\xef\xbb\xbf" + body(event_id="000001"))
    assert hit.event_name == "Purchase"
    assert hit.event_id == "000001"


def test_deep_nesting_is_refused_not_crashing() -> None:
    raw = b'{"event_name": "x", "custom_data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    exc = rejected(raw)
    assert fields_of(exc) == ["body"]


# ---------------------------------------------------------------------------------------------
# wrong types, all reported at once


def test_every_wrong_field_is_listed_at_once() -> None:
    exc = rejected(
        body(
            event_name="",
            event_id=1.5,
            event_time="later",
            event_source_url=5,
            referrer_url="ftp://shop.example/",
            custom_data=["value", 1],
            user_data="jane@example.com",
            consent="yes",
        )
    )
    assert exc.error == "invalid event"
    fields = fields_of(exc)
    assert sorted(fields) == sorted(
        [
            "event_name",
            "event_id",
            "event_time",
            "event_source_url",
            "referrer_url",
            "custom_data",
            "user_data",
            "consent",
        ]
    )
    assert len(fields) == len(set(fields)), "one entry per bad field"
    for error in exc.errors:
        assert set(error) == {"field", "message"}
        assert error["message"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("custom_data", []),
        ("custom_data", "value=1"),
        ("custom_data", 1),
        ("user_data", ["jane@example.com"]),
        ("user_data", True),
        ("consent", ["ad_storage"]),
        ("consent", "granted"),
        ("event_source_url", {"href": "https://x.example/"}),
        ("event_source_url", "javascript:alert(1)"),
        ("event_source_url", "/relative/path"),
        ("referrer_url", 42),
        ("event_source_url", "https://x.example/" + "a" * 5000),
    ],
)
def test_wrong_type_is_refused_by_name(key: str, value: object) -> None:
    exc = rejected(body(**{key: value}))
    assert fields_of(exc) == [key]


def test_bad_user_data_values_are_each_listed() -> None:
    exc = rejected(
        body(user_data={"em": {"x": 1}, "ph": [["nested"]], "fn": True, "ln": "ok", "zp": 75001})
    )
    assert sorted(fields_of(exc)) == ["user_data.em", "user_data.fn", "user_data.ph"]


def test_bad_consent_entries_are_each_listed() -> None:
    exc = rejected(
        body(consent={"ad_storage": "yes", "ads": "granted", "analytics_storage": "denied"})
    )
    assert sorted(fields_of(exc)) == ["consent.ad_storage", "consent.ads"]


def test_consent_and_other_errors_are_combined() -> None:
    exc = rejected(body(event_id=[1], consent={"ad_storage": True}))
    assert sorted(fields_of(exc)) == ["consent.ad_storage", "event_id"]


def test_empty_urls_are_absent() -> None:
    hit = parse(body(event_source_url="", referrer_url=None))
    assert hit.event_source_url is None
    assert hit.referrer_url is None


# ---------------------------------------------------------------------------------------------
# browser-sent test_event_code


def test_test_event_code_in_the_body_is_ignored() -> None:
    hit = parse(body(test_event_code="TEST12345", event_id="e1"))
    assert hit.event_id == "e1"
    names = {f.name for f in dataclasses.fields(hit)}
    assert "test_event_code" not in names
    assert "TEST12345" not in repr(hit)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"event_name": "A", "event_source_url": "https://x/\\udcff"}', "event_source_url"),
        (b'{"event_name": "A", "custom_data": {"k": ["\\ud800"]}}', "custom_data.k.0"),
        (b'{"event_name": "A", "custom_data": {"v": 1e400}}', "custom_data.v"),
        (b'{"event_name": "A", "custom_data": {"v": NaN}}', "body"),
        (b'{"event_name": "A", "custom_data": {"v": -Infinity}}', "body"),
        (b'{"event_name": "A", "custom_data": {"v": ' + b"9" * 5000 + b"}}", "body"),
        (b'{"event_name": "A", "custom_data": ' + b"[" * 20 + b"]" * 20 + b"}", None),
    ],
)
def test_values_no_utf8_json_request_can_carry_are_refused(body: bytes, field: str | None) -> None:
    with pytest.raises(HitRejected) as info:
        parse_collect_body(body, now=NOW)
    assert info.value.status == 400
    if field is not None:
        assert [e["field"] for e in info.value.errors] == [field]


@pytest.mark.parametrize("event_id", ["a\u00a0b", "x\u200by", "\u202eabc", "日本-1", "a b"])
def test_event_ids_with_unusual_but_printable_text_are_kept_exactly(event_id: str) -> None:
    body = json.dumps({"event_name": "A", "event_id": event_id}).encode()
    assert parse_collect_body(body, now=NOW).event_id == event_id


@pytest.mark.parametrize("event_id", ["a\tb", "a\nb", "a\x00b", "a\x85b"])
def test_event_ids_with_control_characters_are_refused(event_id: str) -> None:
    body = json.dumps({"event_name": "A", "event_id": event_id}).encode()
    with pytest.raises(HitRejected):
        parse_collect_body(body, now=NOW)


def _outcome(parse: Any, data: dict[str, Any], now: float) -> Any:
    """The hit's fields, or the errors of the refusal."""
    try:
        return ("hit", dict(vars(parse(data, now))))
    except HitRejected as exc:
        return ("rejected", exc.errors)


_ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**14), max_value=10**14),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["", " ", "\u00e9v", "a\u0007b", "x" * 300, "ftp://a.b/", "https:/x"]),
    st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=10), st.integers(),
                                                   st.none(), st.lists(st.text(max_size=3))),
                    max_size=3),  # fmt: skip
    st.lists(st.text(max_size=3), max_size=2),
)
_FIELDS = ["event_name", "event_id", "event_time", "event_source_url", "referrer_url",
           "custom_data", "user_data", "consent"]  # fmt: skip
_URLS = st.sampled_from(["https://shop.example/p?x=1", "http://a.b/", "ftp://a.b/", "",
                         "https://" + "u" * 5000])  # fmt: skip
#: Hits of the usual shape (some fields absent, URLs sometimes not http(s))...
_USUAL_HIT = st.fixed_dictionaries(
    {"event_name": st.sampled_from(["PageView", " Purchase ", "AddToCart"])},
    optional={
        "event_id": st.sampled_from(["e-1", "évt", "x" * 200]),
        "event_time": st.one_of(st.integers(1_600_000_000, 1_900_100_000),
                                st.integers(10**12, 2 * 10**12)),
        "event_source_url": _URLS,
        "referrer_url": _URLS,
        "custom_data": st.sampled_from([{"value": 1.5, "currency": "EUR"}, {}]),
        "user_data": st.sampled_from([{"em": "a@b.c"}, {"ph": ["+1 650 555 1212"], "fn": None},
                                      {"em": {"x": 1}}, {}]),
        "consent": st.sampled_from([{"ad_storage": "denied"}, {"analytics_storage": "granted"},
                                    "x", {}]),
    },
)  # fmt: skip
#: ... and the same with one field set to an odd value.
_HIT = st.one_of(
    _USUAL_HIT,
    st.tuples(_USUAL_HIT, st.sampled_from(_FIELDS), _ODD).map(lambda t: {**t[0], t[1]: t[2]}),
)


@settings(max_examples=int(os.environ.get("TAGSERVER_HYPOTHESIS_EXAMPLES", "300")), deadline=None)
@given(_HIT, st.integers(min_value=1_600_000_000, max_value=1_900_000_000))
def test_the_usual_shape_shortcut_gives_what_every_check_gives(
    data: dict[str, Any], now: int
) -> None:
    """parse_collect_object takes a hit of the usual shape without its error-building checks;
    any object gives the same hit, or the same errors, as those checks (_parse_checked)."""
    from tagserver.clients.collect import _parse_checked, parse_collect_object

    shortcut = _outcome(lambda d, n: parse_collect_object(d, now=n), data, now + 0.5)
    checked = _outcome(_parse_checked, data, now + 0.5)
    assert shortcut == checked
