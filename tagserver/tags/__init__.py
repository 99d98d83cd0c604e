"""Tag types: each builds browser commands and outbound events from an event; all are pure.

``TAG_TYPES`` is the registry; its keys are the ``type`` enum of the container JSON Schema (a test
keeps the two in step). A tag type is a class with:

* ``default_consent`` — the consent types a tag of this type needs unless its config says
  otherwise (``require_consent``);
* ``clients`` — the clients whose events it can take (``("ga4",)`` for the GA4 forwarder, which
  needs a gtag.js hit), or ``None`` for any;
* ``from_config(raw, *, environ, ctx, path)`` — a :class:`Tag` from one schema-valid config
  object at JSON ``path``;
  templates are compiled with :func:`tagserver.container.values.compile_value` and ``ctx``;
  raises ``ValueError`` for a value the schema cannot check (an id read from the environment).

Firing (triggers, exceptions, consent) and transformations are the container's business: a tag
only builds. To add a type: write the class, add it to :func:`_registry`, add a
branch to ``tagserver/container/schema.json`` and document its keys in the README.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from tagserver.consent import ConsentType
    from tagserver.container.scope import ClientName, Scope
    from tagserver.container.values import CompileContext


@dataclass(frozen=True, init=False)
class Outbound:
    """One event for a destination: ``destination`` is a hashable batch key (same key → same
    request), ``payload`` the destination's JSON for this event."""

    destination: Any
    payload: Mapping[str, Any]

    def __init__(self, destination: Any, payload: Mapping[str, Any]) -> None:
        """The frozen dataclass's ``__init__`` written as two stores into the instance dict (one
        or more per hit): the generated one sets each field with ``object.__setattr__``, and a
        ``__dict__.update`` with keywords builds a second dict."""
        fields = self.__dict__
        fields["destination"] = destination
        fields["payload"] = payload


@dataclass(init=False)
class TagResult:
    """What one tag produced for one event: browser commands, outbound events, and drops as
    ``(reason, detail)`` pairs with ``reason`` from :data:`tagserver.delivery.drops.DropReason`."""

    commands: list[dict[str, Any]] = field(default_factory=list)
    outbound: list[Outbound] = field(default_factory=list)
    drops: list[tuple[str, str]] = field(default_factory=list)

    def __init__(
        self,
        commands: list[dict[str, Any]] | None = None,
        outbound: list[Outbound] | None = None,
        drops: list[tuple[str, str]] | None = None,
    ) -> None:
        """The dataclass's ``__init__`` (``None`` → a new empty list), without a factory call
        per field."""
        self.commands = [] if commands is None else commands
        self.outbound = [] if outbound is None else outbound
        self.drops = [] if drops is None else drops


class Tag(Protocol):
    """A configured tag instance (see ``tagserver/container/schema.json``)."""

    name: str

    def build(self, scope: Scope, *, default_country: str | None, now: float) -> TagResult:
        """Browser commands and outbound events for the event data of ``scope`` (already
        transformed for this tag); ``now`` is unix seconds."""
        ...


class TagType(Protocol):
    """A tag class: builds a :class:`Tag` from one schema-valid config object."""

    default_consent: tuple[ConsentType, ...]
    clients: tuple[ClientName, ...] | None

    def from_config(
        self,
        raw: Mapping[str, Any],
        *,
        environ: Mapping[str, str],
        ctx: CompileContext,
        path: str,
    ) -> Tag: ...


def _registry() -> dict[str, TagType]:
    from tagserver.tags.ga4 import GA4Tag
    from tagserver.tags.http import HttpTag
    from tagserver.tags.meta import MetaTag

    return {
        "ga4": cast(TagType, GA4Tag),
        "http": cast(TagType, HttpTag),
        "meta": cast(TagType, MetaTag),
    }


TAG_TYPES: dict[str, TagType] = _registry()
