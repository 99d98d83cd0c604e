"""Transformations: change the event data one tag sees, as server-side GTM's transformations do.

``allow`` keeps only the listed parameters (plus ``event_name``, ``event_id``, ``event_time``),
``exclude`` removes parameters, ``augment`` sets parameters to values or templates. A
transformation applies to the tags it names (``tags``, ``tag_types``; neither means every tag) and,
with ``conditions``, only to events that match them. For one tag they run allow first, then
augment, then exclude (sGTM's order of evaluation), each kind in file order. Triggers always see
the untransformed event data. Parameters are event data paths (``user_data.em``); an alias and its
source go together (excluding ``value`` also removes ``custom_data.value``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from tagserver.container.event_data import ALIASES, PROTECTED_KEYS, lookup, parse_path
from tagserver.container.scope import Scope
from tagserver.container.triggers import Predicate, compile_conditions
from tagserver.container.values import CompileContext, Value, compile_value

TransformationKind = Literal["allow", "augment", "exclude"]
KIND_ORDER: dict[str, int] = {"allow": 0, "augment": 1, "exclude": 2}
KeyPath = tuple[str, ...]
#: Aliases whose value is mirrored when set by ``augment`` (``items`` differs in shape).
_SCALAR_ALIASES = ("value", "currency", "transaction_id")


class Transformation:
    """One compiled transformation (see the module docstring)."""

    __slots__ = ("name", "kind", "tags", "tag_types", "condition", "paths", "values")

    def __init__(
        self,
        name: str,
        kind: TransformationKind,
        *,
        tags: frozenset[str] | None,
        tag_types: frozenset[str] | None,
        condition: Predicate | None,
        paths: tuple[KeyPath, ...] = (),
        values: tuple[tuple[KeyPath, Value], ...] = (),
    ) -> None:
        self.name = name
        self.kind = kind
        self.tags = tags
        self.tag_types = tag_types
        self.condition = condition
        self.paths = paths
        self.values = values

    def affects(self, tag_name: str, tag_type: str) -> bool:
        if self.tags is None and self.tag_types is None:
            return True
        return (self.tags is not None and tag_name in self.tags) or (
            self.tag_types is not None and tag_type in self.tag_types
        )

    def apply(self, data: Mapping[str, Any], base: Scope) -> dict[str, Any]:
        """The transformed event data (a new dict; ``data`` is not changed). Conditions and
        augment values are evaluated on ``base``, the untransformed scope."""
        if self.kind == "allow":
            out: dict[str, Any] = {k: data[k] for k in PROTECTED_KEYS if k in data}
            for path in self.paths:
                value = lookup(data, path)
                if value is not None:
                    _set(out, path, value)
            return out
        out = dict(data)
        if self.kind == "exclude":
            for path in self.paths:
                _delete(out, path)
            return out
        for path, compiled in self.values:
            value = compiled.resolve(base)
            if value is None:
                _delete(out, path)
            else:
                _set(out, path, value)
        return out


def apply_transformations(
    transformations: tuple[Transformation, ...], base: Scope
) -> Scope:
    """The scope one tag sees: ``base`` itself when no transformation applies to this event."""
    data: Mapping[str, Any] = base.data
    changed = False
    for transformation in transformations:
        if transformation.condition is not None and not transformation.condition(base):
            continue
        data = transformation.apply(data, base)
        changed = True
    return base.derive(data) if changed else base


def _set(data: dict[str, Any], path: KeyPath, value: Any) -> None:
    node = data
    for key in path[:-1]:
        child = node.get(key)
        child = dict(child) if isinstance(child, Mapping) else {}
        node[key] = child
        node = child
    node[path[-1]] = value


def _delete(data: dict[str, Any], path: KeyPath) -> None:
    node = data
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, Mapping):
            return
        child = dict(child)
        node[key] = child
        node = child
    node.pop(path[-1], None)


def _with_aliases(path: KeyPath) -> list[KeyPath]:
    """``path`` plus the alias paths that mirror it."""
    found = [path]
    for alias, source in ALIASES.items():
        if path == (alias,):
            found.append(source)
        elif path == source or path == source[:1]:
            found.append((alias,))
    return found


def _key_path(text: str, ctx: CompileContext, *, path: str) -> KeyPath | None:
    try:
        parsed = parse_path(text)
    except ValueError as exc:
        ctx.problem(path, str(exc), 'write a dotted path such as "user_data.em"')
        return None
    if not parsed or any(isinstance(part, int) for part in parsed):
        ctx.problem(
            path,
            f"{text!r} is not a parameter path",
            "transformations address object keys (user_data.em), not array positions",
        )
        return None
    return tuple(str(part) for part in parsed)


def compile_transformation(
    raw: Mapping[str, Any], ctx: CompileContext, *, path: str
) -> Transformation:
    """A :class:`Transformation` from one schema-valid definition (problems are recorded)."""
    kind: TransformationKind = raw["type"]
    tags = raw.get("tags", "*")
    types = raw.get("tag_types")
    condition = None
    if "conditions" in raw:
        condition = compile_conditions(raw["conditions"], ctx, path=f"{path}.conditions")
    paths: list[KeyPath] = []
    values: list[tuple[KeyPath, Value]] = []
    params = raw["parameters"]
    if kind == "augment":
        for key, value in params.items():
            where = f"{path}.parameters.{key}"
            key_path = _key_path(key, ctx, path=where)
            if key_path is None:
                continue
            compiled = compile_value(value, ctx, path=where)
            if compiled.secret:
                ctx.problem(where, "a secret may not be copied into event data",
                            "secrets may be used in http tag url, headers and body only")
                continue
            values.append((key_path, compiled))
            if key_path[0] in _SCALAR_ALIASES and len(key_path) == 1:
                values.append((ALIASES[key_path[0]], compiled))
            for alias in _SCALAR_ALIASES:
                if key_path == ALIASES[alias]:
                    values.append(((alias,), compiled))
    else:
        for i, text in enumerate(params):
            key_path = _key_path(text, ctx, path=f"{path}.parameters[{i}]")
            if key_path is not None:
                paths.extend(p for p in _with_aliases(key_path) if p not in paths)
    return Transformation(
        raw["name"],
        kind,
        tags=None if tags == "*" else frozenset(tags),
        tag_types=frozenset(types) if types is not None else None,
        condition=condition,
        paths=tuple(paths),
        values=tuple(values),
    )
