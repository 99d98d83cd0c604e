"""The batching sender: stores outbound events in the outbox, then claims, batches and delivers
them, retrying transient failures and burying what can never be delivered.

``submit`` returns once the events are durable in the outbox (the hit is answered after that);
delivery happens in the background and never reaches the browser's response. The entries a
submit stores are leased to this sender by the same write (``Outbox.put_leased``): it
sends them without claiming them back. The sender holds at most ``max_held`` entries in memory
(stored leased or claimed; the rest waits in the outbox, unleased), groups them per
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
Destination keys resolve against the *current* container (:meth:`Sender.use_destinations`, called
again after a live reload), so tokens and secret variable values are read at send time and never
stored; a payload whose channel ``seals_secrets`` is stored sealed (:mod:`tagserver.delivery.sealed`).
An event that cannot be encoded is dropped as ``invalid_event`` when submitted (the others of the
hit are stored); a bug while delivering is logged, counted as ``internal_error`` and retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from tagserver.delivery.channels import Channel, compact_json, payload_mapping, request_head
from tagserver.delivery.drops import DropCounter
from tagserver.delivery.outbox import Failure, NewEntry, Outbox, OutboxEntry
from tagserver.delivery.retry import RetryPolicy
from tagserver.delivery.sealed import Sealer, UnknownSecret, unseal
from tagserver.exceptions import DestinationRejected, DestinationUnavailable, OutboxError
from tagserver.json_codec import detached, loads
from tagserver.metrics import Metrics
from tagserver.secret import Secret
from tagserver.tags import Outbound

log = logging.getLogger("tagserver.delivery")

#: Destination objects whose channel and key :meth:`Sender.submit` keeps (a tag hands the same
#: object with every event it builds); past this many, it starts again from none.
ROUTES_KEPT = 64
#: Entries stored since the last fill that make the sender fill before its flush interval (a
#: full Conversions API batch), and the most one claim asks for.
FILL_BATCH = 1000
#: The integers SQLite can store as ``event_time``.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """The stored form of an event payload: compact UTF-8 JSON, encoded once."""
    return compact_json(payload)


@dataclass(eq=False, slots=True)
class _Held:
    entry: OutboxEntry
    attempts: int = 0
    due: float = 0.0  # time.monotonic()
    in_flight: bool = False
    #: the channel's ``chain_key`` of the payload (``None``: not chained), once computed
    chain: str | None = None
    chain_known: bool = False
    #: an earlier entry of its chain is still held: not sent before that one is done
    blocked: bool = False


class Sender:
    """Delivers what tags produce, through ``outbox``.

    ``channels`` maps a destination class (e.g. ``MetaDestination``) to its :class:`Channel`;
    ``destinations`` are the container's destinations, so entries stored by an earlier run (or
    replayed) find their current token; ``resolve`` names a destination for a key no listed one
    has (a GA4 measurement id taken from the hit), ``None`` when unknown; ``secrets`` are the
    container's secret variables (name → value). Every ``flush_interval`` seconds the sender
    claims new entries and sends what is due.
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
        resolve: Callable[[str], Any | None] | None = None,
        secrets: Mapping[str, Secret] | None = None,
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
        self._resolve: Callable[[str], Any | None] | None = None
        self._secrets: dict[str, str] = {}
        self._secret_history: dict[str, list[str]] = {}
        self._sealer = Sealer({})
        #: id(destination) -> (destination, channel, key, seals secrets), see :meth:`_route`
        self._routes: dict[int, tuple[Any, Channel, str, bool]] = {}
        self.use_destinations(destinations, resolve=resolve, secrets=secrets or {})
        self._held: dict[str, dict[str, _Held]] = {}
        self._held_count = 0
        #: the held entries not in flight, per destination (what :meth:`_dispatch` looks at), and
        #: no later than the earliest ``due`` of those not ``blocked`` (0.0: look at them now);
        #: so that a loop turn costs what is new, not every entry held (in flight or waiting for
        #: a retry)
        self._waiting: dict[str, dict[str, _Held]] = {}
        self._wait_due: dict[str, float] = {}
        #: destinations whose channel chains entries: one leaving may unblock others
        self._chained: set[str] = set()
        #: entries stored leased to this sender since the last fill (held from the next one on)
        self._fresh: list[OutboxEntry] = []
        #: entries being stored leased, plus the limit of the claim running (see :meth:`_room`)
        self._reserved = 0
        self._paused: dict[str, float] = {}
        self._unclaimed = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._renew_task: asyncio.Task[None] | None = None
        self._stopped = False  # the loops end at their next turn (a cancel can be swallowed)
        self._closing = False
        self._fill_now = False
        self._outbox_empty = False
        self.delivered = 0

    def _channel(self, destination: Any) -> Channel:
        return self._channels[type(destination)]

    def use_destinations(
        self,
        destinations: Iterable[Any],
        *,
        resolve: Callable[[str], Any | None] | None = None,
        secrets: Mapping[str, Secret],
    ) -> None:
        """Resolve keys against these destinations and secrets from now on (the container's,
        again after each reload): a key none of them has becomes ``unknown_destination``."""
        known: dict[str, Any] = {}
        for destination in destinations:
            if type(destination) in self._channels:
                known[self._channel(destination).key(destination)] = destination
        self._known = known
        self._routes = {}  # each destination is remembered again in the new ``_known``
        self._resolve = resolve
        self._secrets = {name: secret.reveal() for name, secret in secrets.items()}
        for name, value in self._secrets.items():
            history = self._secret_history.setdefault(name, [])
            if value not in history:
                history.append(value)
        self._sealer = Sealer(self._secret_history)

    def _remember(self, destination: Any) -> str:
        """The key of ``destination``; a destination no container lists (a GA4 id from the hit,
        a sender without a container) is kept, a listed one is not replaced by an older copy."""
        key = self._channel(destination).key(destination)
        self._known.setdefault(key, destination)
        return key

    def _route(self, destination: Any) -> tuple[Any, Channel, str, bool]:
        """``(destination, channel, key, seals secrets)``, computed (and the destination
        remembered) once per destination object, not once per event."""
        route = self._routes.get(id(destination))
        if route is None or route[0] is not destination:
            channel = self._channel(destination)
            key = self._remember(destination)
            route = (destination, channel, key, bool(getattr(channel, "seals_secrets", False)))
            if len(self._routes) >= ROUTES_KEPT:
                self._routes.clear()
            self._routes[id(destination)] = route  # holds the object: its id is not reused
        return route

    def _destination(self, key: str) -> Any | None:
        destination = self._known.get(key)
        if destination is None and self._resolve is not None:
            destination = self._resolve(key)
        return destination

    # intake ------------------------------------------------------------------------------

    async def submit(self, outbound: Sequence[Outbound]) -> None:
        """Store ``outbound`` in the outbox; durable when this returns.

        Raises :class:`~tagserver.exceptions.OutboxError` when the outbox cannot store them. An
        event that cannot be encoded (e.g. a lone surrogate) is counted as ``invalid_event``.
        """
        entries = []
        routes = self._routes
        for item in outbound:
            destination = item.destination
            # self._route(destination), read here when known (every event but a tag's first)
            route = routes.get(id(destination))
            if route is None or route[0] is not destination:
                route = self._route(destination)
            _, channel, key, seals = route
            payload: Mapping[str, Any] = item.payload
            try:
                # held until acknowledged: in a bytes object of its own size (json_codec.detached)
                stored = detached(compact_json(self._sealer.seal(payload) if seals else payload))
            except (TypeError, ValueError) as exc:
                self._drops.count(
                    channel.label(item.destination),
                    "invalid_event",
                    f"event_id={payload.get('event_id', '?')}: cannot encode "
                    f"({type(exc).__name__})",
                )
                continue
            event_time = payload.get("event_time")
            if not isinstance(event_time, int) or not INT64_MIN <= event_time <= INT64_MAX:
                event_time = None  # one no store can hold stays in the payload only
            entries.append(
                NewEntry(key, stored, str(payload.get("event_id") or ""), event_time)
            )
        if not entries:
            return
        n = len(entries)
        room = self._max_held - self._held_count - len(self._fresh) - self._reserved  # _room()
        if n <= room and self._loop_task is not None and not self._closing:
            # the usual case, inline (a coroutine less per hit): all of them leased, see _store
            self._reserved += n
            try:
                leased = await self._outbox.put_leased(entries)
            finally:
                self._reserved -= n
            if self._stopped:
                await self._release_late(leased)
            else:
                self._fresh += leased
        else:
            await self._store(entries)
        self._unclaimed += n
        if self._unclaimed >= FILL_BATCH or self._closing:
            self._fill_now = True
            self._wake.set()

    def _room(self) -> int:
        """How many more entries may be leased to this sender: ``max_held`` less those held,
        those stored leased and not yet held, and those being stored leased or claimed."""
        return self._max_held - self._held_count - len(self._fresh) - self._reserved

    async def _store(self, entries: list[NewEntry]) -> None:
        """Put ``entries`` in the outbox, leased to this sender as far as ``max_held`` leaves
        room, while it runs (not before :meth:`start` nor while stopping: nothing would renew
        the leases); the rest is stored unleased, for any consumer's claim."""
        room = self._room()
        if room <= 0 or self._loop_task is None or self._closing:
            await self._outbox.put(entries)
            return
        leased = entries if room >= len(entries) else entries[:room]
        self._reserved += len(leased)
        try:
            if leased is entries:
                stored = await self._outbox.put_leased(entries)
            else:
                stored, _ = await asyncio.gather(
                    self._outbox.put_leased(leased), self._outbox.put(entries[room:])
                )
        finally:
            self._reserved -= len(leased)
        if self._stopped:
            await self._release_late(stored)
        else:
            self._fresh += stored

    async def _release_late(self, stored: Sequence[OutboxEntry]) -> None:
        """Entries stored leased while :meth:`stop` ran: nothing would renew their leases."""
        with contextlib.suppress(OutboxError):
            await self._outbox.release([e.id for e in stored])

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
        while not self._stopped:
            now = time.monotonic()
            due = now >= next_fill or self._closing
            if due or self._fill_now:
                self._fill_now = False
                if due:
                    next_fill = now + self._flush_interval
                try:
                    await self._fill(whole=not due)
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
        while not self._stopped:
            await asyncio.sleep(max(0.05, self._outbox.lease_s / 3))
            ids = [entry_id for held in self._held.values() for entry_id in held]
            ids += [entry.id for entry in self._fresh]
            try:
                await self._outbox.renew(ids)
            except OutboxError as exc:
                log.error("outbox lease renewal failed", extra={"error": str(exc)})

    async def _fill(self, *, whole: bool = False) -> None:
        """Hold the entries stored leased since the last fill, then claim entries until
        ``max_held`` are held or the outbox has nothing claimable.

        ``whole`` (a fill before the flush interval because :data:`FILL_BATCH` entries were
        stored): only whole multiples of :data:`FILL_BATCH` of the stored ones, the oldest; the
        rest waits for the next fill instead of going out as a small batch of its own."""
        fresh = self._fresh
        keep = len(fresh) % FILL_BATCH if whole else 0
        if keep:
            self._hold(fresh[:-keep])
            self._fresh = fresh[-keep:]
        else:
            self._hold(fresh)
            self._fresh = []
        self._unclaimed = keep
        while (room := self._room()) > 0:
            limit = min(FILL_BATCH, room)
            self._reserved += limit
            claim = asyncio.ensure_future(self._outbox.claim(limit))
            try:
                claimed = await asyncio.shield(claim)
            except asyncio.CancelledError:
                # stopping: the claim still runs in the outbox; hold what it takes, so that
                # stop() releases those leases too, then stop
                with contextlib.suppress(OutboxError):
                    self._hold(await claim)
                raise
            finally:
                self._reserved -= limit
            self._hold(claimed)
            self._outbox_empty = len(claimed) < limit
            if self._outbox_empty:
                return

    def _hold(self, claimed: Sequence[OutboxEntry]) -> None:
        """Keep claimed entries, grouped by destination (an entry held already is kept once)."""
        by_key, waiting_by_key, wait_due = self._held, self._waiting, self._wait_due
        key, held, waiting = None, {}, {}
        for entry in claimed:
            if entry.destination != key:
                key = entry.destination
                held = by_key.setdefault(key, {})
                waiting = waiting_by_key.setdefault(key, {})
                wait_due[key] = 0.0
            if entry.id not in held:
                held[entry.id] = waiting[entry.id] = _Held(entry)
                self._held_count += 1

    def _wait(self, key: str, batch: Iterable[_Held]) -> None:
        """Entries of ``batch`` still held wait again (for their ``due``), out of flight."""
        held = self._held.get(key)
        if held is None:
            return
        waiting = self._waiting.setdefault(key, {})
        earliest = self._wait_due.get(key, float("inf"))
        for h in batch:
            h.in_flight = False
            if h.entry.id in held:
                waiting[h.entry.id] = h
                if h.due < earliest:
                    earliest = h.due
        self._wait_due[key] = earliest

    def _next_due(self) -> float | None:
        """When an entry waiting (not in flight, not blocked) is due, its destination's pause
        over, ``time.monotonic()``; ``None``: none waits. Never later than that (it may be
        earlier: a turn of the loop then finds nothing to send)."""
        best = None
        paused, wait_due = self._paused, self._wait_due
        for key, waiting in self._waiting.items():
            if waiting:
                due = max(wait_due.get(key, 0.0), paused.get(key, 0.0))
                if best is None or due < best:
                    best = due
        return None if best is None or best == float("inf") else best

    def _dispatch(self) -> None:
        """Start a delivery task for every due batch.

        Batches go out concurrently, except those a channel chains: when it defines
        ``chain_key(payload)`` (one-event batches), entries with the same non-``None`` key (the
        hits of one batched GA4 body) are sent one after the other in the order they were stored,
        an entry waiting while an earlier one of its chain is in flight or waiting for a retry.
        """
        now = time.monotonic()
        wait_due = self._wait_due
        for key, waiting in self._waiting.items():
            if not waiting or wait_due.get(key, 0.0) > now or self._paused.get(key, 0.0) > now:
                continue
            destination = self._destination(key)
            channel = self._channel(destination) if destination is not None else None
            size = channel.max_batch if channel is not None else 1000
            chain_key = getattr(channel, "chain_key", None) if size == 1 else None
            if chain_key is not None:
                self._chained.add(key)
                self._mark_blocked(self._held[key].values(), chain_key)
            ready: list[_Held] = []
            earliest = float("inf")
            for h in waiting.values():
                if h.blocked:
                    continue
                if h.due <= now:
                    ready.append(h)
                elif h.due < earliest:
                    earliest = h.due
            wait_due[key] = earliest  # a blocked one waits for a _forget, which resets this
            if not ready:
                continue
            if len(ready) == len(waiting):
                waiting.clear()
            else:
                for h in ready:
                    del waiting[h.entry.id]
            for start in range(0, len(ready), size):
                batch = ready[start : start + size]
                for h in batch:
                    h.in_flight = True
                self._spawn(self._deliver_guarded(key, batch))

    @staticmethod
    def _mark_blocked(held: Iterable[_Held], chain_key: Callable[[Any], str | None]) -> None:
        """Set ``blocked`` on every held entry (in stored order) behind an earlier one of its
        chain."""
        seen: set[str] = set()
        for h in held:
            if not h.chain_known:
                h.chain_known = True
                try:
                    h.chain = chain_key(payload_mapping(h.entry.payload))
                except (TypeError, ValueError, KeyError):
                    h.chain = None
            h.blocked = h.chain is not None and h.chain in seen
            if h.chain is not None:
                seen.add(h.chain)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def pending(self) -> int:
        """Events leased to this sender (claimed, or stored leased) and not yet finished."""
        return self._held_count + len(self._fresh)

    # delivery ----------------------------------------------------------------------------

    def _forget(self, key: str, batch: Sequence[_Held]) -> None:
        held = self._held.get(key, {})
        waiting = self._waiting.get(key, {})
        for h in batch:
            if held.pop(h.entry.id, None) is not None:
                self._held_count -= 1
                if not h.in_flight:  # a held entry waits exactly when it is not in flight
                    waiting.pop(h.entry.id, None)
        if not held:
            self._held.pop(key, None)
            self._waiting.pop(key, None)
            self._wait_due.pop(key, None)
        elif key in self._chained:
            self._wait_due[key] = 0.0  # the entries it blocked may go now

    async def _deliver_guarded(self, key: str, batch: list[_Held]) -> None:
        """:meth:`_deliver`, with a bug logged and counted (``internal_error``) instead of lost
        in a dead task; the events stay in the outbox and are tried again after a backoff."""
        try:
            await self._deliver(key, batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            destination = self._destination(key)
            label = self._channel(destination).label(destination) if destination else key
            log.exception("delivery failed", extra={"destination": label})
            self._drops.count(label, "internal_error", type(exc).__name__, n=len(batch))
            now = time.monotonic()
            held = self._held.get(key, {})
            for h in batch:
                if h.entry.id in held:
                    h.attempts += 1
                    h.due = now + self._policy.delay(h.attempts)
            self._wait(key, batch)
            self._wake.set()

    async def _deliver(self, key: str, batch: list[_Held]) -> None:
        try:
            destination = self._destination(key)
            if destination is None:
                failure = Failure(
                    "unknown_destination",
                    message="no tag of the current container sends to this destination",
                )
                await self._bury(key, key, batch, failure)
                return
            channel = self._channel(destination)
            label = channel.label(destination)
            now = time.time()
            max_age = getattr(channel, "max_age_for", None)
            # max_age_for only ever extends max_age_s: an event newer than that is never too old
            newest_too_old = now - channel.max_age_s
            too_old = [
                h for h in batch
                if (h.entry.event_time or h.entry.created_at) < newest_too_old
                and (max_age is None
                     or (h.entry.event_time or h.entry.created_at) < now - max_age(h.entry.payload))
            ]  # fmt: skip
            if too_old:
                failure = Failure(
                    "too_old",
                    message=f"event_time over the destination's limit of {channel.max_age_s:.0f} s"
                    if max_age is None else "event_time over the destination's limit",
                    attempts=max(h.attempts for h in too_old),
                )
                await self._bury(key, label, too_old, failure)
                buried = {id(h) for h in too_old}
                batch = [h for h in batch if id(h) not in buried]
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
        try:
            if getattr(channel, "seals_secrets", False):
                payloads = [self._unsealed(h.entry.payload) for h in batch]
            else:
                payloads = [h.entry.payload for h in batch]
        except UnknownSecret as exc:
            failure = Failure(
                "unknown_destination",
                message=f"the secret variable {exc.name!r} is no longer in the container",
                attempts=max(h.attempts for h in batch),
            )
            await self._bury(key, label, batch, failure)
            return
        try:
            url, body = channel.build_request(destination, payloads)
            method, head = request_head(channel, destination, payloads)
            # httpx encodes str header values as ASCII; a channel may name another encoding
            headers = httpx.Headers(head, encoding=getattr(channel, "header_encoding", None))
        except (TypeError, ValueError, KeyError) as exc:  # a stored event that cannot be sent
            if len(batch) > 1:
                middle = len(batch) // 2
                await asyncio.gather(
                    self._attempt(key, destination, channel, batch[:middle]),
                    self._attempt(key, destination, channel, batch[middle:]),
                )
                return
            failure = Failure("rejected", message=f"cannot encode ({type(exc).__name__})",
                              attempts=batch[0].attempts)  # fmt: skip
            await self._bury(key, label, batch, failure)
            return
        attempts = 0
        for h in batch:
            h.attempts += 1
            if h.attempts > attempts:
                attempts = h.attempts
        try:
            async with self._semaphore:
                response = await self._client.request(method, url, content=body, headers=headers)
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
        self._wait(key, batch)
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

    def _unsealed(self, payload: bytes) -> bytes:
        """The stored payload of a channel that ``seals_secrets`` with the current secret values
        put back (a sealed one holds NUL references, which JSON writes as ``\\u0000``); raises
        :class:`UnknownSecret`."""
        if b"\\u0000" not in payload:
            return payload
        return encode_payload(unseal(loads(payload), self._secrets))

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
        self._stopped = True
        loops = [t for t in (self._loop_task, self._renew_task) if t is not None]
        for task in loops:
            task.cancel()
        if loops:  # finished, so that no claim or renewal of theirs comes after the release
            await asyncio.wait(loops, timeout=1.0)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
        self._hold(self._fresh)
        self._fresh = []
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
            destination = self._destination(key)
            label = self._channel(destination).label(destination) if destination else key
            by_label[label] = by_label.get(label, 0) + 1
        if unclaimed > 0:
            by_label["outbox"] = by_label.get("outbox", 0) + unclaimed
        for label, count in by_label.items():
            self._drops.count(label, "shutdown", f"drain timeout of {timeout}s reached", n=count)
