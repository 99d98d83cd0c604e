"""What one tag's parameters and one trigger see of an event: its event data and request context.

A :class:`Scope` is made once per event (and once more per tag whose transformations change the
event data); named variables are computed at most once per scope.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from tagserver.consent import GRANTED, Consent
from tagserver.container.event_data import event_data_from_event
from tagserver.event import Event

if TYPE_CHECKING:
    from tagserver.clients.ga4 import GA4Hit
    from tagserver.container.triggers import Trigger
    from tagserver.container.variables import Variable

#: The client that turned the request into the event: ``collect`` (``POST /e``) or ``ga4``
#: (gtag.js hits on ``/g/collect``).
ClientName = Literal["collect", "ga4"]


class Scope:
    """Event data (``data``), consent, request cookies and headers (names lower case), and for an
    event of the ``ga4`` client the gtag.js hit it came from (``ga4``, what a ``ga4`` tag
    forwards).

    ``data`` is never mutated; transformations make a new scope with :meth:`derive`.
    """

    __slots__ = ("data", "consent", "cookies", "headers", "ga4", "matched", "_values", "_query",
                 "_root")

    def __init__(
        self,
        data: Mapping[str, Any],
        *,
        consent: Consent = GRANTED,
        cookies: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        ga4: GA4Hit | None = None,
    ) -> None:
        self.data = data
        self.consent = consent
        self.cookies: Mapping[str, str] = cookies if cookies is not None else {}
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.ga4 = ga4
        #: Trigger conditions evaluated on this event (made by the first one: most events
        #: meet no condition).
        self.matched: dict[Trigger, bool] | None = None
        self._values: dict[str, Any] | None = None  # named variables, made by the first one
        self._query: dict[str, str] | None = None
        # None: this scope is its own root (a reference to itself would be a cycle, leaving the
        # scope and all it holds to the garbage collector instead of reference counting)
        self._root: Scope | None = None

    @classmethod
    def from_event(cls, event: Event) -> Scope:
        """The scope of an event of either client: its event data plus its consent, cookies,
        headers (and GA4 hit). (:func:`scope_from_event`; ``Scope`` has no subclass.)"""
        return scope_from_event(event)

    @property
    def client(self) -> ClientName:
        """The client the event came from."""
        return "collect" if self.ga4 is None else "ga4"

    @property
    def root(self) -> Scope:
        """The untransformed scope this one was derived from (itself when not derived)."""
        return self if self._root is None else self._root

    def derive(self, data: Mapping[str, Any]) -> Scope:
        """The same request context with other event data: variables that read event data are
        computed afresh, the others are shared with this scope."""
        derived = Scope(data, consent=self.consent, cookies=self.cookies, headers=self.headers,
                        ga4=self.ga4)
        derived._root = self if self._root is None else self._root
        return derived

    def variable(self, variable: Variable) -> Any:
        """The value of a named variable, computed once per scope (once per event when it does
        not read event data)."""
        root = self._root
        if root is not None and not variable.uses_data:
            return root.variable(variable)
        values = self._values
        if values is None:
            values = self._values = {}
        name = variable.name
        if name in values:
            return values[name]
        value = variable.compute(self)
        values[name] = value
        return value

    def query_params(self) -> Mapping[str, str]:
        """The query parameters of ``page_location`` (first value of each name), parsed once."""
        if self._query is None:
            self._query = query_params(self.data.get("page_location"))
        return self._query


_new_object = object.__new__


def scope_from_event(event: Event) -> Scope:
    """:meth:`Scope.from_event` as a plain function: one scope per hit, and a classmethod call
    makes a bound method each time."""
    # __init__ written out (no keyword binding, no None checks: an Event's mappings are never
    # None)
    scope: Scope = _new_object(Scope)
    scope.data = event_data_from_event(event)
    scope.consent = event.consent
    scope.cookies = event.cookies
    scope.headers = event.headers
    scope.ga4 = event.ga4
    scope.matched = None
    scope._values = None
    scope._query = None
    scope._root = None
    return scope


def query_params(url: object) -> dict[str, str]:
    """The query of ``url`` as ``{name: first value}``; ``{}`` for a non-string or no query."""
    if not isinstance(url, str) or "?" not in url:
        return {}
    params: dict[str, str] = {}
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        params.setdefault(key, value)
    return params
