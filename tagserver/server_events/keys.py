"""API keys for ``POST /api/events``: created by an operator, stored only as a salted hash.

A key reads ``tsk_<id>_<secret>``: ``id`` (12 hex) is public and finds the row, ``secret`` (43
URL-safe characters, 256 random bits) is checked as HMAC-SHA256(salt, secret) with a per-key salt,
compared in constant time. Each key has a scope: the tag names and/or Meta pixel ids it may feed,
or every tag. Keys live in a SQLite file (``TAGSERVER_KEYS``, default
``tagserver-keys.sqlite3``) that the idempotency store (:mod:`.idempotency`) shares.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

KEY_PREFIX = "tsk_"
_KEY_RE = re.compile(r"tsk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    name TEXT PRIMARY KEY,
    key_id TEXT NOT NULL UNIQUE,
    salt BLOB NOT NULL,
    digest BLOB NOT NULL,
    tags TEXT NOT NULL,
    pixels TEXT NOT NULL,
    all_tags INTEGER NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);
"""


@dataclass(frozen=True)
class ApiKey:
    """A key's record (never its secret). ``all_tags``: may feed every tag; else only the tags
    named in ``tags`` and the Meta tags whose pixel id is in ``pixels``. Times in unix seconds."""

    name: str
    key_id: str
    tags: tuple[str, ...]
    pixels: tuple[str, ...]
    all_tags: bool
    created_at: float
    revoked_at: float | None = None

    @property
    def scope_text(self) -> str:
        """The scope for people: ``*`` or ``tags=a,b pixels=1,2``."""
        if self.all_tags:
            return "*"
        parts = []
        if self.tags:
            parts.append("tags=" + ",".join(self.tags))
        if self.pixels:
            parts.append("pixels=" + ",".join(self.pixels))
        return " ".join(parts)


class KeyStoreError(ValueError):
    """A key operation the operator asked for cannot be done (name taken, unknown, bad scope)."""


def connect(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection to the keys file (created with its tables when missing); autocommit, WAL,
    5 s busy timeout, so that several server workers and the CLI can share it."""
    connection = sqlite3.connect(
        path, timeout=5.0, isolation_level=None, check_same_thread=check_same_thread
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.executescript(_SCHEMA)
    from tagserver.server_events.idempotency import SCHEMA as SEEN_SCHEMA

    connection.executescript(SEEN_SCHEMA)
    return connection


@contextmanager
def opened(path: Path) -> Iterator[sqlite3.Connection]:
    """:func:`connect`, closed on exit."""
    connection = connect(path)
    try:
        yield connection
    finally:
        connection.close()


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("ascii"), sha256).digest()


def _row_key(row: sqlite3.Row | tuple[object, ...]) -> ApiKey:
    name, key_id, tags, pixels, all_tags, created_at, revoked_at = row
    return ApiKey(
        name=str(name),
        key_id=str(key_id),
        tags=tuple(json.loads(str(tags))),
        pixels=tuple(json.loads(str(pixels))),
        all_tags=bool(all_tags),
        created_at=float(str(created_at)),
        revoked_at=float(str(revoked_at)) if revoked_at is not None else None,
    )


_COLUMNS = "name, key_id, tags, pixels, all_tags, created_at, revoked_at"


def create_key(
    path: Path,
    name: str,
    *,
    tags: tuple[str, ...] = (),
    pixels: tuple[str, ...] = (),
    all_tags: bool = False,
    now: float | None = None,
) -> tuple[ApiKey, str]:
    """A new key called ``name`` and its plain text (shown once, never stored).

    Raises :class:`KeyStoreError` when ``name`` is malformed or taken (revoked names stay taken, so
    logs keep meaning one key), or when the scope is empty (``tags``, ``pixels`` or ``all_tags``).
    """
    if not _NAME_RE.fullmatch(name):
        raise KeyStoreError(f"key name {name!r}: 1 to 64 letters, digits, '.', '_' or '-'")
    if not (tags or pixels or all_tags):
        raise KeyStoreError("a key needs a scope: --tags NAMES, --pixels IDS or --all-tags")
    bad = [p for p in pixels if not re.fullmatch(r"[0-9]{5,20}", p)]
    if bad:
        raise KeyStoreError(f"pixel ids are 5 to 20 digits, got {', '.join(bad)}")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    created = time.time() if now is None else now
    with opened(path) as db:
        try:
            db.execute(
                "INSERT INTO api_keys (name, key_id, salt, digest, tags, pixels, all_tags,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, key_id, salt, _digest(salt, secret), json.dumps(list(tags)),
                 json.dumps(list(pixels)), int(all_tags), created),
            )
        except sqlite3.IntegrityError:
            raise KeyStoreError(
                f"a key called {name!r} exists already (revoked names stay taken)"
            ) from None
    key = ApiKey(name, key_id, tuple(tags), tuple(pixels), all_tags, created)
    return key, f"{KEY_PREFIX}{key_id}_{secret}"


def list_keys(path: Path) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    with opened(path) as db:
        rows = db.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at").fetchall()
    return [_row_key(row) for row in rows]


def revoke_key(path: Path, name: str, *, now: float | None = None) -> ApiKey:
    """Revoke ``name`` at once (the next request with it gets 401). Raises :class:`KeyStoreError`
    when there is no such key; revoking twice keeps the first time."""
    when = time.time() if now is None else now
    with opened(path) as db:
        db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (when, name)
        )
        row = db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise KeyStoreError(f"no key called {name!r} (see: tagserver keys list)")
    return _row_key(row)


def authenticate(db: sqlite3.Connection, presented: str) -> ApiKey | None:
    """The active key whose plain text is ``presented``, or ``None`` (unknown, malformed,
    revoked). The secret is compared as an HMAC digest with :func:`hmac.compare_digest`."""
    match = _KEY_RE.fullmatch(presented)
    if match is None:
        return None
    key_id, secret = match.groups()
    row = db.execute(
        f"SELECT {_COLUMNS}, salt, digest FROM api_keys WHERE key_id = ?", (key_id,)
    ).fetchone()
    if row is None:
        _digest(b"0" * 16, secret)  # same work for unknown ids
        return None
    *fields, salt, digest = row
    if not hmac.compare_digest(_digest(bytes(salt), secret), bytes(digest)):
        return None
    key = _row_key(tuple(fields))
    return None if key.revoked_at is not None else key
