"""The delivery micro-benchmark runs end to end (tiny: 500 events, one run per backend) and its
own check passes (every event delivered once, as submitted). Its figures are not checked here:
they live in bench/README.md, measured on purpose."""

from __future__ import annotations

from tests.bench.run import last_json_line, run_bench


def test_bench_delivery_smoke() -> None:
    report = last_json_line(run_bench(
        "bench_delivery.py", "--events", "500", "--runs", "1", "--backends", "memory,sqlite",
        "--json",
    ))  # fmt: skip
    rows = {row["backend"]: row for row in report["results"]}
    assert set(rows) == {"memory", "sqlite"}
    for row in rows.values():
        assert row["cpu_us_per_event_best"] > 0 and row["requests_best_run"] >= 1
