"""decode_json_body's one-pass checks against the straightforward rule they replace.

The fast path (a shared decoder refusing non-finite numbers, text scans for surrogate escapes
and brackets) must refuse exactly the bodies the full walk refuses, with the same errors: the
reference below is the walk as it was before, applied to every decoded body.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagserver.clients.collect import MAX_DEPTH, decode_json_body
from tagserver.exceptions import HitRejected


def _reference_tree(value: object, path: str, depth: int, errors: list[dict[str, str]]) -> None:
    if len(errors) >= 10:
        return
    if isinstance(value, str):
        if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            errors.append({"field": path, "message": "contains a lone UTF-16 surrogate"})
    elif isinstance(value, float):
        if not math.isfinite(value):
            errors.append({"field": path, "message": "number out of range"})
    elif isinstance(value, dict | list):
        if depth > MAX_DEPTH:
            errors.append({"field": path, "message": f"nested deeper than {MAX_DEPTH} levels"})
            return
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and any(0xD800 <= ord(ch) <= 0xDFFF for ch in key):
                errors.append({"field": path, "message": "a key contains a lone UTF-16 surrogate"})
            _reference_tree(item, f"{path}.{key}" if path else str(key), depth + 1, errors)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def reference(body: bytes) -> tuple[str, list[dict[str, str]]] | dict[str, Any]:
    """The decoded object, or ``(error, errors)`` of the HitRejected, by the original rule."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "body is not valid UTF-8", [
            {"field": "body", "message": f"invalid byte at offset {exc.start}"}
        ]
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return "body is not valid JSON", [
            {"field": "body", "message": f"{exc.msg} at line {exc.lineno} column {exc.colno}"}
        ]
    except RecursionError:
        return "body is nested too deeply", [{"field": "body", "message": "too deep"}]
    except ValueError as exc:
        message = str(exc) if "is not a JSON number" in str(exc) else "a number has too many digits"
        return "body holds a number JSON cannot carry", [{"field": "body", "message": message}]
    if not isinstance(data, dict):
        return "body must be a JSON object", [
            {"field": "body", "message": f"expected an object, got {type(data).__name__}"}
        ]
    errors: list[dict[str, str]] = []
    _reference_tree(data, "", 1, errors)
    if errors:
        return "body holds values that cannot be sent on", errors
    return data


def decoded(body: bytes) -> tuple[str, list[dict[str, str]]] | dict[str, Any]:
    try:
        return decode_json_body(body)
    except HitRejected as exc:
        return exc.error, exc.errors


def same(body: bytes) -> None:
    got, want = decoded(body), reference(body)
    assert repr(got) == repr(want)  # repr: NaN-free, and key order counts


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "x"}',
        '{"a": "\\ud83d\\ude00"}',  # a valid pair: no error
        '{"a": "\\\\ud800"}',  # an escaped backslash: no surrogate
        '{"a": "\\ud800", "b": ["\\udfff", 1e400], "\\udc00": 2}',
        '{"a": 1e400, "b": "\\ud800"}',
        '{"a": -1e999, "b": 1.5e308, "c": 2e308}',
        '{"a": 1e400, "b": NaN}',
        '{"a": 1e400} x',
        '{"a": 1e400, "b": ' + nested(MAX_DEPTH) + "}",
        '{"a": ' + nested(MAX_DEPTH - 1) + "}",
        '{"a": ' + nested(MAX_DEPTH) + "}",
        '{"a": ' + nested(MAX_DEPTH + 5, '"\\ud800"') + "}",
        '{"a": [{"b": {"c": []}}], "d": ' + ", ".join(["[]"] * 30).join("[]") + "}",
        "{" + ", ".join(f'"k{i}": "\\ud800"' for i in range(15)) + "}",
        "{" + ", ".join(f'"k{i}": 1e400' for i in range(15)) + "}",
        '\ufeff\ufeff{"a": 1}',
        '\ufeff{"a": 1}',
        "[1, 2]",
        '"text"',
        '{"a": 1',
        "",
        '{"a": ' + "9" * 5000 + "}",
        '{"a": Infinity}',
    ],
)
def test_known_bodies_decode_as_before(text: str) -> None:
    same(text.encode("utf-8"))


def test_invalid_utf8_and_encoded_surrogates_are_refused_as_before() -> None:
    same(b'{"a": "\xff"}')
    same(b'{"a": "\xed\xa0\x80"}')  # a surrogate encoded in UTF-8 is invalid UTF-8


_pieces = st.sampled_from(
    ['"x"', '"\\ud800"', '"\\udc00\\ud800"', '"\\ud83d\\ude00"', '"\\\\ud800"', "1e400",
     "-1e400", "1.5", "1e308", "NaN", "12", "true", "null", '"é"', "[]", "{}"]
)  # fmt: skip


@st.composite
def json_texts(draw: st.DrawFn, depth: int = 0) -> str:
    """A JSON value of leaves, objects and arrays, sometimes wrapped in many arrays."""
    if depth > 3 or draw(st.integers(0, 2)) > 0:
        value = draw(_pieces)
    else:
        items = draw(st.lists(st.deferred(lambda: json_texts(depth + 1)), max_size=3))
        if draw(st.booleans()):
            value = "[" + ", ".join(items) + "]"
        else:
            keys = draw(st.lists(st.sampled_from(['"a"', '"\\ud800"', '"b"']),
                                 min_size=len(items), max_size=len(items)))
            value = "{" + ", ".join(f"{k}: {v}" for k, v in zip(keys, items, strict=True)) + "}"
    wrap = draw(st.sampled_from([0, 0, 0, 1, MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH]))
    return "[" * wrap + value + "]" * wrap


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(json_texts(), max_size=4))
def test_generated_bodies_decode_as_before(values: list[str]) -> None:
    text = "{" + ", ".join(f'"k{i}": {v}' for i, v in enumerate(values)) + "}"
    same(text.encode("utf-8"))
