"""Finding and following a real face in ordinary footage, through the real `reconstruct` command.

The faces are real people from public-domain portraits (scikit-image's astronaut and cameraman,
his head turned three-quarters; Grace Hopper from matplotlib's sample data), placed small or at
interview size in wide 1080p, 4K and portrait
frames over real photographs, moving with a known motion; two people; a hard cut; a face that
leaves and comes back. Each crop is compared with the crop of the same face in a close-up (the
portrait itself) carried through the known motion: same centre within 5% of the box, same size
within 10%.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from backend_command import backend

from backend.standins.clip import (
    ASTRONAUT_FACE_CENTRE,
    ASTRONAUT_FACE_PX,
    PORTRAITS,
    FaceInShot,
    Shot,
    write_scene_clip,
)
from sheap_blender.core.result.result_format import Result, read_result

CENTRE_TOLERANCE = 0.05  # of the box size
SIZE_TOLERANCE = 0.10


def run(demo: Path, footage: Path, out_dir: Path, *extra: str) -> tuple[Result, str]:
    out = out_dir / f"{footage.stem}.sheap.safetensors"
    completed = backend("reconstruct", footage, "-o", out, "--flame", demo / "flame.safetensors", "--weights",
                        demo / "demo_sheap_model.pt", "--batch-size", "8", *extra)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return read_result(out), completed.stdout + completed.stderr


@pytest.fixture(scope="module")
def close_up_boxes(demo, tmp_path_factory) -> dict[str, np.ndarray]:
    """Per person, the crop box of the face in the close-up portrait, portrait pixels."""
    folder = tmp_path_factory.mktemp("close_up")
    boxes = {}
    for person, portrait in PORTRAITS.items():
        path = folder / f"{person}.png"
        cv2.imwrite(str(path), cv2.cvtColor(portrait.image(), cv2.COLOR_RGB2BGR))
        result, _ = run(demo, path, folder)
        assert result.valid.all()
        boxes[person] = result.params["crop_box"][0].astype(np.float64)
    return boxes


@pytest.fixture(scope="module")
def close_up_box(close_up_boxes) -> np.ndarray:
    """The crop box of the astronaut's face in the close-up portrait, portrait pixels."""
    return close_up_boxes["astronaut"]


def test_the_close_up_crop_is_sheaps_box(close_up_box):
    """Against the portrait's own geometry (its face's landmarks span ASTRONAUT_FACE_PX, centred at
    ASTRONAUT_FACE_CENTRE): SHeaP's box is 1.9 x that extent, its centre moved up by a quarter of it."""
    size = close_up_box[2] - close_up_box[0]
    centre = (close_up_box[:2] + close_up_box[2:]) / 2
    assert size == pytest.approx(1.9 * ASTRONAUT_FACE_PX, rel=0.04)
    expected_centre = np.array(ASTRONAUT_FACE_CENTRE) - [0, 0.25 * ASTRONAUT_FACE_PX]
    assert np.linalg.norm(centre - expected_centre) < 0.03 * size


def expected_boxes(motion: list[list], face: int, close_up: np.ndarray) -> np.ndarray:
    """(F, 3): centre x, centre y, size of the close-up's box carried by face `face`'s motion on each frame."""
    matrices = np.array([frame[face] for frame in motion])
    centre = (close_up[:2] + close_up[2:]) / 2
    centres = np.einsum("fij,j->fi", matrices[:, :, :2], centre) + matrices[:, :, 2]
    scales = np.sqrt(np.abs(np.linalg.det(matrices[:, :, :2])))
    return np.column_stack([centres, scales * (close_up[2] - close_up[0])])


def crop_errors(boxes: np.ndarray, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: centre error in units of the expected size, relative size error."""
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    sizes = boxes[:, 2] - boxes[:, 0]
    return (np.linalg.norm(centres - expected[:, :2], axis=1) / expected[:, 2],
            np.abs(sizes - expected[:, 2]) / expected[:, 2])


def motion_of(clip: Path) -> list[list]:
    return json.loads(Path(f"{clip}.motion.json").read_text())["frames"]


@pytest.mark.parametrize("name, size, face", [
    ("wide_1080p", (1920, 1080), FaceInShot(0.25, 0.45, 64, pan=(0.3, 0.08), zoom=0.3)),
    ("wide_4k", (3840, 2160), FaceInShot(0.7, 0.35, 72, pan=(-0.15, 0.1), zoom=-0.15)),
    ("portrait_phone", (1080, 1920), FaceInShot(0.45, 0.3, 96, pan=(0.1, 0.15), zoom=0.2)),
    ("qcif_close_up", (176, 144), FaceInShot(0.5, 0.6, 60, pan=(0.08, 0.0), zoom=0.1)),
])
def test_a_small_moving_face_is_found_and_cropped_as_in_a_close_up(demo, tmp_path, close_up_box, name, size, face):
    frames = 16 if size[0] > 2000 else 30
    clip = write_scene_clip(tmp_path / f"{name}.mp4", size, [Shot(frames, [face])])
    result, _ = run(demo, clip, tmp_path)
    assert result.valid.mean() >= 0.95, result.valid
    centre_error, size_error = crop_errors(result.params["crop_box"], expected_boxes(motion_of(clip), 0, close_up_box))
    assert centre_error.max() < CENTRE_TOLERANCE, centre_error.max()
    assert size_error.max() < SIZE_TOLERANCE, size_error.max()
    assert np.all(result.extra["segment"] == 0)
    assert json.loads(result.metadata["cuts"]) == []
    assert result.extra["confidence"][result.valid].min() > 0.5  # the detector's score, not a share of points


@pytest.mark.parametrize("name, size, face", [
    ("interview_1080p", (1920, 1080), FaceInShot(0.3, 0.4, 200, pan=(0.1, 0.03), zoom=0.25, person="hopper")),
    ("interview_4k", (3840, 2160), FaceInShot(0.62, 0.42, 420, pan=(-0.08, 0.02), zoom=-0.2, person="hopper")),
    ("vlog_portrait", (1080, 1920), FaceInShot(0.5, 0.35, 330, pan=(0.05, 0.04), zoom=0.15, person="hopper")),
    ("presenter_1080p", (1920, 1080), FaceInShot(0.6, 0.42, 230, pan=(-0.1, 0.0), zoom=0.2)),
    # a head turned three-quarters (the cameraman looks to his left), grey, small: 1080p and 4K
    ("three_quarter_1080p", (1920, 1080), FaceInShot(0.55, 0.4, 110, pan=(-0.1, 0.02), zoom=0.2, person="cameraman")),
    ("three_quarter_4k", (3840, 2160), FaceInShot(0.3, 0.6, 90, pan=(0.08, -0.03), zoom=0.15, person="cameraman")),
])
def test_an_interview_sized_face_is_cropped_as_in_a_close_up(demo, tmp_path, close_up_boxes, name, size, face):
    """Faces of 200-420 px, as interviews and vlogs frame them, and a head turned three-quarters: the
    crop of the first frame (the whole-frame search's landmarks) as accurate as the followed ones, for
    three different people."""
    frames = 12 if size[0] > 2000 else 24
    clip = write_scene_clip(tmp_path / f"{name}.mp4", size, [Shot(frames, [face])])
    result, _ = run(demo, clip, tmp_path, "--smooth", "0")
    assert result.valid.all(), result.valid
    expected = expected_boxes(motion_of(clip), 0, close_up_boxes[face.person])
    centre_error, size_error = crop_errors(result.params["crop_box"], expected)
    assert centre_error.max() < CENTRE_TOLERANCE, centre_error
    assert size_error.max() < SIZE_TOLERANCE, size_error


def test_two_different_people_the_chosen_one_is_followed(demo, tmp_path, close_up_boxes):
    """Grace Hopper (larger, left) and the astronaut (right): the largest by default, the point's otherwise."""
    hopper = FaceInShot(0.3, 0.42, 190, pan=(0.06, 0.0), zoom=0.1, person="hopper")
    astronaut = FaceInShot(0.74, 0.5, 120, pan=(-0.05, -0.02), zoom=0.3)
    clip = write_scene_clip(tmp_path / "two_different.mp4", (1920, 1080), [Shot(24, [hopper, astronaut])])
    for option, followed in ((None, 0), ("0.74,0.5", 1)):
        result, _ = run(demo, clip, tmp_path, *(() if option is None else ("--face", option)))
        assert result.valid.all()
        expected = expected_boxes(motion_of(clip), followed, close_up_boxes[("hopper", "astronaut")[followed]])
        centre_error, size_error = crop_errors(result.params["crop_box"], expected)
        assert centre_error.max() < CENTRE_TOLERANCE and size_error.max() < SIZE_TOLERANCE, (option, centre_error)


def test_a_cat_is_not_taken_for_the_largest_person(demo, tmp_path, close_up_box):
    """Over a photograph of a cat, the face mesh also sees a face 18 times the person's size (the
    detector scores it 0.5, a person 0.9): the largest face is the person's."""
    face = FaceInShot(0.2, 0.45, 45, pan=(0.04, 0.0), zoom=0.2)
    clip = write_scene_clip(tmp_path / "cat.mp4", (1920, 1080), [Shot(16, [face], background="chelsea")])
    result, _ = run(demo, clip, tmp_path)
    assert result.valid.all()
    centre_error, size_error = crop_errors(result.params["crop_box"], expected_boxes(motion_of(clip), 0, close_up_box))
    assert centre_error.max() < CENTRE_TOLERANCE and size_error.max() < SIZE_TOLERANCE, (centre_error, size_error)


@pytest.fixture(scope="module")
def two_people(tmp_path_factory) -> Path:
    """Two people side by side; the one on the right starts larger, the left one grows past it."""
    folder = tmp_path_factory.mktemp("two")
    left = FaceInShot(0.3, 0.45, 100, pan=(0.05, 0.0), zoom=1.0)
    right = FaceInShot(0.72, 0.45, 150, pan=(-0.02, 0.03), zoom=-0.3, mirror=True)
    return write_scene_clip(folder / "two_people.mp4", (1920, 1080), [Shot(30, [left, right])])


@pytest.mark.parametrize("face_option, followed", [(None, 1), ("0.3,0.45", 0), ("0.75,0.5", 1)])
def test_the_chosen_person_is_followed_throughout(demo, tmp_path, close_up_box, two_people, face_option, followed):
    extra = () if face_option is None else ("--face", face_option)
    result, _ = run(demo, two_people, tmp_path, *extra)
    assert result.valid.all()
    centre_error, size_error = crop_errors(result.params["crop_box"],
                                           expected_boxes(motion_of(two_people), followed, close_up_box))
    assert centre_error.max() < CENTRE_TOLERANCE and size_error.max() < SIZE_TOLERANCE, (centre_error, size_error)
    chosen = json.loads(result.metadata["followed_face"])
    assert chosen["rule"] == ("largest" if face_option is None else "point") and chosen["frame"] == 0
    if face_option:
        assert chosen["point"] == [float(v) for v in face_option.split(",")]


def test_a_hard_cut_starts_a_new_segment_with_an_accurate_crop(demo, tmp_path, close_up_box):
    shots = [Shot(20, [FaceInShot(0.3, 0.4, 110, pan=(0.06, 0.0))]),
             Shot(20, [FaceInShot(0.66, 0.55, 150, pan=(-0.05, 0.02))], background="coffee")]
    clip = write_scene_clip(tmp_path / "cut.mp4", (1920, 1080), shots)
    result, _ = run(demo, clip, tmp_path, "--smooth", "0.5")
    assert result.valid.all()
    assert result.extra["segment"].tolist() == [0] * 20 + [1] * 20
    assert json.loads(result.metadata["cuts"]) == [20]
    centre_error, size_error = crop_errors(result.params["crop_box"], expected_boxes(motion_of(clip), 0, close_up_box))
    # the frames right after the cut as accurate as any: no smoothing carried the old place across
    assert centre_error.max() < CENTRE_TOLERANCE and size_error.max() < SIZE_TOLERANCE, (centre_error, size_error)


def test_after_a_cut_the_person_is_told_from_another_by_their_looks(demo, tmp_path, close_up_boxes):
    """Grace Hopper alone, then a cut to a two-shot where the astronaut stands where she was, at her size,
    and she is elsewhere, smaller: the person followed is still Grace Hopper (her looks), not whoever
    took her place."""
    shots = [Shot(36, [FaceInShot(0.3, 0.42, 170, pan=(0.04, 0.0), person="hopper")]),
             Shot(16, [FaceInShot(0.32, 0.45, 165, pan=(0.02, 0.0)),
                       FaceInShot(0.74, 0.4, 115, pan=(-0.03, 0.01), person="hopper")], background="coffee")]
    clip = write_scene_clip(tmp_path / "two_shot.mp4", (1920, 1080), shots)
    result, _ = run(demo, clip, tmp_path)
    assert result.valid.all() and result.extra["identified"].all()  # recognised: her frames all make her shape
    assert result.extra["segment"].tolist() == [0] * 36 + [1] * 16
    motion = motion_of(clip)
    expected = np.concatenate([expected_boxes(motion[:36], 0, close_up_boxes["hopper"]),
                               expected_boxes(motion[36:], 1, close_up_boxes["hopper"])])
    centre_error, size_error = crop_errors(result.params["crop_box"], expected)
    assert centre_error.max() < CENTRE_TOLERANCE and size_error.max() < SIZE_TOLERANCE, (centre_error, size_error)


def test_a_shot_of_another_person_alone_is_a_gap(demo, tmp_path):
    """Grace Hopper, a cut to the astronaut alone, a cut back to Hopper: the astronaut never drives the
    rig (her frames are a gap, valid 0), and Hopper is recognised again after it."""
    hopper = dict(person="hopper", pan=(0.03, 0.0))
    shots = [Shot(36, [FaceInShot(0.35, 0.42, 170, **hopper)]),
             Shot(16, [FaceInShot(0.6, 0.45, 160, pan=(-0.02, 0.0))], background="coffee"),
             Shot(16, [FaceInShot(0.4, 0.45, 150, **hopper)], background="coffee")]
    clip = write_scene_clip(tmp_path / "another.mp4", (1920, 1080), shots)
    result, _ = run(demo, clip, tmp_path)
    assert result.valid.tolist() == [True] * 36 + [False] * 16 + [True] * 16
    assert (result.extra["identified"] == result.valid).all()
    assert result.extra["segment"][52] != result.extra["segment"][35]
    assert json.loads(result.metadata["cuts"]) == [36, 52]


def test_someone_passing_in_front_is_not_taken_for_the_person(demo, tmp_path, close_up_boxes):
    """The astronaut walks past in front of Grace Hopper, hiding her, and moves on through where she
    was: while she is hidden no face is hers, and she is found again once visible (not the passer-by,
    who by then stands where she was last seen: they look like the other person seen in the shot)."""
    shots = [Shot(30, [FaceInShot(0.5, 0.55, 140, person="hopper"), FaceInShot(0.2, 0.3, 120, pan=(0.6, 0.0))])]
    clip = write_scene_clip(tmp_path / "passing.mp4", (1920, 1080), shots)
    result, _ = run(demo, clip, tmp_path)
    expected = expected_boxes(motion_of(clip), 0, close_up_boxes["hopper"])
    centre_error, _ = crop_errors(result.params["crop_box"], expected)
    assert result.valid[:5].all() and result.valid[-6:].all() and not result.valid.all()  # hidden, then found
    assert centre_error[result.valid].max() < 0.1, centre_error  # never the passer-by (2 face sizes away)


def test_a_face_that_leaves_and_comes_back_is_found_again(demo, tmp_path, close_up_box):
    shots = [Shot(12, [FaceInShot(0.4, 0.4, 90)]),
             Shot(12, []),  # the same room, nobody in it
             Shot(12, [FaceInShot(0.55, 0.5, 100)])]
    clip = write_scene_clip(tmp_path / "away.mp4", (1920, 1080), shots)
    result, _ = run(demo, clip, tmp_path)
    assert result.valid.tolist() == [True] * 12 + [False] * 12 + [True] * 12  # never filled by an old crop
    segments = result.extra["segment"]
    assert len(set(segments[:12])) == 1 and len(set(segments[24:])) == 1 and segments[24] > segments[11]
    present = result.valid
    centre_error, size_error = crop_errors(result.params["crop_box"][present],
                                           expected_boxes([m for m in motion_of(clip) if m], 0, close_up_box))
    assert centre_error.max() < CENTRE_TOLERANCE and size_error.max() < SIZE_TOLERANCE


def test_no_face_anywhere_names_the_file_its_size_and_the_smallest_face(demo, tmp_path):
    clip = write_scene_clip(tmp_path / "empty_room.mp4", (1280, 720), [Shot(8, [])])
    out = tmp_path / "empty.sheap.safetensors"
    completed = backend("reconstruct", clip, "-o", out, "--flame", demo / "flame.safetensors", "--weights",
                        demo / "demo_sheap_model.pt")
    assert completed.returncode == 2 and not out.exists()
    message = completed.stderr.strip().splitlines()[-1]
    assert str(clip) in message and "1280x720" in message and "px" in message


@pytest.mark.parametrize("bad", ["0.5", "1.2,0.5", "a,b", "0.1,0.2,0.3", "nan,0.5"])
def test_a_bad_face_point_is_one_line(demo, tmp_path, bad):
    out = tmp_path / "x.sheap.safetensors"
    completed = backend("reconstruct", demo / "astronaut.mp4", "-o", out, "--flame", demo / "flame.safetensors",
                        "--weights", demo / "demo_sheap_model.pt", "--face", bad)
    assert completed.returncode == 2 and not out.exists()
    assert len(completed.stderr.strip().splitlines()) == 1 and "face point" in completed.stderr


def test_while_the_followed_person_is_away_the_other_is_never_taken(demo, tmp_path, close_up_box):
    """Two people; the followed one (the larger) leaves for 20 frames while the other stays in view."""
    followed, other = FaceInShot(0.3, 0.45, 140), FaceInShot(0.7, 0.45, 110, person="hopper")
    clip = write_scene_clip(tmp_path / "away_two.mp4", (1920, 1080),
                            [Shot(15, [followed, other]), Shot(20, [other]), Shot(15, [followed, other])])
    result, _ = run(demo, clip, tmp_path)
    assert result.valid.tolist() == [True] * 15 + [False] * 20 + [True] * 15
    motion = [frame[0] for frame in motion_of(clip) if len(frame) == 2]  # the followed face's frames
    centre_error, size_error = crop_errors(result.params["crop_box"][result.valid],
                                           expected_boxes([[m] for m in motion], 0, close_up_box))
    assert centre_error.max() < CENTRE_TOLERANCE and size_error.max() < SIZE_TOLERANCE


def test_a_face_found_again_far_away_starts_a_new_segment(demo, tmp_path, close_up_box):
    """The same set re-framed: the background unchanged, the face now elsewhere and larger. The picture
    barely changes (no cut is seen), the follow fails, the search finds the face far away: a new
    segment starts there, so no crop is smoothed across the two places."""
    shots = [Shot(20, [FaceInShot(0.25, 0.45, 110, pan=(0.02, 0.0))]),
             Shot(20, [FaceInShot(0.7, 0.5, 150, pan=(-0.02, 0.0))])]
    clip = write_scene_clip(tmp_path / "reframed.mp4", (1920, 1080), shots)
    result, _ = run(demo, clip, tmp_path, "--smooth", "0.5")
    assert result.valid.all()
    segments = result.extra["segment"]
    assert len(set(segments[:20])) == 1 and len(set(segments[20:])) == 1 and segments[20] != segments[19]
    assert 20 in json.loads(result.metadata["cuts"])
    centre_error, size_error = crop_errors(result.params["crop_box"], expected_boxes(motion_of(clip), 0, close_up_box))
    assert centre_error.max() < CENTRE_TOLERANCE and size_error.max() < SIZE_TOLERANCE, (centre_error, size_error)


def test_a_whip_pan_at_24_fps_is_one_segment(demo, tmp_path, close_up_box):
    """A head moving 0.9 of its size between two frames at 24 fps: fast, but no faster per second than a
    jump of 0.72 at 30 fps, where 0.8 is allowed. The limits are set per second: one segment, no cut."""
    face = FaceInShot(0.2, 0.45, 110, pan=(0.6, 0.0))
    clip = write_scene_clip(tmp_path / "whip_24.mp4", (1920, 1080), [Shot(12, [face])], fps=24.0)
    centres = expected_boxes(motion_of(clip), 0, close_up_box)[:, :2]
    step = np.linalg.norm(np.diff(centres, axis=0), axis=1).mean() / 110
    assert 0.8 < step < 1.0, step  # the premise: beyond the 30 fps limit, within the 24 fps one
    result, _ = run(demo, clip, tmp_path)
    assert result.valid.all()
    assert set(result.extra["segment"].tolist()) == {0} and json.loads(result.metadata["cuts"]) == []


def test_the_per_frame_limits_are_set_per_second():
    from backend.people.tracker import MAX_FIRST_STEP, MAX_SCALE_STEP, MAX_STEP, REFERENCE_FPS, FaceTracker

    with FaceTracker(REFERENCE_FPS) as reference, FaceTracker(60.0) as fast, FaceTracker(24.0) as slow:
        assert reference.max_step == MAX_STEP and reference.max_scale_step == MAX_SCALE_STEP
        assert fast.max_step == pytest.approx(MAX_STEP / 2) and fast.max_first_step == pytest.approx(MAX_FIRST_STEP / 2)
        assert slow.max_step == pytest.approx(MAX_STEP * 1.25)
        assert fast.max_scale_step == pytest.approx(MAX_SCALE_STEP ** 0.5)
