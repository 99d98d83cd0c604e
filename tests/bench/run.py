"""Run one of bench/'s scripts the way its README says, for the smoke tests."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.e2e.server import REPO_ROOT


def run_bench(script: str, *args: str, timeout_s: float = 120) -> str:
    """The standard output of ``python bench/<script> <args>`` run from the repository root;
    fails the test (with the script's standard error) when it exits non-zero."""
    result = subprocess.run(
        [sys.executable, f"bench/{script}", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def last_json_line(stdout: str) -> Any:
    """The report a script printed last with ``--json`` (one JSON line)."""
    return json.loads(stdout.strip().splitlines()[-1])
