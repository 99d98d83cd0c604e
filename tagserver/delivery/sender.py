"""The batching sender: stores outbound events in the outbox, then claims, batches and delivers
them, retrying transient failures and burying what can never be delivered.

``submit`` returns once the events are durable in the outbox (the hit is answered after that);
delivery happens in the background and never reaches the browser's response. The sender holds
at most ``max_held`` claimed entries in memory (the rest waits in the outbox), groups them per
destination into batches of at most the channel's ``max_batch``, and sends at most
``concurrency`` requests at once. Outcomes (REFERENCE §1, Meta "Handling errors"):

- success → ``ack``;
- transient (5xx, 429, network, timeouts, Meta's transient codes) → another attempt after
  exponential backoff with jitter, at least the ``Retry-After`` (which also pauses the whole
  destination), until the event is older than the channel's ``max_age_s`` (dead letter ``too_old``)
  or ``policy.max_attempts`` is reached, when set (``retries_exhausted``);
- permanent → a 400 code 100 batch is bisected so the good events still go out; what is left is
  a dead letter ``rejected`` with status, code, subcode and ``fbtrace_id``.

Retries and replays send the stored payload bytes: the same ``event_id``, never a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from tagserver.delivery.channels import Channel
from tagserver.delivery.drops import DropCounter
from tagserver.delivery.outbox import Failure, NewEntry, Outbox, OutboxEntry
from tagserver.delivery.retry import RetryPolicy
from tagserver.exceptions import DestinationRejected, DestinationUnavailable, OutboxError
from tagserver.metrics import Metrics
from tagserver.tags import Outbound

log = logging.getLogger("tagserver.delivery")


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """The stored form of an event payload: compact UTF-8 JSON, encoded once."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(eq=False)
class _Held:
    entry: OutboxEntry
    attempts: int = 0
    due: float = 0.0  # time.monotonic()
    in_flight: bool = False


class Sender:
    """Delivers what tags produce, through ``outbox``.

    ``channels`` maps a destination class (e.g. ``MetaDestination``) to its :class:`Channel`;
    ``destinations`` are the container's destinations, so entries stored by an earlier run (or
    replayed) find their current token. Every ``flush_interval`` seconds the sender claims new
    entries and sends what is due.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        outbox: Outbox,
        channels: Mapping[type, Channel],
        drops: DropCounter,
        policy: RetryPolicy,
        destinations: Iterable[Any] = (),
        metrics: Metrics | None = None,
        flush_interval: float = 1.0,
        concurrency: int = 8,
        max_held: int = 20_000,
    ) -> None:
        self._client = client
        self._outbox = outbox
        self._channels = dict(channels)
        self._drops = drops
        self._policy = policy
        self._metrics = metrics if metrics is not None else Metrics()
        self._flush_interval = flush_interval
        self._semaphore = asyncio.Semaphore(concurrency)
        self._max_held = max_held
        self._known: dict[str, Any] = {}
        for destination in destinations:
            self._remember(destination)
        self._held: dict[str, dict[str, _Held]] = {}
        self._held_count = 0
        self._paused: dict[str, float] = {}
        self._unclaimed = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._renew_task: asyncio.Task[None] | None = None
        self._closing = False
        self._fill_now = False
        self._outbox_empty = False
        self.delivered = 0

    def _channel(self, destination: Any) -> Channel:
        return self._channels[type(destination)]

    def _remember(self, destination: Any) -> str:
        key = self._channel(destination).key(destination)
        self._known[key] = destination
        return key

    # intake ------------------------------------------------------------------------------

    async def submit(self, outbound: Sequence[Outbound]) -> None:
        """Store ``outbound`` in the outbox; durable when this returns.

        Raises :class:`~tagserver.exceptions.OutboxError` when the outbox cannot store them.
        """
        entries = []
        for item in outbound:
            key = self._remember(item.destination)
            event_time = item.payload.get("event_time")
            entries.append(
                NewEntry(
                    destination=key,
                    payload=encode_payload(item.payload),
                    event_id=str(item.payload.get("event_id", "")),
                    event_time=event_time if isinstance(event_time, int) else None,
                )
            )
        if not entries:
            return
        await self._outbox.put(entries)
        self._unclaimed += len(entries)
        if self._unclaimed >= 1000 or self._closing:
            self._fill_now = True
            self._wake.set()

    # the loop ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the claim-and-send loop and the lease keeper (call from the running loop)."""
        self._loop_task = asyncio.create_task(self._run(), name="tagserver-sender")
        if self._outbox.durable:
            self._renew_task = asyncio.create_task(self._renew_loop(), name="tagserver-leases")

    async def _run(self) -> None:
        """Claim new entries every ``flush_interval`` (sooner when a full batch waits or while
        stopping), so they go out in full batches; send retries when they are due."""
        next_fill = 0.0
        while True:
            now = time.monotonic()
            if now >= next_fill or self._fill_now or self._closing:
                self._fill_now = False
                next_fill = now + self._flush_interval
                try:
                    await self._fill()
                except OutboxError as exc:
                    log.error("outbox claim failed", extra={"error": str(exc)})
            self._dispatch()
            timeout = next_fill - time.monotonic()
            next_due = self._next_due()
            if next_due is not None:
                timeout = min(timeout, next_due - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, timeout))
            self._wake.clear()

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(max(0.05, self._outbox.lease_s / 3))
            ids = [entry_id for held in self._held.values() for entry_id in held]
            try:
                await self._outbox.renew(ids)
            except OutboxError as exc:
                log.error("outbox lease renewal failed", extra={"error": str(exc)})

    async def _fill(self) -> None:
        """Claim entries until ``max_held`` are held or the outbox has nothing claimable."""
        self._unclaimed = 0
        while self._held_count < self._max_held:
            limit = min(1000, self._max_held - self._held_count)
            claimed = await self._outbox.claim(limit)
            for entry in claimed:
                held = self._held.setdefault(entry.destination, {})
                if entry.id not in held:
                    held[entry.id] = _Held(entry, due=0.0)
                    self._held_count += 1
            self._outbox_empty = len(claimed) < limit
            if self._outbox_empty:
                return

    def _next_due(self) -> float | None:
        dues = [
            max(h.due, self._paused.get(key, 0.0))
            for key, held in self._held.items()
            for h in held.values()
            if not h.in_flight
        ]
        return min(dues, default=None)

    def _dispatch(self) -> None:
        """Start a delivery task for every due batch."""
        now = time.monotonic()
        for key, held in self._held.items():
            if self._paused.get(key, 0.0) > now:
                continue
            ready = [h for h in held.values() if not h.in_flight and h.due <= now]
            if not ready:
                continue
            destination = self._known.get(key)
            size = self._channel(destination).max_batch if destination is not None else 1000
            for start in range(0, len(ready), size):
                batch = ready[start : start + size]
                for h in batch:
                    h.in_flight = True
                self._spawn(self._deliver(key, batch))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def pending(self) -> int:
        """Events claimed by this sender and not yet finished."""
        return self._held_count

    # delivery ----------------------------------------------------------------------------

    def _forget(self, key: str, batch: Sequence[_Held]) -> None:
        held = self._held.get(key, {})
        for h in batch:
            if held.pop(h.entry.id, None) is not None:
                self._held_count -= 1
        if not held:
            self._held.pop(key, None)

    async def _deliver(self, key: str, batch: list[_Held]) -> None:
        try:
            destination = self._known.get(key)
            if destination is None:
                failure = Failure(
                    "unknown_destination",
                    message="no tag of the current container sends to this destination",
                )
                await self._bury(key, key, batch, failure)
                return
            channel = self._channel(destination)
            label = channel.label(destination)
            oldest = time.time() - channel.max_age_s
            too_old = [h for h in batch if (h.entry.event_time or h.entry.created_at) < oldest]
            if too_old:
                failure = Failure(
                    "too_old",
                    message=f"event_time over the destination's limit of {channel.max_age_s:.0f} s",
                    attempts=max(h.attempts for h in too_old),
                )
                await self._bury(key, label, too_old, failure)
                batch = [h for h in batch if h not in too_old]
            if batch:
                await self._attempt(key, destination, channel, batch)
        except OutboxError as exc:
            # delivered or not, the lease runs out and another attempt follows (at least once)
            log.error("outbox update failed", extra={"destination": key, "error": str(exc)})
            self._forget(key, batch)
        finally:
            self._wake.set()

    async def _attempt(
        self, key: str, destination: Any, channel: Channel, batch: list[_Held]
    ) -> None:
        label = channel.label(destination)
        payloads = [h.entry.payload for h in batch]
        url, body = channel.build_request(destination, payloads)
        headers = {"content-type": "application/json"}
        request_headers = getattr(channel, "request_headers", None)
        if request_headers is not None:  # a channel whose requests are not JSON
            headers = request_headers(destination, payloads)
        for h in batch:
            h.attempts += 1
        attempts = max(h.attempts for h in batch)
        try:
            async with self._semaphore:
                response = await self._client.post(url, content=body, headers=headers)
                content = await response.aread()
            error = channel.classify(response.status_code, content, response.headers)
        except httpx.HTTPError as exc:
            error = DestinationUnavailable(f"{type(exc).__name__}: network error or timeout")
        if error is None:
            await self._outbox.ack([h.entry.id for h in batch])
            self._forget(key, batch)
            self.delivered += len(batch)
            self._metrics.outbound_sent.labels(label).inc(len(batch))
            log.info("delivered", extra={"destination": label, "events": len(batch),
                                         "attempt": attempts})  # fmt: skip
            return
        reason = f"http_{error.status}" if error.status else "network"
        self._metrics.outbound_failed.labels(label, reason).inc()
        if isinstance(error, DestinationRejected):
            if len(batch) > 1 and error.status == 400 and error.code == 100:
                log.info("bisecting rejected batch",
                         extra={"destination": label, "events": len(batch), "error": str(error)})  # fmt: skip
                middle = len(batch) // 2
                await asyncio.gather(
                    self._attempt(key, destination, channel, batch[:middle]),
                    self._attempt(key, destination, channel, batch[middle:]),
                )
                return
            failure = Failure(
                "rejected", status=error.status, code=error.code, subcode=error.subcode,
                fbtrace_id=error.fbtrace_id, message=str(error), attempts=attempts,
            )  # fmt: skip
            await self._bury(key, label, batch, failure)
            return
        assert isinstance(error, DestinationUnavailable)
        max_attempts = self._policy.max_attempts
        if max_attempts and attempts >= max_attempts:
            failure = Failure(
                "retries_exhausted", status=error.status, code=error.code,
                subcode=error.subcode, fbtrace_id=error.fbtrace_id,
                message=f"{attempts} attempts, last: {error}", attempts=attempts,
            )  # fmt: skip
            await self._bury(key, label, batch, failure)
            return
        delay = self._policy.delay(attempts, retry_after=error.retry_after)
        now = time.monotonic()
        if error.retry_after:
            self._paused[key] = max(self._paused.get(key, 0.0), now + error.retry_after)
        for h in batch:
            h.due = now + delay
            h.in_flight = False
        self._metrics.outbound_retried.labels(label, reason).inc(len(batch))
        log.info(
            "retrying",
            extra={
                "destination": label,
                "events": len(batch),
                "attempt": attempts,
                "delay_s": round(delay, 3),
                "error": str(error),
                "fbtrace_id": error.fbtrace_id,
            },
        )

    async def _bury(self, key: str, label: str, batch: Sequence[_Held], failure: Failure) -> None:
        await self._outbox.bury([h.entry for h in batch], failure)
        self._forget(key, batch)
        self._metrics.outbound_dead.labels(label, failure.reason).inc(len(batch))
        ids = ",".join(h.entry.event_id for h in batch[:5])
        detail = (
            f"{failure.message} fbtrace_id={failure.fbtrace_id} event_ids={ids}"
            if failure.reason == "rejected"
            else f"{failure.message} event_ids={ids}"
        )
        self._drops.count(label, failure.reason, detail, n=len(batch))

    # shutdown ----------------------------------------------------------------------------

    async def stop(self, *, timeout: float) -> None:
        """Drain for up to ``timeout`` seconds: claim and send what the outbox holds (honouring
        backoff). Then stop; what is undelivered stays in a durable outbox (leases released) and is
        counted as ``shutdown`` drops in a memory one."""
        self._closing = True
        deadline = time.monotonic() + timeout
        self._wake.set()
        while time.monotonic() < deadline:
            if not self._held and not self._tasks and self._outbox_empty:
                with contextlib.suppress(OutboxError):
                    await self._fill()
                if not self._held:
                    break
            self._wake.set()
            await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
        for task in (self._loop_task, self._renew_task):
            if task is not None:
                task.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
        left = [(key, h) for key, held in self._held.items() for h in held.values()]
        if self._outbox.durable:
            with contextlib.suppress(OutboxError):
                await self._outbox.release([h.entry.id for _, h in left])
            if left:
                log.info("left in the outbox for the next start", extra={"events": len(left)})
            return
        stats = await self._outbox.stats()
        unclaimed = stats.depth - len(left)
        by_label: dict[str, int] = {}
        for key, _ in left:
            destination = self._known.get(key)
            label = self._channel(destination).label(destination) if destination else key
            by_label[label] = by_label.get(label, 0) + 1
        if unclaimed > 0:
            by_label["outbox"] = by_label.get("outbox", 0) + unclaimed
        for label, count in by_label.items():
            self._drops.count(label, "shutdown", f"drain timeout of {timeout}s reached", n=count)
