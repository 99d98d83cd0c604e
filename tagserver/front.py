"""The one middleware around every HTTP request: limits, timing, the access log, the hot route.

It replaces three middlewares (limits, access log, metrics) that each wrapped ``send`` and
awaited the next layer. It wraps Starlette's whole stack (:class:`FrontedStarlette`) and hands
``POST``/``OPTIONS`` on the collect path straight to the collect handler, past all of Starlette's
layers (router, exception and error middleware: that handler answers its own errors, and
:meth:`Front._fast` answers an unexpected one with a JSON 500). Everything else goes on to the
Starlette application.

Per request, in this order (``/healthy`` skips the limits, so a busy server still looks alive):

1. ``431`` when the request headers are over ``max_header_bytes`` (names and values together),
   ``414`` when the query string is over ``max_query_bytes``, ``503`` while ``max_concurrency``
   requests are already in flight (REFERENCE §5), each in DESIGN.md's JSON error shape;
   on the collect route counted in ``tagserver_hits_total`` (431/414 ``rejected``, 503
   ``unavailable``), like the handler's own answers;
2. the request itself;
3. ``tagserver_request_duration_seconds`` by route, and one ``tagserver.access`` line
   (:class:`tagserver.logs.AccessLog`), also when the request raised; a client that went away
   while its body was read (Starlette's ``ClientDisconnect``) is logged as status 499, not
   raised as a server error.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tagserver.exceptions import HitRejected
from tagserver.http import error_response
from tagserver.limits import RequestLimits
from tagserver.logs import AccessLog
from tagserver.metric_batch import Observer
from tagserver.metrics import Metrics

#: A hot-route handler: the request's scope and receive → the answer, which the front sends.
FastHandler = Callable[[Scope, Receive], Awaitable[Response]]

#: The access log's status for a request whose client went away before the answer (nginx's 499).
CLIENT_GONE = 499


class Front:
    """The outer ASGI middleware (see the module docstring).

    ``routes`` maps a path to its metrics label (anything else is ``other``); ``fast`` maps
    ``(method, path)`` to a :data:`FastHandler` called directly, without the router (the front
    sends the answer it returns); ``metrics`` and
    ``access_log`` may be ``None`` (nothing timed or logged, as in unit tests of the limits).

    A hot-route handler runs outside Starlette's error middleware, within the limits, and the
    front sends its answer (a plain ``Response``'s two messages itself, any other through its
    own ``__call__``). An exception the handler raises is answered ``500`` in DESIGN.md's error
    shape and raised on, so that the server logs it; a client gone while its body was read is
    :data:`CLIENT_GONE`, nothing raised.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: RequestLimits,
        metrics: Metrics | None = None,
        access_log: AccessLog | None = None,
        routes: Mapping[str, str] | None = None,
        fast: Mapping[tuple[str, str], FastHandler] | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.access_log = access_log
        self.fast = dict(fast or {})
        self.routes = dict(routes or {})
        # one deferred histogram child per label, made once (labels() costs a lock and a dict)
        timers = self._timers = (
            {label: metrics.route_timer(label) for label in {*self.routes.values(), "other"}}
            if metrics is not None else {}
        )  # fmt: skip
        #: each route's timer by path (one lookup per request), and the timer of other paths
        self._path_timers = (
            {path: timers[label] for path, label in self.routes.items()} if timers else {}
        )
        self._other_timer = timers.get("other")
        #: ``(method, path)`` → (its hot-route handler, its path's timer or ``None``): the hot
        #: route finds both with the one lookup that finds the handler
        self._fast_routes: dict[tuple[str, str], tuple[FastHandler, Observer | None]] = {
            key: (handler, self._path_timers.get(key[1], self._other_timer))
            for key, handler in self.fast.items()
        }
        #: the hot route is the collect endpoint: its refusals are hits by outcome too
        self._outcomes = metrics.hit_outcome if metrics is not None else None

    @property
    def in_flight(self) -> int:
        """Requests admitted and not yet answered."""
        return self.limits.in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = _perf_counter()
        status = 500
        path: str = scope["path"]
        timer: Observer | None = None  # set before anything can raise (the finally reads it)
        try:
            route = self._fast_routes.get((scope["method"], path))
            if route is not None:
                handler, timer = route
                # the hot route (see the class docstring), written out here rather than in a
                # method of its own: a coroutine less per hit
                refused = self.limits.refuse(scope)
                if refused is not None:
                    status = await self._refuse_fast(refused, scope, receive, send)
                    return
                self.limits.in_flight += 1
                try:  # in flight until the answer is sent (a slow reader holds its place)
                    try:
                        response: Response = await handler(scope, receive)
                    except ClientDisconnect:
                        status = CLIENT_GONE
                        return
                    except Exception:
                        failed = HitRejected("internal error", errors=[])
                        failed.status = 500
                        await error_response(failed)(scope, receive, send)
                        raise
                    if type(response).__call__ is _PLAIN_CALL and response.background is None:
                        # Response.__call__'s two messages, sent here (a coroutine less)
                        await send({"type": "http.response.start",
                                    "status": response.status_code,
                                    "headers": response.raw_headers})  # fmt: skip
                        await send({"type": "http.response.body", "body": response.body})
                    else:
                        await response(scope, receive, send)
                finally:
                    self.limits.in_flight -= 1
                status = response.status_code
                return

            timer = self._path_timers.get(path, self._other_timer)

            async def send_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            if path == "/healthy":
                await self.app(scope, receive, send_status)
                return
            refused = self.limits.refuse(scope)
            if refused is not None:
                await error_response(refused)(scope, receive, send_status)
                return
            self.limits.in_flight += 1
            try:
                await self.app(scope, receive, send_status)
            except ClientDisconnect:
                status = CLIENT_GONE  # nobody to answer, nothing went wrong here
            finally:
                self.limits.in_flight -= 1
        finally:
            elapsed = _perf_counter() - start
            if timer is not None:
                timer.observe(elapsed)
            if self.access_log is not None:
                self.access_log.write(scope["method"], path, status, elapsed)

    async def _refuse_fast(
        self, refused: HitRejected, scope: Scope, receive: Receive, send: Send
    ) -> int:
        """Answer a hot-route request the limits refused (431, 414, 503), counted as a hit by
        outcome; the status sent."""
        if self._outcomes is not None:  # 431/414 are rejected hits, 503 (busy) unavailable
            self._outcomes["rejected" if refused.status < 500 else "unavailable"].inc()
        await error_response(refused)(scope, receive, send)
        return refused.status


#: ``time.perf_counter``, looked up once (two reads per request).
_perf_counter = time.perf_counter

#: ``Response.__call__``: an answer of a class that does not change it is sent by the front.
_PLAIN_CALL = Response.__call__


class FrontedStarlette(Starlette):
    """A Starlette application whose whole middleware stack (error middleware included) runs
    inside a :class:`Front`, built by ``front(stack)`` when the stack is built."""

    def __init__(self, *args: Any, front: Callable[[ASGIApp], Front], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._front = front

    def build_middleware_stack(self) -> ASGIApp:
        """Starlette's stack, wrapped by the front."""
        return self._front(super().build_middleware_stack())
