"""The hot path's JSON codec: orjson where it gives exactly what stdlib :mod:`json` gives, stdlib
``json`` where it would not.

Hit bodies, replies and outbox payloads are decoded and encoded here: CPU µs per hit of the
benchmark mix, stdlib → this module, decoding the body 2.9 → 1.5, the reply 4.7 → 1.9 (with its
headers), the CAPI event stored in the outbox 3.8 → 1.8 (``bench/bench_hot_path.py
--json-parts``); orjson itself takes a fifth of that, the rest is the checks below. Every result
is the stdlib's, byte for byte and exception for exception, but for the one difference listed at
the end: where orjson would differ, the input goes to stdlib ``json`` instead.

Decoding (:func:`loads`, :func:`loads_fast`; orjson.loads against ``json.loads``):

- integers outside ``[-2**63, 2**64)`` become floats in orjson (``18446744073709551616`` →
  ``1.8446744073709552e19``; stdlib keeps the int, or refuses one of over 4,300 digits): a text
  with 19 digits in a row (anywhere, strings included; ``{`` and ``[`` between digits are
  skipped, which only a string can hold) goes to stdlib;
- ``NaN``/``Infinity``, numbers too large for a float (``1e400``), lone surrogate escapes
  (``"\\ud800"``), invalid UTF-8 and surrogates encoded in UTF-8 (stdlib's bytes path decodes
  them with ``surrogatepass``), a UTF-8 BOM, UTF-16/32 text, and nesting past 1,024 levels are
  refused by orjson: stdlib decides (same value, or its exception and message; orjson's own
  messages are never shown);
- nesting: orjson accepts up to 1,024 levels where stdlib raises ``RecursionError`` near the
  recursion limit (1,000 less the frames on the stack): a value nested deeper than ``max_depth``
  (:data:`SAFE_DEPTH` unless given) goes to stdlib, found by counting ``{`` and ``[`` first and
  walking the value only when there are more;
- duplicate keys: both keep the last value at the place of the first key; floats: both round
  correctly (tested against stdlib).

Encoding (:func:`dumps`; orjson.dumps against a stdlib encoder with ``separators=(",", ":")``
and ``ensure_ascii=False``, given as ``fallback``):

- what orjson refuses goes to ``fallback``, which writes it or raises its own error: integers
  outside ``[-2**63, 2**64)``, strings with lone surrogates (orjson: ``TypeError``; stdlib:
  ``UnicodeEncodeError`` when encoding its text), non-string keys (stdlib writes ``1`` as
  ``"1"``), nesting deeper than 254 levels and circular values, types JSON cannot hold, and,
  passed through on purpose (``OPT_PASSTHROUGH_*``), subclasses of ``str``/``int``/``float``/
  ``dict``/``list``, dataclasses and dates (stdlib: ``TypeError``);
- ``NaN``/``±Infinity`` become ``null`` in orjson (stdlib: ``NaN``/``Infinity``, or
  ``ValueError`` with ``allow_nan=False``): output containing ``null`` is written by
  ``fallback``;
- floats of decimal exponent -5 to -9: orjson writes ``0.00001`` and ``1e-6`` where ``repr``
  writes ``1e-05`` and ``1e-06`` (the same number): output containing ``0.0000`` or a digit,
  ``e-`` and one digit (not followed by another) is written by ``fallback``; other floats, ``-0.0``
  and ``1e+16`` included, are written alike;
- non-ASCII text is UTF-8 in both (``ensure_ascii=False``; ``U+2028`` and ``DEL`` unescaped);
  control characters, quotes and backslashes get the same escapes.

Not handled (stdlib raised ``TypeError``, orjson writes a value): ``uuid.UUID`` (its string) and
members of an ``enum.Enum`` without a ``str``/``int`` mix-in (their value). The values encoded
here are built from decoded JSON, strings and numbers; none holds such an object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Final

import orjson

#: Nesting (the outermost value is level 1) up to which stdlib ``json`` decodes without a
#: ``RecursionError`` from any call site of the server (the recursion limit is 1,000).
SAFE_DEPTH = 256


class _Miss:
    """The type of :data:`MISS`."""

    def __repr__(self) -> str:
        return "MISS"


#: :func:`loads_fast`'s answer when stdlib ``json`` must decide.
MISS: Final = _Miss()

#: Digits to ``0``, with ``{`` and ``[`` deleted (:data:`_BRACKETS`): one ``translate`` gives
#: both the digit runs and the bracket count (the bytes it deleted).
_GUARD = bytes.maketrans(b"123456789", b"000000000")
_BRACKETS = b"{["
_LONG_DIGITS = b"0" * 19
_OPTIONS = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)


def loads_fast(data: bytes | bytearray, max_depth: int = SAFE_DEPTH) -> Any:
    """``json.loads(data)``'s value, decoded by orjson, or :data:`MISS` when stdlib must decide:
    the text holds 19 digits in a row (not counting ``{`` and ``[`` between them), orjson refuses
    it, or it nests deeper than ``max_depth`` levels (the outermost value is level 1)."""
    guarded = data.translate(_GUARD, _BRACKETS)
    # partition(...)[1] is b"" when the digits are not found: cheaper than ``in`` (which first
    # tries the needle as an integer and formats a TypeError) and than ``find``
    if guarded.partition(_LONG_DIGITS)[1]:
        return MISS
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return MISS
    if len(data) - len(guarded) > max_depth and too_deep(value, max_depth):
        return MISS
    return value


def loads(data: bytes | bytearray) -> Any:
    """``json.loads(data)``: the same value, or the same exception (from stdlib ``json``)."""
    value = loads_fast(data)
    return json.loads(data) if value is MISS else value


def too_deep(value: object, max_depth: int, depth: int = 1) -> bool:
    """Whether an object or array in ``value`` (itself at level ``depth``) lies deeper than
    ``max_depth`` levels."""
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, list):
        return False
    if depth > max_depth:
        return True
    for item in value:
        if isinstance(item, dict | list) and too_deep(item, max_depth, depth + 1):
            return True
    return False


def dumps(value: Any, fallback: Callable[[Any], bytes]) -> bytes:
    """``fallback(value)``'s bytes, written by orjson when they are the same.

    ``fallback`` is a stdlib ``json`` encoder with ``separators=(",", ":")`` and
    ``ensure_ascii=False`` whose text is encoded as UTF-8; it writes (or refuses, with its own
    exception) every value orjson refuses or would write differently (see the module docstring).
    """
    try:
        out = orjson.dumps(value, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return fallback(value)
    # each text is looked for the way that costs the least CPU time and instructions on JSON
    # text (measured): ``re`` for "null" and "e-"; bytes.partition for "0.0000" (b"" when not
    # found); never ``in`` (bytes.__contains__ first tries the needle as an integer and formats
    # a TypeError)
    if (
        _NULL(out) is not None
        or out.partition(b"0.0000")[1]  # orjson's 0.00001 (decimal exponent -5): repr's 1e-05
        or (_EXPONENT(out) is not None and _short_exponent(out))
    ):
        return fallback(value)
    return out


def detached(data: bytes) -> bytes:
    """``data`` copied into a bytes object of its own size, for bytes kept for long.

    orjson's output keeps the whole buffer it was written in: measured on CPython 3.11 with
    orjson 3.13, a 0.9 KB value held about 8 KB of memory (``/proc/self/status`` VmRSS over 20,000
    values: 7.98 KB each, 0.91 KB each once copied). An outbox payload stays in memory until its
    destination acknowledges it (up to the sender's ``max_held`` entries while the destination
    is down), so it is copied here, about 0.15 µs for 1 KB. ``sys.getsizeof`` does not show the
    difference; ``tracemalloc`` does. (``memoryview(data).tobytes()``: a quarter fewer
    instructions than ``bytes(memoryview(data))``; ``bytes(data)`` would be ``data`` itself.)"""
    return memoryview(data).tobytes()


_NULL = re.compile(b"null").search
_EXPONENT = re.compile(rb"e-[0-9](?![0-9])").search


def _short_exponent(out: bytes) -> bool:
    """Whether ``out`` holds a digit, ``e-``, one digit and no other: orjson's ``1e-6``..``1e-9``,
    which ``repr`` writes ``1e-06``..``1e-09`` (``repr`` never writes one digit after ``e-``).
    Text such as ``"A1e-2"`` is found too, rarely."""
    found = _EXPONENT(out)
    while found is not None:
        at = found.start()
        if at and 48 <= out[at - 1] <= 57:  # a digit
            return True
        found = _EXPONENT(out, at + 2)
    return False
