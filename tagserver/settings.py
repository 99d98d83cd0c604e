"""Settings from the environment (``TAGSERVER_*``), validated once at start.

Every setting is read by :func:`load_settings` from a mapping (``os.environ`` in production, a dict in
tests); nothing is read at import time. Problems are collected and raised together as one
:class:`~tagserver.exceptions.ConfigError`.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from tagserver.exceptions import ConfigError, ConfigIssue
from tagserver.secret import Secret

log = logging.getLogger("tagserver.settings")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Chrome caps every cookie's lifetime at 400 days (REFERENCE §3), in seconds.
MAX_COOKIE_AGE_S = 400 * 24 * 3600
#: The signing key used when TAGSERVER_SECRET_KEY is unset; never for production.
DEV_SECRET_KEY = "tagserver-dev-key-do-not-use-in-production"

_DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\Z"
)
_PATH_RE = re.compile(r"^/[A-Za-z0-9._~/-]*\Z")
_LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one tagserver process.

    Durations are in seconds, sizes in bytes. ``secret_keys`` is newest first; the first one signs.
    """

    secret_keys: tuple[Secret, ...] = (Secret(DEV_SECRET_KEY),)
    site_domains: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    trusted_proxies: tuple[IPNetwork, ...] = (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    meta_graph_url: str = "https://graph.facebook.com"
    ga4_url: str = "https://region1.google-analytics.com"
    outbox: str = "tagserver-outbox.sqlite3"
    collect_path: str = "/e"
    script_path: str = "/t.js"
    log_level: str = "info"
    dry_run: bool = False
    tags_dir: Path = Path("tags")
    max_body_bytes: int = 32 * 1024
    cookie_max_age_s: int = 90 * 24 * 3600
    flush_interval_s: float = 1.0
    outbound_timeout_s: float = 5.0
    drain_timeout_s: float = 10.0
    retry_max_attempts: int | None = None  # None: retry until too old for the destination
    retry_base_delay_s: float = 0.5
    retry_max_delay_s: float = 60.0
    default_country: str | None = None
    outbox_lease_s: float = 30.0
    metrics_token: Secret | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    reload_interval_s: float = 1.0
    #: ``js``: GA4's client id is the page's ``cid``; ``server``: an HttpOnly ``FPID`` cookie.
    ga4_client_id: str = "js"
    #: The GA4 event parameter (after ``ep.``) that carries the page's event id for Meta.
    ga4_event_id_param: str = "event_id"
    #: SQLite file of the API keys and idempotency records of ``POST /api/events``.
    keys_path: Path = Path("tagserver-keys.sqlite3")
    # abuse limits and privacy (docs/SECURITY.md); a rate limit of 0 is off
    max_header_bytes: int = 16 * 1024
    max_query_bytes: int = 32 * 1024  # a backstop: the GA4 client refuses over 16 KiB with 400
    rate_limit_ip: int = 600  # hits per minute per trusted client IP
    rate_limit_visitor: int = 120  # hits per minute per visitor id
    max_concurrency: int = 256  # requests in flight per process
    outbound_max_connections: int = 20
    #: ``Sec-GPC: 1``: ``ldu`` (Meta Limited Data Use), ``suppress`` (no ad tag fires), ``off``.
    gpc: str = "ldu"
    #: Known crawlers (crawler-user-agents list) are kept away from ad destinations.
    block_bots: bool = True
    #: Keys that verify signed purchase tokens, newest first (``tagserver sign`` uses the first).
    purchase_token_keys: tuple[Secret, ...] = ()

    @property
    def uses_dev_key(self) -> bool:
        return self.secret_keys[0].reveal() == DEV_SECRET_KEY


_T = TypeVar("_T")


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def load_settings(environ: Mapping[str, str], **overrides: object) -> Settings:
    """Read and validate every ``TAGSERVER_*`` setting from ``environ``.

    ``overrides`` (field names of :class:`Settings`) win over the environment; the CLI uses them for
    its flags. Raises :class:`ConfigError` listing every invalid variable with what was expected.
    """
    issues: list[ConfigIssue] = []
    values: dict[str, object] = {}

    def read(name: str, parse: Callable[[str], _T], expected: str) -> _T | None:
        raw = environ.get(name)
        if raw is None or raw.strip() == "":
            return None
        try:
            return parse(raw.strip())
        except ValueError as exc:
            issues.append(ConfigIssue("environment", name, f"{exc}; expected {expected}"))
            return None

    def put(key: str, name: str, parse: Callable[[str], object], expected: str) -> None:
        """Read ``name`` into the field ``key`` when it is set and valid."""
        value = read(name, parse, expected)
        if value is not None:
            values[key] = value

    keys = read("TAGSERVER_SECRET_KEY", _split, "a long random string (comma list to rotate)")
    if keys:
        short = [k for k in keys if len(k) < 16]
        if short:
            issues.append(
                ConfigIssue(
                    "environment",
                    "TAGSERVER_SECRET_KEY",
                    "a key is shorter than 16 characters",
                    "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                )
            )
        values["secret_keys"] = tuple(Secret(k) for k in keys)

    domains = read("TAGSERVER_SITE_DOMAINS", _parse_domains, "a comma list of host names")
    if domains is not None:
        values["site_domains"] = tuple(domains)
    origins = read("TAGSERVER_ALLOWED_ORIGINS", _parse_origins, "a comma list of origins")
    if origins is not None:
        values["allowed_origins"] = tuple(origins)
    elif domains:
        values["allowed_origins"] = tuple(f"https://{d}" for d in domains)
    proxies = read("TAGSERVER_TRUSTED_PROXIES", _parse_networks, "a comma list of IPs or CIDRs")
    if proxies is not None:
        values["trusted_proxies"] = tuple(proxies)
    for name, key in (
        ("TAGSERVER_META_GRAPH_URL", "meta_graph_url"),
        ("TAGSERVER_GA4_URL", "ga4_url"),
    ):
        url = read(
            name, _parse_base_url, "an http(s) URL without query, e.g. https://graph.facebook.com"
        )
        if url is not None:
            values[key] = url
    put(
        "outbox",
        "TAGSERVER_OUTBOX",
        _parse_outbox,
        "a SQLite file path, redis://host:port/db or memory",
    )
    for name, key in (
        ("TAGSERVER_COLLECT_PATH", "collect_path"),
        ("TAGSERVER_SCRIPT_PATH", "script_path"),
    ):
        path = read(name, _parse_path, "a path such as /e")
        if path is not None:
            values[key] = path
    put("log_level", "TAGSERVER_LOG_LEVEL", _parse_log_level, "one of " + ", ".join(_LOG_LEVELS))
    put("dry_run", "TAGSERVER_DRY_RUN", _parse_bool, "1/0, true/false, yes/no")
    put("keys_path", "TAGSERVER_KEYS", Path, "a SQLite file path for the API keys")
    put("tags_dir", "TAGSERVER_TAGS", Path, "a folder of container JSON files")
    put(
        "default_country",
        "TAGSERVER_DEFAULT_COUNTRY",
        _parse_country,
        "an ISO 3166-1 alpha-2 code like US",
    )
    put("ga4_client_id", "TAGSERVER_GA4_CLIENT_ID", _parse_ga4_client_id, "js or server")
    put(
        "ga4_event_id_param",
        "TAGSERVER_GA4_EVENT_ID_PARAM",
        _parse_param_name,
        "a parameter name such as event_id",
    )

    put("gpc", "TAGSERVER_GPC", _parse_gpc, "ldu, suppress or off")
    put("block_bots", "TAGSERVER_BLOCK_BOTS", _parse_bool, "1/0, true/false, yes/no")
    token_keys = read("TAGSERVER_PURCHASE_TOKEN_KEYS", _split, "a comma list of keys, newest first")
    if token_keys:
        if any(len(k) < 16 for k in token_keys):
            issues.append(
                ConfigIssue(
                    "environment",
                    "TAGSERVER_PURCHASE_TOKEN_KEYS",
                    "a key is shorter than 16 characters",
                )
            )
        values["purchase_token_keys"] = tuple(Secret(k) for k in token_keys)

    numbers: tuple[tuple[str, str, Callable[[str], object], str], ...] = (
        ("TAGSERVER_MAX_HEADER_BYTES", "max_header_bytes", _positive_int, "a number of bytes"),
        ("TAGSERVER_MAX_QUERY_BYTES", "max_query_bytes", _positive_int, "a number of bytes"),
        ("TAGSERVER_RATE_LIMIT_IP", "rate_limit_ip", _non_negative_int, "hits a minute; 0 = off"),
        (
            "TAGSERVER_RATE_LIMIT_VISITOR",
            "rate_limit_visitor",
            _non_negative_int,
            "hits a minute; 0 = off",
        ),
        ("TAGSERVER_MAX_CONCURRENCY", "max_concurrency", _positive_int, "a whole number"),
        (
            "TAGSERVER_OUTBOUND_MAX_CONNECTIONS",
            "outbound_max_connections",
            _positive_int,
            "a whole number",
        ),
        ("TAGSERVER_MAX_BODY_BYTES", "max_body_bytes", _positive_int, "a whole number of bytes"),
        (
            "TAGSERVER_COOKIE_MAX_AGE",
            "cookie_max_age_s",
            _positive_int,
            "seconds, at most 34560000",
        ),
        ("TAGSERVER_FLUSH_INTERVAL", "flush_interval_s", _positive_float, "seconds, e.g. 1.0"),
        ("TAGSERVER_OUTBOUND_TIMEOUT", "outbound_timeout_s", _positive_float, "seconds, e.g. 5"),
        ("TAGSERVER_DRAIN_TIMEOUT", "drain_timeout_s", _positive_float, "seconds, e.g. 10"),
        ("TAGSERVER_RETRY_MAX_ATTEMPTS", "retry_max_attempts", _positive_int, "a whole number"),
        ("TAGSERVER_RETRY_BASE_DELAY", "retry_base_delay_s", _positive_float, "seconds, e.g. 0.5"),
        ("TAGSERVER_RETRY_MAX_DELAY", "retry_max_delay_s", _positive_float, "seconds, e.g. 60"),
        ("TAGSERVER_OUTBOX_LEASE", "outbox_lease_s", _positive_float, "seconds, e.g. 30"),
        ("TAGSERVER_METRICS_PORT", "metrics_port", _port, "a TCP port number, e.g. 9100"),
    )
    put(
        "reload_interval_s",
        "TAGSERVER_RELOAD_INTERVAL",
        _non_negative_float,
        "seconds between container checks; 0 = off",
    )
    for name, key, parse, expected in numbers:
        number = read(name, parse, expected)
        if number is not None:
            values[key] = number

    max_age = values.get("cookie_max_age_s")
    if isinstance(max_age, int) and max_age > MAX_COOKIE_AGE_S:
        log.warning(
            "TAGSERVER_COOKIE_MAX_AGE=%d is over the 400-day browser cap; using %d",
            max_age,
            MAX_COOKIE_AGE_S,
        )
        values["cookie_max_age_s"] = MAX_COOKIE_AGE_S

    token = read("TAGSERVER_METRICS_TOKEN", str, "a long random string")
    if token is not None:
        if len(token) < 16:
            issues.append(
                ConfigIssue(
                    "environment",
                    "TAGSERVER_METRICS_TOKEN",
                    "the token is shorter than 16 characters",
                    "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                )
            )
        values["metrics_token"] = Secret(token)
    put("metrics_host", "TAGSERVER_METRICS_HOST", _parse_host, "an IP address such as 127.0.0.1")

    if issues:
        raise ConfigError(issues)
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _parse_domains(raw: str) -> list[str]:
    from tagserver.identity import is_public_suffix

    domains = [d.lower().rstrip(".") for d in _split(raw)]
    for domain in domains:
        if not _DOMAIN_RE.match(domain):
            raise ValueError(f"{domain!r} is not a host name")
        if is_public_suffix(domain):
            raise ValueError(f"{domain!r} is a public suffix: no cookie can be set on it")
    return domains


def _parse_origins(raw: str) -> list[str]:
    origins = []
    for origin in _split(raw):
        if origin in ("*", "null"):
            raise ValueError(f"{origin!r} is never allowed with credentials")
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
        ):
            raise ValueError(f"{origin!r} is not an origin like https://www.shop.com")
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return origins


def _parse_networks(raw: str) -> list[IPNetwork]:
    if raw.strip() == "*":
        raise ValueError("'*' would let any client choose its IP")
    networks = [ipaddress.ip_network(part, strict=False) for part in _split(raw)]
    for network in networks:
        if network.prefixlen == 0:
            raise ValueError(f"{network} trusts every address: any client could choose its IP")
    return networks


def _parse_base_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"{raw!r} is not a base URL")
    return raw.rstrip("/")


def _parse_path(raw: str) -> str:
    if not _PATH_RE.match(raw) or raw == "/":
        raise ValueError(f"{raw!r} is not a path")
    return raw.rstrip("/")


def _parse_log_level(raw: str) -> str:
    level = raw.lower()
    if level not in _LOG_LEVELS:
        raise ValueError(f"{raw!r} is not a log level")
    return level


def _parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{raw!r} is not a boolean")


def _parse_country(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z]{2}", raw):
        raise ValueError(f"{raw!r} is not a two-letter country code")
    return raw.upper()


def _parse_outbox(raw: str) -> str:
    if raw == "memory" or raw.startswith(("redis://", "rediss://", "unix://")):
        if raw.startswith(("redis://", "rediss://")) and not urlsplit(raw).hostname:
            raise ValueError("the Redis URL has no host")
        return raw
    if "://" in raw:
        raise ValueError(f"unknown outbox scheme in {raw.split('://')[0]!r}://")
    return raw


def _parse_host(raw: str) -> str:
    return str(ipaddress.ip_address(raw))


def _port(raw: str) -> int:
    number = int(raw)
    if not 0 < number < 65536:
        raise ValueError(f"{raw!r} is not a port number")
    return number


def _parse_ga4_client_id(raw: str) -> str:
    mode = raw.lower()
    if mode not in ("js", "server"):
        raise ValueError(f"{raw!r} is not a client id mode")
    return mode


def _parse_param_name(raw: str) -> str:
    name = raw.removeprefix("ep.")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name):
        raise ValueError(f"{raw!r} is not a parameter name")
    return name


def _positive_int(raw: str) -> int:
    number = int(raw)
    if number <= 0:
        raise ValueError(f"{raw!r} is not positive")
    return number


def _positive_float(raw: str) -> float:
    number = float(raw)
    if not number > 0 or number != number or number == float("inf"):
        raise ValueError(f"{raw!r} is not a positive number")
    return number


def _non_negative_float(raw: str) -> float:
    number = float(raw)
    if not number >= 0 or number == float("inf"):
        raise ValueError(f"{raw!r} is not a number of seconds")
    return number


def _non_negative_int(raw: str) -> int:
    number = int(raw)
    if number < 0:
        raise ValueError(f"{raw!r} is negative")
    return number


def _parse_gpc(raw: str) -> str:
    mode = raw.lower()
    if mode not in ("ldu", "suppress", "off"):
        raise ValueError(f"{raw!r} is not a GPC mode")
    return mode
