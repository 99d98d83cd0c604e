"""The GA4 (gtag.js ``/g/collect``) protocol: decoding, event data, consent, items, forwarding.

Pure helpers used by the ``ga4`` client (:mod:`tagserver.clients.ga4`) and the ``ga4`` tag; the
wire protocol is described in REFERENCE.md §2.
"""
