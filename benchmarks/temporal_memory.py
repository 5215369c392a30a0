"""Memory of the end of a reconstruct pass on long footage: the gap filling and the clip's one identity.

    PYTHONPATH=. .venv/bin/python benchmarks/temporal_memory.py [--minutes 20] [--fps 30] [--repeats 5]

Every `reconstruct` pass (one per person under `--people all`) ends by filling the gaps of every FLAME parameter
(`backend.model.temporal.clean_params`) and taking one identity for the clip (`aggregate_identity`) over the
whole clip's (frames, 300) shape: this is where the pass's memory peaks on long footage. The input is a person's
track as `--people all` sees it in an edit: 4-second shots with a hard cut between each, the person on screen in
one shot of three and found on 90% of those frames; the parameters have the result's real widths (PER_FRAME).

For the code as it is and for the whole-array versions it replaced (kept here as the baseline: the linear gap fill
computed over every row, the trimmed mean sorted over every frame and every coefficient at once), on the same
input in the same run, it reports: the peak traced bytes per frame above the inputs (tracemalloc traces NumPy's
arrays), the time (median and spread of --repeats after a warm-up), and that both give the same numbers (every
cleaned parameter and the identity). Goals: the peak at most half the baseline's; the values equal to the
baseline's (max abs difference 0).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.model import temporal  # noqa: E402
from backend.model.temporal import Smoothing, aggregate_identity, clean_params  # noqa: E402
from benchmarks.machine import Goals, machine_line  # noqa: E402
from sheap_blender.core.result.result_format import PER_FRAME  # noqa: E402

SHOT_S = 4.0
ON_SCREEN_EVERY = 3  # shots
FOUND = 0.9


def whole_array_fill_gaps(values: np.ndarray, valid: np.ndarray, rotation: bool = False) -> np.ndarray:
    """The baseline: the linear fill computed for every row (valid rows come out as they were)."""
    if rotation or valid.all() or not valid.any():
        return current_fill_gaps(values, valid, rotation)
    frames = np.arange(len(valid))
    known = frames[valid]
    query = np.clip(frames, known[0], known[-1])
    right = known[np.clip(np.searchsorted(known, query), 0, len(known) - 1)]
    left = known[np.clip(np.searchsorted(known, query, side="right") - 1, 0, len(known) - 1)]
    t = ((query - left) / np.maximum(right - left, 1))[:, None]
    return ((1 - t) * values[left] + t * values[right]).astype(values.dtype)


def whole_array_aggregate_identity(shape: np.ndarray, valid: np.ndarray, confidence: np.ndarray,
                                   head_pose: np.ndarray, trim: float = 0.2) -> np.ndarray:
    """The baseline: every frame and every coefficient sorted at once."""
    frontal = np.clip(np.cos(np.linalg.norm(head_pose, axis=1)), 0.05, 1.0)
    weights = np.where(valid, np.maximum(confidence, 1e-3) * frontal, 0.0)
    if weights.sum() <= 0:
        weights = np.ones(len(shape))
    order = np.argsort(shape, axis=0)
    sorted_values = np.take_along_axis(shape, order, axis=0)
    sorted_weights = weights[order]
    cumulative = np.cumsum(sorted_weights, axis=0) / sorted_weights.sum(axis=0)
    before = cumulative - sorted_weights / sorted_weights.sum(axis=0)
    keep = (cumulative > trim) & (before < 1 - trim)
    kept_weights = np.where(keep, sorted_weights, 0.0)
    return (kept_weights * sorted_values).sum(axis=0) / kept_weights.sum(axis=0)


current_fill_gaps = temporal.fill_gaps


def person_track(frames: int, fps: float, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """(parameters, valid, segments, confidence) of one person through an edit, at the result's widths."""
    rng = np.random.default_rng(seed)
    shot = round(SHOT_S * fps)
    segments = (np.arange(frames) // shot).astype(np.int32)
    valid = (segments % ON_SCREEN_EVERY == 0) & (rng.random(frames) < FOUND)
    params = {name: rng.normal(0, 0.1, (frames, width)).astype(np.float32) * valid[:, None]
              for name, width in PER_FRAME.items()}
    confidence = np.where(valid, rng.uniform(0.5, 1.0, frames), 0.0).astype(np.float32)
    return params, valid, segments, confidence


def end_of_pass(params, valid, segments, confidence, fps: float) -> dict[str, np.ndarray]:
    """What `pipeline.reconstruct` does with them at the end of a pass: clean, then one identity."""
    cleaned, outliers = clean_params(params, valid, Smoothing(0.5), fps, segments)
    head_pose = cleaned["torso_pose"] + cleaned["neck_pose"]
    cleaned["identity"] = temporal.aggregate_identity(cleaned["shape"], valid & ~outliers, confidence, head_pose)
    return cleaned


def measure(inputs, fps: float, repeats: int) -> tuple[int, list[float], dict[str, np.ndarray]]:
    """(peak traced bytes above the inputs, seconds of each repeat, the cleaned parameters and the identity)."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    outcome = end_of_pass(*inputs, fps)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        end_of_pass(*inputs, fps)
        times.append(time.perf_counter() - started)
    return peak, times, outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(machine_line())
    frames = round(args.minutes * 60 * args.fps)
    inputs = person_track(frames, args.fps)
    print(f"a person's track: {frames} frames ({args.minutes:g} min at {args.fps:g} fps), "
          f"{int(inputs[1].sum())} with the face, {int(inputs[2].max()) + 1} shots")
    end_of_pass(*person_track(round(SHOT_S * args.fps) * 6, args.fps), args.fps)  # warm-up (imports, caches)

    figures = {}
    for name, fill, aggregate in (("baseline (whole arrays)", whole_array_fill_gaps, whole_array_aggregate_identity),
                                  ("current", current_fill_gaps, aggregate_identity)):
        temporal.fill_gaps, temporal.aggregate_identity = fill, aggregate
        try:
            figures[name] = measure(inputs, args.fps, args.repeats)
        finally:
            temporal.fill_gaps, temporal.aggregate_identity = current_fill_gaps, aggregate_identity
        peak, times, _ = figures[name]
        print(f"{name}: peak {peak / 2**20:.0f} MB above the inputs ({peak / frames / 1024:.2f} KB per frame); "
              f"{statistics.median(times):.3f} s median (spread {min(times):.3f}-{max(times):.3f} s, "
              f"{args.repeats} repeats)")
    (base_peak, base_times, base_outcome), (peak, times, outcome) = figures.values()
    difference = max(float(np.abs(outcome[name] - base_outcome[name]).max()) for name in base_outcome)
    ratio = statistics.median(times) / statistics.median(base_times)
    print(f"peak: {peak / base_peak:.2f}x the baseline's; time: {ratio:.2f}x; parameters and identity: "
          f"max abs difference {difference:g}")
    goals = Goals()
    goals.check(peak <= base_peak / 2, "peak at most half the baseline's")
    goals.check(difference == 0.0, "the same parameters and identity as the baseline")
    return goals.exit_code()


if __name__ == "__main__":
    sys.exit(main())
