"""Signed purchase tokens: the shop backend vouches for a Purchase before the page reports it.

A public collection endpoint can be fed fake purchases (REFERENCE §5). The shop's backend, which
knows the real order, signs ``order_id``, ``value``, ``currency`` and an expiry with a key shared
with tagserver (``TAGSERVER_PURCHASE_TOKEN_KEYS``); the page sends the token as
``custom_data.purchase_token`` (``/e``) or ``ep.purchase_token`` (gtag.js). A Meta tag with
``"require_purchase_token": true`` sends a Purchase only when the token is valid, unexpired and
names the same order, value and currency; otherwise the event is dropped and counted
(``invalid_purchase_token``). The token itself is never forwarded.

Signing: itsdangerous ``URLSafeSerializer`` with the salt :data:`PURCHASE_TOKEN_SALT` (one salt per
purpose: a visitor-id signature is never a valid token); keys newest first, any of them verifies
(rotation). In Python::

    from tagserver.purchase_token import sign_purchase
    token = sign_purchase(["<key>"], order_id="A-1001", value=59.9, currency="EUR",
                          expires_in=3600)

or ``tagserver sign --order-id A-1001 --value 59.9 --currency EUR`` (keys from the environment).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

PURCHASE_TOKEN_SALT = "tagserver.purchase-token"
#: Tokens longer than this are not even parsed (characters).
MAX_TOKEN_LENGTH = 1024


def _serializer(keys: Sequence[str]) -> URLSafeSerializer:
    if not keys:
        raise ValueError("no purchase token key: set TAGSERVER_PURCHASE_TOKEN_KEYS")
    # itsdangerous signs with the last key and verifies with any: newest last
    return URLSafeSerializer(list(reversed(keys)), salt=PURCHASE_TOKEN_SALT)


def _amount(value: object) -> str | None:
    """A money amount in canonical text (``59.90`` and ``59.9`` are equal); ``None`` if not one."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    return format(number.normalize(), "f")


def sign_purchase(
    keys: Sequence[str],
    *,
    order_id: str,
    value: float | int | str,
    currency: str,
    expires_in: int = 3600,
    now: float | None = None,
) -> str:
    """A URL-safe token for one order; ``keys`` newest first (the first signs), ``expires_in``
    in seconds from ``now`` (unix seconds, default the current time).

    Raises ``ValueError`` without keys or for a value that is not an amount.
    """
    from tagserver.meta.normalize import normalize_currency

    amount = _amount(value)
    if amount is None:
        raise ValueError(f"value {str(value)[:40]!r} is not an amount such as 59.90")
    if not order_id or len(order_id) > 200 or not order_id.isprintable():
        raise ValueError("order id: 1 to 200 printable characters, no control characters")
    if normalize_currency(currency) is None:
        raise ValueError(f"currency {currency[:10]!r} is not an ISO 4217 code such as EUR")
    if expires_in <= 0:
        raise ValueError("expires_in must be a positive number of seconds")
    issued = time.time() if now is None else now
    payload = {"o": str(order_id), "v": amount, "c": currency.upper(),
               "exp": int(issued + expires_in)}
    token = _serializer(keys).dumps(payload)
    return token if isinstance(token, str) else token.decode("ascii")


def verify_purchase(
    token: object, custom_data: Mapping[str, Any], *, keys: Sequence[str], now: float
) -> str | None:
    """``None`` when ``token`` is valid for the purchase in ``custom_data`` (``order_id``,
    ``value``, ``currency``) at ``now`` (unix seconds); else the reason, without the token or
    any raw value: ``missing``, ``malformed``, ``bad signature``, ``expired``, ``mismatch``."""
    if not isinstance(token, str) or not token:
        return "missing"
    if len(token) > MAX_TOKEN_LENGTH or not keys:
        return "malformed" if keys else "no key configured"
    try:
        payload = _serializer(keys).loads(token)
    except BadSignature:
        return "bad signature"
    if not isinstance(payload, dict) or not isinstance(payload.get("exp"), int):
        return "malformed"
    if payload["exp"] < now:
        return "expired"
    currency = custom_data.get("currency")
    same = (
        str(custom_data.get("order_id")) == payload.get("o")
        and _amount(custom_data.get("value")) == payload.get("v")
        and isinstance(currency, str)
        and currency.upper() == payload.get("c")
    )
    return None if same else "mismatch"


class PurchaseReplayGuard:
    """Remembers which event first used each order's valid token, so that one genuine token
    cannot vouch for several Purchases with different event ids (a replayed thank-you page).

    The same event id again (a retry or a reload) is still accepted: Meta deduplicates it. Entries
    live ``ttl_s`` seconds (48 h, Meta's deduplication window) and at most ``max_entries`` are kept,
    oldest dropped first. Per process: with ``--workers N`` each worker keeps its own record.
    """

    def __init__(self, *, ttl_s: float = 48 * 3600, max_entries: int = 100_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._first: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, order_id: str, event_id: str, *, now: float) -> bool:
        """True when ``event_id`` is the first (or the same) event to use ``order_id``'s token
        within the window; ``now`` in unix seconds."""
        with self._lock:
            while self._first:
                oldest, (_, expires) = next(iter(self._first.items()))
                if expires > now:
                    break
                del self._first[oldest]
            first = self._first.get(order_id)
            if first is not None:
                return first[0] == event_id
            self._first[order_id] = (event_id, now + self._ttl_s)
            if len(self._first) > self._max_entries:
                self._first.popitem(last=False)
            return True
