"""Consent Mode signals of a GA4 hit: ``gcs`` and ``gcd`` → :class:`~tagserver.consent.Consent`.

``gcs`` (REFERENCE §2): ``G1`` + ad_storage bit + analytics_storage bit (``G100``, ``G101``,
``G110``, ``G111``); ``-`` is an unknown bit. ``gcd`` (consent mode v2, community-decoded): the
letters at offsets 2, 4, 6 and 8 are ad_storage, analytics_storage, ad_user_data and
ad_personalization; ``l`` is "not set", ``p``/``q``/``m``/``u`` denied, ``t``/``r``/``n``/``v``/``e``
granted.

Rules, most protective first: a type denied by either signal is denied; a type neither signal
sets is granted (no consent mode, no restriction, as in server-side GTM), except that
ad_user_data and ad_personalization, when unset, follow ad_storage (an ad-storage refusal on a
page without consent v2 still keeps contact data away from ad platforms). A malformed signal sets
nothing; it never rejects the hit (Google applies its own reading when the hit is forwarded).
"""

from __future__ import annotations

import re

from tagserver.consent import CONSENT_TYPES, Consent, ConsentType

GCD_DENIED = frozenset("pqmu")
GCD_GRANTED = frozenset("trnve")
GCD_OFFSETS: dict[ConsentType, int] = {
    "ad_storage": 2,
    "analytics_storage": 4,
    "ad_user_data": 6,
    "ad_personalization": 8,
}
_GCS_RE = re.compile(r"G1([01-])([01-])\Z")


def read_gcs(gcs: str | None) -> dict[ConsentType, bool]:
    """The consent types ``gcs`` sets: ``{"ad_storage": ..., "analytics_storage": ...}``; an
    unknown bit (``-``), a malformed or missing value sets nothing."""
    match = _GCS_RE.match(gcs or "")
    if match is None:
        return {}
    kinds: tuple[ConsentType, ConsentType] = ("ad_storage", "analytics_storage")
    states: dict[ConsentType, bool] = {}
    for kind, bit in zip(kinds, match.groups(), strict=True):
        if bit != "-":
            states[kind] = bit == "1"
    return states


def read_gcd(gcd: str | None) -> dict[ConsentType, bool]:
    """The consent types ``gcd`` sets (granted ``True`` / denied ``False``); ``l``, an unknown
    letter or a string too short for an offset sets nothing for that type."""
    states: dict[ConsentType, bool] = {}
    if not gcd or len(gcd) > 64:
        return states
    for kind, offset in GCD_OFFSETS.items():
        letter = gcd[offset] if offset < len(gcd) else ""
        if letter in GCD_DENIED:
            states[kind] = False
        elif letter in GCD_GRANTED:
            states[kind] = True
    return states


def consent_from_ga4(gcs: str | None, gcd: str | None) -> Consent:
    """Combine ``gcs`` and ``gcd`` by the rules of this module's docstring."""
    from_gcs, from_gcd = read_gcs(gcs), read_gcd(gcd)
    states: dict[ConsentType, bool | None] = {}
    for kind in CONSENT_TYPES:
        signals = [s[kind] for s in (from_gcs, from_gcd) if kind in s]
        states[kind] = all(signals) if signals else None
    ad_storage = states["ad_storage"] is not False
    return Consent(
        ad_storage=ad_storage,
        analytics_storage=states["analytics_storage"] is not False,
        ad_user_data=ad_storage if states["ad_user_data"] is None else bool(states["ad_user_data"]),
        ad_personalization=(
            ad_storage if states["ad_personalization"] is None
            else bool(states["ad_personalization"])
        ),
    )
