"""Loads and validates the container: every ``*.json`` file of the tags folder.

Validation is by the JSON Schema shipped beside this module (draft 2020-12), then semantic checks
(unique tag names, environment variables that are referenced but unset). Every problem of every
file is collected into one :class:`~tagserver.exceptions.ConfigError`, each with its file and JSON
path, what was expected and a hint.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from tagserver.exceptions import ConfigError, ConfigIssue
from tagserver.tags import TAG_TYPES, Tag


@dataclass(frozen=True)
class Container:
    """The validated tags, in file then list order. ``version`` is a content hash (12 hex) that
    changes whenever any file changes."""

    tags: tuple[Tag, ...]
    version: str


@functools.cache
def container_schema() -> dict[str, Any]:
    """The container JSON Schema shipped in the package (``tagserver/container/schema.json``)."""
    text = resources.files("tagserver.container").joinpath("schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(container_schema())


def _json_path(error: ValidationError) -> str:
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _is_secret_choice(error: ValidationError) -> bool:
    """A ``oneOf`` between a literal and ``{"env": ...}``: report it as one problem."""
    return error.validator == "oneOf" and any(
        isinstance(choice, dict) and choice.get("$ref") == "#/$defs/env"
        for choice in (error.validator_value if isinstance(error.validator_value, list) else [])
    )


def _describe(error: ValidationError, where: str) -> ConfigIssue:
    if error.context and not _is_secret_choice(error):
        error = best_match(error.context)
    path = _json_path(error)
    hint = ""
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(schema.get("properties", {}))
        extras = [k for k in error.instance if k not in allowed]
        for extra in extras:
            close = difflib.get_close_matches(extra, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "allowed keys: " + ", ".join(allowed)
            return ConfigIssue(where, f"{path}.{extra}", f"unknown key {extra!r}", hint)
    if schema.get("required") == ["env"] or error.validator == "oneOf":
        if "env" in schema.get("properties", {}) or error.validator == "oneOf":
            return ConfigIssue(where, path, _safe_message(error, secret=True),
                               'secrets and ids come from the environment: {"env": "VARIABLE"}')
    if error.validator == "enum" and isinstance(error.validator_value, list):
        hint = "expected one of " + ", ".join(json.dumps(v) for v in error.validator_value)
    elif error.validator == "required":
        hint = "add the missing key"
    return ConfigIssue(where, path, _safe_message(error, secret=False), hint)


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
               int: "a number", float: "a number", type(None): "null"}


def _safe_message(error: ValidationError, *, secret: bool) -> str:
    """jsonschema's message, without the offending value when it could be a secret: any value of a
    secret field, objects, and strings over 40 characters (a token pasted by mistake)."""
    short = isinstance(error.instance, int | float | bool | None) or (
        isinstance(error.instance, str) and len(error.instance) <= 40
    )
    if short and not secret:
        return error.message
    got = _JSON_TYPES.get(type(error.instance), "a value")
    if error.validator == "type":
        return f"expected {error.validator_value}, got {got}"
    if error.validator == "pattern":
        return f"does not match the pattern {error.validator_value}"
    if error.validator in ("enum", "const"):
        shown = json.dumps(error.instance) if isinstance(error.instance, str) else got
        return f"{shown[:40]} is not allowed"
    if error.validator == "oneOf":
        return f"got {got}, which matches none of the allowed forms"
    if error.validator in ("required", "additionalProperties", "uniqueItems", "minItems"):
        return error.message
    return f"{got} fails the {error.validator!r} rule"


def _env_refs(node: object, path: str = "$") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        if set(node) == {"env"} and isinstance(node["env"], str):
            yield path, node["env"]
            return
        for key, value in node.items():
            yield from _env_refs(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _env_refs(value, f"{path}[{i}]")


def check_container_file(
    data: object, *, where: str, environ: Mapping[str, str]
) -> list[ConfigIssue]:
    """Every schema and environment problem of one parsed file (empty list: valid)."""
    issues = [_describe(e, where) for e in sorted(_validator().iter_errors(data), key=_json_path)]
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


def load_container(directory: Path, *, environ: Mapping[str, str]) -> Container:
    """Load every ``*.json`` file of ``directory`` (sorted by name) into a :class:`Container`.

    Raises :class:`ConfigError` with every problem: a missing folder, a file that is not UTF-8
    JSON (with line and column), schema violations, duplicate tag names, unset variables.
    """
    if not directory.is_dir():
        raise ConfigError(
            [
                ConfigIssue(
                    str(directory),
                    "$",
                    "the tags folder does not exist",
                    "pass --tags DIR or set TAGSERVER_TAGS",
                )
            ]
        )
    files = sorted(directory.glob("*.json"))
    issues: list[ConfigIssue] = []
    if not files:
        issues.append(ConfigIssue(str(directory), "$", "no *.json container files in the folder"))
    digest = hashlib.sha256()
    tags: list[Tag] = []
    names: dict[str, str] = {}
    for file in files:
        where = str(file)
        raw = file.read_bytes()
        digest.update(file.name.encode() + b"\0" + raw + b"\0")
        try:
            data = json.loads(raw.decode("utf-8"))
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
        file_issues = check_container_file(data, where=where, environ=environ)
        issues.extend(file_issues)
        if file_issues:
            continue
        for i, raw_tag in enumerate(data["tags"]):
            name = raw_tag["name"]
            if name in names:
                issues.append(
                    ConfigIssue(
                        where,
                        f"$.tags[{i}].name",
                        f"duplicate tag name {name!r}",
                        f"also in {names[name]}",
                    )
                )
                continue
            names[name] = where
            try:
                tags.append(TAG_TYPES[raw_tag["type"]].from_config(raw_tag, environ=environ))
            except ValueError as exc:
                issues.append(ConfigIssue(where, f"$.tags[{i}]", str(exc)))
    if issues:
        raise ConfigError(issues)
    return Container(tags=tuple(tags), version=digest.hexdigest()[:12])
