"""Bad input leaves the scene as it was; a failure midway takes back everything; re-importing
replaces the animation of the rig instead of piling up objects."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from helpers import (
    datablock_counts,
    evaluated_flame_vertices,
    flame_forward,
    scene_settings,
    synthetic_flame,
    synthetic_result,
    write,
    write_flame,
)

from sheap_blender.core.errors import InputError
from sheap_blender.core.flame.model import load_flame
from sheap_blender.core.result.result_format import read_result
from sheap_blender.core.safetensors_file import write_safetensors
from sheap_blender.reconstruct import importer
from sheap_blender.reconstruct.importer import import_result
from sheap_blender.rig import animation

N = 12


@pytest.fixture(scope="module")
def flame(tmp_path_factory):
    return write_flame(tmp_path_factory.mktemp("flame") / "flame.safetensors", synthetic_flame())


@pytest.fixture
def default_scene():
    """Blender's default scene (cube, camera, light) plus a user's marker: something to keep intact."""
    bpy.ops.wm.read_factory_settings(use_empty=False)
    bpy.context.scene.timeline_markers.new("user marker", frame=7)
    yield bpy.context.scene


def _snapshot():
    markers = sorted((m.name, m.frame) for m in bpy.context.scene.timeline_markers)
    return datablock_counts(bpy), scene_settings(bpy), markers


def _bad_files(tmp_path, flame):
    good = write(tmp_path / "good.sheap.safetensors", synthetic_result(N))
    blob = good.read_bytes()
    truncated = tmp_path / "truncated.sheap.safetensors"
    truncated.write_bytes(blob[: len(blob) - 1000])
    foreign = tmp_path / "photo.png"
    foreign.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    other = tmp_path / "other.safetensors"
    write_safetensors(other, {"weight": np.zeros((3, 3), np.float32)}, {"format": "pt"})
    mismatch = synthetic_result(N)
    mismatch.metadata["frame_count"] = str(N + 5)
    mismatch_path = write(tmp_path / "mismatch.sheap.safetensors", mismatch)
    small = synthetic_flame()
    tensors = small.to_tensors()
    tensors["v_template"] = tensors["v_template"][:5000]
    wrong_flame = tmp_path / "wrong_flame.safetensors"
    write_safetensors(wrong_flame, tensors, {"format": "sheap-flame-1"})
    impossible = {}
    for label, change, message in [
        ("fps inf", lambda r: r.metadata.update(fps="inf"), "impossible footage"),
        ("width absurd", lambda r: r.metadata.update(width="99999999"), "impossible footage"),
        ("frame index -2^62", lambda r: setattr(r, "frame_index", r.frame_index - 2**62), "outside 0.."),
        ("negative frame index", lambda r: setattr(r, "frame_index", r.frame_index - 3), "outside 0.."),
        ("duplicated frames", lambda r: setattr(r, "frame_index", np.repeat(np.arange(N // 2), 2)), "increasing"),
        ("NaN in an extra tensor", lambda r: r.extra.update(confidence=np.full(N, np.nan, np.float32)), "NaN"),
    ]:
        result = synthetic_result(N)
        change(result)
        impossible[label] = (write(tmp_path / f"{label}.sheap.safetensors", result), flame, message)
    listed = tmp_path / "list_metadata.sheap.safetensors"
    header = b'{"__metadata__":["a"],"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    listed.write_bytes(len(header).to_bytes(8, "little") + header + bytes(4))
    nan_flame = synthetic_flame()
    nan_flame.v_template[10, 1] = np.nan
    return {
        **impossible,
        "metadata that is a list": (listed, flame, "metadata is not a mapping"),
        "FLAME with NaN": (good, write_flame(tmp_path / "nan_flame.safetensors", nan_flame), "NaN"),
        "truncated result": (truncated, flame, "truncated"),
        "foreign file": (foreign, flame, "not a safetensors file"),
        "another safetensors": (other, flame, "not a SHeaP result file"),
        "frame count mismatch": (mismatch_path, flame, f"says {N + 5} frames but its tensors hold {N}"),
        "FLAME of the wrong size": (good, wrong_flame, "not a FLAME 2020 model"),
        "missing FLAME": (good, tmp_path / "nope.pkl", "not found"),
    }


def test_bad_input_reports_one_line_and_changes_nothing(default_scene, flame, tmp_path):
    for label, (result_path, flame_path, message) in _bad_files(tmp_path, flame).items():
        before = _snapshot()
        with pytest.raises(InputError) as caught:
            import_result(None, result_path, flame_path)
        assert message in str(caught.value) and "\n" not in str(caught.value), label
        # the operator: the same one line, reported as an error (bpy.ops raises it as RuntimeError)
        with pytest.raises(RuntimeError) as reported:
            bpy.ops.sheap.import_result(filepath=str(result_path), flame=str(flame_path))
        assert message in str(reported.value), label
        assert _snapshot() == before, label


def test_nothing_selected_onto_selected(default_scene, flame, tmp_path):
    good = write(tmp_path / "good.sheap.safetensors", synthetic_result(N))
    bpy.context.view_layer.objects.active = bpy.data.objects["Cube"]
    before = _snapshot()
    with pytest.raises(InputError, match="no SHeaP rig is selected"):
        import_result(None, good, flame, onto_selected=True)
    assert _snapshot() == before


def test_failure_midway_removes_everything(default_scene, flame, tmp_path, monkeypatch):
    good = write(tmp_path / "good.sheap.safetensors", synthetic_result(N, valid_ratio=0.5))
    before = _snapshot()
    calls = []

    def failing(target, frames, channels):
        calls.append(target)
        if len(calls) == 2:  # after the rig, the camera, one action: as late as it gets
            raise RuntimeError("simulated failure")
        return original(target, frames, channels)

    original = animation.write_channels
    monkeypatch.setattr(animation, "write_channels", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        import_result(None, good, flame, frame_start=40)
    assert _snapshot() == before


def test_reimport_replaces_the_animation(empty_scene, flame, tmp_path):
    path = write(tmp_path / "clip.sheap.safetensors", synthetic_result(N, valid_ratio=0.5))
    first = import_result(None, path, flame)
    counts = datablock_counts(bpy)
    old_actions = {role: action.name for role, action in first.actions.items()}
    markers = sorted((m.name, m.frame) for m in bpy.context.scene.timeline_markers)
    again = import_result(None, path, flame)  # the same result file: its rig is re-animated
    assert again.reused and again.root == first.root and again.head == first.head
    assert datablock_counts(bpy) == counts  # no new objects, old actions gone
    assert {role: action.name for role, action in again.actions.items()} == old_actions
    assert sorted((m.name, m.frame) for m in bpy.context.scene.timeline_markers) == markers

    # another clip (other identity, other motion) onto the selected rig: exact again
    other_result = synthetic_result(N + 4, seed=7)
    other = write(tmp_path / "other.sheap.safetensors", other_result)
    bpy.context.view_layer.objects.active = first.camera  # any part of the rig selects it
    third = import_result(None, other, flame, onto_selected=True)
    assert third.reused and third.root == first.root
    assert datablock_counts(bpy)["objects"] == counts["objects"]
    assert bpy.context.scene.frame_end == N + 4
    model, result = load_flame(flame), read_result(other)
    for row in (0, 9, N + 3):
        error = np.linalg.norm(evaluated_flame_vertices(bpy, third.head, 1 + row) - flame_forward(model, result, row),
                               axis=1).max()
        assert error < 1e-5
    # a new rig when asked for one
    fourth = import_result(None, path, flame, target="NEW")
    assert fourth.root != first.root


def test_reimport_failure_keeps_the_rig(empty_scene, flame, tmp_path, monkeypatch):
    path = write(tmp_path / "clip.sheap.safetensors", synthetic_result(N))
    first = import_result(None, path, flame)
    reference = evaluated_flame_vertices(bpy, first.head, 4)
    before = _snapshot()
    actions = dict(first.actions)
    other = write(tmp_path / "other.sheap.safetensors", synthetic_result(N, seed=9))

    def failing(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(importer.timeline, "mark_invalid", failing)
    bpy.context.view_layer.objects.active = first.armature
    with pytest.raises(RuntimeError, match="simulated"):
        import_result(None, other, flame, onto_selected=True)
    assert _snapshot() == before
    assert first.armature.animation_data.action == actions["head"]
    assert np.abs(evaluated_flame_vertices(bpy, first.head, 4) - reference).max() < 1e-6


def test_rig_of_another_flame_is_refused(empty_scene, flame, tmp_path):
    path = write(tmp_path / "clip.sheap.safetensors", synthetic_result(N))
    import_result(None, path, flame)
    other_flame = write_flame(tmp_path / "other_flame.safetensors", synthetic_flame(seed=3, sha="another"))
    before = _snapshot()
    with pytest.raises(InputError, match="another FLAME model"):
        import_result(None, path, other_flame)
    assert _snapshot() == before


def test_saved_rig_reopened_and_reanimated(empty_scene, flame, tmp_path):
    """A .blend holding one rig (as scripts/bake.py --rig uses it): saved, reopened, re-animated."""
    path = write(tmp_path / "clip.sheap.safetensors", synthetic_result(N))
    import_result(None, path, flame)
    blend = tmp_path / "rig.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    bpy.context.view_layer.objects.active = None
    head = next(o for o in bpy.data.objects if o.get("sheap_role") == "head")
    model, result = load_flame(flame), read_result(path)
    assert np.linalg.norm(evaluated_flame_vertices(bpy, head, 5) - flame_forward(model, result, 4), axis=1).max() < 1e-5
    counts = datablock_counts(bpy)
    other = write(tmp_path / "other.sheap.safetensors", synthetic_result(N, seed=11))
    again = import_result(None, other, flame, onto_selected=True)
    assert again.reused and again.head == head
    assert datablock_counts(bpy) == counts
    back = read_result(other)
    assert np.linalg.norm(evaluated_flame_vertices(bpy, head, 3) - flame_forward(model, back, 2), axis=1).max() < 1e-5
