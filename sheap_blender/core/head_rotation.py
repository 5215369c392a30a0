"""A take's head rotation on a character's bone: yaw/pitch/roll -> the bone's own rotation channels.

A take's yaw, pitch, roll have Live Link Face's signs (core/live_link_csv.py, docs/arkit.md): positive
yaw = toward the performer's right, positive pitch = down, positive roll = the top of the head toward the
performer's left. About ARKit's face axes (+X the face's left, +Y up, +Z out of the face), right-handed,
that is R = Ry(-yaw) Rx(pitch) Rz(-roll); the same for the head and each eye. A character
in Blender stands as the FLAME rig does: +Z up, the face toward -Y (Blender's front view), +X its own left,
so ARKit (x, y, z) is Blender (x, -z, y). A pose bone turns in its rest frame: for a bone whose rest
orientation in world axes is B, the world turn R is the bone's rotation B^T R B.
"""

from __future__ import annotations

import numpy as np

from .rotation import make_continuous, matrix_to_quaternion, quaternion_to_axis_angle

# ARKit / FLAME axes -> Blender's: (x, y, z) -> (x, -z, y)
ARKIT_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")


def _about(axis: int, angle: np.ndarray) -> np.ndarray:
    """(F,) angles -> (F, 3, 3) right-handed rotations about a coordinate axis."""
    c, s = np.cos(angle), np.sin(angle)
    m = np.zeros(np.shape(angle) + (3, 3))
    i, j = (axis + 1) % 3, (axis + 2) % 3
    m[..., axis, axis] = 1.0
    m[..., i, i] = c
    m[..., j, j] = c
    m[..., j, i] = s
    m[..., i, j] = -s
    return m


def yaw_pitch_roll_matrix(head: np.ndarray) -> np.ndarray:
    """(F, 3) yaw, pitch, roll (the app's signs) -> (F, 3, 3) R = Ry(-yaw) Rx(pitch) Rz(-roll) in ARKit's axes."""
    head = np.asarray(head, dtype=np.float64)
    return _about(1, -head[..., 0]) @ _about(0, head[..., 1]) @ _about(2, -head[..., 2])


def head_turn_in_blender(head: np.ndarray) -> np.ndarray:
    """(F, 3) yaw, pitch, roll -> (F, 3, 3) the same turn in Blender's world axes (face toward -Y)."""
    return ARKIT_TO_BLENDER @ yaw_pitch_roll_matrix(head) @ ARKIT_TO_BLENDER.T


def in_rest_frame(turn: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """(F, 3, 3) world turns -> the same turns in a frame whose axes are the columns of `rest` (3, 3)."""
    rest = np.asarray(rest, dtype=np.float64)
    u, _, vt = np.linalg.svd(rest)  # the rotation nearest `rest` (bone matrices may carry scale)
    rest = u @ vt
    return rest.T @ turn @ rest


def matrix_to_euler(m: np.ndarray, order: str) -> np.ndarray:
    """(F, 3, 3) -> (F, 3) angles about X, Y, Z as Blender's Euler of that order (`XYZ`: R = Rz Ry Rx)."""
    i, j, k = ("XYZ".index(axis) for axis in order)
    sign = 1.0 if (j - i) % 3 == 1 else -1.0  # XYZ, YZX, ZXY are cyclic
    first = np.arctan2(sign * m[..., k, j], m[..., k, k])
    second = np.arcsin(np.clip(-sign * m[..., k, i], -1.0, 1.0))
    third = np.arctan2(sign * m[..., j, i], m[..., i, i])
    out = np.empty(m.shape[:-2] + (3,))
    out[..., i], out[..., j], out[..., k] = first, second, third
    return np.unwrap(out, axis=0) if out.ndim == 2 else out


def rotation_channels(turn: np.ndarray, mode: str) -> tuple[str, np.ndarray]:
    """(F, 3, 3) bone rotations -> (pose bone property, (F, n) values) for the bone's rotation mode."""
    if mode in EULER_ORDERS:
        return "rotation_euler", matrix_to_euler(turn, mode)
    quaternions = make_continuous(matrix_to_quaternion(turn))
    if mode == "AXIS_ANGLE":
        axis_angle = quaternion_to_axis_angle(quaternions)
        angle = np.linalg.norm(axis_angle, axis=-1)
        axis = np.where(angle[:, None] > 1e-12, axis_angle / np.maximum(angle, 1e-12)[:, None], [0.0, 1.0, 0.0])
        return "rotation_axis_angle", np.column_stack([angle, axis])
    return "rotation_quaternion", quaternions
