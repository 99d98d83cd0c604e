"""One event as the container sees it: the hit's fields plus its request context.

Names follow Meta's server event (``event_name``, ``event_id``, ``event_time``,
``event_source_url``, ``custom_data``, ``user_data``) and server-side GTM's event data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tagserver.consent import GRANTED, Consent

if TYPE_CHECKING:
    from tagserver.clients.ga4 import GA4Hit


@dataclass(frozen=True, init=False)
class Event:
    """An accepted event.

    ``event_time`` and ``received_at`` are unix seconds. ``user_data`` is the raw customer
    information as sent (hashed only when a tag builds its request); ``client_ip`` is the resolved
    public address or ``None``; ``fbp``/``fbc`` are validated cookie values. ``cookies`` and
    ``headers`` (names lower case, ``Cookie`` left out) are the request context that triggers and
    variables read; they are read-only and never echoed into a response. ``ga4`` is the GA4 hit
    the event came from (its sGTM event data and raw parameters), ``None`` for ``/e``.
    ``action_source`` is Meta's (``website`` for browser hits; ``physical_store``,
    ``system_generated``, ... for events a shop's backend sends to ``POST /api/events``).
    ``purchase_token`` is the event data key ``x-ts-purchase-token``.
    """

    event_name: str
    event_id: str
    event_time: int
    received_at: float
    event_source_url: str | None = None
    referrer_url: str | None = None
    custom_data: Mapping[str, object] = field(default_factory=dict)
    user_data: Mapping[str, object] = field(default_factory=dict)
    consent: Consent = GRANTED
    client_ip: str | None = None
    user_agent: str | None = None
    fbp: str | None = None
    fbc: str | None = None
    visitor_id: str | None = None
    cookies: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    ga4: GA4Hit | None = None
    action_source: str = "website"
    #: The purchase token check (:mod:`tagserver.purchase_token`): ``"valid"``, the reason it
    #: failed, or ``None`` when the event is no purchase.
    purchase_token: str | None = None

    def __init__(
        self,
        event_name: str,
        event_id: str,
        event_time: int,
        received_at: float,
        event_source_url: str | None = None,
        referrer_url: str | None = None,
        custom_data: Mapping[str, object] | None = None,
        user_data: Mapping[str, object] | None = None,
        consent: Consent = GRANTED,
        client_ip: str | None = None,
        user_agent: str | None = None,
        fbp: str | None = None,
        fbc: str | None = None,
        visitor_id: str | None = None,
        cookies: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        ga4: GA4Hit | None = None,
        action_source: str = "website",
        purchase_token: str | None = None,
    ) -> None:
        """The dataclass's own ``__init__`` with the same fields and defaults (``None`` mappings
        become new empty dicts), written out: one ``__dict__`` update instead of one
        ``object.__setattr__`` per field of a frozen dataclass, for one event per hit."""
        self.__dict__.update(
            event_name=event_name,
            event_id=event_id,
            event_time=event_time,
            received_at=received_at,
            event_source_url=event_source_url,
            referrer_url=referrer_url,
            custom_data={} if custom_data is None else custom_data,
            user_data={} if user_data is None else user_data,
            consent=consent,
            client_ip=client_ip,
            user_agent=user_agent,
            fbp=fbp,
            fbc=fbc,
            visitor_id=visitor_id,
            cookies={} if cookies is None else cookies,
            headers={} if headers is None else headers,
            ga4=ga4,
            action_source=action_source,
            purchase_token=purchase_token,
        )

    @classmethod
    def from_fields(cls, fields: dict[str, object]) -> Event:
        """An event whose instance dict is ``fields``, taken as it is (not copied): every field
        of the class, no ``None`` for a mapping (as
        :func:`tagserver.clients.collect.event_from_hit` makes the event of each hit)."""
        event = cls.__new__(cls)
        object.__setattr__(event, "__dict__", fields)
        return event

    def replace(self, **changes: object) -> Event:
        """``dataclasses.replace(self, **changes)`` for an event: a copy with ``changes``
        (field names; raises ``TypeError`` for any other name; a ``None`` mapping becomes an
        empty dict, as through ``__init__``), without calling ``__init__`` with every field."""
        fields = self.__dict__
        copied = fields.copy()
        for name, value in changes.items():
            if name not in fields:
                raise TypeError(f"Event has no field {name!r}")
            copied[name] = {} if value is None and name in _MAPPINGS else value
        event = self.__class__.__new__(self.__class__)
        object.__setattr__(event, "__dict__", copied)
        return event


# CPython 3.11 specializes ``event.consent`` (as every other field read) only while the class
# attribute of that name, if any, is of an immutable type; the default ``GRANTED`` is a
# ``Consent``. So the class attribute goes; the dataclass keeps the default in its field and
# ``__init__`` has its own (as :class:`tagserver.clients.collect.CollectHit` does).
del Event.consent

#: The mapping fields: ``None`` given to ``__init__`` becomes a new empty dict.
_MAPPINGS = frozenset({"custom_data", "user_data", "cookies", "headers"})

