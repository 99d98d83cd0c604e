"""Live reload of the real server under load: no request fails while container files change,
a broken edit keeps the running container, SIGHUP reloads at once."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tagserver.container.loader import load_container
from tests.conftest import StartServer
from tests.e2e.server import ACCESS_TOKEN, DEFAULT_HOST, PIXEL_ID, TagServerProcess

ENV = {"META_PIXEL_ID": PIXEL_ID, "META_ACCESS_TOKEN": ACCESS_TOKEN,
       "SECOND_PIXEL_ID": "5555555555"}
HIT = {
    "event_name": "Purchase",
    "event_source_url": "https://www.shop.example/thanks",
    "custom_data": {"value": 10, "currency": "EUR"},
}
HEADERS = {"Host": DEFAULT_HOST, "Origin": "https://www.shop.example", "User-Agent": "load/1.0"}


def meta(name: str, pixel: str = "META_PIXEL_ID", **keys: Any) -> dict[str, Any]:
    return {"name": name, "type": "meta", "pixel_id": {"env": pixel},
            "access_token": {"env": "META_ACCESS_TOKEN"}, **keys}


def write(folder: Path, name: str, content: str) -> None:
    """A plain in-place write, as most editors and `cat >` do (not atomic)."""
    path = folder / name
    path.write_text(content, "utf-8")
    stamp = time.time_ns()
    os.utime(path, ns=(stamp, stamp))


def version(folder: Path) -> str:
    return load_container(folder, environ=ENV).version


def wait_for_version(server: TagServerProcess, expected: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = server.get("/healthy").headers.get("x-container-version", "")
        if seen == expected:
            return
        time.sleep(0.05)
    raise AssertionError(f"version {expected} not active after {timeout} s (still {seen})")


class Load:
    """Threads sending hits and health checks until stopped; every answer is recorded."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.stop = threading.Event()
        self.statuses: Counter[str] = Counter()
        self.failures: list[str] = []
        self.commands_seen: Counter[int] = Counter()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.work, daemon=True) for _ in range(threads)]

    def work(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10.0) as client:
            for i in range(100_000):  # bounded; stops long before
                if self.stop.is_set():
                    return
                try:
                    if i % 3 == 0:
                        reply = client.get("/healthy", headers={"Host": DEFAULT_HOST})
                        ok = reply.status_code == 200 and reply.text == "ok"
                        key = "healthy"
                    else:
                        reply = client.post("/e", json=HIT, headers=HEADERS)
                        ok = reply.status_code == 200 and "event_id" in reply.json()
                        key = "collect"
                        if ok:
                            with self.lock:
                                self.commands_seen[len(reply.json()["commands"])] += 1
                except httpx.HTTPError as exc:
                    ok, key = False, f"error {type(exc).__name__}"
                    reply = None
                with self.lock:
                    self.statuses[key] += 1
                    if not ok:
                        detail = reply.text[:200] if reply is not None else key
                        self.failures.append(f"{key}: {detail}")

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)


def test_no_failed_request_while_files_change(start_server: StartServer, tmp_path: Path) -> None:
    folder = tmp_path / "tags"
    folder.mkdir()
    one = json.dumps({"tags": [meta("meta", events=["Purchase"])]})
    write(folder, "meta.json", one)
    server = start_server(tags_dir=folder, env={**ENV, "TAGSERVER_RELOAD_INTERVAL": "0.1",
                                                 "TAGSERVER_LOG_LEVEL": "info"})
    v1 = version(folder)
    assert server.get("/healthy").headers["x-container-version"] == v1

    with Load(server.url) as load:
        time.sleep(0.5)
        # a valid edit: a second pixel in a second file
        write(folder, "second.json", json.dumps({"tags": [meta("second", "SECOND_PIXEL_ID")]}))
        v2 = version(folder)
        wait_for_version(server, v2)
        time.sleep(0.3)
        # broken edits: not JSON, then a schema violation; v2 keeps serving
        write(folder, "second.json", '{"tags": [{"name": "second", "type": "meta", ')
        time.sleep(0.6)
        assert server.get("/healthy").headers["x-container-version"] == v2
        write(folder, "second.json", json.dumps({"tags": [{"name": "second", "type": "metta"}]}))
        time.sleep(0.6)
        assert server.get("/healthy").headers["x-container-version"] == v2
        # fixed: the second pixel becomes server-only
        write(folder, "second.json", json.dumps(
            {"tags": [meta("second", "SECOND_PIXEL_ID", browser_mode="none")]}))
        v3 = version(folder)
        wait_for_version(server, v3)
        time.sleep(0.3)

    assert load.failures == [], load.failures[:10]
    assert load.statuses["collect"] >= 100 and load.statuses["healthy"] >= 50, load.statuses
    # v1 and v3 answer one Pixel command, v2 two: all three containers served hits
    assert load.commands_seen[1] > 0 and load.commands_seen[2] > 0, load.commands_seen
    reply = server.post("/e", json=HIT, headers=HEADERS)
    assert [c["args"][1] for c in reply.json()["commands"]] == [PIXEL_ID]

    log = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    loaded = [e["container_version"] for e in log if e.get("msg") == "container loaded"]
    assert loaded == [v2, v3]
    rejected = [e for e in log if e.get("msg", "").startswith("container edit rejected")]
    assert len(rejected) >= 2 and all(e["active_version"] == v2 for e in rejected)
    problems = [e for e in log if e.get("msg") == "container problem"]
    assert any(p["file"].endswith("second.json") and "not JSON" in p["problem"] for p in problems)
    assert any("'metta'" in p["problem"] for p in problems)
    started = [e for e in log if e.get("msg") == "started"]
    assert started[0]["container_version"] == v1


def test_sighup_reloads_at_once(start_server: StartServer, tmp_path: Path) -> None:
    folder = tmp_path / "tags"
    folder.mkdir()
    write(folder, "meta.json", json.dumps({"tags": [meta("meta", events=["Purchase"])]}))
    server = start_server(tags_dir=folder, env={**ENV, "TAGSERVER_RELOAD_INTERVAL": "0"})
    v1 = version(folder)
    write(folder, "meta.json", json.dumps({"tags": [meta("meta", events=["Lead"])]}))
    time.sleep(0.3)
    assert server.get("/healthy").headers["x-container-version"] == v1  # no polling
    assert server._process is not None
    server._process.send_signal(signal.SIGHUP)
    wait_for_version(server, version(folder), timeout=5)
    assert server.running
