"""A head mesh's 68 landmarks found by the backend (`python -m backend mesh-landmarks`, no bpy here).

The extension never imports MediaPipe: the mesh goes to the backend's own environment as a temporary
.safetensors file, the backend renders it from the front, finds the face as on a footage frame and
lifts the landmarks onto the surface (backend/mesh_landmarks.py); the answer is a small JSON file.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.safetensors_file import write_safetensors
from .process import BackendError, backend_environment, backend_root

TIMEOUT_S = 300.0
NO_FACE = "no face found"  # how the backend's message for a mesh without a face begins


class NoFaceFound(InputError):
    """The backend saw no face on the mesh's renders (a face it does not know, or not a face)."""


def find_landmarks(python: str | os.PathLike, vertices: np.ndarray, triangles: np.ndarray, name: str) -> np.ndarray:
    """(68, 3) landmarks of the mesh (face frame: +Y up, the face toward +Z); InputError naming `name` when none."""
    if not Path(python).is_file():
        raise InputError(None, f"{python}: backend Python not found (run 'Set up backend' or set it in the "
                               "preferences): it finds the landmarks")
    try:
        root = backend_root()
    except BackendError as exc:
        raise InputError(None, str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="sheap-landmarks-") as folder:
        mesh, answer = Path(folder) / "mesh.safetensors", Path(folder) / "landmarks.json"
        write_safetensors(mesh, {"vertices": np.asarray(vertices, np.float32),
                                 "triangles": np.asarray(triangles, np.int32)})
        try:
            done = subprocess.run([str(python), "-m", "backend", "mesh-landmarks", str(mesh), "-o", str(answer)],
                                  cwd=root, env=backend_environment(), capture_output=True, text=True,
                                  timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise InputError(None, f"{name!r}: finding its landmarks took over {TIMEOUT_S:.0f} s") from None
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
            problem = errors[-1][len("error:"):].strip() if errors else f"the backend ended with {done.returncode}"
            problem = problem.replace(str(mesh) + ": ", "")
            raise (NoFaceFound if problem.startswith(NO_FACE) else InputError)(None, f"{name!r}: {problem}")
        landmarks = np.array(json.loads(answer.read_text())["landmarks68"], dtype=np.float64)
    return landmarks


def rough_landmarks(vertices: np.ndarray, reference_face: np.ndarray, reference_marks: np.ndarray) -> np.ndarray:
    """(68, 3) a reference's landmarks laid over the front of the mesh's upper part (face frame: +Y up, +Z
    toward the viewer), for the user to move where the face finder saw no face."""
    low, high = vertices.min(0), vertices.max(0)
    ref_low, ref_high = reference_face.min(0), reference_face.max(0)
    scale = (high[0] - low[0]) / (ref_high[0] - ref_low[0])
    offset = np.array([(low[0] + high[0]) / 2, high[1], high[2]]) - scale * np.array(
        [(ref_low[0] + ref_high[0]) / 2, ref_high[1], ref_high[2]])
    return scale * reference_marks + offset
