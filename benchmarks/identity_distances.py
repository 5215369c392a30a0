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
import pickle
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.faces.landmarks import Detection, Landmarker  # noqa: E402
from backend.faces.search import FaceSearch  # noqa: E402
from backend.identity.face_recognition import FaceRecognizer  # noqa: E402
from backend.identity.gallery import SAME_PERSON, distances  # noqa: E402
from benchmarks.machine import Goals, machine_line  # noqa: E402

FACE_SIZES = (24, 32, 40, 48, 64)  # px across (the 68 landmarks' extent, Detection.size), for the smallest face
SMALL_FACE_PX = 48  # "small": a wide shot
SPLIT_SEED = 0
RULE_FAR = 0.002  # the threshold rule: the largest at which a stranger passes for a person's nearest look <= 1 in 500
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


def shrunk(rgb: np.ndarray, face: Detection, face_px: float) -> np.ndarray:
    """The photograph scaled so the face is `face_px` across, never enlarged (antialiased, as a camera sees it)."""
    scale = min(1.0, face_px / face.size)
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def size_name(face_px: int) -> str:
    return f"face {face_px} px"


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
    names = ["as photographed", "dark"] + [size_name(px) for px in FACE_SIZES]
    found = {name: {"people": [], "photos": [], "descriptors": [], "turned": [], "size": []} for name in names}
    missed = dict.fromkeys(found, 0)
    for person_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(p for p in person_dir.iterdir() if p.suffix.lower() in EXTENSIONS):
            rgb = read_rgb(path)
            face = None if rgb is None else central_face(search, rgb)
            if face is None:
                missed["as photographed"] += 1
                continue
            versions = {"as photographed": (rgb, face), "dark": (darkened(rgb, rng), None)}
            versions |= {size_name(px): (shrunk(rgb, face, px), None) for px in FACE_SIZES}
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
                entry["size"].append(seen.size)  # the face's size where it was described
    search.close()
    landmarker.close()
    for name, entry in found.items():
        entry["missed"] = missed[name]
        entry["descriptors"] = np.array(entry["descriptors"], np.float32).reshape(-1, 128)
    return found


def described(folder: Path, recognizer: FaceRecognizer, cache: Path | None) -> dict[str, dict]:
    """describe_photos, kept in `cache` (a pickle of this script's own making) when given."""
    if cache and cache.is_file():
        with open(cache, "rb") as handle:
            return pickle.load(handle)
    found = describe_photos(folder, recognizer)
    if cache:
        with open(cache, "wb") as handle:
            pickle.dump(found, handle)
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


def nearest_look(probe: dict, gallery: dict) -> tuple[np.ndarray, np.ndarray]:
    """The tracker's question: each probe photo against the nearest of each person's other gallery photographs.

    Returns the distances to the photo's own person (where they have another photograph) and to everyone else.
    """
    table = distances(probe["descriptors"], gallery["descriptors"])
    table[np.array(probe["photos"])[:, None] == np.array(gallery["photos"])[None, :]] = np.inf  # never its own
    labels, names = np.array(gallery["people"]), sorted(set(gallery["people"]))
    nearest = np.stack([table[:, labels == name].min(axis=1) for name in names], axis=1)  # (photos, people)
    index = {name: i for i, name in enumerate(names)}
    own = np.array([index.get(label, -1) for label in probe["people"]])
    rows = np.arange(len(own))
    same = nearest[rows, own][(own >= 0) & np.isfinite(nearest[rows, np.maximum(own, 0)])]
    return same, nearest[own[:, None] != np.arange(len(names))[None, :]]


def subset(entry: dict, people: set[str]) -> dict:
    """The photographs of `people` only."""
    keep = np.array([person in people for person in entry["people"]], bool)
    return {"people": [p for p, k in zip(entry["people"], keep) if k],
            "photos": [p for p, k in zip(entry["photos"], keep) if k],
            "turned": [p for p, k in zip(entry["turned"], keep) if k],
            "size": [p for p, k in zip(entry["size"], keep) if k],
            "descriptors": entry["descriptors"][keep], "missed": entry.get("missed", 0)}


def accepted(same: np.ndarray, different: np.ndarray, threshold: float) -> tuple[float, float]:
    return float((same <= threshold).mean()), float((different <= threshold).mean())


def chosen_threshold(same: np.ndarray, different: np.ndarray) -> float:
    """The rule: the largest threshold (0.005 steps) at which FAR against a person's nearest look is <= RULE_FAR."""
    grid = np.arange(0.30, 0.80, 0.005)
    ok = [t for t in grid if (different <= t).mean() <= RULE_FAR]
    return round(float(max(ok)), 3) if ok else float(grid[0])


def spread_row(name: str, same: np.ndarray, different: np.ndarray, threshold: float, note: str = "") -> str:
    tar, far = accepted(same, different, threshold)
    return (f"{name:<22}{len(same):>8}{np.median(same):>8.3f}{np.percentile(same, 95):>7.3f}{same.max():>7.3f}   "
            f"{len(different):>8}{different.min():>7.3f}{np.percentile(different, 1):>7.3f}"
            f"{np.median(different):>8.3f}   {100 * tar:>6.1f}%{100 * far:>7.2f}%" + (f"   ({note})" if note else ""))


def describe_set(entry: dict) -> str:
    people, counts = np.unique(entry["people"], return_counts=True)
    pairs = int((counts * (counts - 1)).sum() // 2)
    return (f"{len(entry['people'])} photographs of {len(people)} people ({int((counts >= 2).sum())} with two or "
            f"more: {pairs} same-person pairs)")


def report(found: dict, threshold: float) -> dict[str, tuple[float, float]]:
    """All photographs: the spread of distances per condition, and TAR / FAR at `threshold`."""
    base = found["as photographed"]
    print(f"\nall: {describe_set(base)}; faces not found: {base['missed']}")
    print(f"{'condition':<22}{'same n':>8}{'median':>8}{'p95':>7}{'max':>7}   {'diff n':>8}{'min':>7}{'p1':>7}"
          f"{'median':>8}   {'TAR':>7}{'FAR':>8}   (at {threshold:g})")
    rates = {}
    rows = [(name, found[name], False) for name in ("as photographed", size_name(SMALL_FACE_PX), "dark")]
    for name, probe, only_turned in rows + [("turned (3/4 or more)", base, True)]:
        same, different = pair_distances(probe, base, only_turned)
        if len(same) and len(different):
            rates[name] = accepted(same, different, threshold)
            print(spread_row(name, same, different, threshold,
                             f"faces not found: {probe['missed']}" if probe.get("missed") else ""))
    same, others = nearest_look(base, base)
    rates["gallery"] = accepted(same, others, threshold)
    print(spread_row("gallery (nearest look)", same, others, threshold, "each photo vs each person's others"))
    print("\nthreshold sweep: TAR / FAR")
    for name, (accepts, refuses) in {"gallery (nearest look)": (same, others),
                                     "as photographed, pairs": pair_distances(base, base)}.items():
        print(f"  {name:<24}" + "   ".join(f"{value:.2f}: {100 * (accepts <= value).mean():5.1f}% / "
                                           f"{100 * (refuses <= value).mean():5.2f}%"
                                           for value in (0.45, 0.5, 0.55, 0.6, 0.65)))
    same, different = pair_distances(base, base)
    grid = np.linspace(0.2, 1.2, 2001)
    far, frr = (different[None] <= grid[:, None]).mean(1), (same[None] > grid[:, None]).mean(1)
    equal = int(np.argmin(np.abs(far - frr)))
    print(f"  pairs as photographed: equal error rate {100 * (far[equal] + frr[equal]) / 2:.2f} % (at "
          f"{grid[equal]:.3f}); TAR at FAR 0.1 %: {100 * (same <= np.quantile(different, 0.001)).mean():.1f} %, "
          f"at FAR 1 %: {100 * (same <= np.quantile(different, 0.01)).mean():.1f} %")
    return rates


def held_out(found: dict, threshold: float) -> tuple[set[str], float]:
    """Split by person (seeded): the threshold chosen on one half by the rule, the rates measured on the other."""
    base = found["as photographed"]
    people = sorted(set(base["people"]))
    order = np.random.default_rng(SPLIT_SEED).permutation(len(people))
    halves = [{people[i] for i in order[: len(people) // 2]}, {people[i] for i in order[len(people) // 2:]}]
    print(f"\nheld out: people split in two at random (seed {SPLIT_SEED}); the threshold is the largest at which a "
          f"stranger passes for a person's nearest look at most {100 * RULE_FAR:g} % of the time on the tuning half")
    chosen = []
    for name, (tune, test) in (("A tunes, B held out", halves), ("B tunes, A held out", halves[::-1])):
        tuning, testing = subset(base, tune), subset(base, test)
        picked = chosen_threshold(*nearest_look(tuning, tuning))
        chosen.append(picked)
        print(f"  {name}: tuning {describe_set(tuning)}; held out {describe_set(testing)}")
        for value, label in ((picked, "chosen on the tuning half"), (threshold, "the code's")):
            gallery = accepted(*nearest_look(testing, testing), value)
            pairs = accepted(*pair_distances(testing, testing), value)
            print(f"    {value:.3f} ({label}): held out, nearest look TAR {100 * gallery[0]:5.1f}% FAR "
                  f"{100 * gallery[1]:5.2f}%; pairs TAR {100 * pairs[0]:5.1f}% FAR {100 * pairs[1]:5.2f}%")
    return halves[1], chosen[0]


def smallest_face(found: dict, people: set[str], threshold: float) -> int | None:
    """TAR / FAR per face size on the held-out people at the threshold chosen without them; the smallest that holds."""
    gallery = subset(found["as photographed"], people)
    print(f"\nsmallest face (held-out half, at {threshold:.3f}): each photograph shrunk so its face is N px across, "
          "found again there and described, against the others as photographed")
    full = accepted(*nearest_look(gallery, gallery), threshold)[0]
    native = np.array(gallery["size"])
    print(f"as photographed the faces are {np.median(native):.0f} px across (median; {np.percentile(native, 5):.0f} to "
          f"{np.percentile(native, 95):.0f} for 90 %); " + ", ".join(
              f"{int((native <= px).sum())} already {px} px or less" for px in FACE_SIZES) + " (never enlarged)")
    print(f"{'face':<10}{'found':>8}{'pairs TAR':>11}{'FAR':>8}{'nearest TAR':>13}{'FAR':>8}{'found px':>10}"
          f"{'> 1.25x':>8}   (the size found again there: median; faces found over 1.25x the size asked)")
    holds, unbroken = None, True
    for face_px in sorted(FACE_SIZES, reverse=True):
        probe = subset(found[size_name(face_px)], people)
        pairs = accepted(*pair_distances(probe, gallery), threshold)
        nearest = accepted(*nearest_look(probe, gallery), threshold)
        sizes = np.array(probe["size"])
        print(f"{face_px:>4} px   {len(probe['people']):>4}/{len(gallery['people']):<4}{100 * pairs[0]:>9.1f}%"
              f"{100 * pairs[1]:>7.2f}%{100 * nearest[0]:>11.1f}%{100 * nearest[1]:>7.2f}%"
              f"{np.median(sizes):>10.1f}{int((sizes > 1.25 * face_px).sum()):>8}")
        if unbroken and nearest[0] >= full - 0.03:
            holds = face_px
        else:
            unbroken = False
    print(f"as photographed: nearest TAR {100 * full:.1f}%; smallest size within 3 points of it (every size above it "
          f"too): {holds} px")
    return holds


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

        from backend.identity.face_net_convert import default_model_file

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
    parser.add_argument("--descriptors", type=Path, help="a file to keep the photographs' descriptors in: read when "
                        "it exists (the photographs are not described again), else written")
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
        found = described(args.photos, recognizer, args.descriptors)
        rates = report(found, args.threshold)
        held_out_people, chosen = held_out(found, args.threshold)
        for value in sorted({chosen, args.threshold}):
            smallest_face(found, held_out_people, value)
        print()
        tar, far = rates["gallery"]
        goals.check(tar >= 0.97 and far <= 0.005,
                    f"a face against a person's looks: TAR >= 97% and FAR <= 0.5% at {args.threshold:g}")
        tar, far = rates[size_name(SMALL_FACE_PX)]
        goals.check(tar >= 0.85 and far <= 0.01, f"small faces: TAR >= 85% and FAR <= 1% at {args.threshold:g}")
    return goals.exit_code()


if __name__ == "__main__":
    sys.exit(main())
