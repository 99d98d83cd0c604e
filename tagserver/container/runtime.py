"""Runs the container for one event: every firing tag builds its commands and outbound events.

Tags are independent: their order is the container's (file, then list order), and one that raises
(in its trigger, its transformations or its build) is logged with its name and counted
(``tag_error``); the others still run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from tagserver.container.model import Container
from tagserver.container.scope import Scope
from tagserver.container.transformations import Transformation, apply_transformations
from tagserver.container.values import as_text
from tagserver.event import Event
from tagserver.meta.events import meta_event_name
from tagserver.tags import Outbound

log = logging.getLogger("tagserver.container")


@dataclass
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


def run_container(
    container: Container, event: Event, *, default_country: str | None, now: float
) -> ContainerResult:
    """Evaluate every tag of ``container`` on ``event``; ``now`` is unix seconds. Never raises."""
    return run_scope(container, Scope.from_event(event), default_country=default_country, now=now)


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
    result = ContainerResult()
    key = meta_event_name(as_text(scope.data.get("event_name")) or "")
    views: dict[tuple[Transformation, ...], Scope] = {}  # tags with equal transformations
    for entry in container.tags if explain else container.candidates(key):
        try:
            if not entry.fires(scope, key):
                if explain:
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
        result.fired.append(entry.name)
        if built.commands:
            result.commands.extend(built.commands)
        for outbound in built.outbound:
            result.outbound.append(outbound)
            result.outbound_tags.append(entry.name)
        for reason, detail in built.drops:
            result.drops.append((entry.name, reason, detail))
    return result
