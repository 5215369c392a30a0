"""The README's main command (`make run` = scripts/quickstart.py): with no weights, demo stand-ins, said so."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from backend_command import REPO

from sheap_blender.core.result_format import read_result


def test_main_job_without_weights_uses_and_names_the_demo_stand_ins(tmp_path):
    empty = tmp_path / "weights"
    empty.mkdir()
    completed = subprocess.run([sys.executable, "scripts/quickstart.py", "--weights-dir", empty, "--demo-dir",
                                tmp_path / "demo", "--out", tmp_path / "out"], cwd=REPO, capture_output=True,
                               text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "using demo weights" in completed.stdout and "demo FLAME stand-in" in completed.stdout
    result = read_result(tmp_path / "out" / "astronaut.sheap.safetensors")
    assert result.is_demo and result.n_frames == 90
    verts = np.load(tmp_path / "out" / "astronaut.verts.npy")
    assert verts.shape == (90, 5023, 3) and np.isfinite(verts).all()
