"""The shared outbox for several instances: a Redis Stream read through one consumer group.

Keys (one hash tag, so the Lua scripts also run on Redis Cluster): ``{tagserver}:outbox`` (the
stream of waiting entries), ``{tagserver}:dead`` (the stream of dead letters); the consumer group is
``senders``; every process is one consumer named ``<host>:<pid>:<random>``.

- ``put``: the entries of concurrent hits go together (group commit), ``XADD`` by a Lua script in
  one round trip. ``put_leased``: the same script then reads them for this consumer
  (``XREADGROUP``), which puts them in its pending list as a claim would.
- ``claim``: ``XAUTOCLAIM`` of entries idle for longer than the lease (their consumer died or
  released them), then ``XREADGROUP >`` for new ones.
- ``renew``: ``XCLAIM ... IDLE 0 JUSTID`` of what this consumer still owns resets its idle time
  (a Lua script checks the owner, so an entry another instance took over is not taken back).
- ``ack``: ``XACK`` + ``XDEL`` (the stream holds only what is not yet delivered: ``XLEN`` is the
  depth). ``release``: ``XCLAIM`` to the consumer ``released`` with an idle time past the lease,
  so any instance's next ``XAUTOCLAIM`` takes them.
- ``bury`` and ``replay``: Lua scripts moving an entry between the two streams atomically.

Durability across a crash of Redis itself is Redis's own configuration (``appendonly yes`` with
``appendfsync everysec`` or ``always``); a crash of a tagserver process loses nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from tagserver.delivery.outbox import (
    DeadLetter,
    DestinationStats,
    Failure,
    GroupWriter,
    NewEntry,
    OutboxEntry,
    OutboxStats,
    describe_outbox,
)
from tagserver.delivery.outbox_sqlite import consumer_name
from tagserver.exceptions import OutboxError

log = logging.getLogger("tagserver.delivery")

_T = TypeVar("_T")
GROUP = "senders"
RELEASED = "released"
#: Entries moved per script call / read per XRANGE page.
CHUNK = 500
#: Connections per process; more concurrent operations wait for a free one (up to 10 s).
MAX_CONNECTIONS = 32
#: Seconds before a silent Redis is an error (a hit then gets 503 instead of hanging).
SOCKET_TIMEOUT_S = 5.0

_BURY = """
local nfail = tonumber(ARGV[2])
local moved = 0
for i = 3 + nfail, #ARGV do
  local id = ARGV[i]
  local found = redis.call('XRANGE', KEYS[1], id, id)
  redis.call('XACK', KEYS[1], ARGV[1], id)
  if #found == 1 then
    local fields = found[1][2]
    for j = 3, 2 + nfail do table.insert(fields, ARGV[j]) end
    redis.call('XADD', KEYS[2], '*', unpack(fields))
    redis.call('XDEL', KEYS[1], id)
    moved = moved + 1
  end
end
return moved
"""

# move pending entries still owned by ARGV[2] to ARGV[3] with idle time ARGV[4] ms: renewing
# (to itself, idle 0) or releasing; an entry another consumer took over meanwhile is left alone
_MOVE_OWNED = """
local moved = 0
for i = 5, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[i], 'IDLE', ARGV[4], 'JUSTID')
    moved = moved + 1
  end
end
return moved
"""

# XADD of every entry of a group in one call: ARGV[1] the time, then (d, p, e, t) per entry
_PUT = """
for i = 2, #ARGV, 4 do
  redis.call('XADD', KEYS[1], '*', 'd', ARGV[i], 'p', ARGV[i + 1], 'e', ARGV[i + 2],
             't', ARGV[i + 3], 'c', ARGV[1])
end
return (#ARGV - 1) / 4
"""

# the same, then XREADGROUP of as many entries for consumer ARGV[3] of group ARGV[2]: the ids added,
# how many of them were read (the first ones: older unread entries come before them), and the
# entries read that this call did not add
_PUT_LEASED = """
local ids, mine = {}, {}
for i = 4, #ARGV, 4 do
  local id = redis.call('XADD', KEYS[1], '*', 'd', ARGV[i], 'p', ARGV[i + 1], 'e', ARGV[i + 2],
                        't', ARGV[i + 3], 'c', ARGV[1])
  ids[#ids + 1] = id
  mine[id] = true
end
local read = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', #ids,
                        'STREAMS', KEYS[1], '>')
local leased, others = 0, {}
if read then
  for _, message in ipairs(read[1][2]) do
    if mine[message[1]] then leased = leased + 1 else others[#others + 1] = message end
  end
end
return {ids, leased, others}
"""

_REPLAY = """
local moved = 0
for _, id in ipairs(ARGV) do
  local found = redis.call('XRANGE', KEYS[1], id, id)
  if #found == 1 then
    local f = found[1][2]
    local keep = {}
    for j = 1, #f, 2 do
      local k = f[j]
      if k == 'd' or k == 'p' or k == 'e' or k == 't' or k == 'c' then
        table.insert(keep, k)
        table.insert(keep, f[j + 1])
      end
    end
    redis.call('XADD', KEYS[2], '*', unpack(keep))
    redis.call('XDEL', KEYS[1], id)
    moved = moved + 1
  end
end
return moved
"""


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> OutboxEntry:
    etime = _text(fields.get(b"t"))
    return OutboxEntry(
        id=_text(entry_id),
        destination=_text(fields.get(b"d")),
        payload=fields.get(b"p", b""),
        event_id=_text(fields.get(b"e")),
        event_time=int(etime) if etime else None,
        created_at=float(_text(fields.get(b"c")) or 0.0),
    )


def _optional_int(value: bytes | None) -> int | None:
    text = _text(value)
    return int(text) if text else None


class RedisOutbox:
    """The outbox in the Redis at ``url`` (``redis://[:password@]host:port/db``, ``rediss://``).

    ``prefix`` names the keys (``{prefix}:outbox``...); ``consumer`` defaults to a unique name per
    process. ``lease_s`` is the idle time after which another consumer takes an entry.
    """

    durable = True

    def __init__(
        self,
        url: str,
        *,
        lease_s: float = 30.0,
        prefix: str = "tagserver",
        consumer: str | None = None,
    ) -> None:
        self.url = url
        self.lease_s = lease_s
        self.consumer = consumer or consumer_name()
        self.stream = f"{{{prefix}}}:outbox"
        self.dead_stream = f"{{{prefix}}}:dead"
        self._redis: aioredis.Redis | None = None
        self._cursor = "0-0"
        self._bury: Any = None
        self._replay: Any = None
        self._move: Any = None
        self._put: Any = None
        self._put_leased: Any = None
        self._writer = GroupWriter(self._add)
        self._leasing = GroupWriter(self._add_leased)
        #: entries leased to this consumer by a put but not returned by it: the next claim's
        self._handover: list[OutboxEntry] = []

    @property
    def _lease_ms(self) -> int:
        return max(1, int(self.lease_s * 1000))

    def _client(self) -> Any:
        """The connection; typed ``Any`` because redis-py's reply types are unions of every
        protocol version's shapes (this module reads RESP2 replies with ``decode_responses`` off)."""
        if self._redis is None:
            raise OutboxError(f"outbox {describe_outbox(self.url)} is not open")
        return self._redis

    async def _do(self, what: str, call: Awaitable[_T]) -> _T:
        """Await ``call``; a Redis error becomes an :class:`OutboxError` naming ``what``.

        A ``NOGROUP`` error means the stream or its consumer group is gone (a Redis restarted
        without persistence, a ``FLUSHALL``): the group is made again before the error is raised,
        so that the next call (a browser's retry after the 503) works instead of every call
        failing until tagserver restarts. What the lost stream held is gone with it."""
        try:
            return await call
        except RedisError as exc:
            if isinstance(exc, ResponseError) and str(exc).startswith("NOGROUP"):
                await self._make_group_again()
            raise OutboxError(
                f"outbox {describe_outbox(self.url)}: {what} failed: {type(exc).__name__}: {exc}"
            ) from exc

    async def open(self) -> None:
        if self._redis is not None:
            return
        # a blocking pool: a burst of hits waits for a connection instead of failing
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, max_connections=MAX_CONNECTIONS, timeout=10, decode_responses=False,
            socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S,
        )  # fmt: skip
        self._redis = aioredis.Redis.from_pool(pool)
        self._bury = self._redis.register_script(_BURY)
        self._replay = self._redis.register_script(_REPLAY)
        self._move = self._redis.register_script(_MOVE_OWNED)
        self._put = self._redis.register_script(_PUT)
        self._put_leased = self._redis.register_script(_PUT_LEASED)
        client = self._client()

        async def create() -> None:
            await self._create_group(client)
            # forget consumers of past runs that hold nothing and have been idle for an hour
            for info in await client.xinfo_consumers(self.stream, GROUP):
                name = _text(info.get("name"))
                if info.get("pending") == 0 and info.get("idle", 0) > 3_600_000:
                    if name not in (self.consumer, RELEASED):
                        await client.xgroup_delconsumer(self.stream, GROUP, name)

        try:
            await self._do("open", create())
        except OutboxError:
            await self.close()
            raise

    async def _make_group_again(self) -> None:
        """Create the stream, its consumer group and this consumer again, as :meth:`open` did;
        a failure is logged, not raised (the caller raises the original error)."""
        client = self._redis
        if client is None:
            return
        try:
            await self._create_group(client)
        except RedisError as exc:
            log.error(
                "outbox consumer group could not be made again",
                extra={"outbox": describe_outbox(self.url), "error": type(exc).__name__},
            )
            return
        self._cursor = "0-0"
        log.warning(
            "outbox stream or consumer group was gone (Redis emptied?): made again; entries it "
            "held before are lost",
            extra={"outbox": describe_outbox(self.url)},
        )

    async def _create_group(self, client: Any) -> None:
        """The stream (made when missing), its consumer group (kept when it exists) and this
        process as a consumer of it. Raises ``RedisError``."""
        try:
            await client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        # this process is a consumer from the start, not from the first entry it reads (a
        # process that stores only entries it reads itself may read no other)
        await client.xgroup_createconsumer(self.stream, GROUP, self.consumer)

    async def close(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()

    async def put(self, entries: Sequence[NewEntry]) -> None:
        if entries:
            await self._writer.put(entries)

    async def put_leased(self, entries: Sequence[NewEntry]) -> list[OutboxEntry]:
        if not entries:
            return []
        return await self._leasing.put(entries) or []

    async def _add(self, entries: list[NewEntry]) -> None:
        self._client()
        now = repr(time.time())
        for start in range(0, len(entries), CHUNK):
            args: list[Any] = [now]
            for e in entries[start : start + CHUNK]:
                etime = "" if e.event_time is None else str(e.event_time)
                args.extend((e.destination, e.payload, e.event_id, etime))
            await self._do("put", self._put(keys=[self.stream], args=args))

    async def _add_leased(self, entries: list[NewEntry]) -> list[OutboxEntry | None]:
        """Store ``entries`` and read them for this consumer; the entry of each one leased (the
        first ones), ``None`` for the others (still unread)."""
        self._client()
        created = time.time()
        now = repr(created)
        stored: list[OutboxEntry | None] = []
        for start in range(0, len(entries), CHUNK):
            chunk = entries[start : start + CHUNK]
            args: list[Any] = [now, GROUP, self.consumer]
            for e in chunk:
                etime = "" if e.event_time is None else str(e.event_time)
                args.extend((e.destination, e.payload, e.event_id, etime))
            ids, leased, others = await self._do(
                "put", self._put_leased(keys=[self.stream], args=args)
            )
            for entry_id, fields in others:  # older unread entries this consumer now holds
                self._handover.append(_entry(entry_id, dict(zip(fields[::2], fields[1::2], strict=True))))
            stored += [
                OutboxEntry(entry_id.decode(), e.destination, e.payload, e.event_id,
                            e.event_time, created)
                for entry_id, e in zip(ids[:leased], chunk, strict=False)
            ]  # fmt: skip
            stored += [None] * (len(chunk) - leased)
        return stored

    async def claim(self, limit: int) -> list[OutboxEntry]:
        client = self._client()

        async def claim(found: list[OutboxEntry]) -> list[OutboxEntry]:
            if len(found) >= limit:
                return found
            reply = await client.xautoclaim(
                self.stream, GROUP, self.consumer, self._lease_ms, self._cursor,
                count=limit - len(found),
            )
            cursor, stale = reply[0], reply[1]
            self._cursor = _text(cursor)
            for entry_id, fields in stale:
                if fields:  # entries deleted meanwhile come back without fields
                    found.append(_entry(entry_id, fields))
            if len(found) < limit:
                streams = await client.xreadgroup(
                    GROUP, self.consumer, {self.stream: ">"}, count=limit - len(found)
                )
                for _, messages in streams or []:
                    for entry_id, fields in messages:
                        found.append(_entry(entry_id, fields))
            return found

        handed, self._handover = self._handover[:limit], self._handover[limit:]
        try:
            return await self._do("claim", claim(list(handed)))
        except BaseException:
            self._handover[:0] = handed  # still leased to this consumer: the next claim's
            raise

    async def _move_owned(self, what: str, ids: Sequence[str], to: str, idle_ms: int) -> None:
        self._client()
        for start in range(0, len(ids), CHUNK):
            args = [GROUP, self.consumer, to, str(idle_ms), *ids[start : start + CHUNK]]
            await self._do(what, self._move(keys=[self.stream], args=args))

    async def renew(self, ids: Sequence[str]) -> None:
        await self._move_owned("renew", ids, self.consumer, 0)

    async def ack(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        client = self._client()

        async def ack() -> None:
            async with client.pipeline(transaction=True) as pipe:
                pipe.xack(self.stream, GROUP, *ids)
                pipe.xdel(self.stream, *ids)
                await pipe.execute()

        await self._do("ack", ack())

    async def release(self, ids: Sequence[str]) -> None:
        await self._move_owned("release", ids, RELEASED, self._lease_ms * 2)

    async def bury(self, entries: Sequence[OutboxEntry], failure: Failure) -> None:
        self._client()
        f = failure
        fields = [
            "reason", f.reason, "status", str(f.status),
            "code", "" if f.code is None else str(f.code),
            "subcode", "" if f.subcode is None else str(f.subcode),
            "fbtrace_id", f.fbtrace_id or "", "message", f.message,
            "attempts", str(f.attempts), "dead_at", repr(time.time()),
        ]  # fmt: skip
        ids = [e.id for e in entries]
        for start in range(0, len(ids), CHUNK):
            args = [GROUP, str(len(fields)), *fields, *ids[start : start + CHUNK]]
            await self._do(
                "bury",
                self._bury(
                    keys=[self.stream, self.dead_stream], args=args
                ),
            )

    async def _scan(self, key: str) -> AsyncIterator[tuple[bytes, dict[bytes, bytes]]]:
        client = self._client()
        start = "-"
        while True:
            page = await self._do(
                "read",
                client.xrange(key, min=start, max="+", count=CHUNK),
            )
            for item in page:
                yield item
            if len(page) < CHUNK:
                return
            last = _text(page[-1][0])
            start = "(" + last

    async def stats(self, *, detail: bool = False) -> OutboxStats:
        client = self._client()
        now = time.time()
        depth = await self._do("stats", client.xlen(self.stream))
        first = await self._do("stats", client.xrange(self.stream, count=1))
        oldest = _entry(*first[0]).created_at if first else None
        pending = await self._do("stats", client.xpending(self.stream, GROUP))
        leased = sum(
            int(c["pending"])
            for c in pending.get("consumers") or []
            if _text(c["name"]) != RELEASED
        )
        dead = await self._do("stats", client.xlen(self.dead_stream))
        by_reason: dict[str, int] = {}
        per: dict[str, DestinationStats] = {}
        if detail:
            async for _, fields in self._scan(self.dead_stream):
                reason = _text(fields.get(b"reason"))
                by_reason[reason] = by_reason.get(reason, 0) + 1
            async for entry_id, fields in self._scan(self.stream):
                entry = _entry(entry_id, fields)
                old = per.get(entry.destination)
                age = now - entry.created_at
                per[entry.destination] = DestinationStats(
                    (old.depth if old else 0) + 1, max(age, old.oldest_age_s if old else 0.0)
                )
        return OutboxStats(
            depth=int(depth),
            oldest_age_s=None if oldest is None else now - oldest,
            leased=leased,
            dead=int(dead),
            dead_by_reason=by_reason,
            by_destination=per,
        )

    async def dead_letters(
        self, *, reason: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        found: list[DeadLetter] = []
        async for dead_id, fields in self._scan(self.dead_stream):
            failure = Failure(
                reason=cast(Any, _text(fields.get(b"reason"))),
                status=int(_text(fields.get(b"status")) or 0),
                code=_optional_int(fields.get(b"code")),
                subcode=_optional_int(fields.get(b"subcode")),
                fbtrace_id=_text(fields.get(b"fbtrace_id")) or None,
                message=_text(fields.get(b"message")),
                attempts=int(_text(fields.get(b"attempts")) or 0),
            )
            if reason is not None and failure.reason != reason:
                continue
            dead_at = float(_text(fields.get(b"dead_at")) or 0.0)
            found.append(DeadLetter(_text(dead_id), _entry(dead_id, fields), failure, dead_at))
            if len(found) >= limit:
                break
        return found

    async def replay(self, *, reason: str | None = None, ids: Sequence[str] = ()) -> int:
        self._client()
        chosen: list[str] = []
        wanted = set(ids)
        async for dead_id, fields in self._scan(self.dead_stream):
            text_id = _text(dead_id)
            if reason is not None and _text(fields.get(b"reason")) != reason:
                continue
            if wanted and text_id not in wanted:
                continue
            chosen.append(text_id)
        moved = 0
        for start in range(0, len(chosen), CHUNK):
            chunk = chosen[start : start + CHUNK]
            count = await self._do(
                "replay",
                self._replay(
                    keys=[self.dead_stream, self.stream], args=chunk
                ),
            )
            moved += int(count)
        return moved
