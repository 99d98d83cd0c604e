"""Numbers in GA4 parameters (``epn.*``, ``upn.*``, ``_et``, item prices): dot decimals only."""

from __future__ import annotations

import math
import re

_INT_RE = re.compile(r"-?[0-9]{1,18}\Z")
_FLOAT_RE = re.compile(r"-?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][-+]?[0-9]{1,3})?\Z")


def parse_number(text: str) -> int | float | None:
    """``"3"`` → 3, ``"10.01"`` → 10.01, ``"1e3"`` → 1000.0; ``None`` for anything else (empty,
    a comma decimal, ``NaN``, ``Infinity``, a hex literal, surrounding spaces, an overflow)."""
    if _INT_RE.match(text):
        return int(text)
    if not _FLOAT_RE.match(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None
