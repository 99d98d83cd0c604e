"""The browser client as served: the packaged copy of client_js/t.js, its size, caching, and the
collect path written in relative to the script's own path."""

from __future__ import annotations

import gzip
from typing import Any

import httpx
import pytest

from tagserver.app import COLLECT_MARKER, create_app, load_script
from tagserver.container.loader import load_container
from tagserver.settings import load_settings
from tests.asgi import call_app
from tests.e2e.server import REPO_ROOT, SHIPPED_TAGS_DIR

SOURCE = REPO_ROOT / "client_js" / "t.js"
PACKAGED = REPO_ROOT / "tagserver" / "static" / "t.js"
ENVIRON = {"META_PIXEL_ID": "1234567890", "META_ACCESS_TOKEN": "EAAB-TEST-TOKEN-123"}
#: The issue's budget for the client, gzipped.
MAX_GZIPPED_BYTES = 3 * 1024


class Client:
    """GETs against the app in-process (the script route needs no lifespan)."""

    def __init__(self, **environ: str) -> None:
        settings = load_settings({**ENVIRON, **environ})
        self.app: Any = create_app(
            settings, container=load_container(SHIPPED_TAGS_DIR, environ=ENVIRON)
        )

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return call_app(self.app, "GET", path, headers=headers)


@pytest.fixture
def client() -> Client:
    return Client()


def test_packaged_copy_is_the_source() -> None:
    assert PACKAGED.read_bytes() == SOURCE.read_bytes(), (
        "client_js/t.js is the source: cp client_js/t.js tagserver/static/t.js"
    )


def test_served_client_is_under_3_kb_gzipped(client: Client) -> None:
    body = client.get("/t.js").content
    size = len(gzip.compress(body, compresslevel=9))
    assert 1000 < size < MAX_GZIPPED_BYTES, f"t.js is {size} bytes gzipped"


def test_client_is_cacheable_with_an_etag(client: Client) -> None:
    first = client.get("/t.js")
    assert first.status_code == 200
    assert first.headers["content-type"] == "text/javascript; charset=utf-8"
    assert first.headers["cache-control"] == "public, max-age=3600"
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = client.get("/t.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert client.get("/t.js", headers={"If-None-Match": '"other"'}).status_code == 200


def test_default_paths_serve_the_source_unchanged(client: Client) -> None:
    assert client.get("/t.js").content == SOURCE.read_bytes()


@pytest.mark.parametrize(
    ("script_path", "collect_path", "relative"),
    [
        ("/t.js", "/e", "e"),
        ("/metrics/t.js", "/metrics/e", "e"),
        ("/static/t.js", "/e", "../e"),
        ("/a/t.js", "/b/c/hit", "../b/c/hit"),
    ],
)
def test_collect_path_is_written_relative_to_the_script(
    script_path: str, collect_path: str, relative: str
) -> None:
    script = load_script(script_path=script_path, collect_path=collect_path)
    assert script.body.count(b"/*collect*/") == 1
    assert f"/*collect*/'{relative}'".encode() in script.body


def test_renamed_paths_are_served() -> None:
    client = Client(TAGSERVER_SCRIPT_PATH="/assets/x.js", TAGSERVER_COLLECT_PATH="/h")
    body = client.get("/assets/x.js").content
    assert b"/*collect*/'../h'" in body
    assert client.get("/t.js").status_code == 404
    etag = client.get("/assets/x.js").headers["etag"]
    assert Client().get("/t.js").headers["etag"] != etag  # the ETag follows the body


def test_the_source_carries_the_marker_once() -> None:
    assert SOURCE.read_bytes().count(COLLECT_MARKER) == 1


def test_client_defines_one_global_and_no_build_syntax() -> None:
    text = SOURCE.read_text("utf-8")
    assert text.rstrip().endswith("})(window, document, 'tagserver');")
    for modern_only in ("import ", "export ", "require("):
        assert modern_only not in text


def test_client_is_sent_gzipped_under_3_kb_to_browsers_that_accept_it(client: Client) -> None:
    zipped = client.get("/t.js", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < MAX_GZIPPED_BYTES
    assert zipped.content == SOURCE.read_bytes()  # httpx decodes it back
    assert "Accept-Encoding" in zipped.headers["vary"]
    plain = client.get("/t.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == SOURCE.read_bytes()


@pytest.mark.parametrize(
    "if_none_match", ["W/{etag}", '"x", {etag}', "*", ' W/{etag} , "y"']
)
def test_revalidation_accepts_weak_and_listed_etags(client: Client, if_none_match: str) -> None:
    etag = client.get("/t.js").headers["etag"]
    again = client.get("/t.js", headers={"If-None-Match": if_none_match.format(etag=etag)})
    assert again.status_code == 304
