"""The http tag (webhook): request building, URL encoding, header hygiene, and its delivery
through the sender's HttpChannel (one request per event, retries, permanent failures)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tagserver.delivery.channels import HttpChannel
from tagserver.delivery.drops import DropCounter
from tagserver.delivery.outbox import MemoryOutbox
from tagserver.delivery.retry import RetryPolicy
from tagserver.delivery.sender import Sender
from tagserver.exceptions import DestinationRejected, DestinationUnavailable
from tagserver.tags import Outbound
from tagserver.tags.http import HttpDestination
from tests.containers import (
    ENVIRON,
    compile_container,
    config_problems,
    http_tag,
    make_scope,
    run,
)


def build_one(tmp_path: Path, tag: dict[str, Any], **scope: Any) -> dict[str, Any]:
    container = compile_container(
        tmp_path,
        {
            "variables": {
                "token": {"type": "secret", "env": "CRM_TOKEN"},
                "hook_url": {"type": "secret", "env": "HOOK_URL"},
                "source": {"type": "query", "name": "utm_source"},
            },
            "tags": [tag],
        },
    )
    result = run(container, make_scope(**scope))
    assert result.fired == [tag["name"]], result
    (outbound,) = result.outbound
    assert outbound.destination == HttpDestination(tag["name"])
    return dict(outbound.payload)


def test_post_with_headers_and_json_body(tmp_path: Path) -> None:
    payload = build_one(
        tmp_path,
        http_tag(
            url="https://crm.example.com/api/orders",
            headers={"Authorization": "Bearer {{token}}", "Idempotency-Key": "{{event.event_id}}"},
            body={"order": "{{event.transaction_id}}", "value": "{{event.value}}",
                  "source": "{{source}}"},
        ),
        data={"transaction_id": "1001", "value": 59.9},
    )
    assert payload == {
        "method": "POST",
        "url": "https://crm.example.com/api/orders",
        "headers": {
            "Authorization": f"Bearer {ENVIRON['CRM_TOKEN']}",
            "Idempotency-Key": "evt-1",
            "Content-Type": "application/json",
        },
        "body": {"order": "1001", "value": 59.9, "source": "facebook"},
        "event_id": "evt-1",
    }


def test_url_values_are_percent_encoded_but_a_leading_base_url_is_not(tmp_path: Path) -> None:
    payload = build_one(
        tmp_path,
        http_tag(method="GET", url="https://t.example.com/hit?e={{event.event_name}}&r={{event.ref}}"),
        data={"ref": "a b&c=d/é"},
    )
    assert payload["url"] == "https://t.example.com/hit?e=Purchase&r=a%20b%26c%3Dd%2F%C3%A9"
    assert payload["body"] is None
    assert "Content-Type" not in payload["headers"]
    payload = build_one(tmp_path, http_tag(url="{{hook_url}}", body={"text": "hi"}))
    assert payload["url"] == ENVIRON["HOOK_URL"]


def test_header_values_lose_line_breaks_and_empty_headers_are_left_out(tmp_path: Path) -> None:
    payload = build_one(
        tmp_path,
        http_tag(headers={"X-Note": "{{event.note}}", "X-Empty": "{{event.nothing}}"}),
        data={"note": "a\r\nSet-Cookie: evil=1\x00"},
    )
    assert payload["headers"] == {"X-Note": "aSet-Cookie: evil=1"}


def test_a_url_that_does_not_resolve_to_http_is_held_back(tmp_path: Path) -> None:
    # a lookup without a matching entry: the leading base URL resolves to nothing
    base = {"type": "lookup", "input": "{{market}}", "table": {"fr": "https://fr.example/"}}
    container = compile_container(tmp_path, {
        "variables": {"market": {"type": "constant", "value": "de"}, "base": base},
        "tags": [http_tag(url="{{base}}")],
    })
    result = run(container, make_scope())
    assert result.outbound == []
    assert result.drops == [("hook", "invalid_event", "url: not an absolute http(s) URL")]


# ---------------------------------------------------------------------------------------------
# the channel


def test_channel_builds_one_request_per_event() -> None:
    channel = HttpChannel()
    payload = {"method": "PUT", "url": "https://x.example/a", "headers": {"X-A": "1"},
               "body": {"é": 1}, "event_id": "e"}
    destination = HttpDestination("crm")
    assert channel.max_batch == 1
    assert channel.label(destination) == "http:crm"
    url, body = channel.build_request(destination, [payload])
    assert url == "https://x.example/a"
    assert json.loads(body) == {"é": 1}
    assert channel.request_head(destination, [payload]) == ("PUT", {"X-A": "1"})
    assert channel.build_request(destination, [{**payload, "body": None}])[1] == b""


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, None), (201, None), (204, None), (429, DestinationUnavailable),
     (500, DestinationUnavailable), (503, DestinationUnavailable), (400, DestinationRejected),
     (401, DestinationRejected), (404, DestinationRejected), (301, DestinationRejected)],
)
def test_channel_classifies_statuses(status: int, expected: type[Exception] | None) -> None:
    error = HttpChannel().classify(status, b"<html>secret-url-echo</html>", {"retry-after": "3"})
    if expected is None:
        assert error is None
    else:
        assert type(error) is expected
        assert str(error) == f"HTTP {status}"  # never the body or the URL
    if status == 429:
        assert error is not None and error.retry_after == 3.0


def deliver(handler: Any, payloads: list[dict[str, Any]]) -> tuple[list[httpx.Request], dict[str, int], int]:
    requests: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        response: httpx.Response = handler(request)
        return response

    async def main() -> tuple[dict[str, int], int]:
        drops = DropCounter()
        async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
            sender = Sender(client, outbox=MemoryOutbox(), channels={HttpDestination: HttpChannel()},
                            drops=drops, policy=RetryPolicy(0.01, 0.02, 3), flush_interval=0.01)
            await sender.start()
            for payload in payloads:
                await sender.submit([Outbound(HttpDestination("crm"), payload)])
            await sender.stop(timeout=5)
            return drops.snapshot(), sender.delivered

    drops, delivered = asyncio.run(main())
    return requests, drops, delivered


def webhook(event_id: str, method: str = "POST") -> dict[str, Any]:
    return {"method": method, "url": f"https://crm.example.com/o/{event_id}",
            "headers": {"Authorization": "Bearer t", "Content-Type": "application/json"},
            "body": {"id": event_id}, "event_id": event_id}


def test_sender_sends_each_webhook_alone_with_its_method_and_headers() -> None:
    requests, drops, delivered = deliver(lambda r: httpx.Response(204),
                                         [webhook("a"), webhook("b", "PUT")])
    assert delivered == 2 and drops == {}
    assert sorted((r.method, str(r.url)) for r in requests) == [
        ("POST", "https://crm.example.com/o/a"), ("PUT", "https://crm.example.com/o/b")]
    for request in requests:
        assert request.headers["authorization"] == "Bearer t"
        assert json.loads(request.content)["id"] in ("a", "b")


def test_sender_retries_5xx_and_drops_4xx() -> None:
    answers = {"a": [503, 200], "b": [400]}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answers[request.url.path.rsplit("/", 1)[1]].pop(0))

    requests, drops, delivered = deliver(handler, [webhook("a"), webhook("b")])
    assert delivered == 1
    assert drops == {"http:crm/rejected": 1}
    assert len(requests) == 3


def test_non_ascii_header_values_go_out_as_utf8(tmp_path: Path) -> None:
    payload = build_one(
        tmp_path,
        http_tag(headers={"X-Note": "{{event.custom_data.note}}", "X-Plain": "ok"}),
        data={"custom_data": {"note": "Jürgen € 東京"}},
    )
    assert payload["headers"]["X-Note"] == "Jürgen € 東京"
    requests, drops, delivered = deliver(lambda r: httpx.Response(200), [payload])
    assert delivered == 1 and drops == {}
    (request,) = requests
    raw = dict(request.headers.raw)
    assert raw[b"X-Note"] == "Jürgen € 東京".encode()
    assert raw[b"X-Plain"] == b"ok"


# ---------------------------------------------------------------------------------------------
# who chooses the host (SSRF)

VISITOR_VARIABLES: dict[str, dict[str, Any]] = {
    "cookie": {"type": "cookie", "name": "target"},
    "header": {"type": "header", "name": "X-Target"},
    "query": {"type": "query", "name": "target"},
    "data": {"type": "event_data", "path": "page_location"},
    "lookup": {"type": "lookup", "input": "{{event.event_name}}",
               "table": {"Purchase": "https://a.example/"}},
    "regex": {"type": "regex", "input": "{{event.page_location}}", "pattern": "^(https://[^/]+)"},
    "part": {"type": "url", "part": "origin"},
    "via_default": {"type": "query", "name": "nope", "url": "https://x.example/",
                    "default": "{{cookie}}"},
}


@pytest.mark.parametrize(
    "url",
    [
        "{{event.page_location}}",
        "{{event.page_location}}/hook",
        "{{event.custom_data.host}}?x=1",
        *(f"{{{{{name}}}}}/hook" for name in VISITOR_VARIABLES),
        "https://{{event.custom_data.host}}/hook",
        "https://hooks.example.com{{event.custom_data.suffix}}/x",
        "https://{{cookie}}",
        "http://a-{{header}}.example.com/",
    ],
)
def test_a_url_whose_host_the_visitor_controls_is_refused(tmp_path: Path, url: str) -> None:
    text = config_problems(tmp_path, {"variables": VISITOR_VARIABLES,
                                      "tags": [http_tag(url=url)]})
    assert "$.tags[0].url:" in text and "visitor controls" in text, text
    assert "write the scheme and host in the file" in text


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://files.example.com/{{event.event_id}}", "expected an absolute http(s) URL "
                                                       "(the scheme is 'ftp')"),
        ("file:///etc/{{event.event_id}}", "(the scheme is 'file')"),
        ("javascript:{{event.event_id}}", "(the scheme is 'javascript')"),
        ("/relative/{{event.event_id}}", "expected an absolute http(s) URL"),
        ("https:{{event.event_id}}", "expected an absolute http(s) URL"),
        ("ftp://files.example.com/", "expected an absolute http(s) URL"),
        ("{{base}}", "the constant variable 'base' that starts the URL is not an absolute"),
        ("{{bad_secret}}/x", "the secret variable 'bad_secret' that starts the URL is not"),
        ("{{hook_url}}{{event.event_id}}", "must be followed by '/', '?' or '#'"),
    ],
)
def test_a_url_that_is_not_http_is_refused_at_validation(
    tmp_path: Path, url: str, message: str
) -> None:
    text = config_problems(
        tmp_path,
        {"variables": {"base": {"type": "constant", "value": "ftp://x.example/"},
                       "bad_secret": {"type": "secret", "env": "BAD_SECRET"},
                       "hook_url": {"type": "secret", "env": "HOOK_URL"}},
         "tags": [http_tag(url=url)]},
        environ={**ENVIRON, "BAD_SECRET": "gopher://secret-value-never-shown"},
    )
    assert "$.tags[0].url: " in text and message in text, text
    assert "secret-value-never-shown" not in text


@pytest.mark.parametrize(
    "url",
    [
        "https://crm.example.com/o/{{event.transaction_id}}?src={{event.page_location}}",
        "HTTPS://crm.example.com?{{cookie}}",
        "https://{{region}}.crm.example.com/{{event.event_id}}",
        "{{hook_url}}",
        "{{hook_url}}?id={{event.event_id}}",
        "{{base}}/o/{{event.transaction_id}}",
        "{{chosen}}/{{event.event_id}}",
    ],
)
def test_a_url_whose_host_the_file_or_environment_sets_is_valid(tmp_path: Path, url: str) -> None:
    compile_container(tmp_path, {
        "variables": {
            "cookie": {"type": "cookie", "name": "c"},
            "region": {"type": "constant", "value": "eu"},
            "hook_url": {"type": "secret", "env": "HOOK_URL"},
            "base": {"type": "constant", "value": "https://crm.example.com"},
            "chosen": {"type": "lookup", "input": "{{region}}",
                       "table": {"eu": "https://eu.example.com", "us": "{{hook_url}}"}},
        },
        "tags": [http_tag(url=url)],
    })
