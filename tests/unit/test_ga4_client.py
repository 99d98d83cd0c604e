"""tagserver.clients.ga4: a ``/g/collect`` request → its events."""

from __future__ import annotations

import pytest

from tagserver.clients.ga4 import (
    MAX_LINES,
    MAX_QUERY_LENGTH,
    GA4Batch,
    collect_prefix,
    merge_params,
    parse_ga4_request,
    split_body_lines,
)
from tagserver.consent import Consent
from tagserver.exceptions import HitRejected
from tagserver.ga4.query import split_params

BASE = "v=2&tid=G-TEST1&cid=111.222&dl=https%3A%2F%2Fwww.shop.example%2Fp&gcs=G111"


def parse(query: str, body: bytes = b"", path: str = "/g/collect") -> GA4Batch:
    return parse_ga4_request(path=path, query=query, body=body, ip_override="198.51.100.7",
                             user_agent="UA/1")


def rejected(query: str, body: bytes = b"", path: str = "/g/collect") -> HitRejected:
    with pytest.raises(HitRejected) as info:
        parse(query, body, path)
    assert info.value.status == 400
    return info.value


@pytest.mark.parametrize(
    ("path", "prefix"),
    [("/g/collect", ""), ("/metrics/g/collect", "/metrics"), ("/a/b.c/g/collect", "/a/b.c"),
     ("/g/collectx", None), ("/x/g/collect/", "/x"), ("/g/collect/", ""),
     ("/g/collect//", None), ("/e", None), ("//g/collect", None), ("/a b/g/collect", None)],
)
def test_collect_prefix(path: str, prefix: str | None) -> None:
    assert collect_prefix(path) == prefix


def test_query_only_hit() -> None:
    batch = parse(BASE + "&en=page_view&richsstsse")
    assert batch.prefix == "" and batch.richsstsse is True and batch.rejected == ()
    (hit,) = batch.hits
    assert hit.line is None and hit.raw_line is None
    assert hit.event_name == "page_view" and hit.measurement_id == "G-TEST1"
    assert hit.event_data["page_location"] == "https://www.shop.example/p"
    assert hit.event_data["ip_override"] == "198.51.100.7"
    assert hit.raw_query == tuple(BASE.split("&")) + ("en=page_view", "richsstsse")
    assert hit.param("cid") == "111.222" and hit.param("nope") is None


def test_query_may_be_bytes() -> None:
    (hit,) = parse_ga4_request(path="/m/g/collect", query=(BASE + "&en=x").encode()).hits
    assert hit.event_name == "x"


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_batched_body_one_event_per_line_in_order(newline: bytes) -> None:
    body = newline.join([b"en=page_view", b"en=scroll&epn.percent_scrolled=90",
                         b"en=view_item&pr1=idA", b"en=add_to_cart&cu=EUR&epn.value=3"])
    batch = parse(BASE, body + newline)
    assert [h.event_name for h in batch.hits] == [
        "page_view", "scroll", "view_item", "add_to_cart"]
    assert [h.line for h in batch.hits] == [1, 2, 3, 4]
    assert batch.hits[1].event_data["percent_scrolled"] == 90
    assert batch.hits[2].event_data["items"] == [{"item_id": "A"}]
    assert batch.hits[3].raw_line == "en=add_to_cart&cu=EUR&epn.value=3"
    for hit in batch.hits:
        assert hit.event_data["client_id"] == "111.222"  # shared query parameters


def test_line_parameters_override_the_query() -> None:
    batch = parse(BASE + "&en=page_view&dt=Query", b"dt=Line&en=purchase&ep.x=1")
    (hit,) = batch.hits
    assert hit.event_name == "purchase" and hit.event_data["page_title"] == "Line"
    names = [p.name for p in hit.params]
    assert names.count("en") == 1 and names.count("dt") == 1
    assert names.index("dt") < names.index("ep.x")  # replaced in place, new ones after


def test_merge_params_first_line_value_wins() -> None:
    merged = merge_params(split_params("a=1&b=2&a=3", where="q"),
                          split_params("b=x&c=y&b=z", where="l"))
    assert [(p.name, p.value) for p in merged] == [("a", "1"), ("b", "x"), ("a", "3"), ("c", "y")]


def test_blank_lines_are_not_events() -> None:
    batch = parse(BASE, b"\n\nen=a\r\n  \r\n\nen=b\n")
    assert [(h.line, h.event_name) for h in batch.hits] == [(3, "a"), (6, "b")]


def test_whitespace_only_body_is_one_event_from_the_query() -> None:
    (hit,) = parse(BASE + "&en=page_view", b" \r\n").hits
    assert hit.line is None


def test_split_body_lines() -> None:
    assert split_body_lines(b"a\r\nb\n\nc\r") == [(1, b"a"), (2, b"b"), (4, b"c")]


def test_a_bad_line_does_not_lose_its_neighbours() -> None:
    body = b"\n".join([b"en=one", b"en=%zz", b"en=three\xff", b"v=1&en=four", b"en=five",
                       b"dt=no-name"])
    batch = parse(BASE, body)
    assert [h.event_name for h in batch.hits] == ["one", "five"]
    assert [r.line for r in batch.rejected] == [2, 3, 4, 6]
    assert "percent" in batch.rejected[0].error
    assert "UTF-8" in batch.rejected[1].error
    assert batch.rejected[2].errors[0]["field"] == "body line 4: v"
    assert batch.rejected[3].errors[0]["field"] == "body line 6: en"


def test_every_line_bad_is_a_400_listing_each() -> None:
    exc = rejected(BASE, b"en=%zz\nv=3&en=x")
    assert [e["field"] for e in exc.errors] == ["body line 1", "body line 2"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("tid=G-1&en=x", "query: v"),
        ("v=1&tid=G-1&en=x", "query: v"),
        ("v=2&en=x", "query: tid"),
        ("v=2&tid=&en=x", "query: tid"),
        ("v=2&tid=G%201&en=x", "query: tid"),
        ("v=2&tid=G-1", "query: en"),
        ("v=2&tid=G-1&en=", "query: en"),
        ("v=2&tid=G-1&en=" + "x" * 101, "query: en"),
        ("v=2&tid=G-1&en=a%0Ab", "query: en"),
    ],
)
def test_hits_without_the_protocol_basics_are_rejected(query: str, field: str) -> None:
    assert rejected(query).errors[0]["field"] == field


def test_broken_query_rejects_the_request_even_with_good_lines() -> None:
    exc = rejected(BASE + "&dt=%E9", b"en=a\nen=b")
    assert "UTF-8" in exc.error


def test_raw_non_ascii_query_is_refused() -> None:
    exc = rejected(BASE + "&en=x&dt=Café")
    assert "percent-encoded" in exc.error


def test_size_limits() -> None:
    rejected(BASE + "&en=x&ep.pad=" + "a" * MAX_QUERY_LENGTH)
    exc = rejected(BASE, b"\n".join([b"en=x"] * (MAX_LINES + 1)))
    assert "too many events" in exc.error
    assert len(parse(BASE, b"\n".join([b"en=x"] * MAX_LINES)).hits) == MAX_LINES
    batch = parse(BASE, b"en=ok\nen=" + b"x" * 20000)
    assert [h.event_name for h in batch.hits] == ["ok"]
    assert batch.rejected[0].error == "body line too long"


def test_not_a_collect_path() -> None:
    assert rejected(BASE + "&en=x", path="/collect").errors[0]["field"] == "path"


def test_consent_per_hit_from_gcs_and_gcd() -> None:
    batch = parse("v=2&tid=G-1&gcs=G101", b"en=a\nen=b&gcs=G110&gcd=13t3t3p3t5")
    assert batch.hits[0].consent == Consent(
        ad_storage=False, ad_user_data=False, ad_personalization=False)
    assert batch.hits[1].consent == Consent(analytics_storage=False, ad_user_data=False)


def test_problems_do_not_reject_the_hit() -> None:
    (hit,) = parse(BASE + "&en=add_to_cart&pr1=idA~prX~~q&epn.value=abc").hits
    assert hit.event_data["items"] == [{"item_id": "A"}]
    assert "value" not in hit.event_data
    assert len(hit.problems) == 3
