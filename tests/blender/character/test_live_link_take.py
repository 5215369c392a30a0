"""Takes as Live Link Face writes them, imported as a user does (nothing to type) onto scenes at 24, 30, 29.97 fps;
the head left alone when its rotation is off; Drive Character saying when blinks cannot be carried."""

from __future__ import annotations

import csv
from pathlib import Path

import bpy
import numpy as np
import pytest
from helpers import synthetic_result, write
from ict_character import add_head_bone, build_character

from sheap_blender.character import drive as character
from sheap_blender.character import mapping as character_mapping
from sheap_blender.core.flame.model import load_flame
from sheap_blender.rig.animation import fcurves_of

REAL_TAKE = Path(__file__).resolve().parents[2] / "data" / "live_link_face_take_excerpt.csv"  # see its .txt


def file_rows() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The take's row times (seconds from its first row, read by hand: 60 fps timecode) and columns as written."""
    with open(REAL_TAKE, newline="") as stream:
        rows = list(csv.DictReader(stream))
    seconds = []
    for row in rows:
        hh, mm, ss, ff = row["Timecode"].split(":")
        seconds.append(int(hh) * 3600 + int(mm) * 60 + int(ss) + float(ff) / 60)
    columns = {name: np.array([float(row[name]) for row in rows]) for name in rows[0] if name != "Timecode"}
    return np.array(seconds) - seconds[0], columns


def curves(id_data) -> dict[str, bpy.types.FCurve]:
    return {f"{fc.data_path}[{fc.array_index}]": fc for fc in fcurves_of(id_data)}


def key_frames(fcurve) -> np.ndarray:
    co = np.empty(2 * len(fcurve.keyframe_points), dtype=np.float32)
    fcurve.keyframe_points.foreach_get("co", co)
    return co[0::2].astype(np.float64)


def animate_head_bone(rig: bpy.types.Object) -> list[tuple]:
    """The user's own animation of the head bone (two keys); returns it as (path, frame, value) rows."""
    bone = rig.pose.bones["head"]
    bone.rotation_mode = "XYZ"
    for frame, angle in ((1, 0.0), (40, 0.4)):
        bone.rotation_euler = (angle, 0.0, -angle / 2)
        bone.keyframe_insert("rotation_euler", frame=frame)
    return head_keys(rig)


def head_keys(rig: bpy.types.Object) -> list[tuple]:
    return sorted((path, *point.co) for path, fc in curves(rig).items() for point in fc.keyframe_points)


@pytest.mark.parametrize(("fps", "fps_base"), [(24, 1.0), (30, 1.0), (30000, 1001.0)])
def test_a_real_take_imports_at_the_scenes_rate_with_nothing_to_type(empty_scene, fps, fps_base):
    obj = build_character(habit="arkit")
    rig = add_head_bone(obj)
    user_head = animate_head_bone(rig)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = fps, fps_base
    scene.frame_start = 11
    scene_fps = fps / fps_base
    assert bpy.ops.sheap.character_import_csv(object=obj.name, filepath=str(REAL_TAKE)) == {"FINISHED"}

    seconds, columns = file_rows()
    keyed = curves(obj.data.shape_keys)
    mapping = character_mapping.stored_mapping(obj)
    assert len(keyed) == 53 and len(mapping) == 53  # every key keyed (ICT's 53: browInnerUp, cheekPuff in halves)
    rows = 11 + seconds * scene_fps  # each row at its own time, the first on the scene's start
    for key, channel in mapping.items():
        fcurve = keyed[f'key_blocks["{key}"].value[0]']
        frames = key_frames(fcurve)
        # the take's length kept in seconds within a frame, a key on every whole frame it spans
        assert frames[0] == 11 and abs((frames[-1] - 11) / scene_fps - seconds[-1]) < 1 / scene_fps
        assert np.isin(np.arange(11, np.floor(rows[-1]) + 1), np.round(frames, 4)).all()
        # the values as in the file at the rows' times
        column = columns[channel[0].upper() + channel[1:]]
        evaluated = np.array([fcurve.evaluate(frame) for frame in rows])
        assert np.abs(evaluated - column).max() < 2e-3, key  # keys sit within 0.01 frame of a row's time
    # blinks are carried whole: the file's largest blink is on the character
    blink = keyed[f'key_blocks["{next(k for k, c in mapping.items() if c == "eyeBlinkLeft")}"].value[0]']
    peak = int(np.argmax(columns["EyeBlinkLeft"]))
    assert blink.evaluate(rows[peak]) == pytest.approx(columns["EyeBlinkLeft"][peak], abs=2e-3)
    # head rotation was off in the app: the head bone keeps the user's own animation
    assert head_keys(rig) == user_head


def test_the_head_left_alone_is_said(empty_scene, capfd):
    obj = build_character(habit="arkit")
    rig = add_head_bone(obj)
    user_head = animate_head_bone(rig)
    driven = character.drive_with_csv(bpy.context, obj, REAL_TAKE, None, 1)  # what the operator reports
    assert any("head rotation" in w and "left as it is" in w for w in driven.warnings), driven.warnings
    assert driven.head_bone == "" and "head rotation on bone" not in driven.summary()
    assert "240 frames (1-240.968)" in driven.summary() and "timecode read at 60 fps" in driven.summary()
    assert head_keys(rig) == user_head
    # the user sees it: the operator's warning line (Blender prints reports when there is no window)
    capfd.readouterr()
    assert bpy.ops.sheap.character_import_csv(object=obj.name, filepath=str(REAL_TAKE)) == {"FINISHED"}
    printed = capfd.readouterr().out
    assert "Warning: SHeaP: the take's head rotation is 0 on every row" in printed, printed[-2000:]
    assert head_keys(rig) == user_head


def test_a_take_with_head_rotation_still_turns_the_head(empty_scene, tmp_path):
    obj = build_character(habit="arkit")
    rig = add_head_bone(obj)
    with open(REAL_TAKE, newline="") as stream:
        rows = list(csv.reader(stream))
    yaw = rows[0].index("HeadYaw")
    for r, row in enumerate(rows[1:]):
        row[yaw] = f"{0.3 * np.sin(r / 20):.10f}"
    turned = tmp_path / "turned.csv"
    with open(turned, "w", newline="") as stream:
        csv.writer(stream, lineterminator="\n").writerows(rows)
    driven = character.drive_with_csv(bpy.context, obj, turned, None, 1)
    assert driven.head_bone == "head" and not any("head rotation" in w for w in driven.warnings)
    assert sorted(curves(rig)) == [f'pose.bones["head"].rotation_quaternion[{i}]' for i in range(4)]


def test_a_rate_the_user_types_is_kept(empty_scene):
    obj = build_character(habit="arkit")
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    # 60 as the app counts: the same as reading it from the take
    assert bpy.ops.sheap.character_import_csv(object=obj.name, filepath=str(REAL_TAKE), fps=60.0,
                                              frame_start=1) == {"FINISHED"}
    frames = key_frames(next(iter(curves(obj.data.shape_keys).values())))
    assert frames[-1] == pytest.approx(1 + 30 * (10 - 0.08 / 60), abs=0.02)
    # a rate the take's frame field goes past: one line naming the file and the row, nothing changed
    before = len(bpy.data.actions)
    with pytest.raises(RuntimeError) as error:
        bpy.ops.sheap.character_import_csv(object=obj.name, filepath=str(REAL_TAKE), fps=30.0)
    message = str(error.value).strip()
    assert "live_link_face_take_excerpt.csv" in message and "past a 30 fps timecode" in message
    assert len(message.splitlines()) == 1 and len(bpy.data.actions) == before


@pytest.fixture(scope="module")
def eyelid_result(demo, tmp_path_factory) -> Path:
    model = load_flame(demo / "flame.safetensors")
    result = synthetic_result(12, flame_sha=model.source_sha256, demo=True)
    for name in ("expr", "jaw_pose", "eye_l_pose", "eye_r_pose"):
        result.params[name][:] = 0.0  # a still face ...
    result.params["eyelids"][:] = np.linspace(0.0, 1.0, 12, dtype=np.float32)[:, None]  # ... whose lids close
    return write(tmp_path_factory.mktemp("lids") / "lids.sheap.safetensors", result)


def test_drive_character_says_blinks_cannot_be_carried(empty_scene, demo, eyelid_result):
    obj = build_character(habit="arkit")
    source = character.Source(eyelid_result, str(demo / "generic_model.pkl"), 1)  # the raw pickle: no eyelid shapes
    driven = character.drive_with_result(bpy.context, obj, source, set_scene=False)
    lost = [w for w in driven.warnings if "blinks cannot be carried" in w]
    assert len(lost) == 1 and "--eyelids" in lost[0]
    blink_key = next(k for k, c in character_mapping.stored_mapping(obj).items() if c == "eyeBlinkLeft")
    values = [curves(obj.data.shape_keys)[f'key_blocks["{blink_key}"].value[0]'].evaluate(f) for f in range(1, 13)]
    assert max(values) < 0.05  # what the warning is about: the closing lids read as no blink
    # with the eyelid shapes (the converted file) the blink is carried and nothing is said
    other = build_character(name="Other", habit="arkit")
    carried = character.drive_with_result(bpy.context, other, character.Source(
        eyelid_result, str(demo / "flame.safetensors"), 1), set_scene=False)
    assert not [w for w in carried.warnings if "blinks" in w]
    blink_key = next(k for k, c in character_mapping.stored_mapping(other).items() if c == "eyeBlinkLeft")
    assert curves(other.data.shape_keys)[f'key_blocks["{blink_key}"].value[0]'].evaluate(12) > 0.3
