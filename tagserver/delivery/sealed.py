"""Secret variable values kept out of the outbox: sealed when stored, unsealed when sent.

An ``http`` tag may put a ``secret`` variable into its URL, headers or body (``Authorization:
Bearer {{crm_token}}``). Its payload is stored with every occurrence of a secret's value — as is,
or percent-encoded as :func:`tagserver.tags.http.render_url` inserts it — replaced by a reference
to the variable's *name*; the sender puts the value of the *current* container back just before
the request, so a rotated secret is used by retries and replays, and the outbox file (or Redis)
never holds it.

The sealed form of a string: NUL NUL is a literal NUL; NUL ``s`` NAME NUL and NUL ``q`` NAME NUL
are the raw and percent-encoded value of the secret NAME. Visitor-supplied text therefore can never
forge a reference. Every non-empty value is sealed, however short (a coincidental match in event
data becomes the variable's value again when sent, which only differs after a rotation).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

NUL = "\x00"
_REF_RE = re.compile("\x00(?:\x00|([sq])([^\x00]*)\x00)")


class UnknownSecret(LookupError):
    """A sealed payload names a secret variable that the current container no longer has."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class Sealer:
    """Seals the secret values named by ``secrets`` (name → values, the current one last: older
    values of a rotated secret are still recognised in payloads built before the rotation)."""

    def __init__(self, secrets: Mapping[str, Iterable[str]]) -> None:
        self.forms: dict[str, tuple[str, str]] = {}
        for name, values in secrets.items():
            for value in values:
                if value:
                    self.forms[value] = ("s", name)
                    encoded = quote(value, safe="")
                    if encoded != value:
                        self.forms.setdefault(encoded, ("q", name))
        ordered = sorted(self.forms, key=len, reverse=True)  # longest first: no partial seals
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def seal_text(self, text: str) -> str:
        if self._pattern is None:
            return text.replace(NUL, NUL + NUL)
        out: list[str] = []
        position = 0
        for match in self._pattern.finditer(text):
            out.append(text[position : match.start()].replace(NUL, NUL + NUL))
            form, name = self.forms[match.group()]
            out.append(f"{NUL}{form}{name}{NUL}")
            position = match.end()
        out.append(text[position:].replace(NUL, NUL + NUL))
        return "".join(out)

    def seal(self, value: Any) -> Any:
        """A copy of the JSON ``value`` with every string (keys included) sealed."""
        return _walk(value, self.seal_text)


def unseal(value: Any, current: Mapping[str, str]) -> Any:
    """A copy of the sealed JSON ``value`` with the secrets of ``current`` (name → value) put
    back. Raises :class:`UnknownSecret` for a name ``current`` lacks."""

    def text(sealed: str) -> str:
        if NUL not in sealed:
            return sealed

        def put(match: re.Match[str]) -> str:
            form, name = match.group(1), match.group(2)
            if form is None:
                return NUL
            if name not in current:
                raise UnknownSecret(name)
            return current[name] if form == "s" else quote(current[name], safe="")

        return _REF_RE.sub(put, sealed)

    return _walk(value, text)


def _walk(value: Any, change: Any) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {change(k) if isinstance(k, str) else k: _walk(v, change) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, change) for v in value]
    return value
