"""tagserver.snippet and ``tagserver snippet``: the install snippet for the configured domains."""

from __future__ import annotations

import pytest

from tagserver.cli import main
from tagserver.snippet import QUEUE_STUB, build_snippet, render_snippets, script_urls


def test_snippet_is_the_queue_then_the_async_script() -> None:
    assert build_snippet("https://t.shop.com/t.js") == (
        f"<script>{QUEUE_STUB}</script>\n"
        '<script async src="https://t.shop.com/t.js"></script>'
    )


def test_snippet_options_become_script_attributes() -> None:
    html = build_snippet("/t.js", pixel_src="/px.js?a=1&b=2", pageview=False)
    assert '<script async src="/t.js" data-pixel-src="/px.js?a=1&amp;b=2" data-pageview="off">' in html


def test_path_mount_gives_one_script_url_per_site_domain() -> None:
    urls = script_urls(site_domains=["www.shop.com", "www.shop.de"], script_path="/m/t.js")
    assert urls == ["https://www.shop.com/m/t.js", "https://www.shop.de/m/t.js"]


def test_subdomain_gives_one_script_url() -> None:
    urls = script_urls(site_domains=["www.shop.com"], script_path="/t.js",
                       base_url="https://t.shop.com/")
    assert urls == ["https://t.shop.com/t.js"]


@pytest.mark.parametrize("base_url", ["t.shop.com", "ftp://t.shop.com", "https://t.shop.com/?a=1"])
def test_bad_base_url_is_refused(base_url: str) -> None:
    with pytest.raises(ValueError, match="is not a URL like"):
        script_urls(site_domains=[], script_path="/t.js", base_url=base_url)


def test_no_domain_is_explained() -> None:
    with pytest.raises(ValueError, match="TAGSERVER_SITE_DOMAINS"):
        render_snippets(site_domains=[], allowed_origins=[], script_path="/t.js")


def test_cli_prints_the_snippet_for_each_site_domain(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TAGSERVER_SITE_DOMAINS", "www.shop.com,www.shop.de")
    monkeypatch.setenv("TAGSERVER_SCRIPT_PATH", "/metrics/t.js")
    assert main(["snippet"]) == 0
    out = capsys.readouterr().out
    assert "<!-- tagserver: in the <head> of every page on https://www.shop.com -->" in out
    assert '<script async src="https://www.shop.com/metrics/t.js"></script>' in out
    assert '<script async src="https://www.shop.de/metrics/t.js"></script>' in out
    assert out.count(QUEUE_STUB) == 2
    assert "tagserver('track', 'Purchase'" in out


def test_cli_with_a_subdomain_names_the_allowed_origins(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TAGSERVER_SITE_DOMAINS", "www.shop.com")
    assert main(["snippet", "--url", "https://t.shop.com", "--no-pageview"]) == 0
    out = capsys.readouterr().out
    assert "every page on https://www.shop.com -->" in out
    assert '<script async src="https://t.shop.com/t.js" data-pageview="off"></script>' in out


def test_cli_without_domains_fails_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TAGSERVER_SITE_DOMAINS", raising=False)
    assert main(["snippet"]) == 1
    assert "set TAGSERVER_SITE_DOMAINS" in capsys.readouterr().err
