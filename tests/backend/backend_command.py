"""`python -m backend ...` as a subprocess, the way users and Blender run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def backend(*args: str | Path, check: bool = False) -> subprocess.CompletedProcess:
    completed = subprocess.run([sys.executable, "-m", "backend", *map(str, args)], cwd=REPO, capture_output=True,
                               text=True, timeout=600)
    if check and completed.returncode != 0:
        raise AssertionError(f"backend {args[0]} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return completed
