"""Idempotency of ``POST /api/events``: an ``event_id`` is accepted once per API key in 48 hours.

A CRM that retries a request (timeout, 5xx) sends the same ids again; the repeats are answered as
``duplicate`` and not sent on. The window matches Meta's deduplication window of 48 hours
(Meta "Handling Duplicate Pixel and Conversions API Events"). Ids are *claimed* before the
container runs and *released* again when the event is rejected, so that a corrected resend of a
refused event goes through and two concurrent requests with one id cannot both pass.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

#: Seconds an accepted event id blocks its repeats (Meta's 48 h deduplication window).
WINDOW_S = 48 * 3600

SCHEMA = """
CREATE TABLE IF NOT EXISTS seen_events (
    key_name TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (key_name, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_events_time ON seen_events (seen_at);
"""


def claim_event_ids(
    db: sqlite3.Connection, key_name: str, event_ids: Sequence[str], *, now: float
) -> list[bool]:
    """Claim ``event_ids`` for ``key_name`` at ``now`` (unix seconds) in one transaction; returns
    for each id whether it was already claimed within :data:`WINDOW_S` (a duplicate; the second
    of two equal ids in ``event_ids`` is one too). Expired claims are pruned first."""
    duplicates: list[bool] = []
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("DELETE FROM seen_events WHERE seen_at < ?", (now - WINDOW_S,))
        for event_id in event_ids:
            cursor = db.execute(
                "INSERT OR IGNORE INTO seen_events (key_name, event_id, seen_at) VALUES (?, ?, ?)",
                (key_name, event_id, now),
            )
            duplicates.append(cursor.rowcount == 0)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return duplicates


def release_event_ids(
    db: sqlite3.Connection, key_name: str, event_ids: Iterable[str], *, claimed_at: float
) -> None:
    """Undo this request's claims of ``event_ids`` (the events it rejected): only rows claimed at
    ``claimed_at`` are removed, never an older accepted one."""
    db.executemany(
        "DELETE FROM seen_events WHERE key_name = ? AND event_id = ? AND seen_at = ?",
        [(key_name, event_id, claimed_at) for event_id in event_ids],
    )
