"""The headless batch script, run as users run it: `python scripts/bake.py -- CLIP... --out DIR ...`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest

from sheap_blender.rig.animation import fcurves_of

REPO = Path(__file__).resolve().parents[2]
BACKEND_PYTHON = REPO / ".venv" / "bin" / "python"

pytestmark = pytest.mark.usefixtures("backend_environment")  # a missing .venv fails, never skips


def bake(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "bake.py"), "--", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)


def short_clip(source: Path, target: Path, frames: int) -> Path:
    """The first `frames` frames of the demo clip, as a folder of PNGs (another footage kind)."""
    command = ("import sys, cv2\nfrom pathlib import Path\ncapture = cv2.VideoCapture(sys.argv[1])\n"
               "out = Path(sys.argv[2])\nout.mkdir()\nfor i in range(int(sys.argv[3])):\n"
               "    cv2.imwrite(str(out / f'{i:04d}.png'), capture.read()[1])\n")
    subprocess.run([str(BACKEND_PYTHON), "-c", command, str(source), str(target), str(frames)], check=True)
    return target


def test_batch_of_three_with_one_corrupt_clip(demo, tmp_path):
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    frames = short_clip(demo / "astronaut.mp4", tmp_path / "stills", 12)
    out = tmp_path / "out"
    completed = bake(demo / "astronaut.mp4", corrupt, frames, "--out", out, "--flame", demo / "flame.safetensors",
                     "--weights", demo / "demo_sheap_model.pt", "--backend-python", BACKEND_PYTHON, "--device", "cpu")
    assert completed.returncode == 1, completed.stderr[-3000:]
    assert sorted(p.name for p in out.glob("*.blend")) == ["astronaut.blend", "stills.blend"]
    failures = [line for line in completed.stderr.splitlines() if line.startswith("bake: FAILED")]
    assert len(failures) == 1 and "broken.mp4" in failures[0], completed.stderr[-3000:]
    assert "Traceback" not in completed.stderr
    assert "2 baked, 1 failed" in completed.stdout and "[demo weights]" in completed.stdout

    # the saved file holds the rig, keyed on every frame, with the footage camera
    bpy.ops.wm.open_mainfile(filepath=str(out / "stills.blend"))
    scene = bpy.context.scene
    assert scene.camera is not None and (scene.frame_start, scene.frame_end) == (1, 12)
    heads = [o for o in bpy.data.objects if o.type == "MESH" and o.data.shape_keys is not None]
    assert len(heads) == 1
    frames_keyed = {round(k.co.x) for c in fcurves_of(heads[0].data.shape_keys) for k in c.keyframe_points}
    assert frames_keyed == set(range(1, 13))
    assert not list(out.glob(".*.tmp*")), "no temporary file is left behind"


def test_onto_a_rig_file(demo, tmp_path):
    first = tmp_path / "first"
    frames = short_clip(demo / "astronaut.mp4", tmp_path / "take", 6)
    common = ("--flame", demo / "flame.safetensors", "--weights", demo / "demo_sheap_model.pt", "--backend-python",
              BACKEND_PYTHON, "--device", "cpu")
    assert bake(frames, "--out", first, *common).returncode == 0
    second = tmp_path / "second"
    completed = bake(frames, "--out", second, "--rig", first / "take.blend", *common)
    assert completed.returncode == 0, completed.stderr[-3000:]
    bpy.ops.wm.open_mainfile(filepath=str(second / "take.blend"))
    # baked onto the rig that was there: still one head, one armature
    assert sum(o.type == "ARMATURE" for o in bpy.data.objects) == 1
    assert sum(o.type == "MESH" for o in bpy.data.objects) == 1


def test_missing_inputs_exit_2_with_one_line(tmp_path):
    completed = bake(tmp_path / "clip.mp4", "--out", tmp_path / "out", "--flame", tmp_path / "nope.safetensors",
                     "--weights", tmp_path / "w.pt", "--backend-python", BACKEND_PYTHON)
    assert completed.returncode == 2
    assert "nope.safetensors" in completed.stderr and "Traceback" not in completed.stderr
    assert not (tmp_path / "out").exists()



def test_clips_with_the_same_name_get_their_own_files():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from bake import unique_names
    finally:
        sys.path.remove(str(REPO / "scripts"))
    assert unique_names(["a/face.mp4", "b/face.mp4", "c/take/", "d/take/%04d.png", "e/other.mov"]) == [
        "face", "face-2", "take", "take-2", "other"]


def test_relative_paths_from_the_users_folder(demo, tmp_path):
    """`--out outb` and a relative clip, run from the user's folder: resolved there, not in the backend's."""
    frames = short_clip(demo / "astronaut.mp4", tmp_path / "stills", 6)
    completed = subprocess.run([sys.executable, str(REPO / "scripts" / "bake.py"), "--", frames.name, "--out", "outb",
                                "--flame", str(demo / "flame.safetensors"), "--weights",
                                str(demo / "demo_sheap_model.pt"), "--backend-python", str(BACKEND_PYTHON),
                                "--device", "cpu"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert (tmp_path / "outb" / "stills.blend").is_file()


def test_previews_and_the_baked_blend_renders_over_the_footage(demo, tmp_path):
    """--preview writes one review video per clip; the saved .blend renders (F12) the head over the footage."""
    from sheap_blender.preview import render_setup

    frames = short_clip(demo / "astronaut.mp4", tmp_path / "take", 6)
    out = tmp_path / "out"
    completed = bake(frames, "--out", out, "--preview", "--flame", demo / "flame.safetensors", "--weights",
                     demo / "demo_sheap_model.pt", "--backend-python", BACKEND_PYTHON, "--device", "cpu")
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["take.blend", "take.preview.mp4", "take.sheap.safetensors"]
    video = bpy.data.movieclips.load(str(out / "take.preview.mp4"))
    assert video.frame_duration == 6 and tuple(video.size) == (640, 480)

    bpy.ops.wm.open_mainfile(filepath=str(out / "take.blend"))
    scene = bpy.context.scene
    assert render_setup.is_enabled(scene)
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 4
    scene.render.resolution_percentage = 10  # 64 x 48: the footage is scaled to the render size
    scene.render.dither_intensity = 0.0
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.filepath = str(tmp_path / "f12.png")
    scene.frame_set(scene.frame_start + 3)
    bpy.ops.render.render(write_still=True)

    def pixels(path: Path, size: tuple[int, int]) -> np.ndarray:
        image = bpy.data.images.load(str(path))
        values = np.empty(len(image.pixels), dtype=np.float32)
        image.pixels.foreach_get(values)
        return values.reshape(size[1], size[0], 4)[::-1, :, :3] * 255.0

    rendered = pixels(tmp_path / "f12.png", (64, 48))
    footage = pixels(frames / "0003.png", (640, 480)).reshape(48, 10, 64, 10, 3).mean(axis=(1, 3))
    difference = np.abs(rendered - footage).mean(axis=-1)
    assert rendered.mean() > 40, "not a black render"
    # most of the frame is the footage frame itself; the head (about a tenth of it) is not
    assert np.median(difference) < 12, np.median(difference)
    assert 0.03 < np.mean(difference > 30) < 0.3, np.mean(difference > 30)


def test_the_imports_warnings_reach_the_batch_user(demo, tmp_path):
    """Grace Hopper, then a cut to the astronaut alone (a gap: somebody else): the import's warnings
    (here: demo weights) are lines on stderr, and the clip is baked."""
    command = ("import sys\nfrom pathlib import Path\n"
               "from backend.standins.clip import FaceInShot, Shot, write_scene_clip\n"
               "write_scene_clip(Path(sys.argv[1]), (1280, 720), [Shot(20, [FaceInShot(0.4, 0.45, 150, "
               "person='hopper')]), Shot(10, [FaceInShot(0.6, 0.45, 140)], background='coffee')])\n")
    clip = tmp_path / "two_people.mp4"
    subprocess.run([str(BACKEND_PYTHON), "-c", command, str(clip)], cwd=REPO, check=True)
    out = tmp_path / "out"
    completed = bake(clip, "--out", out, "--flame", demo / "flame.safetensors", "--weights",
                     demo / "demo_sheap_model.pt", "--backend-python", BACKEND_PYTHON, "--device", "cpu")
    assert completed.returncode == 0, completed.stderr[-3000:]
    warnings = [line for line in completed.stderr.splitlines() if line.startswith(f"bake: {clip}: warning: ")]
    assert any("demo weights" in line for line in warnings), completed.stderr[-3000:]
    assert (out / "two_people.blend").is_file()
