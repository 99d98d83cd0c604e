"""The CI smoke run of bench/harness.py: a few seconds per target, so the harness keeps working.

It checks that the harness runs end to end and reports numbers, and that tagserver delivered to
the fake Graph API exactly the events it accepted. It asserts no speed target: those are for the
full run documented in bench/README.md, never for a timed test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_harness_smoke_run(tmp_path: Path) -> None:
    assert shutil.which("wrk"), "wrk is missing: apt-get install -y wrk (.ci/run does)"
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "harness.py"), "--rounds", "1", "--duration", "2",
         "--warmup", "1", "--connections", "16", "--pin", "--floor", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| tagserver |" in done.stdout
    assert "| floor |" in done.stdout
    summary = json.loads(out.read_text())["summary"]
    for target in ("ceiling", "floor", "alternative", "tagserver"):
        assert summary[target]["rps"] > 0
        assert summary[target]["p99_ms"] >= summary[target]["p50_ms"] > 0
        assert summary[target]["cpu_us"] > 0
    tagserver = summary["tagserver"]
    assert tagserver["accepted"] > 0
    assert tagserver["delivered"] == tagserver["accepted"]
    assert tagserver["capi_per_1000"] > 0
    assert tagserver["half_rate_rps"] > 0
    assert tagserver["peak_rss_mb"] > 0
    assert 0 < tagserver["cold_start_s"] < 60
