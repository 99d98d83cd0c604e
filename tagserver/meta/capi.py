"""Wire shapes of Meta's Conversions API (Meta doc "Conversions API parameters")."""

from __future__ import annotations

from typing import Any, Literal, TypedDict, get_args

ActionSource = Literal[
    "website",
    "email",
    "app",
    "phone_call",
    "chat",
    "physical_store",
    "system_generated",
    "business_messaging",
    "other",
]
#: Every value of :data:`ActionSource`.
ACTION_SOURCES: frozenset[str] = frozenset(get_args(ActionSource))


class CapiUserData(TypedDict, total=False):
    """``user_data`` of a server event. Contact keys are SHA-256 hex (a string or a list);
    ``client_ip_address``, ``client_user_agent``, ``fbc``, ``fbp`` and ``lead_id`` (Meta's Lead
    Ads id, an int64) are never hashed."""

    client_ip_address: str
    client_user_agent: str
    fbc: str
    fbp: str
    em: str | list[str]
    ph: str | list[str]
    fn: str | list[str]
    ln: str | list[str]
    ge: str | list[str]
    db: str | list[str]
    ct: str | list[str]
    st: str | list[str]
    zp: str | list[str]
    country: str | list[str]
    external_id: str | list[str]
    lead_id: int


class CapiEvent(TypedDict, total=False):
    """One server event of ``POST /{version}/{pixel_id}/events``; ``event_time`` in unix seconds."""

    event_name: str
    event_time: int
    event_id: str
    action_source: ActionSource
    event_source_url: str
    referrer_url: str
    opt_out: bool
    data_processing_options: list[str]
    data_processing_options_country: int
    data_processing_options_state: int
    user_data: CapiUserData
    custom_data: dict[str, Any]


class CapiRequest(TypedDict, total=False):
    """The JSON body of one CAPI request: at most 1,000 events; the token stays out of the URL."""

    data: list[CapiEvent]
    access_token: str
    test_event_code: str
    partner_agent: str
