"""The ``ga4`` client: gtag.js hits on ``[<prefix>]/g/collect`` → :class:`GA4Hit` events.

Protocol (REFERENCE §2): GET with everything in the query, or POST with shared parameters in the
query and one event per body line (``text/plain``, split on CRLF or LF); a line's parameters
override the query's; an empty body is one event from the query alone. The bare flag
``richsstsse`` asks for a ``text/event-stream`` answer.

Errors: a request that cannot hold any event (no ``/g/collect`` path, a broken or oversized
query, too many lines, every line invalid) raises :class:`~tagserver.exceptions.HitRejected`
(400). One bad body line is rejected on its own and listed in :attr:`GA4Batch.rejected`; its
neighbours are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tagserver.consent import GRANTED, Consent
from tagserver.exceptions import HitRejected
from tagserver.ga4.consent import consent_from_ga4
from tagserver.ga4.event_data import build_event_data
from tagserver.ga4.query import Param, split_params

COLLECT_SUFFIX = "/g/collect"
#: Longest query string (characters) and body line; gtag keeps a GET hit under ~8 KB.
MAX_QUERY_LENGTH = 16 * 1024
MAX_LINE_LENGTH = 16 * 1024
#: Most events in one POST body (gtag batches a handful).
MAX_LINES = 100
MAX_EVENT_NAME_LENGTH = 100
#: Measurement ids as gtag sends them (``G-XXXXXXX``); also keeps log labels safe.
TID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_PREFIX_RE = re.compile(r"(/[A-Za-z0-9._~-]+)*\Z")


@dataclass(frozen=True)
class GA4Hit:
    """One event of a GA4 request.

    ``params`` are the merged, decoded parameters in order (query first, a line's value replacing
    the query's in place, new line parameters after); ``raw_query`` the query's raw pairs and
    ``raw_line`` the raw body line (``None`` for a query-only hit) — together the exact hit to
    forward. ``event_data`` is sGTM's common event data; ``problems`` what it left out.
    ``line`` is the 1-based body line, ``None`` for a query-only hit.
    """

    params: tuple[Param, ...]
    raw_query: tuple[str, ...]
    raw_line: str | None
    event_data: dict[str, Any]
    consent: Consent = GRANTED
    line: int | None = None
    problems: tuple[str, ...] = ()

    @property
    def event_name(self) -> str:
        return str(self.event_data["event_name"])

    @property
    def measurement_id(self) -> str:
        return str(self.event_data["x-ga-measurement_id"])

    def param(self, name: str) -> str | None:
        """The decoded value of ``name`` for this hit, or ``None``."""
        for param in self.params:
            if param.name == name:
                return param.value
        return None


@dataclass(frozen=True)
class LineRejected:
    """A body line that was left out: ``line`` is 1-based; ``error``/``errors`` as in
    :class:`HitRejected`."""

    line: int
    error: str
    errors: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class GA4Batch:
    """Everything one ``/g/collect`` request carried. ``prefix`` is the path before
    ``/g/collect`` (``""`` or ``/metrics``)."""

    prefix: str
    richsstsse: bool
    hits: tuple[GA4Hit, ...]
    rejected: tuple[LineRejected, ...] = field(default=())


def collect_prefix(path: str) -> str | None:
    """The prefix of a ``[<prefix>]/g/collect`` path (``/metrics/g/collect`` → ``/metrics``; one
    trailing slash, ``/g/collect/``, is the same endpoint), or ``None`` when ``path`` is not a
    GA4 collection path."""
    if path.endswith(COLLECT_SUFFIX + "/"):
        path = path[:-1]
    if not path.endswith(COLLECT_SUFFIX):
        return None
    prefix = path[: -len(COLLECT_SUFFIX)]
    return prefix if _PREFIX_RE.match(prefix) else None


def split_body_lines(body: bytes) -> list[tuple[int, bytes]]:
    """Non-blank body lines as ``(1-based line number, bytes)``, split on LF with a trailing CR
    removed (CRLF and LF bodies alike)."""
    lines = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        line = line.removesuffix(b"\r")
        if line.strip(b" \t"):
            lines.append((number, line))
    return lines


def parse_ga4_request(
    *,
    path: str,
    query: bytes | str,
    body: bytes = b"",
    ip_override: str | None = None,
    user_agent: str | None = None,
) -> GA4Batch:
    """Parse one ``GET|POST [<prefix>]/g/collect`` request into its events.

    ``query`` is the raw query string (without ``?``), ``body`` the raw request body (empty for a
    GET); ``ip_override``/``user_agent`` (the visitor's, resolved by the caller) go into every
    event's data. Raises :class:`HitRejected` (400) when no event can be taken from the request;
    see the module docstring.
    """
    prefix = collect_prefix(path)
    if prefix is None:
        raise HitRejected(
            "not a GA4 collection path",
            errors=[{"field": "path", "message": "expected [<prefix>]/g/collect"}],
        )
    raw_query = query.decode("latin-1") if isinstance(query, bytes) else query
    if len(raw_query) > MAX_QUERY_LENGTH:
        raise HitRejected(
            "query string too long",
            errors=[{"field": "query", "message": f"at most {MAX_QUERY_LENGTH} characters"}],
        )
    if not raw_query.isascii():
        raise HitRejected(
            "query string is not percent-encoded",
            errors=[{"field": "query", "message": "raw non-ASCII bytes in the query"}],
        )
    query_params = split_params(raw_query, where="query")
    richsstsse = any(p.name == "richsstsse" for p in query_params)
    lines = split_body_lines(body)
    if len(lines) > MAX_LINES:
        raise HitRejected(
            "too many events in one request",
            errors=[{"field": "body", "message": f"at most {MAX_LINES} lines (events)"}],
        )
    raw_pairs = tuple(p.raw for p in query_params)
    if not lines:
        hit = _build_hit(query_params, raw_pairs, None, None, ip_override, user_agent)
        return GA4Batch(prefix=prefix, richsstsse=richsstsse, hits=(hit,))
    hits: list[GA4Hit] = []
    rejected: list[LineRejected] = []
    for number, raw in lines:
        where = f"body line {number}"
        try:
            if len(raw) > MAX_LINE_LENGTH:
                raise HitRejected(
                    "body line too long",
                    errors=[{"field": where, "message": f"at most {MAX_LINE_LENGTH} bytes"}],
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise HitRejected(
                    "body line is not UTF-8",
                    errors=[{"field": where, "message": "gtag sends UTF-8 text"}],
                ) from None
            line_params = split_params(text, where=where)
            merged = merge_params(query_params, line_params)
            hits.append(_build_hit(merged, raw_pairs, text, number, ip_override, user_agent))
        except HitRejected as exc:
            errors = tuple({**e, "field": e.get("field", where)} for e in exc.errors)
            rejected.append(LineRejected(number, exc.error, errors))
    if not hits:
        raise HitRejected(
            "no valid event in the request",
            errors=[
                {"field": f"body line {r.line}", "message": f"{r.error}: " + "; ".join(
                    e["message"] for e in r.errors)}
                for r in rejected
            ],
        )
    return GA4Batch(
        prefix=prefix, richsstsse=richsstsse, hits=tuple(hits), rejected=tuple(rejected)
    )


def merge_params(query: list[Param], line: list[Param]) -> list[Param]:
    """Query parameters with a line's values replacing theirs in place (first occurrence of a
    name in the line wins); the line's other parameters follow in line order."""
    overrides: dict[str, Param] = {}
    for param in line:
        overrides.setdefault(param.name, param)
    merged: list[Param] = []
    used: set[str] = set()
    for param in query:
        if param.name in overrides:
            if param.name not in used:
                merged.append(overrides[param.name])
                used.add(param.name)
        else:
            merged.append(param)
    merged.extend(p for p in overrides.values() if p.name not in used)
    return merged


def _build_hit(
    params: list[Param],
    raw_query: tuple[str, ...],
    raw_line: str | None,
    line: int | None,
    ip_override: str | None,
    user_agent: str | None,
) -> GA4Hit:
    where = "query" if line is None else f"body line {line}"
    first: dict[str, str] = {}
    for param in params:
        first.setdefault(param.name, param.value)
    errors = []
    if first.get("v") != "2":
        errors.append({"field": f"{where}: v", "message": "required: v=2 (GA4 protocol)"})
    tid = first.get("tid")
    if not tid or not TID_RE.match(tid):
        errors.append({"field": f"{where}: tid", "message": "required: a measurement id (G-...)"})
    name = first.get("en")
    if not name or len(name) > MAX_EVENT_NAME_LENGTH or not name.isprintable():
        errors.append({"field": f"{where}: en", "message": "required: an event name of at most "
                       f"{MAX_EVENT_NAME_LENGTH} printable characters"})
    if errors:
        raise HitRejected("invalid GA4 hit", errors=errors)
    pairs = [(p.name, p.value) for p in params]
    data, problems = build_event_data(pairs, ip_override=ip_override, user_agent=user_agent)
    return GA4Hit(
        params=tuple(params),
        raw_query=raw_query,
        raw_line=raw_line,
        event_data=data,
        consent=consent_from_ga4(first.get("gcs"), first.get("gcd")),
        line=line,
        problems=tuple(problems),
    )
