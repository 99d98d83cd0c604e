"""The bookkeeping micro-benchmark runs end to end (tiny: 2,000 hits, one run). Its figures are
not checked here: they live in bench/README.md."""

from __future__ import annotations

from tests.bench.run import run_bench


def test_bench_bookkeeping_smoke() -> None:
    stdout = run_bench("bench_bookkeeping.py", "--hits", "2000", "--runs", "1")
    for case in ("all", "access_log", "observe", "counter", "tag_fired"):
        assert f"  {case} " in stdout, stdout
