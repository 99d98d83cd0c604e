"""``tagserver serve`` ends with exit status 3 (uvicorn's ``STARTUP_FAILURE``) when its workers
cannot start, with one worker or several: a supervisor (systemd, a container runtime) must see the
failure. uvicorn's multi-worker supervisor stops on such a worker but returned normally (status 0).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.server import SHIPPED_TAGS_DIR, default_env, free_port


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_worker_that_cannot_start_ends_serve_with_status_3(
    tmp_path: Path, workers: str
) -> None:
    # the outbox's folder does not exist: every worker's lifespan fails when it opens the outbox
    env = {
        **os.environ,
        **default_env(graph_url="http://127.0.0.1:9", outbox=tmp_path / "missing" / "o.sqlite3"),
        "TAGSERVER_KEYS": str(tmp_path / "keys.sqlite3"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tagserver", "serve", "--host", "127.0.0.1",
         "--port", str(free_port()), "--workers", workers, "--tags", str(SHIPPED_TAGS_DIR)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
    assert "open failed" in done.stdout + done.stderr
