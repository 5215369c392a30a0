"""Vertex jitter on a still face under sensor noise: raw prediction vs `--smooth 0.5`.

    .venv/bin/python benchmarks/temporal_jitter.py [--frames 90] [--noise 6]

The astronaut portrait stands still; each frame gets its own Gaussian pixel noise (sigma in 8-bit
levels), as a sensor would. Everything runs through the real command line (`reconstruct`, then
`flame`), on the demo stand-ins. Jitter = mean over frames of the mean vertex displacement from
one frame to the next (the head should not move at all). Goal: at least 40% less with smoothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from skimage import data

REPO = Path(__file__).resolve().parent.parent


def backend(*args) -> None:
    subprocess.run([sys.executable, "-m", "backend", *map(str, args)], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)


def write_still_clip(path: Path, n_frames: int, noise: float, size: tuple[int, int] = (640, 480)) -> None:
    width, height = size
    portrait = data.astronaut()
    canvas = np.full((height, width, 3), 40, np.uint8)
    top, left = (height - 400) // 2, (width - 400) // 2
    canvas[top:top + 400, left:left + 400] = cv2.resize(portrait, (400, 400), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    for _ in range(n_frames):
        noisy = np.clip(canvas + rng.normal(0, noise, canvas.shape), 0, 255).astype(np.uint8)
        writer.write(cv2.cvtColor(noisy, cv2.COLOR_RGB2BGR))
    writer.release()


def jitter_mm(verts: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(verts, axis=0), axis=2).mean() * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--noise", type=float, default=6.0, help="pixel noise sigma, 8-bit levels")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        backend("make-demo", work / "demo")
        clip = work / "still.mp4"
        write_still_clip(clip, args.frames, args.noise)
        figures = {}
        for label, smooth in (("raw", 0.0), ("--smooth 0.5", 0.5)):
            result = work / f"r{smooth}.safetensors"
            backend("reconstruct", clip, "-o", result, "--flame", work / "demo" / "flame.safetensors", "--weights",
                    work / "demo" / "demo_sheap_model.pt", "--smooth", smooth, "--progress", "none")
            backend("flame", result, "--flame", work / "demo" / "flame.safetensors", "-o", work / "v.npy")
            figures[label] = jitter_mm(np.load(work / "v.npy"))
            print(f"{label:14s} mean vertex jitter {figures[label]:.4f} mm/frame")
        cut = 1 - figures["--smooth 0.5"] / figures["raw"]
        print(f"jitter cut by smoothing: {cut:.0%} (goal >= 40%) [demo weights: stand-in predictor]")


if __name__ == "__main__":
    main()
