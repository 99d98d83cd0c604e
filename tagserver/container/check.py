"""``tagserver check DIR --events samples.jsonl``: run sample events through a container, offline.

Each line of the samples file is one JSON object (blank lines and lines starting with ``#`` are
skipped):

* ``{"hit": {...}}`` — a raw ``POST /e`` body, parsed by the ``collect`` client as the server does
  (a line with ``event_name`` at the top level is a hit too);
* ``{"event": {...}, "consent": {...}}`` — sGTM-style event data (``event_name``,
  ``page_location``, ``custom_data``, ``user_data``, ...), given directly;
* ``{"ga4": "v=2&tid=G-...&en=purchase&..."}`` — one gtag.js hit (the query string of a
  ``/g/collect`` request), parsed by the ``ga4`` client as the server does;

plus optional ``"name"``, ``"request": {"headers": {...}, "cookies": {...}, "ip": "203.0.113.7"}``
and ``"expect"`` (see :mod:`tagserver.container.expect`). The same tag code as the server builds
the browser commands and outbound requests; nothing is sent, and secrets are printed as ``***``.
Exit status: 0 when every expectation holds, 1 on a mismatch, a refused hit without
``"rejected": true``, an unreadable sample or an invalid container.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from itsdangerous import Signer

from tagserver.client_ip import is_public, parse_ip
from tagserver.clients.collect import event_from_hit, parse_collect_body
from tagserver.clients.ga4 import parse_ga4_request
from tagserver.consent import parse_consent
from tagserver.container.event_data import add_aliases
from tagserver.container.expect import check_expectations
from tagserver.container.loader import Container, load_container
from tagserver.container.runtime import ContainerResult, run_scope
from tagserver.container.scope import Scope
from tagserver.container.variables import SecretVariable
from tagserver.delivery.channels import GA4Channel, HttpChannel, MetaChannel, request_head
from tagserver.exceptions import ConfigError, HitRejected
from tagserver.ga4.handler import build_ga4_events
from tagserver.identity import VISITOR_ID_SALT, resolve_identity
from tagserver.secret import MASK, redact_json, redact_secrets
from tagserver.settings import DEV_SECRET_KEY, Settings
from tagserver.tags import Outbound
from tagserver.tags.ga4 import GA4Destination
from tagserver.tags.http import HttpDestination
from tagserver.tags.meta import MetaDestination, MetaTag

SampleKind = Literal["hit", "event", "ga4"]
#: The User-Agent a sample gets when its request names none (every browser sends one).
DEFAULT_USER_AGENT = "Mozilla/5.0 (tagserver check)"


@dataclass(frozen=True)
class Sample:
    """One line of the samples file."""

    line: int
    name: str
    kind: SampleKind
    body: Mapping[str, Any]
    consent: Any
    headers: dict[str, str]
    cookies: dict[str, str]
    ip: str | None
    expect: Mapping[str, Any] | None


def read_samples(path: Path) -> tuple[list[Sample], list[str]]:
    """The samples of a JSONL file and the problems of the lines that could not be read."""
    samples: list[Sample] = []
    problems: list[str] = []
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"{path}: cannot read the samples file: {exc}"]
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            samples.append(_sample(json.loads(line), number))
        except (ValueError, TypeError) as exc:
            problems.append(f"{path}:{number}: {exc}")
    if not samples and not problems:
        problems.append(f"{path}: no samples")
    return samples, problems


def _sample(raw: object, number: int) -> Sample:
    if not isinstance(raw, dict):
        raise ValueError("a sample is a JSON object")
    kind: SampleKind
    if "hit" in raw:
        kind, body = "hit", raw["hit"]
    elif "ga4" in raw:
        if not isinstance(raw["ga4"], str):
            raise ValueError('"ga4" must be a string: the query of a /g/collect hit')
        kind, body = "ga4", {"query": raw["ga4"].partition("?")[2] or raw["ga4"]}
    elif "event" in raw:
        kind, body = "event", raw["event"]
    elif "event_name" in raw:
        kind = "hit"
        body = {k: v for k, v in raw.items() if k not in ("name", "request", "expect")}
    else:
        raise ValueError('a sample needs "hit" (a POST /e body), "ga4" (a gtag.js hit query) '
                         'or "event" (event data)')
    if not isinstance(body, dict):
        raise ValueError(f'"{kind}" must be an object')
    request = raw.get("request") or {}
    if not isinstance(request, dict):
        raise ValueError('"request" must be an object')
    headers = {str(k).lower(): str(v) for k, v in (request.get("headers") or {}).items()}
    headers.setdefault("user-agent", DEFAULT_USER_AGENT)
    cookies = {str(k): str(v) for k, v in (request.get("cookies") or {}).items()}
    expect = raw.get("expect")
    if expect is not None and not isinstance(expect, dict):
        raise ValueError('"expect" must be an object')
    name = str(raw.get("name") or body.get("event_name") or f"line {number}")
    if kind == "ga4" and not raw.get("name"):
        name = f"line {number} (ga4)"
    return Sample(number, name, kind, body, raw.get("consent"), headers, cookies,
                  request.get("ip"), expect)


def sample_scope(sample: Sample, *, now: float, settings: Settings | None = None) -> Scope:
    """The scope the server would build for this sample; raises :class:`HitRejected` for a hit
    (or consent) the client refuses."""
    if sample.kind == "ga4":
        return _ga4_scope(sample, now=now, settings=settings or Settings())
    if sample.kind == "event":
        data = add_aliases(dict(sample.body))
        data.setdefault("event_id", f"sample-{sample.line}")
        data.setdefault("event_time", int(now))
        return Scope(data, consent=parse_consent(sample.consent), cookies=sample.cookies,
                     headers=sample.headers)
    hit = parse_collect_body(json.dumps(sample.body).encode(), now=now)
    referer = sample.headers.get("referer")
    page = hit.event_source_url or (referer if referer and referer.startswith("http") else None)
    identity = resolve_identity(
        sample.cookies,
        page_url=page,
        referrer_url=hit.referrer_url,
        scope=None,
        ad_storage=hit.consent.ad_storage,
        analytics_storage=hit.consent.analytics_storage,
        signer=Signer(DEV_SECRET_KEY, salt=VISITOR_ID_SALT),
        now_ms=int(now * 1000),
        max_age=3600,
    )
    ip = parse_ip(sample.ip) if sample.ip else None
    event = event_from_hit(
        hit,
        event_id=hit.event_id if hit.event_id is not None else f"sample-{sample.line}",
        received_at=now,
        page_url=page,
        fbp=identity.fbp,
        fbc=identity.fbc,
        visitor_id=identity.visitor_id,
        client_ip=str(ip) if ip is not None and is_public(ip) else None,
        user_agent=sample.headers.get("user-agent") or None,
        cookies=sample.cookies,
        headers={k: v for k, v in sample.headers.items() if k != "cookie"},
    )
    return Scope.from_event(event)


def _ga4_scope(sample: Sample, *, now: float, settings: Settings) -> Scope:
    """The scope of a gtag.js hit sample, built by the GA4 handler's own code."""
    ip = parse_ip(sample.ip) if sample.ip else None
    client_ip = str(ip) if ip is not None and is_public(ip) else None
    user_agent = sample.headers.get("user-agent") or None
    batch = parse_ga4_request(path="/g/collect", query=str(sample.body["query"]),
                              ip_override=client_ip, user_agent=user_agent)
    referer = sample.headers.get("referer")
    (event,), _ = build_ga4_events(
        batch.hits[:1],
        cookie_header="; ".join(f"{k}={v}" for k, v in sample.cookies.items()),
        cookies=sample.cookies,
        headers={k: v for k, v in sample.headers.items() if k != "cookie"},
        referer=referer if referer and referer.startswith("http") else None,
        cookie_scope=None,
        signer=Signer(DEV_SECRET_KEY, salt=VISITOR_ID_SALT),
        client_ip=client_ip,
        user_agent=user_agent,
        now=now,
        event_id_param=settings.ga4_event_id_param,
        max_age=3600,
        mint=lambda: f"sample-{sample.line}",
    )
    return Scope.from_event(event)


def describe_request(outbound: Outbound, tag: str, settings: Settings) -> dict[str, Any]:
    """The HTTP request the sender would make for ``outbound`` alone, secrets masked:
    ``{"tag", "destination", "method", "url", "headers", "json"}``."""
    destination = outbound.destination
    channel: MetaChannel | HttpChannel | GA4Channel
    if isinstance(destination, MetaDestination):
        channel = MetaChannel(settings.meta_graph_url)
    elif isinstance(destination, HttpDestination):
        channel = HttpChannel()
    elif isinstance(destination, GA4Destination):
        channel = GA4Channel(settings.ga4_url)
    else:  # a tag type without a channel here: show its payload
        return {"tag": tag, "destination": type(destination).__name__, "method": "?", "url": "?",
                "headers": {}, "json": redact_json(dict(outbound.payload))}
    url, body = channel.build_request(destination, [outbound.payload])
    method, headers = request_head(channel, destination, [outbound.payload])
    described: dict[str, Any] = {
        "tag": tag,
        "destination": channel.label(destination),
        "method": method,
        "url": redact_secrets(url),
        "headers": {k: redact_secrets(v) for k, v in headers.items()},
    }
    if isinstance(channel, GA4Channel):  # a GA4 hit: its body line is text, not JSON
        described["json"] = None
        described["body"] = redact_secrets(body.decode("utf-8"))
        return described
    payload: Any = json.loads(body) if body else None
    if isinstance(payload, dict) and "access_token" in payload:
        payload["access_token"] = MASK
    described["json"] = redact_json(payload)
    return described


def _compact(value: Any) -> str:
    return redact_secrets(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))


def container_secrets(container: Container) -> list[str]:
    """Every secret value of ``container`` (secret variables, Meta access tokens), longest first:
    masked in the report whatever their length."""
    values = {v.value.reveal() for v in container.variables.values() if isinstance(v, SecretVariable)}
    values |= {t.tag.access_token.reveal() for t in container.tags if isinstance(t.tag, MetaTag)}
    return sorted((v for v in values if v), key=len, reverse=True)


class CheckReport:
    """Runs samples and writes the report (``text`` for people, ``json``: one object a line)."""

    def __init__(self, container: Container, settings: Settings, out: TextIO, fmt: str) -> None:
        self.secrets = container_secrets(container)
        self.container = container
        self.settings = settings
        self.out = out
        self.fmt = fmt
        self.checked = 0
        self.failed = 0

    def run(self, sample: Sample, *, now: float) -> None:
        rejected: HitRejected | None = None
        result = ContainerResult()
        try:
            scope = sample_scope(sample, now=now, settings=self.settings)
        except HitRejected as exc:
            rejected = exc
        else:
            result = run_scope(self.container, scope, default_country=self.settings.default_country,
                               now=now, explain=True)
        requests = [
            redact_json(describe_request(o, t, self.settings), self._mask)
            for o, t in zip(result.outbound, result.outbound_tags, strict=True)
        ]
        commands = redact_json(result.commands, self._mask)
        drops = [{"tag": t, "reason": r, "detail": self._mask(d)} for t, r, d in result.drops]
        problems: list[str] | None = None
        if sample.expect is not None:
            problems = check_expectations(sample.expect, rejected=rejected is not None,
                                          fired=result.fired, commands=commands,
                                          requests=requests, drops=drops)
        elif rejected is not None:
            problems = ['the hit was refused (add "expect": {"rejected": true} if on purpose)']
        if problems is not None:
            self.checked += 1
            self.failed += bool(problems)
        if self.fmt == "json":
            entry = {"line": sample.line, "name": sample.name, "fired": result.fired,
                     "not_fired": dict(result.not_fired), "commands": commands,
                     "requests": requests, "drops": drops,
                     "rejected": _rejection(rejected) if rejected else None,
                     "expect": None if problems is None else {"ok": not problems,
                                                              "problems": problems}}
            print(self._mask(_compact(entry)), file=self.out)
            return
        self._text(sample, result, rejected, commands, requests, drops, problems)

    def _text(self, sample: Sample, result: ContainerResult, rejected: HitRejected | None,
              commands: list[Any], requests: list[dict[str, Any]], drops: list[dict[str, str]],
              problems: list[str] | None) -> None:
        say = self._say
        say(f"[line {sample.line}] {sample.name}")
        if rejected is not None:
            say(f"  refused by the client: {_compact(_rejection(rejected))}")
        else:
            say("  fired: " + (", ".join(result.fired) or "(none)"))
            for name, why in result.not_fired:
                say(f"  not fired: {name} ({why})")
            for command in commands:
                say(f"  browser: {_compact(command)}")
            for request in requests:
                say(f"  request {request['tag']}: {request['method']} {request['url']}")
                for header, value in request["headers"].items():
                    say(f"    {header}: {value}")
                if request["json"] is not None:
                    say(f"    {_compact(request['json'])}")
            for drop in drops:
                say(f"  dropped {drop['tag']}: {drop['reason']}: {drop['detail']}")
        if problems is not None:
            say("  expect: ok" if not problems else "  expect: FAILED")
            for problem in problems:
                say(f"    - {problem}")
        say("")

    def _say(self, text: str) -> None:
        print(self._mask(text), file=self.out)

    def _mask(self, text: str) -> str:
        text = redact_secrets(text)
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


def _rejection(exc: HitRejected) -> dict[str, Any]:
    return {"status": exc.status, "error": exc.error, "errors": exc.errors}


def run_check(
    directory: Path,
    events: Path,
    *,
    environ: Mapping[str, str],
    settings: Settings,
    out: TextIO,
    err: TextIO,
    now: float | None = None,
    fmt: str = "text",
) -> int:
    """Check ``events`` against the container in ``directory``; the exit status (0 or 1)."""
    try:
        container = load_container(directory, environ=environ)
    except ConfigError as exc:
        print(f"tagserver check: {len(exc.issues)} configuration problem(s):", file=err)
        for issue in exc.issues:
            print(f"  {issue}", file=err)
        return 1
    samples, problems = read_samples(events)
    for problem in problems:
        print(f"tagserver check: {problem}", file=err)
    report = CheckReport(container, settings, out, fmt)
    moment = time.time() if now is None else now
    for sample in samples:
        report.run(sample, now=moment)
    summary = (f"{len(samples)} sample(s), container {container.version}: "
               f"{report.checked - report.failed} of {report.checked} expectation block(s) passed")
    print(summary, file=err if fmt == "json" else out)
    return 1 if problems or report.failed else 0
