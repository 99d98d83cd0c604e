"""Tag types: each builds browser commands and outbound events from an event; all are pure.

``TAG_TYPES`` is the registry; its keys are the ``type`` enum of the container JSON Schema (a test
keeps the two in step).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from tagserver.event import Event


@dataclass(frozen=True)
class Outbound:
    """One event for a destination: ``destination`` is a hashable batch key (same key → same
    request), ``payload`` the destination's JSON for this event."""

    destination: Any
    payload: Mapping[str, Any]


@dataclass
class TagResult:
    """What one tag produced for one event: browser commands, outbound events, and drops as
    ``(reason, detail)`` pairs with ``reason`` from :data:`tagserver.delivery.drops.DropReason`."""

    commands: list[dict[str, Any]] = field(default_factory=list)
    outbound: list[Outbound] = field(default_factory=list)
    drops: list[tuple[str, str]] = field(default_factory=list)


class Tag(Protocol):
    """A configured tag instance (see ``tagserver/container/schema.json``)."""

    name: str

    def fires(self, event: Event) -> bool:
        """True when this tag's trigger matches ``event`` (names and consent)."""
        ...

    def build(self, event: Event, *, default_country: str | None, now: float) -> TagResult:
        """Browser commands and outbound events for ``event``; ``now`` is unix seconds."""
        ...


class TagType(Protocol):
    """A tag class: builds a :class:`Tag` from one schema-valid config object."""

    from_config: Callable[..., Tag]


def _registry() -> dict[str, TagType]:
    from tagserver.tags.ga4 import GA4Tag
    from tagserver.tags.meta import MetaTag

    return {"meta": cast(TagType, MetaTag), "ga4": cast(TagType, GA4Tag)}


TAG_TYPES: dict[str, TagType] = _registry()
