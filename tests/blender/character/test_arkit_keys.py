"""Make ARKit Shape Keys (sheap.make_arkit_keys) on a real head: Apple's ARKit face mesh, authored keys set aside."""

from __future__ import annotations

import math
import subprocess
import sys
import types
from pathlib import Path

import bpy
import mathutils
import numpy as np
import pytest
from conftest import BACKEND_PYTHON
from helpers import render_still

from sheap_blender.core.arkit.keys_check import score_channels, swapped_sides
from sheap_blender.core.arkit.names import ARKIT_NAMES
from sheap_blender.core.arkit.reference import read_reference

REPO = Path(__file__).resolve().parents[3]
APPLE = REPO / "tests" / "data" / "apple_arkit_reference.safetensors"
TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # face (x, y, z) -> (x, -z, y)


def bare_head(name: str = "Head", landmark_ids: bool = True) -> bpy.types.Object:
    """Apple's neutral face as a Blender mesh without keys (Front view sees it), its 68 landmark vertex ids set."""
    apple = read_reference(APPLE)
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata((apple.neutral @ TO_BLENDER.T).tolist(), [], apple.triangles.tolist())
    if landmark_ids:
        mesh["sheap_landmark_vertices"] = apple.landmarks68.tolist()
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def key_offsets(obj: bpy.types.Object, names) -> np.ndarray:
    keys = obj.data.shape_keys.key_blocks
    base = coords(keys["Basis"])
    return np.stack([coords(keys[name]) - base for name in names])


def coords(block) -> np.ndarray:
    """A shape key's (or a mesh's `vertices`') coordinates."""
    data = block.data if isinstance(block, bpy.types.ShapeKey) else block
    out = np.empty(3 * len(data), dtype=np.float32)
    data.foreach_get("co", out)
    return out.reshape(-1, 3).astype(np.float64)


def refused(message: str, **args) -> None:
    """The operator refuses with one line matching `message` (bpy raises its ERROR report as a RuntimeError)."""
    with pytest.raises(RuntimeError, match=message) as error:
        bpy.ops.sheap.make_arkit_keys(**args)
    assert len(str(error.value).strip().splitlines()) == 1


def authored() -> dict[str, np.ndarray]:
    apple = read_reference(APPLE)
    return {name: apple.offsets[i] @ TO_BLENDER.T for i, name in enumerate(apple.shape_names)}


def test_make_keys_on_a_bare_head(empty_scene):
    obj = bare_head()
    before = coords(obj.data.vertices)
    assert bpy.ops.sheap.make_arkit_keys(object="Head") == {"FINISHED"}
    blocks = obj.data.shape_keys.key_blocks
    assert [b.name for b in blocks] == ["Basis", *ARKIT_NAMES]
    np.testing.assert_array_equal(coords(blocks["Basis"]), before)
    np.testing.assert_array_equal(coords(obj.data.vertices), before)  # the base shape unmoved
    made = key_offsets(obj, ARKIT_NAMES)
    scores = {s.name: s for s in score_channels(made, authored())}
    for name in ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft", "mouthSmileRight", "mouthPucker"):
        assert scores[name].cosine > 0.8 and 0.6 < scores[name].magnitude < 1.6, name
    assert np.median([s.cosine for s in scores.values()]) > 0.8
    assert swapped_sides(made, authored()) == []
    assert "UNDO" in bpy.types.SHEAP_OT_make_arkit_keys.bl_options


def test_existing_keys_stay_and_a_clash_is_refused_unless_replaced(empty_scene):
    obj = bare_head()
    obj.shape_key_add(name="Basis", from_mix=False)
    mine = obj.shape_key_add(name="my_smile", from_mix=False)
    mine.data[0].co = (1.0, 2.0, 3.0)
    clash = obj.shape_key_add(name="jawOpen", from_mix=False)
    clash.data[5].co = (4.0, 5.0, 6.0)
    saved = {b.name: coords(b) for b in obj.data.shape_keys.key_blocks}
    refused(r"'Head' already has 1 of the keys \(jawOpen\): tick Replace", object="Head")
    assert {b.name: coords(b).tolist() for b in obj.data.shape_keys.key_blocks} == \
        {name: c.tolist() for name, c in saved.items()}
    assert bpy.ops.sheap.make_arkit_keys(object="Head", replace=True) == {"FINISHED"}
    blocks = obj.data.shape_keys.key_blocks
    assert len(blocks) == 2 + 52 and list(blocks.keys()).count("jawOpen") == 1
    np.testing.assert_array_equal(coords(blocks["my_smile"]), saved["my_smile"])
    np.testing.assert_array_equal(coords(blocks["Basis"]), saved["Basis"])
    assert np.linalg.norm(coords(blocks["jawOpen"]) - saved["Basis"], axis=1).max() > 0.01  # made anew


def test_naming_habit(empty_scene):
    obj = bare_head()
    assert bpy.ops.sheap.make_arkit_keys(object="Head", naming="suffix") == {"FINISHED"}
    names = obj.data.shape_keys.key_blocks.keys()
    assert "eyeBlink_L" in names and "jawOpen" in names and "eyeBlinkLeft" not in names


def test_markers_can_be_moved_and_the_keys_made_again(empty_scene):
    """The markers follow the head's transform; a marker moved off the skin is put back on it; redo replaces."""
    obj = bare_head()
    obj.location, obj.rotation_euler, obj.scale = (0.3, -1.0, 1.5), (0.1, 0.0, 0.6), (2.0, 2.0, 2.0)
    bpy.context.view_layer.update()
    assert bpy.ops.sheap.place_arkit_landmarks(object="Head") == {"FINISHED"}
    marks = sorted((c for c in obj.children if "sheap_landmark" in c), key=lambda c: c["sheap_landmark"])
    apple = read_reference(APPLE)
    vertices = coords(obj.data.vertices)
    world = np.array(obj.matrix_world)
    expected = vertices[apple.landmarks68] @ world[:3, :3].T + world[:3, 3]
    bpy.context.view_layer.update()
    np.testing.assert_allclose([m.matrix_world.translation[:] for m in marks], expected, atol=1e-5)
    assert bpy.ops.sheap.make_arkit_keys(object="Head") == {"FINISHED"}
    first = key_offsets(obj, ["jawOpen", "eyeBlinkLeft"])
    marks[8].location.y -= 0.005  # the chin's marker, 5 mm in front of the skin: snapped back, nothing changes
    marks[57].location.z -= 0.004  # the lower lip's marker 4 mm down: the keys change
    refused("already has 52 of the keys", object="Head")  # the keys are there now
    assert bpy.ops.sheap.make_arkit_keys(object="Head", replace=True) == {"FINISHED"}
    again = key_offsets(obj, ["jawOpen", "eyeBlinkLeft"])
    assert np.abs(again - first).max() > 1e-4
    assert len(obj.data.shape_keys.key_blocks) == 53


@pytest.mark.parametrize("case", ["not a face", "not a mesh", "no such object", "in edit mode"])
def test_bad_input_is_one_line_and_changes_nothing(empty_scene, case):
    obj = bare_head(landmark_ids=False)
    if case == "not a face":  # a box: the backend finds no face on its render
        mesh = bpy.data.meshes.new("Box")
        mesh.from_pydata([(x, y, z) for x in (0, 1) for y in (0, 1) for z in (0, 1)], [],
                         [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)])
        obj = bpy.data.objects.new("Box", mesh)
        bpy.context.scene.collection.objects.link(obj)
        name = "Box"
    elif case == "not a mesh":
        name = bpy.data.objects.new("Lamp", bpy.data.lights.new("Lamp", "POINT")).name
        bpy.context.scene.collection.objects.link(bpy.data.objects[name])
    elif case == "in edit mode":
        bpy.context.view_layer.objects.active = obj
        bpy.ops.object.mode_set(mode="EDIT")
        name = "Head"
    else:
        name = "Nobody"
    objects = len(bpy.data.objects)
    refused({"not a face": "'Box': no face found on a render of it from the front, the sides or the back",
             "not a mesh": "'Lamp' is not a head mesh", "no such object": "no object named 'Nobody'",
             "in edit mode": "'Head' is in Edit Mode: leave it first"}[case], object=name)
    if case == "in edit mode":
        bpy.ops.object.mode_set(mode="OBJECT")
    assert obj.data.shape_keys is None and len(bpy.data.objects) == objects


def test_landmarks_found_on_a_render_with_nothing_but_the_mesh_named(empty_scene, backend_environment):
    """No landmarks given: the backend finds them on a front render; the keys match the authored ones, and the
    landmarks are left as markers on the face (near the known landmark vertices)."""
    obj = bare_head(landmark_ids=False)
    obj.location, obj.rotation_euler = (1.0, 2.0, 0.5), (0.0, 0.0, 0.3)  # turned a little, away from the origin
    bpy.context.view_layer.update()
    assert bpy.ops.sheap.make_arkit_keys(object="Head") == {"FINISHED"}
    made = key_offsets(obj, ARKIT_NAMES)
    scores = {s.name: s for s in score_channels(made, authored())}
    for name in ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft", "mouthSmileRight", "browInnerUp",
                 "mouthPucker", "mouthFunnel"):
        assert scores[name].cosine > 0.65, name  # measured 0.77 .. 0.97 (benchmarks/arkit_keys.py)
    assert np.median([s.cosine for s in scores.values()]) > 0.75 and swapped_sides(made, authored()) == []
    marks = sorted((c for c in obj.children if "sheap_landmark" in c), key=lambda c: c["sheap_landmark"])
    apple = read_reference(APPLE)
    truth = coords(obj.data.vertices)[apple.landmarks68]
    inner = np.linalg.norm(np.array([m.location[:] for m in marks]) - truth, axis=1)[27:]
    assert len(marks) == 68 and np.median(inner) < 0.006  # eyes, nose, lips within a few mm (measured ~2-3)


def run_script(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "make_arkit_keys.py"), "--", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def test_headless_script(empty_scene, tmp_path, backend_environment):
    """scripts/make_arkit_keys.py on a saved .blend: the keys in the file written, the input unchanged; bad input
    is one line and exit code 2."""
    bare_head(landmark_ids=False)
    bare_head("Other", landmark_ids=False)
    source = tmp_path / "heads.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(source))
    before = source.read_bytes()
    several = run_script(source, "-o", tmp_path / "out.blend")
    assert several.returncode == 2 and "2 meshes (Head, Other): name the head with --object" in several.stderr
    done = run_script(source, "-o", tmp_path / "out.blend", "--object", "Head", "--naming", "upper_camel")
    assert done.returncode == 0, done.stderr[-2000:]
    assert source.read_bytes() == before and not (tmp_path / "out.blend").with_name(".out.blend.tmp.blend").exists()
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "out.blend"))
    names = bpy.data.objects["Head"].data.shape_keys.key_blocks.keys()
    assert names == ["Basis", *(name[0].upper() + name[1:] for name in ARKIT_NAMES)]
    assert bpy.data.objects["Other"].data.shape_keys is None
    again = run_script(tmp_path / "out.blend", "-o", tmp_path / "again.blend", "--object", "Head",
                       "--naming", "upper_camel")
    assert again.returncode == 2 and "already has 52 of the keys" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and not (tmp_path / "again.blend").exists()


def test_a_head_made_a_character_is_driven_end_to_end(demo, tmp_path):
    """A bare head -> make_arkit_keys.py (landmarks found) -> bake.py --character on a clip: its own face moves."""
    from test_bake import bake, short_clip

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bare_head(landmark_ids=False)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "bare.blend"))
    made = run_script(tmp_path / "bare.blend", "-o", tmp_path / "hero.blend")
    assert made.returncode == 0, made.stderr[-2000:]
    frames = short_clip(demo / "astronaut.mp4", tmp_path / "take", 6)
    out = tmp_path / "out"
    completed = bake(frames, "--out", out, "--character", tmp_path / "hero.blend", "--character-object", "Head",
                     "--flame", demo / "flame.safetensors", "--weights", demo / "demo_sheap_model.pt",
                     "--backend-python", BACKEND_PYTHON, "--device", "cpu")
    assert completed.returncode == 0, completed.stderr[-3000:]
    bpy.ops.wm.open_mainfile(filepath=str(out / "take.blend"))
    head = bpy.data.objects["Head"]
    action = head.data.shape_keys.animation_data.action
    assert action is not None
    base = coords(head.data.shape_keys.key_blocks["Basis"])
    offsets = key_offsets(head, ARKIT_NAMES)
    for frame in (1, 6):
        bpy.context.scene.frame_set(frame)
        weights = np.array([head.data.shape_keys.key_blocks[name].value for name in ARKIT_NAMES])
        evaluated = head.evaluated_get(bpy.context.evaluated_depsgraph_get())
        shape = coords(evaluated.to_mesh().vertices)
        evaluated.to_mesh_clear()
        # the face is moved by the made keys, as much as the take says: about a centimetre on the demo clip
        np.testing.assert_allclose(shape, base + np.einsum("k,kvc->vc", weights, offsets), atol=2e-6)
        assert np.linalg.norm(shape - base, axis=1).max() > 0.002, frame
    # and F12 shows it: the face rendered on the take's most expressive frame differs from its rest shape's
    # render, far beyond the renderer's noise
    face_camera(head)
    moved_most = max(range(1, 7), key=lambda frame: displacement(head, frame))
    posed, again = (render(moved_most, tmp_path / f"face_{i}.png") for i in range(2))
    keys = head.data.shape_keys
    keys.animation_data.action = None
    for block in keys.key_blocks:
        block.value = 0.0
    rest = render(moved_most, tmp_path / "rest.png")
    changed = np.abs(posed - rest).max(axis=-1)
    assert (changed > 25).sum() >= 40, ((changed > 25).sum(), displacement(head, moved_most))
    assert changed.mean() > 4 * np.abs(posed - again).mean() + 0.1


def displacement(head: bpy.types.Object, frame: int) -> float:
    """The most a vertex of the head is moved from its rest shape on a scene frame, metres."""
    bpy.context.scene.frame_set(frame)
    keys = head.data.shape_keys.key_blocks
    weights = np.array([block.value for block in keys[1:]])
    offsets = key_offsets(head, [block.name for block in keys[1:]])
    return float(np.linalg.norm(np.einsum("k,kvc->vc", weights, offsets), axis=1).max())


def face_camera(head: bpy.types.Object) -> None:
    """An orthographic camera before the face (it looks toward -Y, Blender's front) and a sun, for renders."""
    corners = np.array([list(head.matrix_world @ mathutils.Vector(corner)) for corner in head.bound_box])
    centre, size = corners.mean(axis=0), np.ptp(corners, axis=0).max()
    scene = bpy.context.scene
    camera = bpy.data.objects.new("FaceCamera", bpy.data.cameras.new("FaceCamera"))
    camera.data.type, camera.data.ortho_scale = "ORTHO", 1.1 * size
    camera.location, camera.rotation_euler = (centre[0], centre[1] - 3 * size, centre[2]), (math.pi / 2, 0.0, 0.0)
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.rotation_euler = (math.radians(60), 0.0, math.radians(20))
    for obj in (camera, sun):
        scene.collection.objects.link(obj)
    scene.camera = camera


def render(frame: int, path: Path, size: int = 256) -> np.ndarray:
    """The scene's frame rendered with Cycles at size x size and read back: (size, size, 3) 0..255."""
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    return render_still(bpy, frame, path)


class PanelStub:
    """Records what the panel draws; operators give their properties back, as Blender's layout does."""

    def __init__(self, drawn: list):
        self.drawn = drawn

    def column(self, align=False):
        return self

    row = column

    def label(self, text="", icon="NONE"):
        self.drawn.append(("label", text))

    def operator(self, idname, text="", icon="NONE"):
        assert idname.split(".")[1] in dir(bpy.ops.sheap), idname
        props = types.SimpleNamespace(replace=False, naming="arkit")
        self.drawn.append(("operator", idname, text, props))
        return props


def test_panel_row_makes_again_over_its_own_keys(empty_scene):
    from sheap_blender.character.arkit_keys_operator import draw_make_keys

    obj = bare_head()
    bpy.context.view_layer.objects.active = obj
    drawn = []
    draw_make_keys(PanelStub(drawn), bpy.context)
    assert ("label", "Head: no landmarks yet") in drawn
    make = [d for d in drawn if d[:2] == ("operator", "sheap.make_arkit_keys")][0]
    assert make[2] == "Make ARKit Shape Keys" and not make[3].replace
    assert bpy.ops.sheap.make_arkit_keys(naming="suffix") == {"FINISHED"}  # the active mesh
    drawn.clear()
    draw_make_keys(PanelStub(drawn), bpy.context)
    assert ("label", "Head: 68 landmarks placed") in drawn
    make = [d for d in drawn if d[:2] == ("operator", "sheap.make_arkit_keys")][0]
    assert make[2] == "Make Again (Replace)" and make[3].replace and make[3].naming == "suffix"


def test_a_head_facing_sideways_is_found_and_a_face_the_finder_misses_gets_rough_markers(empty_scene,
                                                                                           backend_environment):
    """A head imported facing +X (its mesh turned, not the object) is looked at from the side and its keys made;
    on a mesh where no face is seen, Place Landmarks lays rough markers for the user to move (Make refuses)."""
    obj = bare_head(landmark_ids=False)
    turn = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # -Y (front) -> +X
    apple = read_reference(APPLE)
    obj.data.vertices.foreach_set("co", ((apple.neutral @ TO_BLENDER.T) @ turn.T).astype(np.float32).ravel())
    assert bpy.ops.sheap.make_arkit_keys(object="Head") == {"FINISHED"}
    made = key_offsets(obj, ARKIT_NAMES) @ turn  # back into the face's own frame
    scores = {s.name: s for s in score_channels(made, authored())}
    assert scores["jawOpen"].cosine > 0.8 and scores["eyeBlinkLeft"].cosine > 0.8
    assert swapped_sides(made, authored()) == []
    mesh = bpy.data.meshes.new("Box")
    mesh.from_pydata([(x, y, z) for x in (0, 1) for y in (0, 1) for z in (0, 1)], [],
                     [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)])
    box = bpy.data.objects.new("Box", mesh)
    bpy.context.scene.collection.objects.link(box)
    assert bpy.ops.sheap.place_arkit_landmarks(object="Box") == {"FINISHED"}
    marks = [c for c in box.children if "sheap_landmark" in c]
    assert len(marks) == 68
    corners = np.array([m.location[:] for m in marks])
    assert (corners >= -1e-6).all() and (corners <= 1 + 1e-6).all()  # on the box's surface
