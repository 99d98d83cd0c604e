"""The install snippet: a tiny inline queue (as the Meta Pixel's base code has) plus the script tag.

Calls made before ``t.js`` has loaded are queued in ``tagserver.q`` and replayed in order by the
client when it starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import urlsplit

#: Defines ``tagserver(...)`` as a queue until the real client replaces it.
QUEUE_STUB = (
    "window.tagserver=window.tagserver||function(){"
    "(tagserver.q=tagserver.q||[]).push(arguments)};"
)


def script_tag(
    script_url: str, *, pixel_src: str | None = None, pageview: bool = True
) -> str:
    """``<script async src=...>`` for the client; ``pixel_src`` replaces Meta's Pixel library URL,
    ``pageview=False`` turns the automatic PageView (on load and on history changes) off."""
    attributes = [f'async src="{escape(script_url)}"']
    if pixel_src is not None:
        attributes.append(f'data-pixel-src="{escape(pixel_src)}"')
    if not pageview:
        attributes.append('data-pageview="off"')
    return f"<script {' '.join(attributes)}></script>"


def build_snippet(
    script_url: str, *, pixel_src: str | None = None, pageview: bool = True
) -> str:
    """The HTML to put in the ``<head>`` of every page: the queue stub, then the script tag."""
    return (
        f"<script>{QUEUE_STUB}</script>\n"
        + script_tag(script_url, pixel_src=pixel_src, pageview=pageview)
    )


def script_urls(
    *, site_domains: Sequence[str], script_path: str, base_url: str | None = None
) -> list[str]:
    """Where browsers load the client: ``base_url`` + script path when given (a subdomain such as
    ``https://t.shop.com``), else the script path on each site domain (a path mount).

    Raises ``ValueError`` when there is neither a base URL nor a site domain, or the base URL is
    not an http(s) origin with an optional path prefix.
    """
    if base_url is not None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ValueError(f"{base_url!r} is not a URL like https://t.shop.com")
        return [base_url.rstrip("/") + script_path]
    if not site_domains:
        raise ValueError(
            "no site domain: set TAGSERVER_SITE_DOMAINS (e.g. www.shop.com) or pass --url"
        )
    return [f"https://{domain}{script_path}" for domain in site_domains]


def render_snippets(
    *,
    site_domains: Sequence[str],
    allowed_origins: Sequence[str],
    script_path: str,
    base_url: str | None = None,
    pixel_src: str | None = None,
    pageview: bool = True,
) -> str:
    """The text ``tagserver snippet`` prints: one snippet per script URL, with comments saying where
    it goes and how to send events. Raises ``ValueError`` as :func:`script_urls` does."""
    urls = script_urls(site_domains=site_domains, script_path=script_path, base_url=base_url)
    if base_url is not None:
        where = [", ".join(allowed_origins) or "the pages of the site"]
    else:  # a path mount: each site loads the client from its own origin
        where = [f"https://{domain}" for domain in site_domains]
    blocks = [
        f"<!-- tagserver: in the <head> of every page on {pages} -->\n"
        + build_snippet(url, pixel_src=pixel_src, pageview=pageview)
        for url, pages in zip(urls, where, strict=True)
    ]
    usage = (
        "<!-- then, like fbq:\n"
        "  tagserver('consent', {ad_storage: 'granted', ad_user_data: 'granted'});\n"
        "  tagserver('user', {em: 'jane@example.com'});  // sent to tagserver only, hashed there\n"
        "  tagserver('track', 'Purchase', {value: 99.99, currency: 'USD'}, {eventID: 'order-1'});\n"
        "-->"
    )
    return "\n\n".join([*blocks, usage]) + "\n"
