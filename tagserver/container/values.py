"""Values of the container language: literals, ``{{references}}`` and templates, compiled once.

A string that is exactly one reference (``"{{order_id}}"``) resolves to the referenced value with
its JSON type; a string mixing text and references (``"Bearer {{crm_token}}"``) resolves to text.
References are a variable name (``{{utm_source}}``) or an event data path (``{{event.value}}``,
``{{event.user_data.em}}``; ``{{event}}`` is the whole event data). Objects and arrays are compiled
member by member; an object member whose value resolves to nothing (``None``) is left out.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from tagserver.container.event_data import Path, lookup, parse_path

if TYPE_CHECKING:
    from tagserver.container.scope import Scope
    from tagserver.container.variables import Variable

REFERENCE_RE = re.compile(r"\{\{(.*?)\}\}")
VARIABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
EVENT_PREFIX = "event"


class CompileContext(Protocol):
    """What compiling needs from the loader: a place for problems and the named variables."""

    def problem(self, path: str, message: str, hint: str = "") -> None:
        """Record one problem at the JSON ``path`` of the file being compiled."""
        ...

    def variable(self, name: str, *, path: str) -> Variable | None:
        """The compiled variable ``name``, or ``None`` (a problem is recorded) when unknown."""
        ...


class Value:
    """A compiled value; ``secret`` is true when it depends on a secret variable, ``uses_data``
    when it reads event data (else it depends on the request context only), ``visitor`` when the
    visitor controls it (event data, cookies, headers, query parameters)."""

    __slots__ = ("secret", "uses_data", "visitor")

    def __init__(
        self, *, secret: bool = False, uses_data: bool = False, visitor: bool = False
    ) -> None:
        self.secret = secret
        self.uses_data = uses_data
        self.visitor = visitor or uses_data

    def resolve(self, scope: Scope) -> Any:
        raise NotImplementedError


class Const(Value):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value

    def resolve(self, scope: Scope) -> Any:
        return self.value


class EventValue(Value):
    """An event data path (``{{event.custom_data.value}}``)."""

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        super().__init__(uses_data=True)
        self.path = path

    def resolve(self, scope: Scope) -> Any:
        return lookup(scope.data, self.path) if self.path else scope.data


class VariableValue(Value):
    """A named variable (``{{utm_source}}``)."""

    __slots__ = ("variable",)

    def __init__(self, variable: Variable) -> None:
        super().__init__(secret=variable.secret, uses_data=variable.uses_data,
                         visitor=variable.visitor)
        self.variable = variable

    def resolve(self, scope: Scope) -> Any:
        return scope.variable(self.variable)


class TemplateValue(Value):
    """Text with references; a reference that resolves to nothing adds nothing."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[str | Value, ...]) -> None:
        values = [p for p in parts if isinstance(p, Value)]
        super().__init__(secret=any(v.secret for v in values),
                         uses_data=any(v.uses_data for v in values),
                         visitor=any(v.visitor for v in values))
        self.parts = parts

    def resolve(self, scope: Scope) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                out.append(as_text(part.resolve(scope)) or "")
        return "".join(out)


class ObjectValue(Value):
    __slots__ = ("items",)

    def __init__(self, items: tuple[tuple[str, Value], ...]) -> None:
        super().__init__(secret=any(v.secret for _, v in items),
                         uses_data=any(v.uses_data for _, v in items),
                         visitor=any(v.visitor for _, v in items))
        self.items = items

    def resolve(self, scope: Scope) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.items:
            resolved = value.resolve(scope)
            if resolved is not None:
                out[key] = resolved
        return out


class ListValue(Value):
    __slots__ = ("items",)

    def __init__(self, items: tuple[Value, ...]) -> None:
        super().__init__(secret=any(v.secret for v in items),
                         uses_data=any(v.uses_data for v in items),
                         visitor=any(v.visitor for v in items))
        self.items = items

    def resolve(self, scope: Scope) -> list[Any]:
        return [value.resolve(scope) for value in self.items]


def as_text(value: object) -> str | None:
    """The text form of a resolved value: strings as they are, ``true``/``false``, numbers without
    a trailing ``.0`` (``29.0`` → ``"29"``), objects and arrays as compact JSON; ``None`` stays."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


_NUMBER = int | float  # made once: a union written in isinstance() is built per call


def as_number(value: object) -> float | None:
    """A finite number from a number or a numeric string (``" 29.90 "``); ``None`` otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, _NUMBER):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def compile_reference(text: str, ctx: CompileContext, *, path: str) -> Value | None:
    """One reference without its braces (``event.value``, ``utm_source``); ``None`` when invalid
    (a problem is recorded)."""
    name = text.strip()
    if name == EVENT_PREFIX or name.startswith(EVENT_PREFIX + "."):
        try:
            return EventValue(parse_path(name[len(EVENT_PREFIX) + 1 :]))
        except ValueError as exc:
            ctx.problem(path, f"bad event data path in {{{{{name}}}}}: {exc}")
            return None
    if not VARIABLE_NAME_RE.fullmatch(name):
        ctx.problem(
            path,
            f"{{{{{name}}}}} is not a reference",
            "write {{variable_name}} or {{event.path.in.event_data}}",
        )
        return None
    variable = ctx.variable(name, path=path)
    return VariableValue(variable) if variable is not None else None


def compile_value(raw: object, ctx: CompileContext, *, path: str) -> Value:
    """Compile a JSON value with ``{{references}}`` in its strings (see the module docstring).

    Invalid references are recorded as problems and resolve to nothing.
    """
    if isinstance(raw, str):
        return _compile_string(raw, ctx, path=path)
    if isinstance(raw, Mapping):
        items = tuple(
            (str(key), compile_value(value, ctx, path=f"{path}.{key}"))
            for key, value in raw.items()
        )
        if all(isinstance(v, Const) for _, v in items):
            return Const({k: v.value for k, v in items if isinstance(v, Const)})
        return ObjectValue(items)
    if isinstance(raw, list):
        values = tuple(compile_value(v, ctx, path=f"{path}[{i}]") for i, v in enumerate(raw))
        if all(isinstance(v, Const) for v in values):
            return Const([v.value for v in values if isinstance(v, Const)])
        return ListValue(values)
    return Const(raw)


def _compile_string(raw: str, ctx: CompileContext, *, path: str) -> Value:
    if "{{" not in raw:
        if "}}" in raw:
            ctx.problem(path, "'}}' without an opening '{{'", "references look like {{name}}")
        return Const(raw)
    matches = list(REFERENCE_RE.finditer(raw))
    rest = REFERENCE_RE.sub("", raw)
    if "{{" in rest or "}}" in rest:
        ctx.problem(path, "unbalanced '{{' or '}}' in a template", "references look like {{name}}")
    if len(matches) == 1 and matches[0].span() == (0, len(raw)):
        value = compile_reference(matches[0].group(1), ctx, path=path)
        return value if value is not None else Const(None)
    parts: list[str | Value] = []
    position = 0
    for match in matches:
        if match.start() > position:
            parts.append(raw[position : match.start()])
        value = compile_reference(match.group(1), ctx, path=path)
        if value is not None:
            parts.append(value)
        position = match.end()
    if position < len(raw):
        parts.append(raw[position:])
    return TemplateValue(tuple(parts))
