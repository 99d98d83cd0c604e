"""Consent Mode v2 signals of one hit (REFERENCE §4).

A hit without a consent block is treated as granted: no consent mode means no restriction, as in
server-side GTM. A signal of ``"denied"`` switches off what that consent type covers:

=================== =====================================================================
ad_storage          no ``_fbp``/``_fbc`` set or read, nothing derived from ``fbclid``; Meta tags do not fire
analytics_storage   no analytics/visitor id set or read
ad_user_data        no hashed customer information (em, ph, ...) sent to ad platforms
ad_personalization  recorded; GA4 non-personalised (later)
=================== =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tagserver.exceptions import HitRejected

ConsentType = Literal["ad_storage", "analytics_storage", "ad_user_data", "ad_personalization"]
CONSENT_TYPES: tuple[ConsentType, ...] = (
    "ad_storage",
    "analytics_storage",
    "ad_user_data",
    "ad_personalization",
)


@dataclass(frozen=True)
class Consent:
    """Which consent types are granted (``True``) for one hit."""

    ad_storage: bool = True
    analytics_storage: bool = True
    ad_user_data: bool = True
    ad_personalization: bool = True

    def granted(self, kind: ConsentType) -> bool:
        return bool(getattr(self, kind))


GRANTED = Consent()


def parse_consent(raw: object, *, field: str = "consent") -> Consent:
    """Read ``{"ad_storage": "granted"|"denied", ...}``; missing types are granted.

    Raises :class:`HitRejected` naming every bad entry (unknown type, value not granted/denied).
    """
    if raw is None:
        return GRANTED
    if not isinstance(raw, dict):
        raise HitRejected(
            f"{field} must be an object",
            errors=[
                {"field": field, "message": 'expected {"ad_storage": "granted"|"denied", ...}'}
            ],
        )
    errors = []
    values: dict[str, bool] = {}
    for key, value in raw.items():
        if key not in CONSENT_TYPES:
            errors.append(
                {
                    "field": f"{field}.{key}",
                    "message": "unknown consent type; expected one of " + ", ".join(CONSENT_TYPES),
                }
            )
        elif value not in ("granted", "denied"):
            errors.append({"field": f"{field}.{key}", "message": 'expected "granted" or "denied"'})
        else:
            values[key] = value == "granted"
    if errors:
        raise HitRejected("invalid consent", errors=errors)
    return Consent(**values)
