"""``tagserver serve --workers 2`` with the Redis outbox, as deploy/ runs it: two servers of two
worker processes each, one shared Redis Stream, the path mount's settings (``/metrics/e``).

The promise under test: every worker process of every server consumes the one stream, and every
hit answered 2xx reaches the Graph API exactly once, whichever process took the hit and whichever
sent its event.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import redis

from tests.conftest import StartServer
from tests.e2e.load import HitLoad
from tests.e2e.server import TagServerProcess
from tests.fakes.graph import FakeGraphAPI

HITS = 400
WORKERS = 2
#: The settings of deploy/docker-compose.yml that change routes (the rest are the test defaults).
PATH_MOUNT = {"TAGSERVER_SCRIPT_PATH": "/metrics/t.js", "TAGSERVER_COLLECT_PATH": "/metrics/e"}

pytestmark = pytest.mark.slow


def consumer_pids(redis_url: str) -> set[int]:
    """Process ids of the consumers of tagserver's group (names are ``<host>:<pid>:<random>``;
    ``released`` is the parking consumer of released entries, not a process)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        consumers = client.xinfo_consumers("{tagserver}:outbox", "senders")
    finally:
        client.close()
    names = [str(c["name"]) for c in consumers if c["name"] != "released"]
    return {int(name.rsplit(":", 2)[1]) for name in names}


def supervisor_pid(server: TagServerProcess) -> int:
    process = server._process  # the uvicorn supervisor: it forks the workers, serves no hit
    assert process is not None
    return process.pid


def test_two_servers_of_two_workers_share_the_redis_outbox(
    start_server: StartServer, fake_graph: FakeGraphAPI, redis_url: str
) -> None:
    env = {"TAGSERVER_OUTBOX": redis_url, **PATH_MOUNT}
    servers = [start_server(env=env, args=("--workers", str(WORKERS))) for _ in range(2)]
    assert servers[0].get("/metrics/t.js").status_code == 200, "the path mount's script path"

    ids = [f"scale-{i:04d}" for i in range(HITS)]
    load = HitLoad(servers, ids, threads=8, path=PATH_MOUNT["TAGSERVER_COLLECT_PATH"]).run()
    assert load.accepted() == set(ids), Counter(load.statuses.values())

    fake_graph.wait_for(
        lambda f: {str(e["event_id"]) for e in f.accepted_events()} >= set(ids),
        timeout=30,
        what=f"{HITS} accepted events",
    )
    time.sleep(0.5)  # anything sent twice would show up now
    delivered = Counter(str(e["event_id"]) for e in fake_graph.accepted_events())
    assert set(delivered) == set(ids), "none missing, nothing else"
    twice = sorted(eid for eid, n in delivered.items() if n > 1)
    assert twice == [], f"{len(twice)} events delivered more than once: {twice[:5]}"

    # every worker process (not the supervisors) reads the one stream
    deadline = time.monotonic() + 10
    pids = consumer_pids(redis_url)
    while len(pids) < 2 * WORKERS and time.monotonic() < deadline:
        time.sleep(0.1)
        pids = consumer_pids(redis_url)
    assert len(pids) == 2 * WORKERS, f"consumers of the shared stream: {sorted(pids)}"
    assert not pids & {supervisor_pid(s) for s in servers}, "a supervisor process consumed"
