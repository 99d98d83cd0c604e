"""Triggers: an event name list plus conditions, compiled once into plain predicates.

A condition reads one source — ``event`` (an event data path), ``cookie``, ``header``, ``query``
(a query parameter of ``page_location``), ``var`` (a named variable) or ``consent`` (``"granted"``
or ``"denied"``) — and applies one operator to it. Conditions combine with ``{"all": [...]}`` and
``{"any": [...]}`` groups (a bare list is ``all``), nested freely.

Rules: a missing value matches no positive operator (``not_*`` operators are the exact negation,
so a missing value matches them); on an array, a string or equality operator matches when any
element matches; numeric operators compare numbers and numeric strings; ``ignore_case`` applies to
text operators and ``in``. Event name lists match Meta and GA4 names alike (``purchase`` and
``Purchase`` are one event, by :func:`tagserver.meta.events.meta_event_name`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tagserver.container.event_data import lookup, parse_path
from tagserver.container.regex import ContainerPattern
from tagserver.container.scope import Scope
from tagserver.container.values import CompileContext, as_number, as_text
from tagserver.container.variables import compile_regex
from tagserver.meta.events import meta_event_name

if TYPE_CHECKING:
    from tagserver.consent import ConsentType

Predicate = Callable[[Scope], bool]
Test = Callable[[Any], bool]

SOURCES = ("event", "cookie", "header", "query", "var", "consent")
POSITIVE_OPERATORS = (
    "equals", "contains", "starts_with", "ends_with", "regex", "exists", "in",
)  # fmt: skip
NUMERIC_OPERATORS = ("gt", "gte", "lt", "lte")
OPERATORS: tuple[str, ...] = (
    *POSITIVE_OPERATORS,
    *(f"not_{op}" for op in POSITIVE_OPERATORS),
    *NUMERIC_OPERATORS,
)


class Trigger:
    """``events`` (Meta names after mapping; ``None`` = every event) and an optional condition."""

    __slots__ = ("name", "events", "condition")

    def __init__(
        self, name: str, events: frozenset[str] | None, condition: Predicate | None
    ) -> None:
        self.name = name
        self.events = events
        self.condition = condition

    def __repr__(self) -> str:
        return f"<Trigger {self.name!r}>"

    def matches(self, scope: Scope, event_key: str) -> bool:
        """``event_key`` is ``meta_event_name(event_name)``, computed once per event. A named
        trigger shared by several tags evaluates its conditions once per event."""
        if self.events is not None and event_key not in self.events:
            return False
        condition = self.condition
        if condition is None:
            return True
        matched = scope.matched
        if matched is None:
            matched = scope.matched = {}
        result = matched.get(self)
        if result is None:
            result = matched[self] = condition(scope)
        return result


def event_names(raw: object) -> frozenset[str] | None:
    """The ``events`` key: ``"*"`` (or absent) → ``None``, else the mapped names."""
    if raw is None or raw == "*":
        return None
    assert isinstance(raw, list)
    return frozenset(meta_event_name(str(name)) for name in raw)


def compile_trigger(
    name: str, raw: Mapping[str, Any], ctx: CompileContext, *, path: str
) -> Trigger:
    """A :class:`Trigger` from ``{"events": ..., "conditions": ...}`` (both optional)."""
    condition = None
    if "conditions" in raw:
        condition = compile_conditions(raw["conditions"], ctx, path=f"{path}.conditions")
    return Trigger(name, event_names(raw.get("events")), condition)


def compile_conditions(raw: object, ctx: CompileContext, *, path: str) -> Predicate:
    """A predicate from a condition, an ``all``/``any`` group or a list (= ``all``)."""
    if isinstance(raw, list):
        return _all([compile_conditions(c, ctx, path=f"{path}[{i}]") for i, c in enumerate(raw)])
    assert isinstance(raw, Mapping)
    if "all" in raw:
        items = raw["all"]
        return _all([compile_conditions(c, ctx, path=f"{path}.all[{i}]") for i, c in enumerate(items)])
    if "any" in raw:
        items = raw["any"]
        return _any([compile_conditions(c, ctx, path=f"{path}.any[{i}]") for i, c in enumerate(items)])
    return compile_condition(raw, ctx, path=path)


def _all(predicates: Sequence[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    items = tuple(predicates)

    def check(scope: Scope) -> bool:
        for predicate in items:
            if not predicate(scope):
                return False
        return True

    return check


def _any(predicates: Sequence[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    items = tuple(predicates)

    def check(scope: Scope) -> bool:
        for predicate in items:
            if predicate(scope):
                return True
        return False

    return check


def _never(scope: Scope) -> bool:
    return False


def compile_condition(raw: Mapping[str, Any], ctx: CompileContext, *, path: str) -> Predicate:
    """One condition; on a problem (recorded) a predicate that never matches."""
    sources = [key for key in SOURCES if key in raw]
    if len(sources) != 1:
        ctx.problem(
            path,
            "a condition reads exactly one of " + ", ".join(SOURCES)
            + (f" (got {', '.join(sources)})" if sources else ""),
            'e.g. {"event": "custom_data.value", "op": "gt", "value": 100}',
        )
        return _never
    source = sources[0]
    getter = _getter(source, raw[source], ctx, path=f"{path}.{source}")
    op = raw["op"]
    test = _test(op, raw, ctx, path=path)
    if getter is None or test is None:
        return _never
    return _bind(getter, test)


def _bind(getter: Callable[[Scope], Any], test: Test) -> Predicate:
    def check(scope: Scope) -> bool:
        return test(getter(scope))

    return check


def _getter(
    source: str, key: Any, ctx: CompileContext, *, path: str
) -> Callable[[Scope], Any] | None:
    if source == "event":
        try:
            data_path = parse_path(key)
        except ValueError as exc:
            ctx.problem(path, str(exc), 'write a dotted path such as "custom_data.value"')
            return None
        return lambda scope: lookup(scope.data, data_path)
    if source == "cookie":
        return lambda scope: scope.cookies.get(key)
    if source == "header":
        header = key.lower()
        return lambda scope: scope.headers.get(header)
    if source == "query":
        return lambda scope: scope.query_params().get(key)
    if source == "consent":
        kind: ConsentType = key
        return lambda scope: "granted" if scope.consent.granted(kind) else "denied"
    variable = ctx.variable(key, path=path)
    if variable is None:
        return None
    if variable.secret:
        ctx.problem(
            path,
            f"variable {key!r} is a secret: a condition on it would put the secret in the file",
            "secrets may be used in http tag url, headers and body only",
        )
        return None
    return lambda scope: scope.variable(variable)


def _test(op: str, raw: Mapping[str, Any], ctx: CompileContext, *, path: str) -> Test | None:
    negate = op.startswith("not_")
    base = op[4:] if negate else op
    ignore_case = bool(raw.get("ignore_case", False))
    has_value = "value" in raw
    expected = raw.get("value")
    where = f"{path}.value"

    if base == "exists":
        if has_value:
            ctx.problem(where, f"{op!r} takes no value", "remove the value key")
            return None
        return _negated(_exists, negate)
    if not has_value:
        ctx.problem(path, f"{op!r} needs a value", _VALUE_HINTS.get(base, ""))
        return None
    positive: Test | None
    if base in NUMERIC_OPERATORS:
        if isinstance(expected, bool) or not isinstance(expected, int | float):
            ctx.problem(where, f"{op!r} compares numbers: expected a number", "e.g. 100 or 9.5")
            return None
        positive = _numeric(base, float(expected))
    elif base == "in":
        if not isinstance(expected, list) or not expected or not all(
            _is_scalar(v) for v in expected
        ):
            ctx.problem(where, f"{op!r} needs a non-empty array of strings or numbers",
                        _VALUE_HINTS["in"])
            return None
        texts = frozenset(_fold(as_text(v) or "", ignore_case) for v in expected)
        positive = _each(lambda a: _fold(as_text(a), ignore_case) in texts)
    elif base == "regex":
        if not isinstance(expected, str):
            ctx.problem(where, "'regex' needs a pattern string", _VALUE_HINTS["regex"])
            return None
        pattern = compile_regex(expected, ctx, path=where, ignore_case=ignore_case)
        if pattern is None:
            return None
        positive = _each(lambda a: _search(pattern, a))
    elif base == "equals":
        if not isinstance(expected, str | int | float | bool):
            ctx.problem(where, f"{op!r} compares with a string, number or boolean")
            return None
        positive = _each(_equals(expected, ignore_case))
    else:
        if not isinstance(expected, str):
            ctx.problem(where, f"{op!r} needs a string", _VALUE_HINTS.get(base, ""))
            return None
        positive = _each(_text_test(base, _fold(expected, ignore_case), ignore_case))
    return _negated(positive, negate)


_VALUE_HINTS = {
    "equals": '"value": "Purchase"',
    "contains": '"value": "bot"',
    "starts_with": '"value": "https://"',
    "ends_with": '"value": ".pdf"',
    "regex": '"value": "^/checkout/"',
    "in": '"value": ["DE", "AT", "CH"]',
    **{op: '"value": 100' for op in NUMERIC_OPERATORS},
}


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def _fold(text: str | None, ignore_case: bool) -> str | None:
    return text.casefold() if ignore_case and text is not None else text


def _exists(actual: Any) -> bool:
    return actual is not None and actual != "" and actual != []


def _negated(test: Test, negate: bool) -> Test:
    if not negate:
        return test
    return lambda actual: not test(actual)


def _each(test: Test) -> Test:
    """Missing never matches; on an array, any element may match."""

    def check(actual: Any) -> bool:
        if actual is None:
            return False
        if isinstance(actual, list):
            return any(test(item) for item in actual if item is not None)
        return test(actual)

    return check


def _search(pattern: ContainerPattern, actual: Any) -> bool:
    text = as_text(actual)
    return text is not None and pattern.search(text) is not None


def _equals(expected: str | int | float | bool, ignore_case: bool) -> Test:
    if isinstance(expected, bool):
        wanted = "true" if expected else "false"
        return lambda actual: as_text(actual) == wanted
    if isinstance(expected, int | float):
        number = float(expected)
        return lambda actual: as_number(actual) == number
    folded = _fold(expected, ignore_case)
    return lambda actual: _fold(as_text(actual), ignore_case) == folded


def _text_test(base: str, expected: str | None, ignore_case: bool) -> Test:
    assert expected is not None

    def text(actual: Any) -> str:
        return _fold(as_text(actual), ignore_case) or ""

    if base == "contains":
        return lambda actual: expected in text(actual)
    if base == "starts_with":
        return lambda actual: text(actual).startswith(expected)
    return lambda actual: text(actual).endswith(expected)


def _numeric(base: str, expected: float) -> Test:
    def number(actual: Any) -> float | None:
        return as_number(actual)

    if base == "gt":
        return _each(lambda a: (n := number(a)) is not None and n > expected)
    if base == "gte":
        return _each(lambda a: (n := number(a)) is not None and n >= expected)
    if base == "lt":
        return _each(lambda a: (n := number(a)) is not None and n < expected)
    return _each(lambda a: (n := number(a)) is not None and n <= expected)
