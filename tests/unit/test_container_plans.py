"""Container.plan: run_scope's reduced firing checks decide as ContainerTag.fires does, and
evaluate the same trigger conditions in the same order as the check of every candidate tag."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from tagserver.consent import Consent
from tagserver.container.model import MAX_CACHED_EVENT_NAMES, Container, ContainerTag
from tagserver.container.runtime import run_scope
from tagserver.container.scope import Scope
from tagserver.container.triggers import Trigger, event_names
from tagserver.meta.events import meta_event_name
from tagserver.tags import TagResult

EVENT_NAMES = ["PageView", "purchase", "Purchase", "Lead", "custom_x", ""]


class QuietTag:
    """Builds nothing: the test looks at which tags fire."""

    def __init__(self, name: str) -> None:
        self.name = name

    def build(self, scope: Scope, *, default_country: str | None, now: float) -> TagResult:
        return TagResult()


def recording(name: str, log: list[str], answer: bool) -> Callable[[Scope], bool]:
    def condition(scope: Scope) -> bool:
        log.append(name)
        return answer

    return condition


def container_and_log() -> tuple[Container, list[str]]:
    """Tags with every kind of trigger list: none, unconditional, conditional, named triggers
    shared by several tags, event lists that leave the event out, exceptions, consent needs and
    a ga4-only tag; each condition records its evaluation."""
    log: list[str] = []
    shared_yes = Trigger("shared-yes", None, recording("shared-yes", log, True))
    shared_no = Trigger("shared-no", event_names(["Purchase", "Lead"]),
                        recording("shared-no", log, False))
    purchase = Trigger("purchase", event_names(["purchase"]), None)
    leads = Trigger("leads", event_names(["Lead"]), recording("leads", log, True))
    blocked = Trigger("blocked", event_names(["PageView"]), recording("blocked", log, True))
    tags = [
        ContainerTag("all", "http", QuietTag("all")),
        ContainerTag("purchase-only", "http", QuietTag("purchase-only"), triggers=(purchase,)),
        ContainerTag("no-then-purchase", "http", QuietTag("no-then-purchase"),
                     triggers=(shared_no, purchase)),
        ContainerTag("purchase-then-no", "http", QuietTag("purchase-then-no"),
                     triggers=(purchase, shared_no)),
        ContainerTag("leads-or-any", "http", QuietTag("leads-or-any"),
                     triggers=(leads, shared_yes)),
        ContainerTag("any-except-pageview", "meta", QuietTag("any-except-pageview"),
                     triggers=(shared_yes,), exceptions=(blocked, shared_no),
                     require_consent=("ad_storage",)),
        ContainerTag("ad-data", "http", QuietTag("ad-data"),
                     require_consent=("ad_storage", "ad_user_data")),
        ContainerTag("ga4-only", "ga4", QuietTag("ga4-only"), clients=frozenset({"ga4"})),
        ContainerTag("unconditional-star", "http", QuietTag("unconditional-star"),
                     triggers=(Trigger("star", None, None), leads)),
    ]
    return Container(tags=tuple(tags), version="plans"), log


def scope_for(name: str, consent: Consent) -> Scope:
    return Scope({"event_name": name, "event_id": "e1"}, consent=consent)


def reference_fired(container: Container, scope: Scope) -> list[str]:
    """The check before plans: every tag whose event lists allow the name, through fires()."""
    key = meta_event_name(name if isinstance(name := scope.data["event_name"], str) else "")
    return [t.name for t in container.tags if t.may_fire_for(key) and t.fires(scope, key)]


CONSENTS = [Consent(), Consent(ad_storage=False), Consent(ad_user_data=False),
            Consent(True, True, True, True)]


@pytest.mark.parametrize(("name", "consent"), list(itertools.product(EVENT_NAMES, CONSENTS)))
def test_plans_fire_the_same_tags_after_the_same_conditions(name: str, consent: Consent) -> None:
    container, log = container_and_log()
    expected = reference_fired(container, scope_for(name, consent))
    expected_log = list(log)
    log.clear()
    result = run_scope(container, scope_for(name, consent), default_country=None, now=0.0)
    assert result.fired == expected
    assert log == expected_log
    assert "ga4-only" not in result.fired  # a /e event never reaches a ga4-only tag


def test_plans_are_cached_per_name_and_client_within_the_bound() -> None:
    container, _ = container_and_log()
    first = container.plan("Purchase", "collect")
    assert container.plan("Purchase", "collect") is first
    assert [entry.name for entry, _, _ in container.plan("Purchase", "ga4")][-2:] == [
        "ga4-only", "unconditional-star"]
    for i in range(MAX_CACHED_EVENT_NAMES + 10):
        container.plan(f"custom_{i}", "collect")
    assert len(container._candidates) == MAX_CACHED_EVENT_NAMES
    # a name past the bound is planned afresh each time, with the same result
    again = container.plan("late_name", "collect")
    assert [e.name for e, _, _ in again] == [e.name for e, _, _ in
                                            container.plan("late_name", "collect")]


def test_unconditional_first_trigger_leaves_nothing_to_evaluate() -> None:
    container, _ = container_and_log()
    plans = {entry.name: (triggers, exceptions)
             for entry, triggers, exceptions in container.plan("Purchase", "collect")}
    assert plans["all"] == (None, ())
    assert plans["purchase-only"] == (None, ())
    assert plans["purchase-then-no"] == (None, ())
    no_then_purchase, _ = plans["no-then-purchase"]
    assert no_then_purchase is not None
    assert [t.name for t in no_then_purchase] == ["shared-no", "purchase"]
    assert [t.name for t in plans["any-except-pageview"][1]] == ["shared-no"]
    assert "purchase-only" not in {e.name for e, _, _ in container.plan("Lead", "collect")}
