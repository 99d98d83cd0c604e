"""tagserver.delivery.sender: batching, retries, bisection and drain of the Meta channel.

Every test drives the sender inside ``asyncio.run`` against an ``httpx.MockTransport``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tagserver.delivery.channels import MetaChannel
from tagserver.delivery.drops import DropCounter
from tagserver.delivery.outbox import MemoryOutbox
from tagserver.delivery.retry import RetryPolicy
from tagserver.delivery.sender import Sender
from tagserver.secret import Secret
from tagserver.tags import Outbound
from tagserver.tags.meta import MetaDestination

GRAPH = "https://graph.test"
TOKEN = "EAAG-unit-test-token-0123456789"
PIXEL_A = "1111111111"
PIXEL_B = "2222222222"
NOW = int(time.time())
FAST = RetryPolicy(base_delay=0.01, max_delay=0.02, max_attempts=4)


def destination(pixel: str = PIXEL_A, *, token: str = TOKEN) -> MetaDestination:
    return MetaDestination(pixel, "v25.0", Secret(token), None)


def event(event_id: str) -> dict[str, Any]:
    return {
        "event_name": "Purchase",
        "event_time": NOW - 60,  # recent: older than 7 days is a dead letter (too_old)
        "event_id": event_id,
        "action_source": "website",
        "user_data": {"client_user_agent": "UA"},
    }


def ok(request: httpx.Request) -> httpx.Response:
    count = len(json.loads(request.content)["data"])
    return httpx.Response(200, json={"events_received": count, "messages": [], "fbtrace_id": "T"})


def error(status: int, code: int, subcode: int | None = None) -> httpx.Response:
    err: dict[str, Any] = {"message": "m", "code": code, "fbtrace_id": "Trace"}
    if subcode is not None:
        err["error_subcode"] = subcode
    return httpx.Response(status, json={"error": err})


@dataclass
class Run:
    """What one sender run did: the requests seen, the drop counts, the delivered count."""

    requests: list[httpx.Request] = field(default_factory=list)
    drops: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    stop_seconds: float = 0.0

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]

    def ids(self, index: int) -> list[str]:
        return [e["event_id"] for e in self.bodies()[index]["data"]]


def run_sender(
    handler: Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]],
    outbound: Iterable[Outbound],
    *,
    policy: RetryPolicy = FAST,
    flush_interval: float = 0.01,
    stop_timeout: float = 5.0,
    wait_before_stop: float = 0.0,
) -> Run:
    """Start a sender, submit ``outbound``, optionally wait, then ``stop(timeout=...)``."""
    result = Run()

    async def record(request: httpx.Request) -> httpx.Response:
        result.requests.append(request)
        answer = handler(request)
        if isinstance(answer, Awaitable):
            answer = await answer
        assert isinstance(answer, httpx.Response)
        return answer

    async def main() -> None:
        drops = DropCounter()
        async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
            sender = Sender(
                client,
                outbox=MemoryOutbox(),
                channels={MetaDestination: MetaChannel(GRAPH)},
                drops=drops,
                policy=policy,
                flush_interval=flush_interval,
            )
            await sender.start()
            for item in outbound:
                await sender.submit([item])
            if wait_before_stop:
                await asyncio.sleep(wait_before_stop)
            started = time.monotonic()
            await sender.stop(timeout=stop_timeout)
            result.stop_seconds = time.monotonic() - started
            result.drops = drops.snapshot()
            result.delivered = sender.delivered

    asyncio.run(main())
    return result


def events_for(dest: MetaDestination, ids: Iterable[str]) -> list[Outbound]:
    return [Outbound(dest, event(i)) for i in ids]


# ---------------------------------------------------------------------------------------------
# batching


def test_2500_events_go_in_three_requests_of_at_most_1000() -> None:
    ids = [f"e{i}" for i in range(2500)]
    run = run_sender(ok, events_for(destination(), ids))
    sizes = [len(body["data"]) for body in run.bodies()]
    assert sorted(sizes) == [500, 1000, 1000]
    sent = [e["event_id"] for body in run.bodies() for e in body["data"]]
    assert sorted(sent) == sorted(ids), "every event exactly once"
    assert run.delivered == 2500
    assert run.drops == {}


def test_two_pixels_get_separate_requests() -> None:
    a, b = destination(PIXEL_A), destination(PIXEL_B)
    outbound = [
        *events_for(a, ["a1", "a2"]),
        *events_for(b, ["b1"]),
        *events_for(a, ["a3"]),
    ]
    run = run_sender(ok, outbound)
    assert len(run.requests) == 2
    by_path = {r.url.path: json.loads(r.content) for r in run.requests}
    assert set(by_path) == {f"/v25.0/{PIXEL_A}/events", f"/v25.0/{PIXEL_B}/events"}
    assert [e["event_id"] for e in by_path[f"/v25.0/{PIXEL_A}/events"]["data"]] == [
        "a1",
        "a2",
        "a3",
    ]
    assert [e["event_id"] for e in by_path[f"/v25.0/{PIXEL_B}/events"]["data"]] == ["b1"]
    assert run.delivered == 4


def test_request_shape_and_token_only_in_the_body() -> None:
    run = run_sender(ok, events_for(destination(), ["e1"]))
    (request,) = run.requests
    assert request.method == "POST"
    assert str(request.url) == f"{GRAPH}/v25.0/{PIXEL_A}/events"
    assert TOKEN not in str(request.url)
    assert request.url.query == b""
    assert TOKEN not in str(request.headers)
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.content)
    assert body["access_token"] == TOKEN
    assert body["data"] == [event("e1")]
    assert "test_event_code" not in body


def test_test_event_code_of_the_destination_is_sent() -> None:
    dest = MetaDestination(PIXEL_A, "v25.0", Secret(TOKEN), "TEST4242")
    run = run_sender(ok, events_for(dest, ["e1"]))
    assert json.loads(run.requests[0].content)["test_event_code"] == "TEST4242"


def test_flush_loop_sends_without_stop() -> None:
    # the periodic flush delivers queued events before stop is called
    run = run_sender(ok, events_for(destination(), ["e1"]), wait_before_stop=0.3)
    assert len(run.requests) == 1
    assert run.delivered == 1


# ---------------------------------------------------------------------------------------------
# retries


def test_transient_then_success_is_delivered_once_with_the_same_bytes() -> None:
    answers = iter([httpx.Response(503, text="<html>busy</html>"), None])

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        return answer if answer is not None else ok(request)

    run = run_sender(handler, events_for(destination(), ["evt-1", "evt-2"]))
    assert len(run.requests) == 2
    assert run.requests[0].content == run.requests[1].content
    assert run.ids(0) == run.ids(1) == ["evt-1", "evt-2"]
    assert run.delivered == 2
    assert run.drops == {}


def test_transient_meta_code_is_retried() -> None:
    answers = iter([error(400, 2), error(400, 80004), None])

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        return answer if answer is not None else ok(request)

    run = run_sender(handler, events_for(destination(), ["evt-1"]))
    assert len(run.requests) == 3
    assert len({r.content for r in run.requests}) == 1
    assert run.delivered == 1
    assert run.drops == {}


def test_network_error_is_retried() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("refused", request=request)
        return ok(request)

    run = run_sender(handler, events_for(destination(), ["evt-1"]))
    assert calls["n"] == 2
    assert run.delivered == 1
    assert run.drops == {}


def test_retries_exhausted_is_counted() -> None:
    policy = RetryPolicy(base_delay=0.01, max_delay=0.02, max_attempts=3)
    run = run_sender(
        lambda request: httpx.Response(502, text="bad gateway"),
        events_for(destination(), ["e1", "e2"]),
        policy=policy,
    )
    assert len(run.requests) == 3
    assert run.delivered == 0
    assert run.drops == {f"meta:{PIXEL_A}/retries_exhausted": 2}


# ---------------------------------------------------------------------------------------------
# permanent rejections


def test_rejected_batch_is_bisected_and_good_events_delivered() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        ids = [e["event_id"] for e in json.loads(request.content)["data"]]
        if "bad" in ids:
            return error(400, 100, 2804003)
        return ok(request)

    run = run_sender(handler, events_for(destination(), ["g1", "g2", "g3", "bad"]))
    assert run.ids(0) == ["g1", "g2", "g3", "bad"], "first sent as one batch"
    delivered = [
        e["event_id"]
        for request in run.requests
        for e in json.loads(request.content)["data"]
        if "bad" not in [x["event_id"] for x in json.loads(request.content)["data"]]
    ]
    assert sorted(delivered) == ["g1", "g2", "g3"]
    assert run.delivered == 3
    assert run.drops == {f"meta:{PIXEL_A}/rejected": 1}
    # the bad event was tried on its own before being dropped
    assert any(ids == ["bad"] for ids in (run.ids(i) for i in range(len(run.requests))))


def test_token_error_is_not_bisected() -> None:
    run = run_sender(
        lambda request: error(400, 190), events_for(destination(), ["e1", "e2", "e3", "e4"])
    )
    assert len(run.requests) == 1
    assert run.delivered == 0
    assert run.drops == {f"meta:{PIXEL_A}/rejected": 4}


def test_permission_error_is_not_bisected() -> None:
    run = run_sender(lambda request: error(403, 200), events_for(destination(), ["e1", "e2"]))
    assert len(run.requests) == 1
    assert run.drops == {f"meta:{PIXEL_A}/rejected": 2}


# ---------------------------------------------------------------------------------------------
# shutdown


def test_stop_flushes_queued_events_before_returning() -> None:
    # a flush interval far beyond the test: only stop() can have sent them
    run = run_sender(ok, events_for(destination(), ["e1", "e2"]), flush_interval=3600)
    assert len(run.requests) == 1
    assert run.ids(0) == ["e1", "e2"]
    assert run.delivered == 2
    assert run.drops == {}


def test_never_answering_destination_is_cut_at_the_drain_timeout() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    run = run_sender(
        hang, events_for(destination(), ["e1", "e2", "e3"]), flush_interval=3600, stop_timeout=0.2
    )
    assert len(run.requests) == 1
    assert run.delivered == 0
    assert 0.15 <= run.stop_seconds < 2.0
    shutdown = {k: v for k, v in run.drops.items() if k.endswith("/shutdown")}
    assert sum(shutdown.values()) == 3
    assert set(run.drops) == set(shutdown)


def test_retrying_destination_is_cut_at_the_drain_timeout() -> None:
    policy = RetryPolicy(base_delay=10.0, max_delay=10.0, max_attempts=5)
    run = run_sender(
        lambda request: httpx.Response(503, text="busy"),
        events_for(destination(), ["e1"]),
        policy=policy,
        flush_interval=3600,
        stop_timeout=0.2,
    )
    assert len(run.requests) == 1
    assert run.stop_seconds < 2.0
    assert sum(v for k, v in run.drops.items() if k.endswith("/shutdown")) == 1


def test_an_event_that_cannot_be_encoded_is_isolated_and_counted() -> None:
    dest = destination()
    items = events_for(dest, ["e1", "e2", "e3"])
    items.insert(1, Outbound(dest, {**event("bad"), "event_source_url": "https://x/\udcff"}))
    result = run_sender(ok, items, wait_before_stop=0.1)
    delivered = sorted(e for i in range(len(result.requests)) for e in result.ids(i))
    assert delivered == ["e1", "e2", "e3"]
    assert result.drops == {f"meta:{PIXEL_A}/invalid_event": 1}


# ---------------------------------------------------------------------------------------------
# GA4: the hits of one batched body keep their order


def test_ga4_hits_of_one_body_go_out_one_after_the_other_in_order() -> None:
    """Lines of one body are chained (never two in flight, sent in page order, a retry before
    the next line); other requests' hits still go out concurrently."""
    from tagserver.delivery.channels import GA4Channel
    from tagserver.tags.ga4 import GA4Destination

    dest = GA4Destination("G-ORDER1")
    bodies = {"q=A": [f"en=a{i}" for i in range(4)], "q=B": [f"en=b{i}" for i in range(4)]}
    outbound = [Outbound(dest, {"query": query, "body": line, "user_agent": "UA",
                                "event_id": line, "event_name": line})
                for query, lines in bodies.items() for line in lines]
    outbound += [Outbound(dest, {"query": f"q=C{i}", "body": "", "user_agent": "",
                                 "event_id": f"c{i}", "event_name": "c"}) for i in range(3)]
    in_flight: dict[str, int] = {}
    most: dict[str, int] = {}
    done: list[str] = []
    overall = [0, 0]
    failed_once: set[str] = set()

    async def handler(request: httpx.Request) -> httpx.Response:
        query = request.url.query.decode().split("&_uip")[0].split("&")[0]
        key = query if query in bodies else "other"
        in_flight[key] = in_flight.get(key, 0) + 1
        most[key] = max(most.get(key, 0), in_flight[key])
        overall[0] += 1
        overall[1] = max(overall)
        line = request.content.decode() or query
        await asyncio.sleep(0.03 if line.endswith("0") else 0.005)  # the first line is slowest
        in_flight[key] -= 1
        overall[0] -= 1
        if line == "en=a1" and line not in failed_once:
            failed_once.add(line)
            return httpx.Response(503)
        done.append(line)
        return httpx.Response(204)

    drops = DropCounter()

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            sender = Sender(client, outbox=MemoryOutbox(),
                            channels={GA4Destination: GA4Channel("https://ga.test")},
                            drops=drops, policy=FAST, flush_interval=0.01)
            await sender.start()
            for item in outbound:
                await sender.submit([item])
            await sender.stop(timeout=5)

    asyncio.run(main())
    assert drops.snapshot() == {}
    assert [line for line in done if line.startswith("en=a")] == bodies["q=A"]
    assert [line for line in done if line.startswith("en=b")] == bodies["q=B"]
    assert most["q=A"] == most["q=B"] == 1
    assert overall[1] >= 3  # the two bodies and the query-only hits still overlap


def test_a_stored_payload_holds_only_its_own_size_in_memory() -> None:
    """orjson's output keeps its whole write buffer (about 8 KB for a value under 1 KB); the
    sender stores a copy of the payload's own size, since it holds entries until they are
    acknowledged (up to ``max_held`` of them while Meta is down)."""
    import tracemalloc

    n = 300

    async def main() -> int:
        async with httpx.AsyncClient(transport=httpx.MockTransport(ok)) as client:
            outbox = MemoryOutbox()
            sender = Sender(
                client,
                outbox=outbox,
                channels={MetaDestination: MetaChannel(GRAPH)},
                drops=DropCounter(),
                policy=FAST,
            )
            items = events_for(destination(), [f"ev-{i:04d}" for i in range(n)])
            payload_size = len(json.dumps(items[0].payload, separators=(",", ":")))
            assert payload_size < 1000
            tracemalloc.start()
            try:
                before = tracemalloc.take_snapshot()
                for item in items:
                    await sender.submit([item])  # not started: stored, not sent
                after = tracemalloc.take_snapshot()
            finally:
                tracemalloc.stop()
            assert len(await outbox.claim(n + 1)) == n
            grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
            return grown // n

    per_event = asyncio.run(main())
    assert per_event < 3000, f"{per_event} bytes held per stored event"
