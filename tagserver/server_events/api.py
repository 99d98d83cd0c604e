"""``POST /api/events``: a batch of server events from a shop's backend or CRM.

Request: ``Authorization: Bearer <key>`` (``tagserver keys create``), a JSON body
``{"data": [event, ...]}`` of 1 to 1,000 events in the field names of ``POST /e`` plus
``action_source`` and a required ``event_time`` (:mod:`.parse`). No cookies are read or set and
no browser commands are returned. The answer is ``200`` with one entry per event, in order::

    {"ok": true, "received": 3, "accepted": 1, "duplicates": 1, "rejected": 1,
     "events": [{"index": 0, "event_id": "crm-1", "status": "accepted", "tags": ["meta"]},
                {"index": 1, "event_id": "crm-1", "status": "duplicate"},
                {"index": 2, "event_id": null, "status": "rejected",
                 "errors": [{"field": "event_time", "message": "too old: ..."}]}]}

*accepted* means stored in the outbox for at least one tag the key may feed; an event no such tag
takes is *rejected* with the tags' reasons. Without a valid key: ``401`` and nothing is read;
when the outbox cannot store the events: ``503`` (``Retry-After``) and none is kept as seen.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tagserver.clients.collect import decode_json_body, event_from_hit
from tagserver.clients.context import outbox_unavailable, run_event, submit_results
from tagserver.container.model import Container
from tagserver.container.runtime import ContainerResult
from tagserver.event import Event
from tagserver.exceptions import HitRejected, OutboxError, Unauthorized
from tagserver.http import check_body_type, error_response, read_body
from tagserver.server_events.keys import ApiKey
from tagserver.server_events.parse import ServerEvent, parse_server_event
from tagserver.server_events.store import ServerEventStore

#: Meta's own batch limit (REFERENCE §1).
MAX_EVENTS = 1000
#: Largest body accepted (bytes): 1,000 events of about 4 KiB each.
MAX_BATCH_BYTES = 4 * 1024 * 1024
NO_STORE = {"cache-control": "no-store"}
_SCOPED: dict[tuple[int, str], Container] = {}


def bearer_key(request: Request) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, else ``None``."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key.strip() or None if scheme.lower() == "bearer" else None


def scoped_container(container: Container, key: ApiKey) -> Container:
    """``container`` with only the tags ``key`` may feed: all of them, those it names, and those
    whose ``pixel_id`` (Meta tags) it names. Cached per container object and key scope."""
    if key.all_tags:
        return container
    cache_key = (id(container), f"{key.name}|{key.scope_text}")
    cached = _SCOPED.get(cache_key)
    if cached is not None and cached.version == container.version:
        return cached
    tags = tuple(
        entry for entry in container.tags
        if entry.name in key.tags or getattr(entry.tag, "pixel_id", None) in key.pixels
    )
    scoped = replace(container, tags=tags, _candidates={})
    if len(_SCOPED) > 256:
        _SCOPED.clear()
    _SCOPED[cache_key] = scoped
    return scoped


def _unauthorized(message: str) -> Response:
    return error_response(
        Unauthorized("a valid API key is required",
                     errors=[{"field": "authorization", "message": message}]),
        headers={"www-authenticate": 'Bearer realm="tagserver"'},
    )


def event_from_server_event(parsed: ServerEvent, *, now: float) -> Event:
    """The container's :class:`Event` for a checked server event (an id minted when none came)."""
    hit = parsed.hit
    return event_from_hit(
        hit,
        event_id=hit.event_id if hit.event_id is not None else str(uuid.uuid4()),
        received_at=now,
        page_url=hit.event_source_url,
        client_ip=parsed.client_ip,
        user_agent=parsed.user_agent,
        fbp=parsed.fbp,
        fbc=parsed.fbc,
        action_source=parsed.action_source,
    )


async def handle_api_events(request: Request, state: Any, store: ServerEventStore) -> Response:
    """The route (see the module docstring); ``state`` is the app's ``AppState``."""
    presented = bearer_key(request)
    if presented is None:
        return _unauthorized("send Authorization: Bearer <key> (tagserver keys create NAME)")
    key = await run_in_threadpool(store.authenticate, presented)
    if key is None:
        return _unauthorized("unknown or revoked key")
    try:
        check_body_type(request)
        body = await read_body(request, limit=MAX_BATCH_BYTES)
        events = _batch(decode_json_body(body))
    except HitRejected as exc:
        return error_response(exc, headers=NO_STORE)

    now = time.time()
    answers: list[dict[str, Any]] = []
    parsed: dict[int, ServerEvent] = {}
    for index, raw in enumerate(events):
        raw_id = raw.get("event_id") if isinstance(raw, dict) else None
        if isinstance(raw_id, str) and len(raw_id) > 200:  # never echo a huge value back
            raw_id = raw_id[:200] + "…"
        answer: dict[str, Any] = {"index": index, "event_id": raw_id}
        try:
            parsed[index] = parse_server_event(
                raw, now=now, default_country=state.settings.default_country
            )
        except HitRejected as exc:
            answer.update(status="rejected", errors=exc.errors)
        answers.append(answer)

    with_ids = [i for i, p in parsed.items() if p.hit.event_id is not None]
    ids = [str(parsed[i].hit.event_id) for i in with_ids]
    duplicate = await run_in_threadpool(store.claim, key.name, ids, now=now) if ids else []
    for index, is_dup in zip(with_ids, duplicate, strict=True):
        if is_dup:
            answers[index]["status"] = "duplicate"
            del parsed[index]

    container = scoped_container(state.container, key)
    released: list[str] = []
    results: dict[int, tuple[Event, ContainerResult]] = {}
    for index, server_event in parsed.items():
        event = event_from_server_event(server_event, now=now)
        results[index] = event, run_event(state, container, event, now=now)
    try:
        await submit_results(state, [r for _, r in results.values()])  # durable before answer
    except OutboxError:  # nothing was stored: a retry of the request must not be a duplicate
        claimed = [str(p.hit.event_id) for p in parsed.values() if p.hit.event_id is not None]
        await run_in_threadpool(store.release, key.name, claimed, claimed_at=now)
        return outbox_unavailable(headers=NO_STORE)
    for index, server_event in parsed.items():
        event, result = results[index]
        answer = answers[index]
        answer["event_id"] = event.event_id
        if result.outbound:
            answer.update(status="accepted", tags=sorted(set(result.outbound_tags)))
            continue
        answer["status"] = "rejected"
        answer["errors"] = [
            {"field": f"tag {tag}", "message": f"{reason}: {detail}"}
            for tag, reason, detail in result.drops
        ] or [{"field": "tags", "message": "no tag this key may feed takes this event "
               f"(key scope: {key.scope_text}; check the container's triggers)"}]
        if server_event.hit.event_id is not None:
            released.append(server_event.hit.event_id)
    await run_in_threadpool(store.release, key.name, released, claimed_at=now)

    counts = {s: sum(1 for a in answers if a["status"] == s)
              for s in ("accepted", "duplicate", "rejected")}
    return JSONResponse(
        {"ok": True, "received": len(answers), "accepted": counts["accepted"],
         "duplicates": counts["duplicate"], "rejected": counts["rejected"], "events": answers},
        headers=NO_STORE,
    )


def _batch(body: dict[str, Any]) -> list[Any]:
    """The ``data`` list of a batch body; raises :class:`HitRejected` (413 past
    :data:`MAX_EVENTS`)."""
    events = body.get("data")
    if not isinstance(events, list) or not events:
        raise HitRejected("invalid batch", errors=[
            {"field": "data", "message": 'expected {"data": [event, ...]} with 1 to '
             f"{MAX_EVENTS} events"}])
    if len(events) > MAX_EVENTS:
        too_many = HitRejected("batch too large", errors=[
            {"field": "data", "message": f"{len(events)} events; at most {MAX_EVENTS} a request"}])
        too_many.status = 413
        raise too_many
    return events
