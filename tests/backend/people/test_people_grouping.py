"""Grouping sightings into people (backend.people.find_people.group) and a person's gallery (identity.Identity).

Descriptors here are made up (points in the 128-d space at known distances), so that each rule is
tested on its own: the recognition itself is tested on real photographs in test_recognition.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from backend.faces.landmarks import Detection
from backend.identity.gallery import ANCHORS, GALLERY, LEARN, SAME_PERSON, Identity, distances
from backend.people.find_people import MAX_SIGHTINGS, Person, Sighting, group

RNG = np.random.default_rng(7)
FACE = Detection(np.zeros((68, 2)), 0.95)


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
    return [Sighting(frame, FACE, descriptor.astype(np.float32)) for descriptor in descriptors]


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


def test_the_gallery_keeps_its_anchors_and_learns_looks_spread_over_the_clip():
    first = centre()
    person = Identity(first[None])
    for frame in range(1, GALLERY * 4):
        assert person.learn(near(first, 0.01 * (frame % 30)), frame)
    assert len(person) == GALLERY
    assert np.allclose(person.anchors, first[None])  # never dropped
    kept = np.sort(person._learned_at)
    assert kept[0] == 1 and kept[-1] == GALLERY * 4 - 1  # the first and the last look learned
    even = (kept[-1] - kept[0]) / (len(kept) - 1)
    assert np.diff(kept).max() <= 2 * even  # and those between them spread over the clip, not the newest


def test_a_look_is_learned_only_close_to_an_anchor_and_never_bridges_to_a_stranger():
    """A cross-dissolve's looks drift from the person to a stranger: only those within LEARN of an
    anchor are learned, and one of them accepts only faces within LEARN: never the stranger beyond."""
    alice = centre()
    person = Identity(alice[None])
    assert not person.learn(near(alice, LEARN * 1.1), 10)
    midway = near(alice, LEARN * 0.95)
    assert person.learn(midway, 20)
    stranger = midway + (midway - alice) / np.linalg.norm(midway - alice) * LEARN * 1.15  # 0.84 beyond alice
    assert not person.matches(stranger[None])[0]
    assert person.matches(near(midway, LEARN * 0.9)[None])[0]  # a look near a learned one is hers


def test_an_empty_identity_learns_nothing():
    assert not Identity().learn(centre(), 0)


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


def test_a_persons_identity_is_anchored_on_clear_sightings_spread_over_them():
    alice = centre()
    person = Person()
    for frame in range(100):
        person.add(seen(frame, near(alice, 0.2))[0])
    identity = person.identity()
    assert len(identity) == ANCHORS
    assert identity.matches(near(alice, 0.2)[None])[0]


def test_a_person_keeps_the_clearest_sightings_and_every_frame_seen():
    alice = centre()
    person = Person()
    sizes = [30.0 + (frame * 37) % 100 for frame in range(MAX_SIGHTINGS * 3)]
    for frame, size in enumerate(sizes):
        person.add(Sighting(frame, Detection(np.array([[0, 0], [size, size]] * 34, float), 0.95), near(alice, 0.2)))
    assert len(person.sightings) == MAX_SIGHTINGS and person.seen == list(range(MAX_SIGHTINGS * 3))
    kept = sorted(sighting.face.size for sighting in person.sightings)
    assert kept == pytest.approx(sorted(sizes)[-MAX_SIGHTINGS:])
    assert [sighting.frame for sighting in person.sightings] == sorted(s.frame for s in person.sightings)


def test_a_dialogue_of_two_people_who_never_share_a_frame_stays_two():
    """Shot, reverse shot: alice, bob, alice, bob... never on one frame, and one pair of their looks
    happens to fall under the threshold: the median of their looks keeps them two."""
    alice, bob = centre(), centre()
    midway = (alice + bob) / 2
    by_frame = [seen(30 * i, near(alice if i % 2 == 0 else bob, 0.2)) for i in range(12)]
    by_frame += [seen(400, near(midway, 0.05)), seen(430, near(alice, 0.2)), seen(460, near(bob, 0.2))]
    people = group(by_frame)
    assert len(people) >= 2
    assert any({0, 60, 120} <= person.frames for person in people)
    assert not any({0, 30} <= person.frames for person in people)
