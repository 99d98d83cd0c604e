"""The outbox benchmark runs end to end (tiny: one second per backend, the Python load client).
Its figures are not checked here: speed targets live in bench/README.md, measured on purpose."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.e2e.server import REPO_ROOT


def test_outbox_bench_smoke() -> None:
    result = subprocess.run(
        [sys.executable, "bench/outbox_bench.py", "--seconds", "1", "--rounds", "1",
         "--connections", "4", "--tool", "python", "--backends", "memory,sqlite", "--json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    rows = {row["backend"]: row for row in report["results"]}
    assert set(rows) == {"memory", "sqlite"}
    for row in rows.values():
        assert row["hits"] > 0 and row["hits_per_s"] > 0 and row["cpu_ms_per_hit"] > 0
    assert rows["memory"]["cpu_overhead"] == 0.0
