"""Hard cuts in the footage become timeline markers "cut" (the result's `cuts` metadata); the face the
backend followed is kept on the rig; malformed `cuts` is refused with the scene unchanged."""

from __future__ import annotations

import json

import bpy
import numpy as np
import pytest
from helpers import datablock_counts, scene_settings, synthetic_flame, synthetic_result, write, write_flame

from sheap_blender.core.errors import InputError
from sheap_blender.reconstruct.importer import import_result

N = 20
FIRST = 50  # footage frame of the result's first row: cuts name footage frames, markers go on scene frames
FOLLOWED = {"rule": "point", "point": [0.3, 0.4], "frame": FIRST, "box": [100.0, 80.0, 260.0, 240.0]}


@pytest.fixture(scope="module")
def flame(tmp_path_factory):
    return write_flame(tmp_path_factory.mktemp("flame") / "flame.safetensors", synthetic_flame())


def result_with(cuts: str | None, followed: str | None = json.dumps(FOLLOWED), seed: int = 1):
    result = synthetic_result(N, seed=seed)
    result.frame_index = np.arange(FIRST, FIRST + N, dtype=np.int64)
    result.valid[:] = True
    result.valid[[2, 9]] = False
    for key, value in (("cuts", cuts), ("followed_face", followed)):
        if value is not None:
            result.metadata[key] = value
    return result


def markers() -> list[tuple[str, int]]:
    return sorted((m.name, m.frame) for m in bpy.context.scene.timeline_markers)


def test_a_marker_at_each_cut(empty_scene, flame, tmp_path):
    path = write(tmp_path / "clip.sheap.safetensors", result_with(json.dumps([FIRST + 12, FIRST + 5])))
    imported = import_result(None, path, flame, frame_start=11)
    assert markers() == [("cut", 16), ("cut", 23), ("no face", 13), ("no face", 20)]
    assert imported.cuts == 2 and "2 hard cuts (markers 'cut')" in imported.summary()
    assert imported.followed_face == FOLLOWED
    assert json.loads(imported.root["sheap_followed_face"]) == FOLLOWED


def test_older_results_have_no_cuts(empty_scene, flame, tmp_path):
    path = write(tmp_path / "old.sheap.safetensors", result_with(None, followed=None))
    imported = import_result(None, path, flame)
    assert [name for name, _ in markers()] == ["no face", "no face"]
    assert imported.cuts == 0 and imported.followed_face is None and "sheap_followed_face" not in imported.root
    assert not any("followed_face" in warning for warning in imported.warnings)
    path = write(tmp_path / "odd.sheap.safetensors", result_with(None, followed="[1, 2]"))
    imported = import_result(None, path, flame)  # a followed_face that is not an object: a warning, not kept
    assert imported.followed_face is None and "sheap_followed_face" not in imported.root
    assert any("followed_face is not a JSON object" in warning for warning in imported.warnings)


def test_reimport_replaces_the_cut_markers(empty_scene, flame, tmp_path):
    empty_scene.timeline_markers.new("user marker", frame=3)
    path = tmp_path / "clip.sheap.safetensors"
    write(path, result_with(json.dumps([FIRST + 4, FIRST + 15])))
    first = import_result(None, path, flame)
    assert ("cut", 5) in markers() and ("cut", 16) in markers()
    write(path, result_with(json.dumps([FIRST + 7]), seed=2))  # the clip reconstructed again
    again = import_result(None, path, flame)
    assert again.reused and again.root == first.root
    assert markers() == [("cut", 8), ("no face", 3), ("no face", 10), ("user marker", 3)]
    write(path, result_with(None, followed=None, seed=3))  # an older result: no cuts, no followed face
    import_result(None, path, flame)
    assert markers() == [("no face", 3), ("no face", 10), ("user marker", 3)]
    assert "sheap_followed_face" not in first.root


@pytest.mark.parametrize("cuts, reason", [
    *((text, "malformed cuts metadata") for text in ("not json", '{"frames": [55]}', "[55.5]", "[true]", '"55"',
                                                      '[55, "60"]', "[-1]",
                                                      f"[{2**64}]")),
    (f"[{FIRST + 3}, {FIRST + N}]", f"names frame {FIRST + N}, which the result does not hold"),
])
def test_malformed_cuts_are_refused_and_change_nothing(empty_scene, flame, tmp_path, cuts, reason):
    earlier = write(tmp_path / "earlier.sheap.safetensors", result_with(json.dumps([FIRST + 6])))
    import_result(None, earlier, flame)  # a rig and its markers that must stay as they are
    empty_scene.timeline_markers.new("user marker", frame=7)
    before = (datablock_counts(bpy), scene_settings(bpy), markers())
    path = write(tmp_path / "bad.sheap.safetensors", result_with(cuts))
    for attempt in (lambda: import_result(None, path, flame), lambda: import_result(None, path, flame, target="NEW"),
                    lambda: import_result(None, earlier.with_name("bad.sheap.safetensors"), flame,
                                          rig_object=bpy.data.objects["clip root"])):
        with pytest.raises(InputError) as caught:
            attempt()
        message = str(caught.value)
        assert "bad.sheap.safetensors" in message and reason in message and "\n" not in message
        assert (datablock_counts(bpy), scene_settings(bpy), markers()) == before
    with pytest.raises(RuntimeError, match="cuts"):  # the operator: the same line, reported as an error
        bpy.ops.sheap.import_result(filepath=str(path), flame=str(flame))
    assert (datablock_counts(bpy), scene_settings(bpy), markers()) == before


def test_frames_that_may_show_another_person_are_named_in_a_warning(empty_scene, flame, tmp_path):
    result = result_with(json.dumps([FIRST + 12]))
    result.extra["identified"] = np.ones(N, np.uint8)
    result.extra["identified"][12:] = 0  # a face too small to recognise, found again by its place
    result.extra["identified"][[2, 9]] = 0  # no face there: nothing to doubt
    imported = import_result(None, write(tmp_path / "other.sheap.safetensors", result), flame)
    warning = [w for w in imported.warnings if "another person" in w]
    assert warning == [f"footage frames {FIRST + 12}-{FIRST + N - 1} may show another person than the one "
                       f"followed (a face too small to recognise, found again by its place): they are animated, "
                       f"but the head's shape was made without them"]
    result.extra["identified"][:] = 1
    imported = import_result(None, write(tmp_path / "same.sheap.safetensors", result), flame)
    assert not any("another person" in w for w in imported.warnings)
