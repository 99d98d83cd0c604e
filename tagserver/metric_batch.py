"""Deferred metric updates: a per-hit update is a plain Python increment, folded into the
prometheus-client objects later.

A prometheus-client update takes a lock (and in multiprocess mode writes to a memory-mapped
file): about 0.6 µs per counter ``inc`` and 0.9 µs per histogram ``observe``, several per hit.
The deferred counters and histograms of one :class:`MetricBatch` keep pending counts in plain
attributes instead and fold them into their prometheus-client children:

- on a timer of the running event loop, ``delay_s`` seconds (1 s) after the first pending
  update (scheduled only when none is, so a busy server folds about once a second);
- when :meth:`MetricBatch.fold` is called: before every render of ``/metrics`` (the app route,
  and the metrics port's collector, :func:`fold_every_batch`) and at the application's
  shutdown;
- at once, when an update happens with no running event loop (scripts, tests).

A timed fold still pending when its loop closes (a loop closed without the application's
shutdown) never runs: those counts wait for the next render or fold.

So what a scrape shows may lag the hits by up to about a second where it cannot fold first:
in multiprocess mode (``--workers N``) the scrape folds only its own process's counts, and
another worker's pending counts reach the shared files within a second. Sums and counts are
otherwise exactly those of direct updates; a histogram's ``_sum`` adds a second's values
together before adding them to the total, which may differ from adding them one by one in the
last bits of the float.

The deferred objects are for one thread, the event loop's: an update and a fold must not run
at the same time in two threads (the metrics port's thread asks the loop to fold,
:func:`fold_every_batch`).
"""

from __future__ import annotations

import asyncio
import bisect
import math
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Protocol


class Observer(Protocol):
    """A histogram child as its callers see it."""

    def observe(self, amount: float) -> None:
        """Record one observation of ``amount`` (seconds, for a duration)."""


#: Every live batch, for :func:`fold_every_batch` (the metrics port's server thread).
_BATCHES: weakref.WeakSet[MetricBatch] = weakref.WeakSet()


class MetricBatch:
    """The deferred metrics of one application and their fold timer (see the module docstring).

    ``delay_s``: seconds from the first pending update to the timed fold.
    """

    def __init__(self, delay_s: float = 1.0) -> None:
        self.delay_s = delay_s
        self._parts: list[_Part] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        _BATCHES.add(self)

    def counter(self, child: Any) -> DeferredCounter:
        """A deferred view of the counter (or counter child) ``child``; folded with its public
        ``inc(n)``."""
        part = DeferredCounter(self, child)
        self._parts.append(part)
        return part

    def counters(self, counter: Any) -> DeferredCounterFamily:
        """Deferred counts of ``counter``'s children by their label values (the child is looked
        up with ``labels()`` at the fold, not per update)."""
        part = DeferredCounterFamily(self, counter)
        self._parts.append(part)
        return part

    def histogram(self, child: Any, buckets: Sequence[float]) -> Observer:
        """A deferred view of the histogram child ``child`` made with ``buckets`` (the upper
        bounds given to ``Histogram``, ``+Inf`` added when missing, as prometheus-client does).

        When ``child`` has prometheus-client's per-bucket values (``_buckets``, ``_sum``, each
        with ``inc``), pending observations are kept as a count per bucket plus their sum and
        folded into those values; otherwise each observation is kept and replayed with
        ``observe`` at the fold."""
        bounds = [float(b) for b in buckets]
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
        values = getattr(child, "_buckets", None)
        total = getattr(child, "_sum", None)
        part: DeferredHistogram | DeferredObservations
        if (
            isinstance(values, list)
            and len(values) == len(bounds)
            and all(hasattr(v, "inc") for v in values)
            and hasattr(total, "inc")
        ):
            part = DeferredHistogram(self, values, total, bounds)
        else:
            part = DeferredObservations(self, child)
        self._parts.append(part)
        return part

    def arm(self) -> None:
        """Schedule the timed fold, unless one is scheduled; with no running event loop, fold
        now. Called by a part on its first pending update since the last fold."""
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.fold()
            return
        self._loop = loop
        self._timer = loop.call_later(self.delay_s, self.fold)

    def fold(self) -> None:
        """Write every pending update through now and cancel the timed fold."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for part in self._parts:
            part.armed = False
            part.fold()

    def fold_from_thread(self, timeout_s: float) -> None:
        """Fold from a thread other than the event loop's: the fold runs on the loop of the
        timed fold (there is nothing pending without one) and this waits for it at most
        ``timeout_s`` seconds; a closed loop is skipped."""
        loop = self._loop
        if self._timer is None or loop is None:
            return
        try:
            if loop.is_running() and _running_loop() is loop:
                self.fold()
                return
            done = threading.Event()

            def fold_then_signal() -> None:
                try:
                    self.fold()
                finally:
                    done.set()

            loop.call_soon_threadsafe(fold_then_signal)
        except RuntimeError:  # the loop is closed
            return
        done.wait(timeout_s)


def fold_every_batch(timeout_s: float = 0.5) -> None:
    """Fold every live :class:`MetricBatch` of this process (the metrics port's server thread
    calls it before each render); waits at most ``timeout_s`` seconds per batch."""
    for batch in list(_BATCHES):
        batch.fold_from_thread(timeout_s)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _Part:
    """A deferred metric of a batch: ``armed`` once it holds pending updates (until the fold);
    :meth:`fold` writes them into the prometheus-client object and forgets them."""

    __slots__ = ("armed", "batch")

    def __init__(self, batch: MetricBatch) -> None:
        self.batch = batch
        self.armed = False

    def fold(self) -> None:
        raise NotImplementedError


class DeferredCounter(_Part):
    """A counter whose ``inc`` adds to a pending count (see :meth:`MetricBatch.counter`)."""

    __slots__ = ("child", "pending")

    def __init__(self, batch: MetricBatch, child: Any) -> None:
        super().__init__(batch)
        self.child = child
        self.pending = 0

    def inc(self, amount: int = 1) -> None:
        """Count ``amount`` (≥ 0) more."""
        self.pending += amount
        if not self.armed:
            self.armed = True
            self.batch.arm()

    def fold(self) -> None:
        pending, self.pending = self.pending, 0
        if pending:
            self.child.inc(pending)


class DeferredCounterFamily(_Part):
    """Pending counts of a labelled counter by label values (see :meth:`MetricBatch.counters`)."""

    __slots__ = ("counter", "pending")

    def __init__(self, batch: MetricBatch, counter: Any) -> None:
        super().__init__(batch)
        self.counter = counter
        self.pending: dict[str, int] = {}

    def inc(self, label: str, amount: int = 1) -> None:
        """Count ``amount`` more for the child of the one label value ``label``."""
        pending = self.pending
        pending[label] = pending.get(label, 0) + amount
        if not self.armed:
            self.armed = True
            self.batch.arm()

    def fold(self) -> None:
        pending, self.pending = self.pending, {}
        for label, amount in pending.items():
            self.counter.labels(label).inc(amount)


class DeferredHistogram(_Part):
    """A histogram child's pending observations as counts per bucket and their sum."""

    __slots__ = ("bounds", "counts", "sum", "_values", "_total")

    def __init__(self, batch: MetricBatch, values: list[Any], total: Any, bounds: list[float]):
        super().__init__(batch)
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self._values = values
        self._total = total

    def observe(self, amount: float) -> None:
        """Record one observation: one more in the first bucket whose bound is ≥ ``amount`` (a
        number, not NaN, which prometheus-client would leave out of every bucket)."""
        self.counts[bisect.bisect_left(self.bounds, amount)] += 1
        self.sum += amount
        if not self.armed:
            self.armed = True
            self.batch.arm()

    def fold(self) -> None:
        counts, self.counts = self.counts, [0] * len(self.bounds)
        total, self.sum = self.sum, 0.0
        if not any(counts):
            return
        self._total.inc(total)
        for value, n in zip(self._values, counts, strict=True):
            if n:
                value.inc(n)


class DeferredObservations(_Part):
    """A histogram child's pending observations kept one by one, replayed with ``observe``."""

    __slots__ = ("child", "pending")

    def __init__(self, batch: MetricBatch, child: Any) -> None:
        super().__init__(batch)
        self.child = child
        self.pending: list[float] = []

    def observe(self, amount: float) -> None:
        """Record one observation of ``amount``."""
        self.pending.append(amount)
        if not self.armed:
            self.armed = True
            self.batch.arm()

    def fold(self) -> None:
        pending, self.pending = self.pending, []
        observe: Callable[[float], None] = self.child.observe
        for amount in pending:
            observe(amount)
