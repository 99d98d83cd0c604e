"""The outbox: where outbound events wait, durably, between the hit's answer and their delivery.

One interface, three backends chosen by ``TAGSERVER_OUTBOX`` (:func:`open_outbox`):

- a file path: :class:`~tagserver.delivery.outbox_sqlite.SqliteOutbox` (SQLite in WAL mode, group
  commit; the default, for one machine);
- ``redis://host:port/db`` (or ``rediss://``): :class:`~tagserver.delivery.outbox_redis.RedisOutbox`
  (a Redis Stream with a consumer group, for several instances behind a load balancer);
- ``memory``: :class:`MemoryOutbox`, *not durable* (the demo, benchmarks and unit tests).

Life of an entry: :meth:`Outbox.put` (durable when it returns) → :meth:`Outbox.claim` (leased to
this consumer for ``lease_s`` seconds, kept alive with :meth:`Outbox.renew`; or leased by the
:meth:`Outbox.put_leased` instead, to the process that stores it and will send it) → either
:meth:`Outbox.ack` (delivered: gone), :meth:`Outbox.bury` (a dead letter with its reason) or
:meth:`Outbox.release` (back to the queue at shutdown). A consumer that dies stops renewing; its
entries are claimed by another consumer (or the next start) once the lease has run out. Delivery is
at least once: an event sent just before a crash, whose ack was lost, is sent again with the same
bytes (the same ``event_id``).

Entries never hold an access token: ``destination`` is a key (see
:meth:`tagserver.delivery.channels.Channel.key`) resolved against the current container when sent,
so a replay after fixing an expired token uses the new one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, get_args

#: Why an entry became a dead letter (a subset of the drop reasons, plus ``unknown_destination``).
DeadReason = Literal["rejected", "too_old", "retries_exhausted", "unknown_destination"]
DEAD_REASONS: tuple[str, ...] = get_args(DeadReason)


@dataclass(slots=True)
class NewEntry:
    """One outbound event to store: ``payload`` is the destination's JSON for this event, encoded
    once (retries and replays send these bytes unchanged); ``event_time`` is unix seconds.

    Not changed once made. It and :class:`OutboxEntry` are built once per event, so they are not
    ``frozen``: a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``,
    measured at about 0.7 µs per object more than this slotted one."""

    destination: str
    payload: bytes
    event_id: str
    event_time: int | None = None


@dataclass(slots=True)
class OutboxEntry:
    """A stored event; ``id`` is the backend's (SQLite row id, Redis stream id), ``created_at``
    unix seconds when it was first stored (kept across replays). Not changed once made (not
    ``frozen`` for speed, see :class:`NewEntry`)."""

    id: str
    destination: str
    payload: bytes
    event_id: str
    event_time: int | None
    created_at: float


@dataclass(frozen=True)
class Failure:
    """Why an entry is buried: ``status`` is the last HTTP status (0: none or a network error),
    ``code``/``subcode``/``fbtrace_id`` Meta's error fields, ``attempts`` the requests made."""

    reason: DeadReason
    status: int = 0
    code: int | None = None
    subcode: int | None = None
    fbtrace_id: str | None = None
    message: str = ""
    attempts: int = 0


@dataclass(frozen=True)
class DeadLetter:
    """A buried entry, its failure and when (unix seconds); ``id`` is the dead letter's own id."""

    id: str
    entry: OutboxEntry
    failure: Failure
    dead_at: float


@dataclass(frozen=True)
class DestinationStats:
    depth: int
    oldest_age_s: float


@dataclass(frozen=True)
class OutboxStats:
    """``depth`` entries waiting or in flight (``leased`` of them claimed right now), the age in
    seconds of the oldest, dead letters in all and per reason; ``by_destination`` only when asked."""

    depth: int
    oldest_age_s: float | None
    leased: int
    dead: int
    dead_by_reason: dict[str, int] = field(default_factory=dict)
    by_destination: dict[str, DestinationStats] = field(default_factory=dict)


class Outbox(Protocol):
    """The storage contract every backend passes (tests/delivery/test_outbox_contract.py).

    ``durable`` is False only for :class:`MemoryOutbox`. Methods raise
    :class:`~tagserver.exceptions.OutboxError` when the store cannot be reached or written.
    """

    durable: bool
    lease_s: float

    async def open(self) -> None:
        """Connect and create what is missing (tables, stream, consumer group)."""
        ...

    async def close(self) -> None: ...

    async def put(self, entries: Sequence[NewEntry]) -> None:
        """Store ``entries``; they are durable (committed) when this returns."""
        ...

    async def put_leased(self, entries: Sequence[NewEntry]) -> list[OutboxEntry]:
        """:meth:`put`, and in the same write lease ``entries`` to this consumer as :meth:`claim`
        would (no other consumer claims them while the lease runs; :meth:`renew`, :meth:`ack`,
        :meth:`release` and :meth:`bury` take their ids); returns them as stored, in order. The
        process that stores an event is the one that sends it, without reading it back.

        A backend may lease only the first of them (Redis: when older entries that no consumer
        has read yet come first, those are leased instead, and handed out by this consumer's
        next :meth:`claim`); the others stay claimable as usual. If the caller gives up (a
        cancelled put), its entries are claimed again once their lease has run out.
        """
        ...

    async def claim(self, limit: int) -> list[OutboxEntry]:
        """Lease up to ``limit`` entries to this consumer: new ones and those whose lease ran out."""
        ...

    async def renew(self, ids: Sequence[str]) -> None:
        """Extend the lease of entries this consumer holds by ``lease_s`` from now."""
        ...

    async def ack(self, ids: Sequence[str]) -> None:
        """Delivered: remove the entries."""
        ...

    async def release(self, ids: Sequence[str]) -> None:
        """Give leased entries back, claimable at once by any consumer."""
        ...

    async def bury(self, entries: Sequence[OutboxEntry], failure: Failure) -> None:
        """Move entries to the dead-letter store with ``failure``."""
        ...

    async def stats(self, *, detail: bool = False) -> OutboxStats:
        """Counts and ages; per destination with ``detail`` (scans the whole outbox)."""
        ...

    async def dead_letters(
        self, *, reason: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        """Up to ``limit`` dead letters, oldest first, only ``reason`` when given."""
        ...

    async def replay(self, *, reason: str | None = None, ids: Sequence[str] = ()) -> int:
        """Move dead letters (all, those with ``reason``, or those ``ids``) back into the outbox
        with their original payload; return how many."""
        ...


class GroupWriter:
    """Group commit on the event loop: the entries of every ``put`` that arrives while a write is
    running go together into the next write (one Redis script call), and each ``put`` returns when
    the write holding its entries has succeeded (or raises its error). A cancelled ``put`` (its
    hit gave up) leaves the others waiting; its entries are written anyway.

    ``write(entries)`` stores a list of entries durably; it is called for one group at a time. It
    returns ``None``, or one item per entry of the group (an :class:`OutboxEntry` or ``None``),
    of which each ``put`` returns those of its own entries that are not ``None``.
    """

    def __init__(
        self, write: Callable[[list[NewEntry]], Awaitable[Sequence[OutboxEntry | None] | None]]
    ) -> None:
        self._write = write
        self._pending: list[NewEntry] = []
        #: one per put: its future, and where its entries start in the group
        self._waiters: list[tuple[asyncio.Future[list[OutboxEntry] | None], int]] = []
        self._task: asyncio.Task[None] | None = None

    async def put(self, entries: Sequence[NewEntry]) -> list[OutboxEntry] | None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[list[OutboxEntry] | None] = loop.create_future()
        self._waiters.append((waiter, len(self._pending)))  # cancelling it touches no other put
        self._pending.extend(entries)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._flush())
        return await waiter

    async def _flush(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            waiters, self._waiters = self._waiters, []
            try:
                written = await self._write(group)
            except Exception as exc:
                for waiter, _ in waiters:
                    if not waiter.done():
                        waiter.set_exception(exc)
                        waiter.add_done_callback(_retrieved)  # even if its put is cancelled
            else:
                ends = [start for _, start in waiters[1:]] + [len(group)]
                for (waiter, start), end in zip(waiters, ends, strict=True):
                    if not waiter.done():
                        waiter.set_result(
                            None if written is None
                            else [e for e in written[start:end] if e is not None]
                        )  # fmt: skip


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark ``future``'s exception as seen (no "never retrieved" warning when nobody awaits)."""
    if not future.cancelled():
        future.exception()


def open_outbox(spec: str, *, lease_s: float = 30.0) -> Outbox:
    """The backend for a ``TAGSERVER_OUTBOX`` value (not yet opened): ``memory``,
    ``redis://...``/``rediss://...`` or a SQLite file path."""
    if spec == "memory":
        return MemoryOutbox(lease_s=lease_s)
    if spec.startswith(("redis://", "rediss://", "unix://")):
        from tagserver.delivery.outbox_redis import RedisOutbox

        return RedisOutbox(spec, lease_s=lease_s)
    from tagserver.delivery.outbox_sqlite import SqliteOutbox

    return SqliteOutbox(spec, lease_s=lease_s)


def describe_outbox(spec: str) -> str:
    """A log-safe name for a ``TAGSERVER_OUTBOX`` value: a Redis URL loses its password."""
    if spec.startswith(("redis://", "rediss://", "unix://")) and "@" in spec:
        scheme, _, rest = spec.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return spec


@dataclass(slots=True)
class _Row:
    entry: OutboxEntry
    lease_until: float = 0.0


class MemoryOutbox:
    """The outbox in this process's memory: fast, and lost with the process (``durable`` False).

    Used by ``tagserver demo``, as the baseline of the benchmark, and by unit tests of the sender.
    Keeps at most ``max_dead`` dead letters (the oldest are forgotten).
    """

    durable = False

    def __init__(self, *, lease_s: float = 30.0, max_dead: int = 10_000) -> None:
        self.lease_s = lease_s
        self._rows: dict[str, _Row] = {}
        self._dead: dict[str, DeadLetter] = {}
        self._max_dead = max_dead
        self._next = 0

    def _id(self) -> str:
        self._next += 1
        return str(self._next)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def put(self, entries: Sequence[NewEntry]) -> None:
        now = time.time()
        rows = self._rows
        for new in entries:
            self._next += 1  # self._id(), written out
            entry_id = str(self._next)
            rows[entry_id] = _Row(
                OutboxEntry(
                    entry_id, new.destination, new.payload, new.event_id, new.event_time, now
                )
            )

    async def put_leased(self, entries: Sequence[NewEntry]) -> list[OutboxEntry]:
        now = time.time()
        until = time.monotonic() + self.lease_s
        rows, stored = self._rows, []
        for new in entries:
            self._next += 1  # self._id(), written out
            entry_id = str(self._next)
            entry = OutboxEntry(
                entry_id, new.destination, new.payload, new.event_id, new.event_time, now
            )
            rows[entry_id] = _Row(entry, until)
            stored.append(entry)
        return stored

    async def claim(self, limit: int) -> list[OutboxEntry]:
        now = time.monotonic()
        claimed: list[OutboxEntry] = []
        for row in self._rows.values():
            if len(claimed) >= limit:
                break
            if row.lease_until <= now:
                row.lease_until = now + self.lease_s
                claimed.append(row.entry)
        return claimed

    async def renew(self, ids: Sequence[str]) -> None:
        until = time.monotonic() + self.lease_s
        for entry_id in ids:
            row = self._rows.get(entry_id)
            if row is not None:
                row.lease_until = until

    async def ack(self, ids: Sequence[str]) -> None:
        for entry_id in ids:
            self._rows.pop(entry_id, None)

    async def release(self, ids: Sequence[str]) -> None:
        for entry_id in ids:
            row = self._rows.get(entry_id)
            if row is not None:
                row.lease_until = 0.0

    async def bury(self, entries: Sequence[OutboxEntry], failure: Failure) -> None:
        now = time.time()
        for entry in entries:
            if self._rows.pop(entry.id, None) is None:
                continue
            dead_id = self._id()
            self._dead[dead_id] = DeadLetter(dead_id, entry, failure, now)
        while len(self._dead) > self._max_dead:
            del self._dead[next(iter(self._dead))]

    async def stats(self, *, detail: bool = False) -> OutboxStats:
        now_wall, now = time.time(), time.monotonic()
        rows = list(self._rows.values())
        by_reason: dict[str, int] = {}
        for dead in self._dead.values():
            by_reason[dead.failure.reason] = by_reason.get(dead.failure.reason, 0) + 1
        per: dict[str, DestinationStats] = {}
        if detail:
            for row in rows:
                age = now_wall - row.entry.created_at
                old = per.get(row.entry.destination)
                per[row.entry.destination] = DestinationStats(
                    (old.depth if old else 0) + 1, max(age, old.oldest_age_s if old else 0.0)
                )
        oldest = min((r.entry.created_at for r in rows), default=None)
        return OutboxStats(
            depth=len(rows),
            oldest_age_s=None if oldest is None else now_wall - oldest,
            leased=sum(1 for r in rows if r.lease_until > now),
            dead=len(self._dead),
            dead_by_reason=by_reason,
            by_destination=per,
        )

    async def dead_letters(
        self, *, reason: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        found = [d for d in self._dead.values() if reason is None or d.failure.reason == reason]
        return found[:limit]

    async def replay(self, *, reason: str | None = None, ids: Sequence[str] = ()) -> int:
        chosen = [
            d
            for d in self._dead.values()
            if (reason is None or d.failure.reason == reason) and (not ids or d.id in ids)
        ]
        for dead in chosen:
            del self._dead[dead.id]
            entry_id = self._id()
            self._rows[entry_id] = _Row(replace(dead.entry, id=entry_id))
        return len(chosen)
