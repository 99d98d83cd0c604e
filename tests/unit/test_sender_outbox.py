"""The sender as the outbox's consumer: Retry-After pauses the destination, too-old events and
unknown destinations become dead letters, stored entries find the current token, the number of
claimed entries is bounded, and a durable outbox keeps what the drain did not deliver."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx

from tagserver.delivery.channels import MetaChannel
from tagserver.delivery.drops import DropCounter
from tagserver.delivery.outbox import MemoryOutbox, NewEntry, Outbox
from tagserver.delivery.outbox_sqlite import SqliteOutbox
from tagserver.delivery.retry import RetryPolicy
from tagserver.delivery.sender import Sender, encode_payload
from tagserver.secret import Secret
from tagserver.tags import Outbound
from tagserver.tags.meta import MetaDestination

GRAPH = "https://graph.test"
PIXEL = "1111111111"
FAST = RetryPolicy(base_delay=0.01, max_delay=0.02, max_attempts=None)


def destination(token: str = "EAAG-token-1") -> MetaDestination:
    return MetaDestination(PIXEL, "v25.0", Secret(token), None)


def event(event_id: str, *, age_s: int = 60) -> dict[str, Any]:
    return {"event_name": "Lead", "event_time": int(time.time()) - age_s, "event_id": event_id,
            "action_source": "website", "user_data": {"client_user_agent": "UA"}}  # fmt: skip


def ok(request: httpx.Request) -> httpx.Response:
    count = len(json.loads(request.content)["data"])
    return httpx.Response(200, json={"events_received": count, "fbtrace_id": "T"})


def make_sender(
    handler: Any, outbox: Outbox, *, destinations: tuple[MetaDestination, ...] = (),
    policy: RetryPolicy = FAST, max_held: int = 20_000, drops: DropCounter | None = None,
) -> tuple[Sender, httpx.AsyncClient]:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    sender = Sender(
        client, outbox=outbox, channels={MetaDestination: MetaChannel(GRAPH)},
        drops=drops or DropCounter(), policy=policy, destinations=destinations,
        flush_interval=0.01, max_held=max_held,
    )  # fmt: skip
    return sender, client


def test_retry_after_pauses_the_destination() -> None:
    times: list[float] = []
    answers = iter([httpx.Response(429, headers={"retry-after": "1"},
                                   json={"error": {"code": 4, "message": "limit"}})])  # fmt: skip

    def handler(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        return next(answers, None) or ok(request)

    async def main() -> None:
        outbox = MemoryOutbox()
        sender, client = make_sender(handler, outbox)
        await sender.start()
        await sender.submit([Outbound(destination(), event("a"))])
        await asyncio.sleep(0.2)
        await sender.submit([Outbound(destination(), event("b"))])  # arrives during the pause
        await sender.stop(timeout=5)
        await client.aclose()
        assert (await outbox.stats()).depth == 0

    asyncio.run(main())
    assert len(times) == 2, "a and b retried together after the pause"
    assert times[1] - times[0] >= 0.95


def test_events_over_seven_days_old_are_dead_letters_without_a_request() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return ok(request)

    async def main() -> None:
        outbox = MemoryOutbox()
        drops = DropCounter()
        sender, client = make_sender(handler, outbox, drops=drops)
        await sender.start()
        await sender.submit([Outbound(destination(), event("old", age_s=7 * 86400 + 10)),
                             Outbound(destination(), event("fresh"))])  # fmt: skip
        await sender.stop(timeout=5)
        await client.aclose()
        (dead,) = await outbox.dead_letters()
        assert (dead.entry.event_id, dead.failure.reason) == ("old", "too_old")
        assert drops.snapshot() == {f"meta:{PIXEL}/too_old": 1}

    asyncio.run(main())
    assert [e["event_id"] for e in json.loads(requests[0].content)["data"]] == ["fresh"]


def test_stored_entries_use_the_token_of_the_current_container(tmp_path: Path) -> None:
    """An entry stored by an earlier run (or replayed) is sent with today's token: the outbox
    holds a key, never the token."""
    tokens: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        tokens.append(json.loads(request.content)["access_token"])
        return ok(request)

    async def main() -> None:
        outbox = SqliteOutbox(tmp_path / "o.sqlite3")
        await outbox.open()
        key = MetaChannel(GRAPH).key(destination())
        await outbox.put([NewEntry(key, encode_payload(event("kept")), "kept")])
        raw = (tmp_path / "o.sqlite3").read_bytes() + (tmp_path / "o.sqlite3-wal").read_bytes()
        assert b"EAAG" not in raw
        sender, client = make_sender(handler, outbox, destinations=(destination("EAAG-new-2"),))
        await sender.start()
        await sender.stop(timeout=5)
        await client.aclose()
        assert (await outbox.stats()).depth == 0
        await outbox.close()

    asyncio.run(main())
    assert tokens == ["EAAG-new-2"]


def test_an_entry_no_tag_sends_to_is_a_dead_letter() -> None:
    async def main() -> None:
        outbox = MemoryOutbox()
        await outbox.put([NewEntry("meta:999:v25.0", b'{"event_id":"x"}', "x")])
        sender, client = make_sender(ok, outbox)
        await sender.start()
        await sender.stop(timeout=5)
        await client.aclose()
        (dead,) = await outbox.dead_letters()
        assert dead.failure.reason == "unknown_destination"

    asyncio.run(main())


def test_claimed_entries_are_bounded_the_rest_waits_in_the_outbox() -> None:
    sizes: list[int] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sizes.append(len(json.loads(request.content)["data"]))
        await asyncio.sleep(0.05)
        return ok(request)

    async def main() -> None:
        outbox = MemoryOutbox()
        sender, client = make_sender(handler, outbox, max_held=10)
        await sender.start()
        await sender.submit([Outbound(destination(), event(f"e{i}")) for i in range(35)])
        await asyncio.sleep(0.02)
        assert sender.pending <= 10
        await sender.stop(timeout=5)
        await client.aclose()
        assert (await outbox.stats()).depth == 0

    asyncio.run(main())
    assert max(sizes) <= 10 and sum(sizes) == 35


def test_a_durable_outbox_keeps_what_the_drain_did_not_deliver(tmp_path: Path) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="<html>down</html>")

    async def main() -> None:
        outbox = SqliteOutbox(tmp_path / "o.sqlite3")
        await outbox.open()
        drops = DropCounter()
        sender, client = make_sender(down, outbox, drops=drops)
        await sender.start()
        await sender.submit([Outbound(destination(), event(f"e{i}")) for i in range(3)])
        await sender.stop(timeout=0.3)
        await client.aclose()
        stats = await outbox.stats()
        assert (stats.depth, stats.leased, stats.dead) == (3, 0, 0)
        assert drops.snapshot() == {}, "nothing is dropped: it waits for the next start"
        await outbox.close()

    asyncio.run(main())


def test_max_attempts_makes_a_dead_letter_with_the_last_status() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": {"code": 2, "fbtrace_id": "Ftrace"}})

    async def main() -> None:
        outbox = MemoryOutbox()
        policy = RetryPolicy(base_delay=0.01, max_delay=0.01, max_attempts=3)
        sender, client = make_sender(down, outbox, policy=policy)
        await sender.start()
        await sender.submit([Outbound(destination(), event("e1"))])
        await sender.stop(timeout=5)
        await client.aclose()
        (dead,) = await outbox.dead_letters()
        failure = dead.failure
        assert (failure.reason, failure.status, failure.code, failure.attempts) == (
            "retries_exhausted", 503, 2, 3)
        assert failure.fbtrace_id == "Ftrace"

    asyncio.run(main())


def test_a_running_sender_sends_what_it_stored_without_claiming_it(tmp_path: Path) -> None:
    """Submitted events are stored leased to the sender (one write) and sent from there: the
    claims read nothing back, and every lease is gone once they are acknowledged."""
    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sizes.append(len(json.loads(request.content)["data"]))
        return ok(request)

    async def main() -> None:
        outbox = SqliteOutbox(tmp_path / "o.sqlite3")
        await outbox.open()
        claimed: list[str] = []
        original = outbox.claim

        async def claim(limit: int) -> list[Any]:
            found = await original(limit)
            claimed.extend(e.event_id for e in found)
            return found

        outbox.claim = claim  # type: ignore[method-assign]
        sender, client = make_sender(handler, outbox)
        await sender.start()
        await asyncio.gather(
            *(sender.submit([Outbound(destination(), event(f"e{i}"))]) for i in range(40))
        )
        deadline = time.monotonic() + 5
        while sender.delivered < 40 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await sender.stop(timeout=1)
        await client.aclose()
        stats = await outbox.stats()
        assert (sender.delivered, stats.depth, stats.leased) == (40, 0, 0)
        assert claimed == [], "nothing was read back"
        await outbox.close()

    asyncio.run(main())
    assert sum(sizes) == 40


def test_a_submit_that_outlives_stop_gives_its_leases_back() -> None:
    """A put that finishes after the sender stopped: its entries are released (nothing would
    renew their leases), so the next start claims them at once."""
    gate = asyncio.Event()

    class SlowOutbox(MemoryOutbox):
        async def put_leased(self, entries: Any) -> list[Any]:
            stored = await super().put_leased(entries)
            await gate.wait()
            return stored

    async def main() -> None:
        outbox = SlowOutbox()
        sender, client = make_sender(ok, outbox)
        await sender.start()
        submit = asyncio.create_task(sender.submit([Outbound(destination(), event("late"))]))
        await asyncio.sleep(0.01)
        await sender.stop(timeout=0.05)
        gate.set()
        await submit
        await client.aclose()
        assert [e.event_id for e in await outbox.claim(10)] == ["late"]

    asyncio.run(main())


def test_a_fill_before_the_flush_interval_sends_whole_batches_only() -> None:
    """A full batch waiting makes the sender fill early; the entries past the last whole batch
    wait for the flush interval (here: the drain) instead of going out as a small batch."""
    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sizes.append(len(json.loads(request.content)["data"]))
        return ok(request)

    async def main() -> None:
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        sender = Sender(
            client, outbox=MemoryOutbox(), channels={MetaDestination: MetaChannel(GRAPH)},
            drops=DropCounter(), policy=FAST, flush_interval=30.0,
        )  # fmt: skip
        await sender.start()
        await asyncio.sleep(0.01)  # the first fill, of nothing
        for start in range(0, 2300, 300):  # each full batch found with 200 or 100 more
            await asyncio.gather(*(
                sender.submit([Outbound(destination(), event(f"e{i}"))])
                for i in range(start, min(start + 300, 2300))
            ))  # fmt: skip
        deadline = time.monotonic() + 5
        while sender.delivered < 2000 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert sizes == [1000, 1000]
        await sender.stop(timeout=5)
        await client.aclose()

    asyncio.run(main())
    assert sizes == [1000, 1000, 300]
