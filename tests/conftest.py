"""Shared fixtures: the fake Graph API and the real tagserver process for end-to-end tests."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path

import pytest

from tests.e2e.redis_server import RedisServerProcess
from tests.e2e.server import SHIPPED_TAGS_DIR, ServerStartError, TagServerProcess, default_env
from tests.fakes.ga4 import FakeGA4
from tests.fakes.graph import FakeGraphAPI

StartServer = Callable[..., TagServerProcess]

_SERVERS = pytest.StashKey[list[TagServerProcess]]()
_GRAPH = pytest.StashKey[FakeGraphAPI]()
_GA4 = pytest.StashKey[FakeGA4]()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServerProcess]:
    """A real redis-server on a free 127.0.0.1 port for the whole session (no persistence)."""
    server = RedisServerProcess(tmp_path_factory.mktemp("redis"))
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServerProcess) -> str:
    """The URL of the session's Redis, emptied for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def fake_graph(request: pytest.FixtureRequest) -> Iterator[FakeGraphAPI]:
    """A fresh fake of Meta's Graph API on 127.0.0.1 (see tests/fakes/graph.py)."""
    with FakeGraphAPI() as fake:
        request.node.stash[_GRAPH] = fake
        yield fake


@pytest.fixture
def fake_ga4(request: pytest.FixtureRequest) -> Iterator[FakeGA4]:
    """A fresh fake of GA4's collection endpoint on 127.0.0.1 (see tests/fakes/ga4.py)."""
    with FakeGA4() as fake:
        request.node.stash[_GA4] = fake
        yield fake


@pytest.fixture
def start_server(
    request: pytest.FixtureRequest, tmp_path: Path, fake_graph: FakeGraphAPI, fake_ga4: FakeGA4
) -> Iterator[StartServer]:
    """Factory: ``start_server(env={...}, tags_dir=..., args=(...), tls=(key, cert))`` runs
    ``tagserver serve`` (with ``args`` appended, e.g. ``("--workers", "2")``) and waits.

    The environment is a copy of ``os.environ`` plus :func:`default_env` (pointing at
    ``fake_graph``) and ``TAGSERVER_GA4_URL`` (pointing at ``fake_ga4``), then ``env`` (None
    removes a variable). Every started server is stopped with SIGTERM at teardown; a failing
    test's report shows each server's output and the requests the fakes received. A server
    that does not become healthy fails the test with its captured output.
    """
    started: list[TagServerProcess] = []
    request.node.stash[_SERVERS] = started

    def start(
        *,
        env: Mapping[str, str | None] | None = None,
        tags_dir: Path = SHIPPED_TAGS_DIR,
        args: tuple[str, ...] = (),
        tls: tuple[Path, Path] | None = None,
    ) -> TagServerProcess:
        merged: dict[str, str | None] = {
            **default_env(graph_url=fake_graph.url, outbox=tmp_path / "outbox.sqlite3"),
            "TAGSERVER_GA4_URL": fake_ga4.url,
            **(env or {}),
        }
        server = TagServerProcess(
            tags_dir=tags_dir,
            env=merged,
            output_path=tmp_path / f"server-{len(started)}.log",
            extra_args=args,
            tls=tls,
        )
        started.append(server)
        try:
            server.start()
        except ServerStartError as exc:
            message = str(exc)
        else:
            return server
        pytest.fail(message, pytrace=False)

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def tag_server(start_server: StartServer) -> TagServerProcess:
    """A running tagserver with the default end-to-end settings."""
    return start_server()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the server output and the fake's requests to the report of a failed test."""
    report = yield
    if report.when == "call" and report.failed:
        servers: list[TagServerProcess] = item.stash.get(_SERVERS, [])
        for index, server in enumerate(servers):
            output = server.output()
            if len(output) > 30000:
                output = "...\n" + output[-30000:]
            report.sections.append((f"tagserver output #{index}", output or "(empty)"))
        fake = item.stash.get(_GRAPH, None)
        if fake is not None:
            report.sections.append(("fake Graph API requests", fake.describe()))
        ga4 = item.stash.get(_GA4, None)
        if ga4 is not None:
            report.sections.append(("fake GA4 requests", ga4.describe()))
    return report
