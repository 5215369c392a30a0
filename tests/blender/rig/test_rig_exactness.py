"""The evaluated Blender head equals FLAME's vertices, and the scene camera images it where SHeaP did."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from helpers import (
    evaluated_flame_vertices,
    flame_forward,
    reference_pixels,
    synthetic_flame,
    synthetic_result,
    write,
    write_flame,
)
from mathutils import Vector

from sheap_blender.core.flame.model import load_flame
from sheap_blender.core.result.result_format import read_result
from sheap_blender.reconstruct.importer import import_result
from sheap_blender.rig import animation

N = 24
FRAMES = (0, 1, 5, 13, 23)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exact")
    flame = write_flame(folder / "flame.safetensors", synthetic_flame())
    result = write(folder / "clip.sheap.safetensors", synthetic_result(N))
    return result, flame


@pytest.mark.parametrize("legacy", [False, True] if bpy.app.version < (5, 0, 0) else [False])
def test_evaluated_mesh_matches_flame(empty_scene, files, legacy, monkeypatch):
    if legacy:
        monkeypatch.setattr(animation, "USE_LEGACY_API", True)  # 4.4/4.5: Action.fcurves proxy
    result_path, flame_path = files
    imported = import_result(None, result_path, flame_path, frame_start=1)
    model = load_flame(flame_path)
    result = read_result(result_path)
    worst = 0.0
    for row in FRAMES:
        blender = evaluated_flame_vertices(bpy, imported.head, 1 + row)
        reference = flame_forward(model, result, row)
        error = np.linalg.norm(blender - reference, axis=1).max()
        worst = max(worst, error)
    print(f"worst vertex error {worst:.2e} m")
    assert worst < 1e-5


def test_projection_through_scene_camera(empty_scene, files):
    result_path, flame_path = files
    imported = import_result(None, result_path, flame_path, frame_start=10)
    result = read_result(result_path)
    scene = bpy.context.scene
    width, height = scene.render.resolution_x, scene.render.resolution_y
    assert (width, height) == (result.width, result.height)
    assert scene.camera == imported.camera
    model = load_flame(flame_path)
    sample = np.arange(0, model.n_vertices, 25)
    worst = 0.0
    for row in FRAMES:
        verts = evaluated_flame_vertices(bpy, imported.head, 10 + row)[sample]
        depsgraph = bpy.context.evaluated_depsgraph_get()
        camera = imported.camera.evaluated_get(depsgraph)
        pixels = []
        for x, y, z in verts:
            world = Vector((x, -z, y))  # FLAME -> Blender world
            ndc = world_to_camera_view(scene, camera, world)
            pixels.append((ndc.x * width, (1 - ndc.y) * height))
        expected = reference_pixels(flame_forward(model, result, row)[sample], result.params["crop_box"][row])
        worst = max(worst, np.abs(np.array(pixels) - expected).max())
    print(f"worst projection error {worst:.3g} px")
    assert worst < 1e-2  # goal: 1 pixel
