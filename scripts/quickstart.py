"""The main job (`make run`): reconstruct a clip with the real FLAME and SHeaP weights when they are
in weights/, or with the demo stand-ins when they are not, saying so.

    .venv/bin/python scripts/quickstart.py [FOOTAGE] [--flame F] [--weights W] [--out DIR]
                                           [--weights-dir DIR] [--demo-dir DIR] [--no-blend]

Without FOOTAGE it uses the demo astronaut clip. Writes OUT/<clip>.blend (the FLAME rig, every
frame keyed, the footage camera: through scripts/bake.py under bpy 4.5 from .venv-bpy45, the
backend as its subprocess), the result OUT/<clip>.sheap.safetensors and the per-frame FLAME
vertices OUT/<clip>.verts.npy. With --no-blend (or without .venv-bpy45) it stops at the result.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from bake import unique_names  # scripts/ is on the path: this script's own folder

REPO = Path(__file__).resolve().parent.parent
BLENDER_PYTHON = REPO / ".venv-bpy45" / "bin" / "python"  # bpy 4.5 as a module (setup_env.py run)
FLAME_FILES = ("flame.safetensors", "generic_model.pkl")  # looked for in --weights-dir, in this order
MODEL_FILES = ("model_expressive.pt", "model_paper.pt")


def run(*command: str | Path) -> None:
    """Run a step; stop with its exit code if it fails (it has said why)."""
    completed = subprocess.run([str(part) for part in command], cwd=REPO)
    if completed.returncode != 0:
        sys.exit(completed.returncode)


def backend(*args: str | Path) -> None:
    run(sys.executable, "-m", "backend", *args)


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
    parser.add_argument("--no-blend", action="store_true", help="stop at the result file (no .blend, no bpy)")
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
    name = unique_names([str(footage)])[0]  # the batch script's naming, so both write the same files
    result = args.out / f"{name}.sheap.safetensors"
    blend = args.out / f"{name}.blend"
    if not args.no_blend and BLENDER_PYTHON.is_file():
        run(BLENDER_PYTHON, REPO / "scripts" / "bake.py", "--", footage, "--out", args.out, "--flame", flame,
            "--weights", weights, "--backend-python", sys.executable)
    else:
        if not args.no_blend:
            print(f"{BLENDER_PYTHON} not found (`make run` sets it up): no .blend, only the result", flush=True)
        blend = None
        backend("reconstruct", footage, "-o", result, "--flame", flame, "--weights", weights, "--progress", "bar")
    backend("flame", result, "--flame", flame, "-o", args.out / f"{name}.verts.npy")
    if blend is not None:
        print(f"done: open {blend} in Blender and press play (or import {result}: SHeaP tab > Import Result)")
    else:
        print(f"done: import {result} in Blender (SHeaP tab > Import Result) or see README for headless baking")

if __name__ == "__main__":
    main()
