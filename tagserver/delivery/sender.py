"""The in-memory batching sender: groups outbound events per destination, sends them in batches,
retries transient failures with backoff, bisects permanently rejected batches, counts every drop.

Outbound failures never reach the browser's response: ``submit`` only queues.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from tagserver.delivery.channels import Channel, request_head
from tagserver.delivery.drops import DropCounter
from tagserver.delivery.retry import RetryPolicy
from tagserver.exceptions import DestinationRejected, DestinationUnavailable
from tagserver.tags import Outbound

log = logging.getLogger("tagserver.delivery")

Payload = Mapping[str, Any]


class Sender:
    """Batches :class:`~tagserver.tags.Outbound` events and delivers them.

    ``channels`` maps a destination class (e.g. ``MetaDestination``) to its :class:`Channel`.
    Batches are flushed every ``flush_interval`` seconds, or at once when one reaches the channel's
    ``max_batch``. At most ``concurrency`` requests are in flight; at most ``max_queued`` events
    wait (more are dropped as ``queue_full``).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        channels: Mapping[type, Channel],
        drops: DropCounter,
        policy: RetryPolicy,
        flush_interval: float = 1.0,
        concurrency: int = 8,
        max_queued: int = 100_000,
    ) -> None:
        self._client = client
        self._channels = dict(channels)
        self._drops = drops
        self._policy = policy
        self._flush_interval = flush_interval
        self._semaphore = asyncio.Semaphore(concurrency)
        self._max_queued = max_queued
        self._buffers: dict[Any, list[Payload]] = {}
        self._queued = 0
        self._tasks: dict[asyncio.Task[None], tuple[str, int]] = {}
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        self.delivered = 0

    def _channel(self, destination: Any) -> Channel:
        return self._channels[type(destination)]

    def submit(self, outbound: Outbound) -> None:
        """Queue one event; never blocks, never raises for delivery problems."""
        label = self._channel(outbound.destination).label(outbound.destination)
        if self._queued >= self._max_queued:
            self._drops.count(label, "queue_full", f"{self._queued} events already queued")
            return
        buffer = self._buffers.setdefault(outbound.destination, [])
        buffer.append(outbound.payload)
        self._queued += 1
        if len(buffer) >= self._channel(outbound.destination).max_batch or self._closing:
            self._wake.set()

    async def start(self) -> None:
        """Start the flush loop (call from the running event loop)."""
        self._flusher = asyncio.create_task(self._flush_loop(), name="tagserver-flush")

    async def _flush_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._flush_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Start sending everything queued, in batches of at most ``max_batch``.

        Batches go out concurrently, except those a channel chains: when it defines
        ``chain_key(payload)``, consecutive one-event batches with the same non-``None`` key (the
        hits of one batched GA4 body) are sent one after the other, in the order they came.
        """
        buffers, self._buffers = self._buffers, {}
        for destination, payloads in buffers.items():
            channel = self._channel(destination)
            size = channel.max_batch
            chain_key = getattr(channel, "chain_key", None)
            chains: list[list[Sequence[Payload]]] = []
            previous: object = None
            for start in range(0, len(payloads), size):
                batch = payloads[start : start + size]
                key = chain_key(batch[0]) if chain_key is not None and size == 1 else None
                if key is not None and key == previous and chains:
                    chains[-1].append(batch)
                else:
                    chains.append([batch])
                previous = key
            for chain in chains:
                count = sum(len(batch) for batch in chain)
                self._queued -= count
                task = asyncio.create_task(self._deliver_chain(destination, chain))
                self._tasks[task] = (channel.label(destination), count)
                task.add_done_callback(self._tasks.pop)

    async def _deliver_chain(self, destination: Any, chain: Sequence[Sequence[Payload]]) -> None:
        """Each batch in turn (retries included before the next one starts)."""
        task = asyncio.current_task()
        remaining = sum(len(batch) for batch in chain)
        for batch in chain:
            await self._deliver_guarded(destination, batch)
            remaining -= len(batch)
            if task in self._tasks:  # what a drain timeout would still count as lost
                self._tasks[task] = (self._tasks[task][0], remaining)

    @property
    def pending(self) -> int:
        """Events queued or in flight."""
        return self._queued + sum(count for _, count in self._tasks.values())

    async def stop(self, *, timeout: float) -> None:
        """Flush, then wait up to ``timeout`` seconds for every batch (retries included); what is
        still undelivered then is dropped as ``shutdown`` and counted."""
        self._closing = True
        if self._flusher is not None:
            self._flusher.cancel()
        self.flush()
        deadline = time.monotonic() + timeout
        while self._tasks:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.wait(list(self._tasks), timeout=remaining)
        for task, (label, count) in list(self._tasks.items()):
            task.cancel()
            self._drops.count(label, "shutdown", f"drain timeout of {timeout}s reached", n=count)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)

    async def _deliver_guarded(self, destination: Any, batch: Sequence[Payload]) -> None:
        """:meth:`_deliver`, with a bug counted and logged instead of lost in a dead task."""
        try:
            await self._deliver(destination, batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            label = self._channel(destination).label(destination)
            log.exception("delivery failed", extra={"destination": label})
            self._drops.count(label, "internal_error", type(exc).__name__, n=len(batch))

    async def _deliver(self, destination: Any, batch: Sequence[Payload]) -> None:
        channel = self._channel(destination)
        label = channel.label(destination)
        try:
            url, body = channel.build_request(destination, batch)
        except (TypeError, ValueError) as exc:  # one event that cannot be encoded
            if len(batch) > 1:
                middle = len(batch) // 2
                await asyncio.gather(self._deliver(destination, batch[:middle]),
                                     self._deliver(destination, batch[middle:]))
            else:
                event_id = batch[0].get("event_id", "?")
                self._drops.count(label, "invalid_event",
                                  f"event_id={event_id}: cannot encode ({type(exc).__name__})")
            return
        method, head = request_head(channel, destination, batch)
        # httpx encodes str header values as ASCII; a channel may name another encoding
        headers = httpx.Headers(head, encoding=getattr(channel, "header_encoding", None))
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._semaphore:
                    response = await self._client.request(
                        method, url, content=body, headers=headers
                    )
                    content = await response.aread()
                error = channel.classify(response.status_code, content, response.headers)
            except httpx.HTTPError as exc:
                error = DestinationUnavailable(f"{type(exc).__name__}: network error or timeout")
            if error is None:
                self.delivered += len(batch)
                log.info(
                    "delivered",
                    extra={"destination": label, "events": len(batch), "attempt": attempt},
                )
                return
            if isinstance(error, DestinationRejected):
                await self._rejected(destination, batch, error)
                return
            if attempt >= self._policy.max_attempts:
                self._drops.count(
                    label, "retries_exhausted", f"{attempt} attempts, last: {error}", n=len(batch)
                )
                return
            delay = self._policy.delay(attempt, retry_after=error.retry_after)
            log.info(
                "retrying",
                extra={
                    "destination": label,
                    "events": len(batch),
                    "attempt": attempt,
                    "delay_s": round(delay, 3),
                    "error": str(error),
                    "fbtrace_id": error.fbtrace_id,
                },
            )
            await asyncio.sleep(delay)

    async def _rejected(
        self, destination: Any, batch: Sequence[Payload], error: DestinationRejected
    ) -> None:
        label = self._channel(destination).label(destination)
        if len(batch) > 1 and error.status == 400 and error.code == 100:
            log.info(
                "bisecting rejected batch",
                extra={"destination": label, "events": len(batch), "error": str(error)},
            )
            middle = len(batch) // 2
            await asyncio.gather(
                self._deliver(destination, batch[:middle]),
                self._deliver(destination, batch[middle:]),
            )
            return
        ids = ",".join(str(p.get("event_id", "?")) for p in batch[:5])
        self._drops.count(
            label,
            "rejected",
            f"{error} fbtrace_id={error.fbtrace_id} event_ids={ids}",
            n=len(batch),
        )
