"""The hot-path micro-benchmark's ``--json-parts`` mode runs end to end (tiny: 300 hits, one run)
and names every part. Its figures are not checked here: they live in bench/README.md."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.server import REPO_ROOT


def test_bench_hot_path_json_parts_smoke() -> None:
    result = subprocess.run(
        [sys.executable, "bench/bench_hot_path.py", "--json-parts", "--hits", "300", "--runs", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for part in ("decode_json_body", "JSONReply", "compact_json", "sum of bests"):
        assert part in result.stdout
