"""Finds the field cases of ``shared/cases/`` (README: "Cases from the field").

The shared folder lies beside the repository (``<repo>/../shared``), in CI too; set
``TAGSERVER_SHARED_DIR`` when it lives elsewhere. A missing file fails loudly, never skips.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def find_case_file(name: str) -> Path:
    """The path of ``cases/<name>``; raises ``FileNotFoundError`` naming every place looked at."""
    candidates = [REPO_ROOT.parent / "shared" / "cases" / name]
    shared = os.environ.get("TAGSERVER_SHARED_DIR")
    if shared:
        candidates += [Path(shared) / "cases" / name, Path(shared) / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{name} not found; looked at: "
        + ", ".join(str(c) for c in candidates)
        + ". Copy shared/ beside the repository or set TAGSERVER_SHARED_DIR to that folder."
    )
