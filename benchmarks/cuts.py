"""Hard-cut detection: milliseconds per frame of `CutDetector.push` at 1080p, 4K and portrait 1080x1920.

    .venv/bin/python benchmarks/cuts.py [--frames 120] [--repeats 7]

Footage: a real photograph (scikit-image's rocket) panned across at 4% of the width per frame with
sensor noise, and a hard cut to another (the coffee cup) every 30 frames, so the look-back checks
run too. Frames are rendered before timing. Per resolution, after a warm-up pass, each figure is
the median over the repeats of the mean time per frame, with the spread (min..max). Goal (met /
MISS; the exit code counts the misses): under 1 ms per frame at 1080p, and 4K no dearer than 1.5x
1080p (the thumbnail reads a fixed grid of pixels).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from machine import Goals, machine_line  # noqa: E402  (benchmarks/machine.py, beside this script)
from skimage import data  # noqa: E402

from backend.footage.cuts import CutDetector  # noqa: E402


def footage(size: tuple[int, int], frames: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(frames):
        image = data.rocket() if (i // 30) % 2 == 0 else data.coffee()
        h, w = image.shape[:2]
        s = 0.6 * min(w / size[0], h / size[1])
        cx = w * 0.3 + (i % 30) * 0.04 * size[0] * s
        m = np.float32([[1 / s, 0, size[0] / 2 - cx / s], [0, 1 / s, size[1] / 2 - h / 2 / s]])
        frame = cv2.warpAffine(image, m, size, borderMode=cv2.BORDER_REFLECT_101)
        noise = rng.normal(0, 3, (size[1] // 8, size[0] // 8, 3)).astype(np.int16)
        frames_noise = cv2.resize(noise, size, interpolation=cv2.INTER_NEAREST)
        out.append(cv2.add(frame, frames_noise, dtype=cv2.CV_8U))
    return out


def time_push(frames: list[np.ndarray]) -> tuple[float, int]:
    detector = CutDetector(30.0)
    start = time.perf_counter()
    found = sum(detector.push(frame) for frame in frames)
    return (time.perf_counter() - start) / len(frames) * 1000.0, found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(machine_line())
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads; {args.frames} frames, {args.repeats} repeats")
    goals = Goals()
    medians = {}
    for label, size in [("1080p", (1920, 1080)), ("4K", (3840, 2160)), ("portrait", (1080, 1920))]:
        frames = footage(size, args.frames)
        time_push(frames)  # warm-up
        runs = [time_push(frames) for _ in range(args.repeats)]
        times = [ms for ms, _ in runs]
        medians[label] = statistics.median(times)
        print(f"{label:9s} {medians[label]:.3f} ms/frame (spread {min(times):.3f}..{max(times):.3f}), "
              f"{runs[0][1]} cuts found (expected {(args.frames - 1) // 30})")
    goals.check(medians["1080p"] < 1.0, f"1080p under 1 ms per frame ({medians['1080p']:.3f} ms)")
    goals.check(medians["4K"] < 1.5 * medians["1080p"], f"4K no dearer than 1.5x 1080p ({medians['4K']:.3f} ms)")
    return goals.exit_code()


if __name__ == "__main__":
    sys.exit(main())
