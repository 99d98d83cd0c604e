"""tagserver.ga4.sse: the ``text/event-stream`` answer with ``send_pixel`` records."""

from __future__ import annotations

from tagserver.ga4.sse import build_event_stream, event_record, parse_event_stream

PIXEL = "https://www.facebook.com/tr?id=1234567890&ev=PageView&eid=e-1&noscript=1"


def test_records_have_the_server_sent_events_shape() -> None:
    body = build_event_stream([PIXEL]).decode()
    assert body == (
        'event: message\ndata: {"send_pixel":["' + PIXEL + '"],"options":{}}\n\n'
        'event: message\ndata: {"response":{"status_code":200,"body":""}}\n\n'
    )


def test_one_record_per_pixel_in_order_then_the_response() -> None:
    records = parse_event_stream(build_event_stream(["a", "b"], beacon_urls=["c"]).decode())
    assert records == [
        {"send_pixel": ["a"], "options": {}},
        {"send_pixel": ["b"], "options": {}},
        {"send_beacon": ["c"], "options": {}},
        {"response": {"status_code": 200, "body": ""}},
    ]


def test_no_pixel_still_answers_the_response_record() -> None:
    assert parse_event_stream(build_event_stream().decode()) == [
        {"response": {"status_code": 200, "body": ""}}]


def test_json_never_breaks_a_record() -> None:
    record = event_record({"send_pixel": ["https://x/?a=\n\u2028"]})
    assert record.count("\n") == 3  # event line, data line, blank line
    assert parse_event_stream(record) == [{"send_pixel": ["https://x/?a=\n\u2028"]}]


def test_parse_skips_non_json_data() -> None:
    assert parse_event_stream("data: nope\n\nevent: x\n\ndata: {\"a\":1}\r\n\r\n") == [{"a": 1}]
