"""Grouping sightings into people (backend.faces.people.group) and a person's gallery (identity.Identity).

Descriptors here are made up (points in the 128-d space at known distances), so that each rule is
tested on its own: the recognition itself is tested on real photographs in test_recognition.py.
"""

from __future__ import annotations

import numpy as np

from backend.faces.identity import GALLERY, SAME_PERSON, Identity, distances
from backend.faces.landmarks import Detection
from backend.faces.people import Person, Sighting, group

RNG = np.random.default_rng(7)
FACE = Detection(np.zeros((68, 2)), 0.95)
THUMB = np.zeros((4, 4, 3), np.uint8)


def centre() -> np.ndarray:
    """A person's look: a random point; two of them lie ~1.4 x (far beyond SAME_PERSON) apart."""
    vector = RNG.normal(size=128)
    return vector / np.linalg.norm(vector)


def near(look: np.ndarray, distance: float) -> np.ndarray:
    """A descriptor exactly `distance` from `look`."""
    direction = RNG.normal(size=128)
    direction -= direction @ look * look
    return look + distance * direction / np.linalg.norm(direction)


def seen(frame: int, *descriptors: np.ndarray) -> list[Sighting]:
    return [Sighting(frame, FACE, descriptor.astype(np.float32), THUMB) for descriptor in descriptors]


def test_distances_are_euclidean():
    a, b = centre(), centre()
    table = distances(np.stack([a, b]), np.stack([a, b, a]))
    assert table.shape == (2, 3)
    assert np.allclose(table, [[0, np.linalg.norm(a - b), 0], [np.linalg.norm(a - b), 0, np.linalg.norm(a - b)]])


def test_a_face_is_the_persons_within_the_threshold_of_their_nearest_look():
    look = centre()
    person = Identity(np.stack([look, near(look, 0.3)]))
    candidates = np.stack([near(look, SAME_PERSON * 0.9), near(look, SAME_PERSON * 1.1), centre()])
    assert person.matches(candidates).tolist() == [True, False, False]
    assert person.best(candidates) == 0
    assert person.best(candidates[1:]) is None  # nobody's: never the least unlike stranger
    assert Identity().best(candidates) is None  # nothing known: nobody is recognised


def test_the_gallery_keeps_looks_from_across_the_clip():
    first = centre()
    person = Identity()
    for index in range(GALLERY * 3):
        person.add(first if index == 0 else near(first, 0.01 * (index % 40)))
    assert len(person) <= GALLERY
    assert np.allclose(person.descriptors[0], first)  # the oldest look survives thinning


def test_two_people_across_shots_are_two_groups_and_each_keeps_their_frames():
    alice, bob = centre(), centre()
    by_frame = [seen(0, near(alice, 0.2)), seen(30, near(alice, 0.3), near(bob, 0.2)),  # a two-shot
                seen(60, near(bob, 0.25)), seen(90, near(alice, 0.35))]
    people = group(by_frame)
    assert len(people) == 2
    frames = sorted(sorted(person.frames) for person in people)
    assert frames == [[0, 30, 90], [30, 60]]


def test_two_faces_of_one_frame_are_never_one_person():
    """Twins, or a reflection: as alike as one person's looks, but on one frame: two people."""
    alice = centre()
    people = group([seen(0, near(alice, 0.1), near(alice, 0.15)), seen(30, near(alice, 0.1))])
    assert len(people) == 2
    assert all(len(person.frames) == len(person.sightings) for person in people)


def test_a_person_first_seen_unlike_is_joined_when_a_later_look_bridges_them():
    """Seen small and turned (0.5 from their usual look), then close: one person once a look links them."""
    alice = centre()
    turned = near(alice, 0.5)
    by_frame = [seen(0, near(turned, 0.1)), seen(30, near(alice, 0.1)), seen(60, near(alice, 0.25))]
    people = group(by_frame)
    assert len(people) == 1 and sorted(people[0].frames) == [0, 30, 60]


def test_a_strangers_face_never_joins_the_person():
    alice = centre()
    stranger = near(alice, SAME_PERSON * 1.3)
    people = group([seen(0, alice), seen(30, stranger), seen(60, near(alice, 0.1))])
    assert len(people) == 2


def test_a_persons_identity_is_spread_over_their_sightings():
    alice = centre()
    person = Person(sightings=[s for frame in range(100) for s in seen(frame, near(alice, 0.2))])
    identity = person.identity()
    assert len(identity) == GALLERY
    assert identity.matches(near(alice, 0.2)[None])[0]
