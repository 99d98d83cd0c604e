"""The request-context micro-benchmark runs end to end (tiny: 300 hits, one run per case) and its
own checks pass (a returning visitor keeps its id, an ad click gets ``_fbc``, the context
headers are Starlette's). Its figures are not checked here: they live in bench/README.md."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.server import REPO_ROOT


def test_bench_identity_smoke() -> None:
    result = subprocess.run(
        [sys.executable, "bench/bench_identity.py", "--hits", "300", "--runs", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for case in ("wrk", "returning", "fbclid", "public"):
        assert f"  {case} " in result.stdout, result.stdout
