"""Rotations as arrays: axis-angle <-> 3x3 matrix <-> unit quaternion, vectorised over leading axes.

Conventions: axis-angle is a 3-vector whose direction is the axis and whose length is the angle
(radians), as FLAME and SHeaP use it; quaternions are (w, x, y, z) like Blender's; matrices act on
column vectors (v' = R @ v). Everything is float64 and NumPy only.
"""

from __future__ import annotations

import numpy as np

_SMALL = 1e-8


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrices (Rodrigues, exact near zero)."""
    r = np.asarray(axis_angle, dtype=np.float64)
    theta2 = np.sum(r * r, axis=-1)
    theta = np.sqrt(theta2)
    small = theta < 1e-4
    safe = np.where(small, 1.0, theta)
    # sin(t)/t and (1 - cos(t))/t^2 with their Taylor series near zero
    a = np.where(small, 1.0 - theta2 / 6.0 + theta2 * theta2 / 120.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - theta2 / 24.0 + theta2 * theta2 / 720.0, (1.0 - np.cos(safe)) / (safe * safe))
    x, y, z = r[..., 0], r[..., 1], r[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(r.shape[:-1] + (3, 3))
    eye = np.broadcast_to(np.eye(3), k.shape)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def axis_angle_to_quaternion(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 4) unit quaternions (w, x, y, z) with w >= 0 for angles <= pi."""
    r = np.asarray(axis_angle, dtype=np.float64)
    theta2 = np.sum(r * r, axis=-1)
    theta = np.sqrt(theta2)
    small = theta < 1e-4
    safe = np.where(small, 1.0, theta)
    half_sinc = np.where(small, 0.5 - theta2 / 48.0, np.sin(0.5 * safe) / safe)  # sin(t/2)/t
    w = np.cos(0.5 * theta)
    return np.concatenate([w[..., None], r * half_sinc[..., None]], axis=-1)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (w, x, y, z), normalised here -> (..., 3, 3) rotation matrices."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    m = np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], axis=-1)
    return m.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (w, x, y, z), w >= 0.

    Picks, per matrix, the numerically best of the four classic formulas (largest diagonal term).
    """
    m = np.asarray(m, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    candidates = np.stack([trace, m00, m11, m22], axis=-1)
    choice = np.argmax(candidates, axis=-1)
    q = np.empty(m.shape[:-2] + (4,))
    # w largest
    s = np.sqrt(np.maximum(1.0 + trace, _SMALL)) * 2
    qw = np.stack([0.25 * s, (m[..., 2, 1] - m[..., 1, 2]) / s, (m[..., 0, 2] - m[..., 2, 0]) / s,
                   (m[..., 1, 0] - m[..., 0, 1]) / s], axis=-1)
    s = np.sqrt(np.maximum(1.0 + m00 - m11 - m22, _SMALL)) * 2
    qx = np.stack([(m[..., 2, 1] - m[..., 1, 2]) / s, 0.25 * s, (m[..., 0, 1] + m[..., 1, 0]) / s,
                   (m[..., 0, 2] + m[..., 2, 0]) / s], axis=-1)
    s = np.sqrt(np.maximum(1.0 - m00 + m11 - m22, _SMALL)) * 2
    qy = np.stack([(m[..., 0, 2] - m[..., 2, 0]) / s, (m[..., 0, 1] + m[..., 1, 0]) / s, 0.25 * s,
                   (m[..., 1, 2] + m[..., 2, 1]) / s], axis=-1)
    s = np.sqrt(np.maximum(1.0 - m00 - m11 + m22, _SMALL)) * 2
    qz = np.stack([(m[..., 1, 0] - m[..., 0, 1]) / s, (m[..., 0, 2] + m[..., 2, 0]) / s,
                   (m[..., 1, 2] + m[..., 2, 1]) / s, 0.25 * s], axis=-1)
    for index, candidate in enumerate((qw, qx, qy, qz)):
        mask = choice == index
        q[mask] = candidate[mask]
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions -> (..., 3) axis-angle with angle in [0, pi]."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(q[..., :1] < 0, -q, q)
    xyz = q[..., 1:]
    sin_half = np.linalg.norm(xyz, axis=-1)
    angle = 2.0 * np.arctan2(sin_half, q[..., 0])
    small = sin_half < 1e-8
    scale = np.where(small, 2.0, angle / np.where(small, 1.0, sin_half))
    return xyz * scale[..., None]


def matrix_to_axis_angle(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle."""
    return quaternion_to_axis_angle(matrix_to_quaternion(m))


def make_continuous(q: np.ndarray, axis: int = 0) -> np.ndarray:
    """Flip quaternion signs along `axis` (time) so neighbours lie in the same hemisphere.

    q and -q are the same rotation; interpolating between keys of opposite sign takes the long way
    round. Returns a copy.
    """
    q = np.moveaxis(np.array(q, dtype=np.float64), axis, 0)
    if q.shape[0] > 1:
        dots = np.sum(q[1:] * q[:-1], axis=-1)
        flips = np.cumsum(dots < 0, axis=0) % 2  # parity of sign changes so far
        sign = np.concatenate([np.ones((1,) + dots.shape[1:]), 1.0 - 2.0 * flips], axis=0)
        q = q * sign[..., None]
    return np.moveaxis(q, 0, axis)
