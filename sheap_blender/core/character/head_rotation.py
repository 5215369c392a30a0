"""A take's head, eye and jaw rotations on a character's bones: yaw/pitch/roll -> each bone's rotation channels.

The take's convention is Live Link Face's (docs/arkit.md): positive yaw turns toward the performer's RIGHT,
positive pitch down, roll negated together with yaw; in ARKit's face axes (+X the face's left, +Y up, +Z out
of the face) the turn is R = Ry(-yaw) Rx(pitch) Rz(-roll) (`take_rotation_matrix`, the one place that reads
the signs). Eyes and jaw turn relative to the head. A character's own axes (its left, up and forward in
world axes: `character_axes`) carry R into the world, whichever way the character faces; a pose bone turns
in its rest frame: for a bone whose rest orientation in world axes is B, the world turn R is the bone's
rotation B^T R B, and a child posed so keeps its parent's turn (so neck, head and eyes compose).
"""

from __future__ import annotations

import numpy as np

from ..rotation import (
    axis_angle_to_matrix,
    make_continuous,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_to_axis_angle,
)

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
    """(F, 3) angles about ARKit's Y, X, Z -> (F, 3, 3) R = Ry(a) Rx(b) Rz(c); a take's signs: take_rotation_matrix."""
    head = np.asarray(head, dtype=np.float64)
    return _about(1, head[..., 0]) @ _about(0, head[..., 1]) @ _about(2, head[..., 2])


def take_rotation_matrix(angles: np.ndarray) -> np.ndarray:
    """(F, 3) a take's yaw, pitch, roll (Live Link Face's signs) -> (F, 3, 3) the turn in ARKit's face axes.

    Positive yaw: toward the performer's right (-X); positive pitch: down; roll negated with yaw.
    """
    angles = np.asarray(angles, dtype=np.float64)
    return yaw_pitch_roll_matrix(angles * np.array([-1.0, 1.0, -1.0]))


def character_axes(left: np.ndarray, up: np.ndarray) -> np.ndarray:
    """(3, 3) columns: the character's left, up and forward (out of its face) in world axes, orthonormal.

    `left` (e.g. right eye -> left eye) is kept; `up` is made square to it. A character facing -Y with +Z up
    gives ARKIT_TO_BLENDER.
    """
    left = np.asarray(left, dtype=np.float64) / np.linalg.norm(left)
    up = np.asarray(up, dtype=np.float64) - np.dot(up, left) * left
    up /= np.linalg.norm(up)
    return np.column_stack([left, up, np.cross(left, up)])


def take_turn_in_world(angles: np.ndarray, axes: np.ndarray = ARKIT_TO_BLENDER) -> np.ndarray:
    """(F, 3) a take's yaw, pitch, roll -> (F, 3, 3) the turn in world axes of a character with `axes`."""
    return axes @ take_rotation_matrix(angles) @ axes.T


def head_turn_in_blender(head: np.ndarray) -> np.ndarray:
    """(F, 3) yaw, pitch, roll (Live Link Face's signs) -> (F, 3, 3) the turn in Blender's axes (face toward -Y)."""
    return take_turn_in_world(head)


def fraction_of_turn(turn: np.ndarray, fraction: float) -> np.ndarray:
    """(F, 3, 3) turns -> the same turns about the same axes by `fraction` of their angle (neck's share)."""
    return axis_angle_to_matrix(fraction * matrix_to_axis_angle(turn))


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
