"""Everyone in an edited clip: `people`, `reconstruct --people all` and `--people N`, through the real CLI.

The clip is cut from shots of three real people (public-domain portraits: Grace Hopper, the
astronaut Eileen Collins, the cameraman), alone and two at a time, at different places and sizes,
over real photographs; each person's result must hold their frames and no one else's, with crops
on their face.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from backend_command import backend
from test_following import CENTRE_TOLERANCE, crop_errors, expected_boxes, motion_of

from backend.standins.clip import PORTRAITS, FaceInShot, Shot, write_scene_clip
from sheap_blender.core.result.people_file import read_people
from sheap_blender.core.result.result_format import read_result

SIZE = (1280, 720)
SHOTS = [  # (frames, [(person, x, y, face_px)]): Hopper; a two-shot; the cameraman; the astronaut, small
    (16, [("hopper", 0.4, 0.45, 170)]),
    (16, [("astronaut", 0.3, 0.5, 130), ("hopper", 0.72, 0.42, 100)]),
    (16, [("cameraman", 0.55, 0.45, 140)]),
    (16, [("astronaut", 0.6, 0.4, 70)]),
]
FIRST_SEEN = {"hopper": 0, "astronaut": 16, "cameraman": 32}  # numbered 1, 2, 3 in this order
BACKGROUNDS = ["rocket", "coffee", "rocket", "coffee"]


def whose_frames(person: str) -> list[int]:
    start, frames = 0, []
    for count, faces in SHOTS:
        if any(face[0] == person for face in faces):
            frames += range(start, start + count)
        start += count
    return frames


@pytest.fixture(scope="module")
def edited(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("edited")
    shots = [Shot(count, [FaceInShot(x, y, px, pan=(0.02, 0.0), person=person) for person, x, y, px in faces],
                  background=background)
             for (count, faces), background in zip(SHOTS, BACKGROUNDS)]
    return write_scene_clip(folder / "edited.mp4", SIZE, shots)


def expected_for(clip: Path, person: str) -> np.ndarray:
    """(F, 3) the person's expected crop (centre, size) on the frames they are in."""
    motion, boxes = motion_of(clip), []
    close_up = close_up_box(person)
    start = 0
    for count, faces in SHOTS:
        names = [face[0] for face in faces]
        if person in names:
            index = names.index(person)
            boxes.append(expected_boxes(motion[start:start + count], index, close_up))
        start += count
    return np.concatenate(boxes)


def close_up_box(person: str) -> np.ndarray:
    """SHeaP's crop of the portrait's face: 1.9 x its landmarks' extent, centred a quarter above."""
    portrait = PORTRAITS[person]
    size = 1.9 * portrait.face_px
    centre = np.array(portrait.face_centre) - [0, 0.25 * portrait.face_px]
    return np.concatenate([centre - size / 2, centre + size / 2])


@pytest.fixture(scope="module")
def everyone(demo, edited, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("everyone") / "edited.sheap.safetensors"
    backend("reconstruct", edited, "-o", out, "--flame", demo / "flame.safetensors", "--weights",
            demo / "demo_sheap_model.pt", "--batch-size", "8", "--people", "all", check=True)
    return out.parent / "edited.people.json"


def test_everyone_gets_a_result_a_thumbnail_and_a_line_in_the_people_file(everyone, edited):
    listing = read_people(everyone)
    assert [person.number for person in listing.people] == [1, 2, 3]
    assert [person.first_frame for person in listing.people] == sorted(FIRST_SEEN.values())
    assert listing.footage == str(edited) and listing.frame_range == [0, 64] and listing.demo
    for person in listing.people:
        thumbnail = cv2.imread(str(listing.path_of(everyone, person.thumbnail)))
        assert thumbnail is not None and thumbnail.shape == (160, 160, 3)
        assert listing.path_of(everyone, person.result).is_file()


@pytest.mark.parametrize("number, person", [(1, "hopper"), (2, "astronaut"), (3, "cameraman")])
def test_each_result_holds_that_persons_frames_only_with_crops_on_their_face(everyone, edited, number, person):
    listing = read_people(everyone)
    entry = listing.people[number - 1]
    result = read_result(listing.path_of(everyone, entry.result))
    assert np.flatnonzero(result.valid).tolist() == whose_frames(person)  # in every shot of theirs, no other
    centre_error, _ = crop_errors(result.params["crop_box"][result.valid], expected_for(edited, person))
    assert centre_error.max() < 2 * CENTRE_TOLERANCE, centre_error  # on their face (others are 3+ sizes away)
    ranges = [list(range(first, last + 1)) for first, last in entry.frames]
    assert sum(ranges, []) == whose_frames(person)
    assert json.loads(result.metadata["followed_face"])["rule"] == "person"


def test_one_person_by_number_is_that_persons_result(demo, edited, everyone, tmp_path):
    out = tmp_path / "astronaut.sheap.safetensors"
    backend("reconstruct", edited, "-o", out, "--flame", demo / "flame.safetensors", "--weights",
            demo / "demo_sheap_model.pt", "--batch-size", "8", "--people", "2", check=True)
    result = read_result(out)
    assert np.flatnonzero(result.valid).tolist() == whose_frames("astronaut")
    followed = json.loads(result.metadata["followed_face"])
    assert followed["rule"] == "person" and followed["person"] == 2


def test_the_people_command_lists_who_appears_without_reconstructing(edited, tmp_path):
    out = tmp_path / "who.people.json"
    completed = backend("people", edited, "-o", out, check=True)
    assert "3 people" in completed.stdout
    listing = read_people(out)
    assert [person.first_frame for person in listing.people] == [0, 16, 32]
    assert all(person.result is None and person.frames == [] for person in listing.people)
    assert all((tmp_path / person.thumbnail).is_file() for person in listing.people)


@pytest.mark.parametrize("extra, words", [
    (("--people", "0"), "--people 0"),
    (("--people", "7"), "person 7"),
    (("--people", "all", "--face", "0.5,0.5"), "--people and --face"),
])
def test_a_bad_people_choice_is_one_line_and_writes_nothing(demo, edited, tmp_path, extra, words):
    out = tmp_path / "bad.sheap.safetensors"
    completed = backend("reconstruct", edited, "-o", out, "--flame", demo / "flame.safetensors", "--weights",
                        demo / "demo_sheap_model.pt", *extra)
    assert completed.returncode == 2, completed.stderr[-2000:]
    lines = completed.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error")] == lines[-1:] and words in lines[-1]
    assert list(tmp_path.iterdir()) == []


DIALOGUE = [("hopper", 0.38, 190, "rocket"), ("astronaut", 0.62, 180, "coffee")] * 2 + [
    ("cameraman", 0.5, 150, "rocket"), ("hopper", 0.42, 170, "rocket"), ("astronaut", 0.58, 190, "coffee")]
DIALOGUE_SHOT = 25  # frames (a second at 25 fps)


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory) -> Path:
    """Shot, reverse shot: Grace Hopper and the astronaut, who never share a frame, a second each, the
    cameraman between; each face where the other's was not (their first shots follow the other's)."""
    shots = [Shot(DIALOGUE_SHOT, [FaceInShot(x, 0.45, px, pan=(0.02, 0.0), person=person)], background=background)
             for person, x, px, background in DIALOGUE]
    return write_scene_clip(tmp_path_factory.mktemp("dialogue") / "dialogue.mp4", SIZE, shots, fps=25.0)


def test_a_dialogue_of_two_people_is_two_people_each_with_their_own_shots_only(demo, dialogue, tmp_path):
    out = tmp_path / "dialogue.sheap.safetensors"
    backend("reconstruct", dialogue, "-o", out, "--flame", demo / "flame.safetensors", "--weights",
            demo / "demo_sheap_model.pt", "--batch-size", "8", "--people", "all", check=True)
    listing = read_people(tmp_path / "dialogue.people.json")
    assert len(listing.people) == 3  # the two of the dialogue stay two, the cameraman the third
    for entry, person in zip(listing.people, ("hopper", "astronaut", "cameraman")):
        theirs = {frame for shot, (name, *_) in enumerate(DIALOGUE) if name == person
                  for frame in range(shot * DIALOGUE_SHOT, (shot + 1) * DIALOGUE_SHOT)}
        result = read_result(listing.path_of(listing_path := tmp_path / "dialogue.people.json", entry.result))
        valid = set(np.flatnonzero(result.valid).tolist())
        assert valid <= theirs, sorted(valid - theirs)  # never a frame of the shot before theirs, nor anyone's
        assert len(valid) >= 0.9 * len(theirs)
        tracked = {frame for first, last in read_people(listing_path).people[entry.number - 1].frames
                   for frame in range(first, last + 1)}
        assert tracked == valid


def test_person_n_with_the_people_file_follows_the_looks_it_holds_without_searching_again(demo, edited, tmp_path):
    listing_path = tmp_path / "who.people.json"
    backend("people", edited, "-o", listing_path, check=True)
    document = json.loads(listing_path.read_text())
    assert all(len(person["looks"]) >= 1 and len(person["looks"][0]) == 128 for person in document["people"])
    out = tmp_path / "second.sheap.safetensors"
    args = ("reconstruct", edited, "-o", out, "--flame", demo / "flame.safetensors", "--weights",
            demo / "demo_sheap_model.pt", "--batch-size", "8", "--people", "2", "--people-file", listing_path)
    backend(*args, check=True)
    assert np.flatnonzero(read_result(out).valid).tolist() == whose_frames("astronaut")
    # the file is what is read: with person 2's looks swapped for person 3's, person 2 is the cameraman
    people = document["people"]
    people[1]["looks"], people[2]["looks"] = people[2]["looks"], people[1]["looks"]
    listing_path.write_text(json.dumps(document))
    backend(*args, check=True)
    assert np.flatnonzero(read_result(out).valid).tolist() == whose_frames("cameraman")


def test_a_people_file_of_another_frame_range_is_one_line(demo, edited, tmp_path):
    listing_path = tmp_path / "who.people.json"
    backend("people", edited, "-o", listing_path, "--end", "40", check=True)
    out = tmp_path / "x.sheap.safetensors"
    completed = backend("reconstruct", edited, "-o", out, "--flame", demo / "flame.safetensors", "--weights",
                        demo / "demo_sheap_model.pt", "--people", "1", "--people-file", listing_path)
    assert completed.returncode == 2 and not out.exists()
    lines = completed.stderr.strip().splitlines()
    assert "frames 0-39" in lines[-1] and str(listing_path) in lines[-1]
