"""A catastrophic regex in the container cannot stall the real server: RE2 matches in linear
time, so a hit built to make a backtracking engine run for hours is answered at once and the
server keeps answering everyone else."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import StartServer
from tests.e2e.server import ACCESS_TOKEN, DEFAULT_HOST, PIXEL_ID

HEADERS = {"Host": DEFAULT_HOST, "Origin": "https://www.shop.example", "User-Agent": "t/1.0"}


def test_a_redos_hit_is_answered_and_the_server_stays_healthy(
    start_server: StartServer, tmp_path: Path
) -> None:
    folder = tmp_path / "tags"
    folder.mkdir()
    container = {
        "variables": {"run": {"type": "regex", "input": "{{event.custom_data.note}}",
                              "pattern": "((a|aa)+)$", "default": "none"}},
        "tags": [{"name": "meta", "type": "meta", "pixel_id": {"env": "META_PIXEL_ID"},
                  "access_token": {"env": "META_ACCESS_TOKEN"}, "events": ["Lead"],
                  "conditions": [{"event": "custom_data.note", "op": "not_regex",
                                  "value": "(a+)+$"}],
                  "custom_data": {"run": "{{run}}"}}],
    }
    (folder / "c.json").write_text(json.dumps(container), "utf-8")
    server = start_server(env={"META_PIXEL_ID": PIXEL_ID, "META_ACCESS_TOKEN": ACCESS_TOKEN},
                          tags_dir=folder)
    hit = {"event_name": "Lead", "event_source_url": "https://www.shop.example/",
           "custom_data": {"note": "a" * 4000 + "b"}}
    reply = server.post("/e", json=hit, headers=HEADERS)  # the client's timeout bounds it
    assert reply.status_code == 200, reply.text
    (command,) = reply.json()["commands"]
    assert command["args"][2] == "Lead" and command["args"][3]["run"] == "none"
    assert server.get("/healthy").text == "ok"
