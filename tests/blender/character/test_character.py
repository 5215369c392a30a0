"""Drive your own character: ICT-FaceKit's ARKit head as a Blender mesh, its keys named in several habits,
keyed from a result (the values `python -m backend arkit` writes), a Live Link Face CSV, and by bake.py."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
import subprocess
import sys
from pathlib import Path

import bpy
import mathutils
import numpy as np
import pytest
from helpers import synthetic_result, write
from ict_character import HABITS, add_head_bone, build_character, habit_name, ict_shapes

from sheap_blender.character import mapping as character_mapping
from sheap_blender.core.arkit.live_link_csv import COLUMNS, LiveLinkTake, timecode, write_live_link_csv
from sheap_blender.core.arkit.names import ARKIT_NAMES, channel_for_key
from sheap_blender.core.flame.model import load_flame
from sheap_blender.rig.animation import fcurves_of

REPO = Path(__file__).resolve().parents[3]
BACKEND_PYTHON = REPO / ".venv" / "bin" / "python"


# ------------------------------------------------------------------------------ the character


def mesh_state(obj: bpy.types.Object) -> dict:
    """Everything of the mesh data driving must not change: coordinates, every key's shape and settings."""
    mesh = obj.data
    co = np.empty(3 * len(mesh.vertices), dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    state = {"co": co.tobytes(), "name": mesh.name, "keys": []}
    for block in mesh.shape_keys.key_blocks if mesh.shape_keys else ():
        block.data.foreach_get("co", co)
        state["keys"].append((block.name, co.tobytes(), block.slider_min, block.slider_max, block.mute,
                              block.relative_key.name, block.vertex_group, block.interpolation))
    return state


def backend_take(result: Path, flame: Path, out: Path) -> dict[str, np.ndarray]:
    """`python -m backend arkit RESULT --flame FLAME -o TAKE.csv`, its columns by header name."""
    done = subprocess.run([str(BACKEND_PYTHON), "-m", "backend", "arkit", str(result), "--flame", str(flame), "-o",
                           str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out, newline="") as stream:
        rows = list(csv.DictReader(stream))
    return {name: np.array([row[name] for row in rows], dtype=(str if name == "Timecode" else np.float64))
            for name in rows[0]}


def column(arkit_name: str) -> str:
    return arkit_name[0].upper() + arkit_name[1:]


def keyed(id_data) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """data path[index] -> (frames, values) of the ID's F-curves."""
    out = {}
    for fcurve in fcurves_of(id_data):
        co = np.empty(2 * len(fcurve.keyframe_points), dtype=np.float32)
        fcurve.keyframe_points.foreach_get("co", co)
        out[f"{fcurve.data_path}[{fcurve.array_index}]"] = (co[0::2].astype(np.float64), co[1::2].astype(np.float64))
    return out


def key_path(name: str) -> str:
    return f'key_blocks["{bpy.utils.escape_identifier(name)}"].value[0]'


@pytest.fixture(scope="module")
def take_files(demo, tmp_path_factory) -> dict:
    """A 40-frame result for the demo FLAME (some frames without a face) and the backend's take of it."""
    folder = tmp_path_factory.mktemp("take")
    flame = demo / "flame.safetensors"
    model = load_flame(flame)
    result = synthetic_result(40, flame_sha=model.source_sha256, demo=True, valid_ratio=0.8)
    result.params["expr"] *= 0.5
    path = write(folder / "clip.sheap.safetensors", result)
    return {"result": path, "flame": flame, "csv": backend_take(path, flame, folder / "clip.csv"),
            "valid": result.valid}


def drive(**kwargs) -> set[str]:
    return bpy.ops.sheap.drive_character(**kwargs)


# ------------------------------------------------------------------------------ matching


@pytest.mark.parametrize("habit", HABITS)
def test_matching_over_naming_habits(empty_scene, habit):
    obj = build_character(habit=habit, extra=("Sculpt_Fix",))
    assert bpy.ops.sheap.character_match(object=obj.name) == {"FINISHED"}
    mapping = character_mapping.stored_mapping(obj)
    _, ict_names = ict_shapes()
    for number, ict_name in enumerate(ict_names, start=1):
        expected = channel_for_key(ict_name)  # ICT's own names read as ICT means them
        assert mapping[habit_name(ict_name, habit, number)] == expected, (habit, ict_name)
    # both halves of ICT's browInnerUp and cheekPuff take the one channel
    halves = [key for key, channel in mapping.items() if channel == "browInnerUp"]
    assert len(halves) == 2
    report = character_mapping.mapping_report(obj, mapping)
    assert report.unmatched_channels == ["tongueOut"] and report.unmatched_keys == ["Sculpt_Fix"]
    assert len(report.channels) == 51 and len(report.driven_keys) == 53


def test_match_reports_unmatched_channels_and_keys(empty_scene):
    obj = build_character(habit="snake", skip=("jawOpen", "mouthClose"), extra=("Corrective_01",))
    assert bpy.ops.sheap.character_match(object=obj.name) == {"FINISHED"}
    # the operator's report line (and the panel's lines) name what is unmatched on both sides
    text = character_mapping.mapping_report(obj, character_mapping.stored_mapping(obj)).line()
    assert "no key for 3: jawOpen, mouthClose, tongueOut" in text
    assert "keys not driven (1): Corrective_01" in text


# ------------------------------------------------------------------------------ keying from a result


def held(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Rows without a face take the last row with one (the panel's default "Hold")."""
    rows = np.maximum.accumulate(np.where(valid, np.arange(len(valid)), 0))
    return values[rows]


def test_keyed_values_equal_the_backends_take(empty_scene, take_files):
    obj = build_character(habit="cc")
    before = mesh_state(obj)
    assert drive(object=obj.name, result=str(take_files["result"]), flame=str(take_files["flame"]),
                 set_scene=True) == {"FINISHED"}
    assert mesh_state(obj) == before, "the mesh data is never changed"
    expected = take_files["csv"]
    curves = keyed(obj.data.shape_keys)
    mapping = character_mapping.stored_mapping(obj)  # filled automatically: the mapping was empty
    assert len(curves) == 53
    frames = np.arange(1, 41, dtype=np.float64)  # row i on scene frame 1 + i, as the rig
    for key, channel in mapping.items():
        keyed_frames, values = curves[key_path(key)]
        np.testing.assert_array_equal(keyed_frames, frames)
        np.testing.assert_allclose(values, held(expected[column(channel)], take_files["valid"]), atol=2e-6,
                                   rtol=1e-5, err_msg=key)
    # evaluated on a frame: the key's value is the take's
    scene = bpy.context.scene
    scene.frame_set(7)
    jaw = next(key for key, channel in mapping.items() if channel == "jawOpen")
    assert obj.data.shape_keys.key_blocks[jaw].value == pytest.approx(
        held(expected["JawOpen"], take_files["valid"])[6], abs=2e-6)
    # frames without a face: held from the frame before, a "no face" marker at each run, as the rig does
    markers = {m.frame for m in scene.timeline_markers if m.name.startswith("no face")}
    invalid = np.flatnonzero(~take_files["valid"])
    starts = [int(i) + 1 for i in invalid if i - 1 not in set(invalid.tolist())]
    assert markers == set(starts) and starts
    assert (scene.frame_start, scene.frame_end) == (1, 40) and scene.render.fps == 30


def test_frames_follow_the_rig_of_the_same_result(empty_scene, take_files):
    """With the result's rig in the scene imported at frame 11, the character is keyed on the same frames,
    and the panel's empty result means that rig's."""
    bpy.ops.sheap.import_result(filepath=str(take_files["result"]), flame=str(take_files["flame"]), frame_start=11)
    obj = build_character()
    bpy.context.scene.sheap_character.target = obj
    assert drive() == {"FINISHED"}
    frames, _ = next(iter(keyed(obj.data.shape_keys).values()))
    np.testing.assert_array_equal(frames, np.arange(11, 51))


def test_one_undo_step_and_redrive_replaces_the_take(empty_scene, take_files):
    """One operator call (UNDO: one step); a second drive replaces the first take's curves in the same action,
    and keeps the user's own curves on other keys."""
    from sheap_blender.character.operator import SHEAP_OT_drive_character

    assert "UNDO" in SHEAP_OT_drive_character.bl_options
    obj = build_character(extra=("Hand_Keyed",))
    keys = obj.data.shape_keys
    keys.key_blocks["Hand_Keyed"].value = 0.25
    keys.key_blocks["Hand_Keyed"].keyframe_insert("value", frame=3)
    user_action = keys.animation_data.action
    user_action.name = "my expressions"
    args = {"object": obj.name, "result": str(take_files["result"]), "flame": str(take_files["flame"])}
    assert drive(**args) == {"FINISHED"}
    assert drive(**args) == {"FINISHED"}
    action = keys.animation_data.action
    assert action.name == "my expressions" and len(bpy.data.actions) == 1
    curves = keyed(keys)
    assert len(curves) == 54 and curves[key_path("Hand_Keyed")][1].tolist() == [0.25]


def live_link_turn(yaw: float, pitch: float, roll: float) -> mathutils.Matrix:
    """A take's head turn in Blender's axes (face toward -Y), Live Link Face's signs, written out with mathutils."""
    to_blender = mathutils.Matrix(((1, 0, 0), (0, 0, -1), (0, 1, 0)))
    turn = (mathutils.Matrix.Rotation(-yaw, 3, "Y") @ mathutils.Matrix.Rotation(pitch, 3, "X")
            @ mathutils.Matrix.Rotation(-roll, 3, "Z"))
    return to_blender @ turn @ to_blender.transposed()


def test_head_bone_keyed(empty_scene, take_files):
    obj = build_character()
    armature = bpy.data.armatures.new("Body")
    rig = bpy.data.objects.new("Body", armature)
    bpy.context.scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    neck = armature.edit_bones.new("neck")
    neck.head, neck.tail = (0.0, 0.0, -0.1), (0.0, 0.01, -0.02)
    head = armature.edit_bones.new("head.x")
    head.head, head.tail, head.roll = (0.0, 0.01, -0.02), (0.0, -0.02, 0.12), 0.4  # tilted and rolled
    head.parent = neck
    bpy.ops.object.mode_set(mode="OBJECT")
    rig.pose.bones["head.x"].rotation_mode = "YXZ"  # keyed in the bone's own mode
    obj.sheap_character.head_armature = rig
    obj.sheap_character.head_bone = "head.x"
    obj.sheap_character.gap_policy = "INTERPOLATE"
    assert drive(object=obj.name, result=str(take_files["result"]), flame=str(take_files["flame"]),
                 set_scene=True) == {"FINISHED"}
    curves = keyed(rig)
    assert sorted(curves) == [f'pose.bones["head.x"].rotation_euler[{i}]' for i in range(3)], "the neck keeps still"
    expected = take_files["csv"]
    rest = rig.data.bones["head.x"].matrix_local.to_3x3()
    scene = bpy.context.scene
    valid = np.flatnonzero(take_files["valid"])
    head = np.column_stack([expected[n] for n in ("HeadYaw", "HeadPitch", "HeadRoll")])  # the app's signs
    for row in valid[[0, 5, 17, -1]]:
        scene.frame_set(1 + int(row))
        posed = rig.pose.bones["head.x"].matrix.to_3x3() @ rest.transposed()  # the bone's turn in world axes
        assert np.abs(np.array(posed) - np.array(live_link_turn(*head[row]))).max() < 1e-5, row
    # Live Link Face's signs: positive yaw turns the face (-Y in Blender) to the performer's right (-X)
    row = int(valid[np.argmax(head[valid, 0])])
    scene.frame_set(1 + row)
    facing = rig.pose.bones["head.x"].matrix.to_3x3() @ rest.transposed() @ mathutils.Vector((0, -1, 0))
    assert head[row, 0] > 0.05 and facing.x < 0


# ------------------------------------------------------------------------------ the mapping in the file, presets


def test_mapping_survives_save_and_reload(empty_scene, tmp_path):
    obj = build_character(habit="dot")
    bpy.ops.sheap.character_match(object=obj.name)
    items = obj.sheap_character.mapping
    items[0].channel = "NONE"
    items[1].channel = "tongueOut"
    expected = character_mapping.stored_mapping(obj)
    path = tmp_path / "character.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(path))
    assert character_mapping.stored_mapping(bpy.data.objects["Face"]) == expected
    assert list(expected.values())[:2] == [None, "tongueOut"]


def test_preset_save_and_load(empty_scene, tmp_path):
    obj = build_character(habit="upper_camel", extra=("Sculpt_Fix",))
    bpy.ops.sheap.character_match(object=obj.name)
    obj.sheap_character.mapping[2].channel = "cheekPuff"
    saved = character_mapping.stored_mapping(obj)
    preset = tmp_path / "my rig.json"
    assert bpy.ops.sheap.character_preset_save(object=obj.name, filepath=str(preset)) == {"FINISHED"}
    assert json.loads(preset.read_text())["mapping"] == saved
    # a second character of the same naming takes the preset
    other = build_character(name="Other", habit="upper_camel", skip=("jawOpen",))
    assert bpy.ops.sheap.character_preset_load(object=other.name, filepath=str(preset)) == {"FINISHED"}
    assert character_mapping.stored_mapping(other) == {k: v for k, v in saved.items()
                                                      if k not in ("JawOpen", "Sculpt_Fix")}


def test_a_bad_preset_is_one_line_and_changes_nothing(empty_scene, tmp_path):
    obj = build_character()
    bpy.ops.sheap.character_match(object=obj.name)
    before = character_mapping.stored_mapping(obj)
    bad = tmp_path / "bad.json"
    for content in ("not json", json.dumps({"format": "sheap-arkit-mapping-1", "mapping": {"eyeBlink_L": "blink"}}),
                    json.dumps({"format": "sheap-arkit-mapping-1", "mapping": {"Nothing": "jawOpen"}})):
        bad.write_text(content)
        with pytest.raises(RuntimeError) as error:
            bpy.ops.sheap.character_preset_load(object=obj.name, filepath=str(bad))
        assert "bad.json" in str(error.value) and len(str(error.value).strip().splitlines()) == 1
        assert character_mapping.stored_mapping(obj) == before


# ------------------------------------------------------------------------------ Live Link Face CSV


def test_csv_import_by_header_name(empty_scene, tmp_path):
    obj = build_character(habit="arkit")
    rig = add_head_bone(obj)
    rng = np.random.default_rng(3)
    n = 24
    take = LiveLinkTake(frames=np.arange(100, 100 + n, dtype=np.float64), weights=rng.random((n, 52)),
                        head=rng.uniform(-0.3, 0.3, (n, 3)), left_eye=np.zeros((n, 3)), right_eye=np.zeros((n, 3)))
    ordered = tmp_path / "ordered.csv"
    write_live_link_csv(ordered, take, 60.0)
    with open(ordered, newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == list(COLUMNS)
    order = list(range(len(COLUMNS)))
    random.Random(5).shuffle(order)
    order.remove(COLUMNS.index("MouthClose"))  # a column the app did not write: that key is left alone
    shuffled = tmp_path / "shuffled.csv"
    with open(shuffled, "w", newline="") as stream:
        csv.writer(stream).writerows([[row[i] for i in order] for row in rows])
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    assert bpy.ops.sheap.character_import_csv(object=obj.name, filepath=str(shuffled),  # its rate read from it
                                              frame_start=5) == {"FINISHED"}
    curves = keyed(obj.data.shape_keys)
    assert key_path("mouthClose") not in curves and len(curves) == 52  # 53 keys, one without a column
    for key, channel in character_mapping.stored_mapping(obj).items():
        if channel == "mouthClose":
            continue
        frames, values = curves[key_path(key)]
        np.testing.assert_allclose(frames, 5 + np.arange(n) / 2.0)  # 60 fps timecodes on a 30 fps scene
        np.testing.assert_allclose(values, take.weights[:, ARKIT_NAMES.index(channel)], atol=1e-5)
    assert timecode(101, 60.0) == "00:00:01:41.000"
    # the head bone turns by the take's yaw, pitch, roll (in world axes)
    bone_curves = keyed(rig)
    assert sorted(bone_curves) == [f'pose.bones["head"].rotation_quaternion[{i}]' for i in range(4)]
    scene.frame_set(5 + 4)  # row 8
    wanted = live_link_turn(*take.head[8])
    posed = rig.pose.bones["head"].matrix.to_3x3() @ rig.data.bones["head"].matrix_local.to_3x3().transposed()
    assert np.abs(np.array(posed) - np.array(wanted)).max() < 1e-4


# ------------------------------------------------------------------------------ bad input


def _state(obj) -> tuple:
    scene = bpy.context.scene
    return (len(bpy.data.actions), len(bpy.data.objects), obj.data.shape_keys and obj.data.shape_keys.animation_data,
            character_mapping.stored_mapping(obj), [(m.name, m.frame) for m in scene.timeline_markers],
            scene.render.fps, scene.frame_start, scene.frame_end)


def test_bad_input_is_one_line_and_changes_nothing(empty_scene, take_files, tmp_path):
    obj = build_character()
    plain = bpy.data.objects.new("Plain", bpy.data.meshes.new("Plain"))
    bpy.context.scene.collection.objects.link(plain)
    wrong = tmp_path / "wrong.sheap.safetensors"
    wrong.write_bytes(b"not a result at all" * 10)
    missing_flame = tmp_path / "no_flame.safetensors"
    good = {"result": str(take_files["result"]), "flame": str(take_files["flame"])}
    cases = [
        ({"object": plain.name, **good}, "has no shape keys"),
        ({"object": obj.name, "result": str(wrong), "flame": good["flame"]}, "wrong.sheap.safetensors"),
        ({"object": obj.name, "result": good["result"], "flame": str(missing_flame)}, "no_flame.safetensors"),
    ]
    for kwargs, words in cases:
        before, plain_before = _state(obj), mesh_state(obj)
        with pytest.raises(RuntimeError) as error:
            drive(**kwargs)
        message = str(error.value).strip()
        assert words in message and len(message.splitlines()) == 1 and "Traceback" not in message, message
        assert _state(obj) == before and mesh_state(obj) == plain_before
    # a head bone that is not there
    armature = bpy.data.objects.new("Arm", bpy.data.armatures.new("Arm"))
    bpy.context.scene.collection.objects.link(armature)
    obj.sheap_character.head_armature = armature
    obj.sheap_character.head_bone = "head"
    before = _state(obj)
    with pytest.raises(RuntimeError, match="has no bone 'head'"):
        drive(object=obj.name, **good)
    assert _state(obj) == before
    obj.sheap_character.head_armature = None
    # a CSV that is not a Live Link Face take
    not_a_take = tmp_path / "notes.csv"
    not_a_take.write_text("name,value\nblink,1\n")
    before = _state(obj)
    with pytest.raises(RuntimeError) as error:
        bpy.ops.sheap.character_import_csv(object=obj.name, filepath=str(not_a_take))
    assert "notes.csv" in str(error.value) and len(str(error.value).strip().splitlines()) == 1
    assert _state(obj) == before and math.isfinite(bpy.context.scene.render.fps)


# ------------------------------------------------------------------------------ bake.py --character


def bake(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "bake.py"), "--", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)


def character_file(path: Path, *names: str, head_bone: bool = False) -> Path:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    for name in names:
        obj = build_character(name=name, habit="cc")
        if head_bone:
            add_head_bone(obj)
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


def test_bake_onto_a_character(demo, tmp_path):
    from test_bake import short_clip

    frames = short_clip(demo / "astronaut.mp4", tmp_path / "take", 6)
    blend = character_file(tmp_path / "hero.blend", "Hero", head_bone=True)
    digest = hashlib.sha256(blend.read_bytes()).hexdigest()
    out = tmp_path / "out"
    flame = demo / "flame.safetensors"
    completed = bake(frames, "--out", out, "--character", blend, "--flame", flame, "--weights",
                     demo / "demo_sheap_model.pt", "--backend-python", BACKEND_PYTHON, "--device", "cpu",
                     "--set-scene-timing")
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["take.blend", "take.sheap.safetensors"]
    assert hashlib.sha256(blend.read_bytes()).hexdigest() == digest, "the character's file is not changed"
    expected = backend_take(out / "take.sheap.safetensors", flame, tmp_path / "take.csv")
    bpy.ops.wm.open_mainfile(filepath=str(out / "take.blend"))
    hero = bpy.data.objects["Hero"]
    curves = keyed(hero.data.shape_keys)
    assert len(curves) == 53
    for key, channel in character_mapping.stored_mapping(hero).items():
        keyed_frames, values = curves[key_path(key)]
        np.testing.assert_array_equal(keyed_frames, np.arange(1, 7))
        np.testing.assert_allclose(values, expected[column(channel)], atol=2e-6, rtol=1e-5)
    assert [o.name for o in bpy.data.objects if o.type == "ARMATURE"] == ["Body"], "no FLAME rig added"
    assert len(keyed(bpy.data.objects["Body"])) == 4, "the head bone set on the character is keyed"
    assert "Hero" in completed.stdout and "demo weights" in completed.stdout


def test_bake_character_must_be_one(demo, tmp_path):
    two = character_file(tmp_path / "two.blend", "A", "B")
    common = ("--out", tmp_path / "out", "--flame", demo / "flame.safetensors", "--weights",
              demo / "demo_sheap_model.pt", "--backend-python", BACKEND_PYTHON)
    completed = bake(demo / "astronaut.mp4", "--character", two, *common)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and "two.blend" in lines[0] and "several characters ('A', 'B')" in lines[0], \
        completed.stderr
    none = tmp_path / "none.blend"
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(none))
    completed = bake(demo / "astronaut.mp4", "--character", none, *common)
    assert completed.returncode == 2 and "none.blend" in completed.stderr and "no mesh" in completed.stderr
    completed = bake(demo / "astronaut.mp4", "--character", two, "--character-object", "C", *common)
    assert completed.returncode == 2 and "no object named 'C'" in completed.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# ------------------------------------------------------------------------------ the footage camera, the panel


def test_footage_camera_as_the_rig_has(empty_scene, take_files):
    """The option sets up the footage camera: the rig's per-frame lens and shift, the scene camera, render size;
    driving again replaces it."""
    made = bpy.ops.sheap.import_result(filepath=str(take_files["result"]), flame=str(take_files["flame"]))
    assert made == {"FINISHED"}
    rig_camera = bpy.context.scene.camera
    obj = build_character()
    args = {"object": obj.name, "result": str(take_files["result"]), "flame": str(take_files["flame"]),
            "camera": True}  # the rig's import set the scene to the clip's fps: no retiming
    assert drive(**args) == {"FINISHED"}
    assert drive(**args) == {"FINISHED"}
    cameras = [o for o in bpy.data.objects if o.get("sheap_role") == "character_camera"]
    assert len(cameras) == 1 and bpy.context.scene.camera == cameras[0]
    ours, rigs = keyed(cameras[0].data), keyed(rig_camera.data)
    assert sorted(ours) == sorted(rigs) == ["lens[0]", "shift_x[0]", "shift_y[0]"]
    for name in ours:
        np.testing.assert_array_equal(ours[name][0], rigs[name][0])
        np.testing.assert_allclose(ours[name][1], rigs[name][1], rtol=1e-6)
    # in front of the face, looking at it (+Y), 0.5 to 2 m away
    forward = cameras[0].matrix_world.to_3x3() @ mathutils.Vector((0, 0, -1))
    assert forward.y > 0.999
    assert 0.5 < -cameras[0].matrix_world.translation.y < 2.0


class StubLayout:
    """Records what a panel draws, checking every property, operator and list it names exists."""

    def __init__(self, drawn: list):
        self.drawn, self.scale_y, self.enabled, self.active = drawn, 1.0, True, True

    def row(self, align=False):
        return StubLayout(self.drawn)

    column = row

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, name
        self.drawn.append(("prop", name))

    def prop_search(self, data, name, search_data, search_name, **kwargs):
        assert name in data.bl_rna.properties and search_name in search_data.bl_rna.properties
        self.drawn.append(("prop", name))

    def label(self, text="", icon="NONE"):
        self.drawn.append(("label", text))

    def operator(self, idname, **kwargs):
        module, name = idname.split(".")
        assert name in dir(getattr(bpy.ops, module)), idname
        self.drawn.append(("operator", idname))

    def template_list(self, list_type, list_id, data, prop, active_data, active_prop, **kwargs):
        assert hasattr(bpy.types, list_type) and prop in data.bl_rna.properties
        assert active_prop in active_data.bl_rna.properties
        self.drawn.append(("list", prop))


def test_panel_shows_the_mapping_and_what_is_unmatched(empty_scene):
    from sheap_blender.character import panel as character_panel

    obj = build_character(habit="snake", skip=("jawOpen",), extra=("Sculpt_Fix",))
    settings = bpy.context.scene.sheap_character
    settings.target = obj
    drawn = []
    character_panel.draw_drive_character(StubLayout(drawn), bpy.context)
    labels = [text for kind, text in drawn if kind == "label"]
    assert "No mapping yet: matched from the key names when driven" in labels
    assert "No key for: jawOpen, tongueOut" in labels and "Keys not driven: Sculpt_Fix" in labels
    assert "No SHeaP rig in the scene: choose a result file" in labels
    bpy.ops.sheap.character_match(object=obj.name)
    drawn.clear()
    character_panel.draw_drive_character(StubLayout(drawn), bpy.context)
    assert ("list", "mapping") in drawn and ("operator", "sheap.drive_character") in drawn
    assert ("operator", "sheap.character_import_csv") in drawn
    row = StubLayout(drawn)
    item = obj.sheap_character.mapping[0]
    character_panel.SHEAP_UL_arkit_mapping.draw_item(None, bpy.context, row, obj.sheap_character, item, 0, None, "")
    assert drawn[-2:] == [("label", item.key), ("prop", "channel")]
