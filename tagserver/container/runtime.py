"""Runs the container for one event: every firing tag builds its commands and outbound events.

Tags are independent: their order is the container's (file, then list order), and one that raises
(in its trigger, its transformations or its build) is logged with its name and counted
(``tag_error``); the others still run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from tagserver.consent import GRANTED
from tagserver.container.model import Container
from tagserver.container.scope import ClientName, Scope, scope_from_event
from tagserver.container.transformations import Transformation, apply_transformations
from tagserver.container.values import as_text
from tagserver.event import Event
from tagserver.meta.events import GA4_TO_META, meta_event_name
from tagserver.tags import Outbound, TagResult

log = logging.getLogger("tagserver.container")


@dataclass(init=False)
class ContainerResult:
    """Everything the container produced for one event. ``drops`` holds
    ``(tag name, reason, detail)``; ``fired`` the names of the tags that fired; ``outbound_tags``
    the tag name of each ``outbound`` entry; ``not_fired`` ``(tag name, why)`` when explained."""

    commands: list[dict[str, Any]] = field(default_factory=list)
    outbound: list[Outbound] = field(default_factory=list)
    outbound_tags: list[str] = field(default_factory=list)
    drops: list[tuple[str, str, str]] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)
    not_fired: list[tuple[str, str]] = field(default_factory=list)

    def __init__(
        self,
        commands: list[dict[str, Any]] | None = None,
        outbound: list[Outbound] | None = None,
        outbound_tags: list[str] | None = None,
        drops: list[tuple[str, str, str]] | None = None,
        fired: list[str] | None = None,
        not_fired: list[tuple[str, str]] | None = None,
    ) -> None:
        """The dataclass's ``__init__`` (``None`` → a new empty list), without a factory call
        per field: one result per event."""
        self.commands = [] if commands is None else commands
        self.outbound = [] if outbound is None else outbound
        self.outbound_tags = [] if outbound_tags is None else outbound_tags
        self.drops = [] if drops is None else drops
        self.fired = [] if fired is None else fired
        self.not_fired = [] if not_fired is None else not_fired


_new_object = object.__new__


def run_container(
    container: Container, event: Event, *, default_country: str | None, now: float
) -> ContainerResult:
    """Evaluate every tag of ``container`` on ``event``; ``now`` is unix seconds. Never raises."""
    return _run(container, scope_from_event(event), default_country, now)


def run_scope(
    container: Container,
    scope: Scope,
    *,
    default_country: str | None,
    now: float,
    explain: bool = False,
) -> ContainerResult:
    """Evaluate every tag on the event data and request context of ``scope``. Never raises.

    With ``explain`` the result also says why each other tag did not fire (slower; for
    ``tagserver check``).
    """
    if explain:
        return _explained(container, scope, default_country=default_country, now=now)
    return _run(container, scope, default_country, now)


def _run(
    container: Container, scope: Scope, default_country: str | None, now: float
) -> ContainerResult:
    """:func:`run_scope` without ``explain``: the loop each hit runs (positional: one call per
    event, from :func:`run_container` or :func:`run_scope`)."""
    # ContainerResult() without the type call and its __init__ (one result per event)
    result: ContainerResult = _new_object(ContainerResult)
    result.commands = []
    result.outbound = []
    result.outbound_tags = []
    result.drops = []
    result.fired = []
    result.not_fired = []
    name = scope.data.get("event_name")
    if type(name) is not str:
        name = as_text(name) or ""
    key = GA4_TO_META.get(name, name)  # meta_event_name(name)
    consent = scope.consent
    views: dict[tuple[Transformation, ...], Scope] | None = None  # equal transformations
    # Container.plan has kept the tags this client's events can fire, and per tag only the
    # triggers and exceptions whose event lists name the event: ContainerTag.fires, reduced.
    client: ClientName = "collect" if scope.ga4 is None else "ga4"  # scope.client
    plans = container._candidates.get((key, client))  # container.plan(key, client), once made
    if plans is None:
        plans = container.plan(key, client)
    for entry, triggers, exceptions in plans:
        try:
            if entry.require_consent and consent is not GRANTED:
                if not all(consent.granted(kind) for kind in entry.require_consent):
                    continue
            if triggers is not None:
                for trigger in triggers:
                    if trigger.matches(scope, key):
                        break
                else:
                    continue
            if exceptions and any(t.matches(scope, key) for t in exceptions):
                continue
            tag_scope = scope
            if entry.transformations:
                if views is None:
                    views = {}
                view = views.get(entry.transformations)
                if view is None:
                    view = apply_transformations(entry.transformations, scope)
                    views[entry.transformations] = view
                tag_scope = view
            built = entry.tag.build(tag_scope, default_country=default_country, now=now)
        except Exception as exc:  # one broken tag must not stop the others
            log.exception("tag failed", extra={"tag": entry.name, "error": type(exc).__name__})
            result.drops.append((entry.name, "tag_error", type(exc).__name__))
            continue
        _add(result, entry.name, built)
    return result


def _explained(
    container: Container, scope: Scope, *, default_country: str | None, now: float
) -> ContainerResult:
    """:func:`run_scope` over every tag, saying why each one that does not fire does not."""
    result = ContainerResult()
    key = meta_event_name(as_text(scope.data.get("event_name")) or "")
    views: dict[tuple[Transformation, ...], Scope] = {}  # tags with equal transformations
    for entry in container.tags:
        try:
            if not entry.fires(scope, key):
                result.not_fired.append((entry.name, entry.why_not(scope, key) or "?"))
                continue
            tag_scope = scope
            if entry.transformations:
                view = views.get(entry.transformations)
                if view is None:
                    view = apply_transformations(entry.transformations, scope)
                    views[entry.transformations] = view
                tag_scope = view
            built = entry.tag.build(tag_scope, default_country=default_country, now=now)
        except Exception as exc:  # one broken tag must not stop the others
            log.exception("tag failed", extra={"tag": entry.name, "error": type(exc).__name__})
            result.drops.append((entry.name, "tag_error", type(exc).__name__))
            continue
        _add(result, entry.name, built)
    return result


def _add(result: ContainerResult, tag_name: str, built: TagResult) -> None:
    """Add what the tag ``tag_name`` built to ``result``: it fired."""
    result.fired.append(tag_name)
    if built.commands:
        result.commands.extend(built.commands)
    for outbound in built.outbound:
        result.outbound.append(outbound)
        result.outbound_tags.append(tag_name)
    for reason, detail in built.drops:
        result.drops.append((tag_name, reason, detail))
