"""Dead letters and the operator CLI, with real servers, the SQLite file or a real Redis:
bisection of a rejected batch, ``tagserver outbox dead|stats|replay``, a replay after fixing an
expired token, SIGTERM leaving undelivered events in the outbox for the next start, and a hit
refused with 503 when the outbox cannot store it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tagserver.delivery.outbox import OutboxStats, open_outbox
from tagserver.server_events.keys import create_key
from tests.conftest import StartServer
from tests.e2e.load import HEADERS, hit
from tests.e2e.redis_server import RedisServerProcess
from tests.e2e.server import REPO_ROOT, TagServerProcess
from tests.fakes.graph import Failure, FakeGraphAPI

#: A gtag.js page_view hit (query only) for the shipped container's GA4 forwarder.
GA4_HIT = ("v=2&tid=G-SHOP1&cid=1234567890.1760043792&en=page_view&_p=1764340309313"
           "&dl=https%3A%2F%2Fwww.shop.example%2F")

BACKENDS = ["sqlite", "redis"]


@pytest.fixture(params=BACKENDS)
def outbox_spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The TAGSERVER_OUTBOX of this test: the start_server default file, or the test's Redis."""
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        return url
    return str(tmp_path / "outbox.sqlite3")


def cli(spec: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "tagserver", "outbox", "--outbox", spec, *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


def stats(spec: str) -> OutboxStats:
    async def main() -> OutboxStats:
        outbox = open_outbox(spec)
        await outbox.open()
        try:
            return await outbox.stats(detail=True)
        finally:
            await outbox.close()

    return asyncio.run(main())


def wait_stats(spec: str, predicate: Any, *, timeout: float = 20.0) -> OutboxStats:
    deadline = time.monotonic() + timeout
    while True:
        current = stats(spec)
        if predicate(current) or time.monotonic() > deadline:
            return current
        time.sleep(0.1)


def post_hits(server: TagServerProcess, ids: list[str]) -> None:
    for event_id in ids:
        response = server.post("/e", json=hit(event_id), headers=HEADERS)
        assert response.status_code == 200, response.text


def test_one_invalid_event_is_a_dead_letter_with_its_subcode_and_the_rest_delivered(
    start_server: StartServer, fake_graph: FakeGraphAPI, outbox_spec: str
) -> None:
    server = start_server(env={"TAGSERVER_OUTBOX": outbox_spec, "TAGSERVER_FLUSH_INTERVAL": "1"})
    fake_graph.reject_event_ids(["batch-bad"], subcode=2804001)
    good = [f"batch-{i:02d}" for i in range(19)]
    post_hits(server, good[:9] + ["batch-bad"] + good[9:])

    fake_graph.wait_for_events(19)
    time.sleep(0.3)
    delivered = Counter(str(e["event_id"]) for e in fake_graph.accepted_events())
    assert delivered == Counter(good), "every good event once, the bad one never"
    with_bad = [r for r in fake_graph.requests if "batch-bad" in [e["event_id"] for e in r.events]]
    assert len(with_bad[0].events) > 1, "the bad event first went out in a batch"
    assert with_bad[-1].events[0]["event_id"] == "batch-bad" and len(with_bad[-1].events) == 1
    last_answer = with_bad[-1].response_json["error"]

    lines = cli(outbox_spec, "dead", "--json").stdout.splitlines()
    (dead,) = [json.loads(line) for line in lines]
    assert dead["event_id"] == "batch-bad"
    assert (dead["reason"], dead["status"], dead["code"], dead["subcode"]) == (
        "rejected", 400, 100, 2804001)
    assert dead["fbtrace_id"] == last_answer["fbtrace_id"]
    assert dead["destination"] == "meta:1234567890:v25.0"
    assert "payload" not in dead
    text = cli(outbox_spec, "dead", "--reason", "rejected").stdout
    assert "subcode=2804001" in text and "event_id=batch-bad" in text
    assert "EAAB" not in text, "the token is never stored"
    none_old = cli(outbox_spec, "dead", "--reason", "too_old").stdout.strip()
    assert none_old == "0 dead letter(s) with reason too_old"

    summary = json.loads(cli(outbox_spec, "stats", "--json").stdout)
    assert summary["depth"] == 0
    assert summary["dead"] == 1
    assert summary["dead_by_reason"] == {"rejected": 1}


def test_replay_after_fixing_an_expired_token_delivers_the_dead_letters(
    start_server: StartServer, fake_graph: FakeGraphAPI, outbox_spec: str
) -> None:
    fake_graph.valid_tokens = {"EAAB-FRESH-TOKEN-2"}
    env = {"TAGSERVER_OUTBOX": outbox_spec, "META_ACCESS_TOKEN": "EAAB-EXPIRED-TOKEN-1"}
    server = start_server(env=env)
    ids = [f"replay-{i}" for i in range(5)]
    post_hits(server, ids)
    buried = wait_stats(outbox_spec, lambda s: s.dead == 5)
    assert buried.dead_by_reason == {"rejected": 5}
    dead = [json.loads(line) for line in cli(outbox_spec, "dead", "--json").stdout.splitlines()]
    assert {d["code"] for d in dead} == {190}
    rejected_events = {str(e["event_id"]): e for e in fake_graph.events_seen()}
    assert server.stop() in (0, -15)

    start_server(env={**env, "META_ACCESS_TOKEN": "EAAB-FRESH-TOKEN-2"})
    time.sleep(0.3)
    assert fake_graph.accepted_events() == [], "dead letters wait for the operator"
    out = cli(outbox_spec, "replay", "--reason", "rejected").stdout
    assert "replayed 5 dead letter(s)" in out

    accepted = fake_graph.wait_for_events(5)
    assert sorted(str(e["event_id"]) for e in accepted) == ids
    for event in accepted:
        assert event == rejected_events[str(event["event_id"])], "the stored event, unchanged"
    assert {r.access_token for r in fake_graph.requests if r.accepted} == {"EAAB-FRESH-TOKEN-2"}
    after = wait_stats(outbox_spec, lambda s: s.depth == 0)
    assert (after.depth, after.dead) == (0, 0)


def test_sigterm_leaves_undelivered_events_for_the_next_start(
    start_server: StartServer, fake_graph: FakeGraphAPI, outbox_spec: str
) -> None:
    env = {"TAGSERVER_OUTBOX": outbox_spec, "TAGSERVER_DRAIN_TIMEOUT": "1"}
    server = start_server(env=env)
    fake_graph.fail_for(120, Failure(status=503, error_code=2, is_transient=True))
    ids = [f"term-{i}" for i in range(10)]
    post_hits(server, ids)
    fake_graph.wait_for_requests(1)
    started = time.monotonic()
    assert server.stop() in (0, -15)
    assert time.monotonic() - started < 8, "the drain is bounded"
    left = stats(outbox_spec)
    assert (left.depth, left.leased, left.dead) == (10, 0, 0), left

    fake_graph.reset()  # the outage is over
    start_server(env=env)
    accepted = fake_graph.wait_for_events(10)
    assert sorted(str(e["event_id"]) for e in accepted) == ids
    assert wait_stats(outbox_spec, lambda s: s.depth == 0).depth == 0


def test_a_hit_the_outbox_cannot_store_is_refused_with_503(
    start_server: StartServer, fake_graph: FakeGraphAPI, tmp_path: Path
) -> None:
    own_redis = RedisServerProcess(tmp_path / "redis").start()
    keys_file = tmp_path / "keys.sqlite3"
    _, key = create_key(keys_file, "crm", tags=("meta",))
    api_event = {"event_name": "Lead", "event_id": "api-lost-1", "event_time": int(time.time()),
                 "action_source": "system_generated", "user_data": {"external_id": "c-1"}}
    try:
        server = start_server(
            env={"TAGSERVER_OUTBOX": own_redis.url, "TAGSERVER_KEYS": str(keys_file)}
        )
        post_hits(server, ["stored-1"])
        fake_graph.wait_for_events(1)
        own_redis.stop()
        response = server.post("/e", json=hit("lost-1"), headers=HEADERS)
        # every other way in waits for the outbox too: gtag.js hits and server-to-server events
        ga4 = server.post(f"/g/collect?{GA4_HIT}", headers=HEADERS)
        api = server.post("/api/events", json={"data": [api_event]},
                          headers={"Authorization": f"Bearer {key}"})
    finally:
        own_redis.stop()
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False and body["status"] == 503 and body["errors"] == []
    assert "could not be stored" in body["error"]
    assert response.headers["retry-after"] == "1"
    assert "commands" not in body, "no Pixel command for an event the server may never send"
    for refused in (ga4, api):
        assert refused.status_code == 503, refused.text
        assert refused.json()["status"] == 503 and refused.headers["retry-after"] == "1"
        assert "set-cookie" not in refused.headers
    # the refused server event was not remembered: sending it again is not a "duplicate"
    with sqlite3.connect(keys_file) as db:
        assert db.execute("SELECT COUNT(*) FROM seen_events").fetchone() == (0,)
