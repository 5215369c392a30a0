"""The FLAME head model as plain arrays, loaded from the user's `.pkl` or the converted safetensors.

Sizes are FLAME 2020's: 5023 vertices, 9976 triangles, 300 identity + 100 expression directions,
36 pose-corrective directions (joints 1..4, (R - I) row-major), 5 joints
(0 root/torso, 1 neck, 2 jaw, 3 left eye, 4 right eye; parents -1, 0, 1, 1, 1).
Units are metres, +Y up, the face looks toward +Z.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

N_VERTICES = 5023
N_FACES = 9976
N_SHAPE = 300
N_EXPR = 100
N_POSE_FEATURES = 36
N_EYELIDS = 2
JOINT_NAMES = ("root", "neck", "jaw", "eye_l", "eye_r")
PARENTS = np.array([-1, 0, 1, 1, 1], dtype=np.int64)
MAX_ABS_VALUE = 1e3  # metres or metres per unit coefficient: FLAME's own values stay far below 10


@dataclass
class FlameModel:
    v_template: np.ndarray  # (V, 3) float
    shapedirs: np.ndarray  # (V, 3, 400): 0..299 identity, 300..399 expression
    posedirs: np.ndarray  # (V, 3, 36)
    j_regressor: np.ndarray  # (5, V) dense
    weights: np.ndarray  # (V, 5) skinning weights
    faces: np.ndarray  # (F, 3) int64
    parents: np.ndarray  # (5,) int64, -1 for the root
    eyelid_dirs: np.ndarray | None = None  # (V, 3, 2), SHeaP's eyelid blendshapes, optional
    source_sha256: str = ""  # SHA-256 of the file FLAME was first read from (the .pkl)
    is_demo: bool = False  # the project's stand-in (pickle marker / safetensors metadata demo="true"), not FLAME

    @property
    def n_vertices(self) -> int:
        return self.v_template.shape[0]

    def to_tensors(self) -> dict[str, np.ndarray]:
        """The arrays under the names the converted safetensors file uses."""
        tensors = {
            "v_template": self.v_template.astype(np.float32),
            "shapedirs": self.shapedirs.astype(np.float32),
            "posedirs": self.posedirs.astype(np.float32),
            "J_regressor": self.j_regressor.astype(np.float32),
            "weights": self.weights.astype(np.float32),
            "f": self.faces.astype(np.int64),
            "parents": self.parents.astype(np.int64),
        }
        if self.eyelid_dirs is not None:
            tensors["eyelids"] = self.eyelid_dirs.astype(np.float32)
        return tensors


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check(path: Path, model: FlameModel) -> FlameModel:
    """Refuse arrays whose sizes are not FLAME 2020's, naming the first that is off."""
    v = model.v_template.shape[0] if model.v_template.ndim == 2 else -1
    expected = {
        "v_template": (model.v_template, (N_VERTICES, 3)),
        "shapedirs": (model.shapedirs, (v, 3, N_SHAPE + N_EXPR)),
        "posedirs": (model.posedirs, (v, 3, N_POSE_FEATURES)),
        "J_regressor": (model.j_regressor, (len(JOINT_NAMES), v)),
        "weights": (model.weights, (v, len(JOINT_NAMES))),
        "f": (model.faces, (N_FACES, 3)),
    }
    if model.eyelid_dirs is not None:
        expected["eyelids"] = (model.eyelid_dirs, (v, 3, N_EYELIDS))
    for name, (array, shape) in expected.items():
        if array.shape != shape:
            raise InputError(path, f"not a FLAME 2020 model: {name} has shape {array.shape}, expected {shape}")
        if name == "f":
            continue  # indices, checked below
        if not np.isfinite(array).all():
            raise InputError(path, f"not a usable FLAME model: {name} holds NaN or infinite values")
        if np.abs(array).max(initial=0) > MAX_ABS_VALUE:
            raise InputError(path, f"not a usable FLAME model: {name} holds values beyond {MAX_ABS_VALUE:g}")
    if not np.array_equal(model.parents, PARENTS):
        raise InputError(path, f"not a FLAME 2020 model: joint parents {model.parents.tolist()}")
    if model.faces.min() < 0 or model.faces.max() >= v:
        raise InputError(path, "not a FLAME model: triangle indices out of range")
    return model


def from_tensors(path: str | os.PathLike, tensors: dict[str, np.ndarray], source_sha256: str,
                 is_demo: bool = False) -> FlameModel:
    """Build and check a model from arrays named as in FLAME's pickle (J_regressor may be dense).

    The stand-in marker entry `sheap_demo_standin` ("true") also makes the model a demo.
    """
    path = Path(path)
    missing = [k for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "f") if k not in tensors]
    if missing:
        raise InputError(path, f"not a FLAME model: missing {', '.join(missing)}")
    parents = tensors.get("parents")
    if parents is None:
        kintree = np.asarray(tensors["kintree_table"]) if "kintree_table" in tensors else None
        if kintree is None or kintree.shape != (2, len(JOINT_NAMES)):
            raise InputError(path, "not a FLAME model: no kintree_table of shape (2, 5)")
        parents = kintree[0].astype(np.int64)
        parents[0] = -1  # the root's parent is a huge sentinel in the pickle
    eyelids = tensors.get("eyelids")
    model = FlameModel(
        v_template=np.asarray(tensors["v_template"], dtype=np.float64),
        shapedirs=np.asarray(tensors["shapedirs"], dtype=np.float64),
        posedirs=np.asarray(tensors["posedirs"], dtype=np.float64),
        j_regressor=np.asarray(tensors["J_regressor"], dtype=np.float64),
        weights=np.asarray(tensors["weights"], dtype=np.float64),
        faces=np.asarray(tensors["f"]).astype(np.int64),
        parents=np.asarray(parents, dtype=np.int64),
        eyelid_dirs=None if eyelids is None else np.asarray(eyelids, dtype=np.float64),
        source_sha256=source_sha256,
        is_demo=is_demo or str(tensors.get("sheap_demo_standin", "")) == "true",
    )
    return _check(path, model)


def load_flame(path: str | os.PathLike) -> FlameModel:
    """Load `generic_model.pkl` (through the allow-listed unpickler) or a converted `.safetensors`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "FLAME file not found")
    if path.suffix == ".safetensors":
        from ..safetensors_file import read_safetensors

        tensors, metadata = read_safetensors(path)
        return from_tensors(path, tensors, metadata.get("source_sha256", file_sha256(path)),
                            is_demo=metadata.get("demo") == "true")
    from .pickle_file import read_flame_pickle

    return from_tensors(path, read_flame_pickle(path), file_sha256(path))


def save_flame(model: FlameModel, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write the converted model (float32, dense regressor), recording the source file's SHA-256 and demo-ness."""
    from ..safetensors_file import write_safetensors

    meta = {"format": "sheap-flame-1", "source_sha256": model.source_sha256,
            "demo": "true" if model.is_demo else "false", **(metadata or {})}
    write_safetensors(path, model.to_tensors(), meta)
