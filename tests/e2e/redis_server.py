"""A real ``redis-server`` (the Debian package) on a free loopback port, for tests.

Started as ``redis-server --port <free> --bind 127.0.0.1 --save '' --appendonly no`` in a
temporary folder, waited for with ``PING``, stopped with SIGTERM. Nothing mocks Redis.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from tests.e2e.server import free_port

START_TIMEOUT_S = 10.0
INSTALL_HINT = (
    "redis-server is not installed: run `apt-get update && apt-get install -y redis-server` "
    "(.ci/run does this on a bare machine)"
)


class RedisServerProcess:
    """One ``redis-server`` process; ``url`` is ``redis://127.0.0.1:<port>/0``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServerProcess:
        """Start and wait for ``PING``; RuntimeError with the log when it does not answer."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(INSTALL_HINT)
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / "redis.log"
        for _ in range(3):
            self.port = free_port()
            self._process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.workdir), "--logfile", str(log)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            )  # fmt: skip
            if self._wait():
                return self
            self.stop()
        text = log.read_text(errors="replace") if log.exists() else "(no log)"
        raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT_S} s\n{text}")

    def _wait(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    return False
                try:
                    if client.ping():
                        return True
                except redis.RedisError:
                    time.sleep(0.05)
            return False
        finally:
            client.close()

    def flush(self) -> None:
        """Remove every key (each test starts from an empty Redis)."""
        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            client.flushall()
        finally:
            client.close()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
