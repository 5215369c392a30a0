"""An animator's controls on a take (core/character/take_controls.py) and the names that must not mislead
(core/arkit/names.py, core/character/bones.py): pure NumPy, Blender's side in
tests/blender/character/test_character_rig.py."""

from __future__ import annotations

import numpy as np
import pytest

from sheap_blender.core.arkit.names import channel_for_key, duplicate_keys
from sheap_blender.core.character.bones import usual_bone
from sheap_blender.core.character.take_controls import (
    Controls,
    fill_gaps,
    gaussian_smooth,
    retime,
    sample_rows,
    sample_valid,
)


def test_retime_keeps_the_clips_speed():
    """A 30 fps clip of 31 rows (1 s) on a 24 fps scene: 25 frames (1 s), frame k reads row k * 30 / 24."""
    offsets, rows = retime(31, 30.0, 24.0)
    np.testing.assert_array_equal(offsets, np.arange(25))
    np.testing.assert_allclose(rows, np.arange(25) * 1.25)
    values = np.column_stack([np.arange(31.0), 2 * np.arange(31.0)])
    np.testing.assert_allclose(sample_rows(values, rows), np.column_stack([rows, 2 * rows]))
    offsets, rows = retime(30, 29.97002997, 60.0)  # slower clip on a faster scene: more frames, same seconds
    assert abs(offsets[-1] / 60.0 - 29 / 29.97002997) < 1 / 60.0
    valid = np.ones(30, dtype=bool)
    valid[10] = False
    assert not sample_valid(valid, np.array([10.2]))[0] and sample_valid(valid, np.array([10.6]))[0]
    with pytest.raises(ValueError):
        retime(0, 30.0, 24.0)


def test_gap_policies():
    values = np.arange(8.0)[:, None] * np.array([1.0, -1.0])
    valid = np.array([False, True, True, False, False, True, True, False])
    neutral = np.array([0.5, 0.5])
    np.testing.assert_allclose(fill_gaps(values, valid, "HOLD", neutral)[:, 0], [1, 1, 2, 2, 2, 5, 6, 6])
    np.testing.assert_allclose(fill_gaps(values, valid, "NEUTRAL", neutral)[:, 0], [.5, 1, 2, .5, .5, 5, 6, .5])
    np.testing.assert_allclose(fill_gaps(values, valid, "INTERPOLATE", neutral)[:, 1], [-1, -1, -2, -3, -4, -5, -6, -6])
    np.testing.assert_allclose(fill_gaps(values, np.zeros(8, bool), "HOLD", neutral), np.full((8, 2), 0.5))
    with pytest.raises(ValueError):
        fill_gaps(values, valid, "KEEP", neutral)


def test_smoothing_per_channel():
    rng = np.random.default_rng(0)
    values = rng.random((200, 3))
    out = gaussian_smooth(values, np.array([0.0, 1.0, 3.0]))
    np.testing.assert_array_equal(out[:, 0], values[:, 0])
    assert np.std(np.diff(out[:, 2])) < np.std(np.diff(out[:, 1])) < np.std(np.diff(values[:, 1]))
    np.testing.assert_allclose(out[100:105].mean(), values[:, 1:].mean(), atol=0.15)
    assert out.min() >= 0.0 and out.max() <= 1.0  # a weighted mean of values in range stays in range
    np.testing.assert_allclose(gaussian_smooth(np.ones((5, 2)), np.array([2.0, 2.0])), 1.0)  # ends held


def test_neutral_gain_offset_in_order():
    values = np.full((6, 2), 0.2)
    values[3:] = [0.7, 0.5]
    controls = Controls.none(2, 0.0, 1.0)
    controls.neutral_rows = (0, 2)
    controls.gain[:] = [2.0, 1.0]
    controls.offset[:] = [0.0, -0.1]
    out = controls.apply(values)
    np.testing.assert_allclose(out[:3], 0.0)  # the neutral pose itself reads 0 (clipped at 0 after the offset)
    np.testing.assert_allclose(out[3:], [[1.0, 0.2]] * 3)  # (0.7 - 0.2) * 2 = 1.0; (0.5 - 0.2) - 0.1
    controls.neutral_rows = (7, 9)
    with pytest.raises(ValueError, match="neutral"):
        controls.apply(values)


def test_combinations_and_conflicting_sides_are_no_channel():
    for name in ("jawOpen_mouthClose", "mouthSmileLeft_eyeSquintLeft", "MouthSmile_L_EyeSquint_L", "eyeBlink_L_Right",
                 "L_eyeBlinkRight", "mouthLeft_R", "viseme_aa"):
        assert channel_for_key(name) is None, name
    for name, channel in (("eyeBlinkLeft.001", "eyeBlinkLeft"), ("A38_Mouth_Smile_Left", "mouthSmileLeft"),
                          ("blendShape1.jawOpen", "jawOpen"), ("browInnerUp_L", "browInnerUp"),
                          ("L_eyeBlink", "eyeBlinkLeft"), ("mouthLeft", "mouthLeft")):
        assert channel_for_key(name) == channel, name


def test_a_second_key_for_a_channel_is_reported_and_halves_are_not():
    mapping = {"eyeBlinkLeft.001": "eyeBlinkLeft", "eyeBlinkLeft": "eyeBlinkLeft", "browInnerUp_L": "browInnerUp",
               "browInnerUp_R": "browInnerUp", "jawOpen": "jawOpen", "Other": None}
    assert duplicate_keys(mapping) == {"eyeBlinkLeft": ["eyeBlinkLeft.001"]}
    assert duplicate_keys({"EyeBlink_L": "eyeBlinkLeft", "eyeBlinkLeft": "eyeBlinkLeft"}) == {
        "eyeBlinkLeft": ["eyeBlinkLeft"]}
    assert duplicate_keys({"a_L": "browInnerUp", "b_L": "browInnerUp"}) == {"browInnerUp": ["b_L"]}


@pytest.mark.parametrize("names, role, found", [
    (["Hips", "Spine", "Neck", "Head", "LeftEye", "RightEye"], "head", "Head"),
    (["Hips", "Neck", "Head", "LeftEye", "RightEye"], "left_eye", "LeftEye"),
    (["CC_Base_Head", "CC_Base_L_Eye", "CC_Base_R_Eye", "CC_Base_JawRoot"], "jaw", "CC_Base_JawRoot"),
    (["J_Bip_C_Head", "J_Adj_L_FaceEye", "J_Adj_R_FaceEye"], "right_eye", "J_Adj_R_FaceEye"),
    (["mixamorig:Head", "mixamorig:Neck"], "head", "mixamorig:Head"),
    (["root", "head", "eye.L", "eye.R", "jaw"], "left_eye", "eye.L"),
    (["root", "head", "eye.L", "eye.R", "jaw"], "jaw", "jaw"),
    (["Hips", "Spine"], "head", ""),
])
def test_usual_bone_names(names, role, found):
    assert usual_bone(role, names) == found


def test_an_untouched_channel_keeps_the_takes_values():
    """Live Link Face writes values a little over 1: kept as in the file unless the animator adjusts the channel."""
    values = np.array([[0.5, 1.0033], [0.7, 1.01]])
    controls = Controls.none(2, 0.0, 1.0)
    np.testing.assert_array_equal(controls.apply(values), values)
    controls.gain[1] = 1.0001
    assert controls.apply(values)[:, 1].max() == 1.0
