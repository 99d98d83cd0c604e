"""The outbox benchmark runs end to end (tiny: one second per backend, the Python load client).
Its figures are not checked here: speed targets live in bench/README.md, measured on purpose."""

from __future__ import annotations

from tests.bench.run import last_json_line, run_bench


def test_outbox_bench_smoke() -> None:
    report = last_json_line(run_bench(
        "outbox_bench.py", "--seconds", "1", "--rounds", "1", "--connections", "4", "--tool",
        "python", "--backends", "memory,sqlite", "--json",
    ))  # fmt: skip
    rows = {row["backend"]: row for row in report["results"]}
    assert set(rows) == {"memory", "sqlite"}
    for row in rows.values():
        assert row["hits"] > 0 and row["hits_per_s"] > 0 and row["cpu_ms_per_hit"] > 0
    assert rows["memory"]["cpu_overhead"] == 0.0
