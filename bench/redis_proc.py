"""A throwaway ``redis-server`` on loopback for the benchmarks (no persistence, its own folder)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


def start_redis(
    workdir: Path, port: int, *, cpu: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``redis-server`` on ``127.0.0.1:port`` (on CPU ``cpu`` with ``taskset`` when given
    and installed) and wait up to 5 s for its ``PONG``; returns the process and its URL.

    Raises ``RuntimeError`` when redis-server is not installed or does not answer.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (Debian package redis-server)")
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
    taskset = shutil.which("taskset")
    if cpu is not None and taskset:
        command = [taskset, "-c", str(cpu), *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")
