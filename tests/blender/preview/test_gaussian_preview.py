"""The Gaussian preview: points bound to the head follow it exactly; colour, checkbox, re-import, bad input.

Results carry a synthetic binding (`sample_binding`, then varied offsets, rotations, scales,
opacities and colours) on a synthetic FLAME. The reference centres are `pose_gaussians` on FLAME's
vertices from this folder's independent NumPy FLAME and from the backend's torch FLAME
(`python -m backend flame`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import bpy
import numpy as np
import pytest
from helpers import (
    datablock_counts,
    flame_forward,
    scene_settings,
    synthetic_flame,
    synthetic_result,
    write,
    write_flame,
)

from sheap_blender.core.errors import InputError
from sheap_blender.core.gaussians import GaussianBinding, pose_gaussians, sample_binding, triangle_frames
from sheap_blender.core.result.result_format import read_result
from sheap_blender.reconstruct import operator as reconstruct_operator
from sheap_blender.reconstruct.importer import import_result
from sheap_blender.rig import animation

REPO = Path(__file__).resolve().parents[3]
PYTHON = REPO / ".venv" / "bin" / "python"
N = 12
COUNT = 3000
TOLERANCE = 1e-4  # metres (the bar); measured: about 1e-7


def varied_binding(model, seed: int = 3) -> GaussianBinding:
    """Gaussians over the template with offsets off the surface, spun, anisotropic, coloured."""
    rng = np.random.default_rng(seed)
    binding = sample_binding(model.v_template, model.faces, COUNT, seed=seed)
    binding.offset = rng.uniform(-0.3, 0.3, COUNT).astype(np.float32)
    quaternions = rng.normal(size=(COUNT, 4))
    binding.rotation = (quaternions / np.linalg.norm(quaternions, axis=1, keepdims=True)).astype(np.float32)
    binding.scale = (binding.scale * rng.uniform(0.3, 2.0, (COUNT, 2))).astype(np.float32)
    binding.opacity = rng.uniform(0.05, 1.0, COUNT).astype(np.float32)
    binding.colour = rng.uniform(0.0, 1.0, (COUNT, 3)).astype(np.float32)
    binding.colour[:4] = [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.5, 0.04, 0.2], [0.04045, 0.8, 0.01]]
    return binding


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gaussians")
    model = synthetic_flame(seed=7)
    flame = write_flame(folder / "flame.safetensors", model)
    result = synthetic_result(N, seed=8)
    result.params["jaw_pose"][4] = [0.45, 0.02, -0.03]  # jaw wide open
    result.params["neck_pose"][7] = [0.1, -0.9, 0.2]  # head turned
    plain = write(folder / "plain.sheap.safetensors", result)
    binding = varied_binding(model)
    result.extra.update(binding.to_tensors())
    with_gaussians = write(folder / "clip.sheap.safetensors", result)
    return {"flame": flame, "plain": plain, "gaussians": with_gaussians, "binding": binding, "model": model,
            "folder": folder}


ROWS = (0, 4, 7, 11)  # 0: neck turned 2.5 rad (helpers), 4: jaw open, 7: head turned


def evaluated_points(preview, frame: int) -> dict[str, np.ndarray]:
    """The preview's evaluated point cloud at a scene frame: FLAME-axes world positions and attributes."""
    scene = bpy.context.scene
    scene.frame_set(frame)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    found = []
    for inst in depsgraph.object_instances:  # an instance is only valid during the iteration
        if inst.object.original == preview and isinstance(inst.object.data, bpy.types.PointCloud):
            found.append(_read_cloud(inst.object.data, np.array(inst.matrix_world, dtype=np.float64)))
    assert len(found) <= 1
    return found[0] if found else {}


def _read_cloud(cloud, matrix: np.ndarray) -> dict:
    n = len(cloud.points)

    def read(name: str, key: str, width: int) -> np.ndarray:
        values = np.empty(n * width, dtype=np.float32)
        cloud.attributes[name].data.foreach_get(key, values)
        return values.reshape(n, width) if width > 1 else values

    local = read("position", "vector", 3).astype(np.float64)
    world = local @ matrix[:3, :3].T + matrix[:3, 3]
    return {
        "centres": np.stack([world[:, 0], world[:, 2], -world[:, 1]], axis=1),  # Blender -> FLAME axes
        "radius": read("radius", "value", 1) * np.cbrt(abs(np.linalg.det(matrix[:3, :3]))),
        "colour": read("sheap_colour", "color", 4),
        "opacity": read("sheap_opacity", "value", 1),
        "materials": [m.name for m in cloud.materials if m is not None],
    }


def previews_in_scene() -> list:
    return [obj for obj in bpy.context.scene.objects if obj.get("sheap_role") == "gaussians"]


# ---------------------------------------------------------------------------------------- exactness


def _worst(imported, binding, faces, reference_verts) -> tuple[float, float]:
    worst_centre = worst_radius = 0.0
    for row in ROWS:
        points = evaluated_points(imported.gaussians, imported.frame_start + row)
        centres, _, scales = pose_gaussians(reference_verts(row), faces, binding)
        worst_centre = max(worst_centre, float(np.linalg.norm(points["centres"] - centres, axis=1).max()))
        expected_radius = np.sqrt(scales[:, 0] * scales[:, 1])
        worst_radius = max(worst_radius, float(np.abs(points["radius"] / expected_radius - 1).max()))
    return worst_centre, worst_radius


@pytest.mark.parametrize("legacy", [False, True] if bpy.app.version < (5, 0, 0) else [False])
def test_points_follow_the_head_exactly(empty_scene, files, legacy, monkeypatch):
    if legacy:
        monkeypatch.setattr(animation, "USE_LEGACY_API", True)
    imported = import_result(None, files["gaussians"], files["flame"], frame_start=1)
    assert imported.gaussians is not None and imported.gaussians.name == "clip Gaussians"
    assert imported.gaussians in list(imported.collection.objects)
    assert "3000 Gaussians" in imported.summary()
    model, result = files["model"], read_result(files["gaussians"])
    # the points move: the rows differ by far more than the tolerance
    first = evaluated_points(imported.gaussians, 1)["centres"]
    moved = np.linalg.norm(evaluated_points(imported.gaussians, 1 + 4)["centres"] - first, axis=1).max()
    assert moved > 100 * TOLERANCE
    worst_centre, worst_radius = _worst(imported, files["binding"], model.faces,
                                        lambda row: flame_forward(model, result, row))
    print(f"worst centre error {worst_centre:.2e} m, worst relative radius error {worst_radius:.2e}")
    assert worst_centre < TOLERANCE
    assert worst_radius < 1e-4


@pytest.mark.usefixtures("backend_environment")
def test_points_equal_the_backends_posed_centres(empty_scene, files):
    out = files["folder"] / "verts.npy"
    done = subprocess.run([str(PYTHON), "-m", "backend", "flame", str(files["gaussians"]), "--flame",
                           str(files["flame"]), "-o", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    verts = np.load(out).astype(np.float64)
    assert verts.shape == (N, 5023, 3)
    imported = import_result(None, files["gaussians"], files["flame"], frame_start=5)
    worst_centre, _ = _worst(imported, files["binding"], files["model"].faces, lambda row: verts[row])
    print(f"worst distance to the backend's posed centres {worst_centre:.2e} m")
    assert worst_centre < TOLERANCE


# ---------------------------------------------------------------------------------------- look


def test_colour_opacity_and_material(empty_scene, files):
    imported = import_result(None, files["gaussians"], files["flame"])
    points = evaluated_points(imported.gaussians, 1)
    binding = files["binding"]
    # sRGB -> linear by its definition, and known values: 0.5 -> 0.21404, 0.04045 -> 0.0031308
    srgb = binding.colour.astype(np.float64)
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    assert np.allclose(points["colour"][:, :3], linear, atol=1e-6)
    assert np.allclose(points["colour"][:4, :3], [[0, 0, 0], [1, 1, 1], [0.21404, 0.0030960, 0.033105],
                                                   [0.0031308, 0.60383, 0.00077399]], atol=2e-5)
    assert np.allclose(points["colour"][:, 3], 1.0)
    assert np.allclose(points["opacity"], binding.opacity, atol=1e-7)
    assert points["materials"] == ["SHeaP Gaussians"]
    material = bpy.data.materials["SHeaP Gaussians"]
    read = {node.attribute_name for node in material.node_tree.nodes if node.bl_idname == "ShaderNodeAttribute"}
    assert read == {"sheap_colour", "sheap_opacity"}
    output = next(n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeOutputMaterial")
    assert output.inputs["Surface"].is_linked
    assert not imported.gaussians.hide_render and not imported.gaussians.hide_viewport


# ---------------------------------------------------------------------------------------- checkbox


def test_checkbox_hides_and_shows_the_previews(empty_scene, files):
    settings = bpy.context.scene.sheap
    settings.gaussians = False
    imported = import_result(None, files["gaussians"], files["flame"])
    assert settings.gaussians  # importing a preview ticks the checkbox
    preview = imported.gaussians
    assert evaluated_points(preview, 2)
    settings.gaussians = False
    assert preview.hide_viewport and preview.hide_render
    assert evaluated_points(preview, 2) == {}  # hidden: not evaluated at all
    settings.gaussians = True
    assert not preview.hide_viewport and not preview.hide_render
    assert len(evaluated_points(preview, 2)["centres"]) == COUNT


# ---------------------------------------------------------------------------------------- re-import


def test_reimport_replaces_the_preview(empty_scene, files):
    first = import_result(None, files["gaussians"], files["flame"])
    counts = datablock_counts(bpy)
    groups, materials = len(bpy.data.node_groups), len(bpy.data.materials)
    second = import_result(None, files["gaussians"], files["flame"])
    assert second.reused and second.root == first.root
    assert previews_in_scene() == [second.gaussians]
    assert second.gaussians.name == "clip Gaussians" and second.gaussians.data.name == "clip Gaussians"
    assert datablock_counts(bpy) == counts
    assert (len(bpy.data.node_groups), len(bpy.data.materials)) == (groups, materials)
    assert len(evaluated_points(second.gaussians, 3)["centres"]) == COUNT

    # skipping Gaussians leaves the rig's preview alone; a result without them removes it
    third = import_result(None, files["gaussians"], files["flame"], target="SELECTED", rig_object=first.root,
                          gaussians=False)
    assert third.gaussians is None and previews_in_scene() == [second.gaussians]
    fourth = import_result(None, files["plain"], files["flame"], target="SELECTED", rig_object=first.root)
    assert fourth.gaussians is None and previews_in_scene() == []
    assert not [g for g in bpy.data.node_groups if g.get("sheap_gaussians")]
    assert "SHeaP Gaussians" not in bpy.data.materials


def test_result_without_gaussians_makes_none(empty_scene, files):
    from sheap_blender.preview import render_setup

    before = ({g.name for g in bpy.data.node_groups}, {m.name for m in bpy.data.materials})
    imported = import_result(None, files["plain"], files["flame"])
    assert imported.gaussians is None and previews_in_scene() == []
    # only the head's material and (Blender 5) the render-over-footage compositor: nothing for Gaussians
    assert {g.name for g in bpy.data.node_groups} - before[0] <= {render_setup.GROUP_NAME}
    assert {m.name for m in bpy.data.materials} - before[1] == {render_setup.HEAD_MATERIAL}
    assert "Gaussians" not in imported.summary()


# ---------------------------------------------------------------------------------------- bad input


def _all_counts() -> dict:
    counts = datablock_counts(bpy)
    counts.update(node_groups=len(bpy.data.node_groups), materials=len(bpy.data.materials))
    return counts


@pytest.mark.parametrize(("name", "value", "message"), [
    ("gaussian_bary", lambda b: b.bary[:, :2], "gaussian_bary has shape"),
    ("gaussian_face", lambda b: b.face + 100_000, "outside FLAME's 9976 triangles"),
    ("gaussian_opacity", None, "lacks gaussian_opacity"),
    ("gaussian_face", lambda b: b.face[:, None], "gaussian_face has shape (3000, 1)"),
    ("gaussian_scale", lambda b: np.where(np.arange(COUNT)[:, None] == 5, np.nan, b.scale), "NaN"),
])
def test_malformed_binding_is_one_clear_error(empty_scene, files, tmp_path, name, value, message):
    first = import_result(None, files["gaussians"], files["flame"])  # a rig with a preview, to re-import onto
    result = read_result(files["plain"])
    tensors = files["binding"].to_tensors()
    if value is None:
        del tensors[name]
    else:
        tensors[name] = np.ascontiguousarray(value(files["binding"]), dtype=tensors[name].dtype)
    result.extra.update(tensors)
    bad = write(tmp_path / "bad.sheap.safetensors", result)
    counts, settings = _all_counts(), scene_settings(bpy)
    for target in ("NEW", "SELECTED"):
        with pytest.raises(InputError) as error:
            import_result(None, bad, files["flame"], target=target, rig_object=first.root)
        assert message in str(error.value) and "bad.sheap.safetensors" in str(error.value)
        assert "\n" not in str(error.value)
        assert _all_counts() == counts and scene_settings(bpy) == settings
    assert previews_in_scene() == [first.gaussians]


def test_failure_after_building_removes_the_new_preview(empty_scene, files, monkeypatch):
    first = import_result(None, files["gaussians"], files["flame"])
    counts, settings = _all_counts(), scene_settings(bpy)

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(animation, "write_channels", fail)  # after the preview is built
    for target in ("NEW", "SELECTED"):
        with pytest.raises(RuntimeError):
            import_result(None, files["gaussians"], files["flame"], target=target, rig_object=first.root)
        assert _all_counts() == counts and scene_settings(bpy) == settings
        assert previews_in_scene() == [first.gaussians]  # the old preview survives a failed re-import


# ---------------------------------------------------------------------------------------- request


class _Recorder:
    """Stands in for a backend run: records the request, fails at once."""

    requests: list = []

    def __init__(self, request):
        self.request = request
        self.state, self.error, self.messages = "failed", "stub backend", []
        _Recorder.requests.append(request)

    def wait(self, on_progress=None, interval: float = 0.05) -> None:
        pass


def test_reconstruct_sends_the_gaussian_options(empty_scene, tmp_path, monkeypatch):
    for name in ("python", "flame.pkl", "weights.pt", "clip.mp4"):
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.setattr(reconstruct_operator, "Reconstruction", _Recorder)
    _Recorder.requests.clear()
    settings = bpy.context.scene.sheap
    arguments = dict(footage=str(tmp_path / "clip.mp4"), flame=str(tmp_path / "flame.pkl"),
                     weights=str(tmp_path / "weights.pt"), backend_python=str(tmp_path / "python"))

    def sent(**overrides) -> dict:
        with pytest.raises(RuntimeError, match="stub backend"):  # the operator reports the failed run
            bpy.ops.sheap.reconstruct_head(**arguments, **overrides)
        return _Recorder.requests[-1].fields()

    settings.gaussians, settings.gaussian_count = True, 1234
    fields = sent()
    assert fields["gaussians"] is True and fields["gaussian_count"] == 1234
    fields = sent(gaussians=False, gaussian_count=99)  # the operator's own values win
    assert fields["gaussians"] is False and fields["gaussian_count"] == 99
    settings.gaussians = False
    assert sent()["gaussians"] is False
    assert sent(gaussians=True)["gaussians"] is True


# ---------------------------------------------------------------------------------------- render


def test_points_render_in_cycles_with_their_colour(empty_scene, files, tmp_path):
    """Through the rig's camera, head hidden: the points show in their sRGB colour; unticked, nothing."""
    result = read_result(files["plain"])
    binding = varied_binding(files["model"])
    binding.colour[:] = [1.0, 0.5, 0.1]
    binding.opacity[:] = 1.0
    _, size = triangle_frames(files["model"].v_template, files["model"].faces[binding.face])
    binding.scale[:] = (0.004 / size)[:, None]  # discs of about 4 mm
    result.extra.update(binding.to_tensors())
    path = write(tmp_path / "orange.sheap.safetensors", result)
    imported = import_result(None, path, files["flame"])
    imported.head.hide_render = True
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 4
    scene.cycles.device = "CPU"
    scene.render.film_transparent = True
    scene.render.resolution_percentage = 12
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.frame_set(3)

    def render(name: str) -> np.ndarray:
        scene.render.filepath = str(tmp_path / name)
        bpy.ops.render.render(write_still=True)
        image = bpy.data.images.load(str(tmp_path / name))
        pixels = np.array(image.pixels[:], dtype=np.float32).reshape(image.size[1], image.size[0], 4)
        bpy.data.images.remove(image)
        return pixels

    shown = render("shown.png")
    covered = shown[..., 3] > 0.99
    assert 20 < covered.sum() < 0.8 * covered.size  # points, not a filled frame
    assert np.allclose(np.median(shown[covered, :3], axis=0), [1.0, 0.5, 0.1], atol=0.02)
    scene.sheap.gaussians = False
    assert render("hidden.png")[..., 3].max() == 0.0
