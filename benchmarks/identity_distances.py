"""Same-person and different-person distances of the face-recognition descriptor, and its cost per face.

    PYTHONPATH=. .venv/bin/python benchmarks/identity_distances.py --photos DIR [--threshold 0.55]

DIR holds one folder per person with their photographs (DIR/<person>/<any name>.jpg|png|webp), taken
on different occasions where possible; people with one photograph serve as strangers. In each
photograph the face nearest its centre is the person's (the convention of Labeled Faces in the Wild).

Every pair of photographs is compared under four conditions of the first one: as photographed;
small (the face shrunk to 48 px across, as in a wide shot, and found again there); dark (a dim,
noisy exposure: gamma 2.2, a third of the light, sensor noise); and turned (pairs where either
head is turned three-quarters or more, from its landmarks). For each the table gives the spread
of same-person and different-person distances and, at the threshold, the share of same-person
pairs accepted (TAR) and of different-person pairs accepted (FAR). docs/people.md holds the figures.

The cost: milliseconds per face (aligned chip + network) on one thread, for one face and for four
at once, after a warm-up, median and spread of repeats; dlib's own descriptor as the baseline in
the same run when dlib is installed (the same network and numbers, its own C++ code).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.faces.face_recognition import FaceRecognizer  # noqa: E402
from backend.faces.identity import SAME_PERSON, distances  # noqa: E402
from backend.faces.landmarks import Detection, Landmarker  # noqa: E402
from backend.faces.search import FaceSearch  # noqa: E402
from benchmarks.machine import Goals, machine_line  # noqa: E402

SMALL_FACE_PX = 48.0
TURNED = 0.12  # |nose offset between the eyes' outer corners - 0.5| above this: three-quarters or more
EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def read_rgb(path: Path) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def central_face(search: FaceSearch, rgb: np.ndarray) -> Detection | None:
    faces = search.find(rgb)
    if not faces:
        return None
    centre = np.array([rgb.shape[1], rgb.shape[0]]) / 2
    return min(faces, key=lambda face: np.linalg.norm(face.centre - centre))


def shrunk(rgb: np.ndarray, face: Detection) -> np.ndarray:
    """The photograph scaled so the face is SMALL_FACE_PX across (antialiased, as a camera would see it)."""
    scale = min(1.0, SMALL_FACE_PX / face.size)
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def darkened(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    light = (rgb / 255.0) ** 2.2 / 3
    noisy = light ** (1 / 2.2) * 255 + rng.normal(0, 3.0, rgb.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def turned(face: Detection) -> bool:
    points = face.landmarks68
    left, right, nose = points[36, 0], points[45, 0], points[30, 0]
    return abs((nose - left) / max(right - left, 1e-6) - 0.5) > TURNED


def describe_photos(folder: Path, recognizer: FaceRecognizer) -> dict[str, dict]:
    """Per condition: person labels, descriptors, turned flags of every photograph whose face was found."""
    rng = np.random.default_rng(0)
    landmarker = Landmarker()
    search = FaceSearch(landmarker, min_face=20)
    found = {name: {"people": [], "photos": [], "descriptors": [], "turned": []}
             for name in ("as photographed", "small (48 px)", "dark")}
    missed = dict.fromkeys(found, 0)
    for person_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(p for p in person_dir.iterdir() if p.suffix.lower() in EXTENSIONS):
            rgb = read_rgb(path)
            face = None if rgb is None else central_face(search, rgb)
            if face is None:
                missed["as photographed"] += 1
                continue
            versions = {"as photographed": (rgb, face), "small (48 px)": (shrunk(rgb, face), None),
                        "dark": (darkened(rgb, rng), None)}
            for name, (image, known) in versions.items():
                seen = known or central_face(search, image)
                if seen is None:
                    missed[name] += 1
                    continue
                entry = found[name]
                entry["people"].append(person_dir.name)
                entry["photos"].append(str(path.relative_to(folder)))
                entry["descriptors"].append(recognizer.embed(image, [seen])[0])
                entry["turned"].append(turned(face))
    search.close()
    landmarker.close()
    for name, entry in found.items():
        entry["missed"] = missed[name]
        entry["descriptors"] = np.array(entry["descriptors"], np.float32).reshape(-1, 128)
    return found


def pair_distances(probe: dict, gallery: dict, only_turned: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Same-person and different-person distances, probe photo vs every other gallery photo."""
    table = distances(probe["descriptors"], gallery["descriptors"])
    same_person = np.array(probe["people"])[:, None] == np.array(gallery["people"])[None, :]
    other_photo = np.array(probe["photos"])[:, None] != np.array(gallery["photos"])[None, :]
    keep = other_photo
    if only_turned:
        keep = keep & (np.array(probe["turned"])[:, None] | np.array(gallery["turned"])[None, :])
    return table[same_person & keep], table[~same_person & keep]


def report(found: dict, threshold: float) -> dict[str, tuple[float, float]]:
    base = found["as photographed"]
    people, counts = np.unique(base["people"], return_counts=True)
    print(f"\n{len(base['people'])} photographs of {len(people)} people, {int((counts >= 2).sum())} of them with two "
          f"or more (faces not found: {base['missed']})")
    header = (f"{'condition':<22}{'same n':>8}{'median':>8}{'p95':>7}{'max':>7}   {'diff n':>8}{'min':>7}{'p1':>7}"
              f"{'median':>8}   {'TAR':>7}{'FAR':>8}   (at {threshold:g})")
    print(header)
    rates = {}
    rows = [(name, found[name], False) for name in found] + [("turned (3/4 or more)", base, True)]
    for name, probe, only_turned in rows:
        same, different = pair_distances(probe, base, only_turned)
        if not len(same) or not len(different):
            continue
        tar, far = float((same <= threshold).mean()), float((different <= threshold).mean())
        rates[name] = (tar, far)
        print(f"{name:<22}{len(same):>8}{np.median(same):>8.3f}{np.percentile(same, 95):>7.3f}{same.max():>7.3f}   "
              f"{len(different):>8}{different.min():>7.3f}{np.percentile(different, 1):>7.3f}"
              f"{np.median(different):>8.3f}   {100 * tar:>6.1f}%{100 * far:>7.2f}%"
              + (f"   (faces not found: {probe['missed']})" if probe.get("missed") else ""))
    # as the tracker asks: is this face the person's, by the nearest of the person's known looks?
    table = distances(base["descriptors"], base["descriptors"])
    labels = np.array(base["people"])
    np.fill_diagonal(table, np.inf)  # a photo is never its own gallery
    names = sorted(set(labels))
    nearest = np.stack([table[:, labels == name].min(axis=1) for name in names], axis=1)  # (photos, people)
    own = np.array([names.index(label) for label in labels])
    has_gallery = np.isfinite(nearest[np.arange(len(labels)), own])
    same = nearest[np.arange(len(labels)), own][has_gallery]
    others = nearest[np.arange(len(labels))[:, None], np.arange(len(names))[None, :]][own[:, None] != np.arange(
        len(names))[None, :]]
    tar, far = float((same <= threshold).mean()), float((others <= threshold).mean())
    rates["gallery"] = (tar, far)
    sweeps = {"gallery (nearest look)": (same, others)}
    print(f"{'gallery (nearest look)':<22}{len(same):>8}{np.median(same):>8.3f}{np.percentile(same, 95):>7.3f}"
          f"{same.max():>7.3f}   {len(others):>8}{others.min():>7.3f}{np.percentile(others, 1):>7.3f}"
          f"{np.median(others):>8.3f}   {100 * tar:>6.1f}%{100 * far:>7.2f}%   (each photo vs each person's others)")
    sweeps["as photographed, pairs"] = pair_distances(base, base)
    print("\nthreshold sweep: TAR / FAR")
    for name, (same, different) in sweeps.items():
        print(f"  {name:<24}" + "   ".join(f"{value:.2f}: {100 * (same <= value).mean():5.1f}% / "
                                           f"{100 * (different <= value).mean():5.2f}%"
                                           for value in (0.45, 0.5, 0.55, 0.6, 0.65)))
    return rates


def timing(recognizer: FaceRecognizer, repeats: int) -> dict[str, float]:
    """Median ms per face for 1 and 4 faces (chip + network), printed with the spread; dlib's for comparison."""
    from skimage import data

    rgb = data.astronaut()
    landmarker = Landmarker()
    face = FaceSearch(landmarker).find(rgb)[0]
    landmarker.close()
    figures = {}

    def measure(name: str, run, faces: int) -> float:
        for _ in range(3):
            run()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append((time.perf_counter() - start) * 1000 / faces)
        median = float(np.median(times))
        print(f"  {name:<44}{median:8.2f} ms/face   (spread {min(times):.2f} - {max(times):.2f}, {repeats} runs)")
        figures[name] = median
        return median

    measure("torch port, 1 face (chip + network)", lambda: recognizer.embed(rgb, [face]), 1)
    measure("torch port, 4 faces at once", lambda: recognizer.embed(rgb, [face] * 4), 4)
    try:
        import dlib

        from backend.faces.face_net_convert import default_model_file

        model = dlib.face_recognition_model_v1(str(default_model_file()))
        points = [dlib.point(int(round(x - 0.5)), int(round(y - 0.5))) for x, y in face.landmarks68]
        shape = dlib.full_object_detection(dlib.rectangle(0, 0, rgb.shape[1], rgb.shape[0]), points)
        measure("dlib itself (baseline), 1 face", lambda: model.compute_face_descriptor(rgb, shape, 0, 0.25), 1)
    except ImportError:
        print("  (dlib is not installed: no baseline)")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, help="DIR/<person>/<photo>; without it only the cost is measured")
    parser.add_argument("--threshold", type=float, default=SAME_PERSON)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine_line())
    print(f"torch {torch.__version__}, 1 thread")
    recognizer = FaceRecognizer()
    goals = Goals()
    print("\ncost per face:")
    figures = timing(recognizer, args.repeats)
    lone = figures["torch port, 1 face (chip + network)"]
    goals.check(lone <= 10.0, "at most 10 ms per face on one core (a lone face)")
    goals.check(figures["torch port, 4 faces at once"] <= 10.0, "at most 10 ms per face on one core (4 at once)")
    if args.photos:
        rates = report(describe_photos(args.photos, recognizer), args.threshold)
        print()
        tar, far = rates["gallery"]
        goals.check(tar >= 0.97 and far <= 0.005,
                    f"a face against a person's looks: TAR >= 97% and FAR <= 0.5% at {args.threshold:g}")
        tar, far = rates["small (48 px)"]
        goals.check(tar >= 0.85 and far <= 0.01, f"small faces: TAR >= 85% and FAR <= 1% at {args.threshold:g}")
    return goals.exit_code()


if __name__ == "__main__":
    sys.exit(main())
