"""Temporal smoothing under sensor noise, on a still head and on a moving one: raw prediction vs `--smooth 0.5`.

    .venv/bin/python benchmarks/temporal_jitter.py [--frames 90] [--noise 6]

Each frame gets its own Gaussian pixel noise (sigma in 8-bit levels), as a sensor would; the clips
are H.264 where this OpenCV writes it, else MPEG-4 Part 2 (printed). Everything runs through the real
command line (`reconstruct`, then `flame`), on the demo stand-ins; every run must find the face on
every frame (else it stops with an error). Vertex distances are means over vertices, in mm.

- Still head: the astronaut portrait stands still. Jitter = the mean frame-to-frame displacement of
  the vertices (the head should not move at all). On a still head any filter wins, even one that
  freezes the head: hence the moving head.
- Moving head: the demo clip's motion (`make-demo`'s astronaut.mp4: pan, zoom and a few degrees of
  roll over 3 s), with and without the noise, each reconstructed raw, at 0.5 and at 1 (the strongest,
  for comparison). Two figures:
  jitter the noise adds: the frame-to-frame change of (noisy - noise-free) at the same setting (on a
    still head this is the jitter above);
  slow motion changed: how far the smoothing moves the noise-free head's slow motion (both sides
    low-passed alike, a Gaussian of 0.1 s: the motion, not the frame-to-frame wobble), as a share of
    that motion's own extent (its mean distance from its mean). A filter that froze the head would
    change 100% of it; one that lagged by 2 frames, about a quarter.

Goals (met / MISS; the exit code counts the misses): at --smooth 0.5, the still head's jitter and the
moving head's noise jitter each cut by at least 40%, and the moving head's slow motion changed by at
most 10%.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from machine import Goals, machine_line  # noqa: E402  (benchmarks/machine.py, beside this script)

from backend.standins.clip import (  # noqa: E402
    H264_WHERE_POSSIBLE,
    astronaut_motion,
    open_writer,
    video_codec,
)
from sheap_blender.core.result.result_format import read_result  # noqa: E402

GOAL_STILL_CUT = 0.40
GOAL_MOVING_CUT = 0.40
GOAL_MOTION_CHANGED = 0.10
SLOW_SIGMA_S = 0.1  # the low-pass that keeps the motion: a Gaussian of this many seconds
SIZE = (640, 480)


def backend(*args) -> None:
    completed = subprocess.run([sys.executable, "-m", "backend", *map(str, args)], cwd=REPO, capture_output=True,
                               text=True)
    if completed.returncode != 0:
        raise SystemExit(f"backend {args[0]} failed:\n{completed.stderr[-2000:]}")


def write_clip(path: Path, n_frames: int, noise: float, moving: bool) -> Path:
    """The astronaut, still (the portrait at 400 px in the middle) or moving as in the demo clip, plus noise."""
    from skimage import data

    width, height = SIZE
    portrait = data.astronaut()
    rng = np.random.default_rng(0)
    writer = open_writer(path, 30.0, SIZE, H264_WHERE_POSSIBLE)
    if moving:
        frames = []
        for matrix in astronaut_motion(n_frames, SIZE):
            to_cv = matrix.copy()  # pixel i spans [i, i+1]; OpenCV puts pixel centres at integers
            to_cv[:, 2] += matrix[:, :2] @ np.array([0.5, 0.5]) - 0.5
            frames.append(cv2.warpAffine(portrait, to_cv, SIZE, flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_CONSTANT, borderValue=(40, 40, 40)))
    else:
        canvas = np.full((height, width, 3), 40, np.uint8)
        top, left = (height - 400) // 2, (width - 400) // 2
        canvas[top:top + 400, left:left + 400] = cv2.resize(portrait, (400, 400), interpolation=cv2.INTER_AREA)
        frames = [canvas] * n_frames
    for frame in frames:
        noisy = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8) if noise > 0 else frame
        writer.write(cv2.cvtColor(noisy, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def vertices(work: Path, clip: Path, smooth: float, n_frames: int) -> np.ndarray:
    """(F, V, 3) posed vertices of `reconstruct --smooth S`, metres; every frame must have the face."""
    demo = work / "demo"
    result = work / f"{clip.stem}.{smooth}.safetensors"
    backend("reconstruct", clip, "-o", result, "--flame", demo / "flame.safetensors", "--weights",
            demo / "demo_sheap_model.pt", "--smooth", smooth, "--progress", "none", "--device", "cpu")
    valid = read_result(result).valid
    if len(valid) != n_frames or not valid.all():
        raise SystemExit(f"{clip.name}: the face was found on {int(valid.sum())} of {n_frames} frames: the "
                         "figures would not measure smoothing")
    backend("flame", result, "--flame", demo / "flame.safetensors", "-o", work / "v.npy")
    return np.load(work / "v.npy")


def jitter_mm(verts: np.ndarray) -> float:
    """Mean frame-to-frame vertex displacement, mm."""
    return float(np.linalg.norm(np.diff(verts, axis=0), axis=2).mean() * 1000)


def slow(verts: np.ndarray, fps: float = 30.0) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(verts.astype(np.float64), SLOW_SIGMA_S * fps, axis=0, mode="nearest")


def motion_changed(smoothed: np.ndarray, raw: np.ndarray) -> float:
    """How far the smoothing moved the slow motion, over that motion's extent (both noise-free)."""
    motion = slow(raw)
    extent = np.linalg.norm(motion - motion.mean(axis=0), axis=2).mean()
    return float(np.linalg.norm(slow(smoothed) - motion, axis=2).mean() / extent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--noise", type=float, default=6.0, help="pixel noise sigma, 8-bit levels")
    args = parser.parse_args()
    print(machine_line())
    print(f"{args.frames} frames of {SIZE[0]}x{SIZE[1]}, pixel noise sigma {args.noise:g} levels "
          f"[demo weights: stand-in predictor]")
    goals = Goals()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        backend("make-demo", work / "demo")
        still = write_clip(work / "still.mp4", args.frames, args.noise, moving=False)
        print(f"clips written as {video_codec(still)}")
        print("\nstill head: mean vertex jitter, mm/frame (the head does not move)")
        jitter = {}
        for smooth in (0.0, 0.5):
            jitter[smooth] = jitter_mm(vertices(work, still, smooth, args.frames))
            print(f"  {'raw' if smooth == 0 else f'--smooth {smooth:g}':14s} {jitter[smooth]:.4f}", flush=True)
        still_cut = 1 - jitter[0.5] / jitter[0.0]

        clean = write_clip(work / "moving_clean.mp4", args.frames, 0.0, moving=True)
        noisy = write_clip(work / "moving_noisy.mp4", args.frames, args.noise, moving=True)
        noise_free = {smooth: vertices(work, clean, smooth, args.frames) for smooth in (0.0, 0.5, 1.0)}
        motion = slow(noise_free[0.0])
        extent = np.linalg.norm(motion - motion.mean(axis=0), axis=2).mean() * 1000
        print(f"\nmoving head (pan, zoom, roll; the noise-free head moves {jitter_mm(noise_free[0.0]):.4f} mm/frame, "
              f"its slow motion extends {extent:.4f} mm)")
        print(f"  {'':30s} {'jitter the noise adds, mm/frame':>32s} {'slow motion changed':>20s}")
        noise_jitter, changed = {}, {}
        for smooth in (0.0, 0.5, 1.0):
            noise_jitter[smooth] = jitter_mm(vertices(work, noisy, smooth, args.frames) - noise_free[smooth])
            changed[smooth] = motion_changed(noise_free[smooth], noise_free[0.0])
            label = "raw" if smooth == 0 else f"--smooth {smooth:g}" + (" (for comparison)" if smooth == 1 else "")
            print(f"  {label:30s} {noise_jitter[smooth]:32.4f} {changed[smooth]:20.1%}", flush=True)
        moving_cut = 1 - noise_jitter[0.5] / noise_jitter[0.0]
    print()
    goals.check(still_cut >= GOAL_STILL_CUT, f"still head: --smooth 0.5 cuts the jitter by {still_cut:.0%} "
                                             f"(goal >= {GOAL_STILL_CUT:.0%})")
    goals.check(moving_cut >= GOAL_MOVING_CUT, f"moving head: --smooth 0.5 cuts the jitter the noise adds by "
                                               f"{moving_cut:.0%} (goal >= {GOAL_MOVING_CUT:.0%})")
    goals.check(changed[0.5] <= GOAL_MOTION_CHANGED, f"moving head: --smooth 0.5 changes the slow motion by "
                                                     f"{changed[0.5]:.1%} (goal <= {GOAL_MOTION_CHANGED:.0%})")
    sys.exit(goals.exit_code())


if __name__ == "__main__":
    main()
