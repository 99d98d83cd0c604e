"""Regular expressions of the container (trigger ``regex`` operators, ``regex`` variables),
compiled with Google RE2: matching takes time linear in the input, whatever the pattern.

Python's ``re`` backtracks: a pattern such as ``(a+)+$`` takes seconds on a few dozen characters
of event data, and that would block the server's event loop. RE2 (https://github.com/google/re2/wiki/Syntax)
has no backtracking, and so no backreferences (``\\1``) and no lookaround (``(?=...)``,
``(?!...)``, ``(?<=...)``, ``(?<!...)``); a pattern using them is a validation error. ``\\d``,
``\\w`` and ``\\s`` are ASCII classes in RE2. Named groups are written ``(?P<name>...)`` (or
``(?<name>...)``). As a second bound, only the first :data:`MAX_MATCH_LENGTH` characters of a
value are matched.
"""

from __future__ import annotations

import re
from typing import Any

import re2

#: Characters of a value a pattern is matched against; the rest is ignored.
MAX_MATCH_LENGTH = 8192
#: The hint of a pattern RE2 does not accept.
RE2_HINT = (
    "RE2 syntax: no backreferences (\\1) or lookaround ((?=...), (?!...), (?<=...)); "
    "use a second condition or a not_regex instead; escape literal dots and brackets "
    "with a backslash"
)


class ContainerPattern:
    """A compiled RE2 pattern: :attr:`groups` (number of groups), :attr:`groupindex`
    (``{name: number}``) and :meth:`search`."""

    __slots__ = ("pattern", "groups", "groupindex", "_regexp")

    def __init__(self, pattern: str, *, ignore_case: bool = False) -> None:
        """Raises ``ValueError`` with RE2's message when the pattern does not compile."""
        options = re2.Options()
        options.log_errors = False  # RE2 would print every error on stderr
        options.case_sensitive = not ignore_case
        try:
            self._regexp: Any = re2.compile(pattern, options)
        except re2.error as exc:
            message = exc.args[0] if exc.args else "invalid pattern"
            if isinstance(message, bytes):
                message = message.decode("utf-8", "replace")
            raise ValueError(_explain(str(message))) from None
        self.pattern = pattern
        self.groups: int = self._regexp.groups
        self.groupindex: dict[str, int] = dict(self._regexp.groupindex)

    def search(self, text: str) -> Any | None:
        """The first match in the first :data:`MAX_MATCH_LENGTH` characters of ``text`` (a match
        object with ``group(int | str)`` and ``groupdict()``), or ``None``."""
        return self._regexp.search(text[:MAX_MATCH_LENGTH])

    def __repr__(self) -> str:
        return f"<ContainerPattern {self.pattern!r}>"


_LOOKAROUND_RE = re.compile(r"invalid perl operator: \(\?<?[=!]")
_BACKREFERENCE_RE = re.compile(r"invalid escape sequence: \\[1-9]")


def _explain(message: str) -> str:
    """RE2's message, saying so when the pattern uses what RE2 leaves out on purpose."""
    if _LOOKAROUND_RE.search(message):
        return f"{message} (lookaround is not supported by RE2)"
    if _BACKREFERENCE_RE.search(message):
        return f"{message} (backreferences are not supported by RE2)"
    return message
