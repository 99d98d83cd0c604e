"""``tagserver outbox stats|dead|replay``: the operator's view of the outbox named by
``TAGSERVER_OUTBOX`` (or ``--outbox``), safe to run beside running servers.

- ``stats``: depth, entries in flight, age of the oldest, per destination; dead letters per reason.
- ``dead [--reason R] [--limit N] [--json] [--payload]``: dead letters, oldest first, with reason,
  last HTTP status, Meta's code/subcode and ``fbtrace_id``. The stored event (hashed customer data,
  IP address, user agent) is printed only with ``--payload``.
- ``replay [--reason R] [--id ID ...]``: move dead letters back into the outbox; running servers
  send them with the destination's *current* token (e.g. after fixing an expired one).

Exit status: 0 done, 1 the outbox cannot be read or the settings are invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tagserver.delivery.outbox import (
    DEAD_REASONS,
    DeadLetter,
    Outbox,
    OutboxStats,
    describe_outbox,
    open_outbox,
)
from tagserver.exceptions import ConfigError, OutboxError


def add_outbox_parser(sub: Any) -> None:
    """Add the ``outbox`` command and its subcommands to the CLI's subparsers."""
    outbox = sub.add_parser("outbox", help="inspect the outbox, list and replay dead letters")
    outbox.add_argument("--outbox", help="the outbox to open (default: TAGSERVER_OUTBOX)")
    actions = outbox.add_subparsers(dest="action", required=True)
    stats = actions.add_parser("stats", help="depth, oldest age, per destination, dead letters")
    stats.add_argument("--json", action="store_true", help="one JSON object")
    dead = actions.add_parser("dead", help="list dead letters, oldest first")
    dead.add_argument("--reason", choices=DEAD_REASONS)
    dead.add_argument("--limit", type=int, default=100)
    dead.add_argument("--json", action="store_true", help="one JSON object per line")
    dead.add_argument("--payload", action="store_true", help="include the stored event")
    replay = actions.add_parser("replay", help="move dead letters back into the outbox")
    replay.add_argument("--reason", choices=DEAD_REASONS)
    replay.add_argument("--id", dest="ids", action="append", default=[], help="a dead letter id")


def run_outbox_command(args: argparse.Namespace) -> int:
    """Run ``tagserver outbox <action>``; the exit status."""
    from tagserver.settings import load_settings

    try:
        spec = args.outbox or load_settings(os.environ).outbox
    except ConfigError as exc:
        print(f"tagserver outbox: {exc}", file=sys.stderr)
        return 1
    if spec == "memory":
        print("tagserver outbox: a memory outbox lives inside its server only", file=sys.stderr)
        return 1
    if "://" not in spec and not Path(spec).exists():
        print(
            f"tagserver outbox: no outbox at {spec} (set TAGSERVER_OUTBOX or --outbox)",
            file=sys.stderr,
        )
        return 1
    actions: dict[str, Callable[[Outbox, argparse.Namespace], Awaitable[None]]] = {
        "stats": _stats,
        "dead": _dead,
        "replay": _replay,
    }
    outbox = open_outbox(spec)

    async def main() -> None:
        await outbox.open()
        try:
            await actions[args.action](outbox, args)
        finally:
            await outbox.close()

    try:
        asyncio.run(main())
    except OutboxError as exc:
        print(f"tagserver outbox: {exc}", file=sys.stderr)
        return 1
    print(f"(outbox: {describe_outbox(spec)})", file=sys.stderr)
    return 0


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def stats_json(stats: OutboxStats) -> dict[str, Any]:
    return {
        "depth": stats.depth,
        "in_flight": stats.leased,
        "oldest_age_s": None if stats.oldest_age_s is None else round(stats.oldest_age_s, 3),
        "by_destination": {
            k: {"depth": v.depth, "oldest_age_s": round(v.oldest_age_s, 3)}
            for k, v in sorted(stats.by_destination.items())
        },
        "dead": stats.dead,
        "dead_by_reason": dict(sorted(stats.dead_by_reason.items())),
    }


async def _stats(outbox: Outbox, args: argparse.Namespace) -> None:
    stats = await outbox.stats(detail=True)
    if args.json:
        print(json.dumps(stats_json(stats)))
        return
    print(f"depth: {stats.depth} ({stats.leased} in flight), oldest: {_age(stats.oldest_age_s)}")
    for key, dest in sorted(stats.by_destination.items()):
        print(f"  {key}  depth {dest.depth}  oldest {_age(dest.oldest_age_s)}")
    print(f"dead letters: {stats.dead}")
    for reason, count in sorted(stats.dead_by_reason.items()):
        print(f"  {reason}  {count}")


def dead_letter_json(dead: DeadLetter, *, payload: bool) -> dict[str, Any]:
    f = dead.failure
    out: dict[str, Any] = {
        "id": dead.id,
        "reason": f.reason,
        "destination": dead.entry.destination,
        "event_id": dead.entry.event_id,
        "event_time": dead.entry.event_time,
        "status": f.status,
        "code": f.code,
        "subcode": f.subcode,
        "fbtrace_id": f.fbtrace_id,
        "attempts": f.attempts,
        "message": f.message,
        "created_at": round(dead.entry.created_at, 3),
        "dead_at": round(dead.dead_at, 3),
    }
    if payload:
        out["payload"] = json.loads(dead.entry.payload)
    return out


async def _dead(outbox: Outbox, args: argparse.Namespace) -> None:
    letters = await outbox.dead_letters(reason=args.reason, limit=args.limit)
    for dead in letters:
        if args.json:
            print(json.dumps(dead_letter_json(dead, payload=args.payload), ensure_ascii=False))
            continue
        f = dead.failure
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(dead.dead_at))
        print(
            f"{dead.id}  {when}  {f.reason}  {dead.entry.destination}  "
            f"event_id={dead.entry.event_id} status={f.status} code={f.code} "
            f"subcode={f.subcode} fbtrace_id={f.fbtrace_id} attempts={f.attempts}  {f.message}"
        )
        if args.payload:
            print("    " + dead.entry.payload.decode("utf-8", "replace"))
    if not args.json:
        print(f"{len(letters)} dead letter(s)" + (f" with reason {args.reason}" if args.reason else ""))


async def _replay(outbox: Outbox, args: argparse.Namespace) -> None:
    moved = await outbox.replay(reason=args.reason, ids=args.ids)
    print(f"replayed {moved} dead letter(s) into the outbox")
