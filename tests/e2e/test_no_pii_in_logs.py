"""Everything the real server prints at debug level, for hits full of personal data, holds none
of the raw values sent: no e-mail, phone, name, full visitor IP or access token."""

from __future__ import annotations

import json
from urllib.parse import quote

from tests.conftest import StartServer
from tests.e2e.server import ACCESS_TOKEN, DEFAULT_HOST
from tests.fakes.graph import FakeGraphAPI

EMAIL = "zebulonia.quartermaine@example.com"
PHONE = "+44 7700 900123"
FIRST, LAST = "Zebulonia", "Quartermaine"
CITY = "Llanfairpwllgwyngyll"
IPV4 = "198.51.100.77"
IPV6 = "2001:4860:1234:5678::9"
RAW_VALUES = [EMAIL, PHONE, "447700900123", "7700 900123", FIRST, LAST, CITY, IPV4, IPV6,
              ACCESS_TOKEN]
HEADERS = {"host": DEFAULT_HOST, "origin": "https://www.shop.example", "content-type": "text/plain",
           "user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"}
USER = {"em": EMAIL, "ph": PHONE, "fn": FIRST, "ln": LAST, "ct": CITY}


def test_server_output_holds_no_raw_personal_data(
    start_server: StartServer, fake_graph: FakeGraphAPI
) -> None:
    server = start_server(env={"TAGSERVER_LOG_LEVEL": "debug"})
    hits = [
        # accepted hits, one per client IP form
        ({"x-forwarded-for": IPV4}, {"event_name": "Purchase", "user_data": USER,
          "event_source_url": "https://www.shop.example/thanks",
          "custom_data": {"value": 10, "currency": "EUR", "order_id": EMAIL}}),
        ({"x-forwarded-for": f"[{IPV6}]:443"}, {"event_name": "Lead", "user_data": USER,
          "event_source_url": "https://www.shop.example/"}),
        # rejected hits: their error messages must not quote the values either
        ({"x-forwarded-for": IPV4}, {"event_name": "Purchase", "user_data": {"em": {"x": EMAIL}},
          "consent": {"ad_storage": PHONE}}),
        ({"x-forwarded-for": IPV4}, {"event_name": FIRST * 20, "event_time": LAST}),
        # Purchase without currency: dropped and counted (the drop is logged)
        ({"x-forwarded-for": IPV4}, {"event_name": "Purchase", "user_data": USER,
          "event_source_url": "https://www.shop.example/", "custom_data": {"value": EMAIL}}),
    ]
    for headers, body in hits:
        server.post("/e", content=json.dumps(body), headers={**HEADERS, **headers})
    server.post("/e", content=b'{"event_name": "' + EMAIL.encode() + b'", bad json',
                headers=HEADERS)
    ga4 = (f"/{FIRST}/g/collect?v=2&tid=G-ABC123&cid=1.2&en=sign_up&ep.name={FIRST}"
           f"&up.email={quote(EMAIL)}&ep.phone={quote(PHONE)}&dl=https%3A%2F%2Fwww.shop.example")
    server.get(ga4, headers={**HEADERS, "x-forwarded-for": IPV4})
    server.get(f"/{EMAIL}/{LAST}", headers=HEADERS)  # 404 with personal data in the path
    server.get("/g/collect?v=2&tid=G-1&en=x&dt=%E9" + quote(LAST), headers=HEADERS)
    assert fake_graph.wait_for_events(2)
    server.stop()
    output = server.output()
    assert '"logger": "tagserver.access"' in output  # access lines were written at all
    assert '"dropped"' in output
    leaked = [value for value in RAW_VALUES if value.lower() in output.lower()]
    assert leaked == [], f"raw values in the server output: {leaked}"
