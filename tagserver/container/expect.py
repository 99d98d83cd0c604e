"""The ``expect`` block of a ``tagserver check`` sample: what one event must produce.

::

    "expect": {
      "rejected": false,                    # true: the hit must be refused by the client
      "fired": ["meta", "crm"],             # exactly these tags fire (any order)
      "not_fired": ["alerts"],              # none of these fire
      "commands": 1,                        # a count, or a list matched element by element
      "requests": [{"tag": "crm", "method": "POST", "json": {"order": "1001"}}],
      "drops": [{"tag": "meta", "reason": "invalid_field"}]
    }

Lists of commands, requests and drops match the actual list in order and length; each element is
matched as a *subset*: every key written must be present with a matching value (objects
recursively, arrays element by element), keys not written are not checked. Requests are compared
after secrets are masked, so expectations hold ``"access_token": "***"``, never a token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

EXPECT_KEYS = ("rejected", "fired", "not_fired", "commands", "requests", "drops")


def subset_mismatch(expected: Any, actual: Any, path: str = "") -> str | None:
    """``None`` when ``expected`` matches ``actual`` (subset rules above), else where and how
    they differ."""
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return f"{path or 'value'}: expected an object, got {_show(actual)}"
        for key, value in expected.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in actual:
                return f"{where}: missing"
            problem = subset_mismatch(value, actual[key], where)
            if problem:
                return problem
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            got = f"{len(actual)}" if isinstance(actual, list) else _show(actual)
            return f"{path or 'value'}: expected {len(expected)} item(s), got {got}"
        for i, (want, got) in enumerate(zip(expected, actual, strict=True)):
            problem = subset_mismatch(want, got, f"{path}[{i}]")
            if problem:
                return problem
        return None
    if expected != actual or isinstance(expected, bool) != isinstance(actual, bool):
        return f"{path or 'value'}: expected {_show(expected)}, got {_show(actual)}"
    return None


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 200 else text[:197] + "..."


def _check_list(name: str, expected: Any, actual: list[Any]) -> list[str]:
    if isinstance(expected, int) and not isinstance(expected, bool):
        if len(actual) != expected:
            return [f"{name}: expected {expected}, got {len(actual)}"]
        return []
    problem = subset_mismatch(expected, actual, name)
    return [problem] if problem else []


def check_expectations(
    expect: Mapping[str, Any],
    *,
    rejected: bool,
    fired: list[str],
    commands: list[dict[str, Any]],
    requests: list[dict[str, Any]],
    drops: list[dict[str, str]],
) -> list[str]:
    """Every mismatch between ``expect`` and what the sample produced (empty: it passed)."""
    problems = [
        f"unknown expectation {key!r}; expected one of " + ", ".join(EXPECT_KEYS)
        for key in expect
        if key not in EXPECT_KEYS
    ]
    want_rejected = bool(expect.get("rejected", False))
    if want_rejected != rejected:
        problems.append(
            "rejected: expected the hit to be refused" if want_rejected
            else "rejected: the hit was refused by the client"
        )
        return problems
    if rejected:
        return problems
    if "fired" in expect:
        want = sorted(str(name) for name in expect["fired"])
        if want != sorted(fired):
            problems.append(f"fired: expected {_show(want)}, got {_show(sorted(fired))}")
    for name in expect.get("not_fired", []):
        if name in fired:
            problems.append(f"not_fired: {name!r} fired")
    for key, actual in (("commands", commands), ("requests", requests), ("drops", drops)):
        if key in expect:
            problems.extend(_check_list(key, expect[key], actual))
    return problems
