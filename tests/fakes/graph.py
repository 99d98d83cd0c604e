"""A fake of Meta's Graph API Conversions endpoint: a real HTTP server on 127.0.0.1.

It answers ``POST /{version}/{pixel_id}/events`` the way Meta does (Conversions API docs:
"Using the API", "Handling errors"; REFERENCE.md §1) and records every request, so end-to-end
tests can assert what the server under test really sent over the wire.

Rules it enforces, in this order (the first that fails answers the request):

1. a queued failure from :meth:`FakeGraphAPI.fail_next`, or a failure of an outage started by
   :meth:`FakeGraphAPI.fail_for` (simulated outage, any body);
2. the path is ``/v<major>.<minor>/<pixel id>/events`` (else 400 code 2500), POST only;
3. the body parses: JSON object, or form-encoded with ``data`` as a JSON string (else 400 code 100);
4. the access token (body, query or ``Authorization`` header) is present and valid
   (else 400 code 190 "Invalid OAuth access token - Cannot parse access token");
5. ``data`` is a non-empty list of at most 1000 events (else 400 code 100);
6. every event is valid (else the WHOLE request is rejected: 400 code 100 with the subcode of the
   first bad event): required fields (2804050), ``event_time`` an integer in unix seconds, at most
   7 days old (2804003) and not more than 5 minutes ahead (2804004, the fake's own rule: Meta
   leaves future times undocumented), website events with ``client_user_agent`` and
   ``event_source_url`` (2804050), Purchase with a numeric ``value`` and a 3-letter ``currency``
   (2804009), ``fbc``/``fbp`` in the ``fb.<digit>.<digits>.<payload>[.<appendix>]`` format
   (2804001), ``custom_data`` fields of Meta's types (2804001: ``value``/``predicted_ltv``
   numbers, ``content_ids`` a list of strings, ``contents`` a list of objects with a string
   ``id``, an integer ``quantity`` >= 0 and a numeric ``item_price``, ``num_items`` an integer
   >= 0, ``order_id``/``content_type``/``content_name``/``content_category``/``search_string``/
   ``status``/``delivery_category`` strings — Meta "Custom data parameters"), and no event id
   from :meth:`FakeGraphAPI.reject_event_ids`.

Success is ``200 {"events_received": N, "messages": [], "fbtrace_id": "..."}``. Error bodies have
Meta's shape ``{"error": {"message", "type", "code", "error_subcode", "is_transient",
"error_user_title", "error_user_msg", "fbtrace_id"}}``; like Meta, keys without a value
(``error_subcode`` of a token error, user title/message of a plain error) are left out.
"""

from __future__ import annotations

import gzip
import json
import re
import secrets
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

__all__ = [
    "FakeGraphAPI",
    "Failure",
    "RecordedRequest",
    "MAX_EVENTS_PER_REQUEST",
    "MAX_EVENT_AGE_SECONDS",
    "FBC_PATTERN",
    "FBP_PATTERN",
    "event_ids",
]

MAX_EVENTS_PER_REQUEST = 1000
MAX_EVENT_AGE_SECONDS = 7 * 24 * 3600
#: Meta takes physical_store (offline) events up to 62 days old.
MAX_STORE_EVENT_AGE_SECONDS = 62 * 24 * 3600
MAX_FUTURE_SECONDS = 300
ACTION_SOURCES = frozenset(
    {
        "website",
        "email",
        "app",
        "phone_call",
        "chat",
        "physical_store",
        "system_generated",
        "business_messaging",
        "other",
    }
)
PATH_PATTERN = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<pixel_id>[^/]+)/events/?$")
FBC_PATTERN = re.compile(r"^fb\.\d\.\d+\.[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)?$")
FBP_PATTERN = re.compile(r"^fb\.\d\.\d+\.\d+(\.[A-Za-z0-9_\-]+)?$")
CURRENCY_PATTERN = re.compile(r"^[A-Za-z]{3}$")

SUBCODE_INVALID_PARAMETER = 2804001
SUBCODE_TOO_OLD = 2804003
SUBCODE_IN_FUTURE = 2804004
SUBCODE_PURCHASE_VALUE = 2804009
SUBCODE_MISSING_PARAMETER = 2804050


def _fbtrace_id() -> str:
    return secrets.token_urlsafe(8)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, with the answer it gave."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    raw_body: bytes
    body: dict[str, Any] | None
    status: int
    response_headers: Mapping[str, str]
    response_body: bytes
    events: tuple[dict[str, Any], ...]
    access_token: str | None
    received_at: float

    @property
    def query_params(self) -> dict[str, list[str]]:
        """The query string parsed; blank values kept."""
        return parse_qs(self.query, keep_blank_values=True)

    @property
    def token_in_url(self) -> bool:
        """True when the request URL carried ``access_token`` (allowed by Meta, never by us)."""
        return "access_token" in self.query_params

    @property
    def accepted(self) -> bool:
        return self.status == 200

    @property
    def response_json(self) -> Any:
        """The parsed answer; None for the HTML bodies of simulated proxies."""
        try:
            return json.loads(self.response_body)
        except ValueError:
            return None

    @property
    def url(self) -> str:
        return self.path + ("?" + self.query if self.query else "")


@dataclass(frozen=True)
class Failure:
    """A queued simulated failure (see :meth:`FakeGraphAPI.fail_next`)."""

    status: int = 503
    error_code: int = 2
    is_transient: bool = True
    retry_after: float | None = None
    html: bool = False
    error_subcode: int | None = None
    message: str = "An unexpected error has occurred. Please retry your request later."


@dataclass
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class _EventInvalid(Exception):
    def __init__(self, index: int, subcode: int, title: str, user_msg: str) -> None:
        super().__init__(f"data[{index}]: {title}: {user_msg}")
        self.index = index
        self.subcode = subcode
        self.title = title
        self.user_msg = user_msg


def _json_answer(status: int, payload: Mapping[str, Any], **headers: str) -> _Answer:
    body = json.dumps(payload).encode()
    return _Answer(status, body, {"Content-Type": "application/json; charset=UTF-8", **headers})


def _error_answer(
    status: int,
    *,
    code: int,
    message: str,
    subcode: int | None = None,
    is_transient: bool = False,
    user_title: str | None = None,
    user_msg: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> _Answer:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["is_transient"] = is_transient
    if user_title is not None:
        error["error_user_title"] = user_title
    if user_msg is not None:
        error["error_user_msg"] = user_msg
    error["fbtrace_id"] = _fbtrace_id()
    return _json_answer(status, {"error": error}, **dict(headers or {}))


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


#: custom_data keys Meta types as strings (Meta "Custom data parameters").
CUSTOM_STRING_KEYS = ("order_id", "content_type", "content_name", "content_category",
                      "search_string", "status", "delivery_category")


def custom_data_problem(custom_data: Mapping[str, Any]) -> str | None:
    """The first ``custom_data`` field whose type Meta refuses, as a message; else ``None``."""
    for key in ("value", "predicted_ltv"):
        if key in custom_data and not _is_number(custom_data[key]):
            return f"custom_data.{key} must be a number, got {custom_data[key]!r}"
    ids = custom_data.get("content_ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        return f"custom_data.content_ids must be a list of strings, got {ids!r}"
    contents = custom_data.get("contents")
    if contents is not None:
        if not isinstance(contents, list):
            return f"custom_data.contents must be a list of objects, got {contents!r}"
        for index, item in enumerate(contents):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                return f"custom_data.contents[{index}] needs a string id, got {item!r}"
            quantity = item.get("quantity")
            if quantity is not None and not (_is_int(quantity) and quantity >= 0):
                return f"custom_data.contents[{index}].quantity must be an integer, got {quantity!r}"
            price = item.get("item_price")
            if price is not None and not _is_number(price):
                return f"custom_data.contents[{index}].item_price must be a number, got {price!r}"
    num_items = custom_data.get("num_items")
    if num_items is not None and not (_is_int(num_items) and num_items >= 0):
        return f"custom_data.num_items must be an integer, got {num_items!r}"
    for key in CUSTOM_STRING_KEYS:
        if key in custom_data and not isinstance(custom_data[key], str):
            return f"custom_data.{key} must be a string, got {custom_data[key]!r}"
    return None


def _validate_event(index: int, event: Any, *, now: float) -> None:
    """Raise :class:`_EventInvalid` for the first rule ``event`` breaks."""
    if not isinstance(event, dict):
        raise _EventInvalid(index, SUBCODE_MISSING_PARAMETER, "Invalid event", "not an object")
    for name in ("event_name", "event_time", "action_source"):
        if event.get(name) in (None, ""):
            raise _EventInvalid(
                index,
                SUBCODE_MISSING_PARAMETER,
                "Missing Parameter",
                f"The parameter {name} is required for every server event.",
            )
    if not isinstance(event["event_name"], str):
        raise _EventInvalid(index, SUBCODE_MISSING_PARAMETER, "Invalid event_name", "not a string")
    event_time = event["event_time"]
    if not _is_int(event_time):
        raise _EventInvalid(
            index,
            SUBCODE_INVALID_PARAMETER,
            "Invalid event_time",
            f"event_time must be an integer unix timestamp in seconds, got {event_time!r}",
        )
    max_age = (MAX_STORE_EVENT_AGE_SECONDS if event.get("action_source") == "physical_store"
               else MAX_EVENT_AGE_SECONDS)
    if event_time < now - max_age:
        raise _EventInvalid(
            index,
            SUBCODE_TOO_OLD,
            "Event Timestamp Too Old",
            "The timestamp for this event is too far in the past. Events need to be sent from "
            "your server within 7 days of when they occurred.",
        )
    if event_time > now + MAX_FUTURE_SECONDS:
        raise _EventInvalid(
            index,
            SUBCODE_IN_FUTURE,
            "Event Timestamp In Future",
            f"event_time {event_time} is more than {MAX_FUTURE_SECONDS} s ahead of the server "
            "clock (milliseconds sent as seconds?).",
        )
    action_source = event["action_source"]
    if action_source not in ACTION_SOURCES:
        raise _EventInvalid(
            index,
            SUBCODE_INVALID_PARAMETER,
            "Invalid action_source",
            f"action_source must be one of {sorted(ACTION_SOURCES)}, got {action_source!r}",
        )
    user_data = event.get("user_data", {})
    if not isinstance(user_data, dict):
        raise _EventInvalid(index, SUBCODE_INVALID_PARAMETER, "Invalid user_data", "not an object")
    custom_data = event.get("custom_data", {})
    if not isinstance(custom_data, dict):
        raise _EventInvalid(
            index, SUBCODE_INVALID_PARAMETER, "Invalid custom_data", "not an object"
        )
    if action_source == "website":
        for name, where in (("client_user_agent", user_data), ("event_source_url", event)):
            if not isinstance(where.get(name), str) or not where[name]:
                raise _EventInvalid(
                    index,
                    SUBCODE_MISSING_PARAMETER,
                    "Missing Parameter",
                    f"The parameter {name} is required for website events.",
                )
    if event["event_name"] == "Purchase":
        value, currency = custom_data.get("value"), custom_data.get("currency")
        if not _is_number(value) or not (
            isinstance(currency, str) and CURRENCY_PATTERN.match(currency)
        ):
            raise _EventInvalid(
                index,
                SUBCODE_PURCHASE_VALUE,
                "Invalid purchase value",
                "Purchase events need custom_data.value (a number) and custom_data.currency "
                f"(ISO 4217), got value={value!r} currency={currency!r}",
            )
    problem = custom_data_problem(custom_data)
    if problem is not None:
        raise _EventInvalid(index, SUBCODE_INVALID_PARAMETER, "Invalid parameter", problem)
    for name, pattern in (("fbc", FBC_PATTERN), ("fbp", FBP_PATTERN)):
        cookie = user_data.get(name)
        if cookie is not None and not (isinstance(cookie, str) and pattern.match(cookie)):
            raise _EventInvalid(
                index,
                SUBCODE_INVALID_PARAMETER,
                f"Invalid {name}",
                f"user_data.{name} {cookie!r} is not in the format "
                "fb.<subdomain index>.<creation time>.<payload>",
            )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet: the requests are recorded instead."""

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        raw = self._read_body()
        answer = self.server.fake._answer(self.command, self.path, dict(self.headers), raw)
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    do_POST = do_GET = do_PUT = do_DELETE = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    #: the stdlib's listen backlog of 5 drops connections when many arrive at once (the real
    #: service never does): concurrent senders then see resets that are the fake's fault
    request_queue_size = 128
    fake: FakeGraphAPI


class FakeGraphAPI:
    """Meta's Graph API Conversions endpoint on 127.0.0.1, recording every request.

    Use as a context manager (or call :meth:`start` / :meth:`stop`). All methods are
    thread-safe: the server answers from its own threads.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._failures: deque[Failure] = deque()
        self._outage: tuple[float, tuple[Failure, ...]] | None = None
        self._outage_count = 0
        self._latency = 0.0
        self._rejected_ids: dict[str, int] = {}
        self._valid_tokens: frozenset[str] | None = None
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeGraphAPI:
        httpd = _Server((self._host, self._port), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeGraphAPI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        if self._httpd is None:
            raise RuntimeError("FakeGraphAPI is not running: use it as a context manager")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # configuration -----------------------------------------------------------------------

    @property
    def valid_tokens(self) -> frozenset[str] | None:
        """Accepted access tokens; None (default) accepts any non-empty token."""
        with self._lock:
            return self._valid_tokens

    @valid_tokens.setter
    def valid_tokens(self, tokens: Iterable[str] | None) -> None:
        with self._lock:
            self._valid_tokens = None if tokens is None else frozenset(tokens)

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        error_code: int = 2,
        is_transient: bool = True,
        retry_after: float | None = None,
        html: bool = False,
        *,
        error_subcode: int | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``n`` requests with this failure, whatever they hold.

        ``html=True`` answers an HTML page (a proxy's 502 by default) instead of Meta's JSON;
        ``retry_after`` (seconds) adds a ``Retry-After`` header (use with status 429).
        """
        failure = Failure(
            status=status,
            error_code=error_code,
            is_transient=is_transient,
            retry_after=retry_after,
            html=html,
            error_subcode=error_subcode,
            message=message or Failure.message,
        )
        with self._lock:
            self._failures.extend([failure] * n)

    def fail_for(self, seconds: float, *failures: Failure) -> None:
        """Answer every request for the next ``seconds`` with ``failures`` in turn (an outage);
        queued :meth:`fail_next` failures still come first."""
        if not failures:
            raise ValueError("fail_for needs at least one Failure")
        with self._lock:
            self._outage = (time.monotonic() + seconds, tuple(failures))
            self._outage_count = 0

    def end_outage(self) -> None:
        """End an outage started by :meth:`fail_for` now."""
        with self._lock:
            self._outage = None

    def set_latency(self, seconds: float) -> None:
        """Wait ``seconds`` before answering each request."""
        with self._lock:
            self._latency = seconds

    def reject_event_ids(self, event_ids: Iterable[str], subcode: int = 2804001) -> None:
        """Reject (400 code 100) any whole request that holds one of these event ids."""
        with self._lock:
            self._rejected_ids.update(dict.fromkeys(event_ids, subcode))

    def reset(self) -> None:
        """Forget requests and configuration (failures, latency, rejections, tokens)."""
        with self._lock:
            self._requests.clear()
            self._failures.clear()
            self._outage = None
            self._latency = 0.0
            self._rejected_ids.clear()
            self._valid_tokens = None

    # inspection --------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, in arrival order."""
        with self._lock:
            return list(self._requests)

    def accepted_events(self) -> list[dict[str, Any]]:
        """Every event of every request answered 200, in order."""
        with self._lock:
            return [e for r in self._requests if r.status == 200 for e in r.events]

    def events_seen(self) -> list[dict[str, Any]]:
        """Every event of every request, failed ones included, in order."""
        with self._lock:
            return [e for r in self._requests for e in r.events]

    def wait_for(
        self, predicate: Callable[[FakeGraphAPI], bool], *, timeout: float = 10, what: str = ""
    ) -> None:
        """Poll until ``predicate(self)`` holds; AssertionError with the requests on timeout."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what or predicate!r}; "
                    f"the fake Graph API received: {self.describe()}"
                )
            time.sleep(0.01)

    def wait_for_events(self, n: int, timeout: float = 10) -> list[dict[str, Any]]:
        """Poll until at least ``n`` events were accepted; return the accepted events."""
        self.wait_for(
            lambda fake: len(fake.accepted_events()) >= n,
            timeout=timeout,
            what=f"{n} accepted event(s)",
        )
        return self.accepted_events()

    def wait_for_requests(self, n: int, timeout: float = 10) -> list[RecordedRequest]:
        """Poll until at least ``n`` requests arrived (whatever the answer); return them."""
        self.wait_for(lambda fake: len(fake.requests) >= n, timeout=timeout, what=f"{n} request(s)")
        return self.requests

    def describe(self) -> str:
        """A readable dump of the recorded requests, for assertion messages."""
        lines = []
        for i, r in enumerate(self.requests):
            ids = [e.get("event_id") if isinstance(e, dict) else e for e in r.events]
            answer = r.response_body[:300].decode("utf-8", "replace")
            lines.append(f"#{i} {r.method} {r.url} -> {r.status} events={ids} answer={answer}")
        return "\n".join(lines) if lines else "(no requests)"

    # request handling --------------------------------------------------------------------

    def _answer(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> _Answer:
        path, _, query = target.partition("?")
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
            if failure is None and self._outage is not None:
                until, cycle = self._outage
                if time.monotonic() < until:
                    failure = cycle[self._outage_count % len(cycle)]
                    self._outage_count += 1
                else:
                    self._outage = None
            latency = self._latency
            rejected = dict(self._rejected_ids)
            valid_tokens = self._valid_tokens
        if latency:
            time.sleep(latency)
        lower = {k.lower(): v for k, v in headers.items()}
        body, token, events = self._parse(lower, raw, query)
        if failure is not None:
            answer = self._failure_answer(failure)
        else:
            answer = self._validate(
                method, path, body, token, valid_tokens=valid_tokens, rejected=rejected
            )
        recorded = RecordedRequest(
            method=method,
            path=path,
            query=query,
            headers=lower,
            raw_body=raw,
            body=body,
            status=answer.status,
            response_headers=dict(answer.headers),
            response_body=answer.body,
            events=tuple(events),
            access_token=token,
            received_at=time.time(),
        )
        with self._lock:
            self._requests.append(recorded)
        return answer

    @staticmethod
    def _parse(
        headers: Mapping[str, str], raw: bytes, query: str
    ) -> tuple[dict[str, Any] | None, str | None, list[dict[str, Any]]]:
        """Body as a dict (None when unparseable), the access token, the events it holds."""
        data = raw
        encoding = headers.get("content-encoding", "").lower()
        try:
            if encoding == "gzip":
                data = gzip.decompress(raw)
            elif encoding == "deflate":
                data = zlib.decompress(raw)
        except (OSError, zlib.error):
            return None, None, []
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        body: dict[str, Any] | None = None
        try:
            if content_type == "application/x-www-form-urlencoded":
                form = parse_qs(data.decode(), keep_blank_values=True)
                body = {k: v[-1] for k, v in form.items()}
                if isinstance(body.get("data"), str):
                    try:
                        body["data"] = json.loads(body["data"])
                    except ValueError:
                        pass
            elif data:
                parsed = json.loads(data)
                body = parsed if isinstance(parsed, dict) else None
        except (UnicodeDecodeError, ValueError):
            body = None
        token: str | None = None
        query_token = parse_qs(query, keep_blank_values=True).get("access_token")
        auth = headers.get("authorization", "")
        if body is not None and isinstance(body.get("access_token"), str):
            token = body["access_token"]
        elif query_token:
            token = query_token[-1]
        elif auth.split(" ", 1)[0].lower() in ("bearer", "oauth") and " " in auth:
            token = auth.split(" ", 1)[1].strip()
        events: list[dict[str, Any]] = []
        if body is not None and isinstance(body.get("data"), list):
            events = [e for e in body["data"] if isinstance(e, dict)]
        return body, token, events

    @staticmethod
    def _failure_answer(failure: Failure) -> _Answer:
        headers: dict[str, str] = {}
        if failure.retry_after is not None:
            retry_after = failure.retry_after
            headers["Retry-After"] = (
                str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
            )
        if failure.html:
            title = f"{failure.status} {_reason(failure.status)}"
            page = (
                f"<html><head><title>{title}</title></head>"
                f"<body><center><h1>{title}</h1></center>"
                "<hr><center>nginx</center></body></html>"
            ).encode()
            return _Answer(failure.status, page, {"Content-Type": "text/html", **headers})
        return _error_answer(
            failure.status,
            code=failure.error_code,
            message=failure.message,
            subcode=failure.error_subcode,
            is_transient=failure.is_transient,
            headers=headers,
        )

    @staticmethod
    def _validate(
        method: str,
        path: str,
        body: dict[str, Any] | None,
        token: str | None,
        *,
        valid_tokens: frozenset[str] | None,
        rejected: Mapping[str, int],
    ) -> _Answer:
        match = PATH_PATTERN.match(path)
        if match is None:
            return _error_answer(400, code=2500, message=f"Unknown path components: {path}")
        if method != "POST":
            return _error_answer(
                400,
                code=100,
                subcode=33,
                message=f"Unsupported {method.lower()} request.",
            )
        if body is None:
            return _error_answer(
                400, code=100, message="(#100) The request body is not a JSON object or a form."
            )
        if not token or (valid_tokens is not None and token not in valid_tokens):
            return _error_answer(
                400, code=190, message="Invalid OAuth access token - Cannot parse access token"
            )
        data = body.get("data")
        if data is None or data == []:
            return _error_answer(400, code=100, message="(#100) The parameter data is required")
        if not isinstance(data, list):
            return _error_answer(400, code=100, message="(#100) param data must be an array.")
        if len(data) > MAX_EVENTS_PER_REQUEST:
            return _error_answer(
                400,
                code=100,
                message=f"(#100) param data must be an array of at most "
                f"{MAX_EVENTS_PER_REQUEST} elements, got {len(data)}.",
            )
        now = time.time()
        try:
            for index, event in enumerate(data):
                _validate_event(index, event, now=now)
                event_id = event.get("event_id")
                if isinstance(event_id, str) and event_id in rejected:
                    raise _EventInvalid(
                        index,
                        rejected[event_id],
                        "Invalid parameter",
                        f"event {event_id!r} rejected by the test's configuration",
                    )
        except _EventInvalid as invalid:
            return _error_answer(
                400,
                code=100,
                subcode=invalid.subcode,
                message="Invalid parameter",
                user_title=invalid.title,
                user_msg=f"data[{invalid.index}]: {invalid.user_msg}",
            )
        return _json_answer(
            200, {"events_received": len(data), "messages": [], "fbtrace_id": _fbtrace_id()}
        )


def event_ids(events: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The ``event_id`` of each event, in order (a convenience for assertions)."""
    return [e.get("event_id") for e in events]
