"""The embedded outbox: one SQLite file in WAL mode, with group commit.

Operations are queued; one task takes every operation queued at that moment and runs them in one
transaction (each in its own savepoint, so one failing operation fails alone), then commits once:
concurrent hits share one INSERT, one commit and one ``fsync`` (``synchronous=FULL``: a committed
entry survives a crash of the process or of the machine), and each hit's answer waits for the
commit that holds its entries.

The statements run on the event loop's thread: they take microseconds, and a thread of their own
was measured slower (each SQLite call releases the GIL, and taking it back from a busy event loop
costs up to the interpreter's 5 ms switch interval, several times per transaction). Only the
``COMMIT`` that syncs the disk runs on a thread, so the loop keeps answering hits meanwhile (their
entries make the next group); so do the WAL checkpoints. Claims, acks and leases commit without
``fsync`` (``synchronous=NORMAL`` for those transactions): after a power cut they can only cause
one more delivery attempt. Another process's write lock is awaited (``busy_timeout`` 0, retried with
backoff up to 10 s), never blocking the loop.

Several processes may share the file (``tagserver serve --workers N``, the operator CLI): WAL lets
readers run beside the one writer, and leases (an owner id and an expiry time per row) keep two
consumers from claiming the same entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tagserver.delivery.outbox import (
    DeadLetter,
    DestinationStats,
    Failure,
    NewEntry,
    OutboxEntry,
    OutboxStats,
)
from tagserver.delivery.worker_thread import WorkerThread
from tagserver.exceptions import OutboxError

log = logging.getLogger("tagserver.delivery")

_T = TypeVar("_T")
#: A queued operation: what to run, the futures that get its result (several for a group of
#: puts), and whether its commit needs an ``fsync``.
_Op = tuple[Callable[[sqlite3.Connection], Any], list["asyncio.Future[Any]"], bool]

#: How long a writer waits for another process's write lock, milliseconds.
BUSY_TIMEOUT_MS = 10_000
#: Rows per multi-row INSERT (4 parameters each plus the shared time, far below SQLite's 32,766).
ROWS_PER_STATEMENT = 1000
#: Ids per ``IN (...)`` list.
IDS_PER_STATEMENT = 1000
#: Every this many commits a WAL checkpoint runs, off the event loop (SQLite's automatic one
#: would run inside whichever commit crosses 1,000 pages, often on the loop).
CHECKPOINT_EVERY = 200

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_time INTEGER,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL,
    owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_by_lease ON outbox (lease_until);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_time INTEGER,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL,
    dead_at REAL NOT NULL,
    reason TEXT NOT NULL,
    status INTEGER NOT NULL,
    code INTEGER,
    subcode INTEGER,
    fbtrace_id TEXT,
    message TEXT NOT NULL,
    attempts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_reason ON dead_letters (reason);
"""


def consumer_name() -> str:
    """``<host>:<pid>:<random>``: unique per process start, readable in stats and logs."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class _PutGroup:
    """The entries of every ``put`` queued for the next transaction: one INSERT, one commit.
    ``values`` holds destination, event_id, event_time, payload for each entry, flat; ``leased``
    the same for the entries of ``put(..., lease=True)``, stored leased to ``owner`` for
    ``lease_s`` seconds, whose row ids are in ``ids`` once inserted, and ``created_at`` is the
    time stored in every row."""

    __slots__ = ("loop", "values", "leased", "futures", "owner", "lease_s", "ids", "created_at")

    def __init__(self, loop: asyncio.AbstractEventLoop, owner: str, lease_s: float) -> None:
        #: the loop of its puts (asking for the running loop costs a getpid() call every time)
        self.loop = loop
        self.values: list[Any] = []
        self.leased: list[Any] = []
        self.futures: list[asyncio.Future[Any]] = []
        self.owner = owner
        self.lease_s = lease_s
        self.ids: list[int] = []
        self.created_at = 0.0

    def insert(self, conn: sqlite3.Connection) -> None:
        """One statement per :data:`ROWS_PER_STATEMENT` rows; ``created_at`` (``?1``) is now.

        The rows of one statement get consecutive ids, the last being the cursor's ``lastrowid``
        (``AUTOINCREMENT``: each new id is one more than the largest ever, and the transaction
        holds the write lock), so the ids of leased rows need not be read back."""
        self.created_at = now = time.time()
        values = self.values
        width = 4 * ROWS_PER_STATEMENT
        for start in range(0, len(values), width):
            chunk = values[start : start + width]
            conn.execute(_insert_sql(len(chunk) // 4), [now, *chunk])
        values, ids = self.leased, self.ids
        for start in range(0, len(values), width):
            chunk = values[start : start + width]
            rows = len(chunk) // 4
            last = conn.execute(
                _insert_leased_sql(rows), [now, self.owner, now + self.lease_s, *chunk]
            ).lastrowid
            assert last is not None
            ids.extend(range(last - rows + 1, last + 1))


_INSERT_SQL: dict[int, str] = {}
_INSERT_LEASED_SQL: dict[int, str] = {}


def _insert_sql(rows: int) -> str:
    """The INSERT of ``rows`` rows: ``?1`` is the shared ``created_at``, then 4 values a row."""
    sql = _INSERT_SQL.get(rows)
    if sql is None:
        sql = _INSERT_SQL[rows] = (
            "INSERT INTO outbox (created_at, destination, event_id, event_time, payload) VALUES "
            + ",".join(["(?1, ?, ?, ?, ?)"] * rows)
        )
    return sql


def _insert_leased_sql(rows: int) -> str:
    """The INSERT of ``rows`` leased rows: ``?1`` ``created_at``, ``?2`` the owner, ``?3`` the
    end of the lease, then 4 values a row."""
    sql = _INSERT_LEASED_SQL.get(rows)
    if sql is None:
        sql = _INSERT_LEASED_SQL[rows] = (
            "INSERT INTO outbox (created_at, owner, lease_until, destination, event_id, "
            "event_time, payload) VALUES " + ",".join(["(?1, ?2, ?3, ?, ?, ?, ?)"] * rows)
        )
    return sql


class SqliteOutbox:
    """The outbox in the SQLite file ``path`` (created with its tables when missing).

    Times in the file are unix seconds; a lease lasts ``lease_s`` seconds of wall-clock time, so
    processes sharing the file must share a clock (they share a machine).
    """

    durable = True

    def __init__(
        self, path: str | Path, *, lease_s: float = 30.0, owner: str | None = None
    ) -> None:
        self.path = Path(path)
        self.lease_s = lease_s
        self.owner = owner or consumer_name()
        self._conn: sqlite3.Connection | None = None
        self._ops: list[_Op] = []
        self._sync = "FULL"
        self._commits = 0
        self._flusher: asyncio.Task[None] | None = None
        self._committer = WorkerThread("tagserver-outbox-commit")
        #: the puts waiting for the next transaction (``None``: none yet)
        self._puts: _PutGroup | None = None

    # the transaction queue ----------------------------------------------------------------

    async def open(self) -> None:
        if self._conn is not None:
            return
        try:
            self._conn = self._connect()
        except (sqlite3.Error, OSError) as exc:
            raise _outbox_error(self.path, "open", exc) from exc

    async def close(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            await asyncio.wait([self._flusher], timeout=BUSY_TIMEOUT_MS / 1000)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self._committer.stop()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,  # COMMIT runs on the committer thread, never concurrently
        )  # fmt: skip
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise OutboxError(f"outbox {self.path}: WAL mode not available (got {mode!r})")
        conn.execute("PRAGMA synchronous = FULL")
        self._sync = "FULL"
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints run on the committer thread
        # Some builds of SQLite (Debian's, so the python Docker images') turn secure_delete on:
        # every page an ack's DELETE frees is then zeroed and written to the WAL, about 125 more
        # 4 KiB frames (250 pwrite calls) per 1,000 acknowledged entries, half of the ack's writes.
        # FAST still zeroes deleted rows on every page written anyway, not freed pages (reused
        # by the next puts); WAL mode keeps older copies of pages in the WAL file in any case.
        conn.execute("PRAGMA secure_delete = FAST")
        conn.executescript(SCHEMA)  # at start only: may wait for another process's lock
        conn.execute("PRAGMA busy_timeout = 0")  # from now on lock waits are awaited
        return conn

    @staticmethod
    def _begin(conn: sqlite3.Connection) -> bool:
        """``BEGIN IMMEDIATE`` (the write lock); False when another process holds it."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return False
            raise

    async def _call(self, fn: Callable[[sqlite3.Connection], _T], *, durable: bool = False) -> _T:
        """Queue ``fn`` for the next transaction and await its result. ``durable`` operations
        (storing entries, replaying) commit with an ``fsync``; the others (claims, acks,
        leases) need none: a lost ack after a power cut means one more delivery attempt."""
        if self._conn is None:
            raise OutboxError(f"outbox {self.path} is not open")
        fut: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._queue((fn, [fut], durable))
        return await fut

    def _queue(self, op: _Op, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Add ``op`` to the next transaction, starting the flusher task on ``loop`` (the
        running one) when none runs."""
        self._ops.append(op)
        if self._flusher is None or self._flusher.done():
            if loop is None:
                loop = asyncio.get_running_loop()
            self._flusher = loop.create_task(self._flush())

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop: the flusher's while it runs (a task's ``get_loop()`` is an
        attribute read; ``asyncio.get_running_loop()`` makes a ``getpid`` system call in Python
        3.11), at saturation nearly always, since it goes on while puts are queued."""
        flusher = self._flusher
        if flusher is not None and not flusher.done():
            return flusher.get_loop()
        return asyncio.get_running_loop()

    async def _flush(self) -> None:
        """Run every queued operation in one transaction, again while more are queued."""
        while self._ops:
            # no sleep(0) here: this task starts a turn of the loop after the first operation was
            # queued, and later rounds take what was queued during the previous commit
            batch, self._ops = self._ops, []
            self._puts = None  # later puts go into the next transaction
            conn = self._conn
            if conn is None:
                _fail(batch, OutboxError(f"outbox {self.path} is closed"))
                continue
            waited, delay = 0.0, 0.001
            error: OutboxError | None = None
            try:
                sync = "FULL" if any(durable for _, _, durable in batch) else "NORMAL"
                if sync != self._sync:
                    conn.execute(f"PRAGMA synchronous = {sync}")
                    self._sync = sync
                while not self._begin(conn):  # another process writes: wait, not blocking
                    if waited > BUSY_TIMEOUT_MS / 1000:
                        error = OutboxError(f"outbox {self.path}: locked for {waited:.1f} s")
                        break
                    await asyncio.sleep(delay)
                    waited += delay
                    delay = min(delay * 2, 0.05)
            except sqlite3.Error as exc:
                error = _outbox_error(self.path, "begin", exc)
            if error is None:
                await self._run_batch(conn, batch, fsync=sync == "FULL")
                continue
            _fail(batch, error)

    async def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op], *, fsync: bool) -> None:
        """Inside ``BEGIN IMMEDIATE``: each operation in a savepoint (it fails alone), one commit.
        A commit with ``fsync`` runs on the committer thread, so the loop goes on serving hits
        (whose entries form the next group) while the disk syncs."""
        results: list[tuple[list[asyncio.Future[Any]], Any, BaseException | None]] = []
        single = len(batch) == 1
        try:
            for fn, futures, _ in batch:
                if not single:
                    conn.execute("SAVEPOINT op")
                try:
                    value = fn(conn)
                except Exception as exc:  # this operation fails alone
                    if single:
                        raise
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    results.append((futures, None, exc))
                else:
                    if not single:
                        conn.execute("RELEASE op")
                    results.append((futures, value, None))
            self._commits += 1
            checkpoint = self._commits % CHECKPOINT_EVERY == 0
            if fsync or checkpoint:
                # the callers are answered from the committer's callback itself, a turn of the
                # loop before this coroutine resumes (the next group's latency)
                await self._committer.call(
                    _commit, conn, checkpoint, on_success=lambda: self._answer(results),
                    loop=self._running_loop(),  # this coroutine runs in the flusher task
                )  # fmt: skip
            else:
                conn.execute("COMMIT")
                self._answer(results)
        except Exception as exc:  # sqlite3.Error, or a value SQLite cannot hold (OverflowError)
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # the next BEGIN reports a stuck one
                    conn.execute("ROLLBACK")
            _fail(batch, _outbox_error(self.path, "commit", exc))

    def _answer(
        self, results: list[tuple[list[asyncio.Future[Any]], Any, BaseException | None]]
    ) -> None:
        """Settle the futures of a committed transaction's operations with their results."""
        for futures, value, failure in results:
            error = None if failure is None else _outbox_error(self.path, "write", failure)
            for fut in futures:
                if fut.done():
                    continue  # the caller gave up (a cancelled hit)
                if error is None:
                    fut.set_result(value)
                else:
                    fut.set_exception(error)

    # the contract ------------------------------------------------------------------------

    async def put(self, entries: Sequence[NewEntry]) -> None:
        """Group commit: the entries of every put queued before the next transaction starts go
        into it together (one INSERT, another one for those of :meth:`put_leased`, one
        ``fsync``'d commit); each put returns after that commit, or raises its error. A cancelled
        put leaves the others alone."""
        if entries:
            await self._enqueue(entries, lease=False)[1]

    async def put_leased(self, entries: Sequence[NewEntry]) -> list[OutboxEntry]:
        """:meth:`put`, the rows stored leased to this consumer (``owner``, ``lease_until``)."""
        if not entries:
            return []
        group, fut, start = self._enqueue(entries, lease=True)
        await fut
        now = group.created_at
        if len(entries) == 1:  # a hit's usual one event: no comprehension, zip nor slice
            e = entries[0]
            return [
                OutboxEntry(str(group.ids[start]), e.destination, e.payload, e.event_id,
                            e.event_time, now)
            ]  # fmt: skip
        return [
            OutboxEntry(str(i), e.destination, e.payload, e.event_id, e.event_time, now)
            for i, e in zip(group.ids[start : start + len(entries)], entries, strict=True)
        ]

    def _enqueue(
        self, entries: Sequence[NewEntry], *, lease: bool
    ) -> tuple[_PutGroup, asyncio.Future[None], int]:
        """Add ``entries`` to the next transaction's group: the group, the future settled when
        it has committed, and where the entries start among its leased (or unleased) ones."""
        if self._conn is None:
            raise OutboxError(f"outbox {self.path} is not open")
        group = self._puts
        if group is None:
            loop = self._running_loop()
            group = self._puts = _PutGroup(loop, self.owner, self.lease_s)
            self._queue((group.insert, group.futures, True), loop)
        fut: asyncio.Future[None] = group.loop.create_future()
        values = group.leased if lease else group.values
        start = len(values) // 4
        for e in entries:
            # the payload as a bytearray: Python's sqlite3 binds one as it is, but passes each
            # bytes parameter through its adapter protocol first, whose failed ``__adapt__``
            # lookup raises and clears an AttributeError (about 3,300 instructions; the copy
            # costs far less: 0.9 -> 0.7 us per 800-byte payload inserted). The same blob.
            values += (e.destination, e.event_id, e.event_time, bytearray(e.payload))
        group.futures.append(fut)
        return group, fut, start

    async def claim(self, limit: int) -> list[OutboxEntry]:
        owner = self.owner

        def claim(conn: sqlite3.Connection) -> list[OutboxEntry]:
            now = time.time()
            found = conn.execute(
                "SELECT id, destination, payload, event_id, event_time, created_at FROM outbox "
                "WHERE lease_until <= ? LIMIT ?",
                (now, limit),
            ).fetchall()
            _each_chunk(
                conn, "UPDATE outbox SET owner = ?, lease_until = ? WHERE id IN ({})",
                [row[0] for row in found], owner, now + self.lease_s,
            )  # fmt: skip
            return [
                OutboxEntry(str(i), dest, bytes(payload), eid, etime, created)
                for i, dest, payload, eid, etime, created in found
            ]

        return await self._call(claim)

    async def renew(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        owner = self.owner

        def renew(conn: sqlite3.Connection) -> None:
            until = time.time() + self.lease_s
            _each_chunk(
                conn, "UPDATE outbox SET lease_until = ? WHERE owner = ? AND id IN ({})",
                [int(i) for i in ids], until, owner,
            )  # fmt: skip

        await self._call(renew)

    async def ack(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        numbers = [int(i) for i in ids]
        first = numbers[0]
        if numbers == list(range(first, first + len(numbers))):
            # the usual batch: the consecutive ids of a few group commits. A range deletes
            # exactly them, without SQLite building and sorting an ``IN`` list first (a
            # 1,000-row ack about 1.3 -> 1.1 ms)
            last = numbers[-1]
            await self._call(
                lambda conn: conn.execute(
                    "DELETE FROM outbox WHERE id BETWEEN ? AND ?", (first, last)
                )
            )
            return
        await self._call(
            lambda conn: _each_chunk(conn, "DELETE FROM outbox WHERE id IN ({})", numbers)
        )

    async def release(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        owner = self.owner
        numbers = [int(i) for i in ids]
        await self._call(
            lambda conn: _each_chunk(
                conn,
                "UPDATE outbox SET owner = NULL, lease_until = 0 WHERE owner = ? AND id IN ({})",
                numbers,
                owner,
            )
        )

    async def bury(self, entries: Sequence[OutboxEntry], failure: Failure) -> None:
        if not entries:
            return
        f = failure

        def bury(conn: sqlite3.Connection) -> None:
            now = time.time()
            for entry in entries:
                cursor = conn.execute("DELETE FROM outbox WHERE id = ?", (int(entry.id),))
                if cursor.rowcount == 0:
                    continue  # acknowledged or buried by another consumer meanwhile
                conn.execute(
                    "INSERT INTO dead_letters (destination, event_id, event_time, payload, "
                    "created_at, dead_at, reason, status, code, subcode, fbtrace_id, message, "
                    "attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        entry.destination,
                        entry.event_id,
                        entry.event_time,
                        entry.payload,
                        entry.created_at,
                        now,
                        f.reason,
                        f.status,
                        f.code,
                        f.subcode,
                        f.fbtrace_id,
                        f.message,
                        f.attempts,
                    ),
                )

        await self._call(bury)

    async def stats(self, *, detail: bool = False) -> OutboxStats:
        def stats(conn: sqlite3.Connection) -> OutboxStats:
            now = time.time()
            depth, oldest, leased = conn.execute(
                "SELECT COUNT(*), MIN(created_at), COALESCE(SUM(lease_until > ?), 0) FROM outbox",
                (now,),
            ).fetchone()
            by_reason = dict(
                conn.execute("SELECT reason, COUNT(*) FROM dead_letters GROUP BY reason")
            )
            per: dict[str, DestinationStats] = {}
            if detail:
                for dest, count, first in conn.execute(
                    "SELECT destination, COUNT(*), MIN(created_at) FROM outbox GROUP BY destination"
                ):
                    per[dest] = DestinationStats(count, now - first)
            return OutboxStats(
                depth=depth,
                oldest_age_s=None if oldest is None else now - oldest,
                leased=leased,
                dead=sum(by_reason.values()),
                dead_by_reason=by_reason,
                by_destination=per,
            )

        return await self._call(stats)

    async def dead_letters(
        self, *, reason: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        def select(conn: sqlite3.Connection) -> list[DeadLetter]:
            where, params = ("WHERE reason = ?", [reason]) if reason else ("", [])
            rows = conn.execute(
                "SELECT id, destination, payload, event_id, event_time, created_at, dead_at, "
                "reason, status, code, subcode, fbtrace_id, message, attempts FROM dead_letters "
                f"{where} ORDER BY id LIMIT ?",
                [*params, limit],
            ).fetchall()
            return [
                DeadLetter(
                    str(r[0]),
                    OutboxEntry(str(r[0]), r[1], bytes(r[2]), r[3], r[4], r[5]),
                    Failure(r[7], r[8], r[9], r[10], r[11], r[12], r[13]),
                    r[6],
                )
                for r in rows
            ]

        return await self._call(select)

    async def replay(self, *, reason: str | None = None, ids: Sequence[str] = ()) -> int:
        clauses: list[str] = []
        params: list[Any] = []
        if reason is not None:
            clauses.append("reason = ?")
            params.append(reason)
        if ids:
            clauses.append(f"id IN ({','.join('?' * len(ids))})")
            params.extend(int(i) for i in ids)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""

        def replay(conn: sqlite3.Connection) -> int:
            moved = conn.execute(
                "INSERT INTO outbox (destination, event_id, event_time, payload, created_at) "
                "SELECT destination, event_id, event_time, payload, created_at FROM dead_letters "
                f"{where} ORDER BY id",
                params,
            ).rowcount
            conn.execute(f"DELETE FROM dead_letters {where}", params)
            return moved

        return await self._call(replay, durable=True)


def _commit(conn: sqlite3.Connection, checkpoint: bool) -> None:
    """On the committer thread: COMMIT (with its fsync), and now and then copy the WAL back into
    the database file (a PASSIVE checkpoint never waits for readers)."""
    conn.execute("COMMIT")
    if checkpoint:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")


def _fail(batch: list[_Op], error: OutboxError) -> None:
    """Every operation of ``batch`` raises ``error`` (unless its caller gave up)."""
    for _, futures, _ in batch:
        for fut in futures:
            if not fut.done():
                fut.set_exception(error)


def _each_chunk(conn: sqlite3.Connection, sql: str, ids: list[int], *params: Any) -> None:
    """Run ``sql`` (``{}`` marks where the id placeholders go) for ``ids`` in chunks, with
    ``params`` before the ids: one statement per chunk instead of one per row.

    A chunk's list is padded to one of a few lengths (:func:`_id_slots`) by repeating its last
    id (``id IN (7, 9, 9)`` is ``id IN (7, 9)``): each length is one more statement for SQLite to
    prepare (about 0.25 µs per placeholder) and for the connection's statement cache (128, least
    recently used first) to hold; with the exact length, nearly every acknowledged batch was a
    statement of its own, prepared again, pushing out those of the group commits' INSERTs."""
    for start in range(0, len(ids), IDS_PER_STATEMENT):
        chunk = ids[start : start + IDS_PER_STATEMENT]
        slots = _id_slots(len(chunk))
        key = (sql, slots)
        text = _IN_SQL.get(key)
        if text is None:
            text = _IN_SQL[key] = sql.format(",".join("?" * slots))
        if slots > len(chunk):
            chunk += [chunk[-1]] * (slots - len(chunk))
        conn.execute(text, [*params, *chunk])


#: ``(sql, placeholders)`` -> the statement :func:`_each_chunk` runs.
_IN_SQL: dict[tuple[str, int], str] = {}
#: The lengths of id lists above 64: multiples of an eighth of :data:`IDS_PER_STATEMENT`.
_ID_STEP = IDS_PER_STATEMENT // 8


def _id_slots(n: int) -> int:
    """The placeholders for ``n`` ids (1 <= n <= :data:`IDS_PER_STATEMENT`): 8, 16, 32, 64, then
    the next multiple of :data:`_ID_STEP` (at most 124 ids more than ``n``), up to
    :data:`IDS_PER_STATEMENT`: a dozen statements in all."""
    if n <= 64:
        slots = 8
        while slots < n:
            slots *= 2
        return slots
    return min(-(-n // _ID_STEP) * _ID_STEP, IDS_PER_STATEMENT)


def _outbox_error(path: Path, what: str, exc: BaseException) -> OutboxError:
    if isinstance(exc, OutboxError):
        return exc
    return OutboxError(f"outbox {path}: {what} failed: {type(exc).__name__}: {exc}")
