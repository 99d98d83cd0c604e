"""tagserver.tags.ga4 (on the container's protocol), the GA4 delivery channel and the handler's
pure helpers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tagserver.clients.ga4 import parse_ga4_request
from tagserver.consent import Consent
from tagserver.container.loader import Container, load_container
from tagserver.container.runtime import run_scope
from tagserver.container.scope import Scope
from tagserver.delivery.channels import GA4Channel
from tagserver.event import Event
from tagserver.exceptions import ConfigError, DestinationRejected, DestinationUnavailable
from tagserver.ga4.handler import _with_client_id, pixel_urls
from tagserver.tags.ga4 import GA4Destination, GA4Tag
from tagserver.tags.meta import LimitedDataUse, pixel_image_url

NOW = 1_760_000_000.0
QUERY = "v=2&tid=G-HIT1&cid=11.22&richsstsse"


def event(body: bytes = b"", query: str = QUERY + "&en=page_view", **fields: object) -> Event:
    hit = parse_ga4_request(path="/g/collect", query=query, body=body).hits[0]
    values: dict[str, object] = {
        "event_name": hit.event_name, "event_id": "e-1", "event_time": int(NOW),
        "received_at": NOW, "client_ip": "198.51.100.7", "user_agent": "UA/1", "ga4": hit,
    }
    values.update(fields)
    return Event(**values)  # type: ignore[arg-type]


def scope(body: bytes = b"", query: str = QUERY + "&en=page_view", **fields: object) -> Scope:
    return Scope.from_event(event(body, query, **fields))


def container(tmp_path: Path, *tags: dict[str, object]) -> Container:
    (tmp_path / "c.json").write_text(json.dumps({"tags": list(tags)}))
    return load_container(tmp_path, environ={})


def fired(container: Container, scope: Scope) -> list[str]:
    return run_scope(container, scope, default_country=None, now=NOW).fired


def test_fires_only_for_ga4_events_and_listed_names(tmp_path: Path) -> None:
    # firing is the container's: the tag type takes events of the ga4 client only, and an
    # events list (GA4 or Meta names alike) narrows it
    tags = container(tmp_path, {"name": "g", "type": "ga4"},
                     {"name": "listed", "type": "ga4", "events": ["purchase"]},
                     {"name": "meta-named", "type": "ga4", "events": ["Purchase"]})
    assert fired(tags, scope()) == ["g"]
    assert fired(tags, scope(ga4=None)) == []
    assert fired(tags, scope(query=QUERY + "&en=purchase")) == ["g", "listed", "meta-named"]
    explained = run_scope(tags, scope(ga4=None), default_country=None, now=NOW, explain=True)
    assert dict(explained.not_fired)["g"] == (
        "ga4 tags take events of the ga4 client only; this one came from collect")


def test_conditions_read_the_hits_event_data(tmp_path: Path) -> None:
    tags = container(tmp_path, {"name": "g", "type": "ga4", "conditions": [
        {"event": "page_title", "op": "not_contains", "value": "Staging"},
        {"event": "x-ga-mp2-user_properties.plan", "op": "equals", "value": "pro"}]})
    assert fired(tags, scope(query=QUERY + "&en=x&dt=Shop&up.plan=pro")) == ["g"]
    assert fired(tags, scope(query=QUERY + "&en=x&dt=Staging&up.plan=pro")) == []
    assert fired(tags, scope(query=QUERY + "&en=x&dt=Shop")) == []


def test_consent_does_not_stop_forwarding(tmp_path: Path) -> None:
    denied = Consent(ad_storage=False, analytics_storage=False, ad_user_data=False,
                     ad_personalization=False)
    assert GA4Tag.default_consent == ()
    tags = container(tmp_path, {"name": "g", "type": "ga4"},
                     {"name": "consented", "type": "ga4",
                      "require_consent": ["analytics_storage"]})
    assert fired(tags, scope(consent=denied)) == ["g"]
    assert fired(tags, scope()) == ["g", "consented"]


def test_build_without_a_hit_is_a_drop() -> None:
    result = GA4Tag("g").build(scope(ga4=None), default_country=None, now=NOW)
    assert result.outbound == [] and result.drops[0][0] == "invalid_event"


def test_build_forwards_the_hit_to_its_own_property() -> None:
    result = GA4Tag("g").build(scope(), default_country=None, now=NOW)
    assert result.commands == [] and result.drops == []
    (outbound,) = result.outbound
    assert outbound.destination == GA4Destination("G-HIT1")
    assert outbound.payload == {
        "query": "v=2&tid=G-HIT1&cid=11.22&en=page_view&_uip=198.51.100.7",
        "body": "", "user_agent": "UA/1", "event_id": "e-1", "event_name": "page_view",
    }
    json.dumps(outbound.payload)


def test_build_with_measurement_id_and_redaction() -> None:
    tag = GA4Tag("g", measurement_id="G-OTHER", redact_ip=True)
    (outbound,) = tag.build(scope(), default_country=None, now=NOW).outbound
    assert outbound.destination == GA4Destination("G-OTHER")
    assert outbound.payload["query"] == "v=2&tid=G-OTHER&cid=11.22&en=page_view&_uip=::"


def test_server_managed_client_id_replaces_cid() -> None:
    base = event()
    assert base.ga4 is not None
    hit = _with_client_id(base.ga4, "abc/+=.1700000000")
    assert hit.event_data["client_id"] == "abc/+=.1700000000"
    assert hit.event_data["x-ga-js_client_id"] == "11.22"
    (outbound,) = GA4Tag("g").build(Scope.from_event(dataclasses.replace(base, ga4=hit)),
                                    default_country=None, now=NOW).outbound
    assert "&cid=abc%2F%2B%3D.1700000000&" in outbound.payload["query"]
    denied = dataclasses.replace(base.ga4, consent=Consent(analytics_storage=False))
    assert _with_client_id(denied, "x.1") is denied


def test_from_config(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(json.dumps({"tags": [
        {"name": "a", "type": "ga4"},
        {"name": "b", "type": "ga4", "measurement_id": "G-ABC123", "redact_ip": True,
         "events": ["purchase", "page_view"]},
        {"name": "c", "type": "ga4", "measurement_id": {"env": "GA4_ID"}},
    ]}))
    a, b, c = load_container(tmp_path, environ={"GA4_ID": "G-ENV1"}).tags
    assert a.tag == GA4Tag("a") and a.triggers == ()
    assert b.tag == GA4Tag("b", "G-ABC123", True)
    (trigger,) = b.triggers  # the events list is the tag's inline trigger
    assert trigger.events == frozenset({"Purchase", "PageView"})
    assert c.tag == GA4Tag("c", "G-ENV1")
    assert a.require_consent == () and a.clients == frozenset({"ga4"})
    with pytest.raises(ConfigError, match="measurement_id"):
        load_container(tmp_path, environ={"GA4_ID": "UA-1234"})


@pytest.mark.parametrize(
    ("tag", "path"),
    [
        ({"measurement_id": "UA-1"}, "measurement_id"),
        ({"redact_ip": "yes"}, "redact_ip"),
        ({"events": []}, "events"),
        ({"pixel_id": "1"}, "pixel_id"),
    ],
)
def test_schema_refuses_bad_ga4_tags(tmp_path: Path, tag: dict[str, object], path: str) -> None:
    (tmp_path / "c.json").write_text(json.dumps({"tags": [{"name": "g", "type": "ga4", **tag}]}))
    with pytest.raises(ConfigError) as info:
        load_container(tmp_path, environ={})
    assert path in str(info.value)


def test_channel_builds_one_request_per_hit() -> None:
    channel = GA4Channel("http://127.0.0.1:9/")
    assert channel.max_batch == 1
    destination = GA4Destination("G-HIT1")
    (outbound,) = GA4Tag("g").build(
        scope(b"en=scroll&epn.percent_scrolled=90"), default_country=None, now=NOW).outbound
    url, body = channel.build_request(destination, [outbound.payload])
    assert url == "http://127.0.0.1:9/g/collect?v=2&tid=G-HIT1&cid=11.22&en=page_view&_uip=198.51.100.7"
    assert body == b"en=scroll&epn.percent_scrolled=90"
    assert channel.request_head(destination, [outbound.payload]) == ("POST", {
        "content-type": "text/plain;charset=UTF-8", "user-agent": "UA/1"})
    assert channel.label(destination) == "ga4:G-HIT1"


@pytest.mark.parametrize(
    ("status", "kind"),
    [(200, None), (204, None), (500, DestinationUnavailable), (503, DestinationUnavailable),
     (429, DestinationUnavailable), (400, DestinationRejected), (403, DestinationRejected),
     (404, DestinationRejected)],
)
def test_channel_classification(status: int, kind: type | None) -> None:
    error = GA4Channel("https://g.example").classify(status, b"", {"retry-after": "3"})
    if kind is None:
        assert error is None
    else:
        assert isinstance(error, kind) and error.status == status
    if status == 429:
        assert error is not None and error.retry_after == 3.0


def test_pixel_urls_from_browser_commands() -> None:
    custom = {"value": 5, "currency": "EUR", "content_ids": ["A"]}
    commands = [
        {"type": "fbq", "args": ["trackSingle", "111", "Purchase", custom, {"eventID": "p-1"}]},
        {"type": "img", "src": "https://www.facebook.com/tr?id=222&ev=Lead&eid=l-1"},
        {"type": "fbq", "args": ["trackSingleCustom", "111", "scroll", {}, {"eventID": "s"}]},
        {"type": "fbq", "args": ["init", "111"]},
        {"type": "other"},
    ]
    assert pixel_urls(commands) == [
        pixel_image_url("111", "Purchase", "p-1", custom),
        "https://www.facebook.com/tr?id=222&ev=Lead&eid=l-1",
        pixel_image_url("111", "scroll", "s", {}),
    ]


def test_pixel_urls_carry_limited_data_use() -> None:
    commands = [
        {"type": "fbq", "args": ["dataProcessingOptions", ["LDU"], 1, 1000]},
        {"type": "fbq", "args": ["trackSingle", "111", "Lead", {}, {"eventID": "l-1"}]},
        {"type": "fbq", "args": ["trackSingle", "222", "Lead", {}, {"eventID": "l-1"}]},
    ]
    assert pixel_urls(commands) == [
        pixel_image_url("111", "Lead", "l-1", {}, ldu=LimitedDataUse("always", 1, 1000)),
        pixel_image_url("222", "Lead", "l-1", {}),
    ]
    assert "dpo=LDU&dpoco=1&dpost=1000" in pixel_urls(commands)[0]


def test_a_non_ascii_user_agent_is_forwarded_byte_for_byte() -> None:
    import httpx as _httpx

    from tagserver.delivery.channels import GA4Channel
    from tagserver.tags.ga4 import GA4Destination

    sent = "Mozilla/5.0 (Linux; fr-FR; Téléphone)".encode()  # UTF-8 bytes from the browser
    as_starlette_sees_it = sent.decode("latin-1")
    channel = GA4Channel("http://127.0.0.1:9")
    payload = {"query": "v=2&tid=G-X&en=page_view", "body": "", "user_agent": as_starlette_sees_it}
    method, head = channel.request_head(GA4Destination("G-X"), [payload])
    headers = _httpx.Headers(head, encoding=channel.header_encoding)
    assert method == "POST"
    assert headers.raw[[k for k, _ in headers.raw].index(b"user-agent")][1] == sent
