"""The rig against the backend's own FLAME (`python -m backend flame`, torch, in .venv): same vertices.

Runs the real backend subprocess. The demo stand-in FLAME
(`make-demo`, a FLAME-format pickle) also checks the allow-listed pickle path and demo naming.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import bpy
import numpy as np
import pytest
from helpers import evaluated_flame_vertices, synthetic_flame, synthetic_result, write, write_flame

from sheap_blender.core.flame.model import load_flame
from sheap_blender.reconstruct.importer import import_result

REPO = Path(__file__).resolve().parents[3]
PYTHON = REPO / ".venv" / "bin" / "python"
N = 16
ROWS = (0, 3, 8, 15)

pytestmark = pytest.mark.usefixtures("backend_environment")  # a missing .venv fails, never skips


def backend(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(PYTHON), "-m", "backend", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def backend_vertices(result: Path, flame: Path, out: Path) -> np.ndarray:
    done = backend("flame", str(result), "--flame", str(flame), "-o", str(out))
    assert done.returncode == 0, done.stderr
    return np.load(out)


def _compare(imported, verts: np.ndarray) -> float:
    worst = 0.0
    for row in ROWS:
        blender = evaluated_flame_vertices(bpy, imported.head, imported.frame_start + row)
        worst = max(worst, float(np.linalg.norm(blender - verts[row], axis=1).max()))
    return worst


def test_rig_matches_backend_flame(empty_scene, tmp_path):
    flame = write_flame(tmp_path / "flame.safetensors", synthetic_flame(seed=4))
    result = write(tmp_path / "clip.sheap.safetensors", synthetic_result(N, seed=5))
    verts = backend_vertices(result, flame, tmp_path / "verts.npy")
    assert verts.shape == (N, 5023, 3)
    imported = import_result(None, result, flame, frame_start=1)
    worst = _compare(imported, verts)
    print(f"worst vertex distance to the backend's FLAME: {worst:.2e} m")
    assert worst < 1e-5


@pytest.mark.parametrize("name", ["generic_model.pkl", "flame.safetensors"])
def test_demo_flame_stand_in(empty_scene, demo, tmp_path, name):
    flame = demo / name
    model = load_flame(flame)
    result = write(tmp_path / "clip.sheap.safetensors",
                   synthetic_result(N, seed=6, flame_sha=model.source_sha256, demo=False))
    verts = backend_vertices(result, flame, tmp_path / "verts.npy")
    imported = import_result(None, result, flame)
    assert _compare(imported, verts) < 1e-5
    assert model.is_demo and imported.is_demo  # a stand-in FLAME is named as such, even in a real result
    assert imported.collection.name.endswith("(demo)")
    assert not [w for w in imported.warnings if "SHA-256" in w]
