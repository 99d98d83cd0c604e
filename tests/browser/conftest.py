"""Fixtures of the browser suite: Chromium, the TLS certificate, a fresh browser context per test,
and the two deployments (path mount behind the shop's load balancer; ``t.`` subdomain).

A missing ``/usr/bin/chromium`` fails the suite (it is never skipped): ``.ci/run`` installs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.browser.harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SHOP_HOST,
    TAG_HOST,
    BrowserSession,
    PixelRecorder,
    ShopServer,
    make_certificate,
)
from tests.browser.site import PAGES
from tests.conftest import StartServer
from tests.e2e.server import TagServerProcess

DeploymentKind = Literal["path", "subdomain"]
#: One pixel firing for every event (custom events included).
TAGS_DIR = Path(__file__).parent / "tags"


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for the test host names: ``(key, cert)``."""
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (no browser download)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser suite needs Debian's chromium "
            "(apt-get install -y chromium; .ci/run does this)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def session(chromium: Browser) -> Iterator[BrowserSession]:
    """A fresh browser context (empty cookie jar) with Meta's Pixel answered by a recorder."""
    context = chromium.new_context(ignore_https_errors=True)
    pixel = PixelRecorder()
    pixel.install(context)
    yield BrowserSession(context=context, pixel=pixel)
    context.close()


@dataclass
class Deployment:
    """A shop on ``https://www.shop.test:<port>`` with tagserver mounted one of two ways."""

    kind: DeploymentKind
    shop: ShopServer
    server: TagServerProcess

    def url(self, path: str, host: str = SHOP_HOST) -> str:
        return self.shop.url(path, host)

    @property
    def collect_url(self) -> str:
        return self.shop.script_url.rsplit("/", 1)[0] + "/e"


def start_deployment(
    kind: DeploymentKind,
    *,
    start_server: StartServer,
    tls: tuple[Path, Path],
    tags_dir: Path = TAGS_DIR,
    env: dict[str, str] | None = None,
) -> tuple[ShopServer, TagServerProcess]:
    """``path``: tagserver on plain http behind the shop's own https server, at ``/ts/``.
    ``subdomain``: tagserver on ``https://t.shop.test:<port>``, CORS for the shop's origin."""
    if kind == "path":
        server = start_server(
            env={"TAGSERVER_SITE_DOMAINS": SHOP_HOST, **(env or {})}, tags_dir=tags_dir
        )
        shop = ShopServer(tls=tls, pages=PAGES, upstream=server.url).start()
        shop.script_url = shop.origin() + "/ts/t.js"
        return shop, server
    shop = ShopServer(tls=tls, pages=PAGES).start()
    try:
        server = start_server(
            tls=tls,
            tags_dir=tags_dir,
            env={
                "TAGSERVER_SITE_DOMAINS": SHOP_HOST,
                "TAGSERVER_ALLOWED_ORIGINS": shop.origin(),
                **(env or {}),
            },
        )
    except BaseException:
        shop.stop()
        raise
    shop.script_url = f"https://{TAG_HOST}:{server.port}/t.js"
    return shop, server


@pytest.fixture(params=["path", "subdomain"])
def deployment(
    request: pytest.FixtureRequest, start_server: StartServer, tls_files: tuple[Path, Path]
) -> Iterator[Deployment]:
    """Each deployment in turn."""
    shop, server = start_deployment(request.param, start_server=start_server, tls=tls_files)
    yield Deployment(request.param, shop, server)
    shop.stop()


@pytest.fixture
def subdomain(start_server: StartServer, tls_files: tuple[Path, Path]) -> Iterator[Deployment]:
    """The cross-origin deployment only (``t.shop.test``)."""
    shop, server = start_deployment("subdomain", start_server=start_server, tls=tls_files)
    yield Deployment("subdomain", shop, server)
    shop.stop()
