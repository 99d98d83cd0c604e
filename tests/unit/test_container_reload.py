"""Live reload: the poller, SIGHUP, broken edits, and the version on ``GET /healthy``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tagserver.app import create_app
from tagserver.container.loader import Container, load_container
from tagserver.container.watch import ContainerReloader, folder_fingerprint, loader_for
from tagserver.settings import load_settings
from tests.containers import ENVIRON, meta_tag


def write(folder: Path, events: list[str] | str, *, name: str = "meta.json") -> None:
    folder.mkdir(exist_ok=True)
    data: dict[str, Any] = {"tags": [meta_tag(name.removesuffix(".json"), events=events)]}
    path = folder / name
    path.write_text(json.dumps(data), "utf-8")
    # make the change visible to the poller even within one mtime tick
    stamp = time.time_ns() + 1_000_000 * len(path.read_bytes())
    os.utime(path, ns=(stamp, stamp))


def version_of(folder: Path) -> str:
    return load_container(folder, environ=ENVIRON).version


def reloader_for(folder: Path, box: list[Container]) -> ContainerReloader:
    box.append(load_container(folder, environ=ENVIRON))
    return ContainerReloader(
        folder,
        current=lambda: box[-1],
        activate=box.append,
        load=loader_for(ENVIRON),
        interval=0.05,
    )


def test_fingerprint_changes_with_files(tmp_path: Path) -> None:
    write(tmp_path, ["Purchase"])
    first = folder_fingerprint(tmp_path)
    assert folder_fingerprint(tmp_path) == first
    write(tmp_path, ["Purchase", "Lead"])
    assert folder_fingerprint(tmp_path) != first
    (tmp_path / "notes.txt").write_text("ignored")
    assert [name for name, _, _ in folder_fingerprint(tmp_path)] == ["meta.json"]
    assert folder_fingerprint(tmp_path / "missing") == ()


def test_valid_edit_swaps_and_broken_edit_keeps_the_old_container(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, ["Purchase"])
    box: list[Container] = []
    reloader = reloader_for(tmp_path, box)

    async def scenario() -> None:
        assert await reloader.check() is False  # nothing changed yet
        write(tmp_path, ["Purchase", "Lead"])
        assert await reloader.check() is True
        assert box[-1].version == version_of(tmp_path)
        good = box[-1].version
        (tmp_path / "meta.json").write_text('{"tags": [ {"name": "meta", ', "utf-8")
        with caplog.at_level(logging.INFO, logger="tagserver.container"):
            assert await reloader.check() is False
        assert box[-1].version == good
        write(tmp_path, ["PageView"], name="second.json")  # broken file still there
        assert await reloader.check() is False
        write(tmp_path, ["AddToCart"])  # fixed: both files load
        assert await reloader.check() is True
        assert box[-1].version == version_of(tmp_path)

    asyncio.run(scenario())
    assert reloader.reloads == 2
    assert reloader.failures == 2
    rejected = [r for r in caplog.records if r.getMessage().startswith("container edit rejected")]
    assert rejected and rejected[0].__dict__["problems"] == 1
    problems = [r for r in caplog.records if r.getMessage() == "container problem"]
    assert problems[0].__dict__["file"].endswith("meta.json")
    assert "not JSON" in problems[0].__dict__["problem"]
    assert all(r.levelno == logging.ERROR for r in rejected + problems)


def test_polling_task_and_sighup(tmp_path: Path) -> None:
    write(tmp_path, ["Purchase"])
    box: list[Container] = []
    reloader = reloader_for(tmp_path, box)
    reloader.interval = 3600  # only SIGHUP can trigger the second reload

    async def wait_for(count: int) -> None:
        for _ in range(200):
            if len(box) >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"no reload: {len(box)} container(s)")

    async def scenario() -> None:
        await reloader.start()
        try:
            assert reloader._signal_installed, "SIGHUP handler not installed"
            write(tmp_path, ["Lead"])
            os.kill(os.getpid(), signal.SIGHUP)
            await wait_for(2)
            assert box[-1].version == version_of(tmp_path)
        finally:
            await reloader.stop()

    asyncio.run(scenario())


def test_healthy_exposes_the_version_and_the_app_reloads(tmp_path: Path) -> None:
    folder = tmp_path / "tags"
    write(folder, ["Purchase"])
    settings = load_settings({"TAGSERVER_TAGS": str(folder), "TAGSERVER_RELOAD_INTERVAL": "0.05",
                              "TAGSERVER_SITE_DOMAINS": "www.shop.example",
                              "TAGSERVER_DRY_RUN": "1"})  # outbound requests are recorded
    os.environ.update(ENVIRON)  # the app reads the container's variables from os.environ
    try:
        app = create_app(settings)
    finally:
        for key in ENVIRON:
            os.environ.pop(key, None)
    first_version = version_of(folder)

    async def scenario() -> None:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t.shop.example"
        ) as client:
            first = await client.get("/healthy")
            assert first.status_code == 200 and first.text == "ok"
            assert first.headers["x-container-version"] == first_version
            os.environ.update(ENVIRON)
            try:
                write(folder, ["Lead"])
                expected = version_of(folder)
                for _ in range(200):
                    reply = await client.get("/healthy")
                    if reply.headers["x-container-version"] == expected:
                        break
                    await asyncio.sleep(0.02)
                else:
                    raise AssertionError("the container was not reloaded")
            finally:
                for key in ENVIRON:
                    os.environ.pop(key, None)
            hit = {"event_name": "Lead", "event_source_url": "https://www.shop.example/"}
            reply = await client.post("/e", json=hit, headers={"user-agent": "UA"})
            assert reply.status_code == 200
            assert reply.json()["commands"][0]["args"][2] == "Lead"
        (record,) = app.state.tagserver.recorder.records()
        assert record["json"]["data"][0]["event_name"] == "Lead"
        assert record["json"]["access_token"] == "***"

    asyncio.run(scenario())


def test_an_explicit_container_is_not_watched(tmp_path: Path) -> None:
    write(tmp_path, ["Purchase"])
    settings = load_settings({"TAGSERVER_TAGS": str(tmp_path)})
    app = create_app(settings, container=load_container(tmp_path, environ=ENVIRON))

    async def scenario() -> None:
        async with app.router.lifespan_context(app):
            assert app.state.tagserver.reloader is None

    asyncio.run(scenario())


def test_a_container_without_tags_is_loaded_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, ["Purchase"])
    box: list[Container] = []
    reloader = reloader_for(tmp_path, box)

    async def scenario() -> None:
        path = tmp_path / "meta.json"
        path.write_text('{"tags": []}', "utf-8")  # an editor emptied the file
        stamp = time.time_ns() + 5_000_000_000
        os.utime(path, ns=(stamp, stamp))
        with caplog.at_level(logging.INFO, logger="tagserver.container"):
            assert await reloader.check() is True
        assert box[-1].tags == ()

    asyncio.run(scenario())
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == "container has no tags: nothing will fire"
    assert warning.__dict__["container_version"] == box[-1].version
