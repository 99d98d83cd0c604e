"""A string that never shows itself: tokens and keys read from the environment.

Every :class:`Secret` of the process is also remembered (values of at least
:data:`MIN_REDACTED_LENGTH` characters) so that :func:`redact_secrets` can mask it in any text
about to be printed or logged — a secret interpolated into a webhook URL or header included.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

MASK = "***"
#: Shorter values are not masked in free text (they would garble unrelated words).
MIN_REDACTED_LENGTH = 6

_known: set[str] = set()
_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()


def _remember(value: str) -> None:
    global _pattern
    if len(value) < MIN_REDACTED_LENGTH or value in _known:
        return
    with _lock:
        _known.add(value)
        ordered = sorted(_known, key=len, reverse=True)  # longest first: no partial masks
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def redact_secrets(text: str) -> str:
    """``text`` with every known secret value replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def redact_json(value: Any, mask: Callable[[str], str] = redact_secrets) -> Any:
    """A copy of a JSON value with ``mask`` (default :func:`redact_secrets`) applied to every
    string in it; other values are kept."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: redact_json(v, mask) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v, mask) for v in value]
    return value


class Secret:
    """Wraps a secret string; ``repr``/``str`` print ``Secret('***')``, ``reveal()`` returns the value.

    Use ``reveal()`` only where the value leaves the process on purpose (a request body).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        _remember(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)
