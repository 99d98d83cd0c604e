"""The front middleware: the hot route's dispatch and errors, timing and access lines."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from tagserver.front import Front
from tagserver.limits import RequestLimits
from tagserver.metrics import Metrics

LIMITS = {"max_header_bytes": 10_000, "max_query_bytes": 1000, "max_concurrency": 10}


class Recorder:
    """An access log that keeps its lines."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, int]] = []

    def write(self, method: str, path: str, status: int, elapsed_s: float) -> None:
        assert elapsed_s >= 0
        self.lines.append((method, path, status))


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _front(fast: Any, log: Recorder, metrics: Metrics | None = None) -> Front:
    async def rest(scope: Scope, receive: Receive, send: Send) -> None:
        await _answer(send, 404, b"rest")

    return Front(rest, limits=RequestLimits(**LIMITS), metrics=metrics, access_log=log,  # type: ignore[arg-type]
                 routes={"/e": "collect"}, fast={("POST", "/e"): fast})  # fmt: skip


def _get(front: Front, method: str, path: str, *, raise_errors: bool = True) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=front, raise_app_exceptions=raise_errors)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, path)

    return asyncio.run(go())


def test_the_hot_route_goes_to_its_handler_and_the_rest_to_the_app() -> None:
    async def fast(scope: Scope, receive: Receive) -> Response:
        return Response(b"fast")

    log, metrics = Recorder(), Metrics()
    front = _front(fast, log, metrics)
    assert _get(front, "POST", "/e").content == b"fast"
    assert _get(front, "GET", "/e").content == b"rest"  # another method: the router's job
    assert _get(front, "POST", "/other").content == b"rest"
    assert log.lines == [("POST", "/e", 200), ("GET", "/e", 404), ("POST", "/other", 404)]
    text = metrics.render().decode()
    assert 'tagserver_request_duration_seconds_count{route="collect"} 2.0' in text
    assert 'tagserver_request_duration_seconds_count{route="other"} 1.0' in text
    assert front.in_flight == 0


def test_an_unexpected_error_on_the_hot_route_is_a_json_500_and_raised_on() -> None:
    async def broken(scope: Scope, receive: Receive) -> Response:
        raise RuntimeError("bug")

    log = Recorder()
    front = _front(broken, log)
    response = _get(front, "POST", "/e", raise_errors=False)
    assert response.status_code == 500
    assert response.json() == {"ok": False, "error": "internal error", "errors": [],
                               "status": 500}  # fmt: skip
    assert response.headers["cache-control"] == "no-store"
    with pytest.raises(RuntimeError, match="bug"):
        _get(front, "POST", "/e")  # the server sees the exception (and logs it)
    assert log.lines == [("POST", "/e", 500), ("POST", "/e", 500)]
    assert front.in_flight == 0


def test_the_hot_route_is_held_to_the_limits() -> None:
    seen: list[int] = []

    async def fast(scope: Scope, receive: Receive) -> Response:
        seen.append(front.in_flight)
        return Response(b"fast", status_code=201)

    log = Recorder()
    front = _front(fast, log)
    assert _get(front, "POST", "/e").status_code == 201
    assert seen == [1]  # counted in flight while it runs
    refused = _get(front, "POST", "/e?" + "q" * 2000)  # over max_query_bytes
    assert refused.status_code == 414
    assert refused.json()["ok"] is False
    assert seen == [1]  # not called
    assert log.lines == [("POST", "/e", 201), ("POST", "/e", 414)]
    assert front.in_flight == 0


def test_a_client_gone_mid_body_is_logged_499_and_not_raised() -> None:
    from starlette.requests import ClientDisconnect

    async def reading(scope: Scope, receive: Receive) -> Response:
        raise ClientDisconnect()

    log = Recorder()
    front = _front(reading, log)
    sent: list[Any] = []

    async def go() -> None:
        async def receive() -> Any:
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/e", "headers": [],
                 "query_string": b""}  # fmt: skip
        await front(scope, receive, send)  # no exception: nothing went wrong on our side

    asyncio.run(go())
    assert sent == []  # no 500 to nobody
    assert log.lines == [("POST", "/e", 499)]
    assert front.in_flight == 0


def test_the_hot_route_stays_in_flight_until_its_answer_is_sent() -> None:
    during_send: list[int] = []

    class Recording(Response):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            during_send.append(front.in_flight)  # a slow reader would wait in here
            await super().__call__(scope, receive, send)

    async def fast(scope: Scope, receive: Receive) -> Response:
        return Recording(b"fast")

    front = _front(fast, Recorder())
    assert _get(front, "POST", "/e").content == b"fast"
    assert during_send == [1]
    assert front.in_flight == 0


def test_refusals_on_the_hot_route_are_counted_as_hits() -> None:
    """The front's own refusals of a collect hit are hits by outcome too: 431/414 rejected (a 4xx
    answer), 503 over max_concurrency unavailable; so the outcomes add up to every hit."""

    async def fast(scope: Scope, receive: Receive) -> Response:
        return Response(b"fast")

    metrics = Metrics()
    front = _front(fast, Recorder(), metrics)
    assert _get(front, "POST", "/e?" + "q" * 2000).status_code == 414
    front.limits.in_flight = LIMITS["max_concurrency"]  # as if that many were being answered
    assert _get(front, "POST", "/e").status_code == 503
    front.limits.in_flight = 0
    assert _get(front, "POST", "/e").status_code == 200  # counted by the handler, not here
    assert _get(front, "GET", "/other?" + "q" * 2000).status_code == 414  # not a collect hit
    text = metrics.render().decode()
    assert 'tagserver_hits_total{outcome="rejected"} 1.0' in text
    assert 'tagserver_hits_total{outcome="unavailable"} 1.0' in text
    assert 'tagserver_hits_total{outcome="accepted"} 0.0' in text


def test_a_hot_route_answer_with_its_own_sending_is_sent_by_it() -> None:
    """A plain answer's two messages are sent by the front itself; an answer with a background
    task, or of a class that sends itself (streaming), is sent by its own ``__call__``."""
    ran: list[str] = []

    async def later() -> None:
        ran.append("background")

    async def chunks() -> Any:
        yield b"stre"
        yield b"amed"

    answers = iter([
        Response(b"plain", status_code=201, headers={"x-a": "1"}),
        Response(b"with task", background=BackgroundTask(later)),
        StreamingResponse(chunks()),
    ])  # fmt: skip

    async def fast(scope: Scope, receive: Receive) -> Response:
        return next(answers)

    log = Recorder()
    front = _front(fast, log)
    plain = _get(front, "POST", "/e")
    assert (plain.status_code, plain.content, plain.headers["x-a"]) == (201, b"plain", "1")
    assert _get(front, "POST", "/e").content == b"with task"
    assert ran == ["background"]
    assert _get(front, "POST", "/e").content == b"streamed"
    assert log.lines == [("POST", "/e", 201), ("POST", "/e", 200), ("POST", "/e", 200)]
    assert front.in_flight == 0
