"""tagserver.ga4.forward: the hit re-sent to Google Analytics, byte for byte."""

from __future__ import annotations

import json

from tagserver.clients.ga4 import parse_ga4_request
from tagserver.ga4.forward import build_forward_payload, forward_request

QUERY = "v=2&tid=G-ABC123&cid=111.222&dt=Caf%C3%A9%20%7C%20Shop&ep.x=a+b&_uip=6.6.6.6&richsstsse"


def test_query_only_hit_is_forwarded_with_uip_and_without_richsstsse() -> None:
    (hit,) = parse_ga4_request(path="/m/g/collect", query=QUERY + "&en=page_view").hits
    payload = build_forward_payload(hit, client_ip="2001:db8::7", user_agent="UA/1",
                                    event_id="e-1")
    assert payload == {
        "query": "v=2&tid=G-ABC123&cid=111.222&dt=Caf%C3%A9%20%7C%20Shop&ep.x=a+b&en=page_view"
                 "&_uip=2001:db8::7",
        "body": "",
        "user_agent": "UA/1",
        "event_id": "e-1",
        "event_name": "page_view",
    }
    json.dumps(payload)  # it can wait in the durable outbox
    url, body, headers = forward_request("http://127.0.0.1:9/", payload)
    assert url == "http://127.0.0.1:9/g/collect?" + payload["query"]
    assert body == b""
    assert headers == {"content-type": "text/plain;charset=UTF-8", "user-agent": "UA/1"}


def test_a_batched_hit_carries_its_own_line_only() -> None:
    batch = parse_ga4_request(
        path="/g/collect", query=QUERY, body=b"en=a&_et=5\r\nen=b&dt=L%C3%A0&_uip=1.1.1.1\r\n"
    )
    first, second = (
        build_forward_payload(h, client_ip="198.51.100.7", user_agent="UA") for h in batch.hits
    )
    assert first["query"] == second["query"] == (
        "v=2&tid=G-ABC123&cid=111.222&dt=Caf%C3%A9%20%7C%20Shop&ep.x=a+b&_uip=198.51.100.7"
    )
    assert first["body"] == "en=a&_et=5"
    assert second["body"] == "en=b&dt=L%C3%A0"  # a client-sent _uip never goes through
    assert forward_request("https://g.example", second)[1] == b"en=b&dt=L%C3%A0"


def test_ip_redacted_or_unknown_is_double_colon() -> None:
    (hit,) = parse_ga4_request(path="/g/collect", query="v=2&tid=G-1&en=x").hits
    assert build_forward_payload(hit, client_ip="198.51.100.7", redact_ip=True)[
        "query"].endswith("&_uip=::")
    assert build_forward_payload(hit, client_ip=None)["query"].endswith("&_uip=::")


def test_measurement_id_and_client_id_replacement() -> None:
    batch = parse_ga4_request(path="/g/collect", query="v=2&tid=G-OLD&cid=1.2",
                              body=b"en=x&tid=G-LINE")
    payload = build_forward_payload(batch.hits[0], client_ip=None, measurement_id="G-NEW",
                                    client_id="a+b/c=.1700000000")
    assert payload["query"] == "v=2&tid=G-NEW&cid=a%2Bb%2Fc%3D.1700000000&_uip=::"
    assert payload["body"] == "en=x&tid=G-NEW"


def test_no_user_agent_header_when_unknown() -> None:
    (hit,) = parse_ga4_request(path="/g/collect", query="v=2&tid=G-1&en=x").hits
    payload = build_forward_payload(hit, client_ip=None)
    assert "user-agent" not in forward_request("https://g.example", payload)[2]


CONTACT = ("ep.user_data.email_address=Jane.Doe%40Example.com"
           "&ep.user_data.phone_number=%2B447700900123&ep.user_data.address.first_name=Jane"
           "&epn.user_data.address.postal_code=10115&up.user_data.email_address=j%40d.e"
           "&upn.user_data.n=1&ep%2Euser_data.city=Leeds"
           "&ep.user_data.sha256_email_address=abc&EP.USER_DATA.phone_number=1")


def test_contact_data_never_goes_to_google() -> None:
    """Raw or hashed, in the query or the body line: ``user_data`` is for ad platforms only."""
    batch = parse_ga4_request(path="/g/collect", query="v=2&tid=G-1&" + CONTACT + "&ep.keep=1",
                              body=("en=purchase&" + CONTACT + "&ep.line=2").encode())
    (hit,) = batch.hits
    assert hit.event_data["user_data"]["email_address"] == "Jane.Doe@Example.com"  # Meta reads it
    payload = build_forward_payload(hit, client_ip=None)
    assert payload["query"] == "v=2&tid=G-1&ep.keep=1&_uip=::"
    assert payload["body"] == "en=purchase&ep.line=2"
    query = "v=2&tid=G-1&en=x&ep.user_data=j%40d.e"
    (bare,) = parse_ga4_request(path="/g/collect", query=query).hits
    assert build_forward_payload(bare, client_ip=None)["query"] == "v=2&tid=G-1&en=x&_uip=::"


def test_edited_contact_data_never_goes_to_google() -> None:
    (hit,) = parse_ga4_request(path="/g/collect", query="v=2&tid=G-1&en=x&" + CONTACT).hits
    payload = build_forward_payload(hit, client_ip=None, edits={
        "user_data": {"email_address": "a@b.c", "sha256_phone_number": "f" * 64},
        "x-ga-mp2-user_properties": {"user_data.email_address": "a@b.c", "plan": "pro"},
        "user_data.phone_number": "+447700900123", "market": "de"})
    assert payload["query"] == "v=2&tid=G-1&en=x&up.plan=pro&ep.market=de&_uip=::"
