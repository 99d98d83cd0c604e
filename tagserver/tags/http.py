"""The ``http`` tag type: a generic webhook (CRM, alerting, a data warehouse endpoint).

One request per firing event: ``method`` (default POST), ``url``, ``headers`` and an optional JSON
``body``, all templates over variables and event data (``{{crm_token}}``, ``{{event.value}}``).
Values inserted into the URL are percent-encoded, except a reference that starts it (a base URL
from a variable, e.g. a secret webhook URL); header values lose CR, LF and NUL and are sent as
UTF-8. The request is built here and sent by :class:`tagserver.delivery.channels.HttpChannel`
(no batching; 2xx ok, 429/5xx/network retried, other 4xx permanent).
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
        if isinstance(url, Const) and not str(url.value).startswith(("https://", "http://")):
            ctx.problem(f"{path}.url", "expected an absolute http(s) URL",
                        'e.g. "https://hooks.example.com/shop" or "{{webhook_url}}"')
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
