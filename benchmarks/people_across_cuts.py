"""Edited footage made of real photographs: is the chosen person recognised in every shot of theirs, and in no other?

    PYTHONPATH=. .venv/bin/python benchmarks/people_across_cuts.py --photos DIR [--trials 20]

DIR holds one folder per person with their photographs (DIR/<person>/<photo>, taken on different
occasions), as for identity_distances.py. Each trial cuts a 1080p clip from six shots of 12 frames
(25 fps) over a real background photograph, each photograph drifting slowly, hard cuts between:

1. person A (one photograph, face 200 px): the largest face, so the one followed;
2. stranger B alone (face 200 px);
3. A in a wide shot (another photograph, face 60 px);
4. a two-shot: stranger C large where A stood, A (a third photograph) smaller elsewhere;
5. B and C together (A absent);
6. A again (the second photograph), dark (a third of the light, sensor noise), face 120 px.

The real tracker follows the clip. A shot of A's counts as recognised when A's face is followed on
at least half its frames (the followed face's centre inside A's photograph); every frame followed
on somebody else is an error. Printed: recognised shots, frames on somebody else, searches and faces
described per trial, and the tracker's time per frame.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.faces.landmarks import Landmarker  # noqa: E402
from backend.faces.search import FaceSearch  # noqa: E402
from backend.people.tracker import FaceTracker  # noqa: E402
from benchmarks.identity_distances import EXTENSIONS, central_face, darkened, read_rgb  # noqa: E402
from benchmarks.machine import Goals, machine_line  # noqa: E402

SIZE = (1920, 1080)
FPS = 25.0
SHOT = 12


@dataclass
class Photo:
    person: str
    rgb: np.ndarray
    face_px: float
    face_centre: np.ndarray


@dataclass
class Placed:
    photo: Photo
    face_px: float  # on the frame
    at: tuple[float, float]  # where the face's centre goes, fractions of the frame
    dark: bool = False


def load_photos(folder: Path, search: FaceSearch) -> dict[str, list[Photo]]:
    people: dict[str, list[Photo]] = {}
    for person_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(p for p in person_dir.iterdir() if p.suffix.lower() in EXTENSIONS):
            rgb = read_rgb(path)
            face = None if rgb is None else central_face(search, rgb)
            if face is not None and face.size >= 60:
                people.setdefault(person_dir.name, []).append(Photo(person_dir.name, rgb, face.size, face.centre))
    return people


def render(background: np.ndarray, placed: list[Placed], frame: int, rng: np.random.Generator
           ) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """One frame, and each photograph's person with its box (x0, y0, x1, y1) on the frame."""
    canvas = background.copy()
    boxes = []
    for item in placed:
        scale = item.face_px / item.photo.face_px
        image = cv2.resize(item.photo.rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if item.dark:
            image = darkened(image, rng)
        drift = np.array([1.5, 0.5]) * frame
        centre = np.array(item.at) * SIZE + drift
        top_left = np.round(centre - item.photo.face_centre * scale).astype(int)
        x0, y0 = np.maximum(top_left, 0)
        x1, y1 = np.minimum(top_left + image.shape[1::-1], SIZE)
        canvas[y0:y1, x0:x1] = image[y0 - top_left[1]:y1 - top_left[1], x0 - top_left[0]:x1 - top_left[0]]
        boxes.append((item.photo.person, np.array([x0, y0, x1, y1], float)))
    return canvas, boxes


def shots_for(a: list[Photo], b: Photo, c: Photo) -> list[list[Placed]]:
    return [
        [Placed(a[0], 200, (0.35, 0.45))],
        [Placed(b, 200, (0.6, 0.45))],
        [Placed(a[1], 60, (0.7, 0.35))],
        [Placed(c, 220, (0.35, 0.45)), Placed(a[2], 130, (0.75, 0.45))],
        [Placed(b, 150, (0.3, 0.5)), Placed(c, 150, (0.7, 0.45))],
        [Placed(a[1], 120, (0.5, 0.45), dark=True)],
    ]


def trial(a: list[Photo], b: Photo, c: Photo, background: np.ndarray, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    shots = shots_for(a, b, c)
    frames, truth = [], []
    for placed in shots:
        for frame in range(SHOT):
            canvas, boxes = render(background, placed, frame, rng)
            frames.append(canvas)
            truth.append(boxes)
    results = []
    started = time.perf_counter()
    with FaceTracker(FPS) as tracker:
        for rgb in frames:
            results += tracker.track(rgb)
        results += tracker.flush()
        seconds = time.perf_counter() - started
        embeddings = tracker.embeddings
    searches = sum(result.searched for result in results)
    on_a = np.zeros(len(frames), bool)
    wrong = 0
    for index, (result, boxes) in enumerate(zip(results, truth)):
        if result.detection is None:
            continue
        centre = result.detection.centre
        whose = [person for person, box in boxes if box[0] <= centre[0] <= box[2] and box[1] <= centre[1] <= box[3]]
        if a[0].person in whose:
            on_a[index] = True
        else:
            wrong += 1
    a_shots = [i for i, placed in enumerate(shots) if any(item.photo.person == a[0].person for item in placed)]
    recognised = [on_a[i * SHOT:(i + 1) * SHOT].mean() >= 0.5 for i in a_shots]
    return {"recognised": recognised, "wrong": wrong, "searches": searches, "embeddings": embeddings,
            "ms_per_frame": 1000 * seconds / len(frames)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    print(machine_line())
    from skimage import data

    backgrounds = [cv2.resize(image, SIZE, interpolation=cv2.INTER_AREA)
                   for image in (data.rocket(), data.coffee(), data.chelsea())]
    landmarker = Landmarker()
    search = FaceSearch(landmarker, min_face=20)
    people = load_photos(args.photos, search)
    search.close()
    landmarker.close()
    rng = np.random.default_rng(0)
    followed = sorted(name for name, photos in people.items() if len(photos) >= 3)
    names = sorted(people)
    print(f"{len(names)} people, {len(followed)} with three or more photographs; {args.trials} trials of "
          f"{6 * SHOT} frames at 1920x1080, {FPS:g} fps")
    outcomes = []
    for number in range(args.trials):
        a_name = followed[number % len(followed)]
        b_name, c_name = rng.choice([name for name in names if name != a_name], 2, replace=False)
        a = list(rng.permutation(people[a_name])[:3])
        outcome = trial(a, people[b_name][0], people[c_name][0], backgrounds[number % 3], number)
        outcomes.append(outcome)
        marks = "".join("+" if shot else "-" for shot in outcome["recognised"])
        print(f"  {a_name:<28} vs {b_name}, {c_name}: A's shots {marks}, {outcome['wrong']} frames on somebody "
              f"else, {outcome['searches']} searches, {outcome['embeddings']} faces described, "
              f"{outcome['ms_per_frame']:.0f} ms a frame", flush=True)
    shots = [shot for outcome in outcomes for shot in outcome["recognised"]]
    wrong = sum(outcome["wrong"] for outcome in outcomes)
    print(f"\nA recognised in {sum(shots)} of {len(shots)} of their shots ({100 * np.mean(shots):.1f} %); "
          f"{wrong} frames of {len(outcomes) * 6 * SHOT} followed on somebody else")
    goals = Goals()
    goals.check(np.mean(shots) >= 0.95, "the person recognised in >= 95% of their shots")
    goals.check(wrong == 0, "no frame followed on somebody else")
    return goals.exit_code()


if __name__ == "__main__":
    sys.exit(main())
