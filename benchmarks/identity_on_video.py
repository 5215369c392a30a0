"""Face-recognition distances where the tracker meets them: a cross-dissolve, and one person over a shot of real video.

    PYTHONPATH=. .venv/bin/python benchmarks/identity_on_video.py

1. A cross-dissolve (the edit of tests/backend/people/test_identity_over_time.py): Grace Hopper and the
   astronaut (public-domain portraits) at 210 px where each stands, blended 0 %, 10 %, ... 100 %: each
   blend's distance to either woman. It shows what a look learned on the way through a dissolve is
   worth: how near the other person it lies once it is within `LEARN` of the first.
2. Tears of Steel (tests/data, CC BY 3.0), enlarged to 1080p as the tests do: the scientist's face on
   every third frame of his close-up (frames 65-184) against his first look (what a single anchor
   sees as he turns, through compression and effects), and the woman's (222-239) against all of his.

The figures are quoted in docs/people.md (the 0.62 a followed face may stray from an anchor, `STILL_SAME`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.faces.landmarks import Landmarker  # noqa: E402
from backend.faces.search import FaceSearch  # noqa: E402
from backend.identity.face_recognition import shared_recognizer  # noqa: E402
from backend.identity.gallery import LEARN, STILL_SAME, distances  # noqa: E402
from backend.standins.clip import PORTRAITS  # noqa: E402

CLIP = REPO / "tests" / "data" / "tears_of_steel_excerpt.mp4"
SCIENTIST, WOMAN = range(65, 185, 3), range(222, 240, 3)


def placed(name: str, size: tuple[int, int] = (1280, 720), face_px: float = 210.0) -> np.ndarray:
    """The portrait's face at `face_px`, centred at (0.46, 0.45) of a real photograph."""
    from skimage import data

    width, height = size
    portrait = PORTRAITS[name]
    scale = face_px / portrait.face_px
    fx, fy = portrait.face_centre
    matrix = np.float32([[scale, 0, 0.46 * width - scale * fx], [0, scale, 0.45 * height - scale * fy]])
    frame = cv2.resize(data.rocket(), size, interpolation=cv2.INTER_AREA)
    image = portrait.image()
    inside = cv2.warpAffine(np.full(image.shape[:2], 255, np.uint8), matrix, size) > 127
    frame[inside] = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR)[inside]
    return frame


def describe(search: FaceSearch, rgb: np.ndarray) -> np.ndarray | None:
    faces = search.find(rgb)
    if not faces:
        return None
    return shared_recognizer().embed(rgb, [max(faces, key=lambda face: face.size)])[0]


def dissolve(search: FaceSearch) -> None:
    a, b = placed("hopper"), placed("astronaut")
    da, db = describe(search, a), describe(search, b)
    print(f"1. cross-dissolve, Hopper -> the astronaut ({np.linalg.norm(da - db):.3f} apart)")
    print("   blend   to Hopper   to the astronaut   sum")
    for weight in np.linspace(0, 1, 11):
        d = describe(search, cv2.addWeighted(a, 1 - weight, b, weight, 0))
        if d is None:
            print(f"   {weight:4.0%}   no face found")
            continue
        to_a, to_b = np.linalg.norm(d - da), np.linalg.norm(d - db)
        mark = "  (learnable)" if to_a <= LEARN else ""
        print(f"   {weight:4.0%}   {to_a:.3f}       {to_b:.3f}              {to_a + to_b:.3f}{mark}")


def tears_of_steel(search: FaceSearch) -> None:
    capture = cv2.VideoCapture(str(CLIP))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()

    def looks(indices: range) -> np.ndarray:
        found = []
        for index in indices:
            rgb = cv2.cvtColor(cv2.resize(frames[index], (1920, 1080), interpolation=cv2.INTER_CUBIC),
                               cv2.COLOR_BGR2RGB)
            descriptor = describe(search, rgb)
            if descriptor is not None:
                found.append(descriptor)
        return np.array(found)

    scientist, woman = looks(SCIENTIST), looks(WOMAN)
    to_first = distances(scientist[1:], scientist[:1])[:, 0]
    print(f"2. Tears of Steel at 1080p: the scientist, {len(scientist)} looks of his close-up")
    print(f"   against his first look: median {np.median(to_first):.3f}, 95th percentile "
          f"{np.percentile(to_first, 95):.3f}, max {to_first.max():.3f}; beyond STILL_SAME ({STILL_SAME}): "
          f"{int((to_first > STILL_SAME).sum())} of {len(to_first)}")
    pairs = distances(scientist, scientist)[np.triu_indices(len(scientist), 1)]
    print(f"   his looks pairwise: median {np.median(pairs):.3f}, max {pairs.max():.3f}")
    across = distances(woman, scientist)
    print(f"   the woman ({len(woman)} looks) against his: min {across.min():.3f}, median {np.median(across):.3f}")


def main() -> None:
    landmarker = Landmarker()
    search = FaceSearch(landmarker)
    try:
        dissolve(search)
        tears_of_steel(search)
    finally:
        search.close()
        landmarker.close()


if __name__ == "__main__":
    main()
