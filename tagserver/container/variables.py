"""Named variables: event data paths, cookies, headers, query parameters, constants, secrets,
lookup tables, regex extracts and URL parts — each compiled once when the container loads.

Every kind but ``constant`` and ``secret`` takes a ``default`` (a value or a template) used when the
variable resolves to nothing (``None`` or the empty string). Kinds follow server-side GTM's built-in
variable types ("Event Data", "Cookie Value", "Request Header", "Query Parameter", "Constant",
"Lookup Table", "RegEx Table"/extract, "URL").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from tagserver.container.event_data import Path, lookup, parse_path
from tagserver.container.regex import RE2_HINT, ContainerPattern
from tagserver.container.scope import query_params
from tagserver.container.values import CompileContext, Const, Value, as_text, compile_value
from tagserver.secret import Secret

if TYPE_CHECKING:
    from tagserver.container.scope import Scope

VariableKind = Literal[
    "event_data", "cookie", "header", "query", "constant", "secret", "lookup", "regex", "url"
]
UrlPart = Literal["protocol", "host", "port", "path", "query", "fragment", "origin"]
URL_PARTS: tuple[str, ...] = ("protocol", "host", "port", "path", "query", "fragment", "origin")
PAGE_LOCATION = "{{event.page_location}}"


class Variable:
    """A compiled variable; :meth:`compute` never raises for any event data. ``uses_data`` is
    false when the value depends on the request context only (cookies, headers, constants):
    then one value serves every transformed view of the event. ``secret`` is true when any value
    it is composed of (input, URL, table entry, default) depends on a secret: the leak checks
    (Meta parameters, conditions, augment) rely on it. ``visitor`` is true when the visitor
    controls any of them (event data, cookies, headers, query parameters): such a value may not
    choose the host of a webhook URL."""

    __slots__ = ("name", "kind", "secret", "default", "uses_data", "visitor")

    def __init__(
        self,
        name: str,
        kind: VariableKind,
        *,
        default: Value | None = None,
        secret: bool = False,
        uses_data: bool = False,
        visitor: bool = False,
    ) -> None:
        self.name = name
        self.kind = kind
        self.default = default
        self.secret = secret or (default is not None and default.secret)
        self.uses_data = uses_data or (default is not None and default.uses_data)
        self.visitor = visitor or self.uses_data or (default is not None and default.visitor)

    def compute(self, scope: Scope) -> Any:
        value = self.get(scope)
        if (value is None or value == "") and self.default is not None:
            return self.default.resolve(scope)
        return value

    def get(self, scope: Scope) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class EventDataVariable(Variable):
    __slots__ = ("path",)

    def __init__(self, name: str, path: Path, *, default: Value | None) -> None:
        super().__init__(name, "event_data", default=default, uses_data=True)
        self.path = path

    def get(self, scope: Scope) -> Any:
        return lookup(scope.data, self.path)


class CookieVariable(Variable):
    __slots__ = ("cookie",)

    def __init__(self, name: str, cookie: str, *, default: Value | None) -> None:
        super().__init__(name, "cookie", default=default, visitor=True)
        self.cookie = cookie

    def get(self, scope: Scope) -> Any:
        return scope.cookies.get(self.cookie)


class HeaderVariable(Variable):
    __slots__ = ("header",)

    def __init__(self, name: str, header: str, *, default: Value | None) -> None:
        super().__init__(name, "header", default=default, visitor=True)
        self.header = header.lower()

    def get(self, scope: Scope) -> Any:
        return scope.headers.get(self.header)


class QueryVariable(Variable):
    """A query parameter of ``page_location`` (or of the URL ``url`` resolves to)."""

    __slots__ = ("param", "url")

    def __init__(self, name: str, param: str, url: Value | None, *, default: Value | None) -> None:
        super().__init__(name, "query", default=default, secret=bool(url and url.secret),
                         uses_data=url is None or url.uses_data,
                         visitor=url is None or url.visitor)
        self.param = param
        self.url = url

    def get(self, scope: Scope) -> Any:
        if self.url is None:
            return scope.query_params().get(self.param)
        return query_params(self.url.resolve(scope)).get(self.param)


class ConstantVariable(Variable):
    __slots__ = ("value",)

    def __init__(self, name: str, value: Any) -> None:
        super().__init__(name, "constant")
        self.value = value

    def get(self, scope: Scope) -> Any:
        return self.value


class SecretVariable(Variable):
    """A secret from the environment; its value is masked wherever tagserver prints it."""

    __slots__ = ("value", "env")

    def __init__(self, name: str, value: Secret, env: str) -> None:
        super().__init__(name, "secret", secret=True)
        self.value = value
        self.env = env

    def get(self, scope: Scope) -> Any:
        return self.value.reveal()


class LookupVariable(Variable):
    """``table[text of input]``; keys compared case-insensitively with ``ignore_case``."""

    __slots__ = ("input", "table", "ignore_case")

    def __init__(
        self,
        name: str,
        input_value: Value,
        table: Mapping[str, Value],
        *,
        ignore_case: bool,
        default: Value | None,
    ) -> None:
        secret = input_value.secret or any(v.secret for v in table.values())
        uses_data = input_value.uses_data or any(v.uses_data for v in table.values())
        visitor = input_value.visitor or any(v.visitor for v in table.values())
        super().__init__(name, "lookup", default=default, secret=secret, uses_data=uses_data,
                         visitor=visitor)
        self.input = input_value
        self.ignore_case = ignore_case
        self.table = {k.casefold(): v for k, v in table.items()} if ignore_case else dict(table)

    def get(self, scope: Scope) -> Any:
        key = as_text(self.input.resolve(scope))
        if key is None:
            return None
        found = self.table.get(key.casefold() if self.ignore_case else key)
        return found.resolve(scope) if found is not None else None


class RegexVariable(Variable):
    """The ``group`` of the first match of ``pattern`` in the text of ``input``."""

    __slots__ = ("input", "pattern", "group")

    def __init__(
        self,
        name: str,
        input_value: Value,
        pattern: ContainerPattern,
        group: int | str,
        *,
        default: Value | None,
    ) -> None:
        super().__init__(name, "regex", default=default, secret=input_value.secret,
                         uses_data=input_value.uses_data, visitor=input_value.visitor)
        self.input = input_value
        self.pattern = pattern
        self.group = group

    def get(self, scope: Scope) -> Any:
        text = as_text(self.input.resolve(scope))
        if text is None:
            return None
        match = self.pattern.search(text)
        return match.group(self.group) if match is not None else None


class UrlVariable(Variable):
    """One part of a URL: ``protocol`` (``https``), ``host`` (lower case, no port), ``port``,
    ``path``, ``query`` (without ``?``), ``fragment``, ``origin`` (``https://host:port``)."""

    __slots__ = ("input", "part")

    def __init__(
        self, name: str, input_value: Value, part: UrlPart, *, default: Value | None
    ) -> None:
        super().__init__(name, "url", default=default, secret=input_value.secret,
                         uses_data=input_value.uses_data, visitor=input_value.visitor)
        self.input = input_value
        self.part = part

    def get(self, scope: Scope) -> Any:
        text = as_text(self.input.resolve(scope))
        if not text:
            return None
        try:
            parts = urlsplit(text)
            if self.part == "protocol":
                return parts.scheme or None
            if self.part == "host":
                return parts.hostname
            if self.part == "port":
                return str(parts.port) if parts.port is not None else None
            if self.part == "path":
                return parts.path or None
            if self.part == "query":
                return parts.query or None
            if self.part == "fragment":
                return parts.fragment or None
            return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None
        except ValueError:
            return None


def compile_variable(
    name: str,
    raw: Mapping[str, Any],
    ctx: CompileContext,
    *,
    path: str,
    environ: Mapping[str, str],
) -> Variable | None:
    """A :class:`Variable` from one schema-valid definition; ``None`` after recording a problem."""
    kind = raw["type"]
    default = compile_value(raw["default"], ctx, path=f"{path}.default") if "default" in raw else None

    def value_of(key: str, fallback: str | None = None) -> Value:
        if key in raw:
            return compile_value(raw[key], ctx, path=f"{path}.{key}")
        return compile_value(fallback, ctx, path=path) if fallback is not None else Const(None)

    if kind == "event_data":
        try:
            return EventDataVariable(name, parse_path(raw["path"]), default=default)
        except ValueError as exc:
            ctx.problem(f"{path}.path", str(exc), 'write a dotted path such as "custom_data.value"')
            return None
    if kind == "cookie":
        return CookieVariable(name, raw["name"], default=default)
    if kind == "header":
        return HeaderVariable(name, raw["name"], default=default)
    if kind == "query":
        url = value_of("url") if "url" in raw else None
        return QueryVariable(name, raw["name"], url, default=default)
    if kind == "constant":
        return ConstantVariable(name, raw["value"])
    if kind == "secret":
        env = raw["env"]
        secret = environ.get(env, "").strip()
        if not secret:
            ctx.problem(
                f"{path}.env",
                f"environment variable {env} is not set",
                f"export {env}=... before starting tagserver",
            )
            return None
        return SecretVariable(name, Secret(secret), env)
    if kind == "lookup":
        table = {
            str(key): compile_value(value, ctx, path=f"{path}.table.{key}")
            for key, value in raw["table"].items()
        }
        return LookupVariable(
            name,
            value_of("input"),
            table,
            ignore_case=bool(raw.get("ignore_case", False)),
            default=default,
        )
    if kind == "regex":
        pattern = compile_regex(
            raw["pattern"], ctx, path=f"{path}.pattern", ignore_case=raw.get("ignore_case", False)
        )
        if pattern is None:
            return None
        group: int | str = raw.get("group", 1 if pattern.groups else 0)
        if isinstance(group, int) and group > pattern.groups:
            ctx.problem(
                f"{path}.group",
                f"the pattern has {pattern.groups} group(s), not {group}",
                "0 is the whole match",
            )
            return None
        if isinstance(group, str) and group not in pattern.groupindex:
            ctx.problem(f"{path}.group", f"the pattern has no group named {group!r}")
            return None
        return RegexVariable(name, value_of("input"), pattern, group, default=default)
    if kind == "url":
        return UrlVariable(name, value_of("input", PAGE_LOCATION), raw["part"], default=default)
    ctx.problem(f"{path}.type", f"unknown variable type {kind!r}")  # pragma: no cover - schema
    return None


def compile_regex(
    pattern: str, ctx: CompileContext, *, path: str, ignore_case: bool = False
) -> ContainerPattern | None:
    """An RE2 pattern (:mod:`tagserver.container.regex`), or ``None`` after recording why it
    does not compile."""
    try:
        return ContainerPattern(pattern, ignore_case=ignore_case)
    except ValueError as exc:
        ctx.problem(path, f"the regular expression does not compile: {exc}", RE2_HINT)
        return None
