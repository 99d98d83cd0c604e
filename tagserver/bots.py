"""Known crawlers by User-Agent, from the maintained ``crawler-user-agents`` list (MIT licence,
github.com/monperrus/crawler-user-agents): its patterns are compiled once by the package."""

from __future__ import annotations

import functools

import crawleruseragents

#: Longer User-Agents are only checked on their first characters (a bound on regex work).
MAX_CHECKED_LENGTH = 512


@functools.lru_cache(maxsize=4096)
def is_bot(user_agent: str) -> bool:
    """True when ``user_agent`` matches a known crawler, scraper or monitoring agent
    (``Googlebot``, ``facebookexternalhit``, ``curl``, ``HeadlessChrome``, ...)."""
    return bool(crawleruseragents.is_crawler(user_agent[:MAX_CHECKED_LENGTH]))
