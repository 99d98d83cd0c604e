"""Meta's standard event names and the GA4 names that map to them.

Source: Meta "Specifications for Meta Pixel standard events" and the GA4 recommended events; the map
is the one server-side GTM's Meta CAPI tag uses.
"""

from __future__ import annotations

STANDARD_EVENTS: frozenset[str] = frozenset(
    {
        "AddPaymentInfo",
        "AddToCart",
        "AddToWishlist",
        "CompleteRegistration",
        "Contact",
        "CustomizeProduct",
        "Donate",
        "FindLocation",
        "InitiateCheckout",
        "Lead",
        "PageView",
        "Purchase",
        "Schedule",
        "Search",
        "StartTrial",
        "SubmitApplication",
        "Subscribe",
        "ViewContent",
    }
)

GA4_TO_META: dict[str, str] = {
    "page_view": "PageView",
    "view_item": "ViewContent",
    "add_to_cart": "AddToCart",
    "add_to_wishlist": "AddToWishlist",
    "begin_checkout": "InitiateCheckout",
    "add_payment_info": "AddPaymentInfo",
    "purchase": "Purchase",
    "generate_lead": "Lead",
    "sign_up": "CompleteRegistration",
    "search": "Search",
}


def meta_event_name(name: str) -> str:
    """The Meta name for an incoming event name: a GA4 name maps by :data:`GA4_TO_META`, any other
    name (standard or custom) passes unchanged, case kept."""
    return GA4_TO_META.get(name, name)


def is_standard_event(name: str) -> bool:
    """True for Meta's standard names (fired with ``trackSingle``); custom ones use
    ``trackSingleCustom``."""
    return name in STANDARD_EVENTS
