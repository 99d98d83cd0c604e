"""Runs the container for one event: every firing tag builds its commands and outbound events.

Tags are independent: one that raises is logged with its name and counted (``tag_error``); the
others still run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from tagserver.container.loader import Container
from tagserver.event import Event
from tagserver.tags import Outbound

log = logging.getLogger("tagserver.container")


@dataclass
class ContainerResult:
    """Everything the container produced for one event. ``drops`` holds
    ``(tag name, reason, detail)``; ``fired`` the names of the tags that fired."""

    commands: list[dict[str, Any]] = field(default_factory=list)
    outbound: list[Outbound] = field(default_factory=list)
    drops: list[tuple[str, str, str]] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)


def run_container(
    container: Container, event: Event, *, default_country: str | None, now: float
) -> ContainerResult:
    """Evaluate every tag of ``container`` on ``event``; ``now`` is unix seconds. Never raises."""
    result = ContainerResult()
    for tag in container.tags:
        try:
            if not tag.fires(event):
                continue
            built = tag.build(event, default_country=default_country, now=now)
        except Exception as exc:  # one broken tag must not stop the others
            log.exception("tag failed", extra={"tag": tag.name, "error": type(exc).__name__})
            result.drops.append((tag.name, "tag_error", type(exc).__name__))
            continue
        result.fired.append(tag.name)
        result.commands.extend(built.commands)
        result.outbound.extend(built.outbound)
        result.drops.extend((tag.name, reason, detail) for reason, detail in built.drops)
    return result
