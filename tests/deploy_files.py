"""Reading the deployment examples of ``deploy/`` for the tests that keep them honest.

YAML is read with PyYAML, which ``uvicorn[standard]`` (a runtime dependency) installs; nginx's
configuration with the small parser below (directives, arguments, blocks; enough for ``deploy/``).
Settings are checked by the real parser, :func:`tagserver.settings.load_settings`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tagserver.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
NGINX_CONF = DEPLOY / "nginx" / "shop.conf"
KUBERNETES = DEPLOY / "kubernetes"


class RecordingEnviron(dict[str, str]):
    """An environment that remembers every name read with ``get`` (what ``load_settings`` reads)."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)


def settings_from(environ: Mapping[str, str]) -> tuple[Settings, set[str]]:
    """``load_settings(environ)`` (raises ConfigError as it does) and the ``TAGSERVER_*`` names of
    ``environ`` that it never read: names it does not know."""
    recording = RecordingEnviron(environ)
    settings = load_settings(recording)
    assert "TAGSERVER_OUTBOX" in recording.read, "the recording saw no read: test broken"
    unknown = {name for name in environ if name.startswith("TAGSERVER_")} - recording.read
    return settings, unknown


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a Compose env file; blank lines and ``#`` comments skipped."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        values[key.strip()] = value.strip()
    return values


def read_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def duration_s(text: str) -> float:
    """A Compose duration such as ``30s``, ``1m30s`` or ``1m`` in seconds."""
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", text)
    assert parts and text, f"not a duration: {text!r}"
    return int(parts[1] or 0) * 60 + int(parts[2] or 0)


def option(command: list[str], name: str) -> str:
    """The value after ``name`` in a command line (``--port 8080``)."""
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


# nginx ------------------------------------------------------------------------------------------


@dataclass
class Directive:
    """One nginx directive: ``name args...;`` or ``name args... { children }``."""

    name: str
    args: list[str]
    children: list[Directive] | None = None

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.children or [] if d.name == name]

    def one(self, name: str, *args: str) -> Directive:
        found = [d for d in self.all(name) if list(d.args[: len(args)]) == list(args)]
        assert len(found) == 1, f"{self.name} {self.args}: {len(found)} '{name} {args}' directives"
        return found[0]

    def values(self, name: str) -> list[list[str]]:
        return [d.args for d in self.all(name)]

    def walk(self) -> Iterator[Directive]:
        for child in self.children or []:
            yield child
            yield from child.walk()


_TOKEN = re.compile(r'"[^"]*"|\'[^\']*\'|[{};]|[^\s{};"\']+')


def parse_nginx(text: str) -> Directive:
    """The configuration as a tree under a root directive named ``main``."""
    text = re.sub(r"#[^\n]*", "", text)
    tokens = [t[1:-1] if t[0] in "\"'" else t for t in _TOKEN.findall(text)]
    root = Directive("main", [], [])
    stack = [root]
    words: list[str] = []
    for token in tokens:
        if token == ";":
            assert words, "an empty directive"
            stack[-1].children.append(Directive(words[0], words[1:]))  # type: ignore[union-attr]
            words = []
        elif token == "{":
            block = Directive(words[0], words[1:], [])
            stack[-1].children.append(block)  # type: ignore[union-attr]
            stack.append(block)
            words = []
        elif token == "}":
            assert not words and len(stack) > 1, "unbalanced braces"
            stack.pop()
        else:
            words.append(token)
    assert not words and len(stack) == 1, "unterminated directive or block"
    return root


@dataclass
class Kubernetes:
    """Every manifest of ``deploy/kubernetes``, by kind and name."""

    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Kubernetes:
        found = cls()
        for path in sorted(KUBERNETES.glob("*.yaml")):
            if path.name == "kustomization.yaml":
                continue
            for doc in read_yaml_documents(path):
                key = (doc["kind"], doc["metadata"]["name"])
                assert key not in found.objects, f"{key} defined twice"
                found.objects[key] = doc
        return found

    def get(self, kind: str, name: str) -> dict[str, Any]:
        assert (kind, name) in self.objects, f"no {kind} {name!r} in deploy/kubernetes"
        return self.objects[(kind, name)]


def container_env(
    container: Mapping[str, Any], secrets: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """A container's environment as Kubernetes builds it: ``envFrom`` secrets, then ``env`` in
    order (``secretKeyRef`` values, ``$(VAR)`` expanded from the variables defined before)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(secrets[source["secretRef"]["name"]])
    for item in container.get("env", []):
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
        else:
            value = str(item["value"])
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m[1]], value)
    return env
