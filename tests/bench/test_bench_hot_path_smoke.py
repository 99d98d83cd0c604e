"""The hot-path micro-benchmark's ``--json-parts`` mode runs end to end (tiny: 300 hits, one run)
and names every part. Its figures are not checked here: they live in bench/README.md."""

from __future__ import annotations

from tests.bench.run import run_bench


def test_bench_hot_path_json_parts_smoke() -> None:
    stdout = run_bench("bench_hot_path.py", "--json-parts", "--hits", "300", "--runs", "1")
    for part in ("decode_json_body", "JSONReply", "compact_json", "sum of bests"):
        assert part in stdout

