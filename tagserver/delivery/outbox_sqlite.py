"""The embedded outbox: one SQLite file in WAL mode, written by one thread with group commit.

Every operation is queued to a dedicated thread that owns the connection. The thread takes all
operations waiting at that moment and runs them in one transaction (each in its own savepoint, so
one failing operation fails alone), then commits once: concurrent hits share one commit and one
``fsync`` (``synchronous=FULL``: a committed entry survives a crash of the process or of the
machine), and each hit's answer waits for the commit that holds its entries.

Several processes may share the file (``tagserver serve --workers N``, the operator CLI): WAL lets
readers run beside the one writer, ``busy_timeout`` waits for the write lock, and leases (an owner
id and an expiry time per row) keep two consumers from claiming the same entry.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import secrets
import socket
import sqlite3
import threading
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
from tagserver.exceptions import OutboxError

log = logging.getLogger("tagserver.delivery")

_T = TypeVar("_T")
_Op = tuple[Callable[[sqlite3.Connection], Any], "concurrent.futures.Future[Any]"]

#: How long a writer waits for another process's write lock, milliseconds.
BUSY_TIMEOUT_MS = 10_000

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


class SqliteOutbox:
    """The outbox in the SQLite file ``path`` (created with its tables when missing).

    Times in the file are unix seconds; a lease lasts ``lease_s`` seconds of wall-clock time, so
    processes sharing the file must share a clock (they share a machine).
    """

    durable = True

    def __init__(self, path: str | Path, *, lease_s: float = 30.0, owner: str | None = None) -> None:
        self.path = Path(path)
        self.lease_s = lease_s
        self.owner = owner or consumer_name()
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    # the writer thread -------------------------------------------------------------------

    async def open(self) -> None:
        if self._thread is not None:
            return
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="tagserver-outbox", daemon=True
        )
        self._thread.start()
        await asyncio.wrap_future(ready)

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(thread.join, 10.0)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(f"outbox {self.path}: WAL mode not available (got {mode!r})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.executescript(SCHEMA)
        return conn

    def _run(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            conn = self._connect()
        except (sqlite3.Error, OSError, OutboxError) as exc:
            ready.set_exception(_outbox_error(self.path, "open", exc))
            return
        ready.set_result(None)
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    break
                batch = [first]
                stop = False
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                self._run_batch(conn, batch)
                if stop:
                    break
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        """One transaction for every queued operation; a savepoint isolates each one's failure."""
        live = [(fn, fut) for fn, fut in batch if fut.set_running_or_notify_cancel()]
        if not live:
            return
        results: list[tuple[concurrent.futures.Future[Any], Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, fut in live:
                conn.execute("SAVEPOINT op")
                try:
                    value = fn(conn)
                except Exception as exc:  # this operation fails alone
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    results.append((fut, None, exc))
                else:
                    conn.execute("RELEASE op")
                    results.append((fut, value, None))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            error = _outbox_error(self.path, "commit", exc)
            for _, fut in live:
                fut.set_exception(error)
            return
        for fut, value, failure in results:
            if failure is None:
                fut.set_result(value)
            else:
                fut.set_exception(_outbox_error(self.path, "write", failure))

    async def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._thread is None:
            raise OutboxError(f"outbox {self.path} is not open")
        fut: concurrent.futures.Future[_T] = concurrent.futures.Future()
        self._queue.put((fn, fut))
        return await asyncio.wrap_future(fut)

    # the contract ------------------------------------------------------------------------

    async def put(self, entries: Sequence[NewEntry]) -> None:
        if not entries:
            return
        now = time.time()
        rows = [(e.destination, e.event_id, e.event_time, e.payload, now) for e in entries]

        def insert(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO outbox (destination, event_id, event_time, payload, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )

        await self._call(insert)

    async def claim(self, limit: int) -> list[OutboxEntry]:
        owner = self.owner

        def claim(conn: sqlite3.Connection) -> list[OutboxEntry]:
            now = time.time()
            found = conn.execute(
                "SELECT id, destination, payload, event_id, event_time, created_at FROM outbox "
                "WHERE lease_until <= ? LIMIT ?",
                (now, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE outbox SET owner = ?, lease_until = ? WHERE id = ?",
                [(owner, now + self.lease_s, row[0]) for row in found],
            )
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
            conn.executemany(
                "UPDATE outbox SET lease_until = ? WHERE id = ? AND owner = ?",
                [(until, int(i), owner) for i in ids],
            )

        await self._call(renew)

    async def ack(self, ids: Sequence[str]) -> None:
        if ids:
            await self._call(
                lambda conn: conn.executemany(
                    "DELETE FROM outbox WHERE id = ?", [(int(i),) for i in ids]
                )
            )

    async def release(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        owner = self.owner
        await self._call(
            lambda conn: conn.executemany(
                "UPDATE outbox SET owner = NULL, lease_until = 0 WHERE id = ? AND owner = ?",
                [(int(i), owner) for i in ids],
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
                        entry.destination, entry.event_id, entry.event_time, entry.payload,
                        entry.created_at, now, f.reason, f.status, f.code, f.subcode,
                        f.fbtrace_id, f.message, f.attempts,
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

        return await self._call(replay)


def _outbox_error(path: Path, what: str, exc: BaseException) -> OutboxError:
    if isinstance(exc, OutboxError):
        return exc
    return OutboxError(f"outbox {path}: {what} failed: {type(exc).__name__}: {exc}")
