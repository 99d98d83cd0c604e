"""Secret variable values never reach the outbox: a webhook's payload is stored sealed (names of
secrets instead of their values) and sent with the *current* container's values; a secret that
is gone makes a dead letter; visitor text cannot forge a reference to a secret."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from tagserver.delivery.channels import HttpChannel
from tagserver.delivery.drops import DropCounter
from tagserver.delivery.outbox_sqlite import SqliteOutbox
from tagserver.delivery.retry import RetryPolicy
from tagserver.delivery.sealed import Sealer, UnknownSecret, unseal
from tagserver.delivery.sender import Sender
from tagserver.secret import Secret
from tagserver.tags import Outbound
from tagserver.tags.http import HttpDestination

OLD = "crm/OLD+secret-0123"
NEW = "crm/NEW+secret-4567"
FAST = RetryPolicy(base_delay=0.01, max_delay=0.02, max_attempts=None)


def webhook(secret: str, note: str) -> dict[str, Any]:
    return {
        "method": "POST",
        "url": f"https://crm.example.com/o/{quote(secret, safe='')}?id=1",
        "headers": {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        "body": {"key": secret, "note": note, secret: 1},
        "event_id": "w-1",
    }


def test_seal_and_unseal_round_trip_raw_and_percent_encoded_forms() -> None:
    sealer = Sealer({"api": [OLD]})
    sealed = sealer.seal(webhook(OLD, "hello"))
    assert OLD not in json.dumps(sealed) and quote(OLD, safe="") not in json.dumps(sealed)
    assert unseal(sealed, {"api": OLD}) == webhook(OLD, "hello")
    assert unseal(sealed, {"api": NEW}) == webhook(NEW, "hello")


def test_visitor_text_cannot_forge_a_secret_reference() -> None:
    forged = "\x00sapi\x00 and \x00qapi\x00 and a lone \x00"
    sealed = Sealer({"api": [OLD]}).seal({"note": forged})
    assert unseal(sealed, {"api": NEW}) == {"note": forged}


def test_an_unknown_secret_name_raises() -> None:
    sealed = Sealer({"api": [OLD]}).seal({"k": OLD})
    try:
        unseal(sealed, {})
    except UnknownSecret as exc:
        assert exc.name == "api"
    else:
        raise AssertionError("expected UnknownSecret")


def test_webhook_secret_is_sealed_on_disk_and_the_current_value_is_sent(tmp_path: Path) -> None:
    requests: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(204)

    note = "visitor text \x00sapi\x00"
    path = tmp_path / "outbox.sqlite3"

    async def main() -> tuple[bytes, dict[str, int]]:
        outbox = SqliteOutbox(path)
        await outbox.open()
        drops = DropCounter()
        async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
            sender = Sender(
                client, outbox=outbox, channels={HttpDestination: HttpChannel()}, drops=drops,
                policy=FAST, destinations=[HttpDestination("crm")],
                secrets={"api": Secret(OLD)}, flush_interval=0.01,
            )  # fmt: skip
            await sender.submit([Outbound(HttpDestination("crm"), webhook(OLD, note))])
            await outbox.close()
            stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
            await outbox.open()
            # the secret is rotated (a live reload) before the event is sent
            sender.use_destinations([HttpDestination("crm")], secrets={"api": Secret(NEW)})
            await sender.start()
            await sender.stop(timeout=5)
        await outbox.close()
        return stored, drops.snapshot()

    stored, drops = asyncio.run(main())
    assert b"w-1" in stored, "the entry is in the SQLite file"
    for form in (OLD, quote(OLD, safe="")):
        assert form.encode() not in stored
    assert drops == {}
    (request,) = requests
    assert str(request.url) == f"https://crm.example.com/o/{quote(NEW, safe='')}?id=1"
    assert request.headers["authorization"] == f"Bearer {NEW}"
    assert json.loads(request.content) == {"key": NEW, "note": note, NEW: 1}


def test_a_webhook_whose_secret_is_gone_becomes_a_dead_letter(tmp_path: Path) -> None:
    requests: list[httpx.Request] = []

    async def main() -> tuple[list[Any], dict[str, int]]:
        outbox = SqliteOutbox(tmp_path / "outbox.sqlite3")
        await outbox.open()
        drops = DropCounter()
        transport = httpx.MockTransport(lambda r: requests.append(r) or httpx.Response(204))
        async with httpx.AsyncClient(transport=transport) as client:
            sender = Sender(
                client, outbox=outbox, channels={HttpDestination: HttpChannel()}, drops=drops,
                policy=FAST, destinations=[HttpDestination("crm")],
                secrets={"api": Secret(OLD)}, flush_interval=0.01,
            )  # fmt: skip
            await sender.submit([Outbound(HttpDestination("crm"), webhook(OLD, "n"))])
            sender.use_destinations([HttpDestination("crm")], secrets={})
            await sender.start()
            await sender.stop(timeout=5)
        dead = await outbox.dead_letters()
        await outbox.close()
        return dead, drops.snapshot()

    dead, drops = asyncio.run(main())
    assert requests == []
    (letter,) = dead
    assert letter.failure.reason == "unknown_destination"
    assert "'api'" in letter.failure.message
    assert OLD.encode() not in letter.entry.payload
    assert drops == {"http:crm/unknown_destination": 1}
