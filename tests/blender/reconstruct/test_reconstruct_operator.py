"""The "Reconstruct Head" operator under real bpy, with the real backend subprocess on the demo stand-ins."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import bpy
import numpy as np
import pytest

import sheap_blender
from sheap_blender.backend_client import reconstruction
from sheap_blender.backend_client.reconstruction import Reconstruction, Request
from sheap_blender.core.result.result_format import SMOOTHING_GROUPS

REPO = Path(__file__).resolve().parents[3]
BACKEND_PYTHON = REPO / ".venv" / "bin" / "python"
DATABLOCKS = ("objects", "meshes", "armatures", "actions", "cameras", "images", "movieclips", "collections")

pytestmark = pytest.mark.usefixtures("backend_environment")  # a missing .venv fails, never skips


@pytest.fixture(scope="module", autouse=True)
def registered():
    if not hasattr(bpy.types.Scene, "sheap"):
        sheap_blender.register()
    yield
    reconstruction.drop_backend()


@pytest.fixture()
def empty_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy.context.scene


def counts() -> dict[str, int]:
    return {name: len(getattr(bpy.data, name)) for name in DATABLOCKS}


def run_operator(demo: Path, **overrides) -> set[str]:
    arguments = dict(footage=str(demo / "astronaut.mp4"), flame=str(demo / "flame.safetensors"),
                     weights=str(demo / "demo_sheap_model.pt"), backend_python=str(BACKEND_PYTHON), device="cpu",
                     batch_size=4)
    arguments.update(overrides)
    return bpy.ops.sheap.reconstruct_head(**arguments)


def backend_pids() -> list[int]:
    """Processes running `-m backend serve` (ours are children of this test process)."""
    out = subprocess.run(["pgrep", "-f", "-P", str(os.getpid()), "backend serve"], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def test_reconstruct_head_builds_a_keyed_rig(demo, empty_scene, capfd):
    assert run_operator(demo) == {"FINISHED"}
    scene = empty_scene
    n_frames = 90
    armatures = [o for o in scene.objects if o.type == "ARMATURE"]
    meshes = [o for o in scene.objects if o.type == "MESH"]
    assert len(armatures) == 1 and len(meshes) >= 1
    head = next(o for o in meshes if o.data.shape_keys is not None)
    key_names = {k.name for k in head.data.shape_keys.key_blocks}
    assert {"identity", "exp000", "exp099"} <= key_names
    assert scene.camera is not None and scene.camera.type == "CAMERA"
    assert scene.render.resolution_x == 640 and scene.render.resolution_y == 480
    assert scene.frame_end - scene.frame_start + 1 == n_frames
    # every frame keyed on the shape keys and on the bones
    from sheap_blender.rig.animation import fcurves_of

    key_curves = fcurves_of(head.data.shape_keys)
    bone_curves = fcurves_of(armatures[0])
    assert key_curves and bone_curves
    assert all(len(fc.keyframe_points) == n_frames for fc in key_curves + bone_curves)
    # and it plays: the evaluated head differs between two frames
    depsgraph = bpy.context.evaluated_depsgraph_get()

    def first_vertex(frame: int) -> tuple[float, ...]:
        scene.frame_set(frame)
        evaluated = head.evaluated_get(depsgraph)
        return tuple(evaluated.to_mesh().vertices[3000].co)

    assert first_vertex(scene.frame_start) != first_vertex(scene.frame_start + 45)
    assert "demo weights" in capfd.readouterr().out


def test_background_run_prints_progress(demo, empty_scene, capfd):
    assert run_operator(demo, frame_start=0, frame_end=20) == {"FINISHED"}
    out = capfd.readouterr().out
    assert "SHeaP: frame 20/20" in out


def test_a_killed_backend_is_reported_and_the_next_run_works(demo, empty_scene, capfd):
    before = counts()
    killed = threading.Event()

    def kill_when_running() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            backend = reconstruction.current_backend()
            if backend is not None and backend.info is not None and not backend.events.empty():
                backend.process.kill()
                killed.set()
                return
            time.sleep(0.01)

    threading.Thread(target=kill_when_running, daemon=True).start()
    # an operator that reports an error raises from a Python call (as in Blender), with the report's text
    with pytest.raises(RuntimeError, match="backend exited unexpectedly"):
        run_operator(demo, batch_size=1)
    assert killed.is_set()
    assert counts() == before
    assert run_operator(demo, frame_start=0, frame_end=12) == {"FINISHED"}


def test_cancel_mid_run_is_quick_and_leaves_nothing(demo, empty_scene, tmp_path):
    before = counts()
    output = tmp_path / "cancelled.sheap.safetensors"
    output.write_bytes(b"an earlier run's result")  # a cancelled re-run must not lose it
    run = Reconstruction(Request(footage=str(demo / "astronaut.mp4"), output=str(output),
                                 flame=str(demo / "flame.safetensors"), weights=str(demo / "demo_sheap_model.pt"),
                                 backend_python=str(BACKEND_PYTHON), device="cpu", batch_size=1))
    deadline = time.monotonic() + 120
    while run.frame == 0 and not run.finished and time.monotonic() < deadline:
        run.poll()
        time.sleep(0.02)
    assert run.state == "running" and 0 < run.frame < run.total
    process = reconstruction.current_backend().process
    started = time.perf_counter()
    run.cancel()
    assert time.perf_counter() - started < 1.0
    assert run.finished and run.state == "cancelled"
    assert process.poll() is not None and backend_pids() == []
    assert output.read_bytes() == b"an earlier run's result"
    assert [p.name for p in tmp_path.iterdir()] == [output.name]  # no partial file left
    assert counts() == before


def test_missing_inputs_are_refused_before_anything_starts(demo, empty_scene, capfd, tmp_path):
    before = counts()
    with pytest.raises(RuntimeError, match=r"nope\.pkl.*FLAME not found|FLAME not found.*nope\.pkl"):
        run_operator(demo, flame=str(tmp_path / "nope.pkl"))
    with pytest.raises(RuntimeError, match="footage not found"):
        run_operator(demo, footage=str(tmp_path / "nope.mp4"))
    assert counts() == before


def test_per_group_smoothing_reaches_the_backend(demo, empty_scene):
    import json

    from sheap_blender.core.safetensors_file import read_metadata

    assert run_operator(demo, frame_start=0, frame_end=10, smooth=0.1, smooth_groups="jaw=0.8, expression=0.2") \
        == {"FINISHED"}
    root = next(o for o in empty_scene.objects if "sheap_result" in o)
    recorded = json.loads(read_metadata(root["sheap_result"])["smoothing"])
    assert recorded == pytest.approx({"strength": 0.1, "jaw": 0.8, "expression": 0.2})
    # the panel's per-group settings are used when the operator leaves them empty
    settings = empty_scene.sheap
    settings.smooth_per_group, settings.smooth_eyes = True, 0.3
    assert run_operator(demo, frame_start=0, frame_end=10) == {"FINISHED"}
    root = next(o for o in empty_scene.objects if "sheap_result" in o)
    recorded = json.loads(read_metadata(root["sheap_result"])["smoothing"])
    assert recorded["eyes"] == pytest.approx(0.3) and set(recorded) == {"strength", *SMOOTHING_GROUPS}


@pytest.mark.parametrize("groups, message", [("nose=0.5", "smoothing group 'nose' unknown"),
                                              ("jaw=lots", "not a strength"), ("jaw=2", "not a strength")])
def test_bad_smoothing_groups_are_refused(demo, empty_scene, groups, message):
    before = counts()
    with pytest.raises(RuntimeError, match=message):
        run_operator(demo, smooth_groups=groups)
    assert counts() == before


def test_gaussian_preview_from_a_real_run(demo, empty_scene):
    from sheap_blender.preview.gaussians import scene_previews

    assert run_operator(demo, frame_start=0, frame_end=12, gaussians=True, gaussian_count=3000) == {"FINISHED"}
    previews = scene_previews(empty_scene)
    assert len(previews) == 1 and len(previews[0].data.vertices) == 3000
    # coloured from the footage: the surfels differ in colour (each starts as the same neutral grey)
    colours = np.empty(3000 * 4, dtype=np.float32)
    previews[0].data.attributes["sheap_colour"].data.foreach_get("color", colours)
    assert np.ptp(colours.reshape(-1, 4)[:, :3], axis=0).max() > 0.1


def test_result_files_are_per_clip_not_per_name(tmp_path):
    from sheap_blender.reconstruct.operator import result_path_for

    first, second = tmp_path / "shotA" / "face.mp4", tmp_path / "shotB" / "face.mp4"
    assert result_path_for(str(first)) != result_path_for(str(second))
    assert result_path_for(str(first)) == result_path_for(str(first))
    assert result_path_for(str(first)).name.startswith("face-")
    assert result_path_for(str(tmp_path / "take3" / "%04d.png")).name.startswith("take3-")


@pytest.mark.parametrize("kind", ["movie", "image sequence"])
def test_the_panels_movie_clip_is_the_footage(demo, empty_scene, tmp_path, kind):
    """As in the UI: a movie clip chosen in the SHeaP tab, the button pressed with no footage given."""
    if kind == "movie":
        clip = bpy.data.movieclips.load(str(demo / "astronaut.mp4"))
    else:
        import subprocess

        frames = tmp_path / "take"
        command = ("import sys, cv2\nfrom pathlib import Path\ncapture = cv2.VideoCapture(sys.argv[1])\n"
                   "out = Path(sys.argv[2]); out.mkdir()\nfor i in range(8):\n"
                   "    cv2.imwrite(str(out / f'{i + 1:04d}.png'), capture.read()[1])\n")
        subprocess.run([str(BACKEND_PYTHON), "-c", command, str(demo / "astronaut.mp4"), str(frames)], check=True)
        clip = bpy.data.movieclips.load(str(frames / "0001.png"))
        assert clip.source == "SEQUENCE"
    settings = empty_scene.sheap
    settings.source, settings.clip = "CLIP", clip
    assert run_operator(demo, footage="", frame_start=0, frame_end=6) == {"FINISHED"}
    root = next(o for o in empty_scene.objects if "sheap_result" in o)
    assert root["sheap_frames"] == 6
    assert empty_scene.camera is not None


def test_the_face_to_follow_reaches_the_backend(demo, empty_scene):
    import json

    from sheap_blender.core.safetensors_file import read_metadata

    assert run_operator(demo, frame_start=0, frame_end=6, face="0.5,0.45") == {"FINISHED"}
    root = next(o for o in empty_scene.objects if "sheap_result" in o)
    followed = json.loads(read_metadata(root["sheap_result"])["followed_face"])
    assert followed["rule"] == "point" and followed["point"] == pytest.approx([0.5, 0.45])
    assert json.loads(root["sheap_followed_face"]) == followed
    # the panel's choice when the operator leaves it empty: the largest face
    assert run_operator(demo, frame_start=0, frame_end=6) == {"FINISHED"}
    root = next(o for o in empty_scene.objects if "sheap_result" in o)
    assert json.loads(read_metadata(root["sheap_result"])["followed_face"])["rule"] == "largest"


class _WindowManager:
    """What the modal handler calls on the window manager (bpy as a module has no window)."""

    def __init__(self):
        self.calls: list[str] = []

    def progress_update(self, value):
        self.calls.append("progress")

    def event_timer_remove(self, timer):
        self.calls.append("timer removed")

    def progress_end(self):
        self.calls.append("progress end")


class _Context:
    """Blender's context, with the window's parts (absent under bpy as a module) stood in for."""

    def __init__(self, **window_parts):
        self.__dict__.update(window_parts)

    def __getattr__(self, name):
        return getattr(bpy.context, name)


def _modal_harness(demo: Path, output: Path):
    """The operator's own modal handler, driven with TIMER / ESC events as Blender's event loop would."""
    from types import SimpleNamespace

    from sheap_blender.reconstruct.operator import SHEAP_OT_reconstruct_head as Operator

    reports: list[tuple[str, str]] = []
    operator = SimpleNamespace(onto_selected=False, _timer=object(),
                               report=lambda level, message: reports.append((next(iter(level)), message)))
    operator._finish = lambda context, run: Operator._finish(operator, context, run)
    operator._run = Reconstruction(Request(footage=str(demo / "astronaut.mp4"), output=str(output),
                                           flame=str(demo / "flame.safetensors"),
                                           weights=str(demo / "demo_sheap_model.pt"),
                                           backend_python=str(BACKEND_PYTHON), device="cpu", batch_size=1))
    status: list[str | None] = []
    context = _Context(window_manager=_WindowManager(), screen=SimpleNamespace(areas=[]),
                       workspace=SimpleNamespace(status_text_set=status.append))

    def send(kind: str) -> set[str]:
        return Operator.modal(operator, context, SimpleNamespace(type=kind))

    return operator, context, send, reports, status


def _until_first_frames(operator, send) -> None:
    deadline = time.monotonic() + 120
    while operator._run.frame == 0 and time.monotonic() < deadline:
        assert send("TIMER") == {"RUNNING_MODAL"}
        time.sleep(0.02)
    assert operator._run.state == "running" and 0 < operator._run.frame < operator._run.total


@pytest.mark.parametrize("how", ["Esc", "the Cancel button"])
def test_modal_run_cancelled_by_the_user_stops_within_a_second(demo, empty_scene, tmp_path, how):
    before = counts()
    operator, context, send, reports, status = _modal_harness(demo, tmp_path / "m.sheap.safetensors")
    assert send("MOUSEMOVE") == {"PASS_THROUGH"}  # the UI stays usable during the run
    _until_first_frames(operator, send)
    assert status and status[-1].startswith("SHeaP: frame")  # progress in the status bar
    started = time.perf_counter()
    if how == "Esc":
        outcome = send("ESC")
    else:
        bpy.ops.sheap.cancel()
        outcome = send("TIMER")
    while outcome == {"RUNNING_MODAL"} and time.perf_counter() - started < 5:
        outcome = send("TIMER")
    assert outcome == {"CANCELLED"} and time.perf_counter() - started < 1.0
    assert operator._run.state == "cancelled" and backend_pids() == []
    assert reports == [("WARNING", "SHeaP: cancelled; the scene is unchanged")]
    assert context.window_manager.calls[-2:] == ["timer removed", "progress end"] and status[-1] is None
    assert counts() == before and list(tmp_path.iterdir()) == []
    assert not context.scene.sheap.cancel_requested


def test_modal_run_to_the_end_imports_the_rig(demo, empty_scene, tmp_path):
    operator, context, send, reports, status = _modal_harness(demo, tmp_path / "m.sheap.safetensors")
    deadline = time.monotonic() + 300
    outcome = send("TIMER")
    while outcome == {"RUNNING_MODAL"} and time.monotonic() < deadline:
        time.sleep(0.05)
        outcome = send("TIMER")
    assert outcome == {"FINISHED"}, reports
    assert any(o.type == "ARMATURE" for o in bpy.data.objects) and bpy.context.scene.camera is not None
    assert reports and "frames reconstructed" in reports[-1][1]


def test_no_redo_panel_reruns_the_reconstruction():
    """Adjust Last Operation would re-run the whole clip: the operator registers no redo (undo is pushed itself)."""
    from sheap_blender.reconstruct.operator import SHEAP_OT_reconstruct_head as Operator

    assert "UNDO" not in Operator.bl_options
