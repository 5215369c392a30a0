"""Pure math of sheap_blender.core (no bpy needed): rotations, the footage camera, the rig's bone offsets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import FOV, reference_pixels, rodrigues

from sheap_blender.core import camera, rotation
from sheap_blender.core.result.rig_math import bone_locations, pose_features


def test_rotation_round_trips():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(500, 3)) * rng.uniform(0, 1, size=(500, 1))
    r[0] = 0.0
    r[1] = [1e-9, 0, 0]
    r[2] = [0, 0, math.pi - 1e-6]
    m = rotation.axis_angle_to_matrix(r)
    assert np.allclose(m, np.stack([rodrigues(v) for v in r]), atol=1e-12)
    q = rotation.axis_angle_to_quaternion(r)
    assert np.allclose(rotation.quaternion_to_matrix(q), m, atol=1e-12)
    assert np.allclose(np.abs(np.sum(rotation.matrix_to_quaternion(m) * q, axis=-1)), 1.0, atol=1e-9)
    assert np.allclose(rotation.matrix_to_axis_angle(m)[3:], r[3:], atol=1e-7)
    assert np.allclose(rotation.quaternion_to_axis_angle(q)[:2], r[:2], atol=1e-12)


def test_quaternions_made_continuous():
    rng = np.random.default_rng(1)
    q = rotation.axis_angle_to_quaternion(np.cumsum(rng.normal(size=(200, 2, 3)) * 0.2, axis=0))
    flipped = q * np.where(rng.random((200, 2, 1)) < 0.5, -1.0, 1.0)
    fixed = rotation.make_continuous(flipped, axis=0)
    assert np.all(np.sum(fixed[1:] * fixed[:-1], axis=-1) >= 0)
    assert np.allclose(rotation.quaternion_to_matrix(fixed), rotation.quaternion_to_matrix(q))


def test_footage_pinhole_equals_crop_then_box():
    rng = np.random.default_rng(2)
    points = rng.normal(size=(4, 50, 3)) * 0.08
    boxes = np.array([[100, 50, 300, 250], [0, 0, 224, 224], [400.5, 10.25, 520.5, 130.25], [-20, -40, 600, 580]],
                     dtype=np.float64)
    pixels = camera.project_to_footage(points, boxes, FOV)
    for f in range(4):
        assert np.allclose(pixels[f], reference_pixels(points[f], boxes[f]), atol=1e-9)
    k = camera.footage_intrinsics(boxes, FOV)
    depth = 1 - points[..., 2]
    x = k["cx"][:, None] + k["fx"][:, None] * points[..., 0] / depth
    y = k["cy"][:, None] - k["fy"][:, None] * points[..., 1] / depth
    assert np.allclose(np.stack([x, y], axis=-1), pixels, atol=1e-9)
    assert camera.crop_focal(FOV) == pytest.approx(112 / math.tan(math.radians(FOV) / 2))
    assert camera.non_square_boxes(np.array([[0, 0, 10, 10], [0, 0, 10, 12]])).tolist() == [False, True]


def test_blender_fps():
    assert camera.blender_fps(29.97002997) == (30, 1.001)
    assert camera.blender_fps(29.97) == (30, 1.001)
    assert camera.blender_fps(23.976) == (24, 1.001)
    assert camera.blender_fps(25.0) == (25, 1.0)
    whole, base = camera.blender_fps(12.5)
    assert whole / base == pytest.approx(12.5)


def _chain_flame(rots, joints):
    parents = [-1, 0, 1, 1, 1]
    world = []
    for j in range(5):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        local[:3, 3] = joints[j] - (joints[parents[j]] if parents[j] >= 0 else 0)
        world.append(local if parents[j] < 0 else world[parents[j]] @ local)
    out = []
    for j in range(5):
        a = world[j].copy()
        a[:3, 3] -= world[j][:3, :3] @ joints[j]
        out.append(a)
    return out


def _chain_blender(rots, rest, locations):
    """Blender's pose: M_j = M_parent . inv(B_parent) . B_j . T(loc_j) . R_j, skin = M_j . inv(B_j)."""
    parents = [-1, 0, 1, 1, 1]

    def translate(v):
        m = np.eye(4)
        m[:3, 3] = v
        return m

    def rotate(r):
        m = np.eye(4)
        m[:3, :3] = r
        return m

    posed, skin = [], []
    for j in range(5):
        local = translate(rest[j] - (rest[parents[j]] if parents[j] >= 0 else 0)) @ translate(locations[j]) @ rotate(
            rots[j])
        posed.append(local if parents[j] < 0 else posed[parents[j]] @ local)
        skin.append(posed[j] @ translate(-rest[j]))
    return skin


def test_bone_offsets_make_blender_skinning_equal_flame():
    rng = np.random.default_rng(3)
    rots = np.stack([rodrigues(v) for v in rng.normal(size=(5, 3)) * 0.7])
    rest = rng.normal(size=(5, 3)) * 0.1
    joints = rest + rng.normal(size=(5, 3)) * 0.01  # expression moves FLAME's joints
    d = bone_locations(rots, joints, rest)
    for flame, blender in zip(_chain_flame(rots, joints), _chain_blender(rots, rest, d)):
        assert np.allclose(flame, blender, atol=1e-12)
    # without the offsets they differ: the offsets are needed
    plain = _chain_blender(rots, rest, np.zeros((5, 3)))
    assert max(np.abs(a - b).max() for a, b in zip(_chain_flame(rots, joints), plain)) > 1e-4


def test_pose_features_are_flame_order():
    rots = np.stack([rodrigues(v) for v in np.random.default_rng(4).normal(size=(5, 3))])
    features = pose_features(rots)
    assert features.shape == (36,)
    assert np.allclose(features[:9], (rots[1] - np.eye(3)).ravel())
    assert np.allclose(features[27:], (rots[4] - np.eye(3)).ravel())
