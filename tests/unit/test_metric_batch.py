"""Deferred metric updates (tagserver.metric_batch): what they fold into prometheus-client is what
direct updates write, in normal and in multiprocess mode; when they fold (timer, render, no
loop, the metrics port's thread)."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client import values as prometheus_values

from tagserver.metric_batch import MetricBatch, fold_every_batch
from tagserver.metrics import DURATION_BUCKETS, Metrics, _FoldFirst


def _rounds(seed: int) -> list[list[float]]:
    """Observations in rounds (a fold after each): every bucket bound itself, just above and
    below it, then values that are multiples of 2**-12 (their sums are exact floats, so adding
    a round's sum at once gives the very total adding them one by one does)."""
    rng = random.Random(seed)
    first = [b for b in DURATION_BUCKETS] + [b * 1.01 for b in DURATION_BUCKETS] + [0.0, 7.0]
    first += [b * 0.99 for b in DURATION_BUCKETS]
    later = [[rng.randrange(0, 30_000) / 4096 for _ in range(rng.randrange(0, 400))]
             for _ in range(5)]  # fmt: skip
    return [first, *later, []]


def _fixed_created(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_created`` samples hold the creation time: the same one for both histograms."""
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)


def test_a_deferred_histogram_renders_what_direct_observations_render(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain_registry, deferred_registry = CollectorRegistry(), CollectorRegistry()
    with monkeypatch.context() as patch:
        _fixed_created(patch)
        plain = Histogram("d_seconds", "d", ["route"], buckets=DURATION_BUCKETS,
                          registry=plain_registry)  # fmt: skip
        deferred = Histogram("d_seconds", "d", ["route"], buckets=DURATION_BUCKETS,
                             registry=deferred_registry)  # fmt: skip
        plain_children = [plain.labels("collect"), plain.labels("other")]
        batch = MetricBatch()
        observers = [batch.histogram(deferred.labels(r), DURATION_BUCKETS)
                     for r in ("collect", "other")]  # fmt: skip
    assert type(observers[0]).__name__ == "DeferredHistogram"  # the bucket fold, not the replay

    async def feed() -> None:  # in a running loop: pending until the fold
        for i, observations in enumerate(_rounds(1)):
            for j, amount in enumerate(observations):
                plain_children[j % 2].observe(amount)
                observers[j % 2].observe(amount)
            if i == 0:
                assert generate_latest(deferred_registry) != generate_latest(plain_registry)
            batch.fold()
            assert generate_latest(deferred_registry) == generate_latest(plain_registry)

    asyncio.run(feed())
    collect = sum((len(observations) + 1) // 2 for observations in _rounds(1))
    assert f'd_seconds_count{{route="collect"}} {collect}.0'.encode() in generate_latest(
        deferred_registry
    )


def test_the_replay_fold_renders_what_direct_observations_render() -> None:
    """A histogram child without prometheus-client's bucket values gets its observations
    replayed with ``observe``."""

    class Recorded:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, amount: float) -> None:
            self.seen.append(amount)

    child = Recorded()
    observer = MetricBatch().histogram(child, DURATION_BUCKETS)
    assert type(observer).__name__ == "DeferredObservations"
    for amount in (0.5, 0.001, 3.0):
        observer.observe(amount)  # no running loop: folded at once
    assert child.seen == [0.5, 0.001, 3.0]


@pytest.fixture
def multiprocess_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """prometheus-client in multiprocess mode, as with ``PROMETHEUS_MULTIPROC_DIR`` set before
    its import: the variable, and the value class its import would have chosen."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    value_class = prometheus_values.MultiProcessValue()  # type: ignore[no-untyped-call]
    monkeypatch.setattr(prometheus_values, "ValueClass", value_class)
    yield tmp_path
    value_class.close_all_files()


def _family(text: str, name: str) -> str:
    """The lines of the family ``name`` in an exposition text, the name replaced by ``NAME``."""
    lines = [line for line in text.splitlines() if f" {name} " in line or line.startswith(name)]
    return "\n".join(lines).replace(name, "NAME")


def test_a_deferred_histogram_renders_what_direct_observations_render_in_multiprocess_mode(
    multiprocess_dir: Path,
) -> None:
    registry = CollectorRegistry()  # the metrics are written to files, not read from here
    plain = Histogram("plain_seconds", "d", ["route"], buckets=DURATION_BUCKETS, registry=registry)
    deferred = Histogram("deferred_seconds", "d", ["route"], buckets=DURATION_BUCKETS,
                         registry=registry)  # fmt: skip
    batch = MetricBatch()
    observer = batch.histogram(deferred.labels("collect"), DURATION_BUCKETS)
    assert type(observer).__name__ == "DeferredHistogram"
    plain_child = plain.labels("collect")
    reader = CollectorRegistry()
    multiprocess.MultiProcessCollector(reader)  # type: ignore[no-untyped-call]

    async def feed() -> str:  # in a running loop: pending until the fold
        for i, observations in enumerate(_rounds(2)):
            for amount in observations:
                plain_child.observe(amount)
                observer.observe(amount)
            text = generate_latest(reader).decode()
            if i == 0:
                assert _family(text, "deferred_seconds") != _family(text, "plain_seconds")
            batch.fold()
            text = generate_latest(reader).decode()
            assert _family(text, "deferred_seconds") == _family(text, "plain_seconds")
        return text

    text = asyncio.run(feed())
    assert 'NAME_count{route="collect"}' in _family(text, "plain_seconds")
    assert list(multiprocess_dir.glob("histogram_*.db")), "written to the multiprocess files"


def test_deferred_counters_fold_with_inc_in_multiprocess_mode(multiprocess_dir: Path) -> None:
    registry = CollectorRegistry()
    plain = Counter("plain", "c", ["tag"], registry=registry)
    deferred = Counter("deferred", "c", ["tag"], registry=registry)
    batch = MetricBatch()
    family = batch.counters(deferred)

    async def feed() -> None:
        for tag in ("a", "b", "a", "c", "a"):
            plain.labels(tag).inc()
            family.inc(tag)
        batch.fold()

    asyncio.run(feed())
    reader = CollectorRegistry()
    multiprocess.MultiProcessCollector(reader)  # type: ignore[no-untyped-call]
    text = generate_latest(reader).decode()
    assert _family(text, "deferred_total") == _family(text, "plain_total")
    assert 'NAME{tag="a"} 3.0' in _family(text, "plain_total")


def _count(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_updates_wait_for_the_timer_in_a_running_loop_and_render_folds_first() -> None:
    async def go() -> None:
        metrics = Metrics()
        metrics.batch.delay_s = 0.05
        metrics.hit_outcome["accepted"].inc()
        metrics.event_count.inc()
        metrics.tag_fired("meta")
        metrics.route_timer("collect").observe(0.002)
        assert _count(metrics, "tagserver_hits_total", outcome="accepted") == 0.0, "pending"
        await asyncio.sleep(0.2)
        assert _count(metrics, "tagserver_hits_total", outcome="accepted") == 1.0, "timer"
        assert _count(metrics, "tagserver_events_total") == 1.0
        assert _count(metrics, "tagserver_tags_fired_total", tag="meta") == 1.0
        assert _count(metrics, "tagserver_request_duration_seconds_bucket",
                      route="collect", le="0.0025") == 1.0  # fmt: skip
        metrics.hit_outcome["accepted"].inc(2)  # a new timer: the last one fired
        assert metrics.batch._timer is not None
        text = metrics.render().decode()
        assert 'tagserver_hits_total{outcome="accepted"} 3.0' in text
        assert metrics.batch._timer is None, "the render folded and cancelled the timer"

    asyncio.run(go())


def test_one_timer_for_many_updates() -> None:
    async def go() -> None:
        metrics = Metrics()
        timers = []
        for _ in range(100):
            metrics.hit_outcome["accepted"].inc()
            metrics.event_count.inc()
            timers.append(metrics.batch._timer)
        assert len({id(t) for t in timers}) == 1 and timers[0] is not None
        metrics.fold()
        assert _count(metrics, "tagserver_hits_total", outcome="accepted") == 100.0

    asyncio.run(go())


def test_without_a_running_loop_an_update_is_folded_at_once() -> None:
    metrics = Metrics()
    metrics.hit_outcome["rejected"].inc()
    assert _count(metrics, "tagserver_hits_total", outcome="rejected") == 1.0


def test_the_metrics_port_thread_has_the_loop_fold_before_it_reads() -> None:
    """``fold_every_batch`` (called by the metrics port's collector, ``_FoldFirst``) from another
    thread runs the fold on the app's event loop and waits for it."""
    metrics = Metrics()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()

    async def app() -> None:
        metrics.hit_outcome["accepted"].inc(5)  # armed: the timer is a second away
        ready.set()
        await stop.wait()

    def run() -> None:
        loop.run_until_complete(app())

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert ready.wait(5)
        assert _count(metrics, "tagserver_hits_total", outcome="accepted") == 0.0
        assert list(_FoldFirst().collect()) == []  # what the port's registry calls first
        assert _count(metrics, "tagserver_hits_total", outcome="accepted") == 5.0
        fold_every_batch()  # nothing pending: no wait
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)
        loop.close()
    fold_every_batch()  # nothing pending

    async def pending() -> None:
        metrics.hit_outcome["accepted"].inc()

    asyncio.run(pending())  # its loop closes with the timer pending
    fold_every_batch()  # that loop is closed: skipped, no error
    assert _count(metrics, "tagserver_hits_total", outcome="accepted") == 5.0
    metrics.fold()  # a render or the shutdown folds it
    assert _count(metrics, "tagserver_hits_total", outcome="accepted") == 6.0
