"""What an import builds: keys on every frame, assigned actions and slots, playback, scene set-up,
markers at frames without a face, the footage behind the camera, demo naming."""

from __future__ import annotations

import subprocess
from pathlib import Path

import bpy
import numpy as np
import pytest
from conftest import require_backend
from helpers import (
    evaluated_flame_vertices,
    flame_forward,
    synthetic_flame,
    synthetic_result,
    write,
    write_flame,
    write_frames,
)

from sheap_blender.core.flame.model import load_flame
from sheap_blender.core.result.result_format import read_result
from sheap_blender.reconstruct.importer import import_result
from sheap_blender.rig import animation

REPO = Path(__file__).resolve().parents[3]
N = 30


@pytest.fixture(scope="module")
def flame(tmp_path_factory):
    return write_flame(tmp_path_factory.mktemp("flame") / "flame.safetensors", synthetic_flame())


def test_every_frame_keyed_and_assigned(empty_scene, flame, tmp_path):
    path = write(tmp_path / "clip.sheap.safetensors", synthetic_result(N))
    imported = import_result(None, path, flame, frame_start=5)
    expected = np.arange(5, 5 + N, dtype=np.float32)
    owners = {"head": imported.armature, "shape": imported.head.data.shape_keys, "camera": imported.camera.data}
    counts = {}
    for role, owner in owners.items():
        data = owner.animation_data
        assert data is not None and data.action == imported.actions[role]
        if bpy.app.version >= (4, 4, 0):
            assert data.action_slot is not None, f"{role}: no slot assigned, nothing would play"
            assert data.action_slot.target_id_type == {"head": "OBJECT", "shape": "KEY", "camera": "CAMERA"}[role]
        curves = animation.fcurves_of(owner)
        counts[role] = len(curves)
        for curve in curves:
            frames = np.empty(2 * len(curve.keyframe_points), dtype=np.float32)
            curve.keyframe_points.foreach_get("co", frames)
            assert np.array_equal(frames[0::2], expected), curve.data_path
    assert counts == {"head": 3 + 5 * 7, "shape": 100 + 2 + 36, "camera": 3}
    assert imported.n_keys == N * sum(counts.values())


def test_playback_changes_the_mesh(empty_scene, flame, tmp_path):
    path = write(tmp_path / "clip.sheap.safetensors", synthetic_result(N))
    imported = import_result(None, path, flame)
    first = evaluated_flame_vertices(bpy, imported.head, 1)
    second = evaluated_flame_vertices(bpy, imported.head, 2)
    again = evaluated_flame_vertices(bpy, imported.head, 1)
    assert np.abs(first - second).max() > 1e-3
    assert np.array_equal(first, again)


def test_scene_setup_markers_and_names(empty_scene, flame, tmp_path):
    result = synthetic_result(N, footage="shots/take_01.mp4", fps="29.97002997", valid_ratio=0.6)
    result.valid[:] = True
    result.valid[[3, 10, 11, 12, 20]] = False
    path = write(tmp_path / "take.sheap.safetensors", result)
    imported = import_result(None, path, flame, frame_start=101)
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (101, 100 + N)
    assert scene.render.fps == 30 and scene.render.fps_base == pytest.approx(1.001)
    assert (scene.render.resolution_x, scene.render.resolution_y) == (640, 480)
    assert scene.camera == imported.camera
    markers = sorted((m.frame, m.name) for m in scene.timeline_markers)
    assert markers == [(104, "no face"), (111, "no face (3 frames)"), (121, "no face")]
    assert imported.invalid_frames == 5
    assert imported.collection.name == "SHeaP take_01"
    assert {imported.root.name, imported.head.name} == {"take_01 root", "take_01 head"}
    assert any("not found" in w for w in imported.warnings)  # the footage does not exist here
    assert not imported.is_demo and not imported.root["sheap_demo"]
    # the shape keys the issue names, with the identity on
    keys = imported.head.data.shape_keys.key_blocks
    names = [k.name for k in keys]
    assert names[:3] == ["Basis", "identity", "exp000"] and "exp099" in names
    assert {"eyelid_l", "eyelid_r", "pose_neck_00", "pose_eye_r_22"} <= set(names)
    # each eyelid key is named by the side it moves (channel 0 is the subject's right: -X in FLAME and Blender)
    basis = np.array([v.co for v in keys["Basis"].data])
    for name, side in (("eyelid_r", -1), ("eyelid_l", 1)):
        moved = np.linalg.norm(np.array([v.co for v in keys[name].data]) - basis, axis=1) > 1e-9
        assert moved.any() and np.all(np.sign(basis[moved, 0]) == side), name
    assert len(names) == 2 + 100 + 2 + 36
    assert keys["identity"].value == 1.0
    bones = imported.armature.data.bones
    assert [b.name for b in bones] == ["root", "neck", "jaw", "eye_l", "eye_r"]
    for bone in bones:  # identity rest orientation: FLAME rotations are the bones' quaternions as they are
        assert np.allclose(np.array(bone.matrix_local)[:3, :3], np.eye(3), atol=1e-6)


def test_demo_result_is_named(empty_scene, flame, tmp_path):
    path = write(tmp_path / "demo.sheap.safetensors", synthetic_result(5, demo=True, footage="astronaut.mp4"))
    imported = import_result(None, path, flame)
    assert imported.is_demo and imported.root["sheap_demo"]
    assert imported.collection.name == "SHeaP astronaut (demo)"
    assert imported.warnings[0].startswith("demo weights")
    assert "demo weights" in imported.summary()


def test_values_beyond_slider_limit_stay_exact(empty_scene, flame, tmp_path):
    result = synthetic_result(6)
    result.params["expr"][2, 7] = 23.0  # beyond Blender's +-10 slider limit
    result.params["expr"][4, 7] = -14.0
    path = write(tmp_path / "wide.sheap.safetensors", result)
    imported = import_result(None, path, flame)
    assert any("slider" in w for w in imported.warnings)
    model, back = load_flame(flame), read_result(path)
    for row in (2, 4):
        error = np.linalg.norm(evaluated_flame_vertices(bpy, imported.head, 1 + row) - flame_forward(model, back, row),
                               axis=1).max()
        assert error < 1e-5
    key = imported.head.data.shape_keys.key_blocks["exp007"]
    assert key.slider_min >= -10.0 and key.slider_max <= 10.0


def test_identity_that_varies_uses_the_mean(empty_scene, flame, tmp_path):
    result = synthetic_result(4)
    result.params["shape"][1] += 0.5
    path = write(tmp_path / "varies.sheap.safetensors", result)
    imported = import_result(None, path, flame)
    assert any("identity differs" in w for w in imported.warnings)


def test_image_sequence_background(empty_scene, flame, tmp_path):
    frames = write_frames(tmp_path / "frames", 12, 64, 48, first_number=1)
    result = synthetic_result(8, width=64, height=48, footage=str(frames))
    result.frame_index = np.arange(8) + 3  # the result starts at footage frame 3
    path = write(tmp_path / "seq.sheap.safetensors", result)
    imported = import_result(None, path, flame, frame_start=1)
    camera = imported.camera.data
    assert camera.show_background_images and len(camera.background_images) == 1
    background = camera.background_images[0]
    assert background.source == "IMAGE" and background.image.source == "SEQUENCE"
    user = background.image_user
    assert (user.frame_start, user.frame_offset, user.frame_duration) == (1, 3, 8)
    # scene frame 1 shows file number frame_offset + 1 = 4 = frame_0004.png, footage frame 3 (0-based)
    assert Path(background.image.filepath).name == "frame_0004.png"
    # re-importing swaps the footage image instead of adding one
    images = len(bpy.data.images)
    import_result(None, path, flame, frame_start=1)
    assert len(bpy.data.images) == images and camera.background_images[0].image.users >= 1


def _write_video(path: Path, n: int, width: int, height: int) -> bool:
    python = REPO / ".venv" / "bin" / "python"
    if not python.is_file():
        return False
    script = (
        "import sys, numpy as np, cv2\n"
        "w = cv2.VideoWriter(sys.argv[1], cv2.VideoWriter_fourcc(*'MJPG'), 25, (int(sys.argv[3]), int(sys.argv[4])))\n"
        "for i in range(int(sys.argv[2])):\n"
        "    w.write(np.full((int(sys.argv[4]), int(sys.argv[3]), 3), i * 10 % 256, np.uint8))\n"
        "w.release()\n"
    )
    done = subprocess.run([str(python), "-c", script, str(path), str(n), str(width), str(height)],
                          capture_output=True, timeout=120)
    return done.returncode == 0 and path.is_file() and path.stat().st_size > 0


def test_movie_background(empty_scene, flame, tmp_path):
    video = tmp_path / "clip.avi"
    assert _write_video(video, 10, 64, 48), "the backend environment (.venv, OpenCV) could not write a test video"
    result = synthetic_result(6, width=64, height=48, footage=str(video), fps="25")
    result.frame_index = np.arange(6) + 2
    path = write(tmp_path / "movie.sheap.safetensors", result)
    imported = import_result(None, path, flame, frame_start=1)
    background = imported.camera.data.background_images[0]
    assert background.source == "MOVIE_CLIP"
    clip = background.clip
    assert clip is not None and tuple(clip.size) == (64, 48)
    assert (clip.frame_start, clip.frame_offset) == (1, 2)
    assert bpy.context.scene.render.fps == 25 and bpy.context.scene.render.fps_base == 1.0


def test_operator_reports_and_imports(empty_scene, flame, tmp_path):
    path = write(tmp_path / "op.sheap.safetensors", synthetic_result(5))
    assert bpy.ops.sheap.import_result(filepath=str(path), flame=str(flame)) == {"FINISHED"}
    roots = [o for o in bpy.data.objects if o.get("sheap_role") == "root"]
    assert len(roots) == 1


def test_crop_box_checks(empty_scene, flame, tmp_path):
    from sheap_blender.core.errors import InputError

    result = synthetic_result(5)
    result.params["crop_box"][3, 3] = result.params["crop_box"][3, 1] + 10  # not square
    imported = import_result(None, write(tmp_path / "skew.sheap.safetensors", result), flame)
    assert any("not square" in w for w in imported.warnings)
    result.params["crop_box"][2, 2] = result.params["crop_box"][2, 0]  # no area
    objects = len(bpy.data.objects)
    with pytest.raises(InputError, match="crop_box of row 2 has no area"):
        import_result(None, write(tmp_path / "flat.sheap.safetensors", result), flame)
    assert len(bpy.data.objects) == objects


def test_a_phone_clip_on_its_side_is_said(empty_scene, flame, tmp_path):
    """A portrait phone clip stored landscape with a rotation flag: Blender 4.5+ reads it upright, as the
    backend does; older Blender shows it on its side, and the import says so (never a silent mismatch)."""
    video = tmp_path / "phone.mp4"
    script = ("import sys, numpy as np, cv2\nfrom backend.standins.clip import set_mp4_rotation\n"
              "w = cv2.VideoWriter(sys.argv[1], cv2.VideoWriter_fourcc(*'mp4v'), 25, (64, 48))\n"
              "[w.write(np.full((48, 64, 3), i * 20, np.uint8)) for i in range(6)]\nw.release()\n"
              "set_mp4_rotation(sys.argv[1], 90)\n")
    subprocess.run([str(require_backend()), "-c", script, str(video)], cwd=REPO, check=True, timeout=120)
    result = synthetic_result(6, width=48, height=64, footage=str(video), fps="25")  # upright, as the backend read it
    imported = import_result(None, write(tmp_path / "phone.sheap.safetensors", result), flame, frame_start=1)
    on_its_side = [w for w in imported.warnings if "on its side" in w]
    if bpy.app.version >= (4, 5, 0):
        assert tuple(imported.camera.data.background_images[0].clip.size) == (48, 64) and not on_its_side
    else:
        assert len(on_its_side) == 1 and "48x64" in on_its_side[0]
