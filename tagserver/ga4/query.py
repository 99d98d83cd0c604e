"""Strict decoding of GA4 parameter strings (a query string or one body line).

gtag.js writes ``name=value`` pairs joined by ``&``, each side encoded with
``encodeURIComponent`` (so always UTF-8, never a raw space). Decoding is form-style (``+`` is a
space, as Google's collection servers read it) but strict: a ``%`` not followed by two hex digits,
percent-escapes that are not UTF-8, control characters and raw spaces are errors. Each
:class:`Param` keeps its raw text, so a hit can be forwarded byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from tagserver.exceptions import HitRejected

#: Longest decoded parameter name / value (characters); gtag stays far below both.
MAX_NAME_LENGTH = 128
MAX_VALUE_LENGTH = 8192
#: Most parameters in one string (a gtag hit has ~40-80; a 200-item purchase ~250).
MAX_PARAMS = 500

_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# what may appear raw in a query or body line: printable, no space; non-ASCII only in body lines
_RAW_OK = re.compile(r"[^\x00-\x20\x7f]*")


@dataclass(frozen=True)
class Param:
    """One decoded parameter: ``name`` and ``value`` decoded, ``raw`` exactly as received
    (``name=value``, or ``name`` for a bare flag such as ``richsstsse``)."""

    name: str
    value: str
    raw: str


def decode_component(text: str, *, where: str) -> str:
    """Form-decode one name or value (``+`` → space, ``%XX`` → bytes → UTF-8).

    Raises :class:`HitRejected` for a broken escape or bytes that are not UTF-8.
    """
    if "%" not in text and "+" not in text:
        return text
    match = _BAD_PERCENT.search(text)
    if match is not None:
        raise HitRejected(
            "broken percent-encoding",
            errors=[{"field": where, "message": f"'%' at offset {match.start()} is not followed "
                     "by two hex digits"}],
        )
    try:
        return unquote_to_bytes(text.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError:
        raise HitRejected(
            "percent-encoded bytes are not UTF-8",
            errors=[{"field": where, "message": "gtag encodes text as UTF-8"}],
        ) from None


def split_params(text: str, *, where: str) -> list[Param]:
    """Every ``name=value`` pair of ``text`` in order; empty pairs (``&&``) are skipped.

    ``where`` names the source in errors (``query``, ``body line 2``). Raises
    :class:`HitRejected` for control characters or raw spaces, broken percent-encoding, an empty
    name, and names/values/counts over :data:`MAX_NAME_LENGTH`, :data:`MAX_VALUE_LENGTH`,
    :data:`MAX_PARAMS`.
    """
    if not _RAW_OK.fullmatch(text):
        raise HitRejected(
            "raw control characters or spaces",
            errors=[{"field": where, "message": "parameters must be percent-encoded"}],
        )
    params: list[Param] = []
    for raw in text.split("&"):
        if not raw:
            continue
        raw_name, sep, raw_value = raw.partition("=")
        name = decode_component(raw_name, where=where)
        value = decode_component(raw_value, where=f"{where}: {name[:40]}") if sep else ""
        if not name:
            raise HitRejected(
                "parameter without a name",
                errors=[{"field": where, "message": "a pair starts with '='"}],
            )
        if len(name) > MAX_NAME_LENGTH or not name.isprintable():
            raise HitRejected(
                "bad parameter name",
                errors=[{"field": where, "message": f"names are at most {MAX_NAME_LENGTH} "
                         "printable characters"}],
            )
        if len(value) > MAX_VALUE_LENGTH:
            raise HitRejected(
                "parameter value too long",
                errors=[{"field": f"{where}: {name[:40]}",
                         "message": f"at most {MAX_VALUE_LENGTH} characters"}],
            )
        params.append(Param(name, value, raw))
        if len(params) > MAX_PARAMS:
            raise HitRejected(
                "too many parameters",
                errors=[{"field": where, "message": f"at most {MAX_PARAMS} parameters per hit"}],
            )
    return params
