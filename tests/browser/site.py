"""The test shop's pages: each installs the client with the real snippet of ``tagserver.snippet``
and does one thing a shop does (land, buy, fire several events at once, leave, refuse consent)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request

from tagserver.snippet import build_snippet
from tests.browser.harness import PageRenderer, ShopServer

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>{title}</title>
{snippet}
{script}
</head><body><h1>{title}</h1>{body}</body></html>"""


def _page(title: str, *, script: str = "", body: str = "", pageview: bool = True) -> PageRenderer:
    def render(shop: ShopServer, request: Request) -> str:
        snippet = build_snippet(shop.script_url, pageview=pageview)
        code = f"<script>{script}</script>" if script else ""
        return PAGE.format(title=title, snippet=snippet, script=code, body=body)

    return render


PURCHASE = """
var order = new URLSearchParams(location.search).get('order');
tagserver('user', {em: 'Jane.Doe@Example.com'});
tagserver('track', 'Purchase', {value: 99.99, currency: 'USD', order_id: order,
  content_ids: ['04639']}, {eventID: 'purchase-' + order});
"""

BURST = """
tagserver('track', 'ViewContent', {content_ids: ['04639']}, {eventID: 'burst-view'});
tagserver('track', 'AddToCart', {value: 5, currency: 'USD'}, {eventID: 'burst-cart'});
tagserver('trackCustom', 'WishlistShared', {}, {eventID: 'burst-custom'});
"""

#: Fires while the page is being left: the client must fall back to sendBeacon.
LEAVE = """
document.addEventListener('visibilitychange', function () {
  if (document.visibilityState === 'hidden') {
    tagserver('track', 'Lead', {content_name: 'newsletter'}, {eventID: 'lead-on-unload'});
  }
});
"""

DENIED = """
tagserver('consent', {ad_storage: 'denied', analytics_storage: 'granted'});
tagserver('track', 'Purchase', {value: 10, currency: 'USD'}, {eventID: 'denied-purchase'});
"""

MARKER = "tagserver('track', 'Contact', {}, {eventID: 'marker'});"

SPA = """
function go(path) { history.pushState({}, '', path); }
"""

PAGES: Mapping[str, PageRenderer] = {
    "landing": _page("Landing"),
    "product": _page("Product"),
    "thanks": _page("Thank you", script=PURCHASE),
    "burst": _page("Burst", script=BURST),
    "leave": _page("Leave", script=LEAVE, pageview=False,
                   body='<a id="away" href="/product">away</a>'),
    "denied": _page("Consent denied", script=DENIED),
    "marker": _page("Marker", script=MARKER, pageview=False),
    "spa": _page("Single-page app", script=SPA),
}
