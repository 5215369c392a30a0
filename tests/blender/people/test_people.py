"""Every person gets their own rig: people files imported (synthetic results), the panel's choice of whom
to follow, Find People and Reconstruct Head's Everyone / person N on a real two-person clip through the real
backend subprocess (Grace Hopper and the astronaut)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from helpers import datablock_counts, scene_settings, synthetic_flame, synthetic_result, write, write_flame, write_png

from sheap_blender.backend_client import reconstruction
from sheap_blender.core.result.people_file import (
    PeopleFile,
    PersonEntry,
    person_result_name,
    read_people,
    write_people,
)
from sheap_blender.rig.animation import fcurves_of

REPO = Path(__file__).resolve().parents[3]
BACKEND_PYTHON = REPO / ".venv" / "bin" / "python"
N = 20


@pytest.fixture(scope="module", autouse=True)
def dropped_backend():
    yield
    reconstruction.drop_backend()


# ------------------------------------------------------------------------------ importing a people file


def people_folder(tmp_path: Path, results: int = 2, found: int = 3) -> tuple[Path, Path]:
    """(people file, FLAME): `found` people, the first `results` with a synthetic result and a thumbnail each."""
    flame = write_flame(tmp_path / "flame.safetensors", synthetic_flame())
    entries = []
    for number in range(1, found + 1):
        write_png(tmp_path / f"clip.person{number}.png", np.full((8, 8, 3), 40 * number, dtype=np.uint8))
        result = None
        if number <= results:
            result = person_result_name("clip", number)
            write(tmp_path / result, synthetic_result(N, seed=number, footage="clip.mp4"))
        entries.append(PersonEntry(number, f"clip.person{number}.png", 0, [0], result, [[0, N - 1]] if result else []))
    path = write_people(tmp_path / "clip.people.json", PeopleFile("clip.mp4", 29.97002997, [0, N], entries))
    return path, flame


def roots() -> dict[int, bpy.types.Object]:
    return {o["sheap_person"]: o for o in bpy.context.scene.objects if o.get("sheap_rig") and "sheap_person" in o}


def test_a_rig_per_person_each_in_its_collection_and_keyed(empty_scene, tmp_path):
    people, flame = people_folder(tmp_path)
    assert bpy.ops.sheap.import_people(filepath=str(people), flame=str(flame)) == {"FINISHED"}
    scene = empty_scene
    found = roots()
    assert sorted(found) == [1, 2]  # person 3 has no result: no rig
    for number, root in found.items():
        collection = root.users_collection[0]
        assert collection.name == f"SHeaP clip person {number}"
        assert root["sheap_people"] == str(people)
        assert root["sheap_result"].endswith(f"person{number}.sheap.safetensors")
        head = next(o for o in root.children_recursive if o.get("sheap_role") == "head")
        armature = next(o for o in root.children_recursive if o.type == "ARMATURE")
        assert head.name == f"clip person {number} head" and head.users_collection[0] == collection
        curves = fcurves_of(head.data.shape_keys) + fcurves_of(armature)
        assert curves and all(len(curve.keyframe_points) == N for curve in curves)
    # one scene set-up for the clip: person 1's camera, the clip's range, one set of lights
    assert scene.camera is not None and scene.camera.parent == found[1]
    assert (scene.frame_start, scene.frame_end) == (1, N)
    assert sum(o.type == "LIGHT" for o in scene.objects) == 3
    assert sum(o.type == "CAMERA" for o in scene.objects) == 2  # a camera's lens and shift are its person's crops
    # "no face" only where neither person's face is found
    valid = [synthetic_result(N, seed=number).valid for number in (1, 2)]
    nobody = np.flatnonzero(~(valid[0] | valid[1]))
    marked = sorted(m.frame for m in scene.timeline_markers if m.name.startswith("no face"))
    assert marked == [1 + int(row) for row in nobody if row == 0 or (row - 1) not in nobody]


def test_importing_again_re_animates_each_persons_rig(empty_scene, tmp_path):
    people, flame = people_folder(tmp_path)
    assert bpy.ops.sheap.import_people(filepath=str(people), flame=str(flame)) == {"FINISHED"}
    first = {number: root.name for number, root in roots().items()}
    before = datablock_counts(bpy)
    write(tmp_path / person_result_name("clip", 2), synthetic_result(N, seed=7, footage="clip.mp4"))
    assert bpy.ops.sheap.import_people(filepath=str(people), flame=str(flame)) == {"FINISHED"}
    assert {number: root.name for number, root in roots().items()} == first
    assert datablock_counts(bpy) == before  # the old actions replaced, nothing added


def test_a_missing_person_result_is_one_line_and_changes_nothing(empty_scene, tmp_path):
    people, flame = people_folder(tmp_path)
    assert bpy.ops.sheap.import_people(filepath=str(people), flame=str(flame)) == {"FINISHED"}
    before, settings = datablock_counts(bpy), scene_settings(bpy)
    actions = {o.name: o.animation_data.action.name for o in bpy.data.objects if o.animation_data}
    (tmp_path / person_result_name("clip", 2)).unlink()
    with pytest.raises(RuntimeError) as error:
        bpy.ops.sheap.import_people(filepath=str(people), flame=str(flame))
    message = str(error.value).strip()
    assert "clip.person2.sheap.safetensors" in message and "not found" in message and "\n" not in message
    assert datablock_counts(bpy) == before and scene_settings(bpy) == settings
    assert {o.name: o.animation_data.action.name for o in bpy.data.objects if o.animation_data} == actions


def test_a_person_that_fails_late_takes_the_others_back(empty_scene, tmp_path):
    """Person 2's result reads but cannot be imported (a crop box without area): person 1, already
    re-animated, is put back as it was, and nothing is left of either."""
    people, flame = people_folder(tmp_path)
    assert bpy.ops.sheap.import_people(filepath=str(people), flame=str(flame)) == {"FINISHED"}
    before, settings = datablock_counts(bpy), scene_settings(bpy)
    actions = {o.name: o.animation_data.action.name for o in bpy.data.objects if o.animation_data}
    markers = sorted((m.name, m.frame) for m in bpy.context.scene.timeline_markers)
    frames_before = roots()[1]["sheap_frames"]
    write(tmp_path / person_result_name("clip", 1), synthetic_result(N + 5, seed=9, footage="clip.mp4"))
    bad = synthetic_result(N, seed=2, footage="clip.mp4")
    bad.params["crop_box"][3] = [10, 10, 10, 10]
    write(tmp_path / person_result_name("clip", 2), bad)
    with pytest.raises(RuntimeError, match=r"clip\.person2\.sheap\.safetensors.*crop_box"):
        bpy.ops.sheap.import_people(filepath=str(people), flame=str(flame))
    assert datablock_counts(bpy) == before and scene_settings(bpy) == settings
    assert {o.name: o.animation_data.action.name for o in bpy.data.objects if o.animation_data} == actions
    assert sorted((m.name, m.frame) for m in bpy.context.scene.timeline_markers) == markers
    assert roots()[1]["sheap_frames"] == frames_before


@pytest.mark.parametrize("problem", ["not json", "nobody reconstructed"])
def test_a_bad_people_file_is_one_line(empty_scene, tmp_path, problem):
    people, flame = people_folder(tmp_path, results=0 if problem == "nobody reconstructed" else 2)
    if problem == "not json":
        people.write_text("{ nope")
    before = datablock_counts(bpy)
    with pytest.raises(RuntimeError, match="clip.people.json") as error:
        bpy.ops.sheap.import_people(filepath=str(people), flame=str(flame))
    assert "\n" not in str(error.value).strip()
    assert datablock_counts(bpy) == before


# ------------------------------------------------------------------------------ whom to follow


def test_the_panels_choice_of_whom_to_follow(empty_scene, tmp_path):
    from sheap_blender.backend_client.reconstruction import Request
    from sheap_blender.reconstruct.operator import person_output, result_path_for, whom_to_follow

    footage = str(tmp_path / "take.mp4")
    settings = empty_scene.sheap
    assert settings.face_rule == "LARGEST"  # the default is as it was
    assert whom_to_follow("", "", settings, footage, 0, None) == (None, None)
    settings.face_rule = "EVERYONE"
    assert whom_to_follow("", "", settings, footage, 0, None) == (None, "all")
    settings.face_rule = "PERSON"
    assert "Find People" in whom_to_follow("", "", settings, footage, 0, None)
    settings.people_file, settings.people_footage, settings.person = str(tmp_path / "x.people.json"), footage, 2
    assert whom_to_follow("", "", settings, footage, 0, None) == (None, 2)
    assert "Find People again" in whom_to_follow("", "", settings, str(tmp_path / "other.mp4"), 0, None)
    assert "Find People again" in whom_to_follow("", "", settings, footage, 5, None)
    # the operator's own properties come first
    assert whom_to_follow("0.5,0.4", "", settings, footage, 0, None) == ((0.5, 0.4), None)
    assert whom_to_follow("", "all", settings, footage, 0, None) == (None, "all")
    assert whom_to_follow("", "3", settings, footage, 0, None) == (None, 3)
    assert "both" in whom_to_follow("largest", "2", settings, footage, 0, None)
    assert "give all" in whom_to_follow("", "0", settings, footage, 0, None)
    # what travels to the backend; person N's result is the one an Everyone run makes for them
    assert person_output(footage, 2).name == result_path_for(footage).name.replace(".sheap.", ".person2.sheap.")
    request = Request(footage=footage, output="o.sheap.safetensors", flame="f", weights="w", backend_python="p",
                      people=2)
    assert request.fields()["people"] == 2 and request.fields()["face"] is None
    assert request.fields()["people_file"] is None
    plain = Request(footage=footage, output="o", flame="f", weights="w", backend_python="p").fields()
    assert plain["people"] is None and plain["people_file"] is None
    request.people_file = "x.people.json"  # Find People's file: the backend reads the people's looks from it
    assert request.fields()["people_file"] == os.path.abspath("x.people.json")


def test_a_person_not_chosen_is_refused_before_the_run(demo, empty_scene):
    empty_scene.sheap.face_rule = "PERSON"
    before = datablock_counts(bpy)
    with pytest.raises(RuntimeError, match="no person chosen"):
        bpy.ops.sheap.reconstruct_head(footage=str(demo / "astronaut.mp4"), flame=str(demo / "flame.safetensors"),
                                       weights=str(demo / "demo_sheap_model.pt"), backend_python=str(BACKEND_PYTHON))
    assert datablock_counts(bpy) == before


# ------------------------------------------------------------------------------ the real backend


@pytest.fixture(scope="module")
def two_people(tmp_path_factory) -> Path:
    """Grace Hopper and the astronaut side by side, 30 frames (the backend's scene clip)."""
    command = ("import sys\nfrom pathlib import Path\n"
               "from backend.standins.clip import FaceInShot, Shot, write_scene_clip\n"
               "write_scene_clip(Path(sys.argv[1]), (1280, 720), [Shot(30, [FaceInShot(0.3, 0.45, 120, "
               "person='hopper'), FaceInShot(0.7, 0.45, 110)])])\n")
    clip = tmp_path_factory.mktemp("people") / "two.mp4"
    subprocess.run([str(BACKEND_PYTHON), "-c", command, str(clip)], cwd=REPO, check=True)
    return clip


def test_find_people_then_follow_one_then_everyone(demo, empty_scene, two_people):
    from sheap_blender.people.panel import thumbnails

    settings = empty_scene.sheap
    settings.source, settings.file = "FILE", str(two_people)
    assert bpy.ops.sheap.find_people(backend_python=str(BACKEND_PYTHON)) == {"FINISHED"}
    listing = read_people(settings.people_file)
    assert [person.number for person in listing.people] == [1, 2] and settings.person == 0
    assert all(person.result is None for person in listing.people)
    assert sorted(thumbnails(settings.people_file)) == [1, 2]  # the panel's pictures, one per person
    # the panel's choice: person 2, then Reconstruct Head with nothing else said
    assert bpy.ops.sheap.choose_person(number=2) == {"FINISHED"}
    assert settings.face_rule == "PERSON" and settings.person == 2
    common = dict(flame=str(demo / "flame.safetensors"), weights=str(demo / "demo_sheap_model.pt"),
                  backend_python=str(BACKEND_PYTHON), device="cpu", batch_size=8)
    assert bpy.ops.sheap.reconstruct_head(**common) == {"FINISHED"}
    [root] = roots().values()
    assert root["sheap_person"] == 2 and root["sheap_result"].endswith(".person2.sheap.safetensors")
    assert root.users_collection[0].name == "SHeaP two person 2 (demo)"
    # Everyone: a rig per person, person 2's re-animated rather than made twice
    settings.face_rule = "EVERYONE"
    assert bpy.ops.sheap.reconstruct_head(**common) == {"FINISHED"}
    found = roots()
    assert sorted(found) == [1, 2] and found[2] == root
    assert sum(o.type == "ARMATURE" for o in empty_scene.objects) == 2
    assert sorted(c.name for c in bpy.data.collections) == ["SHeaP two person 1 (demo)", "SHeaP two person 2 (demo)"]
    for rig_root in found.values():
        head = next(o for o in rig_root.children_recursive if o.get("sheap_role") == "head")
        assert all(len(c.keyframe_points) == 30 for c in fcurves_of(head.data.shape_keys))


def test_find_people_cancelled_stops_at_once_and_leaves_nothing(empty_scene, two_people, tmp_path):
    from sheap_blender.backend_client.find_people import FindPeople, PeopleRequest

    output = tmp_path / "two.people.json"
    run = FindPeople(PeopleRequest(str(two_people), str(output), str(BACKEND_PYTHON)))
    deadline = time.monotonic() + 120
    while run.frame == 0 and not run.finished and time.monotonic() < deadline:
        run.poll()
        time.sleep(0.02)
    assert run.state == "running" and 0 < run.frame < run.total and run.status_line.startswith("finding people")
    started = time.perf_counter()
    run.cancel()
    assert time.perf_counter() - started < 1.0
    assert run.state == "cancelled" and run.process.poll() is not None
    assert list(tmp_path.iterdir()) == []


def test_find_people_on_footage_without_anyone_is_one_line(empty_scene, tmp_path):
    from helpers import write_frames

    frames = write_frames(tmp_path / "empty", 6, 160, 120)
    with pytest.raises(RuntimeError, match="nobody found") as error:
        bpy.ops.sheap.find_people(footage=str(frames), backend_python=str(BACKEND_PYTHON))
    assert "\n" not in str(error.value).strip() and not empty_scene.sheap.people_file


# ------------------------------------------------------------------------------ bake.py --people all


def bake(*args: str | Path) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run([sys.executable, str(REPO / "scripts" / "bake.py"), "--", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)


def test_bake_everyone_a_rig_per_person_and_nobody_fails_the_clip(demo, two_people, tmp_path):
    from helpers import write_frames

    nobody = write_frames(tmp_path / "nobody", 6, 160, 120)
    out = tmp_path / "out"
    completed = bake(two_people, nobody, "--out", out, "--people", "all", "--flame", demo / "flame.safetensors",
                     "--weights", demo / "demo_sheap_model.pt", "--backend-python", BACKEND_PYTHON, "--device", "cpu")
    assert completed.returncode == 1, completed.stderr[-3000:]
    failures = [line for line in completed.stderr.splitlines() if line.startswith("bake: FAILED")]
    assert len(failures) == 1 and "nobody" in failures[0] and "nobody found" in failures[0], completed.stderr[-3000:]
    assert "Traceback" not in completed.stderr and "[demo weights]" in completed.stdout
    assert sorted(p.name for p in out.glob("*.blend")) == ["two.blend"]
    assert {"two.people.json", "two.person1.sheap.safetensors", "two.person2.sheap.safetensors"} <= {
        p.name for p in out.iterdir()}
    bpy.ops.wm.open_mainfile(filepath=str(out / "two.blend"))
    found = roots()
    assert sorted(found) == [1, 2]
    assert sorted(c.name for c in bpy.data.collections) == ["SHeaP two person 1 (demo)", "SHeaP two person 2 (demo)"]
    for root in found.values():
        head = next(o for o in root.children_recursive if o.get("sheap_role") == "head")
        frames = {round(k.co.x) for c in fcurves_of(head.data.shape_keys) for k in c.keyframe_points}
        assert frames == set(range(1, 31))
    assert bpy.context.scene.camera.parent == found[1]


def test_bake_people_goes_with_neither_face_nor_a_rig(tmp_path):
    common = (tmp_path / "clip.mp4", "--out", tmp_path / "out", "--backend-python", BACKEND_PYTHON)
    completed = bake(*common, "--people", "all", "--face", "0.5,0.5")
    assert completed.returncode == 2 and "--people and --face" in completed.stderr
    completed = bake(*common, "--people", "everyone")
    assert completed.returncode == 2 and "give all" in completed.stderr and "Traceback" not in completed.stderr
