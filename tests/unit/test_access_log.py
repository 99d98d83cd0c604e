"""The access log's direct line: the same JSON as the logging path, redaction where needed."""

from __future__ import annotations

import io
import json
import logging
import math
import random
import time
from collections.abc import Iterator
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tagserver.logs import (
    _DIRECT_MARK,
    AccessLog,
    JsonFormatter,
    _direct_handler,
    _double_above,
    _ts_window,
    _ts_window_fast,
    configure_logging,
    loggable_path,
)


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """``configure_logging`` at INFO, its handler writing into a string buffer."""
    names = ("tagserver", "tagserver.access", "uvicorn.error", "uvicorn", "")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level,
                 logging.getLogger(n).propagate) for n in names}  # fmt: skip
    configure_logging("info")
    access = logging.getLogger("tagserver.access")
    buffer = io.StringIO()
    handler = access.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


def _ours_only() -> None:
    """Drop the capture handlers pytest adds to loggers while a test runs (the server has none),
    so that the direct path, which these tests exercise, is taken."""
    access = logging.getLogger("tagserver.access")
    access.handlers[:] = [h for h in access.handlers if getattr(h, _DIRECT_MARK, False)]
    assert _direct_handler(access) is not None


def _formatted(method: str, path: str, status: int, ms: float) -> dict[str, object]:
    """What JsonFormatter writes for the same access record (the logging path)."""
    record = logging.LogRecord("tagserver.access", logging.INFO, __file__, 1, "request", (), None)
    for key, value in {"method": method, "path": path, "status": status, "ms": ms}.items():
        setattr(record, key, value)
    entry: dict[str, object] = json.loads(JsonFormatter().format(record))
    return entry


def test_direct_line_equals_the_formatter_line(stream: io.StringIO) -> None:
    _ours_only()
    AccessLog(frozenset({"/e"})).write("POST", "/e", 200, 0.0123456)
    line = stream.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    written = json.loads(line)
    expected = _formatted("POST", "/e", 200, 12.35)
    assert abs(float(written.pop("ts")) - float(expected.pop("ts"))) < 5  # type: ignore[arg-type]
    assert written == expected
    assert list(written) == list(expected)  # same key order


def test_other_paths_go_through_the_redacting_formatter(stream: io.StringIO) -> None:
    _ours_only()
    log = AccessLog(frozenset({"/e"}))
    log.write("POST", "/jane.doe@example.com", 431, 0.001)  # refused by a limit: path shown
    log.write("GET", "/anything", 404, 0.001)
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert [x["status"] for x in lines] == [431, 404]
    assert "jane.doe@example.com" not in stream.getvalue()
    assert lines[0]["path"] == "/***@***"
    assert lines[1]["path"] == "(not found)"


def test_no_line_below_the_level(stream: io.StringIO) -> None:
    logging.getLogger("tagserver").setLevel(logging.WARNING)
    AccessLog(frozenset({"/e"})).write("POST", "/e", 200, 0.001)
    assert stream.getvalue() == ""


def test_other_handlers_get_records(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tagserver.access")
    saved = logger.handlers[:], logger.propagate
    logger.handlers[:] = []
    logger.propagate = True
    logging.getLogger("tagserver").propagate = True
    try:
        with caplog.at_level(logging.INFO, logger="tagserver.access"):
            AccessLog(frozenset({"/e"})).write("POST", "/e", 202, 0.002)
    finally:
        logger.handlers[:], logger.propagate = saved
    [record] = [r for r in caplog.records if r.name == "tagserver.access"]
    assert (record.method, record.path, record.status, record.ms) == ("POST", "/e", 202, 2.0)  # type: ignore[attr-defined]


def test_lines_written_from_the_loop_are_batched_and_keep_their_order(
    stream: io.StringIO,
) -> None:
    import asyncio

    _ours_only()
    log = AccessLog(frozenset({"/e"}), flush_after_s=0.05, max_lines=3)

    async def scenario() -> list[int]:
        seen = []
        log.write("POST", "/e", 200, 0.001)
        log.write("POST", "/e", 201, 0.001)
        seen.append(stream.getvalue().count("\n"))  # buffered: nothing written yet
        log.write("POST", "/e", 202, 0.001)  # the third line fills the buffer: written
        seen.append(stream.getvalue().count("\n"))
        log.write("POST", "/e", 203, 0.001)
        await asyncio.sleep(0.12)  # written flush_after_s later
        seen.append(stream.getvalue().count("\n"))
        log.write("POST", "/e", 204, 0.001)
        log.write("GET", "/x@y.example", 431, 0.001)  # logging path: the buffer goes first
        seen.append(stream.getvalue().count("\n"))
        return seen

    assert asyncio.run(scenario()) == [0, 3, 4, 6]
    statuses = [json.loads(x)["status"] for x in stream.getvalue().splitlines()]
    assert statuses == [200, 201, 202, 203, 204, 431]


def _old_line(method: str, shown: str, status: int, elapsed_s: float, now: float) -> str:
    """The direct line as it was first written: one f-string, ``repr`` of the rounded floats."""
    ms = round(elapsed_s * 1000, 2)
    return (
        f'{{"ts": {round(now, 3)!r}, "level": "info", "logger": '
        f'"tagserver.access", "msg": "request", "method": "{method}", "path": '
        f'"{shown}", "status": {int(status)}, "ms": {ms!r}}}\n'
    )


def _near_half_way(rng: random.Random) -> float:
    """A wall-clock time near a half-way point ``(2k + 1) / 2000`` (a few doubles off)."""
    t = (2 * rng.randrange(1_500_000_000_000, 2_000_000_000_000) + 1) / 2000
    for _ in range(rng.randrange(-3, 4)):
        t = math.nextafter(t, math.inf)
    return t


def test_direct_lines_are_the_bytes_of_the_first_formula(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The remembered texts (ts per millisecond, the middle per request kind, ms) give the
    bytes the single f-string gave, also for times next to a millisecond's half-way point."""
    _ours_only()
    rng = random.Random(7)
    times = sorted(
        [_near_half_way(rng) for _ in range(2000)]
        + [1_764_412_345.0 + rng.random() / 100 for _ in range(2000)]
        + [0.0625, 1_764_412_345.0005, 1_764_412_345.0015]
    )
    times += times[::-1]  # the clock may also go back
    log = AccessLog(frozenset({"/e", "/{prefix}/g/collect"}), max_lines=10_000)
    expected = []
    requests = [("POST", "/e", "/e"), ("OPTIONS", "/e", "/e"),
                ("POST", "/shop/g/collect", "/{prefix}/g/collect")]  # fmt: skip
    for i, now in enumerate(times):
        method, path, shown = requests[i % 3]
        status = (200, 204, 400)[i % 3]
        elapsed_s = rng.choice([rng.random() / 100, rng.randrange(0, 10_000) / 200_000, 0.0])
        for _ in range(rng.choice([0, 0, rng.randrange(-3, 4)])):  # next to a half hundredth
            elapsed_s = math.nextafter(elapsed_s, math.inf)
        monkeypatch.setattr(time, "time", lambda now=now: now)
        log.write(method, path, status, elapsed_s)
        expected.append(_old_line(method, shown, status, elapsed_s, now))
    log.flush()
    assert stream.getvalue() == "".join(expected)


@given(st.floats(min_value=1e-3, max_value=9.9e11))
@example(1.4375)  # (2 * 1437 + 1) / 2000, a double: rounded to even
@settings(max_examples=500)
def test_a_ts_window_holds_only_times_of_its_text(now: float) -> None:
    text, start, until = _ts_window(now)
    assert text == repr(round(now, 3))
    exact = Fraction(now) * 2000
    if exact.denominator == 1 and exact.numerator % 2:  # a half-way point: left out
        assert not start <= now < until
    else:
        assert start <= now < until
    assert until - start > 0.001 - 2 * math.ulp(now)
    for t in (start, math.nextafter(start, math.inf), math.nextafter(until, -math.inf),
              start + (until - start) * 0.37):  # fmt: skip
        if start <= t < until:
            assert repr(round(t, 3)) == text, t


def test_the_short_way_to_a_ts_window_gives_its_text_within_the_exact_window() -> None:
    """``_ts_window_fast``: the same text as ``repr(round(now, 3))`` and a window inside the
    exact one that holds ``now``, or ``None``; for wall-clock times, times next to a half-way
    point (a few doubles off) and small ones."""
    rng = random.Random(11)
    times = [rng.uniform(1.0, 8e9) for _ in range(3000)]
    times += [1_764_412_345.0 + rng.random() for _ in range(3000)]
    times += [rng.uniform(1.0, 10.0) for _ in range(1000)]
    for _ in range(3000):
        t = (2 * rng.randrange(2000, 8_000_000_000_000) + 1) / 2000
        for _ in range(rng.randrange(-4, 5)):
            t = math.nextafter(t, math.inf)
        times.append(t)
    shortened = 0
    for now in times:
        found = _ts_window_fast(now)
        if found is None:
            continue
        shortened += 1
        text, start, until = found
        assert text == repr(round(now, 3)), now
        k = round(float(text) * 1000)
        assert _double_above(2 * k - 1, strictly=True) <= start <= now < until
        assert until <= _double_above(2 * k + 1, strictly=False)
        assert until - start > 0.001 - 2 * math.ulp(now)
        assert _ts_window(now) == found
    assert shortened > len(times) // 2


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/g/collect", "/g/collect"),
        ("/g/collect/", "/g/collect/"),
        ("/shop/g/collect", "/{prefix}/g/collect"),
        # a free prefix that holds the route's own text is still a prefix (it was shown whole)
        ("/g/collect/07700900123/g/collect", "/{prefix}/g/collect"),
        ("/g/collect/Jane.Doe/g/collect/", "/{prefix}/g/collect/"),
        ("/_/set_cookie/4111111111111111/_/set_cookie", "/{prefix}/_/set_cookie"),
        ("/_/service_worker/x/_/service_worker/secret", "/{prefix}/_/service_worker/"),
    ],
)
def test_a_ga4_route_s_free_prefix_is_never_shown(path: str, shown: str) -> None:
    assert loggable_path(path, 200) == shown
