"""Real edited footage: ten seconds of "Tears of Steel" (CC BY 3.0, Blender Foundation; tests/data).

Shots, at 24 fps: a robot (frames 0-20); a wide shot of a man on a bridge, his face 35 px and
turned (21-64); a close-up of a scientist in glasses (65-184); a robot effect (185-221); a woman
looking down (222-239). Enlarged to 1080p, as a user's edit would be. The man on the bridge, the
first face seen, is the one followed: the scientist and the woman who come after the cuts are
somebody else, so their frames are gaps; `--people all` gives each of the three a result of their own.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from backend_command import backend

from sheap_blender.core.people_file import read_people
from sheap_blender.core.result_format import read_result

CLIP = Path(__file__).resolve().parents[2] / "data" / "tears_of_steel_excerpt.mp4"
BRIDGE = range(21, 65)
SCIENTIST = range(65, 185)
WOMAN = range(222, 240)


@pytest.fixture(scope="module")
def enlarged(tmp_path_factory) -> Path:
    """The excerpt enlarged to 1920 x 1080, at its 24 fps."""
    path = tmp_path_factory.mktemp("tears_of_steel") / "tears_of_steel_1080p.mp4"
    capture = cv2.VideoCapture(str(CLIP))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24.0, (1920, 1080))
    frames = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        writer.write(cv2.resize(frame, (1920, 1080), interpolation=cv2.INTER_CUBIC))
        frames += 1
    writer.release()
    assert frames == 240
    return path


def reconstruct(demo: Path, footage: Path, out: Path, *extra: str) -> None:
    backend("reconstruct", footage, "-o", out, "--flame", demo / "flame.safetensors", "--weights",
            demo / "demo_sheap_model.pt", *extra, check=True)


def test_the_first_person_is_followed_and_nobody_after_the_cuts_drives_his_rig(demo, enlarged, tmp_path):
    out = tmp_path / "bridge.sheap.safetensors"
    reconstruct(demo, enlarged, out)
    result = read_result(out)
    valid = set(np.flatnonzero(result.valid).tolist())
    assert valid and valid <= set(BRIDGE)  # his frames where his turned face is found; never the others'


def test_everyone_gets_their_own_result(demo, enlarged, tmp_path):
    reconstruct(demo, enlarged, tmp_path / "tos.sheap.safetensors", "--people", "all")
    listing = read_people(tmp_path / "tos.people.json")
    assert len(listing.people) == 3
    bridge, scientist, woman = (read_result(listing.path_of(tmp_path / "tos.people.json", person.result))
                                for person in listing.people)
    assert set(np.flatnonzero(bridge.valid).tolist()) <= set(BRIDGE)
    assert set(np.flatnonzero(scientist.valid).tolist()) <= set(SCIENTIST)
    assert scientist.valid.sum() >= 0.9 * len(SCIENTIST)  # his whole shot, his turns included
    assert set(np.flatnonzero(woman.valid).tolist()) <= set(WOMAN)
    assert woman.valid.sum() >= 0.8 * len(WOMAN)
