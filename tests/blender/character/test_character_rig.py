"""A character is a rig: several meshes with the ARKit keys, head/neck/eye/jaw bones found by their usual names, driven
from a hand-set result whatever the bones' rest orientation and whichever way the character faces; names that
cannot mislead; the animator's controls (neutral, gain/offset/smoothing in the preset, frames without a face,
retiming to the scene's fps); bake.py --character on a multi-mesh character."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from face_rigs import EYE_RADIUS, LOWER_TEETH_Z, NOSE_TIP, character_creator, ready_player_me, vroid
from face_rigs import world_vertices as world
from helpers import synthetic_result, write
from ict_character import build_character

from sheap_blender.character import mapping as character_mapping
from sheap_blender.core.arkit.names import ARKIT_NAMES
from sheap_blender.core.character.take_controls import gaussian_smooth
from sheap_blender.core.flame.model import load_flame
from sheap_blender.rig.animation import fcurves_of

REPO = Path(__file__).resolve().parents[3]
BACKEND_PYTHON = REPO / ".venv" / "bin" / "python"
N_ROWS = 31  # 1 s at 30 fps
NEUTRAL, JAW, EYES, HEAD = 0, 1, 2, 3  # the hand-set rows; the rest neutral


def keyed(id_data) -> dict[str, np.ndarray]:
    """data path[index] -> (N, 2) keyframe (frame, value)."""
    out = {}
    for fcurve in fcurves_of(id_data):
        co = np.empty(2 * len(fcurve.keyframe_points), dtype=np.float32)
        fcurve.keyframe_points.foreach_get("co", co)
        out[f"{fcurve.data_path}[{fcurve.array_index}]"] = co.reshape(-1, 2).astype(np.float64)
    return out


def channel_curves(obj) -> dict[str, np.ndarray]:
    """ARKit channel -> (N, 2) the curve of the key mapped to it."""
    mapping = character_mapping.stored_mapping(obj)
    curves = keyed(obj.data.shape_keys)
    return {mapping[key]: curves[path] for key in mapping if mapping[key]
            and (path := f'key_blocks["{bpy.utils.escape_identifier(key)}"].value[0]') in curves}


@pytest.fixture(scope="module")
def hand_set(demo, tmp_path_factory) -> dict:
    """A result made by hand: a neutral row, the jaw opened, both eyes to the performer's left, the head turned to
    the performer's left (FLAME: +Y turns toward the face's own left)."""
    flame = demo / "flame.safetensors"
    result = synthetic_result(N_ROWS, flame_sha=load_flame(flame).source_sha256, demo=True, fps="30")
    for name, values in result.params.items():
        if name not in ("shape", "crop_box", "cam_trans"):
            values[:] = 0.0
    result.params["jaw_pose"][JAW] = [0.25, 0.0, 0.0]
    result.params["eye_l_pose"][EYES] = [0.0, 0.25, 0.0]
    result.params["eye_r_pose"][EYES] = [0.0, 0.25, 0.0]
    result.params["neck_pose"][HEAD] = [0.0, 0.3, 0.0]
    result.valid[:] = True
    return {"result": write(tmp_path_factory.mktemp("hand") / "hand.sheap.safetensors", result), "flame": flame}


def drive(target: str, take: dict, **kwargs) -> set[str]:
    return bpy.ops.sheap.drive_character(object=target, result=str(take["result"]), flame=str(take["flame"]),
                                         **kwargs)


def at(frame: int, obj) -> np.ndarray:
    bpy.context.scene.frame_set(frame)
    return world(obj)


def near(points: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    return np.flatnonzero(np.linalg.norm(points - centre, axis=1) < radius)


BUILDERS = {"ready_player_me": lambda: ready_player_me(), "ready_player_me_facing_plus_x": lambda: ready_player_me(
    np.pi / 2), "ready_player_me_fbx_y_up": lambda: ready_player_me(y_up=True), "character_creator": character_creator,
    "vroid_facing_plus_y": vroid}


# ------------------------------------------------------------------------------ a character is a rig, with bones


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_jaw_eyes_and_head_move_the_character_the_performers_way(empty_scene, hand_set, kind):
    arm = BUILDERS[kind]()
    meshes = [obj for obj in bpy.data.objects if obj.type == "MESH"]
    to_world = np.array(arm.matrix_world, dtype=np.float64)
    bones = arm.data.bones
    names = [bone.name for bone in bones]
    eyes = [name for name in names if "Eye" in name]
    left_bone = next(name for name in eyes if "L" in name.replace("Eye", "").replace("Face", ""))
    right_bone = next(name for name in eyes if name != left_bone)
    left_centre = to_world[:3, :3] @ np.array(bones[left_bone].head_local) + to_world[:3, 3]
    right_centre = to_world[:3, :3] @ np.array(bones[right_bone].head_local) + to_world[:3, 3]
    left = (left_centre - right_centre) / np.linalg.norm(left_centre - right_centre)  # the character's own left
    up = np.array([0.0, 0.0, 1.0])
    forward = np.cross(left, up)
    # the panel's one click: the mesh chosen is any of the character's: every mesh and the bones are driven
    bpy.context.scene.sheap_character.target = meshes[0]
    assert drive("", hand_set, set_scene=True) == {"FINISHED"}
    for obj in meshes:
        assert obj.data.shape_keys.animation_data.action is not None, obj.name
    heads = {name for name in names if name.endswith("Head")}
    assert {curve.split('"')[1] for curve in keyed(arm)} >= {left_bone, right_bone, *heads}

    teeth = next((obj for obj in meshes if "Teeth" in obj.name), None)
    if teeth is not None:
        rest = at(1, teeth)
        lower = np.abs(rest[:, 2] - LOWER_TEETH_Z) < 0.002
        drop = rest[lower, 2] - at(1 + JAW, teeth)[lower, 2]
        assert drop.min() >= 0.003, (kind, drop.min())

    for centre in (left_centre, right_centre):
        eye = next(obj for obj in meshes if near(at(1, obj), centre, EYE_RADIUS * 1.2).size > 20)
        rest = at(1, eye)
        ball = near(rest, centre, EYE_RADIUS * 1.2)
        iris = ball[np.argmax(rest[ball] @ forward)]
        moved = (at(1 + EYES, eye)[iris] - rest[iris]) @ left
        assert 0.0015 <= moved <= 0.006, (kind, eye.name, moved)

    face = max(meshes, key=lambda obj: np.max(at(1, obj) @ forward))
    rest = at(1, face)
    nose = int(np.argmax(rest @ forward))  # the character's most forward point: its nose tip
    assert np.max(rest[nose] @ forward) == pytest.approx(-NOSE_TIP[1], abs=1e-4)
    assert (at(1 + HEAD, face)[nose] - rest[nose]) @ left >= 0.010, kind


def test_every_mesh_takes_the_same_values_and_eyes_turn_once(empty_scene, hand_set):
    arm = ready_player_me()
    assert drive(arm.name, hand_set, set_scene=True) == {"FINISHED"}
    curves = {obj.name: channel_curves(obj) for obj in bpy.data.objects if obj.type == "MESH"}
    assert sorted(curves) == ["EyeLeft", "EyeRight", "Wolf3D_Head", "Wolf3D_Teeth"]
    assert len(curves["Wolf3D_Head"]) == len(curves["Wolf3D_Teeth"]) == 52
    for name in ("EyeLeft", "EyeRight"):  # the eye bones turn the eyes: their own gaze keys are not keyed
        assert sorted(set(ARKIT_NAMES) - set(curves[name])) == sorted(n for n in ARKIT_NAMES if "eyeLook" in n)
    for channel, values in curves["Wolf3D_Head"].items():
        for name in ("Wolf3D_Teeth", "EyeLeft", "EyeRight"):
            if channel in curves[name]:
                np.testing.assert_array_equal(curves[name][channel], values)
    assert curves["Wolf3D_Head"]["eyeLookOutLeft"][EYES, 1] > 0.2  # the lids still follow the gaze
    assert curves["Wolf3D_Head"]["jawOpen"][JAW, 1] > 0.2


def test_neck_takes_its_share_and_chosen_bones_win(empty_scene, hand_set):
    arm = ready_player_me()
    settings = arm.sheap_character
    settings.neck_share = 0.4
    assert drive(arm.name, hand_set, set_scene=True) == {"FINISHED"}
    scene = bpy.context.scene
    scene.frame_set(1 + HEAD)
    angle = {name: arm.pose.bones[name].matrix_basis.to_quaternion().angle for name in ("Neck", "Head")}
    assert angle["Neck"] == pytest.approx(0.4 / 0.6 * angle["Head"], rel=1e-4) and angle["Head"] > 0.1
    settings.head_bone, settings.neck_share = "Spine", 0.0
    assert drive(arm.name, hand_set, set_scene=True) == {"FINISHED"}
    assert "Spine" in {curve.split('"')[1] for curve in keyed(arm)}
    settings.head_bone = "Nope"
    with pytest.raises(RuntimeError, match="has no bone 'Nope'"):
        drive(arm.name, hand_set)


# ------------------------------------------------------------------------------ names that cannot mislead


def test_second_keys_combinations_and_driven_keys_are_reported_not_keyed(empty_scene, hand_set):
    obj = build_character(habit="arkit", extra=("eyeBlinkLeft.001", "jawOpen_mouthClose",
                                                "mouthSmileLeft_eyeSquintLeft", "eyeBlink_L_Right"))
    driver = obj.data.shape_keys.key_blocks["mouthClose"].driver_add("value")
    driver.driver.expression = "0.5"
    mapping = character_mapping.automatic_mapping(obj)
    assert mapping["jawOpen_mouthClose"] is None and mapping["mouthSmileLeft_eyeSquintLeft"] is None
    assert mapping["eyeBlink_L_Right"] is None
    report = character_mapping.mapping_report(obj, mapping)
    assert report.duplicate_keys == {"eyeBlinkLeft": ["eyeBlinkLeft.001"]} and report.driver_keys == ["mouthClose"]
    line = report.line()
    assert "a second key for eyeBlinkLeft, not driven: eyeBlinkLeft.001" in line
    assert "set by a driver, not keyed: mouthClose" in line
    assert drive(obj.name, hand_set, set_scene=True) == {"FINISHED"}
    paths = {path.split('"')[1] for path in keyed(obj.data.shape_keys)}
    assert "eyeBlinkLeft" in paths and "eyeBlinkLeft.001" not in paths and "mouthClose" not in paths
    assert not paths & {"jawOpen_mouthClose", "mouthSmileLeft_eyeSquintLeft", "eyeBlink_L_Right"}


# ------------------------------------------------------------------------------ the animator's controls


@pytest.fixture(scope="module")
def noisy(demo, tmp_path_factory) -> dict:
    flame = demo / "flame.safetensors"
    result = synthetic_result(40, flame_sha=load_flame(flame).source_sha256, demo=True, valid_ratio=0.8, fps="30")
    result.params["expr"] *= 0.5
    return {"result": write(tmp_path_factory.mktemp("noisy") / "noisy.sheap.safetensors", result), "flame": flame,
            "valid": result.valid}


def test_neutral_gain_offset_smoothing_and_the_preset(empty_scene, noisy, tmp_path):
    obj = build_character(habit="arkit")
    assert bpy.ops.sheap.character_match(object=obj.name) == {"FINISHED"}
    assert drive(obj.name, noisy, set_scene=True) == {"FINISHED"}
    base = {c: v[:, 1] for c, v in channel_curves(obj).items()}
    settings = obj.sheap_character
    settings.use_neutral, settings.neutral_start, settings.neutral_end = True, 2, 4  # rows 1..3
    jaw = next(item for item in settings.channels if item.name == "jawOpen")
    jaw.gain, jaw.offset = 2.0, -0.05
    assert drive(obj.name, noisy, set_scene=True) == {"FINISHED"}
    after = {c: v[:, 1] for c, v in channel_curves(obj).items()}
    neutral = {c: base[c][1:4][noisy["valid"][1:4]].mean() for c in base}
    np.testing.assert_allclose(after["jawOpen"], np.clip(2 * (base["jawOpen"] - neutral["jawOpen"]) - 0.05, 0, 1),
                               atol=1e-6)
    np.testing.assert_allclose(after["cheekPuff"], np.clip(base["cheekPuff"] - neutral["cheekPuff"], 0, 1), atol=1e-6)
    jaw.smoothing = 2.0
    assert drive(obj.name, noisy, set_scene=True) == {"FINISHED"}
    smooth = channel_curves(obj)["jawOpen"][:, 1]
    np.testing.assert_allclose(smooth, gaussian_smooth(after["jawOpen"][:, None], np.array([2.0]))[:, 0], atol=1e-6)
    # gain, offset and smoothing travel with the mapping preset
    preset = tmp_path / "tuned.json"
    assert bpy.ops.sheap.character_preset_save(object=obj.name, filepath=str(preset)) == {"FINISHED"}
    assert json.loads(preset.read_text())["channels"] == {"jawOpen": {"gain": 2.0, "offset": -0.05,
                                                                      "smoothing": 2.0}}
    other = build_character(name="Other", habit="arkit")
    assert bpy.ops.sheap.character_preset_load(object=other.name, filepath=str(preset)) == {"FINISHED"}
    loaded = {item.name: (item.gain, item.offset, item.smoothing) for item in other.sheap_character.channels}
    assert loaded["jawOpen"] == pytest.approx((2.0, -0.05, 2.0)) and loaded["cheekPuff"] == (1.0, 0.0, 0.0)
    # the neutral pose from the current frame, in one click
    bpy.context.scene.frame_set(3)
    assert bpy.ops.sheap.character_neutral_here(object=obj.name) == {"FINISHED"}
    assert (settings.use_neutral, settings.neutral_start, settings.neutral_end) == (True, 3, 3)
    # a neutral pose outside the take: one line, nothing changed
    settings.neutral_start, settings.neutral_end = 500, 510
    actions = len(bpy.data.actions)
    with pytest.raises(RuntimeError, match="neutral pose's frames 500-510 are outside the take"):
        drive(obj.name, noisy, set_scene=True)
    np.testing.assert_array_equal(channel_curves(obj)["jawOpen"][:, 1], smooth)
    assert len(bpy.data.actions) == actions


@pytest.mark.parametrize("policy", ["HOLD", "NEUTRAL", "INTERPOLATE"])
def test_frames_without_a_face(empty_scene, noisy, policy):
    obj = build_character(habit="arkit")
    obj.sheap_character.gap_policy = policy
    assert drive(obj.name, noisy, set_scene=True) == {"FINISHED"}
    values = channel_curves(obj)["jawOpen"][:, 1]
    valid = noisy["valid"]
    gaps = np.flatnonzero(~valid)
    assert gaps.size and gaps[-1] < len(valid) - 1
    for row in gaps:
        before = np.flatnonzero(valid[:row])[-1]
        after = row + np.flatnonzero(valid[row:])[0]
        between = values[before] + (values[after] - values[before]) * (row - before) / (after - before)
        expected = {"HOLD": values[before], "NEUTRAL": 0.0, "INTERPOLATE": between}
        assert values[row] == pytest.approx(expected[policy], abs=1e-6), row


def test_a_30_fps_clip_in_a_24_fps_scene_plays_at_the_clips_speed(empty_scene, noisy):
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base, scene.frame_start, scene.frame_end = 24, 1.0, 1, 100
    obj = build_character(habit="arkit")
    assert drive(obj.name, noisy, set_scene=True) == {"FINISHED"}
    rows = channel_curves(obj)["jawOpen"]
    assert scene.render.fps == 30 and (scene.frame_start, scene.frame_end) == (1, 40)  # asked for
    scene.render.fps, scene.frame_end = 24, 100
    assert drive(obj.name, noisy) == {"FINISHED"}  # not asked: the scene stays, the take is retimed
    assert scene.render.fps == 24 and (scene.frame_start, scene.frame_end) == (1, 100)
    retimed = channel_curves(obj)["jawOpen"]
    np.testing.assert_array_equal(retimed[:, 0], np.arange(1, 33))  # 39 rows / 30 fps = 1.3 s = 31.2 frames at 24
    assert abs((retimed[-1, 0] - 1) / 24 - 39 / 30) < 1 / 24
    expected = np.interp((retimed[:, 0] - 1) * 30 / 24, rows[:, 0] - 1, rows[:, 1])
    valid_rows = np.flatnonzero(noisy["valid"])  # between frames with a face the retimed value is the clip's
    inside = np.isin(np.floor((retimed[:, 0] - 1) * 1.25), valid_rows) & np.isin(
        np.ceil((retimed[:, 0] - 1) * 1.25), valid_rows)
    np.testing.assert_allclose(retimed[inside, 1], expected[inside], atol=1e-6)


# ------------------------------------------------------------------------------ bake.py --character


def test_bake_a_multi_mesh_character(demo, tmp_path):
    from test_bake import short_clip

    frames = short_clip(demo / "astronaut.mp4", tmp_path / "take", 6)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    ready_player_me()
    blend = tmp_path / "avatar.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    digest = hashlib.sha256(blend.read_bytes()).hexdigest()
    out = tmp_path / "out"
    completed = subprocess.run([sys.executable, str(REPO / "scripts" / "bake.py"), "--", str(frames), "--out",
                                str(out), "--character", str(blend), "--flame", str(demo / "flame.safetensors"),
                                "--weights", str(demo / "demo_sheap_model.pt"), "--backend-python",
                                str(BACKEND_PYTHON), "--device", "cpu"], cwd=REPO, capture_output=True, text=True,
                               timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert hashlib.sha256(blend.read_bytes()).hexdigest() == digest, "the character's file is not changed"
    bpy.ops.wm.open_mainfile(filepath=str(out / "take.blend"))
    curves = {name: channel_curves(bpy.data.objects[name])
              for name in ("Wolf3D_Head", "Wolf3D_Teeth", "EyeLeft", "EyeRight")}
    assert all(curves.values()) and len(curves["Wolf3D_Teeth"]) == 52
    for channel, values in curves["Wolf3D_Head"].items():
        for name, other in curves.items():
            if channel in other:
                np.testing.assert_array_equal(other[channel], values, err_msg=f"{name} {channel}")
    bones = {curve.split('"')[1] for curve in keyed(bpy.data.objects["Armature"])}
    assert bones == {"Head", "LeftEye", "RightEye"}
    assert "'Armature'" in completed.stdout and "4 meshes" in completed.stdout


# ------------------------------------------------------------------------------ a CSV take, a collection, the panel


def test_a_csv_take_without_head_rotation_leaves_the_head_bone_alone(empty_scene, tmp_path):
    from sheap_blender.core.arkit.live_link_csv import LiveLinkTake, write_live_link_csv

    arm = ready_player_me()
    n = 12
    eyes = np.zeros((n, 3))
    eyes[1:, 0] = -0.2  # Live Link Face's signs: negative yaw, both eyes to the performer's left (row 0 ahead)
    take = LiveLinkTake(frames=np.arange(n, dtype=np.float64), weights=np.full((n, 52), 0.1), head=np.zeros((n, 3)),
                        left_eye=eyes, right_eye=eyes)
    path = tmp_path / "no_head.csv"
    write_live_link_csv(path, take, 30.0)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    assert bpy.ops.sheap.character_import_csv(object=arm.name, filepath=str(path), fps=30.0) == {"FINISHED"}
    assert {curve.split('"')[1] for curve in keyed(arm)} == {"LeftEye", "RightEye"}
    eye = bpy.data.objects["EyeLeft"]
    rest = at(1, eye)
    iris = int(np.argmin(rest[:, 1]))  # facing -Y: the most forward vertex
    assert 0.0015 <= at(5, eye)[iris, 0] - rest[iris, 0] <= 0.006  # toward the character's left (+X)


def test_a_collection_is_a_character_too(empty_scene, hand_set):
    ready_player_me()
    collection = bpy.data.collections.new("Avatar")
    bpy.context.scene.collection.children.link(collection)
    for obj in list(bpy.context.scene.collection.objects):
        collection.objects.link(obj)
    assert drive("Avatar", hand_set, set_scene=True) == {"FINISHED"}
    assert all(obj.data.shape_keys.animation_data is not None for obj in collection.objects if obj.type == "MESH")
    with pytest.raises(RuntimeError, match="no object named 'Nobody'"):
        drive("Nobody", hand_set)


def test_panel_shows_the_rigs_meshes_bones_and_controls(empty_scene):
    from test_character import StubLayout

    from sheap_blender.character import panel as character_panel

    arm = ready_player_me()
    bpy.context.scene.sheap_character.target = arm
    drawn = []
    character_panel.draw_drive_character(StubLayout(drawn), bpy.context)
    labels = [text for kind, text in drawn if kind == "label"]
    assert "4 meshes: EyeLeft, EyeRight, Wolf3D_Head, Wolf3D_Teeth" in labels
    assert {"Head", "LeftEye", "RightEye", "Neck"} <= set(labels)  # the bones found by name
    assert "Match Automatically to adjust each channel" in labels
    props = {name for kind, name in drawn if kind == "prop"}
    assert {"mapping_mesh", "head_bone", "jaw_bone", "neck_share", "facing", "gap_policy", "use_neutral",
            "set_scene"} <= props
    bpy.ops.sheap.character_match(object=arm.name)
    drawn.clear()
    character_panel.draw_drive_character(StubLayout(drawn), bpy.context)
    assert ("list", "channels") in drawn and ("list", "mapping") in drawn
    assert ("operator", "sheap.character_neutral_here") in drawn
