"""Turns jsonschema's validation errors into :class:`~tagserver.exceptions.ConfigIssue` lines.

Each issue names the file, the JSON path, what was wrong and what was expected, with a hint (the
closest valid key for a typo, the allowed values for an enum). A value that could be a secret (a
token pasted where ``{"env": ...}`` belongs, any long string) is never echoed.
"""

from __future__ import annotations

import difflib
import json

from jsonschema.exceptions import ValidationError, best_match

from tagserver.exceptions import ConfigIssue


def json_path(error: ValidationError) -> str:
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


def _literal_form(error: ValidationError) -> str | None:
    """The ``description`` of the string form of a literal-or-``{"env"}`` choice (``5 to 20
    digits``) when a string was given, so the message says what is expected, not the value."""
    if not isinstance(error.instance, str) or not isinstance(error.validator_value, list):
        return None
    for choice in error.validator_value:
        if isinstance(choice, dict) and choice.get("type") == "string":
            description = choice.get("description")
            return description if isinstance(description, str) else None
    return None


def describe_error(error: ValidationError, where: str) -> ConfigIssue:
    """One issue for one jsonschema error (the most relevant sub-error of a ``oneOf``/``anyOf``)."""
    secret_choice = _is_secret_choice(error)
    if error.context and not secret_choice:
        error = best_match(error.context)
    path = json_path(error)
    hint = ""
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(schema.get("properties", {}))
        extras = [k for k in error.instance if k not in allowed]
        for extra in extras:
            close = difflib.get_close_matches(extra, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "allowed keys: " + ", ".join(allowed)
            return ConfigIssue(where, f"{path}.{extra}", f"unknown key {extra!r}", hint)
    literal = _literal_form(error) if secret_choice else None
    if literal is not None:
        return ConfigIssue(where, path, f"expected {literal}, or {{\"env\": \"VARIABLE\"}}",
                           'secrets and ids come from the environment: {"env": "VARIABLE"}')
    if secret_choice or (schema.get("required") == ["env"] and "env" in schema.get("properties", {})):
        return ConfigIssue(where, path, _safe_message(error, secret=True),
                           'secrets and ids come from the environment: {"env": "VARIABLE"}')
    if error.validator == "enum" and isinstance(error.validator_value, list):
        choices = error.validator_value
        hint = "expected one of " + ", ".join(json.dumps(v) for v in choices)
        if isinstance(error.instance, str) and len(error.instance) <= 40:
            close = difflib.get_close_matches(error.instance, [str(c) for c in choices], n=1)
            if close:
                hint = f"did you mean {close[0]!r}? {hint}"
            return ConfigIssue(where, path, f"{error.instance!r} is not one of the allowed values",
                               hint)
    elif error.validator == "required":
        hint = "add the missing key"
    elif isinstance(schema.get("description"), str) and error.validator in ("type", "pattern"):
        hint = schema["description"]
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
