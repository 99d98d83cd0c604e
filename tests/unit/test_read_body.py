"""read_body: the size limit, the slow-client timeout (408) and a client that goes away."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import ClientDisconnect, Request

from tagserver.exceptions import BodyTimeout, HitRejected, PayloadTooLarge
from tagserver.http import error_response, read_body


def _request(messages: list[dict[str, Any]], *, stall: bool = False) -> Request:
    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        if stall:
            await asyncio.Event().wait()  # a client that sends nothing more
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": "/e", "headers": [], "query_string": b""}
    return Request(scope, receive)


def test_chunks_are_joined() -> None:
    parts = [{"type": "http.request", "body": b"ab", "more_body": True},
             {"type": "http.request", "body": b"cd", "more_body": False}]  # fmt: skip
    assert asyncio.run(read_body(_request(parts), limit=10)) == b"abcd"


def test_over_the_limit_is_413_without_reading_on() -> None:
    parts = [{"type": "http.request", "body": b"x" * 8, "more_body": True},
             {"type": "http.request", "body": b"x" * 8, "more_body": True}]  # fmt: skip
    with pytest.raises(PayloadTooLarge):
        asyncio.run(read_body(_request(parts, stall=True), limit=10))


def test_a_stalled_body_is_408_after_the_timeout() -> None:
    parts = [{"type": "http.request", "body": b"{\"event", "more_body": True}]

    async def go() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(BodyTimeout) as info:
            await read_body(_request(parts, stall=True), limit=1000, timeout_s=0.2)
        assert info.value.status == 408
        return loop.time() - start

    took = asyncio.run(go())
    assert 0.15 < took < 2.0


def test_a_client_gone_mid_body_is_client_disconnect() -> None:
    parts = [{"type": "http.request", "body": b"{", "more_body": True}]
    with pytest.raises(ClientDisconnect):
        asyncio.run(read_body(_request(parts), limit=1000))


def test_another_cancel_stays_a_cancel_and_fast_reads_are_never_timed_out() -> None:
    async def go() -> None:
        reader = asyncio.ensure_future(
            read_body(_request([{"type": "http.request", "body": b"{", "more_body": True}],
                               stall=True), limit=1000, timeout_s=5.0))  # fmt: skip
        await asyncio.sleep(0.05)
        reader.cancel()  # e.g. the server shutting down
        with pytest.raises(asyncio.CancelledError):
            await reader
        # many quick reads while a sweeper runs with a short timeout: none is cancelled
        for _ in range(200):
            body = await read_body(
                _request([{"type": "http.request", "body": b"{}", "more_body": False}]),
                limit=1000, timeout_s=0.04,
            )
            assert body == b"{}"
            await asyncio.sleep(0.001)

    asyncio.run(go())


def test_the_given_loop_times_out_the_read_and_a_stale_one_is_noticed() -> None:
    parts = [{"type": "http.request", "body": b"{\"event", "more_body": True}]
    stale = asyncio.new_event_loop()  # not running this task: its current task is None
    stale.close()

    async def go(given: str) -> None:
        loop = asyncio.get_running_loop() if given == "running" else stale
        with pytest.raises(BodyTimeout):
            await read_body(_request(list(parts), stall=True), limit=1000, timeout_s=0.2,
                            loop=loop)  # fmt: skip
        body = await read_body(
            _request([{"type": "http.request", "body": b"{}", "more_body": False}]),
            limit=1000, loop=loop,
        )
        assert body == b"{}"

    asyncio.run(go("running"))
    asyncio.run(go("stale"))


@pytest.mark.parametrize(
    ("error", "closes"),
    [(BodyTimeout("request body too slow", errors=[]), True),
     (PayloadTooLarge("body too large", errors=[]), True),
     (HitRejected("bad", errors=[]), False)],
)  # fmt: skip
def test_an_answer_that_leaves_the_body_unread_closes_the_connection(
    error: HitRejected, closes: bool
) -> None:
    """408 and 413 come before the whole body was read: ``Connection: close`` makes uvicorn close
    the connection after the answer (a stalled client's connection stayed open)."""
    headers = error_response(error).headers
    assert (headers.get("connection") == "close") is closes
    assert headers["cache-control"] == "no-store"


def test_a_read_after_the_sweeper_ended_is_still_timed_out() -> None:
    """The sweeper ends when no read is left; the next read on the same loop starts another."""
    from tagserver.http import _WATCH

    async def go() -> None:
        quick = [{"type": "http.request", "body": b"{}", "more_body": False}]
        assert await read_body(_request(quick), limit=100, timeout_s=0.04) == b"{}"
        await asyncio.sleep(0.05)  # the sweeper wakes (every 0.01 s), finds no read and ends
        assert _WATCH.sweeper is None and _WATCH.loop is None
        parts = [{"type": "http.request", "body": b"{\"event", "more_body": True}]
        with pytest.raises(BodyTimeout):
            await read_body(_request(parts, stall=True), limit=1000, timeout_s=0.2)

    asyncio.run(go())
