"""A person's identity held over long edited footage, through the real `reconstruct` command.

Edits made from real photographs (public-domain portraits: Grace Hopper, the astronaut Eileen Collins;
backend.standins.clip): a slow cross-dissolve from the person into a stranger standing where the
person stood, the stranger for eight seconds, and a cut back to the person in another light, seen
mirrored, elsewhere and smaller (the same photograph re-framed and re-lit: no second freely licensed
photograph of either woman is shipped with an installed package). Faces are 170-210 px: found and
described far from any threshold of the search.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_following import run

from backend.faces.landmarks import Detection
from backend.people.tracker import FaceTracker
from backend.standins.clip import FaceInShot, Shot, write_scene_clip

FPS = 25.0
PERSON_ALONE, DISSOLVE, STRANGER, RETURN = 50, 50, 200, 75  # frames: 2 s, 2 s, 8 s, 3 s


@pytest.fixture(scope="module")
def dissolve(tmp_path_factory) -> Path:
    shots = [Shot(PERSON_ALONE + DISSOLVE, [FaceInShot(0.45, 0.45, 210, pan=(0.02, 0.0), person="hopper")]),
             Shot(DISSOLVE + STRANGER, [FaceInShot(0.47, 0.45, 210, pan=(-0.03, 0.01), person="astronaut")],
                  dissolve=DISSOLVE),
             Shot(RETURN, [FaceInShot(0.62, 0.5, 170, pan=(-0.03, 0.0), mirror=True, light=0.6, person="hopper")],
                  background="coffee")]
    return write_scene_clip(tmp_path_factory.mktemp("dissolve") / "dissolve.mp4", (1280, 720), shots, fps=FPS)


def test_a_stranger_dissolved_in_never_drives_the_rig_and_the_person_is_recognised_on_return(demo, dissolve, tmp_path):
    result, _ = run(demo, dissolve, tmp_path)
    valid = result.valid
    start = PERSON_ALONE + DISSOLVE
    stranger = valid[start:start + STRANGER]
    assert valid[:PERSON_ALONE].all()  # the person, before the dissolve
    assert stranger.mean() <= 0.10 and not stranger[round(FPS):].any(), np.flatnonzero(stranger)
    back = valid[start + STRANGER:]
    assert back.mean() >= 0.9 and result.extra["identified"][start + STRANGER:][back].all()
    # the follow ended within the dissolve: a gap between, never one segment from the person to the stranger
    assert result.extra["segment"][start + STRANGER:][back].min() > result.extra["segment"][0]


def test_a_small_first_face_then_a_close_up_of_the_person_is_followed_in_the_close_up(demo, tmp_path):
    """The astronaut small in a wide shot (40 px), then a cut to her close-up. Found in the wide shot or
    not (40 px is near the face finder's reach, which moves with the CPU), the close-up is hers: found,
    her small look is the gallery's anchor and recognises her; not found, the close-up is the first face."""
    shots = [Shot(20, [FaceInShot(0.3, 0.5, 40, pan=(0.02, 0.0))]),
             Shot(20, [FaceInShot(0.55, 0.45, 200, pan=(-0.02, 0.0))], background="coffee")]
    clip = write_scene_clip(tmp_path / "small_first.mp4", (1280, 720), shots, fps=FPS)
    result, _ = run(demo, clip, tmp_path)
    assert result.valid[20:].all()


def square_face(x: float, y: float, size: float) -> Detection:
    """A face's 68 landmarks spread over a square of `size` px centred at (x, y)."""
    corners = np.array([[x - size / 2, y - size / 2], [x + size / 2, y + size / 2]])
    return Detection(np.repeat(corners, 34, axis=0), 0.95)


def test_a_face_too_small_to_recognise_is_found_again_only_within_reach_even_with_nobody_else_seen():
    """Lost for a tenth of a second, a 20 px face may have moved 1.4 face sizes: a face 10 sizes away is
    somebody else, whether or not another person was seen in the shot; one 1 size away is it."""
    with FaceTracker(30.0) as tracker:
        tracker._last_seen, tracker._last_seen_frame, tracker._frame = square_face(500, 300, 20), 0, 3
        assert tracker._others == []
        assert tracker._reacquire_by_place([square_face(700, 300, 20)]) is None
        near = square_face(520, 300, 20)
        assert tracker._reacquire_by_place([square_face(700, 300, 20), near]) is near
