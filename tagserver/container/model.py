"""The loaded container: tags with their triggers, consent needs and transformations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tagserver.container.scope import ClientName, Scope
from tagserver.container.transformations import Transformation
from tagserver.container.triggers import Trigger
from tagserver.container.variables import Variable
from tagserver.tags import Tag

if TYPE_CHECKING:
    from tagserver.consent import ConsentType

MAX_CACHED_EVENT_NAMES = 1024

#: One tag that may fire for one event name and client (:meth:`Container.plan`): the tag, the
#: triggers still to evaluate, in order (``None``: one matches whatever the event holds), and the
#: exceptions to evaluate, in order.
TagPlan = tuple["ContainerTag", "tuple[Trigger, ...] | None", "tuple[Trigger, ...]"]


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

    def plan_for(self, event_key: str) -> TagPlan | None:
        """What :meth:`fires` still has to evaluate for events named ``event_key`` once the
        client is known to fit: ``None`` when no trigger's event list names it. A trigger whose
        list leaves the name out matches without evaluating anything, so only the others are
        kept, in order; when the first of them has no conditions it matches whatever the event
        holds and nothing of the triggers is left to evaluate (the same conditions are evaluated,
        in the same order, as by :meth:`fires`)."""
        if not self.may_fire_for(event_key):
            return None
        triggers: tuple[Trigger, ...] | None = None
        if self.triggers:
            triggers = tuple(
                t for t in self.triggers if t.events is None or event_key in t.events
            )
            if triggers[0].condition is None:
                triggers = None
        exceptions = tuple(
            t for t in self.exceptions if t.events is None or event_key in t.events
        )
        return (self, triggers, exceptions)

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
    #: :meth:`plan` per ``(event name, client)``.
    _candidates: dict[tuple[str, ClientName | None], tuple[TagPlan, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def candidates(self, event_key: str) -> tuple[ContainerTag, ...]:
        """The tags whose event lists allow ``event_key``, in order."""
        return tuple(entry for entry, _, _ in self.plan(event_key, None))

    def plan(self, event_key: str, client: ClientName | None) -> tuple[TagPlan, ...]:
        """The tags that may fire for an event named ``event_key`` (``meta_event_name`` of its
        name) from ``client`` (``None``: any client), in order, each with what is left to
        evaluate (:meth:`ContainerTag.plan_for`). Made once per name and client; cached for at
        most :data:`MAX_CACHED_EVENT_NAMES` of them: event names come from the outside."""
        cache_key = (event_key, client)
        found = self._candidates.get(cache_key)
        if found is None:
            plans = []
            for entry in self.tags:
                if client is not None and entry.clients is not None and (
                    client not in entry.clients
                ):
                    continue
                plan = entry.plan_for(event_key)
                if plan is not None:
                    plans.append(plan)
            found = tuple(plans)
            if len(self._candidates) < MAX_CACHED_EVENT_NAMES:
                self._candidates[cache_key] = found
        return found

    def tag(self, name: str) -> ContainerTag:
        """The tag called ``name``; raises ``KeyError``."""
        for entry in self.tags:
            if entry.name == name:
                return entry
        raise KeyError(name)
