"""The server's handle on the keys file: one SQLite connection shared by the request threads."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from tagserver.server_events.idempotency import claim_event_ids, release_event_ids
from tagserver.server_events.keys import ApiKey, authenticate, connect


class ServerEventStore:
    """API key checks and idempotency claims on the keys file at ``path`` (opened on first use;
    the methods block: call them from a worker thread, they serialise on one lock). Every call
    reads the file, so a key revoked by ``tagserver keys revoke`` fails on its next request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = connect(self.path, check_same_thread=False)
        return self._connection

    def authenticate(self, presented: str) -> ApiKey | None:
        """The active key for ``presented`` (see :func:`.keys.authenticate`)."""
        with self._lock:
            return authenticate(self._db(), presented)

    def claim(self, key_name: str, event_ids: Sequence[str], *, now: float) -> list[bool]:
        """Per id: already accepted within 48 h (see :func:`.idempotency.claim_event_ids`)."""
        with self._lock:
            return claim_event_ids(self._db(), key_name, event_ids, now=now)

    def release(self, key_name: str, event_ids: Sequence[str], *, claimed_at: float) -> None:
        """Undo this request's claims of rejected events."""
        if not event_ids:
            return
        with self._lock:
            release_event_ids(self._db(), key_name, event_ids, claimed_at=claimed_at)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
