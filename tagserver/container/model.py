"""The loaded container: tags with their triggers, consent needs and transformations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tagserver.container.scope import Scope
from tagserver.container.transformations import Transformation
from tagserver.container.triggers import Trigger
from tagserver.container.variables import Variable
from tagserver.tags import Tag

if TYPE_CHECKING:
    from tagserver.consent import ConsentType
    from tagserver.container.scope import ClientName

MAX_CACHED_EVENT_NAMES = 1024


@dataclass(frozen=True)
class ContainerTag:
    """One tag of the container. It fires when the event came from one of ``clients`` (``None``:
    any client; the tag type decides), every ``require_consent`` type is granted, any of
    ``triggers`` matches (no triggers: every event) and none of ``exceptions`` does.
    ``transformations`` are those that affect this tag, in the order they run."""

    name: str
    type: str
    tag: Tag
    triggers: tuple[Trigger, ...] = ()
    exceptions: tuple[Trigger, ...] = ()
    require_consent: tuple[ConsentType, ...] = ()
    transformations: tuple[Transformation, ...] = ()
    clients: frozenset[ClientName] | None = None

    def fires(self, scope: Scope, event_key: str) -> bool:
        """``event_key`` is ``meta_event_name(event_name)``, computed once per event."""
        if self.clients is not None and scope.client not in self.clients:
            return False
        consent = scope.consent
        for kind in self.require_consent:
            if not consent.granted(kind):
                return False
        if self.triggers:
            for trigger in self.triggers:
                if trigger.matches(scope, event_key):
                    break
            else:
                return False
        for trigger in self.exceptions:
            if trigger.matches(scope, event_key):
                return False
        return True

    def may_fire_for(self, event_key: str) -> bool:
        """False when no trigger's event list names ``event_key`` (conditions aside)."""
        if not self.triggers:
            return True
        return any(t.events is None or event_key in t.events for t in self.triggers)

    def why_not(self, scope: Scope, event_key: str) -> str | None:
        """Why the tag does not fire (``None`` when it fires): for the dry-run checker."""
        if self.clients is not None and scope.client not in self.clients:
            return (f"{self.type} tags take events of the {', '.join(sorted(self.clients))} "
                    f"client only; this one came from {scope.client}")
        denied = [kind for kind in self.require_consent if not scope.consent.granted(kind)]
        if denied:
            return "consent " + ", ".join(denied) + " denied"
        if self.triggers and not any(t.matches(scope, event_key) for t in self.triggers):
            return "no trigger matched"
        blocking = [t.name for t in self.exceptions if t.matches(scope, event_key)]
        if blocking:
            return "blocked by exception " + ", ".join(repr(name) for name in blocking)
        return None


@dataclass(frozen=True)
class Container:
    """The validated container, tags in file then list order. ``version`` is a content hash
    (12 hex) that changes whenever any file changes."""

    tags: tuple[ContainerTag, ...]
    version: str
    variables: Mapping[str, Variable] = field(default_factory=dict)
    triggers: Mapping[str, Trigger] = field(default_factory=dict)
    transformations: tuple[Transformation, ...] = ()
    _candidates: dict[str, tuple[ContainerTag, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def candidates(self, event_key: str) -> tuple[ContainerTag, ...]:
        """The tags whose event lists allow ``event_key``, in order (cached for at most
        :data:`MAX_CACHED_EVENT_NAMES` names: event names come from the outside)."""
        found = self._candidates.get(event_key)
        if found is None:
            found = tuple(t for t in self.tags if t.may_fire_for(event_key))
            if len(self._candidates) < MAX_CACHED_EVENT_NAMES:
                self._candidates[event_key] = found
        return found

    def tag(self, name: str) -> ContainerTag:
        """The tag called ``name``; raises ``KeyError``."""
        for entry in self.tags:
            if entry.name == name:
                return entry
        raise KeyError(name)
