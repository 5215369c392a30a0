"""The main job (`make run`): reconstruct a clip with the real FLAME and SHeaP weights when they are
in weights/, or with the demo stand-ins when they are not, saying so.

    .venv/bin/python scripts/quickstart.py [FOOTAGE] [--flame F] [--weights W] [--out DIR]
                                           [--weights-dir DIR] [--demo-dir DIR]

Without FOOTAGE it uses the demo astronaut clip. Writes OUT/<clip>.sheap.safetensors and the
per-frame FLAME vertices OUT/<clip>.verts.npy, through the backend's own command line.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLAME_FILES = ("flame.safetensors", "generic_model.pkl")  # looked for in --weights-dir, in this order
MODEL_FILES = ("model_expressive.pt", "model_paper.pt")


def backend(*args: str) -> None:
    """Run one backend command; stop with its exit code if it fails (it has said why)."""
    completed = subprocess.run([sys.executable, "-m", "backend", *args], cwd=REPO)
    if completed.returncode != 0:
        sys.exit(completed.returncode)


def first_existing(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / name for name in names if (folder / name).is_file()), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("footage", nargs="?")
    parser.add_argument("--flame", type=Path)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "out")
    parser.add_argument("--weights-dir", type=Path, default=REPO / "weights",
                        help="where FLAME and SHeaP are looked for")
    parser.add_argument("--demo-dir", type=Path, default=REPO / "demo", help="where the stand-ins are made")
    args = parser.parse_args()
    weights_dir, demo = args.weights_dir, args.demo_dir

    flame = args.flame or first_existing(weights_dir, FLAME_FILES)
    weights = args.weights or first_existing(weights_dir, MODEL_FILES)
    need_demo = flame is None or weights is None or args.footage is None
    if need_demo and not (demo / "astronaut.mp4").is_file():
        backend("make-demo", str(demo))
    if flame is None:
        print(f"FLAME not found in {weights_dir}/ (see README): using the demo FLAME stand-in", flush=True)
        flame = demo / "flame.safetensors"
    if weights is None:
        print(f"SHeaP weights not found in {weights_dir}/ (see README): using demo weights", flush=True)
        weights = demo / "demo_sheap_model.pt"
    footage = Path(args.footage) if args.footage else demo / "astronaut.mp4"

    args.out.mkdir(parents=True, exist_ok=True)
    stem = footage.stem if footage.suffix else footage.name
    result = args.out / f"{stem}.sheap.safetensors"
    backend("reconstruct", str(footage), "-o", str(result), "--flame", str(flame), "--weights", str(weights),
            "--progress", "bar")
    backend("flame", str(result), "--flame", str(flame), "-o", str(args.out / f"{stem}.verts.npy"))
    print(f"done: import {result} in Blender (SHeaP tab > Import Result) or see README for headless baking")


if __name__ == "__main__":
    main()
