"""The main job (`make run`): reconstruct a clip with the real FLAME and SHeaP weights when they are
in weights/, or with the demo stand-ins when they are not, saying so.

    .venv/bin/python scripts/quickstart.py [FOOTAGE] [--flame F] [--weights W] [--out DIR]

Without FOOTAGE it uses the demo astronaut clip. Writes OUT/<clip>.sheap.safetensors and the
per-frame FLAME vertices OUT/<clip>.verts.npy, through the backend's own command line.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WEIGHTS = REPO / "weights"
DEMO = REPO / "demo"
REAL_FLAME = (WEIGHTS / "flame.safetensors", WEIGHTS / "generic_model.pkl")
REAL_MODELS = (WEIGHTS / "model_expressive.pt", WEIGHTS / "model_paper.pt")


def backend(*args: str) -> None:
    """Run one backend command; stop with its exit code if it fails (it has said why)."""
    completed = subprocess.run([sys.executable, "-m", "backend", *args], cwd=REPO)
    if completed.returncode != 0:
        sys.exit(completed.returncode)


def first_existing(paths: tuple[Path, ...]) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("footage", nargs="?")
    parser.add_argument("--flame", type=Path)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "out")
    args = parser.parse_args()

    flame = args.flame or first_existing(REAL_FLAME)
    weights = args.weights or first_existing(REAL_MODELS)
    need_demo = flame is None or weights is None or args.footage is None
    if need_demo and not (DEMO / "astronaut.mp4").is_file():
        backend("make-demo", str(DEMO))
    if flame is None:
        print(f"FLAME not found in {WEIGHTS}/ (see README): using the demo FLAME stand-in", flush=True)
        flame = DEMO / "flame.safetensors"
    if weights is None:
        print(f"SHeaP weights not found in {WEIGHTS}/ (see README): using demo weights", flush=True)
        weights = DEMO / "demo_sheap_model.pt"
    footage = Path(args.footage) if args.footage else DEMO / "astronaut.mp4"

    args.out.mkdir(parents=True, exist_ok=True)
    stem = footage.stem if footage.suffix else footage.name
    result = args.out / f"{stem}.sheap.safetensors"
    backend("reconstruct", str(footage), "-o", str(result), "--flame", str(flame), "--weights", str(weights),
            "--progress", "bar")
    backend("flame", str(result), "--flame", str(flame), "-o", str(args.out / f"{stem}.verts.npy"))
    print(f"done: import {result} in Blender (SHeaP tab > Import Result) or see README for headless baking")


if __name__ == "__main__":
    main()
