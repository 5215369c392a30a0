"""Per-frame FLAME parameters as one typed structure: what SHeaP predicts, what FLAME poses.

One row per frame in every field, named as the result file names its tensors (as smplx names its
outputs), so that code passing parameters between modules says `params.jaw_pose`, never a loose
dict key. The result file keeps them as tensors of the same names (docs/result-format.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np

POSE_KEYS = ("torso_pose", "neck_pose", "jaw_pose", "eye_l_pose", "eye_r_pose")  # FLAME joints 0..4
WIDTHS = {"shape": 300, "expr": 100, **{key: 3 for key in POSE_KEYS}, "eyelids": 2, "cam_trans": 3}


@dataclass(frozen=True)
class FlameParams:
    shape: np.ndarray  # (F, 300) identity coefficients
    expr: np.ndarray  # (F, 100) expression coefficients
    torso_pose: np.ndarray  # (F, 3) axis-angle of FLAME's joint 0 (global), radians
    neck_pose: np.ndarray  # (F, 3) joint 1
    jaw_pose: np.ndarray  # (F, 3) joint 2
    eye_l_pose: np.ndarray  # (F, 3) joint 3, the subject's left eye
    eye_r_pose: np.ndarray  # (F, 3) joint 4
    eyelids: np.ndarray  # (F, 2) weights of SHeaP's two eyelid blendshapes
    cam_trans: np.ndarray  # (F, 3) translation added to the skinned vertices, metres

    @classmethod
    def from_mapping(cls, values: Mapping[str, np.ndarray]) -> FlameParams:
        """From tensors named as in the result file (other names in `values` are ignored)."""
        return cls(**{field.name: np.asarray(values[field.name]) for field in fields(cls)})

    @classmethod
    def zeros(cls, n: int, shape: np.ndarray | None = None) -> FlameParams:
        """`n` frames of the neutral face (no expression, pose, eyelids or translation), of `shape` if given."""
        values = {name: np.zeros((n, width), np.float32) for name, width in WIDTHS.items()}
        if shape is not None:
            values["shape"] = np.broadcast_to(np.asarray(shape, np.float32).reshape(1, -1), (n, WIDTHS["shape"]))
        return cls(**values)

    @property
    def n_frames(self) -> int:
        return int(self.shape.shape[0])

    def poses(self) -> np.ndarray:
        """(F, 5, 3) axis-angle rotations of FLAME's joints 0..4."""
        return np.stack([getattr(self, key) for key in POSE_KEYS], axis=1)

    def rows(self, index: slice | np.ndarray) -> FlameParams:
        """The same parameters for some frames only."""
        return FlameParams(**{field.name: getattr(self, field.name)[index] for field in fields(self)})

    def as_dict(self) -> dict[str, np.ndarray]:
        return {field.name: getattr(self, field.name) for field in fields(self)}
