"""One face, one person (backend.people.claims): a face two people's results both hold goes to the nearer one.

Real faces (Grace Hopper and the astronaut, public-domain portraits) side by side in a real-photo
shot, recognised by the real network; the two results' claims are made up so that one of them holds
the other person's face on some frames, as a follow between two checks can.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backend.faces.landmarks import Landmarker
from backend.faces.search import FaceSearch
from backend.footage.reader import open_footage
from backend.identity.face_recognition import shared_recognizer
from backend.identity.gallery import Identity
from backend.people.claims import Claim, contested, give_up, overlap, settle
from backend.standins.clip import PORTRAITS, FaceInShot, Shot, write_scene_clip
from sheap_blender.core.result.result_format import Result

FRAMES = 30
PEOPLE = [("hopper", 0.3, 190), ("astronaut", 0.7, 180)]


@pytest.fixture(scope="module")
def two_shot(tmp_path_factory) -> Path:
    faces = [FaceInShot(x, 0.45, px, pan=(0.02, 0.0), person=person) for person, x, px in PEOPLE]
    return write_scene_clip(tmp_path_factory.mktemp("claims") / "two.mp4", (1280, 720), [Shot(FRAMES, faces)])


def boxes_of(clip: Path, face: int) -> np.ndarray:
    """(F, 4) the crop box (1.9 x the landmarks' extent, a quarter above) of face `face` on each frame."""
    motion = json.loads(Path(f"{clip}.motion.json").read_text())["frames"]
    portrait = PORTRAITS[PEOPLE[face][0]]
    matrices = np.array([frame[face] for frame in motion])
    centre = np.array(portrait.face_centre) - [0, 0.25 * portrait.face_px]
    centres = np.einsum("fij,j->fi", matrices[:, :, :2], centre) + matrices[:, :, 2]
    sides = np.sqrt(np.abs(np.linalg.det(matrices[:, :, :2]))) * 1.9 * portrait.face_px
    return np.column_stack([centres - sides[:, None] / 2, centres + sides[:, None] / 2])


@pytest.fixture(scope="module")
def identities(two_shot) -> list[Identity]:
    """Each person's look, from the clip's first frame (faces left to right)."""
    footage = open_footage(two_shot)
    rgb = footage.read_frames([0])[0]
    landmarker = Landmarker()
    try:
        faces = sorted(FaceSearch(landmarker).find(rgb), key=lambda face: face.centre[0])
    finally:
        landmarker.close()
    assert len(faces) == 2
    return [Identity(look[None]) for look in shared_recognizer().embed(rgb, faces)]


@pytest.mark.parametrize("wrong", [1, 2])
def test_a_face_held_by_two_results_goes_to_the_person_it_is(two_shot, identities, wrong):
    """Person `wrong`'s result holds the other person's face on frames 8-19: those frames are theirs to give up."""
    boxes = [boxes_of(two_shot, 0), boxes_of(two_shot, 1)]
    right = 3 - wrong
    held = boxes[wrong - 1].copy()
    held[8:20] = boxes[right - 1][8:20]  # slid onto the other face, then back
    claims = [Claim(number, identities[number - 1], held if number == wrong else boxes[number - 1],
                    np.ones(FRAMES, bool), np.ones(FRAMES, bool)) for number in (1, 2)]
    assert [run.tolist() for _, _, run in contested(claims)] == [list(range(8, 20))]
    lost = settle(open_footage(two_shot), 0, claims, shared_recognizer().embed)
    assert np.flatnonzero(lost[wrong]).tolist() == list(range(8, 20))
    assert not lost[right].any()


def test_two_people_side_by_side_contest_nothing(two_shot, identities):
    claims = [Claim(number, identities[number - 1], boxes_of(two_shot, number - 1), np.ones(FRAMES, bool),
                    np.ones(FRAMES, bool)) for number in (1, 2)]
    assert contested(claims) == []
    assert overlap(claims[0].boxes, claims[0].boxes) == pytest.approx(np.ones(FRAMES))


def test_a_result_gives_up_frames_as_gaps_filled_from_its_own_segment():
    frames = 10
    pose = np.zeros((frames, 3), np.float32)
    pose[:, 0] = 0.01 * np.arange(frames)  # radians: the head turning slowly
    pose[4:6, 0] = 0.5  # the other face's pose on frames 4 and 5
    result = Result(np.arange(frames), np.ones(frames, bool),
                    {"neck_pose": pose.copy(), "shape": np.ones((frames, 300), np.float32)},
                    {"segment": np.zeros(frames, np.int32), "identified": np.ones(frames, np.uint8),
                     "confidence": np.ones(frames, np.float32)})
    lost = np.zeros(frames, bool)
    lost[4:6] = True
    give_up(result, lost)
    assert result.valid.tolist() == [True] * 4 + [False] * 2 + [True] * 4
    assert result.params["neck_pose"][4:6, 0] == pytest.approx([0.04, 0.05], abs=0.003)  # from frames 3 and 6
    assert result.extra["identified"][4:6].tolist() == [0, 0] and (result.params["shape"] == 1).all()
