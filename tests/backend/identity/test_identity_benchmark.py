"""The held-out measurement of benchmarks/identity_distances.py and the photo set's grouping, on known inputs."""

from __future__ import annotations

import numpy as np

from benchmarks.face_photo_set import deepface_people
from benchmarks.identity_distances import RULE_FAR, chosen_threshold, nearest_look, subset


def entry(people: list[str], points: list[float]) -> dict:
    """Photographs whose descriptors lie on a line: distance = difference of `points`."""
    descriptors = np.zeros((len(points), 128), np.float32)
    descriptors[:, 0] = points
    return {"people": people, "photos": [f"{p}/{i}" for i, p in enumerate(people)], "turned": [False] * len(people),
            "size": [100.0] * len(people), "descriptors": descriptors}


def test_a_photo_is_never_its_own_nearest_look_and_people_with_one_photo_are_only_strangers():
    photos = entry(["a", "a", "b", "c"], [0.0, 0.3, 1.0, 3.0])
    same, others = nearest_look(photos, photos)
    assert sorted(same.round(6)) == [0.3, 0.3]  # a's two photos, each against the other (not itself: 0)
    # every photo against every other person: a vs b, c; b vs a, c; c vs a, b
    assert sorted(others.round(6)) == sorted([1.0, 3.0, 0.7, 2.7, 0.7, 2.0, 2.7, 2.0])


def test_the_threshold_is_the_largest_at_which_strangers_pass_at_most_as_often_as_the_rule_allows():
    different = np.linspace(0.6, 1.6, 10_000)  # a stranger at 0.6 or more
    picked = chosen_threshold(np.array([0.4]), different)
    assert (different <= picked).mean() <= RULE_FAR < (different <= picked + 0.005).mean()


def test_subset_keeps_whole_people():
    photos = entry(["a", "b", "a", "c"], [0.0, 1.0, 2.0, 3.0])
    kept = subset(photos, {"a", "c"})
    assert kept["people"] == ["a", "a", "c"] and kept["descriptors"][:, 0].tolist() == [0.0, 2.0, 3.0]


def test_deepface_photos_joined_by_same_person_pairs_are_one_person(tmp_path):
    for name in ("img1.jpg", "img2.jpg", "img3.jpg", "img4.jpg", "couple.jpg"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "master.csv").write_text("file_x,file_y,Decision\nimg3.jpg,img2.jpg,Yes\nimg1.jpg,img4.jpg,No\n")
    (tmp_path / "face-recognition-pivot.csv").write_text("file_x,file_y,decision\nx/img4.jpg,x/img3.jpg,Yes\n")
    people = {name: sorted(p.name for p in photos) for name, photos in deepface_people(tmp_path).items()}
    assert people == {"deepface_img1": ["img1.jpg"], "deepface_img2": ["img2.jpg", "img3.jpg", "img4.jpg"]}
