"""The delivery micro-benchmark runs end to end (tiny: 500 events, one run per backend) and its
own check passes (every event delivered once, as submitted). Its figures are not checked here:
they live in bench/README.md, measured on purpose."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.e2e.server import REPO_ROOT


def test_bench_delivery_smoke() -> None:
    result = subprocess.run(
        [sys.executable, "bench/bench_delivery.py", "--events", "500", "--runs", "1",
         "--backends", "memory,sqlite", "--json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    rows = {row["backend"]: row for row in report["results"]}
    assert set(rows) == {"memory", "sqlite"}
    for row in rows.values():
        assert row["cpu_us_per_event_best"] > 0 and row["requests_best_run"] >= 1
