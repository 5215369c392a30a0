"""ARKit keys made for a bare head (core/arkit/keys.py), checked against Apple's authored ARKit shapes."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from sheap_blender.core.arkit.keys import make_arkit_keys
from sheap_blender.core.arkit.keys_check import five_point_baseline, score_channels, swapped_sides
from sheap_blender.core.arkit.names import ARKIT_INDEX, ARKIT_NAMES
from sheap_blender.core.arkit.reference import ArkitReference, load_reference, read_reference
from sheap_blender.core.rotation import axis_angle_to_matrix

APPLE = Path(__file__).resolve().parents[2] / "data" / "apple_arkit_reference.safetensors"


@cache
def apple() -> ArkitReference:
    return read_reference(APPLE)


@cache
def made_for_apple() -> np.ndarray:
    head = apple()
    return make_arkit_keys(head.neutral, head.triangles, head.neutral[head.landmarks68]).offsets


def authored() -> dict[str, np.ndarray]:
    return {name: apple().offsets[i] for i, name in enumerate(apple().shape_names)}


def test_all_52_keys_are_made_and_the_face_moves():
    keys = made_for_apple()
    assert keys.shape == (len(ARKIT_NAMES), len(apple().neutral), 3)
    moving = np.linalg.norm(keys, axis=2).max(axis=1)
    assert moving[ARKIT_INDEX["tongueOut"]] == 0  # no source for it: an empty key
    assert (np.delete(moving, ARKIT_INDEX["tongueOut"]) > 0.002).all()  # every other key moves > 2 mm


def test_made_keys_match_the_authored_ones_better_than_the_baseline():
    scores = {s.name: s for s in score_channels(made_for_apple(), authored())}
    for name in ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft", "mouthSmileRight", "mouthPucker"):
        assert scores[name].cosine > 0.8, name  # measured 0.88 .. 0.94 (benchmarks/arkit_keys.py)
    assert scores["browInnerUp"].cosine > 0.6 and scores["mouthFunnel"].cosine > 0.7
    median = np.median([s.cosine for s in scores.values()])
    baseline = np.median([s.cosine for s in score_channels(
        five_point_baseline(apple().neutral, apple().neutral[apple().landmarks68], load_reference()),
        authored())])
    assert median > 0.8 and median > baseline - 0.02  # measured 0.85 against 0.83
    for name in ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight"):
        assert 0.6 < scores[name].magnitude < 1.6, name  # measured 0.85 .. 0.94
    assert swapped_sides(made_for_apple(), authored()) == []


def test_a_blink_brings_the_upper_lid_onto_the_lower_one_on_its_own_side_only():
    head, keys = apple(), made_for_apple()
    marks = head.neutral[head.landmarks68]
    for name, upper, lower, other in (("eyeBlinkLeft", [43, 44], [47, 46], [37, 38]),
                                      ("eyeBlinkRight", [37, 38], [41, 40], [43, 44])):
        moved = keys[ARKIT_INDEX[name]][head.landmarks68]
        gap = np.linalg.norm(marks[upper].mean(0) - marks[lower].mean(0))
        closed = np.linalg.norm((marks[upper] + moved[upper]).mean(0) - (marks[lower] + moved[lower]).mean(0))
        assert closed < 0.15 * gap, name  # 8.3 mm open, 0.75 mm left
        assert np.abs(moved[other]).max() < 1e-9, name  # the other eye stays as it is


def test_keys_follow_the_head_turned_scaled_and_moved():
    """A head in other units, turned and placed elsewhere gets the same keys, turned and scaled with it."""
    head = apple()
    rotation = axis_angle_to_matrix(np.array([0.3, -0.5, 0.2]))
    scale, shift = 100.0, np.array([5.0, -20.0, 130.0])  # centimetres, somewhere in the scene
    vertices = scale * head.neutral @ rotation.T + shift
    keys = make_arkit_keys(vertices, head.triangles, vertices[head.landmarks68]).offsets
    expected = scale * made_for_apple() @ rotation.T
    assert np.abs(keys - expected).max() < 1e-3 * scale * np.abs(made_for_apple()).max()


def test_bad_landmarks_are_refused():
    head = apple()
    with pytest.raises(ValueError, match="68 finite 3D landmarks"):
        make_arkit_keys(head.neutral, head.triangles, head.neutral[:10])
    with pytest.raises(ValueError, match="eyes coincide"):
        make_arkit_keys(head.neutral, head.triangles, np.zeros((68, 3)))


def test_key_names_read_back_in_every_habit():
    from sheap_blender.core.arkit.keys import NAMING_HABITS, key_name
    from sheap_blender.core.arkit.names import channel_for_key

    for habit in NAMING_HABITS:
        names = [key_name(channel, habit) for channel in ARKIT_NAMES]
        assert len(set(names)) == 52 and [channel_for_key(n) for n in names] == list(ARKIT_NAMES), habit
    assert key_name("eyeBlinkLeft", "suffix") == "eyeBlink_L" and key_name("jawOpen", "upper_camel") == "JawOpen"


def sphere(centre: np.ndarray, radius: float, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere (its own connected part)."""
    theta, phi = np.meshgrid(np.linspace(0.1, np.pi - 0.1, n), np.linspace(0, 2 * np.pi, n, endpoint=False))
    points = np.stack([np.sin(theta) * np.cos(phi), np.cos(theta), np.sin(theta) * np.sin(phi)], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(n - 1), np.arange(n))
    a, b = (j * n + i).ravel(), (((j + 1) % n) * n + i).ravel()
    return centre + radius * points, np.concatenate([np.stack([a, b, b + 1], 1), np.stack([a, b + 1, a + 1], 1)])


def test_separate_parts_stay_still_and_an_inside_out_mesh_is_read_the_same():
    """Eyeballs and teeth in the same mesh (parts of their own) are left as they are; the skin's keys do not change.
    A mesh wound inside out (its normals pointing in) gets the same keys."""
    head = apple()
    marks = head.neutral[head.landmarks68]
    vertices, triangles = [head.neutral], [head.triangles]
    count = len(head.neutral)
    eye_centre = marks[42:48].mean(0) - np.array([0.0, 0.0, 0.012])
    for centre, radius in ((eye_centre, 0.011), (marks[62] - np.array([0.0, 0.0, 0.01]), 0.006)):
        points, faces = sphere(centre, radius)
        vertices.append(points)
        triangles.append(faces + count)
        count += len(points)
    made = make_arkit_keys(np.concatenate(vertices), np.concatenate(triangles), marks)
    assert made.other_parts == 2
    assert np.abs(made.offsets[:, len(head.neutral):]).max() == 0
    np.testing.assert_allclose(made.offsets[:, :len(head.neutral)], made_for_apple(), atol=1e-9)
    # the left eye's landmarks found on the eyeball seen through the lids (as on a render): put back on the skin
    on_eyeball = marks.copy()
    on_eyeball[42:48] = eye_centre + 0.011 * (marks[42:48] - eye_centre) / np.linalg.norm(
        marks[42:48] - eye_centre, axis=1, keepdims=True)
    again = make_arkit_keys(np.concatenate(vertices), np.concatenate(triangles), on_eyeball)
    assert np.median(np.linalg.norm(again.landmarks[42:48] - marks[42:48], axis=1)) < 0.0025  # 1.0 mm; 4.8 off
    blink = ARKIT_INDEX["eyeBlinkLeft"]
    cos = (again.offsets[blink] * made.offsets[blink]).sum() / np.linalg.norm(again.offsets[blink]) / np.linalg.norm(
        made.offsets[blink])
    assert cos > 0.9
    inside_out = make_arkit_keys(head.neutral, head.triangles[:, ::-1], marks).offsets
    np.testing.assert_allclose(inside_out, made_for_apple(), atol=1e-9)
