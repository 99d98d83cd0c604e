"""Helpers for container tests: write container dicts to a folder, load them, build scopes."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tagserver.consent import GRANTED, Consent
from tagserver.container.loader import Container, load_container
from tagserver.container.runtime import ContainerResult, run_scope
from tagserver.container.scope import Scope
from tagserver.exceptions import ConfigError

NOW = 1_760_000_000.0
PIXEL = "1234567890"
ENVIRON = {
    "META_PIXEL_ID": PIXEL,
    "META_ACCESS_TOKEN": "EAAG-container-test-token",
    "CRM_TOKEN": "crm-container-test-token",
    "HOOK_URL": "https://hooks.example.com/services/T0/B0/secret-path-42",
}
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"

_counter = itertools.count()


def write_container(folder: Path, *files: Mapping[str, Any]) -> Path:
    """Write each mapping as ``<n>.json`` into ``folder`` (created); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, data in enumerate(files):
        (folder / f"{index:02d}.json").write_text(json.dumps(data), "utf-8")
    return folder


def compile_container(
    tmp_path: Path, *files: Mapping[str, Any], environ: Mapping[str, str] = ENVIRON
) -> Container:
    """Load ``files`` as one container; a ConfigError fails the test with every problem."""
    folder = write_container(tmp_path / f"container-{next(_counter)}", *files)
    try:
        return load_container(folder, environ=environ)
    except ConfigError as exc:  # pragma: no cover - a test bug
        pytest.fail(f"container did not load:\n{exc}")


def config_problems(
    tmp_path: Path, *files: Mapping[str, Any], environ: Mapping[str, str] = ENVIRON
) -> str:
    """The text of the ConfigError ``files`` must raise."""
    folder = write_container(tmp_path / f"container-{next(_counter)}", *files)
    with pytest.raises(ConfigError) as info:
        load_container(folder, environ=environ)
    return str(info.value)


def make_scope(
    data: Mapping[str, Any] | None = None,
    *,
    consent: Consent = GRANTED,
    cookies: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Scope:
    """A scope over event data (``event_name`` Purchase and an id unless given)."""
    event: dict[str, Any] = {
        "event_name": "Purchase",
        "event_id": "evt-1",
        "event_time": int(NOW) - 5,
        "page_location": "https://www.shop.example/de/thanks?utm_source=facebook&ref=a%20b",
        "user_agent": UA,
    }
    event.update(data or {})
    return Scope(event, consent=consent, cookies=cookies or {}, headers=headers or {})


def run(container: Container, scope: Scope) -> ContainerResult:
    return run_scope(container, scope, default_country=None, now=NOW, explain=True)


def meta_tag(name: str = "meta", **keys: Any) -> dict[str, Any]:
    """A meta tag config reading the pixel and token from :data:`ENVIRON`."""
    return {
        "name": name,
        "type": "meta",
        "pixel_id": {"env": "META_PIXEL_ID"},
        "access_token": {"env": "META_ACCESS_TOKEN"},
        **keys,
    }


def http_tag(name: str = "hook", **keys: Any) -> dict[str, Any]:
    return {"name": name, "type": "http", "url": "https://hooks.example.com/x", **keys}
