"""A string that never shows itself: tokens and keys read from the environment."""

from __future__ import annotations


class Secret:
    """Wraps a secret string; ``repr``/``str`` print ``Secret('***')``, ``reveal()`` returns the value.

    Use ``reveal()`` only where the value leaves the process on purpose (a request body).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

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
