"""A character's mapping preset and its head bone's rotation (pure NumPy; Blender's side in tests/blender)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sheap_blender.core.arkit.preset import FORMAT, read_preset, read_preset_with_channels, write_preset
from sheap_blender.core.arkit.solve import live_link_angles, yaw_pitch_roll
from sheap_blender.core.character.head_rotation import (
    ARKIT_TO_BLENDER,
    EULER_ORDERS,
    character_axes,
    fraction_of_turn,
    head_turn_in_blender,
    in_rest_frame,
    matrix_to_euler,
    rotation_channels,
    take_rotation_matrix,
    take_turn_in_world,
    yaw_pitch_roll_matrix,
)
from sheap_blender.core.errors import InputError
from sheap_blender.core.rotation import axis_angle_to_matrix, quaternion_to_matrix


def about(axis: str, angle: float) -> np.ndarray:
    """A right-handed rotation about X, Y or Z, written out."""
    c, s = np.cos(angle), np.sin(angle)
    return {"X": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), "Y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "Z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def test_yaw_pitch_roll_is_the_solves_convention():
    head = np.random.default_rng(0).uniform(-1.2, 1.2, (100, 3))
    matrices = yaw_pitch_roll_matrix(head)
    np.testing.assert_allclose(yaw_pitch_roll(matrices), head, atol=1e-12)
    yaw, pitch, roll = head[7]
    np.testing.assert_allclose(matrices[7], about("Y", yaw) @ about("X", pitch) @ about("Z", roll), atol=1e-12)


def test_a_takes_angles_are_live_link_faces():
    head = np.random.default_rng(1).uniform(-1.2, 1.2, (100, 3))
    matrices = take_rotation_matrix(head)
    np.testing.assert_allclose(live_link_angles(matrices), head, atol=1e-12)
    yaw, pitch, roll = head[7]  # Live Link Face's yaw and roll turn against the right-hand rule about ARKit's axes
    np.testing.assert_allclose(matrices[7], about("Y", -yaw) @ about("X", pitch) @ about("Z", -roll), atol=1e-12)


def test_the_turn_in_blenders_axes():
    """Live Link Face's signs: positive yaw turns the face (-Y in Blender) toward the performer's right (-X);
    positive pitch tilts it down; roll is negated with yaw (the left ear goes down for positive roll)."""
    face, left_ear = np.array([0.0, -1.0, 0.0]), np.array([1.0, 0.0, 0.0])
    assert (head_turn_in_blender(np.array([[0.3, 0.0, 0.0]]))[0] @ face)[0] < -0.2
    assert (head_turn_in_blender(np.array([[0.0, 0.3, 0.0]]))[0] @ face)[2] < -0.2
    assert (head_turn_in_blender(np.array([[0.0, 0.0, 0.3]]))[0] @ left_ear)[2] < -0.2
    angles = np.random.default_rng(4).uniform(-1, 1, (20, 3))
    np.testing.assert_allclose(take_rotation_matrix(angles), yaw_pitch_roll_matrix(angles * [-1, 1, -1]))


def test_a_character_facing_plus_y_turns_the_same_way_for_itself():
    """The same take turns a character facing +Y (its left at -X) toward its own right and down."""
    axes = character_axes(np.array([-1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0]))
    np.testing.assert_allclose(axes[:, 2], [0.0, 1.0, 0.0], atol=1e-12)  # forward: +Y
    np.testing.assert_allclose(character_axes(np.array([2.0, 0, 0]), np.array([0.3, 0, 1.0])), ARKIT_TO_BLENDER,
                               atol=1e-12)
    face = axes[:, 2]
    yawed = take_turn_in_world(np.array([[0.3, 0.0, 0.0]]), axes)[0] @ face
    assert yawed @ -axes[:, 0] > 0.2  # toward its own right
    pitched = take_turn_in_world(np.array([[0.0, 0.3, 0.0]]), axes)[0] @ face
    assert pitched[2] < -0.2  # down


def test_neck_and_head_shares_compose_to_the_whole_turn():
    turns = axis_angle_to_matrix(np.random.default_rng(5).normal(size=(30, 3)) * 0.5)
    for share in (0.0, 0.3, 1.0):
        np.testing.assert_allclose(fraction_of_turn(turns, share) @ fraction_of_turn(turns, 1 - share), turns,
                                   atol=1e-12)


@pytest.mark.parametrize("order", EULER_ORDERS)
def test_euler_angles_of_every_order(order):
    rng = np.random.default_rng(1)
    matrices = axis_angle_to_matrix(rng.normal(size=(50, 3)) * 0.6)
    angles = matrix_to_euler(matrices, order)
    for m, a in zip(matrices, angles):
        rebuilt = np.eye(3)
        for axis in order:  # Blender's XYZ applies X first: R = Rz Ry Rx
            rebuilt = about(axis, a["XYZ".index(axis)]) @ rebuilt
        np.testing.assert_allclose(rebuilt, m, atol=1e-12)


def test_rotation_channels_in_a_rest_frame():
    rng = np.random.default_rng(2)
    turns = axis_angle_to_matrix(rng.normal(size=(20, 3)) * 0.4)
    rest = axis_angle_to_matrix(np.array([0.3, -1.1, 0.5])) * 2.0  # bone matrices may carry scale
    local = in_rest_frame(turns, rest)
    unit = rest / 2.0
    np.testing.assert_allclose(unit @ local @ unit.T, turns, atol=1e-12)
    prop, quaternions = rotation_channels(local, "QUATERNION")
    assert prop == "rotation_quaternion" and np.all(np.sum(quaternions[1:] * quaternions[:-1], axis=1) >= 0)
    np.testing.assert_allclose(quaternion_to_matrix(quaternions), local, atol=1e-12)
    prop, axis_angle = rotation_channels(local, "AXIS_ANGLE")
    assert prop == "rotation_axis_angle"
    np.testing.assert_allclose(axis_angle_to_matrix(axis_angle[:, 1:] * axis_angle[:, :1]), local, atol=1e-12)


def test_preset_round_trip_and_bad_files(tmp_path):
    mapping = {"EyeBlink_L": "eyeBlinkLeft", "browInnerUp_R": "browInnerUp", "Extra": None, "ünïcode": "jawOpen"}
    path = tmp_path / "preset.json"
    channels = {"jawOpen": {"gain": 1.25, "offset": -0.05, "smoothing": 1.5}, "eyeBlinkLeft": {"gain": 1.0}}
    write_preset(path, mapping, channels)
    assert read_preset(path) == mapping and json.loads(path.read_text())["format"] == FORMAT
    _, read_channels = read_preset_with_channels(path)
    assert read_channels == {"jawOpen": {"gain": 1.25, "offset": -0.05, "smoothing": 1.5}}  # defaults not stored
    old = tmp_path / "version1.json"  # presets saved before channels existed still load
    old.write_text(json.dumps({"format": "sheap-arkit-mapping-1", "mapping": mapping}))
    assert read_preset_with_channels(old) == (mapping, {})
    with pytest.raises(ValueError):
        write_preset(path, {"a": "notAChannel"})
    for name, text in (("empty.json", ""), ("list.json", "[1, 2]"), ("other.json", json.dumps({"format": "x"})),
                       ("bad.json", json.dumps({"format": FORMAT, "mapping": {"k": "blink"}})),
                       ("gain.json", json.dumps({"format": FORMAT, "mapping": {},
                                                 "channels": {"jawOpen": {"gain": "x"}}})),
                       ("chan.json", json.dumps({"format": FORMAT, "mapping": {}, "channels": {"blink": {}}}))):
        (tmp_path / name).write_text(text)
        with pytest.raises(InputError) as error:
            read_preset(tmp_path / name)
        assert name in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(InputError, match="not found"):
        read_preset(tmp_path / "missing.json")
