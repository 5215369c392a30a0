"""Which face to follow: the operator's `face`, the panel's choice, bake.py --face, the Movie Clip editor's
2D cursor. The JSON the extension sends is read back from a stand-in backend that records its stdin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np
import pytest
from helpers import write_png

from sheap_blender.backend_client import reconstruction
from sheap_blender.core.result.face_choice import clip_cursor_to_point, parse_face

REPO = Path(__file__).resolve().parents[3]

# `python -m backend serve` as far as the extension can tell: ready, then every request line is
# appended to requests.jsonl beside this script and a reconstruct is answered with an error.
_FAKE_BACKEND = """\
import json, sys
from pathlib import Path
record = Path(__file__).with_name("requests.jsonl")
print(json.dumps({"event": "ready", "protocol": 1}), flush=True)
for line in sys.stdin:
    with record.open("a") as out:
        out.write(line)
    request = json.loads(line)
    if request.get("cmd") == "quit":
        break
    if request.get("cmd") == "reconstruct":
        print(json.dumps({"event": "error", "id": request["id"], "message": "stand-in backend: request recorded"}),
              flush=True)
"""


@pytest.fixture
def backend(tmp_path):
    """A stand-in backend interpreter; `.requests()` reads back the reconstruct requests it received."""
    folder = tmp_path / "fake_backend"
    folder.mkdir()
    python = folder / "python"
    python.write_text(f"#!{sys.executable}\n{_FAKE_BACKEND}")
    python.chmod(0o755)

    def requests() -> list[dict]:
        record = folder / "requests.jsonl"
        lines = record.read_text().splitlines() if record.exists() else []
        return [r for r in map(json.loads, lines) if r.get("cmd") == "reconstruct"]

    reconstruction.drop_backend(now=True)
    yield SimpleNamespace(python=python, requests=requests)
    reconstruction.drop_backend(now=True)


@pytest.fixture
def inputs(tmp_path):
    """Files that pass the operator's checks (the stand-in backend never reads them)."""
    paths = SimpleNamespace(footage=tmp_path / "clip.mp4", flame=tmp_path / "flame.safetensors",
                            weights=tmp_path / "model.pt")
    for path in vars(paths).values():
        path.write_bytes(b"stand-in")
    return paths


def run_operator(backend, inputs, **overrides) -> None:
    arguments = dict(footage=str(inputs.footage), flame=str(inputs.flame), weights=str(inputs.weights),
                     backend_python=str(backend.python), device="cpu")
    arguments.update(overrides)
    with pytest.raises(RuntimeError, match="stand-in backend: request recorded"):
        bpy.ops.sheap.reconstruct_head(**arguments)


def test_the_request_carries_the_face(empty_scene, backend, inputs):
    settings = empty_scene.sheap
    run_operator(backend, inputs)  # the panel's default: the largest face, sent as null
    run_operator(backend, inputs, face="0.3, 0.4")
    settings.face_rule, settings.face_point = "POINT", (0.25, 0.75)
    run_operator(backend, inputs)  # the panel's point
    run_operator(backend, inputs, face="largest")  # the operator's choice wins over the panel's
    run_operator(backend, inputs, face="0,1")
    faces = [request["face"] for request in backend.requests()]
    assert len(faces) == 5 and faces[0] is None and faces[3] is None
    assert faces[1] == pytest.approx([0.3, 0.4]) and faces[2] == pytest.approx([0.25, 0.75])
    assert faces[4] == [0.0, 1.0]


@pytest.mark.parametrize("text", ["0.3", "a,b", "1.5,0.2", "0.1,0.2,0.3", "-0.1,0.5", "nan,0.5", "biggest"])
def test_bad_face_text_is_refused_before_anything_starts(empty_scene, backend, inputs, text):
    with pytest.raises(RuntimeError) as caught:
        bpy.ops.sheap.reconstruct_head(footage=str(inputs.footage), flame=str(inputs.flame),
                                       weights=str(inputs.weights), backend_python=str(backend.python), face=text)
    message = str(caught.value).strip()
    assert f"face {text!r}" in message and "top-left" in message and "\n" not in message
    assert reconstruction.current_backend() is None and backend.requests() == []


def test_parse_face():
    assert parse_face("largest") is None and parse_face(" Largest ") is None
    assert parse_face("0.3,0.4") == (0.3, 0.4) and parse_face(" 1 , 0 ") == (1.0, 0.0)
    for text in ("", ",", "0.3;0.4", "inf,0", "0.5,1.0001"):
        with pytest.raises(ValueError, match="expected"):
            parse_face(text)


def bake(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "bake.py"), "--", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_bake_passes_face(backend, inputs, tmp_path):
    common = ("--out", tmp_path / "out", "--flame", inputs.flame, "--weights", inputs.weights,
              "--backend-python", backend.python)
    completed = bake(inputs.footage, *common, "--face", "0.3,0.4")
    assert completed.returncode == 1 and "stand-in backend: request recorded" in completed.stderr
    completed = bake(inputs.footage, *common)
    assert completed.returncode == 1, completed.stderr[-2000:]
    faces = [request["face"] for request in backend.requests()]
    assert faces == [pytest.approx([0.3, 0.4]), None]

    refused = bake(inputs.footage, *common, "--face", "0.3,1.4")
    assert refused.returncode == 2 and "outside the frame" in refused.stderr
    assert "Traceback" not in refused.stderr and len(backend.requests()) == 2


# ---------------------------------------------------------------------------------- the clip editor


@pytest.fixture
def clip_editor(tmp_path):
    """A real Movie Clip editor (an area of the default screen turned into one) showing a 640x480 clip."""
    bpy.ops.wm.read_factory_settings(use_empty=False)
    image = tmp_path / "frame.png"
    write_png(image, np.zeros((480, 640, 3), dtype=np.uint8))
    area = next(a for a in bpy.context.screen.areas if a.type == "VIEW_3D")
    area.type = "CLIP_EDITOR"
    space = area.spaces.active
    space.clip = bpy.data.movieclips.load(str(image))
    space.mode = "MASK"  # the 2D cursor is shown (and set) in Mask mode
    region = next(r for r in area.regions if r.type == "WINDOW")
    yield SimpleNamespace(area=area, space=space, region=region)
    bpy.ops.wm.read_factory_settings(use_empty=True)


def test_face_from_the_clip_editors_cursor(clip_editor):
    settings = bpy.context.scene.sheap
    override = dict(window=bpy.context.window, area=clip_editor.area, region=clip_editor.region)
    with bpy.context.temp_override(**override):
        # Blender's own "Set 2D Cursor" stores what the mouse gives: fractions of the frame from its bottom-left
        assert "FINISHED" in bpy.ops.clip.cursor_set(location=(0.25, 0.2))
        assert tuple(clip_editor.space.cursor_location) == pytest.approx((0.25, 0.2))
        assert bpy.ops.sheap.face_from_clip_cursor() == {"FINISHED"}
    assert settings.face_rule == "POINT"
    assert tuple(settings.face_point) == pytest.approx((0.25, 0.8))  # from the top-left

    clip_editor.space.cursor_location = (1.2, 0.5)  # beside the frame: refused, the choice unchanged
    with bpy.context.temp_override(**override), pytest.raises(RuntimeError, match="outside the clip's frame"):
        bpy.ops.sheap.face_from_clip_cursor()
    assert tuple(settings.face_point) == pytest.approx((0.25, 0.8))
    # only in the Movie Clip editor
    assert not bpy.ops.sheap.face_from_clip_cursor.poll()


def test_clip_cursor_is_read_on_the_first_frame_of_the_range_of_the_footage_run(clip_editor, tmp_path):
    """A cursor placed on another frame, or on another clip than the one reconstructed, would pick the
    wrong face: refused, and the editor is taken to the frame the face is chosen on."""
    settings, scene = bpy.context.scene.sheap, bpy.context.scene
    clip = clip_editor.space.clip
    clip.frame_start = 10  # the clip starts at scene frame 10: footage frame 0 shows there
    settings.start = 3
    scene.frame_current = 10
    override = dict(window=bpy.context.window, area=clip_editor.area, region=clip_editor.region)
    clip_editor.space.cursor_location = (0.25, 0.2)
    with bpy.context.temp_override(**override), pytest.raises(RuntimeError, match=r"first frame of the range "
                                                                                   r"\(footage frame 3\), the "
                                                                                   r"editor showed frame 0"):
        bpy.ops.sheap.face_from_clip_cursor()
    assert scene.frame_current == 13 and settings.face_rule == "LARGEST"
    with bpy.context.temp_override(**override):
        assert bpy.ops.sheap.face_from_clip_cursor() == {"FINISHED"}  # on footage frame 3 now
    assert settings.face_rule == "POINT" and tuple(settings.face_point) == pytest.approx((0.25, 0.8))
    clip.frame_offset = 2  # frame_offset shifts which footage frame a scene frame shows
    with bpy.context.temp_override(**override), pytest.raises(RuntimeError, match="editor showed frame 5"):
        bpy.ops.sheap.face_from_clip_cursor()
    assert scene.frame_current == 11

    other = tmp_path / "other.png"
    write_png(other, np.zeros((480, 640, 3), dtype=np.uint8))
    settings.clip = bpy.data.movieclips.load(str(other))  # the run reads another clip than the editor shows
    settings.face_point = (0.5, 0.5)
    with bpy.context.temp_override(**override), pytest.raises(RuntimeError, match="the editor shows frame.png, but "
                                                                                   "the reconstruction reads "
                                                                                   "other.png"):
        bpy.ops.sheap.face_from_clip_cursor()
    assert tuple(settings.face_point) == pytest.approx((0.5, 0.5))
    settings.source = "FILE"  # a file run: the editor must show that file (here, the image folder)
    settings.file = str(tmp_path / "elsewhere")
    with bpy.context.temp_override(**override), pytest.raises(RuntimeError, match="reads elsewhere"):
        bpy.ops.sheap.face_from_clip_cursor()
    settings.file = str(tmp_path)
    with bpy.context.temp_override(**override):
        assert bpy.ops.sheap.face_from_clip_cursor() == {"FINISHED"}
    assert tuple(settings.face_point) == pytest.approx((0.25, 0.8))


def test_clip_cursor_to_point():
    assert clip_cursor_to_point((0.0, 1.0)) == (0.0, 0.0)  # the frame's top-left corner
    assert clip_cursor_to_point((1.0, 0.0)) == (1.0, 1.0)
    assert clip_cursor_to_point((0.3, 0.9)) == pytest.approx((0.3, 0.1))
    for outside in ((-0.01, 0.5), (0.5, 1.01)):
        with pytest.raises(ValueError, match="outside"):
            clip_cursor_to_point(outside)


class _Layout:
    """Stands in for UILayout: records what the panel draws, checking each property and operator exists."""

    def __init__(self, drawn: list):
        self.drawn = drawn
        self.active = self.enabled = True
        self.scale_y = 1.0

    def row(self, **_):
        return self

    column = box = row

    def prop(self, data, name, **_):
        assert name in data.bl_rna.properties, name
        self.drawn.append(name)

    def operator(self, idname, **_):
        category, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, category), name), idname
        self.drawn.append(idname)

    def label(self, **_):
        pass

    progress = label


def _drawn(space, scene) -> list[str]:
    from sheap_blender.panel import SHEAP_PT_clip

    drawn: list[str] = []
    context = SimpleNamespace(scene=scene, space_data=space, preferences=bpy.context.preferences)
    SHEAP_PT_clip.draw(SimpleNamespace(layout=_Layout(drawn)), context)
    return drawn


def test_panel_shows_the_face_choice(clip_editor):
    scene = bpy.context.scene
    view3d = next(a for s in bpy.data.screens for a in s.areas if a.type == "VIEW_3D").spaces.active
    assert "face_rule" in _drawn(view3d, scene) and "face_point" not in _drawn(view3d, scene)
    assert "sheap.face_from_clip_cursor" not in _drawn(view3d, scene)
    assert "sheap.face_from_clip_cursor" in _drawn(clip_editor.space, scene)
    scene.sheap.face_rule = "POINT"
    assert "face_point" in _drawn(view3d, scene)
