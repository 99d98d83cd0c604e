"""Loads and validates the container: every ``*.json`` file of the tags folder.

Validation is by the JSON Schema shipped beside this module (draft 2020-12), then semantic checks
(:mod:`tagserver.container.build`: unique names, known references, regexes that compile, secrets
that are set and used safely). Every problem of every file is collected into one
:class:`~tagserver.exceptions.ConfigError`, each with its file and JSON path, what was expected and
a hint.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from tagserver.container.build import ContainerFile, build_container
from tagserver.container.model import Container, ContainerTag
from tagserver.container.schema_errors import describe_error, json_path
from tagserver.exceptions import ConfigError, ConfigIssue

__all__ = [
    "Container",
    "ContainerTag",
    "check_container_file",
    "container_schema",
    "load_container",
    "schema_path",
]


def schema_path() -> Path:
    """Where the container JSON Schema lives in the installed package."""
    return Path(str(resources.files("tagserver.container").joinpath("schema.json")))


@functools.cache
def container_schema() -> dict[str, Any]:
    """The container JSON Schema shipped in the package (``tagserver/container/schema.json``)."""
    text = resources.files("tagserver.container").joinpath("schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(container_schema())


def _env_refs(data: object) -> Iterator[tuple[str, str]]:
    """``(JSON path, variable)`` of every ``{"env": NAME}`` in a tag's own keys (the only place
    the schema allows one: a webhook body may well hold an ``env`` key of its own)."""
    tags = data.get("tags") if isinstance(data, dict) else None
    if not isinstance(tags, list):
        return
    for i, tag in enumerate(tags):
        if not isinstance(tag, dict):
            continue
        for key in _env_keys(str(tag.get("type"))):
            value = tag.get(key)
            if isinstance(value, dict) and set(value) == {"env"} and isinstance(value["env"], str):
                yield f"$.tags[{i}].{key}", value["env"]


@functools.cache
def _env_keys(tag_type: str) -> frozenset[str]:
    """The keys of a tag type whose schema accepts ``{"env": NAME}``."""
    branch = container_schema()["$defs"].get(f"{tag_type}_tag", {})
    return frozenset(
        key for key, schema in branch.get("properties", {}).items()
        if "#/$defs/env" in json.dumps(schema)
    )


def check_container_file(
    data: object, *, where: str, environ: Mapping[str, str]
) -> list[ConfigIssue]:
    """Every schema and ``{"env": NAME}`` problem of one parsed file (empty list: valid)."""
    errors = sorted(_validator().iter_errors(data), key=json_path)
    issues = [describe_error(e, where) for e in errors]
    for path, name in _env_refs(data):
        if not environ.get(name, "").strip():
            issues.append(
                ConfigIssue(
                    where,
                    path,
                    f"environment variable {name} is not set",
                    f"export {name}=... before starting tagserver",
                )
            )
    return issues


class _NonFinite(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's json accepts them, JSON does not."""


def _refuse_constant(name: str) -> Any:
    raise _NonFinite(name)


def parse_json(raw: bytes) -> tuple[Any, list[tuple[str, str]]]:
    """Strict JSON from UTF-8 bytes (a leading BOM is skipped): the value and the
    ``(JSON path, key)`` of every key repeated within one object (the last one is kept).

    Raises ``UnicodeDecodeError``, ``json.JSONDecodeError``, ``RecursionError``, or a
    ``ValueError`` for ``NaN``/``Infinity`` (RFC 8259 has neither).
    """
    repeated: dict[int, list[str]] = {}

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            keys: list[str] = []
            for key, _ in pairs:
                if key in seen and key not in keys:
                    keys.append(key)
                seen.add(key)
            repeated[id(obj)] = keys
        return obj

    data = json.loads(raw.decode("utf-8-sig"), object_pairs_hook=pairs_hook,
                      parse_constant=_refuse_constant)
    found: list[tuple[str, str]] = []
    if repeated:
        _find_repeated(data, "$", repeated, found)
    return data, found


def _find_repeated(
    value: Any, path: str, repeated: dict[int, list[str]], found: list[tuple[str, str]]
) -> None:
    if isinstance(value, dict):
        found.extend((f"{path}.{key}", key) for key in repeated.get(id(value), ()))
        for key, item in value.items():
            _find_repeated(item, f"{path}.{key}", repeated, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _find_repeated(item, f"{path}[{index}]", repeated, found)


def read_container_files(
    directory: Path, *, environ: Mapping[str, str]
) -> tuple[list[ContainerFile], list[ConfigIssue], str]:
    """Parse and schema-check every ``*.json`` of ``directory`` (sorted by name).

    Returns the parsed files (``valid`` false for those with schema problems), the problems, and
    the version: the first 12 hex of a SHA-256 over every file's name and bytes.
    """
    if not directory.is_dir():
        issue = ConfigIssue(
            str(directory), "$", "the tags folder does not exist",
            "give the folder of container *.json files; the default is TAGSERVER_TAGS, else ./tags"
        )
        return [], [issue], ""
    paths = sorted(directory.glob("*.json"))
    issues: list[ConfigIssue] = []
    if not paths:
        issues.append(ConfigIssue(str(directory), "$", "no *.json container files in the folder"))
    digest = hashlib.sha256()
    files: list[ContainerFile] = []
    for path in paths:
        where = str(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            issues.append(ConfigIssue(where, "$", f"cannot read the file: {exc.strerror}"))
            continue
        digest.update(path.name.encode() + b"\0" + raw + b"\0")
        try:
            data, duplicates = parse_json(raw)
        except UnicodeDecodeError:
            issues.append(ConfigIssue(where, "$", "the file is not UTF-8"))
            continue
        except json.JSONDecodeError as exc:
            issues.append(
                ConfigIssue(
                    where, "$", f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                )
            )
            continue
        except _NonFinite as exc:
            issues.append(ConfigIssue(where, "$", f"not JSON: {exc} is not a JSON number",
                                      "write a number, or null"))
            continue
        except RecursionError:
            issues.append(ConfigIssue(where, "$", "not JSON: nested too deeply"))
            continue
        for key_path, key in duplicates:
            issues.append(ConfigIssue(where, key_path, f"duplicate key {key!r} in one object",
                                      "JSON readers disagree on which one counts: keep one"))
        file_issues = check_container_file(data, where=where, environ=environ)
        issues.extend(file_issues)
        files.append(ContainerFile(where, data, valid=not file_issues))
    return files, issues, digest.hexdigest()[:12]


def load_container(directory: Path, *, environ: Mapping[str, str]) -> Container:
    """Load every ``*.json`` file of ``directory`` (sorted by name) into a :class:`Container`.

    Raises :class:`ConfigError` with every problem: a missing folder, a file that is not UTF-8
    JSON (with line and column), schema violations, and the semantic problems of
    :mod:`tagserver.container.build` in the files that passed the schema.
    """
    files, issues, version = read_container_files(directory, environ=environ)
    container, problems = build_container(files, environ=environ, version=version)
    issues.extend(problems)
    if issues:
        raise ConfigError(issues)
    return container
