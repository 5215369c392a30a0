"""F12 shows the head over the footage: an imported rig rendered with Cycles (small, few samples) and
compared with the footage frame it should show, for an image sequence and a movie, with a start
offset; the panel's "Render over footage" turned off leaves the user's own compositing as it was."""

from __future__ import annotations

import subprocess
from pathlib import Path

import bpy
import numpy as np
import pytest
from conftest import require_backend
from helpers import FOV, flame_forward, reference_pixels, render_still, write, write_png

from sheap_blender.core.flame.model import load_flame
from sheap_blender.core.result.result_format import PER_FRAME, Result
from sheap_blender.preview import render_setup

REPO = Path(__file__).resolve().parents[3]
BACKEND_PYTHON = REPO / ".venv" / "bin" / "python"
W, H = 96, 72
FOOTAGE_FRAMES = 7
START = 2  # the result starts at footage frame 2: scene frame 1 shows footage frame 2
ROWS = 4


def footage_frame(k: int) -> np.ndarray:
    """Footage frame k: a horizontal red ramp, a vertical green ramp, blue says which frame it is."""
    x = np.linspace(30, 220, W)[None, :].repeat(H, 0)
    y = np.linspace(40, 200, H)[:, None].repeat(W, 1)
    return np.stack([x, y, np.full((H, W), 20.0 + 30.0 * k)], axis=-1).round().astype(np.uint8)


def head_result(footage: str) -> Result:
    """A still, neutral head whose crop box moves right 5 px a frame, over footage frames START.."""
    params = {name: np.zeros((ROWS, width), dtype=np.float32) for name, width in PER_FRAME.items()}
    cx = 40.0 + 5.0 * np.arange(ROWS)
    params["crop_box"] = np.stack([cx - 27, np.full(ROWS, 9.0), cx + 27, np.full(ROWS, 63.0)], axis=1).astype(
        np.float32)
    metadata = {"footage": footage, "width": str(W), "height": str(H), "fps": "24", "frame_count": str(ROWS),
                "model_file": "test.pt", "model_sha256": "0", "flame_sha256": "", "fov_deg": str(FOV),
                "backend_version": "test", "demo": "true", "identity": "clip"}
    return Result(np.arange(START, START + ROWS, dtype=np.int64), np.ones(ROWS, dtype=bool), params,
                  {"confidence": np.ones(ROWS, dtype=np.float32)}, metadata)


def head_mask(model, result: Result, row: int) -> np.ndarray:
    """(H, W) bool: pixels the head covers, from points spread over every triangle projected as the
    result says (SHeaP's camera and the row's crop box)."""
    verts = flame_forward(model, result, row)
    rng = np.random.default_rng(0)
    weights = rng.dirichlet(np.ones(3), size=12)  # 12 points per triangle
    points = np.einsum("sk,tkc->tsc", weights, verts[model.faces]).reshape(-1, 3)
    pixels = np.floor(reference_pixels(points, result.params["crop_box"][row])).astype(int)
    inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < W) & (pixels[:, 1] >= 0) & (pixels[:, 1] < H)
    mask = np.zeros((H, W), dtype=bool)
    mask[pixels[inside, 1], pixels[inside, 0]] = True
    return mask


def grow(mask: np.ndarray, steps: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(steps):
        out[1:] |= out[:-1].copy()
        out[:-1] |= out[1:].copy()
        out[:, 1:] |= out[:, :-1].copy()
        out[:, :-1] |= out[:, 1:].copy()
    return out


def render_frame(frame: int, path: Path) -> np.ndarray:
    """Render a scene frame with Cycles (CPU, 8 samples) to a PNG and read it back: (H, W, 3) 0..255."""
    return render_still(bpy, frame, path)


def make_footage(kind: str, folder: Path) -> tuple[str, list[np.ndarray]]:
    """The footage as an image sequence or a movie, and its frames as a reader sees them."""
    frames = [footage_frame(k) for k in range(FOOTAGE_FRAMES)]
    if kind == "sequence":
        sequence = folder / "plate"
        sequence.mkdir()
        for k, rgb in enumerate(frames):
            write_png(sequence / f"plate_{k + 1:04d}.png", rgb)
        return str(sequence), frames
    require_backend()  # OpenCV writes the movie: a missing .venv fails, never skips
    raw = folder / "frames.npy"
    np.save(raw, np.stack(frames))
    movie = folder / "plate.avi"  # MJPG at top quality: close to the frames, decoded the same by both readers
    script = ("import sys, cv2, numpy as np\nframes = np.load(sys.argv[1])\n"
              "size = (frames.shape[2], frames.shape[1])\n"
              "w = cv2.VideoWriter(sys.argv[2], cv2.VideoWriter_fourcc(*'MJPG'), 24, size)\n"
              "w.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)\n"
              "[w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR)) for f in frames]\nw.release()\n"
              "c = cv2.VideoCapture(sys.argv[2])\n"
              "np.save(sys.argv[1], np.stack([cv2.cvtColor(c.read()[1], cv2.COLOR_BGR2RGB) for _ in frames]))\n")
    subprocess.run([str(BACKEND_PYTHON), "-c", script, str(raw), str(movie)], check=True, timeout=120)
    return str(movie), list(np.load(raw))


@pytest.mark.parametrize("kind", ["sequence", "movie"])
def test_f12_shows_the_head_over_the_footage(demo, empty_scene, tmp_path, kind):
    footage, frames = make_footage(kind, tmp_path)
    result = head_result(footage)
    path = write(tmp_path / "clip.sheap.safetensors", result)
    assert bpy.ops.sheap.import_result(filepath=str(path), flame=str(demo / "flame.safetensors")) == {"FINISHED"}
    scene = bpy.context.scene
    assert render_setup.is_enabled(scene) and scene.sheap.render_over_footage
    assert scene.render.film_transparent and scene.world is not None
    assert sum(o.type == "LIGHT" for o in scene.objects) == 3
    head = next(o for o in scene.objects if o.get("sheap_role") == "head")
    assert head.active_material is not None and head.active_material.name == render_setup.HEAD_MATERIAL

    model = load_flame(demo / "flame.safetensors")
    tolerance = 4 if kind == "sequence" else 12
    for row in (0, 2):
        rendered = render_frame(scene.frame_start + row, tmp_path / f"render_{row}.png")
        mask = head_mask(model, result, row)
        assert mask.sum() > 400, "the head covers a good part of the frame"
        outside, inside = ~grow(mask, 2), ~grow(~mask, 2)
        shown = START + row
        expected = frames[shown].astype(np.float64)
        # around the head: exactly the footage frame the result row is, not its neighbours
        error = np.abs(rendered - expected)[outside].max(axis=-1)
        assert np.percentile(error, 99) <= tolerance, (row, np.percentile(error, 99))
        for other in (shown - 1, shown + 1):
            blue = np.abs(rendered[..., 2] - frames[other][..., 2])[outside]
            assert blue.mean() > 20, "not a neighbouring footage frame (their blue differs by 30)"
        # on the head: the lit, neutral head (not black, not the footage) where the projection puts it
        head_pixels = rendered[inside]
        assert np.abs(head_pixels - expected[inside]).mean() > 30
        assert head_pixels.mean() > 60, "the head is lit"
        assert np.ptp(head_pixels.mean(axis=-1)) > 30, "shaded, not flat"


def test_turning_it_off_leaves_the_users_compositing(demo, empty_scene, tmp_path):
    footage, _ = make_footage("sequence", tmp_path)
    path = write(tmp_path / "clip.sheap.safetensors", head_result(footage))
    scene = bpy.context.scene
    scene.render.film_transparent = False
    tree = render_setup._make_tree(scene)  # the user's own compositing: Render Layers -> Blur -> output
    del scene[render_setup.MADE_TREE]
    target = render_setup._output_socket(scene, tree)
    blur = tree.nodes.new("CompositorNodeBlur")
    tree.links.new(target.links[0].from_socket, blur.inputs[0])
    tree.links.new(blur.outputs[0], target)
    before = sorted(n.name for n in tree.nodes)

    assert bpy.ops.sheap.import_result(filepath=str(path), flame=str(demo / "flame.safetensors")) == {"FINISHED"}
    assert render_setup.compositor_tree(scene) == tree and render_setup.is_enabled(scene)
    over = tree.nodes[render_setup.OVER_NODE]
    assert render_setup._alpha_over_inputs(over)[1].links[0].from_node == blur, "the user's result goes over it"
    assert scene.view_settings.view_transform == "Standard"

    scene.sheap.render_over_footage = False
    assert not render_setup.is_enabled(scene) and not scene.sheap.render_over_footage
    assert sorted(n.name for n in tree.nodes) == before
    assert target.links[0].from_node == blur
    assert not scene.render.film_transparent and scene.view_settings.view_transform == "AgX"

    scene.sheap.render_over_footage = True  # and back on from the panel
    assert render_setup.is_enabled(scene) and scene.render.film_transparent


def test_off_at_import_touches_no_render_setting(demo, empty_scene, tmp_path):
    footage, _ = make_footage("sequence", tmp_path)
    path = write(tmp_path / "clip.sheap.safetensors", head_result(footage))
    assert bpy.ops.sheap.import_result(filepath=str(path), flame=str(demo / "flame.safetensors"),
                                       render_over_footage=False) == {"FINISHED"}
    scene = bpy.context.scene
    assert render_setup.compositor_tree(scene) is None and not scene.render.film_transparent
    assert not any(o.type == "LIGHT" for o in scene.objects)


def test_a_failed_import_takes_the_render_set_up_back(demo, empty_scene, tmp_path, monkeypatch):
    footage, _ = make_footage("sequence", tmp_path)
    path = write(tmp_path / "clip.sheap.safetensors", head_result(footage))
    scene = bpy.context.scene
    real_enable = render_setup.enable

    def enable_then_fail(scene):
        assert real_enable(scene)
        raise RuntimeError("disk full")

    monkeypatch.setattr(render_setup, "enable", enable_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        bpy.ops.sheap.import_result(filepath=str(path), flame=str(demo / "flame.safetensors"))
    assert render_setup.compositor_tree(scene) is None and not scene.render.film_transparent
    assert scene.view_settings.view_transform == "AgX" and scene.world is None
    assert not list(scene.objects) and render_setup.HEAD_MATERIAL not in bpy.data.materials
    assert render_setup.SAVED not in scene and render_setup.MADE_TREE not in scene
    assert not bpy.data.node_groups and not bpy.data.lights
