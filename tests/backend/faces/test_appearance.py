"""Telling two real people apart by their looks (backend.faces.appearance), as the tracker does after a cut."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from backend.faces.appearance import CLEARLY_CLOSER, Appearance, aligned_face, describe, distance
from backend.faces.landmarks import Detection, Landmarker, square_box
from backend.standins.clip import PORTRAITS

FRAME = (800, 600)


@pytest.fixture(scope="module")
def landmarker():
    with_graphs = Landmarker()
    yield with_graphs
    with_graphs.close()


def photographed(person: str, face_px: float, gamma: float = 1.0, roll: float = 0.0,
                 at: tuple[float, float] = (400.0, 300.0)) -> np.ndarray:
    """The person's portrait in an 800 x 600 frame: face `face_px` across at `at`, rolled, darker or lighter."""
    portrait = PORTRAITS[person]
    image = portrait.image()
    scale = face_px / portrait.face_px
    matrix = cv2.getRotationMatrix2D(portrait.face_centre, roll, scale)
    matrix[:, 2] += np.array(at) - portrait.face_centre
    if scale < 0.95:  # as a camera sees it: no aliasing
        image = cv2.GaussianBlur(image, (0, 0), 0.5 * np.sqrt(1 / scale ** 2 - 1))
    frame = cv2.warpAffine(image, matrix, FRAME, flags=cv2.INTER_LINEAR, borderValue=(90, 90, 90))
    return (255 * (frame / 255.0) ** gamma).round().astype(np.uint8)


def face_in(landmarker: Landmarker, frame: np.ndarray, at=(400.0, 300.0), size: float = 100.0) -> Detection:
    faces = landmarker.in_region(frame, square_box(np.array(at), 2.4 * size))
    assert faces, "the mesh finds the face"
    return min(faces, key=lambda face: np.linalg.norm(face.centre - at))


CONDITIONS = [(face_px, gamma, roll) for face_px in (60, 110, 190) for gamma, roll in ((1.0, 0), (0.7, 8), (1.4, -8))]


def _looks(landmarker: Landmarker, person: str) -> list[np.ndarray]:
    return [describe(frame, face_in(landmarker, frame, size=face_px))
            for face_px, gamma, roll in CONDITIONS for frame in [photographed(person, face_px, gamma, roll)]]


def test_a_person_looks_like_themselves_across_size_light_and_roll_more_than_like_another(landmarker):
    looks = {person: _looks(landmarker, person) for person in ("astronaut", "hopper")}  # two frontal faces
    same = [distance(a, b) for shots in looks.values() for i, a in enumerate(shots) for b in shots[i + 1:]]
    other = [distance(a, b) for a in looks["astronaut"] for b in looks["hopper"]]
    assert max(same) < 0.2 and min(other) > 0.4 and min(other) - max(same) > CLEARLY_CLOSER, (max(same), min(other))


def test_a_turned_head_is_never_taken_for_another_person(landmarker):
    """The cameraman's head is turned three-quarters and partly hidden by his camera: his looks vary
    far more (up to ~0.4 between two rolls), so a clear answer is rarer, but never a wrong one. For
    every description of him as the person, and every pair (him, another person) in a new shot, the
    answer is him or none."""
    his = _looks(landmarker, "cameraman")
    others = _looks(landmarker, "astronaut") + _looks(landmarker, "hopper")
    wrong = [(i, j, k) for i, known in enumerate(his) for j, again in enumerate(his) if i != j
             for k, other in enumerate(others) if distance(known, other) + CLEARLY_CLOSER <= distance(known, again)]
    assert not wrong, wrong[:5]
    answered = sum(distance(known, again) + CLEARLY_CLOSER <= distance(known, other)
                   for i, known in enumerate(his) for j, again in enumerate(his) if i != j for other in others)
    assert answered > 0.5 * len(his) * (len(his) - 1) * len(others)  # and mostly an answer, the right one


def test_the_aligned_face_is_upright_whatever_the_roll(landmarker):
    upright = photographed("hopper", 150)
    rolled = photographed("hopper", 150, roll=12)
    a = aligned_face(upright, face_in(landmarker, upright, size=150)).astype(float)
    b = aligned_face(rolled, face_in(landmarker, rolled, size=150)).astype(float)
    unrolled = aligned_face(rolled, Detection(face_in(landmarker, rolled, size=150).landmarks68, 1.0)).astype(float)
    assert a.shape == (64, 64) and np.abs(a - b).mean() < 12  # the same picture, give or take resampling
    assert np.abs(a - unrolled).mean() < 12


def test_closest_answers_only_when_one_face_clearly_looks_like_the_person(landmarker):
    appearance = Appearance()
    seen = photographed("hopper", 160)
    appearance.add(seen, face_in(landmarker, seen, size=160))
    # a later shot: both people, the astronaut larger and nearer the middle
    frame = photographed("astronaut", 170, at=(250.0, 300.0))
    hopper = photographed("hopper", 110, gamma=0.8, at=(620.0, 280.0))
    right = np.zeros(frame.shape[:2], bool)
    right[:, 460:] = True
    frame[right] = hopper[right]
    astronaut_face = face_in(landmarker, frame, at=(250.0, 300.0), size=170)
    hopper_face = face_in(landmarker, frame, at=(620.0, 280.0), size=110)
    assert appearance.closest(frame, [astronaut_face, hopper_face]) is hopper_face
    assert appearance.closest(frame, [hopper_face, astronaut_face]) is hopper_face
    # no answer: one face only, two faces of the same person, or nothing known of the person yet
    assert appearance.closest(frame, [astronaut_face]) is None
    for shift in (0.5, 1.0, 2.0):  # the same face with its landmarks off by a pixel or two
        assert appearance.closest(frame, [hopper_face, Detection(hopper_face.landmarks68 + shift, 0.9)]) is None
    assert Appearance().closest(frame, [astronaut_face, hopper_face]) is None


def test_the_gallery_stays_bounded_and_spans_the_clip(landmarker):
    appearance = Appearance()
    frame = photographed("astronaut", 120)
    face = face_in(landmarker, frame, size=120)
    for _ in range(100):
        appearance.add(frame, face)
    assert 8 <= len(appearance) <= 16
    assert appearance.distance(frame, face) == pytest.approx(0.0, abs=1e-12)


def test_someone_else_is_relative_to_the_other_people_seen(landmarker):
    appearance = Appearance()
    her = photographed("hopper", 150)
    appearance.add(her, face_in(landmarker, her, size=150))
    him = photographed("cameraman", 130, roll=5)  # a turned head: far from her looks, and from his own
    his_face = face_in(landmarker, him, size=130)
    seen = photographed("cameraman", 100)
    others = [describe(seen, face_in(landmarker, seen, size=100))]
    assert appearance.someone_else(him, his_face, others)
    her_again = photographed("hopper", 110, gamma=1.3)
    assert not appearance.someone_else(her_again, face_in(landmarker, her_again, size=110), others)
    assert not appearance.someone_else(him, his_face, [])  # nobody else seen: no grounds to refuse
    assert not Appearance().someone_else(him, his_face, others)  # nothing known of the person
