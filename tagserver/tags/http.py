"""The ``http`` tag type: a generic webhook (CRM, alerting, a data warehouse endpoint).

One request per firing event: ``method`` (default POST), ``url``, ``headers`` and an optional JSON
``body``, all templates over variables and event data (``{{crm_token}}``, ``{{event.value}}``).
Values inserted into the URL are percent-encoded, except a reference that starts it (a base URL
from a variable, e.g. a secret webhook URL). The scheme and host must come from the file, a
``constant`` or a ``secret`` variable, never from anything the visitor controls (event data,
cookies, headers, query parameters): :func:`check_url` refuses such a URL when the container
loads, so that no visitor can choose where the server connects (SSRF). Header values lose CR,
LF and NUL and are sent as UTF-8. The request is built here and sent by
:class:`tagserver.delivery.channels.HttpChannel` (no batching; 2xx ok, 429/5xx/network retried,
other 4xx permanent).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict
from urllib.parse import quote, urlsplit

from tagserver.container.values import (
    CompileContext,
    Const,
    TemplateValue,
    Value,
    as_text,
    compile_value,
)
from tagserver.tags import Outbound, TagResult

if TYPE_CHECKING:
    from tagserver.consent import ConsentType
    from tagserver.container.scope import ClientName, Scope

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: Headers the HTTP client owns; a config may not set them.
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
MAX_URL_LENGTH = 8192
_CONTROL_RE = re.compile(r"[\r\n\x00]")


@dataclass(frozen=True)
class HttpDestination:
    """The batch key of one http tag's requests (each request is sent alone)."""

    tag: str


class HttpRequestPayload(TypedDict):
    """One built request; ``body`` is a JSON value or ``None`` (no body)."""

    method: str
    url: str
    headers: dict[str, str]
    body: Any
    event_id: str | None


@dataclass(frozen=True)
class HttpTag:
    """A configured webhook; ``url`` parts and header values are compiled templates."""

    name: str
    url: Value
    method: str = "POST"
    headers: tuple[tuple[str, Value], ...] = ()
    body: Value | None = None

    default_consent: ClassVar[tuple[ConsentType, ...]] = ()
    clients: ClassVar[tuple[ClientName, ...] | None] = None

    @staticmethod
    def from_config(
        raw: Mapping[str, Any], *, environ: Mapping[str, str], ctx: CompileContext, path: str
    ) -> HttpTag:
        """A tag from one schema-valid config object at JSON ``path`` (problems are recorded)."""
        method = raw.get("method", "POST")
        url = compile_value(raw["url"], ctx, path=f"{path}.url")
        check_url(url, ctx, path=f"{path}.url")
        headers = []
        for header, template in raw.get("headers", {}).items():
            where = f"{path}.headers.{header}"
            if header.lower() in RESERVED_HEADERS:
                ctx.problem(where, f"the {header} header is set by the HTTP client",
                            "remove it")
                continue
            headers.append((header, compile_value(template, ctx, path=where)))
        body = None
        if "body" in raw:
            if method in ("GET", "DELETE"):
                ctx.problem(f"{path}.body", f"a {method} request has no body",
                            'use "method": "POST", or put the values in the URL')
            body = compile_value(raw["body"], ctx, path=f"{path}.body")
        return HttpTag(
            name=raw["name"], url=url, method=method, headers=tuple(headers), body=body
        )

    @property
    def destination(self) -> HttpDestination:
        return HttpDestination(self.name)

    def build(self, scope: Scope, *, default_country: str | None, now: float) -> TagResult:
        """One outbound request; held back as ``invalid_event`` when the URL does not resolve to
        an absolute http(s) URL."""
        result = TagResult()
        url = render_url(self.url, scope)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > MAX_URL_LENGTH:
            result.drops.append(("invalid_event", "url: not an absolute http(s) URL"))
            return result
        headers: dict[str, str] = {}
        for header, template in self.headers:
            text = _CONTROL_RE.sub("", as_text(template.resolve(scope)) or "")
            if text:
                headers[header] = text
        body = self.body.resolve(scope) if self.body is not None else None
        if body is not None and not any(h.lower() == "content-type" for h in headers):
            headers["Content-Type"] = "application/json"
        payload = HttpRequestPayload(
            method=self.method,
            url=url,
            headers=headers,
            body=body,
            event_id=as_text(scope.data.get("event_id")),
        )
        result.outbound.append(Outbound(self.destination, payload))
        return result


_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_URL_EXAMPLE = 'e.g. "https://hooks.example.com/shop" or "{{webhook_url}}"'
_HOST_HINT = (
    "write the scheme and host in the file or take them from a constant or secret variable, "
    'e.g. "https://crm.example.com/o/{{event.transaction_id}}" or "{{webhook_url}}?id={{event.event_id}}"'
)


def _is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def check_url(url: Value, ctx: CompileContext, *, path: str) -> None:
    """Record a problem unless the scheme and host of the URL template are out of the visitor's
    reach: written in the file (``https://host/...{{event.x}}``), or a leading reference that
    reads no event data, cookie, header or query parameter (``{{webhook_url}}/...``, a ``secret``
    or ``constant`` variable, whose value must then be an http(s) URL). A written scheme must be
    ``http`` or ``https``."""
    if isinstance(url, Const):
        if not _is_http_url(as_text(url.value) or ""):
            ctx.problem(path, "expected an absolute http(s) URL", _URL_EXAMPLE)
        return
    parts: tuple[str | Value, ...] = url.parts if isinstance(url, TemplateValue) else (url,)
    first = parts[0] if parts else ""
    if isinstance(first, Value):
        if first.visitor:
            ctx.problem(path, "the URL starts with a value the visitor controls (event data, a "
                        "cookie, header or query parameter): a visitor could choose the host "
                        "the server connects to", _HOST_HINT)
            return
        after = parts[1] if len(parts) > 1 else None
        if after is not None and not (isinstance(after, str) and after[:1] in ("/", "?", "#")):
            ctx.problem(path, "a reference that starts the URL must be followed by '/', '?' or "
                        "'#' (or nothing): text right after it could change the host",
                        _HOST_HINT)
        _check_constant_base(first, ctx, path=path)
        return
    scheme = _SCHEME_RE.match(first)
    if scheme is None or scheme.group(1).lower() not in ("http", "https"):
        found = f" (the scheme is {scheme.group(1)!r})" if scheme is not None else ""
        ctx.problem(path, f"expected an absolute http(s) URL{found}", _URL_EXAMPLE)
        return
    if not first[scheme.end():].startswith("//"):
        ctx.problem(path, "expected an absolute http(s) URL", _URL_EXAMPLE)
        return
    authority_done = any(c in first[scheme.end() + 2:] for c in "/?#")
    for part in parts[1:]:
        if authority_done:
            return
        if isinstance(part, str):
            authority_done = any(c in part for c in "/?#")
        elif part.visitor:
            ctx.problem(path, "the host of the URL would come from a value the visitor controls "
                        "(event data, a cookie, header or query parameter)", _HOST_HINT)
            return


def _check_constant_base(value: Value, ctx: CompileContext, *, path: str) -> None:
    """A leading ``constant`` or ``secret`` variable must hold an http(s) URL (a secret's value is
    never shown)."""
    from tagserver.container.values import VariableValue
    from tagserver.container.variables import ConstantVariable, SecretVariable

    if not isinstance(value, VariableValue):
        return
    variable = value.variable
    if isinstance(variable, ConstantVariable):
        text = as_text(variable.value) or ""
    elif isinstance(variable, SecretVariable):
        text = variable.value.reveal()
    else:
        return
    if not _is_http_url(text):
        ctx.problem(path, f"the {variable.kind} variable {variable.name!r} that starts the URL "
                    "is not an absolute http(s) URL", _URL_EXAMPLE)


def render_url(url: Value, scope: Scope) -> str:
    """The URL text: references percent-encoded except one that starts the URL."""
    if not isinstance(url, TemplateValue):
        return as_text(url.resolve(scope)) or ""
    out: list[str] = []
    for index, part in enumerate(url.parts):
        if isinstance(part, str):
            out.append(part)
            continue
        text = as_text(part.resolve(scope)) or ""
        out.append(text if index == 0 else quote(text, safe=""))
    return "".join(out)
