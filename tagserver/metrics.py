"""Prometheus metrics (prometheus-client), served as ``GET /metrics`` in the text format.

Two ways to expose them, both optional: ``TAGSERVER_METRICS_TOKEN`` adds ``/metrics`` to the main
port behind ``Authorization: Bearer <token>``; ``TAGSERVER_METRICS_PORT`` serves them without a
token on ``TAGSERVER_METRICS_HOST`` (default 127.0.0.1) from the ``tagserver serve`` process.

With ``--workers N`` (or a metrics port) the CLI switches prometheus-client to its multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, a fresh temporary folder unless set): every worker writes its
numbers to that folder and both endpoints show the sum over the workers.

Labels stay bounded: destinations are labels like ``meta:<pixel id>``, reasons come from closed
lists or are ``http_<status>``/``network``, routes are the configured paths or ``other``.

The per-hit updates (hits by outcome, events, tags fired, request durations) are deferred
(:mod:`tagserver.metric_batch`): plain increments folded into prometheus-client about once a
second, before every render of ``/metrics`` (both endpoints) and at shutdown. A scrape may
therefore lag the hits by up to about a second where it cannot fold first: another worker's
pending counts in multiprocess mode.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from tagserver.metric_batch import MetricBatch, Observer, fold_every_batch

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Upper bounds (seconds) of ``tagserver_request_duration_seconds``'s buckets (``+Inf`` added).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def multiprocess_mode() -> bool:
    """True when prometheus-client writes to ``PROMETHEUS_MULTIPROC_DIR`` (set before import)."""
    return bool(os.environ.get(MULTIPROC_ENV))


class Metrics:
    """Every metric of one tagserver app, registered in ``registry`` (a fresh one by default, so
    several apps can live in one process, as in tests).

    The per-hit updates go through :attr:`batch` (deferred, see the module docstring):
    :attr:`hit_outcome`, :attr:`event_count`, :meth:`tag_fired` and :meth:`route_timer`'s
    observers; :meth:`render` folds them first and the application's shutdown calls
    :meth:`fold`.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.batch = MetricBatch()
        r = self.registry
        self.hits = Counter(
            "tagserver_hits", "Hits on the collect endpoint, by outcome (accepted, rejected: a "
            "4xx answer, unavailable: a 503, the outbox could not store it or too many requests "
            "were in flight)",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.events = Counter("tagserver_events", "Events made from accepted hits", registry=r)
        self.tags_fired = Counter(
            "tagserver_tags_fired", "Tags that fired, by tag name", ["tag"], registry=r
        )
        self.dropped = Counter(
            "tagserver_dropped_events",
            "Events or fields that will not reach a destination, by reason",
            ["destination", "reason"],
            registry=r,
        )
        self.outbound_sent = Counter(
            "tagserver_outbound_sent_events",
            "Events the destination accepted",
            ["destination"],
            registry=r,
        )
        self.outbound_failed = Counter(
            "tagserver_outbound_failed_requests",
            "Outbound requests that failed, by reason (http_<status> or network)",
            ["destination", "reason"],
            registry=r,
        )
        self.outbound_retried = Counter(
            "tagserver_outbound_retried_events",
            "Events scheduled for another attempt after a transient failure, by reason",
            ["destination", "reason"],
            registry=r,
        )
        self.outbound_dead = Counter(
            "tagserver_outbound_dead_events",
            "Events moved to the dead-letter store, by reason",
            ["destination", "reason"],
            registry=r,
        )
        gauge: dict[str, Any] = {"registry": r, "multiprocess_mode": "mostrecent"}
        self.outbox_depth = Gauge(
            "tagserver_outbox_depth", "Events waiting in the outbox or in flight", **gauge
        )
        self.outbox_oldest_age = Gauge(
            "tagserver_outbox_oldest_age_seconds",
            "Age of the oldest event in the outbox (0 when empty)",
            **gauge,
        )
        self.outbox_dead = Gauge(
            "tagserver_outbox_dead_letters", "Events in the dead-letter store", **gauge
        )
        self.request_duration = Histogram(
            "tagserver_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            ["route"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )

        #: deferred children, looked up once (``labels()`` takes a lock and builds a key)
        self.hit_outcome = {
            o: self.batch.counter(self.hits.labels(o))
            for o in ("accepted", "rejected", "unavailable")
        }
        #: ``tagserver_events``, deferred
        self.event_count = self.batch.counter(self.events)
        self._tags_fired = self.batch.counters(self.tags_fired)
        #: ``tag_fired(tag)``: count one firing of the tag named ``tag`` (deferred; the child is
        #: looked up when the count is folded). The family's own ``inc``, bound once: a method
        #: calling it cost a Python call more per tag fired.
        self.tag_fired: Callable[[str], None] = self._tags_fired.inc

    def route_timer(self, route: str) -> Observer:
        """A deferred observer of ``tagserver_request_duration_seconds{route=route}`` (make one
        per route, once)."""
        return self.batch.histogram(self.request_duration.labels(route), DURATION_BUCKETS)

    def fold(self) -> None:
        """Write the deferred updates through to prometheus-client now (shutdown calls it)."""
        self.batch.fold()

    def count_drop(self, destination: str, reason: str, n: int) -> None:
        """The :class:`~tagserver.delivery.drops.DropCounter` listener."""
        self.dropped.labels(destination, reason).inc(n)

    def render(self) -> bytes:
        """The exposition text: this app's registry, or the sum over every process's files in
        multiprocess mode. Folds this app's deferred updates first."""
        self.fold()
        if multiprocess_mode():
            return render_multiprocess()
        return generate_latest(self.registry)


def render_multiprocess() -> bytes:
    """The exposition text summed over the files in ``PROMETHEUS_MULTIPROC_DIR``."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


class _FoldFirst:
    """Collects nothing; registered first, it folds this process's deferred updates
    (:func:`~tagserver.metric_batch.fold_every_batch`) before the other collectors read."""

    def collect(self) -> Iterable[Any]:
        fold_every_batch()
        return []

    def describe(self) -> Iterable[Any]:
        return []


def serve_metrics_port(host: str, port: int) -> Any:
    """Serve the multiprocess metrics on ``host:port`` from a daemon thread of this process; the
    returned server has ``shutdown()``. Each render folds the deferred updates of the apps of
    this process first (one worker); other workers' updates lag by up to about a second."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry()
    registry.register(_FoldFirst())
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


def mark_process_dead(pid: int) -> None:
    """Drop a finished process's live gauges (multiprocess mode)."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
