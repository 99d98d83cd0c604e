"""Structured JSON logs, one object per line on stderr.

Loggers: ``tagserver.access`` (one line per request: method, path without query, status, ms),
``tagserver.delivery``, ``tagserver.container``, ``tagserver.settings``. A last-line redaction masks
anything shaped like an e-mail address or a Meta access token, in case a value slipped through.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import sys
import time
from typing import Any

from tagserver.secret import redact_secrets

_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_TOKEN_RE = re.compile(r"\bEAA[A-Za-z0-9_-]{8,}")
#: International numbers (``+44 7700 900123``) and national digit groups split by spaces
#: (``07700 900123``). Dash-joined digits are left alone: they are how ids, dates and UUIDs look
#: (``purchase-2024-100234``), and a masked id cannot be traced.
_PHONE_RE = re.compile(
    r"\+\d[\d ().-]{5,}\d"  # international: +44 7700 900123, +1 (650) 555-1212
    r"|(?<![\w-])\(?\d{2,5}\)?[ ]\d{3,}(?:[ ]\d{2,})*"  # national, groups split by spaces
)


def redact(text: str) -> str:
    """Mask known secrets (:func:`tagserver.secret.redact_secrets`), e-mail addresses, phone-shaped
    numbers and Meta access tokens (``EAA...``) in ``text``."""
    return _PHONE_RE.sub(
        "***", _TOKEN_RE.sub("EAA***", _EMAIL_RE.sub("***@***", redact_secrets(text)))
    )


class JsonFormatter(logging.Formatter):
    """Formats a record as ``{"ts", "level", "logger", "msg", ...extra}``; ``ts`` is unix seconds."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key != "color_message":
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


def configure_logging(level: str) -> None:
    """Send ``tagserver.*`` and ``uvicorn.error`` logs as JSON lines to stderr at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    setattr(handler, _DIRECT_MARK, True)  # AccessLog may write its lines to it directly
    for name in ("tagserver", "uvicorn.error", "uvicorn"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    # everything else (asyncio's "Task exception was never retrieved", libraries) goes through the
    # same JSON formatter and its redaction, never Python's plain default handler
    # the access logger writes to the same handler itself (AccessLog: one line per request)
    access = logging.getLogger("tagserver.access")
    access.handlers[:] = [handler]
    access.propagate = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)


_GA4_ROUTES = ("/g/collect", "/_/set_cookie", "/_/service_worker/")


def loggable_path(path: str, status: int) -> str:
    """The request path as the access log may show it: a path no route matched (404) could be
    anything the client typed (an e-mail, a name), so it is not shown; the free prefix of a GA4
    route is shown as ``/{prefix}``. The route is the path's last occurrence of it: a free
    prefix may hold the route's text too (``/g/collect/<anything>/g/collect``)."""
    if status == 404:
        return "(not found)"
    for route in _GA4_ROUTES:
        at = path.rfind(route)
        if at > 0:
            return "/{prefix}" + (route if route.endswith("/") else path[at:])[:100]
        if at == 0 and route.endswith("/"):
            return route
    return path[:200]


def plain_access_paths(*routes: str) -> frozenset[str]:
    """Every path :func:`loggable_path` can show for ``routes`` (fixed paths; settings restrict
    the configured ones to ``[A-Za-z0-9._~/-]``) and for the GA4 routes, with and without their
    free prefix and trailing slash, plus ``(not found)``: the strings :class:`AccessLog` may
    write without redaction."""
    ga4 = {form for route in _GA4_ROUTES for form in (route, route.rstrip("/") + "/")}
    return frozenset({*routes, *ga4, *("/{prefix}" + p for p in ga4), "(not found)"})


#: Methods written into the access line as they are (anything else goes through :func:`redact`).
_PLAIN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class AccessLog:
    """One ``tagserver.access`` line per HTTP request: method, path (:func:`loggable_path`, never
    the query string, which may carry personal data), status and milliseconds.

    ``plain_paths`` are paths known to be safe to write as they are (the configured routes, which
    settings restrict to ``[A-Za-z0-9._~/-]``). When the logger's only handler is the JSON handler
    of :func:`configure_logging`, a line for such a path is formatted here, exactly as
    :class:`JsonFormatter` would, without building a ``LogRecord`` (about 1 µs instead of
    tens on the hot path: its constant middle, the ``ts`` text of the current millisecond and
    the ``ms`` texts are remembered), and written with its neighbours in one system call at most
    ``flush_after_s`` seconds later; any other line, or any other logging set-up (tests'
    ``caplog``), goes through ``logging`` with the same fields, at once.
    """

    def __init__(
        self,
        plain_paths: frozenset[str] = frozenset(),
        *,
        flush_after_s: float = 0.05,
        max_lines: int = 256,
    ) -> None:
        self.log = logging.getLogger("tagserver.access")
        self._plain_paths = plain_paths
        self.flush_after_s = flush_after_s
        self.max_lines = max_lines
        self._lines: list[str] = []
        self._handler: logging.StreamHandler[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._middles: dict[tuple[str, str, int], str] = {}
        self._ms_texts: dict[int, str] = {}
        # the ts text and the wall-clock times [from, until) it is the text of (_ts_window)
        self._ts_text = ""
        self._ts_from = self._ts_until = 0.0

    @property
    def plain_paths(self) -> frozenset[str]:
        """The paths written without redaction (fixed: the remembered line middles follow it)."""
        return self._plain_paths

    def write(self, method: str, path: str, status: int, elapsed_s: float) -> None:
        """Log one request that took ``elapsed_s`` seconds (written in milliseconds).

        Direct lines are buffered and written together (one ``write`` call) when ``max_lines``
        are waiting or ``flush_after_s`` seconds after the first, from the running event loop;
        without a running loop they are written at once. :meth:`flush` writes what waits.

        A direct line is put together from three texts: ``ts`` (:func:`_ts_window`: the wall
        clock, 3 decimals, the same text for a whole millisecond), the constant middle per
        ``(method, path, status)`` and ``ms`` (2 decimals): the bytes ``JsonFormatter`` writes.
        """
        log = self.log
        if not log.isEnabledFor(_INFO):
            return
        # _direct_handler(log), its checks written out while the handler of the last direct
        # line is still the logger's only one (it had the mark then; a call less per line)
        handler = self._handler
        handlers = log.handlers
        if (
            handler is None
            or len(handlers) != 1
            or handlers[0] is not handler
            or log.filters
            or log.propagate
            or handler.filters
            or handler.level > _INFO
        ):
            handler = _direct_handler(log)
        if handler is not None:
            middle = self._middles.get((method, path, status))
            if middle is None:
                middle = self._middle(method, path, status)
            if middle is not None:
                now = time.time()
                if not self._ts_from <= now < self._ts_until:
                    self._ts_text, self._ts_from, self._ts_until = _ts_window(now)
                # hundredths of a millisecond: the integer nearest to the exact (elapsed_s *
                # 1000) * 100 unless z is near a half (float error here: under 1e-7)
                z = elapsed_s * 1000 * 100
                hundredths = int(z)
                fraction = z - hundredths
                if 0.4999 < fraction < 0.5001 or not 0.0 <= z < 1e8:
                    ms_text = repr(round(elapsed_s * 1000, 2))
                else:
                    if fraction > 0.5:
                        hundredths += 1
                    ms_text = self._ms_texts.get(hundredths) or self._ms_text(hundredths)
                lines = self._lines
                lines.append(f'{{"ts": {self._ts_text}{middle}{ms_text}}}{handler.terminator}')
                self._handler = handler
                if len(lines) >= self.max_lines:
                    self.flush()
                elif self._timer is None:
                    try:
                        loop = asyncio.get_running_loop()
                    except RuntimeError:
                        self.flush()
                        return
                    self._timer = loop.call_later(self.flush_after_s, self.flush)
                return
        self.flush()  # keep the order of the lines
        self.log.info(
            "request",
            extra={
                "method": method,
                "path": loggable_path(path, status),
                "status": status,
                "ms": round(elapsed_s * 1000, 2),
            },
        )

    def _middle(self, method: str, path: str, status: int) -> str | None:
        """The constant part of a direct line, from ``"level"`` to ``"ms": ``, for a method and
        shown path that may be written as they are (else ``None``), remembered (at most
        :data:`_MAX_CACHED` at a time)."""
        shown = loggable_path(path, status)
        if method not in _PLAIN_METHODS or shown not in self._plain_paths:
            return None
        if len(self._middles) >= _MAX_CACHED:  # raw GA4 paths with free prefixes vary
            self._middles.clear()
        middle = self._middles[(method, path, status)] = (
            f', "level": "info", "logger": "tagserver.access", "msg": "request", '
            f'"method": "{method}", "path": "{shown}", "status": {int(status)}, "ms": '
        )
        return middle

    def _ms_text(self, hundredths: int) -> str:
        """``repr(round(elapsed_s * 1000, 2))`` for an ``elapsed_s`` whose milliseconds round to
        ``hundredths`` / 100: that rounding gives the double nearest to ``hundredths / 100``,
        which is what the division gives. Remembered (at most :data:`_MAX_CACHED` values)."""
        if len(self._ms_texts) >= _MAX_CACHED:
            self._ms_texts.clear()
        text = self._ms_texts[hundredths] = repr(hundredths / 100)
        return text

    def flush(self) -> None:
        """Write the buffered lines now (the application's shutdown calls it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        lines, self._lines = self._lines, []
        handler = self._handler
        if not lines or handler is None:
            return
        handler.acquire()
        try:
            handler.stream.write("".join(lines))
            handler.flush()
        finally:
            handler.release()


def _direct_handler(logger: logging.Logger) -> logging.StreamHandler[Any] | None:
    """The handler of :func:`configure_logging` when it is the only place ``logger``'s records go
    (no filters, no other handler), else ``None``."""
    handlers = logger.handlers
    if len(handlers) != 1 or logger.filters or logger.propagate:
        return None
    handler = handlers[0]
    if (
        getattr(handler, _DIRECT_MARK, False)
        and not handler.filters
        and handler.level <= logging.INFO
    ):
        return handler  # type: ignore[return-value]
    return None


_DIRECT_MARK = "_tagserver_json"
_INFO = logging.INFO

#: Entries kept at most in each of :class:`AccessLog`'s remembered texts (then emptied).
_MAX_CACHED = 4096


def _ts_window(now: float) -> tuple[str, float, float]:
    """``repr(round(now, 3))`` and the times ``[from, until)`` whose text it is too.

    ``round(now, 3)`` is the double nearest to ``k / 1000``, ``k`` the integer nearest to the
    exact value of ``now * 1000`` (CPython rounds the exact binary value). The times strictly
    between the half-way points ``(2k - 1) / 2000`` and ``(2k + 1) / 2000`` have that same
    ``k``; the window's ends are the doubles just inside them, found exactly with integer
    arithmetic (a half-way point that is a double itself, rounded to even, is left out). Times
    outside ``(0, 1e12)`` get an empty window (computed every time).

    Most times take a shorter way (:func:`_ts_window_fast`, about a fifth of the instructions)
    that gives the same text and a window at most a double narrower at each end."""
    if 1.0 <= now < _FAST_UNTIL:
        found = _ts_window_fast(now)
        if found is not None:
            return found
    text = repr(round(now, 3))
    if not 0.0 < now < 1e12:
        return text, 0.0, 0.0
    k = round(float(text) * 1000)  # the double nearest k / 1000, times 1000: k within 0.01
    return text, _double_above(2 * k - 1, strictly=True), _double_above(2 * k + 1, strictly=False)


#: Times up to which :func:`_ts_window_fast` applies (year 2223): ``now * 1000`` is below
#: ``2**43``, so its rounding error is at most ``2**-11`` ms, under :data:`_TIE_MARGIN`.
_FAST_UNTIL = 8e9
_TIE_MARGIN = 1e-3


def _ts_window_fast(now: float) -> tuple[str, float, float] | None:
    """:func:`_ts_window` of ``now`` (``1 <= now <`` :data:`_FAST_UNTIL`) without the decimal
    conversions and big-integer arithmetic, or ``None`` when ``now`` needs the exact way.

    ``k``, the integer nearest to the exact ``now * 1000``, is that of the float product unless
    the product lies within :data:`_TIE_MARGIN` of a half (then ``None``). ``repr(round(now,
    3))`` is then ``k / 1000`` written in decimal without trailing zeros (at most 13 significant
    digits: the double nearest it reads back as it, and ``repr`` writes the shortest text that
    does). The window's ends are the divisions ``(2k ± 1) / 2000``, each the double nearest to the
    exact half-way point: the double just above the lower one is above that point, and every
    double below the upper one is below its point, so ``[from, until)`` holds only times of
    ``k``. When that window misses ``now`` or is narrower than ``0.001 - 2 ulp`` (a double near
    an end): ``None``, as :func:`_ts_window`'s exact window is promised."""
    z = now * 1000
    k = int(z)
    fraction = z - k  # exact
    if fraction > 0.5 + _TIE_MARGIN:
        k += 1
    elif fraction >= 0.5 - _TIE_MARGIN:
        return None
    digits = str(k)  # k >= 1000: seconds, then 3 digits of milliseconds
    text = (digits[:-3] + "." + digits[-3:]).rstrip("0")
    if text[-1] == ".":
        text += "0"
    start = math.nextafter((2 * k - 1) / 2000, math.inf)
    until = (2 * k + 1) / 2000
    if not start <= now < until or until - start <= 0.001 - 2 * math.ulp(now):
        return None
    return text, start, until


def _double_above(odd: int, *, strictly: bool) -> float:
    """The smallest double above ``odd / 2000``, or at it when ``strictly`` is false."""
    guess = odd / 2000  # the double nearest to it: at most one double away from the answer
    numerator, denominator = guess.as_integer_ratio()
    below = numerator * 2000 < odd * denominator
    at = numerator * 2000 == odd * denominator
    if below or (at and strictly):
        guess = math.nextafter(guess, math.inf)
    return guess
