"""The README's main command (`make run` = scripts/quickstart.py): with no weights, demo stand-ins, said so."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from backend_command import REPO

from sheap_blender.core.result.result_format import read_result


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
    if (REPO / ".venv-bpy45" / "bin" / "python").is_file():  # `make run` sets it up; then a .blend is made
        blend = tmp_path / "out" / "astronaut.blend"
        assert blend.is_file() and blend.read_bytes()[:7] == b"BLENDER"
        assert f"open {blend} in Blender" in completed.stdout


def test_main_job_can_stop_at_the_result(tmp_path, demo):
    completed = subprocess.run([sys.executable, "scripts/quickstart.py", demo / "astronaut.mp4", "--flame",
                                demo / "flame.safetensors", "--weights", demo / "demo_sheap_model.pt", "--out",
                                tmp_path, "--no-blend"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["astronaut.sheap.safetensors", "astronaut.verts.npy"]
