"""From FLAME and a result to the quantities a Blender rig animates, exactly.

The rig (docs/blender-rig.md): a mesh whose basis is FLAME's template, shape keys for the clip's
identity, the 100 expression directions, the eyelids and the 36 pose correctives, and an armature
with one bone per FLAME joint, rest orientation identity (FLAME axes), heads at the rest joints
Jr = J_regressor . (v_template + identity). FLAME's joints move with the expression too: frame f's
joints are Jf = J_regressor . (v_template + shapedirs . [shape, expr_f] + eyelid_dirs . eyelids_f).

Blender poses a bone as  M_j = M_parent . T(Jr_j - Jr_parent) . T(d_j) . R_j  (location, then
rotation, in the bone's rest frame) and skins with M_j . T(-Jr_j); FLAME skins with
G_j . T(-Jf_j), G_j = G_parent . T(Jf_j - Jf_parent) . R_j. With e_j = Jf_j - Jr_j, induction over
the chain shows the two are equal for every joint exactly when

    d_j = (I - R_j) e_j

(root: Jr_0 + d_0 - R_0 Jr_0 = Jf_0 - R_0 Jf_0; child: assuming M_p = G_p T(-e_p), the same
identity with e_j). So bone locations d_j reproduce FLAME's skinning; the armature object carries
`cam_trans`. Pose correctives are (R_j - I) row-major for joints 1..4, FLAME's pose features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..flame.model import N_EXPR, N_SHAPE, FlameModel
from ..rotation import axis_angle_to_matrix, axis_angle_to_quaternion, make_continuous
from .result_format import Result

SHAPE_KEY_LIMIT = 10.0  # Blender's hard limit of a shape key's slider range


def corrective_key_names() -> list[str]:
    """The 36 pose-corrective shape keys: joint, then row and column of (R - I)."""
    from ..flame.model import JOINT_NAMES

    return [f"pose_{joint}_{row}{col}" for joint in JOINT_NAMES[1:] for row in range(3) for col in range(3)]


def expression_key_names(n: int = N_EXPR) -> list[str]:
    return [f"exp{i:03d}" for i in range(n)]


EYELID_LEFT, EYELID_RIGHT = "eyelid_l", "eyelid_r"  # the subject's left (FLAME +X) and right


def eyelid_key_names(model: FlameModel) -> tuple[str, ...]:
    """The eyelid shape keys' names, channel by channel, by the side of the face each channel moves.

    Decided from the geometry, not from the channel's index: SHeaP's released eyelids.pt is reported
    to hold the subject's RIGHT eyelid in channel 0. A channel whose moved vertices (weighted by how
    far they move) lie at +X moves the subject's left eyelid. Empty without eyelid blendshapes;
    channel numbers when the two channels do not lie on two sides.
    """
    if model.eyelid_dirs is None:
        return ()
    weights = np.linalg.norm(model.eyelid_dirs, axis=1)  # (V, channels)
    sides = (weights * model.v_template[:, :1]).sum(axis=0) / np.maximum(weights.sum(axis=0), 1e-12)
    names = tuple(EYELID_LEFT if side > 0 else EYELID_RIGHT for side in sides)
    return names if len(set(names)) == len(names) else tuple(f"eyelid_{i}" for i in range(len(names)))


def clip_identity(shape: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, float]:
    """One identity for the clip: the rows of `shape` (all equal in normal use) or, when they differ,
    their mean over valid frames (all frames if none is valid). Also returns the largest deviation
    of a row from it (0 when the rows agree), for a warning."""
    shape = np.asarray(shape)
    if np.array_equal(shape.min(axis=0), shape.max(axis=0)):
        return shape[0].astype(np.float64), 0.0
    valid = np.asarray(valid, dtype=bool)
    rows = shape[valid] if np.any(valid) else shape
    identity = rows.astype(np.float64).mean(axis=0)
    return identity, float(np.max(np.abs(shape - identity)))


@dataclass
class JointRegression:
    """J_regressor folded into the blendshapes: joints of any coefficients without the vertices."""

    template: np.ndarray  # (5, 3)
    dirs: np.ndarray  # (5, 3, 400 [+2 eyelids])

    @classmethod
    def of(cls, model: FlameModel) -> JointRegression:
        dirs = model.shapedirs
        if model.eyelid_dirs is not None:
            dirs = np.concatenate([dirs, model.eyelid_dirs], axis=-1)
        return cls(model.j_regressor @ model.v_template, np.einsum("jv,vck->jck", model.j_regressor, dirs))

    def joints(self, coefficients: np.ndarray) -> np.ndarray:
        """(..., K) coefficients ([shape, expr(, eyelids)], missing trailing ones are zero) -> (..., 5, 3)."""
        c = np.asarray(coefficients, dtype=np.float64)
        k = c.shape[-1]
        flat = self.dirs[..., :k].reshape(-1, k)  # (15, K): one matrix product (BLAS)
        return self.template + (c @ flat.T).reshape(c.shape[:-1] + self.template.shape)


def identity_vertices(model: FlameModel, identity: np.ndarray) -> np.ndarray:
    """(V, 3): the template with the clip's identity, the `identity` shape key's positions."""
    return model.v_template + model.shapedirs[:, :, :N_SHAPE] @ np.asarray(identity, dtype=np.float64)


def pose_features(rotations: np.ndarray) -> np.ndarray:
    """(..., 5, 3, 3) joint rotations -> (..., 36) FLAME pose features (R_j - I) of joints 1..4."""
    r = np.asarray(rotations, dtype=np.float64)[..., 1:, :, :]
    return (r - np.eye(3)).reshape(r.shape[:-3] + (36,))


def bone_locations(rotations: np.ndarray, joints: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """d_j = (I - R_j)(Jf_j - Jr_j): (..., 5, 3, 3), (..., 5, 3), (5, 3) -> (..., 5, 3)."""
    e = np.asarray(joints, dtype=np.float64) - rest_joints
    return e - np.einsum("...ij,...j->...i", rotations, e)


def key_scales(values: np.ndarray, limit: float = SHAPE_KEY_LIMIT) -> np.ndarray:
    """Per-column factor s >= 1 so that values / s stay inside Blender's slider limit; the key's
    geometry is then stored multiplied by s."""
    peak = np.max(np.abs(values), axis=0) if len(values) else np.zeros(values.shape[1:])
    return np.where(peak > limit, peak / limit * (1 + 1e-6), 1.0)


def slider_range(values: np.ndarray, limit: float = SHAPE_KEY_LIMIT) -> tuple[np.ndarray, np.ndarray]:
    """Per-column slider_min / slider_max: at least [-1, 1], widened to the values, within the limit."""
    lo = np.minimum(-1.0, np.floor(np.min(values, axis=0) * 1.25)) if len(values) else -1.0
    hi = np.maximum(1.0, np.ceil(np.max(values, axis=0) * 1.25)) if len(values) else 1.0
    return np.clip(lo, -limit, limit), np.clip(hi, -limit, limit)


@dataclass
class RigAnimation:
    """Everything the rig needs from one result, in FLAME axes, one row per result frame."""

    identity: np.ndarray  # (300,)
    identity_spread: float  # largest deviation of a frame's shape from `identity`
    rest_joints: np.ndarray  # (5, 3) joints of the identity alone: the bones' rest heads
    joints: np.ndarray  # (F, 5, 3) FLAME's joints of each frame (identity, expression, eyelids)
    rotations: np.ndarray  # (F, 5, 3, 3)
    bone_quaternions: np.ndarray  # (F, 5, 4) w, x, y, z, sign-continuous over time
    bone_locations: np.ndarray  # (F, 5, 3) for `rest_joints`
    translation: np.ndarray  # (F, 3) cam_trans
    expression: np.ndarray  # (F, 100)
    eyelids: np.ndarray  # (F, 2)
    correctives: np.ndarray  # (F, 36)
    warnings: list[str] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return int(self.translation.shape[0])

    def locations_for(self, heads: np.ndarray) -> np.ndarray:
        """Bone locations for bones whose rest heads are `heads` (exact for any rest position:
        Blender stores heads in float32, the importer passes them as stored)."""
        return bone_locations(self.rotations, self.joints, np.asarray(heads, dtype=np.float64))

    def shape_key_values(self, eyelid_names: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
        """Names and (F, K) values of every animated shape key (`eyelid_names`: see eyelid_key_names)."""
        names = expression_key_names() + list(eyelid_names) + corrective_key_names()
        columns = [self.expression] + ([self.eyelids] if eyelid_names else []) + [self.correctives]
        return names, np.concatenate(columns, axis=1)


def rig_animation(model: FlameModel, result: Result) -> RigAnimation:
    """Compute the rig's rest joints and every animated channel for all frames of `result`."""
    p = result.flame_params()
    warnings = []
    identity, spread = clip_identity(p.shape, result.valid)
    if spread > 1e-6:
        warnings.append(f"identity differs between frames (up to {spread:.3g}); the rig uses their mean")
    regression = JointRegression.of(model)
    rest = regression.joints(identity)
    n = result.n_frames
    coefficients = [np.broadcast_to(identity, (n, N_SHAPE)), p.expr.astype(np.float64)]
    if model.eyelid_dirs is not None:
        coefficients.append(p.eyelids.astype(np.float64))
    elif np.any(p.eyelids != 0):
        warnings.append("the FLAME model has no eyelid blendshapes: the result's eyelid weights are ignored")
    joints = regression.joints(np.concatenate(coefficients, axis=1))
    poses = p.poses().astype(np.float64)
    rotations = axis_angle_to_matrix(poses)
    return RigAnimation(
        identity=identity,
        identity_spread=spread,
        rest_joints=rest,
        joints=joints,
        rotations=rotations,
        bone_quaternions=make_continuous(axis_angle_to_quaternion(poses), axis=0),
        bone_locations=bone_locations(rotations, joints, rest),
        translation=p.cam_trans.astype(np.float64),
        expression=p.expr.astype(np.float64),
        eyelids=p.eyelids.astype(np.float64),
        correctives=pose_features(rotations),
        warnings=warnings,
    )
