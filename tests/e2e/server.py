"""Run the real tagserver as a separate process for end-to-end tests.

``TagServerProcess`` starts ``python -m tagserver serve`` on a free loopback port with the test
environment (see :func:`default_env`), waits for ``GET /healthy`` to answer ``ok``, captures
everything the process prints (stdout and stderr) into one file, and talks to it with httpx.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

__all__ = [
    "REPO_ROOT",
    "SHIPPED_TAGS_DIR",
    "PIXEL_ID",
    "ACCESS_TOKEN",
    "DEFAULT_HOST",
    "ServerStartError",
    "TagServerProcess",
    "default_env",
    "free_port",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_TAGS_DIR = REPO_ROOT / "tags"
PIXEL_ID = "1234567890"
ACCESS_TOKEN = "EAAB-TEST-TOKEN-123"
#: The Host the browser uses in the cases (a CNAMEd subdomain of the shop).
DEFAULT_HOST = "t.shop.example"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


class ServerStartError(RuntimeError):
    """The server process did not become healthy; the message holds its output."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def default_env(*, graph_url: str, outbox: Path) -> dict[str, str]:
    """The settings every end-to-end test starts from (on top of a copy of ``os.environ``)."""
    return {
        "TAGSERVER_SITE_DOMAINS": "www.shop.example",
        "TAGSERVER_META_GRAPH_URL": graph_url,
        "META_PIXEL_ID": PIXEL_ID,
        "META_ACCESS_TOKEN": ACCESS_TOKEN,
        "TAGSERVER_FLUSH_INTERVAL": "0.05",
        "TAGSERVER_RETRY_BASE_DELAY": "0.05",
        "TAGSERVER_RETRY_MAX_DELAY": "0.5",
        "TAGSERVER_LOG_LEVEL": "debug",
        "TAGSERVER_SECRET_KEY": "test-secret-key-0123456789abcdef",
        "TAGSERVER_OUTBOX": str(outbox),
        "PYTHONUNBUFFERED": "1",
        # httpx and headless Chromium are crawlers by their User-Agent; tests/security covers bots
        "TAGSERVER_BLOCK_BOTS": "0",
        # every test request comes from 127.0.0.1: load tests would hit the per-IP rate limit
        "TAGSERVER_RATE_LIMIT_IP": "0",
        "TAGSERVER_RATE_LIMIT_VISITOR": "0",
    }


class TagServerProcess:
    """One ``tagserver serve`` process on 127.0.0.1, with its output captured to a file.

    ``env`` values of None remove that variable from the process environment; ``tls`` (a PEM key
    file and certificate file) makes it serve https.
    """

    def __init__(
        self,
        *,
        tags_dir: Path,
        env: Mapping[str, str | None],
        output_path: Path,
        host: str = "127.0.0.1",
        start_timeout: float = START_TIMEOUT_S,
        extra_args: tuple[str, ...] = (),
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.tags_dir = tags_dir
        self.extra_args = extra_args
        self.tls = tls
        self.host = host
        self.port = 0
        self.output_path = output_path
        self.start_timeout = start_timeout
        merged = dict(os.environ)
        for key, value in env.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        self.env = merged
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._client: httpx.Client | None = None

    # lifecycle ---------------------------------------------------------------------------

    @property
    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "tagserver",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--tags",
            str(self.tags_dir),
            *(
                ["--ssl-keyfile", str(self.tls[0]), "--ssl-certfile", str(self.tls[1])]
                if self.tls
                else []
            ),
            *self.extra_args,
        ]

    def start(self) -> TagServerProcess:
        """Start the process and wait until ``GET /healthy`` answers ``200 ok``.

        Raises :class:`ServerStartError` with the captured output when it exits or stays
        unhealthy for ``start_timeout`` seconds (a taken port is retried with another one).
        """
        for attempt in range(3):
            self.port = free_port()
            self._output = self.output_path.open("ab")
            self._output.write(f"$ {' '.join(self.command)}\n".encode())
            self._output.flush()
            self._process = subprocess.Popen(
                self.command,
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
            )
            # a throwaway self-signed certificate in tests: nothing to verify against
            self._client = httpx.Client(base_url=self.url, timeout=10.0, verify=False)
            try:
                self._wait_healthy()
                return self
            except ServerStartError:
                port_taken = "address already in use" in self.output().lower()
                self.stop()
                if not port_taken or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_healthy(self) -> None:
        assert self._process is not None and self._client is not None
        deadline = time.monotonic() + self.start_timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise ServerStartError(
                    f"tagserver exited with code {code} before it was healthy\n"
                    f"command: {self.command}\n--- output ---\n{self.output()}"
                )
            try:
                response = self._client.get("/healthy", headers={"Host": DEFAULT_HOST})
                if response.status_code == 200 and response.text.strip() == "ok":
                    return
                last = f"{response.status_code} {response.text[:200]!r}"
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise ServerStartError(
            f"tagserver was not healthy within {self.start_timeout} s (last: {last})\n"
            f"command: {self.command}\n--- output ---\n{self.output()}"
        )

    def stop(self) -> int | None:
        """SIGTERM, wait up to 10 s, then SIGKILL; return the exit code."""
        code: int | None = None
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._process is not None:
            process, self._process = self._process, None
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=STOP_TIMEOUT_S)
            code = process.returncode
        if self._output is not None:
            self._output.close()
            self._output = None
        return code

    def kill(self) -> int | None:
        """SIGKILL (``kill -9``): no drain, no shutdown code; return the exit code."""
        if self._client is not None:
            self._client.close()
            self._client = None
        code: int | None = None
        if self._process is not None:
            process, self._process = self._process, None
            process.kill()
            code = process.wait(timeout=STOP_TIMEOUT_S)
        if self._output is not None:
            self._output.close()
            self._output = None
        return code

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> TagServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # talking to it -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def output(self) -> str:
        """Everything the process printed so far (stdout and stderr interleaved)."""
        if self._output is not None:
            self._output.flush()
        try:
            return self.output_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; ``Host`` defaults to ``t.shop.example`` unless given."""
        if self._client is None:
            raise RuntimeError("the server is not running")
        sent = dict(headers or {})
        if not any(k.lower() == "host" for k in sent):
            sent["Host"] = DEFAULT_HOST
        return self._client.request(method, path, json=json, content=content, headers=sent)

    def post(
        self,
        path: str,
        *,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        return self.request("POST", path, json=json, content=content, headers=headers)

    def get(self, path: str, *, headers: Mapping[str, str] | None = None) -> httpx.Response:
        return self.request("GET", path, headers=headers)

    def options(self, path: str, *, headers: Mapping[str, str] | None = None) -> httpx.Response:
        return self.request("OPTIONS", path, headers=headers)
