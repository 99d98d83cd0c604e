"""The whole-app benchmark runs end to end (tiny: 300 hits, one run). Its figures are not checked
here: they live in bench/README.md."""

from __future__ import annotations

from tests.bench.run import run_bench


def test_bench_app_smoke() -> None:
    """``bench_app.py`` (the whole app in process) runs end to end and answers every hit 200
    (it exits non-zero otherwise)."""
    stdout = run_bench("bench_app.py", "--hits", "300", "--runs", "1")
    assert "CPU µs per hit, whole app in process (memory outbox, 300 hits" in stdout, stdout


def test_bench_app_repeatable_smoke() -> None:
    """``--repeatable`` (dry-run delivery, no claims during a run) runs end to end, every hit
    answered 200, and says so in its line."""
    stdout = run_bench("bench_app.py", "--hits", "300", "--runs", "1", "--repeatable")
    assert "(memory outbox, repeatable, 300 hits" in stdout, stdout
