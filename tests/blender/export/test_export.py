"""Export Head: a moving head through glTF, FBX, Alembic and USD and back with Blender's own importers, frame by
frame; a driven character; bad paths and what a format cannot carry refused in one line, nothing left behind."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from helpers import datablock_counts, moving_head_result, write
from ict_character import add_head_bone, build_character
from mathutils.kdtree import KDTree

from sheap_blender.core.flame.model import load_flame
from sheap_blender.export.head import export_head
from sheap_blender.reconstruct.importer import import_result
from sheap_blender.rig.animation import fcurves_of

REPO = Path(__file__).resolve().parents[3]
N = 24  # frames: a second at 24 fps, enough for a turn, a nod, the jaw, the expressions and a blink
TOLERANCE_MM = 0.5
IMPORTERS = {
    ".glb": lambda path: bpy.ops.import_scene.gltf(filepath=path),
    ".gltf": lambda path: bpy.ops.import_scene.gltf(filepath=path),
    # key times in the file are frame / fps; the importer's default Animation Offset (1) would add a frame
    ".fbx": lambda path: bpy.ops.import_scene.fbx(filepath=path, anim_offset=0.0),
    ".abc": lambda path: bpy.ops.wm.alembic_import(filepath=path),
    ".usd": lambda path: bpy.ops.wm.usd_import(filepath=path),
    ".usdc": lambda path: bpy.ops.wm.usd_import(filepath=path),
    ".usda": lambda path: bpy.ops.wm.usd_import(filepath=path),
}


@pytest.fixture(scope="module")
def flame(demo) -> Path:
    return demo / "flame.safetensors"


def moving_head(flame: Path, folder: Path, fps: str = "24", frame_start: int = 1):
    sha = load_flame(flame).source_sha256
    result = write(folder / "clip.sheap.safetensors", moving_head_result(N, fps=fps, flame_sha=sha))
    return import_result(None, result, flame, render_over_footage=False, frame_start=frame_start)


def world_vertices(obj: bpy.types.Object) -> np.ndarray:
    """The evaluated mesh (shape keys, skinning, caches) in world space, metres."""
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    try:
        co = np.empty(3 * len(mesh.vertices), dtype=np.float32)
        mesh.vertices.foreach_get("co", co)
    finally:
        evaluated.to_mesh_clear()
    matrix = np.array(evaluated.matrix_world, dtype=np.float64)
    return co.reshape(-1, 3).astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]


def frames_of(obj: bpy.types.Object, frames) -> np.ndarray:
    scene = bpy.context.scene
    out = []
    for frame in frames:
        scene.frame_set(int(math.floor(frame)), subframe=frame - math.floor(frame))
        out.append(world_vertices(obj))
    return np.stack(out)


def import_back(path: Path, fps: int, fps_base: float) -> bpy.types.Object:
    """A new scene at the rig's fps, the file imported by Blender's importer; its mesh with the most vertices."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = fps, fps_base
    IMPORTERS[path.suffix](str(path))
    return max((o for o in bpy.data.objects if o.type == "MESH"), key=lambda o: len(o.data.vertices))


def errors_mm(reference: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Per frame, the largest vertex distance (mm). Vertices are matched on the first frame (an exporter may
    reorder them, and glTF splits a flat-shaded mesh's vertices by face): each imported vertex to the nearest of
    the rig's, every one of the rig's matched."""
    tree = KDTree(reference.shape[1])
    for i, co in enumerate(reference[0]):
        tree.insert(co, i)
    tree.balance()
    order = np.array([tree.find(co)[1] for co in got[0]])
    assert len(np.unique(order)) == reference.shape[1], "vertices of the rig were lost"
    if got.shape[1] == reference.shape[1]:
        assert len(np.unique(order)) == len(order), "the first frames do not match vertex for vertex"
    return np.linalg.norm(got - reference[:, order], axis=2).max(axis=1) * 1000.0


def round_trip(tmp_path: Path, flame: Path, extension: str, fps: str,
               frame_start: int = 1) -> tuple[np.ndarray, np.ndarray, dict]:
    imported = moving_head(flame, tmp_path, fps, frame_start)
    scene = bpy.context.scene
    frames = np.arange(scene.frame_start, scene.frame_end + 1, dtype=np.float64)
    reference = frames_of(imported.head, frames)
    counts, names = datablock_counts(bpy), sorted(o.name for o in bpy.data.objects)
    target = tmp_path / f"head{extension}"
    assert bpy.ops.sheap.export_head(filepath=str(target)) == {"FINISHED"}
    assert datablock_counts(bpy) == counts and sorted(o.name for o in bpy.data.objects) == names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left"
    rate, base = scene.render.fps, scene.render.fps_base
    head = import_back(target, rate, base)
    return reference, frames_of(head, frames), {"fps": rate, "fps_base": base, "frames": frames}


@pytest.mark.parametrize(("extension", "fps", "frame_start"), [
    (".glb", "24", 1), (".gltf", "24", 1), (".fbx", "24", 1), (".abc", "24", 1), (".usd", "24", 1),
    (".usda", "24", 1), (".glb", "29.97002997", 1), (".abc", "29.97002997", 1), (".usdc", "29.97002997", 1),
    (".glb", "24", 101), (".fbx", "24", 101), (".abc", "24", 101), (".usdc", "24", 101),
])
def test_moving_head_round_trip(empty_scene, flame, tmp_path, extension, fps, frame_start):
    """The clip on the scene's frames (from 1, or later in a longer scene) at the rig's fps."""
    reference, got, _ = round_trip(tmp_path, flame, extension, fps, frame_start)
    motion = np.linalg.norm(reference - reference[0], axis=2).max() * 1000.0
    assert motion > 50.0, "the head must move for the comparison to mean anything"
    errors = errors_mm(reference, got)
    print(f"{extension} at {fps} fps from frame {frame_start}: worst {errors.max():.4f} mm at frame "
          f"{frame_start + int(np.argmax(errors))} (motion {motion:.0f} mm)")
    assert errors.max() < TOLERANCE_MM


def test_fbx_at_29_97_fps_carries_the_right_times(empty_scene, flame, tmp_path):
    """Blender's FBX importer converts key times with the integer fps (30, not 29.97), so frame f's key lands on
    frame 1.001 f: evaluated there, every frame is the rig's. The export says so."""
    imported = moving_head(flame, tmp_path, "29.97002997")
    scene = bpy.context.scene
    frames = np.arange(scene.frame_start, scene.frame_end + 1, dtype=np.float64)
    reference = frames_of(imported.head, frames)
    exported = export_head(None, tmp_path / "head.fbx")
    assert any("Blender's own FBX importer" in w for w in exported.warnings)
    head = import_back(tmp_path / "head.fbx", 30, 1.001)
    late = frames_of(head, frames * 1.001)
    assert errors_mm(reference, late).max() < TOLERANCE_MM


def key_state(obj: bpy.types.Object) -> list:
    """Every shape key's coordinates, range and value, and the mesh's own coordinates."""
    co = np.empty(3 * len(obj.data.vertices), dtype=np.float32)
    obj.data.vertices.foreach_get("co", co)
    state = [obj.name, obj.data.name, co.tobytes()]
    for block in obj.data.shape_keys.key_blocks:
        block.data.foreach_get("co", co)
        state.append((block.name, co.tobytes(), block.slider_min, block.slider_max))
    return state


@pytest.mark.parametrize("extension", [".glb", ".usdc"])
def test_unit_weights_in_the_file_rig_untouched(empty_scene, flame, tmp_path, extension):
    """glTF and USD files carry weights in [0, 1] (Blender's importers clamp there); the rig stays as it was."""
    imported = moving_head(flame, tmp_path)
    assert min(k.slider_min for k in imported.head.data.shape_keys.key_blocks) < -1.0, "negative weights to remap"
    before = key_state(imported.head)
    exported = export_head(None, tmp_path / f"head{extension}")
    assert exported.remapped_keys > 10 and "remapped into 0..1" in exported.summary()
    assert key_state(imported.head) == before
    head = import_back(tmp_path / f"head{extension}", 24, 1.0)
    values = []
    for curve in fcurves_of(head.data.shape_keys):
        co = np.empty(2 * len(curve.keyframe_points), dtype=np.float64)
        curve.keyframe_points.foreach_get("co", co)
        values.append(co[1::2])
    values = np.concatenate(values)
    assert len(values) and values.min() >= -1e-6 and values.max() <= 1 + 1e-6


def skinned_to(obj: bpy.types.Object, rig: bpy.types.Object, bone: str) -> None:
    obj.parent = rig
    group = obj.vertex_groups.new(name=bone)
    group.add(list(range(len(obj.data.vertices))), 1.0, "REPLACE")
    obj.modifiers.new("Armature", "ARMATURE").object = rig


def largest_meshes(count: int) -> list:
    return sorted((o for o in bpy.data.objects if o.type == "MESH"), key=lambda o: -len(o.data.vertices))[:count]


def test_driven_character_round_trip(empty_scene, flame, tmp_path):
    """A character (ICT-FaceKit's ARKit head and an eyes mesh, skinned to a head bone) driven from a result: its
    shape keys, its bone and the other mesh the armature deforms."""
    obj = build_character()
    rig = add_head_bone(obj)
    skinned_to(obj, rig, "head")
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.012, location=(0.03, -0.08, 0.03))
    eyes = bpy.context.active_object
    eyes.name = "Eyes"
    skinned_to(eyes, rig, "head")
    bpy.context.view_layer.objects.active = obj
    sha = load_flame(flame).source_sha256
    result = write(tmp_path / "clip.sheap.safetensors", moving_head_result(N, flame_sha=sha))
    assert bpy.ops.sheap.drive_character(object=obj.name, result=str(result), flame=str(flame)) == {"FINISHED"}
    scene = bpy.context.scene
    frames = np.arange(1, N + 1, dtype=np.float64)
    scene.frame_start, scene.frame_end = 1, N
    reference = [frames_of(mesh, frames) for mesh in (obj, eyes)]
    assert min(np.linalg.norm(r - r[0], axis=2).max() * 1000.0 for r in reference) > 5.0
    extensions = (".glb", ".fbx", ".abc", ".usdc")
    for extension in extensions:
        exported = export_head(None, tmp_path / f"face{extension}", obj)
        assert exported.objects == [rig.name, obj.name, eyes.name]
    rate, base = scene.render.fps, scene.render.fps_base
    for extension in extensions:
        import_back(tmp_path / f"face{extension}", rate, base)
        worst = [errors_mm(r, frames_of(mesh, frames)).max() for r, mesh in zip(reference, largest_meshes(2))]
        print(f"character {extension}: worst {worst[0]:.4f} mm (face), {worst[1]:.4f} mm (eyes)")
        assert max(worst) < TOLERANCE_MM, extension


def run_refused(path: Path) -> str:
    """The operator's one-line error (bpy.ops raises it as RuntimeError in the background)."""
    with pytest.raises(RuntimeError) as caught:
        bpy.ops.sheap.export_head(filepath=str(path))
    message = str(caught.value).strip()
    assert "Traceback" not in message and len(message.splitlines()) == 1, message
    return message


def test_bad_paths_refused_nothing_written(empty_scene, flame, tmp_path):
    moving_head(flame, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert "picked by the file's extension" in run_refused(tmp_path / "head.obj")
    assert "no extension" in run_refused(tmp_path / "head")
    assert "does not exist" in run_refused(tmp_path / "missing" / "head.glb")
    (tmp_path / "folder.glb").mkdir()
    assert "is a folder" in run_refused(tmp_path / "folder.glb")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before + ["folder.glb"])


def test_what_a_format_cannot_carry_is_refused(empty_scene, flame, tmp_path):
    """A modifier on top of the skinning cannot go into a rigged format: refused (the old file kept), and
    Alembic, which bakes the mesh, carries it."""
    imported = moving_head(flame, tmp_path)
    imported.head.modifiers.new("Smooth", "SMOOTH")
    old = tmp_path / "head.glb"
    old.write_bytes(b"the user's earlier file")
    counts = datablock_counts(bpy)
    for extension in (".glb", ".fbx", ".usdc"):
        message = run_refused(tmp_path / f"head{extension}")
        assert "modifier 'Smooth'" in message and "Alembic" in message, message
    assert old.read_bytes() == b"the user's earlier file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.sheap.safetensors", "head.glb"]
    assert datablock_counts(bpy) == counts
    assert bpy.ops.sheap.export_head(filepath=str(tmp_path / "head.abc")) == {"FINISHED"}


def test_nothing_to_export(empty_scene, tmp_path):
    message = run_refused(tmp_path / "head.glb")
    assert "no SHeaP rig or character to export" in message
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("extension", [".fbx", ".glb", ".usdc"])
def test_each_person_exports_its_own_motion(empty_scene, flame, tmp_path, extension):
    """Two rigs in the scene (a rig per person): each file carries its own rig's motion only."""
    first = moving_head(flame, tmp_path)
    other = moving_head_result(N, seed=4)
    other.params["neck_pose"] *= -1.0
    other.params["expr"] *= -0.5
    second = import_result(None, write(tmp_path / "other.sheap.safetensors", other), flame, target="NEW",
                           render_over_footage=False)
    frames = np.arange(1, N + 1, dtype=np.float64)
    reference = frames_of(second.head, frames)
    assert np.linalg.norm(reference - frames_of(first.head, frames), axis=2).max() * 1000.0 > 20.0
    assert bpy.ops.sheap.export_head(filepath=str(tmp_path / f"second{extension}"), target=second.armature.name) \
        == {"FINISHED"}
    head = import_back(tmp_path / f"second{extension}", 24, 1.0)
    assert len([o for o in bpy.data.objects if o.type == "ARMATURE"]) == 1
    assert errors_mm(reference, frames_of(head, frames)).max() < TOLERANCE_MM


def bake(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "bake.py"), "--", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.usefixtures("backend_environment")
def test_bake_writes_the_export_beside_the_blend(demo, tmp_path):
    """`bake.py --export usdc`: DIR/<clip>.usdc beside DIR/<clip>.blend, the same head on every frame."""
    frames = tmp_path / "take"
    frames.mkdir()
    command = ("import sys, cv2\ncapture = cv2.VideoCapture(sys.argv[1])\n"
               "for i in range(8):\n    cv2.imwrite(f'{sys.argv[2]}/{i:04d}.png', capture.read()[1])\n")
    subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", command, str(demo / "astronaut.mp4"), str(frames)],
                   check=True)
    common = ("--flame", demo / "flame.safetensors", "--weights", demo / "demo_sheap_model.pt", "--backend-python",
              REPO / ".venv" / "bin" / "python", "--device", "cpu")
    refused = bake(frames, "--out", tmp_path / "out", "--export", "obj", *common)
    assert refused.returncode == 2 and "picked by the file's extension" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "out").exists()
    completed = bake(frames, "--out", tmp_path / "out", "--export", "usdc", *common)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.endswith(".safetensors")) == [
        "take.blend", "take.usdc"]
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "out" / "take.blend"))
    scene = bpy.context.scene
    head = next(o for o in bpy.data.objects if o.get("sheap_role") == "head")
    frame_numbers = np.arange(scene.frame_start, scene.frame_end + 1, dtype=np.float64)
    reference = frames_of(head, frame_numbers)
    imported = import_back(tmp_path / "out" / "take.usdc", scene.render.fps, scene.render.fps_base)
    assert errors_mm(reference, frames_of(imported, frame_numbers)).max() < TOLERANCE_MM


def test_a_failed_export_leaves_scene_and_files_as_they_were(empty_scene, flame, tmp_path, monkeypatch):
    """The exporter failing with the stand-in in place: the stand-in goes, the names come back, no file."""
    from sheap_blender.core.errors import InputError
    from sheap_blender.export import head as module

    imported = moving_head(flame, tmp_path)
    counts, names = datablock_counts(bpy), sorted(o.name for o in bpy.data.objects)
    meshes = sorted(m.name for m in bpy.data.meshes)
    seen = []

    def failing(fmt, path, scene, meshes, name):
        seen.append((meshes[0].name, meshes[0] != imported.head, len(bpy.data.objects)))
        path.write_bytes(b"half a file")
        raise InputError(path.name, "Blender's glTF 2.0 exporter failed: disk full")

    monkeypatch.setattr(module, "_run_exporter", failing)
    message = run_refused(tmp_path / "head.glb")
    assert "disk full" in message
    assert seen == [(imported.head.name, True, len(names) + 1)], "the stand-in, under the head's name, was exported"
    assert datablock_counts(bpy) == counts and sorted(o.name for o in bpy.data.objects) == names
    assert sorted(m.name for m in bpy.data.meshes) == meshes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.sheap.safetensors"]


def test_driven_shape_keys_refused_for_gltf_and_usd(empty_scene, tmp_path):
    """Weights a driver sets cannot be remapped: glTF and USD refuse them by name; Alembic bakes them."""
    obj = build_character()
    block = obj.data.shape_keys.key_blocks[1]
    driver = block.driver_add("value").driver
    driver.expression = "frame / 10"
    bpy.context.view_layer.objects.active = obj
    for extension in (".glb", ".usdc"):
        message = run_refused(tmp_path / f"face{extension}")
        assert "driven by drivers" in message and block.name in message
    assert not list(tmp_path.iterdir())
    assert bpy.ops.sheap.export_head(filepath=str(tmp_path / "face.abc")) == {"FINISHED"}
    with pytest.raises(RuntimeError, match="no object named 'Nobody'"):
        bpy.ops.sheap.export_head(filepath=str(tmp_path / "face.abc"), target="Nobody")
