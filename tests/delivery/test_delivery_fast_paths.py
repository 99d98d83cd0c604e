"""The cheaper paths of delivery keep their behaviour: the shared JSON encoder writes what
``json.dumps`` wrote, the SQLite outbox's group commit isolates a cancelled put and reports a
failed group to each of its puts, the committer thread hands results and errors back in order, the
Redis group writer does the same, and the age check still lets Meta's store events live 62 days."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagserver.delivery.channels import compact_json
from tagserver.delivery.drops import DropCounter
from tagserver.delivery.outbox import GroupWriter, MemoryOutbox, NewEntry
from tagserver.delivery.outbox_sqlite import SqliteOutbox
from tagserver.delivery.worker_thread import WorkerThread
from tagserver.exceptions import OutboxError
from tagserver.tags import Outbound
from tests.unit.test_sender_outbox import FAST, destination, event, make_sender, ok

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_compact_json_is_byte_for_byte_json_dumps(value: Any) -> None:
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert compact_json(value) == expected.encode("utf-8")


def test_compact_json_refuses_what_json_dumps_refused_with_the_same_error_class() -> None:
    circular: dict[str, Any] = {}
    circular["self"] = circular
    with pytest.raises(ValueError):
        compact_json(circular)
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValueError):  # json.dumps raised RecursionError, which nobody caught
        compact_json(deep)
    with pytest.raises(ValueError):
        compact_json({"name": "lone \ud800 surrogate"})
    with pytest.raises(TypeError):
        compact_json({"when": object()})
    assert compact_json({"n": math.inf}) == b'{"n":Infinity}'  # as json.dumps, allow_nan


def test_compact_json_without_the_c_encoder_writes_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tagserver.delivery.channels as channels

    value = {"a": [1, 2.5, -0.0, 1e300, None, True], "é": {"k": "v\u2028\x00"}, "n": math.inf}
    fast = compact_json(value)
    monkeypatch.setattr(channels, "_c_encoder", None)
    assert compact_json(value) == fast
    with pytest.raises(TypeError, match="not JSON serializable"):
        compact_json({"when": object()})
    circular: list[Any] = []
    circular.append(circular)
    with pytest.raises(ValueError):
        compact_json(circular)


def entry(event_id: str, *, event_time: int | None = None) -> NewEntry:
    return NewEntry("meta:1:v25.0", b'{"event_id":"%s"}' % event_id.encode(), event_id, event_time)


def test_sqlite_puts_of_one_turn_share_one_insert_and_all_return(tmp_path: Path) -> None:
    outbox = SqliteOutbox(tmp_path / "o.sqlite3")

    async def main() -> None:
        await outbox.open()
        commits = outbox._commits
        await asyncio.gather(*(outbox.put([entry(f"p{i}"), entry(f"q{i}")]) for i in range(50)))
        assert outbox._commits - commits == 1
        claimed = await outbox.claim(1000)
        assert [e.event_id for e in claimed] == [x for i in range(50) for x in (f"p{i}", f"q{i}")]
        assert len({e.created_at for e in claimed}) == 1
        await outbox.close()

    asyncio.run(main())


def test_a_cancelled_sqlite_put_leaves_the_others_of_its_group(tmp_path: Path) -> None:
    outbox = SqliteOutbox(tmp_path / "o.sqlite3")

    async def main() -> None:
        await outbox.open()
        puts = [asyncio.create_task(outbox.put([entry(f"c{i}")])) for i in range(5)]
        await asyncio.sleep(0)  # all five are queued for the same transaction
        puts[2].cancel()
        results = await asyncio.gather(*puts, return_exceptions=True)
        assert isinstance(results[2], asyncio.CancelledError)
        assert [r for i, r in enumerate(results) if i != 2] == [None] * 4
        assert (await outbox.stats()).depth == 5  # the cancelled hit's entry was stored anyway
        await outbox.close()

    asyncio.run(main())


def test_a_failed_sqlite_group_fails_each_of_its_puts_and_the_next_group_works(
    tmp_path: Path,
) -> None:
    """A value SQLite cannot hold (an integer over 64 bits) fails the transaction: every put of
    the group gets an OutboxError (it used to leave them waiting for ever)."""
    outbox = SqliteOutbox(tmp_path / "o.sqlite3")

    async def main() -> None:
        await outbox.open()
        results = await asyncio.wait_for(
            asyncio.gather(
                outbox.put([entry("fine")]),
                outbox.put([entry("huge", event_time=2**70)]),
                return_exceptions=True,
            ),
            timeout=10,
        )
        assert all(isinstance(r, OutboxError) for r in results), results
        await asyncio.wait_for(outbox.put([entry("after")]), timeout=10)
        assert [e.event_id for e in await outbox.claim(10)] == ["after"]
        await outbox.close()

    asyncio.run(main())


def test_sqlite_put_before_open_is_an_outbox_error(tmp_path: Path) -> None:
    outbox = SqliteOutbox(tmp_path / "o.sqlite3")
    with pytest.raises(OutboxError, match="not open"):
        asyncio.run(outbox.put([entry("x")]))


def test_worker_thread_runs_calls_in_order_and_hands_back_errors() -> None:
    worker = WorkerThread("test-worker")
    seen: list[int] = []

    def record(n: int) -> int:
        seen.append(n)
        return n * 2

    def fail() -> None:
        raise LookupError("boom")

    async def main() -> None:
        results = await asyncio.gather(*(worker.call(record, n) for n in range(20)))
        assert results == [n * 2 for n in range(20)]
        with pytest.raises(LookupError, match="boom"):
            await worker.call(fail)
        assert await worker.call(record, 99) == 198

    asyncio.run(main())
    assert seen == [*range(20), 99]
    worker.stop(timeout=5)
    assert worker._thread is None


def test_group_writer_isolates_a_cancelled_put_and_reports_errors_to_every_put() -> None:
    written: list[list[str]] = []
    fail_next = False

    async def write(group: list[NewEntry]) -> None:
        await asyncio.sleep(0.01)
        if fail_next:
            raise OutboxError("down")
        written.append([e.event_id for e in group])

    async def main() -> None:
        nonlocal fail_next
        writer = GroupWriter(write)
        puts = [asyncio.create_task(writer.put([entry(f"w{i}")])) for i in range(4)]
        await asyncio.sleep(0)
        puts[1].cancel()
        results = await asyncio.gather(*puts, return_exceptions=True)
        assert isinstance(results[1], asyncio.CancelledError)
        assert [results[0], results[2], results[3]] == [None, None, None]
        fail_next = True
        failed = await asyncio.gather(
            writer.put([entry("x")]), writer.put([entry("y")]), return_exceptions=True
        )
        assert all(isinstance(r, OutboxError) for r in failed)

    asyncio.run(main())
    assert written == [["w0", "w1", "w2", "w3"]]  # the cancelled put's entry is written too


def test_store_events_live_62_days_others_7() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return ok(request)

    def store(event_id: str, age_days: int) -> dict[str, Any]:
        return {**event(event_id, age_s=age_days * 86400), "action_source": "physical_store"}

    async def main() -> None:
        outbox = MemoryOutbox()
        drops = DropCounter()
        sender, client = make_sender(handler, outbox, drops=drops, policy=FAST)
        await sender.start()
        await sender.submit([
            Outbound(destination(), store("store-30d", 30)),
            Outbound(destination(), store("store-70d", 70)),
            Outbound(destination(), event("web-8d", age_s=8 * 86400)),
            Outbound(destination(), event("web-1d", age_s=86400)),
        ])  # fmt: skip
        await sender.stop(timeout=5)
        await client.aclose()
        dead = sorted(d.entry.event_id for d in await outbox.dead_letters())
        assert dead == ["store-70d", "web-8d"]

    asyncio.run(main())
    sent = [e["event_id"] for r in requests for e in json.loads(r.content)["data"]]
    assert sorted(sent) == ["store-30d", "web-1d"]


def test_a_reload_remembers_destinations_again() -> None:
    """Routes are kept per destination object; after use_destinations (a reload) a destination
    is remembered again, so its stored entries still find it."""

    async def main() -> None:
        outbox = MemoryOutbox()
        sender, client = make_sender(ok, outbox)
        target = destination()
        await sender.submit([Outbound(target, event("before"))])
        sender.use_destinations([], secrets={})  # the new container lists no destination
        await sender.submit([Outbound(target, event("after"))])
        assert sender._destination(sender._channel(target).key(target)) is target
        await client.aclose()

    asyncio.run(main())


def test_sender_submit_stores_what_it_stored_before(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = MemoryOutbox()
        sender, client = make_sender(ok, outbox)
        payload = {**event("same", age_s=5), "event_time": int(time.time()), "v": "é"}
        await sender.submit([Outbound(destination(), payload)])
        (stored,) = await outbox.claim(10)
        assert stored.payload == json.dumps(
            payload, separators=(",", ":"), ensure_ascii=False
        ).encode()
        assert (stored.event_id, stored.event_time) == ("same", payload["event_time"])
        await client.aclose()

    asyncio.run(main())


def test_an_event_time_sqlite_cannot_hold_fails_no_put(tmp_path: Path) -> None:
    """The sender stores such an event without its event_time (the payload keeps it): the hit
    and the others of its group commit are stored."""

    async def main() -> None:
        outbox = SqliteOutbox(tmp_path / "o.sqlite3")
        await outbox.open()
        sender, client = make_sender(ok, outbox)
        await asyncio.wait_for(asyncio.gather(
            sender.submit([Outbound(destination(), {**event("huge"), "event_time": 10**30})]),
            sender.submit([Outbound(destination(), event("fine"))]),
        ), timeout=10)  # fmt: skip
        stored = {e.event_id: e for e in await outbox.claim(10)}
        assert stored["huge"].event_time is None
        assert b'"event_time":1000000000000000000000000000000' in stored["huge"].payload
        assert stored["fine"].event_time is not None
        await client.aclose()
        await outbox.close()

    asyncio.run(main())


def test_the_dry_run_recorder_masks_tokens_and_secrets_when_read() -> None:
    from tagserver.delivery.recorder import RecordingTransport
    from tagserver.secret import MASK, Secret

    recorder = RecordingTransport(limit=2)
    secret = Secret("crm-secret-value-123")

    async def main() -> None:
        async with httpx.AsyncClient(transport=recorder) as client:
            answer = await client.post(
                "https://graph.test/v25.0/1/events",
                content=b'{"data":[{"event_id":"a"},{"event_id":"b"}],"access_token":"EAAB-x"}',
            )
            assert answer.json()["events_received"] == 2
            await client.post(f"https://hook.test/x?key={secret.reveal()}",
                              json={"auth": secret.reveal(), "n": [1, {"k": "v"}]})  # fmt: skip
            assert (await client.get("https://hook.test/y")).status_code == 204

    asyncio.run(main())
    first = recorder.records()
    assert [r["method"] for r in first] == ["POST", "GET"]  # the oldest fell out (limit 2)
    (hook, _) = first
    assert hook["url"] == f"https://hook.test/x?key={MASK}"
    assert hook["json"] == {"auth": MASK, "n": [1, {"k": "v"}]}
    assert recorder.records() == first and recorder.records()[0] is hook  # masked once
    assert "crm-secret-value-123" not in json.dumps(first)

    meta = RecordingTransport()
    asyncio.run(_post(meta, b'{"data":[],"access_token":"EAAB-token-value"}'))
    (record,) = meta.records()
    assert record["json"] == {"data": [], "access_token": MASK}


async def _post(transport: httpx.AsyncBaseTransport, body: bytes) -> None:
    async with httpx.AsyncClient(transport=transport) as client:
        await client.post("https://graph.test/v25.0/1/events", content=body)
