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


@dataclass(frozen=True)
class ContainerTag:
    """One tag of the container. It fires when every ``require_consent`` type is granted, any of
    ``triggers`` matches (no triggers: every event) and none of ``exceptions`` does.
    ``transformations`` are those that affect this tag, in the order they run."""

    name: str
    type: str
    tag: Tag
    triggers: tuple[Trigger, ...] = ()
    exceptions: tuple[Trigger, ...] = ()
    require_consent: tuple[ConsentType, ...] = ()
    transformations: tuple[Transformation, ...] = ()

    def fires(self, scope: Scope, event_key: str) -> bool:
        """``event_key`` is ``meta_event_name(event_name)``, computed once per event."""
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

    def why_not(self, scope: Scope, event_key: str) -> str | None:
        """Why the tag does not fire (``None`` when it fires): for the dry-run checker."""
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

    def tag(self, name: str) -> ContainerTag:
        """The tag called ``name``; raises ``KeyError``."""
        for entry in self.tags:
            if entry.name == name:
                return entry
        raise KeyError(name)
