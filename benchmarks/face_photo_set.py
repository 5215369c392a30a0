"""Build the photograph set of `identity_distances.py` (DIR/<person>/<photo>) from public repositories' checkouts.

    PYTHONPATH=. .venv/bin/python benchmarks/face_photo_set.py --out DIR --lfw LFW --deepface DEEPFACE \
        [--face-recognition FR] [--openface OPENFACE] [--facenet-pytorch FNP] [--seed 0]

The photographs may not be shipped with the project (their licences), so the set is rebuilt from:
- LFW: Labeled Faces in the Wild (Huang et al. 2007), the deep-funneled images
  (`images_deepfunneled/` of github.com/umass-vis-lfw/umass-vis-lfw.github.io): a seeded draw of
  `--lfw-people` people with two or more photographs (up to four each) and `--lfw-single` with one;
- deepface's test images (github.com/serengil/deepface, `tests/unit/dataset/`): people from the
  same-person pairs its `master.csv` and `face-recognition-pivot.csv` list (photographs joined by "Yes" pairs
  are one person);
- face_recognition's examples and test images (github.com/ageitgey/face_recognition), by their names;
- OpenFace's examples (github.com/cmusatyalab/openface, `images/examples/`);
- facenet-pytorch's test images (github.com/timesler/facenet-pytorch, `data/test_images/`).
Photographs of several people, mirrored or resized copies of another photograph in the set are left out,
and so are LFW's people who also appear in another source (by name) so that no person is split in two.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np

# face_recognition's photographs by person (copies and resized versions of one photograph left out)
FACE_RECOGNITION = {
    "Barack_Obama": ["examples/obama.jpg", "examples/obama2.jpg", "tests/test_images/obama3.jpg"],
    "Joe_Biden": ["examples/biden.jpg", "examples/knn_examples/train/biden/biden2.jpg"],
    "Kit_Harington": ["examples/knn_examples/train/kit_harington/john1.jpeg",
                      "examples/knn_examples/train/kit_harington/john2.jpeg",
                      "examples/knn_examples/test/johnsnow_test1.jpg"],
    "Rose_Leslie": ["examples/knn_examples/train/rose_leslie/img1.jpg",
                    "examples/knn_examples/train/rose_leslie/img2.jpg"],
    "Alex_Lacamoire": ["examples/alex-lacamoire.png", "examples/knn_examples/train/alex_lacamoire/img1.jpg",
                       "examples/knn_examples/test/alex_lacamoire1.jpg"],
    "Lin_Manuel_Miranda": ["examples/lin-manuel-miranda.png"],
}
OPENFACE = {"John_Lennon": ["lennon-1.jpg", "lennon-2.jpg"], "Eric_Clapton": ["clapton-1.jpg", "clapton-2.jpg"],
            "Amy_Adams": ["adams.jpg"], "Steve_Carell": ["carell.jpg"]}
FACENET_PYTORCH = ["kate_siegel", "paul_rudd", "shea_whigham", "bradley_cooper"]  # angelina_jolie: in deepface's
DEEPFACE_LEFT_OUT = {"couple.jpg", "selfie-many-people.jpg", "img11_reflection.jpg"}  # several people; a mirror
# in deepface's own set as well (its img1 ...): never split one person over two folders
LFW_LEFT_OUT = {"Angelina_Jolie", "Jennifer_Aniston", "Scarlett_Johansson", "Mark_Zuckerberg", "Jack_Dorsey",
                "Elon_Musk", "Katy_Perry", "Matt_Damon"}


def deepface_people(folder: Path) -> dict[str, list[Path]]:
    """deepface's photographs grouped into people by its master.csv's same-person pairs (union-find)."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    for table in ("master.csv", "face-recognition-pivot.csv"):
        with open(folder / table, newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("Decision", row.get("decision", "")).strip().lower() == "yes":
                    a, b = root(Path(row["file_x"]).name), root(Path(row["file_y"]).name)
                    parent[max(a, b)] = min(a, b)
    people: dict[str, list[Path]] = {}
    for path in sorted(folder.glob("*.jpg")):
        if path.name not in DEEPFACE_LEFT_OUT:
            people.setdefault(f"deepface_{root(path.name).removesuffix('.jpg')}", []).append(path)
    return people


def lfw_people(folder: Path, multi: int, single: int, seed: int, left_out: set[str]) -> dict[str, list[Path]]:
    rng = np.random.default_rng(seed)
    people = {d.name: sorted(d.glob("*.jpg")) for d in sorted(folder.iterdir())
              if d.is_dir() and d.name not in left_out}
    several = [name for name, photos in people.items() if len(photos) >= 2]
    one = [name for name, photos in people.items() if len(photos) == 1]
    chosen = {}
    for name in rng.choice(several, size=min(multi, len(several)), replace=False):
        photos = people[name]
        chosen[f"lfw_{name}"] = [photos[i] for i in sorted(rng.choice(len(photos), min(4, len(photos)), False))]
    for name in rng.choice(one, size=min(single, len(one)), replace=False):
        chosen[f"lfw_{name}"] = people[name]
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--lfw", type=Path, required=True, help="a folder of LFW's people (images_deepfunneled)")
    parser.add_argument("--deepface", type=Path, required=True, help="deepface's tests/unit/dataset")
    parser.add_argument("--face-recognition", type=Path, help="a checkout of ageitgey/face_recognition")
    parser.add_argument("--openface", type=Path, help="OpenFace's images/examples")
    parser.add_argument("--facenet-pytorch", type=Path, help="facenet-pytorch's data/test_images")
    parser.add_argument("--lfw-people", type=int, default=110)
    parser.add_argument("--lfw-single", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    people = deepface_people(args.deepface)
    if args.face_recognition:
        people |= {name: [args.face_recognition / p for p in photos] for name, photos in FACE_RECOGNITION.items()}
    if args.openface:
        people |= {name: [args.openface / p for p in photos] for name, photos in OPENFACE.items()}
    if args.facenet_pytorch:
        people |= {name: sorted((args.facenet_pytorch / name).glob("*.jpg")) for name in FACENET_PYTORCH}
    named = {name.lower() for name in list(FACE_RECOGNITION) + list(OPENFACE) + FACENET_PYTORCH}
    left_out = LFW_LEFT_OUT | {d.name for d in args.lfw.iterdir() if d.name.lower() in named}
    people |= lfw_people(args.lfw, args.lfw_people, args.lfw_single, args.seed, left_out)
    seen: set[str] = set()
    count = 0
    for name, photos in sorted(people.items()):
        for path in photos:
            if not path.is_file():
                print(f"missing, left out: {path}")
                continue
            digest = hashlib.sha1(path.read_bytes()).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            (args.out / name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, args.out / name / path.name)
            count += 1
    folders = [d for d in args.out.iterdir() if d.is_dir()]
    several = sum(len(list(d.iterdir())) >= 2 for d in folders)
    print(f"{count} photographs of {len(folders)} people ({several} with two or more) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
