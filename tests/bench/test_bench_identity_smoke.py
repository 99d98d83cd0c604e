"""The request-context micro-benchmark runs end to end (tiny: 300 hits, one run per case) and its
own checks pass (a returning visitor keeps its id, an ad click gets ``_fbc``, the context
headers are Starlette's). Its figures are not checked here: they live in bench/README.md."""

from __future__ import annotations

from tests.bench.run import run_bench


def test_bench_identity_smoke() -> None:
    stdout = run_bench("bench_identity.py", "--hits", "300", "--runs", "1")
    for case in ("wrk", "returning", "fbclid", "public"):
        assert f"  {case} " in stdout, stdout
