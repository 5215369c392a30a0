"""FLAME parameters -> ARKit 52: frames/s of `ArkitSolver.solve` on ONE core, on the demo stand-in FLAME.

    .venv/bin/python benchmarks/arkit_solve.py [--frames 10000] [--repeats 7] [--loop-frames 200]

The process is pinned to one CPU core and NumPy's BLAS to one thread (environment set before NumPy
is imported). Inputs are SHeaP-like: expression ~ N(0, 1), neck, jaw and eye poses ~ 0.1 rad, eyelids
in 0..1, one identity for the clip. Figures:

- calibration: the one-off build (shape transfer onto the model, jaw and gaze ranges) into an empty
  cache, then the cached load (median of 5);
- solve: all frames in one call, after a warm-up; median [min .. max] over the repeats;
- baseline: the same solve called frame by frame (a per-frame Python loop) on the first frames, whose
  results must equal the batched ones; the ratio says what solving all frames at once brings.

Goal (MISS line and exit code 1 when not met): solve >= 1,000 frames/s on one core.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_FRAMEWORKS",
                  "NUMEXPR_NUM_THREADS"):
    os.environ[_variable] = "1"  # before NumPy is imported: its BLAS reads them once

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from machine import cpu_name  # noqa: E402  (benchmarks/machine.py, beside this script)

from sheap_blender.core.arkit.solve import ArkitSolver  # noqa: E402
from sheap_blender.core.flame.model import FlameModel, load_flame  # noqa: E402
from sheap_blender.core.flame.params import WIDTHS, FlameParams  # noqa: E402

GOAL_FPS = 1000.0


def spread(values: list[float]) -> str:
    median = statistics.median(values)
    relative = (max(values) - min(values)) / median
    return f"{median:10.1f}  [{min(values):.1f} .. {max(values):.1f}, spread {relative:4.0%}]"


def pin_to_one_core() -> str:
    """Pin this process to its first allowed core (Linux); say which."""
    if not hasattr(os, "sched_setaffinity"):
        return "one BLAS thread (no CPU pinning on this system)"
    core = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {core})
    return f"pinned to CPU {core}, one BLAS thread"


def limit_blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return "threadpoolctl not installed: thread count from the environment"
    threadpool_limits(1)
    return "threadpoolctl: 1 thread"


def sheap_like_params(n: int, seed: int = 0) -> FlameParams:
    """`n` frames of random parameters shaped like SHeaP's output (float32, as in the result file)."""
    rng = np.random.default_rng(seed)
    values = {name: np.zeros((n, width), np.float32) for name, width in WIDTHS.items()}
    values["shape"][:] = rng.normal(0, 1, WIDTHS["shape"])  # one identity for the clip
    values["expr"][:] = rng.normal(0, 1, (n, WIDTHS["expr"]))
    for key in ("torso_pose", "neck_pose", "eye_l_pose", "eye_r_pose"):
        values[key][:] = rng.normal(0, 0.1, (n, 3))
    values["jaw_pose"][:] = rng.normal(0, 0.1, (n, 3)) * [0.3, 0.3, 0.1]
    values["jaw_pose"][:, 0] += np.abs(rng.normal(0, 0.1, n))  # the jaw opens (pitch about x), rarely closes past 0
    values["eyelids"][:] = rng.uniform(0, 1, (n, 2))
    values["cam_trans"][:] = [0.0, 0.0, 1.0] + rng.normal(0, 0.01, (n, 3))
    return FlameParams(**values)


def timed(function, *args) -> tuple[float, object]:
    started = time.perf_counter()
    out = function(*args)
    return time.perf_counter() - started, out


def make_demo_flame(directory: Path) -> FlameModel:
    subprocess.run([sys.executable, "-m", "backend", "make-demo", str(directory)], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    return load_flame(directory / "flame.safetensors")


def solve_frame_by_frame(solver: ArkitSolver, params: FlameParams, n: int) -> np.ndarray:
    return np.concatenate([solver.solve(params.rows(slice(i, i + 1))).weights for i in range(n)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--loop-frames", type=int, default=200, help="frames of the frame-by-frame baseline")
    args = parser.parse_args()
    if args.repeats < 5:
        parser.error("--repeats must be at least 5 (median and spread)")
    if not 1 <= args.loop_frames <= args.frames:
        parser.error("--loop-frames must be in 1..--frames")
    with tempfile.TemporaryDirectory() as tmp:
        model = make_demo_flame(Path(tmp) / "demo")  # before pinning: the backend's own process is not measured
        pinning = pin_to_one_core()
        print(f"numpy {np.__version__}, Python {platform.python_version()}, {cpu_name()}: {pinning}; "
              f"{limit_blas_threads()}; load average {os.getloadavg()[0]:.2f}")
        cache = Path(tmp) / "cache"
        build_s, solver = timed(ArkitSolver.for_flame, model, cache)
        cached = list(cache.iterdir())
        loads = [timed(ArkitSolver.for_flame, model, cache)[0] for _ in range(5)]
        if list(cache.iterdir()) != cached or len(cached) != 1:
            raise SystemExit(f"the calibration cache was not reused: {cached}")
        n_shapes = len(solver.calibration.shape_channels)
        print(f"model: demo stand-in FLAME ({model.n_vertices} vertices) [demo weights]; "
              f"{len(solver.calibration.region)} face vertices, {n_shapes} fitted shapes")
        print(f"calibration build (one-off): {build_s:8.2f} s   cached load: {statistics.median(loads) * 1000:7.1f} ms "
              f"[{min(loads) * 1000:.1f} .. {max(loads) * 1000:.1f}] ({cached[0].stat().st_size / 1e6:.1f} MB cache)")

        params = sheap_like_params(args.frames)
        solver.solve(params.rows(slice(0, min(args.frames, 1000))))  # warm-up
        runs = [timed(solver.solve, params) for _ in range(args.repeats)]
        batched = [args.frames / seconds for seconds, _ in runs]
        weights = runs[0][1].weights
        if weights.shape != (args.frames, 52) or not np.isfinite(weights).all():
            raise SystemExit(f"solve returned {weights.shape} weights, or non-finite ones")

        n_loop = args.loop_frames
        solve_frame_by_frame(solver, params, min(n_loop, 20))  # warm-up
        loop_runs = [timed(solve_frame_by_frame, solver, params, n_loop) for _ in range(args.repeats)]
        looped = [n_loop / seconds for seconds, _ in loop_runs]
        difference = np.abs(loop_runs[0][1] - weights[:n_loop]).max()
        if difference > 1e-9:
            raise SystemExit(f"the frame-by-frame baseline disagrees with the batched solve by {difference:.3g}")

    print(f"\nframes/s, median [min .. max, spread] over {args.repeats} repeats after a warm-up")
    print(f"  solve, {args.frames} frames in one call:     {spread(batched)}")
    print(f"  baseline, solve frame by frame ({n_loop}):  {spread(looped)}")
    ratio = statistics.median(batched) / statistics.median(looped)
    print(f"  batched / frame by frame: {ratio:.1f} x   (mean weight {weights.mean():.3f}, "
          f"{(weights > 0.05).mean():.0%} of channels above 0.05)")
    median = statistics.median(batched)
    met = median >= GOAL_FPS
    print(f"\ngoal: solve >= {GOAL_FPS:,.0f} frames/s on one core: {'met' if met else 'MISS'} ({median:,.0f} frames/s)")
    if not met:
        sys.exit(1)


if __name__ == "__main__":
    main()
