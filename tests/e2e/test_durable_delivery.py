"""Durable delivery with real processes on loopback: an outage of the Graph API, a ``kill -9`` in
the middle of a load, with the SQLite outbox (one server) and the Redis outbox (two servers).

The promise under test: every event whose hit got a 2xx reaches the Graph API; none is lost. An
outage loses nothing and sends nothing twice; a kill may resend only what was in flight when the
process died (delivered, but its acknowledgement lost with the process).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.conftest import StartServer
from tests.e2e.load import HitLoad
from tests.fakes.graph import Failure, FakeGraphAPI

HITS = 2000
OUTAGE_S = 10.0
SERVICE_UNAVAILABLE = Failure(status=503, error_code=2, is_transient=True)
THROTTLED = Failure(status=429, error_code=4, is_transient=True, retry_after=1)
#: Short leases so a killed process's entries come back within seconds.
FAST_LEASE = {"TAGSERVER_OUTBOX_LEASE": "2", "TAGSERVER_RETRY_MAX_DELAY": "1"}

pytestmark = pytest.mark.slow


def accepted_ids(fake: FakeGraphAPI) -> Counter[str]:
    return Counter(str(e["event_id"]) for e in fake.accepted_events())


def wait_delivered(fake: FakeGraphAPI, wanted: set[str], timeout: float = 60.0) -> Counter[str]:
    fake.wait_for(
        lambda f: wanted <= set(accepted_ids(f)),
        timeout=timeout,
        what=f"{len(wanted)} accepted events",
    )
    return accepted_ids(fake)


def assert_same_bytes_on_every_attempt(fake: FakeGraphAPI) -> None:
    """Retries resend the stored event: one event_id, one body, however many attempts."""
    seen: dict[str, dict[str, object]] = {}
    for event in fake.events_seen():
        first = seen.setdefault(str(event["event_id"]), event)
        assert event == first, f"event {event['event_id']} changed between attempts"


def run_outage(servers_env: dict[str, str], start_server: StartServer, fake: FakeGraphAPI,
               *, servers: int) -> None:
    procs = [start_server(env=servers_env) for _ in range(servers)]
    fake.fail_for(OUTAGE_S, SERVICE_UNAVAILABLE, THROTTLED)
    ids = [f"outage-{i:05d}" for i in range(HITS)]
    load = HitLoad(procs, ids).run()
    assert load.accepted() == set(ids), Counter(load.statuses.values())

    delivered = wait_delivered(fake, set(ids), timeout=OUTAGE_S + 40)
    first_accepted = min(r.received_at for r in fake.requests if r.accepted)
    during = sum(1 for t in load.answered_at.values() if t < first_accepted)
    assert during >= 500, f"only {during} hits were answered while the Graph API was down"
    time.sleep(0.5)  # anything sent twice would show up now
    delivered = accepted_ids(fake)
    assert set(delivered) == set(ids), "none missing, nothing else"
    twice = [eid for eid, n in delivered.items() if n > 1]
    assert twice == [], f"{len(twice)} events delivered more than once: {twice[:5]}"
    statuses = Counter(r.status for r in fake.requests)
    assert statuses[503] > 0 and statuses[429] > 0, statuses
    assert_same_bytes_on_every_attempt(fake)


def run_kill(servers_env: dict[str, str], start_server: StartServer, fake: FakeGraphAPI,
             *, servers: int, restart: bool) -> None:
    procs = [start_server(env=servers_env) for _ in range(servers)]
    # an outage until after the kill: the outbox holds everything accepted when it comes
    fake.fail_for(120.0, SERVICE_UNAVAILABLE, THROTTLED)
    fake.set_latency(0.02)
    ids = [f"kill-{i:05d}" for i in range(HITS)]
    load = HitLoad(procs, ids).start()
    deadline = time.monotonic() + 60
    while load.accepted_count < HITS // 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    victim = procs[0]
    assert victim.kill() == -9
    load.join()
    time.sleep(0.5)  # let the fake finish requests the dead process had in flight
    before_restart = set(accepted_ids(fake))
    fake.end_outage()
    if restart:
        procs[0] = start_server(env=servers_env)

    accepted = load.accepted()
    assert len(accepted) >= HITS // 3, Counter(load.statuses.values())
    assert accepted - before_restart, "everything was delivered before the kill: nothing tested"
    assert 0 in load.statuses.values(), "the kill came after the load, not in its middle"
    delivered = wait_delivered(fake, accepted, timeout=60)
    missing = accepted - set(delivered)
    assert not missing, f"{len(missing)} accepted events lost: {sorted(missing)[:5]}"
    twice = {eid for eid, n in delivered.items() if n > 1}
    assert twice <= before_restart, (
        "only events the killed process had in flight may be sent again: "
        f"{sorted(twice - before_restart)[:5]}"
    )
    assert_same_bytes_on_every_attempt(fake)


def test_outage_sqlite_nothing_lost_nothing_twice(
    start_server: StartServer, fake_graph: FakeGraphAPI
) -> None:
    run_outage(FAST_LEASE, start_server, fake_graph, servers=1)


def test_kill_9_then_restart_sqlite_delivers_every_accepted_event(
    start_server: StartServer, fake_graph: FakeGraphAPI
) -> None:
    run_kill(FAST_LEASE, start_server, fake_graph, servers=1, restart=True)


def test_outage_redis_two_servers_nothing_lost_nothing_twice(
    start_server: StartServer, fake_graph: FakeGraphAPI, redis_url: str
) -> None:
    run_outage({**FAST_LEASE, "TAGSERVER_OUTBOX": redis_url}, start_server, fake_graph,
               servers=2)


def test_kill_9_of_one_of_two_redis_servers_delivers_every_accepted_event(
    start_server: StartServer, fake_graph: FakeGraphAPI, redis_url: str
) -> None:
    # no restart: the surviving instance claims what the dead one held (XAUTOCLAIM)
    run_kill({**FAST_LEASE, "TAGSERVER_OUTBOX": redis_url}, start_server, fake_graph,
             servers=2, restart=False)
