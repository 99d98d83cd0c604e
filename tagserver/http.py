"""HTTP helpers shared by the clients: the JSON error shape, body limits and CORS (REFERENCE §3)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.types import Receive

from tagserver.exceptions import BodyTimeout, HitRejected, PayloadTooLarge, UnsupportedMediaType
from tagserver.json_codec import dumps

_BODY_TYPES = ("application/json", "text/plain")
#: What a same-origin ``Origin`` may look like before it is echoed: scheme, host name or IP, port.
_ORIGIN_RE = re.compile(r"https?://([a-z0-9.-]{1,253}|\[[0-9a-f:.]{2,45}\])(:[0-9]{1,5})?\Z")


def error_response(exc: HitRejected, *, headers: dict[str, str] | None = None) -> JSONResponse:
    """DESIGN.md's error shape: ``{"ok": false, "error", "errors": [...], "status"}``, no-store;
    ``Retry-After`` (seconds) when the error has a ``retry_after`` (429, 503); ``Connection:
    close`` when the body was left unread (408, 413: the server closes the connection, RFC 9110
    §15.5.9 and §15.5.14, instead of keeping a stalled client's connection open)."""
    retry_after = getattr(exc, "retry_after", None)
    extra = {"retry-after": str(retry_after)} if retry_after is not None else {}
    if exc.status in (408, 413):
        extra["connection"] = "close"
    errors = [{k: _printable(v) for k, v in e.items()} for e in exc.errors]
    return JSONResponse(
        {"ok": False, "error": _printable(exc.error), "errors": errors, "status": exc.status},
        status_code=exc.status,
        headers={"cache-control": "no-store", **extra, **(headers or {})},
    )


#: Response headers as ASGI sends them: ``(lower-case name, value)`` byte pairs.
RawHeaders = tuple[tuple[bytes, bytes], ...]


class JSONReply(JSONResponse):
    """A JSON answer built with the fewest steps, for the hot path: the same bytes and headers as
    ``JSONResponse(content, headers=headers)`` (compact UTF-8 JSON, ``content-length``,
    ``application/json``), with header names already lower case; ``headers`` may also be
    already encoded (:func:`answer_headers`). Set-Cookie headers may be appended to
    ``raw_headers`` afterwards."""

    background = None  # never a background task (Response.__call__ reads it)

    def __init__(
        self, content: object, headers: dict[str, str] | RawHeaders, status_code: int = 200
    ) -> None:
        self.status_code = status_code
        body = self.body = dumps(content, _stdlib_compact)
        size = len(body)
        length = _LENGTHS[size] if size < _KNOWN_LENGTHS else None
        if length is None:
            length = _length_header(size)
        if isinstance(headers, tuple):
            self.raw_headers = [*headers, length, _JSON_TYPE]
        else:
            self.raw_headers = [
                (k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
            ]
            self.raw_headers += (length, _JSON_TYPE)


#: Body sizes whose ``Content-Length`` header :data:`_LENGTHS` keeps.
_KNOWN_LENGTHS = 2048
#: The ``Content-Length`` header of a body size below :data:`_KNOWN_LENGTHS` once an answer had
#: it (else ``None``): a list read costs less than formatting the number for every answer.
_LENGTHS: list[tuple[bytes, bytes] | None] = [None] * _KNOWN_LENGTHS


def _length_header(size: int) -> tuple[bytes, bytes]:
    """The ``Content-Length`` header of a body of ``size`` bytes (kept in :data:`_LENGTHS`)."""
    header = (b"content-length", b"%d" % size)
    if size < _KNOWN_LENGTHS:
        _LENGTHS[size] = header
    return header


#: :class:`JSONReply`'s ``Content-Type`` header.
_JSON_TYPE = (b"content-type", b"application/json")


#: ``json.dumps(..., ensure_ascii=False, allow_nan=False, separators=(",", ":"))``, built once.
_compact = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _stdlib_compact(content: object) -> bytes:
    """What ``JSONResponse`` renders: :data:`_compact` as UTF-8 (:func:`tagserver.json_codec.dumps`
    writes the same with orjson unless it would differ)."""
    return _compact(content).encode("utf-8")


def _printable(text: str) -> str:
    """``text`` as UTF-8 can carry it (a lone surrogate from a hostile key becomes ``?``), at
    most 300 characters."""
    return text[:300].encode("utf-8", "replace").decode("utf-8")


def check_body_type(request: Request) -> None:
    """Accept JSON sent as ``application/json`` or ``text/plain`` (sendBeacon, no preflight), or
    with no Content-Type; raises :class:`UnsupportedMediaType` otherwise."""
    check_content_type(request.headers.get("content-type", ""))


def check_content_type(content_type: str) -> None:
    """:func:`check_body_type` of a request whose ``Content-Type`` is ``content_type`` (``""``
    when it has none)."""
    content_type = content_type.split(";", 1)[0].strip().lower()
    if content_type and content_type not in _BODY_TYPES:
        raise UnsupportedMediaType(
            "unsupported Content-Type",
            errors=[
                {
                    "field": "content-type",
                    "message": "send the JSON body as application/json or text/plain",
                }
            ],
        )


def check_raw_content_type(raw: bytes) -> None:
    """:func:`check_content_type` of a raw ``Content-Type`` value (latin-1; ``b""`` when the
    request has none). An accepted value is remembered (64 at most): browsers send a handful."""
    if raw in _ACCEPTED_TYPES:
        return
    check_content_type(raw.decode("latin-1"))
    if len(_ACCEPTED_TYPES) < 64:
        _ACCEPTED_TYPES.add(raw)


#: Raw ``Content-Type`` values :func:`check_content_type` accepted.
_ACCEPTED_TYPES: set[bytes] = set()


def first_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """``{name: value}`` of an ASGI request's raw header pairs (names lower case): the first value
    of a repeated name, as Starlette's ``request.headers.get`` gives it, in one pass (a list of
    pairs, as servers give them: ``dict`` of the reversed list, in C)."""
    if type(raw) is list:
        return dict(reversed(raw))
    found: dict[bytes, bytes] = {}
    for name, value in raw:
        if name not in found:
            found[name] = value
    return found


#: Seconds a client has to send the whole request body once its headers arrived (a stalled
#: client would otherwise hold one of ``TAGSERVER_MAX_CONCURRENCY`` places for ever).
BODY_TIMEOUT_S = 10.0


class _BodyWatch:
    """Times out body reads without a timer per request (``asyncio.timeout`` costs about 6 µs a
    hit under uvloop): reads register their task and deadline in :attr:`reading`, and one
    sweeper task per event loop, waking every ``timeout / 4`` seconds, cancels the reads past
    their deadline. :attr:`loop` is the loop the sweeper runs on while it runs (``None`` once it
    ended), so that a read checks for a sweeper with one comparison."""

    def __init__(self) -> None:
        self.reading: dict[asyncio.Task[Any], float] = {}  # task -> deadline (loop time)
        self.expired: set[asyncio.Task[Any]] = set()
        self.sweeper: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        """Start a sweeper on ``loop`` (the reads' loop when :attr:`loop` is another or none)."""
        self.sweeper = loop.create_task(self._sweep(loop, max(0.01, timeout / 4)))
        self.loop = loop

    async def _sweep(self, loop: asyncio.AbstractEventLoop, every: float) -> None:
        try:
            while self.reading:
                await asyncio.sleep(every)
                now = loop.time()
                for task, deadline in list(self.reading.items()):
                    if task.get_loop() is not loop:
                        continue
                    if deadline <= now and task not in self.expired:
                        self.expired.add(task)
                        task.cancel()
        finally:  # ended, cancelled or closed: the next read starts another one
            if self.sweeper is asyncio.current_task(loop):
                self.sweeper = self.loop = None


_WATCH = _BodyWatch()


async def read_body(
    request: Request,
    *,
    limit: int,
    timeout_s: float = BODY_TIMEOUT_S,
    content_length: str | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
) -> bytes:
    """The request body, at most ``limit`` bytes, within ``timeout_s`` seconds: :func:`receive_body`
    of ``request``. ``content_length`` is the request's ``Content-Length`` when the caller has
    read it already (else it is looked up). Raises as :func:`receive_body`."""
    declared = (
        request.headers.get("content-length", "") if content_length is None else content_length
    )
    return await receive_body(
        request.receive, limit=limit, timeout_s=timeout_s, content_length=declared, loop=loop
    )


async def receive_body(
    receive: Receive,
    *,
    limit: int,
    timeout_s: float = BODY_TIMEOUT_S,
    content_length: str,
    loop: asyncio.AbstractEventLoop | None = None,
) -> bytes:
    """The body of the request whose ASGI ``receive`` this is, at most ``limit`` bytes, within
    ``timeout_s`` seconds; ``content_length`` is its ``Content-Length`` header (``""`` when it
    has none).

    Raises :class:`PayloadTooLarge` (413) past the limit, without reading the rest;
    :class:`~tagserver.exceptions.BodyTimeout` (408) when the body takes longer (checked every
    ``timeout_s / 4`` seconds, so up to a quarter more); Starlette's ``ClientDisconnect`` when
    the client goes away. Reads the ASGI messages itself (one ``receive`` per chunk, no async
    generator): the hot path of every hit. The body cannot be read a second time afterwards.

    ``loop`` is the running event loop when the caller knows it: in Python 3.11 each
    ``asyncio.get_running_loop()`` (also inside ``asyncio.current_task()``) makes a ``getpid``
    system call, two per hit here otherwise. A ``loop`` that is not running this task (a closed
    one) is noticed (it has no current task) and the running loop is looked up instead.
    """
    if content_length.isdigit() and int(content_length) > limit:
        raise _too_large(limit)
    task = asyncio.current_task(loop) if loop is not None else None
    if loop is None or task is None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        assert task is not None, "read_body runs in a task"
    watch = _WATCH
    if watch.loop is not loop:
        watch.start(loop, timeout_s)  # it first runs once this task waits: after the next line
    watch.reading[task] = loop.time() + timeout_s
    try:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        body: bytes = message.get("body", b"")
        if len(body) > limit:
            raise _too_large(limit)
        if message.get("more_body", False):
            body = await _read_parts(receive, body, limit=limit)  # rare: sent in several parts
        return body
    except asyncio.CancelledError:
        if task not in watch.expired:
            raise  # somebody else's cancel
        task.uncancel()
        raise BodyTimeout(
            "request body too slow",
            errors=[{"field": "body", "message": f"send the whole body within {timeout_s:g} s"}],
        ) from None
    finally:
        del watch.reading[task]  # only this read removes its task
        if watch.expired:
            watch.expired.discard(task)


async def _read_parts(receive: Receive, first: bytes, *, limit: int) -> bytes:
    """:func:`read_body`'s rest of a body sent in several ASGI messages, joined after ``first``
    (its first message's bytes). Raises as :func:`read_body`."""
    chunks = [first]
    size = len(first)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        "body too large", errors=[{"field": "body", "message": f"at most {limit} bytes"}]
    )


def origin_allowed(origin: str, *, host: str | None, allowed: Sequence[str]) -> bool:
    """True when ``origin`` is in the allow-list or is the request's own origin (a same-origin
    path mount, whatever scheme the proxy in front speaks). ``null`` is never allowed."""
    if origin in allowed:
        return True
    if origin == "null" or not host or not _ORIGIN_RE.match(origin):
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


def cors_headers(origin: str) -> dict[str, str]:
    """Credentialed CORS for one allowed origin: the exact origin echoed, never ``*``."""
    return {
        "access-control-allow-origin": origin,
        "access-control-allow-credentials": "true",
        "vary": "Origin",
    }


@lru_cache(maxsize=256)
def answer_headers(origin: str | None) -> RawHeaders:
    """``Cache-Control: no-store`` and, for an allowed ``origin`` (checked by the caller with
    :func:`origin_allowed`), its :func:`cors_headers`, encoded once per origin (the most recent
    256 are kept)."""
    headers = {"cache-control": "no-store", **(cors_headers(origin) if origin else {})}
    return tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())


def preflight_headers(origin: str, *, methods: str = "POST, OPTIONS") -> dict[str, str]:
    """Answer to an allowed ``OPTIONS`` preflight (cached by the browser for a day)."""
    return {
        **cors_headers(origin),
        "access-control-allow-methods": methods,
        "access-control-allow-headers": "content-type",
        "access-control-max-age": "86400",
    }
